#pragma once
// The one place moat reads time. Only event::Loop calls Clock::now(); everything else gets
// `Instant now` from the loop (STYLE "Time and timers"; Envoy's TimeSource, smoltcp).
#include "base/time.h"

namespace moat::event {

/// Source of monotonic time for a Loop.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Current monotonic time. Must never go backwards.
  [[nodiscard]] virtual Instant now() const = 0;
};

/// Production clock: std::chrono::steady_clock (CLOCK_MONOTONIC).
class SystemClock final : public Clock {
 public:
  [[nodiscard]] Instant now() const override { return std::chrono::steady_clock::now(); }
};

/// Test clock that only moves when told to (Envoy's SimulatedTimeSystem, reduced).
/// Not thread-safe: drive it from the thread that runs the loop.
class FakeClock final : public Clock {
 public:
  /// Starts one hour after the epoch, so `Instant{}` stays usable as an "unset" sentinel.
  FakeClock() noexcept = default;
  explicit FakeClock(Instant start) noexcept : now_(start) {}

  [[nodiscard]] Instant now() const override { return now_; }
  /// Jumps to `t`. Moving backwards is a test bug (monotonic clocks don't).
  void set(Instant t) noexcept { now_ = t; }
  void advance(Duration d) noexcept { now_ += d; }

 private:
  Instant now_{std::chrono::hours(1)};
};

}  // namespace moat::event
