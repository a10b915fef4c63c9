// Terminal and JSON forms of a Comparison.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "deltann/compare.h"
#include "deltann/summary_fields.h"
#include "deltann/text.h"

namespace deltann {
namespace {

constexpr size_t kUnusableShown = 20;

// Image names and engine messages come from files: keep control characters out of the terminal.
std::string printable(const std::string& text) { return terminal_safe(text); }

// The images no variant ran, with the reason, so that a smaller dataset is never taken silently.
void print_unusable(const Comparison& c, std::ostream& out) {
  if (c.unusable_images.empty()) return;
  out << '\n' << c.unusable_images.size() << " images unusable (no variant ran them)\n";
  size_t width = 6;
  for (size_t i = 0; i < c.unusable_images.size() && i < kUnusableShown; ++i)
    width = std::max(width, printable(c.unusable_images[i].key).size() + 2);
  out << ' ' << std::left << std::setw(static_cast<int>(width)) << "image"
      << "reason\n";
  for (size_t i = 0; i < c.unusable_images.size() && i < kUnusableShown; ++i) {
    const UnusableImage& u = c.unusable_images[i];
    out << ' ' << std::setw(static_cast<int>(width)) << printable(u.key) << printable(u.reason)
        << '\n';
  }
  out << std::right;
  if (c.unusable_images.size() > kUnusableShown)
    out << " (" << c.unusable_images.size() - kUnusableShown << " more in --json)\n";
}

}  // namespace

nlohmann::json to_json(const AnalysisOptions& o) {
  return {{"near_tie_gap", o.near_tie_gap}, {"atol", o.atol},   {"rtol", o.rtol},
          {"confidence", o.confidence},     {"alpha", o.alpha}, {"max_cv", o.max_cv},
          {"min_slowdown", o.min_slowdown}};
}

nlohmann::json to_json(const Finding& f) {
  return {{"kind", std::string(to_string(f.kind))},
          {"severity", f.severity},
          {"title", f.title},
          {"evidence", f.evidence},
          {"variants", f.variants},
          {"images", f.images},
          {"reproduce", f.reproduce}};
}

namespace {

// The parts of a comparison's JSON, one function per element, so that the whole document
// (to_json) and the streamed one (write_json) are built from the same code.
nlohmann::json model_json(const ModelSummary& m, size_t number) {
  return {{"model", number},
          {"path", m.path},
          {"sha256", m.sha256},
          {"spec_source", m.spec_source},
          {"flops", m.flops ? nlohmann::json(*m.flops) : nullptr},
          {"on_disk", m.on_disk}};
}

nlohmann::json unusable_json(const UnusableImage& u) {
  return {{"key", u.key}, {"path", u.path}, {"reason", u.reason}};
}

nlohmann::json variant_json(const VariantSummary& v) {
  return fields_json<nlohmann::json>(variant_fields(), v);
}

nlohmann::json pair_json(const PairSummary& p) {
  return fields_json<nlohmann::json>(pair_fields(), p);
}

nlohmann::json shift_json(const ShiftSummary& s) {
  return fields_json<nlohmann::json>(shift_fields(), s);
}

template <typename T, typename ToJson>
nlohmann::json json_array(const std::vector<T>& items, ToJson element) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& item : items) array.push_back(element(item));
  return array;
}

nlohmann::json models_json(const Comparison& c) {
  nlohmann::json models = nlohmann::json::array();
  for (size_t i = 0; i < c.models.size(); ++i) models.push_back(model_json(c.models[i], i + 1));
  return models;
}

// Every member of the document but the five arrays that grow with the campaign.
nlohmann::json small_members(const Comparison& c) {
  return {{"schema", "deltann.compare"},
          {"schema_version", 3},
          {"meta", c.meta},
          {"warnings", c.warnings},
          {"models", models_json(c)},
          {"options", to_json(c.options)},
          {"labelled_images", c.labelled_images}};
}

// `value` as dump(2) prints it when it sits `depth` levels deep in a document: every line after
// the first moves right by two spaces per level. A raw line break occurs only between tokens
// (dump escapes those in strings), so the indent goes after each one.
void write_indented(std::ostream& out, const nlohmann::json& value, int depth) {
  const std::string text = value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string indent(static_cast<size_t>(2 * depth), ' ');
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    out.write(text.data() + start, static_cast<std::streamsize>(end + 1 - start));
    out << indent;
  }
  out.write(text.data() + start, static_cast<std::streamsize>(text.size() - start));
}

// A member array of the top-level object, one element in memory at a time.
template <typename T, typename ToJson>
void write_array(std::ostream& out, const std::vector<T>& items, ToJson element) {
  if (items.empty()) {
    out << "[]";
    return;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    out << (i == 0 ? "[\n    " : ",\n    ");
    write_indented(out, element(items[i]), 2);
  }
  out << "\n  ]";
}

}  // namespace

nlohmann::json to_json(const Comparison& c) {
  nlohmann::json j = small_members(c);
  j["unusable_images"] = json_array(c.unusable_images, unusable_json);
  j["variants"] = json_array(c.variants, variant_json);
  j["pairs"] = json_array(c.pairs, pair_json);
  j["shifts"] = json_array(c.shifts, shift_json);
  j["findings"] = json_array(c.findings, [](const Finding& f) { return to_json(f); });
  return j;
}

void write_json(const Comparison& c, std::ostream& out) {
  const nlohmann::json small = small_members(c);
  // The streamed arrays by name; with the small members they make the keys of to_json(c), which
  // nlohmann::json prints in alphabetical order, and so does this.
  const std::map<std::string, std::function<void()>> arrays = {
      {"unusable_images", [&] { write_array(out, c.unusable_images, unusable_json); }},
      {"variants", [&] { write_array(out, c.variants, variant_json); }},
      {"pairs", [&] { write_array(out, c.pairs, pair_json); }},
      {"shifts", [&] { write_array(out, c.shifts, shift_json); }},
      {"findings",
       [&] { write_array(out, c.findings, [](const Finding& f) { return to_json(f); }); }}};
  std::map<std::string, const nlohmann::json*> members;
  for (const auto& [key, value] : small.items()) members[key] = &value;
  for (const auto& [key, _] : arrays) members[key] = nullptr;
  out << '{';
  bool first = true;
  for (const auto& [key, value] : members) {
    out << (first ? "\n  " : ",\n  ") << nlohmann::json(key).dump() << ": ";
    first = false;
    if (value)
      write_indented(out, *value, 1);
    else
      arrays.at(key)();
  }
  out << "\n}";
}

// ---- the terminal form: findings first, then what each axis changed, the worst pairs and the
// variants; every line fits TerminalOptions::width columns whatever the campaign's size (only a
// single word longer than the width, such as a long path, can exceed it). --json holds the rest.

namespace {

constexpr size_t kPairsShown = 15;
constexpr size_t kFindingsShown = 10;
constexpr size_t kShiftsShown = 20;

// Columns a text takes on a terminal: one per character (UTF-8 continuation bytes take none).
size_t columns(std::string_view text) {
  size_t n = 0;
  for (const char ch : text) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return n;
}

// The text cut to `width` columns, ending in "..." when cut.
std::string clipped(const std::string& text, size_t width) {
  if (columns(text) <= width) return text;
  std::string out;
  size_t n = 0;
  for (const char ch : text) {
    const bool starts = (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    if (starts && ++n > width - 3) break;
    out += ch;
  }
  return out + "...";
}

std::string padded(const std::string& text, size_t width, bool right) {
  const size_t n = columns(text);
  if (n >= width) return text;
  return right ? std::string(width - n, ' ') + text : text + std::string(width - n, ' ');
}

// Words of a shell command: runs of text between spaces outside single quotes, so that a quoted
// argument holding spaces stays whole.
std::vector<std::string> shell_words(const std::string& command) {
  std::vector<std::string> words(1);
  bool quoted = false;
  for (const char ch : command) {
    if (ch == '\'') quoted = !quoted;
    if (ch == ' ' && !quoted) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    words.back() += ch;
  }
  if (words.back().empty()) words.pop_back();
  return words;
}

// Writes `words` filling lines of `width` columns; every line starts with `indent`, and each
// line but the last ends with `tail` (" \\" keeps a shell command pasteable).
void fill(std::ostream& out, const std::vector<std::string>& words, const std::string& first,
          const std::string& indent, size_t width, const std::string& tail = "") {
  std::string line = first;
  bool empty = true;
  for (const auto& word : words) {
    if (!empty && columns(line) + 1 + columns(word) + columns(tail) > width) {
      out << line << tail << '\n';
      line = indent;
      empty = true;
    } else if (empty && columns(first) > columns(indent) && line == first &&
               columns(line) + columns(word) > width) {
      // A long first word goes under the label instead of past the edge.
      const size_t end = line.find_last_not_of(' ');
      out << line.substr(0, end == std::string::npos ? 0 : end + 1) << '\n';
      line = indent;
    }
    line += (empty ? "" : " ") + word;
    empty = false;
  }
  out << line << '\n';
}

// Prose filled into lines of `width` columns, at most `max_lines` of them (the last then ends in
// "..."); a word longer than a line is cut, since prose, unlike a command, need not stay whole.
void wrap(std::ostream& out, const std::string& text, const std::string& first,
          const std::string& indent, size_t width, size_t max_lines = SIZE_MAX) {
  std::ostringstream filled;
  std::istringstream paragraphs(text);
  std::string paragraph;
  bool leading = true;
  while (std::getline(paragraphs, paragraph)) {
    std::istringstream in(paragraph);
    std::vector<std::string> words;
    for (std::string word; in >> word;) words.push_back(word);
    fill(filled, words, leading ? first : indent, indent, width);
    leading = false;
  }
  if (leading) filled << first << '\n';
  std::istringstream lines(filled.str());
  size_t n = 0;
  for (std::string line; std::getline(lines, line); ++n) {
    if (n + 1 == max_lines && lines.peek() != EOF) {
      out << clipped(line + " ...", width) << '\n';
      return;
    }
    out << clipped(line, width) << '\n';
  }
}

// A column of a terminal table, as wide as its longest cell; field_column fills one from a field
// of the field table (its heading, its format). print_table drops columns from the end until the
// table fits the width.
struct Column {
  std::string heading;
  bool right = true;
  std::vector<std::string> cells;
  size_t width() const {
    size_t w = columns(heading);
    for (const auto& cell : cells) w = std::max(w, columns(cell));
    return w;
  }
};

// A rate's cells carry its interval ("3.1% [1.2–6.5]") unless `interval` is false, where the
// line has no room for it.
template <typename Row>
Column field_column(const Field<Row>& field, const std::vector<const Row*>& rows,
                    bool interval = true) {
  Column column{field.heading, field.format != FieldFormat::text, {}};
  for (const Row* row : rows)
    column.cells.push_back(interval ? format_with_interval(field, *row)
                                    : format_value(field.format, field.value(*row)));
  return column;
}

void print_table(std::ostream& out, std::vector<Column> table, size_t width) {
  const auto total = [&] {
    size_t sum = 0;
    for (const auto& column : table) sum += column.width() + 2;
    return sum;
  };
  while (table.size() > 2 && total() > width) table.pop_back();
  std::vector<size_t> widths;
  for (const auto& column : table) widths.push_back(column.width());
  std::string line;
  for (size_t k = 0; k < table.size(); ++k)
    line += (k ? "  " : "") + padded(table[k].heading, widths[k], table[k].right);
  const auto print_line = [&out](const std::string& text) {
    out << ' ' << text.substr(0, text.find_last_not_of(' ') + 1) << '\n';
  };
  print_line(line);
  const size_t rows = table.empty() ? 0 : table.front().cells.size();
  for (size_t r = 0; r < rows; ++r) {
    line.clear();
    for (size_t k = 0; k < table.size(); ++k)
      line += (k ? "  " : "") + padded(table[k].cells[r], widths[k], table[k].right);
    print_line(line);
  }
}

void print_findings(const Comparison& c, std::ostream& out, size_t width) {
  out << "\nFindings (" << c.findings.size() << ", most severe first)\n";
  if (c.findings.empty()) out << " none\n";
  for (size_t i = 0; i < c.findings.size() && i < kFindingsShown; ++i) {
    const Finding& f = c.findings[i];
    wrap(out, printable(f.title), " [" + std::string(to_string(f.kind)) + "] ", "     ", width);
    if (!f.evidence.empty()) wrap(out, printable(f.evidence), "     ", "     ", width, 3);
    if (!f.reproduce.empty())
      fill(out, shell_words(printable(f.reproduce)), "     reproduce: ", "       ", width, " \\");
  }
  if (c.findings.size() > kFindingsShown)
    out << " (" << c.findings.size() - kFindingsShown << " more findings in --json)\n";
}

// Per axis: how many pairs, how many change a label, the worst of them, the largest output
// difference and the significant timing differences.
void print_axes(const Comparison& c, std::ostream& out, size_t width) {
  if (c.pairs.empty()) return;
  struct Axis {
    int pairs = 0, differing = 0, slower = 0, faster = 0;
    double worst_rate = 0;
    std::optional<double> max_d;
  };
  std::map<std::string, Axis> axes;
  for (const auto& p : c.pairs) {
    Axis& a = axes[p.axis.empty() ? "unclassified" : p.axis];
    ++a.pairs;
    a.differing += p.top1_differences > 0;
    a.worst_rate = std::max(a.worst_rate, p.top1_difference_rate());
    if (p.max_abs_diff) a.max_d = std::max(a.max_d.value_or(0), *p.max_abs_diff);
    if (p.significant && p.speed_ratio) (*p.speed_ratio > 1 ? a.slower : a.faster) += 1;
  }
  out << "\nBy axis (what differs between the two variants of a pair)\n";
  std::vector<std::string> names;
  for (const auto& [name, _] : axes) names.push_back(name);
  std::vector<std::vector<std::string>> rows;
  for (const auto& name : names) {
    const Axis& a = axes.at(name);
    rows.push_back({name, std::to_string(a.pairs), std::to_string(a.differing),
                    format_value(FieldFormat::percent, a.worst_rate),
                    a.max_d ? format_value(FieldFormat::scientific, *a.max_d) : "-",
                    std::to_string(a.slower), std::to_string(a.faster)});
  }
  std::vector<Column> table = {{"axis", false, {}},       {"pairs", true, {}},
                               {"label diffs", true, {}}, {"worst top-1", true, {}},
                               {"max |d|", true, {}},     {"sig. slower", true, {}},
                               {"sig. faster", true, {}}};
  for (const auto& row : rows)
    for (size_t k = 0; k < row.size(); ++k) table[k].cells.push_back(clipped(row[k], 30));
  print_table(out, table, width);
  out << " label diffs = pairs with top-1 differences; sig. = significant speed ratio (b vs a)\n";
}

void print_worst_pairs(const Comparison& c, const std::map<std::string, size_t>& index,
                       std::ostream& out, size_t width) {
  // Most different first: label flips, then top-5 disagreement, then the largest output gap.
  std::vector<const PairSummary*> ranked;
  for (const auto& p : c.pairs) ranked.push_back(&p);
  std::stable_sort(ranked.begin(), ranked.end(), [](const PairSummary* x, const PairSummary* y) {
    if (x->top1_differences != y->top1_differences)
      return x->top1_differences > y->top1_differences;
    if (x->top5_overlap != y->top5_overlap) return x->top5_overlap < y->top5_overlap;
    return x->max_abs_diff.value_or(0) > y->max_abs_diff.value_or(0);
  });
  ranked.resize(std::min(ranked.size(), kPairsShown));
  if (ranked.empty()) return;
  out << "\nPairs, most different first (variants numbered as below; speed = median b / a)\n";
  std::vector<Column> table;
  Column pair{"pair", false, {}};
  for (const PairSummary* p : ranked)
    pair.cells.push_back(std::to_string(index.at(p->a)) + "-" + std::to_string(index.at(p->b)));
  table.push_back(pair);
  // The top-1 rate with its interval; the top-5 rate's interval (in --json) would leave the
  // differing images no room.
  for (const char* name : {"axis", "top1_difference_rate", "confident_flips",
                           "top5_difference_rate", "max_abs_diff", "speed_ratio", "p_adjusted"})
    table.push_back(
        field_column(pair_field(name), ranked, std::string_view(name) != "top5_difference_rate"));
  table[1].right = false;
  for (size_t r = 0; r < ranked.size(); ++r) {
    table[1].cells[r] = clipped(table[1].cells[r], 12);
    if (ranked[r]->significant) table[6].cells[r] += "*";
  }
  // The differing images take what is left of the line.
  size_t used = 1;
  for (const auto& column : table) used += column.width() + 2;
  // Its own two columns of separation count too, or the column would not fit and be dropped.
  const size_t left = width > used + 12 ? width - used - 2 : 10;
  Column images{"differing images", false, {}};
  for (const PairSummary* p : ranked) {
    std::string text;
    for (const auto& key : p->differing_images) text += (text.empty() ? "" : ", ") + printable(key);
    images.cells.push_back(clipped(text, left));
  }
  table.push_back(images);
  print_table(out, table, width);
  if (c.pairs.size() > ranked.size())
    out << " (" << c.pairs.size() - ranked.size() << " more pairs in --json)\n";
  std::ostringstream significance;
  significance << "conf = confident flips (not near-ties); * = significant: p adj. < "
               << c.options.alpha << " and the ratio's interval excludes 1";
  wrap(out, significance.str(), " ", " ", width);
  wrap(out,
       "p adj. = Mann-Whitney p adjusted by Holm's method over the " +
           std::to_string(c.timing_tests()) + " timing tests",
       " ", " ", width);
}

// The pairs' top-1 differences by transform and by severity, for a campaign over an expanded set:
// only the rows with a difference (a shift where two variants always agree says nothing new), at
// most kShiftsShown of them; the count of what is left out is printed, and --json has every row.
void print_shifts(const Comparison& c, const std::map<std::string, size_t>& index,
                  std::ostream& out, size_t width) {
  if (c.shifts.empty()) return;
  std::vector<const ShiftSummary*> differing;
  for (const auto& s : c.shifts)
    if (s.top1_differences > 0) differing.push_back(&s);
  out << "\nTop-1 differences by transform and severity (expanded set; variants numbered as "
         "below)\n";
  if (differing.empty()) {
    out << " none: every pair agrees on every transform and severity\n";
    return;
  }
  const size_t shown = std::min(differing.size(), kShiftsShown);
  const std::vector<const ShiftSummary*> rows(differing.begin(),
                                              differing.begin() + static_cast<ptrdiff_t>(shown));
  std::vector<Column> table;
  Column pair{"pair", false, {}};
  for (const ShiftSummary* s : rows)
    pair.cells.push_back(std::to_string(index.at(s->a)) + "-" + std::to_string(index.at(s->b)));
  table.push_back(pair);
  for (const char* name : {"by", "shift", "top1_differences", "images", "top1_difference_rate"})
    table.push_back(field_column(shift_field(name), rows));
  print_table(out, table, width);
  wrap(out,
       "(" + std::to_string(c.shifts.size() - differing.size()) + " of " +
           std::to_string(c.shifts.size()) + " pair x shift rows without a difference not shown" +
           (differing.size() > shown
                ? "; " + std::to_string(differing.size() - shown) + " more with differences"
                : std::string()) +
           "; all in --json and deltann export --table shifts)",
       " ", " ", width);
}

// The pairs whose device identities differ, and how: a label or timing difference between them
// may be the hardware's. At most kPairsShown; --json has every pair's `device_differences`.
void print_device_differences(const Comparison& c, const std::map<std::string, size_t>& index,
                              std::ostream& out, size_t width) {
  std::vector<const PairSummary*> rows;
  for (const auto& p : c.pairs)
    if (!p.device_differences.empty()) rows.push_back(&p);
  if (rows.empty()) return;
  out << "\nPairs on different hardware (variants numbered as below)\n";
  for (size_t r = 0; r < rows.size() && r < kPairsShown; ++r) {
    const PairSummary& p = *rows[r];
    const std::string label =
        " " + std::to_string(index.at(p.a)) + "-" + std::to_string(index.at(p.b)) + "  ";
    wrap(out, printable(joined(p.device_differences, "; ")), label,
         std::string(columns(label), ' '), width, 2);
  }
  if (rows.size() > kPairsShown)
    out << " (" << rows.size() - kPairsShown << " more pairs in --json)\n";
}

void print_variants(const Comparison& c, std::ostream& out, size_t width) {
  out << "\nVariants (" << c.labelled_images << " labelled images)\n";
  const size_t number_width = std::to_string(c.variants.size()).size() + 1;
  for (size_t i = 0; i < c.variants.size(); ++i) {
    out << ' ' << padded("#" + std::to_string(i + 1), number_width, true) << "  "
        << clipped(printable(c.variants[i].env), width - number_width - 3) << '\n';
    // Its device identity under it (docs/ENVIRONMENTS.md, "Hardware"); --json has every part.
    const DeviceIdentity& device = c.variants[i].device;
    const std::string indent(number_width + 3, ' ');
    out << clipped(indent + "on " + printable(device.summary()), width) << '\n';
    if (!device.note.empty()) out << clipped(indent + printable(device.note), width) << '\n';
  }
  std::vector<const VariantSummary*> rows;
  for (const auto& v : c.variants) rows.push_back(&v);
  std::vector<Column> table;
  Column number{"#", true, {}};
  for (size_t i = 0; i < rows.size(); ++i) number.cells.push_back("#" + std::to_string(i + 1));
  table.push_back(number);
  const bool compiled = std::any_of(
      rows.begin(), rows.end(), [](const VariantSummary* v) { return v->compile_ms.has_value(); });
  // Only a campaign that timed a sample of its images says how many (docs/ANALYSIS.md).
  const bool sampled = std::any_of(rows.begin(), rows.end(), [](const VariantSummary* v) {
    return v->timed_images > 0 && v->timed_images < v->images;
  });
  // In the order in which they give way when the terminal is narrow (last first).
  for (const char* name : {"status", "images", "failures", "top1_accuracy", "top5_accuracy",
                           "median_ms", "p90_ms", "timed_images", "cv", "gflops", "peak_share",
                           "load_ms", "first_inference_ms", "compile_ms"})
    if ((std::string_view(name) != "compile_ms" || compiled) &&
        (std::string_view(name) != "timed_images" || sampled))
      table.push_back(field_column(variant_field(name), rows));
  table[1].right = false;
  out << '\n';
  print_table(out, table, width);
}

// The full matrix of top-1 differences, row vs column: differing images / images both ran.
void print_matrix(const Comparison& c, std::ostream& out) {
  std::map<std::pair<std::string, std::string>, const PairSummary*> by_pair;
  for (const auto& p : c.pairs) by_pair[{p.a, p.b}] = &p;
  const size_t n = c.variants.size();
  std::vector<std::vector<std::string>> cells(n, std::vector<std::string>(n));
  size_t cell = std::to_string(n).size() + 1;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      const PairSummary* p = nullptr;
      if (auto it = by_pair.find({c.variants[std::min(i, j)].env, c.variants[std::max(i, j)].env});
          it != by_pair.end())
        p = it->second;
      cells[i][j] = i == j ? "-"
                    : p    ? std::to_string(p->top1_differences) + "/" + std::to_string(p->images)
                           : ".";
      cell = std::max(cell, cells[i][j].size() + 1);
    }
  const int w = static_cast<int>(std::max<size_t>(cell, 5));
  out << "\nTop-1 label differences (row vs column: differing images / images both ran)\n     ";
  for (size_t j = 0; j < n; ++j) out << std::setw(w) << (j + 1);
  out << '\n';
  for (size_t i = 0; i < n; ++i) {
    out << std::setw(4) << (i + 1) << ' ';
    for (size_t j = 0; j < n; ++j) out << std::setw(w) << cells[i][j];
    out << '\n';
  }
}

size_t matrix_width(const Comparison& c) {
  size_t cell = 5;
  for (const auto& p : c.pairs)
    cell = std::max(
        cell, std::to_string(p.top1_differences).size() + std::to_string(p.images).size() + 2);
  return 5 + cell * c.variants.size();
}

}  // namespace

void print_comparison(const Comparison& c, std::ostream& out, const TerminalOptions& options) {
  const size_t width = static_cast<size_t>(std::max(options.width, 60));
  for (const auto& w : c.warnings) wrap(out, printable(w), "warning: ", "         ", width);
  // Which model each variant ran, whenever that is not simply "the one model, as it is now".
  if (c.models.size() > 1 || !c.warnings.empty()) {
    out << "Models (variants are compared only with variants of the same model)\n";
    for (size_t i = 0; i < c.models.size(); ++i) {
      const ModelSummary& m = c.models[i];
      out << " model " << (i + 1) << ": " << printable(m.path)
          << (m.on_disk == "unchanged" ? "" : "  [file " + m.on_disk + " since]") << '\n';
      wrap(out, "sha256 " + m.sha256.substr(0, 12) + "...  spec: " + printable(m.spec_source),
           "   ", "   ", width);
    }
    out << '\n';
  }
  const auto spec = c.meta.find("spec_source");
  wrap(out,
       spec == c.meta.end() ? "not recorded (a campaign of an older deltann)"
                            : printable(spec->second),
       "Model spec: ", "  ", width);
  out << c.variants.size() << " variants, " << c.pairs.size() << " pairs, " << c.labelled_images
      << " labelled images\n";
  print_findings(c, out, width);
  print_axes(c, out, width);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < c.variants.size(); ++i) index[c.variants[i].env] = i + 1;
  print_worst_pairs(c, index, out, width);
  print_shifts(c, index, out, width);
  print_device_differences(c, index, out, width);
  print_variants(c, out, width);
  print_unusable(c, out);
  if (c.variants.size() < 2) return;
  if (options.matrix || matrix_width(c) <= width)
    print_matrix(c, out);
  else
    out << "\n(the " << c.variants.size() << " x " << c.variants.size()
        << " matrix of top-1 differences: --matrix, or deltann report)\n";
}

}  // namespace deltann
