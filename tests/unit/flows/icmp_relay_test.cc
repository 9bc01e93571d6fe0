// IcmpRelay (R-ICMP-2) with real ping sockets. Each test runs in a forked child inside a
// fresh network namespace (loopback only), where it sets net.ipv4.ping_group_range itself,
// so the host's sysctl is neither needed nor touched. Needs root (unshare).
#include "flows/icmp_relay.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>

#include "event/clock.h"
#include "event/loop.h"
#include "unit/flows/fake_guest_io.h"
#include "unit/flows/netns_child.h"

namespace moat::flows {
namespace {

using testing::FakeGuestIo;
using testing::bring_lo_up;
using testing::in_new_netns;

const Ipv4Addr kGuest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
const Ipv6Addr kGuest6 = *Ipv6Addr::parse("fd00::2");

bool set_ping_group_range(const char* value) {
  UniqueFd f(::open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY | O_CLOEXEC));
  return f && ::write(f.get(), value, std::strlen(value)) == ssize_t(std::strlen(value));
}


/// Pumps `loop` until pred() or ~2 s.
template <class Pred>
bool pump(event::Loop& loop, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    loop.run_once(std::chrono::milliseconds(10));
  }
  return true;
}

class IcmpRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespace)";
  }
};

TEST_F(IcmpRelayTest, EchoRoundTripBothFamilies) {
  const std::string err = in_new_netns([]() -> std::string {
    CHILD_CHECK(bring_lo_up());
    CHILD_CHECK(set_ping_group_range("0 2147483647"));
    event::FakeClock clock;
    event::Loop loop(clock);
    Counters counters;
    FakeGuestIo guest;
    IcmpRelay relay(loop, guest, counters, IcmpConfig{});
    CHILD_CHECK(relay.available_v4());
    CHILD_CHECK(relay.available_v6());

    // IPv4: echo to 127.0.0.1 with the guest's identifier 0x4242.
    const std::string data = "moat-echo-payload";
    wire::Ipv4Repr ip;
    ip.src = kGuest4;
    ip.dst = Ipv4Addr::from_octets(127, 0, 0, 1);
    ip.protocol = wire::kProtoIcmp;
    wire::Icmpv4Repr echo;
    echo.type = wire::kIcmpEchoRequest;
    echo.ident = 0x4242;
    echo.seq = 7;
    echo.data = as_bytes(data);
    relay.on_echo_v4(ip, echo, clock.now());
    CHILD_CHECK(counters.get(Counter::icmp_echo_relayed) == 1);
    CHILD_CHECK(pump(loop, [&] { return !guest.ip.empty(); }));
    {
      const auto& out = guest.ip[0];
      CHILD_CHECK(!out.v6 && out.proto == wire::kProtoIcmp);
      CHILD_CHECK(out.src == IpAddr(ip.dst) && out.dst == IpAddr(kGuest4));
      auto reply = wire::Icmpv4Repr::parse(Bytes(out.l4));  // checksum verified
      CHILD_CHECK(reply.has_value());
      CHILD_CHECK(reply->type == wire::kIcmpEchoReply);
      CHILD_CHECK(reply->ident == 0x4242);
      CHILD_CHECK(reply->seq == 7);
      CHILD_CHECK(std::string(reinterpret_cast<const char*>(reply->data.data()), reply->data.size()) == data);
    }

    // A second request reuses the session.
    echo.seq = 8;
    relay.on_echo_v4(ip, echo, clock.now());
    CHILD_CHECK(pump(loop, [&] { return guest.ip.size() == 2; }));
    CHILD_CHECK(relay.active_sessions() == 1);

    // IPv6: echo to ::1.
    wire::Ipv6Repr ip6;
    ip6.src = kGuest6;
    ip6.dst = *Ipv6Addr::parse("::1");
    ip6.next_header = wire::kProtoIcmpv6;
    wire::Icmpv6Repr echo6;
    echo6.type = wire::kIcmpv6EchoRequest;
    echo6.ident = 0x1717;
    echo6.seq = 3;
    echo6.data = as_bytes(data);
    relay.on_echo_v6(ip6, echo6, clock.now());
    CHILD_CHECK(pump(loop, [&] { return guest.ip.size() == 3; }));
    {
      const auto& out = guest.ip[2];
      CHILD_CHECK(out.v6 && out.proto == wire::kProtoIcmpv6);
      CHILD_CHECK(out.src == IpAddr(ip6.dst) && out.dst == IpAddr(kGuest6));
      auto reply = wire::Icmpv6Repr::parse(Bytes(out.l4), ip6.dst, kGuest6);  // checksum verified
      CHILD_CHECK(reply.has_value());
      CHILD_CHECK(reply->type == wire::kIcmpv6EchoReply);
      CHILD_CHECK(reply->ident == 0x1717);
      CHILD_CHECK(reply->seq == 3);
    }
    CHILD_CHECK(relay.active_sessions() == 2);

    // Idle expiry after 60 s.
    clock.advance(61s);
    for (int i = 0; i < 5; ++i) loop.run_once(std::chrono::milliseconds(1));
    CHILD_CHECK(relay.active_sessions() == 0);
    CHILD_CHECK(loop.watch_count() == 0);
    return "";
  });
  EXPECT_EQ(err, "");
}

TEST_F(IcmpRelayTest, SessionLimitEvictsLeastRecentlyUsed) {
  const std::string err = in_new_netns([]() -> std::string {
    CHILD_CHECK(bring_lo_up());
    CHILD_CHECK(set_ping_group_range("0 2147483647"));
    event::FakeClock clock;
    event::Loop loop(clock);
    Counters counters;
    FakeGuestIo guest;
    IcmpRelay relay(loop, guest, counters, IcmpConfig{.max_sessions = 2});
    wire::Ipv4Repr ip;
    ip.src = kGuest4;
    ip.dst = Ipv4Addr::from_octets(127, 0, 0, 1);
    wire::Icmpv4Repr echo;
    echo.type = wire::kIcmpEchoRequest;
    for (uint16_t id = 1; id <= 3; ++id) {
      echo.ident = id;
      relay.on_echo_v4(ip, echo, clock.now());
      clock.advance(1s);
    }
    CHILD_CHECK(relay.active_sessions() == 2);
    CHILD_CHECK(loop.watch_count() == 2);
    return "";
  });
  EXPECT_EQ(err, "");
}

TEST_F(IcmpRelayTest, ForbiddenPingSocketsDropAndCount) {
  const std::string err = in_new_netns([]() -> std::string {
    CHILD_CHECK(bring_lo_up());
    CHILD_CHECK(set_ping_group_range("1 0"));  // the kernel default: nobody
    event::FakeClock clock;
    event::Loop loop(clock);
    Counters counters;
    FakeGuestIo guest;
    IcmpRelay relay(loop, guest, counters, IcmpConfig{});
    CHILD_CHECK(!relay.available_v4());
    CHILD_CHECK(!relay.available_v6());
    wire::Ipv4Repr ip;
    ip.src = kGuest4;
    ip.dst = Ipv4Addr::from_octets(127, 0, 0, 1);
    wire::Icmpv4Repr echo;
    echo.type = wire::kIcmpEchoRequest;
    relay.on_echo_v4(ip, echo, clock.now());
    relay.on_echo_v4(ip, echo, clock.now());
    CHILD_CHECK(counters.get(Counter::icmp_relay_unavailable) == 2);
    CHILD_CHECK(relay.active_sessions() == 0);
    return "";
  });
  EXPECT_EQ(err, "");
}

}  // namespace
}  // namespace moat::flows
