// The body of every worker executable: `deltann-worker-<framework>` is this loop around one
// engine (docs/PROTOCOL.md).
#pragma once

#include <functional>
#include <memory>

#include "deltann/backend.h"

namespace deltann {

// `--describe` prints the backend's BackendInfo as JSON; `--serve` answers requests on stdin.
int worker_main(int argc, char** argv,
                const std::function<std::unique_ptr<Backend>()>& make_backend);

}  // namespace deltann
