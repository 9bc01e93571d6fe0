#include "event/timer_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "event/clock.h"

namespace moat::event {
namespace {

TEST(FakeClockTest, SetAndAdvance) {
  FakeClock clock;
  const Instant t0 = clock.now();
  EXPECT_NE(t0, Instant{});
  clock.advance(5ms);
  EXPECT_EQ(clock.now(), t0 + 5ms);
  clock.set(t0 + 1s);
  EXPECT_EQ(clock.now(), t0 + 1s);
}

TEST(TimerQueueTest, FiresInDeadlineOrder) {
  FakeClock clock;
  TimerQueue q;
  std::string order;
  const Instant t0 = clock.now();
  TimerHandle c = q.schedule(t0 + 30ms, [&] { order += 'c'; });
  TimerHandle a = q.schedule(t0 + 10ms, [&] { order += 'a'; });
  TimerHandle b = q.schedule(t0 + 20ms, [&] { order += 'b'; });
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.next_deadline(), t0 + 10ms);

  EXPECT_EQ(q.run_expired(t0 + 9ms), 0u);  // never early
  EXPECT_EQ(q.run_expired(t0 + 25ms), 2u);
  EXPECT_EQ(order, "ab");
  EXPECT_FALSE(a.pending());
  EXPECT_TRUE(c.pending());
  EXPECT_EQ(q.next_deadline(), t0 + 30ms);
  EXPECT_EQ(q.run_expired(t0 + 30ms), 1u);  // deadline == now fires
  EXPECT_EQ(order, "abc");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.next_deadline(), std::nullopt);
}

TEST(TimerQueueTest, EqualDeadlinesFireInSchedulingOrder) {
  TimerQueue q;
  const Instant t = Instant{} + 1s;
  std::string order;
  std::vector<TimerHandle> hs;
  for (char ch = 'a'; ch <= 'h'; ++ch) hs.push_back(q.schedule(t, [&order, ch] { order += ch; }));
  q.run_expired(t);
  EXPECT_EQ(order, "abcdefgh");
}

TEST(TimerQueueTest, ManyTimersComeOutSorted) {
  TimerQueue q;
  std::vector<int> fired;
  std::vector<TimerHandle> hs;
  // A fixed pseudo-random permutation of deadlines, with every third one cancelled.
  for (int i = 0; i < 200; ++i) {
    const int ms = (i * 7919) % 200;
    hs.push_back(q.schedule(Instant{} + std::chrono::milliseconds(ms), [&fired, ms] { fired.push_back(ms); }));
  }
  for (size_t i = 0; i < hs.size(); i += 3) hs[i].cancel();
  q.run_expired(Instant{} + 1s);
  EXPECT_EQ(fired.size(), 200u - 67u);
  EXPECT_TRUE(std::is_sorted(fired.begin(), fired.end()));
}

TEST(TimerQueueTest, DestroyingHandleCancels) {
  TimerQueue q;
  int fired = 0;
  {
    TimerHandle h = q.schedule(Instant{} + 1ms, [&] { ++fired; });
    EXPECT_TRUE(h.pending());
  }
  EXPECT_TRUE(q.empty());
  q.run_expired(Instant{} + 1s);
  EXPECT_EQ(fired, 0);
}

TEST(TimerQueueTest, OverwritingHandleCancelsOldTimer) {
  TimerQueue q;
  std::string order;
  TimerHandle h = q.schedule(Instant{} + 1ms, [&] { order += 'a'; });
  h = q.schedule(Instant{} + 2ms, [&] { order += 'b'; });
  EXPECT_EQ(q.size(), 1u);
  q.run_expired(Instant{} + 1s);
  EXPECT_EQ(order, "b");
}

TEST(TimerQueueTest, MovedHandleKeepsTimer) {
  TimerQueue q;
  int fired = 0;
  TimerHandle outer;
  {
    TimerHandle inner = q.schedule(Instant{} + 1ms, [&] { ++fired; });
    outer = std::move(inner);
    EXPECT_FALSE(inner.pending());  // NOLINT(bugprone-use-after-move): moved-from is empty
  }
  EXPECT_TRUE(outer.pending());
  q.run_expired(Instant{} + 1ms);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(outer.pending());
}

TEST(TimerQueueTest, StaleHandleDoesNotCancelSlotReuser) {
  TimerQueue q;
  int a = 0, b = 0;
  TimerHandle ha = q.schedule(Instant{} + 1ms, [&] { ++a; });
  q.run_expired(Instant{} + 1ms);  // frees the slot
  TimerHandle hb = q.schedule(Instant{} + 2ms, [&] { ++b; });  // reuses it
  ha.cancel();                                                  // stale: must not touch hb
  EXPECT_TRUE(hb.pending());
  q.run_expired(Instant{} + 2ms);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
}

TEST(TimerQueueTest, CallbackReschedulesItself) {
  FakeClock clock;
  TimerQueue q;
  int ticks = 0;
  TimerHandle h;
  std::function<void()> tick = [&] {
    ++ticks;
    // Overwrites (and so "cancels") the handle of the timer that is running: a no-op.
    h = q.schedule(clock.now() + 10ms, tick);
  };
  h = q.schedule(clock.now() + 10ms, tick);
  for (int i = 0; i < 5; ++i) {
    clock.advance(10ms);
    EXPECT_EQ(q.run_expired(clock.now()), 1u);
  }
  EXPECT_EQ(ticks, 5);
  EXPECT_TRUE(h.pending());
  h.cancel();
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueueTest, ZeroDelayRearmDoesNotSpin) {
  TimerQueue q;
  const Instant now = Instant{} + 1s;
  int runs = 0;
  TimerHandle h;
  std::function<void()> again = [&] {
    ++runs;
    h = q.schedule(now, again);  // already due, but scheduled during run_expired()
  };
  h = q.schedule(now, again);
  EXPECT_EQ(q.run_expired(now), 1u);
  EXPECT_EQ(q.run_expired(now), 1u);
  EXPECT_EQ(runs, 2);
  h.cancel();
}

TEST(TimerQueueTest, CallbackCancelsAnotherDueTimer) {
  TimerQueue q;
  std::string order;
  TimerHandle b;
  TimerHandle a = q.schedule(Instant{} + 1ms, [&] {
    order += 'a';
    b.cancel();
  });
  b = q.schedule(Instant{} + 2ms, [&] { order += 'b'; });
  TimerHandle c = q.schedule(Instant{} + 3ms, [&] { order += 'c'; });
  q.run_expired(Instant{} + 1s);
  EXPECT_EQ(order, "ac");
}

TEST(TimerQueueTest, CallbackDestroysItsOwnHandle) {
  TimerQueue q;
  int fired = 0;
  auto h = std::make_unique<TimerHandle>();
  *h = q.schedule(Instant{} + 1ms, [&] {
    ++fired;
    h.reset();
  });
  q.run_expired(Instant{} + 1ms);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(h, nullptr);
}

TEST(TimerQueueTest, RescheduleMovesDeadline) {
  TimerQueue q;
  std::string order;
  TimerHandle a = q.schedule(Instant{} + 1ms, [&] { order += 'a'; });
  TimerHandle b = q.schedule(Instant{} + 2ms, [&] { order += 'b'; });
  EXPECT_TRUE(a.reschedule(Instant{} + 3ms));
  EXPECT_EQ(a.deadline(), Instant{} + 3ms);
  EXPECT_EQ(q.next_deadline(), Instant{} + 2ms);
  q.run_expired(Instant{} + 10ms);
  EXPECT_EQ(order, "ba");
  EXPECT_FALSE(a.reschedule(Instant{} + 20ms));  // already fired
  EXPECT_EQ(a.deadline(), std::nullopt);
}

}  // namespace
}  // namespace moat::event
