#include "base/memory_budget.h"

#include <chrono>

namespace moat {

MemoryBudget::MemoryBudget(uint64_t limit, Counters* counters) noexcept : limit_(limit), counters_(counters) {
  if (counters_) counters_->set(Counter::memory_budget, limit_);
  update();
}

void MemoryBudget::update() noexcept {
  if (used_ > high_water_) high_water_ = used_;
  MemoryLevel l = MemoryLevel::normal;
  if (limit_ != 0) {
    // used/limit >= 3/4, 9/10, 1, in integers (limit <= 16 GiB, so no overflow).
    if (used_ >= limit_) l = MemoryLevel::full;
    else if (used_ * 10 >= limit_ * 9) l = MemoryLevel::refuse;
    else if (used_ * 4 >= limit_ * 3) l = MemoryLevel::pressure;
  }
  level_ = l;
  if (counters_) {
    counters_->set(Counter::memory_used, used_);
    counters_->set(Counter::memory_high_water, high_water_);
    counters_->set(Counter::memory_level, uint64_t(level_));
  }
}

bool MemoryBudget::try_charge(uint64_t n) noexcept {
  if (!fits(n)) return false;
  used_ += n;
  update();
  return true;
}

void MemoryBudget::charge(uint64_t n) noexcept {
  used_ += n;
  update();
}

void MemoryBudget::release(uint64_t n) noexcept {
  if (n > used_) {
    // A release without its charge: the account would go negative. Never let it.
    if (counters_) counters_->inc(Counter::internal_errors);
    n = used_;
  }
  used_ -= n;
  update();
}

bool MemoryBudget::refuse_new(Instant now) {
  if (level_ < MemoryLevel::refuse) return false;
  if (counters_) counters_->inc(Counter::limits_hits_memory);
  // R-LIM-4: at most one limit_hit per limit per second.
  if (hook_ && (!hooked_ || now - last_hook_ >= std::chrono::seconds(1))) {
    hooked_ = true;
    last_hook_ = now;
    hook_();
  }
  return true;
}

bool MemoryCharge::try_resize(uint64_t n) noexcept {
  if (budget_ && n > bytes_ && !budget_->try_charge(n - bytes_)) return false;
  if (budget_ && n < bytes_) budget_->release(bytes_ - n);
  bytes_ = n;
  return true;
}

void MemoryCharge::resize(uint64_t n) noexcept {
  if (budget_ && n > bytes_) budget_->charge(n - bytes_);
  if (budget_ && n < bytes_) budget_->release(bytes_ - n);
  bytes_ = n;
}

}  // namespace moat
