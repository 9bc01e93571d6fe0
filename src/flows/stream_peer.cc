#include "flows/stream_peer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/check.h"

namespace moat::flows {

ByteRing& ByteRing::operator=(ByteRing&& o) noexcept {
  if (this != &o) {
    free_storage();
    buf_ = std::exchange(o.buf_, nullptr);
    cap_ = std::exchange(o.cap_, 0);
    head_ = std::exchange(o.head_, 0);
    len_ = std::exchange(o.len_, 0);
    charge_ = std::move(o.charge_);
    cache_ = std::exchange(o.cache_, nullptr);
  }
  return *this;
}

bool RingCache::take(size_t cap, std::byte** buf, MemoryCharge* charge) noexcept {
  for (size_t i = n_; i-- > 0;) {
    if (entries_[i].cap != cap) continue;
    *buf = entries_[i].buf;
    *charge = std::move(entries_[i].charge);
    --n_;
    if (i != n_) {  // the last entry fills the hole
      entries_[i].buf = entries_[n_].buf;
      entries_[i].cap = entries_[n_].cap;
      entries_[i].charge = std::move(entries_[n_].charge);
    }
    entries_[n_].buf = nullptr;
    entries_[n_].cap = 0;
    return true;
  }
  return false;
}

bool RingCache::give(std::byte* buf, size_t cap, MemoryCharge& charge) noexcept {
  if (charge.budget() && charge.budget()->at_least(MemoryLevel::pressure)) {
    clear();  // R-LIM-2: under pressure nothing is kept back
    return false;
  }
  if (n_ == kMaxEntries) return false;
  entries_[n_].buf = buf;
  entries_[n_].cap = cap;
  entries_[n_].charge = std::move(charge);
  ++n_;
  return true;
}

void RingCache::clear() noexcept {
  for (size_t i = 0; i < n_; ++i) {
    ::munmap(entries_[i].buf, entries_[i].cap);
    entries_[i].buf = nullptr;
    entries_[i].cap = 0;
    entries_[i].charge.reset();
  }
  n_ = 0;
}

bool ByteRing::allocate(size_t capacity, MemoryBudget* budget, RingCache* cache) noexcept {
  if (cache && capacity > 0) {
    std::byte* p = nullptr;
    MemoryCharge c(budget);
    if (cache->take(capacity, &p, &c)) {
      free_storage();
      buf_ = p;
      cap_ = capacity;
      charge_ = std::move(c);
      cache_ = cache;
      return true;
    }
  }
  MemoryCharge c(budget);
  if (!c.try_resize(capacity)) return false;
  free_storage();
  cache_ = cache;
  if (capacity > 0) {
    void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MOAT_CHECK(p != MAP_FAILED);  // allocation failure is fatal (STYLE "Errors")
    buf_ = static_cast<std::byte*>(p);
  }
  cap_ = capacity;
  charge_ = std::move(c);
  return true;
}

void ByteRing::free_storage() noexcept {
  if (buf_ && !(cache_ && cache_->give(buf_, cap_, charge_))) ::munmap(buf_, cap_);
  buf_ = nullptr;
  cap_ = head_ = len_ = 0;
  charge_.reset();
}

size_t ByteRing::push(Bytes in) noexcept {
  const size_t n = std::min(in.size(), free());
  const size_t cap = cap_;
  size_t tail = (head_ + len_) % (cap ? cap : 1);
  size_t done = 0;
  while (done < n) {
    const size_t chunk = std::min(n - done, cap - tail);
    std::memcpy(buf_ + tail, in.data() + done, chunk);
    done += chunk;
    tail = (tail + chunk) % cap;
  }
  len_ += n;
  return n;
}

size_t ByteRing::peek(size_t offset, MutBytes out) const noexcept {
  if (offset >= len_) return 0;
  const size_t n = std::min(out.size(), len_ - offset);
  const size_t cap = cap_;
  size_t pos = (head_ + offset) % cap;
  size_t done = 0;
  while (done < n) {
    const size_t chunk = std::min(n - done, cap - pos);
    std::memcpy(out.data() + done, buf_ + pos, chunk);
    done += chunk;
    pos = (pos + chunk) % cap;
  }
  return n;
}

size_t ByteRing::pop(size_t n) noexcept {
  n = std::min(n, len_);
  if (n == 0) return 0;
  head_ = (head_ + n) % cap_;
  len_ -= n;
  if (len_ == 0) head_ = 0;
  return n;
}

std::pair<Bytes, Bytes> ByteRing::spans() const noexcept {
  if (len_ == 0) return {};
  const size_t first = std::min(len_, cap_ - head_);
  return {Bytes(buf_ + head_, first), Bytes(buf_, len_ - first)};
}

Result<size_t> StreamPeer::peek(size_t offset, MutBytes out) {
  if (aborted_) return unexpected(Errno{ECONNRESET});
  return to_guest_.peek(offset, out);
}

Status StreamPeer::consume(size_t n) {
  to_guest_.pop(n);
  return {};
}

Result<size_t> StreamPeer::write(Bytes data) {
  if (aborted_) return unexpected(Errno{ECONNRESET});
  if (guest_shut_) return unexpected(Errno{EPIPE});
  return from_guest_.push(data);
}

}  // namespace moat::flows
