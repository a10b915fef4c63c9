// Text from files made safe for the terminal and the shell (text.h).
#include "deltann/text.h"

#include <gtest/gtest.h>

#include <string>

namespace deltann {
namespace {

TEST(TerminalSafe, ControlCharactersAreShownEscaped) {
  EXPECT_EQ(terminal_safe("plain name.jpg"), "plain name.jpg");
  // An escape sequence that would clear the screen, and one that would retitle the window.
  EXPECT_EQ(terminal_safe("a\x1b[2Jb.jpg"), "a\\x1b[2Jb.jpg");
  EXPECT_EQ(terminal_safe("\x1b]0;owned\a"), "\\x1b]0;owned\\x07");
  EXPECT_EQ(terminal_safe("two\nlines\r\tx"), "two\\nlines\\r\\tx");
  EXPECT_EQ(terminal_safe(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(terminal_safe("del\x7f"), "del\\x7f");
}

TEST(TerminalSafe, C1ControlsAndBidiOverridesAreEscaped) {
  EXPECT_EQ(terminal_safe("csi\xc2\x9b"
                          "2J"),
            "csi\\u009b2J");  // U+009B, the 8-bit CSI
  EXPECT_EQ(terminal_safe("gpj.\xe2\x80\xae"
                          "exe"),
            "gpj.\\u202eexe");  // right-to-left override
  EXPECT_EQ(terminal_safe("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u2066x\\u2069");  // isolates
}

TEST(TerminalSafe, InvalidUtf8BytesAreEscapedAndValidUtf8Kept) {
  EXPECT_EQ(terminal_safe("caf\xc3\xa9 \xe5\xad\x97 \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe5\xad\x97 \xf0\x9f\x98\x80");
  EXPECT_EQ(terminal_safe("latin1 caf\xe9.jpg"), "latin1 caf\\xe9.jpg");
  EXPECT_EQ(terminal_safe("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(terminal_safe("trunc\xe5\xad"), "trunc\\xe5\\xad");
  EXPECT_EQ(terminal_safe("\xc0\x9b"), "\\xc0\\x9b");                    // overlong form of ESC
  EXPECT_EQ(terminal_safe("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // a surrogate
  EXPECT_EQ(terminal_safe("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(terminal_safe("back\\slash"), "back\\slash");  // a pasted command keeps working
}

TEST(TerminalSafe, LinesKeepTheirEnds) {
  EXPECT_EQ(terminal_safe_lines("row 1\nrow\x1b[31m 2\n"), "row 1\nrow\\x1b[31m 2\n");
  EXPECT_EQ(terminal_safe_lines("cr\r\n"), "cr\\r\n");
}

TEST(ShellQuote, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(shell_quote("ort:opt=all,threads=1"), "ort:opt=all,threads=1");
  EXPECT_EQ(shell_quote("/data/list.txt"), "/data/list.txt");
  EXPECT_EQ(shell_quote("tflite@onnx>tflite"), "'tflite@onnx>tflite'");
  EXPECT_EQ(shell_quote("my images"), "'my images'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
  EXPECT_EQ(shell_quote(""), "''");
}

TEST(Utf8SequenceLength, ValidAndInvalidSequences) {
  EXPECT_EQ(utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(utf8_sequence_length("\xc3\xa9", 0), 2u);          // é
  EXPECT_EQ(utf8_sequence_length("\xe5\xad\x97", 0), 3u);      // 字
  EXPECT_EQ(utf8_sequence_length("\xf0\x9f\x98\x80", 0), 4u);  // U+1F600
  EXPECT_EQ(utf8_sequence_length("x\xc3\xa9", 1), 2u);
  EXPECT_EQ(utf8_sequence_length("\x80", 0), 0u);              // a stray continuation byte
  EXPECT_EQ(utf8_sequence_length("\xc3", 0), 0u);              // truncated
  EXPECT_EQ(utf8_sequence_length("\xc0\xaf", 0), 0u);          // overlong '/'
  EXPECT_EQ(utf8_sequence_length("\xed\xa0\x80", 0), 0u);      // a surrogate
  EXPECT_EQ(utf8_sequence_length("\xf4\x90\x80\x80", 0), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xf8\x80\x80", 0), 0u);      // no such lead byte
}

TEST(Joined, SeparatesItems) {
  EXPECT_EQ(joined({"a", "b", "c"}, "+"), "a+b+c");
  EXPECT_EQ(joined({"onnx", "tflite"}), "onnx, tflite");
  EXPECT_EQ(joined({"one"}, "+"), "one");
  EXPECT_EQ(joined({}, "+"), "");
}

TEST(FormatDouble, OneDoubleThroughPrintf) {
  EXPECT_EQ(format_double("%.3g", 0.123456), "0.123");
  EXPECT_EQ(format_double("%.2e", 12345.0), "1.23e+04");
  EXPECT_EQ(format_double("%.1f%%", 42.25), "42.2%");
  EXPECT_EQ(format_double("%.0fx", 250.0), "250x");
  EXPECT_EQ(format_double("%.2e", 1e300).size(), 9u);
}

TEST(MarkupEscape, EscapesMarkupAndReplacesWhatMarkupCannotHold) {
  EXPECT_EQ(markup_escape("<b a=\"x\">'&'</b>", "?"),
            "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;");
  // Line ends and tabs stay in text; in attributes they become references.
  EXPECT_EQ(markup_escape("a\nb\tc\rd", "?"), "a\nb\tc&#13;d");
  EXPECT_EQ(markup_escape("a\nb\tc", "?", /*attribute=*/true), "a&#10;b&#9;c");
  // Control characters and bytes that are not UTF-8 become the replacement; UTF-8 is kept.
  EXPECT_EQ(markup_escape("x\x01\x7fy", "\xEF\xBF\xBD"), "x\xEF\xBF\xBD\xEF\xBF\xBDy");
  EXPECT_EQ(markup_escape("caf\xC3\xA9 \xff\xC3", "?"), "caf\xC3\xA9 ??");
}

}  // namespace
}  // namespace deltann
