#include "sniff/http_head.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::http {
namespace {

using sniff::Kind;

sniff::Result parse(std::string_view s) {
  return parse_request_head(Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()));
}

TEST(HttpHead, HostHeaderGivesTheName) {
  auto r = parse("GET /index.html HTTP/1.1\r\nUser-Agent: x\r\nHost: WWW.Example.org.:8080\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(r.kind, Kind::name);
  EXPECT_EQ(r.name, "www.example.org");
  EXPECT_EQ(parse("POST / HTTP/1.0\r\nhost:a.example\r\n\r\nbody").name, "a.example");
}

TEST(HttpHead, PrefixesNeedMore) {
  const std::string req = "DELETE /x HTTP/1.1\r\nHost: a.example\r\n\r\n";
  for (size_t n = 1; n < req.size(); ++n) EXPECT_EQ(parse(req.substr(0, n)).kind, Kind::need_more) << n;
  EXPECT_EQ(parse(req).kind, Kind::name);
}

TEST(HttpHead, OtherProtocols) {
  EXPECT_EQ(parse("SSH-2.0-x\r\n").kind, Kind::other);
  EXPECT_EQ(parse("get / HTTP/1.1\r\n").kind, Kind::other);  // methods are case-sensitive
  EXPECT_EQ(parse("GETX").kind, Kind::other);
  EXPECT_EQ(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").kind, Kind::other);  // h2c preface
}

TEST(HttpHead, NoUsableHost) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\n\r\n").kind, Kind::no_name);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n").kind, Kind::no_name);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n").kind, Kind::no_name);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n").kind, Kind::no_name);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a b\r\n\r\n").kind, Kind::no_name);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost : a.example\r\n\r\n").kind, Kind::no_name);
  EXPECT_EQ(parse("GET / SPDY/3\r\nHost: a.example\r\n\r\n").kind, Kind::no_name);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nno colon\r\n\r\n").kind, Kind::no_name);
}

TEST(HttpHead, AbsoluteFormMustMatchHost) {
  EXPECT_EQ(parse("GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n").kind, Kind::name);
  EXPECT_EQ(parse("GET http://A.example.:80/x HTTP/1.1\r\nHost: a.example\r\n\r\n").kind, Kind::name);
  auto r = parse("GET http://evil.example/x HTTP/1.1\r\nHost: good.example\r\n\r\n");
  EXPECT_EQ(r.kind, Kind::mismatch);
  EXPECT_EQ(r.name, "good.example");
  EXPECT_EQ(parse("GET http://u@evil.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n").kind, Kind::mismatch);
}

TEST(HttpHead, ConnectAuthority) {
  auto r = parse("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n");
  EXPECT_EQ(r.kind, Kind::connect);
  EXPECT_EQ(r.name, "api.example.com");
  EXPECT_EQ(parse("CONNECT 1.2.3.4:443 HTTP/1.1\r\n\r\n").kind, Kind::no_name);
}

TEST(HttpHead, BoundedAt16KiB) {
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(sniff::kMaxFirstFlight, 'a');
  EXPECT_EQ(parse(big).kind, Kind::no_name);
}

}  // namespace
}  // namespace moat::http
