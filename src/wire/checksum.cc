#include "wire/checksum.h"

namespace moat::wire {

void Checksum::add(Bytes data) noexcept {
  const std::byte* p = data.data();
  size_t n = data.size();
  // 4 bytes at a time into a 64-bit sum: no carry can be lost before finish().
  while (n >= 4) {
    sum_ += load_be32(p);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    sum_ += load_be16(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) sum_ += uint32_t(load_u8(p)) << 8;
}

uint16_t Checksum::finish() const noexcept {
  uint64_t s = sum_;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s & 0xffff);
}

uint16_t internet_checksum(Bytes data) noexcept {
  Checksum c;
  c.add(data);
  return c.finish();
}

Checksum pseudo_header_v4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, uint16_t len) noexcept {
  Checksum c;
  c.add32(src.value);
  c.add32(dst.value);
  c.add16(proto);
  c.add16(len);
  return c;
}

Checksum pseudo_header_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, uint32_t len) noexcept {
  Checksum c;
  c.add(Bytes(reinterpret_cast<const std::byte*>(src.bytes.data()), 16));
  c.add(Bytes(reinterpret_cast<const std::byte*>(dst.bytes.data()), 16));
  c.add32(len);
  c.add16(next_header);
  return c;
}

}  // namespace moat::wire
