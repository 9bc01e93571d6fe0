#include "event/loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <utility>

#include "base/check.h"
#include "base/log.h"

namespace moat::event {

// ---- Watch ----

Watch::Watch(Watch&& o) noexcept
    : loop_(std::exchange(o.loop_, nullptr)), index_(o.index_), generation_(o.generation_) {}

Watch& Watch::operator=(Watch&& o) noexcept {
  if (this != &o) {
    reset();
    loop_ = std::exchange(o.loop_, nullptr);
    index_ = o.index_;
    generation_ = o.generation_;
  }
  return *this;
}

Status Watch::modify(uint32_t epoll_events) {
  if (loop_ == nullptr) return unexpected(Errno{EBADF});
  return loop_->modify_watch(index_, generation_, epoll_events);
}

Status Watch::rearm() {
  if (loop_ == nullptr) return unexpected(Errno{EBADF});
  const uint32_t ev = events();
  return loop_->modify_watch(index_, generation_, ev, /*force=*/true);
}

void Watch::reset() noexcept {
  if (Loop* l = std::exchange(loop_, nullptr)) l->remove_watch(index_, generation_);
}

bool Watch::active() const noexcept {
  return loop_ != nullptr && loop_->active_slot(index_, generation_) != nullptr;
}

uint32_t Watch::events() const noexcept {
  if (loop_ == nullptr) return 0;
  const Loop::WatchSlot* s = loop_->active_slot(index_, generation_);
  return s != nullptr ? s->events : 0;
}

// ---- Loop ----

Loop::Loop(Clock& clock) : clock_(clock), now_(clock.now()) {
  epoll_fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) MOAT_LOG(error, "epoll_create1: %s", Errno::last().message());
  MOAT_CHECK(epoll_fd_.valid());
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) MOAT_LOG(error, "eventfd: %s", Errno::last().message());
  MOAT_CHECK(wake_fd_.valid());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeToken;
  MOAT_CHECK(::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev) == 0);
}

Loop::~Loop() {
  // A live Watch or TimerHandle would dangle.
  MOAT_ASSERT(active_watches_ == 0);
  MOAT_ASSERT(timers_.empty());
}

Result<Watch> Loop::watch(int fd, uint32_t epoll_events, IoHandler& handler) {
  return add_watch(fd, epoll_events, &handler, nullptr);
}

Result<Watch> Loop::watch(int fd, uint32_t epoll_events, std::function<void(uint32_t)> on_io) {
  MOAT_ASSERT(on_io != nullptr);
  return add_watch(fd, epoll_events, nullptr, std::move(on_io));
}

Result<Watch> Loop::add_watch(int fd, uint32_t epoll_events, IoHandler* handler,
                              std::function<void(uint32_t)> on_io) {
  uint32_t index;
  bool fresh = false;
  if (!free_watches_.empty()) {
    index = free_watches_.back();
  } else {
    MOAT_CHECK(watches_.size() < UINT32_MAX);
    index = static_cast<uint32_t>(watches_.size());
    fresh = true;
  }
  const uint32_t generation = fresh ? 1 : watches_[index].generation;
  epoll_event ev{};
  ev.events = epoll_events;
  ev.data.u64 = pack(index, generation);
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return sys_error();

  if (fresh) watches_.emplace_back();
  else free_watches_.pop_back();
  WatchSlot& s = watches_[index];
  s.fd = fd;
  s.events = epoll_events;
  s.generation = generation;
  s.active = true;
  s.handler = handler;
  s.on_io = std::move(on_io);
  ++active_watches_;
  return Watch(this, index, generation);
}

Loop::WatchSlot* Loop::active_slot(uint32_t index, uint32_t generation) noexcept {
  if (index >= watches_.size()) return nullptr;
  WatchSlot& s = watches_[index];
  return (s.active && s.generation == generation) ? &s : nullptr;
}

Status Loop::modify_watch(uint32_t index, uint32_t generation, uint32_t epoll_events, bool force) {
  WatchSlot* s = active_slot(index, generation);
  if (s == nullptr) return unexpected(Errno{EBADF});
  if (s->events == epoll_events && !force) return {};
  epoll_event ev{};
  ev.events = epoll_events;
  ev.data.u64 = pack(index, generation);
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, s->fd, &ev) != 0) return sys_error();
  s->events = epoll_events;
  return {};
}

void Loop::remove_watch(uint32_t index, uint32_t generation) noexcept {
  WatchSlot* s = active_slot(index, generation);
  if (s == nullptr) return;
  // ENOENT/EBADF mean the fd was closed first (the kernel dropped the registration);
  // harmless unless the number was reused, which the Watch contract forbids.
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, s->fd, nullptr) != 0 && errno != ENOENT && errno != EBADF)
    MOAT_LOG(warn, "epoll_ctl(DEL, fd %d): %s", s->fd, Errno::last().message());
  s->active = false;
  ++s->generation;  // events for the old registration still in this batch are now stale
  s->fd = -1;
  s->handler = nullptr;
  --active_watches_;
  if (dispatching_) {
    // The closure may be the one running right now; free it after the batch.
    released_during_dispatch_.push_back(index);
  } else {
    std::function<void(uint32_t)> dead = std::move(s->on_io);
    s->on_io = nullptr;
    free_watches_.push_back(index);
  }
}

TimerHandle Loop::schedule_at(Instant deadline, std::function<void()> callback) {
  return timers_.schedule(deadline, std::move(callback));
}

TimerHandle Loop::schedule_after(Duration delay, std::function<void()> callback) {
  return timers_.schedule(now() + delay, std::move(callback));
}

void Loop::post(std::function<void()> task) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(task));
  }
  // A non-empty queue already has a wake-up pending: run_posted() drains the eventfd
  // *before* taking the queue, so a task pushed after that take sees an empty queue and
  // writes again.
  if (was_empty) wake();
}

void Loop::stop() noexcept {
  stop_requested_.store(true, std::memory_order_release);
  wake();
}

void Loop::wake() noexcept {
  const uint64_t one = 1;
  // Can only fail with EAGAIN when the counter is saturated, i.e. a wake-up is pending.
  ssize_t r = ::write(wake_fd_.get(), &one, sizeof one);
  (void)r;
}

void Loop::run() {
  while (!stop_requested_.exchange(false, std::memory_order_acq_rel)) run_once(kForever);
}

int Loop::epoll_timeout_ms(Duration max_wait) const noexcept {
  Duration wait = max_wait;
  if (std::optional<Instant> deadline = timers_.next_deadline()) {
    const Duration until = *deadline - clock_.now();
    if (until < wait) wait = until;
  }
  if (wait == kForever) return -1;
  if (wait <= Duration::zero()) return 0;
  // Round up: epoll has 1 ms resolution and a timer must never fire early.
  const int64_t ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

size_t Loop::run_once(Duration max_wait) {
  MOAT_ASSERT(!dispatching_);
  const int timeout = epoll_timeout_ms(max_wait);
  int n = ::epoll_wait(epoll_fd_.get(), events_.data(), kEpollBatch, timeout);
  if (n < 0) {
    // EINTR is a signal; anything else (EBADF, EINVAL) is a bug in this class.
    MOAT_CHECK(errno == EINTR);
    n = 0;
  }
  now_ = clock_.now();
  dispatching_ = true;
  size_t work = 0;
  bool woken = false;
  for (int i = 0; i < n; ++i) {
    if (events_[i].data.u64 == kWakeToken) {
      woken = true;
      continue;
    }
    dispatch_io(events_[i].data.u64, events_[i].events);
    ++work;
  }
  work += timers_.run_expired(now_);
  if (woken) work += run_posted();
  dispatching_ = false;
  sweep();
  return work;
}

void Loop::dispatch_io(uint64_t token, uint32_t events) {
  const auto index = static_cast<uint32_t>(token);
  const auto generation = static_cast<uint32_t>(token >> 32);
  WatchSlot* s = active_slot(index, generation);
  if (s == nullptr) return;  // destroyed earlier in this batch
  // deque references stay valid across emplace_back, and a released slot keeps its
  // closure until sweep(), so the callee may add or remove watches (including its own).
  if (s->handler != nullptr) s->handler->on_io(events);
  else s->on_io(events);
}

size_t Loop::run_posted() {
  uint64_t count;
  ssize_t r = ::read(wake_fd_.get(), &count, sizeof count);  // drain first; see post()
  (void)r;
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    running_.swap(posted_);
  }
  // Tasks posting more tasks append to posted_ and are run next iteration.
  for (std::function<void()>& task : running_) task();
  const size_t ran = running_.size();
  running_.clear();  // keeps capacity: no allocation in steady state
  return ran;
}

void Loop::sweep() {
  for (uint32_t index : released_during_dispatch_) {
    WatchSlot& s = watches_[index];
    std::function<void(uint32_t)> dead = std::move(s.on_io);
    s.on_io = nullptr;
    free_watches_.push_back(index);
  }
  released_during_dispatch_.clear();
}

}  // namespace moat::event
