// The identity of the machine a variant ran on (docs/ENVIRONMENTS.md, "Hardware"): the CPU's
// model, the flags its instruction-set levels rest on, its logical cores and the clock it runs at,
// and the GPUs nvidia-smi reports. The process that runs a variant records it with the variant, so
// that the shards of a campaign run on several nodes each keep their own node's identity.
//
// Everything here parses text (of /proc/cpuinfo, of nvidia-smi's CSV) or converts to and from the
// stored JSON, so that it can be tested on any machine; the run layer's host_probe reads the live
// machine once with these functions.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace deltann {

// One GPU as `nvidia-smi --query-gpu=...` reports it (kNvidiaSmiQuery). The clocks are kept as
// nvidia-smi writes them (MHz, or "[N/A]" where a GPU does not report one).
struct GpuIdentity {
  std::string name;
  std::string driver;
  std::string clock_sm_mhz;
  std::string clock_mem_mhz;
  std::string clock_max_sm_mhz;
  std::string clock_max_mem_mhz;
  bool operator==(const GpuIdentity&) const = default;
};

struct HostIdentity {
  std::string host;       // the host name
  std::string cpu_model;  // /proc/cpuinfo's "model name" ("" where it has none, e.g. many Arm)
  // Of this CPU's flags, those that name vector and instruction-set extensions (avx*, amx*, fma,
  // f16c, sse*): what the `isa` levels rest on, in name order.
  std::vector<std::string> isa_flags;
  std::string isa_level;  // the highest `isa` level the flags allow: "avx512" ... "baseline"
  int logical_cores = 0;  // online logical processors
  // The clock one busy core ran at while the variant's process started, in MHz (measure_cpu_mhz):
  // none where it was not measured (not x86-64 or AArch64).
  std::optional<double> cpu_mhz_measured;
  // /proc/cpuinfo's "cpu MHz", averaged over the processors: the kernel's current estimate, which
  // in a virtual machine is often the nominal rate on every core.
  std::optional<double> cpu_mhz_reported;
  std::vector<GpuIdentity> gpus;
  // Why `gpus` may be incomplete: "" when nvidia-smi answered (an empty list then means no NVIDIA
  // GPU), else what happened ("nvidia-smi: not found").
  std::string gpu_note;

  // The same machine: host, CPU model, flags, cores and GPU names and drivers. The clocks are left
  // out: they change from one reading to the next on one machine.
  bool same_machine(const HostIdentity& other) const;
};

// The argument vector that asks nvidia-smi for what parse_nvidia_smi reads.
const std::vector<std::string>& nvidia_smi_query();

// /proc/cpuinfo's first "model name"; "" when it has none.
std::string parse_cpu_model(std::string_view cpuinfo);
// The mean of /proc/cpuinfo's "cpu MHz" lines; none when it has none.
std::optional<double> parse_cpu_mhz(std::string_view cpuinfo);
// The flags among `flags` that HostIdentity::isa_flags keeps.
std::vector<std::string> isa_relevant_flags(const std::set<std::string>& flags);
// The highest level of the `isa` knob (cpu_isa.h) whose flags are all in `flags`.
std::string highest_isa_level(const std::set<std::string>& flags);
// The GPUs of nvidia-smi's output for nvidia_smi_query() (CSV without header or units, one GPU a
// line). Throws Error naming the line when a line does not have the six fields asked for.
std::vector<GpuIdentity> parse_nvidia_smi(std::string_view csv);
// The identity /proc/cpuinfo's text gives (model, flags, reported clock); the rest is left empty.
HostIdentity host_from_cpuinfo(std::string_view cpuinfo);

// Measures the clock of the core it runs on: a chain of dependent integer additions (one cycle
// each on every x86-64 and AArch64 core) timed for about 13 ms at 2.5 GHz, the fastest of three
// tries so that a preemption does not count. None on other architectures.
std::optional<double> measure_cpu_mhz();

// Stored with each variant (variants.info_json's `host`, docs/STORAGE.md).
nlohmann::json to_json(const HostIdentity& host);
// Throws Error naming the field when `stored` is not such an object.
HostIdentity host_identity_from_json(const nlohmann::json& stored);

// One line for people: "AMD EPYC (avx2), 2 cores at 2596 MHz, GPU NVIDIA H100 (driver 550.54)".
std::string describe_host(const HostIdentity& host);

}  // namespace deltann
