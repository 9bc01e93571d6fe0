#include "policy/groups.h"

#include <gtest/gtest.h>

namespace moat::policy {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

const HostAddrs kHost{{ip("100.96.0.1"), ip("100.96.0.2"), ip("fd42:6d73:62::1"), ip("fe80::1"),
                       ip("fd42:6d73:62::2")}};

Group g(const char* s) { return classify(ip(s), kHost); }

TEST(Groups, Names) {
  EXPECT_EQ(group_name(Group::link_local), "link-local");
  EXPECT_EQ(parse_group("private"), Group::private_);
  EXPECT_EQ(parse_group("link-local"), Group::link_local);
  EXPECT_FALSE(parse_group("none"));
  EXPECT_FALSE(parse_group("Public"));  // callers lowercase first
}

TEST(Groups, Ipv4Boundaries) {
  EXPECT_EQ(g("0.0.0.0"), Group::none);
  EXPECT_EQ(g("0.0.0.1"), Group::reserved);
  EXPECT_EQ(g("0.255.255.255"), Group::reserved);
  EXPECT_EQ(g("1.0.0.0"), Group::public_);
  // host comes before private (the gateway lives in 100.64/10).
  EXPECT_EQ(g("100.96.0.1"), Group::host);
  EXPECT_EQ(g("100.96.0.2"), Group::host);
  EXPECT_EQ(g("100.96.0.3"), Group::private_);
  // metadata, tested before link-local and private.
  for (auto m : {"169.254.169.254", "169.254.169.253", "169.254.169.123", "169.254.170.2", "169.254.170.23",
                 "100.100.100.200", "168.63.129.16"})
    EXPECT_EQ(g(m), Group::metadata) << m;
  EXPECT_EQ(g("169.254.169.255"), Group::link_local);
  EXPECT_EQ(g("168.63.129.15"), Group::public_);
  EXPECT_EQ(g("126.255.255.255"), Group::public_);
  EXPECT_EQ(g("127.0.0.0"), Group::loopback);
  EXPECT_EQ(g("127.255.255.255"), Group::loopback);
  EXPECT_EQ(g("128.0.0.0"), Group::public_);
  EXPECT_EQ(g("9.255.255.255"), Group::public_);
  EXPECT_EQ(g("10.0.0.0"), Group::private_);
  EXPECT_EQ(g("10.255.255.255"), Group::private_);
  EXPECT_EQ(g("11.0.0.0"), Group::public_);
  EXPECT_EQ(g("172.15.255.255"), Group::public_);
  EXPECT_EQ(g("172.16.0.0"), Group::private_);
  EXPECT_EQ(g("172.31.255.255"), Group::private_);
  EXPECT_EQ(g("172.32.0.0"), Group::public_);
  EXPECT_EQ(g("192.167.255.255"), Group::public_);
  EXPECT_EQ(g("192.168.0.0"), Group::private_);
  EXPECT_EQ(g("192.168.255.255"), Group::private_);
  EXPECT_EQ(g("192.169.0.0"), Group::public_);
  EXPECT_EQ(g("100.63.255.255"), Group::public_);
  EXPECT_EQ(g("100.64.0.0"), Group::private_);
  EXPECT_EQ(g("100.127.255.255"), Group::private_);
  EXPECT_EQ(g("100.128.0.0"), Group::public_);
  EXPECT_EQ(g("169.253.255.255"), Group::public_);
  EXPECT_EQ(g("169.254.0.0"), Group::link_local);
  EXPECT_EQ(g("169.254.255.255"), Group::link_local);
  EXPECT_EQ(g("169.255.0.0"), Group::public_);
  EXPECT_EQ(g("223.255.255.255"), Group::public_);
  EXPECT_EQ(g("224.0.0.0"), Group::multicast);
  EXPECT_EQ(g("239.255.255.255"), Group::multicast);
  EXPECT_EQ(g("240.0.0.0"), Group::reserved);
  EXPECT_EQ(g("255.255.255.255"), Group::reserved);
  struct R {
    const char *first, *last, *before, *after;
  };
  for (R r : {R{"192.0.0.0", "192.0.0.255", "191.255.255.255", "192.0.1.0"},
              R{"192.0.2.0", "192.0.2.255", "192.0.1.255", "192.0.3.0"},
              R{"192.88.99.0", "192.88.99.255", "192.88.98.255", "192.88.100.0"},
              R{"198.18.0.0", "198.19.255.255", "198.17.255.255", "198.20.0.0"},
              R{"198.51.100.0", "198.51.100.255", "198.51.99.255", "198.51.101.0"},
              R{"203.0.113.0", "203.0.113.255", "203.0.112.255", "203.0.114.0"}}) {
    EXPECT_EQ(g(r.first), Group::reserved) << r.first;
    EXPECT_EQ(g(r.last), Group::reserved) << r.last;
    EXPECT_EQ(g(r.before), Group::public_) << r.before;
    EXPECT_EQ(g(r.after), Group::public_) << r.after;
  }
}

TEST(Groups, Ipv6Boundaries) {
  EXPECT_EQ(g("::"), Group::none);
  EXPECT_EQ(g("::1"), Group::loopback);
  EXPECT_EQ(g("::2"), Group::reserved);
  EXPECT_EQ(g("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::reserved);  // last of ::/8
  EXPECT_EQ(g("100::"), Group::reserved);
  EXPECT_EQ(g("100::ffff:ffff:ffff:ffff"), Group::reserved);
  EXPECT_EQ(g("100:0:0:1::"), Group::public_);
  EXPECT_EQ(g("fd42:6d73:62::1"), Group::host);
  EXPECT_EQ(g("fe80::1"), Group::host);
  EXPECT_EQ(g("fd42:6d73:62::2"), Group::host);
  for (auto m : {"fd00:ec2::254", "fd00:ec2::253", "fd00:ec2::123", "fd00:ec2::23"})
    EXPECT_EQ(g(m), Group::metadata) << m;
  EXPECT_EQ(g("fd00:ec2::255"), Group::private_);
  EXPECT_EQ(g("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::public_);
  EXPECT_EQ(g("fc00::"), Group::private_);
  EXPECT_EQ(g("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::private_);
  EXPECT_EQ(g("fe00::"), Group::public_);
  EXPECT_EQ(g("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::public_);
  EXPECT_EQ(g("fe80::"), Group::link_local);
  EXPECT_EQ(g("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::link_local);
  EXPECT_EQ(g("fec0::"), Group::reserved);
  EXPECT_EQ(g("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::reserved);
  EXPECT_EQ(g("ff00::"), Group::multicast);
  EXPECT_EQ(g("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::multicast);
  EXPECT_EQ(g("2001:1:ffff:ffff:ffff:ffff:ffff:ffff"), Group::public_);
  EXPECT_EQ(g("2001:2::"), Group::reserved);
  EXPECT_EQ(g("2001:2:0:ffff:ffff:ffff:ffff:ffff"), Group::reserved);
  EXPECT_EQ(g("2001:2:1::"), Group::public_);
  EXPECT_EQ(g("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), Group::public_);
  EXPECT_EQ(g("2001:db8::"), Group::reserved);
  EXPECT_EQ(g("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), Group::reserved);
  EXPECT_EQ(g("2001:db9::"), Group::public_);
  EXPECT_EQ(g("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::public_);
  EXPECT_EQ(g("3fff::"), Group::reserved);
  EXPECT_EQ(g("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"), Group::reserved);
  EXPECT_EQ(g("3fff:1000::"), Group::public_);
  EXPECT_EQ(g("64:ff9b:1::"), Group::reserved);
  EXPECT_EQ(g("64:ff9b:1:ffff:ffff:ffff:ffff:ffff"), Group::reserved);
  EXPECT_EQ(g("2606:4700::1111"), Group::public_);
}

TEST(Groups, MappedAndNat64) {
  EXPECT_EQ(normalize(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
  EXPECT_EQ(normalize(ip("2001:db8::1")), ip("2001:db8::1"));
  EXPECT_EQ(g("::ffff:0.0.0.0"), Group::none);
  EXPECT_EQ(g("::ffff:127.0.0.1"), Group::loopback);
  EXPECT_EQ(g("::ffff:169.254.169.254"), Group::metadata);
  EXPECT_EQ(g("::ffff:100.96.0.1"), Group::host);
  EXPECT_EQ(g("::ffff:8.8.8.8"), Group::public_);
  EXPECT_EQ(g("::ffff:10.0.0.1"), Group::private_);
  EXPECT_EQ(*nat64_embedded(*Ipv6Addr::parse("64:ff9b::a9fe:a9fe")), Ipv4Addr::from_octets(169, 254, 169, 254));
  EXPECT_FALSE(nat64_embedded(*Ipv6Addr::parse("64:ff9b:1::a9fe:a9fe")));
  EXPECT_EQ(g("64:ff9b::a9fe:a9fe"), Group::metadata);
  EXPECT_EQ(g("64:ff9b::a9fe:1"), Group::link_local);
  EXPECT_EQ(g("64:ff9b::7f00:1"), Group::loopback);
  EXPECT_EQ(g("64:ff9b::a00:1"), Group::private_);
  EXPECT_EQ(g("64:ff9b::808:808"), Group::public_);
  EXPECT_EQ(g("64:ff9b::"), Group::none);
  EXPECT_EQ(g("64:ff9b::6460:1"), Group::host);
  // Host addresses given in mapped form still count.
  EXPECT_EQ(classify(ip("10.9.9.9"), HostAddrs{{ip("::ffff:10.9.9.9")}}), Group::host);
}

}  // namespace
}  // namespace moat::policy
