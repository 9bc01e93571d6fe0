#include "wire/ndp.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>

#include "wire/emit_sink.h"
#include "unit/wire/hex_bytes.h"

namespace moat::wire {
namespace {
using namespace hex_test;

// Guest 52:54:00:12:34:56 (link-local fe80::5054:ff:fe12:3456), gateway 02:6d:6f:61:74:01
// (link-local fe80::6d:6fff:fe61:7401), guest prefix fd42:6d73:62::/64.
// Every checksum below was computed independently (Python, RFC 4443 §2.3 pseudo-header)
// and confirmed "Good" by tshark 4.0 on the message wrapped in Ethernet + IPv6.
const MacAddr kGuestMac{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
const MacAddr kGatewayMac{{0x02, 0x6d, 0x6f, 0x61, 0x74, 0x01}};
const Ipv6Addr kGuestLl = *Ipv6Addr::parse("fe80::5054:ff:fe12:3456");
const Ipv6Addr kGatewayLl = *Ipv6Addr::parse("fe80::6d:6fff:fe61:7401");
const Ipv6Addr kGateway = *Ipv6Addr::parse("fd42:6d73:62::1");
const Ipv6Addr kGuest = *Ipv6Addr::parse("fd42:6d73:62::2");
const Ipv6Addr kPrefix = *Ipv6Addr::parse("fd42:6d73:62::");

// Linux RS at link-up: fe80::5054:ff:fe12:3456 -> ff02::2 (RFC 4861 §4.1).
const std::vector<uint8_t> kRs = hex(
    "85 00 71b5 00000000"  // type 133, code 0, checksum, reserved
    "01 01 525400123456");  // SLLA 52:54:00:12:34:56

// Address resolution for the gateway: fe80::5054:ff:fe12:3456 -> ff02::1:ff00:1 (§4.3).
const std::vector<uint8_t> kNs = hex(
    "87 00 058b 00000000"                 // type 135, code 0, checksum, reserved
    "fd426d73006200000000000000000001"  // target fd42:6d73:62::1
    "01 01 525400123456");               // SLLA 52:54:00:12:34:56

// DAD probe: :: -> ff02::1:ff12:3456, target the guest's own link-local (RFC 4862 §5.4.2).
const std::vector<uint8_t> kDadNs = hex(
    "87 00 c402 00000000"                 // type 135, code 0, checksum, reserved
    "fe80000000000000505400fffe123456");  // target fe80::5054:ff:fe12:3456

// An RA as radvd lays it out (prefix, RDNSS, DNSSL, MTU, then SLLA): fe80::1 -> ff02::1.
const Ipv6Addr kRadvdSrc = *Ipv6Addr::parse("fe80::1");
const std::vector<uint8_t> kRadvdRa = hex(
    "86 00 841f"                     // type 134, code 0, checksum
    "40 00 0708 00000000 00000000"   // hop limit 64, M=O=0, lifetime 1800, reachable 0, retrans 0
    "03 04 40 c0 00015180 00003840 00000000"  // PI /64, L A, valid 86400, preferred 14400
    "20010db8000100000000000000000000"        //   2001:db8:1::
    "19 03 0000 00000258"                     // RDNSS, lifetime 600
    "20010db8000100000000000000000053"        //   2001:db8:1::53
    "1f 05 0000 00000708"                     // DNSSL, 5 units, lifetime 1800
    "07 6578616d706c65 03 636f6d 00"          //   example.com
    "04 636f7270 07 6578616d706c65 00"        //   corp.example
    "0000000000"                              //   padding to 40 bytes
    "05 01 0000 000005dc"                     // MTU 1500
    "01 01 00163e000001");                    // SLLA 00:16:3e:00:00:01

// moat's RA (SPEC R-NET-6, dhcpv6 = stateless: O set): gateway link-local -> ff02::1.
const std::vector<uint8_t> kMoatRa = hex(
    "86 00 5c00"                     // type 134, code 0, checksum
    "40 40 0708 00000000 00000000"   // hop limit 64, O, lifetime 1800, reachable 0, retrans 0
    "01 01 026d6f617401"             // SLLA 02:6d:6f:61:74:01
    "05 01 0000 0000fff0"            // MTU 65520
    "03 04 40 c0 00015180 00003840 00000000"  // PI /64, L A, valid 86400, preferred 14400
    "fd426d73006200000000000000000000"        //   fd42:6d73:62::
    "19 03 0000 00000708"                     // RDNSS, lifetime 1800
    "fd426d73006200000000000000000001"        //   fd42:6d73:62::1
    "1f 05 0000 00000708"                     // DNSSL, 5 units, lifetime 1800
    "04 636f7270 07 6578616d706c65 03 636f6d 00"  // corp.example.com
    "07 6578616d706c65 03 6f7267 00"              // example.org
    "00");                                        // padding to 40 bytes

// moat's solicited NA for its global address (R-NET-5): fd42:6d73:62::1 -> fd42:6d73:62::2.
const std::vector<uint8_t> kMoatNa = hex(
    "88 00 6e86"                         // type 136, code 0, checksum
    "e0 000000"                          // R S O
    "fd426d73006200000000000000000001"   // target fd42:6d73:62::1
    "02 01 026d6f617401");               // TLLA 02:6d:6f:61:74:01

const std::array<std::string, 2> kSearch{"corp.example.com", "example.org."};

NdpRepr moat_ra() {
  NdpRepr r;
  r.type = kNdpRouterAdvert;
  r.cur_hop_limit = 64;
  r.other = true;
  r.router_lifetime = 1800;
  r.source_ll = kGatewayMac;
  r.mtu = 65520;
  r.prefix = NdpPrefixInfo{kPrefix, 64, true, true, 86400, 14400};
  r.rdnss = kGateway;
  r.rdnss_lifetime = 1800;
  r.dnssl = kSearch;
  return r;
}

/// Rewrites the checksum of a (possibly cut) message so the structural checks are reached.
std::vector<uint8_t> with_checksum(std::vector<uint8_t> m, const Ipv6Addr& src, const Ipv6Addr& dst) {
  if (m.size() < 4) return m;
  m[2] = m[3] = 0;
  const uint16_t c = icmpv6_checksum(bytes_of(m), src, dst);
  m[2] = uint8_t(c >> 8);
  m[3] = uint8_t(c);
  return m;
}

TEST(Ndp, DecodeLinuxRouterSolicit) {
  auto r = NdpRepr::parse(bytes_of(kRs), kGuestLl, Ipv6Addr::all_routers());
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->type, kNdpRouterSolicit);
  EXPECT_EQ(r->source_ll, kGuestMac);
  EXPECT_FALSE(r->target_ll);
  EXPECT_EQ(r->len(), kRs.size());
}

TEST(Ndp, DecodeNeighborSolicitWithSourceLinkAddr) {
  auto r = NdpRepr::parse(bytes_of(kNs), kGuestLl, kGateway.solicited_node());
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->type, kNdpNeighborSolicit);
  EXPECT_EQ(r->target, kGateway);
  EXPECT_EQ(r->source_ll, kGuestMac);
}

TEST(Ndp, DecodeDadProbe) {
  auto r = NdpRepr::parse(bytes_of(kDadNs), Ipv6Addr{}, kGuestLl.solicited_node());
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->target, kGuestLl);
  EXPECT_FALSE(r->source_ll);
}

TEST(Ndp, DadProbeRules) {
  // RFC 4861 §7.1.1: from :: there is no SLLA, and the destination is a solicited-node group.
  std::vector<uint8_t> with_slla = kDadNs;
  for (uint8_t b : hex("0101525400123456")) with_slla.push_back(b);
  const Ipv6Addr sn = kGuestLl.solicited_node();
  auto r = NdpRepr::parse(bytes_of(with_checksum(with_slla, Ipv6Addr{}, sn)), Ipv6Addr{}, sn);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_option);
  const Ipv6Addr all = Ipv6Addr::all_nodes();
  r = NdpRepr::parse(bytes_of(with_checksum(kDadNs, Ipv6Addr{}, all)), Ipv6Addr{}, all);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_option);
}

TEST(Ndp, DecodeRadvdRouterAdvert) {
  auto r = NdpRepr::parse(bytes_of(kRadvdRa), kRadvdSrc, Ipv6Addr::all_nodes());
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->type, kNdpRouterAdvert);
  EXPECT_EQ(r->cur_hop_limit, 64);
  EXPECT_FALSE(r->managed);
  EXPECT_FALSE(r->other);
  EXPECT_EQ(r->router_lifetime, 1800);
  EXPECT_EQ(r->reachable_time, 0u);
  EXPECT_EQ(r->retrans_timer, 0u);
  EXPECT_EQ(r->source_ll, (MacAddr{{0x00, 0x16, 0x3e, 0x00, 0x00, 0x01}}));
  EXPECT_EQ(r->mtu, 1500u);
  ASSERT_TRUE(r->prefix);
  EXPECT_EQ(r->prefix->prefix, *Ipv6Addr::parse("2001:db8:1::"));
  EXPECT_EQ(r->prefix->prefix_len, 64);
  EXPECT_TRUE(r->prefix->on_link);
  EXPECT_TRUE(r->prefix->autonomous);
  EXPECT_EQ(r->prefix->valid_lifetime, 86400u);
  EXPECT_EQ(r->prefix->preferred_lifetime, 14400u);
  EXPECT_EQ(r->rdnss, *Ipv6Addr::parse("2001:db8:1::53"));
  EXPECT_EQ(r->rdnss_lifetime, 600u);
  EXPECT_TRUE(r->dnssl.empty());  // parse cannot hold names
}

TEST(Ndp, EncodeRouterAdvertByteExact) {
  const NdpRepr r = moat_ra();
  ASSERT_EQ(r.len(), kMoatRa.size());
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out), kGatewayLl, Ipv6Addr::all_nodes()));
  EXPECT_EQ(out, kMoatRa);
}

TEST(Ndp, EncodeRouterAdvertWithoutDnssl) {
  NdpRepr r = moat_ra();
  r.dnssl = {};
  ASSERT_EQ(r.len(), kMoatRa.size() - 40);
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out), kGatewayLl, Ipv6Addr::all_nodes()));
  // Same bytes up to the DNSSL option, apart from the checksum.
  const std::vector<uint8_t> expect = with_checksum(
      std::vector<uint8_t>(kMoatRa.begin(), kMoatRa.end() - 40), kGatewayLl, Ipv6Addr::all_nodes());
  EXPECT_EQ(out, expect);
}

TEST(Ndp, EncodeNeighborAdvertByteExact) {
  NdpRepr r;
  r.type = kNdpNeighborAdvert;
  r.router = r.solicited = r.override_ = true;
  r.target = kGateway;
  r.target_ll = kGatewayMac;
  ASSERT_EQ(r.len(), kMoatNa.size());
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out), kGateway, kGuest));
  EXPECT_EQ(out, kMoatNa);
}

TEST(Ndp, RoundTrip) {
  const NdpRepr ra = moat_ra();
  std::vector<uint8_t> out(ra.len());
  ASSERT_TRUE(ra.emit(mut_bytes_of(out), kGatewayLl, Ipv6Addr::all_nodes()));
  auto back = NdpRepr::parse(bytes_of(out), kGatewayLl, Ipv6Addr::all_nodes());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->cur_hop_limit, ra.cur_hop_limit);
  EXPECT_EQ(back->other, ra.other);
  EXPECT_EQ(back->managed, ra.managed);
  EXPECT_EQ(back->router_lifetime, ra.router_lifetime);
  EXPECT_EQ(back->source_ll, ra.source_ll);
  EXPECT_EQ(back->mtu, ra.mtu);
  EXPECT_EQ(back->prefix, ra.prefix);
  EXPECT_EQ(back->rdnss, ra.rdnss);
  EXPECT_EQ(back->rdnss_lifetime, ra.rdnss_lifetime);

  auto na = NdpRepr::parse(bytes_of(kMoatNa), kGateway, kGuest);
  ASSERT_TRUE(na.has_value());
  EXPECT_TRUE(na->router && na->solicited && na->override_);
  EXPECT_EQ(na->target, kGateway);
  EXPECT_EQ(na->target_ll, kGatewayMac);
  std::vector<uint8_t> again(na->len());
  ASSERT_TRUE(na->emit(mut_bytes_of(again), kGateway, kGuest));
  EXPECT_EQ(again, kMoatNa);
}

TEST(Ndp, TruncatedAtEveryLength) {
  struct Case {
    const std::vector<uint8_t>* msg;
    Ipv6Addr src, dst;
    std::vector<size_t> boundaries;  // cuts that leave a complete, valid message
  };
  const Case cases[] = {
      {&kRs, kGuestLl, Ipv6Addr::all_routers(), {8}},
      {&kNs, kGuestLl, kGateway.solicited_node(), {24}},
      {&kRadvdRa, kRadvdSrc, Ipv6Addr::all_nodes(), {16, 48, 72, 112, 120}},
      {&kMoatRa, kGatewayLl, Ipv6Addr::all_nodes(), {16, 24, 32, 64, 88}},
      {&kMoatNa, kGateway, kGuest, {24}},
  };
  for (const Case& c : cases) {
    for (size_t n = 0; n < c.msg->size(); ++n) {
      const std::vector<uint8_t> cut(c.msg->begin(), c.msg->begin() + long(n));
      // As received: the checksum no longer matches (or the message is too short).
      EXPECT_FALSE(NdpRepr::parse(bytes_of(cut), c.src, c.dst).has_value()) << n;
      // With a fixed checksum the option walk must catch every cut inside an option.
      const auto fixed = with_checksum(cut, c.src, c.dst);
      auto r = NdpRepr::parse(bytes_of(fixed), c.src, c.dst);
      const bool boundary = std::find(c.boundaries.begin(), c.boundaries.end(), n) != c.boundaries.end();
      EXPECT_EQ(r.has_value(), boundary) << "type " << int((*c.msg)[0]) << " cut at " << n;
    }
  }
}

TEST(Ndp, ZeroLengthOption) {
  std::vector<uint8_t> m = hex("8500000000000000 0100525400123456");
  m = with_checksum(m, kGuestLl, Ipv6Addr::all_routers());
  auto r = NdpRepr::parse(bytes_of(m), kGuestLl, Ipv6Addr::all_routers());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_option);
}

TEST(Ndp, OptionRunningPastTheEnd) {
  // SLLA claims 2 units (16 bytes) but only 8 remain.
  std::vector<uint8_t> m = hex("8500000000000000 0102525400123456");
  m = with_checksum(m, kGuestLl, Ipv6Addr::all_routers());
  auto r = NdpRepr::parse(bytes_of(m), kGuestLl, Ipv6Addr::all_routers());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_option);
}

TEST(Ndp, OptionCountIsBounded) {
  auto rs_with = [](size_t options) {
    std::vector<uint8_t> m = hex("8500000000000000");
    for (size_t i = 0; i < options; ++i)
      for (uint8_t b : hex("fe01000000000000")) m.push_back(b);  // unknown option 254
    return with_checksum(m, kGuestLl, Ipv6Addr::all_routers());
  };
  EXPECT_TRUE(NdpRepr::parse(bytes_of(rs_with(64)), kGuestLl, Ipv6Addr::all_routers()).has_value());
  auto r = NdpRepr::parse(bytes_of(rs_with(65)), kGuestLl, Ipv6Addr::all_routers());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_option);
}

TEST(Ndp, UnknownAndMisfitOptionsAreIgnored) {
  // RS: an unknown option, an SLLA of the wrong length (2 units), a TLLA (not defined for
  // RS), then the real SLLA, which is the one kept.
  std::vector<uint8_t> m = hex(
      "8500000000000000"
      "fe01000000000000"
      "0102aaaaaaaaaaaa0000000000000000"
      "0201bbbbbbbbbbbb"
      "0101525400123456");
  m = with_checksum(m, kGuestLl, Ipv6Addr::all_routers());
  auto r = NdpRepr::parse(bytes_of(m), kGuestLl, Ipv6Addr::all_routers());
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->source_ll, kGuestMac);
  EXPECT_FALSE(r->target_ll);
}

TEST(Ndp, RejectsBadCodeAndUnsupportedTypes) {
  std::vector<uint8_t> m = kRs;
  m[1] = 1;
  m = with_checksum(m, kGuestLl, Ipv6Addr::all_routers());
  auto r = NdpRepr::parse(bytes_of(m), kGuestLl, Ipv6Addr::all_routers());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::unsupported);

  std::vector<uint8_t> redirect(40, 0);
  redirect[0] = kNdpRedirect;
  redirect = with_checksum(redirect, kGuestLl, kGatewayLl);
  r = NdpRepr::parse(bytes_of(redirect), kGuestLl, kGatewayLl);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::unsupported);

  EXPECT_EQ(NdpRepr::parse({}, kGuestLl, kGatewayLl).error(), ParseError::truncated);
}

TEST(Ndp, BadChecksum) {
  std::vector<uint8_t> m = kNs;
  m[10] ^= 0x40;
  auto r = NdpRepr::parse(bytes_of(m), kGuestLl, kGateway.solicited_node());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_checksum);
}

TEST(Ndp, NeighborAdvertRules) {
  // §7.1.2: an NA to a multicast address must not have S set; the target is never multicast.
  const Ipv6Addr all = Ipv6Addr::all_nodes();
  auto r = NdpRepr::parse(bytes_of(with_checksum(kMoatNa, kGateway, all)), kGateway, all);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), ParseError::bad_option);

  NdpRepr dad_reply;  // the NA moat sends to defeat a DAD probe for its address (R-NET-5)
  dad_reply.type = kNdpNeighborAdvert;
  dad_reply.router = dad_reply.override_ = true;
  dad_reply.target = kGateway;
  dad_reply.target_ll = kGatewayMac;
  std::vector<uint8_t> out(dad_reply.len());
  ASSERT_TRUE(dad_reply.emit(mut_bytes_of(out), kGateway, all));
  EXPECT_TRUE(NdpRepr::parse(bytes_of(out), kGateway, all).has_value());

  dad_reply.target = all;
  ASSERT_TRUE(dad_reply.emit(mut_bytes_of(out), kGateway, all));
  EXPECT_EQ(NdpRepr::parse(bytes_of(out), kGateway, all).error(), ParseError::bad_option);
}

TEST(Ndp, EmitRejectsWhatItCannotEncode) {
  NdpRepr r;
  r.type = kNdpRedirect;
  EXPECT_EQ(r.len(), 0u);
  std::vector<uint8_t> out(64, 0xaa);
  EXPECT_FALSE(r.emit(mut_bytes_of(out), kGatewayLl, kGuestLl));

  r = moat_ra();
  const std::array<std::string, 1> bad{"a..b"};
  r.dnssl = bad;
  EXPECT_FALSE(r.emit(mut_bytes_of(out), kGatewayLl, kGuestLl));
  EXPECT_EQ(out, std::vector<uint8_t>(64, 0xaa));

  // 9 names of 245 encoded bytes need 8 + 2205 bytes, more than one option's 255 * 8.
  const std::string label(60, 'x');
  const std::string longname = label + "." + label + "." + label + "." + label;  // 243 chars
  const std::array<std::string, 9> many{longname, longname, longname, longname, longname,
                                        longname, longname, longname, longname};
  r.dnssl = many;
  std::vector<uint8_t> big(4096);
  EXPECT_FALSE(r.emit(mut_bytes_of(big), kGatewayLl, kGuestLl));

  r = moat_ra();
  std::vector<uint8_t> small(r.len() - 1);
  EXPECT_FALSE(r.emit(mut_bytes_of(small), kGatewayLl, kGuestLl));
}

TEST(EncodedDomainLen, Rules) {
  EXPECT_EQ(encoded_domain_len("example.com"), 13u);
  EXPECT_EQ(encoded_domain_len("example.com."), 13u);
  EXPECT_EQ(encoded_domain_len("a"), 3u);
  EXPECT_EQ(encoded_domain_len(""), 0u);
  EXPECT_EQ(encoded_domain_len("."), 0u);
  EXPECT_EQ(encoded_domain_len("a..b"), 0u);
  EXPECT_EQ(encoded_domain_len(".a"), 0u);
  EXPECT_EQ(encoded_domain_len("a.."), 0u);
  EXPECT_EQ(encoded_domain_len(std::string(63, 'x')), 65u);
  EXPECT_EQ(encoded_domain_len(std::string(64, 'x')), 0u);
  const std::string l(63, 'x');
  EXPECT_EQ(encoded_domain_len(l + "." + l + "." + l + "." + std::string(61, 'x')), 255u);
  EXPECT_EQ(encoded_domain_len(l + "." + l + "." + l + "." + std::string(62, 'x')), 0u);
}

}  // namespace
}  // namespace moat::wire
