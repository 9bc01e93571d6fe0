#include "ns/attach.h"

#include <gtest/gtest.h>
#include <net/if.h>
#include <poll.h>

#include "ns_test_util.h"

namespace moat::ns {
namespace {

using testing::NetnsHolder;
using testing::sh;

TapSetup v4_setup(const std::string& ifname) {
  TapSetup s;
  s.ifname = ifname;
  s.guest_mac = *MacAddr::parse("02:00:00:00:01:02");
  s.gateway_mac = *MacAddr::parse("02:00:00:00:01:01");
  s.mtu = 1500;
  s.guest4 = Ipv4Addr::from_octets(100, 96, 1, 2);
  s.prefix4 = 24;
  s.gateway4 = Ipv4Addr::from_octets(100, 96, 1, 1);
  s.dns4 = s.gateway4;
  return s;
}

TEST(AttachTap, ByPidAndByPath) {
  MOAT_REQUIRE_ROOT();
  NetnsHolder holder;
  ASSERT_GT(holder.pid(), 0);

  auto by_pid = attach_tap("", holder.pid(), v4_setup("moatp0"));
  ASSERT_TRUE(by_pid) << by_pid.error();
  EXPECT_TRUE(by_pid->valid());
  // A second default route would clash: the second TAP is --no-configure.
  TapSetup bare = v4_setup("moatp1");
  bare.configure = false;
  auto by_path = attach_tap(holder.netns_path(), 0, bare);
  ASSERT_TRUE(by_path) << by_path.error();

  // moat (this process) stays in its own namespace: the TAPs exist only in the target.
  EXPECT_EQ(::if_nametoindex("moatp0"), 0u);
  std::string inside = holder.run_inside([] { return sh("ip -o addr show; ip route; ip neigh"); });
  EXPECT_NE(inside.find("moatp0    inet 100.96.1.2/24"), std::string::npos) << inside;
  EXPECT_EQ(inside.find("moatp1    inet "), std::string::npos) << inside;
  EXPECT_NE(inside.find("moatp1    inet6 fe80::"), std::string::npos) << inside;
  EXPECT_NE(inside.find("default via 100.96.1.1 dev moatp0"), std::string::npos) << inside;
  EXPECT_NE(inside.find("100.96.1.1 dev moatp0 lladdr 02:00:00:00:01:01 PERMANENT"), std::string::npos) << inside;

  // Closing moat's fd removes the TAP.
  by_path = Result<UniqueFd, std::string>(UniqueFd());
  inside = holder.run_inside([] { return sh("ip -o link show"); });
  EXPECT_EQ(inside.find("moatp1"), std::string::npos) << inside;
  EXPECT_NE(inside.find("moatp0"), std::string::npos) << inside;
}

TEST(AttachTap, ErrorsNameTheFlag) {
  MOAT_REQUIRE_ROOT();
  NetnsHolder holder;
  ASSERT_GT(holder.pid(), 0);
  auto first = attach_tap("", holder.pid(), v4_setup("moate0"));
  ASSERT_TRUE(first) << first.error();
  auto dup = attach_tap("", holder.pid(), v4_setup("moate0"));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error(), "--pid " + std::to_string(holder.pid()) + ": moate0: an interface of that name already exists");

  auto not_ns = attach_tap("/etc/hostname", 0, v4_setup("moate1"));
  ASSERT_FALSE(not_ns);
  EXPECT_EQ(not_ns.error(), "--netns /etc/hostname: not a network namespace");

  auto missing = attach_tap("/run/netns/moat-test-does-not-exist", 0, v4_setup("moate1"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("--netns /run/netns/moat-test-does-not-exist: cannot open"), std::string::npos)
      << missing.error();

  auto setup = v4_setup("moate2");
  setup.mtu = 10;
  auto bad = attach_tap(holder.netns_path(), 0, setup);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "--netns " + holder.netns_path() + ": moate2: set MTU 10: Invalid argument");
  std::string inside = holder.run_inside([] { return sh("ip -o link show"); });
  EXPECT_EQ(inside.find("moate2"), std::string::npos) << inside;

  pid_t gone = holder.pid();
  holder.stop();
  auto dead = attach_tap("", gone, v4_setup("moate3"));
  ASSERT_FALSE(dead);
  EXPECT_EQ(dead.error(), "--pid " + std::to_string(gone) + ": no such process");
}

TEST(AttachTap, TargetWatchers) {
  MOAT_REQUIRE_ROOT();
  NetnsHolder holder;
  ASSERT_GT(holder.pid(), 0);
  auto tap = attach_tap("", holder.pid(), v4_setup("moatw0"));
  ASSERT_TRUE(tap) << tap.error();
  auto pidfd = open_pidfd(holder.pid());
  ASSERT_TRUE(pidfd);
  // Bind-mount the namespace like `ip netns add` does, then "delete" it.
  char dir[] = "/tmp/moat-ns-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/ns";
  std::string r = testing::in_child(CLONE_NEWNS, [&] {
    // Private mount ns so nothing shows on the host; the checks run in here too.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return std::string("ERR: private");
    int f = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (f < 0) return std::string("ERR: create");
    ::close(f);
    if (::mount(holder.netns_path().c_str(), path.c_str(), nullptr, MS_BIND, nullptr) < 0) return std::string("ERR: bind");
    auto id = netns_id(path);
    if (!id) return std::string("ERR: id");
    std::string out = "alive=" + std::to_string(netns_path_alive(path, *id));
    ::umount2(path.c_str(), MNT_DETACH);
    out += " after_umount=" + std::to_string(netns_path_alive(path, *id));
    return out;
  });
  ::unlink(path.c_str());
  ::rmdir(dir);
  EXPECT_EQ(r, "alive=1 after_umount=0");

  pollfd p{pidfd->get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0);
  holder.stop();
  EXPECT_EQ(::poll(&p, 1, 1000), 1);
  // The TAP fd pins the namespace: its last process is gone, the TAP is still readable.
  pollfd t{tap->get(), POLLIN | POLLERR | POLLHUP, 0};
  int n = ::poll(&t, 1, 50);
  EXPECT_TRUE(n == 0 || (t.revents & (POLLERR | POLLHUP)) == 0);
}

}  // namespace
}  // namespace moat::ns
