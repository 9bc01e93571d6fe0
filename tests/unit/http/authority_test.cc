#include "http/authority.h"

#include <gtest/gtest.h>

namespace moat::http {
namespace {

TEST(Authority, HostPart) {
  EXPECT_EQ(authority_host("a.example"), "a.example");
  EXPECT_EQ(authority_host("a.example:8443"), "a.example");
  EXPECT_EQ(authority_host("A.Example.:443"), "A.Example");
  EXPECT_EQ(authority_host("[fd00::1]:443"), "fd00::1");
  EXPECT_EQ(authority_host("[fd00::1]"), "fd00::1");
  EXPECT_EQ(authority_host("a.example:"), "a.example");  // RFC 3986: the port may be empty
  EXPECT_EQ(authority_host(""), "");
  EXPECT_EQ(authority_host(":443"), "");
  EXPECT_EQ(authority_host("a.example:44x"), "");
  EXPECT_EQ(authority_host("a.example:443:1"), "");
  EXPECT_EQ(authority_host("user@a.example"), "");
  EXPECT_EQ(authority_host("a example"), "");
  EXPECT_EQ(authority_host("[fd00::1"), "");
  EXPECT_EQ(authority_host("[fd00::1]x"), "");
  EXPECT_EQ(authority_host("[zz]"), "");
  EXPECT_EQ(authority_host("a.example:123456"), "");
}

TEST(Authority, Compare) {
  EXPECT_EQ(check_authority("api.example.com", "API.example.COM:443"), AuthorityCheck::match);
  EXPECT_EQ(check_authority("api.example.com", "api.example.com."), AuthorityCheck::match);
  EXPECT_EQ(check_authority("api.example.com.", "api.example.com"), AuthorityCheck::match);
  EXPECT_EQ(check_authority("api.example.com", "evil.example"), AuthorityCheck::mismatch);
  EXPECT_EQ(check_authority("api.example.com", "api.example.com.evil"), AuthorityCheck::mismatch);
  EXPECT_EQ(check_authority("api.example.com", "bad host"), AuthorityCheck::invalid);
  // IP literals compare as addresses.
  EXPECT_EQ(check_authority("10.0.0.1", "10.0.0.1:443"), AuthorityCheck::match);
  EXPECT_EQ(check_authority("10.0.0.1", "10.0.0.2"), AuthorityCheck::mismatch);
  EXPECT_EQ(check_authority("10.0.0.1", "a.example"), AuthorityCheck::mismatch);
  EXPECT_EQ(check_authority("fd00::1", "[fd00:0::1]:443"), AuthorityCheck::match);
  EXPECT_EQ(check_authority("[fd00::1]", "[FD00::1]"), AuthorityCheck::match);
  EXPECT_EQ(check_authority("fd00::1", "[fd00::2]"), AuthorityCheck::mismatch);
}

TEST(Authority, AbsoluteForm) {
  EXPECT_EQ(absolute_form_authority("https://a.example:443/x?y"), "a.example:443");
  EXPECT_EQ(absolute_form_authority("http://user:pw@a.example/"), "a.example");
  EXPECT_EQ(absolute_form_authority("HTTP://a.example"), "a.example");
  EXPECT_EQ(absolute_form_authority("/x"), "");
  EXPECT_EQ(absolute_form_authority("a.example:443"), "");
  EXPECT_EQ(absolute_form_authority("://a"), "");
  EXPECT_EQ(absolute_form_authority("ht tp://a"), "");
}

}  // namespace
}  // namespace moat::http
