#include "wire/dhcpv4.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

#include "unit/wire/hex_bytes.h"

namespace moat::wire {
namespace {
using namespace hex_test;

const MacAddr kGuestMac{{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}};
const Ipv4Addr kGateway = Ipv4Addr::from_octets(100, 96, 0, 1);
const Ipv4Addr kGuest = Ipv4Addr::from_octets(100, 96, 0, 2);

constexpr size_t kSnameOff = 44, kFileOff = 108;

/// A DHCP message: the first 44 bytes (op .. chaddr), zero sname and file, the magic
/// cookie (RFC 2131 §3), the options, then zero padding up to `pad_to` bytes.
std::vector<uint8_t> dhcp(std::string_view head, std::string_view options, size_t pad_to = 300) {
  std::vector<uint8_t> m = hex(head);
  m.resize(236, 0);
  for (uint8_t b : hex("63825363")) m.push_back(b);
  for (uint8_t b : hex(options)) m.push_back(b);
  if (m.size() < pad_to) m.resize(pad_to, 0);
  return m;
}
void put_at(std::vector<uint8_t>& m, size_t off, std::string_view h) {
  const std::vector<uint8_t> b = hex(h);
  std::copy(b.begin(), b.end(), m.begin() + long(off));
}

// Client messages laid out as busybox 1.36 udhcpc sends them (options 53, 61, then 57 and
// the default parameter request list, then 60; END; zero padding to the 300-byte BOOTP
// minimum). Checked with tshark 4.0 ("dhcp" dissector) inside an Ethernet/IPv4/UDP frame.
constexpr std::string_view kClientHead =
    "01 01 06 00"                         // BOOTREQUEST, Ethernet, hlen 6, hops 0
    "3903f326 0000 0000"                  // xid, secs 0, flags 0
    "00000000 00000000 00000000 00000000"  // ciaddr yiaddr siaddr giaddr
    "525400123456 00000000000000000000";  // chaddr
const std::vector<uint8_t> kDiscover = dhcp(kClientHead,
                                            "35 01 01"                    // 53 DISCOVER
                                            "3d 07 01 525400123456"       // 61 client id
                                            "39 02 0240"                  // 57 max size 576
                                            "37 07 01 03 06 0c 0f 1c 2a"  // 55 PRL
                                            "3c 0c 7564686370 20 312e33362e31"  // 60 "udhcp 1.36.1"
                                            "ff");                              // END
const std::vector<uint8_t> kRequest = dhcp(kClientHead,
                                           "35 01 03"                       // 53 REQUEST
                                           "3d 07 01 525400123456"          // 61 client id
                                           "32 04 64600002"                 // 50 requested 100.96.0.2
                                           "36 04 64600001"                 // 54 server id 100.96.0.1
                                           "39 02 0240"                     // 57 max size 576
                                           "37 08 01 03 06 0c 0f 1c 2a 79"  // 55 PRL + 121
                                           "3c 0c 7564686370 20 312e33362e31"  // 60 vendor class
                                           "ff");                              // END

// moat's OFFER with every option of SPEC R-NET-7, in emit order.
constexpr std::string_view kReplyHead =
    "02 01 06 00"                         // BOOTREPLY, Ethernet, hlen 6, hops 0
    "3903f326 0000 8000"                  // xid, secs 0, broadcast
    "00000000 64600002 00000000 00000000"  // ciaddr 0, yiaddr 100.96.0.2, siaddr, giaddr
    "525400123456 00000000000000000000";  // chaddr
constexpr std::string_view kReplyOptionsAfter53 =
    "36 04 64600001"            // 54 server id 100.96.0.1
    "33 04 00015180"            // 51 lease 86400
    "3a 04 0000a8c0"            // 58 T1 43200
    "3b 04 00012750"            // 59 T2 75600
    "01 04 ffffff00"            // 1 mask 255.255.255.0
    "1c 04 646000ff"            // 28 broadcast 100.96.0.255
    "03 04 64600001"            // 3 router
    "06 08 64600001 64600035"   // 6 DNS 100.96.0.1, 100.96.0.53
    "1a 02 fff0"                // 26 MTU 65520
    "0c 09 73616e64626f782d31"  // 12 "sandbox-1"
    "0f 10 636f72702e6578616d706c652e636f6d"  // 15 "corp.example.com"
    "77 1f 04636f7270 076578616d706c65 03636f6d 00 076578616d706c65 036f7267 00"  // 119
    "79 05 00 64600001"                                                           // 121 0/0
    "ff";

const std::array<Ipv4Addr, 2> kDns{kGateway, Ipv4Addr::from_octets(100, 96, 0, 53)};
const std::array<std::string, 2> kSearch{"corp.example.com", "example.org"};

Dhcpv4Repr reply(DhcpMessageType type) {
  Dhcpv4Repr r;
  r.op = 2;
  r.xid = 0x3903f326;
  r.broadcast = true;
  r.yiaddr = kGuest;
  r.chaddr = kGuestMac;
  r.message_type = type;
  r.server_id = kGateway;
  r.lease_time = 86400;
  r.renewal_time = 43200;
  r.rebinding_time = 75600;
  r.subnet_mask = Ipv4Addr::from_octets(255, 255, 255, 0);
  r.broadcast_addr = Ipv4Addr::from_octets(100, 96, 0, 255);
  r.router = kGateway;
  r.dns_servers = kDns;
  r.interface_mtu = 65520;
  r.hostname = "sandbox-1";
  r.domain_name = "corp.example.com";
  r.search_domains = kSearch;
  r.classless_default_route = kGateway;
  return r;
}

ParseError error_of(const std::vector<uint8_t>& m) {
  auto r = Dhcpv4Repr::parse(bytes_of(m));
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? ParseError::unsupported : r.error();
}

TEST(Dhcpv4, DecodeUdhcpcDiscover) {
  ASSERT_EQ(kDiscover.size(), 300u);
  auto r = Dhcpv4Repr::parse(bytes_of(kDiscover));
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->op, 1);
  EXPECT_EQ(r->xid, 0x3903f326u);
  EXPECT_FALSE(r->broadcast);
  EXPECT_EQ(r->chaddr, kGuestMac);
  EXPECT_EQ(r->message_type, DhcpMessageType::discover);
  EXPECT_EQ(vec(r->client_id), hex("01525400123456"));
  EXPECT_EQ(r->max_message_size, 576);
  EXPECT_EQ(vec(r->parameter_request_list), hex("0103060c0f1c2a"));
  EXPECT_FALSE(r->requested_ip);
  EXPECT_FALSE(r->server_id);
  EXPECT_TRUE(r->ciaddr.is_unspecified());
}

TEST(Dhcpv4, DecodeUdhcpcRequest) {
  auto r = Dhcpv4Repr::parse(bytes_of(kRequest));
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->message_type, DhcpMessageType::request);
  EXPECT_EQ(r->requested_ip, kGuest);
  EXPECT_EQ(r->server_id, kGateway);
  EXPECT_EQ(vec(r->parameter_request_list), hex("0103060c0f1c2a79"));
}

TEST(Dhcpv4, EncodeOfferByteExact) {
  const Dhcpv4Repr r = reply(DhcpMessageType::offer);
  const std::vector<uint8_t> expect = dhcp(kReplyHead, std::string("350102") + std::string(kReplyOptionsAfter53));
  ASSERT_EQ(expect.size(), 369u);  // longer than 300: no padding
  ASSERT_EQ(r.len(), expect.size());
  std::vector<uint8_t> out(r.len(), 0xaa);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, expect);
}

TEST(Dhcpv4, EncodeAckByteExact) {
  const Dhcpv4Repr r = reply(DhcpMessageType::ack);
  const std::vector<uint8_t> expect = dhcp(kReplyHead, std::string("350105") + std::string(kReplyOptionsAfter53));
  std::vector<uint8_t> out(r.len(), 0xaa);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, expect);
}

TEST(Dhcpv4, EncodeNakPadsToBootpMinimum) {
  Dhcpv4Repr r;
  r.xid = 0x3903f326;
  r.chaddr = kGuestMac;
  r.message_type = DhcpMessageType::nak;
  r.server_id = kGateway;
  r.message = "wrong address";
  ASSERT_EQ(r.len(), 300u);
  std::vector<uint8_t> out(r.len(), 0xaa);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, dhcp("02010600 3903f326 0000 0000 00000000 00000000 00000000 00000000"
                      "525400123456 00000000000000000000",
                      "35 01 06  36 04 64600001  38 0d 77726f6e672061646472657373  ff"));
  auto back = Dhcpv4Repr::parse(bytes_of(out));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->message, "wrong address");
}

TEST(Dhcpv4, RoundTrip) {
  const Dhcpv4Repr r = reply(DhcpMessageType::ack);
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  auto back = Dhcpv4Repr::parse(bytes_of(out));
  ASSERT_TRUE(back.has_value()) << parse_error_name(back.error());
  EXPECT_EQ(back->op, 2);
  EXPECT_EQ(back->xid, r.xid);
  EXPECT_TRUE(back->broadcast);
  EXPECT_EQ(back->yiaddr, kGuest);
  EXPECT_EQ(back->chaddr, kGuestMac);
  EXPECT_EQ(back->message_type, DhcpMessageType::ack);
  EXPECT_EQ(back->server_id, r.server_id);
  EXPECT_EQ(back->lease_time, r.lease_time);
  EXPECT_EQ(back->renewal_time, r.renewal_time);
  EXPECT_EQ(back->rebinding_time, r.rebinding_time);
  EXPECT_EQ(back->subnet_mask, r.subnet_mask);
  EXPECT_EQ(back->broadcast_addr, r.broadcast_addr);
  EXPECT_EQ(back->router, r.router);
  EXPECT_EQ(back->interface_mtu, r.interface_mtu);
  EXPECT_EQ(back->hostname, r.hostname);
  EXPECT_EQ(back->domain_name, r.domain_name);
  EXPECT_EQ(back->classless_default_route, kGateway);

  // A client message parsed and re-emitted comes back the same (apart from option order).
  auto discover = Dhcpv4Repr::parse(bytes_of(kDiscover));
  ASSERT_TRUE(discover.has_value());
  std::vector<uint8_t> again(discover->len());
  ASSERT_TRUE(discover->emit(mut_bytes_of(again)));
  auto d2 = Dhcpv4Repr::parse(bytes_of(again));
  ASSERT_TRUE(d2.has_value());
  EXPECT_EQ(d2->message_type, DhcpMessageType::discover);
  EXPECT_EQ(vec(d2->client_id), vec(discover->client_id));
  EXPECT_EQ(vec(d2->parameter_request_list), vec(discover->parameter_request_list));
  EXPECT_EQ(d2->max_message_size, 576);
}

TEST(Dhcpv4, TruncatedAtEveryLength) {
  // END is byte 279; everything after it is padding, so only shorter prefixes must fail.
  ASSERT_EQ(kDiscover[279], 0xff);
  for (size_t n = 0; n < kDiscover.size(); ++n) {
    const std::vector<uint8_t> cut(kDiscover.begin(), kDiscover.begin() + long(n));
    auto r = Dhcpv4Repr::parse(bytes_of(cut));
    if (n < 240) {
      ASSERT_FALSE(r.has_value()) << n;
      EXPECT_EQ(r.error(), ParseError::truncated) << n;
    } else if (n < 280) {
      ASSERT_FALSE(r.has_value()) << n;
      EXPECT_EQ(r.error(), ParseError::bad_option) << n;
    } else {
      EXPECT_TRUE(r.has_value()) << n;
    }
  }
}

TEST(Dhcpv4, HeaderChecks) {
  std::vector<uint8_t> m = kDiscover;
  m[236] = 0x64;  // magic cookie 100.130.83.99
  EXPECT_EQ(error_of(m), ParseError::bad_version);
  m = kDiscover;
  m[0] = 3;  // op
  EXPECT_EQ(error_of(m), ParseError::bad_version);
  m = kDiscover;
  m[1] = 6;  // htype IEEE 802
  EXPECT_EQ(error_of(m), ParseError::bad_version);
  m = kDiscover;
  m[2] = 16;  // hlen
  EXPECT_EQ(error_of(m), ParseError::bad_version);
}

TEST(Dhcpv4, WithoutMessageType) {
  // Plain BOOTP (RFC 951): no option 53.
  EXPECT_EQ(error_of(dhcp(kClientHead, "3d 07 01 525400123456 ff")), ParseError::bad_option);
  EXPECT_EQ(error_of(dhcp(kClientHead, "ff")), ParseError::bad_option);
}

TEST(Dhcpv4, MessageTypeChecks) {
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 09 ff")), ParseError::unsupported);  // FORCERENEW
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 00 ff")), ParseError::unsupported);
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 02 0101 ff")), ParseError::bad_option);
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 00 ff")), ParseError::bad_option);
}

TEST(Dhcpv4, WithoutEnd) {
  // Options fill the message to its last byte with no END.
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 3d 07 01 525400123456", 0)), ParseError::bad_option);
  // Only PAD after the options.
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 000000", 0)), ParseError::bad_option);
}

TEST(Dhcpv4, OptionRunningPastTheEnd) {
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 3d 07 015254", 0)), ParseError::bad_option);
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 3d", 0)), ParseError::bad_option);
}

TEST(Dhcpv4, WrongLengthForAnInterpretedOption) {
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 03 32 03 646000 ff")), ParseError::bad_option);  // 50
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 03 36 05 6460000100 ff")), ParseError::bad_option);  // 54
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 03 39 01 02 ff")), ParseError::bad_option);  // 57
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 03 03 06 646000016460 ff")), ParseError::bad_option);  // 3
}

TEST(Dhcpv4, PadAndUnknownOptionsAreSkipped) {
  auto r = Dhcpv4Repr::parse(bytes_of(dhcp(kClientHead, "00 00 35 01 01 00 e0 03 aabbcc 00 ff")));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->message_type, DhcpMessageType::discover);
}

TEST(Dhcpv4, FirstInstanceWins) {
  auto r = Dhcpv4Repr::parse(bytes_of(dhcp(kClientHead, "35 01 03 32 04 64600002 32 04 64600063 35 01 01 ff")));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->message_type, DhcpMessageType::request);
  EXPECT_EQ(r->requested_ip, kGuest);
}

TEST(Dhcpv4, TooManyOptionsInOneArea) {
  std::string opts = "35 01 01";
  for (int i = 0; i < 254; ++i) opts += " e0 00";
  auto ok = Dhcpv4Repr::parse(bytes_of(dhcp(kClientHead, opts + " ff")));
  EXPECT_TRUE(ok.has_value());  // 255 options
  EXPECT_EQ(error_of(dhcp(kClientHead, opts + " e0 00 ff")), ParseError::bad_option);  // 256
}

TEST(Dhcpv4, OverloadIntoFile) {
  std::vector<uint8_t> m = dhcp(kClientHead, "34 01 01  3d 07 01 525400123456  ff");
  put_at(m, kFileOff, "35 01 03  32 04 64600002  ff");
  auto r = Dhcpv4Repr::parse(bytes_of(m));
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->message_type, DhcpMessageType::request);
  EXPECT_EQ(r->requested_ip, kGuest);
  EXPECT_EQ(vec(r->client_id), hex("01525400123456"));
}

TEST(Dhcpv4, OverloadIntoSname) {
  std::vector<uint8_t> m = dhcp(kClientHead, "34 01 02 ff");
  put_at(m, kSnameOff, "35 01 01 ff");
  put_at(m, kFileOff, "35 01 03 ff");  // not an option area with overload 2: ignored
  auto r = Dhcpv4Repr::parse(bytes_of(m));
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->message_type, DhcpMessageType::discover);
}

TEST(Dhcpv4, OverloadBothReadsFileBeforeSname) {
  // RFC 2131 §4.1: options, then file, then sname; the first instance wins.
  std::vector<uint8_t> m = dhcp(kClientHead, "34 01 03 ff");
  put_at(m, kFileOff, "35 01 03  32 04 64600002  ff");
  put_at(m, kSnameOff, "35 01 01  32 04 64600063  36 04 64600001  ff");
  auto r = Dhcpv4Repr::parse(bytes_of(m));
  ASSERT_TRUE(r.has_value()) << parse_error_name(r.error());
  EXPECT_EQ(r->message_type, DhcpMessageType::request);
  EXPECT_EQ(r->requested_ip, kGuest);
  EXPECT_EQ(r->server_id, kGateway);
}

TEST(Dhcpv4, OverloadAreaClaimingOverloadDoesNotLoop) {
  std::vector<uint8_t> m = dhcp(kClientHead, "35 01 01 34 01 03 ff");
  put_at(m, kFileOff, "34 01 03 ff");
  put_at(m, kSnameOff, "34 01 01 ff");
  EXPECT_EQ(error_of(m), ParseError::bad_option);
  m = dhcp(kClientHead, "35 01 01 34 01 02 ff");
  put_at(m, kSnameOff, "34 01 01 ff");  // sname points back at file
  EXPECT_EQ(error_of(m), ParseError::bad_option);
}

TEST(Dhcpv4, BadOverload) {
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 34 01 00 ff")), ParseError::bad_option);
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 34 01 04 ff")), ParseError::bad_option);
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 34 02 0101 ff")), ParseError::bad_option);
  // The file area has no END (all zeros are PAD).
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 01 34 01 01 ff")), ParseError::bad_option);
  // An option in the sname area runs past its 64 bytes into file.
  std::vector<uint8_t> m = dhcp(kClientHead, "35 01 01 34 01 02 ff");
  put_at(m, kSnameOff + 60, "0c 10 61626364");
  EXPECT_EQ(error_of(m), ParseError::bad_option);
}

TEST(Dhcpv4, ClasslessRoutes) {
  // 10.0.0.0/8 via 100.96.0.9, then 0/0 via 100.96.0.1 (RFC 3442 §2).
  auto r = Dhcpv4Repr::parse(bytes_of(dhcp(kClientHead, "35 01 05 79 0b 08 0a 64600009 00 64600001 ff")));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->classless_default_route, kGateway);
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 05 79 05 21 64600001 ff")), ParseError::bad_option);  // /33
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 05 79 06 08 0a 646000 ff")), ParseError::bad_option);  // short
  EXPECT_EQ(error_of(dhcp(kClientHead, "35 01 05 79 00 ff")), ParseError::bad_option);
}

TEST(Dhcpv4, LongSearchListIsSplitPerRfc3396) {
  // 5 names of 67 encoded bytes: 335 bytes of option 119, written as 255 + 80.
  const std::string l(63, 'x');
  const std::array<std::string, 5> names{l + ".a", l + ".b", l + ".c", l + ".d", l + ".e"};
  Dhcpv4Repr r;
  r.message_type = DhcpMessageType::ack;
  r.search_domains = names;
  std::vector<uint8_t> out(r.len());
  ASSERT_EQ(out.size(), 240u + 3 + 2 + 255 + 2 + 80 + 1);
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out[243], 119);
  EXPECT_EQ(out[244], 255);
  EXPECT_EQ(out[245 + 255], 119);
  EXPECT_EQ(out[246 + 255], 80);
  EXPECT_EQ(out.back(), 0xff);
  EXPECT_TRUE(Dhcpv4Repr::parse(bytes_of(out)).has_value());
}

TEST(Dhcpv4, EmitRejectsWhatItCannotEncode) {
  Dhcpv4Repr r = reply(DhcpMessageType::offer);
  const std::array<std::string, 1> bad{"bad..name"};
  r.search_domains = bad;
  std::vector<uint8_t> out(512, 0xaa);
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(512, 0xaa));

  r = reply(DhcpMessageType::offer);
  std::vector<uint8_t> small(r.len() - 1, 0xaa);
  EXPECT_FALSE(r.emit(mut_bytes_of(small)));
  EXPECT_EQ(small, std::vector<uint8_t>(r.len() - 1, 0xaa));
}

}  // namespace
}  // namespace moat::wire
