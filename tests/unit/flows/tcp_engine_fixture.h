#pragma once
// The guest side of TCP scenario tests against a TcpEngine with real host sockets on
// 127.0.0.1 (the loop runs on a FakeClock: I/O is real, timers move only when told).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <utility>

#include "event/clock.h"
#include "event/loop.h"
#include "flows/tcp_engine.h"
#include "tcp_test_support.h"

namespace moat::flows::test {

namespace tf = wire::tcp_flags;
using wire::SeqNum;
using wire::TcpRepr;

inline UniqueFd listen_loopback(uint16_t* port, int rcvbuf = 0) {
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(l.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (rcvbuf) ::setsockopt(l.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) return {};
  if (::listen(l.get(), 64) < 0) return {};
  socklen_t len = sizeof a;
  ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return l;
}

class TcpEngineFixture : public ::testing::Test {
 protected:
  event::FakeClock clock;
  event::Loop loop{clock};
  FakeGuestIo io;
  Counters counters;
  TcpConfig cfg;
  std::optional<Destinations> dest;
  std::optional<TcpEngine> engine;
  UniqueFd listener;
  uint16_t port = 0;

  Ipv4Addr guest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  Ipv4Addr gw4 = Ipv4Addr::from_octets(100, 96, 0, 1);
  uint16_t gport = 40000;
  SeqNum gseq{1000};  // guest's next sequence number
  SeqNum mseq;        // moat's next sequence number (what the guest acks)
  uint8_t guest_wscale = 7;

  void TearDown() override { engine.reset(); }

  void start(int rcvbuf = 0) {
    listener = listen_loopback(&port, rcvbuf);
    ASSERT_TRUE(listener.valid());
    DestinationConfig dc;
    dc.gateway4 = gw4;
    dc.dns4 = Ipv4Addr::from_octets(100, 96, 0, 3);
    dest.emplace(dc);
    engine.emplace(loop, io, *dest, counters, cfg);
  }
  [[nodiscard]] Instant now() const { return clock.now(); }

  /// The guest sends one segment to gw4:dport.
  void send(uint8_t flags, SeqNum seq, SeqNum ack, Bytes payload = {}, uint16_t window = 65535,
            std::optional<uint16_t> dport = std::nullopt, bool syn_options = true, uint16_t sport = 0) {
    TcpRepr r;
    r.src_port = sport ? sport : gport;
    r.dst_port = dport.value_or(port);
    r.seq = seq;
    r.ack = ack;
    r.flags = flags;
    r.window = window;
    if ((flags & tf::syn) && syn_options) {
      r.mss = uint16_t(io.mtu_value - 40);
      if (guest_wscale) r.window_scale = guest_wscale;
    }
    Buf l4(r.header_len() + payload.size());
    if (!payload.empty()) std::memcpy(l4.data() + r.header_len(), payload.data(), payload.size());
    r.emit_v4(MutBytes(l4), guest4, gw4);
    wire::Ipv4Repr ip;
    ip.src = guest4;
    ip.dst = gw4;
    ip.protocol = wire::kProtoTcp;
    ip.payload_len = uint16_t(l4.size());
    engine->on_segment_v4(ip, Bytes(l4), now());
  }
  /// Guest data segment at gseq (advances gseq), acking mseq.
  void send_data(const Buf& data, uint16_t window = 65535) {
    send(tf::ack | tf::psh, gseq, mseq, Bytes(data), window);
    gseq += uint32_t(data.size());
  }
  void send_ack(uint16_t window = 65535) { send(tf::ack, gseq, mseq, {}, window); }

  std::vector<Seg> take() {
    std::vector<Seg> v;
    for (auto& e : io.out)
      if (auto s = parse_seg(e)) v.push_back(std::move(*s));
    io.out.clear();
    return v;
  }
  Seg expect_recv() {
    for (size_t i = 0; i < io.out.size(); ++i) {
      if (auto s = parse_seg(io.out[i])) {
        io.out.erase(io.out.begin(), io.out.begin() + long(i) + 1);
        return *s;
      }
    }
    ADD_FAILURE() << "expected a segment, got nothing";
    return Seg{};
  }
  /// Next segment with payload or SYN/FIN/RST, skipping pure ACKs (window updates).
  Seg expect_data() {
    while (!io.out.empty()) {
      Seg s = expect_recv();
      if (!s.payload.empty() || (s.h.flags & (tf::syn | tf::fin | tf::rst))) return s;
    }
    ADD_FAILURE() << "expected a data segment, got nothing";
    return Seg{};
  }
  void expect_nothing() {
    for (auto& e : io.out) {
      auto s = parse_seg(e);
      ADD_FAILURE() << "unexpected output: "
                    << (s ? flags_str(s->h.flags) + " seq=" + std::to_string(s->h.seq.value) +
                                " len=" + std::to_string(s->payload.size())
                          : std::string("icmp"));
    }
    io.out.clear();
  }
  /// Runs the loop until `pred` or ~2 s of real time.
  template <class P>
  bool pump_until(P pred) {
    for (int i = 0; i < 200; ++i) {
      if (pred()) return true;
      loop.run_once(std::chrono::milliseconds(10));
    }
    return pred();
  }
  void pump(int n = 3) {
    for (int i = 0; i < n; ++i) loop.run_once(std::chrono::milliseconds(5));
  }
  /// Moves the fake clock and fires due timers.
  void advance(Duration d) {
    clock.advance(d);
    loop.run_once(Duration::zero());
  }

  /// A host client connected to the fixture's listener, and the accepted (non-blocking)
  /// socket a published-port listener would hand to open_to_guest(): {client, accepted}.
  std::pair<UniqueFd, UniqueFd> host_client() {
    UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    EXPECT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    EXPECT_TRUE(accepted.valid());
    return {std::move(client), std::move(accepted)};
  }

  /// Full handshake; returns the accepted host-side socket.
  UniqueFd handshake() {
    send(tf::syn, gseq, SeqNum{0});
    EXPECT_TRUE(pump_until([&] { return !io.out.empty(); }));
    Seg synack = expect_recv();
    EXPECT_EQ(synack.h.flags, tf::syn | tf::ack);
    EXPECT_EQ(synack.h.ack, gseq + 1);
    gseq += 1;
    mseq = synack.h.seq + 1;
    UniqueFd host(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(host.valid());
    send_ack();
    engine->flush(now());
    // The first EPOLLOUT brings the window update beyond the SYN-ACK's unscaled 65535.
    pump(2);
    for (auto& s : take()) mseq = seq_max(mseq, s.h.seq);
    return host;
  }
  /// Everything the host socket can read within ~1 s.
  static std::string host_read(int fd, size_t want) {
    std::string s;
    char buf[65536];
    for (int i = 0; i < 200 && s.size() < want; ++i) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) s.append(buf, size_t(n));
      else if (n == 0) break;
      else ::usleep(5000);
    }
    return s;
  }
};

}  // namespace moat::flows::test
