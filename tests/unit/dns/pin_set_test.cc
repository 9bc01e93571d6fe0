#include "dns/pin_set.h"

#include <gtest/gtest.h>

#include <map>

namespace moat::dns {
namespace {

using namespace std::chrono_literals;

IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return IpAddr(Ipv4Addr::from_octets(a, b, c, d)); }

Record rec_a(std::string owner, IpAddr a, uint32_t ttl) {
  Record r;
  r.owner = std::move(owner);
  r.type = a.is_v6 ? kTypeAaaa : kTypeA;
  r.addr = a;
  r.ttl = ttl;
  return r;
}
Record rec_cname(std::string owner, std::string target, uint32_t ttl) {
  Record r;
  r.owner = std::move(owner);
  r.type = kTypeCname;
  r.target = std::move(target);
  r.ttl = ttl;
  return r;
}

struct PinSetTest : ::testing::Test {
  event::FakeClock clock;
  event::Loop loop{clock};
  PinSet pins{loop, PinConfig{300s, 24h, 65536}};
  bool pinned(const IpAddr& a, std::string_view name) {
    return pins.any_pin_matches(a, [&](std::string_view n) { return n == name; });
  }
};

TEST_F(PinSetTest, PinsQueryNameAndClampsTtl) {
  EXPECT_EQ(pins.update("www.example.com", {rec_a("www.example.com", v4(93, 184, 216, 34), 5)}), 1u);
  EXPECT_TRUE(pinned(v4(93, 184, 216, 34), "www.example.com"));
  clock.advance(299s);  // TTL 5 s is clamped up to pin_min_ttl = 300 s
  EXPECT_TRUE(pinned(v4(93, 184, 216, 34), "www.example.com"));
  clock.advance(2s);
  EXPECT_FALSE(pinned(v4(93, 184, 216, 34), "www.example.com"));
  EXPECT_EQ(pins.live(), 0u);
}

TEST_F(PinSetTest, ForEachListsLivePinsWithAddressAndExpiry) {
  pins.pin("a.test", v4(1, 2, 3, 4), 400s);
  pins.pin("b.test", v4(1, 2, 3, 4), 300s);
  Ipv6Addr six;
  six.bytes[0] = 0x20;
  six.bytes[1] = 0x01;
  six.bytes[15] = 1;
  pins.pin("c.test", IpAddr(six), 500s);
  std::map<std::string, std::pair<IpAddr, Instant>> seen;
  pins.for_each([&](std::string_view n, const IpAddr& a, Instant e) { seen[std::string(n)] = {a, e}; });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen["a.test"].first, IpAddr(v4(1, 2, 3, 4)));
  EXPECT_EQ(seen["c.test"].first, IpAddr(six));
  EXPECT_EQ(seen["a.test"].second - loop.now(), Duration(400s));
  clock.advance(350s);  // b.test expired
  seen.clear();
  pins.for_each([&](std::string_view n, const IpAddr&, Instant) { seen[std::string(n)] = {}; });
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen.count("b.test"), 0u);
}

TEST_F(PinSetTest, MaxTtlClamp) {
  pins.update("a.test", {rec_a("a.test", v4(1, 1, 1, 1), 1000000)});
  clock.advance(24h - 1s);
  EXPECT_TRUE(pinned(v4(1, 1, 1, 1), "a.test"));
  clock.advance(2s);
  EXPECT_FALSE(pinned(v4(1, 1, 1, 1), "a.test"));
}

TEST_F(PinSetTest, CnameChainPinsUnderQueryName) {
  std::vector<Record> ans{rec_cname("alias.test", "mid.test", 3600), rec_cname("mid.test", "www.test", 3600),
                          rec_a("www.test", v4(1, 2, 3, 4), 3600),
                          rec_a("unrelated.test", v4(6, 6, 6, 6), 3600)};  // poisoning attempt
  EXPECT_EQ(pins.update("alias.test", ans), 1u);
  EXPECT_TRUE(pinned(v4(1, 2, 3, 4), "alias.test"));
  EXPECT_FALSE(pinned(v4(6, 6, 6, 6), "alias.test"));
  EXPECT_FALSE(pinned(v4(6, 6, 6, 6), "unrelated.test"));
  EXPECT_EQ(pins.names_of(v4(1, 2, 3, 4)), std::vector<std::string>{"alias.test"});
}

TEST_F(PinSetTest, ChainUsesMinimumTtl) {
  std::vector<Record> ans{rec_cname("alias.test", "www.test", 400), rec_a("www.test", v4(1, 2, 3, 4), 7200)};
  pins.update("alias.test", ans);
  clock.advance(401s);
  EXPECT_FALSE(pinned(v4(1, 2, 3, 4), "alias.test"));
}

TEST_F(PinSetTest, CnameLoopRejected) {
  std::vector<Record> ans{rec_cname("a.test", "b.test", 60), rec_cname("b.test", "a.test", 60),
                          rec_a("a.test", v4(1, 2, 3, 4), 60)};
  EXPECT_EQ(pins.update("a.test", ans), 0u);
  EXPECT_FALSE(pinned(v4(1, 2, 3, 4), "a.test"));
}

TEST_F(PinSetTest, ChainLongerThan16Stops) {
  std::vector<Record> ans;
  for (int i = 0; i < 20; ++i) ans.push_back(rec_cname(std::string("n").append(std::to_string(i)).append(".test"), std::string("n").append(std::to_string(i + 1)).append(".test"), 600));
  ans.push_back(rec_a("n20.test", v4(9, 9, 9, 9), 600));  // 20 links away
  ans.push_back(rec_a("n10.test", v4(8, 8, 8, 8), 600));  // 10 links away
  EXPECT_EQ(pins.update("n0.test", ans), 1u);
  EXPECT_TRUE(pinned(v4(8, 8, 8, 8), "n0.test"));
  EXPECT_FALSE(pinned(v4(9, 9, 9, 9), "n0.test"));
}

TEST_F(PinSetTest, MergeNeverShortens) {
  pins.update("rr.test", {rec_a("rr.test", v4(1, 1, 1, 1), 3600)});
  clock.advance(100s);
  // A later round-robin answer with a shorter TTL and a different address.
  pins.update("rr.test", {rec_a("rr.test", v4(2, 2, 2, 2), 300), rec_a("rr.test", v4(1, 1, 1, 1), 300)});
  clock.advance(3000s);  // 3100 s after the first: 1.1.1.1 still pinned, 2.2.2.2 expired
  EXPECT_TRUE(pinned(v4(1, 1, 1, 1), "rr.test"));
  EXPECT_FALSE(pinned(v4(2, 2, 2, 2), "rr.test"));
  // Extending works.
  pins.update("rr.test", {rec_a("rr.test", v4(1, 1, 1, 1), 7200)});
  clock.advance(3000s);
  EXPECT_TRUE(pinned(v4(1, 1, 1, 1), "rr.test"));
}

TEST_F(PinSetTest, MappedIpv6StoredAsIpv4) {
  pins.update("m.test", {rec_a("m.test", IpAddr(*Ipv6Addr::parse("::ffff:5.6.7.8")), 600)});
  EXPECT_TRUE(pinned(v4(5, 6, 7, 8), "m.test"));
  EXPECT_TRUE(pinned(IpAddr(*Ipv6Addr::parse("::ffff:5.6.7.8")), "m.test"));
}

TEST(PinSetCapacity, EvictsSoonestExpiring) {
  event::FakeClock clock;
  event::Loop loop{clock};
  PinSet pins{loop, PinConfig{1s, 24h, 3}};
  pins.pin("a.test", v4(1, 0, 0, 1), 500s);
  pins.pin("b.test", v4(1, 0, 0, 2), 100s);  // soonest
  pins.pin("c.test", v4(1, 0, 0, 3), 900s);
  pins.pin("d.test", v4(1, 0, 0, 4), 700s);  // evicts b
  EXPECT_EQ(pins.live(), 3u);
  EXPECT_TRUE(pins.names_of(v4(1, 0, 0, 2)).empty());
  EXPECT_EQ(pins.names_of(v4(1, 0, 0, 1)).size(), 1u);
  EXPECT_EQ(pins.names_of(v4(1, 0, 0, 4)).size(), 1u);
  // Several names on one address.
  pins.pin("e.test", v4(1, 0, 0, 3), 1000s);  // evicts a (500 s)
  EXPECT_EQ(pins.names_of(v4(1, 0, 0, 3)).size(), 2u);
  EXPECT_TRUE(pins.names_of(v4(1, 0, 0, 1)).empty());
}

TEST(PinSetBudget, PinsAreChargedAndStopGrowingUnderPressure) {
  event::FakeClock clock;
  event::Loop loop{clock};
  MemoryBudget budget(100000);
  PinSet pins{loop, PinConfig{1s, 24h, 65536, &budget}};
  const std::string long_name(40, 'x');
  pins.pin("short.test", v4(1, 0, 0, 1), 100s);          // fits std::string's inline buffer
  pins.pin(long_name + ".test", v4(1, 0, 0, 2), 200s);  // two heap copies
  EXPECT_EQ(pins.charged(), 2 * PinSet::kPinCost + 2 * (long_name.size() + 5 + 1));
  EXPECT_EQ(budget.used(), pins.charged());
  // Fill the budget to the refuse level from elsewhere: new pins replace the soonest.
  budget.charge(95000);
  ASSERT_TRUE(budget.at_least(MemoryLevel::refuse));
  const uint64_t before = pins.charged();
  pins.pin("third.test", v4(1, 0, 0, 3), 300s);  // evicts short.test (100 s)
  EXPECT_EQ(pins.live(), 2u);
  EXPECT_TRUE(pins.names_of(v4(1, 0, 0, 1)).empty());
  EXPECT_EQ(pins.names_of(v4(1, 0, 0, 3)).size(), 1u);
  EXPECT_EQ(pins.charged(), before);
  budget.release(95000);
  // Expiry gives every byte back.
  clock.advance(std::chrono::seconds(400));
  EXPECT_EQ(pins.live(), 0u);
  EXPECT_EQ(pins.charged(), 0u);
  EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace moat::dns
