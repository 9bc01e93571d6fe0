#include "app/gateway.h"

#include <sys/epoll.h>

#include "base/log.h"

namespace moat::app {

Gateway::Gateway(event::Loop& loop, Counters& counters, const stack::LinkConfig& link_cfg,
                 std::unique_ptr<transport::FrameTransport> link, transport::PcapTap* pcap, const FlowsSetup* flows,
                 transport::ImpairedLink* impaired)
    : loop_(loop), counters_(counters), link_(std::move(link)), pcap_(pcap), iface_(link_cfg, *this, counters) {
  if (flows) {
    link_io_ = std::make_unique<LinkIo>(iface_, *link_, link_cfg.mtu);
    flows_ = std::make_unique<FlowManager>(loop_, *link_io_, counters_, *flows);
    iface_.set_packet_handler(&flows_->dispatch());
  }
  if (impaired) {
    // Frames the impairment held back re-enter the stack from a timer, outside on_io().
    impaired->set_hooks({[this](Bytes f) { iface_.on_frame_from_guest(f, loop_.now()); },
                         [this] {
                           if (!gone_) after_io();
                         }});
  }
}

Gateway::~Gateway() {
  // R-CLI-5: open flows are reset on both sides when the gateway stops.
  if (flows_ && !gone_) flows_->tcp().abort_all(loop_.now());
  flush_capture();
}

Status Gateway::start(std::function<void(const Errno&)> on_link_gone) {
  on_link_gone_ = std::move(on_link_gone);
  auto w = loop_.watch(link_->fd(), EPOLLIN, *this);
  if (!w) return unexpected(w.error());
  watch_ = std::move(w).value();
  iface_.start(loop_.now());
  rearm_timer();
  if (pcap_) {
    // The capture is buffered on the loop thread; push it to disk once a second so an
    // external reader (tcpdump -r while running) sees recent frames.
    struct Flusher {
      Gateway* gw;
      void operator()() const {
        gw->flush_capture();
        gw->pcap_timer_ = gw->loop_.schedule_after(std::chrono::seconds(1), Flusher{gw});
      }
    };
    pcap_timer_ = loop_.schedule_after(std::chrono::seconds(1), Flusher{this});
  }
  return {};
}

void Gateway::flush_capture() {
  if (!pcap_) return;
  if (auto s = pcap_->flush_capture(); !s) MOAT_LOG_RATELIMITED(warn, "pcap: write failed: %s", s.error().message());
  if (pcap_->writer()) counters_.values[size_t(Counter::pcap_dropped)] = pcap_->writer()->dropped();
}

void Gateway::set_rate(const RateSpec& egress, const RateSpec& ingress) {
  egress_.set(egress);
  ingress_.set(ingress);
  if (link_io_)
    link_io_->set_ingress_limiter(ingress_.enabled() ? &ingress_ : nullptr, &loop_, [this] { arm_rate_timer(); });
  egress_throttled_ = false;
  update_interest();
  if (link_io_) link_io_->notify_output_ready();
}

bool Gateway::charge_ingress(Bytes frame, uint32_t segments) {
  if (!ingress_.enabled()) return true;
  const Instant now = loop_.now();
  // TCP waits upstream of here (LinkIo::output_blocked); other frames cannot wait, so they
  // go while the debt is under one burst and are dropped beyond it (the queue is "full").
  if (!ingress_.ready(now)) {
    const bool tcp = frame.size() > 23 && ((frame[12] == std::byte{0x08} && frame[13] == std::byte{0x00} &&
                                            frame[23] == std::byte{6}) ||
                                           (frame[12] == std::byte{0x86} && frame[13] == std::byte{0xdd} &&
                                            frame.size() > 20 && frame[20] == std::byte{6}));
    const double burst = ingress_.bandwidth_burst();
    if (!tcp && burst > 0 && ingress_.bandwidth_tokens() < -burst) {
      counters_.drop(DropReason::rate_limit);
      arm_rate_timer();
      return false;
    }
  }
  ingress_.spend(frame.size(), segments, now);
  return true;
}

void Gateway::send_to_guest(Bytes frame) {
  if (gone_) return;
  if (!charge_ingress(frame, 1)) return;
  if (!link_->send(frame)) counters_.drop(DropReason::queue_full);
  update_interest();
}

namespace {

transport::VnetHeader vnet_header(const stack::TxOffload& o) noexcept {
  transport::VnetHeader h;
  if (o.partial) {
    h.flags = transport::kVnetNeedsCsum;
    h.csum_start = o.csum_start;
    h.csum_offset = o.csum_offset;
  }
  switch (o.gso) {
    case stack::TxOffload::Gso::none: break;
    case stack::TxOffload::Gso::tcpv4: h.gso_type = transport::kVnetGsoTcpv4; break;
    case stack::TxOffload::Gso::tcpv6: h.gso_type = transport::kVnetGsoTcpv6; break;
  }
  if (h.gso_type != transport::kVnetGsoNone) {
    h.hdr_len = o.hdr_len;
    h.gso_size = o.gso_size;
  }
  return h;
}

}  // namespace

void Gateway::send_to_guest_offloaded(Bytes frame, const stack::TxOffload& o) {
  if (gone_) return;
  if (!charge_ingress(frame, o.gso != stack::TxOffload::Gso::none ? uint32_t(o.segments(frame.size())) : 1u)) return;
  if (!link_->send_offloaded(frame, vnet_header(o))) {
    counters_.drop(DropReason::queue_full);
  } else {
    if (o.partial) counters_.inc(Counter::link_to_guest_csum_partial);
    if (o.gso != stack::TxOffload::Gso::none) {
      counters_.inc(Counter::link_to_guest_gso_frames);
      counters_.inc(Counter::tcp_tso_segments, o.segments(frame.size()));
    }
  }
  update_interest();
}

void Gateway::on_io(uint32_t events) {
  if (gone_) return;
  Result<size_t> r = size_t{0};
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
    if (egress_.enabled()) {
      r = receive_limited();
    } else {
      r = link_->receive([this](Bytes f) { iface_.on_frame_from_guest(f, loop_.now()); },
                         transport::kMaxFramesPerWakeup);
    }
  }
  Status s;
  if (r && (events & EPOLLOUT)) s = link_->flush();
  const Errno* err = !r ? &r.error() : (!s ? &s.error() : nullptr);
  if (err) {
    gone_ = true;
    watch_.reset();
    if (on_link_gone_) on_link_gone_(*err);
    return;
  }
  after_io();
}

Result<size_t> Gateway::receive_limited() {
  // R-RATE-2: one frame at a time while the bucket allows; the frame that drives it into
  // debt is processed (never dropped), then reading stops until the debt is repaid and the
  // guest's own queues absorb the pressure.
  size_t total = 0;
  while (total < transport::kMaxFramesPerWakeup) {
    const Instant now = loop_.now();
    if (!egress_.ready(now)) break;
    auto r = link_->receive(
        [this, now](Bytes f) {
          egress_.spend(f.size(), 1, now);
          iface_.on_frame_from_guest(f, now);
        },
        1);
    if (!r) return r;
    if (*r == 0) break;
    total += *r;
  }
  egress_throttled_ = !egress_.ready(loop_.now());
  if (egress_throttled_) arm_rate_timer();
  return total;
}

void Gateway::arm_rate_timer() {
  const Instant now = loop_.now();
  Instant at = Instant::max();
  if (egress_.enabled() && !egress_.ready(now)) at = std::min(at, egress_.ready_at(now));
  if (ingress_.enabled() && !ingress_.ready(now)) at = std::min(at, ingress_.ready_at(now));
  if (at == Instant::max()) return;
  if (rate_timer_.pending() && rate_timer_.deadline() <= at) return;
  rate_timer_ = loop_.schedule_at(at, [this] {
    if (gone_) return;
    counters_.values[size_t(Counter::rate_egress_throttled_ms)] =
        uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(egress_.throttled()).count());
    counters_.values[size_t(Counter::rate_ingress_throttled_ms)] =
        uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(ingress_.throttled()).count());
    if (egress_throttled_ && egress_.ready(loop_.now())) {
      egress_throttled_ = false;
      on_io(EPOLLIN);  // frames may be waiting in the transport without a new wake-up
      if (gone_) return;
    }
    after_io();
  });
}

void Gateway::after_io() {
  if (flows_) flows_->flush(loop_.now());
  update_interest();
  if (link_io_) link_io_->notify_output_ready();
  if (ingress_.enabled() && !ingress_.ready(loop_.now())) arm_rate_timer();
  rearm_timer();
}

void Gateway::update_interest() {
  if (!watch_.active()) return;
  uint32_t want = (egress_throttled_ ? 0u : uint32_t(EPOLLIN)) | (link_->has_pending_output() ? uint32_t(EPOLLOUT) : 0u);
  if (auto s = watch_.modify(want); !s) MOAT_LOG_RATELIMITED(error, "epoll modify failed: %s", s.error().message());
}

void Gateway::rearm_timer() {
  auto next = iface_.next_deadline();
  if (!next) {
    iface_timer_.cancel();
    return;
  }
  if (iface_timer_.pending() && iface_timer_.deadline() == next) return;
  if (iface_timer_.pending() && iface_timer_.reschedule(*next)) return;
  iface_timer_ = loop_.schedule_at(*next, [this] {
    iface_.on_timer(loop_.now());
    rearm_timer();
  });
}

std::string format_counters(const Counters& c) {
  std::string s;
  for (size_t i = 0; i < kCounterCount; ++i) {
    if (!s.empty()) s += ' ';
    s += counter_name(Counter(i));
    s += '=';
    s += std::to_string(c.values[i]);
  }
  s += " drop.total=" + std::to_string(c.total_drops());
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    if (c.drops[i] == 0) continue;
    s += " drop.";
    s += drop_reason_name(DropReason(i));
    s += '=' + std::to_string(c.drops[i]);
  }
  return s;
}

}  // namespace moat::app
