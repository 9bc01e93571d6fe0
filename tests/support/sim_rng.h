#pragma once
// Seeded randomness for the deterministic harness (tests/unit/harness): one splitmix64
// stream per use, so the same seed always gives the same run.
#include <cstdint>

namespace moat::test {

/// splitmix64 (Steele, Lea & Flood 2014): tiny, fast, and good enough for test decisions.
class SimRng {
 public:
  explicit SimRng(uint64_t seed) noexcept : s_(seed) {}
  uint64_t next() noexcept {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// True with probability p (0 <= p <= 1).
  bool chance(double p) noexcept { return p > 0 && double(next() >> 11) * 0x1.0p-53 < p; }
  /// Uniform in [0, n) (n > 0).
  uint64_t below(uint64_t n) noexcept { return next() % n; }

 private:
  uint64_t s_;
};

/// Makes every getrandom(2) of this process (the TCP ISN key, the flow-table hash key,
/// the IPv6 fragment id seed...) a splitmix64 stream from `seed`. Only binaries that link
/// tests/support/det_getrandom.cc have it: that file defines getrandom() itself, which the
/// static moat libraries then call instead of libc's.
void set_getrandom_seed(uint64_t seed) noexcept;
/// getrandom() calls answered since the process started (a test checks the override is live).
uint64_t getrandom_calls() noexcept;

}  // namespace moat::test
