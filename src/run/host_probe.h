// This machine's identity (deltann/host_info.h), read once per process: /proc/cpuinfo, the online
// cores, a measured clock and nvidia-smi's GPUs.
#pragma once

#include <string>

#include "deltann/host_info.h"

namespace deltann {

// Read on the first call (~60 ms for the clock; nvidia-smi, where there is one, at most 20 s) and
// kept: every variant of a process ran on the same machine.
const HostIdentity& this_host();
// The host name alone, read anew (cheap: for a shard's status, which needs no more).
std::string host_name();

}  // namespace deltann
