#include "event/timer_queue.h"

#include <utility>

#include "base/check.h"

namespace moat::event {

// ---- TimerHandle ----

TimerHandle::TimerHandle(TimerHandle&& o) noexcept
    : queue_(std::exchange(o.queue_, nullptr)), index_(o.index_), generation_(o.generation_) {}

TimerHandle& TimerHandle::operator=(TimerHandle&& o) noexcept {
  if (this != &o) {
    cancel();
    queue_ = std::exchange(o.queue_, nullptr);
    index_ = o.index_;
    generation_ = o.generation_;
  }
  return *this;
}

void TimerHandle::cancel() noexcept {
  if (TimerQueue* q = std::exchange(queue_, nullptr)) q->cancel(index_, generation_);
}

bool TimerHandle::pending() const noexcept {
  return queue_ != nullptr && queue_->pending_slot(index_, generation_) != nullptr;
}

std::optional<Instant> TimerHandle::deadline() const noexcept {
  if (queue_ == nullptr) return std::nullopt;
  const TimerQueue::Slot* s = queue_->pending_slot(index_, generation_);
  if (s == nullptr) return std::nullopt;
  return s->deadline;
}

bool TimerHandle::reschedule(Instant deadline) noexcept {
  return queue_ != nullptr && queue_->reschedule(index_, generation_, deadline);
}

// ---- TimerQueue ----

TimerQueue::~TimerQueue() {
  // Every pending timer has a live handle pointing at us.
  MOAT_ASSERT(heap_.empty());
}

TimerHandle TimerQueue::schedule(Instant deadline, std::function<void()> callback) {
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    MOAT_CHECK(slots_.size() < kNotQueued);
    index = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[index];
  s.callback = std::move(callback);
  s.deadline = deadline;
  s.seq = next_seq_++;
  heap_.push_back(index);
  s.heap_pos = static_cast<uint32_t>(heap_.size() - 1);
  sift_up(heap_.size() - 1);
  return TimerHandle(this, index, s.generation);
}

std::optional<Instant> TimerQueue::next_deadline() const noexcept {
  if (heap_.empty()) return std::nullopt;
  return slots_[heap_[0]].deadline;
}

size_t TimerQueue::run_expired(Instant now) {
  const uint64_t cutoff = next_seq_;
  size_t fired = 0;
  while (!heap_.empty()) {
    const uint32_t index = heap_[0];
    const Slot& s = slots_[index];
    // A timer scheduled during this call may sit on top and hold back older due timers;
    // they fire on the next call, which the Loop makes immediately (timeout 0).
    if (s.deadline > now || s.seq >= cutoff) break;
    heap_remove(0);
    std::function<void()> callback = release(index);
    callback();
    ++fired;
  }
  return fired;
}

TimerQueue::Slot* TimerQueue::pending_slot(uint32_t index, uint32_t generation) noexcept {
  if (index >= slots_.size()) return nullptr;
  Slot& s = slots_[index];
  return (s.generation == generation && s.heap_pos != kNotQueued) ? &s : nullptr;
}

const TimerQueue::Slot* TimerQueue::pending_slot(uint32_t index, uint32_t generation) const noexcept {
  return const_cast<TimerQueue*>(this)->pending_slot(index, generation);
}

void TimerQueue::cancel(uint32_t index, uint32_t generation) noexcept {
  Slot* s = pending_slot(index, generation);
  if (s == nullptr) return;  // already fired or cancelled
  heap_remove(s->heap_pos);
  // Destroyed at the end of this scope, after the queue is consistent again.
  std::function<void()> dead = release(index);
}

bool TimerQueue::reschedule(uint32_t index, uint32_t generation, Instant deadline) noexcept {
  Slot* s = pending_slot(index, generation);
  if (s == nullptr) return false;
  s->deadline = deadline;
  s->seq = next_seq_++;  // a re-armed timer queues behind timers already at that deadline
  heap_fix(s->heap_pos);
  return true;
}

std::function<void()> TimerQueue::release(uint32_t index) noexcept {
  Slot& s = slots_[index];
  std::function<void()> callback = std::move(s.callback);
  s.callback = nullptr;
  s.heap_pos = kNotQueued;
  ++s.generation;
  free_.push_back(index);
  return callback;
}

bool TimerQueue::before(uint32_t a, uint32_t b) const noexcept {
  const Slot& x = slots_[a];
  const Slot& y = slots_[b];
  return x.deadline < y.deadline || (x.deadline == y.deadline && x.seq < y.seq);
}

void TimerQueue::place(size_t pos, uint32_t slot) noexcept {
  heap_[pos] = slot;
  slots_[slot].heap_pos = static_cast<uint32_t>(pos);
}

void TimerQueue::sift_up(size_t pos) noexcept {
  const uint32_t moving = heap_[pos];
  while (pos > 0) {
    const size_t parent = (pos - 1) / 2;
    if (!before(moving, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, moving);
}

void TimerQueue::sift_down(size_t pos) noexcept {
  const uint32_t moving = heap_[pos];
  const size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) ++child;
    if (!before(heap_[child], moving)) break;
    place(pos, heap_[child]);
    pos = child;
  }
  place(pos, moving);
}

void TimerQueue::heap_fix(size_t pos) noexcept {
  if (pos > 0 && before(heap_[pos], heap_[(pos - 1) / 2])) sift_up(pos);
  else sift_down(pos);
}

void TimerQueue::heap_remove(size_t pos) noexcept {
  const size_t last = heap_.size() - 1;
  slots_[heap_[pos]].heap_pos = kNotQueued;
  if (pos != last) {
    place(pos, heap_[last]);
    heap_.pop_back();
    heap_fix(pos);
  } else {
    heap_.pop_back();
  }
}

}  // namespace moat::event
