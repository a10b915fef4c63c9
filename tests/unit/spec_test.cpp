// Model specs (spec.h): parsing the JSON sidecar, defaults and the preprocessing cache key.
#include "deltann/spec.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/error.h"
#include "test_util.h"

namespace deltann {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::Contains;
using test::message_of;

TEST(ModelSpec, DefaultsAreImageNet) {
  const ModelSpec spec = parse_model_spec(json::object(), "/models");
  const InputSpec& in = spec.input;
  EXPECT_EQ(spec.name, "");
  EXPECT_EQ(in.shape, (std::vector<int64_t>{1, 3, 224, 224}));
  EXPECT_EQ(in.layout, Layout::NCHW);
  EXPECT_EQ(in.channel_order, ChannelOrder::RGB);
  EXPECT_EQ(in.crop, 224);
  EXPECT_EQ(in.resize, 224);  // defaults to the crop when the sidecar says nothing
  EXPECT_EQ(in.interpolation, "bilinear");
  EXPECT_FLOAT_EQ(in.scale, 1.0f / 255.0f);
  EXPECT_EQ(in.mean, (std::array<float, 3>{0.485f, 0.456f, 0.406f}));
  EXPECT_EQ(in.std, (std::array<float, 3>{0.229f, 0.224f, 0.225f}));
  EXPECT_EQ(in.height(), 224);
  EXPECT_EQ(in.width(), 224);
  EXPECT_EQ(spec.output.classes, 1000);
  EXPECT_EQ(spec.output.label_offset, 0);
  EXPECT_EQ(spec.output.kind, OutputKind::Logits);
  EXPECT_FALSE(spec.output.class_names.has_value());
}

TEST(ModelSpec, ParsesNhwcBgrWithLabelOffset) {
  const json j = json::parse(R"({
    "name": "mobilenet_tf",
    "input": {"name": "input:0", "shape": [1, 299, 299, 3], "layout": "NHWC",
              "channel_order": "BGR", "resize": 320, "crop": 299, "interpolation": "area",
              "scale": 1.0, "mean": [103.5, 116.5, 123.5], "std": [57.5, 57.0, 58.5]},
    "output": {"name": "logits", "classes": 1001, "label_offset": 1, "kind": "probabilities",
               "class_names": "labels/imagenet.txt"}
  })");
  const ModelSpec spec = parse_model_spec(j, "/models/tf");
  EXPECT_EQ(spec.name, "mobilenet_tf");
  const InputSpec& in = spec.input;
  EXPECT_EQ(in.name, "input:0");
  EXPECT_EQ(in.shape, (std::vector<int64_t>{1, 299, 299, 3}));
  EXPECT_EQ(in.layout, Layout::NHWC);
  EXPECT_EQ(in.height(), 299);  // NHWC: height is dimension 1, width dimension 2
  EXPECT_EQ(in.width(), 299);
  EXPECT_EQ(in.channel_order, ChannelOrder::BGR);
  EXPECT_EQ(in.resize, 320);
  EXPECT_EQ(in.crop, 299);
  EXPECT_EQ(in.interpolation, "area");
  EXPECT_EQ(in.scale, 1.0f);
  EXPECT_EQ(in.mean, (std::array<float, 3>{103.5f, 116.5f, 123.5f}));
  EXPECT_EQ(in.std, (std::array<float, 3>{57.5f, 57.0f, 58.5f}));
  EXPECT_EQ(spec.output.name, "logits");
  EXPECT_EQ(spec.output.classes, 1001);
  EXPECT_EQ(spec.output.label_offset, 1);
  EXPECT_EQ(spec.output.kind, OutputKind::Probabilities);
  ASSERT_TRUE(spec.output.class_names.has_value());
  EXPECT_EQ(*spec.output.class_names, fs::path("/models/tf/labels/imagenet.txt"));
}

TEST(ModelSpec, AbsoluteClassNamesStayAsGiven) {
  const json j = {{"output", {{"class_names", "/data/names.txt"}}}};
  EXPECT_EQ(*parse_model_spec(j, "/models").output.class_names, fs::path("/data/names.txt"));
}

TEST(ModelSpec, ScalarMeanAndStdApplyToEveryChannel) {
  const json j = {{"input", {{"mean", 0.5}, {"std", 0.25}}}};
  const ModelSpec spec = parse_model_spec(j, ".");
  EXPECT_EQ(spec.input.mean, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(spec.input.std, (std::array<float, 3>{0.25f, 0.25f, 0.25f}));
}

TEST(ModelSpec, NonSquareInputIsRejected) {
  // The crop is square (default: the shorter side), so a non-square shape cannot match it.
  const json j = {{"input", {{"shape", {1, 3, 224, 256}}}}};
  const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
  EXPECT_TRUE(Contains(message, "crop 224 does not match"));
}

TEST(ModelSpec, RawTensorInputTakesAnyPositiveShapeAndRoundTrips) {
  // A subgraph cut out by `localize --reproduce` reads an intermediate tensor, not an image.
  const json j = {{"input", {{"kind", "tensor"}, {"name", "conv2_out"}, {"shape", {1, 8, 5, 7}}}},
                  {"output", {{"name", "bn2_out"}, {"classes", 280}}}};
  const ModelSpec spec = parse_model_spec(j, ".");
  EXPECT_TRUE(spec.input.raw_tensor);
  EXPECT_EQ(spec.input.shape, (std::vector<int64_t>{1, 8, 5, 7}));
  EXPECT_TRUE(Contains(message_of<Error>([&] { (void)spec.input.height(); }), "raw tensor"));
  const json back = to_json(spec);
  EXPECT_EQ(back.at("input").at("kind"), "tensor");
  EXPECT_TRUE(parse_model_spec(back, ".").input.raw_tensor);
  // An image spec does not gain the field, so cache keys made from it stay the same.
  EXPECT_FALSE(to_json(parse_model_spec(json::object(), ".")).at("input").contains("kind"));
}

TEST(ModelSpec, RawTensorInputIsValidated) {
  const auto message = [](const json& input) {
    return message_of<Error>([&] { parse_model_spec({{"input", input}}, "."); });
  };
  EXPECT_TRUE(Contains(message({{"kind", "tensor"}, {"shape", {1, 0, 3}}}), "positive"));
  EXPECT_TRUE(Contains(message({{"kind", "tensor"}, {"shape", {4}}, {"dtype", "int8"}}), "int8"));
  EXPECT_TRUE(Contains(message({{"kind", "video"}}), "valid values: image, tensor"));
}

TEST(ModelSpec, BadLayoutListsValidValues) {
  const json j = {{"input", {{"layout", "NHCW"}}}};
  const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
  EXPECT_TRUE(Contains(message, "'layout'"));
  EXPECT_TRUE(Contains(message, "'NHCW'"));
  EXPECT_TRUE(Contains(message, "NCHW, NHWC"));
}

TEST(ModelSpec, BadChannelOrderListsValidValues) {
  const json j = {{"input", {{"channel_order", "rgb"}}}};
  const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
  EXPECT_TRUE(Contains(message, "'channel_order'"));
  EXPECT_TRUE(Contains(message, "RGB, BGR"));
}

TEST(ModelSpec, BadInterpolationListsValidValues) {
  const json j = {{"input", {{"interpolation", "lanczos"}}}};
  const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
  EXPECT_TRUE(Contains(message, "'lanczos'"));
  EXPECT_TRUE(Contains(message, "bilinear, nearest, area, bicubic"));
}

TEST(ModelSpec, CropMustMatchShape) {
  const json j = {{"input", {{"shape", {1, 3, 224, 224}}, {"crop", 200}}}};
  const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
  EXPECT_TRUE(Contains(message, "crop 200"));
  EXPECT_TRUE(Contains(message, "shape"));
}

TEST(ModelSpec, ResizeBelowCropIsAnError) {
  const json j = {{"input", {{"resize", 200}}}};
  EXPECT_TRUE(Contains(message_of<Error>([&] { parse_model_spec(j, "."); }), "resize"));
}

TEST(ModelSpec, ZeroStdIsAnError) {
  for (const json& std_value : {json{1.0, 0.0, 1.0}, json(0.0)}) {
    const json j = {{"input", {{"std", std_value}}}};
    const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
    EXPECT_TRUE(Contains(message, "std must not contain 0")) << std_value.dump();
  }
}

// Found by fuzzing (tests/fuzz/regressions/spec): values that were accepted but could not be used.
TEST(ModelSpec, NonPositiveImageDimensionsAreAnError) {
  // The crop defaulted to -224 and matched, so the spec was accepted and preprocessing failed.
  const json j = {{"input", {{"shape", {1, 3, -224, -224}}}}};
  EXPECT_TRUE(Contains(message_of<Error>([&] { parse_model_spec(j, "."); }), "positive"));
}

TEST(ModelSpec, IntegersOutOfRangeAreAnError) {
  const auto message = [](const json& j) {
    return message_of<Error>([&] { parse_model_spec(j, "."); });
  };
  // 2^32 + 224 used to wrap to 224 and match the shape; 1e300 was undefined behaviour.
  EXPECT_TRUE(Contains(message({{"input", {{"crop", 4294967520}}}}), "'crop' must be an integer"));
  EXPECT_TRUE(Contains(message({{"input", {{"resize", 1e300}}}}), "'resize' must be an integer"));
  EXPECT_TRUE(Contains(message({{"input", {{"shape", {1, 3, 2.5, 2.5}}}}}), "'shape'"));
  // 2^63 as a float is just above int64's range (converting it would be undefined).
  EXPECT_TRUE(Contains(message({{"input", {{"shape", {1, 3, 9223372036854775808.0, 8}}}}}),
                       "'shape' must be an integer"));
  EXPECT_TRUE(
      Contains(message({{"input", {{"crop", 2147483648.0}}}}), "'crop' must be an integer"));
  EXPECT_TRUE(Contains(message({{"output", {{"classes", -1e300}}}}), "'classes'"));
  // classes + label_offset is the output's length, an int too.
  EXPECT_TRUE(Contains(message({{"output", {{"classes", 2147483647}, {"label_offset", 1}}}}),
                       "out of range"));
  // An integral float is the integer it writes.
  EXPECT_EQ(parse_model_spec({{"input", {{"crop", 224.0}}}}, ".").input.crop, 224);
}

TEST(ModelSpec, ValuesThatOverflowFloat32AreAnError) {
  // 1e300 became +Inf in a float, which the worker then received as null and refused.
  for (const char* field : {"scale", "mean", "std"}) {
    const json j = {{"input", {{field, 1e300}}}};
    const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
    EXPECT_TRUE(Contains(message, std::string("'") + field + "' must be a finite float32"));
  }
}

TEST(ModelSpec, DeeplyNestedSpecFileIsAnError) {
  // Reading "input" copied the value, recursively: 200000 levels overflowed the stack.
  test::TempDir dir;
  const int depth = 200000;
  const fs::path path =
      test::write_file(dir / "m.spec.json",
                       R"({"input":)" + std::string(depth, '[') + std::string(depth, ']') + "}");
  const std::string message = message_of<Error>([&] { load_model_spec(dir / "m.onnx", path); });
  EXPECT_TRUE(Contains(message, path.string()));
  EXPECT_TRUE(Contains(message, "nested deeper than 32 levels"));
}

TEST(ModelSpec, MeanMustHaveThreeValues) {
  const json j = {{"input", {{"mean", {0.5, 0.5}}}}};
  const std::string message = message_of<Error>([&] { parse_model_spec(j, "."); });
  EXPECT_TRUE(Contains(message, "'mean'"));
  EXPECT_TRUE(Contains(message, "3 numbers"));
}

TEST(ModelSpec, WrongChannelCountIsAnError) {
  const json nchw = {{"input", {{"shape", {1, 1, 224, 224}}}}};
  EXPECT_TRUE(Contains(message_of<Error>([&] { parse_model_spec(nchw, "."); }),
                       "3 channels for layout NCHW"));
  // The NCHW shape read as NHWC has 224 channels.
  const json nhwc = {{"input", {{"shape", {1, 3, 224, 224}}, {"layout", "NHWC"}}}};
  EXPECT_TRUE(Contains(message_of<Error>([&] { parse_model_spec(nhwc, "."); }),
                       "3 channels for layout NHWC"));
}

TEST(ModelSpec, ShapeMustBeFourDimensionalWithBatchOne) {
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         parse_model_spec({{"input", {{"shape", {3, 224, 224}}}}}, ".");
                       }),
                       "4 dimensions"));
  EXPECT_TRUE(Contains(message_of<Error>([] {
                         parse_model_spec({{"input", {{"shape", {8, 3, 224, 224}}}}}, ".");
                       }),
                       "batch"));
}

TEST(ModelSpec, WrongJsonTypeIsAnError) {
  const json j = {{"input", {{"crop", "big"}}}};
  EXPECT_TRUE(Contains(message_of<Error>([&] { parse_model_spec(j, "."); }),
                       "spec field 'crop' must be an integer"));
  const json k = {{"input", {{"interpolation", 3}}}};
  EXPECT_TRUE(Contains(message_of<Error>([&] { parse_model_spec(k, "."); }), "malformed spec"));
}

TEST(ModelSpec, ToJsonRoundTrips) {
  const json j = {{"name", "m"},
                  {"input",
                   {{"shape", {1, 112, 112, 3}},
                    {"layout", "NHWC"},
                    {"channel_order", "BGR"},
                    {"resize", 128},
                    {"interpolation", "nearest"},
                    {"mean", 0.5}}},
                  {"output", {{"classes", 10}, {"label_offset", 1}, {"class_names", "/n.txt"}}}};
  const ModelSpec spec = parse_model_spec(j, "/");
  const ModelSpec again = parse_model_spec(to_json(spec), "/");
  EXPECT_EQ(again.name, spec.name);
  EXPECT_EQ(again.input.preprocessing_key(), spec.input.preprocessing_key());
  EXPECT_EQ(again.output.classes, 10);
  EXPECT_EQ(again.output.label_offset, 1);
  EXPECT_EQ(again.output.class_names, spec.output.class_names);
}

TEST(ModelSpec, SourcesResolveAgainstTheSpecFolderAndRoundTrip) {
  const json j = {{"sources",
                   {{"pytorch", {{"file", "w.pth"}, {"architecture", "mobilenet_v2"}}},
                    {"tflite", {{"file", "/abs/m.tflite"}}}}}};
  const ModelSpec spec = parse_model_spec(j, "/models/a");
  ASSERT_EQ(spec.sources.size(), 2u);
  EXPECT_EQ(spec.sources.at("pytorch").file, fs::path("/models/a/w.pth"));
  EXPECT_EQ(spec.sources.at("pytorch").architecture, "mobilenet_v2");
  EXPECT_EQ(spec.sources.at("tflite").file, fs::path("/abs/m.tflite"));
  EXPECT_EQ(spec.sources.at("tflite").architecture, "");
  const ModelSpec again = parse_model_spec(to_json(spec), "/elsewhere");
  EXPECT_EQ(again.sources.at("pytorch").file, fs::path("/models/a/w.pth"));
  EXPECT_EQ(again.sources.at("pytorch").architecture, "mobilenet_v2");
  EXPECT_FALSE(to_json(again)["sources"]["tflite"].contains("architecture"));
}

TEST(ModelSpec, SourceWithoutAFileIsAnError) {
  const json j = {{"sources", {{"pytorch", {{"architecture", "resnet101"}}}}}};
  EXPECT_TRUE(
      Contains(message_of<Error>([&] { parse_model_spec(j, "/"); }), "'pytorch' needs a \"file\""));
  const json not_object = {{"sources", {{"pytorch", "w.pth"}}}};
  EXPECT_THROW(parse_model_spec(not_object, "/"), Error);
}

TEST(ModelFormat, FromTheExtension) {
  EXPECT_EQ(model_format("m.onnx"), "onnx");
  EXPECT_EQ(model_format("/x/m.tflite"), "tflite");
  EXPECT_EQ(model_format("m.pt"), "torchscript");
  EXPECT_EQ(model_format("m.torchscript"), "torchscript");
  EXPECT_EQ(model_format("m.pth"), "pytorch");
  EXPECT_EQ(model_format("/x/m.keras"), "keras");
  EXPECT_EQ(model_format("m.bin"), "");
  EXPECT_EQ(model_format("onnx"), "");
}

TEST(LoadModelSpec, NoSidecarGivesImageNetDefaultsAndTheModelStem) {
  test::TempDir dir;
  const fs::path model = test::write_file(dir / "resnet50.onnx", "not really a model");
  const ModelSpec spec = load_model_spec(model);
  EXPECT_EQ(spec.name, "resnet50");
  EXPECT_EQ(spec.input.preprocessing_key(), InputSpec{}.preprocessing_key());
  EXPECT_EQ(spec.input.resize, 256);
  EXPECT_EQ(spec.input.crop, 224);
  EXPECT_EQ(spec.output.classes, 1000);
}

TEST(LoadModelSpec, ReadsTheSidecarNextToTheModel) {
  test::TempDir dir;
  const fs::path model = dir / "net.onnx";
  test::write_file(
      dir / "net.spec.json",
      R"({"input": {"channel_order": "BGR"}, "output": {"class_names": "names.txt"}})");
  const ModelSpec spec = load_model_spec(model);
  EXPECT_EQ(spec.name, "net");  // no name in the sidecar: the model's stem
  EXPECT_EQ(spec.input.channel_order, ChannelOrder::BGR);
  EXPECT_EQ(*spec.output.class_names, dir / "names.txt");
}

TEST(LoadModelSpec, MalformedJsonNamesTheFile) {
  test::TempDir dir;
  const fs::path sidecar = test::write_file(dir / "net.spec.json", "{\"input\": {\"crop\": 224,");
  const std::string message = message_of<Error>([&] { load_model_spec(dir / "net.onnx"); });
  EXPECT_TRUE(Contains(message, sidecar.string()));
  EXPECT_TRUE(Contains(message, "not valid JSON"));
}

TEST(LoadModelSpec, InvalidFieldNamesTheFileAndTheField) {
  test::TempDir dir;
  const fs::path sidecar = test::write_file(dir / "custom.json", R"({"input": {"layout": "CHW"}})");
  const std::string message =
      message_of<Error>([&] { load_model_spec(dir / "net.onnx", sidecar); });
  EXPECT_TRUE(Contains(message, sidecar.string()));
  EXPECT_TRUE(Contains(message, "'layout'"));
  EXPECT_TRUE(Contains(message, "NCHW, NHWC"));
}

TEST(LoadModelSpec, MissingExplicitSidecarIsAnError) {
  test::TempDir dir;
  const fs::path missing = dir / "nope.json";
  const std::string message = message_of<Error>([&] { load_model_spec(dir / "m.onnx", missing); });
  EXPECT_TRUE(Contains(message, missing.string()));
  EXPECT_TRUE(Contains(message, "does not exist"));
}

// Which spec applies is never guessed silently: the file (absolute), or words saying that the
// ImageNet defaults apply, and a note listing them.
TEST(ModelSpecFile, TheGivenFileTheSidecarOrNone) {
  test::TempDir dir;
  const fs::path model = test::write_file(dir / "net.onnx", "model");
  EXPECT_FALSE(model_spec_file(model).has_value());
  EXPECT_EQ(spec_source_text(model), "ImageNet defaults (no net.spec.json beside the model)");
  const fs::path given = test::write_file(dir / "other.json", "{}");
  EXPECT_EQ(model_spec_file(model, given), fs::absolute(given));
  EXPECT_EQ(spec_source_text(model, given), fs::absolute(given).string());
  const fs::path sidecar = test::write_file(dir / "net.spec.json", "{}");
  EXPECT_EQ(model_spec_file(model), fs::absolute(sidecar));
  EXPECT_EQ(spec_source_text(model), fs::absolute(sidecar).string());
}

TEST(ModelSpecFile, TheDefaultsNoteListsThem) {
  const std::string note = default_spec_note("/models/copy.onnx");
  EXPECT_TRUE(Contains(note, "no copy.spec.json beside it"));
  EXPECT_TRUE(Contains(note, "ImageNet defaults apply"));
  for (const char* part :
       {"1x3x224x224 NCHW RGB", "resized to 256 (bilinear)", "centre crop 224",
        "mean [0.485, 0.456, 0.406]", "std [0.229, 0.224, 0.225]", "1000 logits", "--spec FILE"})
    EXPECT_TRUE(Contains(note, part)) << part << " not in: " << note;
}

TEST(LoadClassNames, OneNamePerLine) {
  test::TempDir dir;
  OutputSpec out;
  EXPECT_TRUE(load_class_names(out).empty());
  out.class_names = test::write_file(dir / "names.txt", "tench\ngoldfish\ngreat white shark\n");
  EXPECT_EQ(load_class_names(out),
            (std::vector<std::string>{"tench", "goldfish", "great white shark"}));
  out.class_names = dir / "missing.txt";
  EXPECT_TRUE(Contains(message_of<Error>([&] { load_class_names(out); }), "missing.txt"));
}

TEST(PreprocessingKey, ChangesWhenAnyFieldChanges) {
  const InputSpec base;
  const std::vector<std::function<void(InputSpec&)>> changes = {
      [](InputSpec& s) {
        s.shape = {1, 224, 224, 3};
      },
      [](InputSpec& s) { s.layout = Layout::NHWC; },
      [](InputSpec& s) { s.channel_order = ChannelOrder::BGR; },
      [](InputSpec& s) { s.resize = 257; },
      [](InputSpec& s) { s.crop = 223; },
      [](InputSpec& s) { s.interpolation = "nearest"; },
      [](InputSpec& s) { s.scale = 1.0f; },
      [](InputSpec& s) { s.scale = std::nextafter(s.scale, 1.0f); },  // one ulp
      [](InputSpec& s) { s.mean[0] = 0.5f; },
      [](InputSpec& s) { s.mean[1] = 0.5f; },
      [](InputSpec& s) { s.mean[2] = 0.5f; },
      [](InputSpec& s) { s.std[0] = 0.5f; },
      [](InputSpec& s) { s.std[1] = 0.5f; },
      [](InputSpec& s) { s.std[2] = std::nextafter(s.std[2], 1.0f); },
  };
  std::set<std::string> keys{base.preprocessing_key()};
  for (size_t i = 0; i < changes.size(); ++i) {
    InputSpec changed = base;
    changes[i](changed);
    EXPECT_NE(changed.preprocessing_key(), base.preprocessing_key()) << "change #" << i;
    keys.insert(changed.preprocessing_key());
  }
  EXPECT_EQ(keys.size(), changes.size() + 1);  // every change gives its own key

  // The tensor name does not shape the tensor, so it leaves the key alone.
  InputSpec renamed = base;
  renamed.name = "data";
  EXPECT_EQ(renamed.preprocessing_key(), base.preprocessing_key());
}

}  // namespace
}  // namespace deltann
