#pragma once
// Byte spans, big-endian loads/stores and the sticky-failure cursor used by every
// variable-length parser (DNS, TCP options, DHCP options, TLS). Bounds checks are
// written `n <= size - pos` so they cannot overflow.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace moat {

using Bytes = std::span<const std::byte>;
using MutBytes = std::span<std::byte>;

inline Bytes as_bytes(std::string_view s) noexcept {
  return Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

namespace detail {
template <class T>
constexpr T to_be(T v) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    if constexpr (sizeof(T) == 2) return static_cast<T>(__builtin_bswap16(v));
    if constexpr (sizeof(T) == 4) return static_cast<T>(__builtin_bswap32(v));
    if constexpr (sizeof(T) == 8) return static_cast<T>(__builtin_bswap64(v));
  }
  return v;
}
}  // namespace detail

inline uint8_t load_u8(const std::byte* p) noexcept { return static_cast<uint8_t>(*p); }
inline uint16_t load_be16(const std::byte* p) noexcept {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return detail::to_be(v);
}
inline uint32_t load_be32(const std::byte* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return detail::to_be(v);
}
inline uint64_t load_be64(const std::byte* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return detail::to_be(v);
}
inline void store_u8(std::byte* p, uint8_t v) noexcept { *p = static_cast<std::byte>(v); }
inline void store_be16(std::byte* p, uint16_t v) noexcept {
  v = detail::to_be(v);
  std::memcpy(p, &v, 2);
}
inline void store_be32(std::byte* p, uint32_t v) noexcept {
  v = detail::to_be(v);
  std::memcpy(p, &v, 4);
}
inline void store_be64(std::byte* p, uint64_t v) noexcept {
  v = detail::to_be(v);
  std::memcpy(p, &v, 8);
}

/// A fixed-size byte buffer allocated once and NOT zero-filled: large buffers come from
/// fresh mmap'd pages, which stay out of the resident set until first written (a queue of
/// 8 MiB costs nothing until the guest stops reading). Contents start indeterminate.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  explicit ByteBuffer(size_t n) : data_(std::make_unique_for_overwrite<std::byte[]>(n)), size_(n) {}
  [[nodiscard]] std::byte* data() noexcept { return data_.get(); }
  [[nodiscard]] const std::byte* data() const noexcept { return data_.get(); }
  [[nodiscard]] size_t size() const noexcept { return size_; }

 private:
  std::unique_ptr<std::byte[]> data_;
  size_t size_ = 0;
};

/// Forward-only reader whose failure is sticky: after the first out-of-bounds read every
/// later read returns zero/empty and ok() stays false, so a parser checks once at the end.
class ByteReader {
 public:
  explicit ByteReader(Bytes data) noexcept : data_(data) {}

  [[nodiscard]] bool ok() const noexcept { return ok_; }
  [[nodiscard]] size_t pos() const noexcept { return pos_; }
  [[nodiscard]] size_t remaining() const noexcept { return ok_ ? data_.size() - pos_ : 0; }
  [[nodiscard]] bool empty() const noexcept { return remaining() == 0; }
  [[nodiscard]] Bytes whole() const noexcept { return data_; }
  void fail() noexcept { ok_ = false; }

  uint8_t u8() noexcept { return have(1) ? load_u8(advance(1)) : 0; }
  uint16_t u16() noexcept { return have(2) ? load_be16(advance(2)) : 0; }
  uint32_t u32() noexcept { return have(4) ? load_be32(advance(4)) : 0; }
  uint64_t u64() noexcept { return have(8) ? load_be64(advance(8)) : 0; }
  Bytes bytes(size_t n) noexcept { return have(n) ? Bytes(advance(n), n) : Bytes(); }
  void skip(size_t n) noexcept {
    if (have(n)) pos_ += n;
  }
  /// Moves to an absolute offset (used by DNS name compression); fails if out of range.
  void seek(size_t abs) noexcept {
    if (ok_ && abs <= data_.size()) pos_ = abs;
    else ok_ = false;
  }
  [[nodiscard]] uint8_t peek_u8() const noexcept {
    return (ok_ && pos_ < data_.size()) ? load_u8(data_.data() + pos_) : 0;
  }

 private:
  bool have(size_t n) noexcept {
    if (ok_ && n <= data_.size() - pos_) return true;
    ok_ = false;
    return false;
  }
  const std::byte* advance(size_t n) noexcept {
    const std::byte* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  Bytes data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

/// Forward-only writer into a pre-sized buffer; failure (overflow) is sticky.
class ByteWriter {
 public:
  explicit ByteWriter(MutBytes out) noexcept : out_(out) {}
  [[nodiscard]] bool ok() const noexcept { return ok_; }
  [[nodiscard]] size_t written() const noexcept { return pos_; }
  [[nodiscard]] size_t remaining() const noexcept { return out_.size() - pos_; }
  [[nodiscard]] MutBytes written_span() const noexcept { return out_.first(pos_); }

  void u8(uint8_t v) noexcept {
    if (std::byte* p = take(1)) store_u8(p, v);
  }
  void u16(uint16_t v) noexcept {
    if (std::byte* p = take(2)) store_be16(p, v);
  }
  void u32(uint32_t v) noexcept {
    if (std::byte* p = take(4)) store_be32(p, v);
  }
  void bytes(Bytes b) noexcept {
    if (std::byte* p = take(b.size()); p && !b.empty()) std::memcpy(p, b.data(), b.size());
  }
  void zeros(size_t n) noexcept {
    if (std::byte* p = take(n); p && n) std::memset(p, 0, n);
  }
  /// Reserves n bytes to fill later (e.g. a length field); nullptr on overflow.
  std::byte* reserve(size_t n) noexcept { return take(n); }

 private:
  std::byte* take(size_t n) noexcept {
    if (!ok_ || n > out_.size() - pos_) {
      ok_ = false;
      return nullptr;
    }
    std::byte* p = out_.data() + pos_;
    pos_ += n;
    return p;
  }
  MutBytes out_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace moat
