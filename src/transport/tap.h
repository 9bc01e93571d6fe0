#pragma once
// TapTransport: the guest link in netns modes (SPEC R-TR-2). One read(2) is one frame and
// one write(2) is one frame (IFF_TAP | IFF_NO_PI, no virtio-net header). Also works over
// a SOCK_SEQPACKET/SOCK_DGRAM socket, which has the same one-frame-per-call semantics
// (tests; R-TR-5 inherited datagram fds).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/counters.h"
#include "base/unique_fd.h"
#include "transport/frame_ring.h"
#include "transport/frame_transport.h"

namespace moat::transport {

/// Capacities of the to-guest queue (R-TR-2 defaults).
struct TapConfig {
  /// Frames that may wait for the TAP to become writable. Hard cap kMaxQueueFrames.
  size_t queue_frames = 1024;
  /// Bytes of frame data that may wait. At least kMaxFrameLen (one maximal frame must
  /// fit); hard cap kMaxQueueBytes.
  size_t queue_bytes = size_t{8} << 20;

  /// 64 Ki frames / 256 MiB: far above any useful backlog for one guest, low enough
  /// that a config typo cannot make one gateway reserve gigabytes.
  static constexpr size_t kMaxQueueFrames = 65536;
  static constexpr size_t kMaxQueueBytes = size_t{256} << 20;

  /// virtio-net header in front of every frame (R-TR-6): 0 (IFF_NO_PI only), or 10/12 when
  /// the fd was opened with IFF_VNET_HDR (TUNSETVNETHDRSZ decides which).
  size_t vnet_hdr_len = 0;
  /// What the guest side accepts in frames moat writes (partial checksums, TSO). A TAP takes
  /// every offload from user space once it has a vnet header; this is what moat uses.
  OffloadMask guest_offloads = 0;
};

/// TUNSETOFFLOAD: which offloads moat accepts in frames the namespace's kernel hands it
/// (kOffloadCsum -> TUN_F_CSUM, Tso4/6 -> TUN_F_TSO4/6, Uso -> TUN_F_USO4|USO6). Errno on
/// failure (e.g. EINVAL for USO on a kernel before 6.2).
Status set_tap_offloads(int fd, OffloadMask from_guest) noexcept;

/// Frame transport over an already-configured TAP fd.
///
/// Lifecycle: create() -> running (receive/send/flush from the loop thread) -> link gone
/// (receive()/flush() return kLinkGone; further calls keep failing) -> destroyed (closes
/// the fd; destroy the Watch on fd() first).
///
/// Memory is allocated once in create(): one receive buffer of kMaxFrameLen + 1 bytes and
/// the to-guest FrameRing (queue_frames entries, queue_bytes of frames plus their headers,
/// and one maximal entry of slack so the byte budget is exact). Steady state does no
/// allocation.
///
/// Counting (into the Counters passed to create()): link.from_guest.frames/bytes for
/// delivered frames, drop.runt / drop.oversize for rejected ones, link.to_guest.frames/
/// bytes for frames the kernel accepted, queue.to_guest.high_water (in frames), and
/// internal_errors for invalid to-guest frames. drop.queue_full is the caller's.
class TapTransport final : public FrameTransport {
  struct Private {
    explicit Private() = default;
  };

 public:
  /// Takes ownership of `fd` (a TAP opened IFF_TAP|IFF_NO_PI, or a datagram socket) and
  /// makes it non-blocking. Errors: EINVAL for a config outside its caps, or fcntl's.
  /// `counters` must outlive the transport.
  static Result<std::unique_ptr<TapTransport>> create(UniqueFd fd, Counters& counters,
                                                      const TapConfig& config = {});

  TapTransport(Private, UniqueFd fd, bool is_socket, Counters& counters, const TapConfig& config);
  TapTransport(const TapTransport&) = delete;
  TapTransport& operator=(const TapTransport&) = delete;

  [[nodiscard]] int fd() const override { return fd_.get(); }
  /// read(2) until EAGAIN or max_frames, into one preallocated buffer.
  Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) override;
  /// write(2) now if nothing is queued (keeps order), else / on EAGAIN copy into the ring.
  bool send(Bytes frame) override;
  Status flush() override;
  [[nodiscard]] bool has_pending_output() const override { return !queue_.empty(); }
  [[nodiscard]] bool output_full() const override;
  [[nodiscard]] OffloadMask guest_offloads() const override { return guest_offloads_; }
  bool send_offloaded(Bytes frame, const VnetHeader& h) override;

  [[nodiscard]] size_t queued_frames() const noexcept { return queue_.size(); }
  [[nodiscard]] size_t queued_bytes() const noexcept { return queue_.bytes(); }

 private:
  enum class WriteOutcome { written, would_block, discarded, link_gone };
  WriteOutcome write_frame(Bytes header, Bytes frame) noexcept;
  bool enqueue(Bytes header, Bytes frame) noexcept;

  UniqueFd fd_;
  bool is_socket_;  // send(MSG_NOSIGNAL) instead of write(2): no SIGPIPE from a closed peer
  Counters& counters_;
  size_t vnet_hdr_len_;
  OffloadMask guest_offloads_;
  std::optional<VnetFromGuest> vnet_;  ///< from-guest header handling when vnet_hdr_len_ > 0

  std::vector<std::byte> from_guest_buf_;  // kMaxFrameLen + 1: a read that fills it is oversize

  // To-guest queue: header + frame per entry, each contiguous (FrameRing's placement).
  FrameRing<> queue_;
};

}  // namespace moat::transport
