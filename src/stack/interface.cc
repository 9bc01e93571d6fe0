// Ingress: Ethernet demux, IPv4/IPv6 validation and anti-spoofing, dispatch to the
// gateway's own services or to the PacketHandler. The rule for every path below: a frame
// ends in exactly one of (a) a reply or a consumed service message, (b) a hand-off to the
// PacketHandler, (c) exactly one drop.* or ignored.* counter (SPEC R-OBS-2).
#include "stack/interface.h"

#include <sys/random.h>

#include <ctime>

#include <algorithm>

#include "base/log.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/dhcpv6.h"
#include "wire/udp.h"

namespace moat::stack {

namespace {

/// Seed for IPv6 fragment ids: they should not be guessable by off-path hosts (RFC 7739).
uint64_t random_seed() noexcept {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) != ssize_t(sizeof v)) v = uint64_t(::time(nullptr)) ^ 0x6d6f6174;
  return v;
}

constexpr uint16_t kDhcpServerPort = 67;

/// IPv4 multicast MACs are 01:00:5e + 23 bits (RFC 1112 §6.4).
bool is_ipv4_multicast_mac(const MacAddr& m) noexcept {
  return m.bytes[0] == 0x01 && m.bytes[1] == 0x00 && m.bytes[2] == 0x5e && (m.bytes[3] & 0x80) == 0;
}
/// IPv6 multicast MACs are 33:33 + 32 bits (RFC 2464 §7).
bool is_ipv6_multicast_mac(const MacAddr& m) noexcept { return m.bytes[0] == 0x33 && m.bytes[1] == 0x33; }

/// Extension headers (and IPsec/mobility/HIP/shim6/experimental headers, RFC 7045 §2)
/// that the wire walker does not step over. Finding one of these as the "upper layer"
/// means the chain was not understood: drop.ext_header (R-NET-4).
bool is_extension_header(uint8_t nh) noexcept {
  switch (nh) {
    case wire::kNextHopByHop:  // only valid first; the walker stops on a later one
    case wire::kNextRouting:
    case wire::kNextFragment:
    case wire::kNextDestOpts:
    case 50:   // ESP
    case 51:   // AH
    case 135:  // Mobility
    case 139:  // HIP
    case 140:  // Shim6
    case 253:
    case 254:  // experimentation (RFC 3692)
      return true;
    default:
      return false;
  }
}

}  // namespace

Interface::Interface(const LinkConfig& config, FrameSink& sink, Counters& counters)
    : cfg_(config),
      sink_(sink),
      counters_(counters),
      reasm_(ReassemblyConfig{}, counters),
      guest_mac_(config.guest_mac),
      gateway_ll_(config.gateway_mac.link_local()),
      dns4_list_{config.dns4},
      dns6_list_{config.dns6},
      ra_enabled_(config.ipv6_active && config.ra),
      rng_state_(config.seed),
      frame_buf_(kMaxFrame),
      quote_buf_(1280),
      frag_rng_(random_seed()) {
  // DUID-LL (RFC 8415 §11.4): type 3, hardware type 1 (Ethernet), the gateway MAC.
  store_be16(server_duid_.data(), 3);
  store_be16(server_duid_.data() + 2, 1);
  for (size_t i = 0; i < 6; ++i) server_duid_[4 + i] = std::byte{config.gateway_mac.bytes[i]};
}

bool Interface::is_gateway_addr(Ipv4Addr a) const noexcept { return a == cfg_.gateway4 || a == cfg_.dns4; }

bool Interface::is_gateway_addr(const Ipv6Addr& a) const noexcept {
  return a == cfg_.gateway6 || a == cfg_.dns6 || a == gateway_ll_;
}

bool Interface::is_broadcast4(Ipv4Addr a) const noexcept {
  if (a.is_broadcast()) return true;
  // The subnet-directed broadcast of the guest's prefix (R-NET-9). /31 and /32 have none,
  // but R-ADDR-2 limits the prefix to 8..30 anyway.
  uint32_t mask = Ipv4Addr::mask(cfg_.prefix4);
  return cfg_.prefix4 < 31 && a.value == (cfg_.guest4.value | ~mask);
}

void Interface::drop(DropReason reason) noexcept {
  counters_.drop(reason);
  std::string_view name = drop_reason_name(reason);
  MOAT_LOG_RATELIMITED(trace, "stack: drop.%.*s", static_cast<int>(name.size()), name.data());
}

void Interface::ignore(Counter counter) noexcept { counters_.inc(counter); }

void Interface::learn_guest_mac(const MacAddr& mac) noexcept {
  // Never learn a group address, the zero MAC or our own: none can be the guest's NIC.
  if (mac.is_multicast() || mac.is_zero() || mac == cfg_.gateway_mac) return;
  if (mac == guest_mac_) {
    guest_mac_learned_ = true;  // the configured MAC confirmed by the guest
    return;
  }
  MOAT_LOG(debug, "stack: guest MAC %s -> %s", guest_mac_.to_string().c_str(), mac.to_string().c_str());
  guest_mac_ = mac;  // R-ADDR-4: re-learned from later valid frames
  guest_mac_learned_ = true;
}

// ---- Lifecycle --------------------------------------------------------------------------

void Interface::start(Instant now) {
  started_ = true;
  if (!ra_enabled_) return;
  // R-NET-6: three RAs at link-up, 4 s apart; the first goes out now so a booting guest
  // configures itself without waiting.
  send_router_advert();
  initial_ras_left_ = 2;
  next_ra_ = now + std::chrono::seconds(4);
}

std::optional<Instant> Interface::next_deadline() const noexcept {
  std::optional<Instant> d = reasm_.next_deadline();
  if (started_ && ra_enabled_ && (!d || next_ra_ < *d)) d = next_ra_;
  return d;
}

void Interface::on_timer(Instant now) {
  reasm_.expire(now);
  if (!started_ || !ra_enabled_ || now < next_ra_) return;
  send_router_advert();
  // Rescheduled from `now`, not from the missed deadline, so a stalled loop sends one
  // RA, not a burst.
  if (initial_ras_left_ > 0) --initial_ras_left_;
  next_ra_ = now + (initial_ras_left_ > 0 ? Duration(std::chrono::seconds(4)) : jittered_ra_interval());
}

// ---- Ethernet (R-NET-1) -------------------------------------------------------------------

void Interface::on_frame_from_guest(Bytes frame, Instant now) {
  // link.from_guest.* are counted by the transport (what crossed the link).
  // R-TR-1: valid Ethernet length is 14..65550.
  if (frame.size() < wire::EthernetRepr::kHeaderLen) return drop(DropReason::runt);
  if (frame.size() > kMaxFrame) return drop(DropReason::oversize);
  auto eth = wire::EthernetRepr::parse(frame);
  if (!eth) return drop(DropReason::runt);

  const MacAddr& dst = eth->dst;
  if (!(dst == cfg_.gateway_mac || dst.is_broadcast() || is_ipv4_multicast_mac(dst) || is_ipv6_multicast_mac(dst)))
    return drop(DropReason::not_for_us);

  Bytes payload = frame.subspan(wire::EthernetRepr::kHeaderLen);
  switch (eth->ethertype) {
    case wire::kEtherTypeArp:
      return on_arp(*eth, payload, now);
    case wire::kEtherTypeIpv4:
      return on_ipv4(*eth, payload, now);
    case wire::kEtherTypeIpv6:
      return on_ipv6(*eth, payload, now);
    default:  // VLAN tags (802.1Q/802.1ad) included: the guest link is untagged
      return drop(DropReason::ethertype);
  }
}

// ---- IPv4 (R-NET-3) -----------------------------------------------------------------------

void Interface::on_ipv4(const wire::EthernetRepr& eth, Bytes packet, Instant now) {
  Bytes l4;
  auto parsed = wire::Ipv4Repr::parse(packet, &l4);
  if (!parsed) return drop(DropReason::bad_ip);
  const wire::Ipv4Repr& ip = *parsed;
  // R-NET-3: options are skipped, but source routing would make us a relay for arbitrary
  // paths (RFC 7126 §4.3/4.4 recommend dropping LSRR/SSRR).
  if (ip.source_route) return drop(DropReason::bad_ip);

  // UDP header checked once here: DHCP needs the ports, and the flow layer gets a
  // datagram whose length is known to be sane.
  bool udp_ok = false;
  bool dhcp = false;
  Bytes udp_payload;
  if (ip.protocol == wire::kProtoUdp && !ip.is_fragment()) {
    auto udp = wire::UdpRepr::parse(l4, &udp_payload);
    udp_ok = udp.has_value();
    dhcp = udp_ok && cfg_.dhcp4 && udp->dst_port == kDhcpServerPort &&
           (ip.dst.is_broadcast() || ip.dst == cfg_.gateway4);
  }

  // R-ADDR-4: the guest's address only; 0.0.0.0 only while it has none (DHCP).
  if (ip.src != cfg_.guest4 && !(ip.src.is_unspecified() && dhcp)) return drop(DropReason::bad_src);
  if (ip.dst.is_loopback() || ip.dst.is_unspecified() || ip.dst == cfg_.guest4) return drop(DropReason::martian);
  // A 0.0.0.0 source (a DHCP client without an address) proves no guest identity, like
  // NDP's link-local sources: DHCP teaches the MAC by its own rules (dhcp4.cc: the chaddr,
  // before one is learned or once a REQUEST is ACKed). Otherwise a flood of DISCOVERs from
  // random MACs would send the guest's traffic to each in turn.
  if (!ip.src.is_unspecified()) learn_guest_mac(eth.src);

  const bool multicast = ip.dst.is_multicast() || is_broadcast4(ip.dst);
  if (!cfg_.ipv4_active) {
    // R-ADDR-3: nothing of an inactive family is served, and anything routed beyond the
    // gateway is refused with Destination Unreachable code 0 so dual-stack clients fall
    // back at once. The helper applies the R-ICMP-3 exclusions (errors, fragments, ...).
    if (!multicast && !dhcp && !is_gateway_addr(ip.dst))
      send_icmp_error_v4(ip, l4, cfg_.gateway4, wire::kIcmpDestUnreachable, 0, now);
    return drop(DropReason::inactive_family);
  }
  if (dhcp) return on_dhcp4(ip, udp_payload, now);
  // R-NET-9: moat relays no broadcast or multicast (IGMP, mDNS, SSDP, ...).
  if (multicast) return ignore(Counter::ignored_multicast);
  if (ip.is_fragment()) {
    // R-FRAG-1: UDP and ICMP fragments are reassembled (bounded); everything else is dropped.
    if (ip.protocol != wire::kProtoUdp && ip.protocol != wire::kProtoIcmp)
      return drop(DropReason::fragment_unsupported);
    auto whole = reasm_.add_v4(ip, l4, now);  // counts frag.* / drop.fragment_invalid itself
    if (!whole) return;
    if (whole->ip.protocol == wire::kProtoIcmp) return on_icmpv4(whole->ip, whole->l4, is_gateway_addr(ip.dst), now);
    Bytes payload;
    if (!wire::UdpRepr::parse(whole->l4, &payload)) return drop(DropReason::bad_udp);
    return deliver_v4(whole->ip, whole->l4, now);
  }
  // TODO(stack): TTL <= 1 beyond the gateway -> Time Exceeded (R-NET-3, P1).

  const bool to_gateway = is_gateway_addr(ip.dst);
  switch (ip.protocol) {
    case wire::kProtoIcmp:
      return on_icmpv4(ip, l4, to_gateway, now);
    case wire::kProtoUdp:
      if (!udp_ok) return drop(DropReason::bad_udp);
      return deliver_v4(ip, l4, now);
    case wire::kProtoTcp:
      return deliver_v4(ip, l4, now);
    default:
      return drop(DropReason::unsupported_proto);
  }
}

void Interface::on_icmpv4(const wire::Ipv4Repr& ip, Bytes l4, bool to_gateway, Instant now) {
  auto parsed = wire::Icmpv4Repr::parse(l4);  // verifies the checksum (R-NET-3 exception)
  if (!parsed) return drop(DropReason::bad_icmp);
  const wire::Icmpv4Repr& icmp = *parsed;
  // R-ICMP-4: timestamps, router solicitation, redirects, information requests and
  // guest-originated errors are not served.
  if (icmp.type != wire::kIcmpEchoRequest) return ignore(Counter::ignored_icmp);
  // R-ICMP-1/2: the Interface answers echo only for the gateway's own addresses. Anything
  // else is relayed by the flow layer; answering here would spoof a remote host.
  if (!to_gateway) return deliver_v4(ip, l4, now);
  if (!cfg_.gateway_echo) return ignore(Counter::ignored_icmp);
  if (!echo_limit_.take(now)) {
    counters_.inc(Counter::icmp_echo_rate_limited);
    return drop(DropReason::rate_limit);
  }
  wire::Icmpv4Repr reply;
  reply.type = wire::kIcmpEchoReply;
  reply.code = 0;
  reply.ident = icmp.ident;
  reply.seq = icmp.seq;
  reply.data = icmp.data;
  bool sent = send_ipv4_to(guest_mac_, ip.dst, ip.src, wire::kProtoIcmp, reply.len(),
                           [&](MutBytes out) { return reply.emit(out); }, Ipv4SendOptions{});
  // A request bigger than our MTU cannot be answered without fragmenting.
  if (!sent) return drop(DropReason::oversize);
  counters_.inc(Counter::icmp_echo_local);
}

void Interface::deliver_v4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) {
  if (handler_ == nullptr) return drop(DropReason::no_handler);
  handler_->on_ipv4(ip, l4, now);
}

// ---- IPv6 (R-NET-4) -----------------------------------------------------------------------

void Interface::on_ipv6(const wire::EthernetRepr& eth, Bytes packet, Instant now) {
  Bytes l4;
  auto parsed = wire::Ipv6Repr::parse(packet, &l4);
  if (!parsed) {
    wire::ParseError e = parsed.error();
    if (e == wire::ParseError::routing_header || e == wire::ParseError::too_many_ext_headers)
      return drop(DropReason::ext_header);
    return drop(DropReason::bad_ip);
  }
  const wire::Ipv6Repr& ip = *parsed;

  // R-ADDR-4 source classes: a guest /64 address that is not ours (SLAAC and privacy
  // addresses included), link-local, or :: (DAD only). Anything else is spoofed.
  const bool src_global = ip.src.in_subnet(cfg_.guest6, cfg_.prefix6) && !is_gateway_addr(ip.src) &&
                          !ip.src.is_multicast();
  const bool src_link_local = ip.src.is_link_local() && ip.src != gateway_ll_;
  const bool src_unspecified = ip.src.is_unspecified();
  if (!src_global && !src_link_local && !src_unspecified) return drop(DropReason::bad_src);
  // Martians: loopback, ::, the guest's own address, v4-mapped, and link-local addresses
  // other than ours (RFC 4291 §2.5.6: never routed, so not ours to relay).
  if (ip.dst.is_loopback() || ip.dst.is_unspecified() || ip.dst == cfg_.guest6 || ip.dst.is_v4_mapped() ||
      (ip.dst.is_link_local() && ip.dst != gateway_ll_))
    return drop(DropReason::martian);

  // An atomic fragment (offset 0, M=0) is a whole packet (RFC 8200 §4.5, R-FRAG).
  const bool fragmented = ip.fragment.has_value() && (ip.fragment->offset != 0 || ip.fragment->more);
  const bool multicast = ip.dst.is_multicast();

  // NDP is link-scoped and runs whatever the family's activation (the link-local address
  // always exists). RFC 6980: fragmented NDP is never accepted.
  if (ip.next_header == wire::kProtoIcmpv6 && !fragmented && !l4.empty()) {
    uint8_t type = load_u8(l4.data());
    if (type >= wire::kNdpRouterSolicit && type <= wire::kNdpNeighborAdvert) return on_ndp(eth, ip, l4, now);
  }

  // R-ADDR-4: link-local sources are for NDP and DHCPv6, plus traffic to the gateway's own
  // link-local address (R-ADDR-5 treats it like the global one, and a guest always talks
  // to fe80:: from fe80::). :: is for DAD only. Group traffic from such sources (MLD
  // reports during boot, mDNS) is multicast we ignore rather than a spoofing attempt.
  if (!src_global) {
    const bool dhcpv6 = ip.next_header == wire::kProtoUdp && multicast;
    const bool to_gateway_ll = src_link_local && ip.dst == gateway_ll_;
    if (!dhcpv6 && !to_gateway_ll) {
      if (multicast) return ignore(Counter::ignored_multicast);
      return drop(DropReason::bad_src);
    }
  }
  // Link-local sources (DHCPv6, the gateway link-local) prove no guest identity, like NDP's
  // (ndp.cc): they teach the MAC only before one is learned.
  if (src_global || !guest_mac_learned_) learn_guest_mac(eth.src);

  if (multicast) {
    // R-NET-8: DHCPv6 on ff02::1:2 port 547, while IPv6 is active (R-ADDR-3) and the
    // service is on. Every other group is ignored (R-NET-9): MLD, mDNS, LLMNR, ...
    if (ip.dst == wire::kDhcpv6AllServers && ip.next_header == wire::kProtoUdp && !fragmented &&
        cfg_.ipv6_active && cfg_.dhcpv6 != Dhcpv6Mode::off) {
      Bytes payload;
      auto udp = wire::UdpRepr::parse(l4, &payload);
      if (!udp || udp->checksum == 0) return drop(DropReason::bad_udp);
      if (udp->dst_port == wire::kDhcpv6ServerPort) return on_dhcp6(ip, payload, now);
    }
    return ignore(Counter::ignored_multicast);
  }

  const bool to_gateway = is_gateway_addr(ip.dst);
  if (!cfg_.ipv6_active) {
    // R-ADDR-3, as for IPv4. With no global gateway address on the link, the error comes
    // from the gateway's link-local address.
    if (!to_gateway) send_icmp_error_v6(ip, l4, gateway_ll_, wire::kIcmpv6DestUnreachable, 0, now);
    return drop(DropReason::inactive_family);
  }
  if (fragmented) {
    // R-FRAG-1: UDP and ICMPv6 fragments are reassembled; the reassembler re-walks the
    // whole packet (options after the Fragment header would shift the offsets otherwise).
    if (ip.next_header != wire::kProtoUdp && ip.next_header != wire::kProtoIcmpv6)
      return drop(DropReason::fragment_unsupported);
    auto whole = reasm_.add_v6(ip, packet, now);
    if (!whole) return;
    if (whole->ip.next_header == wire::kProtoIcmpv6) return on_icmpv6(eth, whole->ip, whole->l4, to_gateway, now);
    if (whole->ip.next_header != wire::kProtoUdp) return drop(DropReason::fragment_unsupported);
    Bytes payload;
    auto udp = wire::UdpRepr::parse(whole->l4, &payload);
    if (!udp || udp->checksum == 0) return drop(DropReason::bad_udp);
    return deliver_v6(whole->ip, whole->l4, now);
  }
  // TODO(stack): hop limit <= 1 beyond the gateway -> Time Exceeded (R-NET-4, P1).

  switch (ip.next_header) {
    case wire::kProtoIcmpv6:
      return on_icmpv6(eth, ip, l4, to_gateway, now);
    case wire::kProtoUdp: {
      Bytes payload;
      auto udp = wire::UdpRepr::parse(l4, &payload);
      // RFC 8200 §8.1: a zero UDP checksum is invalid over IPv6 (R-NET-4).
      if (!udp || udp->checksum == 0) return drop(DropReason::bad_udp);
      return deliver_v6(ip, l4, now);
    }
    case wire::kProtoTcp:
      return deliver_v6(ip, l4, now);
    default:
      if (is_extension_header(ip.next_header)) return drop(DropReason::ext_header);
      return drop(DropReason::unsupported_proto);
  }
}

void Interface::on_icmpv6(const wire::EthernetRepr& eth, const wire::Ipv6Repr& ip, Bytes l4, bool to_gateway,
                          Instant now) {
  (void)eth;
  auto parsed = wire::Icmpv6Repr::parse(l4, ip.src, ip.dst);  // verifies the checksum
  if (!parsed) return drop(DropReason::bad_icmp);
  const wire::Icmpv6Repr& icmp = *parsed;
  // R-ICMP-4: errors, redirects, node information, unicast MLD, ... are not served.
  if (icmp.type != wire::kIcmpv6EchoRequest) return ignore(Counter::ignored_icmp);
  if (!to_gateway) return deliver_v6(ip, l4, now);  // R-ICMP-2: never answered here
  if (!cfg_.gateway_echo) return ignore(Counter::ignored_icmp);
  if (!echo_limit_.take(now)) {
    counters_.inc(Counter::icmp_echo_rate_limited);
    return drop(DropReason::rate_limit);
  }
  wire::Icmpv6Repr reply;
  reply.type = wire::kIcmpv6EchoReply;
  reply.code = 0;
  reply.ident = icmp.ident;
  reply.seq = icmp.seq;
  reply.data = icmp.data;
  // The reply comes from the address that was pinged (global, link-local or DNS).
  const Ipv6Addr& src = ip.dst;
  const Ipv6Addr& dst = ip.src;
  bool sent = send_ipv6_to(guest_mac_, src, dst, wire::kProtoIcmpv6, reply.len(),
                           [&](MutBytes out) { return reply.emit(out, src, dst); }, 64);
  if (!sent) return drop(DropReason::oversize);
  counters_.inc(Counter::icmp_echo_local);
}

void Interface::deliver_v6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) {
  if (handler_ == nullptr) return drop(DropReason::no_handler);
  handler_->on_ipv6(ip, l4, now);
}

}  // namespace moat::stack
