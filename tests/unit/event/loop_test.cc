#include "event/loop.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace moat::event {
namespace {

UniqueFd make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(fd.valid());
  return fd;
}

void signal(const UniqueFd& fd) {
  const uint64_t one = 1;
  ASSERT_EQ(::write(fd.get(), &one, sizeof one), 8);
}

// Result has no rvalue operator*, so unwrap move-only values through value() &&.
Watch must(Result<Watch> r) {
  EXPECT_TRUE(r.has_value()) << r.error().message();
  if (!r.has_value()) return Watch();
  return std::move(r).value();
}

void drain(const UniqueFd& fd) {
  uint64_t v;
  (void)!::read(fd.get(), &v, sizeof v);
}

struct CountingHandler final : IoHandler {
  int calls = 0;
  uint32_t last = 0;
  std::function<void()> extra;
  void on_io(uint32_t events) override {
    ++calls;
    last = events;
    if (extra) extra();
  }
};

TEST(LoopTest, TimersFireInOrderWithFakeClock) {
  FakeClock clock;
  Loop loop(clock);
  std::string order;
  TimerHandle b = loop.schedule_after(20ms, [&] { order += 'b'; });
  TimerHandle a = loop.schedule_after(10ms, [&] { order += 'a'; });
  TimerHandle c = loop.schedule_at(clock.now() + 30ms, [&] { order += 'c'; });

  EXPECT_EQ(loop.run_once(0ms), 0u);
  EXPECT_EQ(order, "");
  clock.advance(20ms);
  EXPECT_EQ(loop.run_once(0ms), 2u);
  EXPECT_EQ(order, "ab");
  clock.advance(10ms);
  EXPECT_EQ(loop.run_once(0ms), 1u);
  EXPECT_EQ(order, "abc");
}

TEST(LoopTest, NowIsFixedDuringDispatch) {
  FakeClock clock;
  Loop loop(clock);
  Instant seen_a{}, seen_b{};
  TimerHandle a = loop.schedule_after(1ms, [&] {
    seen_a = loop.now();
    clock.advance(5ms);  // time moving under a handler is not observed until next iteration
  });
  TimerHandle b = loop.schedule_after(1ms, [&] { seen_b = loop.now(); });
  clock.advance(1ms);
  loop.run_once(0ms);
  EXPECT_EQ(seen_a, seen_b);
  EXPECT_EQ(loop.now(), seen_a + 5ms);  // outside dispatch: fresh read
}

TEST(LoopTest, CancelledByHandleDestruction) {
  FakeClock clock;
  Loop loop(clock);
  int fired = 0;
  {
    TimerHandle h = loop.schedule_after(1ms, [&] { ++fired; });
    EXPECT_EQ(loop.timer_count(), 1u);
  }
  EXPECT_EQ(loop.timer_count(), 0u);
  clock.advance(1s);
  loop.run_once(0ms);
  EXPECT_EQ(fired, 0);
}

TEST(LoopTest, ReschedulingFromCallback) {
  FakeClock clock;
  Loop loop(clock);
  int ticks = 0;
  TimerHandle h;
  std::function<void()> tick = [&] {
    ++ticks;
    h = loop.schedule_after(10ms, tick);
  };
  h = loop.schedule_after(10ms, tick);
  for (int i = 0; i < 3; ++i) {
    clock.advance(10ms);
    loop.run_once(0ms);
  }
  EXPECT_EQ(ticks, 3);
  EXPECT_EQ(loop.next_deadline(), clock.now() + 10ms);
  h.cancel();
}

TEST(LoopTest, RealTimerNeverFiresEarly) {
  SystemClock clock;
  Loop loop(clock);
  const Instant deadline = clock.now() + 2500us;  // not a whole number of ms
  Instant fired_at{};
  TimerHandle h = loop.schedule_at(deadline, [&] { fired_at = clock.now(); });
  for (int i = 0; i < 100 && fired_at == Instant{}; ++i) loop.run_once(Loop::kForever);
  ASSERT_NE(fired_at, Instant{});
  EXPECT_GE(fired_at, deadline);
  EXPECT_LT(fired_at, deadline + 500ms);  // generous bound for loaded CI machines
}

TEST(LoopTest, RunOnceHonoursMaxWait) {
  SystemClock clock;
  Loop loop(clock);
  const Instant start = clock.now();
  EXPECT_EQ(loop.run_once(5ms), 0u);
  EXPECT_GE(clock.now() - start, 5ms);
}

TEST(LoopTest, WatchOnEventfdFires) {
  FakeClock clock;
  Loop loop(clock);
  UniqueFd efd = make_eventfd();
  CountingHandler h;
  Result<Watch> w = loop.watch(efd.get(), EPOLLIN, h);
  ASSERT_TRUE(w.has_value()) << w.error().message();
  EXPECT_EQ(loop.watch_count(), 1u);

  EXPECT_EQ(loop.run_once(0ms), 0u);
  signal(efd);
  EXPECT_EQ(loop.run_once(1s), 1u);
  EXPECT_EQ(h.calls, 1);
  EXPECT_TRUE(h.last & EPOLLIN);

  // Level-triggered: fires again until drained.
  loop.run_once(0ms);
  EXPECT_EQ(h.calls, 2);
  drain(efd);
  loop.run_once(0ms);
  EXPECT_EQ(h.calls, 2);
  w->reset();
  EXPECT_EQ(loop.watch_count(), 0u);
}

TEST(LoopTest, WatchOnPipeWithClosure) {
  FakeClock clock;
  Loop loop(clock);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd rd(p[0]), wr(p[1]);
  std::string got;
  Result<Watch> w = loop.watch(rd.get(), EPOLLIN, [&](uint32_t) {
    char buf[16];
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  });
  ASSERT_TRUE(w.has_value());
  ASSERT_EQ(::write(wr.get(), "hi", 2), 2);
  loop.run_once(1s);
  EXPECT_EQ(got, "hi");
  wr.reset();  // EOF shows up as EPOLLHUP
  Watch moved = std::move(*w);
  EXPECT_TRUE(moved.active());
  EXPECT_FALSE(w->active());
  loop.run_once(1s);
  EXPECT_EQ(got, "hi");
}

TEST(LoopTest, DestroyingWatchStopsEvents) {
  FakeClock clock;
  Loop loop(clock);
  UniqueFd efd = make_eventfd();
  CountingHandler h;
  {
    Result<Watch> w = loop.watch(efd.get(), EPOLLIN, h);
    ASSERT_TRUE(w.has_value());
  }
  signal(efd);
  loop.run_once(0ms);
  EXPECT_EQ(h.calls, 0);
  // The fd can be watched again afterwards (DEL really happened).
  Result<Watch> again = loop.watch(efd.get(), EPOLLIN, h);
  ASSERT_TRUE(again.has_value());
  loop.run_once(0ms);
  EXPECT_EQ(h.calls, 1);
}

TEST(LoopTest, ModifyChangesEvents) {
  FakeClock clock;
  Loop loop(clock);
  UniqueFd efd = make_eventfd();
  CountingHandler h;
  Result<Watch> w = loop.watch(efd.get(), 0, h);
  ASSERT_TRUE(w.has_value());
  loop.run_once(0ms);
  EXPECT_EQ(h.calls, 0);
  ASSERT_TRUE(w->modify(EPOLLOUT).has_value());  // eventfd is always writable
  EXPECT_EQ(w->events(), uint32_t{EPOLLOUT});
  loop.run_once(0ms);
  EXPECT_EQ(h.calls, 1);
  EXPECT_TRUE(h.last & EPOLLOUT);
  ASSERT_TRUE(w->modify(0).has_value());
  loop.run_once(0ms);
  EXPECT_EQ(h.calls, 1);
}

TEST(LoopTest, WatchErrors) {
  FakeClock clock;
  Loop loop(clock);
  CountingHandler h;
  Result<Watch> bad = loop.watch(-1, EPOLLIN, h);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().value, EBADF);
  UniqueFd efd = make_eventfd();
  Result<Watch> first = loop.watch(efd.get(), EPOLLIN, h);
  ASSERT_TRUE(first.has_value());
  Result<Watch> dup = loop.watch(efd.get(), EPOLLIN, h);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().value, EEXIST);
  EXPECT_EQ(loop.watch_count(), 1u);
  Watch empty;
  EXPECT_FALSE(empty.modify(EPOLLIN).has_value());
}

TEST(LoopTest, WatchDestroyedInsideTheSameBatch) {
  FakeClock clock;
  Loop loop(clock);
  UniqueFd fd_a = make_eventfd(), fd_b = make_eventfd();
  CountingHandler ha, hb;
  auto wa = std::make_unique<Watch>();
  auto wb = std::make_unique<Watch>();
  *wa = must(loop.watch(fd_a.get(), EPOLLIN, ha));
  *wb = must(loop.watch(fd_b.get(), EPOLLIN, hb));
  // Whichever runs first destroys the other; the other's event is in the same batch.
  ha.extra = [&] { wb.reset(); };
  hb.extra = [&] { wa.reset(); };
  signal(fd_a);
  signal(fd_b);
  EXPECT_EQ(loop.run_once(0ms), 2u);  // two events came back from epoll_wait...
  EXPECT_EQ(ha.calls + hb.calls, 1);  // ...but only one handler ran
  EXPECT_EQ(loop.watch_count(), 1u);
}

TEST(LoopTest, SlotReusedInsideBatchIgnoresStaleEvent) {
  FakeClock clock;
  Loop loop(clock);
  UniqueFd fd_a = make_eventfd(), fd_b = make_eventfd(), fd_c = make_eventfd();
  CountingHandler ha, hb, hc;
  Watch wa = must(loop.watch(fd_a.get(), EPOLLIN, ha));
  Watch wb = must(loop.watch(fd_b.get(), EPOLLIN, hb));
  Watch wc;
  // Whoever runs first replaces the other with a watch on fd_c (which is not ready).
  ha.extra = [&] {
    if (wb.active()) {
      wb.reset();
      wc = must(loop.watch(fd_c.get(), EPOLLIN, hc));
    }
  };
  hb.extra = [&] {
    if (wa.active()) {
      wa.reset();
      wc = must(loop.watch(fd_c.get(), EPOLLIN, hc));
    }
  };
  signal(fd_a);
  signal(fd_b);
  loop.run_once(0ms);
  EXPECT_EQ(ha.calls + hb.calls, 1);
  EXPECT_EQ(hc.calls, 0);
  signal(fd_c);
  loop.run_once(0ms);
  EXPECT_EQ(hc.calls, 1);
}

TEST(LoopTest, ClosureDestroysItsOwnWatch) {
  FakeClock clock;
  Loop loop(clock);
  UniqueFd efd = make_eventfd();
  auto w = std::make_unique<Watch>();
  int calls = 0;
  // The closure owns state whose lifetime must span the call even though the Watch dies.
  auto big = std::make_shared<std::string>(1000, 'x');
  *w = must(loop.watch(efd.get(), EPOLLIN, [&, big](uint32_t) {
    ++calls;
    w.reset();
    EXPECT_EQ(big->size(), 1000u);  // still alive: freed only after the batch
  }));
  signal(efd);
  loop.run_once(0ms);
  loop.run_once(0ms);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(big.use_count(), 1);  // swept after the batch
  EXPECT_EQ(loop.watch_count(), 0u);
}

TEST(LoopTest, CallbackRegistersManyWatches) {
  // Registering from a handler grows the slot table while a closure is running.
  FakeClock clock;
  Loop loop(clock);
  UniqueFd trigger = make_eventfd();
  std::vector<UniqueFd> fds;
  std::vector<Watch> watches;
  int extra_calls = 0;
  std::string tag = "stable";
  Watch w = must(loop.watch(trigger.get(), EPOLLIN, [&, tag](uint32_t) {
    for (int i = 0; i < 100; ++i) {
      fds.push_back(make_eventfd());
      watches.push_back(must(loop.watch(fds.back().get(), EPOLLIN, [&](uint32_t) { ++extra_calls; })));
    }
    EXPECT_EQ(tag, "stable");
    drain(trigger);
  }));
  signal(trigger);
  loop.run_once(0ms);
  EXPECT_EQ(loop.watch_count(), 101u);
  for (auto& f : fds) signal(f);
  loop.run_once(0ms);
  EXPECT_EQ(extra_calls, 64);  // one epoll batch
  loop.run_once(0ms);
  // Level-triggered, undrained: each batch is full; epoll round-robins the ready list.
  EXPECT_EQ(extra_calls, 128);
  watches.clear();
}

TEST(LoopTest, PostFromAnotherThreadWakesRun) {
  SystemClock clock;
  Loop loop(clock);
  std::atomic<bool> ran_on_loop{false};
  const std::thread::id loop_thread = std::this_thread::get_id();
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    loop.post([&] {
      ran_on_loop = std::this_thread::get_id() == loop_thread;
      loop.stop();
    });
  });
  loop.run();  // blocks with no timers and no watches until the post arrives
  other.join();
  EXPECT_TRUE(ran_on_loop);
}

TEST(LoopTest, ManyPostsFromManyThreadsAllRun) {
  SystemClock clock;
  Loop loop(clock);
  constexpr int kThreads = 4, kPerThread = 1000;
  int count = 0;  // loop thread only
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i)
        loop.post([&] {
          if (++count == kThreads * kPerThread) loop.stop();
        });
    });
  loop.run();
  for (auto& th : threads) th.join();
  EXPECT_EQ(count, kThreads * kPerThread);
}

TEST(LoopTest, PostFromLoopThreadRunsNextIteration) {
  FakeClock clock;
  Loop loop(clock);
  std::string order;
  loop.post([&] {
    order += 'a';
    loop.post([&] { order += 'b'; });
  });
  loop.run_once(0ms);
  EXPECT_EQ(order, "a");
  loop.run_once(0ms);
  EXPECT_EQ(order, "ab");
}

TEST(LoopTest, StopFromAnotherThread) {
  SystemClock clock;
  Loop loop(clock);
  std::thread other([&] {
    std::this_thread::sleep_for(20ms);
    loop.stop();
  });
  loop.run();
  other.join();
  SUCCEED();
}

TEST(LoopTest, StopBeforeRunReturnsImmediatelyAndIsConsumed) {
  FakeClock clock;
  Loop loop(clock);
  loop.stop();
  loop.run();  // returns at once
  int fired = 0;
  TimerHandle h = loop.schedule_after(0ms, [&] {
    ++fired;
    loop.stop();
  });
  loop.run();  // the earlier stop() was consumed; this one runs until the timer stops it
  EXPECT_EQ(fired, 1);
}

TEST(LoopTest, StopFromTimerCallback) {
  SystemClock clock;
  Loop loop(clock);
  int fired = 0;
  TimerHandle h = loop.schedule_after(3ms, [&] {
    ++fired;
    loop.stop();
  });
  loop.run();
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace moat::event
