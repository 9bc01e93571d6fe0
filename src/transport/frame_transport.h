#pragma once
// The interface every guest link implements (TAP, QEMU stream, unix datagram, inherited
// fd, in-process ring) and the frame rules they share (SPEC R-TR-1). See README.md.
#include <cerrno>
#include <cstddef>

#include "base/bytes.h"
#include "base/function_ref.h"
#include "base/result.h"
#include "transport/vnet.h"

namespace moat::transport {

/// Valid Ethernet frame lengths, without any virtio-net header (R-TR-1): a 14-byte
/// header up to a 65535-byte IP packet plus the header.
inline constexpr size_t kMinFrameLen = 14;
inline constexpr size_t kMaxFrameLen = 65550;
/// Frames read per readiness wake-up (R-TR-2); what callers pass as `max_frames`.
inline constexpr size_t kMaxFramesPerWakeup = 64;

/// The error receive() and flush() return once the guest link is gone for good: the TAP
/// device vanished with its network namespace (EBADFD/EIO/ENXIO/ENODEV, or a read of 0),
/// or a socket peer closed (EOF, ECONNRESET, EPIPE). The gateway reacts by stopping
/// (R-TR-2) or waiting for a reconnect (R-TR-3). Any other Errno is unexpected.
inline constexpr Errno kLinkGone{ENODEV};
[[nodiscard]] inline bool is_link_gone(const Errno& e) noexcept { return e == kLinkGone; }

/// A bidirectional Ethernet link to the guest. Loop-thread only; never blocks.
///
/// Drive it from a Watch on fd(): EPOLLIN -> receive(on_frame, kMaxFramesPerWakeup);
/// EPOLLOUT -> flush(). Watch EPOLLOUT only while has_pending_output() is true
/// (re-check after every send() and flush()).
class FrameTransport {
 public:
  virtual ~FrameTransport() = default;

  /// The fd to watch for EPOLLIN (and EPOLLOUT while output is queued).
  [[nodiscard]] virtual int fd() const = 0;

  /// Reads up to max_frames frames, calling on_frame for each valid one (the span is
  /// valid only during the call). Frames outside kMinFrameLen..kMaxFrameLen are dropped
  /// and counted by the transport (drop.runt / drop.oversize) instead of delivered.
  /// Returns the number of frames consumed from the link, dropped ones included; less
  /// than max_frames means the link was drained. Errors: kLinkGone (see above), or
  /// another Errno for an unexpected failure. on_frame may already have been called
  /// for earlier frames when an error is returned.
  virtual Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) = 0;

  /// Sends or queues one frame to the guest; never blocks. The bytes are copied before
  /// returning. false = dropped: the to-guest queue is full (the caller counts
  /// drop.queue_full), or, rarely, the frame length is invalid (a moat bug, logged and
  /// counted as internal_errors by the transport) or the link is gone (the next
  /// receive()/flush() reports kLinkGone).
  virtual bool send(Bytes frame) = 0;

  /// On EPOLLOUT: writes queued frames until the link would block. Only kLinkGone or an
  /// unexpected Errno is an error; frames the kernel rejects individually are dropped.
  virtual Status flush() = 0;

  /// True while frames wait in the to-guest queue (watch EPOLLOUT).
  [[nodiscard]] virtual bool has_pending_output() const = 0;

  /// True when the next send() would be dropped for lack of queue space. TCP stops
  /// building new segments while this holds (R-TR-2: "TCP output pauses").
  [[nodiscard]] virtual bool output_full() const = 0;

  /// Offloads the guest side accepts in frames moat sends (R-TR-6): partial checksums
  /// (kOffloadCsum) and TCP super-frames (kOffloadTso4/6). 0 (the default): plain frames.
  [[nodiscard]] virtual OffloadMask guest_offloads() const { return 0; }
  /// send() with a virtio-net header describing the frame (a partial checksum, a TSO
  /// super-frame). Only for offloads guest_offloads() includes; the default transport has
  /// none and refuses any header that is not all zero.
  virtual bool send_offloaded(Bytes frame, const VnetHeader& h) {
    if (h.flags != 0 || h.gso_type != kVnetGsoNone) return false;
    return send(frame);
  }
};

}  // namespace moat::transport
