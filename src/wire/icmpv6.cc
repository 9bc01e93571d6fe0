#include "wire/icmpv6.h"

#include <cstring>

#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace moat::wire {
namespace {

// RFC 4443 §2.1 message layout.
constexpr size_t kTypeOff = 0, kCodeOff = 1, kChecksumOff = 2, kIdentOff = 4, kSeqOff = 6, kRestOff = 4;

bool is_echo(uint8_t type) noexcept { return type == kIcmpv6EchoRequest || type == kIcmpv6EchoReply; }

}  // namespace

uint16_t icmpv6_checksum(Bytes msg, const Ipv6Addr& src, const Ipv6Addr& dst) noexcept {
  // RFC 8200 §8.1: the pseudo-header carries the upper-layer length and next header 58.
  Checksum c = pseudo_header_v6(src, dst, kProtoIcmpv6, uint32_t(msg.size()));
  c.add(msg);
  return c.finish();
}

Result<Icmpv6Repr, ParseError> Icmpv6Repr::parse(Bytes msg, const Ipv6Addr& src, const Ipv6Addr& dst) noexcept {
  if (msg.size() < kHeaderLen) return unexpected(ParseError::truncated);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  if (icmpv6_checksum(msg, src, dst) != 0) return unexpected(ParseError::bad_checksum);
#else
  (void)src;
  (void)dst;
#endif
  const std::byte* p = msg.data();
  Icmpv6Repr r;
  r.type = load_u8(p + kTypeOff);
  r.code = load_u8(p + kCodeOff);
  if (is_echo(r.type)) {
    // RFC 4443 §4.1/§4.2: identifier and sequence number.
    r.ident = load_be16(p + kIdentOff);
    r.seq = load_be16(p + kSeqOff);
  } else {
    r.mtu_or_pointer = load_be32(p + kRestOff);
  }
  r.data = msg.subspan(kHeaderLen);
  return r;
}

bool Icmpv6Repr::emit(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept {
  const size_t n = len();
  if (out.size() < n) return false;
  std::byte* p = out.data();
  // The data may already sit at out[8..] (an error quoting the offending packet), so move
  // rather than copy; do it before writing the header in case it overlaps from below.
  if (!data.empty() && data.data() != p + kHeaderLen) std::memmove(p + kHeaderLen, data.data(), data.size());
  store_u8(p + kTypeOff, type);
  store_u8(p + kCodeOff, code);
  store_be16(p + kChecksumOff, 0);
  if (is_echo(type)) {
    store_be16(p + kIdentOff, ident);
    store_be16(p + kSeqOff, seq);
  } else {
    store_be32(p + kRestOff, mtu_or_pointer);
  }
  store_be16(p + kChecksumOff, icmpv6_checksum(Bytes(out.first(n)), src, dst));
  return true;
}

}  // namespace moat::wire
