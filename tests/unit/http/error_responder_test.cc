#include "http/error_responder.h"

#include <gtest/gtest.h>

#include "h2_peer.h"
#include "test_sink.h"

namespace moat::http {
namespace {

using testing::b;
using testing::H2Peer;
using testing::RecordingSink;

TEST(ErrorResponder, Http1ExactBytes) {
  for (size_t step : {size_t(0), size_t(1)}) {
    RecordingSink sink;
    ErrorResponder r(Alpn::http1, "api.example.com:443", "failed TLS verification: certificate has expired", sink);
    const std::string req = "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
    Next next = Next::relay;
    for (size_t i = 0; i < req.size(); i += step ? step : req.size()) {
      EXPECT_EQ(next, Next::relay);
      next = r.from_guest(b(std::string_view(req).substr(i, step ? step : req.size())));
    }
    EXPECT_EQ(next, Next::close);
    EXPECT_EQ(sink.guest,
              "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 84\r\nConnection: close\r\n\r\n"
              "moat: upstream api.example.com:443 failed TLS verification: certificate has expired\n");
    EXPECT_EQ(r.answered(), 1u);
  }
}

TEST(ErrorResponder, Http1AnswersEvenAnOversizedHead) {
  RecordingSink sink;
  ErrorResponder r(Alpn::none, "a.example:443", "connection refused", sink);
  const std::string junk(kMaxHeaderBlock + 10, 'x');
  EXPECT_EQ(r.from_guest(b(junk)), Next::close);
  EXPECT_EQ(sink.guest.substr(0, 24), "HTTP/1.1 502 Bad Gateway");
}

TEST(ErrorResponder, Http2AnswersEachRequestThenGoaway) {
  RecordingSink sink;
  MemoryBudget budget(0);
  ErrorResponder r(Alpn::h2, "api.example.com:443", "failed TLS verification: self-signed certificate", sink, &budget);
  H2Peer client(false);
  const int32_t a = client.request(H2Peer::get("api.example.com", "/a"));
  const int32_t c = client.request(H2Peer::get("api.example.com", "/c"));
  Next next = Next::relay;
  for (int round = 0; round < 10 && next == Next::relay; ++round) {
    const std::string out = client.take();
    if (out.empty()) break;
    next = r.from_guest(b(out));
    client.recv(std::exchange(sink.guest, std::string()));
  }
  EXPECT_EQ(next, Next::close);
  EXPECT_EQ(r.answered(), 2u);
  for (int32_t id : {a, c}) {
    EXPECT_EQ(client.messages[id].header(":status"), "502");
    EXPECT_EQ(client.messages[id].header("content-type"), "text/plain");
    EXPECT_EQ(client.messages[id].body,
              "moat: upstream api.example.com:443 failed TLS verification: self-signed certificate\n");
  }
  EXPECT_EQ(client.goaway_error, NGHTTP2_NO_ERROR);
  EXPECT_EQ(client.goaway_last, c);
}

TEST(ErrorResponder, Http2GarbageCloses) {
  RecordingSink sink;
  ErrorResponder r(Alpn::h2, "a.example:443", "x", sink);
  EXPECT_EQ(r.from_guest(b("GET / HTTP/1.1\r\n\r\n")), Next::close);
  EXPECT_FALSE(sink.events.empty());
}

}  // namespace
}  // namespace moat::http
