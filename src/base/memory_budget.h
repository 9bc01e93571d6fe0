#pragma once
// MemoryBudget: one gateway's account of its user-space buffers (SPEC R-LIM-2).
//
// Whoever allocates a buffer that grows with what the guest or a host peer does (flow rings,
// the reordering pool, queues, DNS state, pins, pcap/audit buffers, later TLS buffers and the
// leaf cache) charges it here when it is really allocated and releases it when it is really
// freed, preferably through a `MemoryCharge` member that cannot forget the release. The
// budget itself allocates nothing and does no I/O; it is touched only on the loop thread.
//
// Levels, from `used / limit` (no hysteresis: they follow the charge exactly, and every
// consumer re-reads the level when it decides something, so nothing has to be woken):
//   normal    below 75 %
//   pressure  >= 75 %: host sockets are not read for to-guest data, advertised windows halve
//   refuse    >= 90 %: new flows and sessions are refused (R-POL-10 response), `limit_hit`
//   full      >= 100 %: from-guest frames other than TCP ACK/FIN/RST are dropped (drop.memory)
// try_charge() refuses what would reach the limit, so buffers that can wait (a flow's ring,
// a reordering chunk) fill the budget to just below 100 %: established flows keep moving
// while new ones are refused. Only charge() (memory that already exists, e.g. one frame)
// reaches the full level, and takes `used` past the limit by at most that one charge.
//
// Gauges: memory.used, memory.high_water, memory.budget and memory.level are kept current in
// the gateway's Counters; limits.hits.memory counts refusals.
#include <cstdint>
#include <functional>
#include <utility>

#include "base/counters.h"
#include "base/time.h"

namespace moat {

enum class MemoryLevel : uint8_t { normal = 0, pressure = 1, refuse = 2, full = 3 };

class MemoryBudget {
 public:
  /// `limit` bytes (limits.memory_budget); 0 = unlimited (tests, embedders that opt out).
  explicit MemoryBudget(uint64_t limit, Counters* counters = nullptr) noexcept;
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  [[nodiscard]] uint64_t limit() const noexcept { return limit_; }
  [[nodiscard]] uint64_t used() const noexcept { return used_; }
  [[nodiscard]] uint64_t high_water() const noexcept { return high_water_; }
  [[nodiscard]] MemoryLevel level() const noexcept { return level_; }
  [[nodiscard]] bool at_least(MemoryLevel l) const noexcept { return level_ >= l; }

  /// Would `n` more bytes stay below the limit (used + n < limit)?
  [[nodiscard]] bool fits(uint64_t n) const noexcept { return limit_ == 0 || (used_ < limit_ && n < limit_ - used_); }
  /// Charges `n` bytes if they fit (stay below the limit); false (nothing charged) otherwise.
  [[nodiscard]] bool try_charge(uint64_t n) noexcept;
  /// Charges `n` bytes unconditionally (memory that exists already or must exist).
  void charge(uint64_t n) noexcept;
  /// Returns `n` bytes. Releasing more than is charged is a bug: counted, clamped at 0.
  void release(uint64_t n) noexcept;

  /// At the refuse level: counts limits.hits.memory, calls the limit hook at most once per
  /// second (R-LIM-4: the audit `limit_hit`), and returns true (the caller refuses the flow).
  /// Below it: false, nothing counted.
  [[nodiscard]] bool refuse_new(Instant now);
  /// Called (rate-limited) when a new flow is refused for memory; the app audits it.
  void set_limit_hook(std::function<void()> hook) { hook_ = std::move(hook); }

 private:
  void update() noexcept;

  uint64_t limit_;
  uint64_t used_ = 0, high_water_ = 0;
  MemoryLevel level_ = MemoryLevel::normal;
  Counters* counters_;
  std::function<void()> hook_;
  Instant last_hook_{};
  bool hooked_ = false;
};

/// An RAII charge against a MemoryBudget (null budget = not accounted): released on
/// destruction or reset(), moved with its owner.
class MemoryCharge {
 public:
  MemoryCharge() = default;
  explicit MemoryCharge(MemoryBudget* budget) noexcept : budget_(budget) {}
  MemoryCharge(MemoryCharge&& o) noexcept : budget_(o.budget_), bytes_(std::exchange(o.bytes_, 0)) {}
  MemoryCharge& operator=(MemoryCharge&& o) noexcept {
    if (this != &o) {
      reset();
      budget_ = o.budget_;
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ~MemoryCharge() { reset(); }

  void set_budget(MemoryBudget* b) noexcept {
    reset();
    budget_ = b;
  }
  [[nodiscard]] MemoryBudget* budget() const noexcept { return budget_; }
  [[nodiscard]] uint64_t bytes() const noexcept { return bytes_; }
  /// Would growing to `n` bytes fit? (Always true without a budget or when shrinking.)
  [[nodiscard]] bool fits(uint64_t n) const noexcept {
    return !budget_ || n <= bytes_ || budget_->fits(n - bytes_);
  }
  /// Sets the charge to `n` bytes; growing fails (nothing changes) when it would not fit.
  [[nodiscard]] bool try_resize(uint64_t n) noexcept;
  /// Sets the charge to `n` bytes unconditionally.
  void resize(uint64_t n) noexcept;
  void reset() noexcept { resize(0); }

 private:
  MemoryBudget* budget_ = nullptr;
  uint64_t bytes_ = 0;
};

}  // namespace moat
