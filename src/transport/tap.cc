#include "transport/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
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

// Newer than the Debian 12 kernel headers (Linux 6.2).
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

}  // namespace

Status set_tap_offloads(int fd, OffloadMask from_guest) noexcept {
  unsigned long flags = 0;
  if (from_guest & kOffloadCsum) flags |= TUN_F_CSUM;
  if (from_guest & kOffloadTso4) flags |= TUN_F_TSO4;
  if (from_guest & kOffloadTso6) flags |= TUN_F_TSO6;
  if (from_guest & kOffloadUso) flags |= TUN_F_USO4 | TUN_F_USO6;
  if (::ioctl(fd, TUNSETOFFLOAD, flags) < 0) return sys_error();
  return {};
}

Result<std::unique_ptr<TapTransport>> TapTransport::create(UniqueFd fd, Counters& counters,
                                                           const TapConfig& config) {
  if (!fd.valid()) return unexpected(Errno{EBADF});
  if (config.queue_frames == 0 || config.queue_frames > TapConfig::kMaxQueueFrames ||
      config.queue_bytes < kMaxFrameLen || config.queue_bytes > TapConfig::kMaxQueueBytes ||
      (config.vnet_hdr_len != 0 && config.vnet_hdr_len != kVnetHdrLegacy && config.vnet_hdr_len != kVnetHdrV1))
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
      vnet_hdr_len_(config.vnet_hdr_len),
      guest_offloads_(config.vnet_hdr_len ? config.guest_offloads : 0),
      from_guest_buf_(config.vnet_hdr_len + kMaxFrameLen + 1),
      // The byte budget counts frames; each queued frame carries its header on top.
      queue_(config.queue_frames, config.queue_bytes + config.queue_frames * config.vnet_hdr_len,
             config.vnet_hdr_len + kMaxFrameLen) {
  if (vnet_hdr_len_) vnet_.emplace(vnet_hdr_len_, counters_);
}

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
    if (vnet_) {
      if (len == from_guest_buf_.size()) {  // filled the buffer: truncated
        counters_.drop(DropReason::oversize);
        continue;
      }
      // Validates the header, counts delivered frames and drops (R-TR-6).
      vnet_->process(MutBytes(from_guest_buf_.data(), len), on_frame);
      continue;
    }
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

TapTransport::WriteOutcome TapTransport::write_frame(Bytes header, Bytes frame) noexcept {
  // One writev/sendmsg is one frame: the virtio-net header (if any) and the frame.
  iovec iov[2] = {{const_cast<std::byte*>(header.data()), header.size()},
                  {const_cast<std::byte*>(frame.data()), frame.size()}};
  const int iovcnt = header.empty() ? 1 : 2;
  iovec* first = header.empty() ? &iov[1] : &iov[0];
  const size_t total = header.size() + frame.size();
  for (;;) {
    ssize_t n;
    if (is_socket_) {
      msghdr msg{};
      msg.msg_iov = first;
      msg.msg_iovlen = size_t(iovcnt);
      n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
      n = ::writev(fd_.get(), first, iovcnt);
    }
    if (n >= 0) {
      // One write is one frame on a TAP or datagram socket; a short count cannot happen.
      if (static_cast<size_t>(n) != total)
        MOAT_LOG_RATELIMITED(error, "tap: short write %zd of %zu bytes", n, total);
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

bool TapTransport::send(Bytes frame) { return send_offloaded(frame, VnetHeader{}); }

bool TapTransport::send_offloaded(Bytes frame, const VnetHeader& h) {
  if (frame.size() < kMinFrameLen || frame.size() > kMaxFrameLen ||
      (vnet_hdr_len_ == 0 && (h.flags != 0 || h.gso_type != kVnetGsoNone))) {
    counters_.inc(Counter::internal_errors);
    MOAT_LOG_RATELIMITED(error, "tap: refusing to send a %zu-byte frame (bug)", frame.size());
    return false;
  }
  std::byte hdr_buf[kVnetHdrV1];
  const MutBytes header(hdr_buf, vnet_hdr_len_);
  if (vnet_hdr_len_) h.emit(header);
  if (queue_.empty()) {  // frames already queued go first: keep order
    switch (write_frame(header, frame)) {
      case WriteOutcome::written:
      case WriteOutcome::discarded:
        return true;
      case WriteOutcome::link_gone:
        return false;
      case WriteOutcome::would_block:
        break;
    }
  }
  return enqueue(header, frame);
}

bool TapTransport::output_full() const {
  // Conservative: "could not take a maximal frame", so a caller that checks first never
  // has a frame of any size refused.
  return !queue_.can_push(queue_.max_entry());
}

bool TapTransport::enqueue(Bytes header, Bytes frame) noexcept {
  // Stored as one entry, header first, so flush() writes it back in one call.
  if (!queue_.push(header, frame)) return false;
  counters_.set_max(Counter::queue_to_guest_high_water, queue_.size());
  return true;
}

Status TapTransport::flush() {
  while (!queue_.empty()) {
    const Bytes stored = queue_.front();
    switch (write_frame(stored.first(vnet_hdr_len_), stored.subspan(vnet_hdr_len_))) {
      case WriteOutcome::written:
      case WriteOutcome::discarded:
        queue_.pop_front();
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
