#include "wire/ipv6.h"

#include <cstring>

namespace moat::wire {
namespace {

// RFC 8200 §3 fixed header layout.
constexpr size_t kVerTcFlowOff = 0, kPayloadLenOff = 4, kNextHeaderOff = 6, kHopLimitOff = 7, kSrcOff = 8,
                 kDstOff = 24;
// RFC 8200 §4.4 routing header: segments left is the fourth octet.
constexpr size_t kRoutingSegmentsLeftOff = 3;
// RFC 8200 §4.5 fragment header: offset (13 bits) | res (2) | M (1), then identification.
constexpr size_t kFragOffsetOff = 2, kFragIdentOff = 4;

}  // namespace

Result<Ipv6Repr, ParseError> Ipv6Repr::parse(Bytes packet, Bytes* payload) noexcept {
  if (packet.size() < kHeaderLen) return unexpected(ParseError::truncated);
  const std::byte* p = packet.data();
  const uint32_t ver_tc_flow = load_be32(p + kVerTcFlowOff);
  if ((ver_tc_flow >> 28) != 6) return unexpected(ParseError::bad_version);
  const size_t payload_len = load_be16(p + kPayloadLenOff);
  if (payload_len > packet.size() - kHeaderLen) return unexpected(ParseError::truncated);

  Ipv6Repr r;
  r.traffic_class = uint8_t(ver_tc_flow >> 20);
  r.flow_label = ver_tc_flow & 0xfffff;
  r.hop_limit = load_u8(p + kHopLimitOff);
  std::memcpy(r.src.bytes.data(), p + kSrcOff, 16);
  std::memcpy(r.dst.bytes.data(), p + kDstOff, 16);

  // The extension-header walk (RFC 8200 §4.1 order is recommended, not enforced, except
  // for hop-by-hop). `rest` is always the not-yet-walked tail of the payload.
  Bytes rest = packet.subspan(kHeaderLen, payload_len);
  uint8_t next = load_u8(p + kNextHeaderOff);
  for (int walked = 0;; ++walked) {
    const bool is_ext = (next == kNextHopByHop && walked == 0) || next == kNextDestOpts ||
                        next == kNextRouting || next == kNextFragment;
    if (!is_ext) break;
    if (walked == kMaxExtHeaders) return unexpected(ParseError::too_many_ext_headers);
    // Every extension header is at least 8 bytes: next header, length, 6 more.
    if (rest.size() < 8) return unexpected(ParseError::truncated);
    const uint8_t following = load_u8(rest.data());
    if (next == kNextFragment) {
      if (r.fragment) return unexpected(ParseError::unsupported);
      const uint16_t off_m = load_be16(rest.data() + kFragOffsetOff);
      r.fragment = Ipv6FragmentInfo{uint16_t(off_m & 0xfff8), (off_m & 1) != 0,
                                    load_be32(rest.data() + kFragIdentOff), following};
      rest = rest.subspan(8);
      next = following;
      if (r.fragment->offset != 0) break;  // no upper-layer header in a non-first fragment
      continue;
    }
    // Hop-by-hop, destination options, routing: length in 8-octet units, not counting the
    // first 8 (RFC 8200 §4.3, §4.4, §4.6).
    const size_t len = (size_t(load_u8(rest.data() + 1)) + 1) * 8;
    if (len > rest.size()) return unexpected(ParseError::truncated);
    // RFC 8200 §4.4: moat is never the next hop of a source route, so honouring one would
    // forward the packet on the guest's behalf; refuse it.
    if (next == kNextRouting && load_u8(rest.data() + kRoutingSegmentsLeftOff) != 0)
      return unexpected(ParseError::routing_header);
    rest = rest.subspan(len);
    next = following;
  }

  r.next_header = next;
  r.payload_len = uint32_t(rest.size());
  r.ext_headers_len = uint16_t(payload_len - rest.size());
  if (payload) *payload = rest;
  return r;
}

bool Ipv6Repr::emit(MutBytes out) const noexcept {
  if (out.size() < kHeaderLen || payload_len > 0xffff || flow_label > 0xfffff) return false;
  std::byte* p = out.data();
  store_be32(p + kVerTcFlowOff, (uint32_t{6} << 28) | (uint32_t{traffic_class} << 20) | flow_label);
  store_be16(p + kPayloadLenOff, uint16_t(payload_len));
  store_u8(p + kNextHeaderOff, next_header);
  store_u8(p + kHopLimitOff, hop_limit);
  std::memcpy(p + kSrcOff, src.bytes.data(), 16);
  std::memcpy(p + kDstOff, dst.bytes.data(), 16);
  return true;
}

bool Ipv6FragmentHeader::emit(MutBytes out) const noexcept {
  if (out.size() < kLen || offset % 8 != 0) return false;
  std::byte* p = out.data();
  store_u8(p, next_header);
  store_u8(p + 1, 0);  // reserved
  store_be16(p + kFragOffsetOff, uint16_t(offset | (more ? 1 : 0)));
  store_be32(p + kFragIdentOff, ident);
  return true;
}

}  // namespace moat::wire
