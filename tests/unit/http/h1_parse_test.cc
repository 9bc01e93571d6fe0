#include "http/h1_parse.h"

#include <gtest/gtest.h>

#include <string>

#include "http/http.h"

namespace moat::http {
namespace {

const char* parse(std::string_view s, RequestHead* h) { return parse_request_head(s, h); }

TEST(H1Parse, RequestHead) {
  RequestHead h;
  ASSERT_EQ(parse("POST /a?b HTTP/1.1\r\nHost: a.example\r\nContent-Length: 12\r\n\r\n", &h), nullptr);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/a?b");
  EXPECT_EQ(h.host, "a.example");
  EXPECT_EQ(h.body, BodyKind::length);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_EQ(h.fields, 2u);
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nHost:  a.example \t\r\nTransfer-Encoding: x\r\n\r\n", &h),
            std::string_view("unsupported Transfer-Encoding"));
  ASSERT_EQ(parse("PUT / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: Chunked\r\n\r\n", &h), nullptr);
  EXPECT_EQ(h.body, BodyKind::chunked);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", &h), nullptr);
  EXPECT_TRUE(h.upgrade);
  ASSERT_EQ(parse("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", &h), nullptr);
  EXPECT_TRUE(h.connect);
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &h), nullptr);
  EXPECT_EQ(h.body, BodyKind::none);
}

TEST(H1Parse, StrictFraming) {
  RequestHead h;
  auto why = [&](std::string_view s) {
    const char* r = parse(s, &h);
    return std::string(r ? r : "ok");
  };
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "Transfer-Encoding with Content-Length");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), "unsupported Transfer-Encoding");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "unsupported Transfer-Encoding");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), "duplicate Content-Length");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n"), "invalid Content-Length");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), "invalid Content-Length");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n"), "invalid Content-Length");
  EXPECT_EQ(why("GET / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), "Transfer-Encoding on HTTP/1.0");
  EXPECT_EQ(why("GET / HTTP/1.1\r\n\r\n"), "missing Host");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), "duplicate Host");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), "malformed header field");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), "malformed header field");
  EXPECT_EQ(why("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n"), "malformed header field");
  EXPECT_EQ(why("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), "unsupported HTTP version");
  EXPECT_EQ(why("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), "malformed request target");
  EXPECT_EQ(why("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), "unsupported HTTP version");
  EXPECT_EQ(why("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), "malformed method");
  EXPECT_EQ(why("CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"), "CONNECT with a body");
}

TEST(H1Parse, TooManyFields) {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (size_t i = 0; i < kMaxFields; ++i) s += "X: y\r\n";
  s += "\r\n";
  RequestHead h;
  EXPECT_EQ(parse(s, &h), std::string_view("too many header fields"));
}

std::string dechunk(std::string_view in, ChunkedDecoder::Status* st, size_t* used) {
  ChunkedDecoder d;
  std::string data;
  *st = d.feed(in, used, [&](std::string_view s) { data += s; });
  return data;
}

TEST(H1Parse, Chunked) {
  ChunkedDecoder::Status st;
  size_t used = 0;
  const std::string body = "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
  EXPECT_EQ(dechunk(body, &st, &used), "helloabcdefghijklmnopqrstuvwxyz");
  EXPECT_EQ(st, ChunkedDecoder::Status::done);
  EXPECT_EQ(used, body.size() - 4);
  // One byte at a time gives the same result.
  ChunkedDecoder d;
  std::string data;
  size_t total = 0;
  for (size_t i = 0; i < body.size() - 4; ++i) {
    size_t u = 0;
    st = d.feed(std::string_view(body).substr(i, 1), &u, [&](std::string_view s) { data += s; });
    total += u;
  }
  EXPECT_EQ(st, ChunkedDecoder::Status::done);
  EXPECT_EQ(total, body.size() - 4);
  EXPECT_EQ(data, "helloabcdefghijklmnopqrstuvwxyz");

  dechunk("g\r\n", &st, &used);
  EXPECT_EQ(st, ChunkedDecoder::Status::error);
  dechunk("5\r\nhelloX\r\n", &st, &used);
  EXPECT_EQ(st, ChunkedDecoder::Status::error);
  dechunk("5\nhello\r\n", &st, &used);
  EXPECT_EQ(st, ChunkedDecoder::Status::error);
  dechunk("1000000000000000\r\n", &st, &used);
  EXPECT_EQ(st, ChunkedDecoder::Status::error);
  dechunk("0\r\nX\n\r\n", &st, &used);
  EXPECT_EQ(st, ChunkedDecoder::Status::error);
  dechunk("5;" + std::string(5000, 'e') + "\r\n", &st, &used);
  EXPECT_EQ(st, ChunkedDecoder::Status::error);
}

TEST(H1Parse, StatusLine) {
  int s = 0;
  EXPECT_TRUE(parse_status_line("HTTP/1.1 101 Switching Protocols", &s));
  EXPECT_EQ(s, 101);
  EXPECT_TRUE(parse_status_line("HTTP/1.0 200", &s));
  EXPECT_FALSE(parse_status_line("HTTP/1.1 20 OK", &s));
  EXPECT_FALSE(parse_status_line("HTTP/2 200 OK", &s));
  EXPECT_FALSE(parse_status_line("HTTP/1.1 2000 OK", &s));
}

}  // namespace
}  // namespace moat::http
