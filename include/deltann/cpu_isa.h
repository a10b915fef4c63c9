// Instruction-set caps (the `isa` knob): which x86 instruction-set levels this CPU has, read from
// the flags /proc/cpuinfo lists, so that an engine offers a cap only where it binds
// (docs/ENVIRONMENTS.md, "Hardware"). Each engine applies a cap its own way (an environment
// variable its dispatcher reads, a compiler target) and checks that it took effect.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "deltann/backend.h"

namespace deltann {

// The flags of the first processor in /proc/cpuinfo's text ("avx2", "avx512f", ...).
std::set<std::string> parse_cpu_flags(std::string_view cpuinfo);
// This machine's flags, read once; empty where /proc/cpuinfo cannot be read.
const std::set<std::string>& cpu_flags();

// The CPU flags a level needs: "avx512" (the AVX-512 subsets Skylake-X has: F, CD, BW, DQ, VL),
// "avx2" (AVX2 and FMA), "avx", "sse4_2", and "baseline" (none: what the engine was built for,
// without the extensions it dispatches to at run time). Throws Error for a level it does not know.
const std::vector<std::string>& isa_level_flags(const std::string& level);

// "" when `flags` has every flag `level` needs, else why a cap at that level cannot be tested
// here: "this CPU lacks avx512bw, avx512vl (/proc/cpuinfo)".
std::string isa_missing(const std::string& level, const std::set<std::string>& flags);

// The `isa` knob: `native` (the engine's own choice for this CPU; the default, left out of the
// variant name) and then `caps`, levels from the highest to the lowest. A level the CPU lacks is
// unavailable with the reason: variants naming it are skipped. `environment`: per level, the
// `NAME=value` entries the worker must start with (Knob::environment).
Knob isa_knob(const std::vector<std::string>& caps,
              std::map<std::string, std::vector<std::string>> environment, const std::string& help,
              const std::set<std::string>& flags = cpu_flags());

}  // namespace deltann
