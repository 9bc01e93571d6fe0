// The TCP paths of SPEC §2.3 / R-POL-9 end to end through the TcpEngine, with the real
// policy engine behind PolicyAdmission and a fake pin set: reject at SYN (RST, or silence
// under drop), fast path, gate (upstream first, guest bytes held until classified, RST on
// a denied name), inspect (handshake without dialling, dial on allow, replay; RST on deny
// and on timeout). Host sockets are real (127.0.0.1); the clock is fake.
#include <gtest/gtest.h>
#include <poll.h>

#include <map>
#include <set>

#include "app/policy_admission.h"
#include "obs/audit_log.h"
#include "unit/flows/tcp_engine_fixture.h"
#include "unit/sniff/client_hello_builder.h"

namespace moat::app {
namespace {

using flows::test::Buf;
using wire::SeqNum;
using flows::test::text;
namespace tf = wire::tcp_flags;

class FakePins final : public policy::PinLookup {
 public:
  std::map<std::string, std::set<std::string>> pins;  // address -> names
  bool any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view)> pred) const override {
    auto it = pins.find(policy::normalize(a).to_string());
    if (it == pins.end()) return false;
    for (const auto& n : it->second)
      if (pred(n)) return true;
    return false;
  }
};

constexpr std::string_view kShared = "deny@bad.example:tcp,allow@ok.example:tcp";

Buf hello(const std::string& sni) {
  auto v = test::records(test::client_hello_message(sni));
  Buf b(v.size());
  std::memcpy(b.data(), v.data(), v.size());
  return b;
}

class PolicyPathsTest : public flows::test::TcpEngineFixture {
 protected:
  FakePins pins;
  std::optional<policy::EngineRef> ref;
  std::optional<PolicyAdmission> adm;

  void start_with(std::string_view rules, policy::Action default_egress,
                  config::DenyResponse resp = config::DenyResponse::reject) {
    start();
    policy::Policy p;
    p.default_egress = default_egress;
    if (!rules.empty()) {
      auto r = policy::parse_rules(rules, policy::Origin::cli);
      ASSERT_TRUE(r.has_value()) << r.error().what;
      p.rules = std::move(*r);
    }
    policy::HostAddrs h;
    h.addrs.push_back(IpAddr(gw4));
    ref.emplace(std::make_shared<const policy::Engine>(std::move(p), h));
    adm.emplace(*ref, [this]() -> const policy::PinLookup& { return pins; }, counters, nullptr, resp,
                std::chrono::seconds(1));
    engine->set_admission(&*adm);
  }
  void TearDown() override {
    engine.reset();
    adm.reset();
  }
  bool listener_has_connection(int wait_ms = 0) {
    pollfd p{listener.get(), POLLIN, 0};
    return ::poll(&p, 1, wait_ms) == 1;
  }
  /// Inspect path: SYN-ACK comes at once, before any dial.
  void inspect_handshake() {
    send(tf::syn, gseq, SeqNum{0});
    Seg synack = expect_recv();
    ASSERT_EQ(synack.h.flags, tf::syn | tf::ack);
    EXPECT_LE(synack.h.window, 16 * 1024);  // R-TCP-5: a 16 KiB window
    gseq += 1;
    mseq = synack.h.seq + 1;
    send_ack();
    engine->flush(now());
    take();
  }
  using Seg = flows::test::Seg;
};

TEST_F(PolicyPathsTest, RejectAtSynSendsRstWithoutDialling) {
  start_with("", policy::Action::deny);  // the host group is not allowed
  send(tf::syn, gseq, SeqNum{0});
  Seg s = expect_recv();
  EXPECT_EQ(s.h.flags, tf::rst | tf::ack);
  EXPECT_EQ(s.h.ack, gseq + 1);
  EXPECT_FALSE(listener_has_connection(50));
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(counters.get(Counter::tcp_path_rejected), 1u);
  EXPECT_EQ(counters.get(Counter::policy_deny), 1u);
}

TEST_F(PolicyPathsTest, RejectUnderDropIgnoresTheSyn) {
  start_with("", policy::Action::deny, config::DenyResponse::drop);
  send(tf::syn, gseq, SeqNum{0});
  expect_nothing();
  EXPECT_EQ(counters.dropped(DropReason::policy), 1u);
  EXPECT_FALSE(listener_has_connection(50));
}

TEST_F(PolicyPathsTest, FastPathWhenNoNameMatters) {
  start_with("allow@host:tcp", policy::Action::deny);
  UniqueFd host = handshake();
  send_data(text("hello"));
  engine->flush(now());
  EXPECT_EQ(host_read(host.get(), 5), "hello");
  EXPECT_EQ(counters.get(Counter::tcp_path_fast), 1u);
}

TEST_F(PolicyPathsTest, GatePathRelaysTheBannerAtOnceAndHoldsGuestBytes) {
  start_with("deny@blocked.example,allow@host:tcp", policy::Action::deny);
  UniqueFd host = handshake();  // connect first: SYN-ACK after the host accepted
  EXPECT_EQ(counters.get(Counter::tcp_path_gate), 1u);
  // Server-first: the banner reaches the guest before the guest sent anything.
  ASSERT_EQ(::send(host.get(), "SSH-2.0-x\r\n", 11, 0), 11);
  ASSERT_TRUE(pump_until([&] { return !io.out.empty(); }));
  Seg banner = expect_data();
  EXPECT_EQ(flows::test::str(banner.payload), "SSH-2.0-x\r\n");
  // The first bytes of a TLS hello are held (a prefix is not classified yet).
  Buf h = hello("ok.example");
  Buf first(h.begin(), h.begin() + 20), rest(h.begin() + 20, h.end());
  send_data(first);
  engine->flush(now());
  EXPECT_EQ(host_read(host.get(), 1), "");
  send_data(rest);
  engine->flush(now());
  EXPECT_EQ(host_read(host.get(), h.size()).size(), h.size());  // allowed: replayed in order
  // After the release, data flows directly.
  send_data(text("more"));
  engine->flush(now());
  EXPECT_EQ(host_read(host.get(), 4), "more");
}

TEST_F(PolicyPathsTest, GatePathDeniedSniResetsBothSidesAndNothingReachesUpstream) {
  start_with("deny@blocked.example,allow@host:tcp", policy::Action::deny);
  UniqueFd host = handshake();
  send_data(hello("Blocked.Example"));
  Seg rst = expect_data();
  EXPECT_TRUE(rst.h.flags & tf::rst);
  char buf[16];
  ssize_t n = ::recv(host.get(), buf, sizeof buf, 0);
  EXPECT_TRUE(n < 0 ? errno == ECONNRESET : n == 0) << n;  // never a byte of the hello
  EXPECT_EQ(counters.get(Counter::policy_deny), 1u);
}

TEST_F(PolicyPathsTest, GatePathGuestFinBeforeClassificationDecidesOnWhatCame) {
  start_with("deny@blocked.example,allow@host:tcp", policy::Action::deny);
  UniqueFd host = handshake();
  send_data(text("GE"));  // a prefix of "GET ": not classified yet
  engine->flush(now());
  EXPECT_EQ(host_read(host.get(), 1), "");
  send(tf::fin | tf::ack, gseq, mseq);  // R-TCP-4: FIN -> classify what was received
  gseq += 1;
  engine->flush(now());
  pump(3);
  EXPECT_EQ(host_read(host.get(), 3), "GE");  // no name -> allowed -> replayed, then EOF
  char c;
  EXPECT_EQ(::recv(host.get(), &c, 1, MSG_DONTWAIT), 0);
}

TEST_F(PolicyPathsTest, GatePathPartialHelloTimesOutAsNoName) {
  start_with("deny@blocked.example,allow@host:tcp", policy::Action::deny);
  UniqueFd host = handshake();
  Buf h = hello("ok.example");
  send_data(Buf(h.begin(), h.begin() + 10));
  engine->flush(now());
  advance(std::chrono::milliseconds(1100));  // first_flight_timeout: "no name" -> allowed
  pump(3);
  EXPECT_EQ(host_read(host.get(), 10).size(), 10u);
}

TEST_F(PolicyPathsTest, GatePathDeniedHttpHost) {
  start_with("deny@blocked.example,allow@host:tcp", policy::Action::deny);
  UniqueFd host = handshake();
  send_data(text("GET / HTTP/1.1\r\nHost: blocked.example:8080\r\n\r\n"));
  Seg rst = expect_data();
  EXPECT_TRUE(rst.h.flags & tf::rst);
}

TEST_F(PolicyPathsTest, InspectPathDialsOnlyAfterAnAllowedPinnedSni) {
  // A shared address (think CDN) pinned to a denied and an allowed name: V0 (pins only)
  // is deny, but an SNI of the allowed name could allow -> inspect path (R-POL-9).
  pins.pins[IpAddr(gw4).to_string()] = {"bad.example", "ok.example"};
  start_with(kShared, policy::Action::deny);
  inspect_handshake();
  EXPECT_EQ(counters.get(Counter::tcp_path_inspect), 1u);
  EXPECT_FALSE(listener_has_connection(50));  // no dial before the first flight
  Buf h = hello("ok.example");
  send_data(h);
  engine->flush(now());
  ASSERT_TRUE(pump_until([&] { return listener_has_connection(); }));
  UniqueFd host(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  pump(3);
  EXPECT_EQ(host_read(host.get(), h.size()).size(), h.size());  // the held hello, replayed
  // Upstream -> guest works after the replay.
  ASSERT_EQ(::send(host.get(), "resp", 4, 0), 4);
  ASSERT_TRUE(pump_until([&] {
    // Parsed in place: copying the payload out (parse_seg) trips g++ 12 -O3's
    // -Wfree-nonheap-object false positive here.
    for (auto& e : io.out) {
      Bytes payload;
      if (!e.icmp_error && wire::TcpRepr::parse(Bytes(e.l4), &payload) && !payload.empty()) return true;
    }
    return false;
  }));
  EXPECT_EQ(flows::test::str(expect_data().payload), "resp");
}

TEST_F(PolicyPathsTest, InspectPathBytesDuringTheDialAreHeldAndReplayedOnce) {
  pins.pins[IpAddr(gw4).to_string()] = {"bad.example", "ok.example"};
  start_with(kShared, policy::Action::deny);
  inspect_handshake();
  Buf h = hello("ok.example");
  send_data(h);         // allowed: the dial starts (the connect completes in the loop)
  send_data(text("extra"));  // arrives while dialling: held, not decided again
  engine->flush(now());
  ASSERT_TRUE(pump_until([&] { return listener_has_connection(); }));
  UniqueFd host(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  pump(3);
  EXPECT_EQ(host_read(host.get(), h.size() + 5).size(), h.size() + 5);
  EXPECT_FALSE(listener_has_connection(50));  // one dial only
  EXPECT_EQ(counters.get(Counter::policy_allow), 1u);
}

TEST_F(PolicyPathsTest, InspectPathSpoofedSniIsResetWithoutDialling) {
  pins.pins[IpAddr(gw4).to_string()] = {"bad.example", "ok.example"};
  start_with("deny@bad.example:tcp,allow@ok.example:tcp,allow@other.example:tcp", policy::Action::deny);
  inspect_handshake();
  send_data(hello("other.example"));  // allowed name, but not pinned to this address
  Seg rst = expect_data();
  EXPECT_TRUE(rst.h.flags & tf::rst);
  EXPECT_FALSE(listener_has_connection(50));
}

TEST_F(PolicyPathsTest, InspectPathTimeoutCountsAsNoName) {
  pins.pins[IpAddr(gw4).to_string()] = {"bad.example", "ok.example"};
  start_with(kShared, policy::Action::deny);
  inspect_handshake();
  advance(std::chrono::milliseconds(900));
  expect_nothing();
  advance(std::chrono::milliseconds(200));
  Seg rst = expect_data();
  EXPECT_TRUE(rst.h.flags & tf::rst);
  EXPECT_FALSE(listener_has_connection(50));
  EXPECT_EQ(engine->active_flows(), 0u);
}

TEST_F(PolicyPathsTest, InspectPathDeniedSniIsReset) {
  pins.pins[IpAddr(gw4).to_string()] = {"bad.example", "ok.example"};
  start_with(kShared, policy::Action::deny);
  inspect_handshake();
  send_data(text("GET / HTTP/1.1\r\nHost: bad.example\r\n\r\n"));
  Seg rst = expect_data();
  EXPECT_TRUE(rst.h.flags & tf::rst);
  EXPECT_FALSE(listener_has_connection(50));
}

TEST_F(PolicyPathsTest, WithoutAPinNoNameCanAllowSoTheSynIsRejected) {
  start_with("allow@ok.example:tcp", policy::Action::deny);  // R-POL-7: allow-by-SNI needs a pin
  send(tf::syn, gseq, SeqNum{0});
  Seg s = expect_recv();
  EXPECT_EQ(s.h.flags, tf::rst | tf::ack);
}

TEST_F(PolicyPathsTest, DnsOverTcpIsAuditedAsTheForwarderAdmitsItNotByItsAddress) {
  // R-DNS-1: TCP/53 to any address goes to moat's forwarder (fast path, no SYN verdict);
  // its flow_open / flow_close lines say allow, while another port to the same denied
  // address is audited with the policy's deny.
  start_with("", policy::Action::deny);
  std::vector<std::string> lines;
  obs::AuditOptions o;
  o.gateway = "t";
  o.line_sink = [&](const std::string& l) { lines.push_back(l); };
  obs::AuditLog log(UniqueFd{}, o, loop, counters);
  PolicyAdmission a(*ref, [this]() -> const policy::PinLookup& { return pins; }, counters, &log,
                    config::DenyResponse::reject, std::chrono::seconds(1));
  flows::FlowInfo f;
  f.guest = IpAddr(guest4);
  f.remote = IpAddr(Ipv4Addr::from_octets(10, 9, 8, 7));
  f.guest_port = 40000;
  f.remote_port = 53;
  EXPECT_EQ(a.tcp_syn(f), flows::TcpPath::fast);
  a.flow_opened(f);
  a.flow_closed(f, flows::CloseInfo{});
  f.remote_port = 80;
  a.flow_opened(f);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("\"verdict\":\"allow\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"verdict\":\"allow\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("\"verdict\":\"deny\""), std::string::npos) << lines[2];
}

}  // namespace
}  // namespace moat::app
