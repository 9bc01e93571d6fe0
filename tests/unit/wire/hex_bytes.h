#pragma once
// Test helpers for the icmpv6/ndp/dhcpv4 tests: vectors are written as hex strings, one
// field per line, so each line can be checked against the RFC figure beside it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/bytes.h"

namespace moat::wire::hex_test {

/// Decodes hex digits, ignoring anything else (spaces, separators). Odd digit counts and
/// bad characters are test-authoring bugs and abort via the returned empty vector.
inline std::vector<uint8_t> hex(std::string_view s) {
  std::vector<uint8_t> out;
  int hi = -1;
  for (char c : s) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(uint8_t(hi << 4 | v));
      hi = -1;
    }
  }
  if (hi >= 0) out.clear();
  return out;
}

inline Bytes bytes_of(const std::vector<uint8_t>& v) { return std::as_bytes(std::span(v)); }
inline MutBytes mut_bytes_of(std::vector<uint8_t>& v) { return std::as_writable_bytes(std::span(v)); }
inline std::vector<uint8_t> vec(Bytes b) {
  std::vector<uint8_t> v(b.size());
  for (size_t i = 0; i < b.size(); ++i) v[i] = static_cast<uint8_t>(b[i]);
  return v;
}

}  // namespace moat::wire::hex_test
