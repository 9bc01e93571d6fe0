#include "config/config.h"

#include <gtest/gtest.h>

namespace moat::config {
namespace {

std::vector<std::string> messages(const NetConfig& n, bool v4 = true, bool v6 = true) {
  std::vector<std::string> out;
  for (const auto& e : validate(n, v4, v6)) out.push_back(e.format());
  return out;
}

TEST(NetConfigValidate, DefaultsAreValid) { EXPECT_TRUE(messages(NetConfig{}).empty()); }

TEST(NetConfigValidate, GatewayOutsideSubnet) {
  NetConfig n;
  n.ipv4_gateway = *Ipv4Addr::parse("10.9.9.9");
  EXPECT_EQ(messages(n), std::vector<std::string>{
                             "moat: error: --gateway4: 10.9.9.9 is outside the guest subnet 100.96.0.0/30"});
}

TEST(NetConfigValidate, NetworkAndBroadcastAddresses) {
  NetConfig n;
  n.ipv4_gateway = *Ipv4Addr::parse("100.96.0.3");
  n.ipv4_dns = *Ipv4Addr::parse("100.96.0.0");
  auto m = messages(n);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], "moat: error: --gateway4: 100.96.0.3 is the broadcast address of 100.96.0.0/30");
  EXPECT_EQ(m[1], "moat: error: --dns4: 100.96.0.0 is the network address of 100.96.0.0/30");
}

TEST(NetConfigValidate, PrefixRanges) {
  NetConfig n;
  n.ipv4_prefix = 31;
  n.ipv6_prefix = 48;
  auto m = messages(n);
  ASSERT_GE(m.size(), 2u);
  EXPECT_EQ(m[0], "moat: error: --ipv4: prefix length /31 is out of range; IPv4 prefixes must be /8 to /30");
  EXPECT_EQ(m.back(), "moat: error: --ipv6: prefix length /48 is not supported; the IPv6 prefix must be /64");
}

TEST(NetConfigValidate, DnsEqualsGuestAndGatewayEqualsGuest) {
  NetConfig n;
  n.ipv4_dns = n.ipv4_address;
  n.ipv6_gateway = n.ipv6_address;
  auto m = messages(n);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], "moat: error: --dns4: 100.96.0.2 is the guest address");
  EXPECT_EQ(m[1], "moat: error: --gateway6: fd42:6d73:62::2 is the guest address");
}

TEST(NetConfigValidate, Ipv6SpecialAddresses) {
  NetConfig n;
  n.ipv6_gateway = *Ipv6Addr::parse("fe80::1");
  n.ipv6_dns = *Ipv6Addr::parse("fd42:6d73:62::");
  auto m = messages(n);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], "moat: error: --gateway6: fe80::1 is a link-local address");
  EXPECT_EQ(m[1], "moat: error: --dns6: fd42:6d73:62:: is the subnet-router anycast address of fd42:6d73:62::/64");
}

TEST(NetConfigValidate, InactiveFamilyIsNotChecked) {
  NetConfig n;
  n.ipv6_prefix = 48;
  EXPECT_TRUE(messages(n, true, false).empty());
}

TEST(NetConfigValidate, MtuDependsOnIpv6) {
  NetConfig n;
  n.mtu = 1000;
  EXPECT_EQ(messages(n).size(), 1u);
  EXPECT_TRUE(messages(n, true, false).empty());
  n.mtu = 65521;
  EXPECT_EQ(messages(n, true, false),
            std::vector<std::string>{"moat: error: --mtu: 65521 is out of range; the MTU must be 576-65520"});
}

TEST(NetConfigValidate, Macs) {
  NetConfig n;
  n.guest_mac = *MacAddr::parse("01:00:5e:00:00:01");
  n.gateway_mac = MacAddr{};
  auto m = messages(n);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], "moat: error: --guest-mac: 01:00:5e:00:00:01 is a multicast MAC (I/G bit set)");
  EXPECT_EQ(m[1], "moat: error: --gateway-mac: the all-zero MAC is not allowed");
  NetConfig same;
  same.guest_mac = same.gateway_mac;
  EXPECT_EQ(messages(same).size(), 1u);
}

TEST(NetConfigValidate, LoopbackAndIfname) {
  NetConfig n;
  n.ipv4_address = *Ipv4Addr::parse("127.0.0.2");
  n.ifname = "a-very-long-interface-name";
  auto m = messages(n, true, false);
  ASSERT_GE(m.size(), 2u);
  EXPECT_EQ(m[0], "moat: error: --ipv4: 127.0.0.2 is a loopback address");
  EXPECT_EQ(m.back(), "moat: error: --ifname: \"a-very-long-interface-name\" is longer than 15 bytes");
}

TEST(ParsePrefix, Errors) {
  Ipv4Addr a;
  int p = 0;
  EXPECT_EQ(parse_ipv4_prefix("--ipv4", "300.1.1.1/24", &a, &p)->format(),
            "moat: error: --ipv4: \"300.1.1.1\" is not an IPv4 address");
  EXPECT_EQ(parse_ipv4_prefix("--ipv4", "10.0.0.2", &a, &p)->format(),
            "moat: error: --ipv4: \"10.0.0.2\" needs a prefix length; write e.g. 100.96.0.2/30");
  EXPECT_EQ(parse_ipv4_prefix("--ipv4", "10.0.0.2/33", &a, &p)->format(),
            "moat: error: --ipv4: \"33\" is not a prefix length (0-32)");
  EXPECT_FALSE(parse_ipv4_prefix("--ipv4", "10.0.2.100/24", &a, &p));
  EXPECT_EQ(a.to_string(), "10.0.2.100");
  EXPECT_EQ(p, 24);
  Ipv6Addr b;
  EXPECT_FALSE(parse_ipv6_prefix("--ipv6", "fd00::2/64", &b, &p));
  EXPECT_TRUE(parse_ipv6_prefix("--ipv6", "fd00::2/129", &b, &p));
}

}  // namespace
}  // namespace moat::config
