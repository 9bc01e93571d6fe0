#include "base/bytes.h"

#include <gtest/gtest.h>

#include <array>

namespace moat {
namespace {

TEST(ByteReader, ReadsBigEndianAndFailsSticky) {
  const std::array<std::byte, 7> buf{std::byte{0x12}, std::byte{0x34}, std::byte{0xde}, std::byte{0xad},
                                     std::byte{0xbe}, std::byte{0xef}, std::byte{0x01}};
  ByteReader r(buf);
  EXPECT_EQ(r.u16(), 0x1234);
  EXPECT_EQ(r.u32(), 0xdeadbeefu);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 1u);
  EXPECT_EQ(r.u16(), 0);  // only one byte left
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.u8(), 0);  // sticky even though one byte would fit
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(ByteReader, HugeSkipDoesNotWrap) {
  const std::array<std::byte, 4> buf{};
  ByteReader r(buf);
  r.u8();
  r.skip(SIZE_MAX);
  EXPECT_FALSE(r.ok());
}

TEST(ByteWriter, WritesAndDetectsOverflow) {
  std::array<std::byte, 5> buf{};
  ByteWriter w(buf);
  w.u16(0xabcd);
  w.u16(0x0102);
  EXPECT_TRUE(w.ok());
  w.u16(0xffff);
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(w.written(), 4u);
  EXPECT_EQ(load_be16(buf.data()), 0xabcd);
  EXPECT_EQ(load_be16(buf.data() + 2), 0x0102);
}

}  // namespace
}  // namespace moat
