// STYLE.md: steady state does zero allocations. Every service path of the Interface is
// driven with prebuilt frames while global operator new is counting.
#include "support/alloc_counter.h"

#include "stack_fixture.h"


namespace moat::stack {
namespace {

using test::Buf;

struct CountingSink : FrameSink {
  size_t frames = 0;
  void send_to_guest(Bytes) override { ++frames; }
};
struct NullHandler : PacketHandler {
  int n = 0;
  void on_ipv4(const wire::Ipv4Repr&, Bytes, Instant) override { ++n; }
  void on_ipv6(const wire::Ipv6Repr&, Bytes, Instant) override { ++n; }
};

TEST(StackAlloc, IngressAndEgressDoNotAllocate) {
  LinkConfig cfg;
  cfg.hostname = "sandbox";
  cfg.search_domains = {"corp.example"};
  Counters counters;
  CountingSink sink;
  NullHandler handler;
  Interface iface(cfg, sink, counters);
  iface.set_packet_handler(&handler);
  test::GuestFrames g;
  const Ipv6Addr remote6 = *Ipv6Addr::parse("2001:db8::1");
  wire::Dhcpv4Repr discover = g.dhcp_msg(wire::DhcpMessageType::discover);
  const uint8_t prl[] = {1, 3, 6, 121};
  discover.parameter_request_list = std::as_bytes(std::span(prl));
  std::vector<Buf> frames = {
      g.arp_request(g.gateway4),
      g.icmp4_echo(g.gateway4, 1, 1, test::span(test::text("data"))),
      g.icmp4_echo(Ipv4Addr::from_octets(8, 8, 8, 8), 1, 1, {}),
      g.dhcp(discover),
      g.icmp6_echo(g.gateway6, 1, 1, {}),
      g.ns(g.gateway6),
      g.rs(),
      g.udp6(remote6, 1, 2, {}),
      Buf(5),  // runt
  };
  Instant now = Instant{} + std::chrono::seconds(10);
  moat::test::start_counting_allocations();
  iface.start(now);
  for (int round = 0; round < 3; ++round) {
    for (const Buf& f : frames) iface.on_frame_from_guest(test::span(f), now);
    iface.on_timer(now + std::chrono::seconds(4 * (round + 1)));
  }
  auto off = test::as_ipv4(test::span(frames[2]));
  iface.send_icmp_error_v4(off->ip, off->l4, cfg.gateway4, 3, 3, now);
  const size_t allocations = moat::test::stop_counting_allocations();
  EXPECT_EQ(allocations, 0u);
  EXPECT_GT(sink.frames, 15u);
  EXPECT_EQ(handler.n, 6);
}

}  // namespace
}  // namespace moat::stack
