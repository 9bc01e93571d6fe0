#include "wire/icmpv4.h"

#include <gtest/gtest.h>

#include "unit/wire/wire_vectors.h"
#include "wire/checksum.h"

namespace moat::wire {
namespace {
using namespace test_vectors;

std::vector<uint8_t> echo_msg() { return vec(kIcmpEcho, kL4Off4); }

TEST(Icmpv4, DecodeEchoRequest) {
  const auto m = echo_msg();
  auto r = Icmpv4Repr::parse(bytes_of(m));
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->type, kIcmpEchoRequest);
  EXPECT_EQ(r->code, 0);
  EXPECT_EQ(r->ident, 0x1234);
  EXPECT_EQ(r->seq, 1);
  EXPECT_EQ(r->next_hop_mtu, 0);
  EXPECT_FALSE(r->is_error());
  EXPECT_EQ(r->len(), 32u);
  EXPECT_EQ(vec(r->data), vec(kIcmpEcho, kL4Off4 + 8));
}

TEST(Icmpv4, EncodeEchoRequestByteExact) {
  const auto data = vec(kIcmpEcho, kL4Off4 + 8);
  Icmpv4Repr r;
  r.type = kIcmpEchoRequest;
  r.ident = 0x1234;
  r.seq = 1;
  r.data = bytes_of(data);
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, echo_msg());
}

TEST(Icmpv4, EchoReplyBuiltInPlace) {
  // The stack answers a local ping by rewriting the request's buffer: data aliases out.
  auto m = echo_msg();
  auto req = Icmpv4Repr::parse(bytes_of(m));
  ASSERT_TRUE(req.has_value());
  Icmpv4Repr reply = *req;
  reply.type = kIcmpEchoReply;
  ASSERT_TRUE(reply.emit(mut_bytes_of(m)));
  // Same bytes but type 0 and checksum + 0x0800 (RFC 1624 incremental update).
  auto want = echo_msg();
  want[0] = 0;
  want[2] = 0xa8;
  want[3] = 0x79;
  EXPECT_EQ(m, want);
  auto back = Icmpv4Repr::parse(bytes_of(m));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->type, kIcmpEchoReply);
  EXPECT_EQ(back->ident, 0x1234);
  EXPECT_EQ(vec(back->data), vec(kIcmpEcho, kL4Off4 + 8));
}

TEST(Icmpv4, FragNeededRoundTrip) {
  // Destination unreachable, fragmentation needed (RFC 1191 §4), quoting an IP header + 8.
  const auto quoted = vec(kUdpDns, kIpv4Off, 28);
  Icmpv4Repr r;
  r.type = kIcmpDestUnreachable;
  r.code = 4;
  r.next_hop_mtu = 1400;
  r.data = bytes_of(quoted);
  EXPECT_TRUE(r.is_error());
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ((std::vector<uint8_t>(out.begin(), out.begin() + 8)),
            (std::vector<uint8_t>{3, 4, out[2], out[3], 0, 0, 0x05, 0x78}));
  EXPECT_EQ(internet_checksum(bytes_of(out)), 0);
  auto back = Icmpv4Repr::parse(bytes_of(out));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->type, 3);
  EXPECT_EQ(back->code, 4);
  EXPECT_EQ(back->next_hop_mtu, 1400);
  EXPECT_EQ(vec(back->data), quoted);
}

TEST(Icmpv4, ErrorsWriteZeroUnusedField) {
  // Time exceeded and port unreachable have 4 unused bytes: ident/seq/MTU are not written.
  for (auto [type, code] : {std::pair<uint8_t, uint8_t>{kIcmpTimeExceeded, 0}, {kIcmpDestUnreachable, 3}}) {
    Icmpv4Repr r;
    r.type = type;
    r.code = code;
    r.ident = 0xffff;
    r.seq = 0xffff;
    r.next_hop_mtu = 0xffff;
    std::vector<uint8_t> out(r.len(), 0xaa);
    ASSERT_TRUE(r.emit(mut_bytes_of(out)));
    EXPECT_EQ(out[4] | out[5] | out[6] | out[7], 0) << int(type);
    auto back = Icmpv4Repr::parse(bytes_of(out));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->ident, 0);
    EXPECT_EQ(back->next_hop_mtu, 0);
    EXPECT_TRUE(back->data.empty());
  }
}

TEST(Icmpv4, IsError) {
  for (int t = 0; t < 256; ++t) {
    Icmpv4Repr r;
    r.type = uint8_t(t);
    const bool want = t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
    EXPECT_EQ(r.is_error(), want) << t;
  }
}

TEST(Icmpv4, OddLengthChecksum) {
  // An odd number of data bytes is padded with a zero byte for the checksum (RFC 1071).
  const std::vector<uint8_t> data{1, 2, 3};
  Icmpv4Repr r;
  r.type = kIcmpEchoRequest;
  r.data = bytes_of(data);
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_TRUE(Icmpv4Repr::parse(bytes_of(out)).has_value());
}

TEST(Icmpv4, EveryTruncatedPrefixFails) {
  const auto m = echo_msg();
  for (size_t n = 0; n < m.size(); ++n) {
    auto r = Icmpv4Repr::parse(bytes_of(m).first(n));
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if (n >= 8) continue;  // without the checksum, any 8 bytes are a message
#endif
    ASSERT_FALSE(r.has_value()) << n;
    // Below 8 bytes there is no header; above, the checksum no longer matches.
    EXPECT_EQ(r.error(), n < 8 ? ParseError::truncated : ParseError::bad_checksum) << n;
  }
}

#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
ParseError error_of(const std::vector<uint8_t>& m) {
  auto r = Icmpv4Repr::parse(bytes_of(m));
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? ParseError::unsupported : r.error();
}

TEST(Icmpv4, BadChecksumRejected) {
  for (size_t i = 0; i < echo_msg().size(); ++i) {
    auto m = echo_msg();
    m[i] ^= 0x40;
    EXPECT_EQ(error_of(m), ParseError::bad_checksum) << i;
  }
  // Appended bytes are covered too: the message is the whole IP payload.
  auto m = echo_msg();
  m.push_back(1);
  EXPECT_EQ(error_of(m), ParseError::bad_checksum);
}
#endif

TEST(Icmpv4, EmitIntoShortBufferWritesNothing) {
  const std::vector<uint8_t> data(10, 0x42);
  Icmpv4Repr r;
  r.type = kIcmpEchoReply;
  r.data = bytes_of(data);
  std::vector<uint8_t> out(r.len() - 1, 0xaa);
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(r.len() - 1, 0xaa));
}

}  // namespace
}  // namespace moat::wire
