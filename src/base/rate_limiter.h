#pragma once
// RateLimiter: one direction's R-RATE-1 limits — a bandwidth bucket (Ethernet-frame bytes)
// and an ops bucket (frames; a GSO super-frame counts as its segments), either optional.
//
// Each bucket holds up to `burst` tokens and refills continuously at `rate` per second; it
// starts full, plus a one-time `initial_burst` that is spent first and never refilled. A
// frame may go whenever neither bucket is in debt: it takes what it needs, possibly driving
// a bucket below zero (a frame larger than the whole burst still goes once the bucket is
// full), and the next frame waits until the debt is repaid. So the long-run rate is exact
// and a single frame is never refused for being large.
//
// No allocation, no I/O, no clock of its own: the caller passes `now` (the loop's time).
#include <algorithm>
#include <cstdint>
#include <optional>

#include "base/time.h"

namespace moat {

/// One bucket's settings; rate 0 = this bucket is off.
struct BucketSpec {
  double rate = 0;           ///< tokens per second
  double burst = 0;          ///< capacity; 0 = the R-RATE-1 default (100 ms of rate, at least `min_burst`)
  double initial_burst = 0;  ///< one-time extra tokens
};

/// A direction: bandwidth in bytes/s, ops in frames/s.
struct RateSpec {
  BucketSpec bandwidth;
  BucketSpec ops;
  [[nodiscard]] bool enabled() const noexcept { return bandwidth.rate > 0 || ops.rate > 0; }
};

class RateLimiter {
 public:
  static constexpr double kMinBandwidthBurst = 64 * 1024;  ///< R-RATE-1
  static constexpr double kMinOpsBurst = 16;

  RateLimiter() = default;
  explicit RateLimiter(const RateSpec& s) noexcept { set(s); }

  /// Replaces the limits (rate.set): buckets start full again.
  void set(const RateSpec& s) noexcept {
    spec_ = s;
    bytes_ = Bucket(s.bandwidth, kMinBandwidthBurst);
    ops_ = Bucket(s.ops, kMinOpsBurst);
  }
  [[nodiscard]] const RateSpec& spec() const noexcept { return spec_; }
  [[nodiscard]] bool enabled() const noexcept { return spec_.enabled(); }

  /// May a frame go now (no bucket in debt)? Always true when disabled.
  [[nodiscard]] bool ready(Instant now) noexcept {
    if (!enabled()) return true;
    bytes_.refill(now);
    ops_.refill(now);
    const bool r = bytes_.tokens >= 0 && ops_.tokens >= 0;
    if (!r && !throttled_since_) throttled_since_ = now;
    if (r && throttled_since_) {
      throttled_ += now - *throttled_since_;
      throttled_since_.reset();
    }
    return r;
  }
  /// Charges one frame of `bytes` that counts as `frames` ops (call after ready()).
  void spend(uint64_t bytes, uint32_t frames, Instant now) noexcept {
    if (!enabled()) return;
    bytes_.take(double(bytes), now);
    ops_.take(double(frames), now);
  }
  /// When ready() will be true again (now when it is).
  [[nodiscard]] Instant ready_at(Instant now) noexcept {
    if (!enabled()) return now;
    return std::max(bytes_.repaid_at(now), ops_.repaid_at(now));
  }
  /// Tokens now (bandwidth bytes, ops) and the time spent throttled, for the stats.
  [[nodiscard]] double bandwidth_tokens() const noexcept { return bytes_.tokens; }
  /// The bandwidth bucket's capacity (the configured burst or its default); 0 when off.
  [[nodiscard]] double bandwidth_burst() const noexcept { return bytes_.burst; }
  [[nodiscard]] double ops_tokens() const noexcept { return ops_.tokens; }
  [[nodiscard]] Duration throttled() const noexcept { return throttled_; }

 private:
  struct Bucket {
    Bucket() = default;
    Bucket(const BucketSpec& s, double min_burst) noexcept
        : rate(s.rate), burst(s.rate <= 0 ? 0 : (s.burst > 0 ? s.burst : std::max(min_burst, s.rate / 10))),
          tokens(burst), extra(std::max(0.0, s.initial_burst)) {}
    void refill(Instant now) noexcept {
      if (rate <= 0) return;
      if (!started) {
        started = true;
        last = now;
        return;
      }
      if (now <= last) return;
      tokens = std::min(burst, tokens + std::chrono::duration<double>(now - last).count() * rate);
      last = now;
    }
    void take(double n, Instant now) noexcept {
      if (rate <= 0) return;
      refill(now);
      const double from_extra = std::min(extra, n);
      extra -= from_extra;
      tokens -= n - from_extra;
    }
    [[nodiscard]] Instant repaid_at(Instant now) noexcept {
      if (rate <= 0) return now;
      refill(now);
      if (tokens >= 0) return now;
      // At least 1 ms ahead (R-RATE-3 forbids finer refill intervals).
      const auto wait = std::chrono::duration<double>(-tokens / rate);
      return now + std::max<Duration>(std::chrono::milliseconds(1), std::chrono::duration_cast<Duration>(wait));
    }
    double rate = 0, burst = 0, tokens = 0, extra = 0;
    Instant last{};
    bool started = false;
  };
  RateSpec spec_;
  Bucket bytes_, ops_;
  Duration throttled_{};
  std::optional<Instant> throttled_since_;
};

}  // namespace moat
