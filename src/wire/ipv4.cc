#include "wire/ipv4.h"

#include "wire/checksum.h"

namespace moat::wire {
namespace {

// RFC 791 §3.1 header layout.
constexpr size_t kVerIhlOff = 0, kTosOff = 1, kTotalLenOff = 2, kIdentOff = 4, kFlagsFragOff = 6, kTtlOff = 8,
                 kProtoOff = 9, kChecksumOff = 10, kSrcOff = 12, kDstOff = 16;
constexpr uint16_t kFlagDf = 0x4000, kFlagMf = 0x2000, kFragMask = 0x1fff;

// Option types (RFC 791 §3.1 "Options"; the copied bit is part of the type octet).
constexpr uint8_t kOptEol = 0, kOptNop = 1, kOptLsrr = 131, kOptSsrr = 137;

/// Walks the options of a header whose length has been checked. Each step consumes at least
/// one byte of at most 40, so the loop is bounded by the header itself.
/// Returns whether a source-route option (LSRR/SSRR) is present.
Result<bool, ParseError> walk_options(Bytes opts) noexcept {
  bool source_route = false;
  size_t pos = 0;
  while (pos < opts.size()) {
    const uint8_t type = load_u8(opts.data() + pos);
    if (type == kOptEol) break;  // the rest is padding
    if (type == kOptNop) {
      ++pos;
      continue;
    }
    // Every other option is type-length-value; length counts the type and length octets.
    if (2 > opts.size() - pos) return unexpected(ParseError::bad_option);
    const size_t len = load_u8(opts.data() + pos + 1);
    if (len < 2 || len > opts.size() - pos) return unexpected(ParseError::bad_option);
    if (type == kOptLsrr || type == kOptSsrr) source_route = true;
    pos += len;
  }
  return source_route;
}

}  // namespace

Result<Ipv4Repr, ParseError> Ipv4Repr::parse(Bytes packet, Bytes* payload) noexcept {
  if (packet.size() < kHeaderLen) return unexpected(ParseError::truncated);
  const std::byte* p = packet.data();
  const uint8_t ver_ihl = load_u8(p + kVerIhlOff);
  if ((ver_ihl >> 4) != 4) return unexpected(ParseError::bad_version);
  const size_t header_len = size_t(ver_ihl & 0x0f) * 4;
  const size_t total_len = load_be16(p + kTotalLenOff);
  if (header_len < kHeaderLen || header_len > total_len) return unexpected(ParseError::bad_length);
  if (total_len > packet.size()) return unexpected(ParseError::truncated);

  const Bytes header = packet.first(header_len);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  // RFC 1071: a header with a correct checksum sums to zero, checksum field included.
  if (internet_checksum(header) != 0) return unexpected(ParseError::bad_checksum);
#endif
  const auto options = walk_options(header.subspan(kHeaderLen));
  if (!options.has_value()) return unexpected(options.error());

  Ipv4Repr r;
  r.tos = load_u8(p + kTosOff);
  r.ident = load_be16(p + kIdentOff);
  const uint16_t flags_frag = load_be16(p + kFlagsFragOff);
  r.dont_fragment = (flags_frag & kFlagDf) != 0;
  r.more_fragments = (flags_frag & kFlagMf) != 0;
  r.frag_offset = uint16_t((flags_frag & kFragMask) * 8);
  r.ttl = load_u8(p + kTtlOff);
  r.protocol = load_u8(p + kProtoOff);
  r.src = Ipv4Addr{load_be32(p + kSrcOff)};
  r.dst = Ipv4Addr{load_be32(p + kDstOff)};
  r.payload_len = uint16_t(total_len - header_len);
  r.header_len_bytes = uint8_t(header_len);
  r.source_route = options.value();
  if (payload) *payload = packet.subspan(header_len, total_len - header_len);
  return r;
}

bool Ipv4Repr::emit(MutBytes out) const noexcept {
  if (out.size() < kHeaderLen || payload_len > 0xffff - kHeaderLen || frag_offset % 8 != 0) return false;
  std::byte* p = out.data();
  store_u8(p + kVerIhlOff, 0x45);
  store_u8(p + kTosOff, tos);
  store_be16(p + kTotalLenOff, uint16_t(kHeaderLen + payload_len));
  store_be16(p + kIdentOff, ident);
  store_be16(p + kFlagsFragOff,
             uint16_t((dont_fragment ? kFlagDf : 0) | (more_fragments ? kFlagMf : 0) | (frag_offset / 8)));
  store_u8(p + kTtlOff, ttl);
  store_u8(p + kProtoOff, protocol);
  store_be16(p + kChecksumOff, 0);
  store_be32(p + kSrcOff, src.value);
  store_be32(p + kDstOff, dst.value);
  store_be16(p + kChecksumOff, internet_checksum(Bytes(out.first(kHeaderLen))));
  return true;
}

}  // namespace moat::wire
