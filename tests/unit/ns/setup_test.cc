#include "ns/setup.h"

#include <gtest/gtest.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include "ns/netlink.h"
#include "ns/tap.h"
#include "ns_test_util.h"

namespace moat::ns {
namespace {

using testing::in_new_netns;
using testing::sh;

TapSetup dual_stack() {
  TapSetup s;
  s.ifname = "moat0";
  s.guest_mac = *MacAddr::parse("02:00:00:00:00:02");
  s.gateway_mac = *MacAddr::parse("02:00:00:00:00:01");
  s.mtu = 1400;
  s.guest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  s.prefix4 = 24;
  s.gateway4 = Ipv4Addr::from_octets(100, 96, 0, 1);
  s.dns4 = Ipv4Addr::from_octets(100, 96, 0, 3);
  s.guest6 = *Ipv6Addr::parse("fd42:6d73:62::2");
  s.prefix6 = 64;
  s.gateway6 = *Ipv6Addr::parse("fd42:6d73:62::1");
  s.dns6 = *Ipv6Addr::parse("fd42:6d73:62::3");
  return s;
}

/// Everything `ip` knows about the TAP, plus its sysctls, from inside the namespace.
std::string describe(const std::string& ifname) {
  std::string c = "/proc/sys/net/ipv6/conf/" + ifname + "/";
  return sh("ip -o link show " + ifname + "; ip -o link show lo; ip -o addr show dev " + ifname +
            "; ip -d -o addr show dev " + ifname + "; ip route; ip -6 route; ip neigh show dev " + ifname +
            "; ip -6 neigh show dev " + ifname + "; echo accept_ra=$(cat " + c + "accept_ra) autoconf=$(cat " + c +
            "autoconf) accept_dad=$(cat " + c + "accept_dad) disable_ipv6=$(cat " + c + "disable_ipv6)");
}

TEST(Netlink, ErrorsCarryErrno) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    auto nl = Netlink::open();
    if (!nl) return std::string("ERR: open");
    std::string r;
    auto missing = nl->ifindex("nosuchif0");
    r += "missing=" + std::to_string(missing ? 0 : missing.error().value) + "\n";
    auto lo = nl->ifindex("lo");
    r += "lo=" + std::to_string(lo ? *lo : -1) + "\n";
    auto bad = nl->link_set_mtu(12345, 1500);
    r += "badindex=" + std::to_string(bad ? 0 : bad.error().value) + "\n";
    auto toolong = nl->ifindex("a_name_far_too_long_for_linux");
    r += "toolong=" + std::to_string(toolong ? 0 : toolong.error().value) + "\n";
    return r;
  });
  EXPECT_NE(out.find("missing=" + std::to_string(ENODEV)), std::string::npos) << out;
  EXPECT_NE(out.find("lo=1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("badindex=" + std::to_string(ENODEV)), std::string::npos) << out;
  EXPECT_NE(out.find("toolong=" + std::to_string(EINVAL)), std::string::npos) << out;
}

TEST(CreateTap, IsATapWithTheName) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    auto fd = create_tap("tapx", false);
    if (!fd) return "ERR: " + std::string(fd.error().message());
    ifreq ifr{};
    if (::ioctl(fd->get(), TUNGETIFF, &ifr) < 0) return std::string("ERR: TUNGETIFF");
    std::string r = std::string(ifr.ifr_name) + " tap=" + std::to_string((ifr.ifr_flags & IFF_TAP) != 0) +
                    " nopi=" + std::to_string((ifr.ifr_flags & IFF_NO_PI) != 0);
    auto again = create_tap("tapx", false);
    r += " again=" + std::to_string(again ? 0 : again.error().value);
    return r;
  });
  EXPECT_EQ(out, "tapx tap=1 nopi=1 again=" + std::to_string(EBUSY));
}

TEST(SetupTapHere, ConfiguresAddressesRoutesNeighbours) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    // A namespace whose new links start with IPv6 disabled: setup must turn it on for ours.
    (void)write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    auto tap = setup_tap_here(dual_stack());
    if (!tap) return "ERR: " + tap.error();
    return describe("moat0");
  });
  ASSERT_EQ(out.find("ERR"), std::string::npos) << out;
  EXPECT_NE(out.find("mtu 1400"), std::string::npos) << out;
  EXPECT_NE(out.find("link/ether 02:00:00:00:00:02"), std::string::npos) << out;
  EXPECT_NE(out.find("inet 100.96.0.2/24 brd 100.96.0.255"), std::string::npos) << out;
  EXPECT_NE(out.find("inet6 fd42:6d73:62::2/64"), std::string::npos) << out;
  EXPECT_NE(out.find("nodad"), std::string::npos) << out;
  EXPECT_NE(out.find("default via 100.96.0.1 dev moat0"), std::string::npos) << out;
  EXPECT_NE(out.find("default via fe80::ff:fe00:1 dev moat0"), std::string::npos) << out;
  for (const char* n : {"100.96.0.1 lladdr 02:00:00:00:00:01 PERMANENT", "100.96.0.3 lladdr 02:00:00:00:00:01 PERMANENT",
                        "fd42:6d73:62::1 lladdr 02:00:00:00:00:01 PERMANENT",
                        "fd42:6d73:62::3 lladdr 02:00:00:00:00:01 PERMANENT",
                        "fe80::ff:fe00:1 lladdr 02:00:00:00:00:01 PERMANENT"}) {
    EXPECT_NE(out.find(n), std::string::npos) << n << "\n" << out;
  }
  EXPECT_NE(out.find("accept_ra=0 autoconf=0 accept_dad=0 disable_ipv6=0"), std::string::npos) << out;
  EXPECT_NE(out.find("1: lo: <LOOPBACK,UP,LOWER_UP>"), std::string::npos) << out;
  EXPECT_NE(out.find("moat0: <BROADCAST,MULTICAST,UP"), std::string::npos) << out;
}

TEST(SetupTapHere, Ipv4OnlyAddsNoIpv6Configuration) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    TapSetup s = dual_stack();
    s.guest6.reset();
    auto tap = setup_tap_here(s);
    if (!tap) return "ERR: " + tap.error();
    return describe("moat0");
  });
  ASSERT_EQ(out.find("ERR"), std::string::npos) << out;
  EXPECT_NE(out.find("inet 100.96.0.2/24"), std::string::npos) << out;
  EXPECT_EQ(out.find("fd42"), std::string::npos) << out;
  EXPECT_EQ(out.find("default via fe80"), std::string::npos) << out;
  EXPECT_NE(out.find("accept_ra=0 autoconf=0 accept_dad=0"), std::string::npos) << out;
}

TEST(SetupTapHere, NoConfigureOnlyCreatesAndBringsUp) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    TapSetup s = dual_stack();
    s.configure = false;
    auto tap = setup_tap_here(s);
    if (!tap) return "ERR: " + tap.error();
    return describe("moat0");
  });
  ASSERT_EQ(out.find("ERR"), std::string::npos) << out;
  EXPECT_NE(out.find("mtu 1400"), std::string::npos) << out;
  EXPECT_NE(out.find("link/ether 02:00:00:00:00:02"), std::string::npos) << out;
  EXPECT_NE(out.find("moat0: <BROADCAST,MULTICAST,UP"), std::string::npos) << out;
  EXPECT_NE(out.find("1: lo: <LOOPBACK,UP,LOWER_UP>"), std::string::npos) << out;
  EXPECT_EQ(out.find("inet "), std::string::npos) << out;
  EXPECT_EQ(out.find("fd42"), std::string::npos) << out;
  EXPECT_EQ(out.find("default via"), std::string::npos) << out;
  EXPECT_EQ(out.find("PERMANENT"), std::string::npos) << out;
  EXPECT_NE(out.find("accept_ra=1 autoconf=1 accept_dad=1"), std::string::npos) << out;  // kernel defaults
}

TEST(SetupTapHere, ExistingNameIsAnErrorAndIsLeftAlone) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    auto first = setup_tap_here(dual_stack());
    if (!first) return "ERR: first: " + first.error();
    std::string r;
    auto second = setup_tap_here(dual_stack());
    r += "second=" + (second ? std::string("ok") : second.error()) + "\n";
    TapSetup on_lo = dual_stack();
    on_lo.ifname = "lo";
    auto third = setup_tap_here(on_lo);
    r += "lo=" + (third ? std::string("ok") : third.error()) + "\n";
    return r + sh("ip -o link show | grep -c moat0; ip -o addr show dev moat0; ip -o link show lo");
  });
  EXPECT_NE(out.find("second=moat0: an interface of that name already exists"), std::string::npos) << out;
  EXPECT_NE(out.find("lo=lo: an interface of that name already exists"), std::string::npos) << out;
  EXPECT_NE(out.find("\n1\n"), std::string::npos) << out;  // exactly one moat0
  EXPECT_NE(out.find("inet 100.96.0.2/24"), std::string::npos) << out;
  EXPECT_NE(out.find("lo: <LOOPBACK,UP"), std::string::npos) << out;
}

TEST(SetupTapHere, LateFailureDeletesTheTap) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    TapSetup s = dual_stack();
    s.gateway4 = Ipv4Addr::from_octets(10, 9, 9, 9);  // not on the link: the route is refused
    auto tap = setup_tap_here(s);
    std::string r = "result=" + (tap ? std::string("ok") : tap.error()) + "\n";
    return r + "links=" + sh("ip -o link show | grep -c moat0");
  });
  EXPECT_NE(out.find("result=moat0: add default route via 10.9.9.9: Network is unreachable"), std::string::npos)
      << out;
  EXPECT_NE(out.find("links=0"), std::string::npos) << out;
}

TEST(SetupTapHere, BadMtuIsAnErrorAndLeavesNoTap) {
  MOAT_REQUIRE_ROOT();
  std::string out = in_new_netns([] {
    TapSetup s = dual_stack();
    s.mtu = 70000;
    auto tap = setup_tap_here(s);
    std::string r = "result=" + (tap ? std::string("ok") : tap.error()) + "\n";
    return r + "links=" + sh("ip -o link show | grep -c moat0");
  });
  EXPECT_NE(out.find("result=moat0: set MTU 70000: Invalid argument"), std::string::npos) << out;
  EXPECT_NE(out.find("links=0"), std::string::npos) << out;
}

}  // namespace
}  // namespace moat::ns
