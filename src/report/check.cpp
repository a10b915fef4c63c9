// `deltann check`: compares every variant of a campaign with a baseline against limits and says
// PASS, FAIL or SKIP for each, as text and as JUnit XML.
#include "deltann/check.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "deltann/campaign_data.h"
#include "deltann/environment.h"
#include "deltann/store.h"
#include "deltann/text.h"

namespace deltann {
namespace {

// Rates are ratios of small integers; a limit typed as "0.5%" may land one ulp away from the rate
// it names, which must still pass.
constexpr double kSlack = 1e-12;

// 0.005 → "0.5%", 1 → "100%", 1/3 → "33.33%".
std::string percent(double fraction) {
  std::string text = format_double("%.2f", fraction * 100);
  if (text.find('.') != std::string::npos) {
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
  }
  return text + "%";
}

std::string fixed(double value, int digits) {
  return format_double(("%." + std::to_string(digits) + "f").c_str(), value);
}

std::string p_text(double p) { return format_double(p < 1e-3 ? "%.1e" : "%.3f", p); }

const PairSummary* find_pair(const Comparison& c, const std::string& x, const std::string& y,
                             bool& x_first) {
  for (const auto& p : c.pairs) {
    if (p.a == x && p.b == y) {
      x_first = true;
      return &p;
    }
    if (p.a == y && p.b == x) {
      x_first = false;
      return &p;
    }
  }
  return nullptr;
}

std::string variant_list(const std::vector<const VariantSummary*>& variants) {
  std::string text;
  for (const auto* v : variants)
    text += "\n  " + v->env + " (" + std::string(to_string(v->status)) + ")";
  return text;
}

bool matches(const Environment& query, const Environment& stored) {
  if (query.framework != stored.framework) return false;
  if (!query.version.empty() && query.version != stored.version) return false;
  if (!query.conversion.empty() && query.conversion != stored.conversion) return false;
  for (const auto& [key, value] : query.knobs)
    if (stored.knob(key, "\x01") != value) return false;
  return true;
}

// Text safe inside XML 1.0: markup escaped, characters XML forbids (most control characters) and
// bytes that are not UTF-8 replaced by '?'. In attributes, line ends become character references
// so that they survive attribute normalisation.
std::string xml_escape(const std::string& text, bool attribute) {
  return markup_escape(text, "?", attribute);
}

std::string interval_text(const stats::Interval& ci) {
  return "[" + percent(ci.low) + ", " + percent(ci.high) + "]";
}

// The label limit decides on the interval of the rate, as the slow-down limit does on the
// interval of the ratio: the variant fails when even the low end is above the limit (the rate
// over all such images is above it at the analysis' confidence). A rate above the limit whose
// interval reaches below it passes with a note: too few images to tell. A pair without an
// interval decides on its rate.
void check_label_limit(VariantVerdict& v, double limit, double confidence) {
  const double rate = *v.label_diff_rate;
  const stats::Interval ci = v.label_diff_ci.value_or(stats::Interval{rate, rate});
  const std::string level = percent(confidence) + " interval " + interval_text(ci);
  if (ci.low > limit + kSlack)
    v.reasons.push_back("top-1 labels differ on " + percent(rate) +
                        " of images, above the limit of " + percent(limit) + " (" + level + ")");
  else if (rate > limit + kSlack)
    v.notes.push_back("inconclusive: top-1 labels differ on " + percent(rate) +
                      " of images, above the limit of " + percent(limit) + ", but the " + level +
                      " reaches below it: " + std::to_string(v.images) +
                      (v.images == 1 ? " image is" : " images are") + " too few to tell");
}

std::string numbers_text(const VariantVerdict& v, const CheckVerdict& verdict) {
  std::string text;
  if (v.label_diff_rate)
    text = std::to_string(v.top1_differences) + "/" + std::to_string(v.images) +
           " top-1 labels differ (" + percent(*v.label_diff_rate) +
           (v.label_diff_ci ? " " + interval_text(*v.label_diff_ci) : "") + ", limit " +
           percent(verdict.max_label_diff) + ")";
  else
    text = "no image in common with the baseline";
  if (verdict.max_slowdown && v.speed_ratio) {
    text += "; time x" + fixed(*v.speed_ratio, 3);
    if (v.speed_ratio_ci)
      text +=
          " [" + fixed(v.speed_ratio_ci->low, 3) + ", " + fixed(v.speed_ratio_ci->high, 3) + "]";
    if (v.p_value) text += " p=" + p_text(*v.p_value);
    if (v.p_adjusted) text += " (adjusted " + p_text(*v.p_adjusted) + ")";
    text += std::string(v.significant ? " significant" : " not significant") + ", limit +" +
            percent(*verdict.max_slowdown);
  }
  return text;
}

std::string why(const VariantVerdict& v) {
  std::string text;
  for (const auto& r : v.reasons) text += (text.empty() ? "" : "; ") + r;
  return text;
}

}  // namespace

const char* outcome_name(CheckOutcome outcome) {
  switch (outcome) {
    case CheckOutcome::pass:
      return "PASS";
    case CheckOutcome::fail:
      return "FAIL";
    case CheckOutcome::skip:
      return "SKIP";
  }
  return "?";
}

bool CheckVerdict::passed() const { return problems.empty() && failed_count() == 0; }

int CheckVerdict::failed_count() const {
  int n = 0;
  for (const auto& v : variants) n += v.outcome == CheckOutcome::fail;
  return n;
}

double parse_fraction(const std::string& text) {
  std::string number = text;
  const bool percent_sign = !number.empty() && number.back() == '%';
  if (percent_sign) number.pop_back();
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || end != number.data() + number.size() ||
      !std::isfinite(value))
    throw Error("'" + text + "' is not a fraction (write e.g. 0.5% or 0.005)");
  if (value < 0) throw Error("'" + text + "' is negative");
  if (!percent_sign && value > 1)
    throw Error("'" + text + "' is ambiguous: a bare number is a fraction (0.1 = 10%); write " +
                text + "% for a percentage");
  return percent_sign ? value / 100 : value;
}

const VariantSummary& find_baseline(const std::vector<VariantSummary>& variants,
                                    const std::string& query) {
  std::vector<const VariantSummary*> found;
  for (const auto& v : variants)
    if (v.env == query) found.push_back(&v);
  if (found.empty()) {
    // A database of several models names its variants "<env> [model K]": the query may name the
    // model the same way, or leave it out (then it must match in one model only).
    const auto model_at = query.rfind(" [model ");
    const std::string model_suffix = model_at == std::string::npos ? "" : query.substr(model_at);
    Environment wanted;
    try {
      wanted = parse_environment(query.substr(0, model_at));
    } catch (const Error& e) {
      throw BaselineError(std::string("--baseline: ") + e.what());
    }
    for (const auto& v : variants) {
      try {
        const auto at = v.env.rfind(" [model ");
        const std::string env = v.env.substr(0, at);
        if (!model_suffix.empty() && (at == std::string::npos || v.env.substr(at) != model_suffix))
          continue;
        if (matches(wanted, parse_environment(env))) found.push_back(&v);
      } catch (const Error&) {
        // A stored environment this build cannot parse can only be named verbatim.
      }
    }
  }
  if (found.size() == 1) return *found.front();
  std::vector<const VariantSummary*> all;
  for (const auto& v : variants) all.push_back(&v);
  if (found.empty())
    throw BaselineError("baseline '" + query + "' matches no variant; the database has:" +
                        (all.empty() ? std::string("\n  (no variants)") : variant_list(all)));
  throw BaselineError("baseline '" + query + "' is ambiguous: it matches " +
                      std::to_string(found.size()) + " variants:" + variant_list(found) +
                      "\ngive more knobs or the full environment");
}

CheckVerdict check_comparison(const Comparison& c, const CheckOptions& options,
                              const std::map<std::string, std::string>& failure_notes) {
  const VariantSummary& base = find_baseline(c.variants, options.baseline);
  CheckVerdict verdict;
  verdict.baseline = base.env;
  verdict.baseline_status = base.status;
  verdict.baseline_images = base.images;
  verdict.max_label_diff = options.max_label_diff;
  verdict.max_slowdown = options.max_slowdown;
  const auto note_of = [&](const std::string& env) {
    const auto it = failure_notes.find(env);
    return it == failure_notes.end() ? std::string() : ": " + it->second;
  };
  if (base.status != VariantStatus::done)
    verdict.problems.push_back("the baseline " + base.env + " is " +
                               std::string(to_string(base.status)) + ", not done" +
                               note_of(base.env));
  else if (base.images == 0)
    verdict.problems.push_back("the baseline " + base.env + " has no results");

  for (const auto& v : c.variants) {
    if (&v == &base) continue;
    VariantVerdict out{.env = v.env, .status = v.status};
    if (v.model != base.model) {
      // Variants of another model differ by more than their environment: never compared.
      out.outcome = CheckOutcome::skip;
      out.reasons.push_back("not compared: it ran another model (model " + std::to_string(v.model) +
                            ") than the baseline (model " + std::to_string(base.model) + ")");
      verdict.variants.push_back(std::move(out));
      continue;
    }
    if (v.status == VariantStatus::skipped) {
      out.outcome = CheckOutcome::skip;
      out.reasons.push_back("not run: skipped when the campaign was planned" + note_of(v.env));
      verdict.variants.push_back(std::move(out));
      continue;
    }
    if (v.status == VariantStatus::failed)
      out.reasons.push_back("the variant failed (abandoned)" + note_of(v.env));
    else if (v.status != VariantStatus::done)
      out.reasons.push_back("incomplete: the variant is " + std::string(to_string(v.status)) +
                            " (the campaign did not finish)");
    else if (v.failures > 0)
      out.reasons.push_back(std::to_string(v.failures) + " image failure" +
                            (v.failures == 1 ? "" : "s") + " recorded" + note_of(v.env));

    bool base_first = true;
    const PairSummary* p = find_pair(c, base.env, v.env, base_first);
    if (!p || p->images == 0) {
      out.reasons.push_back("no image in common with the baseline");
    } else {
      out.images = p->images;
      out.top1_differences = p->top1_differences;
      out.label_diff_rate = p->top1_difference_rate();
      out.label_diff_ci = p->top1_difference_ci;
      check_label_limit(out, options.max_label_diff, options.analysis.confidence);
      // Pairs hold median(b) / median(a); turn that into median(variant) / median(baseline).
      if (p->speed_ratio) {
        out.speed_ratio = base_first ? *p->speed_ratio : 1.0 / *p->speed_ratio;
        if (p->speed_ratio_ci)
          out.speed_ratio_ci = base_first ? *p->speed_ratio_ci
                                          : stats::Interval{1.0 / p->speed_ratio_ci->high,
                                                            1.0 / p->speed_ratio_ci->low};
        out.p_value = p->p_value;
        out.p_adjusted = p->p_adjusted;
        out.significant = p->significant;
      }
      if (options.max_slowdown) {
        const double limit = 1 + *options.max_slowdown;
        if (!out.speed_ratio || !out.speed_ratio_ci) {
          out.notes.push_back("slow-down not checked: no timing comparison");
        } else if (out.significant && out.speed_ratio_ci->low > limit + kSlack) {
          out.reasons.push_back("significantly slower than the baseline: x" +
                                fixed(*out.speed_ratio, 3) + ", interval from x" +
                                fixed(out.speed_ratio_ci->low, 3) + ", above the limit of +" +
                                percent(*options.max_slowdown));
        }
      }
    }
    out.outcome = out.reasons.empty() ? CheckOutcome::pass : CheckOutcome::fail;
    verdict.variants.push_back(std::move(out));
  }
  return verdict;
}

CheckVerdict run_check(const CampaignData& campaign, const CheckOptions& options) {
  const Comparison comparison = compare_variants(campaign, options.analysis);
  // The first recorded failure of each variant, preferring one of the whole variant (load, plan)
  // over one of a single image, says why it failed.
  std::map<int64_t, std::string> name_of;
  for (const auto& v : campaign.variants) name_of[v.stored.id] = v.name;
  std::map<std::string, std::string> notes;
  std::map<std::string, bool> whole;
  for (const auto& f : campaign.failures) {
    const std::string& env = name_of[f.variant_id];
    const bool variant_level = !f.image_id.has_value();
    if (notes.count(env) && (whole[env] || !variant_level)) continue;
    std::string text = std::string(to_string(f.stage)) + " " + std::string(to_string(f.symptom)) +
                       ": " + f.message;
    if (text.size() > 300) text = text.substr(0, 297) + "...";
    notes[env] = text;
    whole[env] = variant_level;
  }
  return check_comparison(comparison, options, notes);
}

CheckVerdict run_check(const Store& store, const CheckOptions& options) {
  return run_check(load_campaign(store), options);
}

void print_verdict(const CheckVerdict& verdict, std::ostream& out) {
  out << "baseline " << verdict.baseline << " (" << to_string(verdict.baseline_status) << ", "
      << verdict.baseline_images
      << " images); limits: top-1 label differences <= " << percent(verdict.max_label_diff);
  if (verdict.max_slowdown) out << ", significant slow-down <= +" << percent(*verdict.max_slowdown);
  out << '\n';
  for (const auto& p : verdict.problems) out << "FAIL " << p << '\n';
  int passed = 0, skipped = 0;
  for (const auto& v : verdict.variants) {
    passed += v.outcome == CheckOutcome::pass;
    skipped += v.outcome == CheckOutcome::skip;
    out << outcome_name(v.outcome) << ' ' << v.env << ": ";
    if (v.outcome == CheckOutcome::skip) {
      out << why(v) << '\n';
      continue;
    }
    out << numbers_text(v, verdict);
    if (!v.reasons.empty()) out << " -- " << why(v);
    for (const auto& n : v.notes) out << " (" << n << ")";
    out << '\n';
  }
  const int failed = verdict.failed_count();
  out << (verdict.passed() ? "check passed: " : "check FAILED: ") << passed << " passed, " << failed
      << " failed, " << skipped << " skipped";
  if (!verdict.problems.empty()) out << "; the baseline is unusable";
  out << '\n';
}

std::string junit_xml(const CheckVerdict& verdict) {
  int failures = verdict.failed_count() + (verdict.problems.empty() ? 0 : 1), skipped = 0;
  for (const auto& v : verdict.variants) skipped += v.outcome == CheckOutcome::skip;
  const size_t tests = verdict.variants.size() + (verdict.problems.empty() ? 0 : 1);
  std::ostringstream x;
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<testsuite name=\"deltann.check\" tests=\"" << tests << "\" failures=\"" << failures
    << "\" errors=\"0\" skipped=\"" << skipped << "\">\n";
  x << "  <properties>\n"
    << "    <property name=\"baseline\" value=\"" << xml_escape(verdict.baseline, true) << "\"/>\n"
    << "    <property name=\"max_label_diff\" value=\"" << verdict.max_label_diff << "\"/>\n";
  if (verdict.max_slowdown)
    x << "    <property name=\"max_slowdown\" value=\"" << *verdict.max_slowdown << "\"/>\n";
  x << "  </properties>\n";
  if (!verdict.problems.empty()) {
    std::string text;
    for (const auto& p : verdict.problems) text += (text.empty() ? "" : "; ") + p;
    x << "  <testcase classname=\"deltann.check\" name=\"baseline "
      << xml_escape(verdict.baseline, true) << "\">\n"
      << "    <failure message=\"" << xml_escape(text, true) << "\">" << xml_escape(text, false)
      << "</failure>\n  </testcase>\n";
  }
  for (const auto& v : verdict.variants) {
    x << "  <testcase classname=\"deltann.check\" name=\"" << xml_escape(v.env, true) << "\">\n";
    const std::string numbers =
        v.outcome == CheckOutcome::skip ? std::string() : numbers_text(v, verdict);
    if (v.outcome == CheckOutcome::fail)
      x << "    <failure message=\"" << xml_escape(why(v), true) << "\">"
        << xml_escape(numbers, false) << "</failure>\n";
    else if (v.outcome == CheckOutcome::skip)
      x << "    <skipped message=\"" << xml_escape(why(v), true) << "\"/>\n";
    std::string out = numbers;
    for (const auto& n : v.notes) out += "\n" + n;
    if (!out.empty()) x << "    <system-out>" << xml_escape(out, false) << "</system-out>\n";
    x << "  </testcase>\n";
  }
  x << "</testsuite>\n";
  return x.str();
}

}  // namespace deltann
