// Instruction-set caps (cpu_isa.h) and the environment a knob value asks of a worker
// (worker_environment in backend.h).
#include "deltann/cpu_isa.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "deltann/backend.h"
#include "deltann/environment.h"
#include "deltann/error.h"

namespace deltann {
namespace {

constexpr const char* kCpuinfo =
    "processor\t: 0\n"
    "model name\t: Some CPU\n"
    "flags\t\t: fpu sse2 sse4_2 avx avx2 fma\n"
    "\n"
    "processor\t: 1\n"
    "flags\t\t: fpu sse2 sse4_2 avx avx2 fma avx512f\n";

TEST(CpuIsa, ParsesTheFirstProcessorsFlags) {
  const auto flags = parse_cpu_flags(kCpuinfo);
  EXPECT_EQ(flags, (std::set<std::string>{"fpu", "sse2", "sse4_2", "avx", "avx2", "fma"}));
  EXPECT_TRUE(parse_cpu_flags("processor : 0\n").empty());
}

TEST(CpuIsa, NamesTheMissingFlags) {
  const auto flags = parse_cpu_flags(kCpuinfo);
  EXPECT_EQ(isa_missing("avx2", flags), "");
  EXPECT_EQ(isa_missing("baseline", {}), "");
  EXPECT_EQ(isa_missing("avx512", flags),
            "this CPU lacks avx512f, avx512cd, avx512bw, avx512dq, avx512vl (/proc/cpuinfo)");
  EXPECT_THROW(isa_level_flags("mmx"), Error);
}

TEST(CpuIsa, KnobMarksLevelsAboveTheCpuUnavailable) {
  const Knob knob = isa_knob({"avx512", "avx2", "sse4_2"}, {{"avx2", {"X=1"}}}, "help",
                             parse_cpu_flags(kCpuinfo));
  EXPECT_EQ(knob.name, "isa");
  EXPECT_EQ(knob.values, (std::vector<std::string>{"native", "avx512", "avx2", "sse4_2"}));
  EXPECT_EQ(knob.default_value, "native");
  EXPECT_TRUE(knob.omit_default);
  ASSERT_EQ(knob.unavailable.size(), 1u);
  EXPECT_NE(knob.unavailable.at("avx512").find("lacks avx512f"), std::string::npos);
}

TEST(CpuIsa, ThisMachineHasFlags) {
  // Every x86-64 Linux lists at least SSE2; elsewhere the set may be empty but must not throw.
#if defined(__x86_64__)
  EXPECT_TRUE(cpu_flags().count("sse2"));
#endif
}

TEST(WorkerEnvironment, CollectsTheEntriesOfTheChosenValues) {
  BackendInfo info;
  info.name = "e";
  Knob isa{"isa", {"native", "avx2"}, "native", ""};
  isa.environment = {{"avx2", {"CAP=AVX512"}}};
  Knob device{"device", {"cpu", "opencl"}, "cpu", ""};
  device.environment = {{"opencl", {"ALLOW=1", "DEVICE=:CPU:"}}};
  info.knobs = {device, isa};
  Environment env = parse_environment("e:device=opencl,isa=avx2");
  EXPECT_EQ(worker_environment(info, env),
            (std::vector<std::string>{"ALLOW=1", "DEVICE=:CPU:", "CAP=AVX512"}));
  EXPECT_TRUE(worker_environment(info, parse_environment("e:device=cpu")).empty());
}

TEST(WorkerEnvironment, TravelsThroughTheDescription) {
  BackendInfo info;
  info.name = "e";
  info.version = "1";
  info.devices = {"cpu"};
  Knob isa{"isa", {"native", "avx2"}, "native", ""};
  isa.environment = {{"avx2", {"CAP=AVX512"}}};
  info.knobs = {isa};
  const BackendInfo back = backend_info_from_json(to_json(info));
  EXPECT_EQ(back.knobs.at(0).environment, isa.environment);
}

}  // namespace
}  // namespace deltann
