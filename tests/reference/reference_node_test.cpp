// Runs the ONNX backend node tests (onnx/backend/test/data/node/<case>/: model.onnx and
// test_data_set_*/{input,output}_N.pb) through the float64 reference executor.
//
// A case whose model or run meets something the executor does not implement (an operator, an
// element type, an attribute form) throws Unsupported and is skipped as "not covered"; every other
// case must match the expected outputs. The expected outputs are mostly float32 computed by
// numpy, so the comparison allows float32-level error: |got - want| <= 1e-6 + 1e-5 |want|.
// At the end a table gives passed / failed / skipped per operator (the model's operator when it
// has one kind of node, "(composite)" otherwise).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "deltann/error.h"
#include "reference/reference.h"

namespace fs = std::filesystem;
using deltann::Error;
using deltann::Unsupported;
using namespace deltann::reference;

namespace {

const fs::path kNodeTests = DELTANN_ONNX_NODE_TESTS;

std::vector<std::string> node_cases() {
  std::vector<std::string> cases;
  std::error_code ec;
  if (kNodeTests.empty() || !fs::is_directory(kNodeTests, ec)) return cases;
  for (const auto& entry : fs::directory_iterator(kNodeTests, ec))
    if (fs::exists(entry.path() / "model.onnx", ec)) cases.push_back(entry.path().filename());
  std::sort(cases.begin(), cases.end());
  return cases;
}

struct Tally {
  int passed = 0, failed = 0, skipped = 0;
};
std::map<std::string, Tally>& tallies() {
  static std::map<std::string, Tally> t;
  return t;
}
std::vector<std::string>& failures() {
  static std::vector<std::string> f;
  return f;
}

// Prints the per-operator table after all tests ran (read by docs/REFERENCE.md's author).
class SummaryPrinter : public testing::Environment {
 public:
  void TearDown() override {
    if (tallies().empty()) return;
    std::cout << "\nONNX node tests through the reference executor (passed / failed / skipped):\n";
    Tally total;
    for (const auto& [op, t] : tallies()) {
      if (t.passed + t.failed == 0) continue;  // operators the executor does not implement
      std::cout << "  " << op << ": " << t.passed << " / " << t.failed << " / " << t.skipped
                << "\n";
    }
    for (const auto& [op, t] : tallies()) {
      total.passed += t.passed;
      total.failed += t.failed;
      total.skipped += t.skipped;
    }
    std::cout << "  all cases: " << total.passed << " / " << total.failed << " / " << total.skipped
              << "\n";
    for (const auto& f : failures()) std::cout << "  FAILED " << f << "\n";
  }
};
[[maybe_unused]] testing::Environment* const kSummary =
    testing::AddGlobalTestEnvironment(new SummaryPrinter);

std::vector<fs::path> numbered(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (int k = 0;; ++k) {
    const fs::path p = dir / (prefix + std::to_string(k) + ".pb");
    if (!fs::exists(p)) break;
    files.push_back(p);
  }
  return files;
}

// Cases whose expected outputs were written by hand with fewer digits than float32 holds: they
// are compared at the precision they were written with (docs/REFERENCE.md).
double absolute_tolerance(const std::string& name) {
  // Expected [[0.1511]], [[0.2841]], [[0.3572]]: four decimals of sum/9 (0.15105555...).
  if (name == "test_averagepool_2d_ceil_last_window_starts_on_pad") return 1e-4;
  return 1e-6;
}

// Empty when equal within tolerance, else a description of the first difference.
std::string compare(const Value& got, const Value& want, double atol) {
  if (got.shape != want.shape)
    return "shape " + shape_text_of(got.shape) + " instead of " + shape_text_of(want.shape);
  if (got.floating() != want.floating())
    return "type " + dtype_name(got.dtype) + " instead of " + dtype_name(want.dtype);
  if (!want.floating()) {
    for (size_t k = 0; k < want.i.size(); ++k)
      if (got.i[k] != want.i[k])
        return "element " + std::to_string(k) + " is " + std::to_string(got.i[k]) + " instead of " +
               std::to_string(want.i[k]);
    return "";
  }
  for (size_t k = 0; k < want.f.size(); ++k) {
    const double g = got.f[k], w = want.f[k];
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    if (!(std::fabs(g - w) <= atol + 1e-5 * std::fabs(w))) {
      std::ostringstream s;
      s.precision(9);
      s << "element " << k << " is " << g << " instead of " << w;
      return s.str();
    }
  }
  return "";
}

class NodeTest : public testing::TestWithParam<std::string> {};

TEST_P(NodeTest, MatchesExpectedOutputs) {
  const fs::path dir = kNodeTests / GetParam();
  // Tallied under the model's operator when it has one kind of node; a model refused at load is
  // "(not covered)".
  std::string op = "(not covered)";
  enum { kPass, kFail, kSkip } outcome = kPass;
  std::string why;
  try {
    const Model model = Model::load(dir / "model.onnx");
    const auto ops = model.op_types();
    op = ops.size() == 1 ? ops.front() : "(composite)";
    for (int set = 0;; ++set) {
      const fs::path data = dir / ("test_data_set_" + std::to_string(set));
      if (!fs::is_directory(data)) break;
      const auto inputs = numbered(data, "input_");
      const auto outputs = numbered(data, "output_");
      if (inputs.size() != model.inputs().size())
        throw Unsupported("the case feeds " + std::to_string(inputs.size()) +
                          " inputs to a model with " + std::to_string(model.inputs().size()));
      std::map<std::string, Value> feeds;
      for (size_t k = 0; k < inputs.size(); ++k)
        feeds[model.inputs()[k].name] = read_tensor_file(inputs[k]);
      const auto got = model.run(feeds);
      for (size_t k = 0; k < outputs.size() && k < got.size(); ++k) {
        const std::string diff =
            compare(got[k], read_tensor_file(outputs[k]), absolute_tolerance(GetParam()));
        if (!diff.empty()) {
          outcome = kFail;
          why = "data set " + std::to_string(set) + ", output " + std::to_string(k) + ": " + diff;
          break;
        }
      }
      if (outcome == kFail) break;
    }
  } catch (const Unsupported& e) {
    outcome = kSkip;
    why = e.what();
  } catch (const Error& e) {
    outcome = kFail;
    why = e.what();
  }
  Tally& t = tallies()[op];
  if (outcome == kPass) ++t.passed;
  if (outcome == kFail) {
    ++t.failed;
    failures().push_back(GetParam() + " [" + op + "]: " + why);
    FAIL() << why;
  }
  if (outcome == kSkip) {
    ++t.skipped;
    GTEST_SKIP() << "not covered: " << why;
  }
}

std::string case_name(const testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Onnx, NodeTest, testing::ValuesIn(node_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(NodeTest);

TEST(NodeTests, DataPresent) {
  if (node_cases().empty())
    GTEST_SKIP() << "no ONNX node tests at '" << kNodeTests.string()
                 << "' (the onnx wheel in the project venv lacks backend/test/data/node; set "
                    "DELTANN_ONNX_NODE_TESTS at configure time)";
}

}  // namespace
