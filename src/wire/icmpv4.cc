#include "wire/icmpv4.h"

#include <cstring>

#include "wire/checksum.h"

namespace moat::wire {
namespace {
// RFC 792 common header: type, code, checksum, then 4 type-specific bytes.
constexpr size_t kTypeOff = 0, kCodeOff = 1, kChecksumOff = 2, kIdentOff = 4, kSeqOff = 6, kMtuOff = 6;
constexpr uint8_t kCodeFragNeeded = 4;

bool is_echo(uint8_t type) noexcept { return type == kIcmpEchoRequest || type == kIcmpEchoReply; }
bool has_mtu(uint8_t type, uint8_t code) noexcept {
  return type == kIcmpDestUnreachable && code == kCodeFragNeeded;
}
}  // namespace

Result<Icmpv4Repr, ParseError> Icmpv4Repr::parse(Bytes msg) noexcept {
  if (msg.size() < kHeaderLen) return unexpected(ParseError::truncated);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  if (internet_checksum(msg) != 0) return unexpected(ParseError::bad_checksum);
#endif
  const std::byte* p = msg.data();
  Icmpv4Repr r;
  r.type = load_u8(p + kTypeOff);
  r.code = load_u8(p + kCodeOff);
  if (is_echo(r.type)) {
    r.ident = load_be16(p + kIdentOff);
    r.seq = load_be16(p + kSeqOff);
  } else if (has_mtu(r.type, r.code)) {
    r.next_hop_mtu = load_be16(p + kMtuOff);
  }
  r.data = msg.subspan(kHeaderLen);
  return r;
}

bool Icmpv4Repr::is_error() const noexcept {
  // RFC 792: 3 unreachable, 4 source quench, 5 redirect, 11 time exceeded, 12 param problem.
  return type == kIcmpDestUnreachable || type == 4 || type == 5 || type == kIcmpTimeExceeded ||
         type == kIcmpParamProblem;
}

bool Icmpv4Repr::emit(MutBytes out) const noexcept {
  if (out.size() < len()) return false;
  std::byte* p = out.data();
  // Data first: it may be a view into `out` itself (an echo reply built in place).
  if (!data.empty()) std::memmove(p + kHeaderLen, data.data(), data.size());
  store_u8(p + kTypeOff, type);
  store_u8(p + kCodeOff, code);
  store_be16(p + kChecksumOff, 0);
  if (is_echo(type)) {
    store_be16(p + kIdentOff, ident);
    store_be16(p + kSeqOff, seq);
  } else {
    store_be16(p + kIdentOff, 0);
    store_be16(p + kMtuOff, has_mtu(type, code) ? next_hop_mtu : 0);
  }
  store_be16(p + kChecksumOff, internet_checksum(Bytes(out.first(len()))));
  return true;
}

}  // namespace moat::wire
