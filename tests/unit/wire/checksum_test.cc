#include "wire/checksum.h"

#include <gtest/gtest.h>

#include <array>

namespace moat::wire {
namespace {

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2; the checksum is its complement.
  const std::array<std::byte, 8> b{std::byte{0x00}, std::byte{0x01}, std::byte{0xf2}, std::byte{0x03},
                                   std::byte{0xf4}, std::byte{0xf5}, std::byte{0xf6}, std::byte{0xf7}};
  EXPECT_EQ(internet_checksum(b), uint16_t(~0xddf2));
}

TEST(Checksum, OddLengthPadsWithZero) {
  const std::array<std::byte, 3> b{std::byte{0x12}, std::byte{0x34}, std::byte{0x56}};
  EXPECT_EQ(internet_checksum(b), uint16_t(~(0x1234 + 0x5600)));
}

TEST(Checksum, KnownIpv4Header) {
  // A real header (from a kernel capture), checksum field 0xb861 zeroed for computing.
  const std::array<uint8_t, 20> h{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                  0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(internet_checksum(std::as_bytes(std::span(h))), 0xb861);
}

}  // namespace
}  // namespace moat::wire
