#pragma once
// FrameRing: the one bounded FIFO of whole frames that every queue in transport/ is built
// on — the TAP's to-guest queue, the impairment delay store, the QEMU stream's to-guest
// output, and the producer side of the C ABI's lock-free rings (SpscFrameRing, ring.h).
// See README.md "FrameRing".
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "base/bytes.h"
#include "base/check.h"

namespace moat::transport {

/// No per-entry metadata (the default for FrameRing).
struct NoFrameMeta {};

/// A bounded FIFO of byte entries (frames, or a header plus a frame) over one preallocated
/// byte ring, with a small value `Meta` kept beside each entry (ImpairedLink's release time).
///
/// Placement. Each entry is stored contiguously, so a consumer gets a plain span and one
/// write(2) per frame. An entry that does not fit before the end of the byte ring goes to
/// offset 0. The byte ring is `bytes + max_entry` long: with that slack an entry that fits
/// the byte budget always finds contiguous room one way or the other, so the budget is
/// exact: it never refuses an entry the budget says fits. Why, with S = bytes + max_entry,
/// L live bytes and L <= bytes - len (the budget check):
///   * one run [head, write): if the entry does not fit at the end, write > S - len >= bytes,
///     so head = write - L > bytes - L >= len and it fits at 0;
///   * wrapped, [head, end) + [0, write): the unused gap after `end` is shorter than the
///     entry that wrapped (<= max_entry), so head - write = S - gap - L > bytes - L >= len.
/// trim_front() only moves head forward, which keeps both arguments. The checks stay in
/// push() anyway, so a broken invariant refuses an entry instead of overwriting one.
///
/// Budgets: `frames` entries and `bytes` bytes of entries (both hard limits, checked by
/// can_push()). Entries are 1..max_entry bytes.
///
/// Memory: the byte ring and the descriptors are allocated once, in the constructor, and
/// left untouched there when Meta is trivial (pages become resident when used); nothing
/// allocates afterwards.
/// A default-constructed ring is "unallocated": it takes nothing (ImpairedLink without a
/// delay).
///
/// Sequence numbers: entry number n (counting every push since construction) lives in
/// descriptor n % frames. SpscFrameRing relies on that to let its consumer thread read
/// entries by number while the producer thread owns this object.
///
/// Lifecycle: constructed (empty) -> entries pushed at the back, consumed at the front
/// (pop_front, or trim_front for a stream that took part of one) -> clear() discards
/// everything -> destroyed. Not thread-safe by itself.
template <class Meta = NoFrameMeta>
class FrameRing {
 public:
  /// An unallocated ring: can_push() is false, allocated() is false.
  FrameRing() = default;
  /// Preconditions (fatal checks: capacities are validated by the owner's create()):
  /// frames >= 1, bytes >= max_entry >= 1, and offsets fit 32 bits.
  FrameRing(size_t frames, size_t bytes, size_t max_entry)
      : frames_(frames),
        bytes_limit_(bytes),
        max_entry_(max_entry),
        storage_(bytes + max_entry),
        slots_(std::make_unique_for_overwrite<Slot[]>(frames)) {
    MOAT_CHECK(frames >= 1 && max_entry >= 1 && bytes >= max_entry && bytes + max_entry <= UINT32_MAX);
  }
  FrameRing(FrameRing&&) noexcept = default;
  FrameRing& operator=(FrameRing&&) noexcept = default;
  FrameRing(const FrameRing&) = delete;
  FrameRing& operator=(const FrameRing&) = delete;

  [[nodiscard]] bool allocated() const noexcept { return frames_ != 0; }
  /// Entries queued.
  [[nodiscard]] size_t size() const noexcept { return count_; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  /// Bytes of the queued entries (after any trim_front()).
  [[nodiscard]] size_t bytes() const noexcept { return live_bytes_; }
  [[nodiscard]] size_t capacity_frames() const noexcept { return frames_; }
  [[nodiscard]] size_t capacity_bytes() const noexcept { return bytes_limit_; }
  [[nodiscard]] size_t max_entry() const noexcept { return max_entry_; }

  /// Whether push() of a `len`-byte entry would succeed: 1..max_entry bytes, a free
  /// descriptor and room in the byte budget. (Contiguous room follows from the slack.)
  [[nodiscard]] bool can_push(size_t len) const noexcept {
    return len != 0 && len <= max_entry_ && count_ < frames_ && len <= bytes_limit_ - live_bytes_;
  }

  /// Copies `head` then `body` in as one entry at the back. false = refused (outside
  /// 1..max_entry, or no room) and the ring is unchanged.
  bool push(Bytes head, Bytes body, const Meta& meta = {}) noexcept {
    const size_t len = head.size() + body.size();
    const std::optional<size_t> at = place(len);
    if (!at) return false;
    // memcpy with a null source is undefined even for 0 bytes.
    if (!head.empty()) std::memcpy(storage_.data() + *at, head.data(), head.size());
    if (!body.empty()) std::memcpy(storage_.data() + *at + head.size(), body.data(), body.size());
    commit(*at, len, meta);
    return true;
  }
  bool push(Bytes entry, const Meta& meta = {}) noexcept { return push(Bytes{}, entry, meta); }

  /// The oldest entry. Precondition: !empty().
  [[nodiscard]] Bytes front() const noexcept { return at(head_seq_); }
  /// The same, writable (a consumer may finish a checksum in place).
  [[nodiscard]] MutBytes front_mut() noexcept { return at_mut(head_seq_); }
  [[nodiscard]] const Meta& front_meta() const noexcept { return slot(head_seq_).meta; }
  /// The i-th oldest entry (0 = front()). Precondition: i < size().
  [[nodiscard]] Bytes entry(size_t i) const noexcept { return at(head_seq_ + i); }

  /// Releases the oldest entry. Precondition: !empty().
  void pop_front() noexcept {
    MOAT_ASSERT(count_ != 0);
    live_bytes_ -= slot(head_seq_).len;
    ++head_seq_;
    // Drained: every byte is free again, so start over at 0 (keeps entries from wrapping
    // needlessly, and is what the lock-free ring's producer assumes).
    if (--count_ == 0) write_pos_ = 0;
  }
  /// Drops the first `n` bytes of the oldest entry: a stream socket took them and the rest
  /// must follow. Precondition: n < front().size() (take the whole entry with pop_front()).
  void trim_front(size_t n) noexcept {
    MOAT_ASSERT(count_ != 0 && n < slot(head_seq_).len);
    Slot& s = slot(head_seq_);
    s.offset += uint32_t(n);
    s.len -= uint32_t(n);
    live_bytes_ -= n;
  }
  /// Discards every entry.
  void clear() noexcept {
    head_seq_ += count_;
    count_ = 0;
    live_bytes_ = 0;
    write_pos_ = 0;
  }

  // --- by sequence number (SpscFrameRing) ---
  /// Number of the oldest entry; the next push gets head_seq() + size().
  [[nodiscard]] uint64_t head_seq() const noexcept { return head_seq_; }
  /// Entry number `seq`. Reads only that entry's descriptor and bytes, so another thread
  /// may call it for an entry published to it while this ring's owner pushes and pops others.
  [[nodiscard]] Bytes at(uint64_t seq) const noexcept {
    const Slot& s = slot(seq);
    return Bytes(storage_.data() + s.offset, s.len);
  }
  [[nodiscard]] MutBytes at_mut(uint64_t seq) noexcept {
    const Slot& s = slot(seq);
    return MutBytes(storage_.data() + s.offset, s.len);
  }

 private:
  // No default member initialisers: make_unique_for_overwrite then leaves the descriptor
  // array untouched until used, like the byte ring.
  struct Slot {
    uint32_t offset;
    uint32_t len;
    [[no_unique_address]] Meta meta;
  };

  [[nodiscard]] Slot& slot(uint64_t seq) noexcept { return slots_[seq % frames_]; }
  [[nodiscard]] const Slot& slot(uint64_t seq) const noexcept { return slots_[seq % frames_]; }

  /// Where a `len`-byte entry goes, or nullopt when it may not be pushed.
  [[nodiscard]] std::optional<size_t> place(size_t len) const noexcept {
    if (!can_push(len)) return std::nullopt;
    if (count_ == 0) return size_t{0};
    const size_t head_off = slot(head_seq_).offset;
    if (write_pos_ > head_off) {  // one run: free space is at the end, then at the front
      if (len <= storage_.size() - write_pos_) return write_pos_;
      if (len <= head_off) return size_t{0};
      return std::nullopt;  // unreachable: the max_entry slack guarantees one of the two
    }
    // Wrapped: the free space is between the newest and the oldest entry.
    if (len <= head_off - write_pos_) return write_pos_;
    return std::nullopt;  // unreachable, same reason
  }

  void commit(size_t offset, size_t len, const Meta& meta) noexcept {
    Slot& s = slot(head_seq_ + count_);
    s.offset = uint32_t(offset);
    s.len = uint32_t(len);
    s.meta = meta;
    ++count_;
    live_bytes_ += len;
    write_pos_ = offset + len;
  }

  size_t frames_ = 0;
  size_t bytes_limit_ = 0;
  size_t max_entry_ = 0;
  ByteBuffer storage_;  // bytes_limit_ + max_entry_
  std::unique_ptr<Slot[]> slots_;
  uint64_t head_seq_ = 0;
  size_t count_ = 0;
  size_t live_bytes_ = 0;
  size_t write_pos_ = 0;
};

}  // namespace moat::transport
