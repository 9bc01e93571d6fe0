// R-TLS-7: UDP to an intercepted port is refused with ICMP port unreachable (nothing under
// deny_response = drop) and counted; other ports, and every port without the hook, reach
// the UDP relay.
#include <gtest/gtest.h>

#include "event/clock.h"
#include "event/loop.h"
#include "flows/dispatch.h"
#include "tls/quic_block.h"
#include "unit/flows/fake_guest_io.h"
#include "wire/udp.h"

namespace moat::tls {
namespace {

using flows::testing::Buf;
using flows::testing::FakeGuestIo;

/// Stands for the UDP relay behind the blocker (the test sends nothing to the host).
struct Sink final : flows::PacketHook {
  int seen = 0;
  bool on_guest_packet(const flows::GuestPacket&) override {
    ++seen;
    return true;
  }
};

class QuicBlockTest : public ::testing::Test {
 protected:
  event::FakeClock clock;
  event::Loop loop{clock};
  FakeGuestIo io;
  Counters counters;
  Ipv4Addr guest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  Ipv4Addr remote4 = Ipv4Addr::from_octets(192, 0, 2, 7);
  Ipv6Addr guest6 = Ipv6Addr::parse("fd00::2").value();
  Ipv6Addr remote6 = Ipv6Addr::parse("2001:db8::7").value();

  flows::DispatchConfig config() {
    flows::DispatchConfig c;
    c.destinations.gateway4 = Ipv4Addr::from_octets(100, 96, 0, 1);
    c.icmp_relay = false;
    return c;
  }
  void udp4(flows::Dispatch& d, uint16_t dport) {
    wire::UdpRepr u{40000, dport};
    Buf l4(wire::UdpRepr::kHeaderLen + 4);
    u.emit_v4(MutBytes(l4), guest4, remote4);
    wire::Ipv4Repr ip;
    ip.src = guest4;
    ip.dst = remote4;
    ip.protocol = wire::kProtoUdp;
    ip.payload_len = uint16_t(l4.size());
    d.on_ipv4(ip, Bytes(l4), clock.now());
  }
  void udp6(flows::Dispatch& d, uint16_t dport) {
    wire::UdpRepr u{40000, dport};
    Buf l4(wire::UdpRepr::kHeaderLen + 4);
    u.emit_v6(MutBytes(l4), guest6, remote6);
    wire::Ipv6Repr ip;
    ip.src = guest6;
    ip.dst = remote6;
    ip.next_header = wire::kProtoUdp;
    ip.payload_len = uint16_t(l4.size());
    d.on_ipv6(ip, Bytes(l4), clock.now());
  }
  Sink relay;
  void attach_relay(flows::Dispatch& d) { d.add_hook(flows::PacketMatch::any_port(wire::kProtoUdp), relay); }
  uint64_t blocked() const { return counters.values[size_t(Counter::tls_quic_blocked)]; }
};

TEST_F(QuicBlockTest, InterceptedPortGetsPortUnreachableFromTheDestination) {
  flows::Dispatch d(loop, io, counters, config());
  QuicBlocker q(counters, io, QuicBlockConfig{{443, 8443}, false});
  q.attach(d);
  attach_relay(d);
  udp4(d, 443);
  ASSERT_EQ(io.errors.size(), 1u);
  EXPECT_FALSE(io.errors[0].v6);
  EXPECT_EQ(io.errors[0].type, 3);  // destination unreachable
  EXPECT_EQ(io.errors[0].code, 3);  // port unreachable
  EXPECT_EQ(io.errors[0].src, IpAddr(remote4));
  EXPECT_EQ(io.errors[0].offending4.dst, remote4);
  EXPECT_GE(io.errors[0].offending_l4.size(), 8u);  // the UDP header is quoted
  udp6(d, 8443);
  ASSERT_EQ(io.errors.size(), 2u);
  EXPECT_TRUE(io.errors[1].v6);
  EXPECT_EQ(io.errors[1].type, 1);  // ICMPv6 destination unreachable
  EXPECT_EQ(io.errors[1].code, 4);  // port unreachable
  EXPECT_EQ(io.errors[1].src, IpAddr(remote6));
  EXPECT_EQ(blocked(), 2u);
  EXPECT_EQ(relay.seen, 0);  // nothing reached the relay
}

TEST_F(QuicBlockTest, OtherPortsPassToTheRelay) {
  flows::Dispatch d(loop, io, counters, config());
  QuicBlocker q(counters, io, QuicBlockConfig{{443}, false});
  q.attach(d);
  attach_relay(d);
  udp4(d, 4433);
  EXPECT_TRUE(io.errors.empty());
  EXPECT_EQ(blocked(), 0u);
  EXPECT_EQ(relay.seen, 1);
}

TEST_F(QuicBlockTest, DropResponseIsSilentButCounted) {
  flows::Dispatch d(loop, io, counters, config());
  QuicBlocker q(counters, io, QuicBlockConfig{{443}, true});
  q.attach(d);
  attach_relay(d);
  udp4(d, 443);
  EXPECT_TRUE(io.errors.empty());
  EXPECT_EQ(blocked(), 1u);
  EXPECT_EQ(relay.seen, 0);
}

TEST_F(QuicBlockTest, MorePortsThanAHookListsAreFilteredInTheHook) {
  flows::Dispatch d(loop, io, counters, config());
  QuicBlocker q(counters, io, QuicBlockConfig{{1, 2, 3, 4, 5, 6, 7, 443}, false});
  q.attach(d);
  attach_relay(d);
  udp4(d, 443);
  udp4(d, 7);
  udp4(d, 9999);
  EXPECT_EQ(io.errors.size(), 2u);
  EXPECT_EQ(blocked(), 2u);
  EXPECT_EQ(relay.seen, 1);
}

TEST_F(QuicBlockTest, WithoutTheHookPort443IsRelayed) {  // --allow-quic: not attached
  flows::Dispatch d(loop, io, counters, config());
  attach_relay(d);
  udp4(d, 443);
  EXPECT_TRUE(io.errors.empty());
  EXPECT_EQ(relay.seen, 1);
}

}  // namespace
}  // namespace moat::tls
