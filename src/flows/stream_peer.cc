#include "flows/stream_peer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace moat::flows {

size_t ByteRing::push(Bytes in) noexcept {
  const size_t n = std::min(in.size(), free());
  const size_t cap = buf_.size();
  size_t tail = (head_ + len_) % (cap ? cap : 1);
  size_t done = 0;
  while (done < n) {
    const size_t chunk = std::min(n - done, cap - tail);
    std::memcpy(buf_.data() + tail, in.data() + done, chunk);
    done += chunk;
    tail = (tail + chunk) % cap;
  }
  len_ += n;
  return n;
}

size_t ByteRing::peek(size_t offset, MutBytes out) const noexcept {
  if (offset >= len_) return 0;
  const size_t n = std::min(out.size(), len_ - offset);
  const size_t cap = buf_.size();
  size_t pos = (head_ + offset) % cap;
  size_t done = 0;
  while (done < n) {
    const size_t chunk = std::min(n - done, cap - pos);
    std::memcpy(out.data() + done, buf_.data() + pos, chunk);
    done += chunk;
    pos = (pos + chunk) % cap;
  }
  return n;
}

size_t ByteRing::pop(size_t n) noexcept {
  n = std::min(n, len_);
  if (n == 0) return 0;
  head_ = (head_ + n) % buf_.size();
  len_ -= n;
  if (len_ == 0) head_ = 0;
  return n;
}

std::pair<Bytes, Bytes> ByteRing::spans() const noexcept {
  if (len_ == 0) return {};
  const size_t first = std::min(len_, buf_.size() - head_);
  return {Bytes(buf_.data() + head_, first), Bytes(buf_.data(), len_ - first)};
}

Result<size_t> StreamPeer::peek(size_t offset, MutBytes out) {
  if (aborted_) return unexpected(Errno{ECONNRESET});
  return to_guest_.peek(offset, out);
}

Status StreamPeer::consume(size_t n) {
  to_guest_.pop(n);
  return {};
}

Result<size_t> StreamPeer::write(Bytes data) {
  if (aborted_) return unexpected(Errno{ECONNRESET});
  if (guest_shut_) return unexpected(Errno{EPIPE});
  return from_guest_.push(data);
}

}  // namespace moat::flows
