// R-TLS-8 through a real TcpEngine: the guest's CONNECT is taken before policy by the
// ConnectTunnels provider; the fixture's loopback listener is the proxy.
#include <gtest/gtest.h>
#include <fcntl.h>

#include "tls/connect_tunnel.h"
#include "unit/flows/tcp_engine_fixture.h"
#include "unit/sniff/client_hello_builder.h"

namespace moat::tls {
namespace {

using namespace moat::flows;
using namespace moat::flows::test;

/// Every flow fast at SYN (the provider gates it); CONNECT targets decided by name.
class TargetPolicy final : public Admission {
 public:
  std::string denied = "denied.example";
  std::vector<FlowInfo> asked;  // name views dangle after the call: copied below
  std::vector<std::string> names;
  uint64_t next_flow_id() override { return ++id_; }
  TcpPath tcp_syn(const FlowInfo&) override { return TcpPath::fast; }
  bool tcp_first_flight(const FlowInfo&) override { return true; }
  Decision tcp_decide(const FlowInfo& f) override {
    asked.push_back(f);
    names.emplace_back(f.name);
    if (f.name == denied) return Decision{false, "no-denied"};
    return Decision{true, "7"};
  }
  bool udp(const FlowInfo&) override { return true; }
  bool icmp_echo(const FlowInfo&) override { return true; }
  bool ingress(const FlowInfo&) override { return true; }
  uint64_t generation() const override { return 1; }
  bool drop_denied() const override { return false; }
  Duration first_flight_timeout() const override { return std::chrono::seconds(1); }
  void flow_opened(const FlowInfo&) override {}
  void flow_closed(const FlowInfo&, const CloseInfo&) override {}

 private:
  uint64_t id_ = 0;
};

class ConnectTunnelTest : public TcpEngineFixture {
 protected:
  TargetPolicy policy;
  std::optional<ConnectTunnels> tunnels;
  UniqueFd gate_conn;  // the gate path's connection to the proxy (the tunnel's, or reset on a deny)

  void SetUp() override {
    start();
    engine->set_admission(&policy);
    ConnectConfig cc;
    cc.intercept_ports = {443};
    cc.bypass = {"*.bypass.example"};
    tunnels.emplace(loop, counters, policy, nullptr, cc);
    engine->add_provider(*tunnels);
    gate_conn = handshake();
    // The proxy's later accepts must not block the test.
    ::fcntl(listener.get(), F_SETFL, ::fcntl(listener.get(), F_GETFL) | O_NONBLOCK);
  }
  void TearDown() override {
    engine.reset();
    tunnels.reset();
  }
  uint64_t count(Counter c) const { return counters.values[size_t(c)]; }

  /// Everything moat sends the guest until FIN (or ~2 s), acking as it goes.
  std::string guest_read(bool* fin = nullptr, bool* rst = nullptr) {
    std::string got;
    for (int i = 0; i < 100; ++i) {
      pump(2);
      engine->flush(now());
      bool progressed = false;
      for (auto& s : take()) {
        if (s.has(tf::rst)) {
          if (rst) *rst = true;
          return got;
        }
        if (!s.payload.empty() && s.h.seq == mseq) {
          got += str(s.payload);
          mseq += uint32_t(s.payload.size());
          progressed = true;
        }
        if (s.has(tf::fin)) {
          mseq += 1;
          send_ack();
          if (fin) *fin = true;
          return got;
        }
      }
      if (progressed) send_ack();
      if (!got.empty() && !progressed && !fin) return got;
    }
    return got;
  }
  static void host_write(int fd, std::string_view s) { ASSERT_EQ(::send(fd, s.data(), s.size(), 0), ssize_t(s.size())); }
};

TEST_F(ConnectTunnelTest, DeniedTargetGets403WithTheRuleAndTheProxyNothing) {
  send_data(text("CONNECT Denied.Example:443 HTTP/1.1\r\nHost: denied.example:443\r\n\r\n"));
  bool fin = false;
  const std::string got = guest_read(&fin);
  EXPECT_EQ(got.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("X-Moat-Deny: no-denied\r\n"), std::string::npos) << got;
  EXPECT_TRUE(fin);
  ASSERT_EQ(policy.asked.size(), 1u);
  EXPECT_EQ(policy.names[0], "denied.example");
  EXPECT_EQ(policy.asked[0].name_src, NameSrc::connect);
  EXPECT_EQ(policy.asked[0].remote_port, 443);  // the target's port, not the proxy's
  EXPECT_EQ(count(Counter::tls_connect_denied), 1u);
  // The proxy saw no byte: its gate-path connection was reset, and no other was made.
  pump(3);
  EXPECT_EQ(host_read(gate_conn.get(), 1), "");
  pump(3);
  UniqueFd none(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  EXPECT_FALSE(none.valid());
}

TEST_F(ConnectTunnelTest, AllowedTunnelForwardsTheHeadThenSplices) {
  const std::string head = "CONNECT ok.example:8080 HTTP/1.1\r\nHost: ok.example:8080\r\n\r\n";
  send_data(text(head));
  const int proxy = gate_conn.get();  // the gate path's connection carries the tunnel
  pump(3);
  EXPECT_EQ(host_read(proxy, head.size()), head);
  host_write(proxy, "HTTP/1.1 200 Connection established\r\n\r\n");
  EXPECT_EQ(guest_read(), "HTTP/1.1 200 Connection established\r\n\r\n");
  send_data(text("ping"));
  pump(3);
  EXPECT_EQ(host_read(proxy, 4), "ping");
  host_write(proxy, "pong");
  EXPECT_EQ(guest_read(), "pong");
  EXPECT_EQ(count(Counter::tls_connect_tunnels), 1u);
  EXPECT_EQ(tunnels->open_tunnels(), 1u);
}

TEST_F(ConnectTunnelTest, LiteralTargetIsAskedWithoutAName) {
  send_data(text("CONNECT [2001:db8::5]:22 HTTP/1.1\r\n\r\n"));
  const int proxy = gate_conn.get();  // the gate path's connection carries the tunnel
  ASSERT_EQ(policy.asked.size(), 1u);
  EXPECT_EQ(policy.asked[0].name_src, NameSrc::none);
  EXPECT_EQ(policy.asked[0].remote.to_string(), "2001:db8::5");
  EXPECT_EQ(policy.asked[0].remote_port, 22);
  pump(3);
  EXPECT_EQ(host_read(proxy, 8).rfind("CONNECT [2001:db8::5]:22 ", 0), 0u);
}

TEST_F(ConnectTunnelTest, MalformedConnectGets400) {
  send_data(text("CONNECT no-port.example HTTP/1.1\r\n\r\n"));
  bool fin = false;
  const std::string got = guest_read(&fin);
  EXPECT_EQ(got.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << got;
  EXPECT_TRUE(fin);
  EXPECT_TRUE(policy.asked.empty());
  EXPECT_EQ(count(Counter::tls_connect_malformed), 1u);
}

TEST_F(ConnectTunnelTest, NonSuccessAnswerIsRelayedAndTheConnectionStaysOpaque) {
  send_data(text("CONNECT ok.example:443 HTTP/1.1\r\n\r\n"));
  const int proxy = gate_conn.get();  // the gate path's connection carries the tunnel
  const std::string answer = "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno";
  host_write(proxy, answer);
  std::string got;
  for (int i = 0; i < 10 && got.size() < answer.size(); ++i) got += guest_read();
  EXPECT_EQ(got, answer);
  EXPECT_EQ(count(Counter::tls_connect_refused_by_proxy), 1u);
}

TEST_F(ConnectTunnelTest, SuccessWithExtraBytesIs502) {
  send_data(text("CONNECT ok.example:443 HTTP/1.1\r\n\r\n"));
  const int proxy = gate_conn.get();  // the gate path's connection carries the tunnel
  host_write(proxy, "HTTP/1.1 200 OK\r\n\r\nsurprise");
  bool fin = false;
  const std::string got = guest_read(&fin);
  EXPECT_EQ(got.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << got;
  EXPECT_EQ(count(Counter::tls_connect_bad_response), 1u);
}

std::string hello(const std::string& sni) {
  const auto rec = moat::test::records(moat::test::client_hello_message(sni));
  return std::string(reinterpret_cast<const char*>(rec.data()), rec.size());
}

TEST_F(ConnectTunnelTest, TunnelledTlsForAnotherNameClosesTheTunnel) {
  send_data(text("CONNECT ok.example:443 HTTP/1.1\r\n\r\n"));
  const int proxy = gate_conn.get();  // the gate path's connection carries the tunnel
  pump(3);
  EXPECT_EQ(host_read(proxy, 36), "CONNECT ok.example:443 HTTP/1.1\r\n\r\n");
  host_write(proxy, "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(guest_read(), "HTTP/1.1 200 OK\r\n\r\n");
  send_data(text(hello("other.example")));
  bool rst = false;
  guest_read(nullptr, &rst);
  EXPECT_TRUE(rst);
  EXPECT_EQ(count(Counter::tls_connect_sni_mismatch), 1u);
  EXPECT_EQ(host_read(proxy, 1), "");  // the hello never reached the proxy
}

TEST_F(ConnectTunnelTest, TunnelledTlsForTheAuthorityPasses) {
  send_data(text("CONNECT ok.example:443 HTTP/1.1\r\n\r\n"));
  const int proxy = gate_conn.get();  // the gate path's connection carries the tunnel
  pump(3);
  EXPECT_EQ(host_read(proxy, 36), "CONNECT ok.example:443 HTTP/1.1\r\n\r\n");
  host_write(proxy, "HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(guest_read(), "HTTP/1.1 200 OK\r\n\r\n");
  const std::string h = hello("ok.example");
  send_data(text(h));
  pump(3);
  EXPECT_EQ(host_read(proxy, h.size()), h);
  EXPECT_EQ(count(Counter::tls_connect_sni_mismatch), 0u);
}

TEST(ConnectBypassTest, Patterns) {
  EXPECT_TRUE(bypassed({"*.example.com"}, "example.com"));
  EXPECT_TRUE(bypassed({"*.example.com"}, "a.b.example.com"));
  EXPECT_FALSE(bypassed({"*.example.com"}, "badexample.com"));
  EXPECT_TRUE(bypassed({"exact.org"}, "exact.org"));
  EXPECT_FALSE(bypassed({"exact.org"}, "a.exact.org"));
  EXPECT_TRUE(bypassed({"*"}, "anything"));
  EXPECT_FALSE(bypassed({}, "anything"));
}

}  // namespace
}  // namespace moat::tls
