#include "analysis/cause_kind.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace deltann {
namespace {

const std::vector<int64_t> kShape = {4, 3, 3, 3};  // an OIHW Conv weight

std::vector<double> random_values(size_t n, unsigned seed, double scale = 0.3) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0F, 1.0F);
  std::vector<double> v(n);
  for (auto& x : v) x = static_cast<float>(normal(rng) * scale);  // float32 values, as stored
  return v;
}

size_t count(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (const auto d : shape) n *= static_cast<size_t>(d);
  return n;
}

CauseKind classify(const std::vector<double>& a, const std::vector<double>& b,
                   const std::vector<int64_t>& shape = kShape) {
  return classify_tensor_change(a, shape, b, shape);
}

TEST(CauseKind, SameAndMissingAndZeroed) {
  const auto a = random_values(count(kShape), 1);
  EXPECT_EQ(classify(a, a).kind, "same");
  EXPECT_EQ(classify_tensor_change(a, kShape, {}, {}, false).kind, "missing");
  const auto zeroed = classify(a, std::vector<double>(a.size(), 0.0));
  EXPECT_EQ(zeroed.kind, "zeroed");
  EXPECT_GT(zeroed.details.at("max_abs_a").get<double>(), 0);
  EXPECT_EQ(classify(a, std::vector<double>(a.size() + 1, 0.0)).kind, "resized");
}

TEST(CauseKind, SpatialFlipNamesTheAxis) {
  const auto a = random_values(count(kShape), 2);
  const auto b = transform_values(a, kShape, {0, 1, 2, 3}, {false, false, false, true});
  const auto k = classify(a, b);
  EXPECT_EQ(k.kind, "rearranged");
  EXPECT_EQ(k.details.at("transform"), "flip");
  EXPECT_EQ(k.details.at("flipped_axes"), nlohmann::json::array({3}));
  EXPECT_NE(k.text.find("axis 3 (W)"), std::string::npos) << k.text;
}

TEST(CauseKind, AxisTransposeGivesThePermutation) {
  const auto a = random_values(count(kShape), 3);
  const auto b = transform_values(a, kShape, {0, 1, 3, 2}, std::vector<bool>(4, false));
  const auto k = classify(a, b);
  EXPECT_EQ(k.kind, "rearranged");
  EXPECT_EQ(k.details.at("transform"), "transpose");
  EXPECT_EQ(k.details.at("perm"), nlohmann::json::array({0, 1, 3, 2}));
  // A 2-D transpose of a non-square matrix changes the shape: B's shape is the transposed one.
  const std::vector<int64_t> matrix = {3, 5};
  const auto m = random_values(15, 4);
  const auto t = transform_values(m, matrix, {1, 0}, {false, false});
  const auto km = classify_tensor_change(m, matrix, t, {5, 3});
  EXPECT_EQ(km.kind, "rearranged");
  EXPECT_EQ(km.details.at("perm"), nlohmann::json::array({1, 0}));
}

TEST(CauseKind, ChannelReorderGivesThePermutation) {
  const auto a = random_values(count(kShape), 5);
  // B's output channel j is A's channel order[j]: a swap of channels 1 and 3.
  const std::vector<int64_t> order = {0, 3, 2, 1};
  std::vector<double> b(a.size());
  const size_t per_channel = a.size() / 4;
  for (size_t j = 0; j < 4; ++j)
    for (size_t i = 0; i < per_channel; ++i)
      b[j * per_channel + i] = a[static_cast<size_t>(order[j]) * per_channel + i];
  const auto k = classify(a, b);
  EXPECT_EQ(k.kind, "rearranged");
  EXPECT_EQ(k.details.at("transform"), "reorder");
  EXPECT_EQ(k.details.at("axis"), 0);
  EXPECT_EQ(k.details.at("permutation"), nlohmann::json(order));
  EXPECT_EQ(k.details.at("description"), "swaps (1 3)");
}

TEST(CauseKind, ShuffleNoAxisExplainsIsStillRearranged) {
  const auto a = random_values(count(kShape), 6);
  auto b = a;
  std::swap(b[0], b[17]);  // two single values swapped: no flip, transpose or slice reorder
  const auto k = classify(a, b);
  EXPECT_EQ(k.kind, "rearranged");
  EXPECT_EQ(k.details.at("transform"), "unknown");
}

TEST(CauseKind, DescribesPermutationsCompactly) {
  EXPECT_EQ(describe_permutation({0, 1, 2}), "identity");
  EXPECT_EQ(describe_permutation({3, 2, 1, 0}), "reversed");
  EXPECT_EQ(describe_permutation({2, 3, 4, 0, 1}), "rotated by 2");
  EXPECT_EQ(describe_permutation({1, 0, 2, 4, 3}), "swaps (0 1)(3 4)");
  EXPECT_EQ(describe_permutation({1, 2, 0, 3, 5, 4}), "5 of 6 positions moved");
}

TEST(CauseKind, RescaleAndOffsetAreFittedNotCalledRearranged) {
  const auto a = random_values(count(kShape), 7);
  std::vector<double> scaled(a.size()), shifted(a.size()), both(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    scaled[i] = static_cast<float>(a[i] * 1.5);
    shifted[i] = static_cast<float>(a[i] + 0.25);
    both[i] = static_cast<float>(a[i] * 0.5 - 0.1);
  }
  const auto k = classify(a, scaled);
  EXPECT_EQ(k.kind, "rescaled");
  EXPECT_NEAR(k.details.at("k").get<double>(), 1.5, 1e-6);
  const auto c = classify(a, shifted);
  EXPECT_EQ(c.kind, "offset");
  EXPECT_NEAR(c.details.at("c").get<double>(), 0.25, 1e-6);
  const auto kc = classify(a, both);
  EXPECT_EQ(kc.kind, "affine");
  EXPECT_NEAR(kc.details.at("k").get<double>(), 0.5, 1e-6);
  EXPECT_NEAR(kc.details.at("c").get<double>(), -0.1, 1e-6);
  // A sign flip of a tensor whose values are symmetric keeps the multiset, but -1 * A is a
  // rescale only when the multiset differs; here it differs.
  std::vector<double> negated(a.size());
  for (size_t i = 0; i < a.size(); ++i) negated[i] = -a[i];
  EXPECT_EQ(classify(a, negated).kind, "rescaled");
}

std::vector<double> quantise(const std::vector<double>& a, double step) {
  std::vector<double> b(a.size());
  for (size_t i = 0; i < a.size(); ++i)
    b[i] = static_cast<float>(std::nearbyint(a[i] / step) * step);
  return b;
}

TEST(CauseKind, PerTensorQuantisationFindsStepAndBits) {
  const auto a = random_values(count(kShape), 8);
  double largest = 0;
  for (const double v : a) largest = std::max(largest, std::fabs(v));
  const double step = largest / 127;  // symmetric int8
  const auto k = classify(a, quantise(a, step));
  ASSERT_EQ(k.kind, "quantised") << k.text;
  EXPECT_EQ(k.details.at("granularity"), "per-tensor");
  EXPECT_NEAR(k.details.at("step").get<double>(), step, step * 1e-4);
  EXPECT_EQ(k.details.at("bits"), 8);
  const auto k4 = classify(a, quantise(a, largest / 7));  // 4 bits: -7..7
  ASSERT_EQ(k4.kind, "quantised") << k4.text;
  EXPECT_EQ(k4.details.at("bits"), 4);
}

TEST(CauseKind, SparseGridIsFoundFromCoprimeGaps) {
  // Three levels used out of 255 (-63, 0 and 127 steps): the gaps 63 and 127 share only the step.
  const double step = 0.37 / 127;
  const std::vector<double> a = {-63.3 * step, 0.2 * step, -0.1 * step, 126.8 * step, 0.3 * step};
  const auto k = classify_tensor_change(a, {5}, quantise(a, step), {5});
  ASSERT_EQ(k.kind, "quantised") << k.text;
  EXPECT_NEAR(k.details.at("step").get<double>(), step, step * 1e-4);
  EXPECT_EQ(k.details.at("bits"), 8);
}

TEST(CauseKind, PerChannelQuantisation) {
  auto a = random_values(count(kShape), 9);
  // Channels of very different magnitude, each quantised with its own step.
  const size_t per_channel = a.size() / 4;
  std::vector<double> b(a.size());
  for (size_t j = 0; j < 4; ++j) {
    double largest = 0;
    for (size_t i = 0; i < per_channel; ++i) {
      a[j * per_channel + i] = static_cast<float>(a[j * per_channel + i] * std::pow(10.0, j));
      largest = std::max(largest, std::fabs(a[j * per_channel + i]));
    }
    for (size_t i = 0; i < per_channel; ++i)
      b[j * per_channel + i] = static_cast<float>(
          std::nearbyint(a[j * per_channel + i] / (largest / 127)) * (largest / 127));
  }
  const auto k = classify(a, b);
  ASSERT_EQ(k.kind, "quantised") << k.text;
  EXPECT_EQ(k.details.at("granularity"), "per-channel");
  EXPECT_EQ(k.details.at("axis"), 0);
  EXPECT_EQ(k.details.at("bits"), 8);
}

TEST(CauseKind, ConstantTensorIsNeverQuantised) {
  const auto a = random_values(count(kShape), 10);
  const auto k = classify(a, std::vector<double>(a.size(), 0.125));
  EXPECT_EQ(k.kind, "changed") << k.text;
  EXPECT_EQ(k.details.at("constant_b"), 0.125);
}

TEST(CauseKind, PrecisionReducedToHalfAndBfloat16) {
  const auto a = random_values(count(kShape), 11);
  std::vector<double> half(a.size()), brain(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    half[i] = round_to_fp16(a[i]);
    brain[i] = round_to_bf16(a[i]);
  }
  const auto h = classify(a, half);
  EXPECT_EQ(h.kind, "precision-reduced");
  EXPECT_EQ(h.details.at("format"), "fp16");
  const auto bf = classify(a, brain);
  EXPECT_EQ(bf.kind, "precision-reduced");
  EXPECT_EQ(bf.details.at("format"), "bf16");
  // A narrow-range tensor rounded to fp16 lies on a uniform grid, but is still precision-reduced.
  std::vector<double> narrow(a.size()), narrow_half(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    narrow[i] = static_cast<float>(1.0 + a[i] * 0.1);
    narrow_half[i] = round_to_fp16(narrow[i]);
  }
  EXPECT_EQ(classify(narrow, narrow_half).kind, "precision-reduced");
}

TEST(CauseKind, RoundingToNarrowFloatsIsExact) {
  EXPECT_EQ(round_to_fp16(1.0 + std::ldexp(1.0, -11)), 1.0);  // a tie, to even
  EXPECT_EQ(round_to_fp16(1.0 + 3 * std::ldexp(1.0, -11)), 1.0 + std::ldexp(1.0, -9));
  EXPECT_EQ(round_to_fp16(70000.0), INFINITY);
  EXPECT_EQ(round_to_fp16(std::ldexp(1.0, -25) * 3), std::ldexp(1.0, -23));  // subnormal
  EXPECT_EQ(round_to_bf16(1.0 + std::ldexp(1.0, -8)), 1.0);
  EXPECT_EQ(round_to_bf16(3.14159274), 3.140625);
}

TEST(CauseKind, NoiseIsChanged) {
  const auto a = random_values(count(kShape), 12);
  const auto noise = random_values(a.size(), 13, 0.003);
  std::vector<double> b(a.size());
  for (size_t i = 0; i < a.size(); ++i) b[i] = static_cast<float>(a[i] + noise[i]);
  const auto k = classify(a, b);
  EXPECT_EQ(k.kind, "changed") << k.text;
  EXPECT_GT(k.details.at("relative_change").get<double>(), 0);
  EXPECT_LT(k.details.at("relative_change").get<double>(), 0.1);
}

TEST(CauseKind, NaNIsChangedWithoutSorting) {
  auto a = random_values(count(kShape), 14);
  auto b = a;
  b[3] = std::nan("");
  const auto k = classify(a, b);
  EXPECT_EQ(k.kind, "changed");
  EXPECT_EQ(k.details.at("nan"), true);
}

TEST(CauseKind, AttributesNameTheChange) {
  const auto pads = classify_attribute_change("Conv", "pads", "[1,1,1,1]", "[2,2,0,0]");
  EXPECT_EQ(pads.kind, "padding-shifted");
  EXPECT_EQ(pads.details.at("shift"), nlohmann::json::array({1, 1}));  // per spatial axis
  EXPECT_EQ(classify_attribute_change("Conv", "pads", "[1,1,1,1]", "[0,0,0,0]").kind,
            "padding-changed");
  EXPECT_EQ(classify_attribute_change("Conv", "strides", "[1,1]", "[2,2]").kind, "stride-changed");
  const auto eps = classify_attribute_change("BatchNormalization", "epsilon", "1e-05", "0.01");
  EXPECT_EQ(eps.kind, "epsilon-changed");
  EXPECT_EQ(eps.details.at("a"), "1e-05");
  EXPECT_EQ(eps.details.at("b"), "0.01");
  EXPECT_EQ(classify_attribute_change("Clip", "max", "6", "4").kind, "bounds-changed");
  EXPECT_EQ(classify_attribute_change("LeakyRelu", "alpha", "0.1", "0.2").kind,
            "attribute-changed");
  const auto op = classify_op_change("Relu", "LeakyRelu");
  EXPECT_EQ(op.kind, "op-replaced");
  EXPECT_EQ(op.details.at("op_b"), "LeakyRelu");
}

}  // namespace
}  // namespace deltann
