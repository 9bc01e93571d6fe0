#pragma once
// Token bucket for the per-service reply limits (ARP/NDP 100/s, DHCP 50/s, echo 1000/s).
#include <algorithm>
#include <cstdint>

#include "base/time.h"

namespace moat {

class TokenBucket {
 public:
  /// rate tokens per second, at most burst stored. Starts full.
  TokenBucket(double rate_per_s, double burst) noexcept : rate_(rate_per_s), burst_(burst), tokens_(burst) {}

  /// Takes one token if available at `now`.
  bool take(Instant now, double n = 1.0) noexcept {
    refill(now);
    if (tokens_ < n) return false;
    tokens_ -= n;
    return true;
  }

 private:
  void refill(Instant now) noexcept {
    if (!started_) {
      started_ = true;
      last_ = now;
      return;
    }
    if (now <= last_) return;
    double secs = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + secs * rate_);
    last_ = now;
  }
  double rate_, burst_, tokens_;
  Instant last_{};
  bool started_ = false;
};

}  // namespace moat
