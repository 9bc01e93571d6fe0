#include "http/h2_inspector.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "h2_peer.h"
#include "http/inspector.h"
#include "test_sink.h"

namespace moat::http {
namespace {

using testing::b;
using testing::H2Peer;
using testing::RecordingSink;

constexpr std::string_view kHost = "api.example.com";
const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// client (guest) <-> inspector <-> server (upstream), with the guest's bytes split into
// pieces of `step` (0 = as produced, -1 = random).
struct Link {
  explicit Link(std::vector<nghttp2_settings_entry> server_settings = {}, uint32_t client_peer_max = 100)
      : in(kHost, sink, &budget), client(false, {}, client_peer_max), server(true, std::move(server_settings)) {}

  void feed_guest(const std::string& bytes) {
    if (step == 0) {
      last = in.from_guest(b(bytes));
      return;
    }
    for (size_t i = 0; i < bytes.size();) {
      size_t n = step > 0 ? size_t(step) : 1 + rng() % 40;
      n = std::min(n, bytes.size() - i);
      last = in.from_guest(b(std::string_view(bytes).substr(i, n)));
      i += n;
    }
  }
  void pump() {
    for (int round = 0; round < 50; ++round) {
      bool moved = false;
      if (std::string c = client.take(); !c.empty()) {
        moved = true;
        feed_guest(c);
      }
      if (!sink.upstream.empty()) {
        moved = true;
        EXPECT_GE(server.recv(std::exchange(sink.upstream, std::string())), 0);
      }
      if (std::string s = server.take(); !s.empty()) {
        moved = true;
        for (size_t i = 0; i < s.size();) {
          size_t n = up_step == 0 ? s.size() : up_step > 0 ? size_t(up_step) : 1 + rng() % 100;
          n = std::min(n, s.size() - i);
          last = in.from_upstream(b(std::string_view(s).substr(i, n)));
          i += n;
        }
      }
      if (!sink.guest.empty()) {
        moved = true;
        guest_log += sink.guest;
        client.recv(std::exchange(sink.guest, std::string()));
      }
      if (!moved) break;
    }
  }
  // The server answers every request it has seen and not answered yet.
  void answer_all(const std::string& status = "200") {
    for (auto& [id, m] : server.messages) {
      if (id > answered_up_to && !m.headers.empty()) {
        server.respond(id, status, &ok_body);
        answered_up_to = id;
      }
    }
    pump();
  }

  RecordingSink sink;
  MemoryBudget budget{0};
  H2Inspector in;
  H2Peer client, server;
  int step = 0, up_step = 0;  // guest / upstream splits: 0 = as produced, -1 = random
  std::mt19937 rng{42};
  Next last = Next::relay;
  std::string guest_log;
  int32_t answered_up_to = 0;
  std::string ok_body = "ok";
};

std::string goaway(uint32_t last, uint32_t error, std::string_view debug = {}) {
  std::string s;
  const uint32_t len = uint32_t(8 + debug.size());
  s += char(len >> 16), s += char(len >> 8), s += char(len), s += '\x07', s += '\0';
  s += std::string(4, '\0');
  for (uint32_t v : {last, error}) s += char(v >> 24), s += char(v >> 16), s += char(v >> 8), s += char(v);
  s += debug;
  return s;
}

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string s;
  const auto len = uint32_t(payload.size());
  s += char(len >> 16), s += char(len >> 8), s += char(len), s += char(type), s += char(flags);
  s += char(stream >> 24), s += char(stream >> 16), s += char(stream >> 8), s += char(stream);
  s += payload;
  return s;
}

TEST(H2Inspector, RequestsAndResponsesPassThrough) {
  for (int step : {0, 1, 7, -1}) {
    Link l;
    l.step = step;
    l.up_step = step;
    l.pump();
    const std::string body(100000, 'x');
    const int32_t id = l.client.request(H2Peer::get("API.example.com:443", "/upload"), &body);
    l.pump();
    ASSERT_EQ(l.server.messages.count(id), 1u) << step;
    EXPECT_EQ(l.server.messages[id].header(":path"), "/upload");
    EXPECT_EQ(l.server.messages[id].body.size(), body.size());
    l.answer_all();
    EXPECT_EQ(l.client.messages[id].header(":status"), "200");
    EXPECT_EQ(l.client.messages[id].body, "ok");
    EXPECT_EQ(l.last, Next::relay);
    EXPECT_TRUE(l.sink.events.empty());
    EXPECT_EQ(l.sink.scanned.size(), body.size());
    EXPECT_EQ(l.sink.last_scan_kind, Payload::h2_data);
    EXPECT_EQ(l.in.open_streams(), 0u);  // both sides ended
    EXPECT_EQ(l.in.held_bytes(), 0u);
  }
}

TEST(H2Inspector, HpackMirrorStaysInStepOverManyRequests) {
  Link l;
  l.step = -1;
  l.up_step = -1;
  l.pump();
  for (int i = 0; i < 300; ++i) {
    auto f = H2Peer::get("api.example.com", "/item/" + std::to_string(i % 17));
    f.emplace_back("x-token", "value-" + std::to_string(i % 10));
    f.emplace_back("cookie", std::string(size_t(50 + i % 200), char('a' + i % 26)));
    l.client.request(f);
    if (i % 7 == 0) l.pump();
  }
  l.pump();
  l.answer_all();
  EXPECT_EQ(l.server.messages.size(), 300u);
  EXPECT_TRUE(l.sink.events.empty());
  EXPECT_EQ(l.last, Next::relay);
  for (auto& [id, m] : l.client.messages) EXPECT_EQ(m.header(":status"), "200") << id;
}

TEST(H2Inspector, UpstreamHeaderTableSizeIsAppliedOnAck) {
  Link l({{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0}});
  l.up_step = 1;  // the SETTINGS payload arrives one byte at a time
  l.pump();
  EXPECT_EQ(l.in.hpack_table_size(), 0u);
  for (int i = 0; i < 20; ++i) l.client.request(H2Peer::get("api.example.com", "/t"));
  l.pump();
  EXPECT_EQ(l.server.messages.size(), 20u);
  EXPECT_TRUE(l.sink.events.empty());
  // Larger than the cap: the mirror is bounded.
  Link big({{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 1u << 24}});
  big.pump();
  EXPECT_EQ(big.in.hpack_table_size(), kMaxHpackTable);
}

TEST(H2Inspector, AuthorityMismatchGets421ThenGoaway) {
  for (int step : {0, 1}) {
    Link l;
    l.step = step;
    l.up_step = step;
    l.pump();
    const int32_t good = l.client.request(H2Peer::get("api.example.com"));
    l.pump();
    const int32_t bad = l.client.request(H2Peer::get("evil.example:443", "/steal?x=1"));
    l.pump();
    EXPECT_EQ(l.last, Next::close);
    EXPECT_TRUE(l.in.closing());
    EXPECT_EQ(l.server.messages.count(bad), 0u);  // never forwarded
    EXPECT_EQ(l.client.messages[bad].header(":status"), "421");
    EXPECT_EQ(l.client.messages[bad].body,
              "moat: misdirected request: this connection is for api.example.com, the request is for evil.example\n");
    EXPECT_EQ(l.client.goaway_error, NGHTTP2_NO_ERROR);
    EXPECT_EQ(l.client.goaway_last, good);
    EXPECT_EQ(l.guest_log.substr(l.guest_log.size() - 17), goaway(uint32_t(good), 0));
    ASSERT_EQ(l.sink.events.size(), 1u);
    EXPECT_EQ(l.sink.events[0].kind, EventKind::authority_mismatch);
    EXPECT_EQ(l.sink.events[0].host, "evil.example");
    EXPECT_EQ(l.sink.events[0].method, "GET");
    EXPECT_EQ(l.sink.events[0].path, "/steal?x=1");
    EXPECT_EQ(l.sink.events[0].stream_id, uint32_t(bad));
  }
}

TEST(H2Inspector, AnswerBeforeTheUpstreamsSettingsStartsWithSettings) {
  RecordingSink sink;
  H2Inspector in(kHost, sink, nullptr);
  H2Peer client(false);
  client.request(H2Peer::get("evil.example"));
  EXPECT_EQ(in.from_guest(b(client.take())), Next::close);  // nothing from the upstream yet
  EXPECT_EQ(sink.guest.substr(0, 9), frame(4, 0, 0, ""));
  EXPECT_GE(client.recv(sink.guest), 0);
  EXPECT_EQ(client.messages[1].header(":status"), "421");
  EXPECT_EQ(client.goaway_error, NGHTTP2_NO_ERROR);
}

TEST(H2Inspector, AnswerBodyOnlyWhenTheGuestsWindowHasRoom) {
  RecordingSink sink;
  H2Inspector in(kHost, sink, nullptr);
  H2Peer client(false, {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 10}});
  client.request(H2Peer::get("evil.example"));
  EXPECT_EQ(in.from_guest(b(client.take())), Next::close);
  EXPECT_GE(client.recv(sink.guest), 0);
  EXPECT_EQ(client.messages[1].header(":status"), "421");
  EXPECT_EQ(client.messages[1].body, "");  // a body would overrun the 10-byte window
  EXPECT_EQ(client.goaway_error, NGHTTP2_NO_ERROR);
}

TEST(H2Inspector, AnswerWaitsForAnUpstreamFrameBoundary) {
  Link l;
  l.pump();
  const int32_t id = l.client.request(H2Peer::get("api.example.com"));
  l.pump();
  std::string big(50000, 'r');
  l.server.respond(id, "200", &big);
  std::string up = l.server.take();
  // Half of the upstream's response, then the guest's bad request, then the rest.
  ASSERT_EQ(l.in.from_upstream(b(std::string_view(up).substr(0, 1000))), Next::relay);
  l.client.request(H2Peer::get("evil.example"));
  EXPECT_EQ(l.in.from_guest(b(l.client.take())), Next::relay);  // queued until a boundary
  EXPECT_EQ(l.sink.guest, up.substr(0, 1000));
  EXPECT_EQ(l.in.from_upstream(b(std::string_view(up).substr(1000))), Next::close);
  EXPECT_GE(l.client.recv(l.sink.guest), 0);
  EXPECT_EQ(l.client.goaway_error, NGHTTP2_NO_ERROR);
  EXPECT_EQ(l.client.messages[3].header(":status"), "421");
}

TEST(H2Inspector, HostIsCheckedWithoutAuthority) {
  Link l;
  l.pump();
  l.client.request({{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {"host", "api.example.com"}});
  l.pump();
  EXPECT_EQ(l.server.messages.size(), 1u);
  const int32_t bad = l.client.request({{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {"host", "evil.example"}});
  l.pump();
  EXPECT_EQ(l.client.messages[bad].header(":status"), "421");
  // Both present: both must match.
  Link l2;
  l2.pump();
  const int32_t both = l2.client.request({{":method", "GET"}, {":scheme", "https"}, {":authority", "api.example.com"},
                                          {":path", "/"}, {"host", "evil.example"}});
  l2.pump();
  EXPECT_EQ(l2.client.messages[both].header(":status"), "421");
}

TEST(H2Inspector, MalformedRequestsGet400AndGoaway) {
  const std::vector<H2Peer::Fields> cases = {
      {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}},                                         // no authority
      {{":method", "GET"}, {":authority", "api.example.com"}, {":path", "/"}},                            // no :scheme
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "api.example.com"}, {":path", "/"}, {"connection", "x"}},
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "api.example.com"}, {"a", "b"}, {":path", "/"}},
      {{":method", "GET"}, {":method", "GET"}, {":scheme", "https"}, {":authority", "api.example.com"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "bad host"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "https"}, {":authority", "api.example.com"}, {":path", "/"}, {":foo", "x"}},
      {{":method", "GET"}, {":scheme", "https"}, {":protocol", "websocket"}, {":authority", "api.example.com"}, {":path", "/"}},
  };
  for (const auto& fields : cases) {
    Link l;
    l.pump();
    const int32_t id = l.client.request(fields);
    l.pump();
    EXPECT_EQ(l.last, Next::close) << fields.back().first;
    EXPECT_EQ(l.server.messages.count(id), 0u);
    EXPECT_EQ(l.client.messages[id].header(":status"), "400") << fields.back().first;
    EXPECT_EQ(l.client.goaway_error, NGHTTP2_PROTOCOL_ERROR);
    ASSERT_FALSE(l.sink.events.empty());
  }
}

// nghttp2's client lowercases names, so this block is encoded by hand with a deflater.
TEST(H2Inspector, UppercaseNameIsMalformed) {
  RecordingSink sink;
  H2Inspector in(kHost, sink, nullptr);
  nghttp2_hd_deflater* d = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&d, 4096), 0);
  const std::vector<std::pair<std::string, std::string>> f = {
      {":method", "GET"}, {":scheme", "https"}, {":authority", "api.example.com"}, {":path", "/"}, {"X-Upper", "x"}};
  std::vector<nghttp2_nv> nva;
  for (const auto& [n, v] : f) nva.push_back(H2Peer::nv(n, v));
  uint8_t buf[256];
  const ssize_t n = nghttp2_hd_deflate_hd(d, buf, sizeof buf, nva.data(), nva.size());
  nghttp2_hd_deflate_del(d);
  ASSERT_GT(n, 0);
  const std::string block(reinterpret_cast<const char*>(buf), size_t(n));
  EXPECT_EQ(in.from_guest(b(kPreface + frame(4, 0, 0, "") + frame(1, 0x5, 1, block))), Next::close);
  EXPECT_EQ(sink.last_event().reason, "malformed header name");
  EXPECT_EQ(sink.upstream, kPreface + frame(4, 0, 0, ""));
  const std::string tail = goaway(0, NGHTTP2_PROTOCOL_ERROR);
  ASSERT_GT(sink.guest.size(), tail.size());
  EXPECT_EQ(sink.guest.substr(sink.guest.size() - tail.size()), tail);  // after the 400 on stream 1
  EXPECT_EQ(sink.guest.substr(0, 9), frame(4, 0, 0, ""));               // no upstream SETTINGS yet
  EXPECT_EQ(sink.guest.substr(12, 2), std::string("\x01\x04", 2));     // HEADERS, END_HEADERS
}

TEST(H2Inspector, ContinuationFramesAndTrailersPassThrough) {
  for (int step : {0, -1}) {
    Link l;
    l.step = step;
    l.pump();
    auto f = H2Peer::get("api.example.com");
    for (int i = 0; i < 8; ++i) f.emplace_back("cookie", std::string(5000, char('a' + i)));  // > 16 KiB: CONTINUATION
    const int32_t id = l.client.request(f);
    l.pump();
    ASSERT_EQ(l.server.messages.count(id), 1u);
    EXPECT_EQ(l.server.messages[id].headers.size(), f.size());
    EXPECT_EQ(l.in.held_bytes(), 0u);
    // Trailers on an open stream: a second HEADERS with END_STREAM.
    const int32_t t = l.client.request(H2Peer::get("api.example.com", "/t"), nullptr, false);
    l.pump();
    const std::string trailer_name = "x-checksum", trailer_value = "abc";
    nghttp2_nv trailer = H2Peer::nv(trailer_name, trailer_value);
    ASSERT_EQ(nghttp2_submit_trailer(l.client.session, t, &trailer, 1), 0);
    l.client.flush();
    l.pump();
    EXPECT_EQ(l.server.messages[t].header("x-checksum"), "abc");
    EXPECT_TRUE(l.sink.events.empty());
  }
}

TEST(H2Inspector, HeaderBlockOver64KiBGets400) {
  Link l;
  l.pump();
  auto f = H2Peer::get("api.example.com");
  for (int i = 0; i < 14; ++i) f.emplace_back("x-big-" + std::to_string(i), std::string(5000, char('a' + i)));
  const int32_t id = l.client.request(f);
  l.pump();
  EXPECT_EQ(l.server.messages.count(id), 0u);
  EXPECT_EQ(l.client.messages[id].header(":status"), "400");
  ASSERT_FALSE(l.sink.events.empty());
  EXPECT_EQ(l.sink.last_event().kind, EventKind::limit);
  EXPECT_LE(l.in.held_bytes(), kMaxHeaderBlock + 9 * 128);
}

TEST(H2Inspector, FieldLimits) {
  Link l;
  l.pump();
  auto f = H2Peer::get("api.example.com");
  for (size_t i = 0; i < kMaxFields; ++i) f.emplace_back("x-" + std::to_string(i), "v");
  const int32_t id = l.client.request(f);
  l.pump();
  EXPECT_EQ(l.client.messages[id].header(":status"), "400");
  EXPECT_EQ(l.sink.last_event().kind, EventKind::limit);
  EXPECT_EQ(l.sink.last_event().reason, "too many header fields");
  EXPECT_LE(l.budget.high_water(), 2 * kMaxHeaderBlock + (1 << 20));
}

TEST(H2Inspector, BadPrefaceGetsGoaway) {
  RecordingSink sink;
  H2Inspector in(kHost, sink, nullptr);
  EXPECT_EQ(in.from_guest(b("GET / HTTP/1.1\r\n")), Next::close);
  EXPECT_EQ(sink.guest, frame(4, 0, 0, "") + goaway(0, 1, "moat: bad connection preface"));
  EXPECT_EQ(sink.upstream, "");
}

TEST(H2Inspector, BadHpackGetsCompressionError) {
  RecordingSink sink;
  H2Inspector in(kHost, sink, nullptr);
  const std::string settings = frame(4, 0, 0, "");
  EXPECT_EQ(in.from_guest(b(kPreface + settings + frame(1, 0x5, 1, "\xff\xff\xff\xff\x0f"))), Next::close);
  EXPECT_EQ(sink.upstream, kPreface + settings);  // the bad HEADERS is not forwarded
  EXPECT_EQ(sink.guest, frame(4, 0, 0, "") + goaway(0, 9, "moat: HPACK decoding failed"));
  EXPECT_EQ(sink.last_event().kind, EventKind::compression_error);
}

TEST(H2Inspector, FrameLayoutViolations) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {frame(0, 0, 1, "x"), "DATA on an idle stream"},
      {frame(1, 0x4, 2, ""), "HEADERS on an invalid stream"},
      {frame(9, 0x4, 1, ""), "CONTINUATION without HEADERS"},
      {frame(1, 0x0, 1, "\x82") + frame(6, 0, 0, "12345678"), "frame inside a header block"},
      {frame(6, 0, 0, "1234"), "PING length"},
      {frame(4, 0, 1, ""), "SETTINGS on a stream"},
      {frame(4, 1, 0, "123456"), "SETTINGS length"},
      {frame(5, 0x4, 1, "\0\0\0\2"), "PUSH_PROMISE from a client"},
      {frame(8, 0, 0, "12"), "WINDOW_UPDATE length"},
      {frame(1, 0x8 | 0x4, 1, "\x10"), "HEADERS padding"},
  };
  for (const auto& [bytes, reason] : cases) {
    for (size_t step : {size_t(0), size_t(1)}) {
      RecordingSink sink;
      H2Inspector in(kHost, sink, nullptr);
      const std::string all = kPreface + bytes;
      Next next = Next::relay;
      for (size_t i = 0; i < all.size(); i += step ? step : all.size()) {
        next = in.from_guest(b(std::string_view(all).substr(i, step ? step : all.size())));
      }
      EXPECT_EQ(next, Next::close) << reason;
      ASSERT_FALSE(sink.events.empty()) << reason;
      EXPECT_EQ(sink.last_event().reason, reason);
      EXPECT_EQ(sink.guest.substr(9 + 3, 1), "\x07") << reason;  // SETTINGS, then a GOAWAY
    }
  }
}

TEST(H2Inspector, ConcurrentStreamLimit) {
  Link l({}, 5000);
  l.pump();
  for (size_t i = 0; i <= kMaxH2Streams; ++i) l.client.request(H2Peer::get("api.example.com"), nullptr, false);
  l.pump();
  EXPECT_EQ(l.last, Next::close);
  EXPECT_EQ(l.sink.last_event().reason, "too many concurrent streams");
  EXPECT_EQ(l.client.goaway_error, NGHTTP2_PROTOCOL_ERROR);
  EXPECT_EQ(l.server.messages.size(), kMaxH2Streams);
}

TEST(H2Inspector, ExtendedConnectCarriesOpaqueData) {
  Link l({{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}});
  l.pump();
  const std::string ws = "\x81\x05hello";
  const int32_t id = l.client.request({{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"},
                                       {":authority", "api.example.com"}, {":path", "/chat"}},
                                      &ws);
  l.pump();
  ASSERT_EQ(l.server.messages.count(id), 1u);
  EXPECT_EQ(l.server.messages[id].body, ws);
  EXPECT_EQ(l.sink.scanned, ws);
  EXPECT_EQ(l.sink.last_scan_kind, Payload::h2_opaque);
  EXPECT_EQ(l.sink.last_scan_stream, uint32_t(id));
  ASSERT_FALSE(l.sink.events.empty());
  EXPECT_EQ(l.sink.last_event().kind, EventKind::upgraded);
}

TEST(H2Inspector, FacadeAndBudget) {
  MemoryBudget budget(0);
  {
    RecordingSink sink;
    Inspector in(kHost, Alpn::h2, sink, &budget);
    EXPECT_EQ(in.alpn(), Alpn::h2);
    H2Peer client(false);
    client.request(H2Peer::get("api.example.com"));
    EXPECT_EQ(in.from_guest(b(client.take())), Next::relay);
    EXPECT_GT(budget.used(), 0u);  // the inflater's table
  }
  EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace moat::http

namespace moat::http {
namespace {

// The README's claim behind the rewrite design (secret injection re-encodes blocks toward the
// upstream): a fresh deflater may take over from the guest's encoder at any block boundary,
// because it references only entries it inserted, which are the newest in the upstream's
// decoder. Checked here with libnghttp2 itself, over enough blocks to churn both tables.
TEST(H2RewriteDesign, FreshDeflaterIsConsistentWithAnyDecoderState) {
  nghttp2_hd_deflater* guest = nullptr;
  nghttp2_hd_deflater* moat = nullptr;
  nghttp2_hd_inflater* upstream = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&guest, 4096), 0);
  ASSERT_EQ(nghttp2_hd_inflate_new(&upstream), 0);
  std::mt19937 rng(7);
  auto block_fields = [&](int i) {
    H2Peer::Fields f = H2Peer::get("api.example.com", "/p/" + std::to_string(rng() % 50));
    f.emplace_back("authorization", "Bearer token-" + std::to_string(rng() % 30) + std::string(rng() % 300, 'x'));
    f.emplace_back("x-n", std::to_string(i % 13));
    return f;
  };
  auto roundtrip = [&](nghttp2_hd_deflater* d, const H2Peer::Fields& f) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : f) nva.push_back(H2Peer::nv(n, v));
    std::vector<uint8_t> buf(nghttp2_hd_deflate_bound(d, nva.data(), nva.size()));
    const ssize_t n = nghttp2_hd_deflate_hd(d, buf.data(), buf.size(), nva.data(), nva.size());
    EXPECT_GT(n, 0);
    H2Peer::Fields out;
    const uint8_t* p = buf.data();
    size_t left = size_t(n);
    for (;;) {
      nghttp2_nv nv;
      int fl = 0;
      const ssize_t rv = nghttp2_hd_inflate_hd2(upstream, &nv, &fl, p, left, 1);
      if (rv < 0) return false;
      p += rv;
      left -= size_t(rv);
      if (fl & NGHTTP2_HD_INFLATE_EMIT) {
        out.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                         std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
      }
      if (fl & NGHTTP2_HD_INFLATE_FINAL) break;
      if (rv == 0 && left == 0) return false;
    }
    nghttp2_hd_inflate_end_headers(upstream);
    return out == f;
  };
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(roundtrip(guest, block_fields(i))) << i;  // pass-through phase
  ASSERT_EQ(nghttp2_hd_deflate_new(&moat, 4096), 0);                                      // first rewrite
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(roundtrip(moat, block_fields(i))) << i;     // re-encoded phase
  nghttp2_hd_deflate_del(guest);
  nghttp2_hd_deflate_del(moat);
  nghttp2_hd_inflate_del(upstream);
}

}  // namespace
}  // namespace moat::http
