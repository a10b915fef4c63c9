// The device identity of variants (DeviceIdentity in compare.h): read from the stored load reply,
// compared within pairs, shown as a hardware axis in the findings, and carried by a shard merge.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "deltann/compare.h"
#include "deltann/shard_merge.h"
#include "deltann/store.h"
#include "test_util.h"

namespace deltann {
namespace {

using nlohmann::json;
using test::Contains;

constexpr const char* kCpu = "opencv:opt=on,device=cpu,threads=1";
constexpr const char* kAvx2 = "opencv:opt=on,device=cpu,threads=1,isa=avx2";
constexpr const char* kOpenCl = "opencv:opt=on,device=opencl,threads=1";

json host(const std::string& name, const std::string& cpu = "Intel Xeon Gold 6148") {
  return {{"host", name},
          {"cpu_model", cpu},
          {"isa_flags", {"avx", "avx2", "avx512f", "fma", "sse4_2"}},
          {"isa_level", "avx512"},
          {"logical_cores", 8},
          {"cpu_mhz_measured", 2990.5},
          {"cpu_mhz_reported", 2400.0},
          {"gpus", json::array()}};
}

// A load reply as the campaign stores it: the worker's, with the machine beside it.
std::string loaded(const json& machine, const json& hardware) {
  return json{{"event", "loaded"}, {"load_ns", 5}, {"hardware", hardware}, {"host", machine}}
      .dump();
}

StoredImage image(const std::string& key) {
  StoredImage i;
  i.key = key;
  i.path = "/data/" + key;
  i.sha256 = "sha-" + key;
  i.label = 1;
  return i;
}

// Ten images: the CPU and its AVX2 cap agree within 2e-6; OpenCL flips image 4's label.
class HardwareAxis : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(dir_ / "hw.db");
    const int64_t model = store.ensure_model({0, "/m/model.onnx", "sha", "{}"});
    const int64_t cpu = store.ensure_variant(model, kCpu, "opencv");
    const int64_t avx2 = store.ensure_variant(model, kAvx2, "opencv");
    const int64_t opencl = store.ensure_variant(model, kOpenCl, "opencv");
    store.record_load(cpu, "4.6.0", "", 5, loaded(host("node1"), {{"cpu_features", "AVX512F"}}));
    store.record_load(avx2, "4.6.0", "", 5, loaded(host("node1"), {{"cpu_features", "AVX2"}}));
    store.record_load(opencl, "4.6.0", "", 5,
                      loaded(host("node1"), {{"opencl_device", "pthread-Intel Xeon"},
                                             {"opencl_platform", "Portable Computing Language"}}));
    for (int i = 0; i < 10; ++i) {
      const int64_t id = store.ensure_image(image("img" + std::to_string(i) + ".png"));
      for (const auto& [variant, shift] :
           {std::pair{cpu, 0.0f}, std::pair{avx2, 2e-6f}, std::pair{opencl, 0.0f}}) {
        StoredResult r;
        r.variant_id = variant;
        r.image_id = id;
        const bool flip = variant == opencl && i == 4;
        r.top_ids = flip ? std::vector<int>{2, 1} : std::vector<int>{1, 2};
        r.top_scores = {5, 1};
        r.output = flip ? std::vector<float>{0, 1, 5} : std::vector<float>{0, 5 + shift, 1};
        store.add_result(r);
      }
    }
    store.flush();
    comparison_ = compare_variants(store);
  }

  const PairSummary& pair(const std::string& a, const std::string& b) const {
    for (const auto& p : comparison_.pairs)
      if (p.a == a && p.b == b) return p;
    throw std::runtime_error("no pair " + a + " / " + b);
  }

  test::TempDir dir_;
  Comparison comparison_;
};

TEST_F(HardwareAxis, VariantsCarryTheirDeviceIdentity) {
  ASSERT_EQ(comparison_.variants.size(), 3u);
  const DeviceIdentity& cpu = comparison_.variants[0].device;
  ASSERT_TRUE(cpu.host);
  EXPECT_EQ(cpu.host->host, "node1");
  EXPECT_EQ(cpu.isa_in_effect(), "native (avx512)");
  EXPECT_EQ(cpu.summary(), "Intel Xeon Gold 6148, isa native (avx512), device cpu");
  EXPECT_EQ(comparison_.variants[1].device.isa_in_effect(), "avx2");
  EXPECT_EQ(comparison_.variants[2].device.summary(),
            "Intel Xeon Gold 6148, isa native (avx512), device opencl: pthread-Intel Xeon "
            "[Portable Computing Language]");
  EXPECT_EQ(comparison_.variants[2].device.hardware.at("opencl_device"), "pthread-Intel Xeon");
}

TEST_F(HardwareAxis, PairsThatDifferOnlyInIsaOrDeviceAreTheHardwareAxis) {
  const PairSummary& isa = pair(kCpu, kAvx2);
  EXPECT_EQ(isa.axis, "isa");
  EXPECT_TRUE(isa.hardware_axis());
  EXPECT_EQ(isa.device_differences, std::vector<std::string>{"isa native (avx512) vs avx2"});
  const PairSummary& device = pair(kCpu, kOpenCl);
  EXPECT_EQ(device.axis, "device");
  EXPECT_TRUE(device.hardware_axis());
  EXPECT_EQ(device.device_differences,
            (std::vector<std::string>{
                "device cpu vs opencl",
                "accelerator none vs pthread-Intel Xeon [Portable Computing Language]"}));
  // isa and device both changed: not a single hardware axis.
  EXPECT_FALSE(pair(kAvx2, kOpenCl).hardware_axis());
}

TEST_F(HardwareAxis, FindingsSayWhatTheHardwareAxisChanged) {
  std::vector<const Finding*> hardware;
  const Finding* label = nullptr;
  for (const auto& f : comparison_.findings) {
    if (f.kind == FindingKind::hardware) hardware.push_back(&f);
    if (f.kind == FindingKind::label_difference && f.variants.at(0) == kCpu) label = &f;
  }
  // The AVX2 cap changes nothing beyond 2e-6: said plainly, at the bottom of the list.
  ASSERT_EQ(hardware.size(), 1u);
  EXPECT_TRUE(Contains(hardware[0]->title, std::string(kCpu) + " vs " + kAvx2 +
                                               ": differs only in isa: max |d| 1.91e-06, 0/10 "
                                               "labels differ (0.0% [0.0\u201330.8])"))
      << hardware[0]->title;
  EXPECT_TRUE(Contains(hardware[0]->evidence, "isa native (avx512) vs avx2"));
  EXPECT_EQ(comparison_.findings.back().kind, FindingKind::hardware);
  EXPECT_EQ(to_string(FindingKind::hardware), "hardware");
  // OpenCL flips a label: the label finding, which names the axis as the only difference.
  ASSERT_NE(label, nullptr);
  EXPECT_TRUE(
      Contains(label->title, std::string(kCpu) + " vs " + kOpenCl + " (differs only in device)"))
      << label->title;
  EXPECT_TRUE(Contains(label->evidence, "device identity: device cpu vs opencl"));
}

TEST(DeviceIdentity, ReadsWhatOlderOrDamagedRepliesLack) {
  test::TempDir dir;
  Store store(dir / "old.db");
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}"});
  const int64_t old = store.ensure_variant(model, "ort:opt=all", "ort");
  const int64_t bad = store.ensure_variant(model, "ort:opt=basic", "ort");
  const int64_t never = store.ensure_variant(model, "ort:opt=disable", "ort");
  store.record_load(old, "1.17", "", 5, R"({"event": "loaded", "load_ns": 5})");
  store.record_load(bad, "1.17", "", 5, R"({"event": "loaded", "host": {"cpu_model": 7}})");
  (void)never;
  store.flush();
  const Comparison c = compare_variants(store);
  ASSERT_EQ(c.variants.size(), 3u);
  EXPECT_FALSE(c.variants[0].device.host);
  EXPECT_TRUE(Contains(c.variants[0].device.note, "from before it was"));
  EXPECT_EQ(c.variants[0].device.summary(), "machine not recorded, isa native, device cpu");
  EXPECT_TRUE(Contains(c.variants[1].device.note, "'cpu_model' is not a string"));
  EXPECT_TRUE(Contains(c.variants[2].device.note, "never loaded"));
}

TEST(DeviceIdentity, DifferentMachinesAreADifference) {
  DeviceIdentity a, b;
  json one = host("node1"), two = host("node2", "AMD EPYC 7763");
  a.host = host_identity_from_json(one);
  b.host = host_identity_from_json(two);
  EXPECT_EQ(
      device_differences(a, b),
      std::vector<std::string>{"machine node1 (Intel Xeon Gold 6148) vs node2 (AMD EPYC 7763)"});
  // Another reading of the clock on the same machine is not.
  one["cpu_mhz_measured"] = 1200.0;
  b.host = host_identity_from_json(one);
  EXPECT_TRUE(device_differences(a, b).empty());
}

// A shard database of plan "H" whose one variant loaded on `machine`, with one image.
std::filesystem::path shard_on(const std::filesystem::path& path, int index, const json& machine,
                               const std::string& key) {
  Store store(path);
  store.set_meta("plan_hash", "H");
  store.set_meta("shard", std::to_string(index));
  const int64_t model = store.ensure_model({0, "/m.onnx", "sha", "{}", "defaults"});
  const int64_t v = store.ensure_variant(model, kCpu, "opencv");
  store.record_load(v, "4.6.0", "", 5, loaded(machine, json::object()));
  StoredResult r;
  r.variant_id = v;
  r.image_id = store.ensure_image(image(key));
  r.top_ids = {1};
  r.top_scores = {0.5f};
  store.add_result(r);
  store.set_variant_status(v, VariantStatus::done);
  store.flush();
  return path;
}

TEST(DeviceIdentity, MergeKeepsEveryMachineAVariantRanOn) {
  test::TempDir dir;
  const std::vector<ShardDatabase> shards = {
      {0, shard_on(dir / "s0.db", 0, host("node1"), "a")},
      {1, shard_on(dir / "s1.db", 1, host("node1"), "b")},  // the same machine: not repeated
      {2, shard_on(dir / "s2.db", 2, host("node2", "AMD EPYC 7763"), "c")}};
  merge_shard_databases(shards, "H", dir / "all.db", [](const std::string&) {});
  const Store store(dir / "all.db", StoreMode::ReadOnly);
  const Comparison c = compare_variants(store);
  ASSERT_EQ(c.variants.size(), 1u);
  const DeviceIdentity& d = c.variants[0].device;
  ASSERT_TRUE(d.host);
  EXPECT_EQ(d.host->host, "node1");
  ASSERT_EQ(d.other_hosts.size(), 1u);
  EXPECT_EQ(d.other_hosts[0].host, "node2");
  EXPECT_TRUE(Contains(d.summary(), "ran on 2 machines"));
  bool warned = false;
  for (const auto& w : c.warnings) warned = warned || Contains(w, "ran on 2 different machines");
  EXPECT_TRUE(warned);
}

}  // namespace
}  // namespace deltann
