// The analysis thresholds, declared once for every verb that analyses a database. Findings'
// reproduce commands write them back (analysis_arguments in src/analysis/compare.cpp): a new
// option goes there too.
#pragma once

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "deltann/compare.h"

namespace deltann::cli {

inline void add_analysis_options(CLI::App* cmd, AnalysisOptions& o) {
  cmd->add_option("--near-tie", o.near_tie_gap,
                  "a flip is a near-tie when both relative top-2 gaps are below this")
      ->capture_default_str();
  cmd->add_option("--atol", o.atol, "absolute tolerance of the element-wise check")
      ->capture_default_str();
  cmd->add_option("--rtol", o.rtol, "relative tolerance of the element-wise check")
      ->capture_default_str();
  cmd->add_option("--confidence", o.confidence, "level of the intervals")
      ->check(CLI::Range(0.5, 0.9999))
      ->capture_default_str();
  cmd->add_option("--alpha", o.alpha,
                  "family-wise significance level of the timing tests (Holm over all pairs)")
      ->check(CLI::Range(1e-9, 0.5))
      ->capture_default_str();
  cmd->add_option("--max-cv", o.max_cv, "coefficient of variation above which timing is flagged")
      ->capture_default_str();
}

// How `run` and `compare` print a comparison: as JSON, streamed (bytes of names that are not UTF-8
// become U+FFFD instead of stopping the output), or as the terminal tables.
inline void print(const Comparison& comparison, bool json, const TerminalOptions& terminal = {}) {
  if (json) {
    write_json(comparison, std::cout);
    std::cout << '\n';
  } else {
    print_comparison(comparison, std::cout, terminal);
  }
}

}  // namespace deltann::cli
