#pragma once
// TcpPeer: the upstream side of a guest TCP connection, as TcpConn sees it.
//
// Upstream -> guest bytes stay in the peer until the guest acknowledges them, so the peer
// *is* the retransmit queue (passt keeps them in the kernel socket and reads them with
// MSG_PEEK): TcpConn peeks at an offset from the first unacknowledged byte, and consumes
// from the front once they are acked.
// Guest -> upstream bytes are handed over with write(); writable() is what the peer can
// still take, and therefore the window TcpConn advertises (R-TCP-8).
//
// Two implementations: HostSocketPeer (a non-blocking kernel socket, the fast path) and
// StreamPeer (bounded in-process buffers, for the inspect path and TLS interception).
#include <cstddef>
#include <cstdint>

#include "base/bytes.h"
#include "base/result.h"

namespace moat::flows {

class TcpPeer {
 public:
  virtual ~TcpPeer() = default;

  // ---- upstream -> guest ----
  /// Bytes the peer holds from its front (already sent to the guest but unacked, plus not
  /// yet sent). May cost a syscall (FIONREAD): TcpConn calls it once per readiness event.
  virtual size_t readable() = 0;
  /// Upstream has finished: nothing will be added beyond readable().
  [[nodiscard]] virtual bool read_closed() const = 0;
  /// Copies bytes [offset, offset + out.size()) of what it holds; returns the count
  /// (short only if fewer are held). Errors are the upstream's (ECONNRESET ...).
  virtual Result<size_t> peek(size_t offset, MutBytes out) = 0;
  /// Largest offset + length peek() can serve (the discard-buffer size when the kernel
  /// has no SO_PEEK_OFF); TcpConn never has more than this in flight.
  [[nodiscard]] virtual size_t peek_limit() const { return SIZE_MAX; }
  /// Drops the first n bytes (the guest acknowledged them).
  virtual Status consume(size_t n) = 0;

  // ---- guest -> upstream ----
  /// Bytes write() will take now. May cost syscalls: TcpConn asks once per batch.
  virtual size_t writable() = 0;
  /// Takes at most data.size() bytes, in order; returns how many it took.
  virtual Result<size_t> write(Bytes data) = 0;
  /// The guest sent FIN: close the upstream write side once every taken byte is written.
  virtual void shutdown_write() = 0;
  /// Abortive close: the upstream sees RST (SO_LINGER 0). No further calls follow.
  virtual void abort() = 0;
};

}  // namespace moat::flows
