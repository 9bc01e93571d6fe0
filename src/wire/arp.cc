#include "wire/arp.h"

#include <cstring>

namespace moat::wire {
namespace {
// RFC 826 packet layout, specialised to hlen 6 / plen 4.
constexpr size_t kHtypeOff = 0, kPtypeOff = 2, kHlenOff = 4, kPlenOff = 5, kOpOff = 6, kSenderMacOff = 8,
                 kSenderIpOff = 14, kTargetMacOff = 18, kTargetIpOff = 24;
constexpr uint16_t kHtypeEthernet = 1, kPtypeIpv4 = 0x0800;
}  // namespace

Result<ArpRepr, ParseError> ArpRepr::parse(Bytes payload) noexcept {
  if (payload.size() < kLen) return unexpected(ParseError::truncated);
  const std::byte* p = payload.data();
  if (load_be16(p + kHtypeOff) != kHtypeEthernet || load_be16(p + kPtypeOff) != kPtypeIpv4 ||
      load_u8(p + kHlenOff) != 6 || load_u8(p + kPlenOff) != 4)
    return unexpected(ParseError::bad_version);
  const uint16_t op = load_be16(p + kOpOff);
  if (op != uint16_t(ArpOp::request) && op != uint16_t(ArpOp::reply)) return unexpected(ParseError::unsupported);
  ArpRepr r;
  r.op = ArpOp(op);
  std::memcpy(r.sender_mac.bytes.data(), p + kSenderMacOff, 6);
  r.sender_ip = Ipv4Addr{load_be32(p + kSenderIpOff)};
  std::memcpy(r.target_mac.bytes.data(), p + kTargetMacOff, 6);
  r.target_ip = Ipv4Addr{load_be32(p + kTargetIpOff)};
  return r;
}

bool ArpRepr::emit(MutBytes out) const noexcept {
  if (out.size() < kLen) return false;
  std::byte* p = out.data();
  store_be16(p + kHtypeOff, kHtypeEthernet);
  store_be16(p + kPtypeOff, kPtypeIpv4);
  store_u8(p + kHlenOff, 6);
  store_u8(p + kPlenOff, 4);
  store_be16(p + kOpOff, uint16_t(op));
  std::memcpy(p + kSenderMacOff, sender_mac.bytes.data(), 6);
  store_be32(p + kSenderIpOff, sender_ip.value);
  std::memcpy(p + kTargetMacOff, target_mac.bytes.data(), 6);
  store_be32(p + kTargetIpOff, target_ip.value);
  return true;
}

}  // namespace moat::wire
