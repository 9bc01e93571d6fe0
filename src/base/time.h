#pragma once
// Time vocabulary. Protocol code receives `Instant now` from the loop and never reads
// a clock itself (smoltcp, passt); tests drive it with event::FakeClock.
#include <chrono>

namespace moat {

using Duration = std::chrono::nanoseconds;
using Instant = std::chrono::steady_clock::time_point;
using namespace std::chrono_literals;

/// Whole milliseconds of a duration (for logs and wire fields).
constexpr int64_t to_ms(Duration d) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace moat
