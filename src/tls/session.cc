#include "tls/session.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "http/pump.h"
#include "obs/audit_log.h"
#include "policy/rule.h"
#include "tls/keylog.h"
#include "tls/upstream.h"

namespace moat::tls {

namespace {

// ---- The guest SSL's BIO: reads and writes the session's rings directly ----

int ring_bio_write(BIO* b, const char* in, int len) {
  BIO_clear_retry_flags(b);
  const int n = static_cast<Session*>(BIO_get_data(b))->bio_write(in, len);
  if (n < 0) BIO_set_retry_write(b);
  return n;
}

int ring_bio_read(BIO* b, char* out, int len) {
  BIO_clear_retry_flags(b);
  const int n = static_cast<Session*>(BIO_get_data(b))->bio_read(out, len);
  if (n < 0) BIO_set_retry_read(b);
  return n;
}

// BIO_CTRL_EOF matters: OpenSSL treats a 0 read as a clean end (with
// SSL_OP_IGNORE_UNEXPECTED_EOF) only when the BIO also reports EOF.
long ring_bio_ctrl(BIO* b, int cmd, long, void*) {
  if (cmd == BIO_CTRL_FLUSH) return 1;
  if (cmd == BIO_CTRL_EOF) return static_cast<Session*>(BIO_get_data(b))->bio_eof() ? 1 : 0;
  return 0;
}

long sock_bio_ctrl(BIO* b, int cmd, long, void*) {
  if (cmd == BIO_CTRL_FLUSH) return 1;
  if (cmd == BIO_CTRL_EOF) return BIO_test_flags(b, BIO_FLAGS_IN_EOF) ? 1 : 0;
  return 0;
}

int ring_bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* ring_bio_method() {
  static BIO_METHOD* const m = [] {
    BIO_METHOD* x = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "moat-ring");
    BIO_meth_set_write(x, ring_bio_write);
    BIO_meth_set_read(x, ring_bio_read);
    BIO_meth_set_ctrl(x, ring_bio_ctrl);
    BIO_meth_set_create(x, ring_bio_create);
    return x;
  }();
  return m;
}

// ---- The upstream SSL's BIO: the host socket, with send(MSG_NOSIGNAL) ----
// OpenSSL's socket BIO uses write(2), which raises SIGPIPE on a connection the upstream
// reset; moat does not ignore SIGPIPE process-wide (the C ABI runs inside embedders), so
// the upstream side gets this small BIO instead.

int sock_bio_write(BIO* b, const char* in, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(int(reinterpret_cast<intptr_t>(BIO_get_data(b))), in, size_t(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return int(n);
}

int sock_bio_read(BIO* b, char* out, int len) {
  BIO_clear_retry_flags(b);
  const ssize_t n = ::recv(int(reinterpret_cast<intptr_t>(BIO_get_data(b))), out, size_t(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  if (n == 0) BIO_set_flags(b, BIO_FLAGS_IN_EOF);
  return int(n);
}

BIO_METHOD* sock_bio_method() {
  static BIO_METHOD* const m = [] {
    BIO_METHOD* x = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "moat-socket");
    BIO_meth_set_write(x, sock_bio_write);
    BIO_meth_set_read(x, sock_bio_read);
    BIO_meth_set_ctrl(x, sock_bio_ctrl);
    BIO_meth_set_create(x, ring_bio_create);
    return x;
  }();
  return m;
}

int client_hello_cb(SSL* ssl, int* alert, void*) {
  auto* s = static_cast<Session*>(SSL_get_app_data(ssl));
  if (!s) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return s->on_client_hello(ssl, alert);
}

int alpn_select_cb(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                   unsigned inlen, void*) {
  auto* s = static_cast<Session*>(SSL_get_app_data(ssl));
  if (!s) return SSL_TLSEXT_ERR_NOACK;
  return s->on_alpn_select(out, outlen, in, inlen);
}

// The host_name of a server_name extension body (RFC 6066 §3), normalised (R-POL-3); empty
// when absent, an IP literal or invalid (then the leaf is an IP-SAN one).
std::string parse_sni(Bytes ext) {
  ByteReader r(ext);
  const uint16_t list_len = r.u16();
  ByteReader l(r.bytes(list_len));
  while (r.ok() && l.ok() && !l.empty()) {
    const uint8_t type = l.u8();
    const uint16_t len = l.u16();
    Bytes name = l.bytes(len);
    if (!l.ok()) break;
    if (type != 0) continue;
    auto n = policy::normalize_name(std::string_view(reinterpret_cast<const char*>(name.data()), name.size()));
    return n ? std::move(*n) : std::string();
  }
  return {};
}

// The protocol_name_list of an ALPN extension body (RFC 7301 §3.1), validated; empty when
// malformed (then nothing is offered upstream either).
std::string parse_alpn(Bytes ext) {
  ByteReader r(ext);
  const uint16_t list_len = r.u16();
  Bytes list = r.bytes(list_len);
  if (!r.ok() || list.empty()) return {};
  ByteReader l(list);
  while (l.ok() && !l.empty()) {
    const uint8_t n = l.u8();
    if (n == 0) return {};
    l.skip(n);
  }
  if (!l.ok()) return {};
  return std::string(reinterpret_cast<const char*>(list.data()), list.size());
}

bool alpn_list_has(const unsigned char* in, unsigned inlen, std::string_view proto, const unsigned char** at) {
  unsigned i = 0;
  while (i < inlen) {
    const unsigned n = in[i];
    if (n == 0 || n > inlen - i - 1) return false;
    if (std::string_view(reinterpret_cast<const char*>(in + i + 1), n) == proto) {
      *at = in + i + 1;
      return true;
    }
    i += 1 + n;
  }
  return false;
}

}  // namespace

// ---- GuestTls ----

Result<std::unique_ptr<GuestTls>, std::string> GuestTls::create(LeafCache& leaves, KeyLog* keylog) {
  std::unique_ptr<GuestTls> g(new GuestTls());
  g->leaves_ = &leaves;
  g->ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!g->ctx_) return unexpected("tls: cannot create the guest TLS context: " + openssl_error());
  SSL_CTX* ctx = g->ctx_.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);  // R-TLS-4: 1.2-1.3 toward the guest
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // A guest FIN without close_notify ends its direction like close_notify does (curl and
  // most clients close that way); it is not an error worth a reset.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // R-TLS-4: no 0-RTT (early data is rejected: max 0), session tickets on (stateless, the
  // context's own ticket key), no client certificate requested.
  SSL_CTX_set_max_early_data(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  static const unsigned char kSidCtx[] = "moat";
  SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
  SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, nullptr);
  if (keylog) keylog->attach(ctx);
  return g;
}

// ---- The R-TLS-6 filter: src/http's Pump behind the PlainFilter seam ----

namespace {

class HttpFilter final : public PlainFilter {
 public:
  explicit HttpFilter(std::unique_ptr<http::Pump> p) : pump_(std::move(p)) {}
  size_t from_guest(Bytes in, PlainSink& up, PlainSink& guest) override {
    return pump_->from_guest(in, [&](Bytes b) { return up.write(b); }, [&](Bytes b) { return guest.write(b); });
  }
  size_t from_upstream(Bytes in, PlainSink& guest) override {
    return pump_->from_upstream(in, [&](Bytes b) { return guest.write(b); });
  }
  void upstream_eof(PlainSink& guest) override {
    pump_->upstream_eof([&](Bytes b) { return guest.write(b); });
  }
  [[nodiscard]] bool wants_close() const override { return pump_->wants_close(); }

 private:
  std::unique_ptr<http::Pump> pump_;
};

}  // namespace

// ---- Session ----

Session::Session(SessionEnv& env, const flows::FlowInfo& f, flows::TcpFlowRef ref)
    : env_(env), info_(f), name_(f.name), ref_(ref) {
  info_.name = name_;
  info_.first_flight = {};
  guest_sink_.s = this;
  up_sink_.s = this;
}

Session::~Session() {
  watch_.reset();
  if (guest_ssl_) SSL_set_app_data(guest_ssl_.get(), nullptr);
}

void Session::start(UniqueFd upstream, std::optional<flows::Endpoint> dial_to, std::string expected_sni) {
  up_fd_ = std::move(upstream);
  dial_to_ = dial_to;
  expected_sni_ = std::move(expected_sni);
  // The whole first flight (16 KiB) must fit at once: the gate releases it in one write.
  const size_t ring = std::max<size_t>(env_.ring_bytes, 32u << 10);
  plain_charge_.set_budget(env_.budget);
  if (!from_guest_.allocate(ring, env_.budget) || !to_guest_.allocate(ring, env_.budget) ||
      !plain_charge_.try_resize(2 * kPlain)) {
    fail("memory budget", Errno{ENOMEM});
    kick();
    return;
  }
  g2u_ = std::make_unique<std::byte[]>(kPlain);
  u2g_ = std::make_unique<std::byte[]>(kPlain);
  guest_ssl_.reset(SSL_new(env_.guest->ctx()));
  BIO* bio = guest_ssl_ ? BIO_new(ring_bio_method()) : nullptr;
  if (!bio) {
    fail("SSL_new: " + openssl_error(), Errno{ENOMEM});
    kick();
    return;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(guest_ssl_.get(), bio, bio);  // one reference for both directions
  SSL_set_app_data(guest_ssl_.get(), this);
  SSL_set_accept_state(guest_ssl_.get());
  deadline_ = env_.loop->schedule_after(env_.handshake_timeout, [this] {
    if (phase_ == Phase::relay || phase_ == Phase::done) return;
    audit("tls_error", "handshake timeout");
    env_.counters->inc(Counter::tls_handshake_failed);
    fail("handshake timeout", Errno{ETIMEDOUT});
    pump();
  });
  kick();
}

void Session::detach() noexcept {
  detached_ = true;
  kick_timer_.cancel();
  deadline_.cancel();
  close_upstream(false);
}

// ---- TcpPeer ----

Result<size_t> Session::peek(size_t offset, MutBytes out) {
  if (conn_aborted_) return unexpected(Errno{EBADF});
  return to_guest_.peek(offset, out);
}

Status Session::consume(size_t n) {
  to_guest_.pop(n);
  if (guest_ring_full_ && n > 0) {
    guest_ring_full_ = false;
    kick();
  }
  return {};
}

size_t Session::writable() { return (conn_aborted_ || failed_ || guest_fin_) ? 0 : from_guest_.free(); }

Result<size_t> Session::write(Bytes data) {
  if (conn_aborted_) return unexpected(Errno{EBADF});
  const size_t n = from_guest_.push(data);
  if (n > 0) kick();
  return n;
}

void Session::shutdown_write() {
  guest_fin_ = true;
  kick();
}

void Session::abort() {
  conn_aborted_ = true;
  phase_ = Phase::done;
  kick_timer_.cancel();
  deadline_.cancel();
  close_upstream(true);  // the guest reset: so does moat upstream
}

int Session::bio_read(char* out, int len) noexcept {
  const size_t n = from_guest_.peek(0, MutBytes(reinterpret_cast<std::byte*>(out), size_t(len)));
  from_guest_.pop(n);
  if (n == 0) return guest_fin_ ? 0 : -1;
  return int(n);
}

int Session::bio_write(const char* in, int len) noexcept {
  const size_t n = to_guest_.push(Bytes(reinterpret_cast<const std::byte*>(in), size_t(len)));
  if (n == 0) {
    guest_ring_full_ = true;
    return -1;
  }
  return int(n);
}

// ---- Driving ----

void Session::kick() noexcept {
  if (kick_armed_ || detached_ || conn_aborted_) return;
  kick_armed_ = true;
  kick_timer_ = env_.loop->schedule_after(Duration::zero(), [this] {
    kick_armed_ = false;
    pump();
  });
}

void Session::pump() {
  if (detached_ || conn_aborted_) return;
  const size_t to_guest_before = to_guest_.size();
  const size_t from_guest_free_before = from_guest_.free();
  const bool closed_before = guest_closed_;
  up_want_write_ = false;
  // Each step may complete a phase and start the next; at most one pass per phase.
  for (int i = 0; i < 6 && !failed_; ++i) {
    const Phase before = phase_;
    switch (phase_) {
      case Phase::hello:
      case Phase::guest: drive_guest_handshake(); break;
      case Phase::upstream: drive_upstream_handshake(); break;
      case Phase::relay: relay(); break;
      case Phase::connecting:
      case Phase::done: break;
    }
    if (phase_ == before) break;
  }
  if (failed_) {
    if (!error_reported_) {
      error_reported_ = true;
      ref_.peer_error(error_);  // the guest gets RST; the engine calls on_closed later
    }
    return;
  }
  if (to_guest_.size() > to_guest_before || guest_closed_ != closed_before) ref_.peer_readable();
  if (from_guest_.free() > from_guest_free_before) ref_.peer_writable();
  update_watch();
}

void Session::fail(std::string_view why, Errno e) {
  if (failed_) return;
  failed_ = true;
  if (failure_.empty()) failure_ = std::string(why);
  error_ = e;
  phase_ = Phase::done;
  deadline_.cancel();
  close_upstream(true);
  MOAT_LOG_RATELIMITED(debug, "tls: flow %llu (%s): %.*s", static_cast<unsigned long long>(info_.id),
                       sni_.c_str(), int(why.size()), why.data());
}

void Session::drive_guest_handshake() {
  ERR_clear_error();
  const int r = SSL_do_handshake(guest_ssl_.get());
  if (r == 1) {
    phase_ = Phase::relay;
    deadline_.cancel();
    make_filter();
    if (!error_mode_) env_.counters->inc(Counter::tls_intercepted);
    return;
  }
  switch (SSL_get_error(guest_ssl_.get(), r)) {
    case SSL_ERROR_WANT_CLIENT_HELLO_CB:
      if (phase_ == Phase::hello && hello_ == HelloStep::paused) start_upstream();
      return;
    case SSL_ERROR_WANT_READ:
      if (guest_fin_ && from_guest_.size() == 0) {
        env_.counters->inc(Counter::tls_handshake_failed);
        fail("the guest closed during the handshake", Errno{ECONNRESET});
      }
      return;
    case SSL_ERROR_WANT_WRITE: return;  // the to-guest ring is full: consume() kicks
    default: break;
  }
  if (hello_ == HelloStep::refuse) {
    // tls.upstream_error = alert: the handshake_failure alert is in the ring; the guest
    // gets it, then FIN (an RST could overtake the alert).
    phase_ = Phase::done;
    guest_closed_ = true;
    deadline_.cancel();
    return;
  }
  const std::string why = openssl_error("handshake failed");
  env_.counters->inc(Counter::tls_handshake_failed);
  audit("tls_error", "guest handshake: " + why);
  fail("guest handshake: " + why, Errno{ECONNRESET});
}

int Session::on_client_hello(SSL* ssl, int* alert) {
  switch (hello_) {
    case HelloStep::wait: {
      const unsigned char* p = nullptr;
      size_t len = 0;
      if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) == 1)
        sni_ = parse_sni(Bytes(reinterpret_cast<const std::byte*>(p), len));
      if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len) == 1)
        alpn_offer_ = parse_alpn(Bytes(reinterpret_cast<const std::byte*>(p), len));
      if (!expected_sni_.empty() && sni_ != expected_sni_) {
        // R-TLS-8: the tunnel's authority and the hello's SNI must agree.
        audit("connect_sni_mismatch", "expected " + expected_sni_);
        failure_ = "SNI " + sni_ + " in a tunnel to " + expected_sni_;
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
      }
      hello_ = HelloStep::paused;  // upstream first (R-TLS-4); drive_guest_handshake starts it
      return SSL_CLIENT_HELLO_RETRY;
    }
    case HelloStep::paused: return SSL_CLIENT_HELLO_RETRY;
    case HelloStep::refuse: *alert = SSL_AD_HANDSHAKE_FAILURE; return SSL_CLIENT_HELLO_ERROR;
    case HelloStep::serve: break;
  }
  // The certificate is chosen here, once the upstream answered (or failed): one leaf per
  // name from the cache, the gateway's key, the CA as chain (R-TLS-3).
  // (LeafCache counts its hits and mints: tls.leaf_cache.*.)
  if (auto r = env_.guest->leaves().install(ssl, sni_, info_.remote); !r) {
    failure_ = "leaf: " + r.error().detail;
    audit("tls_error", failure_);
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

int Session::on_alpn_select(const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                            unsigned inlen) {
  // The upstream's choice (it chose from exactly this offer), or, answering with 502
  // ourselves (R-TLS-5), h2 or http/1.1 from the guest's offer.
  const unsigned char* at = nullptr;
  std::string_view want = alpn_selected_;
  if (error_mode_) {
    want = alpn_list_has(in, inlen, "h2", &at) ? std::string_view("h2") : std::string_view("http/1.1");
    alpn_selected_ = std::string(want);
  }
  if (want.empty() || !alpn_list_has(in, inlen, want, &at)) {
    if (error_mode_) alpn_selected_.clear();
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = at;
  *outlen = static_cast<unsigned char>(want.size());
  return SSL_TLSEXT_ERR_OK;
}

void Session::start_upstream() {
  if (!up_fd_) {
    // Inspect path: nothing was dialled yet.
    if (!dial_to_) {
      upstream_done(false, "no address to connect to", false);
      return;
    }
    const flows::Endpoint& to = *dial_to_;
    const int fam = to.addr.is_v6 ? AF_INET6 : AF_INET;
    UniqueFd s(::socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!s) {
      upstream_done(false, std::string("socket: ") + std::strerror(errno), false);
      return;
    }
    sockaddr_storage ss;
    const socklen_t sl = to_sockaddr(to.addr, to.port, &ss);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&ss), sl) != 0 && errno != EINPROGRESS) {
      upstream_done(false, std::string("connect: ") + std::strerror(errno), false);
      return;
    }
    up_fd_ = std::move(s);
    auto w = env_.loop->watch(up_fd_.get(), EPOLLOUT, *this);
    if (!w) {
      upstream_done(false, std::string("epoll: ") + w.error().message(), false);
      return;
    }
    watch_ = std::move(*w);
    phase_ = Phase::connecting;
    return;
  }
  begin_upstream_tls();
}

void Session::begin_upstream_tls() {
  const VerifyChoice how = env_.upstream->choose(sni_);
  session_key_ = session_key(sni_, info_.remote, info_.remote_port);
  auto ssl = env_.upstream->new_ssl(sni_, info_.remote, info_.remote_port,
                                    Bytes(reinterpret_cast<const std::byte*>(alpn_offer_.data()), alpn_offer_.size()),
                                    how);
  if (!ssl) {
    upstream_done(false, ssl.error(), false);
    return;
  }
  up_ssl_ = std::move(*ssl);
  set_session_key(up_ssl_.get(), &session_key_);
  BIO* bio = BIO_new(sock_bio_method());
  if (!bio) {
    upstream_done(false, "BIO_new: " + openssl_error(), false);
    return;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(intptr_t(up_fd_.get())));
  SSL_set_bio(up_ssl_.get(), bio, bio);
  if (!watch_.active()) {
    auto w = env_.loop->watch(up_fd_.get(), EPOLLIN | EPOLLOUT, *this);
    if (!w) {
      upstream_done(false, std::string("epoll: ") + w.error().message(), false);
      return;
    }
    watch_ = std::move(*w);
  }
  phase_ = Phase::upstream;
}

void Session::drive_upstream_handshake() {
  ERR_clear_error();
  errno = 0;
  const int r = SSL_do_handshake(up_ssl_.get());
  if (r == 1) {
    upstream_done(true, {}, false);
    return;
  }
  const int e = SSL_get_error(up_ssl_.get(), r);
  if (e == SSL_ERROR_WANT_READ) return;
  if (e == SSL_ERROR_WANT_WRITE) {
    up_want_write_ = true;
    return;
  }
  const long v = SSL_get_verify_result(up_ssl_.get());
  if (v != X509_V_OK) {
    upstream_done(false, X509_verify_cert_error_string(v), true);
    return;
  }
  std::string why;
  if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
    why = errno != 0 ? std::string(std::strerror(errno)) : std::string("the upstream closed the connection");
  else
    why = openssl_error("handshake failed");
  upstream_done(false, "handshake: " + why, false);
}

void Session::upstream_done(bool ok, std::string reason, bool verify_failure) {
  if (ok) {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(up_ssl_.get(), &p, &len);
    alpn_selected_.assign(reinterpret_cast<const char*>(p), len);
    if (SSL_session_reused(up_ssl_.get())) env_.counters->inc(Counter::tls_upstream_resumed);
    hello_ = HelloStep::serve;
    phase_ = Phase::guest;
    return;
  }
  // R-TLS-5: audit with OpenSSL's reason, then what the guest sees per tls.upstream_error.
  const std::string host = sni_.empty() ? info_.remote.to_string() : sni_;
  env_.counters->inc(verify_failure ? Counter::tls_verify_failed : Counter::tls_upstream_failed);
  audit(verify_failure ? "tls_upstream_verify_failed" : "tls_error", reason);
  MOAT_LOG_RATELIMITED(info, "tls: upstream %s: %s", host.c_str(), reason.c_str());
  failure_ = verify_failure ? "failed TLS verification: " + reason : reason;
  close_upstream(true);
  if (env_.upstream_error == config::TlsConfig::UpstreamError::alert) {
    hello_ = HelloStep::refuse;
  } else {
    hello_ = HelloStep::serve;
    error_mode_ = true;  // make_filter() answers 502 once the guest handshake is done
  }
  phase_ = Phase::guest;
}

// ---- Relay ----

size_t Session::UpSink::write(Bytes data) {
  if (!s->up_ssl_ || s->up_shut_) return data.size();  // nowhere to go: dropped
  if (data.empty()) return 0;
  ERR_clear_error();
  errno = 0;
  const int n = SSL_write(s->up_ssl_.get(), data.data(), int(std::min<size_t>(data.size(), INT32_MAX)));
  if (n > 0) return size_t(n);
  const int e = SSL_get_error(s->up_ssl_.get(), n);
  if (e == SSL_ERROR_WANT_WRITE) {
    s->up_want_write_ = true;
    return 0;
  }
  if (e == SSL_ERROR_WANT_READ) return 0;
  s->fail(std::string("upstream write: ") + (errno ? std::strerror(errno) : openssl_error().c_str()),
          Errno{ECONNRESET});
  return 0;
}

size_t Session::GuestSink::write(Bytes data) {
  if (s->guest_closed_ || data.empty()) return data.empty() ? 0 : data.size();
  ERR_clear_error();
  const int n = SSL_write(s->guest_ssl_.get(), data.data(), int(std::min<size_t>(data.size(), INT32_MAX)));
  if (n > 0) return size_t(n);
  const int e = SSL_get_error(s->guest_ssl_.get(), n);
  if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return 0;
  s->fail("guest write: " + openssl_error(), Errno{ECONNRESET});
  return 0;
}

void Session::relay() {
  // Bounded per event (fairness between flows); a flow with more to do runs again.
  for (int round = 0; round < 64; ++round) {
    const bool a = guest_to_upstream();
    if (failed_) return;
    const bool b = upstream_to_guest();
    if (failed_ || !(a || b)) return;
  }
  kick();
}

bool Session::guest_to_upstream() {
  bool did = false;
  if (g2u_len_ == 0 && !guest_eof_) {
    ERR_clear_error();
    const int n = SSL_read(guest_ssl_.get(), g2u_.get(), int(kPlain));
    if (n > 0) {
      g2u_off_ = 0;
      g2u_len_ = size_t(n);
      did = true;
    } else {
      const int e = SSL_get_error(guest_ssl_.get(), n);
      switch (e) {
        case SSL_ERROR_WANT_READ:
          if (guest_fin_ && from_guest_.size() == 0) guest_eof_ = true;  // FIN without close_notify
          break;
        case SSL_ERROR_WANT_WRITE: break;
        case SSL_ERROR_ZERO_RETURN: guest_eof_ = true; break;  // close_notify
        default:
          env_.counters->inc(Counter::tls_handshake_failed);
          if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && guest_fin_) {
            guest_eof_ = true;  // the guest's FIN, reported as a bare EOF
            break;
          }
          audit("tls_error", "guest: " + openssl_error("bad record"));
          fail("guest TLS error", Errno{ECONNRESET});
          return false;
      }
    }
  }
  if (g2u_len_ > g2u_off_ || filter_) {
    const Bytes in(g2u_.get() + g2u_off_, g2u_len_ - g2u_off_);
    const size_t took = filter_ ? filter_->from_guest(in, up_sink_, guest_sink_) : up_sink_.write(in);
    if (failed_) return false;
    g2u_off_ += took;
    if (g2u_off_ >= g2u_len_) g2u_off_ = g2u_len_ = 0;
    did = did || took > 0;
  }
  if (filter_ && filter_->wants_close() && !guest_closed_) {
    // The filter answered and is done: close_notify + FIN to the guest, upstream closed.
    SSL_shutdown(guest_ssl_.get());
    guest_closed_ = true;
    guest_eof_ = true;
    close_upstream(false);
    did = true;
  }
  if (guest_eof_ && g2u_len_ == 0 && !up_shut_ && up_ssl_) {
    // R-TLS-4 half-close: close_notify and SHUT_WR upstream; the other direction goes on.
    ERR_clear_error();
    SSL_shutdown(up_ssl_.get());
    ::shutdown(up_fd_.get(), SHUT_WR);
    up_shut_ = true;
  }
  return did;
}

bool Session::upstream_to_guest() {
  bool did = false;
  if (u2g_len_ == 0 && !up_eof_ && up_ssl_) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_read(up_ssl_.get(), u2g_.get(), int(kPlain));
    if (n > 0) {
      u2g_off_ = 0;
      u2g_len_ = size_t(n);
      did = true;
    } else {
      const int e = SSL_get_error(up_ssl_.get(), n);
      if (e == SSL_ERROR_WANT_WRITE) {
        up_want_write_ = true;
      } else if (e == SSL_ERROR_ZERO_RETURN) {
        up_eof_ = true;
      } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0) {
        up_eof_ = true;  // EOF without close_notify: treated as the end (many servers do it)
      } else if (e != SSL_ERROR_WANT_READ) {
        const std::string why = e == SSL_ERROR_SYSCALL && errno ? std::strerror(errno) : openssl_error("bad record");
        audit("tls_error", "upstream: " + why);
        fail("upstream: " + why, Errno{ECONNRESET});
        return false;
      }
    }
  }
  if (u2g_len_ > u2g_off_) {
    const Bytes in(u2g_.get() + u2g_off_, u2g_len_ - u2g_off_);
    const size_t took = filter_ ? filter_->from_upstream(in, guest_sink_) : guest_sink_.write(in);
    if (failed_) return false;
    u2g_off_ += took;
    if (u2g_off_ >= u2g_len_) u2g_off_ = u2g_len_ = 0;
    did = did || took > 0;
  }
  if (up_eof_ && u2g_len_ == 0 && !guest_closed_) {
    if (filter_ && !filter_eof_told_) {
      filter_eof_told_ = true;
      filter_->upstream_eof(guest_sink_);
    }
    ERR_clear_error();
    SSL_shutdown(guest_ssl_.get());  // close_notify into the ring, then FIN (read_closed)
    guest_closed_ = true;
    did = true;
  }
  return did;
}

void Session::on_io(uint32_t events) {
  if (phase_ == Phase::connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(up_fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      upstream_done(false, std::string("connect: ") + std::strerror(err), false);
    } else if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
      begin_upstream_tls();
    }
  }
  last_events_ = events;
  pump();
}

void Session::update_watch() {
  if (!watch_.active()) return;
  uint32_t mask = 0;
  if (phase_ == Phase::connecting) {
    mask = EPOLLOUT;
  } else if (phase_ == Phase::upstream) {
    mask = EPOLLIN | (up_want_write_ ? EPOLLOUT : 0u);
  } else if (up_ssl_) {
    if (u2g_len_ == 0 && !up_eof_) mask |= EPOLLIN;
    if (up_want_write_) mask |= EPOLLOUT;
  }
  // A hung-up socket reports EPOLLHUP whatever the mask: once nothing more is wanted
  // from it, stop watching rather than spin.
  if (mask == 0 && (last_events_ & (EPOLLHUP | EPOLLERR)) != 0) {
    watch_.reset();
    return;
  }
  (void)watch_.modify(mask);
}

void Session::close_upstream(bool abortive) noexcept {
  watch_.reset();
  if (up_fd_ && abortive) {
    linger lg{1, 0};
    ::setsockopt(up_fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  // An SSL freed without a sent close_notify has its session marked not resumable
  // (OpenSSL's ssl_clear_bad_session): a plain close keeps the cached ticket usable.
  if (up_ssl_ && !abortive) SSL_set_shutdown(up_ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  up_ssl_.reset();
  up_fd_.reset();
}

// R-TLS-6 on http/1.1, h2 and ALPN-less connections (other protocols are relayed as
// opaque plaintext); R-TLS-5's 502 in error mode.
void Session::make_filter() {
  if (filter_) return;
  http::Alpn alpn = http::Alpn::none;
  const bool is_http = http::alpn_from_string(alpn_selected_, &alpn);
  auto on_event = [this](const http::Event& e) {
    switch (e.kind) {
      case http::EventKind::authority_mismatch:
        env_.counters->inc(Counter::http_authority_mismatch);
        http_audit(e);
        break;
      case http::EventKind::malformed:
      case http::EventKind::compression_error: env_.counters->inc(Counter::http_malformed); break;
      case http::EventKind::limit: env_.counters->inc(Counter::http_limit); break;
      case http::EventKind::upgraded: env_.counters->inc(Counter::http_upgraded); break;
      case http::EventKind::upstream_framing: env_.counters->inc(Counter::http_upstream_framing); break;
    }
  };
  const std::string host = sni_.empty() ? info_.remote.to_string() : sni_;
  if (error_mode_) {
    const std::string upstream = (info_.remote.is_v6 && sni_.empty() ? "[" + host + "]" : host) + ":" +
                                 std::to_string(info_.remote_port);
    filter_ = std::make_unique<HttpFilter>(
        http::Pump::error_responder(is_http ? alpn : http::Alpn::http1, upstream, failure_, env_.budget, on_event));
    return;
  }
  if (!env_.http_checks || !is_http) return;
  filter_ = std::make_unique<HttpFilter>(http::Pump::inspect(host, alpn, env_.budget, on_event));
}

obs::FlowFields Session::flow_fields() const {
  obs::FlowFields ff;
  ff.flow = info_.id;
  ff.proto = "tcp";
  ff.dir = "egress";
  ff.src = info_.guest;
  ff.dst = info_.remote;
  ff.src_port = info_.guest_port;
  ff.dst_port = info_.remote_port;
  ff.name = sni_;
  ff.name_src = sni_.empty() ? std::string_view() : std::string_view("sni");
  ff.path = flows::tcp_path_name(info_.path);
  return ff;
}

void Session::http_audit(const http::Event& e) {
  if (!env_.audit || !env_.audit->wants("http_authority_mismatch")) return;
  env_.audit->emit("http_authority_mismatch", [&](obs::JsonWriter& w) {
    obs::write_flow(w, flow_fields());
    w.str("sni", sni_.empty() ? info_.remote.to_string() : sni_);
    w.str("host", e.host);
    w.str("method", e.method);
    w.str("target", e.path);
    if (e.stream_id) w.u64("stream", e.stream_id);
  });
}

void Session::audit(std::string_view ev, std::string_view reason) {
  if (!env_.audit || !env_.audit->wants(ev)) return;
  const std::string host = sni_.empty() ? info_.remote.to_string() : sni_;
  env_.audit->emit(ev, [&](obs::JsonWriter& w) {
    obs::FlowFields ff = flow_fields();
    ff.reason = reason;
    obs::write_flow(w, ff);
    w.str("host", host);
  });
}

}  // namespace moat::tls
