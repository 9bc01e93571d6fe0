#pragma once
// Dispatch: the stack::PacketHandler of one gateway — every guest IP packet that is not for
// the gateway's own services (ARP, NDP, DHCP, echo of its addresses) comes here, and goes
// to exactly one of:
//
//   1. a registered PacketHook whose match (L4 protocol + destination ports, to any
//      address) fits and which consumes it — in registration order: ports/ (replies on
//      published UDP mappings, R-UDP-1 step 3), then dns/ (UDP/53 to the forwarder, the
//      refused alternative DNS ports, R-DNS-1);
//   2. the built-in engines: TCP -> TcpEngine, UDP -> UdpRelay, ICMP echo -> IcmpRelay
//      after policy (SPEC §2.4); other ICMP is counted ignored, other protocols dropped.
//
// Modules above flows/ also register TcpPeerProviders (tcp_peer_provider.h), which the TCP
// engine asks for the upstream of a new flow; flows/ never names DNS or TLS.
//
// The hook table is fixed-size and filled at construction (register before the first
// packet): a packet costs one scan of a few entries, no allocation (STYLE: steady state
// allocates nothing).
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/counters.h"
#include "base/time.h"
#include "event/loop.h"
#include "flows/admission.h"
#include "flows/destinations.h"
#include "flows/guest_io.h"
#include "flows/icmp_relay.h"
#include "flows/tcp_engine.h"
#include "flows/tcp_peer_provider.h"
#include "flows/udp_relay.h"
#include "stack/interface.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

namespace moat::flows {

/// One guest TCP or UDP packet as a PacketHook sees it. Valid only during the call.
struct GuestPacket {
  const wire::Ipv4Repr* ip4 = nullptr;  ///< exactly one of ip4 / ip6 is set
  const wire::Ipv6Repr* ip6 = nullptr;
  uint8_t proto = 0;  ///< wire::kProtoTcp or wire::kProtoUdp
  IpAddr src, dst;
  uint16_t src_port = 0, dst_port = 0;
  Bytes l4;  ///< the TCP/UDP header and payload (UDP: at least the header; TCP: the ports)
  Instant now{};
};

/// A module's handler for guest packets (see Dispatch).
class PacketHook {
 public:
  /// True when the packet was consumed here (answered, refused, or dropped and counted);
  /// false hands it on to the next hook and finally to the built-in engine.
  virtual bool on_guest_packet(const GuestPacket& p) = 0;

 protected:
  ~PacketHook() = default;
};

/// Which packets a hook is offered: one L4 protocol, to any address, and a few destination
/// ports (none listed: every port).
struct PacketMatch {
  static constexpr size_t kMaxPorts = 6;
  uint8_t proto = 0;
  std::array<uint16_t, kMaxPorts> ports{};
  uint8_t port_count = 0;

  static PacketMatch any_port(uint8_t proto) noexcept { return PacketMatch{proto, {}, 0}; }
  /// At most kMaxPorts ports (more is a bug: MOAT_CHECK).
  static PacketMatch dst_ports(uint8_t proto, std::initializer_list<uint16_t> ports);
  [[nodiscard]] bool matches(uint8_t p, uint16_t dst_port) const noexcept {
    if (p != proto) return false;
    if (port_count == 0) return true;
    for (uint8_t i = 0; i < port_count; ++i)
      if (ports[i] == dst_port) return true;
    return false;
  }
};

/// The built-in engines' config.
struct DispatchConfig {
  DestinationConfig destinations;
  TcpConfig tcp;
  UdpConfig udp;
  IcmpConfig icmp;
  bool icmp_relay = true;  ///< false (--no-icmp): echo requests are dropped (drop.policy)
  /// The gateway's memory budget (R-LIM-2), handed to the engines; null = not accounted.
  MemoryBudget* budget = nullptr;
};

class Dispatch final : public stack::PacketHandler {
 public:
  static constexpr size_t kMaxHooks = 8;

  Dispatch(event::Loop& loop, GuestIo& io, Counters& counters, const DispatchConfig& config);
  Dispatch(const Dispatch&) = delete;
  Dispatch& operator=(const Dispatch&) = delete;

  /// Policy for every built-in engine (SPEC §2.4); null allows everything. Must outlive them.
  void set_admission(Admission* a) noexcept;
  /// Offers packets matching `m` to `hook` after the hooks added before it. At most
  /// kMaxHooks (a bug otherwise: MOAT_CHECK). `hook` must outlive the Dispatch.
  void add_hook(const PacketMatch& m, PacketHook& hook);
  /// New TCP flows ask `p` for their peer (after providers added before it).
  void add_tcp_provider(TcpPeerProvider& p) { tcp_.add_provider(p); }

  void on_ipv4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) override;
  void on_ipv6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) override;
  /// End of a from-guest frame batch (coalesced TCP ACKs).
  void flush(Instant now) { tcp_.flush(now); }

  [[nodiscard]] const Destinations& destinations() const noexcept { return destinations_; }
  TcpEngine& tcp() noexcept { return tcp_; }
  UdpRelay& udp() noexcept { return udp_; }
  IcmpRelay* icmp() noexcept { return icmp_.get(); }  ///< null with icmp_relay off

 private:
  struct Hook {
    PacketMatch match;
    PacketHook* hook = nullptr;
  };
  /// True when a hook consumed the packet. Packets shorter than a UDP header (TCP: the
  /// ports) skip the hooks (the engine counts them malformed).
  bool run_hooks(uint8_t proto, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Bytes l4, Instant now);
  /// ICMP echo relay policy (SPEC §2.4): false when denied (answered or dropped here).
  bool admit_echo(const IpAddr& src, const IpAddr& dst, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6,
                  Bytes l4, Instant now);

  /// R-LIM-2 at 100 %: only TCP segments that free memory (ACK, FIN, RST without payload
  /// or SYN) pass; everything else is drop.memory.
  bool over_budget(uint8_t proto, Bytes l4) noexcept;

  GuestIo& io_;
  Counters& counters_;
  MemoryBudget* budget_;
  Admission* admission_ = nullptr;
  Destinations destinations_;  // before the engines that keep a reference
  TcpEngine tcp_;
  UdpRelay udp_;
  std::unique_ptr<IcmpRelay> icmp_;
  std::array<Hook, kMaxHooks> hooks_{};
  size_t hook_count_ = 0;
};

}  // namespace moat::flows
