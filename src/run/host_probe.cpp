#include "host_probe.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "deltann/error.h"
#include "run_program.h"

namespace deltann {
namespace {

std::string file_text(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// nvidia-smi absent or failing is not "no GPU": the note says that GPUs, if any, are unknown.
void add_gpus(HostIdentity& host) {
  const ProgramRun smi = run_program(nvidia_smi_query(), 20);
  if (!smi.ok()) {
    host.gpu_note = "nvidia-smi: " + smi.failure() + "; GPUs, if any, are not recorded";
    return;
  }
  try {
    host.gpus = parse_nvidia_smi(smi.out);
  } catch (const Error& e) {
    host.gpu_note = e.what();
  }
}

}  // namespace

std::string host_name() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

const HostIdentity& this_host() {
  static const HostIdentity host = [] {
    HostIdentity h = host_from_cpuinfo(file_text("/proc/cpuinfo"));
    h.host = host_name();
    h.logical_cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    h.cpu_mhz_measured = measure_cpu_mhz();
    add_gpus(h);
    return h;
  }();
  return host;
}

}  // namespace deltann
