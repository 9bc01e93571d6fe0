#pragma once
// QemuStreamTransport: the guest link of `moat serve --qemu PATH` and of an inherited
// SOCK_STREAM fd (SPEC R-TR-3, R-TR-5). Framing in both directions: a 4-byte big-endian
// length counting the Ethernet frame only, then the frame (QEMU `-netdev stream`, passt).
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/counters.h"
#include "base/unique_fd.h"
#include "transport/frame_ring.h"
#include "transport/frame_transport.h"
#include "transport/unix_socket.h"

namespace moat::transport {

/// Frames over a unix stream socket: either a listener serving one peer at a time, or one
/// inherited connected socket.
///
/// Readiness: fd() is a private epoll set holding the listener and the current connection
/// (with EPOLLOUT while output waits), so the caller's single watch on fd() covers the
/// connection changing underneath it. Because an epoll fd only ever reports EPOLLIN, every
/// readiness is serviced by receive(): it accepts, flushes queued output and reads.
///
/// Lifecycle (listener):
///   waiting     no peer; to-guest frames are dropped (the wire is unplugged).
///   connected   one peer; a second concurrent client is accepted, logged and closed.
///               EOF, a reset or a framing error closes the connection -> waiting; the
///               gateway's state (leases, flows) is untouched, so a restarted VM
///               reconnects (QEMU `reconnect=`) to the same gateway.
///   gone        with `once`, the first disconnect is final: receive() returns kLinkGone.
/// An inherited connection (from_connected_fd) behaves as `once` without a listener.
///
/// Memory, allocated at creation: a from-guest buffer (kReadBufferLen) and the to-guest
/// FrameRing (kOutputLimit bytes of prefixed frames). A frame is queued whole or dropped whole; once any byte of a
/// frame went out, the rest of it always follows (never a partial frame on the wire).
class QemuStreamTransport final : public FrameTransport {
  struct Private {
    explicit Private() = default;
  };

 public:
  /// Per-connection to-guest buffer (R-TR-3: at most 4 MiB, whole frames).
  static constexpr size_t kOutputLimit = size_t{4} << 20;
  /// From-guest read buffer: several frames per read(2), and always room for one whole
  /// maximal frame behind an incomplete one.
  static constexpr size_t kReadBufferLen = size_t{256} << 10;
  static constexpr size_t kPrefixLen = 4;
  /// Most entries the output can hold: kOutputLimit of the smallest prefixed frames, plus a
  /// trimmed one at the front. The byte budget is the only limit that ever binds.
  static constexpr size_t kOutputFrames = kOutputLimit / (kPrefixLen + kMinFrameLen) + 1;
  /// iovecs per sendmsg(2) when writing queued frames.
  static constexpr size_t kWriteBatch = 64;

  /// Serves the listening socket `listener` (bind_unix(..., SOCK_STREAM, ...)).
  static Result<std::unique_ptr<QemuStreamTransport>> listen(BoundUnixSocket listener, bool once,
                                                            Counters& counters);
  /// Serves one already-connected stream socket; its end is the end of the link.
  static Result<std::unique_ptr<QemuStreamTransport>> from_connected_fd(UniqueFd conn, Counters& counters);

  QemuStreamTransport(Private, UniqueFd epoll, BoundUnixSocket listener, bool once, Counters& counters);
  ~QemuStreamTransport() override;
  QemuStreamTransport(const QemuStreamTransport&) = delete;
  QemuStreamTransport& operator=(const QemuStreamTransport&) = delete;

  [[nodiscard]] int fd() const override { return epoll_.get(); }
  Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) override;
  bool send(Bytes frame) override;
  Status flush() override;
  [[nodiscard]] bool has_pending_output() const override { return !out_.empty(); }
  [[nodiscard]] bool output_full() const override;

  [[nodiscard]] bool connected() const noexcept { return conn_.valid(); }
  [[nodiscard]] size_t queued_bytes() const noexcept { return out_.bytes(); }

 private:
  enum : uint64_t { kListenerToken = 1, kConnToken = 2 };

  Status adopt(UniqueFd conn);
  void accept_pending();
  /// Closes the connection (EOF, error, framing error); returns kLinkGone if that ends the link.
  Status disconnect(const char* why);
  Result<size_t> read_frames(FunctionRef<void(Bytes)> on_frame, size_t max_frames, bool* closed);
  /// Writes queued bytes until EAGAIN; false when the peer failed.
  bool write_queued();
  void set_write_interest(bool want);

  UniqueFd epoll_;
  BoundUnixSocket listener_;  ///< fd() < 0 for an inherited connection
  bool once_;
  Counters& counters_;
  UniqueFd conn_;
  bool gone_ = false;
  bool peer_failed_ = false;     ///< a write failed; receive() closes the connection
  bool write_interest_ = false;  ///< EPOLLOUT registered for conn_
  uint64_t connections_ = 0;

  ByteBuffer in_;  // [0, in_len_) unparsed from-guest bytes
  size_t in_len_ = 0;

  /// To-guest output: one entry per frame (prefix + frame). A frame the socket took only in
  /// part stays at the front, trimmed to what is left (trim_front()).
  FrameRing<> out_;
};

}  // namespace moat::transport
