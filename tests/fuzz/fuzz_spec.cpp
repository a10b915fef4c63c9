// Model spec files (src/core/spec.cpp load_model_spec): `<model>.spec.json` or --spec. An
// accepted spec must also survive the trip to a worker: to_json, then parse_model_spec as the
// worker does, giving the same spec.
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "deltann/spec.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deltann;
  static fuzz::ScratchFile file("model.spec.json");
  file.write(data, size);
  fuzz::refusal_is_fine([&] {
    const ModelSpec spec = load_model_spec(file.path().parent_path() / "model.onnx", file.path());
    const InputSpec& in = spec.input;
    fuzz::check(spec.output.classes > 0 && spec.output.label_offset >= 0 &&
                    int64_t{spec.output.classes} + spec.output.label_offset <=
                        std::numeric_limits<int>::max(),
                "the output length classes + label_offset is a positive int");
    for (const int64_t d : in.shape) fuzz::check(d > 0, "every input dimension is positive");
    if (!in.raw_tensor) {
      fuzz::check(in.shape.size() == 4, "an image input has 4 dimensions");
      fuzz::check(in.crop > 0 && in.resize >= in.crop, "crop and resize are usable sizes");
      for (int c = 0; c < 3; ++c)
        fuzz::check(std::isfinite(in.mean[c]) && std::isfinite(in.std[c]) && in.std[c] != 0,
                    "mean and std are finite, std non-zero");
      fuzz::check(std::isfinite(in.scale), "scale is finite");
    }
    const nlohmann::json sent = to_json(spec);
    const ModelSpec received = parse_model_spec(nlohmann::json::parse(sent.dump()), ".");
    fuzz::check(to_json(received) == sent, "a worker reads back the spec it was sent");
    fuzz::check(received.input.preprocessing_key() == in.preprocessing_key(),
                "the worker's spec has the same preprocessing key");
  });
  return 0;
}
