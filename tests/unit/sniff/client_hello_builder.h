#pragma once
// Builds TLS ClientHello bytes for tests (RFC 8446 §4.1.2 layout).
#include <cstdint>
#include <string>
#include <vector>

namespace moat::test {

inline void put16(std::vector<uint8_t>& v, size_t x) {
  v.push_back(uint8_t(x >> 8));
  v.push_back(uint8_t(x));
}

/// The handshake message (type 1 + 24-bit length + body). Empty `sni`: no SNI extension.
inline std::vector<uint8_t> client_hello_message(const std::string& sni, size_t padding = 0) {
  // Reserved up front (the header is inserted in front at the end): growing from a few bytes
  // trips g++ 12 -O3's -Warray-bounds / -Wstringop-overflow false positives in vector.
  std::vector<uint8_t> body;
  body.reserve(4 + 128 + sni.size() + padding);
  put16(body, 0x0303);
  body.insert(body.end(), 32, 0xab);  // random
  body.push_back(32);
  body.insert(body.end(), 32, 0xcd);  // session id
  put16(body, 4);
  put16(body, 0x1301);
  put16(body, 0x1302);
  body.push_back(1);
  body.push_back(0);
  std::vector<uint8_t> exts;
  exts.reserve(32 + sni.size() + padding);
  put16(exts, 43);  // supported_versions
  put16(exts, 3);
  exts.push_back(2);
  put16(exts, 0x0304);
  if (!sni.empty()) {
    put16(exts, 0);
    put16(exts, sni.size() + 5);
    put16(exts, sni.size() + 3);
    exts.push_back(0);
    put16(exts, sni.size());
    exts.insert(exts.end(), sni.begin(), sni.end());
  }
  if (padding > 0) {
    put16(exts, 21);
    put16(exts, padding);
    exts.insert(exts.end(), padding, 0);
  }
  put16(body, exts.size());
  body.insert(body.end(), exts.begin(), exts.end());
  const size_t len = body.size();
  body.insert(body.begin(), {1, uint8_t(len >> 16), uint8_t(len >> 8), uint8_t(len)});
  return body;
}

/// `msg` cut into handshake records of at most `record_max` bytes each.
inline std::vector<uint8_t> records(const std::vector<uint8_t>& msg, size_t record_max = 16384) {
  std::vector<uint8_t> out;
  for (size_t off = 0; off < msg.size(); off += record_max) {
    const size_t n = std::min(record_max, msg.size() - off);
    out.push_back(22);
    out.push_back(3);
    out.push_back(1);
    put16(out, n);
    out.insert(out.end(), msg.begin() + long(off), msg.begin() + long(off + n));
  }
  return out;
}

}  // namespace moat::test
