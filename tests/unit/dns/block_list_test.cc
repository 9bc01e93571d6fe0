#include "dns/block_list.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <unistd.h>

namespace moat::dns {
namespace {

TEST(BlockList, ExactAndSuffix) {
  BlockList b;
  ASSERT_TRUE(b.add("Ads.Example.COM."));
  ASSERT_TRUE(b.add("*.tracker.test"));
  EXPECT_TRUE(b.blocked("ads.example.com"));
  EXPECT_FALSE(b.blocked("x.ads.example.com"));  // exact only
  EXPECT_TRUE(b.blocked("tracker.test"));        // the suffix form matches the apex
  EXPECT_TRUE(b.blocked("a.b.tracker.test"));
  EXPECT_FALSE(b.blocked("eviltracker.test"));   // aligned on labels
  EXPECT_FALSE(b.blocked("tracker.test.evil"));
  EXPECT_FALSE(b.blocked(""));
  EXPECT_EQ(b.size(), 2u);
}

TEST(BlockList, InvalidEntries) {
  BlockList b;
  EXPECT_FALSE(b.add("ex ample.com"));
  EXPECT_FALSE(b.add("1.2.3.4"));
  EXPECT_FALSE(b.add("a.*.b"));
  EXPECT_EQ(b.add("bad!name").error(), "\"bad!name\" is not a valid name");
}

TEST(BlockList, HostsFormatAndComments) {
  BlockList b;
  auto r = b.add_text("# comment\n\n0.0.0.0 ads.one.test  # trailing\n127.0.0.1 localhost\nplain.test\r\n"
                      "::1 v6.test alias.test\n*.wild.test\n",
                      "list.txt");
  ASSERT_TRUE(r);
  EXPECT_TRUE(b.blocked("ads.one.test"));
  EXPECT_TRUE(b.blocked("plain.test"));
  EXPECT_TRUE(b.blocked("v6.test"));
  EXPECT_TRUE(b.blocked("alias.test"));
  EXPECT_TRUE(b.blocked("x.wild.test"));
  EXPECT_FALSE(b.blocked("localhost"));
}

TEST(BlockList, BadLineNamesFileAndLine) {
  BlockList b;
  auto r = b.add_text("ok.test\n# c\nex ample.com\n", "/etc/moat/ads.txt");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().where, "/etc/moat/ads.txt:3");
  EXPECT_EQ(r.error().what, "\"ex ample.com\" is not a valid name");
  auto r2 = b.add_text("0.0.0.0 bad_name!\n", "f");
  EXPECT_EQ(r2.error().where, "f:1");
}

TEST(BlockList, Files) {
  BlockList b;
  auto missing = b.add_file("/nonexistent/moat-block.txt");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().where, "/nonexistent/moat-block.txt");
  EXPECT_NE(missing.error().what.find("cannot open"), std::string::npos);
  char path[] = "/tmp/moat-block-test.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  { std::ofstream(path) << "0.0.0.0 file.test\n"; }
  EXPECT_TRUE(b.add_file(path));
  EXPECT_TRUE(b.blocked("file.test"));
  std::remove(path);
}

TEST(BlockList, CompiledRules) {
  BlockList b;
  ASSERT_TRUE(b.add("ads.test"));
  ASSERT_TRUE(b.add("*.tracker.test"));
  auto rules = b.rules();
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].action, policy::Action::deny);
  EXPECT_EQ(rules[0].origin, policy::Origin::block);
  EXPECT_EQ(rules[0].target.kind, policy::Target::Kind::domain);
  EXPECT_EQ(rules[1].target.kind, policy::Target::Kind::suffix);
  EXPECT_TRUE(rules[1].target.matches_name("x.tracker.test"));
  // The compiled rules parse back to themselves (R-POL-15 normal form).
  auto back = policy::parse_rules(rules[1].text, policy::Origin::block);
  ASSERT_TRUE(back);
  EXPECT_EQ((*back)[0].target.name, "tracker.test");
}

TEST(BlockList, DohNames) {
  BlockList b;
  b.add_doh_names();
  EXPECT_TRUE(b.blocked("dns.google"));
  EXPECT_TRUE(b.blocked("use-application-dns.net"));
  EXPECT_FALSE(b.blocked("google.com"));
}

TEST(BlockList, ManyEntriesLookup) {
  BlockList b;
  std::string text;
  for (int i = 0; i < 100000; ++i) text += "0.0.0.0 host" + std::to_string(i) + ".ads.test\n";
  ASSERT_TRUE(b.add_text(text, "big"));
  EXPECT_EQ(b.size(), 100000u);
  EXPECT_TRUE(b.blocked("host99999.ads.test"));
  EXPECT_FALSE(b.blocked("host100000.ads.test"));
}

}  // namespace
}  // namespace moat::dns
