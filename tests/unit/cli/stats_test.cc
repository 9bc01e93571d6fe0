// `moat stats` finds gateways by their abstract control sockets in /proc/net/unix (R-CLI-9):
// only listening @moat/<uid>/ sockets of the caller's uid count.
#include "cli/stats.h"

#include <gtest/gtest.h>

namespace moat::cli {
namespace {

constexpr const char* kProcNetUnix =
    "Num       RefCount Protocol Flags    Type St Inode Path\n"
    "0000000000000000: 00000002 00000000 00010000 0001 01 1001 @moat/1000/box-a\n"
    "0000000000000000: 00000002 00000000 00010000 0001 01 1002 @moat/1000/box-b\n"
    "0000000000000000: 00000003 00000000 00000000 0001 03 1003 @moat/1000/box-c\n"  // a connected client
    "0000000000000000: 00000002 00000000 00010000 0001 01 1004 @moat/0/root-box\n"
    "0000000000000000: 00000002 00000000 00010000 0001 01 1005 @moat/10000/other\n"
    "0000000000000000: 00000002 00000000 00010000 0001 01 1006 /run/moat/ctl.sock\n"
    "0000000000000000: 00000002 00000000 00000000 0002 01 1007\n"
    "0000000000000000: 00000002 00000000 00010000 0001 01 1008 @moat/1000/box-a\n"
    "garbage line\n";

TEST(StatsDiscovery, ListeningSocketsOfThisUidOnly) {
  EXPECT_EQ(find_gateways(kProcNetUnix, 1000), (std::vector<std::string>{"box-a", "box-b"}));
  EXPECT_EQ(find_gateways(kProcNetUnix, 0), (std::vector<std::string>{"root-box"}));
  EXPECT_TRUE(find_gateways(kProcNetUnix, 1).empty());
  EXPECT_TRUE(find_gateways("", 1000).empty());
}

TEST(StatsDiscovery, InodesByPath) {
  EXPECT_EQ(socket_inodes(kProcNetUnix, "/run/moat/ctl.sock"), (std::vector<unsigned long>{1006}));
  EXPECT_EQ(socket_inodes(kProcNetUnix, "@moat/1000/box-a"), (std::vector<unsigned long>{1001, 1008}));
  EXPECT_TRUE(socket_inodes(kProcNetUnix, "@moat/1000/box-c").empty());
}

TEST(StatsCli, UsageErrorsExit2) {
  EXPECT_EQ(cmd_stats({"--name", "a", "--pid", "1"}), 2);
  EXPECT_EQ(cmd_stats({"--watch", "5ms"}), 2);
  EXPECT_EQ(cmd_stats({"--prometheus", "--json"}), 2);
  EXPECT_EQ(cmd_stats({"--bogus"}), 2);
  EXPECT_EQ(cmd_stats({"--name", "a/b"}), 2);
}

TEST(StatsCli, NoSuchGatewayExits1) {
  EXPECT_EQ(cmd_stats({"--control", "@moat-unit-no-such-gateway"}), 1);
}

}  // namespace
}  // namespace moat::cli
