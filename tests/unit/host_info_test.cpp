// The host identity (host_info.h): what /proc/cpuinfo's and nvidia-smi's text give, and its
// stored form.
#include "deltann/host_info.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "deltann/error.h"

namespace deltann {
namespace {

// Two processors of a Skylake-X server as the kernel lists them (abridged).
constexpr const char* kCpuinfo =
    "processor\t: 0\n"
    "vendor_id\t: GenuineIntel\n"
    "model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\n"
    "cpu MHz\t\t: 2400.000\n"
    "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd "
    "avx512bw avx512vl avx512_vnni aes\n"
    "\n"
    "processor\t: 1\n"
    "model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\n"
    "cpu MHz\t\t: 3000.500\n"
    "flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd "
    "avx512bw avx512vl avx512_vnni aes\n";

TEST(HostInfo, ReadsModelFlagsAndClockFromCpuinfo) {
  const HostIdentity host = host_from_cpuinfo(kCpuinfo);
  EXPECT_EQ(host.cpu_model, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz");
  EXPECT_EQ(host.isa_level, "avx512");
  // Only the extensions the isa levels rest on, in name order: not fpu, not aes.
  EXPECT_EQ(host.isa_flags,
            (std::vector<std::string>{"avx", "avx2", "avx512_vnni", "avx512bw", "avx512cd",
                                      "avx512dq", "avx512f", "avx512vl", "f16c", "fma", "sse",
                                      "sse2", "sse4_1", "sse4_2", "ssse3"}));
  ASSERT_TRUE(host.cpu_mhz_reported);
  EXPECT_DOUBLE_EQ(*host.cpu_mhz_reported, 2700.25);  // the mean of the processors'
}

TEST(HostInfo, CpuinfoWithoutModelOrClock) {
  // An Arm kernel writes neither "model name" nor "cpu MHz".
  const HostIdentity host = host_from_cpuinfo("processor\t: 0\nFeatures\t: fp asimd\n");
  EXPECT_EQ(host.cpu_model, "");
  EXPECT_FALSE(host.cpu_mhz_reported);
  EXPECT_EQ(host.isa_level, "baseline");
  EXPECT_FALSE(parse_cpu_mhz("cpu MHz : unknown\n"));
}

TEST(HostInfo, HighestLevelIsTheFirstWhoseFlagsAreAllThere) {
  EXPECT_EQ(highest_isa_level({"avx", "avx2", "fma", "sse4_2", "avx512f"}), "avx2");
  EXPECT_EQ(highest_isa_level({"avx", "avx2", "sse4_2"}), "avx");  // AVX2 without FMA
  EXPECT_EQ(highest_isa_level({"sse4_2"}), "sse4_2");
}

TEST(HostInfo, ParsesNvidiaSmi) {
  const auto gpus = parse_nvidia_smi(
      "NVIDIA H100 80GB HBM3, 550.54.15, 1980, 2619, 1980, 2619\n"
      "NVIDIA A100-SXM4-40GB, 550.54.15, 210, 1215, 1410, [N/A]\n");
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(gpus[0],
            (GpuIdentity{"NVIDIA H100 80GB HBM3", "550.54.15", "1980", "2619", "1980", "2619"}));
  EXPECT_EQ(gpus[1].clock_sm_mhz, "210");
  EXPECT_EQ(gpus[1].clock_max_sm_mhz, "1410");
  EXPECT_EQ(gpus[1].clock_max_mem_mhz, "[N/A]");
  EXPECT_TRUE(parse_nvidia_smi("").empty());  // nvidia-smi answered: no NVIDIA GPU
}

TEST(HostInfo, NvidiaSmiLineOfOtherFieldsIsAnError) {
  try {
    parse_nvidia_smi("NVIDIA H100, 550.54.15\n");
    FAIL() << "a short line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 1 has 2 fields, not the 6"), std::string::npos)
        << e.what();
  }
}

TEST(HostInfo, QueryAsksForTheFieldsTheParserReads) {
  const auto& argv = nvidia_smi_query();
  ASSERT_EQ(argv.size(), 3u);
  EXPECT_EQ(argv[0], "nvidia-smi");
  EXPECT_EQ(argv[2], "--format=csv,noheader,nounits");
}

TEST(HostInfo, StoredFormRoundTrips) {
  HostIdentity host = host_from_cpuinfo(kCpuinfo);
  host.host = "node7";
  host.logical_cores = 80;
  host.cpu_mhz_measured = 2987.5;
  host.gpus = parse_nvidia_smi("NVIDIA H100, 550.54.15, 1980, 2619, 1980, 2619\n");
  const HostIdentity back = host_identity_from_json(nlohmann::json::parse(to_json(host).dump()));
  EXPECT_TRUE(back.same_machine(host));
  EXPECT_EQ(back.cpu_mhz_measured, host.cpu_mhz_measured);
  EXPECT_EQ(back.cpu_mhz_reported, host.cpu_mhz_reported);
  EXPECT_EQ(back.gpus, host.gpus);
  EXPECT_EQ(describe_host(back),
            "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz (avx512), 80 cores at 2988 MHz, GPU "
            "NVIDIA H100 (driver 550.54.15, SM 1980/1980 MHz) on node7");
}

TEST(HostInfo, SameMachineIgnoresTheClocks) {
  HostIdentity a = host_from_cpuinfo(kCpuinfo);
  a.host = "node1";
  HostIdentity b = a;
  b.cpu_mhz_measured = 1234;
  b.cpu_mhz_reported = 1000;
  EXPECT_TRUE(a.same_machine(b));
  b.host = "node2";
  EXPECT_FALSE(a.same_machine(b));
}

TEST(HostInfo, BadStoredFormNamesTheField) {
  EXPECT_THROW(host_identity_from_json(nlohmann::json::array()), Error);
  try {
    host_identity_from_json({{"cpu_model", 3}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'cpu_model'"), std::string::npos) << e.what();
  }
}

TEST(HostInfo, MeasuredClockIsPlausible) {
  const auto mhz = measure_cpu_mhz();
#if defined(__x86_64__) || defined(__aarch64__)
  ASSERT_TRUE(mhz);
  // Any core of the last twenty years, even one slowed by a busy neighbour.
  EXPECT_GT(*mhz, 200);
  EXPECT_LT(*mhz, 7000);
#else
  EXPECT_FALSE(mhz);
#endif
}

}  // namespace
}  // namespace deltann
