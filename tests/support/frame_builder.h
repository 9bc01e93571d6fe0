#pragma once
// Test frames built with the production wire Reprs, so every checksum and length is right
// unless a test breaks it on purpose (STYLE.md: no magic offsets, no zero checksums), plus
// small parsers/matchers for what the gateway sends back (gVisor's `checker`, reduced).
//
//   GuestFrames g;                                  // addresses = LinkConfig defaults
//   iface.on_frame_from_guest(g.arp_request(cfg.gateway4), now);
//   auto arp = as_arp(sink.frames.at(0));           // std::optional<ArpFrame>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "wire/arp.h"
#include "wire/dhcpv4.h"
#include "wire/ethernet.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"
#include "wire/ndp.h"
#include "wire/udp.h"

namespace moat::test {

using Buf = std::vector<std::byte>;

inline Bytes span(const Buf& b) { return Bytes(b.data(), b.size()); }
inline Buf to_buf(Bytes b) { return Buf(b.begin(), b.end()); }
inline Buf text(std::string_view s) { return to_buf(as_bytes(s)); }

// ---- Raw builders --------------------------------------------------------------------

inline Buf eth_frame(const MacAddr& dst, const MacAddr& src, uint16_t ethertype, Bytes payload) {
  Buf f(wire::EthernetRepr::kHeaderLen + payload.size());
  wire::EthernetRepr eth{dst, src, ethertype};
  eth.emit(MutBytes(f));
  if (!payload.empty()) std::memcpy(f.data() + wire::EthernetRepr::kHeaderLen, payload.data(), payload.size());
  return f;
}

/// An IPv4 packet: `ip` with payload_len set from l4 (emit writes no options).
inline Buf ipv4_packet(wire::Ipv4Repr ip, Bytes l4) {
  ip.payload_len = static_cast<uint16_t>(l4.size());
  Buf p(wire::Ipv4Repr::kHeaderLen + l4.size());
  ip.emit(MutBytes(p));
  if (!l4.empty()) std::memcpy(p.data() + wire::Ipv4Repr::kHeaderLen, l4.data(), l4.size());
  return p;
}

/// An IPv6 packet without extension headers.
inline Buf ipv6_packet(wire::Ipv6Repr ip, Bytes l4) {
  ip.payload_len = static_cast<uint32_t>(l4.size());
  Buf p(wire::Ipv6Repr::kHeaderLen + l4.size());
  ip.emit(MutBytes(p));
  if (!l4.empty()) std::memcpy(p.data() + wire::Ipv6Repr::kHeaderLen, l4.data(), l4.size());
  return p;
}

inline Buf icmpv4_msg(const wire::Icmpv4Repr& m) {
  Buf b(m.len());
  m.emit(MutBytes(b));
  return b;
}
inline Buf icmpv6_msg(const wire::Icmpv6Repr& m, const Ipv6Addr& src, const Ipv6Addr& dst) {
  Buf b(m.len());
  m.emit(MutBytes(b), src, dst);
  return b;
}
inline Buf ndp_msg(const wire::NdpRepr& m, const Ipv6Addr& src, const Ipv6Addr& dst) {
  Buf b(m.len());
  m.emit(MutBytes(b), src, dst);
  return b;
}
inline Buf udp4_datagram(uint16_t sport, uint16_t dport, Bytes payload, Ipv4Addr src, Ipv4Addr dst) {
  Buf b(wire::UdpRepr::kHeaderLen + payload.size());
  if (!payload.empty()) std::memcpy(b.data() + wire::UdpRepr::kHeaderLen, payload.data(), payload.size());
  wire::UdpRepr u;
  u.src_port = sport;
  u.dst_port = dport;
  u.emit_v4(MutBytes(b), src, dst);
  return b;
}
inline Buf udp6_datagram(uint16_t sport, uint16_t dport, Bytes payload, const Ipv6Addr& src, const Ipv6Addr& dst) {
  Buf b(wire::UdpRepr::kHeaderLen + payload.size());
  if (!payload.empty()) std::memcpy(b.data() + wire::UdpRepr::kHeaderLen, payload.data(), payload.size());
  wire::UdpRepr u;
  u.src_port = sport;
  u.dst_port = dport;
  u.emit_v6(MutBytes(b), src, dst);
  return b;
}

// ---- Guest-side frame factory ----------------------------------------------------------

/// Builds frames as the guest would send them. Fields default to the SPEC R-ADDR-1
/// defaults (the same as stack::LinkConfig's); tests change them directly.
struct GuestFrames {
  MacAddr guest_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x02}};
  MacAddr gateway_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x01}};
  Ipv4Addr guest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  Ipv4Addr gateway4 = Ipv4Addr::from_octets(100, 96, 0, 1);
  Ipv6Addr guest6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
  Ipv6Addr gateway6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

  [[nodiscard]] Ipv6Addr guest_ll() const { return guest_mac.link_local(); }
  [[nodiscard]] Ipv6Addr gateway_ll() const { return gateway_mac.link_local(); }

  // ARP
  [[nodiscard]] Buf arp(const wire::ArpRepr& a, MacAddr eth_dst = MacAddr::broadcast()) const {
    Buf p(wire::ArpRepr::kLen);
    a.emit(MutBytes(p));
    return eth_frame(eth_dst, a.sender_mac, wire::kEtherTypeArp, span(p));
  }
  [[nodiscard]] Buf arp_request(Ipv4Addr target, std::optional<Ipv4Addr> sender = std::nullopt) const {
    return arp(wire::ArpRepr{wire::ArpOp::request, guest_mac, sender.value_or(guest4), MacAddr{}, target});
  }
  /// Gratuitous ARP request (sender == target == own address, RFC 5227 §3).
  [[nodiscard]] Buf arp_gratuitous(const MacAddr& mac) const {
    return arp(wire::ArpRepr{wire::ArpOp::request, mac, guest4, MacAddr{}, guest4});
  }

  // IPv4
  [[nodiscard]] Buf ipv4(const wire::Ipv4Repr& ip, Bytes l4, std::optional<MacAddr> eth_dst = std::nullopt) const {
    Buf p = ipv4_packet(ip, l4);
    return eth_frame(eth_dst.value_or(gateway_mac), guest_mac, wire::kEtherTypeIpv4, span(p));
  }
  [[nodiscard]] wire::Ipv4Repr ip4_header(Ipv4Addr dst, uint8_t proto, std::optional<Ipv4Addr> src = std::nullopt) const {
    wire::Ipv4Repr ip;
    ip.src = src.value_or(guest4);
    ip.dst = dst;
    ip.protocol = proto;
    ip.ttl = 64;
    return ip;
  }
  [[nodiscard]] Buf icmp4_echo(Ipv4Addr dst, uint16_t ident, uint16_t seq, Bytes data) const {
    wire::Icmpv4Repr m;
    m.type = wire::kIcmpEchoRequest;
    m.ident = ident;
    m.seq = seq;
    m.data = data;
    Buf l4 = icmpv4_msg(m);
    return ipv4(ip4_header(dst, wire::kProtoIcmp), span(l4));
  }
  [[nodiscard]] Buf udp4(Ipv4Addr src, Ipv4Addr dst, uint16_t sport, uint16_t dport, Bytes payload,
                         std::optional<MacAddr> eth_dst = std::nullopt) const {
    Buf l4 = udp4_datagram(sport, dport, payload, src, dst);
    return ipv4(ip4_header(dst, wire::kProtoUdp, src), span(l4), eth_dst);
  }
  [[nodiscard]] Buf tcp4_raw(Ipv4Addr dst, Bytes segment) const {
    return ipv4(ip4_header(dst, wire::kProtoTcp), segment);
  }

  // DHCPv4
  [[nodiscard]] wire::Dhcpv4Repr dhcp_msg(wire::DhcpMessageType type, uint32_t xid = 0x1234abcd) const {
    wire::Dhcpv4Repr d;
    d.op = 1;
    d.xid = xid;
    d.chaddr = guest_mac;
    d.message_type = type;
    return d;
  }
  /// A client message in a UDP 68 -> 67 datagram; from 0.0.0.0 to broadcast unless given.
  [[nodiscard]] Buf dhcp(const wire::Dhcpv4Repr& d, Ipv4Addr src = Ipv4Addr{}, Ipv4Addr dst = Ipv4Addr::broadcast()) const {
    Buf payload(d.len());
    d.emit(MutBytes(payload));
    return udp4(src, dst, wire::kDhcpClientPort, wire::kDhcpServerPort, span(payload),
                dst.is_broadcast() ? std::optional<MacAddr>(MacAddr::broadcast()) : std::nullopt);
  }

  // IPv6
  [[nodiscard]] Buf ipv6(const wire::Ipv6Repr& ip, Bytes l4, std::optional<MacAddr> eth_dst = std::nullopt) const {
    Buf p = ipv6_packet(ip, l4);
    MacAddr dst = eth_dst.value_or(ip.dst.is_multicast() ? MacAddr::for_ipv6_multicast(ip.dst) : gateway_mac);
    return eth_frame(dst, guest_mac, wire::kEtherTypeIpv6, span(p));
  }
  [[nodiscard]] wire::Ipv6Repr ip6_header(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t nh,
                                          uint8_t hop_limit = 64) const {
    wire::Ipv6Repr ip;
    ip.src = src;
    ip.dst = dst;
    ip.next_header = nh;
    ip.hop_limit = hop_limit;
    return ip;
  }
  [[nodiscard]] Buf icmp6_echo(const Ipv6Addr& dst, uint16_t ident, uint16_t seq, Bytes data,
                               std::optional<Ipv6Addr> src = std::nullopt) const {
    Ipv6Addr s = src.value_or(guest6);
    wire::Icmpv6Repr m;
    m.type = wire::kIcmpv6EchoRequest;
    m.ident = ident;
    m.seq = seq;
    m.data = data;
    Buf l4 = icmpv6_msg(m, s, dst);
    return ipv6(ip6_header(s, dst, wire::kProtoIcmpv6), span(l4));
  }
  [[nodiscard]] Buf ndp(const wire::NdpRepr& m, const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t hop_limit = 255) const {
    Buf l4 = ndp_msg(m, src, dst);
    return ipv6(ip6_header(src, dst, wire::kProtoIcmpv6, hop_limit), span(l4));
  }
  /// Neighbour Solicitation for `target` from `src` (:: makes it a DAD probe, RFC 4862).
  [[nodiscard]] Buf ns(const Ipv6Addr& target, std::optional<Ipv6Addr> src = std::nullopt, uint8_t hop_limit = 255) const {
    Ipv6Addr s = src.value_or(guest_ll());
    wire::NdpRepr m;
    m.type = wire::kNdpNeighborSolicit;
    m.target = target;
    if (!s.is_unspecified()) m.source_ll = guest_mac;
    return ndp(m, s, target.solicited_node(), hop_limit);
  }
  [[nodiscard]] Buf rs(std::optional<Ipv6Addr> src = std::nullopt) const {
    Ipv6Addr s = src.value_or(guest_ll());
    wire::NdpRepr m;
    m.type = wire::kNdpRouterSolicit;
    if (!s.is_unspecified()) m.source_ll = guest_mac;
    return ndp(m, s, Ipv6Addr::all_routers());
  }
  [[nodiscard]] Buf udp6(const Ipv6Addr& dst, uint16_t sport, uint16_t dport, Bytes payload,
                         std::optional<Ipv6Addr> src = std::nullopt) const {
    Ipv6Addr s = src.value_or(guest6);
    Buf l4 = udp6_datagram(sport, dport, payload, s, dst);
    return ipv6(ip6_header(s, dst, wire::kProtoUdp), span(l4));
  }
};

// ---- Output parsers / matchers ---------------------------------------------------------

struct ArpFrame {
  wire::EthernetRepr eth;
  wire::ArpRepr arp;
};
struct Ipv4Frame {
  wire::EthernetRepr eth;
  wire::Ipv4Repr ip;
  Bytes l4;
};
struct Ipv6Frame {
  wire::EthernetRepr eth;
  wire::Ipv6Repr ip;
  Bytes l4;
};
struct Icmpv4Frame {
  Ipv4Frame outer;
  wire::Icmpv4Repr icmp;
};
struct Icmpv6Frame {
  Ipv6Frame outer;
  wire::Icmpv6Repr icmp;
};
struct NdpFrame {
  Ipv6Frame outer;
  wire::NdpRepr ndp;
};
struct DhcpFrame {
  Ipv4Frame outer;
  wire::UdpRepr udp;
  wire::Dhcpv4Repr dhcp;
};

inline std::optional<ArpFrame> as_arp(Bytes f) {
  auto eth = wire::EthernetRepr::parse(f);
  if (!eth || eth->ethertype != wire::kEtherTypeArp) return std::nullopt;
  auto arp = wire::ArpRepr::parse(f.subspan(wire::EthernetRepr::kHeaderLen));
  if (!arp) return std::nullopt;
  return ArpFrame{*eth, *arp};
}
inline std::optional<Ipv4Frame> as_ipv4(Bytes f) {
  auto eth = wire::EthernetRepr::parse(f);
  if (!eth || eth->ethertype != wire::kEtherTypeIpv4) return std::nullopt;
  Bytes l4;
  auto ip = wire::Ipv4Repr::parse(f.subspan(wire::EthernetRepr::kHeaderLen), &l4);
  if (!ip) return std::nullopt;
  return Ipv4Frame{*eth, *ip, l4};
}
inline std::optional<Ipv6Frame> as_ipv6(Bytes f) {
  auto eth = wire::EthernetRepr::parse(f);
  if (!eth || eth->ethertype != wire::kEtherTypeIpv6) return std::nullopt;
  Bytes l4;
  auto ip = wire::Ipv6Repr::parse(f.subspan(wire::EthernetRepr::kHeaderLen), &l4);
  if (!ip) return std::nullopt;
  return Ipv6Frame{*eth, *ip, l4};
}
inline std::optional<Icmpv4Frame> as_icmpv4(Bytes f) {
  auto o = as_ipv4(f);
  if (!o || o->ip.protocol != wire::kProtoIcmp) return std::nullopt;
  auto m = wire::Icmpv4Repr::parse(o->l4);
  if (!m) return std::nullopt;
  return Icmpv4Frame{*o, *m};
}
inline std::optional<Icmpv6Frame> as_icmpv6(Bytes f) {
  auto o = as_ipv6(f);
  if (!o || o->ip.next_header != wire::kProtoIcmpv6) return std::nullopt;
  auto m = wire::Icmpv6Repr::parse(o->l4, o->ip.src, o->ip.dst);
  if (!m) return std::nullopt;
  return Icmpv6Frame{*o, *m};
}
inline std::optional<NdpFrame> as_ndp(Bytes f) {
  auto o = as_ipv6(f);
  if (!o || o->ip.next_header != wire::kProtoIcmpv6) return std::nullopt;
  auto m = wire::NdpRepr::parse(o->l4, o->ip.src, o->ip.dst);
  if (!m) return std::nullopt;
  return NdpFrame{*o, *m};
}
inline std::optional<DhcpFrame> as_dhcp(Bytes f) {
  auto o = as_ipv4(f);
  if (!o || o->ip.protocol != wire::kProtoUdp) return std::nullopt;
  Bytes payload;
  auto u = wire::UdpRepr::parse(o->l4, &payload);
  if (!u) return std::nullopt;
  auto d = wire::Dhcpv4Repr::parse(payload);
  if (!d) return std::nullopt;
  return DhcpFrame{*o, *u, *d};
}

/// True if the parameter list / byte span contains `b`.
inline bool contains_byte(Bytes s, uint8_t b) {
  for (std::byte x : s)
    if (static_cast<uint8_t>(x) == b) return true;
  return false;
}
inline bool bytes_equal(Bytes a, Bytes b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

}  // namespace moat::test
