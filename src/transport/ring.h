#pragma once
// In-process rings (SPEC R-TR-7, R-ABI): the guest link of an embedded gateway is a pair of
// bounded lock-free single-producer/single-consumer frame rings, one per direction, plus
// two eventfds. The VMM's threads push from-guest frames and pull to-guest frames through
// the C ABI; the gateway's loop thread sees an ordinary FrameTransport. See README.md.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>

#include "base/bytes.h"
#include "base/counters.h"
#include "base/unique_fd.h"
#include "transport/frame_ring.h"
#include "transport/frame_transport.h"

namespace moat::transport {

/// Capacity of one ring (R-TR-7 defaults: 1024 frames / 8 MiB per direction).
struct RingConfig {
  /// Frames the ring holds. Hard cap kMaxFrames.
  size_t frames = 1024;
  /// Bytes of frame data the ring holds. At least kMaxFrameLen (one maximal frame must fit);
  /// hard cap kMaxBytes.
  size_t bytes = size_t{8} << 20;

  /// Same caps as the TAP queue (TapConfig) and for the same reason: far above any useful
  /// backlog, low enough that a typo cannot reserve gigabytes per gateway.
  static constexpr size_t kMaxFrames = 65536;
  static constexpr size_t kMaxBytes = size_t{256} << 20;
};

/// The link format of a RingTransport (R-TR-6): the virtio-net header on every frame in
/// both directions (0, kVnetHdrLegacy or kVnetHdrV1) and the offloads the guest accepts in
/// frames moat sends (kOffloadCsum/Tso4/Tso6/Uso; needs a header).
struct RingLinkConfig {
  size_t vnet_hdr_len = 0;
  OffloadMask guest_offloads = 0;
};

/// A bounded single-producer/single-consumer queue of whole frames (1..max_entry() bytes:
/// kMaxFrameLen plus the per-frame overhead given to create(), a virtio-net header).
///
/// One thread may call the producer functions (try_push, can_accept) and one other thread
/// the consumer functions (front, front_mut, pop) at the same time without locks; nothing
/// else is thread-safe. Placement is a FrameRing (frame_ring.h) owned by the producer: each
/// frame contiguous in one byte ring of `bytes + max_entry` bytes, so the byte budget is
/// exact and `front()` can hand out a plain span. The consumer reads entries by sequence
/// number through FrameRing::at(), which touches only that entry's descriptor and bytes.
///
/// Synchronisation: the producer fills the bytes and the descriptor, then publishes `tail_`;
/// the consumer reads them, then publishes `head_`. The producer reclaims space (pops its
/// FrameRing) only up to the `head_` it loaded, so it never overwrites bytes the consumer may
/// still read. Both indices are stored and loaded seq_cst so that "push then look at head"
/// on one side and "pop then look at tail" on the other cannot both miss each other (the
/// wake-up protocol of RingTransport depends on that: a push that finds the ring drained
/// signals).
///
/// Memory is allocated once in create(); pages of the byte ring become resident when used.
class SpscFrameRing {
  struct Private {
    explicit Private() = default;
  };

 public:
  /// EINVAL when `config` is outside its caps. `overhead` (0..kVnetHdrV1) bytes are added to
  /// every entry (a virtio-net header): the byte budget grows by frames * overhead so
  /// `config.bytes` still counts frame bytes, as TapTransport's queue does.
  static Result<std::unique_ptr<SpscFrameRing>> create(const RingConfig& config, size_t overhead = 0);
  SpscFrameRing(Private, const RingConfig& config, size_t overhead);
  SpscFrameRing(const SpscFrameRing&) = delete;
  SpscFrameRing& operator=(const SpscFrameRing&) = delete;

  // --- producer side ---
  /// Copies `frame` (1..max_entry() bytes, else false) in. false = no room (frames or
  /// bytes) and the ring is unchanged. `was_drained` (optional) is set to true when, after
  /// publishing, the consumer had taken every earlier frame: a consumer that may be about to
  /// sleep needs a wake-up.
  bool try_push(Bytes frame, bool* was_drained = nullptr) noexcept { return try_push(Bytes{}, frame, was_drained); }
  /// The same for one entry made of `head` (a header) followed by `body`.
  bool try_push(Bytes head, Bytes body, bool* was_drained = nullptr) noexcept;
  /// Whether try_push() of a `len`-byte frame would succeed now (it may only get better
  /// until the producer pushes again).
  [[nodiscard]] bool can_accept(size_t len) noexcept;

  // --- consumer side ---
  /// The oldest frame, valid until pop(); nullopt when the ring is empty.
  [[nodiscard]] std::optional<Bytes> front() const noexcept;
  /// The same, writable: the consumer owns the entry until pop() (VnetFromGuest completes
  /// checksums in place).
  [[nodiscard]] std::optional<MutBytes> front_mut() noexcept;
  /// Releases the frame front() returned. Precondition: front() returned one.
  void pop() noexcept;

  // --- either side (a snapshot that may be stale by the time it is used) ---
  [[nodiscard]] size_t size() const noexcept {
    return size_t(tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire));
  }
  [[nodiscard]] size_t capacity_frames() const noexcept { return frames_; }
  [[nodiscard]] size_t capacity_bytes() const noexcept { return bytes_limit_; }
  /// The largest entry: kMaxFrameLen + overhead.
  [[nodiscard]] size_t max_entry() const noexcept { return max_entry_; }

 private:
  /// Pops the producer's FrameRing up to the head_ the consumer published.
  void reclaim() noexcept;

  static constexpr size_t kLine = 64;  // keep the two indices on separate cache lines

  // Immutable after construction: read by both threads.
  const size_t frames_;
  const size_t bytes_limit_;
  const size_t max_entry_;
  /// Written by the producer only (push, reclaim); the consumer reads published entries
  /// through at()/at_mut().
  FrameRing<> placement_;

  alignas(kLine) std::atomic<uint64_t> tail_{0};  // frames pushed; stored by the producer
  alignas(kLine) std::atomic<uint64_t> head_{0};  // frames popped; stored by the consumer

  // Consumer-private.
  alignas(kLine) uint64_t c_head_ = 0;
};

/// The guest link of an embedded gateway: a from-guest ring (host thread produces, loop
/// consumes) and a to-guest ring (loop produces, host thread consumes).
///
/// Loop side (FrameTransport): fd() is an eventfd signalled when a push finds the
/// from-guest ring drained, and when a pull frees room after the loop found the to-guest
/// ring full (TCP output then resumes through the usual after-I/O path). Nothing is ever
/// pending output: a frame is delivered once it is in the to-guest ring.
///
/// Host side (push_from_guest / pull_to_guest / to_guest_fd): one producer thread and one
/// consumer thread, which may differ and run concurrently with the loop.
/// to_guest_fd() is readable whenever frames may await a pull; pull_to_guest() resets it
/// itself when it finds the ring empty (and then looks again), so a caller that pulls until
/// kEmpty before polling can never sleep through a frame.
///
/// Counting (loop thread, into `counters`): link.from_guest.frames/bytes when the loop takes
/// a frame, link.to_guest.frames/bytes for frames put into the to-guest ring (every
/// transport counts link.* itself; stack::Interface does not), drop.runt / drop.oversize for
/// pushes with a bad length (counted by the host thread in atomics, folded in on the next
/// receive()), queue.to_guest.high_water (frames), internal_errors for an invalid to-guest
/// frame. drop.queue_full is the caller's, as for every transport.
///
/// virtio-net header (R-TR-6): with RingLinkConfig::vnet_hdr_len 10 or 12, every entry in
/// both rings starts with that header. From the guest, the loop hands each entry to
/// VnetFromGuest (partial checksums, GSO, USO split, drop.vnet_hdr; it counts link.from_guest.*
/// itself). To the guest, send() writes an all-zero header and send_offloaded() the given
/// one; guest_offloads() is the mask the embedder declared (what its guest accepts). The
/// lengths push_from_guest() accepts and pull_to_guest() reports include the header.
///
/// Lifecycle: create() -> serving (no "link gone": rings never fail) -> destroyed (the
/// owner destroys it after the loop thread stopped and no host call is in flight).
class RingTransport final : public FrameTransport {
  struct Private {
    explicit Private() = default;
  };

 public:
  /// Errors: EINVAL for a config outside the caps (or a header length other than 0, 10,
  /// 12, or offloads without a header), or eventfd's.
  static Result<std::unique_ptr<RingTransport>> create(Counters& counters, const RingConfig& from_guest = {},
                                                       const RingConfig& to_guest = {},
                                                       const RingLinkConfig& link = {});
  RingTransport(Private, Counters& counters, std::unique_ptr<SpscFrameRing> from_guest,
                std::unique_ptr<SpscFrameRing> to_guest, UniqueFd loop_wake, UniqueFd host_wake,
                const RingLinkConfig& link);

  // --- loop side ---
  [[nodiscard]] int fd() const override { return loop_wake_.get(); }
  Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) override;
  bool send(Bytes frame) override { return send_offloaded(frame, VnetHeader{}); }
  Status flush() override { return {}; }
  [[nodiscard]] bool has_pending_output() const override { return false; }
  [[nodiscard]] bool output_full() const override;
  [[nodiscard]] OffloadMask guest_offloads() const override { return guest_offloads_; }
  bool send_offloaded(Bytes frame, const VnetHeader& h) override;
  [[nodiscard]] size_t vnet_hdr_len() const noexcept { return vnet_hdr_len_; }

  // --- host side ---
  enum class PushResult { ok, full, invalid };
  /// Single producer. `frame` includes the virtio-net header when there is one.
  /// `invalid`: the length (without the header) is outside kMinFrameLen..kMaxFrameLen (counted
  /// as drop.runt / drop.oversize); `full`: not taken (R-TR-7), the caller drops it.
  PushResult push_from_guest(Bytes frame) noexcept;

  enum class PullResult { ok, empty, too_small };
  /// Single consumer. `ok`: the oldest frame was copied into `buf` and *len set. `too_small`:
  /// *len is the frame's length and it stays at the head (R-TR-7). `empty`: nothing awaits.
  PullResult pull_to_guest(MutBytes buf, size_t* len) noexcept;
  /// The eventfd the host polls for "frames to pull".
  [[nodiscard]] int to_guest_fd() const noexcept { return host_wake_.get(); }

  [[nodiscard]] const SpscFrameRing& from_guest_ring() const noexcept { return *from_guest_; }
  [[nodiscard]] const SpscFrameRing& to_guest_ring() const noexcept { return *to_guest_; }

 private:
  static void signal(int fd) noexcept;
  static void drain(int fd) noexcept;

  Counters& counters_;
  const size_t vnet_hdr_len_;
  const OffloadMask guest_offloads_;
  std::optional<VnetFromGuest> vnet_;  // loop thread; only with a header
  std::unique_ptr<SpscFrameRing> from_guest_;
  std::unique_ptr<SpscFrameRing> to_guest_;
  UniqueFd loop_wake_;
  UniqueFd host_wake_;
  std::atomic<uint64_t> pending_runt_{0};
  std::atomic<uint64_t> pending_oversize_{0};
  /// Set by the loop when it found the to-guest ring full; the host's next pull clears it
  /// and wakes the loop so TCP output resumes.
  mutable std::atomic<bool> to_guest_blocked_{false};
};

}  // namespace moat::transport
