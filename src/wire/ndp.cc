#include "wire/ndp.h"

#include "wire/emit_sink.h"

namespace moat::wire {
namespace {

using detail::EmitSink;

// Common ICMPv6 header (RFC 4443 §2.1).
constexpr size_t kTypeOff = 0, kCodeOff = 1, kChecksumOff = 2;
// RA body (RFC 4861 §4.2).
constexpr size_t kRaHopLimitOff = 4, kRaFlagsOff = 5, kRaLifetimeOff = 6, kRaReachableOff = 8, kRaRetransOff = 12;
constexpr uint8_t kRaManaged = 0x80, kRaOther = 0x40;
// NS/NA body (§4.3, §4.4): 4 bytes of flags/reserved, then the target address.
constexpr size_t kNaFlagsOff = 4, kTargetOff = 8;
constexpr uint8_t kNaRouter = 0x80, kNaSolicited = 0x40, kNaOverride = 0x20;
// Fixed part of each message before the options.
constexpr size_t kRsLen = 8, kRaLen = 16, kNsNaLen = 24;

// Option bodies, offsets after the 2-byte type/length header (§4.6).
constexpr size_t kOptUnit = 8;
constexpr uint8_t kPrefixOnLink = 0x80, kPrefixAutonomous = 0x40;
constexpr size_t kPiLenOff = 0, kPiFlagsOff = 1, kPiValidOff = 2, kPiPreferredOff = 6, kPiPrefixOff = 14;
constexpr size_t kMtuOff = 2;                        // §4.6.4: 2 reserved bytes first
constexpr size_t kRdnssLifetimeOff = 2, kRdnssAddrOff = 6;  // RFC 8106 §5.1
constexpr size_t kMaxOptionUnits = 255;

size_t fixed_len(uint8_t type) noexcept {
  switch (type) {
    case kNdpRouterSolicit: return kRsLen;
    case kNdpRouterAdvert: return kRaLen;
    case kNdpNeighborSolicit:
    case kNdpNeighborAdvert: return kNsNaLen;
    default: return 0;
  }
}

/// Which options each message defines (RFC 4861 §4.1-§4.4, RFC 8106 §5); the others
/// "MUST be ignored" (§6.1.1, §6.1.2, §7.1.1, §7.1.2).
bool option_defined(uint8_t type, uint8_t opt) noexcept {
  switch (type) {
    case kNdpRouterSolicit:
    case kNdpNeighborSolicit: return opt == kNdpOptSourceLinkAddr;
    case kNdpNeighborAdvert: return opt == kNdpOptTargetLinkAddr;
    case kNdpRouterAdvert:
      return opt == kNdpOptSourceLinkAddr || opt == kNdpOptMtu || opt == kNdpOptPrefixInfo || opt == kNdpOptRdnss ||
             opt == kNdpOptDnssl;
    default: return false;
  }
}

MacAddr load_mac(const std::byte* p) noexcept {
  MacAddr m;
  for (size_t i = 0; i < m.bytes.size(); ++i) m.bytes[i] = load_u8(p + i);
  return m;
}
Ipv6Addr load_ipv6(const std::byte* p) noexcept {
  Ipv6Addr a;
  for (size_t i = 0; i < a.bytes.size(); ++i) a.bytes[i] = load_u8(p + i);
  return a;
}
Bytes bytes_of(const MacAddr& m) noexcept { return std::as_bytes(std::span(m.bytes)); }
Bytes bytes_of(const Ipv6Addr& a) noexcept { return std::as_bytes(std::span(a.bytes)); }

bool is_solicited_node(const Ipv6Addr& a) noexcept { return a.solicited_node() == a; }

/// Records one option whose length has been checked to fit; `body` excludes type/length.
void take_option(NdpRepr& r, uint8_t opt, Bytes body) noexcept {
  const size_t units = (body.size() + 2) / kOptUnit;
  const std::byte* p = body.data();
  switch (opt) {
    case kNdpOptSourceLinkAddr:
    case kNdpOptTargetLinkAddr: {
      // §4.6.1: length 1 on Ethernet; other lengths belong to other link layers.
      auto& slot = opt == kNdpOptSourceLinkAddr ? r.source_ll : r.target_ll;
      if (units == 1 && !slot) slot = load_mac(p);
      break;
    }
    case kNdpOptPrefixInfo:
      if (units == 4 && !r.prefix) {  // §4.6.2: length 4
        NdpPrefixInfo pi;
        pi.prefix_len = load_u8(p + kPiLenOff);
        const uint8_t flags = load_u8(p + kPiFlagsOff);
        pi.on_link = (flags & kPrefixOnLink) != 0;
        pi.autonomous = (flags & kPrefixAutonomous) != 0;
        pi.valid_lifetime = load_be32(p + kPiValidOff);
        pi.preferred_lifetime = load_be32(p + kPiPreferredOff);
        pi.prefix = load_ipv6(p + kPiPrefixOff);
        r.prefix = pi;
      }
      break;
    case kNdpOptMtu:
      if (units == 1 && !r.mtu) r.mtu = load_be32(p + kMtuOff);  // §4.6.4: length 1
      break;
    case kNdpOptRdnss:
      // RFC 8106 §5.1: length 1 + 2 * (number of addresses), at least 3.
      if (units >= 3 && units % 2 == 1 && !r.rdnss) {
        r.rdnss_lifetime = load_be32(p + kRdnssLifetimeOff);
        r.rdnss = load_ipv6(p + kRdnssAddrOff);
      }
      break;
    default:
      // DNSSL (RFC 8106 §5.2, length >= 2) carries names moat does not keep; unknown
      // options are skipped (RFC 4861 §4.6).
      break;
  }
}

/// The whole message body but the checksum, through a writing or counting sink.
void put_message(EmitSink& s, const NdpRepr& r) noexcept {
  s.u8(r.type);
  s.u8(0);   // code
  s.u16(0);  // checksum, filled in by emit()
  switch (r.type) {
    case kNdpRouterSolicit: s.u32(0); break;
    case kNdpRouterAdvert:
      s.u8(r.cur_hop_limit);
      s.u8(uint8_t((r.managed ? kRaManaged : 0) | (r.other ? kRaOther : 0)));
      s.u16(r.router_lifetime);
      s.u32(r.reachable_time);
      s.u32(r.retrans_timer);
      break;
    case kNdpNeighborSolicit:
      s.u32(0);
      s.bytes(bytes_of(r.target));
      break;
    case kNdpNeighborAdvert:
      s.u8(uint8_t((r.router ? kNaRouter : 0) | (r.solicited ? kNaSolicited : 0) | (r.override_ ? kNaOverride : 0)));
      s.zeros(3);
      s.bytes(bytes_of(r.target));
      break;
    default: s.fail(); return;
  }
  if (r.source_ll) {
    s.u8(kNdpOptSourceLinkAddr);
    s.u8(1);
    s.bytes(bytes_of(*r.source_ll));
  }
  if (r.target_ll) {
    s.u8(kNdpOptTargetLinkAddr);
    s.u8(1);
    s.bytes(bytes_of(*r.target_ll));
  }
  if (r.mtu) {
    s.u8(kNdpOptMtu);
    s.u8(1);
    s.u16(0);
    s.u32(*r.mtu);
  }
  if (r.prefix) {
    const NdpPrefixInfo& pi = *r.prefix;
    s.u8(kNdpOptPrefixInfo);
    s.u8(4);
    s.u8(pi.prefix_len);
    s.u8(uint8_t((pi.on_link ? kPrefixOnLink : 0) | (pi.autonomous ? kPrefixAutonomous : 0)));
    s.u32(pi.valid_lifetime);
    s.u32(pi.preferred_lifetime);
    s.u32(0);  // Reserved2
    s.bytes(bytes_of(pi.prefix));
  }
  if (r.rdnss) {
    s.u8(kNdpOptRdnss);
    s.u8(3);
    s.u16(0);
    s.u32(r.rdnss_lifetime);
    s.bytes(bytes_of(*r.rdnss));
  }
  if (!r.dnssl.empty()) {
    // RFC 8106 §5.2: the names in uncompressed DNS encoding, zero-padded to a multiple of 8.
    size_t names = 0;
    for (const std::string& name : r.dnssl) {
      const size_t n = encoded_domain_len(name);
      if (n == 0) {
        s.fail();
        return;
      }
      names += n;
    }
    const size_t units = (8 + names + kOptUnit - 1) / kOptUnit;
    if (units > kMaxOptionUnits) {
      s.fail();
      return;
    }
    s.u8(kNdpOptDnssl);
    s.u8(uint8_t(units));
    s.u16(0);
    s.u32(r.rdnss_lifetime);
    for (const std::string& name : r.dnssl) detail::put_domain_name(s, name);
    s.zeros(units * kOptUnit - 8 - names);
  }
}

}  // namespace

Result<NdpRepr, ParseError> NdpRepr::parse(Bytes msg, const Ipv6Addr& src, const Ipv6Addr& dst) noexcept {
  if (msg.empty()) return unexpected(ParseError::truncated);
  NdpRepr r;
  r.type = load_u8(msg.data() + kTypeOff);
  const size_t fixed = fixed_len(r.type);
  if (fixed == 0) return unexpected(ParseError::unsupported);
  if (msg.size() < fixed) return unexpected(ParseError::truncated);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  if (icmpv6_checksum(msg, src, dst) != 0) return unexpected(ParseError::bad_checksum);
#endif
  // §6.1.1, §6.1.2, §7.1.1, §7.1.2: "ICMP Code is 0".
  if (load_u8(msg.data() + kCodeOff) != 0) return unexpected(ParseError::unsupported);

  const std::byte* p = msg.data();
  switch (r.type) {
    case kNdpRouterAdvert: {
      r.cur_hop_limit = load_u8(p + kRaHopLimitOff);
      const uint8_t flags = load_u8(p + kRaFlagsOff);
      r.managed = (flags & kRaManaged) != 0;
      r.other = (flags & kRaOther) != 0;
      r.router_lifetime = load_be16(p + kRaLifetimeOff);
      r.reachable_time = load_be32(p + kRaReachableOff);
      r.retrans_timer = load_be32(p + kRaRetransOff);
      break;
    }
    case kNdpNeighborAdvert: {
      const uint8_t flags = load_u8(p + kNaFlagsOff);
      r.router = (flags & kNaRouter) != 0;
      r.solicited = (flags & kNaSolicited) != 0;
      r.override_ = (flags & kNaOverride) != 0;
      r.target = load_ipv6(p + kTargetOff);
      break;
    }
    case kNdpNeighborSolicit: r.target = load_ipv6(p + kTargetOff); break;
    default: break;  // RS: 4 reserved bytes
  }

  // §4.6: options are type, length in units of 8 octets (including type and length),
  // body. A zero length MUST cause the packet to be discarded.
  bool saw_source_ll = false;
  ByteReader rd(msg.subspan(fixed));
  for (size_t n = 0; !rd.empty(); ++n) {
    if (n == kMaxOptions) return unexpected(ParseError::bad_option);  // fixed bound (R-HARD-1)
    const uint8_t opt = rd.u8();
    const size_t units = rd.u8();
    if (units == 0) return unexpected(ParseError::bad_option);
    const Bytes body = rd.bytes(units * kOptUnit - 2);
    if (!rd.ok()) return unexpected(ParseError::bad_option);
    if (opt == kNdpOptSourceLinkAddr) saw_source_ll = true;
    if (option_defined(r.type, opt)) take_option(r, opt, body);
  }

  // Address rules (§6.1.1, §7.1.1, §7.1.2).
  const bool from_unspecified = src.is_unspecified();
  switch (r.type) {
    case kNdpRouterSolicit:
      if (from_unspecified && saw_source_ll) return unexpected(ParseError::bad_option);
      break;
    case kNdpNeighborSolicit:
      if (r.target.is_multicast()) return unexpected(ParseError::bad_option);
      if (from_unspecified && (saw_source_ll || !is_solicited_node(dst))) return unexpected(ParseError::bad_option);
      break;
    case kNdpNeighborAdvert:
      if (r.target.is_multicast()) return unexpected(ParseError::bad_option);
      if (dst.is_multicast() && r.solicited) return unexpected(ParseError::bad_option);
      break;
    default: break;
  }
  return r;
}

size_t NdpRepr::len() const noexcept {
  if (fixed_len(type) == 0) return 0;
  EmitSink count;
  put_message(count, *this);
  return count.size();
}

bool NdpRepr::emit(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept {
  EmitSink count;
  put_message(count, *this);
  const size_t n = count.size();
  if (!count.ok() || out.size() < n) return false;
  EmitSink w(out.first(n));
  put_message(w, *this);
  if (!w.ok()) return false;  // unreachable: the counting pass sized the buffer
  store_be16(out.data() + kChecksumOff, icmpv6_checksum(Bytes(out.first(n)), src, dst));
  return true;
}

}  // namespace moat::wire
