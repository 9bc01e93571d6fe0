#pragma once
// One timer queue per loop: a binary min-heap of slot indices keyed by (deadline, sequence),
// with generation-checked handles. There is no fd per timer (passt's timerfd-per-flow is
// what we avoid); the Loop turns next_deadline() into its epoll timeout.
//
// Timer lifecycle, state by state:
//   free     slot on the free list; generation identifies the last owner.
//   pending  in the heap; the TimerHandle with the same generation owns it.
//   firing   popped from the heap and released (generation bumped) *before* the callback
//            runs, so the callback may freely destroy or overwrite its own handle, schedule
//            new timers (they may reuse this slot) or cancel others.
// A handle whose generation no longer matches is stale: cancel()/pending() are no-ops.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "base/time.h"

namespace moat::event {

class TimerQueue;

/// Owns one scheduled timer. Destroying (or overwriting) it cancels the timer; it is
/// movable, not copyable. The TimerQueue (i.e. the Loop) must outlive every handle.
class [[nodiscard]] TimerHandle {
 public:
  TimerHandle() noexcept = default;
  TimerHandle(TimerHandle&& o) noexcept;
  TimerHandle& operator=(TimerHandle&& o) noexcept;
  TimerHandle(const TimerHandle&) = delete;
  TimerHandle& operator=(const TimerHandle&) = delete;
  ~TimerHandle() { cancel(); }

  /// Cancels the timer if it is still pending; the handle becomes empty. Idempotent.
  void cancel() noexcept;
  /// True while the timer is scheduled and has not fired or been cancelled.
  [[nodiscard]] bool pending() const noexcept;
  /// Deadline of a pending timer.
  [[nodiscard]] std::optional<Instant> deadline() const noexcept;
  /// Moves a pending timer to a new deadline, keeping its callback (no allocation).
  /// Returns false (and does nothing) when the timer is no longer pending.
  bool reschedule(Instant deadline) noexcept;

 private:
  friend class TimerQueue;
  TimerHandle(TimerQueue* q, uint32_t index, uint32_t generation) noexcept
      : queue_(q), index_(index), generation_(generation) {}

  TimerQueue* queue_ = nullptr;
  uint32_t index_ = 0;
  uint32_t generation_ = 0;
};

/// Binary heap of timers. Not thread-safe: owned by one Loop thread.
class TimerQueue {
 public:
  TimerQueue() = default;
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;
  /// Pending timers at destruction mean live handles that would dangle (debug assert).
  ~TimerQueue();

  /// Schedules `callback` to run from run_expired() once `now >= deadline`. Timers with
  /// equal deadlines fire in scheduling order. May allocate (slot growth, std::function).
  TimerHandle schedule(Instant deadline, std::function<void()> callback);

  /// Earliest pending deadline, if any (smoltcp's poll_at).
  [[nodiscard]] std::optional<Instant> next_deadline() const noexcept;

  /// Fires, in deadline order, every timer with deadline <= now that was scheduled before
  /// this call started. Timers scheduled by a callback during this call wait for the next
  /// call even if already due, so a callback that re-arms itself at `now` cannot spin.
  /// Returns the number of callbacks run.
  size_t run_expired(Instant now);

  [[nodiscard]] size_t size() const noexcept { return heap_.size(); }
  [[nodiscard]] bool empty() const noexcept { return heap_.empty(); }

 private:
  friend class TimerHandle;
  static constexpr uint32_t kNotQueued = UINT32_MAX;

  struct Slot {
    std::function<void()> callback;
    Instant deadline{};
    uint64_t seq = 0;             // scheduling order: FIFO tie-break and run_expired() cut-off
    uint32_t generation = 1;      // bumped whenever the slot is released
    uint32_t heap_pos = kNotQueued;
  };

  Slot* pending_slot(uint32_t index, uint32_t generation) noexcept;
  const Slot* pending_slot(uint32_t index, uint32_t generation) const noexcept;
  void cancel(uint32_t index, uint32_t generation) noexcept;
  bool reschedule(uint32_t index, uint32_t generation, Instant deadline) noexcept;
  /// Bumps the generation and returns the slot to the free list; the callback is moved
  /// out so the caller decides when it is destroyed (its captures may touch this queue).
  std::function<void()> release(uint32_t index) noexcept;

  [[nodiscard]] bool before(uint32_t a, uint32_t b) const noexcept;
  void place(size_t pos, uint32_t slot) noexcept;
  void sift_up(size_t pos) noexcept;
  void sift_down(size_t pos) noexcept;
  void heap_remove(size_t pos) noexcept;
  void heap_fix(size_t pos) noexcept;

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> heap_;  // slot indices; heap_[0] is the earliest
  uint64_t next_seq_ = 0;
};

}  // namespace moat::event
