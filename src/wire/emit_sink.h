#pragma once
// Internal helpers shared by the variable-length emitters (NDP, DHCPv4): a sink that
// either writes or only counts, so len() and emit() run one code path and cannot drift,
// and the uncompressed DNS name encoding used by DHCP option 119 and the NDP DNSSL option.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/bytes.h"

namespace moat::wire {

/// Length of `name` ("example.com", a trailing dot allowed) encoded as uncompressed DNS
/// labels with the root label (RFC 1035 §3.1), or 0 if it cannot be encoded: empty, "."
/// alone, an empty label, a label over 63 bytes or more than 255 bytes in all.
[[nodiscard]] size_t encoded_domain_len(std::string_view name) noexcept;

namespace detail {

/// Writes through a ByteWriter, or only counts when default-constructed. Failure (an
/// overflowing write or fail()) is sticky.
class EmitSink {
 public:
  EmitSink() noexcept = default;
  explicit EmitSink(MutBytes out) noexcept : w_(out), writing_(true) {}

  void u8(uint8_t v) noexcept {
    n_ += 1;
    if (writing_) w_.u8(v);
  }
  void u16(uint16_t v) noexcept {
    n_ += 2;
    if (writing_) w_.u16(v);
  }
  void u32(uint32_t v) noexcept {
    n_ += 4;
    if (writing_) w_.u32(v);
  }
  void bytes(Bytes b) noexcept {
    n_ += b.size();
    if (writing_) w_.bytes(b);
  }
  void zeros(size_t n) noexcept {
    n_ += n;
    if (writing_) w_.zeros(n);
  }
  /// Reserves n bytes to fill in later; nullptr while counting or on overflow.
  std::byte* reserve(size_t n) noexcept {
    n_ += n;
    return writing_ ? w_.reserve(n) : nullptr;
  }
  void fail() noexcept { failed_ = true; }
  [[nodiscard]] bool ok() const noexcept { return !failed_ && (!writing_ || w_.ok()); }
  [[nodiscard]] size_t size() const noexcept { return n_; }

 private:
  ByteWriter w_{MutBytes{}};
  bool writing_ = false;
  bool failed_ = false;
  size_t n_ = 0;
};

/// Writes `name` as uncompressed DNS labels (RFC 1035 §3.1) through any sink with u8() and
/// bytes(). False, nothing written, if encoded_domain_len(name) == 0.
template <class Sink>
bool put_domain_name(Sink& s, std::string_view name) noexcept {
  if (encoded_domain_len(name) == 0) return false;
  if (name.back() == '.') name.remove_suffix(1);
  // encoded_domain_len() has checked every label, so there are at most 127 of them.
  while (!name.empty()) {
    const size_t dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    s.u8(uint8_t(label.size()));
    s.bytes(as_bytes(label));
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  s.u8(0);
  return true;
}

}  // namespace detail
}  // namespace moat::wire
