#pragma once
// The composition of one gateway's flow side: builds the flows::Dispatch (TCP engine, UDP
// and ICMP relays), the policy admission, the DNS Interceptor and the port Publisher, and
// registers the modules with the Dispatch (hooks: Publisher, then DNS; TCP providers: DNS).
// It sees no packet itself: the Dispatch is the stack's PacketHandler. LinkIo is the thin
// flows::GuestIo over stack::Interface and the link's back-pressure state.
#include <functional>
#include <memory>
#include <vector>

#include "base/counters.h"
#include "base/rate_limiter.h"
#include "config/config.h"
#include "dns/block_list.h"
#include "dns/forwarder.h"
#include "dns/interceptor.h"
#include "dns/pin_set.h"
#include "event/loop.h"
#include "flows/destinations.h"
#include "flows/dispatch.h"
#include "flows/guest_io.h"
#include "flows/icmp_relay.h"
#include "flows/tcp_engine.h"
#include "flows/udp_relay.h"
#include "app/policy_admission.h"
#include "obs/audit_log.h"
#include "policy/engine.h"
#include "ports/publisher.h"
#include "tls/connect_tunnel.h"
#include "tls/dot.h"
#include "tls/interceptor.h"
#include "tls/leaf.h"
#include "tls/quic_block.h"
#include "stack/interface.h"
#include "transport/frame_transport.h"

namespace moat::app {

/// flows::GuestIo over the Interface (which frames, fragments and offloads) and the link's
/// back-pressure state.
class LinkIo final : public flows::GuestIo {
 public:
  LinkIo(stack::Interface& iface, transport::FrameTransport& link, uint32_t mtu)
      : iface_(iface), link_(link), mtu_(mtu) {}

  bool send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, size_t l4_len, FunctionRef<void(MutBytes)> fill) override {
    return iface_.send_ipv4(src, dst, proto, l4_len, fill);
  }
  bool send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, size_t l4_len,
                 FunctionRef<void(MutBytes)> fill) override {
    return iface_.send_ipv6(src, dst, next_header, l4_len, fill);
  }
  bool send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, Bytes payload) override {
    return iface_.send_udp_v4(src, dst, src_port, dst_port, payload);
  }
  bool send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t src_port, uint16_t dst_port,
                   Bytes payload) override {
    return iface_.send_udp_v6(src, dst, src_port, dst_port, payload);
  }
  /// R-TR-6 from the link's guest_offloads(): TSO needs checksum offload as well (virtio
  /// GUEST_TSO4/6 depend on GUEST_CSUM).
  [[nodiscard]] flows::TxCaps tx_caps() const override;
  bool send_tcp_v4(Ipv4Addr src, Ipv4Addr dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                   const flows::TcpTxOffload& o) override {
    return iface_.send_tcp_v4(src, dst, l4_len, fill, stack::TcpOffload{o.gso_size, o.partial});
  }
  bool send_tcp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                   const flows::TcpTxOffload& o) override {
    return iface_.send_tcp_v6(src, dst, l4_len, fill, stack::TcpOffload{o.gso_size, o.partial});
  }
  bool send_icmp_error_v4(const wire::Ipv4Repr& offending, Bytes offending_l4, Ipv4Addr src, uint8_t type,
                          uint8_t code, Instant now, uint16_t next_hop_mtu) override {
    return iface_.send_icmp_error_v4(offending, offending_l4, src, type, code, now, next_hop_mtu);
  }
  bool send_icmp_error_v6(const wire::Ipv6Repr& offending, Bytes offending_l4, const Ipv6Addr& src, uint8_t type,
                          uint8_t code, Instant now, uint32_t mtu_or_pointer) override {
    return iface_.send_icmp_error_v6(offending, offending_l4, src, type, code, now, mtu_or_pointer);
  }
  [[nodiscard]] bool output_blocked() const override {
    bool full = link_.output_full() || rate_blocked();
    blocked_seen_ = blocked_seen_ || full;
    return full;
  }
  /// R-RATE-2 ingress: TCP output also waits while the to-guest bucket is in debt.
  /// `on_block` runs whenever a sender finds the bucket empty (the gateway arms its timer,
  /// which calls notify_output_ready() once the debt is repaid).
  void set_ingress_limiter(RateLimiter* r, const event::Loop* loop, std::function<void()> on_block) {
    ingress_ = r;
    loop_ = loop;
    on_rate_block_ = std::move(on_block);
  }
  void set_output_ready(std::function<void()> cb) override { output_ready_ = std::move(cb); }
  [[nodiscard]] uint32_t mtu() const override { return mtu_; }

  /// The link drained: blocked senders may resume.
  /// Fires the callback only if a sender saw the link blocked since the last call.
  void notify_output_ready() {
    if (!blocked_seen_ || link_.output_full() || rate_blocked()) return;
    blocked_seen_ = false;
    if (output_ready_) output_ready_();
  }

 private:
  stack::Interface& iface_;
  transport::FrameTransport& link_;
  uint32_t mtu_;
  [[nodiscard]] bool rate_blocked() const {
    if (!ingress_ || !loop_ || ingress_->ready(loop_->now())) return false;
    if (on_rate_block_) on_rate_block_();
    return true;
  }

  std::function<void()> output_ready_;
  mutable bool blocked_seen_ = false;
  RateLimiter* ingress_ = nullptr;
  const event::Loop* loop_ = nullptr;
  std::function<void()> on_rate_block_;
};

struct FlowsSetup {
  /// The flow engines' config (destinations, TCP/UDP/ICMP limits, --no-icmp, the memory
  /// budget: owned by the caller and outliving the FlowManager; null = none).
  flows::DispatchConfig engines;
  ports::PublisherConfig publish;
  /// The tenant policy (R-POL-5/6 resolved) and how refusals look (R-POL-10).
  std::shared_ptr<const policy::Engine> policy;
  config::DenyResponse deny_response = config::DenyResponse::reject;
  Duration first_flight_timeout = std::chrono::seconds(1);
  config::DnsConfig dns;
  config::AuditConfig audit;
  /// TLS interception (R-TLS): QUIC blocking, CONNECT tunnels, DoT.
  config::TlsConfig tls;
  /// The DNS upstreams with their transport (the same list as destinations.dns_upstreams).
  std::vector<dns::Upstream> dns_upstreams;
  /// The audit sink (R-OBS-3), owned by the caller and outliving the FlowManager; null = off.
  obs::AuditLog* audit_log = nullptr;
};

/// The `host` group of R-POL-4: the gateway and DNS addresses of the active families.
policy::HostAddrs host_addrs(const flows::DestinationConfig& d);
/// The SPEC's default posture (profile public) for these addresses.
std::shared_ptr<const policy::Engine> default_policy(const flows::DestinationConfig& d);

/// What a drain (R-CLI-2) still waits for.
struct DrainBacklog {
  size_t tcp = 0;  ///< flows not drained (TcpEngine::undrained_flows)
  size_t udp = 0;  ///< guest datagrams queued for a host socket
  size_t dns = 0;  ///< queries forwarded and neither answered nor timed out
  [[nodiscard]] bool empty() const noexcept { return tcp == 0 && udp == 0 && dns == 0; }
};

/// Builds and owns the flow side of one gateway (see the top of this file).
class FlowManager final {
 public:
  FlowManager(event::Loop& loop, flows::GuestIo& io, Counters& counters, const FlowsSetup& setup);
  FlowManager(const FlowManager&) = delete;
  FlowManager& operator=(const FlowManager&) = delete;

  /// The stack's PacketHandler for this gateway.
  flows::Dispatch& dispatch() noexcept { return dispatch_; }
  /// End of a from-guest frame batch (coalesced TCP ACKs).
  void flush(Instant now) { dispatch_.flush(now); }

  /// The drain (R-CLI-2), see src/app/README.md "Drain": no new TCP flow from here on;
  /// `guest_gone` (the link ended for good): upstreams are shut after what moat holds and
  /// DNS answers are no longer waited for, as nobody would receive them. Returns the
  /// flows reset at once (handshakes of a gone guest).
  size_t begin_drain(bool guest_gone, Instant now) {
    drain_guest_gone_ = guest_gone;
    return dispatch_.tcp().begin_drain(guest_gone, now);
  }
  [[nodiscard]] DrainBacklog drain_backlog() {
    return DrainBacklog{dispatch_.tcp().undrained_flows(), dispatch_.udp().queued_datagrams(),
                        drain_guest_gone_ ? 0 : dns_->forwarder().inflight()};
  }
  /// Closes drained flows quietly and resets the rest; returns the number reset.
  size_t end_drain(Instant now) { return dispatch_.tcp().end_drain(now); }

  /// With tls.intercept, once the gateway's TLS interceptor exists (before the first
  /// packet): CONNECT tunnels (R-TLS-8; `interceptor` runs their inner TLS, null: spliced)
  /// and DoT (R-DNS-9) with the gateway's leaves. Both outlive the flows. Error: one line.
  Result<void, std::string> attach_tls_edges(tls::LeafCache& leaves, tls::Interceptor* interceptor);

  /// Binds the published ports (before ready). Error: one §5.2 line.
  Result<void, std::string> publish(const std::vector<config::PublishSpec>& specs) { return publisher_.bind_all(specs); }
  const ports::Publisher& publisher() const noexcept { return publisher_; }
  ports::Publisher& publisher() noexcept { return publisher_; }  ///< runtime publish/unpublish (R-PUB-6)
  flows::TcpEngine& tcp() noexcept { return dispatch_.tcp(); }
  flows::UdpRelay& udp() noexcept { return dispatch_.udp(); }
  const flows::Destinations& destinations() const noexcept { return dispatch_.destinations(); }
  /// Policy enforcement as the engines see it (SPEC §2.4).
  PolicyAdmission& admission() noexcept { return admission_; }
  policy::EngineRef& policy() noexcept { return policy_; }
  /// The names pinned to each address (R-DNS-6); the DNS forwarder fills it.
  const policy::PinLookup& pins() const noexcept { return pins_; }
  dns::PinSet& pin_set() noexcept { return pins_; }
  dns::Forwarder& dns() noexcept { return dns_->forwarder(); }
  /// The audit log (R-OBS-3), or null when --audit is off. dns_* events are emitted here too.
  obs::AuditLog* audit() noexcept { return audit_; }

 private:
  event::Loop& dispatch_loop_;
  Counters& counters_;
  policy::EngineRef policy_;
  obs::AuditLog* audit_;
  dns::PinSet pins_;
  std::shared_ptr<const dns::BlockList> block_;
  std::unique_ptr<dns::Interceptor> dns_;  // before the engines: its TCP/53 listeners outlive their flows
  PolicyAdmission admission_;              // before the engines that use it
  // TLS interception's edges (null without it); both outlive the Dispatch and its flows.
  std::unique_ptr<tls::QuicBlocker> quic_;         // R-TLS-7, with tls.block_quic
  std::unique_ptr<tls::ConnectTunnels> connect_;  // R-TLS-8
  std::unique_ptr<tls::DotTerminator> dot_;       // R-DNS-9
  config::TlsConfig tls_cfg_;
  flows::DispatchConfig engines_cfg_;             // flow buffer, window, budget for the edges
  flows::Dispatch dispatch_;
  ports::Publisher publisher_;
  bool drain_guest_gone_ = false;
};

}  // namespace moat::app
