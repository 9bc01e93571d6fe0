#pragma once
// The flow side of a gateway: the GuestIo adapter over stack::Interface (with R-UDP-4
// fragmentation of large datagrams) and the stack::PacketHandler that dispatches guest
// packets not meant for the gateway's own services to the TCP engine, the UDP relay and
// the ICMP echo relay.
#include <functional>
#include <memory>
#include <vector>

#include "base/counters.h"
#include "config/config.h"
#include "dns/block_list.h"
#include "dns/forwarder.h"
#include "dns/pin_set.h"
#include "dns/tcp_server.h"
#include "event/loop.h"
#include "flows/destinations.h"
#include "flows/guest_io.h"
#include "flows/icmp_relay.h"
#include "flows/tcp_engine.h"
#include "flows/udp_relay.h"
#include "app/policy_admission.h"
#include "obs/audit_log.h"
#include "policy/engine.h"
#include "ports/publisher.h"
#include "stack/interface.h"
#include "transport/frame_transport.h"

namespace moat::app {

/// flows::GuestIo over the Interface and the link's back-pressure state.
class LinkIo final : public flows::GuestIo {
 public:
  LinkIo(stack::Interface& iface, transport::FrameTransport& link, uint32_t mtu);

  bool send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, size_t l4_len, FunctionRef<void(MutBytes)> fill) override;
  bool send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, size_t l4_len,
                 FunctionRef<void(MutBytes)> fill) override;
  bool send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, Bytes payload) override;
  /// R-TR-6 from the link's guest_offloads(): TSO needs checksum offload as well (virtio
  /// GUEST_TSO4/6 depend on GUEST_CSUM).
  [[nodiscard]] flows::TxCaps tx_caps() const override;
  bool send_tcp_v4(Ipv4Addr src, Ipv4Addr dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                   const flows::TcpTxOffload& o) override;
  bool send_tcp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                   const flows::TcpTxOffload& o) override;
  bool send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t src_port, uint16_t dst_port,
                   Bytes payload) override;
  bool send_icmp_error_v4(const wire::Ipv4Repr& offending, Bytes offending_l4, Ipv4Addr src, uint8_t type,
                          uint8_t code, Instant now, uint16_t next_hop_mtu) override;
  bool send_icmp_error_v6(const wire::Ipv6Repr& offending, Bytes offending_l4, const Ipv6Addr& src, uint8_t type,
                          uint8_t code, Instant now, uint32_t mtu_or_pointer) override;
  [[nodiscard]] bool output_blocked() const override {
    bool full = link_.output_full();
    blocked_seen_ = blocked_seen_ || full;
    return full;
  }
  void set_output_ready(std::function<void()> cb) override { output_ready_ = std::move(cb); }
  [[nodiscard]] uint32_t mtu() const override { return mtu_; }

  /// The link drained: blocked senders may resume.
  /// Fires the callback only if a sender saw the link blocked since the last call.
  void notify_output_ready() {
    if (!blocked_seen_ || link_.output_full()) return;
    blocked_seen_ = false;
    if (output_ready_) output_ready_();
  }

 private:
  stack::Interface& iface_;
  transport::FrameTransport& link_;
  uint32_t mtu_;
  std::function<void()> output_ready_;
  mutable bool blocked_seen_ = false;
  std::vector<std::byte> scratch_;  ///< one whole UDP datagram being fragmented (allocated once)
  uint16_t next_ident_v4_;
  uint64_t rng_state_;
};

struct FlowsSetup {
  flows::DestinationConfig destinations;
  flows::TcpConfig tcp;
  flows::UdpConfig udp;
  flows::IcmpConfig icmp;
  bool icmp_relay = true;
  ports::PublisherConfig publish;
  /// The tenant policy (R-POL-5/6 resolved) and how refusals look (R-POL-10).
  std::shared_ptr<const policy::Engine> policy;
  config::DenyResponse deny_response = config::DenyResponse::reject;
  Duration first_flight_timeout = std::chrono::seconds(1);
  config::DnsConfig dns;
  config::AuditConfig audit;
  /// The DNS upstreams with their transport (the same list as destinations.dns_upstreams).
  std::vector<dns::Upstream> dns_upstreams;
  /// The audit sink (R-OBS-3), owned by the caller and outliving the FlowManager; null = off.
  obs::AuditLog* audit_log = nullptr;
};

/// The `host` group of R-POL-4: the gateway and DNS addresses of the active families.
policy::HostAddrs host_addrs(const flows::DestinationConfig& d);
/// The SPEC's default posture (profile public) for these addresses.
std::shared_ptr<const policy::Engine> default_policy(const flows::DestinationConfig& d);

/// Owns the flow engines of one gateway and receives the packets the Interface hands on.
class FlowManager final : public stack::PacketHandler, private dns::AnswerSink {
 public:
  FlowManager(event::Loop& loop, flows::GuestIo& io, Counters& counters, const FlowsSetup& setup);
  void on_ipv4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) override;
  void on_ipv6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) override;

 private:
  /// ICMP echo relay policy (SPEC §2.4): false when denied (answered or dropped here).
  bool admit_echo(const IpAddr& src, const IpAddr& dst, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6,
                  Bytes l4, Instant now);

 public:
  /// End of a from-guest frame batch (coalesced TCP ACKs).
  void flush(Instant now) { tcp_.flush(now); }

  /// Binds the published ports (before ready). Error: one §5.2 line.
  Result<void, std::string> publish(const std::vector<config::PublishSpec>& specs) { return publisher_.bind_all(specs); }
  const ports::Publisher& publisher() const noexcept { return publisher_; }
  ports::Publisher& publisher() noexcept { return publisher_; }  ///< runtime publish/unpublish (R-PUB-6)
  flows::TcpEngine& tcp() noexcept { return tcp_; }
  flows::UdpRelay& udp() noexcept { return udp_; }
  const flows::Destinations& destinations() const noexcept { return destinations_; }
  /// Policy enforcement as the engines see it (SPEC §2.4).
  PolicyAdmission& admission() noexcept { return admission_; }
  policy::EngineRef& policy() noexcept { return policy_; }
  /// The names pinned to each address (R-DNS-6); the DNS forwarder fills it.
  const policy::PinLookup& pins() const noexcept { return pins_; }
  dns::PinSet& pin_set() noexcept { return pins_; }
  dns::Forwarder& dns() noexcept { return *dns_; }
  /// The audit log (R-OBS-3), or null when --audit is off. dns_* events are emitted here too.
  obs::AuditLog* audit() noexcept { return audit_; }

 private:
  void audit_dns(const dns::DnsEvent& e);
  /// UDP DNS answers to the guest, from the address it queried (R-DNS-1).
  void on_answer(const dns::Client& c, std::vector<std::byte> msg) override;
  /// R-DNS-1: UDP/53 goes to the forwarder; DoQ, mDNS, LLMNR and NetBIOS-NS are refused.
  /// True when the datagram was consumed here.
  bool on_dns_udp(const IpAddr& src, const IpAddr& dst, Bytes l4, const wire::Ipv4Repr* ip4,
                  const wire::Ipv6Repr* ip6, Instant now);
  /// R-DNS-1: TCP to mDNS/LLMNR ports gets ICMP port unreachable. True when consumed.
  bool refuse_dns_tcp(Bytes l4, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Instant now);
  void refuse_port(Bytes l4, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Instant now);

  Counters& counters_;
  policy::EngineRef policy_;
  obs::AuditLog* audit_;
  dns::PinSet pins_;
  std::shared_ptr<const dns::BlockList> block_;
  std::unique_ptr<dns::Forwarder> dns_;
  std::unique_ptr<dns::TcpServer> dns_tcp_;
  bool refuse_alt_ports_ = true;
  bool deny_silently_ = false;
  PolicyAdmission admission_;  // before the engines that use it
  flows::Destinations destinations_;
  flows::TcpEngine tcp_;
  flows::UdpRelay udp_;
  std::unique_ptr<flows::IcmpRelay> icmp_;  ///< null with --no-icmp
  ports::Publisher publisher_;
  flows::GuestIo& io_;
};

}  // namespace moat::app
