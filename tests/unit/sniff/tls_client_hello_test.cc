#include "sniff/tls_client_hello.h"

#include <gtest/gtest.h>

#include "sniff/first_flight.h"
#include "unit/sniff/client_hello_builder.h"

namespace moat::tls {
namespace {

using sniff::Kind;
using test::client_hello_message;
using test::records;

sniff::Result parse(const std::vector<uint8_t>& v, size_t n = SIZE_MAX) {
  return parse_client_hello(Bytes(reinterpret_cast<const std::byte*>(v.data()), std::min(n, v.size())));
}

TEST(ClientHello, ExtractsSniNormalised) {
  auto r = parse(records(client_hello_message("API.Example.COM.")));
  EXPECT_EQ(r.kind, Kind::name);
  EXPECT_EQ(r.name, "api.example.com");
}

TEST(ClientHello, EveryPrefixNeedsMore) {
  const auto v = records(client_hello_message("example.org"));
  for (size_t n = 1; n < v.size(); ++n) EXPECT_EQ(parse(v, n).kind, Kind::need_more) << n;
  EXPECT_EQ(parse(v).kind, Kind::name);
}

TEST(ClientHello, SplitAcrossManyRecords) {
  const auto msg = client_hello_message("split.example.net");
  for (size_t rec : {1, 2, 7, 50, 100}) {
    auto v = records(msg, rec);
    auto r = parse(v);
    EXPECT_EQ(r.kind, Kind::name) << rec;
    EXPECT_EQ(r.name, "split.example.net");
    EXPECT_EQ(parse(v, v.size() - 1).kind, Kind::need_more);
  }
}

TEST(ClientHello, NotTls) {
  EXPECT_EQ(parse({'G', 'E', 'T'}).kind, Kind::other);
  EXPECT_EQ(parse({22, 2}).kind, Kind::other);     // SSLv2-ish version
  EXPECT_EQ(parse({22, 3, 9}).kind, Kind::other);  // unknown minor
  EXPECT_EQ(parse({0x16}).kind, Kind::need_more);
  EXPECT_EQ(parse({}).kind, Kind::need_more);
}

TEST(ClientHello, NoSniIpLiteralAndGarbageAreNoName) {
  EXPECT_EQ(parse(records(client_hello_message(""))).kind, Kind::no_name);
  EXPECT_EQ(parse(records(client_hello_message("10.0.0.1"))).kind, Kind::no_name);
  EXPECT_EQ(parse(records(client_hello_message("bad name!"))).kind, Kind::no_name);
  auto v = records(client_hello_message("x.example"));
  v[5] = 2;  // ServerHello, not ClientHello
  EXPECT_EQ(parse(v).kind, Kind::no_name);
  auto w = records(client_hello_message("x.example"), 10);
  w[15] = 21;
  EXPECT_EQ(parse(w).kind, Kind::no_name);
}

TEST(ClientHello, LengthsPointingOutsideAreNoName) {
  auto msg = client_hello_message("a.example");
  msg[4 + 2 + 32] = 200;  // session id length > 32
  EXPECT_EQ(parse(records(msg)).kind, Kind::no_name);
  auto m2 = client_hello_message("a.example");
  m2[m2.size() - 5 - 9 - 2] = 0xff;  // SNI name length beyond the extension
  EXPECT_EQ(parse(records(m2)).kind, Kind::no_name);
}

TEST(ClientHello, BoundedAt16KiB) {
  // A hello larger than 16 KiB (padding) never yields a name, and needs no more than that.
  auto v = records(client_hello_message("big.example", 17000));
  EXPECT_EQ(parse(v).kind, Kind::no_name);
  EXPECT_EQ(parse(v, sniff::kMaxFirstFlight).kind, Kind::no_name);
  // Just below the bound still works.
  auto ok = records(client_hello_message("big.example", 15000));
  EXPECT_EQ(parse(ok).kind, Kind::name);
}

TEST(FirstFlight, ClassifiesTlsHttpAndOther) {
  auto v = records(client_hello_message("s.example"));
  auto c = sniff::classify_first_flight(Bytes(reinterpret_cast<const std::byte*>(v.data()), v.size()), false);
  EXPECT_EQ(c.kind, Kind::name);
  EXPECT_EQ(c.source, sniff::Source::sni);
  const std::string ssh = "SSH-2.0-OpenSSH_9.2\r\n";
  c = sniff::classify_first_flight(Bytes(reinterpret_cast<const std::byte*>(ssh.data()), ssh.size()), false);
  EXPECT_EQ(c.kind, Kind::no_name);
  const std::string get = "GET / HTTP/1.1\r\nHost: h.example:8080\r\n\r\n";
  c = sniff::classify_first_flight(Bytes(reinterpret_cast<const std::byte*>(get.data()), get.size()), false);
  EXPECT_EQ(c.kind, Kind::name);
  EXPECT_EQ(c.source, sniff::Source::host);
  EXPECT_EQ(c.name, "h.example");
  c = sniff::classify_first_flight(Bytes(reinterpret_cast<const std::byte*>(get.data()), 10), false);
  EXPECT_EQ(c.kind, Kind::need_more);
  c = sniff::classify_first_flight(Bytes(reinterpret_cast<const std::byte*>(get.data()), 10), true);
  EXPECT_EQ(c.kind, Kind::no_name);
  c = sniff::classify_first_flight(Bytes(), true);
  EXPECT_EQ(c.kind, Kind::no_name);
}

}  // namespace
}  // namespace moat::tls
