#pragma once
// Test helper: builds DNS messages byte by byte (independently of src/dns builders).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"

namespace moat::dns::test {

struct Msg {
  std::vector<std::byte> b;
  Msg& u8(uint8_t v) {
    b.push_back(std::byte(v));
    return *this;
  }
  Msg& u16(uint16_t v) { return u8(uint8_t(v >> 8)).u8(uint8_t(v)); }
  Msg& u32(uint32_t v) { return u16(uint16_t(v >> 16)).u16(uint16_t(v)); }
  Msg& name(std::string_view n) {
    while (!n.empty()) {
      size_t dot = n.find('.');
      std::string_view l = n.substr(0, dot);
      u8(uint8_t(l.size()));
      for (char c : l) u8(uint8_t(c));
      n = dot == std::string_view::npos ? std::string_view() : n.substr(dot + 1);
    }
    return u8(0);
  }
  Msg& ptr(uint16_t off) { return u16(uint16_t(0xc000 | off)); }
  Msg& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  Msg& question(std::string_view n, uint16_t type, uint16_t cls = 1) { return name(n).u16(type).u16(cls); }
  Msg& opt(uint16_t size) { return u8(0).u16(41).u16(size).u32(0).u16(0); }
  Msg& a(uint32_t ttl, uint8_t x1, uint8_t x2, uint8_t x3, uint8_t x4) {
    return u16(1).u16(1).u32(ttl).u16(4).u8(x1).u8(x2).u8(x3).u8(x4);
  }
  Bytes bytes() const { return Bytes(b.data(), b.size()); }
};

/// A query for `n` of `type`, with an OPT of `edns` bytes when non-zero.
inline Msg query(uint16_t id, std::string_view n, uint16_t type, uint16_t edns = 0) {
  Msg m;
  m.header(id, 0x0100, 1, 0, 0, edns ? 1 : 0).question(n, type);
  if (edns) m.opt(edns);
  return m;
}

}  // namespace moat::dns::test
