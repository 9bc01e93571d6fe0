// R-TLS-5: pattern precedence (exact > longest suffix > shorter suffix), the per-host
// verification choice, and bad trust files named in the error.
#include "tls/upstream.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "tls/ca.h"

namespace moat::tls {
namespace {

TEST(PatternRank, ExactBeatsLongerSuffixBeatsShorterSuffixBeatsStar) {
  EXPECT_EQ(pattern_rank("api.example.com", "api.example.com"), kExactRank);
  EXPECT_EQ(pattern_rank("api.example.com", "x.api.example.com"), -1);
  EXPECT_EQ(pattern_rank("*.example.com", "api.example.com"), int(sizeof("example.com")));
  EXPECT_EQ(pattern_rank("*.example.com", "example.com"), int(sizeof("example.com")));  // the apex
  EXPECT_EQ(pattern_rank("*.example.com", "badexample.com"), -1);  // label boundary
  EXPECT_EQ(pattern_rank("*.example.com", "com"), -1);
  EXPECT_EQ(pattern_rank("*", "anything.test"), 0);
  EXPECT_EQ(pattern_rank("*", ""), 0);
  EXPECT_EQ(pattern_rank("*.example.com", ""), -1);
  EXPECT_GT(pattern_rank("*.api.example.com", "v1.api.example.com"),
            pattern_rank("*.example.com", "v1.api.example.com"));
  EXPECT_EQ(best_rank({"*", "*.example.com", "api.example.com"}, "api.example.com"), kExactRank);
  EXPECT_EQ(best_rank({"*.other.org"}, "api.example.com"), -1);
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

class UpstreamChoice : public ::testing::Test {
 protected:
  std::string ca_file;
  void SetUp() override {
    auto ca = CertAuthority::generate();
    ASSERT_TRUE(ca);
    ca_file = write_temp("upstream_test_ca.pem", (*ca)->pem());
  }
};

TEST_F(UpstreamChoice, HostCaAndNoVerifyFollowPrecedence) {
  config::TlsConfig cfg;
  cfg.system_roots = false;
  cfg.host_ca.push_back(config::HostCaConfig{{"*.corp.example", "db.internal.corp.example"}, ca_file});
  cfg.host_ca.push_back(config::HostCaConfig{{"*.internal.corp.example"}, ca_file});
  cfg.no_verify = {"*.corp.example", "legacy.internal.corp.example"};
  auto u = UpstreamTls::create(cfg);
  ASSERT_TRUE(u) << u.error();
  // *.corp.example in both lists, same rank: no_verify wins the tie.
  EXPECT_FALSE((*u)->choose("www.corp.example").verify);
  // The longer suffix (*.internal.corp.example, host_ca[1]) beats no_verify's *.corp.example.
  auto c = (*u)->choose("x.internal.corp.example");
  EXPECT_TRUE(c.verify);
  EXPECT_EQ(c.host_ca, 1);
  // An exact host_ca pattern beats every suffix.
  c = (*u)->choose("db.internal.corp.example");
  EXPECT_TRUE(c.verify);
  EXPECT_EQ(c.host_ca, 0);
  // An exact no_verify beats the longer host_ca suffix.
  EXPECT_FALSE((*u)->choose("legacy.internal.corp.example").verify);
  // Nothing matches: verified against the default store.
  c = (*u)->choose("example.org");
  EXPECT_TRUE(c.verify);
  EXPECT_EQ(c.host_ca, -1);
  // No SNI: only "*" could match.
  EXPECT_TRUE((*u)->choose("").verify);
}

TEST_F(UpstreamChoice, BadTrustFilesAreNamedInTheError) {
  config::TlsConfig cfg;
  cfg.system_roots = false;
  cfg.extra_ca = {ca_file, ::testing::TempDir() + "does-not-exist.pem"};
  auto u = UpstreamTls::create(cfg);
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().find("tls.extra_ca[1]"), std::string::npos) << u.error();
  EXPECT_NE(u.error().find("does-not-exist.pem: cannot open"), std::string::npos) << u.error();

  cfg.extra_ca = {write_temp("upstream_test_garbage.pem", "not a certificate\n")};
  u = UpstreamTls::create(cfg);
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().find("tls.extra_ca[0]"), std::string::npos) << u.error();
  EXPECT_NE(u.error().find("no CERTIFICATE block"), std::string::npos) << u.error();

  cfg.extra_ca.clear();
  cfg.host_ca.push_back(config::HostCaConfig{{"x.test"}, ::testing::TempDir() + "nope.pem"});
  u = UpstreamTls::create(cfg);
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().find("tls.host_ca[0]"), std::string::npos) << u.error();
}

}  // namespace
}  // namespace moat::tls
