#pragma once
// One gateway on one loop: the guest link (a FrameTransport, maybe recorded by PcapTap)
// feeding the stack's Interface, whose frames go back out through the same link.
//
// Lifecycle:
//   constructed  owns the link and the Interface; nothing is registered with the loop.
//   started      start(): the link fd is watched, the Interface is up (initial RAs), the
//                Interface's next deadline is armed on the loop's timer queue.
//   stopped      the link reported it is gone (on_link_gone callback) or the owner simply
//                destroys the Gateway; destruction deregisters everything (RAII).
#include <functional>
#include <memory>
#include <string>

#include "base/counters.h"
#include "base/rate_limiter.h"
#include "config/config.h"
#include "event/loop.h"
#include "app/flow_manager.h"
#include "stack/interface.h"
#include "transport/frame_transport.h"
#include "transport/impair.h"
#include "transport/pcap.h"

namespace moat::app {

class Gateway final : public stack::FrameSink, public event::IoHandler {
 public:
  /// `flows` null: gateway services only (no TCP/UDP/ICMP relay; used by tests).
  /// `impaired`: the ImpairedLink decorator inside `link`, if any (its delayed frames re-enter here).
  Gateway(event::Loop& loop, Counters& counters, const stack::LinkConfig& link_cfg,
          std::unique_ptr<transport::FrameTransport> link, transport::PcapTap* pcap,
          const FlowsSetup* flows = nullptr, transport::ImpairedLink* impaired = nullptr);
  ~Gateway() override;
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  /// Registers with the loop and brings the link up. `on_link_gone` runs (on the loop) when
  /// the transport reports that the link vanished or failed.
  Status start(std::function<void(const Errno&)> on_link_gone);

  void send_to_guest(Bytes frame) override;
  /// R-TR-6: the frame goes out with a virtio-net header built from `o` (NEEDS_CSUM when
  /// partial, gso_type TCPV4/TCPV6 for a super-frame). Counts link.to_guest.gso_frames,
  /// tcp.tso_segments (the segments it stands for) and link.to_guest.csum_partial.
  void send_to_guest_offloaded(Bytes frame, const stack::TxOffload& o) override;
  void on_io(uint32_t events) override;

  /// R-RATE: the limits of each direction (disabled specs = unlimited); takes effect at once
  /// (the buckets start full), also while running (control `rate.set`).
  void set_rate(const RateSpec& egress, const RateSpec& ingress);
  [[nodiscard]] const RateLimiter& egress_limiter() const noexcept { return egress_; }
  [[nodiscard]] const RateLimiter& ingress_limiter() const noexcept { return ingress_; }

  stack::Interface& interface() noexcept { return iface_; }
  FlowManager* flows() noexcept { return flows_.get(); }
  /// Flushes buffered pcap records (also done every second while running).
  void flush_capture();

 private:
  void rearm_timer();
  void update_interest();
  void after_io();
  /// Reads guest frames one at a time while the egress bucket allows (R-RATE-2).
  Result<size_t> receive_limited();
  /// Charges a to-guest frame to the ingress bucket; false: drop it (a non-TCP frame while
  /// the bucket is more than one burst in debt, R-RATE-2).
  bool charge_ingress(Bytes frame, uint32_t segments);
  /// Arms the timer that resumes reading / TCP output when a bucket has recovered.
  void arm_rate_timer();

  event::Loop& loop_;
  Counters& counters_;
  std::unique_ptr<transport::FrameTransport> link_;
  transport::PcapTap* pcap_;  ///< the decorator inside link_, or nullptr
  stack::Interface iface_;
  std::unique_ptr<LinkIo> link_io_;
  std::unique_ptr<FlowManager> flows_;
  event::Watch watch_;
  event::TimerHandle iface_timer_;
  event::TimerHandle pcap_timer_;
  std::function<void(const Errno&)> on_link_gone_;
  bool gone_ = false;
  RateLimiter egress_, ingress_;
  bool egress_throttled_ = false;
  event::TimerHandle rate_timer_;
};

/// "name=value name=value ..." for every counter and every non-zero drop reason.
std::string format_counters(const Counters& c);

}  // namespace moat::app
