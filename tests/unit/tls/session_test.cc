// tls::Session end to end in one process: an OpenSSL client over memory BIOs plays the
// guest (the test moves its records in and out of the Session as TcpConn would), a real
// OpenSSL server on a loopback socket (its own thread, blocking, bounded by timeouts) plays
// the upstream. Covers R-TLS-4 (upstream first, SNI and ALPN carried, h2 stays h2, IP-SAN
// leaf without SNI, half-close, resumption), R-TLS-5 (verification, 502 / alert, no_verify),
// bad guest bytes, and the bounded buffers (a guest that never reads).
#include "tls/session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "event/clock.h"
#include "event/loop.h"
#include "tls/ca.h"
#include "tls/keylog.h"
#include "tls/leaf.h"
#include "tls/upstream.h"

namespace moat::tls {
namespace {

using namespace std::chrono_literals;

const IpAddr kLoopback = IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1));

Bytes as_bytes(std::string_view s) { return Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()); }

/// The upstream: accepts `conns` connections one after the other, each handled by `serve`
/// on a blocking SSL (5 s socket timeouts bound every call).
class UpstreamServer {
 public:
  UpstreamServer(LeafCache& leaves, std::string cert_name, int conns, std::function<void(SSL*)> serve)
      : leaves_(leaves), cert_name_(std::move(cert_name)), serve_(std::move(serve)) {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_set_alpn_select_cb(
        ctx_.get(),
        [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
           void*) -> int {
          // Prefers h2, then http/1.1, like a real HTTPS server.
          for (std::string_view want : {std::string_view("h2"), std::string_view("http/1.1")}) {
            for (unsigned i = 0; i < inlen;) {
              const unsigned n = in[i];
              if (std::string_view(reinterpret_cast<const char*>(in + i + 1), n) == want) {
                *out = in + i + 1;
                *outlen = static_cast<unsigned char>(n);
                return SSL_TLSEXT_ERR_OK;
              }
              i += 1 + n;
            }
          }
          return SSL_TLSEXT_ERR_NOACK;
        },
        nullptr);
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 8), 0);
    socklen_t l = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &l);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, conns] { run(conns); });
  }
  ~UpstreamServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  [[nodiscard]] uint16_t port() const { return port_; }
  std::atomic<int> handshakes{0}, resumed{0};
  std::string seen_sni, seen_alpn, seen_offer;  // written by the server thread before `handshakes`

 private:
  void run(int conns) {
    for (int i = 0; i < conns && !stop_; ++i) {
      pollfd p{listen_fd_, POLLIN, 0};
      int waited = 0;
      while (!stop_ && ::poll(&p, 1, 50) == 0 && (waited += 50) < 10000) {
      }
      if (stop_ || !(p.revents & POLLIN)) return;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      SslPtr ssl(SSL_new(ctx_.get()));
      SSL_set_fd(ssl.get(), fd);
      // The certificate is fixed (the name the test chose, maybe not the SNI).
      if (leaves_.install(ssl.get(), cert_name_, kLoopback) && SSL_accept(ssl.get()) == 1) {
        const char* sni = SSL_get_servername(ssl.get(), TLSEXT_NAMETYPE_host_name);
        seen_sni = sni ? sni : "";
        const unsigned char* p2 = nullptr;
        unsigned n = 0;
        SSL_get0_alpn_selected(ssl.get(), &p2, &n);
        seen_alpn.assign(reinterpret_cast<const char*>(p2), n);
        if (SSL_session_reused(ssl.get())) ++resumed;
        ++handshakes;
        serve_(ssl.get());
      }
      ERR_clear_error();
      ssl.reset();
      ::close(fd);
    }
  }
  LeafCache& leaves_;
  std::string cert_name_;
  std::function<void(SSL*)> serve_;
  SslCtxPtr ctx_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Echo: every read is answered "echo:<data>"; at the client's close_notify it answers
// "bye" (the other direction still flows, R-TLS-4 half-close), then closes.
void serve_echo(SSL* ssl) {
  char buf[4096];
  for (;;) {
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) break;
    const std::string reply = "echo:" + std::string(buf, size_t(n));
    SSL_write(ssl, reply.data(), int(reply.size()));
  }
  if (SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN || SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) {
    SSL_write(ssl, "bye", 3);
  }
  SSL_shutdown(ssl);
}

/// The guest: an OpenSSL client over memory BIOs.
class Guest {
 public:
  Guest(X509* trust, const std::string& sni, const std::string& alpn_wire, bool verify = true) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), trust);
    SSL_CTX_set_verify(ctx_.get(), verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
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
    if (!alpn_wire.empty())
      SSL_set_alpn_protos(ssl_.get(), reinterpret_cast<const unsigned char*>(alpn_wire.data()),
                          unsigned(alpn_wire.size()));
    SSL_set_connect_state(ssl_.get());
  }
  SSL* ssl() { return ssl_.get(); }
  /// Moves bytes between the client's BIOs and the session, as TcpConn would.
  void exchange(Session& s) {
    char buf[16384];
    while (BIO_ctrl_pending(out_) > 0 && s.writable() > 0) {
      const int n = BIO_read(out_, buf, int(std::min<size_t>(sizeof buf, s.writable())));
      if (n <= 0) break;
      auto w = s.write(Bytes(reinterpret_cast<const std::byte*>(buf), size_t(n)));
      ASSERT_TRUE(w);
      ASSERT_EQ(*w, size_t(n));
    }
    if (!read_) return;
    for (;;) {
      auto n = s.peek(0, MutBytes(reinterpret_cast<std::byte*>(buf), sizeof buf));
      if (!n || *n == 0) break;
      BIO_write(in_, buf, int(*n));
      (void)s.consume(*n);
    }
  }
  void raw_write(Session& s, std::string_view bytes) { ASSERT_TRUE(s.write(as_bytes(bytes))); }
  bool read_ = true;  // false: a guest that never reads

 private:
  SslCtxPtr ctx_;
  SslPtr ssl_;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

std::string wire_alpn(std::initializer_list<std::string_view> protos) {
  std::string w;
  for (auto p : protos) {
    w += char(p.size());
    w += p;
  }
  return w;
}

class SessionTest : public ::testing::Test {
 protected:
  event::SystemClock clock;
  event::Loop loop{clock};
  Counters counters;
  std::unique_ptr<CertAuthority> up_ca, moat_ca;
  std::unique_ptr<LeafCache> up_leaves, moat_leaves;
  std::string up_ca_file;
  config::TlsConfig cfg;
  std::unique_ptr<UpstreamTls> upstream;
  std::unique_ptr<GuestTls> guest_tls;
  std::unique_ptr<KeyLog> keylog;
  SessionEnv env;
  bool http_checks = false;  // the TLS layer alone (echo "ping"); the HTTP tests turn it on

  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // the test's upstream server writes with SSL_write (write(2))
    auto a = CertAuthority::generate();
    auto b = CertAuthority::generate();
    ASSERT_TRUE(a && b);
    up_ca = std::move(*a);
    moat_ca = std::move(*b);
    auto ul = LeafCache::create(*up_ca, cfg);
    auto ml = LeafCache::create(*moat_ca, cfg, nullptr, &counters);
    ASSERT_TRUE(ul && ml);
    up_leaves = std::move(*ul);
    moat_leaves = std::move(*ml);
    up_ca_file = ::testing::TempDir() + "session_test_up_ca.pem";
    std::ofstream(up_ca_file) << up_ca->pem();
    cfg.system_roots = false;
    cfg.extra_ca = {up_ca_file};
  }
  void make_env() {
    auto u = UpstreamTls::create(cfg, keylog.get());
    ASSERT_TRUE(u) << u.error();
    upstream = std::move(*u);
    auto g = GuestTls::create(*moat_leaves, keylog.get());
    ASSERT_TRUE(g) << g.error();
    guest_tls = std::move(*g);
    env.loop = &loop;
    env.counters = &counters;
    env.upstream = upstream.get();
    env.guest = guest_tls.get();
    env.upstream_error = cfg.upstream_error;
    env.ring_bytes = 64 << 10;
    env.http_checks = http_checks;
  }
  std::unique_ptr<Session> make_session(uint16_t port) {
    flows::FlowInfo f;
    f.guest = IpAddr(Ipv4Addr::from_octets(10, 0, 2, 15));
    f.remote = kLoopback;
    f.guest_port = 40000;
    f.remote_port = port;
    f.path = flows::TcpPath::inspect;
    auto s = std::make_unique<Session>(env, f, flows::TcpFlowRef{});
    s->start(UniqueFd{}, flows::Endpoint{kLoopback, port});
    return s;
  }
  /// Runs the loop and the guest until `done` (bounded: 5 s).
  bool drive(Guest& g, Session& s, const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end) {
      g.exchange(s);
      if (done()) return true;
      loop.run_once(5ms);
    }
    return done();
  }
  bool handshake(Guest& g, Session& s) {
    int r = 0;
    const bool ok = drive(g, s, [&] {
      ERR_clear_error();
      r = SSL_do_handshake(g.ssl());
      return r == 1 || (r <= 0 && SSL_get_error(g.ssl(), r) != SSL_ERROR_WANT_READ);
    });
    return ok && r == 1;
  }
  std::string read_some(Guest& g, Session& s, size_t want) {
    std::string got;
    drive(g, s, [&] {
      char buf[4096];
      int n;
      while ((n = SSL_read(g.ssl(), buf, sizeof buf)) > 0) got.append(buf, size_t(n));
      return got.size() >= want || SSL_get_error(g.ssl(), n) == SSL_ERROR_ZERO_RETURN;
    });
    return got;
  }
};

std::string alpn_of(SSL* ssl) {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  SSL_get0_alpn_selected(ssl, &p, &n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::string leaf_dns_name(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!peer) return {};
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
  std::string out;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) out = reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName));
    if (n->type == GEN_IPADD) out = "ip";
  }
  GENERAL_NAMES_free(names);
  return out;
}

TEST_F(SessionTest, InterceptsWithMoatsLeafCarryingSniAndAlpnAndH2StaysH2) {
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 1, serve_echo);
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"h2", "http/1.1"}));
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  EXPECT_EQ(SSL_get_verify_result(g.ssl()), X509_V_OK);  // moat's leaf, trusted via moat's CA
  EXPECT_EQ(leaf_dns_name(g.ssl()), "upstream.test");
  EXPECT_EQ(alpn_of(g.ssl()), "h2");  // what the upstream chose from the guest's offer
  EXPECT_EQ(s->alpn(), "h2");
  ASSERT_EQ(SSL_write(g.ssl(), "ping", 4), 4);
  EXPECT_EQ(read_some(g, *s, 9), "echo:ping");
  EXPECT_EQ(up.seen_sni, "upstream.test");  // read after the echo: the server thread wrote it
  EXPECT_EQ(up.seen_alpn, "h2");
  EXPECT_EQ(counters.get(Counter::tls_intercepted), 1u);
  EXPECT_EQ(counters.get(Counter::tls_leaf_minted), 1u);
}

TEST_F(SessionTest, GuestCloseNotifyHalfClosesAndTheUpstreamStillAnswers) {
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 1, serve_echo);
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  EXPECT_EQ(alpn_of(g.ssl()), "http/1.1");
  SSL_shutdown(g.ssl());  // close_notify, then FIN
  g.exchange(*s);
  s->shutdown_write();
  // Upstream saw close_notify + EOF, answered "bye" and closed: the guest gets it all,
  // then moat's close_notify and read_closed() (FIN).
  EXPECT_EQ(read_some(g, *s, 3), "bye");
  EXPECT_TRUE(drive(g, *s, [&] { return s->read_closed(); }));
}

TEST_F(SessionTest, NoSniGetsAnIpSanLeafAndTheUpstreamIsCheckedAgainstTheAddress) {
  make_env();
  // The upstream's certificate is for 127.0.0.1 (an IP-SAN leaf of the upstream CA).
  UpstreamServer up(*up_leaves, "", 1, serve_echo);
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "", "");
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  EXPECT_EQ(SSL_get_verify_result(g.ssl()), X509_V_OK);
  EXPECT_EQ(leaf_dns_name(g.ssl()), "ip");
  EXPECT_EQ(alpn_of(g.ssl()), "");
  ASSERT_EQ(SSL_write(g.ssl(), "n", 1), 1);
  EXPECT_EQ(read_some(g, *s, 6), "echo:n");
  EXPECT_EQ(up.seen_sni, "");
}

TEST_F(SessionTest, AnUntrustedUpstreamGets502NamingHostAndReason) {
  cfg.extra_ca.clear();  // the upstream's CA is not trusted
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 1, [](SSL*) {});
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  EXPECT_EQ(alpn_of(g.ssl()), "http/1.1");  // moat answers itself, in what the guest offered
  const std::string req = "GET / HTTP/1.1\r\nHost: upstream.test\r\n\r\n";
  ASSERT_EQ(SSL_write(g.ssl(), req.data(), int(req.size())), int(req.size()));
  const std::string resp = read_some(g, *s, 1 << 20);
  EXPECT_EQ(resp.rfind("HTTP/1.1 502 Bad Gateway\r\n", 0), 0u) << resp;
  EXPECT_NE(resp.find("upstream.test"), std::string::npos) << resp;
  // The upstream sends its CA in the chain: OpenSSL says so.
  EXPECT_NE(resp.find("self-signed certificate in certificate chain"), std::string::npos) << resp;
  EXPECT_EQ(counters.get(Counter::tls_verify_failed), 1u);
  EXPECT_EQ(counters.get(Counter::tls_intercepted), 0u);
  EXPECT_TRUE(s->read_closed());
}

// R-TLS-6 through the PlainFilter seam: src/http answers a Host that is not the SNI with
// 421 and the audit counter; a matching request reaches the upstream.
TEST_F(SessionTest, HttpChecksAnswer421ToAHostOtherThanTheSni) {
  http_checks = true;
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 1, [](SSL* ssl) {
    char buf[4096];
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) {
      const std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      SSL_write(ssl, r.data(), int(r.size()));
    }
    SSL_read(ssl, buf, sizeof buf);
    SSL_shutdown(ssl);
  });
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  const std::string ok = "GET /a HTTP/1.1\r\nHost: upstream.test\r\n\r\n";
  ASSERT_EQ(SSL_write(g.ssl(), ok.data(), int(ok.size())), int(ok.size()));
  EXPECT_EQ(read_some(g, *s, 40), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  const std::string fronted = "GET /b HTTP/1.1\r\nHost: evil.test\r\n\r\n";
  ASSERT_EQ(SSL_write(g.ssl(), fronted.data(), int(fronted.size())), int(fronted.size()));
  const std::string resp = read_some(g, *s, 1 << 20);
  EXPECT_EQ(resp.rfind("HTTP/1.1 421 ", 0), 0u) << resp;
  EXPECT_EQ(counters.get(Counter::http_authority_mismatch), 1u);
}

TEST_F(SessionTest, AnUpstreamFailureAnswersAnH2GuestInH2) {
  cfg.extra_ca.clear();
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 1, [](SSL*) {});
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"h2", "http/1.1"}));
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  EXPECT_EQ(alpn_of(g.ssl()), "h2");  // R-TLS-5: h2 or http/1.1 from the guest's offer
}

TEST_F(SessionTest, AWrongNameFailsVerificationToo) {
  make_env();
  UpstreamServer up(*up_leaves, "other.test", 1, [](SSL*) {});  // trusted CA, wrong name
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
  ASSERT_TRUE(handshake(g, *s));
  EXPECT_EQ(counters.get(Counter::tls_verify_failed), 1u);
  EXPECT_EQ(s->failure(), "failed TLS verification: hostname mismatch");
}

TEST_F(SessionTest, AlertModeAbortsTheGuestHandshake) {
  cfg.extra_ca.clear();
  cfg.upstream_error = config::TlsConfig::UpstreamError::alert;
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 1, [](SSL*) {});
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
  EXPECT_FALSE(handshake(g, *s));
  const unsigned long e = ERR_peek_last_error();
  EXPECT_EQ(ERR_GET_REASON(e), SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE) << ERR_reason_error_string(e);
  EXPECT_TRUE(s->read_closed());  // the alert, then FIN (not RST)
}

TEST_F(SessionTest, NoVerifyPatternSkipsVerification) {
  cfg.extra_ca.clear();
  cfg.no_verify = {"*.test"};
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 1, serve_echo);
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  ASSERT_EQ(SSL_write(g.ssl(), "x", 1), 1);
  EXPECT_EQ(read_some(g, *s, 6), "echo:x");
  EXPECT_EQ(counters.get(Counter::tls_verify_failed), 0u);
}

TEST_F(SessionTest, UpstreamSessionsAreResumedPerHost) {
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 2, serve_echo);
  for (int i = 0; i < 2; ++i) {
    auto s = make_session(up.port());
    Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
    ASSERT_TRUE(handshake(g, *s)) << s->failure();
    // A round trip lets the TLS 1.3 ticket arrive before the connection ends.
    ASSERT_EQ(SSL_write(g.ssl(), "r", 1), 1);
    EXPECT_EQ(read_some(g, *s, 6), "echo:r");
    s->detach();
  }
  EXPECT_EQ(upstream->cached_sessions(), 1u);
  EXPECT_EQ(counters.get(Counter::tls_upstream_resumed), 1u);
  EXPECT_EQ(up.resumed.load(), 1);
}

TEST_F(SessionTest, GarbageFromTheGuestFailsOnlyThatSession) {
  make_env();
  UpstreamServer up(*up_leaves, "upstream.test", 0, serve_echo);
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", "");
  g.raw_write(*s, std::string("\x16\x03\x01\x00\x05hello-not-a-client-hello", 29));
  const auto end = std::chrono::steady_clock::now() + 2s;
  while (s->phase() != Session::Phase::done && std::chrono::steady_clock::now() < end) loop.run_once(5ms);
  EXPECT_EQ(s->phase(), Session::Phase::done);
  EXPECT_EQ(counters.get(Counter::tls_handshake_failed), 1u);
  EXPECT_EQ(s->writable(), 0u);
}

TEST_F(SessionTest, AGuestThatNeverReadsDoesNotGrowMemory) {
  make_env();
  std::atomic<size_t> sent{0};
  UpstreamServer up(*up_leaves, "upstream.test", 1, [&](SSL* ssl) {
    std::string chunk(16384, 'z');
    // Until the socket's send timeout: moat stops reading once its buffers are full.
    for (int i = 0; i < 4096; ++i) {
      const int n = SSL_write(ssl, chunk.data(), int(chunk.size()));
      if (n <= 0) break;
      sent += size_t(n);
    }
  });
  auto s = make_session(up.port());
  Guest g(moat_ca->cert(), "upstream.test", wire_alpn({"http/1.1"}));
  ASSERT_TRUE(handshake(g, *s)) << s->failure();
  g.read_ = false;
  const auto end = std::chrono::steady_clock::now() + 1500ms;
  size_t high = 0;
  while (std::chrono::steady_clock::now() < end) {
    loop.run_once(5ms);
    high = std::max(high, s->readable());
  }
  EXPECT_LE(high, size_t(64 << 10));  // the to-guest ring, never more
  EXPECT_LT(sent.load(), size_t(64) << 20);  // the upstream was stopped, not drained into memory
}

}  // namespace
}  // namespace moat::tls
