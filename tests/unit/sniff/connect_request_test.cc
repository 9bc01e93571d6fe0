// R-TLS-8: CONNECT request heads from the guest and the proxy's answers.
#include <gtest/gtest.h>

#include <string>

#include "sniff/connect_request.h"
#include "sniff/sniff.h"

namespace moat::http {
namespace {

ConnectRequest req(const std::string& s) {
  return parse_connect_request(Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()));
}
ProxyResponse resp(const std::string& s) {
  return parse_proxy_response(Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()));
}

TEST(ConnectRequestTest, NameAndPort) {
  const std::string head = "CONNECT Example.COM.:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl\r\n\r\n";
  auto r = req(head + "\x16\x03\x01");  // bytes after the head are not part of it
  ASSERT_EQ(r.status, ParseStatus::ok);
  EXPECT_EQ(r.host, "example.com");
  EXPECT_FALSE(r.literal);
  EXPECT_EQ(r.port, 443);
  EXPECT_EQ(r.head_len, head.size());
}

TEST(ConnectRequestTest, Literals) {
  auto v4 = req("CONNECT 192.0.2.1:8443 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(v4.status, ParseStatus::ok);
  ASSERT_TRUE(v4.literal);
  EXPECT_EQ(v4.literal->to_string(), "192.0.2.1");
  EXPECT_TRUE(v4.host.empty());
  EXPECT_EQ(v4.port, 8443);
  auto v6 = req("CONNECT [2001:db8::1]:443 HTTP/1.0\r\n\r\n");
  ASSERT_EQ(v6.status, ParseStatus::ok);
  ASSERT_TRUE(v6.literal);
  EXPECT_TRUE(v6.literal->is_v6);
  EXPECT_EQ(v6.port, 443);
  // IPv4-mapped IPv6 is normalised to IPv4 (R-POL-4).
  auto mapped = req("CONNECT [::ffff:192.0.2.9]:443 HTTP/1.1\r\n\r\n");
  ASSERT_EQ(mapped.status, ParseStatus::ok);
  EXPECT_FALSE(mapped.literal->is_v6);
}

TEST(ConnectRequestTest, Prefixes) {
  const std::string full = "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n";
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_EQ(req(full.substr(0, n)).status, ParseStatus::need_more) << n;
  }
  EXPECT_EQ(req(full).status, ParseStatus::ok);
  EXPECT_TRUE(starts_connect(Bytes(reinterpret_cast<const std::byte*>("CONN"), 4)));
  EXPECT_FALSE(starts_connect(Bytes(reinterpret_cast<const std::byte*>("GET "), 4)));
}

TEST(ConnectRequestTest, Malformed) {
  const char* bad[] = {
      "GET / HTTP/1.1\r\n\r\n",
      "CONNECT example.com HTTP/1.1\r\n\r\n",           // no port
      "CONNECT example.com:0 HTTP/1.1\r\n\r\n",         // port 0
      "CONNECT example.com:65536 HTTP/1.1\r\n\r\n",     // port too large
      "CONNECT example.com:44a HTTP/1.1\r\n\r\n",
      "CONNECT :443 HTTP/1.1\r\n\r\n",
      "CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n",       // IPv6 without brackets
      "CONNECT [2001:db8::1]443 HTTP/1.1\r\n\r\n",
      "CONNECT [192.0.2.1]:443 HTTP/1.1\r\n\r\n",       // brackets around IPv4
      "CONNECT [2001:db8::1:443 HTTP/1.1\r\n\r\n",
      "CONNECT exa_mple..com:443 HTTP/1.1\r\n\r\n",     // invalid name
      "CONNECT  example.com:443 HTTP/1.1\r\n\r\n",      // two spaces
      "CONNECT example.com:443 HTTP/1.1 x\r\n\r\n",
      "CONNECT example.com:443 HTTP/2\r\n\r\n",
      "CONNECT example.com:443 HTTP/1.1\n\n",           // bare LF
      "CONNECT example.com:443 HTTP/1.1\r\nNoColon\r\n\r\n",
      "CONNECT example.com:443 HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "CONNECT example.com:443 HTTP/1.1\r\n: x\r\n\r\n",
      "CONNECT exa\rmple.com:443 HTTP/1.1\r\n\r\n",
  };
  for (const char* b : bad) EXPECT_EQ(req(b).status, ParseStatus::malformed) << b;
  // A NUL anywhere in the head.
  std::string nul = "CONNECT example.com:443 HTTP/1.1\r\nX: a";
  nul += '\0';
  nul += "\r\n\r\n";
  EXPECT_EQ(req(nul).status, ParseStatus::malformed);
  // No end of head within 16 KiB.
  std::string big = "CONNECT example.com:443 HTTP/1.1\r\nX: " + std::string(sniff::kMaxFirstFlight, 'a');
  EXPECT_EQ(req(big).status, ParseStatus::malformed);
}

TEST(ProxyResponseTest, StatusAndHead) {
  const std::string ok = "HTTP/1.1 200 Connection established\r\n\r\n";
  auto r = resp(ok);
  ASSERT_EQ(r.status, ParseStatus::ok);
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.head_len, ok.size());
  auto r2 = resp("HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\nbody");
  ASSERT_EQ(r2.status, ParseStatus::ok);
  EXPECT_EQ(r2.code, 407);
  EXPECT_EQ(resp("HTTP/1.1 200\r\n\r\n").code, 200);  // no reason phrase
  for (size_t n = 0; n < ok.size(); ++n) EXPECT_EQ(resp(ok.substr(0, n)).status, ParseStatus::need_more) << n;
}

TEST(ProxyResponseTest, Malformed) {
  const char* bad[] = {"SSH-2.0-x\r\n\r\n", "HTTP/1.1 20 x\r\n\r\n", "HTTP/1.1 2000 x\r\n\r\n",
                       "HTTP/1.1 abc x\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "HTTP/1.1 200 OK\n\n",
                       "HTTP/1.1 099 x\r\n\r\n"};
  for (const char* b : bad) EXPECT_EQ(resp(b).status, ParseStatus::malformed) << b;
}

}  // namespace
}  // namespace moat::http
