// Capturing an environment's intermediate tensors through its loaded worker (the protocol's
// `capture` op, docs/PROTOCOL.md), shared by the verbs that compare captures: localize and repair.
#pragma once

#include <filesystem>

#include "deltann/campaign.h"
#include "deltann/layer_capture.h"
#include "run/worker_process.h"

namespace deltann::cli {

// Asks a loaded worker to capture `tensor` into `out` (emptied first) and reads the capture.
// Throws Error when the worker refuses (an engine that cannot capture) or the folder is invalid.
inline LayerCapture capture_with(LoadedWorker& worker, const PreparedEnvironment& env,
                                 const std::filesystem::path& tensor,
                                 const std::filesystem::path& out) {
  std::filesystem::remove_all(out);
  const auto captured =
      worker.request({{"op", "capture"}, {"tensor", tensor.string()}, {"out_dir", out.string()}},
                     "capture", "captured", "cannot capture intermediate tensors");
  return read_capture(captured.value("index", ""), env.env);
}

}  // namespace deltann::cli
