#include "transport/ring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"

namespace moat::transport {

// ---------------------------------------------------------------------------------------
// SpscFrameRing

Result<std::unique_ptr<SpscFrameRing>> SpscFrameRing::create(const RingConfig& config, size_t overhead) {
  if (config.frames == 0 || config.frames > RingConfig::kMaxFrames || config.bytes < kMaxFrameLen ||
      config.bytes > RingConfig::kMaxBytes || overhead > kVnetHdrV1)
    return unexpected(Errno{EINVAL});
  return std::make_unique<SpscFrameRing>(Private{}, config, overhead);
}

SpscFrameRing::SpscFrameRing(Private, const RingConfig& config, size_t overhead)
    : frames_(config.frames),
      bytes_limit_(config.bytes + config.frames * overhead),
      max_entry_(kMaxFrameLen + overhead),
      placement_(frames_, bytes_limit_, max_entry_) {}

void SpscFrameRing::reclaim() noexcept {
  // Every entry below head_ was released by the consumer, which no longer reads its bytes.
  const uint64_t head = head_.load(std::memory_order_seq_cst);
  while (placement_.head_seq() != head) placement_.pop_front();
}

bool SpscFrameRing::can_accept(size_t len) noexcept {
  reclaim();
  return placement_.can_push(len);
}

bool SpscFrameRing::try_push(Bytes head, Bytes body, bool* was_drained) noexcept {
  reclaim();
  if (!placement_.push(head, body)) return false;
  const uint64_t tail = placement_.head_seq() + placement_.size();
  tail_.store(tail, std::memory_order_seq_cst);
  // Dekker pairing with pop(): the consumer stores head_ then loads tail_; we stored tail_
  // and now load head_. If the consumer's last look missed this frame, this load sees that
  // it had taken every earlier one.
  if (was_drained) *was_drained = head_.load(std::memory_order_seq_cst) == tail - 1;
  return true;
}

std::optional<Bytes> SpscFrameRing::front() const noexcept {
  if (c_head_ == tail_.load(std::memory_order_seq_cst)) return std::nullopt;
  return placement_.at(c_head_);
}

std::optional<MutBytes> SpscFrameRing::front_mut() noexcept {
  if (c_head_ == tail_.load(std::memory_order_seq_cst)) return std::nullopt;
  return placement_.at_mut(c_head_);
}

void SpscFrameRing::pop() noexcept {
  ++c_head_;
  head_.store(c_head_, std::memory_order_seq_cst);
}

// ---------------------------------------------------------------------------------------
// RingTransport

Result<std::unique_ptr<RingTransport>> RingTransport::create(Counters& counters, const RingConfig& from_guest,
                                                             const RingConfig& to_guest, const RingLinkConfig& link) {
  if ((link.vnet_hdr_len != 0 && link.vnet_hdr_len != kVnetHdrLegacy && link.vnet_hdr_len != kVnetHdrV1) ||
      (link.vnet_hdr_len == 0 && link.guest_offloads != 0) ||
      (link.guest_offloads & ~OffloadMask(kOffloadCsum | kOffloadTso4 | kOffloadTso6 | kOffloadUso)) != 0)
    return unexpected(Errno{EINVAL});
  auto fg = SpscFrameRing::create(from_guest, link.vnet_hdr_len);
  if (!fg) return unexpected(fg.error());
  auto tg = SpscFrameRing::create(to_guest, link.vnet_hdr_len);
  if (!tg) return unexpected(tg.error());
  UniqueFd loop_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!loop_wake) return unexpected(Errno::last());
  UniqueFd host_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!host_wake) return unexpected(Errno::last());
  return std::make_unique<RingTransport>(Private{}, counters, std::move(fg).value(), std::move(tg).value(),
                                         std::move(loop_wake), std::move(host_wake), link);
}

RingTransport::RingTransport(Private, Counters& counters, std::unique_ptr<SpscFrameRing> from_guest,
                             std::unique_ptr<SpscFrameRing> to_guest, UniqueFd loop_wake, UniqueFd host_wake,
                             const RingLinkConfig& link)
    : counters_(counters),
      vnet_hdr_len_(link.vnet_hdr_len),
      guest_offloads_(link.vnet_hdr_len ? link.guest_offloads : 0),
      from_guest_(std::move(from_guest)),
      to_guest_(std::move(to_guest)),
      loop_wake_(std::move(loop_wake)),
      host_wake_(std::move(host_wake)) {
  if (vnet_hdr_len_) vnet_.emplace(vnet_hdr_len_, counters_);
}

void RingTransport::signal(int fd) noexcept {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: it is readable already, which is all we want.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void RingTransport::drain(int fd) noexcept {
  uint64_t v;
  [[maybe_unused]] ssize_t n = ::read(fd, &v, sizeof v);
}

Result<size_t> RingTransport::receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) {
  // Reset the wake-up before looking: a push after this point either is seen below or
  // finds the ring drained and signals again.
  drain(loop_wake_.get());
  if (uint64_t n = pending_runt_.exchange(0, std::memory_order_relaxed))
    counters_.drops[size_t(DropReason::runt)] += n;
  if (uint64_t n = pending_oversize_.exchange(0, std::memory_order_relaxed))
    counters_.drops[size_t(DropReason::oversize)] += n;
  size_t taken = 0;
  while (taken < max_frames) {
    if (vnet_) {
      // Header + frame; VnetFromGuest validates the header, may complete a checksum in
      // place or split USO, and counts link.from_guest.* or the drop itself.
      auto f = from_guest_->front_mut();
      if (!f) break;
      vnet_->process(*f, on_frame);
    } else {
      auto f = from_guest_->front();
      if (!f) break;
      counters_.inc(Counter::link_from_guest_frames);
      counters_.inc(Counter::link_from_guest_bytes, f->size());
      on_frame(*f);
    }
    from_guest_->pop();
    ++taken;
  }
  // Stopped at the batch limit with frames left: come back on the next iteration.
  if (taken == max_frames && from_guest_->front()) signal(loop_wake_.get());
  return taken;
}

bool RingTransport::send_offloaded(Bytes frame, const VnetHeader& h) {
  const bool offloaded = h.flags != 0 || h.gso_type != kVnetGsoNone;
  if (frame.size() < kMinFrameLen || frame.size() > kMaxFrameLen || (vnet_hdr_len_ == 0 && offloaded)) {
    MOAT_LOG_RATELIMITED(error, "ring: refusing a to-guest frame of %zu bytes (bug)", frame.size());
    counters_.inc(Counter::internal_errors);
    return false;
  }
  std::byte hdr_buf[kVnetHdrV1] = {};
  const MutBytes header(hdr_buf, vnet_hdr_len_);
  if (vnet_hdr_len_) h.emit(header);
  bool was_drained = false;
  if (!to_guest_->try_push(header, frame, &was_drained)) {
    to_guest_blocked_.store(true, std::memory_order_seq_cst);
    return false;
  }
  counters_.inc(Counter::link_to_guest_frames);
  counters_.inc(Counter::link_to_guest_bytes, frame.size());
  counters_.set_max(Counter::queue_to_guest_high_water, to_guest_->size());
  if (was_drained) signal(host_wake_.get());
  return true;
}

bool RingTransport::output_full() const {
  // Conservative like the TAP queue: "could not take a maximal frame". find_room() only
  // advances producer-private reclaim state, so this is logically const.
  auto& ring = const_cast<SpscFrameRing&>(*to_guest_);
  if (ring.can_accept(ring.max_entry())) return false;
  // Ask for a wake-up, then look again: a pull between the first look and the flag would
  // otherwise go unnoticed (the host loads the flag after releasing the frame).
  to_guest_blocked_.store(true, std::memory_order_seq_cst);
  return !ring.can_accept(ring.max_entry());
}

RingTransport::PushResult RingTransport::push_from_guest(Bytes frame) noexcept {
  // Lengths without the header (R-TR-1); a buffer shorter than the header is a runt.
  if (frame.size() < vnet_hdr_len_ + kMinFrameLen) {
    pending_runt_.fetch_add(1, std::memory_order_relaxed);
    signal(loop_wake_.get());  // so the drop shows in the counters soon
    return PushResult::invalid;
  }
  if (frame.size() - vnet_hdr_len_ > kMaxFrameLen) {
    pending_oversize_.fetch_add(1, std::memory_order_relaxed);
    signal(loop_wake_.get());
    return PushResult::invalid;
  }
  bool was_drained = false;
  if (!from_guest_->try_push(frame, &was_drained)) return PushResult::full;
  if (was_drained) signal(loop_wake_.get());
  return PushResult::ok;
}

RingTransport::PullResult RingTransport::pull_to_guest(MutBytes buf, size_t* len) noexcept {
  auto f = to_guest_->front();
  if (!f) {
    // Reset "frames to pull", then look again: a frame published in between is returned
    // now, and one published after the look finds the ring drained and signals again.
    drain(host_wake_.get());
    f = to_guest_->front();
    if (!f) return PullResult::empty;
  }
  *len = f->size();
  if (f->size() > buf.size()) {
    signal(host_wake_.get());  // it stays at the head: keep "frames to pull" readable
    return PullResult::too_small;
  }
  std::memcpy(buf.data(), f->data(), f->size());
  to_guest_->pop();
  if (to_guest_blocked_.load(std::memory_order_seq_cst) && to_guest_blocked_.exchange(false)) signal(loop_wake_.get());
  return PullResult::ok;
}

}  // namespace moat::transport
