// R-DNS-9: DoT terminated by moat. The DotSession is driven as TcpConn would drive it (an
// OpenSSL client over memory BIOs is the guest); a loopback listener stands for DNS's
// TCP/53 server and sees the plaintext, length-prefixed queries.
#include "tls/dot.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <string>

#include "event/clock.h"
#include "event/loop.h"
#include "tls/ca.h"
#include "tls/leaf.h"

namespace moat::tls {
namespace {

const IpAddr kLoopback = IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1));

UniqueFd listen_loopback(uint16_t* port) {
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(l.get(), 8) < 0) return {};
  socklen_t len = sizeof a;
  ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return l;
}

/// The guest: an OpenSSL client over memory BIOs.
class Guest {
 public:
  Guest(X509* trust, const std::string& sni, bool alpn_dot) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), trust);
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    ssl_.reset(SSL_new(ctx_.get()));
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_.get(), in_, out_);
    if (!sni.empty()) {
      SSL_set_tlsext_host_name(ssl_.get(), sni.c_str());
      SSL_set1_host(ssl_.get(), sni.c_str());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), "127.0.0.1");
    }
    if (alpn_dot) SSL_set_alpn_protos(ssl_.get(), reinterpret_cast<const unsigned char*>("\x03" "dot"), 4);
    SSL_set_connect_state(ssl_.get());
  }
  SSL* ssl() { return ssl_.get(); }
  void exchange(flows::TcpPeer& s) {
    char buf[16384];
    while (BIO_ctrl_pending(out_) > 0 && s.writable() > 0) {
      const int n = BIO_read(out_, buf, int(std::min<size_t>(sizeof buf, s.writable())));
      if (n <= 0) break;
      auto w = s.write(Bytes(reinterpret_cast<const std::byte*>(buf), size_t(n)));
      ASSERT_TRUE(w);
    }
    for (;;) {
      auto n = s.peek(0, MutBytes(reinterpret_cast<std::byte*>(buf), sizeof buf));
      if (!n || *n == 0) break;
      BIO_write(in_, buf, int(*n));
      (void)s.consume(*n);
    }
  }

 private:
  SslCtxPtr ctx_;
  SslPtr ssl_;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

std::string dns_frame(std::string_view msg) {
  std::string f;
  f += char(msg.size() >> 8);
  f += char(msg.size() & 0xff);
  f += msg;
  return f;
}

class DotTest : public ::testing::Test {
 protected:
  event::SystemClock clock;
  event::Loop loop{clock};
  Counters counters;
  config::TlsConfig cfg;
  std::unique_ptr<CertAuthority> ca;
  std::unique_ptr<LeafCache> leaves;
  std::unique_ptr<DotTerminator> dot;
  UniqueFd dns_listener;
  uint16_t dns_port = 0;
  bool dns_available = true;

  void SetUp() override {
    auto a = CertAuthority::generate();
    ASSERT_TRUE(a);
    ca = std::move(*a);
    auto l = LeafCache::create(*ca, cfg, nullptr, &counters);
    ASSERT_TRUE(l);
    leaves = std::move(*l);
    dns_listener = listen_loopback(&dns_port);
    ASSERT_TRUE(dns_listener.valid());
    auto d = DotTerminator::create(
        loop, counters, *leaves,
        [this](const IpAddr&) -> std::optional<flows::Endpoint> {
          if (!dns_available) return std::nullopt;
          return flows::Endpoint{kLoopback, dns_port};
        },
        DotConfig{});
    ASSERT_TRUE(d) << d.error();
    dot = std::move(*d);
  }
  void TearDown() override { dot.reset(); }

  flows::TcpPeer* open(flows::DialPlan& plan) {
    flows::FlowInfo f;
    f.guest = IpAddr(Ipv4Addr::from_octets(10, 0, 2, 15));
    f.remote = kLoopback;
    f.guest_port = 40000;
    f.remote_port = 853;
    const flows::TcpTake t = dot->on_syn(f, plan, flows::TcpFlowRef{});
    return t.kind == flows::TcpTake::Kind::peer ? t.peer : nullptr;
  }
  /// Runs the exchange until `done` or ~2 s.
  template <class P>
  bool drive(Guest& g, flows::TcpPeer& s, P done) {
    for (int i = 0; i < 400; ++i) {
      g.exchange(s);
      if (done()) return true;
      loop.run_once(std::chrono::milliseconds(5));
    }
    return done();
  }
  UniqueFd accept_dns() {
    for (int i = 0; i < 200; ++i) {
      UniqueFd c(::accept4(dns_listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (c.valid()) return c;
      loop.run_once(std::chrono::milliseconds(5));
    }
    return {};
  }
  std::string dns_read(int fd, size_t want, Guest& g, flows::TcpPeer& s) {
    std::string got;
    char buf[4096];
    for (int i = 0; i < 400 && got.size() < want; ++i) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) got.append(buf, size_t(n));
      else if (n == 0) break;
      g.exchange(s);
      loop.run_once(std::chrono::milliseconds(5));
    }
    return got;
  }
  uint64_t count(Counter c) const { return counters.values[size_t(c)]; }

  /// Handshake, one query and its answer; returns the guest's view of the answer.
  void query_round_trip(Guest& g, flows::TcpPeer& s) {
    ASSERT_TRUE(drive(g, s, [&] { return SSL_do_handshake(g.ssl()) == 1; }));
    ASSERT_EQ(SSL_get_verify_result(g.ssl()), X509_V_OK);
    UniqueFd dns = accept_dns();
    ASSERT_TRUE(dns.valid());
    const std::string q = dns_frame("\x12\x34query-bytes");
    ASSERT_EQ(SSL_write(g.ssl(), q.data(), int(q.size())), int(q.size()));
    EXPECT_EQ(dns_read(dns.get(), q.size(), g, s), q);  // plaintext, as on TCP/53
    const std::string a = dns_frame("\x12\x34" "answer-bytes");
    ASSERT_EQ(::send(dns.get(), a.data(), a.size(), 0), ssize_t(a.size()));
    std::string got;
    char buf[256];
    ASSERT_TRUE(drive(g, s, [&] {
      const int n = SSL_read(g.ssl(), buf, sizeof buf);
      if (n > 0) got.append(buf, size_t(n));
      return got.size() >= a.size();
    }));
    EXPECT_EQ(got, a);
    // DNS closes (its idle timeout): the guest gets close_notify, then the stream ends.
    dns.reset();
    ASSERT_TRUE(drive(g, s, [&] {
      (void)SSL_read(g.ssl(), buf, sizeof buf);
      return (SSL_get_shutdown(g.ssl()) & SSL_RECEIVED_SHUTDOWN) != 0;
    }));
    EXPECT_TRUE(drive(g, s, [&] { return s.read_closed(); }));
  }
};

TEST_F(DotTest, SniGetsItsLeafAndAlpnDotAndQueriesReachDnsInPlaintext) {
  flows::DialPlan plan;
  flows::TcpPeer* s = open(plan);
  ASSERT_NE(s, nullptr);
  Guest g(ca->cert(), "dns.example", true);
  query_round_trip(g, *s);
  const unsigned char* alpn = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(g.ssl(), &alpn, &len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(alpn), len), "dot");
  X509* leaf = SSL_get0_peer_certificate(g.ssl());
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_check_host(leaf, "dns.example", 0, 0, nullptr), 1);
  EXPECT_EQ(count(Counter::tls_dot_sessions), 1u);
}

TEST_F(DotTest, NoSniGetsAnIpSanLeafForTheDialledAddress) {
  flows::DialPlan plan;
  flows::TcpPeer* s = open(plan);
  ASSERT_NE(s, nullptr);
  Guest g(ca->cert(), "", false);  // kdig +tls without a name: checks the IP
  query_round_trip(g, *s);
  X509* leaf = SSL_get0_peer_certificate(g.ssl());
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
}

TEST_F(DotTest, GarbageFailsTheSessionAndIsCounted) {
  flows::DialPlan plan;
  flows::TcpPeer* s = open(plan);
  ASSERT_NE(s, nullptr);
  const std::string junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)s->write(Bytes(reinterpret_cast<const std::byte*>(junk.data()), junk.size()));
  std::byte b[16];
  EXPECT_FALSE(s->peek(0, MutBytes(b, sizeof b)));
  EXPECT_EQ(s->writable(), 0u);
  EXPECT_EQ(count(Counter::tls_dot_handshake_failed), 1u);
  dot->on_closed(*s);
  loop.run_once(std::chrono::milliseconds(1));
  EXPECT_EQ(dot->live_sessions(), 0u);
}

TEST_F(DotTest, NoDnsListenerRefusesTheSyn) {
  dns_available = false;
  flows::DialPlan plan;
  plan.add(flows::Endpoint{kLoopback, 853});
  EXPECT_EQ(open(plan), nullptr);
  EXPECT_EQ(plan.count, 0u);  // an empty plan: the engine answers RST
}

TEST_F(DotTest, OtherPortsPass) {
  flows::FlowInfo f;
  f.remote = kLoopback;
  f.remote_port = 443;
  flows::DialPlan plan;
  EXPECT_EQ(dot->on_syn(f, plan, flows::TcpFlowRef{}).kind, flows::TcpTake::Kind::pass);
}

}  // namespace
}  // namespace moat::tls
