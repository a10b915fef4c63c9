// Text that comes from files (image names, model layer names, engine messages) made safe for
// where deltann shows it: a terminal and a POSIX shell command line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace deltann {

// `text` with every character that a terminal would act on shown as an escape, so that a file
// named "\x1b]0;...\a.jpg" cannot retitle the window, move the cursor or hide the rest of a line:
// C0 controls (\n, \r, \t, \x01...), DEL (\x7f), C1 controls (\u009b, ...), the Unicode
// bidirectional overrides and isolates (\u202e, ...) that reorder what is shown, and each byte
// that is not part of valid UTF-8 (\xff). Everything else passes unchanged, valid UTF-8 (é, 字)
// and backslashes included, so that a printed shell command can still be pasted.
std::string terminal_safe(std::string_view text);

// The same for text of several lines: line ends ('\n') are kept, everything else escaped as above.
std::string terminal_safe_lines(std::string_view text);

// One word for a POSIX shell: as it is when it holds only characters no shell treats specially,
// else in single quotes (an inner ' becomes '\''), so that a printed command can be pasted.
std::string shell_quote(std::string_view word);

// Length of the valid UTF-8 sequence that starts at text[at]; 0 when the bytes there are not
// valid UTF-8 (a stray continuation byte, a truncated sequence, an overlong form, a surrogate, a
// value above U+10FFFF).
size_t utf8_sequence_length(std::string_view text, size_t at);

// Text safe inside HTML and XML 1.0, in element text and in quoted attribute values: & < > " and '
// as references (' as &#39;, which both read), carriage return as &#13; (a parser would turn it
// into a line feed), control characters that XML forbids and bytes that are not UTF-8 replaced
// by `replacement`. With `attribute`, tab and line feed become references too, so that they
// survive attribute-value normalisation. The HTML report and the JUnit XML of `check` use it.
std::string markup_escape(std::string_view text, std::string_view replacement,
                          bool attribute = false);

// The items with `separator` between them: joined({"a", "b"}, "+") is "a+b"; "" when empty.
std::string joined(const std::vector<std::string>& items, std::string_view separator = ", ");

// One double through a printf conversion ("%.3g", "%.2e", "%.1f%%"), as every table and message
// prints numbers. The format must convert exactly one double; the text is cut at 63 characters.
std::string format_double(const char* format, double value);

}  // namespace deltann
