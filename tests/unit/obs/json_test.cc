#include "obs/json.h"

#include <gtest/gtest.h>

namespace moat::obs {
namespace {

std::string quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

TEST(Json, EscapesQuotesBackslashAndControls) {
  EXPECT_EQ(quoted("plain"), "\"plain\"");
  EXPECT_EQ(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(quoted("l1\nl2\r\t\b\f"), "\"l1\\nl2\\r\\t\\b\\f\"");
  EXPECT_EQ(quoted(std::string_view("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\\u007f\"");
}

TEST(Json, KeepsValidUtf8AndEscapesInvalidBytes) {
  EXPECT_EQ(quoted("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(quoted("\xc3"), "\"\\u00c3\"");               // truncated sequence
  EXPECT_EQ(quoted("\xc0\xaf"), "\"\\u00c0\\u00af\"");    // overlong '/'
  EXPECT_EQ(quoted("\xed\xa0\x80"), "\"\\u00ed\\u00a0\\u0080\"");  // surrogate
  EXPECT_EQ(quoted("\xff"), "\"\\u00ff\"");
}

TEST(Json, WriterMembersAndCommas) {
  std::string s = "{";
  JsonWriter w(s);
  w.str("a", "x").u64("n", 42).i64("m", -1).boolean("t", true).null("z");
  w.begin_object("o").str("k", "v").u64("i", 1).end_object();
  w.endpoint("v4", IpAddr(Ipv4Addr::from_octets(10, 0, 0, 1)), 80);
  w.endpoint("ip", IpAddr(Ipv4Addr::from_octets(10, 0, 0, 1)), 0, false);
  s += "}";
  EXPECT_EQ(s, R"({"a":"x","n":42,"m":-1,"t":true,"z":null,"o":{"k":"v","i":1},"v4":"10.0.0.1:80","ip":"10.0.0.1"})");
}

TEST(Json, Ipv6EndpointIsBracketed) {
  std::string s;
  JsonWriter w(s);
  Ipv6Addr a{};
  a.bytes[15] = 1;
  w.endpoint("e", IpAddr(a), 443);
  EXPECT_EQ(s, R"("e":"[::1]:443")");
}

}  // namespace
}  // namespace moat::obs
