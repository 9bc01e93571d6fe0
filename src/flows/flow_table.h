#pragma once
// FlowTable<T>: the fixed-capacity slab every TCP flow lives in (STYLE "Ownership"; passt's
// flow table, without its global context).
//
// Slot lifecycle, state by state:
//   free     on the free list; `generation` names the last owner, so a FlowId kept by an
//            epoll registration, a timer or a to-do list of the previous owner is stale.
//   live     allocated by insert(); reachable by get(id) and, through the hash index, by
//            find(key).
//   closing  close(id) removed it from the hash index (a new SYN for the same 4-tuple may
//            already create a new flow) and queued it; get(id) still answers, so the
//            code that is running on it can finish. sweep() — called at the end of the
//            current event batch, never in the middle of an iteration (passt's
//            flow_defer_handler, Envoy's deferredDelete) — destroys the T, builds a fresh
//            one in place, bumps the generation and returns the slot to the free list.
//
// Everything (slots, free list, closing list, hash index) is allocated once by the
// constructor: inserting and removing flows never allocates. The hash index is open
// addressing with linear probing and backward-shift deletion (no tombstones), sized to a
// power of two >= 2 x capacity; the hash is SipHash-2-4 keyed from getrandom(), so a guest
// choosing ports cannot aim collisions at one bucket chain.
#include <sys/random.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/check.h"

namespace moat::flows {

/// Generational slab address (passt's flow_sidx). Packs into an epoll/timer u64.
struct FlowId {
  uint32_t index = UINT32_MAX;
  uint32_t generation = 0;
  [[nodiscard]] bool valid() const noexcept { return index != UINT32_MAX; }
  [[nodiscard]] uint64_t pack() const noexcept { return (uint64_t{generation} << 32) | index; }
  static FlowId unpack(uint64_t v) noexcept { return FlowId{uint32_t(v), uint32_t(v >> 32)}; }
  friend bool operator==(FlowId, FlowId) = default;
};

/// A TCP/UDP 4-tuple as seen on the guest link: `guest` is the guest's own address/port,
/// `remote` the address/port the guest talks to.
struct FlowKey {
  IpAddr guest, remote;
  uint16_t guest_port = 0, remote_port = 0;
  friend bool operator==(const FlowKey& a, const FlowKey& b) {
    return a.guest_port == b.guest_port && a.remote_port == b.remote_port && a.guest == b.guest &&
           a.remote == b.remote;
  }
};

/// 128-bit key for SipHash-2-4 (Aumasson & Bernstein), filled from getrandom().
struct SipKey {
  uint64_t k0 = 0, k1 = 0;
  static SipKey random() noexcept {
    SipKey k;
    uint64_t buf[2] = {0, 0};
    // GRND_NONBLOCK never fails after early boot; a zero key would still be correct, only
    // predictable, so a failure is not fatal.
    if (::getrandom(buf, sizeof buf, GRND_NONBLOCK) == sizeof buf) {
      k.k0 = buf[0];
      k.k1 = buf[1];
    }
    return k;
  }
};

/// SipHash-2-4 of `data` under `key` (reference algorithm, little-endian words).
inline uint64_t siphash24(const SipKey& key, Bytes data) noexcept {
  auto rotl = [](uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  uint64_t v0 = 0x736f6d6570736575ULL ^ key.k0, v1 = 0x646f72616e646f6dULL ^ key.k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ key.k0, v3 = 0x7465646279746573ULL ^ key.k1;
  auto round = [&] {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  };
  const size_t n = data.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t m;
    std::memcpy(&m, data.data() + i, 8);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  uint64_t b = uint64_t(n) << 56;
  for (size_t j = 0; i + j < n; ++j) b |= uint64_t(static_cast<uint8_t>(data[i + j])) << (8 * j);
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xff;
  round();
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/// Keyed hash of a 4-tuple (also the F() of RFC 6528's ISN).
inline uint64_t hash_flow_key(const SipKey& key, const FlowKey& k) noexcept {
  std::byte buf[37];
  buf[0] = std::byte(k.guest.is_v6 ? 6 : 4);
  auto put_addr = [&](size_t off, const IpAddr& a) {
    if (a.is_v6) std::memcpy(buf + off, a.v6.bytes.data(), 16);
    else {
      std::memset(buf + off, 0, 16);
      store_be32(buf + off, a.v4.value);
    }
  };
  put_addr(1, k.guest);
  put_addr(17, k.remote);
  store_be16(buf + 33, k.guest_port);
  store_be16(buf + 35, k.remote_port);
  return siphash24(key, Bytes(buf, sizeof buf));
}

/// Fixed-capacity slab of T addressed by FlowId, with a 4-tuple index. See the file
/// comment for the slot lifecycle. T must be default-constructible; it is rebuilt in place
/// when its slot is freed.
template <class T>
class FlowTable {
 public:
  explicit FlowTable(uint32_t capacity, SipKey key = SipKey::random())
      : capacity_(capacity),
        key_(key),
        slots_(std::make_unique<Slot[]>(capacity)),
        values_(std::make_unique_for_overwrite<Storage[]>(capacity)) {
    MOAT_CHECK(capacity > 0 && capacity < (1u << 30));
    free_.reserve(capacity);
    for (uint32_t i = capacity; i-- > 0;) free_.push_back(i);
    closing_.reserve(capacity);
    uint32_t buckets = 16;
    while (buckets < 2 * capacity) buckets *= 2;
    index_.assign(buckets, Bucket{});
    mask_ = buckets - 1;
  }
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;
  ~FlowTable() {
    for (uint32_t i = 0; i < capacity_; ++i)
      if (slots_[i].constructed) std::destroy_at(value(i));
  }

  /// Allocates a slot for `key` (not yet present). nullopt when the slab is full or the
  /// key is already live.
  std::optional<FlowId> insert(const FlowKey& key) {
    if (free_.empty() || find(key)) return std::nullopt;
    const uint32_t i = free_.back();
    free_.pop_back();
    Slot& s = slots_[i];
    if (!s.constructed) {  // first use of this slot: T is built now, not at start
      std::construct_at(value(i));
      s.constructed = true;
    }
    s.state = State::live;
    s.key = key;
    s.hash = uint32_t(hash_flow_key(key_, key));
    index_add(i, s.hash);
    ++live_;
    return FlowId{i, s.generation};
  }

  /// The flow, if `id` names a live or closing slot of the current generation.
  T* get(FlowId id) noexcept {
    if (id.index >= capacity_) return nullptr;
    Slot& s = slots_[id.index];
    return (s.state != State::free && s.generation == id.generation) ? value(id.index) : nullptr;
  }
  [[nodiscard]] bool is_closing(FlowId id) const noexcept {
    return id.index < capacity_ && slots_[id.index].generation == id.generation &&
           slots_[id.index].state == State::closing;
  }
  [[nodiscard]] const FlowKey* key_of(FlowId id) const noexcept {
    if (id.index >= capacity_) return nullptr;
    const Slot& s = slots_[id.index];
    return (s.state != State::free && s.generation == id.generation) ? &s.key : nullptr;
  }

  /// Live flow for `key` (closing flows are no longer indexed).
  [[nodiscard]] std::optional<FlowId> find(const FlowKey& key) const noexcept {
    const uint32_t h = uint32_t(hash_flow_key(key_, key));
    for (uint32_t pos = h & mask_;; pos = (pos + 1) & mask_) {
      const Bucket& b = index_[pos];
      if (b.slot == kEmpty) return std::nullopt;
      if (b.hash == h && slots_[b.slot].key == key) return FlowId{b.slot, slots_[b.slot].generation};
    }
  }

  /// live -> closing: unindexed now, destroyed by the next sweep(). Idempotent.
  void close(FlowId id) {
    if (id.index >= capacity_) return;
    Slot& s = slots_[id.index];
    if (s.state != State::live || s.generation != id.generation) return;
    index_remove(id.index, s.hash);
    s.state = State::closing;
    --live_;
    closing_.push_back(id.index);
  }

  /// Frees every closing slot: `before_free(T&)` runs first (e.g. to write a TIME_WAIT
  /// record), then T is rebuilt in place and the generation bumped.
  template <class F>
  void sweep(F&& before_free) {
    // Index loop: before_free() may close further flows (appends are seen here too).
    for (size_t n = 0; n < closing_.size(); ++n) {
      Slot& s = slots_[closing_[n]];
      T* v = value(closing_[n]);
      before_free(*v);
      std::destroy_at(v);
      std::construct_at(v);
      s.state = State::free;
      ++s.generation;
      free_.push_back(closing_[n]);
    }
    closing_.clear();
  }
  void sweep() {
    sweep([](T&) {});
  }

  [[nodiscard]] size_t live() const noexcept { return live_; }
  [[nodiscard]] size_t closing() const noexcept { return closing_.size(); }
  [[nodiscard]] uint32_t capacity() const noexcept { return capacity_; }
  /// Calls f(FlowId, T&) for every live flow (tests, shutdown).
  template <class F>
  void for_each_live(F&& f) {
    for (uint32_t i = 0; i < capacity_; ++i)
      if (slots_[i].state == State::live) f(FlowId{i, slots_[i].generation}, *value(i));
  }

 private:
  enum class State : uint8_t { free, live, closing };
  struct Slot {
    FlowKey key{};
    uint32_t generation = 1;
    uint32_t hash = 0;
    State state = State::free;
    bool constructed = false;  ///< values_[i] holds a T (built on the slot's first insert)
  };
  /// Raw storage for one T. The array is allocated uninitialised, so a large slab costs no
  /// resident memory until slots are used (SPEC R-PERF-1: RSS after start); the free list
  /// hands out low indices first, so the touched part stays compact.
  struct Storage {
    alignas(T) std::byte bytes[sizeof(T)];
  };
  T* value(uint32_t i) noexcept { return std::launder(reinterpret_cast<T*>(values_[i].bytes)); }
  struct Bucket {
    uint32_t slot = kEmpty;
    uint32_t hash = 0;
  };
  static constexpr uint32_t kEmpty = UINT32_MAX;

  void index_add(uint32_t slot, uint32_t h) noexcept {
    uint32_t pos = h & mask_;
    while (index_[pos].slot != kEmpty) pos = (pos + 1) & mask_;
    index_[pos] = Bucket{slot, h};
  }
  // Backward-shift deletion (Knuth 6.4 Algorithm R): later members of the probe run move
  // up into the hole unless their home bucket lies cyclically in (hole, them].
  void index_remove(uint32_t slot, uint32_t h) noexcept {
    uint32_t pos = h & mask_;
    while (index_[pos].slot != slot) {
      if (index_[pos].slot == kEmpty) return;  // not indexed (cannot happen for live slots)
      pos = (pos + 1) & mask_;
    }
    uint32_t hole = pos;
    for (uint32_t j = (hole + 1) & mask_; index_[j].slot != kEmpty; j = (j + 1) & mask_) {
      const uint32_t home = index_[j].hash & mask_;
      const bool stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        index_[hole] = index_[j];
        hole = j;
      }
    }
    index_[hole] = Bucket{};
  }

  uint32_t capacity_;
  SipKey key_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<Storage[]> values_;
  std::vector<uint32_t> free_;
  std::vector<uint32_t> closing_;
  std::vector<Bucket> index_;
  uint32_t mask_ = 0;
  size_t live_ = 0;
};

}  // namespace moat::flows
