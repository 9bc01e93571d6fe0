#include "transport/tap.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/check.h"
#include "base/log.h"

namespace moat::transport {
namespace {

// Errors meaning the link will never work again. A TAP whose netns was destroyed is
// detached from its device: reads fail with EBADFD (tun_chr_read_iter), sometimes EIO,
// or return 0; sockets report a closed peer with ECONNRESET / EPIPE / ENOTCONN.
bool link_gone_errno(int e) noexcept {
  return e == EBADFD || e == EIO || e == ENXIO || e == ENODEV || e == ECONNRESET || e == EPIPE ||
         e == ENOTCONN;
}

}  // namespace

Result<std::unique_ptr<TapTransport>> TapTransport::create(UniqueFd fd, Counters& counters,
                                                           const TapConfig& config) {
  if (!fd.valid()) return unexpected(Errno{EBADF});
  if (config.queue_frames == 0 || config.queue_frames > TapConfig::kMaxQueueFrames ||
      config.queue_bytes < kMaxFrameLen || config.queue_bytes > TapConfig::kMaxQueueBytes)
    return unexpected(Errno{EINVAL});
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0) return sys_error();
  if ((flags & O_NONBLOCK) == 0 && ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) < 0) return sys_error();
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return sys_error();
  const bool is_socket = S_ISSOCK(st.st_mode);
  return std::make_unique<TapTransport>(Private{}, std::move(fd), is_socket, counters, config);
}

TapTransport::TapTransport(Private, UniqueFd fd, bool is_socket, Counters& counters, const TapConfig& config)
    : fd_(std::move(fd)),
      is_socket_(is_socket),
      counters_(counters),
      queue_bytes_limit_(config.queue_bytes),
      from_guest_buf_(kMaxFrameLen + 1),
      storage_(config.queue_bytes + kMaxFrameLen),
      ring_(config.queue_frames) {}

Result<size_t> TapTransport::receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) {
  size_t consumed = 0;
  while (consumed < max_frames) {
    const ssize_t n = ::read(fd_.get(), from_guest_buf_.data(), from_guest_buf_.size());
    if (n < 0) {
      const int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      if (link_gone_errno(e)) return unexpected(kLinkGone);
      return unexpected(Errno{e});
    }
    if (n == 0) return unexpected(kLinkGone);  // TAP detached, or socket peer closed
    ++consumed;
    const auto len = static_cast<size_t>(n);
    if (len < kMinFrameLen) {
      counters_.drop(DropReason::runt);
      MOAT_LOG_RATELIMITED(debug, "tap: dropped %zu-byte runt frame from guest", len);
      continue;
    }
    if (len > kMaxFrameLen) {  // filled the buffer: the frame was truncated by read(2)
      counters_.drop(DropReason::oversize);
      MOAT_LOG_RATELIMITED(debug, "tap: dropped oversize frame from guest");
      continue;
    }
    counters_.inc(Counter::link_from_guest_frames);
    counters_.inc(Counter::link_from_guest_bytes, len);
    on_frame(Bytes(from_guest_buf_.data(), len));
  }
  return consumed;
}

TapTransport::WriteOutcome TapTransport::write_frame(Bytes frame) noexcept {
  for (;;) {
    const ssize_t n = is_socket_ ? ::send(fd_.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
                                 : ::write(fd_.get(), frame.data(), frame.size());
    if (n >= 0) {
      // One write is one frame on a TAP or datagram socket; a short count cannot happen.
      if (static_cast<size_t>(n) != frame.size())
        MOAT_LOG_RATELIMITED(error, "tap: short write %zd of %zu bytes", n, frame.size());
      counters_.inc(Counter::link_to_guest_frames);
      counters_.inc(Counter::link_to_guest_bytes, frame.size());
      return WriteOutcome::written;
    }
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) return WriteOutcome::would_block;
    // A write to a TAP whose interface the guest has set down fails with EIO
    // (tun_get_user); the frame is lost exactly as on a real wire. Reads report a
    // vanished device, so EIO on write is not treated as "gone".
    if (e == EIO && !is_socket_) return WriteOutcome::discarded;
    if (link_gone_errno(e)) return WriteOutcome::link_gone;
    MOAT_LOG_RATELIMITED(warn, "tap: write of %zu-byte frame failed: %s", frame.size(), std::strerror(e));
    return WriteOutcome::discarded;
  }
}

bool TapTransport::send(Bytes frame) {
  if (frame.size() < kMinFrameLen || frame.size() > kMaxFrameLen) {
    counters_.inc(Counter::internal_errors);
    MOAT_LOG_RATELIMITED(error, "tap: refusing to send a %zu-byte frame (bug)", frame.size());
    return false;
  }
  if (queued_frames_ == 0) {  // frames already queued go first: keep order
    switch (write_frame(frame)) {
      case WriteOutcome::written:
      case WriteOutcome::discarded:
        return true;
      case WriteOutcome::link_gone:
        return false;
      case WriteOutcome::would_block:
        break;
    }
  }
  return enqueue(frame);
}

bool TapTransport::output_full() const {
  // Conservative: "could not take a maximal frame", so a caller that checks first never
  // has a frame of any size refused.
  return queued_frames_ == ring_.size() || kMaxFrameLen > queue_bytes_limit_ - queued_bytes_;
}

bool TapTransport::enqueue(Bytes frame) noexcept {
  const size_t len = frame.size();
  if (queued_frames_ == ring_.size() || len > queue_bytes_limit_ - queued_bytes_) return false;
  size_t offset;
  if (queued_frames_ == 0) {
    offset = 0;
  } else {
    const size_t head_offset = ring_[head_].offset;
    if (write_pos_ > head_offset) {  // contiguous: free space is at the end, then the front
      if (len <= storage_.size() - write_pos_) offset = write_pos_;
      else if (len <= head_offset) offset = 0;
      else return false;  // unreachable: the kMaxFrameLen slack guarantees one of the two
    } else {  // wrapped: free space is between the newest and the oldest frame
      if (len <= head_offset - write_pos_) offset = write_pos_;
      else return false;  // unreachable, same reason
    }
  }
  std::memcpy(storage_.data() + offset, frame.data(), len);
  ring_[(head_ + queued_frames_) % ring_.size()] = QueuedFrame{static_cast<uint32_t>(offset), static_cast<uint32_t>(len)};
  ++queued_frames_;
  queued_bytes_ += len;
  write_pos_ = offset + len;
  counters_.set_max(Counter::queue_to_guest_high_water, queued_frames_);
  return true;
}

void TapTransport::pop_front() noexcept {
  queued_bytes_ -= ring_[head_].len;
  head_ = (head_ + 1) % ring_.size();
  if (--queued_frames_ == 0) write_pos_ = 0;
}

Status TapTransport::flush() {
  while (queued_frames_ != 0) {
    const QueuedFrame& q = ring_[head_];
    switch (write_frame(Bytes(storage_.data() + q.offset, q.len))) {
      case WriteOutcome::written:
      case WriteOutcome::discarded:
        pop_front();
        break;
      case WriteOutcome::would_block:
        return {};
      case WriteOutcome::link_gone:
        return unexpected(kLinkGone);
    }
  }
  return {};
}

}  // namespace moat::transport
