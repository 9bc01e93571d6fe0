#pragma once
// HostSocketPeer: the fast path's TcpPeer, one non-blocking kernel TCP socket (R-TCP-3,
// R-TCP-15), the way passt maps guest TCP onto host sockets.
//
// Upstream -> guest: data stays in the socket's receive queue until the guest ACKs it.
//   peek() is recv(MSG_PEEK) at an offset: with SO_PEEK_OFF (Linux >= 6.9, probed once)
//   the kernel keeps the offset and one recv fills one guest segment; without it, a
//   recvmsg() whose first iovec is a shared discard buffer skips the bytes already in
//   flight (so in-flight data is capped at that buffer: peek_limit()). consume() is a
//   recv(MSG_TRUNC) that discards acked bytes without copying them.
// Guest -> upstream: write() sends straight from the guest frame. What the socket does not
//   take goes to a per-flow ring of `flow_buffer` bytes, allocated (and charged to the
//   memory budget, R-LIM-2) when the socket first refuses bytes and unmapped again as soon
//   as EPOLLOUT has drained it (on_writable()), so only flows whose upstream is behind hold
//   one. writable() is free send buffer (SO_SNDBUF - SIOCOUTQ) + free ring space (a ring
//   not yet allocated counts only if the budget could take it), capped at max_window and
//   halved at the budget's pressure level: the window the guest is offered can be stored,
//   except when other flows took the budget in between; then write() takes what the socket
//   takes and the guest retransmits the rest.
// Half-close: shutdown_write() becomes shutdown(SHUT_WR) once the ring is empty.
// Abort: SO_LINGER {1, 0}, so close() sends RST. The fd is closed by the destructor.
//
// States of the read side and the write side are separate named flags (STYLE "TCP").
#include <sys/uio.h>

#include <cstdint>

#include "base/unique_fd.h"
#include "flows/stream_peer.h"
#include "flows/tcp_peer.h"

namespace moat::flows {

/// Whether this kernel supports SO_PEEK_OFF on TCP sockets (probed on first call).
bool kernel_has_tcp_peek_off() noexcept;

class HostSocketPeer final : public TcpPeer {
 public:
  struct Options {
    uint32_t flow_buffer = 256 << 10;
    uint32_t max_window = 8 << 20;
    bool use_peek_off = true;  ///< false: the discard-buffer fallback
    MutBytes discard;          ///< shared scratch for the fallback (any size > 0)
    MemoryBudget* budget = nullptr;  ///< the gateway's (R-LIM-2); null = not accounted
    RingCache* ring_cache = nullptr;  ///< drained rings kept for the next stall (the engine's)
  };

  HostSocketPeer() = default;
  HostSocketPeer(const HostSocketPeer&) = delete;
  HostSocketPeer& operator=(const HostSocketPeer&) = delete;

  /// Takes a connected (or connecting) socket. Enables SO_PEEK_OFF when wanted.
  void attach(UniqueFd fd, const Options& opt) noexcept;
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  /// Closes the socket now (failed connect attempt before the next one).
  void reset() noexcept;
  /// Gives the socket away (a TcpPeerProvider continues on it, TcpFlowRef::
  /// take_host_socket); only before any guest byte was written to it.
  UniqueFd release() noexcept;

  /// EPOLLRDHUP / EPOLLHUP seen: no more data will arrive.
  void set_read_closed() noexcept { read_closed_ = true; }
  /// EPOLLOUT: drains the ring, then does a pending shutdown(SHUT_WR).
  Status on_writable() noexcept;
  [[nodiscard]] size_t buffered() const noexcept { return ring_.size(); }
  [[nodiscard]] bool write_shut() const noexcept { return write_shut_done_; }
  /// The drain's test for "the guest's bytes have arrived" (R-CLI-2): the write side is
  /// shut, the ring is empty and the kernel holds no unacknowledged byte (SIOCOUTQ 0), so
  /// the host application has received everything and the FIN. One ioctl.
  [[nodiscard]] bool delivered() const noexcept;
  /// Discards whatever the host sent that nobody will read (recv MSG_TRUNC until empty,
  /// bounded), so that closing the socket afterwards sends no RST (a close with unread
  /// data resets the connection).
  void discard_input() noexcept;

  // ---- TcpPeer ----
  size_t readable() override;
  [[nodiscard]] bool read_closed() const override { return read_closed_; }
  Result<size_t> peek(size_t offset, MutBytes out) override;
  [[nodiscard]] size_t peek_limit() const override { return use_peek_off_ ? SIZE_MAX : discard_.size(); }
  Status consume(size_t n) override;
  size_t writable() override;
  Result<size_t> write(Bytes data) override;
  void shutdown_write() override;
  void abort() override;

 private:
  Status drain() noexcept;

  UniqueFd fd_;
  Options opt_{};
  bool use_peek_off_ = false;
  MutBytes discard_;
  size_t kernel_peek_off_ = 0;  // mirror of the socket's SO_PEEK_OFF
  ByteRing ring_;               // guest bytes the socket did not take yet
  bool read_closed_ = false;
  bool write_shut_wanted_ = false, write_shut_done_ = false;
  bool aborted_ = false;
};

}  // namespace moat::flows
