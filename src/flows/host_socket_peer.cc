#include "flows/host_socket_peer.h"

#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace moat::flows {

bool kernel_has_tcp_peek_off() noexcept {
  static const bool has = [] {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return false;
    int zero = 0;
    // Before Linux 6.9 TCP has no set_peek_off: setsockopt fails with EOPNOTSUPP.
    return ::setsockopt(s.get(), SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
  }();
  return has;
}

void HostSocketPeer::attach(UniqueFd fd, const Options& opt) noexcept {
  fd_ = std::move(fd);
  opt_ = opt;
  discard_ = opt.discard;
  use_peek_off_ = false;
  if (opt.use_peek_off) {
    int zero = 0;
    use_peek_off_ = ::setsockopt(fd_.get(), SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
  }
  kernel_peek_off_ = 0;
  read_closed_ = write_shut_wanted_ = write_shut_done_ = aborted_ = false;
  ring_.free_storage();
}

void HostSocketPeer::reset() noexcept {
  fd_.reset();
  ring_.free_storage();
}

UniqueFd HostSocketPeer::release() noexcept {
  ring_.free_storage();
  if (use_peek_off_ && fd_) {
    const int off = -1;  // back to plain reads for the next owner
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
  }
  return std::move(fd_);
}

size_t HostSocketPeer::readable() {
  int n = 0;
  if (!fd_ || ::ioctl(fd_.get(), FIONREAD, &n) < 0 || n < 0) return 0;
  return size_t(n);
}

Result<size_t> HostSocketPeer::peek(size_t offset, MutBytes out) {
  if (!fd_ || aborted_) return unexpected(Errno{EBADF});
  ssize_t r;
  if (use_peek_off_) {
    if (offset != kernel_peek_off_) {
      // Retransmission (or a failed send): move the kernel's peek offset back.
      int off = int(offset);
      if (::setsockopt(fd_.get(), SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) < 0) return sys_error();
      kernel_peek_off_ = offset;
    }
    r = ::recv(fd_.get(), out.data(), out.size(), MSG_PEEK | MSG_DONTWAIT);
    if (r > 0) kernel_peek_off_ += size_t(r);
  } else {
    // No SO_PEEK_OFF: skip `offset` bytes into the discard buffer (passt's fallback).
    if (offset > discard_.size()) return unexpected(Errno{EINVAL});
    iovec iov[2] = {{discard_.data(), offset}, {out.data(), out.size()}};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    r = ::recvmsg(fd_.get(), &mh, MSG_PEEK | MSG_DONTWAIT);
    if (r >= 0) r = r > ssize_t(offset) ? r - ssize_t(offset) : 0;
  }
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return sys_error();
  }
  return size_t(r);
}

Status HostSocketPeer::consume(size_t n) {
  if (!fd_ || aborted_) return {};
  while (n > 0) {
    // MSG_TRUNC on TCP discards without copying; the kernel moves SO_PEEK_OFF back by
    // the same amount.
    const ssize_t r = ::recv(fd_.get(), nullptr, n, MSG_TRUNC | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error();
    }
    if (r == 0) break;
    n -= size_t(r);
    kernel_peek_off_ = kernel_peek_off_ > size_t(r) ? kernel_peek_off_ - size_t(r) : 0;
  }
  return {};
}

size_t HostSocketPeer::writable() {
  if (!fd_ || aborted_ || write_shut_wanted_) return 0;
  // SO_MEMINFO gives the kernel's own accounting (sk_sndbuf vs sk_wmem_queued, skb
  // overhead included) in one syscall. 1/32 is kept back for the overhead of the bytes
  // still to come; whatever the socket then refuses fits in the ring.
  uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof mem;
  size_t sock_free = 0;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 && len > SK_MEMINFO_WMEM_QUEUED * 4) {
    const uint32_t sndbuf = mem[SK_MEMINFO_SNDBUF], queued = mem[SK_MEMINFO_WMEM_QUEUED];
    sock_free = sndbuf > queued ? sndbuf - queued : 0;
    sock_free -= sock_free / 32;
  }
  size_t ring_free = 0;
  if (ring_.capacity() > 0) ring_free = ring_.free();
  else if (!opt_.budget || opt_.budget->fits(opt_.flow_buffer)) ring_free = opt_.flow_buffer;
  size_t w = std::min<size_t>(sock_free + ring_free, opt_.max_window);
  // R-LIM-2: at 75 % of the budget the windows offered to the guest halve.
  if (opt_.budget && opt_.budget->at_least(MemoryLevel::pressure)) w /= 2;
  return w;
}

Result<size_t> HostSocketPeer::write(Bytes data) {
  if (!fd_ || aborted_) return unexpected(Errno{EBADF});
  if (write_shut_wanted_) return unexpected(Errno{EPIPE});
  size_t queued = 0;
  if (ring_.size() > 0) {
    // Slow path (the upstream is slower than the guest): keep the order by queueing
    // behind the ring, then one sendmsg() of the ring.
    queued = ring_.push(data);
    if (auto r = drain(); !r) return unexpected(r.error());
    if (queued == data.size()) return queued;
    if (ring_.capacity() > 0) return queued + ring_.push(data.subspan(queued));
    data = data.subspan(queued);  // drained and unmapped: the rest takes the fast path
  }
  size_t sent = 0;
  if (!data.empty()) {
    const ssize_t r = ::send(fd_.get(), data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return sys_error();
    } else {
      sent = size_t(r);
    }
  }
  if (sent == data.size()) return queued + sent;
  // Keep the remainder (R-TCP-8): the ring is allocated when needed, never grown. When the
  // budget cannot take it, the rest stays unacknowledged and the guest sends it again.
  if (ring_.capacity() == 0 && !ring_.allocate(opt_.flow_buffer, opt_.budget, opt_.ring_cache)) return queued + sent;
  return queued + sent + ring_.push(data.subspan(sent));
}

Status HostSocketPeer::drain() noexcept {
  while (ring_.size() > 0) {
    auto [a, b] = ring_.spans();
    iovec iov[2] = {{const_cast<std::byte*>(a.data()), a.size()}, {const_cast<std::byte*>(b.data()), b.size()}};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = b.empty() ? 1 : 2;
    const ssize_t r = ::sendmsg(fd_.get(), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      return sys_error();
    }
    ring_.pop(size_t(r));
  }
  // Drained: give the pages and their charge back (R-LIM-2), through the engine's small
  // RingCache, which keeps a few mappings for the next stall unless the budget is under
  // pressure.
  ring_.free_storage();
  if (write_shut_wanted_ && !write_shut_done_) {
    ::shutdown(fd_.get(), SHUT_WR);
    write_shut_done_ = true;
  }
  return {};
}

Status HostSocketPeer::on_writable() noexcept {
  if (!fd_ || aborted_) return {};
  return drain();
}

void HostSocketPeer::shutdown_write() {
  if (!fd_ || aborted_ || write_shut_wanted_) return;
  write_shut_wanted_ = true;
  if (ring_.size() == 0) {
    ::shutdown(fd_.get(), SHUT_WR);
    write_shut_done_ = true;
  }
}

bool HostSocketPeer::delivered() const noexcept {
  if (!fd_ || aborted_ || !write_shut_done_ || ring_.size() > 0) return false;
  int unacked = 0;
  return ::ioctl(fd_.get(), SIOCOUTQ, &unacked) == 0 && unacked == 0;
}

void HostSocketPeer::discard_input() noexcept {
  if (!fd_ || aborted_) return;
  // 64 rounds of up to 1 MiB: more than any socket buffer holds; a host that keeps
  // sending faster than that gets the RST it asked for.
  for (int i = 0; i < 64; ++i) {
    const ssize_t r = ::recv(fd_.get(), nullptr, 1 << 20, MSG_DONTWAIT | MSG_TRUNC);
    if (r > 0) continue;
    if (r < 0 && errno == EINTR) continue;
    break;
  }
}

void HostSocketPeer::abort() {
  if (!fd_ || aborted_) return;
  aborted_ = true;
  linger lg{1, 0};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

}  // namespace moat::flows
