#include "base/memory_budget.h"

#include <gtest/gtest.h>

namespace moat {
namespace {

TEST(MemoryBudget, LevelsFollowTheCharge) {
  Counters c;
  MemoryBudget b(1000, &c);
  EXPECT_EQ(b.level(), MemoryLevel::normal);
  EXPECT_EQ(c.get(Counter::memory_budget), 1000u);
  ASSERT_TRUE(b.try_charge(749));
  EXPECT_EQ(b.level(), MemoryLevel::normal);
  ASSERT_TRUE(b.try_charge(1));  // 750 = 75 %
  EXPECT_EQ(b.level(), MemoryLevel::pressure);
  ASSERT_TRUE(b.try_charge(149));
  EXPECT_EQ(b.level(), MemoryLevel::pressure);
  ASSERT_TRUE(b.try_charge(1));  // 900 = 90 %
  EXPECT_EQ(b.level(), MemoryLevel::refuse);
  EXPECT_FALSE(b.try_charge(100));  // try_charge stays below the limit
  ASSERT_TRUE(b.try_charge(99));
  EXPECT_EQ(b.level(), MemoryLevel::refuse);
  b.charge(1);  // exactly the limit
  EXPECT_EQ(b.level(), MemoryLevel::full);
  EXPECT_EQ(c.get(Counter::memory_used), 1000u);
  EXPECT_EQ(c.get(Counter::memory_level), 3u);
  // No hysteresis: releasing goes straight back down.
  b.release(101);
  EXPECT_EQ(b.level(), MemoryLevel::pressure);
  b.release(899);
  EXPECT_EQ(b.level(), MemoryLevel::normal);
  EXPECT_EQ(b.used(), 0u);
  EXPECT_EQ(b.high_water(), 1000u);
  EXPECT_EQ(c.get(Counter::memory_high_water), 1000u);
}

TEST(MemoryBudget, TryChargeStaysBelowTheLimitChargeMayCrossItByOne) {
  MemoryBudget b(1000);
  EXPECT_FALSE(b.try_charge(1000));
  EXPECT_EQ(b.used(), 0u);
  ASSERT_TRUE(b.try_charge(990));
  EXPECT_FALSE(b.try_charge(10));
  EXPECT_TRUE(b.fits(9));
  EXPECT_FALSE(b.fits(10));
  b.charge(1514);  // a frame already received
  EXPECT_EQ(b.used(), 2504u);
  EXPECT_EQ(b.level(), MemoryLevel::full);
  EXPECT_FALSE(b.fits(0));
  EXPECT_FALSE(b.try_charge(1));
}

TEST(MemoryBudget, NeverNegative) {
  Counters c;
  MemoryBudget b(1000, &c);
  b.charge(10);
  b.release(50);
  EXPECT_EQ(b.used(), 0u);
  EXPECT_EQ(c.get(Counter::internal_errors), 1u);
  b.release(1);
  EXPECT_EQ(b.used(), 0u);
}

TEST(MemoryBudget, UnlimitedNeverRefuses) {
  MemoryBudget b(0);
  EXPECT_TRUE(b.try_charge(uint64_t{1} << 40));
  EXPECT_EQ(b.level(), MemoryLevel::normal);
  EXPECT_FALSE(b.refuse_new(Instant{}));
}

TEST(MemoryBudget, RefuseNewCountsEveryHitHooksOncePerSecond) {
  Counters c;
  MemoryBudget b(100, &c);
  int hooks = 0;
  b.set_limit_hook([&] { ++hooks; });
  const Instant t0 = Instant{} + std::chrono::hours(1);
  EXPECT_FALSE(b.refuse_new(t0));  // below 90 %
  b.charge(90);
  EXPECT_TRUE(b.refuse_new(t0));
  EXPECT_TRUE(b.refuse_new(t0 + std::chrono::milliseconds(999)));
  EXPECT_EQ(hooks, 1);
  EXPECT_TRUE(b.refuse_new(t0 + std::chrono::seconds(1)));
  EXPECT_EQ(hooks, 2);
  EXPECT_EQ(c.get(Counter::limits_hits_memory), 3u);
  b.release(1);
  EXPECT_FALSE(b.refuse_new(t0 + std::chrono::seconds(5)));
  EXPECT_EQ(c.get(Counter::limits_hits_memory), 3u);
}

TEST(MemoryCharge, ExactAfterRelease) {
  MemoryBudget b(1 << 20);
  {
    MemoryCharge a(&b);
    ASSERT_TRUE(a.try_resize(4096));
    MemoryCharge m(&b);
    m.resize(100);
    EXPECT_EQ(b.used(), 4196u);
    MemoryCharge moved(std::move(m));
    EXPECT_EQ(m.bytes(), 0u);
    EXPECT_EQ(b.used(), 4196u);
    ASSERT_TRUE(a.try_resize(1000));  // shrinking always works
    EXPECT_EQ(b.used(), 1100u);
    EXPECT_FALSE(a.try_resize(uint64_t{2} << 20));
    EXPECT_EQ(a.bytes(), 1000u);
    a = MemoryCharge(&b);
    EXPECT_EQ(b.used(), 100u);
  }
  EXPECT_EQ(b.used(), 0u);
  MemoryCharge none;  // no budget: nothing accounted, always fits
  EXPECT_TRUE(none.try_resize(uint64_t{1} << 40));
}

}  // namespace
}  // namespace moat
