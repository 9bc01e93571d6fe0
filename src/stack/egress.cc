// Egress framing: every frame the gateway sends to the guest is built here, in place, in
// the Interface's one preallocated buffer (no allocation per frame, STYLE.md), and
// handed to the FrameSink as a span that is valid only during the call.
#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "stack/interface.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/tcp.h"
#include "wire/udp.h"

namespace moat::stack {

namespace {

// R-ICMP-3: an error quotes as much of the offending packet as fits in these totals.
constexpr size_t kIcmpv4ErrorMax = 576;
constexpr size_t kIcmpv6ErrorMax = 1280;
constexpr size_t kIcmpHeaderLen = 8;

bool is_icmpv4_error_type(uint8_t type) noexcept {
  // RFC 1122 §3.2.2: no error about an error (unreachable, source quench, redirect,
  // time exceeded, parameter problem).
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

MacAddr ipv4_multicast_mac(Ipv4Addr a) noexcept {
  // RFC 1112 §6.4: 01:00:5e + the low 23 bits of the group.
  auto o = a.octets();
  return MacAddr{{0x01, 0x00, 0x5e, static_cast<uint8_t>(o[1] & 0x7f), o[2], o[3]}};
}

}  // namespace

bool Interface::fits_link(size_t ip_hdr, size_t l4_len, const TcpOffload* tcp) const noexcept {
  // R-TR-1: a to-guest IP packet never exceeds the MTU (nor 65535 bytes) ...
  if (l4_len > 0xffff - ip_hdr) return false;
  if (l4_len <= cfg_.mtu - std::min<size_t>(cfg_.mtu, ip_hdr)) return true;
  // ... unless it is a TSO super-frame (R-TR-6) the guest will cut into MTU-sized segments.
  // The TCP header is at least 20 bytes; send_frame() re-checks with the real one.
  return tcp != nullptr && tcp->gso_size > 0 && tcp->partial &&
         ip_hdr + wire::TcpRepr::kHeaderLen + tcp->gso_size <= cfg_.mtu;
}

bool Interface::send_frame(const MacAddr& dst_mac, uint16_t ethertype, size_t payload_len,
                           FunctionRef<bool(MutBytes)> fill, const TcpOffload* tcp) {
  if (sending_) {
    // A fill callback or the sink tried to send while frame_buf_ is in use: a bug in
    // the caller. Count it and refuse instead of corrupting the frame being built.
    counters_.inc(Counter::internal_errors);
    MOAT_LOG_RATELIMITED(error, "stack: re-entrant send to guest refused (bug)");
    return false;
  }
  if (payload_len > kMaxFrame - wire::EthernetRepr::kHeaderLen) return false;
  sending_ = true;
  MutBytes frame(frame_buf_.data(), wire::EthernetRepr::kHeaderLen + payload_len);
  wire::EthernetRepr eth;
  eth.dst = dst_mac;
  eth.src = cfg_.gateway_mac;
  eth.ethertype = ethertype;
  const bool ok = eth.emit(frame.first(wire::EthernetRepr::kHeaderLen)) &&
                  fill(frame.subspan(wire::EthernetRepr::kHeaderLen));
  if (!ok) {
    // An emitter refused its input (e.g. an unencodable search domain): never send a
    // half-written frame.
    sending_ = false;
    counters_.inc(Counter::internal_errors);
    MOAT_LOG_RATELIMITED(error, "stack: failed to build a frame to the guest (ethertype 0x%04x)", ethertype);
    return false;
  }
  if (tcp == nullptr) {
    sink_.send_to_guest(frame);  // link.to_guest.* are counted by the transport
    sending_ = false;
    return true;
  }
  // An offloaded TCP packet: describe it for the sink (virtio-net header fields, R-TR-6).
  const bool v6 = ethertype == wire::kEtherTypeIpv6;
  const size_t l4_start =
      wire::EthernetRepr::kHeaderLen + (v6 ? wire::Ipv6Repr::kHeaderLen : wire::Ipv4Repr::kHeaderLen);
  const size_t tcp_hl = frame.size() >= l4_start + wire::TcpRepr::kHeaderLen
                            ? size_t(load_u8(frame.data() + l4_start + 12) >> 4) * 4
                            : 0;
  if (tcp_hl < wire::TcpRepr::kHeaderLen || l4_start + tcp_hl > frame.size()) {
    // The fill did not write a TCP header: a bug in the caller, not something to send.
    sending_ = false;
    counters_.inc(Counter::internal_errors);
    MOAT_LOG_RATELIMITED(error, "stack: offloaded frame without a TCP header (bug)");
    return false;
  }
  TxOffload o;
  o.partial = tcp->partial;
  o.csum_start = uint16_t(l4_start);
  o.csum_offset = uint16_t(wire::TcpRepr::kChecksumOffset);
  o.hdr_len = uint16_t(l4_start + tcp_hl);
  const size_t payload = frame.size() - o.hdr_len;
  if (tcp->gso_size > 0 && payload > tcp->gso_size) {
    o.gso = v6 ? TxOffload::Gso::tcpv6 : TxOffload::Gso::tcpv4;
    o.gso_size = tcp->gso_size;
    if (o.hdr_len - wire::EthernetRepr::kHeaderLen + size_t{o.gso_size} > cfg_.mtu) {
      // Segments the guest would cut would exceed its MTU: a bug in the caller.
      sending_ = false;
      counters_.inc(Counter::internal_errors);
      MOAT_LOG_RATELIMITED(error, "stack: TSO gso_size %u too big for MTU %u (bug)", unsigned{o.gso_size}, cfg_.mtu);
      return false;
    }
  } else if (frame.size() - wire::EthernetRepr::kHeaderLen > cfg_.mtu) {
    sending_ = false;
    return false;  // not a super-frame after all, and too big
  }
  sink_.send_to_guest_offloaded(frame, o);
  sending_ = false;
  return true;
}

bool Interface::send_ipv4_to(const MacAddr& dst_mac, Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, size_t l4_len,
                             FunctionRef<bool(MutBytes)> fill, const Ipv4SendOptions& options,
                             const TcpOffload* tcp) {
  constexpr size_t kHdr = wire::Ipv4Repr::kHeaderLen;
  // R-TR-1: to-guest frames never exceed MTU + 14 (TSO super-frames aside, R-TR-6).
  if (!fits_link(kHdr, l4_len, tcp)) return false;
  wire::Ipv4Repr ip;
  ip.src = src;
  ip.dst = dst;
  ip.protocol = protocol;
  ip.ttl = options.ttl;
  ip.tos = options.tos;
  ip.dont_fragment = options.dont_fragment;
  ip.more_fragments = options.more_fragments;
  ip.frag_offset = options.frag_offset;
  ip.ident = options.ident ? *options.ident : ipv4_ident_++;
  ip.payload_len = static_cast<uint16_t>(l4_len);
  return send_frame(dst_mac, wire::kEtherTypeIpv4, kHdr + l4_len, [&](MutBytes packet) {
    return ip.emit(packet.first(kHdr)) && fill(packet.subspan(kHdr));
  }, tcp);
}

bool Interface::send_ipv6_to(const MacAddr& dst_mac, const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header,
                             size_t l4_len, FunctionRef<bool(MutBytes)> fill, uint8_t hop_limit,
                             const TcpOffload* tcp) {
  constexpr size_t kHdr = wire::Ipv6Repr::kHeaderLen;
  if (!fits_link(kHdr, l4_len, tcp)) return false;
  wire::Ipv6Repr ip;
  ip.src = src;
  ip.dst = dst;
  ip.next_header = next_header;
  ip.hop_limit = hop_limit;
  ip.payload_len = static_cast<uint32_t>(l4_len);
  return send_frame(dst_mac, wire::kEtherTypeIpv6, kHdr + l4_len, [&](MutBytes packet) {
    return ip.emit(packet.first(kHdr)) && fill(packet.subspan(kHdr));
  }, tcp);
}

bool Interface::send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t protocol, size_t l4_len,
                          FunctionRef<void(MutBytes l4)> fill, const Ipv4SendOptions& options) {
  MacAddr dst_mac = guest_mac_;
  if (is_broadcast4(dst)) dst_mac = MacAddr::broadcast();
  else if (dst.is_multicast()) dst_mac = ipv4_multicast_mac(dst);
  return send_ipv4_to(dst_mac, src, dst, protocol, l4_len, [&](MutBytes l4) {
    fill(l4);
    return true;
  }, options);
}

bool Interface::send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, size_t l4_len,
                          FunctionRef<void(MutBytes l4)> fill, uint8_t hop_limit) {
  const MacAddr dst_mac = dst.is_multicast() ? MacAddr::for_ipv6_multicast(dst) : guest_mac_;
  return send_ipv6_to(dst_mac, src, dst, next_header, l4_len, [&](MutBytes l4) {
    fill(l4);
    return true;
  }, hop_limit);
}

namespace {
constexpr size_t kMaxUdpDatagram = 65535;
// splitmix64: cheap, good enough for fragment identifications.
uint64_t next_random(uint64_t& s) noexcept {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

bool Interface::send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, Bytes payload) {
  constexpr size_t kHdr = wire::Ipv4Repr::kHeaderLen;
  const size_t total = wire::UdpRepr::kHeaderLen + payload.size();
  if (total > kMaxUdpDatagram - kHdr) return false;
  const wire::UdpRepr udp{src_port, dst_port};
  if (kHdr + total <= cfg_.mtu) {
    return send_ipv4(src, dst, wire::kProtoUdp, total, [&](MutBytes l4) {
      std::memcpy(l4.data() + wire::UdpRepr::kHeaderLen, payload.data(), payload.size());
      udp.emit_v4(l4, src, dst);
    });
  }
  // R-UDP-4: fragment to the MTU. The checksum covers the whole datagram, so build it once.
  if (udp_scratch_.empty()) udp_scratch_.resize(kMaxUdpDatagram);
  MutBytes whole(udp_scratch_.data(), total);
  std::memcpy(whole.data() + wire::UdpRepr::kHeaderLen, payload.data(), payload.size());
  udp.emit_v4(whole, src, dst);
  const size_t chunk_max = (cfg_.mtu - kHdr) & ~size_t(7);
  Ipv4SendOptions opt;
  opt.dont_fragment = false;
  opt.ident = ipv4_ident_++;  // one id for every fragment of this datagram
  for (size_t off = 0; off < total; off += chunk_max) {
    const size_t chunk = std::min(chunk_max, total - off);
    opt.more_fragments = off + chunk < total;
    opt.frag_offset = uint16_t(off);
    const bool ok = send_ipv4(
        src, dst, wire::kProtoUdp, chunk, [&](MutBytes l4) { std::memcpy(l4.data(), whole.data() + off, chunk); },
        opt);
    if (!ok) return false;
  }
  return true;
}

bool Interface::send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t src_port, uint16_t dst_port,
                            Bytes payload) {
  constexpr size_t kHdr = wire::Ipv6Repr::kHeaderLen;
  const size_t total = wire::UdpRepr::kHeaderLen + payload.size();
  if (total > kMaxUdpDatagram) return false;
  const wire::UdpRepr udp{src_port, dst_port};
  if (kHdr + total <= cfg_.mtu) {
    return send_ipv6(src, dst, wire::kProtoUdp, total, [&](MutBytes l4) {
      std::memcpy(l4.data() + wire::UdpRepr::kHeaderLen, payload.data(), payload.size());
      udp.emit_v6(l4, src, dst);
    });
  }
  if (udp_scratch_.empty()) udp_scratch_.resize(kMaxUdpDatagram);
  MutBytes whole(udp_scratch_.data(), total);
  std::memcpy(whole.data() + wire::UdpRepr::kHeaderLen, payload.data(), payload.size());
  udp.emit_v6(whole, src, dst);
  constexpr size_t kFh = wire::Ipv6FragmentHeader::kLen;
  const size_t chunk_max = (cfg_.mtu - kHdr - kFh) & ~size_t(7);
  const uint32_t ident = uint32_t(next_random(frag_rng_));
  for (size_t off = 0; off < total; off += chunk_max) {
    const size_t chunk = std::min(chunk_max, total - off);
    const wire::Ipv6FragmentHeader fh{wire::kProtoUdp, uint16_t(off), off + chunk < total, ident};
    const bool ok = send_ipv6(src, dst, wire::kNextFragment, kFh + chunk, [&](MutBytes l4) {
      fh.emit(l4.first(kFh));
      std::memcpy(l4.data() + kFh, whole.data() + off, chunk);
    });
    if (!ok) return false;
  }
  return true;
}

bool Interface::send_tcp_v4(Ipv4Addr src, Ipv4Addr dst, size_t l4_len, FunctionRef<void(MutBytes l4)> fill,
                            const TcpOffload& o) {
  return send_ipv4_to(guest_mac_, src, dst, wire::kProtoTcp, l4_len, [&](MutBytes l4) {
    fill(l4);
    return true;
  }, Ipv4SendOptions{}, &o);
}

bool Interface::send_tcp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, size_t l4_len,
                            FunctionRef<void(MutBytes l4)> fill, const TcpOffload& o) {
  return send_ipv6_to(guest_mac_, src, dst, wire::kProtoTcp, l4_len, [&](MutBytes l4) {
    fill(l4);
    return true;
  }, 64, &o);
}

bool Interface::send_icmp_error_v4(const wire::Ipv4Repr& offending, Bytes offending_l4, Ipv4Addr src, uint8_t type,
                                   uint8_t code, Instant now, uint16_t next_hop_mtu) {
  // R-ICMP-3 (RFC 1122 §3.2.2): never about ICMP errors, broadcast or multicast,
  // non-first fragments, or packets from unspecified (or group) sources.
  if (offending.src.is_unspecified() || offending.src.is_multicast() || is_broadcast4(offending.src)) return false;
  if (offending.dst.is_multicast() || is_broadcast4(offending.dst)) return false;
  if (offending.frag_offset != 0) return false;
  if (offending.protocol == wire::kProtoIcmp &&
      (offending_l4.empty() || is_icmpv4_error_type(load_u8(offending_l4.data()))))
    return false;
  if (!icmp_error_limit_.take(now)) return false;

  // The quote is the offending header re-emitted without options (what the guest's
  // stack matches on: addresses, protocol, then ports) plus the start of its payload.
  constexpr size_t kHdr = wire::Ipv4Repr::kHeaderLen;
  const size_t limit = std::min<size_t>(kIcmpv4ErrorMax, cfg_.mtu) - kHdr - kIcmpHeaderLen;
  const size_t quote_len = std::min(limit, kHdr + offending_l4.size());
  wire::Ipv4Repr quoted = offending;
  quoted.header_len_bytes = kHdr;
  MutBytes quote(quote_buf_.data(), quote_len);
  quoted.emit(quote.first(kHdr));
  std::memcpy(quote.data() + kHdr, offending_l4.data(), quote_len - kHdr);

  wire::Icmpv4Repr err;
  err.type = type;
  err.code = code;
  err.next_hop_mtu = next_hop_mtu;
  err.data = quote;
  bool sent = send_ipv4_to(guest_mac_, src, offending.src, wire::kProtoIcmp, err.len(),
                           [&](MutBytes out) { return err.emit(out); }, Ipv4SendOptions{});
  if (sent) counters_.inc(Counter::icmp_errors_sent);
  return sent;
}

bool Interface::send_icmp_error_v6(const wire::Ipv6Repr& offending, Bytes offending_l4, const Ipv6Addr& src,
                                   uint8_t type, uint8_t code, Instant now, uint32_t mtu_or_pointer) {
  // R-ICMP-3 (RFC 4443 §2.4 e): same exclusions as IPv4.
  if (offending.src.is_unspecified() || offending.src.is_multicast()) return false;
  if (offending.dst.is_multicast()) return false;
  if (offending.fragment && offending.fragment->offset != 0) return false;
  if (offending.next_header == wire::kProtoIcmpv6 && (offending_l4.empty() || load_u8(offending_l4.data()) < 128))
    return false;
  if (!icmp_error_limit_.take(now)) return false;

  // Extension headers are not re-emitted: the quoted header names the upper layer
  // directly, which is all the guest needs to find its socket.
  constexpr size_t kHdr = wire::Ipv6Repr::kHeaderLen;
  const size_t limit = std::min<size_t>(kIcmpv6ErrorMax, cfg_.mtu) - kHdr - kIcmpHeaderLen;
  const size_t quote_len = std::min(limit, kHdr + offending_l4.size());
  wire::Ipv6Repr quoted = offending;
  quoted.fragment.reset();
  quoted.ext_headers_len = 0;
  MutBytes quote(quote_buf_.data(), quote_len);
  quoted.emit(quote.first(kHdr));
  std::memcpy(quote.data() + kHdr, offending_l4.data(), quote_len - kHdr);

  wire::Icmpv6Repr err;
  err.type = type;
  err.code = code;
  err.mtu_or_pointer = mtu_or_pointer;
  err.data = quote;
  const Ipv6Addr& dst = offending.src;
  bool sent = send_ipv6_to(guest_mac_, src, dst, wire::kProtoIcmpv6, err.len(),
                           [&](MutBytes out) { return err.emit(out, src, dst); }, 64);
  if (sent) counters_.inc(Counter::icmp_errors_sent);
  return sent;
}

}  // namespace moat::stack
