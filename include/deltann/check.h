// `deltann check`: a pass/fail gate over a campaign database for CI. Every variant is compared
// with a baseline variant: its top-1 label difference rate must stay within a limit and,
// optionally, it must not be significantly slower than the baseline by more than a limit.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "deltann/compare.h"
#include "deltann/error.h"

namespace deltann {

class Store;
struct CampaignData;

struct CheckOptions {
  std::string baseline;                // environment text naming one stored variant
  double max_label_diff = 0;           // fraction of common images whose top-1 may differ
  std::optional<double> max_slowdown;  // fraction; nullopt: timing is not checked
  AnalysisOptions analysis;
};

enum class CheckOutcome { pass, fail, skip };
const char* outcome_name(CheckOutcome outcome);  // "PASS", "FAIL", "SKIP"

struct VariantVerdict {
  std::string env;
  VariantStatus status = VariantStatus::pending;  // the variant's status in the database
  CheckOutcome outcome = CheckOutcome::pass;
  int images = 0;  // images both it and the baseline have a result for
  int top1_differences = 0;
  std::optional<double> label_diff_rate =
      std::nullopt;  // top1_differences / images; nullopt without images
  // Its interval at the analysis' confidence: the limit fails only when the low end is above it.
  std::optional<stats::Interval> label_diff_ci = std::nullopt;
  // Timing oriented baseline → variant: median(variant) / median(baseline), so > 1 is slower.
  std::optional<double> speed_ratio = std::nullopt;
  std::optional<stats::Interval> speed_ratio_ci = std::nullopt;
  std::optional<double> p_value = std::nullopt;     // the pair's Mann-Whitney p
  std::optional<double> p_adjusted = std::nullopt;  // Holm-adjusted over the campaign's pairs
  bool significant = false;                         // decided on p_adjusted
  std::vector<std::string> reasons = {};  // why it failed or was skipped; empty when it passed
  std::vector<std::string> notes = {};    // what could not be checked, without failing
};

struct CheckVerdict {
  std::string baseline;  // canonical environment of the baseline variant
  VariantStatus baseline_status = VariantStatus::pending;  // its status in the database
  int baseline_images = 0;
  double max_label_diff = 0;
  std::optional<double> max_slowdown;
  std::vector<VariantVerdict> variants;  // every variant but the baseline, in database order
  std::vector<std::string> problems;     // failures of the check as a whole (baseline unusable)
  bool passed() const;
  int exit_code() const { return passed() ? 0 : 1; }
  int failed_count() const;
};

// Thrown when --baseline names no stored variant or several; the message lists the variants.
class BaselineError : public Error {
 public:
  using Error::Error;
};

// The one variant `query` names: a stored environment string verbatim, or any environment
// parse_environment accepts whose framework, qualifiers and given knobs equal the stored
// variant's (stored environments have every knob filled in, so unspecified knobs match any
// value). Throws BaselineError when nothing or more than one variant matches, and Error when the
// text does not parse.
const VariantSummary& find_baseline(const std::vector<VariantSummary>& variants,
                                    const std::string& query);

// The verdict for an analysed campaign. `failure_notes` (env → text) adds the recorded reason to
// the line of a failed variant.
CheckVerdict check_comparison(const Comparison& comparison, const CheckOptions& options,
                              const std::map<std::string, std::string>& failure_notes = {});
// Analyses the campaign (compare_variants) and checks it; a failed variant's line says its first
// recorded failure.
CheckVerdict run_check(const CampaignData& campaign, const CheckOptions& options);
CheckVerdict run_check(const Store& store, const CheckOptions& options);

// "0.5%" → 0.005, "0.005" → 0.005. A bare number above 1 is refused as ambiguous ("write 10%");
// throws Error saying what is wrong.
double parse_fraction(const std::string& text);

// One line per variant (PASS/FAIL/SKIP, the numbers, the reason) and a summary line.
void print_verdict(const CheckVerdict& verdict, std::ostream& out);
// JUnit XML: testsuite "deltann.check", one testcase per variant (and one for the baseline when
// it is unusable), <failure message="..."> or <skipped message="...">.
std::string junit_xml(const CheckVerdict& verdict);

}  // namespace deltann
