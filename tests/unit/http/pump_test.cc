#include "http/pump.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "h2_peer.h"
#include "test_sink.h"

namespace moat::http {
namespace {

using testing::b;

// A destination that takes at most `budget` bytes until refilled (a ring that drains
// between loop iterations).
struct Tap {
  std::string got;
  size_t budget = 0;
  size_t write(Bytes data) {
    const size_t n = std::min(budget, data.size());
    got.append(reinterpret_cast<const char*>(data.data()), n);
    budget -= n;
    return n;
  }
};

TEST(Pump, BackPressureKeepsOrderAndLosesNothing) {
  std::vector<EventKind> events;
  MemoryBudget budget(0);
  auto pump = Pump::inspect("api.example.com", Alpn::http1, &budget, [&](const Event& e) { events.push_back(e.kind); });
  const std::string reqs = "GET /1 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
                           "POST /2 HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 300\r\n\r\n" +
                           std::string(300, 'p') + "GET /3 HTTP/1.1\r\nHost: evil.example\r\n\r\n";
  const std::string resps = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";
  Tap up, guest;
  size_t g = 0, u = 0;
  for (int tick = 0; tick < 1000 && !pump->wants_close(); ++tick) {
    up.budget = guest.budget = 13;  // small, so nearly every write is partial
    auto to_up = [&](Bytes d) { return up.write(d); };
    auto to_guest = [&](Bytes d) { return guest.write(d); };
    if (g < reqs.size()) g += pump->from_guest(b(std::string_view(reqs).substr(g, 50)), to_up, to_guest);
    if (up.got.size() >= 80 && u < resps.size()) u += pump->from_upstream(b(std::string_view(resps).substr(u, 40)), to_guest);
    if (g == reqs.size()) (void)pump->from_guest({}, to_up, to_guest);  // drain
  }
  EXPECT_TRUE(pump->wants_close());
  EXPECT_EQ(up.got, reqs.substr(0, reqs.find("GET /3")));
  EXPECT_EQ(guest.got.substr(0, resps.size()), resps);
  EXPECT_EQ(guest.got.substr(resps.size(), 32), "HTTP/1.1 421 Misdirected Request");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], EventKind::authority_mismatch);
  EXPECT_EQ(pump->pending_bytes(), 0u);
  pump.reset();
  EXPECT_EQ(budget.used(), 0u);
}

TEST(Pump, NothingIsTakenWhileOutputWaits) {
  auto pump = Pump::inspect("api.example.com", Alpn::none, nullptr, {});
  Tap up, guest;
  auto to_up = [&](Bytes d) { return up.write(d); };
  auto to_guest = [&](Bytes d) { return guest.write(d); };
  const std::string req = "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n";
  EXPECT_EQ(pump->from_guest(b(req), to_up, to_guest), req.size());  // taken, all of it waits
  EXPECT_EQ(pump->pending_bytes(), req.size());
  EXPECT_EQ(pump->from_guest(b(req), to_up, to_guest), 0u);  // back-pressure
  up.budget = 1000;
  EXPECT_EQ(pump->from_guest(b(req), to_up, to_guest), req.size());
  EXPECT_EQ(up.got, req + req);
}

TEST(Pump, Http2ThroughSmallWrites) {
  auto pump = Pump::inspect("api.example.com", Alpn::h2, nullptr, {});
  testing::H2Peer client(false), server(true);
  const std::string body(40000, 'b');
  const int32_t id = client.request(testing::H2Peer::get("api.example.com", "/up"), &body);
  const std::string guest_bytes = client.take();
  Tap up, guest;
  size_t g = 0;
  for (int tick = 0; tick < 100000 && (g < guest_bytes.size() || pump->pending_bytes() > 0); ++tick) {
    up.budget = 97;
    auto to_up = [&](Bytes d) { return up.write(d); };
    auto to_guest = [&](Bytes d) { return guest.write(d); };
    g += pump->from_guest(b(std::string_view(guest_bytes).substr(g, 300)), to_up, to_guest);
  }
  EXPECT_EQ(up.got, guest_bytes);  // h2 frames pass byte for byte
  EXPECT_GE(server.recv(up.got), 0);
  EXPECT_EQ(server.messages[id].body.size(), body.size());
}

TEST(Pump, ErrorResponder) {
  auto pump = Pump::error_responder(Alpn::http1, "a.example:443", "failed TLS verification: expired", nullptr);
  Tap up, guest;
  guest.budget = 10;
  auto to_up = [&](Bytes d) { return up.write(d); };
  auto to_guest = [&](Bytes d) { return guest.write(d); };
  EXPECT_EQ(pump->from_guest(b("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"), to_up, to_guest), 35u);
  EXPECT_FALSE(pump->wants_close());  // the answer is not all out yet
  guest.budget = 1000;
  EXPECT_EQ(pump->from_guest({}, to_up, to_guest), 0u);
  EXPECT_TRUE(pump->wants_close());
  EXPECT_EQ(guest.got.substr(0, 24), "HTTP/1.1 502 Bad Gateway");
  EXPECT_NE(guest.got.find("moat: upstream a.example:443 failed TLS verification: expired\n"), std::string::npos);
  EXPECT_EQ(up.got, "");
}

}  // namespace
}  // namespace moat::http
