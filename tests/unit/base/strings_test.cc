#include "base/strings.h"

#include <gtest/gtest.h>

#include <string>

namespace moat {
namespace {

TEST(QuoteValue, ShortValuesAreQuotedWhole) {
  EXPECT_EQ(quote_value("eth0"), "\"eth0\"");
  EXPECT_EQ(quote_value(""), "\"\"");
  EXPECT_EQ(quote_value("a\"b\\c"), "\"a\\\"b\\\\c\"");
}

TEST(QuoteValue, ControlCharactersAndHighBytesAreEscaped) {
  EXPECT_EQ(quote_value("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
  EXPECT_EQ(quote_value(std::string_view("x\0y", 3)), "\"x\\x00y\"");
  EXPECT_EQ(quote_value("\x1b[31m\x7f\xff"), "\"\\x1b[31m\\x7f\\xff\"");
  EXPECT_EQ(quote_value("b\xc3\xbc" "cher"), "\"b\xc3\xbc" "cher\"");      // UTF-8 as written
  EXPECT_EQ(quote_value("\xc3(\xed\xa0\x80"), "\"\\xc3(\\xed\\xa0\\x80\"");  // broken, surrogate
  EXPECT_EQ(quote_value("ab\xc3\xbc", 3), "\"ab\"\xe2\x80\xa6 (4 bytes)");  // not cut mid-character
}

TEST(QuoteValue, LongValuesAreCutWithTheirLength) {
  const std::string big(100000, 'x');
  const std::string q = quote_value(big);
  EXPECT_EQ(q, "\"" + std::string(kQuotedValueMax, 'x') + "\"\xe2\x80\xa6 (100000 bytes)");
  EXPECT_LT(q.size(), 100u);
  EXPECT_EQ(quote_value(std::string(kQuotedValueMax, 'y')), "\"" + std::string(kQuotedValueMax, 'y') + "\"");
}

TEST(EscapeControl, KeepsTextOnOneLine) {
  EXPECT_EQ(escape_control("a.toml"), "a.toml");
  EXPECT_EQ(escape_control("a\nmoat: error: forged"), "a\\nmoat: error: forged");
  EXPECT_EQ(escape_control("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 passes
  EXPECT_EQ(escape_control(std::string(10, 'z'), 4), "zzzz\xe2\x80\xa6");
}

}  // namespace
}  // namespace moat
