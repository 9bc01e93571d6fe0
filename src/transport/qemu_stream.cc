#include "transport/qemu_stream.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace moat::transport {
namespace {

// A peer that went away: the connection is over (EOF is handled separately).
bool peer_gone_errno(int e) noexcept { return e == ECONNRESET || e == EPIPE || e == ENOTCONN || e == ETIMEDOUT; }

/// writev(2) without SIGPIPE: a VM that went away must not kill the gateway.
ssize_t send_iov(int fd, iovec* iov, size_t count) noexcept {
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = count;
  return ::sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

Result<std::unique_ptr<QemuStreamTransport>> QemuStreamTransport::listen(BoundUnixSocket listener, bool once,
                                                                          Counters& counters) {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return sys_error();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerToken;
  if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener.fd(), &ev) != 0) return sys_error();
  return std::make_unique<QemuStreamTransport>(Private{}, std::move(ep), std::move(listener), once, counters);
}

Result<std::unique_ptr<QemuStreamTransport>> QemuStreamTransport::from_connected_fd(UniqueFd conn,
                                                                                     Counters& counters) {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return sys_error();
  const int flags = ::fcntl(conn.get(), F_GETFL);
  if (flags < 0) return sys_error();
  if ((flags & O_NONBLOCK) == 0 && ::fcntl(conn.get(), F_SETFL, flags | O_NONBLOCK) < 0) return sys_error();
  auto t = std::make_unique<QemuStreamTransport>(Private{}, std::move(ep), BoundUnixSocket{}, /*once=*/true, counters);
  if (auto s = t->adopt(std::move(conn)); !s) return unexpected(s.error());
  return t;
}

QemuStreamTransport::QemuStreamTransport(Private, UniqueFd epoll, BoundUnixSocket listener, bool once,
                                         Counters& counters)
    : epoll_(std::move(epoll)),
      listener_(std::move(listener)),
      once_(once),
      counters_(counters),
      in_(kReadBufferLen),
      out_(kOutputFrames, kOutputLimit, kPrefixLen + kMaxFrameLen) {}

QemuStreamTransport::~QemuStreamTransport() = default;

Status QemuStreamTransport::adopt(UniqueFd conn) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kConnToken;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, conn.get(), &ev) != 0) return sys_error();
  conn_ = std::move(conn);
  write_interest_ = false;
  peer_failed_ = false;
  in_len_ = 0;
  out_.clear();
  ++connections_;
  MOAT_LOG(info, "qemu: peer connected (connection %llu)", static_cast<unsigned long long>(connections_));
  return {};
}

void QemuStreamTransport::accept_pending() {
  // Bounded: a flood of clients cannot hold the loop; the rest wait in the backlog.
  for (int i = 0; i < 16; ++i) {
    UniqueFd c(::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        MOAT_LOG_RATELIMITED(warn, "qemu: accept failed: %s", std::strerror(errno));
      return;
    }
    if (conn_) {
      // R-TR-3: one peer at a time; the second is told so by an immediate close.
      MOAT_LOG_RATELIMITED(warn, "qemu: refused a second connection on %s while a peer is connected",
                           listener_.path().empty() ? "the socket" : listener_.path().c_str());
      continue;  // `c` closes here
    }
    if (auto s = adopt(std::move(c)); !s)
      MOAT_LOG_RATELIMITED(error, "qemu: cannot watch the new connection: %s", s.error().message());
  }
}

Status QemuStreamTransport::disconnect(const char* why) {
  if (conn_) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn_.get(), nullptr);
    conn_.reset();
  }
  // Whatever was buffered belonged to that connection; a new peer starts on a frame boundary.
  in_len_ = 0;
  out_.clear();
  write_interest_ = false;
  peer_failed_ = false;
  if (once_) {
    MOAT_LOG(info, "qemu: peer disconnected (%s); the link ends", why);
    gone_ = true;
    return unexpected(kLinkGone);
  }
  MOAT_LOG(info, "qemu: peer disconnected (%s); waiting for a reconnect, gateway state kept", why);
  return {};
}

Result<size_t> QemuStreamTransport::receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) {
  if (gone_) return unexpected(kLinkGone);
  epoll_event evs[4];
  int n = ::epoll_wait(epoll_.get(), evs, 4, 0);
  if (n < 0 && errno != EINTR) return sys_error();
  bool listener_ready = false;
  for (int i = 0; i < n; ++i)
    if (evs[i].data.u64 == kListenerToken) listener_ready = true;

  size_t consumed = 0;
  if (conn_) {
    if (!peer_failed_ && !out_.empty() && !write_queued()) peer_failed_ = true;
    if (peer_failed_) {
      if (auto s = disconnect("write failed"); !s) return unexpected(s.error());
    } else {
      bool closed = false;
      auto r = read_frames(on_frame, max_frames, &closed);
      if (!r) return r;
      consumed = *r;
      if (peer_failed_ && !closed) {  // a reply to one of these frames hit a dead peer
        if (auto s = disconnect("write failed"); !s) return unexpected(s.error());
      }
    }
  }
  if (listener_ready && listener_.fd() >= 0) accept_pending();
  return consumed;
}

Result<size_t> QemuStreamTransport::read_frames(FunctionRef<void(Bytes)> on_frame, size_t max_frames, bool* closed) {
  size_t consumed = 0;
  // Every read(2) is parsed completely, so a wake-up may pass max_frames by the frames of
  // one buffer; that keeps frames already read from waiting for a readiness that may not
  // come again (the socket can be drained while complete frames sit in the buffer).
  while (consumed < max_frames) {
    const ssize_t n = ::read(conn_.get(), in_.data() + in_len_, in_.size() - in_len_);
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      *closed = true;
      if (in_len_ != 0) {
        counters_.inc(Counter::transport_framing_errors);
        counters_.drop(DropReason::framing);
      }
      if (!peer_gone_errno(e)) MOAT_LOG_RATELIMITED(warn, "qemu: read failed: %s", std::strerror(e));
      if (auto s = disconnect(std::strerror(e)); !s) return unexpected(s.error());
      return consumed;
    }
    if (n == 0) {
      *closed = true;
      const char* why = "end of stream";
      if (in_len_ != 0) {  // a length prefix or a frame cut short by the peer's close
        counters_.inc(Counter::transport_framing_errors);
        counters_.drop(DropReason::framing);
        why = in_len_ < kPrefixLen ? "truncated length prefix at end of stream" : "truncated frame at end of stream";
      }
      if (auto s = disconnect(why); !s) return unexpected(s.error());
      return consumed;
    }
    in_len_ += size_t(n);
    size_t pos = 0;
    while (kPrefixLen <= in_len_ - pos) {
      const uint32_t len = load_be32(in_.data() + pos);
      if (len == 0 || len > kMaxFrameLen) {
        // R-TR-1: the stream has lost frame sync; nothing after this can be trusted.
        counters_.inc(Counter::transport_framing_errors);
        counters_.drop(DropReason::framing);
        MOAT_LOG_RATELIMITED(warn, "qemu: framing error: length prefix %u (valid 1-%zu); closing the connection", len,
                             kMaxFrameLen);
        *closed = true;
        if (auto s = disconnect("framing error"); !s) return unexpected(s.error());
        return consumed;
      }
      if (len > in_len_ - pos - kPrefixLen) break;  // the rest of this frame is still in flight
      const std::byte* frame = in_.data() + pos + kPrefixLen;
      pos += kPrefixLen + len;
      ++consumed;
      if (len < kMinFrameLen) {
        counters_.drop(DropReason::runt);
        MOAT_LOG_RATELIMITED(debug, "qemu: dropped %u-byte runt frame from guest", len);
        continue;
      }
      counters_.inc(Counter::link_from_guest_frames);
      counters_.inc(Counter::link_from_guest_bytes, len);
      on_frame(Bytes(frame, len));
    }
    if (pos != 0) {
      std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
      in_len_ -= pos;
    }
  }
  return consumed;
}

void QemuStreamTransport::set_write_interest(bool want) {
  if (want == write_interest_ || !conn_) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? uint32_t(EPOLLOUT) : 0u);
  ev.data.u64 = kConnToken;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, conn_.get(), &ev) == 0) write_interest_ = want;
  else MOAT_LOG_RATELIMITED(error, "qemu: epoll modify failed: %s", std::strerror(errno));
}

bool QemuStreamTransport::write_queued() {
  while (!out_.empty()) {
    // The queued frames are one byte stream: gather a batch of them into one sendmsg.
    iovec iov[kWriteBatch];
    const size_t count = std::min(out_.size(), kWriteBatch);
    for (size_t i = 0; i < count; ++i) {
      const Bytes e = out_.entry(i);
      iov[i] = {const_cast<std::byte*>(e.data()), e.size()};
    }
    const ssize_t n = send_iov(conn_.get(), iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return false;
    }
    // Release what went out; a frame sent in part keeps its rest at the front.
    size_t done = size_t(n);
    while (done != 0 && done >= out_.front().size()) {
      done -= out_.front().size();
      out_.pop_front();
    }
    if (done != 0) out_.trim_front(done);
  }
  set_write_interest(!out_.empty());
  return true;
}

bool QemuStreamTransport::output_full() const {
  // Conservative, as for the TAP: "could not take a maximal frame".
  return conn_ && !out_.can_push(out_.max_entry());
}

bool QemuStreamTransport::send(Bytes frame) {
  if (frame.size() < kMinFrameLen || frame.size() > kMaxFrameLen) {
    counters_.inc(Counter::internal_errors);
    MOAT_LOG_RATELIMITED(error, "qemu: refusing to send a %zu-byte frame (bug)", frame.size());
    return false;
  }
  // No peer (or a dead one): the cable is unplugged, the frame is lost on the wire.
  if (!conn_ || peer_failed_ || gone_) return true;
  std::byte prefix[kPrefixLen];
  store_be32(prefix, uint32_t(frame.size()));
  const size_t total = kPrefixLen + frame.size();
  if (out_.empty()) {  // nothing queued: write now (queued bytes would have to go first)
    iovec iov[2] = {{prefix, kPrefixLen}, {const_cast<std::byte*>(frame.data()), frame.size()}};
    ssize_t n;
    do n = send_iov(conn_.get(), iov, 2);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      peer_failed_ = true;  // receive() closes the connection; EPOLLHUP/ERR wakes it
      return true;
    }
    const size_t done = n < 0 ? 0 : size_t(n);
    if (done == total) {
      counters_.inc(Counter::link_to_guest_frames);
      counters_.inc(Counter::link_to_guest_bytes, frame.size());
      return true;
    }
    // The kernel took part of it: the remainder must follow. The output is empty, so the
    // whole entry fits; queue it and drop what already went out.
    out_.push(Bytes(prefix, kPrefixLen), frame);
    if (done != 0) out_.trim_front(done);
  } else if (!out_.push(Bytes(prefix, kPrefixLen), frame)) {
    return false;  // whole frame dropped; caller counts queue_full
  }
  counters_.inc(Counter::link_to_guest_frames);
  counters_.inc(Counter::link_to_guest_bytes, frame.size());
  set_write_interest(true);
  return true;
}

Status QemuStreamTransport::flush() {
  if (gone_) return unexpected(kLinkGone);
  if (!conn_ || out_.empty()) return {};
  if (!write_queued()) return disconnect("write failed");
  return {};
}

}  // namespace moat::transport
