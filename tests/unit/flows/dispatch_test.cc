// The flow Dispatch (hooks by protocol + destination port, in registration order) and the
// TCP engine's peer providers: a fake "interceptor" takes a flow the policy allowed, with
// its path and name, without the engine dialling (what tls/ will do), and a provider
// rewrites a SYN's DialPlan (what dns/ does for TCP/53).
#include <gtest/gtest.h>
#include <poll.h>

#include "flows/dispatch.h"
#include "flows/stream_peer.h"
#include "tcp_engine_fixture.h"
#include "wire/udp.h"

namespace moat::flows::test {
namespace {

/// Inspect path for every SYN, and every first flight allowed; records what it saw.
class InspectAll final : public Admission {
 public:
  int opened = 0, closed = 0;
  uint64_t next_flow_id() override { return ++id_; }
  TcpPath tcp_syn(const FlowInfo&) override { return TcpPath::inspect; }
  bool tcp_first_flight(const FlowInfo&) override { return true; }
  bool udp(const FlowInfo&) override { return true; }
  bool icmp_echo(const FlowInfo&) override { return true; }
  bool ingress(const FlowInfo&) override { return true; }
  uint64_t generation() const override { return 1; }
  bool drop_denied() const override { return false; }
  Duration first_flight_timeout() const override { return std::chrono::seconds(1); }
  void flow_opened(const FlowInfo&) override { ++opened; }
  void flow_closed(const FlowInfo&, const CloseInfo&) override { ++closed; }

 private:
  uint64_t id_ = 0;
};

/// Takes allowed flows named `name` onto an in-process StreamPeer, as a TLS interceptor would.
class FakeInterceptor final : public TcpPeerProvider {
 public:
  std::string name = "intercept.example";
  StreamPeer peer{64 << 10};
  TcpFlowRef ref;
  int offered = 0, taken = 0, closed = 0;
  TcpPath seen_path = TcpPath::fast;
  NameSrc seen_src = NameSrc::none;

  TcpPeer* on_allowed(const FlowInfo& f, TcpFlowRef r) override {
    ++offered;
    if (f.name != name) return nullptr;
    seen_path = f.path;
    seen_src = f.name_src;
    ref = r;
    ++taken;
    return &peer;
  }
  void on_closed(TcpPeer& p) override {
    EXPECT_EQ(&p, &peer);
    ++closed;
  }
};

/// Rewrites the plan of SYNs to `from_port` to dial `to` instead (the DNS pattern).
class Redirect final : public TcpPeerProvider {
 public:
  uint16_t from_port = 0;
  Endpoint to;
  bool refuse = false;
  TcpTake on_syn(const FlowInfo& f, DialPlan& plan, TcpFlowRef) override {
    if (f.remote_port != from_port) return TcpTake::pass();
    plan = DialPlan{};
    if (!refuse) plan.add(to);
    return TcpTake::dial();
  }
};

/// Terminates SYNs to `port` in-process (a direct hand-off, e.g. DNS over TCP without the
/// loopback listener).
class InProcess final : public TcpPeerProvider {
 public:
  uint16_t port = 0;
  StreamPeer peer{64 << 10};
  TcpFlowRef ref;
  int closed = 0;
  TcpTake on_syn(const FlowInfo& f, DialPlan&, TcpFlowRef r) override {
    if (f.remote_port != port) return TcpTake::pass();
    ref = r;
    return TcpTake::in_process(peer);
  }
  void on_closed(TcpPeer&) override { ++closed; }
};

class ProviderTest : public TcpEngineFixture {
 protected:
  InspectAll adm;
  void TearDown() override { engine.reset(); }
  bool listener_has_connection(int wait_ms = 0) {
    pollfd p{listener.get(), POLLIN, 0};
    return ::poll(&p, 1, wait_ms) == 1;
  }
  void inspect_handshake() {
    send(tf::syn, gseq, SeqNum{0});
    Seg synack = expect_recv();
    ASSERT_EQ(synack.h.flags, tf::syn | tf::ack);
    gseq += 1;
    mseq = synack.h.seq + 1;
    send_ack();
    engine->flush(now());
    take();
  }
};

TEST_F(ProviderTest, AProviderTakesAnAllowedFlowWithItsPathAndNameAndNothingIsDialled) {
  start();
  FakeInterceptor tls;
  engine->set_admission(&adm);
  engine->add_provider(tls);
  inspect_handshake();
  const std::string req = "GET / HTTP/1.1\r\nHost: intercept.example\r\n\r\n";
  send_data(text(req));
  engine->flush(now());
  ASSERT_EQ(tls.taken, 1);
  EXPECT_EQ(tls.seen_path, TcpPath::inspect);
  EXPECT_EQ(tls.seen_src, NameSrc::host);
  EXPECT_FALSE(listener_has_connection(50));  // the host was never dialled
  // The held first flight went to the provider's peer.
  Buf got(req.size());
  ASSERT_EQ(tls.peer.app_read(MutBytes(got)), req.size());
  EXPECT_EQ(str(got), req);
  EXPECT_EQ(adm.opened, 1);
  // Its answer reaches the guest once it wakes the flow.
  take();
  const std::string resp = "HTTP/1.1 200 OK\r\n\r\n";
  tls.peer.app_write(Bytes(text(resp)));
  tls.ref.peer_readable();
  Seg s = expect_data();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s.payload.data()), s.payload.size()), resp);
  // The provider learns when the flow is gone.
  engine->abort_all(now());
  EXPECT_EQ(tls.closed, 1);
  EXPECT_EQ(adm.closed, 1);
  tls.ref.peer_readable();  // stale: ignored
}

TEST_F(ProviderTest, AFlowNoProviderWantsIsDialledAsBefore) {
  start();
  FakeInterceptor tls;
  engine->set_admission(&adm);
  engine->add_provider(tls);
  inspect_handshake();
  send_data(text("GET / HTTP/1.1\r\nHost: other.example\r\n\r\n"));
  engine->flush(now());
  EXPECT_EQ(tls.offered, 1);
  EXPECT_EQ(tls.taken, 0);
  EXPECT_TRUE(listener_has_connection(1000));
}

TEST_F(ProviderTest, ASynProviderRewritesThePlanOrRefuses) {
  start();
  Redirect dns;
  dns.from_port = 9;  // discard: nothing listens there
  dns.to = Endpoint{IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1)), port};
  engine->add_provider(dns);
  send(tf::syn, gseq, SeqNum{0}, {}, 65535, uint16_t{9});
  EXPECT_TRUE(listener_has_connection(1000));  // dialled the rewritten target
  take();
  dns.refuse = true;
  send(tf::syn, gseq + 100, SeqNum{0}, {}, 65535, uint16_t{9}, true, uint16_t(gport + 1));
  Seg rst = expect_recv();
  EXPECT_EQ(rst.h.flags, tf::rst | tf::ack);
  EXPECT_EQ(counters.get(Counter::tcp_refused), 1u);
  EXPECT_EQ(engine->active_flows(), 1u);  // the refused flow's slot was freed
}

TEST_F(ProviderTest, ASynProviderCanTerminateTheFlowInProcess) {
  start();
  InProcess p;
  p.port = port;  // the listener's port: a dial would be seen there
  engine->add_provider(p);
  send(tf::syn, gseq, SeqNum{0});
  Seg synack = expect_recv();  // at once: nothing to connect first
  ASSERT_EQ(synack.h.flags, tf::syn | tf::ack);
  gseq += 1;
  mseq = synack.h.seq + 1;
  send_ack();
  EXPECT_FALSE(listener_has_connection(50));
  send_data(text("query"));
  engine->flush(now());
  Buf got(5);
  ASSERT_EQ(p.peer.app_read(MutBytes(got)), 5u);
  EXPECT_EQ(str(got), "query");
  take();
  p.peer.app_write(Bytes(text("answer")));
  p.ref.peer_readable();
  Seg s = expect_data();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(s.payload.data()), s.payload.size()), "answer");
  engine->abort_all(now());
  EXPECT_EQ(p.closed, 1);
}

/// Asks at SYN for the first flight (TcpTake::classify), then takes the flow with the
/// gate path's own host connection (the TLS interceptor's pattern).
class Classifying final : public TcpPeerProvider {
 public:
  uint16_t port = 0;
  StreamPeer peer{64 << 10};
  TcpFlowRef ref;
  UniqueFd host_fd;
  std::string first_flight;
  TcpPath seen_path = TcpPath::fast;
  int closed = 0;
  TcpTake on_syn(const FlowInfo& f, DialPlan&, TcpFlowRef) override {
    return f.remote_port == port ? TcpTake::classify() : TcpTake::pass();
  }
  TcpPeer* on_allowed(const FlowInfo& f, TcpFlowRef r) override {
    seen_path = f.path;
    first_flight.assign(reinterpret_cast<const char*>(f.first_flight.data()), f.first_flight.size());
    ref = r;
    host_fd = r.take_host_socket();
    EXPECT_FALSE(r.take_host_socket().valid());  // given once
    return &peer;
  }
  void on_closed(TcpPeer&) override { ++closed; }
};

TEST_F(ProviderTest, AClassifyingProviderTurnsTheFastPathIntoTheGateAndReusesItsHostConnection) {
  start();  // no admission: every flow would take the fast path
  Classifying p;
  p.port = port;
  engine->add_provider(p);
  UniqueFd host = handshake();  // dialled at SYN, as on the fast path
  const std::string hello = "GET / HTTP/1.1\r\nHost: classified.example\r\n\r\n";
  send_data(text(hello));
  engine->flush(now());
  pump(2);
  EXPECT_EQ(p.seen_path, TcpPath::gate);
  EXPECT_EQ(p.first_flight, hello);  // FlowInfo::first_flight shows the held bytes
  ASSERT_TRUE(p.host_fd.valid());
  // The provider's socket is the connection the engine made: what it writes arrives on
  // the host side accepted above, and nothing was dialled a second time.
  ASSERT_EQ(::send(p.host_fd.get(), "via-provider", 12, MSG_NOSIGNAL), 12);
  EXPECT_EQ(host_read(host.get(), 12), "via-provider");
  EXPECT_FALSE(listener_has_connection(50));
  // The engine wrote no guest byte to it: the held first flight went to the provider's peer.
  Buf got(hello.size());
  ASSERT_EQ(p.peer.app_read(MutBytes(got)), hello.size());
  EXPECT_EQ(str(got), hello);
  engine->abort_all(now());
  EXPECT_EQ(p.closed, 1);
  // The engine never closed or reset the socket it gave away.
  EXPECT_EQ(::send(p.host_fd.get(), "!", 1, MSG_NOSIGNAL), 1);
}

TEST_F(ProviderTest, TheHostSocketIsNotGivenOnTheInspectPath) {
  start();
  Classifying p;
  p.port = port;
  engine->set_admission(&adm);  // InspectAll: nothing dialled before the first flight
  engine->add_provider(p);
  inspect_handshake();
  send_data(text("GET / HTTP/1.1\r\nHost: x.example\r\n\r\n"));
  engine->flush(now());
  EXPECT_EQ(p.seen_path, TcpPath::inspect);
  EXPECT_FALSE(p.host_fd.valid());
  EXPECT_TRUE(p.ref.dial_target().has_value());
  EXPECT_EQ(p.ref.dial_target()->port, port);
  EXPECT_FALSE(listener_has_connection(50));
  engine->abort_all(now());
}

// ---- Dispatch hooks ----------------------------------------------------------------------

class CountingHook final : public PacketHook {
 public:
  bool consume = true;
  int seen = 0;
  uint16_t last_dst_port = 0;
  bool on_guest_packet(const GuestPacket& p) override {
    ++seen;
    last_dst_port = p.dst_port;
    return consume;
  }
};

class DispatchTest : public ::testing::Test {
 protected:
  event::FakeClock clock;
  event::Loop loop{clock};
  FakeGuestIo io;
  Counters counters;
  Ipv4Addr guest4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  Ipv4Addr remote4 = Ipv4Addr::from_octets(192, 0, 2, 7);

  DispatchConfig config() {
    DispatchConfig c;
    c.destinations.gateway4 = Ipv4Addr::from_octets(100, 96, 0, 1);
    c.icmp_relay = false;
    return c;
  }
  void udp(Dispatch& d, uint16_t dport) {
    wire::UdpRepr u{40000, dport};
    Buf l4(wire::UdpRepr::kHeaderLen + 4);
    u.emit_v4(MutBytes(l4), guest4, remote4);
    wire::Ipv4Repr ip;
    ip.src = guest4;
    ip.dst = remote4;
    ip.protocol = wire::kProtoUdp;
    ip.payload_len = uint16_t(l4.size());
    d.on_ipv4(ip, Bytes(l4), clock.now());
  }
};

TEST_F(DispatchTest, HooksAreAskedInRegistrationOrderByProtocolAndPort) {
  Dispatch d(loop, io, counters, config());
  CountingHook any_udp, dns, tcp_only;
  any_udp.consume = false;  // like the publisher: not a mapping, pass it on
  d.add_hook(PacketMatch::any_port(wire::kProtoUdp), any_udp);
  d.add_hook(PacketMatch::dst_ports(wire::kProtoUdp, {53, 5353}), dns);
  d.add_hook(PacketMatch::any_port(wire::kProtoTcp), tcp_only);
  udp(d, 53);
  udp(d, 5353);
  EXPECT_EQ(any_udp.seen, 2);
  EXPECT_EQ(dns.seen, 2);
  EXPECT_EQ(dns.last_dst_port, 5353);
  EXPECT_EQ(tcp_only.seen, 0);
  // A consuming hook stops the walk.
  any_udp.consume = true;
  udp(d, 53);
  EXPECT_EQ(any_udp.seen, 3);
  EXPECT_EQ(dns.seen, 2);
}

TEST_F(DispatchTest, PacketsTooShortForPortsSkipTheHooks) {
  Dispatch d(loop, io, counters, config());
  CountingHook h;
  d.add_hook(PacketMatch::any_port(wire::kProtoUdp), h);
  const Buf l4(3);
  wire::Ipv4Repr ip;
  ip.src = guest4;
  ip.dst = remote4;
  ip.protocol = wire::kProtoUdp;
  ip.payload_len = 3;
  d.on_ipv4(ip, Bytes(l4), clock.now());
  EXPECT_EQ(h.seen, 0);
  EXPECT_EQ(counters.total_drops(), 1u);  // the relay counted it malformed
}


// ---- Memory budget at 100 % (R-LIM-2) -------------------------------------------------------

class BudgetDispatchTest : public DispatchTest {
 protected:
  void tcp(Dispatch& d, uint8_t flags, size_t payload) {
    wire::TcpRepr t;
    t.src_port = 40000;
    t.dst_port = 80;
    t.seq = SeqNum{1000};
    t.ack = SeqNum{2000};
    t.flags = flags;
    t.window = 1000;
    Buf l4(t.header_len() + payload);
    ASSERT_TRUE(t.emit_v4(MutBytes(l4), guest4, remote4));
    wire::Ipv4Repr ip;
    ip.src = guest4;
    ip.dst = remote4;
    ip.protocol = wire::kProtoTcp;
    ip.payload_len = uint16_t(l4.size());
    d.on_ipv4(ip, Bytes(l4), clock.now());
  }
};

TEST_F(BudgetDispatchTest, AtTheLimitOnlyTcpAckFinRstPass) {
  MemoryBudget budget(64 << 20, &counters);
  DispatchConfig c = config();
  c.budget = &budget;
  Dispatch d(loop, io, counters, c);
  CountingHook udp_hook, tcp_hook;
  d.add_hook(PacketMatch::any_port(wire::kProtoUdp), udp_hook);
  d.add_hook(PacketMatch::any_port(wire::kProtoTcp), tcp_hook);
  namespace tf = wire::tcp_flags;
  // Below the limit everything reaches the hooks (the relays charged their fixed buffers).
  budget.charge((64 << 20) - 1 - budget.used());
  udp(d, 53);
  tcp(d, tf::syn, 0);
  EXPECT_EQ(udp_hook.seen, 1);
  EXPECT_EQ(tcp_hook.seen, 1);
  // At 100 %: UDP, a SYN and a data segment are drop.memory; ACK, FIN+ACK, RST pass.
  budget.charge(1);
  ASSERT_EQ(budget.level(), MemoryLevel::full);
  udp(d, 53);
  tcp(d, tf::syn, 0);
  tcp(d, tf::ack | tf::psh, 100);
  EXPECT_EQ(udp_hook.seen, 1);
  EXPECT_EQ(tcp_hook.seen, 1);
  EXPECT_EQ(counters.dropped(DropReason::memory), 3u);
  tcp(d, tf::ack, 0);
  tcp(d, tf::fin | tf::ack, 0);
  tcp(d, tf::rst, 0);
  EXPECT_EQ(tcp_hook.seen, 4);
  EXPECT_EQ(counters.dropped(DropReason::memory), 3u);
  // Released: back to normal.
  budget.release(32 << 20);
  udp(d, 53);
  EXPECT_EQ(udp_hook.seen, 2);
}

}  // namespace
}  // namespace moat::flows::test
