#pragma once
// UnixgramTransport: the guest link of `moat serve --unixgram PATH` (SPEC R-TR-4): one
// Ethernet frame per datagram, no prefix (QEMU `-netdev dgram`, vfkit, libkrun).
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <memory>

#include "base/bytes.h"
#include "base/counters.h"
#include "transport/frame_transport.h"
#include "transport/unix_socket.h"

namespace moat::transport {

/// Socket buffer sizes asked for (R-TR-4: best effort; SO_*BUFFORCE first when privileged).
struct UnixgramConfig {
  size_t sndbuf = size_t{1} << 20;
  size_t rcvbuf = size_t{4} << 20;
};

/// Frames as datagrams on a bound unix socket, answered to one learned peer.
///
/// Lifecycle:
///   no peer   the first datagram from a named sender makes that sender the peer. To-guest
///             frames are dropped meanwhile (nobody to send them to).
///   peer      datagrams from any other sender are dropped (drop.foreign_peer), except a
///             4-byte `VFKT` handshake, which (re)binds the peer to its sender (a VM that
///             restarted on a new socket). A sender without a bound name cannot be
///             answered: logged once as an error, its datagrams dropped as foreign.
/// The link never ends by itself (datagram sockets have no end of stream); the owner stops.
///
/// Sending never queues: EAGAIN/ENOBUFS drop the frame (send() returns false and the caller
/// counts drop.queue_full); a peer whose socket vanished (ECONNREFUSED, ENOENT) loses the
/// frame as on an unplugged wire.
class UnixgramTransport final : public FrameTransport {
  struct Private {
    explicit Private() = default;
  };

 public:
  static Result<std::unique_ptr<UnixgramTransport>> create(BoundUnixSocket sock, Counters& counters,
                                                           const UnixgramConfig& config = {});
  UnixgramTransport(Private, BoundUnixSocket sock, Counters& counters);

  [[nodiscard]] int fd() const override { return sock_.fd(); }
  Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) override;
  bool send(Bytes frame) override;
  Status flush() override { return {}; }
  [[nodiscard]] bool has_pending_output() const override { return false; }
  [[nodiscard]] bool output_full() const override { return false; }

  [[nodiscard]] bool has_peer() const noexcept { return peer_len_ != 0; }

 private:
  BoundUnixSocket sock_;
  Counters& counters_;
  ByteBuffer buf_;  // kMaxFrameLen + 1: a datagram that fills it was truncated (oversize)
  sockaddr_un peer_{};
  socklen_t peer_len_ = 0;
  bool unbound_logged_ = false;
};

}  // namespace moat::transport
