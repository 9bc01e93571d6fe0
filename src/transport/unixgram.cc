#include "transport/unixgram.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "base/log.h"

namespace moat::transport {
namespace {

constexpr std::byte kHandshake[4] = {std::byte{'V'}, std::byte{'F'}, std::byte{'K'}, std::byte{'T'}};

void set_buffer(int fd, int force_opt, int opt, size_t bytes) {
  const int v = bytes > size_t(INT32_MAX / 2) ? INT32_MAX / 2 : int(bytes);
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return;  // CAP_NET_ADMIN: beyond rmem_max
  ::setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);                        // best effort (R-TR-4)
}

bool same_addr(const sockaddr_un& a, socklen_t alen, const sockaddr_un& b, socklen_t blen) {
  return alen == blen && std::memcmp(&a, &b, alen) == 0;
}

}  // namespace

Result<std::unique_ptr<UnixgramTransport>> UnixgramTransport::create(BoundUnixSocket sock, Counters& counters,
                                                                     const UnixgramConfig& config) {
  if (sock.fd() < 0) return unexpected(Errno{EBADF});
  set_buffer(sock.fd(), SO_SNDBUFFORCE, SO_SNDBUF, config.sndbuf);
  set_buffer(sock.fd(), SO_RCVBUFFORCE, SO_RCVBUF, config.rcvbuf);
  return std::make_unique<UnixgramTransport>(Private{}, std::move(sock), counters);
}

UnixgramTransport::UnixgramTransport(Private, BoundUnixSocket sock, Counters& counters)
    : sock_(std::move(sock)), counters_(counters), buf_(kMaxFrameLen + 1) {}

Result<size_t> UnixgramTransport::receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) {
  size_t consumed = 0;
  while (consumed < max_frames) {
    sockaddr_un from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = ::recvfrom(sock_.fd(), buf_.data(), buf_.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      // ECONNREFUSED here reports an earlier send to a vanished peer: not this socket's end.
      if (e == ECONNREFUSED || e == ECONNRESET) continue;
      return unexpected(Errno{e});
    }
    ++consumed;
    const auto len = size_t(n);
    // An unbound sender's address is just the family: there is no name to answer to.
    const bool unbound = from_len <= socklen_t(offsetof(sockaddr_un, sun_path));
    const bool handshake = len == sizeof kHandshake && std::memcmp(buf_.data(), kHandshake, len) == 0;
    if (unbound) {
      if (!unbound_logged_) {
        unbound_logged_ = true;
        MOAT_LOG(error, "unixgram: a sender without a bound address cannot be answered; its datagrams are dropped "
                        "(bind the VM's socket to a path)");
      }
      counters_.drop(DropReason::foreign_peer);
      continue;
    }
    if (handshake) {
      if (!same_addr(from, from_len, peer_, peer_len_)) MOAT_LOG(info, "unixgram: peer bound by handshake");
      peer_ = from;
      peer_len_ = from_len;
      continue;
    }
    if (peer_len_ == 0) {
      peer_ = from;
      peer_len_ = from_len;
      MOAT_LOG(info, "unixgram: peer learned from its first datagram");
    } else if (!same_addr(from, from_len, peer_, peer_len_)) {
      counters_.drop(DropReason::foreign_peer);
      MOAT_LOG_RATELIMITED(debug, "unixgram: dropped a datagram from a foreign sender");
      continue;
    }
    if (len < kMinFrameLen) {
      counters_.drop(DropReason::runt);
      continue;
    }
    if (len > kMaxFrameLen) {
      counters_.drop(DropReason::oversize);
      continue;
    }
    counters_.inc(Counter::link_from_guest_frames);
    counters_.inc(Counter::link_from_guest_bytes, len);
    on_frame(Bytes(buf_.data(), len));
  }
  return consumed;
}

bool UnixgramTransport::send(Bytes frame) {
  if (frame.size() < kMinFrameLen || frame.size() > kMaxFrameLen) {
    counters_.inc(Counter::internal_errors);
    MOAT_LOG_RATELIMITED(error, "unixgram: refusing to send a %zu-byte frame (bug)", frame.size());
    return false;
  }
  if (peer_len_ == 0) return true;  // nobody to deliver to yet: lost on the wire
  for (;;) {
    const ssize_t n = ::sendto(sock_.fd(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&peer_), peer_len_);
    if (n >= 0) {
      counters_.inc(Counter::link_to_guest_frames);
      counters_.inc(Counter::link_to_guest_bytes, frame.size());
      return true;
    }
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) return false;  // R-TR-4: dropped, counted by the caller
    // The peer's socket is gone (VM stopped); frames are lost until it comes back.
    MOAT_LOG_RATELIMITED(debug, "unixgram: send failed: %s", std::strerror(e));
    return true;
  }
}

}  // namespace moat::transport
