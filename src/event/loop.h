#pragma once
// event::Loop — one epoll loop per gateway thread (SPEC §2.1). It owns the only clock read,
// the timer queue (whose earliest deadline becomes the epoll timeout) and the eventfd
// through which other threads post work. See src/event/README.md.
#include <sys/epoll.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "event/clock.h"
#include "event/timer_queue.h"

namespace moat::event {

class Loop;

/// Receives readiness for one watched fd. Implemented by long-lived components
/// (transports, flows); registering one never allocates a closure.
struct IoHandler {
  /// `events` is the EPOLL* mask the kernel reported (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP...).
  virtual void on_io(uint32_t events) = 0;

 protected:
  ~IoHandler() = default;  // not owned through this interface
};

/// RAII registration of one fd with a Loop (Envoy's FileEventPtr). Destroying it removes
/// the fd from epoll; events for it still sitting in the current epoll batch are ignored.
/// Destroy the Watch *before* closing its fd (declare the UniqueFd first in a class): a
/// closed fd number can be reused and DEL would then hit the wrong registration.
/// The Loop must outlive every Watch.
class [[nodiscard]] Watch {
 public:
  Watch() noexcept = default;
  Watch(Watch&& o) noexcept;
  Watch& operator=(Watch&& o) noexcept;
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  ~Watch() { reset(); }

  /// Replaces the epoll event mask (e.g. add EPOLLOUT while output is queued). A no-op
  /// (no syscall) when the mask is unchanged. EBADF if the Watch is empty.
  /// EPOLL_CTL_MOD with the current mask even when unchanged. The kernel re-polls the
  /// fd: for an edge-triggered TCP socket whose send buffer is full this sets
  /// SOCK_NOSPACE, so an EPOLLOUT edge follows once space frees (used to reopen a
  /// guest's TCP window without polling).
  Status rearm();
  Status modify(uint32_t epoll_events);
  /// Deregisters now; the Watch becomes empty. Idempotent.
  void reset() noexcept;
  [[nodiscard]] bool active() const noexcept;
  /// Current event mask (0 when empty).
  [[nodiscard]] uint32_t events() const noexcept;

 private:
  friend class Loop;
  Watch(Loop* loop, uint32_t index, uint32_t generation) noexcept
      : loop_(loop), index_(index), generation_(generation) {}

  Loop* loop_ = nullptr;
  uint32_t index_ = 0;
  uint32_t generation_ = 0;
};

/// Epoll event loop. Everything except post() and stop() must be called on the loop thread.
///
/// One iteration of run_once():
///   1. timeout = min(max_wait, earliest timer deadline - clock.now()), rounded *up* to
///      whole milliseconds so no timer fires early; 0 if a timer is already due.
///   2. epoll_wait(batch of 64).
///   3. now() := clock.now() — read once; every handler in this iteration sees that value.
///   4. dispatch fd events in batch order (stale ones skipped by generation check);
///   5. fire due timers (TimerQueue::run_expired(now()));
///   6. run posted tasks if the wake eventfd fired;
///   7. sweep watches destroyed during dispatch.
class Loop {
 public:
  /// Blocks until something happens (no timeout) when passed to run_once().
  static constexpr Duration kForever = Duration::max();
  static constexpr int kEpollBatch = 64;

  /// Creates the epoll fd and the wake eventfd; failing to do so at start-up is fatal.
  /// TODO(lead): a Result-returning factory if the C ABI must survive fd exhaustion.
  explicit Loop(Clock& clock);
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  /// All Watches and pending TimerHandles must be gone (debug assert). Unrun posted tasks
  /// are destroyed without running.
  ~Loop();

  /// Registers `fd` for `epoll_events`, dispatching to `handler`, which must outlive the
  /// Watch. Errors are epoll_ctl's (EBADF, EEXIST if already watched, EPERM for regular
  /// files, ENOMEM/ENOSPC).
  Result<Watch> watch(int fd, uint32_t epoll_events, IoHandler& handler);
  /// Same with a closure; it is stored at registration (may allocate) and never copied
  /// afterwards, so dispatch does not allocate. It may destroy its own Watch.
  Result<Watch> watch(int fd, uint32_t epoll_events, std::function<void(uint32_t)> on_io);

  /// Runs `callback` on this thread once now() >= deadline. Destroying the handle cancels.
  TimerHandle schedule_at(Instant deadline, std::function<void()> callback);
  /// schedule_at(now() + delay, ...).
  TimerHandle schedule_after(Duration delay, std::function<void()> callback);

  /// Queues `task` to run on the loop thread in a later iteration. Thread-safe; the only
  /// way other threads reach loop state (STYLE "Threading"). Allocates (queue, closure).
  void post(std::function<void()> task);

  /// Iterates until stop(). If stop() was called before run(), returns at once.
  void run();
  /// Makes run() return after the current iteration. Thread-safe. Consumed by run().
  void stop() noexcept;
  /// One iteration (see class comment), waiting at most `max_wait` for the first event.
  /// Returns the number of fd events, timers and posted tasks dispatched. Not reentrant.
  size_t run_once(Duration max_wait);

  /// Time for protocol code: during dispatch, the value read once after epoll_wait
  /// returned; outside dispatch (set-up, tests) a fresh clock read.
  [[nodiscard]] Instant now() const noexcept { return dispatching_ ? now_ : clock_.now(); }
  [[nodiscard]] Clock& clock() const noexcept { return clock_; }
  /// Earliest timer deadline (for tests and stats).
  [[nodiscard]] std::optional<Instant> next_deadline() const noexcept { return timers_.next_deadline(); }
  [[nodiscard]] size_t watch_count() const noexcept { return active_watches_; }
  [[nodiscard]] size_t timer_count() const noexcept { return timers_.size(); }

 private:
  friend class Watch;

  // One registered fd. Slots live in a deque so a running closure never moves when a
  // callback registers more watches; a slot released during dispatch is only recycled
  // by sweep() after the batch (passt's flow_defer_handler, Envoy's deferredDelete).
  struct WatchSlot {
    int fd = -1;
    uint32_t events = 0;
    uint32_t generation = 1;  // bumped on release; the epoll u64 carries {index, generation}
    bool active = false;
    IoHandler* handler = nullptr;
    std::function<void(uint32_t)> on_io;
  };
  static constexpr uint64_t kWakeToken = UINT64_MAX;  // epoll data for the wake eventfd

  Result<Watch> add_watch(int fd, uint32_t epoll_events, IoHandler* handler,
                          std::function<void(uint32_t)> on_io);
  WatchSlot* active_slot(uint32_t index, uint32_t generation) noexcept;
  Status modify_watch(uint32_t index, uint32_t generation, uint32_t epoll_events, bool force = false);
  void remove_watch(uint32_t index, uint32_t generation) noexcept;
  void dispatch_io(uint64_t token, uint32_t events);
  size_t run_posted();
  void sweep();
  void wake() noexcept;
  [[nodiscard]] int epoll_timeout_ms(Duration max_wait) const noexcept;
  static uint64_t pack(uint32_t index, uint32_t generation) noexcept {
    return (uint64_t{generation} << 32) | index;
  }

  Clock& clock_;
  Instant now_;
  bool dispatching_ = false;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;
  std::array<epoll_event, kEpollBatch> events_{};

  std::deque<WatchSlot> watches_;
  std::vector<uint32_t> free_watches_;
  std::vector<uint32_t> released_during_dispatch_;
  size_t active_watches_ = 0;

  TimerQueue timers_;

  std::atomic<bool> stop_requested_{false};
  std::mutex post_mutex_;
  std::vector<std::function<void()>> posted_;   // guarded by post_mutex_
  std::vector<std::function<void()>> running_;  // loop thread only; swapped with posted_
};

}  // namespace moat::event
