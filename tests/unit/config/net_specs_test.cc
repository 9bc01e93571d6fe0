#include "config/net_specs.h"

#include <gtest/gtest.h>

namespace moat::config {
namespace {

TEST(Upstream, Forms) {
  auto a = parse_upstream("127.0.0.1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->addr, IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1)));
  EXPECT_EQ(a->port, 53);
  auto b = parse_upstream("127.0.0.1:5353");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->port, 5353);
  auto c = parse_upstream("[::1]:54");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->addr.is_v6);
  EXPECT_EQ(c->port, 54);
  auto d = parse_upstream("::1");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->port, 53);
  auto e = parse_upstream("tcp://10.0.0.1:53");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->tcp);
  EXPECT_EQ(parse_upstream("dns.example").error(),
            "\"dns.example\" is not an IP address (hostnames are not supported here)");
  EXPECT_EQ(parse_upstream("1.2.3.4:0").error(), "\"0\" is not a port (1-65535)");
  EXPECT_EQ(parse_upstream("tls://1.1.1.1").error(),
            "\"tls://1.1.1.1\" has an unsupported scheme; use IP[:PORT] or tcp://IP[:PORT]");
  EXPECT_FALSE(parse_upstream("[::1"));
}

TEST(Publish, Forms) {
  auto a = parse_publish("8080:80");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->bind, IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1)));
  EXPECT_EQ(a->host_port, 8080);
  EXPECT_EQ(a->guest_port, 80);
  EXPECT_EQ(a->proto, Proto::tcp);
  auto b = parse_publish("0.0.0.0:5202:5202/udp");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->bind, IpAddr(Ipv4Addr{}));
  EXPECT_EQ(b->proto, Proto::udp);
  auto c = parse_publish("[::]:9000-9009:7000-7009");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->bind.is_v6);
  EXPECT_EQ(c->count, 10);
  EXPECT_EQ(c->guest_port, 7000);
  auto d = parse_publish("0:22");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->host_port, 0);
}

TEST(Publish, Errors) {
  EXPECT_EQ(parse_publish("80").error(), "\"80\" needs HOSTPORT:GUESTPORT, e.g. 8080:80 or 127.0.0.1:8080:80/tcp");
  EXPECT_EQ(parse_publish("80:80/sctp").error(), "\"sctp\" is not a protocol; write /tcp or /udp");
  EXPECT_EQ(parse_publish("1-3:1-2").error(),
            "the host range has 3 ports but the guest range has 2; ranges must have equal length");
  EXPECT_EQ(parse_publish("::1:80:80").error(),
            "\"::1:80:80\": an IPv6 bind address must be bracketed, e.g. [::1]:8080:80");
  EXPECT_EQ(parse_publish("300.1.1.1:80:80").error(), "\"300.1.1.1\" is not an IPv4 address");
  EXPECT_EQ(parse_publish("80:0").error(), "\"0\" is not a guest port or range (1-65535, low-high)");
  EXPECT_EQ(parse_publish("5-1:5-1").error(), "\"5-1\" is not a host port or range (1-65535, low-high)");
  EXPECT_EQ(parse_publish("0:1-2").error(), "host port 0 (ephemeral) cannot map a range");
}

TEST(ResolvConf, Nameservers) {
  auto v = parse_resolv_conf(
      "# comment\nsearch example.com\nnameserver 127.0.0.53\n  nameserver\tfe80::1%eth0 # x\nnameserver bogus\n"
      "options edns0\nnameserver ::1");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].addr.to_string(), "127.0.0.53");
  EXPECT_EQ(v[1].addr.to_string(), "fe80::1");
  EXPECT_EQ(v[2].addr.to_string(), "::1");
}

}  // namespace
}  // namespace moat::config
