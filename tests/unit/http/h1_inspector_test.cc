#include "http/h1_inspector.h"

#include <gtest/gtest.h>

#include <string>

#include "http/inspector.h"
#include "http/local_response.h"
#include "test_sink.h"

namespace moat::http {
namespace {

using testing::b;
using testing::RecordingSink;

constexpr std::string_view kHost = "api.example.com";

// Feeds `guest` in pieces of `step` bytes (0 = all at once); returns the last Next.
Next feed_guest(H1Inspector& in, std::string_view guest, size_t step) {
  Next next = Next::relay;
  if (step == 0) return in.from_guest(b(guest));
  for (size_t i = 0; i < guest.size(); i += step) next = in.from_guest(b(guest.substr(i, step)));
  return next;
}
Next feed_upstream(H1Inspector& in, std::string_view up, size_t step) {
  Next next = Next::relay;
  if (step == 0) return in.from_upstream(b(up));
  for (size_t i = 0; i < up.size(); i += step) next = in.from_upstream(b(up.substr(i, step)));
  return next;
}

const std::string k421 =
    "HTTP/1.1 421 Misdirected Request\r\nContent-Type: text/plain\r\nContent-Length: 99\r\nConnection: close\r\n\r\n"
    "moat: misdirected request: this connection is for api.example.com, the request is for evil.example\n";

TEST(H1Inspector, RequestsPassUnchangedAtAnySplit) {
  const std::string reqs =
      "GET /a HTTP/1.1\r\nHost: api.example.com\r\nAccept: */*\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: API.Example.Com.:443\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /c HTTP/1.1\r\nhost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
      "OPTIONS * HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
      "GET https://api.example.com/abs HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
  for (size_t step : {0, 1, 2, 3, 7, 64}) {
    RecordingSink sink;
    MemoryBudget budget(0);
    H1Inspector in(kHost, sink, &budget);
    EXPECT_EQ(feed_guest(in, reqs, step), Next::relay) << step;
    EXPECT_EQ(sink.upstream, reqs) << step;
    EXPECT_EQ(sink.scanned, "helloabc") << step;
    EXPECT_TRUE(sink.guest.empty());
    EXPECT_TRUE(sink.events.empty());
    EXPECT_EQ(in.outstanding(), 5u);
    EXPECT_EQ(in.held_bytes(), 0u);
  }
}

TEST(H1Inspector, WholeRequestsInOneReadAreForwardedWithoutCopies) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  const std::string reqs = "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
  ASSERT_EQ(in.from_guest(b(reqs)), Next::relay);
  EXPECT_EQ(sink.upstream, reqs);
  EXPECT_LE(sink.upstream_calls, 3u);  // one run per accepted head at most, no per-byte output
}

TEST(H1Inspector, HostMismatchGets421AndCloses) {
  for (size_t step : {0, 1}) {
    RecordingSink sink;
    H1Inspector in(kHost, sink, nullptr);
    const Next next = feed_guest(in, "GET /x?y HTTP/1.1\r\nHost: evil.example:443\r\n\r\nGET / HTTP/1.1\r\n", step);
    EXPECT_EQ(next, Next::close);
    EXPECT_TRUE(in.closing());
    EXPECT_EQ(sink.upstream, "");
    EXPECT_EQ(sink.guest, k421);
    ASSERT_EQ(sink.events.size(), 1u);
    EXPECT_EQ(sink.events[0].kind, EventKind::authority_mismatch);
    EXPECT_EQ(sink.events[0].host, "evil.example");
    EXPECT_EQ(sink.events[0].method, "GET");
    EXPECT_EQ(sink.events[0].path, "/x?y");
    EXPECT_EQ(in.from_guest(b("more")), Next::close);
    EXPECT_EQ(sink.upstream, "");
  }
}

TEST(H1Inspector, AbsoluteFormAndConnectTargetsMustMatch) {
  {
    RecordingSink sink;
    H1Inspector in(kHost, sink, nullptr);
    EXPECT_EQ(in.from_guest(b("GET http://evil.example/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n")), Next::close);
    ASSERT_EQ(sink.events.size(), 1u);
    EXPECT_EQ(sink.events[0].host, "evil.example");
    EXPECT_EQ(sink.guest, k421);
  }
  {
    RecordingSink sink;
    H1Inspector in(kHost, sink, nullptr);
    EXPECT_EQ(in.from_guest(b("CONNECT evil.example:443 HTTP/1.1\r\nHost: api.example.com\r\n\r\n")), Next::close);
    EXPECT_EQ(sink.guest, k421);
  }
}

TEST(H1Inspector, IpAuthority) {
  RecordingSink sink;
  H1Inspector in("fd00::1", sink, nullptr);
  EXPECT_EQ(in.from_guest(b("GET / HTTP/1.1\r\nHost: [fd00::1]:8443\r\n\r\n")), Next::relay);
  RecordingSink sink2;
  H1Inspector in2("fd00::1", sink2, nullptr);
  EXPECT_EQ(in2.from_guest(b("GET / HTTP/1.1\r\nHost: fd00::1\r\n\r\n")), Next::close);  // unbracketed: invalid
  EXPECT_EQ(sink2.guest.substr(0, 24), "HTTP/1.1 400 Bad Request");
}

TEST(H1Inspector, MalformedGets400ExactBytes) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  EXPECT_EQ(in.from_guest(b("GET / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")),
            Next::close);
  EXPECT_EQ(sink.guest,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 68\r\nConnection: close\r\n\r\n"
            "moat: malformed HTTP request: Transfer-Encoding with Content-Length\n");
  EXPECT_EQ(sink.upstream, "");
  ASSERT_EQ(sink.events.size(), 1u);
  EXPECT_EQ(sink.events[0].kind, EventKind::malformed);
  EXPECT_EQ(sink.events[0].method, "");  // the head did not parse: no request to name
  RecordingSink sink2;
  H1Inspector in2(kHost, sink2, nullptr);
  EXPECT_EQ(in2.from_guest(b("POST /x HTTP/1.1\r\nHost: bad host\r\n\r\n")), Next::close);
  EXPECT_EQ(sink2.last_event().reason, "invalid Host");
  EXPECT_EQ(sink2.last_event().method, "POST");
  EXPECT_EQ(sink2.last_event().path, "/x");
}

TEST(H1Inspector, MalformedVariants) {
  for (std::string_view req : {
           std::string_view("GET / HTTP/1.1\r\n\r\n"),
           std::string_view("GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: api.example.com\r\n\r\n"),
           std::string_view("GET / HTTP/1.1\nHost: api.example.com\r\n\r\n"),
           std::string_view("GET / HTTP/1.1\r\nHost: api.example.com\r\rX: y\r\n\r\n"),
           std::string_view("GET / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n"),
           std::string_view("GET / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: identity\r\n\r\n"),
           std::string_view("GET / HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: x\r\n\r\n"),
           std::string_view("GET * HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
           std::string_view("GET a HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
           std::string_view("\r\n\rX"),
           std::string_view("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
           std::string_view("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
       }) {
    for (size_t step : {0, 1}) {
      RecordingSink sink;
      H1Inspector in(kHost, sink, nullptr);
      EXPECT_EQ(feed_guest(in, req, step), Next::close) << req;
      EXPECT_EQ(sink.guest.substr(0, 25), "HTTP/1.1 400 Bad Request\r") << req;
      EXPECT_EQ(sink.upstream, "") << req;
    }
  }
}

TEST(H1Inspector, NonHttpIsRefusedAtOnce) {
  for (std::string_view garbage : {std::string_view("\x16\x03\x01\x02\x00"), std::string_view("SSH-2.0-x\r\n"),
                                    std::string_view("GETTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT")}) {
    RecordingSink sink;
    H1Inspector in(kHost, sink, nullptr);
    EXPECT_EQ(in.from_guest(b(garbage)), Next::close) << garbage;
    EXPECT_EQ(sink.last_event().reason, "malformed method");
    EXPECT_EQ(in.held_bytes(), 0u);
  }
}

TEST(H1Inspector, LeadingEmptyLinesAreIgnored) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  EXPECT_EQ(feed_guest(in, "\r\n\r\nGET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n", 1), Next::relay);
  EXPECT_EQ(sink.upstream, "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
}

TEST(H1Inspector, HeaderLimits) {
  MemoryBudget budget(0);
  {
    RecordingSink sink;
    H1Inspector in(kHost, sink, &budget);
    std::string head = "GET / HTTP/1.1\r\nHost: api.example.com\r\nX: ";
    EXPECT_EQ(in.from_guest(b(head)), Next::relay);
    const std::string filler(1000, 'a');
    Next next = Next::relay;
    for (int i = 0; i < 80 && next == Next::relay; ++i) {
      next = in.from_guest(b(filler));
      EXPECT_LE(in.held_bytes(), kMaxHeaderBlock);
      EXPECT_LE(budget.used(), 2 * kMaxHeaderBlock);
    }
    EXPECT_EQ(next, Next::close);
    EXPECT_EQ(sink.guest.substr(0, 24), "HTTP/1.1 400 Bad Request");
    EXPECT_EQ(sink.last_event().kind, EventKind::limit);
    EXPECT_EQ(sink.upstream, "");
  }
  EXPECT_EQ(budget.used(), 0u);
  {
    RecordingSink sink;
    H1Inspector in(kHost, sink, &budget);
    std::string head = "GET / HTTP/1.1\r\nHost: api.example.com\r\n";
    for (size_t i = 0; i < kMaxFields; ++i) head += "X: y\r\n";
    head += "\r\n";
    EXPECT_EQ(in.from_guest(b(head)), Next::close);
    EXPECT_EQ(sink.last_event().reason, "too many header fields");
  }
}

TEST(H1Inspector, BudgetRefusalCloses) {
  MemoryBudget budget(1000);
  RecordingSink sink;
  H1Inspector in(kHost, sink, &budget);
  EXPECT_EQ(in.from_guest(b("GET / HTTP/1.1\r\nHost: api.example.com\r\nX: " + std::string(2000, 'a'))), Next::close);
  EXPECT_EQ(sink.last_event().reason, "memory budget");
}

TEST(H1Inspector, PipelinedAnswerWaitsForEarlierResponses) {
  for (size_t step : {0, 1, 5}) {
    RecordingSink sink;
    H1Inspector in(kHost, sink, nullptr);
    const std::string good = "GET /1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
    EXPECT_EQ(feed_guest(in, good + "GET /2 HTTP/1.1\r\nHost: evil.example\r\n\r\nGET /3 HTTP/1.1\r\nHost: api.example.com\r\n\r\n", step),
              Next::relay);
    EXPECT_EQ(sink.upstream, good);  // /2 refused, /3 never forwarded
    EXPECT_EQ(sink.guest, "");       // the 421 waits for /1's response
    const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
    EXPECT_EQ(feed_upstream(in, resp + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", step), Next::close);
    EXPECT_EQ(sink.guest, resp + k421) << step;  // the stray response after is dropped
  }
}

TEST(H1Inspector, ResponseFramingIsFollowed) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  const std::string r = "HEAD / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                        "GET /c HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                        "GET /n HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                        "GET /bad HTTP/1.1\r\nHost: other.example\r\n\r\n";
  EXPECT_EQ(in.from_guest(b(r)), Next::relay);
  EXPECT_EQ(in.outstanding(), 3u);
  const std::string responses =
      "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"              // HEAD: no body
      "HTTP/1.1 100 Continue\r\n\r\n"                                // interim
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nHTTP\r\n0\r\n\r\n"
      "HTTP/1.1 204 No Content\r\n\r\n";
  for (size_t i = 0; i < responses.size(); ++i) {
    const Next next = in.from_upstream(b(std::string_view(responses).substr(i, 1)));
    EXPECT_EQ(next, i + 1 == responses.size() ? Next::close : Next::relay) << i;
  }
  EXPECT_EQ(sink.guest.substr(0, responses.size()), responses);
  EXPECT_EQ(sink.guest.substr(responses.size(), 32), "HTTP/1.1 421 Misdirected Request");
}

TEST(H1Inspector, WebSocketUpgradeBecomesOpaque) {
  for (size_t step : {0, 1}) {
    RecordingSink sink;
    H1Inspector in(kHost, sink, nullptr);
    const std::string req = "GET /ws HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    EXPECT_EQ(feed_guest(in, req + "\x81\x05" "early", step), Next::relay);
    EXPECT_EQ(sink.upstream, req);  // the frame sent before the 101 waits for it
    const std::string sw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi";
    EXPECT_EQ(feed_upstream(in, sw, step), Next::relay);
    EXPECT_EQ(sink.guest, sw);
    EXPECT_TRUE(in.opaque());
    EXPECT_EQ(sink.upstream, req + "\x81\x05" "early");
    EXPECT_EQ(feed_guest(in, "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", step), Next::relay);  // opaque now
    EXPECT_EQ(sink.upstream, req + "\x81\x05" "earlyGET / HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    EXPECT_EQ(sink.scanned, "\x81\x05" "earlyGET / HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    EXPECT_EQ(sink.last_scan_kind, Payload::h1_opaque);
    ASSERT_FALSE(sink.events.empty());
    EXPECT_EQ(sink.last_event().kind, EventKind::upgraded);
  }
}

TEST(H1Inspector, RefusedUpgradeResumesParsing) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  const std::string req = "GET / HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: h2c\r\n\r\n";
  EXPECT_EQ(in.from_guest(b(req + "GET /2 HTTP/1.1\r\nHost: evil.example\r\n\r\n")), Next::relay);
  EXPECT_EQ(sink.upstream, req);
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  EXPECT_EQ(in.from_upstream(b(resp)), Next::close);  // the held request is parsed: 421
  EXPECT_EQ(sink.guest, resp + k421);
  EXPECT_FALSE(in.opaque());
}

TEST(H1Inspector, H2cUpgradeNeverMakesTheConnectionOpaque) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  const std::string req = "GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
  EXPECT_EQ(in.from_guest(b(req)), Next::relay);
  EXPECT_EQ(in.from_upstream(b("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")), Next::relay);
  EXPECT_FALSE(in.opaque());
  EXPECT_EQ(sink.last_event().kind, EventKind::upstream_framing);
  EXPECT_EQ(in.from_guest(b("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")), Next::close);  // no place for a 400
  EXPECT_EQ(sink.upstream, req);
}

TEST(H1Inspector, A101InsideABodyIsNotASwitch) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  const std::string reqs = "GET /1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                           "GET /ws HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\n\r\n";
  EXPECT_EQ(in.from_guest(b(reqs)), Next::relay);
  const std::string body = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  const std::string r1 = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  EXPECT_EQ(in.from_upstream(b(r1)), Next::relay);
  EXPECT_FALSE(in.opaque());
  EXPECT_EQ(in.from_upstream(b("HTTP/1.1 101 Switching Protocols\r\n\r\n")), Next::relay);
  EXPECT_TRUE(in.opaque());
}

TEST(H1Inspector, ConnectTunnelBecomesOpaqueAfter2xx) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  const std::string req = "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n";
  EXPECT_EQ(in.from_guest(b(req + "\x16\x03\x01")), Next::relay);
  EXPECT_EQ(sink.upstream, req);
  EXPECT_EQ(in.from_upstream(b("HTTP/1.1 200 Connection established\r\n\r\n")), Next::relay);
  EXPECT_TRUE(in.opaque());
  EXPECT_EQ(sink.upstream, req + "\x16\x03\x01");
}

TEST(H1Inspector, MalformedChunkedBodyIsCutAndAnswered) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  const std::string head = "POST / HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(in.from_guest(b(head + "3\r\nabc\r\n")), Next::relay);
  EXPECT_EQ(in.from_guest(b("zz\r\n")), Next::close);  // nothing of this request was answered yet
  EXPECT_EQ(sink.upstream, head + "3\r\nabc\r\n");
  EXPECT_EQ(sink.guest.substr(0, 24), "HTTP/1.1 400 Bad Request");
}

TEST(H1Inspector, QueuedAnswerGoesOutAtUpstreamEof) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  EXPECT_EQ(in.from_guest(b("GET /1 HTTP/1.0\r\nHost: api.example.com\r\n\r\nGET / HTTP/1.1\r\nHost: evil.example\r\n\r\n")),
            Next::relay);
  EXPECT_EQ(in.from_upstream(b("HTTP/1.0 200 OK\r\n\r\nuntil close")), Next::relay);
  EXPECT_EQ(in.upstream_eof(), Next::close);
  EXPECT_EQ(sink.guest, "HTTP/1.0 200 OK\r\n\r\nuntil close" + k421);
}

TEST(H1Inspector, UnfollowableUpstreamClosesWhenItMatters) {
  RecordingSink sink;
  H1Inspector in(kHost, sink, nullptr);
  EXPECT_EQ(in.from_guest(b("GET / HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: websocket\r\n\r\n")), Next::relay);
  EXPECT_EQ(in.from_upstream(b("garbage\r\n")), Next::close);
  EXPECT_EQ(sink.last_event().kind, EventKind::upstream_framing);
}

TEST(H1Inspector, FacadePicksHttp1) {
  RecordingSink sink;
  Inspector in(kHost, Alpn::none, sink);
  EXPECT_EQ(in.alpn(), Alpn::none);
  EXPECT_EQ(in.from_guest(b("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n")), Next::close);
  EXPECT_TRUE(in.closing());
  EXPECT_EQ(sink.guest, k421);
  Alpn a;
  EXPECT_TRUE(alpn_from_string("http/1.1", &a));
  EXPECT_EQ(a, Alpn::http1);
  EXPECT_TRUE(alpn_from_string("h2", &a));
  EXPECT_EQ(a, Alpn::h2);
  EXPECT_FALSE(alpn_from_string("acme-tls/1", &a));
}

}  // namespace
}  // namespace moat::http
