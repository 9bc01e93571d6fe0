#include "wire/dhcpv6.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "unit/wire/hex_bytes.h"

namespace moat::wire {
namespace {
using namespace hex_test;

const Ipv6Addr kGuest6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
const Ipv6Addr kDns6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};

// A Solicit as ISC dhclient 4.4 sends it with -6 (RFC 8415 §8 header, §21 options):
// client id DUID-LLT, IA_NA with IAID 0x6f000002 and no address, elapsed time, ORO.
constexpr std::string_view kSolicit =
    "01 a1b2c3"                                      // Solicit, transaction id
    "0001 000e 0001 0001 2e8f3c1a 026d6f000002"      // client id: DUID-LLT, Ethernet, time, MAC
    "0003 000c 6f000002 00000e10 00001518"           // IA_NA: IAID, T1 3600, T2 5400
    "0008 0002 0000"                                 // elapsed time 0
    "0006 0004 0017 0018";                           // ORO: 23, 24

// moat's Reply to a Rapid Commit Solicit for that IA (R-NET-8), built field by field.
constexpr std::string_view kReply =
    "07 a1b2c3"                                      // Reply, same transaction id
    "0002 000a 0003 0001 026d6f000001"               // server id: DUID-LL of the gateway MAC
    "0001 000e 0001 0001 2e8f3c1a 026d6f000002"      // client id echoed
    "000e 0000"                                      // rapid commit
    "0003 0028 6f000002 00001c20 00002d00"           // IA_NA: IAID, T1 7200, T2 11520
    "  0005 0018 fd426d73006200000000000000000002"   //   IA Address: guest6
    "            00003840 00015180"                  //   preferred 14400, valid 86400
    "0017 0010 fd426d73006200000000000000000001"     // DNS servers
    "0018 000e 04636f7270 076578616d706c65 00";      // domain list: corp.example

TEST(Dhcpv6, ParsesDhclientSolicit) {
  auto m = hex(kSolicit);
  auto r = Dhcpv6Repr::parse(bytes_of(m));
  ASSERT_TRUE(r) << parse_error_name(r.error());
  EXPECT_EQ(r->type, Dhcpv6Type::solicit);
  EXPECT_EQ(r->transaction_id, 0xa1b2c3u);
  EXPECT_EQ(vec(r->client_id), hex("0001 0001 2e8f3c1a 026d6f000002"));
  EXPECT_TRUE(r->server_id.empty());
  ASSERT_TRUE(r->ia_na);
  EXPECT_EQ(r->ia_na->iaid, 0x6f000002u);
  EXPECT_EQ(r->ia_na->t1, 3600u);
  EXPECT_EQ(r->ia_na->t2, 5400u);
  EXPECT_FALSE(r->ia_na->addr);
  EXPECT_EQ(r->elapsed_time, 0);
  EXPECT_EQ(vec(r->option_request), hex("0017 0018"));
  EXPECT_FALSE(r->rapid_commit);
}

TEST(Dhcpv6, EmitsReplyByteExact) {
  const std::vector<uint8_t> server = hex("0003 0001 026d6f000001");
  const std::vector<uint8_t> client = hex("0001 0001 2e8f3c1a 026d6f000002");
  const Ipv6Addr dns[] = {kDns6};
  const std::string domains[] = {"corp.example"};
  Dhcpv6Repr r;
  r.type = Dhcpv6Type::reply;
  r.transaction_id = 0xa1b2c3;
  r.server_id = bytes_of(server);
  r.client_id = bytes_of(client);
  r.rapid_commit = true;
  r.ia_na = Dhcpv6IaNa{0x6f000002, 7200, 11520, Dhcpv6IaAddr{kGuest6, 14400, 86400}, std::nullopt};
  r.dns_servers = dns;
  r.domain_list = domains;
  const std::vector<uint8_t> want = hex(kReply);
  ASSERT_EQ(r.len(), want.size());
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, want);
  // One byte short: refused.
  std::vector<uint8_t> small(r.len() - 1);
  EXPECT_FALSE(r.emit(mut_bytes_of(small)));

  // And it reads back (server types parse too, for tests and the fuzz round trip).
  auto back = Dhcpv6Repr::parse(bytes_of(out));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->type, Dhcpv6Type::reply);
  EXPECT_TRUE(back->rapid_commit);
  ASSERT_TRUE(back->ia_na && back->ia_na->addr);
  EXPECT_EQ(back->ia_na->addr->addr, kGuest6);
  EXPECT_EQ(back->ia_na->addr->preferred_lifetime, 14400u);
  EXPECT_EQ(back->ia_na->addr->valid_lifetime, 86400u);
}

TEST(Dhcpv6, StatusAndRefreshTimeRoundTrip) {
  Dhcpv6Repr r;
  r.type = Dhcpv6Type::reply;
  r.transaction_id = 7;
  r.status = Dhcpv6Status::not_on_link;
  r.status_message = "no";
  r.information_refresh_time = 86400;
  std::vector<uint8_t> out(r.len());
  ASSERT_TRUE(r.emit(mut_bytes_of(out)));
  EXPECT_EQ(out, hex("07 000007  000d 0004 0004 6e6f  0020 0004 00015180"));
  auto back = Dhcpv6Repr::parse(bytes_of(out));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, Dhcpv6Status::not_on_link);
  EXPECT_EQ(back->status_message, "no");
  EXPECT_EQ(back->information_refresh_time, 86400u);
}

TEST(Dhcpv6, IaNaKeepsFirstAddressAndStatus) {
  auto m = hex("05 000001 0001 0004 00030001"
               "0003 004a 00000009 00000000 00000000"
               "  0005 0018 fd426d73006200000000000000000002 00000000 00000000"
               "  0005 0018 fd426d73006200000000000000000003 00000000 00000000"
               "  000d 0002 0000");
  auto r = Dhcpv6Repr::parse(bytes_of(m));
  ASSERT_TRUE(r) << parse_error_name(r.error());
  EXPECT_EQ(r->type, Dhcpv6Type::renew);
  ASSERT_TRUE(r->ia_na && r->ia_na->addr);
  EXPECT_EQ(r->ia_na->iaid, 9u);
  EXPECT_EQ(r->ia_na->addr->addr, kGuest6);
  EXPECT_EQ(r->ia_na->status, Dhcpv6Status::success);
}

TEST(Dhcpv6, UnknownOptionsAreSkipped) {
  auto m = hex("0b 000001 00ff 0003 aabbcc 0001 0002 0102");
  auto r = Dhcpv6Repr::parse(bytes_of(m));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->type, Dhcpv6Type::information_request);
  EXPECT_EQ(vec(r->client_id), hex("0102"));
}

TEST(Dhcpv6, RejectsMalformed) {
  struct Case {
    const char* what;
    std::string_view hex;
    ParseError want;
  };
  const Case cases[] = {
      {"short header", "01 0000", ParseError::truncated},
      {"relay-forw", "0c 000000", ParseError::unsupported},
      {"type 0", "00 000000", ParseError::unsupported},
      {"type 14", "0e 000000", ParseError::unsupported},
      {"option header cut", "01 000000 0001 00", ParseError::bad_option},
      {"option value past the end", "01 000000 0001 0004 0102", ParseError::bad_option},
      {"empty client id", "01 000000 0001 0000", ParseError::bad_option},
      {"short IA_NA", "01 000000 0003 0008 0000000100000000", ParseError::bad_option},
      {"IA_NA sub-option past the end", "01 000000 0003 0010 00000001 00000000 00000000 0005 0018",
       ParseError::bad_option},
      {"short IA Address", "01 000000 0003 0014 00000001 00000000 00000000 0005 0004 00000000",
       ParseError::bad_option},
      {"odd ORO", "01 000000 0006 0003 001700", ParseError::bad_option},
      {"rapid commit with a value", "01 000000 000e 0001 00", ParseError::bad_option},
      {"elapsed time of 1 byte", "01 000000 0008 0001 00", ParseError::bad_option},
      {"preference of 2 bytes", "01 000000 0007 0002 0000", ParseError::bad_option},
      {"status of 1 byte", "01 000000 000d 0001 00", ParseError::bad_option},
  };
  for (const Case& c : cases) {
    auto m = hex(c.hex);
    auto r = Dhcpv6Repr::parse(bytes_of(m));
    ASSERT_FALSE(r) << c.what;
    EXPECT_EQ(r.error(), c.want) << c.what;
  }
  // A DUID over 128 bytes.
  std::vector<uint8_t> big = hex("01 000000 0001 0081");
  big.resize(big.size() + 0x81, 0x11);
  EXPECT_FALSE(Dhcpv6Repr::parse(bytes_of(big)));
  // More than kMaxOptions options.
  std::vector<uint8_t> many = hex("01 000000");
  for (size_t i = 0; i <= Dhcpv6Repr::kMaxOptions; ++i)
    for (uint8_t b : hex("00ff 0000")) many.push_back(b);
  EXPECT_FALSE(Dhcpv6Repr::parse(bytes_of(many)));
}

TEST(Dhcpv6, EmitRefusesUnencodableDomain) {
  const std::string domains[] = {"bad..name"};
  Dhcpv6Repr r;
  r.domain_list = domains;
  std::vector<uint8_t> out(r.len() + 64);
  EXPECT_FALSE(r.emit(mut_bytes_of(out)));
}

}  // namespace
}  // namespace moat::wire
