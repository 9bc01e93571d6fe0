#pragma once
// RelayIndex: a fixed-capacity open-addressing hash index from a key to a slot number,
// used by the UDP and ICMP relays to find sessions and peers without allocating.
//
// The index stores only slot numbers; keys live in the caller's slots and are compared
// through a callback, so one index type serves every key. Linear probing with
// backward-shift deletion (no tombstones, so lookups never degrade over time). The table
// is sized once to a power of two >= 2 * capacity, keeping the load factor <= 0.5.
//
// Keys come from the guest, so the hash is seeded with a per-instance random value
// (getrandom) to keep a guest from choosing colliding keys (hash flooding).
#include <sys/random.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "base/bytes.h"

namespace moat::flows {

/// Seeded 64-bit hash of a few bytes (a multiply-xorshift mix per 8-byte word).
class KeyHasher {
 public:
  KeyHasher() noexcept {
    if (::getrandom(&seed_, sizeof(seed_), GRND_NONBLOCK) != sizeof(seed_))
      seed_ = uint64_t(reinterpret_cast<uintptr_t>(this)) * 0x9e3779b97f4a7c15ull;
  }
  [[nodiscard]] uint64_t operator()(Bytes key) const noexcept {
    uint64_t h = seed_ ^ (key.size() * 0x9e3779b97f4a7c15ull);
    size_t i = 0;
    for (; i + 8 <= key.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, key.data() + i, 8);
      h = mix(h ^ w);
    }
    if (i < key.size()) {
      uint64_t w = 0;
      std::memcpy(&w, key.data() + i, key.size() - i);
      h = mix(h ^ w);
    }
    return mix(h);
  }

 private:
  static uint64_t mix(uint64_t x) noexcept {  // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  uint64_t seed_ = 0;
};

class RelayIndex {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  /// Room for `capacity` entries; allocates the table now and never again.
  explicit RelayIndex(size_t capacity)
      : table_(std::bit_ceil(capacity < 4 ? size_t{8} : capacity * 2), kNone), mask_(table_.size() - 1) {}

  /// The slot whose key matches (`eq(slot)` true) among those hashed to `hash`, or kNone.
  template <class Eq>
  [[nodiscard]] uint32_t find(uint64_t hash, Eq&& eq) const noexcept {
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const uint32_t s = table_[i];
      if (s == kNone) return kNone;
      if (eq(s)) return s;
    }
  }

  /// Adds `slot` under `hash`. The caller guarantees the key is not present and that no
  /// more than `capacity` entries exist.
  void insert(uint64_t hash, uint32_t slot) noexcept {
    size_t i = hash & mask_;
    while (table_[i] != kNone) i = (i + 1) & mask_;
    table_[i] = slot;
    ++size_;
  }

  /// Removes `slot` (stored under `hash`); `hash_of(other_slot)` recomputes the hash of
  /// entries that may have to shift back into the hole.
  template <class HashOf>
  void erase(uint64_t hash, uint32_t slot, HashOf&& hash_of) noexcept {
    size_t i = hash & mask_;
    while (table_[i] != slot) {
      if (table_[i] == kNone) return;  // not present
      i = (i + 1) & mask_;
    }
    --size_;
    // Backward-shift deletion (Knuth 6.4 algorithm R).
    for (size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      const uint32_t s = table_[j];
      if (s == kNone) break;
      const size_t home = hash_of(s) & mask_;
      // Move s into the hole unless its home lies cyclically in (i, j].
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        table_[i] = s;
        i = j;
      }
    }
    table_[i] = kNone;
  }

  [[nodiscard]] size_t size() const noexcept { return size_; }

 private:
  std::vector<uint32_t> table_;
  size_t mask_;
  size_t size_ = 0;
};

/// An intrusive doubly-linked LRU list over slot numbers; the links are the member
/// `Member` of the slots in `slots`. Head = least recently used. The vector must not be
/// resized while the list is in use (slots are allocated once).
struct LruLinks {
  uint32_t prev = UINT32_MAX, next = UINT32_MAX;
};

template <class T, LruLinks T::*Member>
class LruList {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  explicit LruList(std::vector<T>& slots) noexcept : slots_(&slots) {}
  [[nodiscard]] uint32_t head() const noexcept { return head_; }
  [[nodiscard]] uint32_t tail() const noexcept { return tail_; }
  [[nodiscard]] bool empty() const noexcept { return head_ == kNone; }
  [[nodiscard]] uint32_t next(uint32_t s) const noexcept { return ((*slots_)[s].*Member).next; }

  void push_back(uint32_t s) noexcept {
    LruLinks& l = links(s);
    l.prev = tail_;
    l.next = kNone;
    if (tail_ != kNone) links(tail_).next = s;
    else head_ = s;
    tail_ = s;
  }
  void remove(uint32_t s) noexcept {
    LruLinks& l = links(s);
    if (l.prev != kNone) links(l.prev).next = l.next;
    else head_ = l.next;
    if (l.next != kNone) links(l.next).prev = l.prev;
    else tail_ = l.prev;
    l = LruLinks{};
  }
  /// Moves `s` to the most-recently-used end.
  void touch(uint32_t s) noexcept {
    if (tail_ == s) return;
    remove(s);
    push_back(s);
  }

 private:
  LruLinks& links(uint32_t s) noexcept { return (*slots_)[s].*Member; }
  std::vector<T>* slots_;
  uint32_t head_ = kNone, tail_ = kNone;
};

}  // namespace moat::flows
