#include "wire/icmpv6.h"

#include <gtest/gtest.h>

#include "unit/wire/hex_bytes.h"

namespace moat::wire {
namespace {
using namespace hex_test;

const Ipv6Addr kGuest = *Ipv6Addr::parse("fd42:6d73:62::2");
const Ipv6Addr kGateway = *Ipv6Addr::parse("fd42:6d73:62::1");
const Ipv6Addr kRemote = *Ipv6Addr::parse("2001:4860:4860::8888");

// Echo request fd42:6d73:62::2 -> 2001:4860:4860::8888 (RFC 4443 §4.1). Checksum computed
// independently (Python) and confirmed "Good" by tshark in an Ethernet/IPv6 frame.
const std::vector<uint8_t> kEcho = hex(
    "80 00 3786"    // type 128, code 0, checksum
    "1234 0001"     // identifier 0x1234, sequence 1
    "6162636465666768");  // "abcdefgh"

// Packet Too Big fd42:6d73:62::1 -> fd42:6d73:62::2, MTU 1280 (RFC 4443 §3.2), quoting 4 bytes.
const std::vector<uint8_t> kPacketTooBig = hex(
    "02 00 c285"   // type 2, code 0, checksum
    "00000500"     // MTU 1280
    "60000000");   // start of the quoted packet

TEST(Icmpv6, DecodeEchoRequest) {
  auto r = Icmpv6Repr::parse(bytes_of(kEcho), kGuest, kRemote);
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->type, kIcmpv6EchoRequest);
  EXPECT_EQ(r->code, 0);
  EXPECT_EQ(r->ident, 0x1234);
  EXPECT_EQ(r->seq, 1);
  EXPECT_FALSE(r->is_error());
  EXPECT_EQ(vec(r->data), hex("6162636465666768"));
  EXPECT_EQ(r->len(), kEcho.size());
}

TEST(Icmpv6, EncodeEchoRequestByteExact) {
  const std::vector<uint8_t> data = hex("6162636465666768");
  Icmpv6Repr r;
  r.type = kIcmpv6EchoRequest;
  r.ident = 0x1234;
  r.seq = 1;
  r.data = bytes_of(data);
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out), kGuest, kRemote));
  EXPECT_EQ(out, kEcho);
}

TEST(Icmpv6, DecodePacketTooBig) {
  auto r = Icmpv6Repr::parse(bytes_of(kPacketTooBig), kGateway, kGuest);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type, kIcmpv6PacketTooBig);
  EXPECT_TRUE(r->is_error());
  EXPECT_EQ(r->mtu_or_pointer, 1280u);
  EXPECT_EQ(vec(r->data), hex("60000000"));
}

TEST(Icmpv6, EncodeErrorWithQuoteAlreadyInPlace) {
  // The stack writes the quoted packet at out[8..] first, then emits the header around it.
  std::vector<uint8_t> out(12, 0xee);
  out[8] = 0x60;
  out[9] = out[10] = out[11] = 0;
  Icmpv6Repr r;
  r.type = kIcmpv6PacketTooBig;
  r.mtu_or_pointer = 1280;
  r.data = bytes_of(out).subspan(8);
  ASSERT_TRUE(r.emit(mut_bytes_of(out), kGateway, kGuest));
  EXPECT_EQ(out, kPacketTooBig);
}

TEST(Icmpv6, RoundTripKeepsRestOfHeaderOfOtherTypes) {
  // An MLD-like informational type: bytes 4..7 must survive parse -> emit.
  Icmpv6Repr r;
  r.type = 143;
  r.mtu_or_pointer = 0xdeadbeef;
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out), kGuest, kGateway));
  auto back = Icmpv6Repr::parse(bytes_of(out), kGuest, kGateway);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->type, 143);
  EXPECT_EQ(back->mtu_or_pointer, 0xdeadbeefu);
  EXPECT_TRUE(back->data.empty());
}

TEST(Icmpv6, BadChecksum) {
  std::vector<uint8_t> b = kEcho;
  b.back() ^= 1;
  auto r = Icmpv6Repr::parse(bytes_of(b), kGuest, kRemote);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_checksum);
  // The pseudo-header counts: the same bytes between other addresses do not verify.
  EXPECT_FALSE(Icmpv6Repr::parse(bytes_of(kEcho), kGuest, kGateway).has_value());
}

TEST(Icmpv6, TruncatedAtEveryLength) {
  for (size_t n = 0; n < kEcho.size(); ++n) {
    auto r = Icmpv6Repr::parse(bytes_of(kEcho).first(n), kGuest, kRemote);
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_EQ(r.error(), n < 8 ? ParseError::truncated : ParseError::bad_checksum) << n;
  }
}

TEST(Icmpv6, EmitIntoShortBufferWritesNothing) {
  Icmpv6Repr r;
  r.type = kIcmpv6EchoReply;
  std::vector<uint8_t> out(7, 0xaa);
  EXPECT_FALSE(r.emit(mut_bytes_of(out), kGuest, kRemote));
  EXPECT_EQ(out, std::vector<uint8_t>(7, 0xaa));
}

}  // namespace
}  // namespace moat::wire
