#include "wire/ethernet.h"

#include <cstring>

namespace moat::wire {
namespace {
constexpr size_t kDstOff = 0, kSrcOff = 6, kTypeOff = 12;
}  // namespace

Result<EthernetRepr, ParseError> EthernetRepr::parse(Bytes frame) noexcept {
  if (frame.size() < kHeaderLen) return unexpected(ParseError::truncated);
  EthernetRepr r;
  std::memcpy(r.dst.bytes.data(), frame.data() + kDstOff, 6);
  std::memcpy(r.src.bytes.data(), frame.data() + kSrcOff, 6);
  r.ethertype = load_be16(frame.data() + kTypeOff);
  return r;
}

bool EthernetRepr::emit(MutBytes out) const noexcept {
  if (out.size() < kHeaderLen) return false;
  std::memcpy(out.data() + kDstOff, dst.bytes.data(), 6);
  std::memcpy(out.data() + kSrcOff, src.bytes.data(), 6);
  store_be16(out.data() + kTypeOff, ethertype);
  return true;
}

}  // namespace moat::wire
