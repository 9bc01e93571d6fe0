#include "wire/udp.h"

#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace moat::wire {
namespace {
constexpr size_t kSrcPortOff = 0, kDstPortOff = 2, kLengthOff = 4, kChecksumOff = 6;

/// Writes everything but the checksum; false if out cannot be a UDP datagram.
bool write_header(const UdpRepr& r, MutBytes out) noexcept {
  if (out.size() < UdpRepr::kHeaderLen || out.size() > 0xffff) return false;
  std::byte* p = out.data();
  store_be16(p + kSrcPortOff, r.src_port);
  store_be16(p + kDstPortOff, r.dst_port);
  store_be16(p + kLengthOff, uint16_t(out.size()));
  store_be16(p + kChecksumOff, 0);
  return true;
}

void finish(Checksum c, MutBytes out) noexcept {
  c.add(out);
  const uint16_t sum = c.finish();
  // RFC 768: a computed 0 is sent as all ones; 0 on the wire means "no checksum".
  store_be16(out.data() + kChecksumOff, sum == 0 ? 0xffff : sum);
}
}  // namespace

Result<UdpRepr, ParseError> UdpRepr::parse(Bytes datagram, Bytes* payload) noexcept {
  if (datagram.size() < kHeaderLen) return unexpected(ParseError::truncated);
  const std::byte* p = datagram.data();
  const size_t len = load_be16(p + kLengthOff);
  if (len < kHeaderLen) return unexpected(ParseError::bad_length);
  if (len > datagram.size()) return unexpected(ParseError::truncated);
  UdpRepr r;
  r.src_port = load_be16(p + kSrcPortOff);
  r.dst_port = load_be16(p + kDstPortOff);
  r.checksum = load_be16(p + kChecksumOff);
  if (payload) *payload = datagram.subspan(kHeaderLen, len - kHeaderLen);
  return r;
}

bool UdpRepr::emit_v4(MutBytes out, Ipv4Addr src, Ipv4Addr dst) const noexcept {
  if (!write_header(*this, out)) return false;
  finish(pseudo_header_v4(src, dst, kProtoUdp, uint16_t(out.size())), out);
  return true;
}

bool UdpRepr::emit_v6(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept {
  if (!write_header(*this, out)) return false;
  finish(pseudo_header_v6(src, dst, kProtoUdp, uint32_t(out.size())), out);
  return true;
}

}  // namespace moat::wire
