#include "base/addr.h"

#include <gtest/gtest.h>

namespace moat {
namespace {

TEST(Ipv4Addr, ParseFormatAndClassify) {
  auto a = Ipv4Addr::parse("100.96.0.1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->value, 0x64600001u);
  EXPECT_EQ(a->to_string(), "100.96.0.1");
  EXPECT_FALSE(Ipv4Addr::parse("300.1.1.1"));
  EXPECT_FALSE(Ipv4Addr::parse("1.2.3"));
  EXPECT_FALSE(Ipv4Addr::parse("100.96.0.1 "));
  EXPECT_TRUE(Ipv4Addr::parse("127.0.0.1")->is_loopback());
  EXPECT_TRUE(Ipv4Addr::parse("224.0.0.1")->is_multicast());
  EXPECT_TRUE(a->in_subnet(Ipv4Addr::from_octets(100, 96, 0, 0), 30));
  EXPECT_FALSE(Ipv4Addr::from_octets(100, 96, 0, 4).in_subnet(*a, 30));
}

TEST(Ipv6Addr, ParseFormatSubnetAndSolicitedNode) {
  auto a = Ipv6Addr::parse("fd42:6d73:62::2");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->to_string(), "fd42:6d73:62::2");
  EXPECT_TRUE(a->in_subnet(*Ipv6Addr::parse("fd42:6d73:62::"), 64));
  EXPECT_FALSE(a->in_subnet(*Ipv6Addr::parse("fd42:6d73:63::"), 64));
  EXPECT_EQ(a->solicited_node().to_string(), "ff02::1:ff00:2");
  EXPECT_TRUE(Ipv6Addr::parse("::ffff:1.2.3.4")->is_v4_mapped());
  EXPECT_FALSE(Ipv6Addr::parse("fd42::1/64"));
}

TEST(MacAddr, ParseFormatAndLinkLocal) {
  auto m = MacAddr::parse("02:6d:6f:00:00:01");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->to_string(), "02:6d:6f:00:00:01");
  // SPEC R-ADDR-1: the gateway link-local is fe80::6d:6fff:fe00:1
  EXPECT_EQ(m->link_local().to_string(), "fe80::6d:6fff:fe00:1");
  EXPECT_FALSE(MacAddr::parse("02:6d:6f:00:00"));
  EXPECT_FALSE(MacAddr::parse("02-6d-6f-00-00-01"));
  EXPECT_TRUE(MacAddr::broadcast().is_multicast());
}

}  // namespace
}  // namespace moat
