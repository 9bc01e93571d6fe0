#pragma once
// moat::stack::Interface — the gateway's side of the guest link: Ethernet demux, the
// on-link services a router owes its host (ARP, NDP + RA, DHCPv4, echo of its own
// addresses), IP validation and anti-spoofing, and framing of everything sent to the
// guest. See src/stack/README.md for the theory of operation.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/counters.h"
#include "base/function_ref.h"
#include "base/time.h"
#include "base/token_bucket.h"
#include "stack/link_config.h"
#include "stack/reassembly.h"
#include "wire/arp.h"
#include "wire/dhcpv4.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"
#include "wire/ndp.h"

namespace moat::stack {

/// How one to-guest frame uses the offloads the guest link accepts (R-TR-6). Plain data,
/// so stack/ need not know the transport: app::Gateway maps it to a virtio-net header.
struct TxOffload {
  enum class Gso : uint8_t { none, tcpv4, tcpv6 };
  Gso gso = Gso::none;
  uint16_t gso_size = 0;     ///< TCP payload bytes per segment of a super-frame
  uint16_t hdr_len = 0;      ///< Ethernet + IP + TCP header bytes (super-frames)
  bool partial = false;      ///< the L4 checksum field holds only the pseudo-header sum
  uint16_t csum_start = 0;   ///< from the Ethernet header: where the L4 checksum starts
  uint16_t csum_offset = 0;  ///< from csum_start: where the checksum field is
  /// Number of wire segments this frame becomes (1 unless a super-frame).
  [[nodiscard]] size_t segments(size_t frame_len) const noexcept {
    if (gso == Gso::none || gso_size == 0 || frame_len <= hdr_len) return 1;
    return (frame_len - hdr_len + gso_size - 1) / gso_size;
  }
};

/// What the caller of Interface::send_tcp_v4/v6 asks for: a super-frame (gso_size > 0)
/// and/or a partial checksum. The Interface derives the rest from the frame.
struct TcpOffload {
  uint16_t gso_size = 0;  ///< 0: one ordinary segment
  bool partial = false;   ///< the checksum field holds the pseudo-header sum only
};

/// Where finished to-guest frames go (the transport, or a test capture). The span is only
/// valid during the call: the Interface reuses one buffer for every frame it builds.
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void send_to_guest(Bytes frame) = 0;
  /// A frame that uses the guest's offloads (only what the link said it accepts). A sink
  /// without offload support keeps the default, which takes plain frames only.
  virtual void send_to_guest_offloaded(Bytes frame, const TxOffload& o) {
    if (o.gso == TxOffload::Gso::none && !o.partial) send_to_guest(frame);
  }
};

/// Receives IP packets that are not for the gateway's own services (TCP/UDP/ICMP flows).
/// `ip` has passed validation and anti-spoofing; `l4` is the upper-layer payload (after
/// IPv6 extension headers), a view into the guest's frame valid only during the call.
class PacketHandler {
 public:
  virtual ~PacketHandler() = default;
  virtual void on_ipv4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) = 0;
  virtual void on_ipv6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) = 0;
};

/// IPv4 header knobs for send_ipv4(); the defaults suit every locally generated packet.
/// Fragments (R-UDP-4) set more_fragments/frag_offset and one shared ident per datagram;
/// IPv6 fragments need nothing special: pass next_header 44 and write the Fragment header
/// (wire::Ipv6FragmentHeader) at the start of the l4 slice.
struct Ipv4SendOptions {
  uint8_t ttl = 64;
  uint8_t tos = 0;
  bool dont_fragment = true;
  bool more_fragments = false;
  uint16_t frag_offset = 0;        ///< bytes, a multiple of 8
  std::optional<uint16_t> ident;   ///< default: the Interface's running counter
};

/// The guest link. Lifecycle:
///  * Constructed: addresses and limits fixed from LinkConfig; the guest MAC is the
///    configured one. Frames may already be fed in (services answer), but no RA is sent.
///  * Started (`start(now)`, link up): the three initial RAs are scheduled 4 s apart,
///    the first sent immediately; `next_deadline()` reports the next RA.
///  * Running: the loop calls `on_frame_from_guest()` per frame and `on_timer()` when
///    `next_deadline()` passes. The guest MAC is (re)learned from valid frames.
/// There is no stop state: destroying the Interface is link down. Not thread-safe (one
/// loop thread owns it); never re-entered from FrameSink or a fill callback.
class Interface {
 public:
  /// Maximum Ethernet frame: a 65535-byte IP packet + 14 (SPEC R-TR-1).
  static constexpr size_t kMaxFrame = 65550;

  Interface(const LinkConfig& config, FrameSink& sink, Counters& counters);
  Interface(const Interface&) = delete;
  Interface& operator=(const Interface&) = delete;

  /// Packets not for the gateway's own services go here; nullptr: dropped (`drop.no_handler`).
  void set_packet_handler(PacketHandler* handler) noexcept { handler_ = handler; }
  /// The gateway's memory budget (R-LIM-2): charged the fragments held for reassembly.
  void set_budget(MemoryBudget* budget) noexcept { reasm_.set_budget(budget); }

  /// Link up: sends the first RA and schedules the two more 4 s apart (R-NET-6).
  void start(Instant now);
  /// One Ethernet frame from the guest. Every frame not answered, consumed or handed on
  /// increments exactly one drop (or ignored.*) counter (R-OBS-2).
  void on_frame_from_guest(Bytes frame, Instant now);
  /// Earliest time on_timer() has work to do, if any.
  [[nodiscard]] std::optional<Instant> next_deadline() const noexcept;
  /// Sends due unsolicited RAs.
  void on_timer(Instant now);

  [[nodiscard]] MacAddr guest_mac() const noexcept { return guest_mac_; }
  [[nodiscard]] const LinkConfig& config() const noexcept { return cfg_; }
  /// True for the addresses the gateway owns (gateway, DNS; for v6 also the link-local).
  [[nodiscard]] bool is_gateway_addr(Ipv4Addr a) const noexcept;
  [[nodiscard]] bool is_gateway_addr(const Ipv6Addr& a) const noexcept;
  /// fe80::/64 EUI-64 of the gateway MAC (R-ADDR-1).
  [[nodiscard]] const Ipv6Addr& gateway_link_local() const noexcept { return gateway_ll_; }

  // ---- Egress helpers (also used by the flow layer) ---------------------------------
  // Each builds Ethernet + IP in the Interface's one frame buffer and calls `fill` with
  // the L4 slice (exactly l4_len bytes) to write the upper-layer header, payload and
  // checksum, e.g. with TcpRepr::emit_v4. The destination MAC is derived from `dst`:
  // broadcast / multicast MACs for such addresses, otherwise the learned guest MAC.
  // They return false, sending nothing, when the packet would exceed the link MTU or
  // when called re-entrantly (from `fill` or the FrameSink), which is a bug.

  /// Sends one IPv4 packet of 20 + l4_len bytes to the guest.
  bool send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, size_t l4_len, FunctionRef<void(MutBytes l4)> fill,
                 const Ipv4SendOptions& options = {});
  /// Sends one IPv6 packet of 40 + l4_len bytes (no extension headers) to the guest.
  bool send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, size_t l4_len,
                 FunctionRef<void(MutBytes l4)> fill, uint8_t hop_limit = 64);

  /// One TCP segment or TSO super-frame using the guest's offloads (R-TR-6). With
  /// o.gso_size > 0 the packet may exceed the MTU, up to a 65535-byte IP packet, provided
  /// each segment it becomes (IP + TCP header + gso_size) fits the MTU; without it the
  /// MTU rule of send_ipv4/6 holds. The TCP header length is read from what `fill` wrote.
  bool send_tcp_v4(Ipv4Addr src, Ipv4Addr dst, size_t l4_len, FunctionRef<void(MutBytes l4)> fill,
                   const TcpOffload& o);
  bool send_tcp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, size_t l4_len, FunctionRef<void(MutBytes l4)> fill,
                   const TcpOffload& o);

  /// One UDP datagram to the guest (header and checksum built here). When it does not fit
  /// the MTU it is fragmented (R-UDP-4): IPv4 fragments share one identification from the
  /// gateway's running counter, IPv6 fragments carry a Fragment header with a random
  /// 32-bit id; IPv4 DF is set when the datagram fits. False: too big for UDP, or a
  /// fragment could not be sent.
  bool send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, Bytes payload);
  bool send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t src_port, uint16_t dst_port, Bytes payload);

  /// ICMPv4 error (type/code, e.g. kIcmpDestUnreachable/3 port unreachable) from `src` to
  /// the sender of `offending` (a guest packet as handed to PacketHandler::on_ipv4).
  /// The quote is the offending IP header (re-emitted without options) plus as much of
  /// `offending_l4` as fits in 576 bytes (R-ICMP-3). Suppressed (returns false) for ICMP
  /// errors, broadcast/multicast, non-first fragments and unspecified sources, and by the
  /// error token bucket (1000/s, burst 100). `next_hop_mtu` is for type 3 code 4.
  bool send_icmp_error_v4(const wire::Ipv4Repr& offending, Bytes offending_l4, Ipv4Addr src, uint8_t type,
                          uint8_t code, Instant now, uint16_t next_hop_mtu = 0);
  /// ICMPv6 error, same rules; the quote fits in 1280 bytes. `mtu_or_pointer` is the
  /// Packet Too Big MTU or the Parameter Problem pointer.
  bool send_icmp_error_v6(const wire::Ipv6Repr& offending, Bytes offending_l4, const Ipv6Addr& src, uint8_t type,
                          uint8_t code, Instant now, uint32_t mtu_or_pointer = 0);

 private:
  // interface.cc: demux, IP validation, dispatch.
  void drop(DropReason reason) noexcept;
  void ignore(Counter counter) noexcept;
  void learn_guest_mac(const MacAddr& mac) noexcept;
  void on_arp(const wire::EthernetRepr& eth, Bytes payload, Instant now);
  void on_ipv4(const wire::EthernetRepr& eth, Bytes packet, Instant now);
  void on_ipv6(const wire::EthernetRepr& eth, Bytes packet, Instant now);
  void on_icmpv4(const wire::Ipv4Repr& ip, Bytes l4, bool to_gateway, Instant now);
  void on_icmpv6(const wire::EthernetRepr& eth, const wire::Ipv6Repr& ip, Bytes l4, bool to_gateway, Instant now);
  void deliver_v4(const wire::Ipv4Repr& ip, Bytes l4, Instant now);
  void deliver_v6(const wire::Ipv6Repr& ip, Bytes l4, Instant now);
  [[nodiscard]] bool is_broadcast4(Ipv4Addr a) const noexcept;

  // ndp.cc: neighbour discovery and router advertisements.
  void on_ndp(const wire::EthernetRepr& eth, const wire::Ipv6Repr& ip, Bytes l4, Instant now);
  void send_router_advert();
  [[nodiscard]] Duration jittered_ra_interval() noexcept;

  // dhcp4.cc
  void on_dhcp4(const wire::Ipv4Repr& ip, Bytes udp_payload, Instant now);
  // dhcp6.cc
  void on_dhcp6(const wire::Ipv6Repr& ip, Bytes udp_payload, Instant now);

  // egress.cc: framing into frame_buf_.
  // `tcp` non-null: a TCP packet with offloads (send_tcp_v4/v6); TSO lifts the MTU check.
  bool send_ipv4_to(const MacAddr& dst_mac, Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, size_t l4_len,
                    FunctionRef<bool(MutBytes)> fill, const Ipv4SendOptions& options,
                    const TcpOffload* tcp = nullptr);
  bool send_ipv6_to(const MacAddr& dst_mac, const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header,
                    size_t l4_len, FunctionRef<bool(MutBytes)> fill, uint8_t hop_limit,
                    const TcpOffload* tcp = nullptr);
  /// True when an IP packet of ip_hdr + l4_len bytes may go to the guest: within the MTU,
  /// or a TSO super-frame (R-TR-1/R-TR-6) whose segments each fit the MTU.
  [[nodiscard]] bool fits_link(size_t ip_hdr, size_t l4_len, const TcpOffload* tcp) const noexcept;
  /// The one place frames are built; `fill` writes the Ethernet payload and returns false
  /// if its emitter failed, in which case nothing is sent. `tcp` non-null: the frame is an
  /// offloaded TCP packet (its TxOffload is derived from the frame once filled).
  bool send_frame(const MacAddr& dst_mac, uint16_t ethertype, size_t payload_len, FunctionRef<bool(MutBytes)> fill,
                  const TcpOffload* tcp = nullptr);

  const LinkConfig cfg_;
  FrameSink& sink_;
  Counters& counters_;
  Reassembler reasm_;  ///< guest UDP / ICMP fragments (R-FRAG-1)
  PacketHandler* handler_ = nullptr;

  MacAddr guest_mac_;
  /// A frame from the guest taught (or confirmed) guest_mac_. Until then any valid frame
  /// may; after, only frames from a guest address move it (ndp.cc: forged NDP does not).
  bool guest_mac_learned_ = false;
  Ipv6Addr gateway_ll_;
  Ipv4Addr dns4_list_[1];  ///< backing store for the DHCP option 6 span
  Ipv6Addr dns6_list_[1];  ///< backing store for the DHCPv6 option 23 span
  std::array<std::byte, 10> server_duid_{};  ///< DUID-LL of the gateway MAC (R-NET-8)

  // Per-service reply limits (R-NET-2, R-NET-5, R-NET-7, R-ICMP-1, R-ICMP-3).
  TokenBucket arp_limit_{100, 100};
  TokenBucket ndp_limit_{100, 100};
  TokenBucket dhcp_limit_{50, 50};
  TokenBucket echo_limit_{1000, 1000};
  TokenBucket icmp_error_limit_{1000, 100};

  // Router advertisement schedule (R-NET-6).
  bool ra_enabled_ = false;
  bool started_ = false;
  int initial_ras_left_ = 0;        ///< of the 3 link-up RAs, still to send
  Instant next_ra_{};               ///< next unsolicited RA, valid when started_
  std::optional<Instant> last_solicited_ra_;
  uint64_t rng_state_ = 0;          ///< splitmix64 state for RA jitter

  uint16_t ipv4_ident_ = 0;
  bool sending_ = false;            ///< re-entrancy guard for frame_buf_
  std::vector<std::byte> frame_buf_;  ///< kMaxFrame bytes, allocated once
  std::vector<std::byte> quote_buf_;  ///< ICMP error quote scratch (<= 1280 bytes)
  /// One whole UDP datagram being fragmented (R-UDP-4): the checksum covers all of it, so
  /// it is built once here and cut into frame_buf_. Sized on the first big datagram.
  std::vector<std::byte> udp_scratch_;
  uint64_t frag_rng_ = 0;  ///< splitmix64 state for IPv6 fragment ids (getrandom seed)
};

}  // namespace moat::stack
