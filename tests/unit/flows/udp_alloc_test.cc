// STYLE.md: the steady-state UDP datagram path (guest -> host socket -> guest) performs
// zero heap allocations. Global operator new counts while the relay is exercised.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "support/alloc_counter.h"

#include "event/clock.h"
#include "event/loop.h"
#include "flows/udp_relay.h"
#include "wire/udp.h"


namespace moat::flows {
namespace {

/// Counts what reaches the guest without allocating.
class CountingGuestIo final : public GuestIo {
 public:
  bool send_ipv4(Ipv4Addr, Ipv4Addr, uint8_t, size_t, FunctionRef<void(MutBytes)>) override { return true; }
  bool send_ipv6(const Ipv6Addr&, const Ipv6Addr&, uint8_t, size_t, FunctionRef<void(MutBytes)>) override {
    return true;
  }
  bool send_udp_v4(Ipv4Addr, Ipv4Addr, uint16_t, uint16_t, Bytes) override { return ++udp, true; }
  bool send_udp_v6(const Ipv6Addr&, const Ipv6Addr&, uint16_t, uint16_t, Bytes) override { return ++udp, true; }
  bool send_icmp_error_v4(const wire::Ipv4Repr&, Bytes, Ipv4Addr, uint8_t, uint8_t, Instant, uint16_t) override {
    return ++errors, true;
  }
  bool send_icmp_error_v6(const wire::Ipv6Repr&, Bytes, const Ipv6Addr&, uint8_t, uint8_t, Instant, uint32_t) override {
    return ++errors, true;
  }
  [[nodiscard]] bool output_blocked() const override { return false; }
  void set_output_ready(std::function<void()>) override {}
  [[nodiscard]] uint32_t mtu() const override { return 1500; }
  size_t udp = 0, errors = 0;
};

TEST(UdpAlloc, SteadyStateDatagramPathDoesNotAllocate) {
  event::FakeClock clock;
  event::Loop loop(clock);
  Counters counters;
  CountingGuestIo guest;
  DestinationConfig dc;
  dc.gateway4 = Ipv4Addr::from_octets(100, 96, 0, 1);
  Destinations destinations(dc);
  UdpRelay relay(loop, guest, destinations, counters, UdpConfig{});

  // The "internet" peer: a socket on 127.0.0.1 that echoes.
  int srv = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t alen = sizeof(addr);
  ASSERT_EQ(::getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &alen), 0);
  const uint16_t port = ntohs(addr.sin_port);

  const Ipv4Addr guest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  const Ipv4Addr dst4 = Ipv4Addr::from_octets(127, 0, 0, 1);
  std::array<std::byte, 8 + 100> udp{};
  wire::UdpRepr u{40000, port};
  ASSERT_TRUE(u.emit_v4(MutBytes(udp), guest4, dst4));
  wire::Ipv4Repr ip;
  ip.src = guest4;
  ip.dst = dst4;
  ip.protocol = wire::kProtoUdp;
  ip.dont_fragment = true;
  ip.payload_len = uint16_t(udp.size());

  auto round_trip = [&]() -> bool {
    const size_t before = guest.udp;
    relay.on_datagram_v4(ip, Bytes(udp), clock.now());
    pollfd p{srv, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) return false;
    std::array<std::byte, 2048> buf;
    sockaddr_storage from;
    socklen_t flen = sizeof(from);
    const ssize_t n = ::recvfrom(srv, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n <= 0) return false;
    if (::sendto(srv, buf.data(), size_t(n), 0, reinterpret_cast<sockaddr*>(&from), flen) != n) return false;
    for (int i = 0; i < 200 && guest.udp == before; ++i) loop.run_once(std::chrono::milliseconds(10));
    return guest.udp == before + 1;
  };

  for (int i = 0; i < 3; ++i) ASSERT_TRUE(round_trip());  // warm-up: session, socket, peer, timer
  moat::test::start_counting_allocations();
  bool ok = true;
  for (int i = 0; i < 200 && ok; ++i) {
    clock.advance(std::chrono::milliseconds(10));
    ok = round_trip();
  }
  const size_t allocations = moat::test::stop_counting_allocations();
  EXPECT_TRUE(ok);
  EXPECT_EQ(allocations, 0u);
  ::close(srv);
}

}  // namespace
}  // namespace moat::flows
