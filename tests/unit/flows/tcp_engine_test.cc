// TcpEngine scenarios with real host sockets on 127.0.0.1 (SPEC §3.4).
#include <net/route.h>
#include <poll.h>
#include <sys/ioctl.h>

#include "tcp_engine_fixture.h"
#include "unit/flows/netns_child.h"

namespace moat::flows::test {
namespace {

using TcpEngineTest = TcpEngineFixture;

TEST_F(TcpEngineTest, HandshakeOnlyAfterHostConnect) {
  start();
  send(tf::syn, gseq, SeqNum{0});
  // Nothing before the host connect has completed (R-TCP-3) ...
  expect_nothing();
  EXPECT_EQ(engine->pending_connects(), 1u);
  // ... and a retransmitted SYN is absorbed (R-TCP-1).
  send(tf::syn, gseq, SeqNum{0});
  expect_nothing();
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg synack = expect_recv();
  EXPECT_EQ(synack.h.flags, tf::syn | tf::ack);
  EXPECT_EQ(synack.h.ack, gseq + 1);
  EXPECT_EQ(synack.h.mss, uint16_t(1460));     // own MSS = MTU - 40
  EXPECT_EQ(synack.h.window_scale, uint8_t(8)); // 65535 << 8 >= 8 MiB
  EXPECT_FALSE(synack.h.sack_permitted);
  EXPECT_FALSE(synack.h.timestamps);
  expect_nothing();  // one SYN-ACK, not two
  EXPECT_EQ(engine->pending_connects(), 0u);
  EXPECT_EQ(engine->active_flows(), 1u);
  EXPECT_EQ(counters.get(Counter::tcp_opened), 1u);
}

TEST_F(TcpEngineTest, NoWindowScaleUnlessOffered) {
  guest_wscale = 0;
  start();
  send(tf::syn, gseq, SeqNum{0});
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg synack = expect_recv();
  EXPECT_FALSE(synack.h.window_scale.has_value());
  EXPECT_EQ(synack.h.window, 65535);
}

TEST_F(TcpEngineTest, RefusedPortGetsRstAckAcknowledgingSyn) {
  start();
  uint16_t closed_port = 0;
  { UniqueFd tmp = listen_loopback(&closed_port); }  // bound then closed: refused
  send(tf::syn, gseq, SeqNum{0}, {}, 65535, closed_port);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg rst = expect_recv();
  EXPECT_EQ(rst.h.flags, tf::rst | tf::ack);
  EXPECT_EQ(rst.h.ack, gseq + 1);  // a bare RST is ignored by Linux in SYN-SENT
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(engine->pending_connects(), 0u);
  EXPECT_EQ(counters.get(Counter::tcp_refused), 1u);
}

TEST_F(TcpEngineTest, NoDialTargetGetsRstAck) {
  start();
  // A SYN to the unspecified address is a martian (R-TCP-1 step 3).
  TcpRepr r;
  r.src_port = gport;
  r.dst_port = 80;
  r.seq = gseq;
  r.flags = tf::syn;
  Buf l4(r.header_len());
  wire::Ipv4Repr ip;
  ip.src = guest4;
  ip.dst = Ipv4Addr{};
  ip.protocol = wire::kProtoTcp;
  r.emit_v4(MutBytes(l4), ip.src, ip.dst);
  engine->on_segment_v4(ip, Bytes(l4), now());
  Seg rst = expect_recv();
  EXPECT_EQ(rst.h.flags, tf::rst | tf::ack);
  EXPECT_EQ(rst.h.ack, gseq + 1);
}

TEST_F(TcpEngineTest, DataBothDirections) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  // guest -> host, straight from the frame.
  send_data(text("hello host"));
  engine->flush(now());
  Seg ack = expect_recv();
  EXPECT_EQ(ack.h.ack, gseq);
  EXPECT_EQ(host_read(host.get(), 10), "hello host");
  // host -> guest.
  ASSERT_EQ(::send(host.get(), "hello guest", 11, 0), 11);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg d = expect_recv();
  EXPECT_EQ(str(d.payload), "hello guest");
  EXPECT_EQ(d.h.seq, mseq);
  EXPECT_TRUE(d.has(tf::psh));
  mseq += 11;
  send_ack();
  engine->flush(now());
  expect_nothing();  // a pure ACK needs no answer
}

TEST_F(TcpEngineTest, BulkHostToGuestSegmentsAtMss) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char('a' + i % 26);
  ASSERT_EQ(::send(host.get(), big.data(), big.size(), 0), ssize_t(big.size()));
  std::string got;
  for (int round = 0; round < 200 && got.size() < big.size(); ++round) {
    pump(1);
    auto segs = take();
    for (auto& s : segs) {
      EXPECT_LE(s.payload.size(), 1460u);
      EXPECT_EQ(s.h.seq, mseq);
      got += str(s.payload);
      mseq += uint32_t(s.payload.size());
    }
    if (!segs.empty()) {
      send_ack(65535);
      engine->flush(now());
    }
  }
  EXPECT_EQ(got, big);
}

TEST_F(TcpEngineTest, WindowReflectsHostBuffer) {
  cfg.flow_buffer = 64 << 10;
  io.mtu_value = 65520;
  start(/*rcvbuf=*/64 << 10);
  UniqueFd host = handshake();
  // The guest fills whatever window moat offers while the host application reads nothing.
  SeqNum edge = gseq + 65535;  // the SYN-ACK's (unscaled) window
  Buf chunk(65480, std::byte{'z'});
  size_t sent = 0;
  for (int i = 0; i < 2000; ++i) {
    const uint32_t room = edge > gseq ? uint32_t(edge - gseq) : 0;
    if (room == 0) break;
    Buf part(chunk.begin(), chunk.begin() + std::min<size_t>(room, chunk.size()));
    send_data(part);
    engine->flush(now());
    sent += part.size();
    for (auto& s : take()) {
      ASSERT_TRUE(s.has(tf::ack));
      EXPECT_EQ(s.h.ack, gseq) << "everything offered was taken";
      const SeqNum new_edge = s.h.ack + (uint32_t(s.h.window) << 8);
      EXPECT_GE(new_edge, edge) << "the right edge never moves back";
      edge = new_edge;
    }
  }
  EXPECT_EQ(edge, gseq) << "window closed once socket buffer + flow buffer are full";
  EXPECT_LT(sent, size_t(16) << 20);
  sent = size_t(uint32_t(gseq - SeqNum{1001}));
  // The host reads: EPOLLOUT reopens the window with an update.
  size_t got = 0;
  char buf[65536];
  ASSERT_TRUE(pump_until([&] {
    ssize_t n;
    while ((n = ::recv(host.get(), buf, sizeof buf, MSG_DONTWAIT)) > 0) got += size_t(n);
    return got >= sent;
  }));
  EXPECT_EQ(got, sent);
  auto upd = take();
  ASSERT_FALSE(upd.empty());
  EXPECT_GT(upd.back().h.window, 0);
}

TEST_F(TcpEngineTest, OutOfOrderGetsDuplicateAck) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  send(tf::ack, gseq + 100, mseq, Bytes(text("later")));
  Seg dup = expect_recv();
  EXPECT_EQ(dup.h.ack, gseq);
  EXPECT_TRUE(dup.payload.empty());
  // The overlap of a later segment is trimmed.
  send_data(text("abc"));
  send(tf::ack, gseq - 2, mseq, Bytes(text("bcdef")));
  gseq += 3;
  engine->flush(now());
  take();
  EXPECT_EQ(host_read(host.get(), 6), "abcdef");
}

TEST_F(TcpEngineTest, RetransmitOnRtoWithBackoff) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  ASSERT_EQ(::send(host.get(), "data", 4, 0), 4);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg first = expect_data();
  EXPECT_EQ(str(first.payload), "data");
  // Initial RTO after the handshake's fake-clock RTT of 0 is the 200 ms floor... no
  // sample was taken with a real delay, so the first RTO is at most 1 s.
  const Duration rto1 = engine->find({guest4, gw4, gport, port})->rto();
  EXPECT_GE(rto1, TcpConn::kMinRto);
  advance(rto1);
  Seg again = expect_recv();
  EXPECT_EQ(again.h.seq, first.h.seq);
  EXPECT_EQ(str(again.payload), "data");
  // Doubled: nothing after another rto1, a resend after 2 x rto1.
  advance(rto1);
  expect_nothing();
  advance(rto1);
  Seg third = expect_recv();
  EXPECT_EQ(third.h.seq, first.h.seq);
  // An ACK stops it.
  mseq += 4;
  send_ack();
  engine->flush(now());
  advance(std::chrono::seconds(10));
  expect_nothing();
}

TEST_F(TcpEngineTest, TwelveTimeoutsResetBothSides) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  ASSERT_EQ(::send(host.get(), "x", 1, 0), 1);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  take();
  bool rst = false;
  for (int i = 0; i < 20 && !rst; ++i) {
    advance(TcpConn::kMaxRto);
    for (auto& s : take()) rst |= s.has(tf::rst);
  }
  EXPECT_TRUE(rst);
  EXPECT_EQ(engine->active_flows(), 0u);
  char c;
  pollfd p{host.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 1000), 1);
  EXPECT_LT(::recv(host.get(), &c, 1, 0), 0);  // ECONNRESET: abortive close upstream
}

TEST_F(TcpEngineTest, FastRetransmitOnThreeDupAcks) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  std::string data(1460 * 4, 'q');
  ASSERT_EQ(::send(host.get(), data.data(), data.size(), 0), ssize_t(data.size()));
  std::vector<Seg> segs;
  ASSERT_TRUE(pump_until([&] {
    for (auto& s : take()) segs.push_back(s);
    size_t n = 0;
    for (auto& s : segs) n += s.payload.size();
    return n >= data.size();
  }));
  ASSERT_GE(segs.size(), 4u);
  // The guest lost the first segment: three duplicate ACKs for mseq.
  for (int i = 0; i < 3; ++i) send_ack();
  auto re = take();
  ASSERT_FALSE(re.empty());
  EXPECT_EQ(re.front().h.seq, mseq);  // from the first unacknowledged byte
  EXPECT_EQ(re.front().payload.size(), 1460u);
}

TEST_F(TcpEngineTest, ZeroWindowProbe) {
  start();
  UniqueFd host = handshake();
  send_ack(0);  // guest window closed
  engine->flush(now());
  io.out.clear();
  ASSERT_EQ(::send(host.get(), "blocked", 7, 0), 7);
  pump(5);
  for (auto& s : take()) EXPECT_TRUE(s.payload.empty());
  advance(TcpConn::kInitialRto);
  Seg probe = expect_recv();
  EXPECT_EQ(probe.h.seq, mseq - 1);  // just left of the window: the guest must answer
  EXPECT_TRUE(probe.payload.empty());
  // The guest opens its window: data flows.
  send_ack(65535);
  Seg d = expect_data();
  EXPECT_EQ(str(d.payload), "blocked");
}

TEST_F(TcpEngineTest, GuestFinHalfClose) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  send_data(text("req"));
  send(tf::fin | tf::ack, gseq, mseq);
  gseq += 1;
  Seg ack = expect_recv();
  EXPECT_EQ(ack.h.ack, gseq);  // FIN acknowledged
  EXPECT_EQ(engine->find({guest4, gw4, gport, port})->state(), TcpState::CloseWait);
  EXPECT_EQ(host_read(host.get(), 100), "req");  // then EOF (read returns 0)
  // Upstream -> guest still flows.
  ASSERT_EQ(::send(host.get(), "resp", 4, 0), 4);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg d = expect_recv();
  EXPECT_EQ(str(d.payload), "resp");
  mseq += 4;
  send_ack();
  engine->flush(now());
  // Host closes: FIN to the guest, then the guest's ACK ends the flow.
  host.reset();
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg fin = expect_recv();
  EXPECT_TRUE(fin.has(tf::fin));
  EXPECT_EQ(fin.h.seq, mseq);
  mseq += 1;
  send_ack();
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(engine->time_wait_records(), 1u);
}

TEST_F(TcpEngineTest, HostEofThenTimeWaitReAcksFin) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  ASSERT_EQ(::send(host.get(), "bye", 3, 0), 3);
  ::shutdown(host.get(), SHUT_WR);
  std::vector<Seg> segs;
  ASSERT_TRUE(pump_until([&] {
    for (auto& s : take()) segs.push_back(s);
    return !segs.empty() && segs.back().has(tf::fin);
  }));
  std::string got;
  for (auto& s : segs) got += str(s.payload);
  EXPECT_EQ(got, "bye");  // FIN after the pending data
  mseq += 3 + 1;
  send_ack();
  EXPECT_EQ(engine->find({guest4, gw4, gport, port})->state(), TcpState::FinWait2);
  // Guest data still reaches the host in FIN-WAIT-2.
  send_data(text("more"));
  engine->flush(now());
  take();
  EXPECT_EQ(host_read(host.get(), 4), "more");
  // Guest FIN -> TIME-WAIT record, flow freed.
  send(tf::fin | tf::ack, gseq, mseq);
  Seg ack = expect_recv();
  EXPECT_EQ(ack.h.ack, gseq + 1);
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(engine->time_wait_records(), 1u);
  // Retransmitted FIN: re-ACKed from the record.
  send(tf::fin | tf::ack, gseq, mseq);
  Seg re = expect_recv();
  EXPECT_EQ(re.h.flags, tf::ack);
  EXPECT_EQ(re.h.ack, gseq + 1);
  EXPECT_EQ(re.h.seq, mseq);
  // After 2 s the record is gone: a stray ACK now gets a RST.
  clock.advance(std::chrono::seconds(3));
  send(tf::ack, gseq + 1, mseq);
  Seg rst = expect_recv();
  EXPECT_TRUE(rst.has(tf::rst));
  EXPECT_EQ(engine->time_wait_records(), 0u);
}

TEST_F(TcpEngineTest, GuestRstExactSeqResetsUpstream) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  send(tf::rst, gseq + 1, SeqNum{0});  // inexact: challenge ACK (RFC 5961 §3.2)
  Seg ch = expect_recv();
  EXPECT_EQ(ch.h.flags, tf::ack);
  EXPECT_EQ(ch.h.ack, gseq);
  EXPECT_EQ(engine->active_flows(), 1u);
  send(tf::rst, gseq, SeqNum{0});  // exact
  expect_nothing();
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(counters.get(Counter::tcp_reset_by_guest), 1u);
  char c;
  pollfd p{host.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 1000), 1);
  EXPECT_LT(::recv(host.get(), &c, 1, 0), 0);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_F(TcpEngineTest, UpstreamResetBecomesGuestRst) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  linger lg{1, 0};
  ::setsockopt(host.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  host.reset();
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg rst = expect_recv();
  EXPECT_TRUE(rst.has(tf::rst));
  EXPECT_EQ(rst.h.seq, mseq);
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(counters.get(Counter::tcp_reset_by_upstream), 1u);
}

TEST_F(TcpEngineTest, DuplicateSynOnEstablishedGetsChallengeAck) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  send(tf::syn, SeqNum{5555}, SeqNum{0});
  Seg ch = expect_recv();
  EXPECT_EQ(ch.h.flags, tf::ack);
  EXPECT_EQ(ch.h.ack, gseq);
  EXPECT_EQ(engine->active_flows(), 1u);
}

TEST_F(TcpEngineTest, IdleTimeoutResetsBothSides) {
  cfg.idle_timeout = std::chrono::seconds(100);
  start();
  UniqueFd host = handshake();
  io.out.clear();
  advance(std::chrono::seconds(99));
  expect_nothing();
  advance(std::chrono::seconds(2));
  Seg rst = expect_recv();
  EXPECT_TRUE(rst.has(tf::rst));
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(counters.get(Counter::tcp_timeouts), 1u);
}

TEST_F(TcpEngineTest, FlowLimitRefusesAndRecovers) {
  cfg.max_flows = 1;
  start();
  UniqueFd host = handshake();
  io.out.clear();
  send(tf::syn, SeqNum{7}, SeqNum{0}, {}, 65535, std::nullopt, true, 40001);
  Seg rst = expect_recv();
  EXPECT_EQ(rst.h.flags, tf::rst | tf::ack);
  EXPECT_EQ(rst.h.ack, SeqNum{8});
  EXPECT_EQ(counters.get(Counter::limits_hits_max_flows), 1u);
  EXPECT_EQ(engine->active_flows(), 1u);  // the established flow is untouched
  // Free the slot (guest RST), then a new flow is admitted.
  send(tf::rst, gseq, SeqNum{0});
  EXPECT_EQ(engine->active_flows(), 0u);
  send(tf::syn, SeqNum{7}, SeqNum{0}, {}, 65535, std::nullopt, true, 40001);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg synack = expect_recv();
  EXPECT_EQ(synack.h.flags, tf::syn | tf::ack);
}

TEST_F(TcpEngineTest, PendingConnectLimit) {
  cfg.max_pending_connects = 1;
  start();
  send(tf::syn, gseq, SeqNum{0});
  send(tf::syn, SeqNum{7}, SeqNum{0}, {}, 65535, std::nullopt, true, 40001);
  Seg rst = expect_recv();
  EXPECT_TRUE(rst.has(tf::rst));
  EXPECT_EQ(counters.get(Counter::limits_hits_max_pending_connects), 1u);
}

TEST_F(TcpEngineTest, UnknownSegmentGetsRst) {
  start();
  send(tf::ack, SeqNum{1}, SeqNum{99});
  Seg rst = expect_recv();
  EXPECT_EQ(rst.h.flags, tf::rst);
  EXPECT_EQ(rst.h.seq, SeqNum{99});
}

TEST_F(TcpEngineTest, OutputBlockedPausesAndResumes) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  io.blocked = true;
  ASSERT_EQ(::send(host.get(), "queued", 6, 0), 6);
  pump(5);
  expect_nothing();
  io.blocked = false;
  ASSERT_TRUE(io.ready);
  io.ready();
  Seg d = expect_recv();
  EXPECT_EQ(str(d.payload), "queued");
}

TEST_F(TcpEngineTest, PeekFallbackWithoutPeekOff) {
  cfg.use_peek_off = false;
  start();
  UniqueFd host = handshake();
  io.out.clear();
  std::string big(20000, 'k');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char('A' + i % 23);
  ASSERT_EQ(::send(host.get(), big.data(), big.size(), 0), ssize_t(big.size()));
  std::string got;
  ASSERT_TRUE(pump_until([&] {
    for (auto& s : take()) {
      if (s.h.seq == mseq + uint32_t(got.size())) got += str(s.payload);
    }
    return got.size() >= big.size();
  }));
  EXPECT_EQ(got, big);
  // Retransmission from the middle (ack part of it, then RTO) reads the right bytes.
  mseq += 5000;
  send_ack();
  engine->flush(now());
  advance(std::chrono::seconds(1));
  Seg re = expect_recv();
  EXPECT_EQ(re.h.seq, mseq);
  EXPECT_EQ(str(re.payload), big.substr(5000, re.payload.size()));
}

TEST_F(TcpEngineTest, ConnectTimeoutSendsIcmpHostUnreachable) {
  // Tests never send to addresses off this machine: dial 192.0.2.1 from a forked child in a
  // private network namespace (only loopback, no routes), where the connect fails with
  // ENETUNREACH at once, which maps to ICMP like a timeout does. The child keeps the
  // namespace change away from the tests that run after this one.
  const std::string err = moat::flows::testing::in_new_netns([this]() -> std::string {
    CHILD_CHECK(moat::flows::testing::bring_lo_up());
    cfg.connect_timeout = std::chrono::seconds(5);
    start();
    TcpRepr r;
    r.src_port = gport;
    r.dst_port = 9;
    r.seq = gseq;
    r.flags = tf::syn;
    Buf l4(r.header_len());
    wire::Ipv4Repr ip;
    ip.src = guest4;
    ip.dst = Ipv4Addr::from_octets(192, 0, 2, 1);
    ip.protocol = wire::kProtoTcp;
    r.emit_v4(MutBytes(l4), ip.src, ip.dst);
    engine->on_segment_v4(ip, Bytes(l4), now());
    advance(std::chrono::seconds(6));
    bool icmp = false;
    for (auto& e : io.out) {
      if (e.icmp_error) {
        icmp = true;
        CHILD_CHECK(e.type == 3);
        CHILD_CHECK(e.code == 1 || e.code == 0 || e.code == 13);
        CHILD_CHECK(e.l4.size() == 20u);  // the SYN's header is quoted
      }
    }
    CHILD_CHECK(icmp);
    CHILD_CHECK(engine->active_flows() == 0u);
    CHILD_CHECK(engine->pending_connects() == 0u);
    return "";
  });
  if (err == "unshare(CLONE_NEWNET) failed") GTEST_SKIP() << "needs CAP_SYS_ADMIN for a private network namespace";
  EXPECT_EQ(err, "");
}

TEST_F(TcpEngineTest, PublishedPortOpensTowardGuest) {
  start();
  // A host client connects to our listener; the accepted socket is handed to the engine.
  auto [client, accepted] = host_client();
  ASSERT_TRUE(accepted.valid());
  const Ipv4Addr seen = Ipv4Addr::from_octets(203, 0, 113, 9);
  ASSERT_TRUE(engine->open_to_guest(std::move(accepted), guest4, 8080, seen, 50000, now()).has_value());
  Seg syn = expect_recv();
  EXPECT_EQ(syn.h.flags, tf::syn);
  EXPECT_EQ(syn.h.dst_port, 8080);
  // Retry at +1 s.
  advance(std::chrono::seconds(1));
  Seg syn2 = expect_recv();
  EXPECT_EQ(syn2.h.seq, syn.h.seq);
  // The guest answers: SYN-ACK -> ACK, then data flows host -> guest.
  TcpRepr r;
  r.src_port = 8080;
  r.dst_port = 50000;
  r.seq = SeqNum{9000};
  r.ack = syn.h.seq + 1;
  r.flags = tf::syn | tf::ack;
  r.window = 65535;
  r.mss = 1460;
  Buf l4(r.header_len());
  r.emit_v4(MutBytes(l4), guest4, seen);
  wire::Ipv4Repr ip;
  ip.src = guest4;
  ip.dst = seen;
  ip.protocol = wire::kProtoTcp;
  engine->on_segment_v4(ip, Bytes(l4), now());
  Seg ack = expect_recv();
  EXPECT_EQ(ack.h.flags, tf::ack);
  EXPECT_EQ(ack.h.ack, SeqNum{9001});
  ASSERT_EQ(::send(client.get(), "GET", 3, 0), 3);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg d = expect_recv();
  EXPECT_EQ(str(d.payload), "GET");
  EXPECT_EQ(counters.get(Counter::tcp_ingress_opened), 1u);
}

TEST_F(TcpEngineTest, PublishedPortGuestRstResetsHost) {
  start();
  auto [client, accepted] = host_client();
  const Ipv4Addr seen = Ipv4Addr::from_octets(203, 0, 113, 9);
  ASSERT_TRUE(engine->open_to_guest(std::move(accepted), guest4, 8080, seen, 50001, now()).has_value());
  Seg syn = expect_recv();
  TcpRepr r;
  r.src_port = 8080;
  r.dst_port = 50001;
  r.ack = syn.h.seq + 1;
  r.flags = tf::rst | tf::ack;
  Buf l4(r.header_len());
  r.emit_v4(MutBytes(l4), guest4, seen);
  wire::Ipv4Repr ip;
  ip.src = guest4;
  ip.dst = seen;
  ip.protocol = wire::kProtoTcp;
  engine->on_segment_v4(ip, Bytes(l4), now());
  EXPECT_EQ(engine->active_flows(), 0u);
  char c;
  pollfd p{client.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 1000), 1);
  EXPECT_LT(::recv(client.get(), &c, 1, 0), 0);
}

// ---- Issue 14: fair pending connects, RST for refused published connections -----------------

/// Routes 10.0.0.0/8 out of `lo` without making it local: SYNs to it vanish (no ICMP, the
/// namespace does not forward), so their connects stay pending like a blackholed host's.
inline bool route_ten_into_the_void() {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  rtentry rt{};
  auto* dst = reinterpret_cast<sockaddr_in*>(&rt.rt_dst);
  dst->sin_family = AF_INET;
  dst->sin_addr.s_addr = htonl(0x0a000000);
  auto* mask = reinterpret_cast<sockaddr_in*>(&rt.rt_genmask);
  mask->sin_family = AF_INET;
  mask->sin_addr.s_addr = htonl(0xff000000);
  rt.rt_flags = RTF_UP;
  char dev[] = "lo";
  rt.rt_dev = dev;
  return ::ioctl(s.get(), SIOCADDRT, &rt) == 0;
}

// A SYN storm to a blackholed address fills max_pending_connects; a healthy destination
// still gets a slot (the storm's oldest connect fails with ICMP host unreachable, as its
// timeout would), while more SYNs to the storm's own destination are refused.
TEST_F(TcpEngineTest, PendingConnectsAreSharedFairlyBetweenDestinations) {
  const std::string err = moat::flows::testing::in_new_netns([this]() -> std::string {
    CHILD_CHECK(moat::flows::testing::bring_lo_up());
    CHILD_CHECK(route_ten_into_the_void());
    cfg.max_pending_connects = 4;
    start();
    auto send_syn_to = [this](Ipv4Addr dst, uint16_t dport, uint16_t sport) {  // a guest SYN to anywhere
      TcpRepr r;
      r.src_port = sport;
      r.dst_port = dport;
      r.seq = SeqNum{5000};
      r.flags = tf::syn;
      r.window = 65535;
      Buf l4(r.header_len());
      wire::Ipv4Repr ip;
      ip.src = guest4;
      ip.dst = dst;
      ip.protocol = wire::kProtoTcp;
      ip.payload_len = uint16_t(l4.size());
      r.emit_v4(MutBytes(l4), ip.src, ip.dst);
      engine->on_segment_v4(ip, Bytes(l4), now());
    };
    const Ipv4Addr dead = Ipv4Addr::from_octets(10, 0, 0, 1);
    for (uint16_t i = 0; i < 4; ++i) {
      send_syn_to(dead, 80, uint16_t(41000 + i));
      clock.advance(std::chrono::milliseconds(10));  // distinct ages: 41000 is the oldest
    }
    pump(3);
    CHILD_CHECK(engine->pending_connects() == 4u);
    CHILD_CHECK(engine->pending_connects_to(IpAddr(dead)) == 4u);
    CHILD_CHECK(io.out.empty());
    // The storm's own destination is the busiest: refused as before.
    send_syn_to(dead, 80, 41010);
    auto refused = take();
    CHILD_CHECK(refused.size() == 1u && refused[0].has(tf::rst) && refused[0].h.dst_port == 41010);
    CHILD_CHECK(counters.get(Counter::tcp_connect_evicted) == 0u);
    // A healthy destination (the gateway -> host loopback listener) is admitted.
    send(tf::syn, gseq, SeqNum{0});
    CHILD_CHECK(pump_until([&] {
      for (auto& e : io.out)
        if (!e.icmp_error && parse_seg(e) && parse_seg(e)->h.dst_port == gport) return true;
      return false;
    }));
    bool synack = false, icmp_to_oldest = false;
    for (auto& e : io.out) {
      if (e.icmp_error) {
        CHILD_CHECK(e.type == 3 && e.code == 1);  // host unreachable, like a connect timeout
        auto q = wire::TcpRepr::parse(Bytes(e.l4), nullptr);
        icmp_to_oldest = q && q->src_port == 41000;
      } else if (auto sg = parse_seg(e); sg && sg->h.dst_port == gport) {
        synack = sg->h.flags == (tf::syn | tf::ack);
      }
    }
    CHILD_CHECK(synack);
    CHILD_CHECK(icmp_to_oldest);
    CHILD_CHECK(counters.get(Counter::tcp_connect_evicted) == 1u);
    CHILD_CHECK(engine->pending_connects_to(IpAddr(dead)) == 3u);
    io.out.clear();
    CHILD_CHECK(engine->pending_connects() == 3u);  // the healthy one connected
    // Other blackholed addresses, with fewer pending connects than the first, also get in:
    // the fourth slot is free, then the busiest destination gives one up again.
    send_syn_to(Ipv4Addr::from_octets(10, 0, 0, 2), 80, 41020);
    send_syn_to(Ipv4Addr::from_octets(10, 0, 0, 3), 80, 41021);
    CHILD_CHECK(counters.get(Counter::tcp_connect_evicted) == 2u);
    CHILD_CHECK(engine->pending_connects_to(IpAddr(dead)) == 2u);
    CHILD_CHECK(engine->pending_connects() == 4u);
    return "";
  });
  if (err == "unshare(CLONE_NEWNET) failed") GTEST_SKIP() << "needs CAP_SYS_ADMIN for a private network namespace";
  EXPECT_EQ(err, "");
}

// A published connection beyond max_flows is reset (SO_LINGER 0), not closed with a FIN.
TEST_F(TcpEngineTest, PublishedConnectionBeyondMaxFlowsGetsRst) {
  cfg.max_flows = 1;
  start();
  UniqueFd held = handshake();  // the one slot
  auto [client, accepted] = host_client();
  ASSERT_TRUE(accepted.valid());
  auto r = engine->open_to_guest(std::move(accepted), guest4, 8080, Ipv4Addr::from_octets(203, 0, 113, 9), 50002,
                                 now());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().value, ENOBUFS);
  EXPECT_EQ(counters.get(Counter::limits_hits_max_flows), 1u);
  pollfd p{client.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  char c;
  errno = 0;
  EXPECT_LT(::recv(client.get(), &c, 1, 0), 0) << "a FIN (EOF) instead of a reset";
  EXPECT_EQ(errno, ECONNRESET);
}

}  // namespace
}  // namespace moat::flows::test
