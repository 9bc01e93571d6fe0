#include "tls/dot.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "flows/stream_peer.h"

namespace moat::tls {

namespace {
constexpr uint32_t kEpollEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kRecordPlain = 16 * 1024;  // one TLS record's plaintext (RFC 8446 §5.1)
constexpr size_t kRecordOverhead = 512;      // header, tag, padding of one record, rounded up
constexpr std::string_view kAlpnDot = "dot";  // RFC 7858 §3.2 / IANA ALPN id

int so_error(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

}  // namespace

// ---- DotSession ---------------------------------------------------------------------------

class DotSession final : public flows::TcpPeer, private event::IoHandler {
 public:
  DotSession(DotTerminator& owner, const flows::FlowInfo& f, flows::TcpFlowRef ref)
      : owner_(owner), ref_(ref), dst_(f.remote) {}
  DotSession(const DotSession&) = delete;
  DotSession& operator=(const DotSession&) = delete;

  /// Buffers, the SSL object and the DNS connection. False: refuse the flow.
  bool start(const flows::Endpoint& dns) {
    const size_t cap = owner_.cfg_.buffer;
    if (!to_guest_.allocate(cap, owner_.cfg_.budget) || !to_dns_.allocate(cap, owner_.cfg_.budget)) return false;
    ssl_.reset(SSL_new(owner_.ctx_.get()));
    if (!ssl_) return false;
    BIO* rbio = BIO_new(BIO_s_mem());
    BIO* wbio = BIO_new(BIO_s_mem());
    if (!rbio || !wbio) {
      BIO_free(rbio);
      BIO_free(wbio);
      return false;
    }
    BIO_set_mem_eof_return(rbio, -1);  // empty = "want more", not EOF
    SSL_set_bio(ssl_.get(), rbio, wbio);
    rbio_ = rbio;
    wbio_ = wbio;
    SSL_set_app_data(ssl_.get(), this);
    SSL_set_accept_state(ssl_.get());

    UniqueFd fd(::socket(dns.addr.is_v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd) return false;
    const int one = 1;
    (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_storage ss;
    const socklen_t sl = to_sockaddr(dns.addr, dns.port, &ss);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), sl) != 0 && errno != EINPROGRESS) return false;
    dns_fd_ = std::move(fd);
    auto w = owner_.loop_.watch(dns_fd_.get(), kEpollEvents, *this);
    if (!w) return false;
    watch_ = std::move(*w);
    handshake_timer_ = owner_.loop_.schedule_after(owner_.cfg_.handshake_timeout, [this] {
      if (handshaken_ || failed_) return;
      MOAT_LOG_RATELIMITED(info, "dot: handshake with the guest timed out (%s)", dst_.to_string().c_str());
      owner_.counters_.inc(Counter::tls_dot_handshake_failed);
      fail(Errno{ETIMEDOUT});
      ref_.peer_error(error_);
    });
    return true;
  }

  /// The leaf for this connection (the SNI, or the dialled address without one).
  bool install_leaf(const char* sni) {
    auto r = owner_.leaves_.install(ssl_.get(), sni ? sni : "", dst_);
    if (!r) {
      MOAT_LOG_RATELIMITED(info, "dot: no leaf for %s: %s", sni ? sni : dst_.to_string().c_str(),
                           r.error().detail.c_str());
      return false;
    }
    leaf_installed_ = true;
    return true;
  }
  [[nodiscard]] bool leaf_installed() const noexcept { return leaf_installed_; }

  /// The flow is gone: no more events, no TcpFlowRef calls.
  void detach() {
    failed_ = true;
    watch_.reset();
    handshake_timer_ = event::TimerHandle{};
    wake_ = event::TimerHandle{};
    ref_ = flows::TcpFlowRef{};
    abort_dns();
  }

  // ---- TcpPeer: toward the guest (TLS records) ----
  size_t readable() override { return to_guest_.size(); }
  [[nodiscard]] bool read_closed() const override { return closed_to_guest_; }
  Result<size_t> peek(size_t offset, MutBytes out) override {
    if (failed_) return unexpected(error_);
    return to_guest_.peek(offset, out);
  }
  Status consume(size_t n) override {
    to_guest_.pop(n);
    pump();  // room for more answers
    schedule_wake();
    return {};
  }

  // ---- TcpPeer: from the guest (TLS records) ----
  size_t writable() override {
    if (failed_ || guest_fin_) return 0;
    const size_t pending = BIO_ctrl_pending(rbio_);
    return pending >= owner_.cfg_.buffer ? 0 : owner_.cfg_.buffer - pending;
  }
  Result<size_t> write(Bytes data) override {
    if (failed_) return unexpected(error_);
    const size_t n = std::min(data.size(), writable());
    if (n == 0) return size_t{0};
    if (BIO_write(rbio_, data.data(), int(n)) != int(n)) return unexpected(Errno{ENOMEM});
    pump();
    schedule_wake();
    return n;
  }
  void shutdown_write() override {
    guest_fin_ = true;
    pump();
    schedule_wake();
  }
  void abort() override {
    failed_ = true;
    abort_dns();
  }

 private:
  void on_io(uint32_t events) override {
    if (failed_) return;
    if (!connected_) {
      if (const int err = so_error(dns_fd_.get()); err != 0 || (events & EPOLLERR)) {
        fail(Errno{err ? err : ECONNREFUSED});
        ref_.peer_error(error_);
        return;
      }
      if (!(events & EPOLLOUT)) return;
      connected_ = true;
    } else if (events & EPOLLERR) {
      if (const int err = so_error(dns_fd_.get()); err != 0) {
        fail(Errno{err});
        ref_.peer_error(error_);
        return;
      }
    }
    if (events & (EPOLLRDHUP | EPOLLHUP)) dns_read_closed_ = true;
    pump();
    notify();
  }

  /// Moves bytes between the guest's records, OpenSSL and the DNS socket as far as the
  /// buffers allow. Never calls the TcpFlowRef (it runs inside TcpPeer calls too).
  void pump() {
    if (failed_) return;
    if (!handshaken_) {
      const int r = SSL_do_handshake(ssl_.get());
      if (r == 1) {
        handshaken_ = true;
        handshake_timer_ = event::TimerHandle{};
        owner_.counters_.inc(Counter::tls_dot_sessions);
      } else {
        const int e = SSL_get_error(ssl_.get(), r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          MOAT_LOG_RATELIMITED(info, "dot: guest handshake failed (%s): %s", dst_.to_string().c_str(),
                               openssl_error().c_str());
          owner_.counters_.inc(Counter::tls_dot_handshake_failed);
          fail(Errno{ECONNRESET});
          return;
        }
      }
    }
    std::array<std::byte, kRecordPlain> buf;
    if (handshaken_) {
      // Guest -> DNS: decrypt while the plaintext fits.
      while (!guest_close_notify_ && to_dns_.free() > 0) {
        const int n = SSL_read(ssl_.get(), buf.data(), int(std::min(buf.size(), to_dns_.free())));
        if (n > 0) {
          to_dns_.push(Bytes(buf.data(), size_t(n)));
          continue;
        }
        const int e = SSL_get_error(ssl_.get(), n);
        if (e == SSL_ERROR_ZERO_RETURN) {
          guest_close_notify_ = true;  // the guest is done: DNS finishes what is in flight
        } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          MOAT_LOG_RATELIMITED(info, "dot: bad record from the guest: %s", openssl_error().c_str());
          fail(Errno{ECONNRESET});
          return;
        }
        break;
      }
    }
    if (connected_) {
      // Plaintext to DNS's TCP/53 server.
      while (to_dns_.size() > 0) {
        const auto [a, b] = to_dns_.spans();
        (void)b;
        const ssize_t n = ::send(dns_fd_.get(), a.data(), a.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          to_dns_.pop(size_t(n));
          continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        fail(Errno{n < 0 ? errno : EPIPE});
        return;
      }
      const bool guest_done = guest_close_notify_ || (guest_fin_ && BIO_ctrl_pending(rbio_) == 0);
      if (guest_done && to_dns_.size() == 0 && !dns_write_shut_) {
        ::shutdown(dns_fd_.get(), SHUT_WR);  // R-DNS-10: answer what is in flight, then FIN
        dns_write_shut_ = true;
      }
      // DNS answers -> records, while one more record fits toward the guest.
      while (handshaken_ && !dns_eof_ && BIO_ctrl_pending(wbio_) == 0 &&
             to_guest_.free() > kRecordOverhead + 1) {
        const size_t room = std::min(buf.size(), to_guest_.free() - kRecordOverhead);
        const ssize_t n = ::recv(dns_fd_.get(), buf.data(), room, MSG_DONTWAIT);
        if (n > 0) {
          if (SSL_write(ssl_.get(), buf.data(), int(n)) != int(n)) {
            fail(Errno{ENOMEM});
            return;
          }
          drain_wbio();
          continue;
        }
        if (n == 0) {
          dns_eof_ = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          fail(Errno{errno});
          return;
        }
        break;
      }
    }
    if (dns_eof_ && handshaken_ && !close_notify_sent_) {
      (void)SSL_shutdown(ssl_.get());  // close_notify into wbio
      close_notify_sent_ = true;
    }
    drain_wbio();
    if (close_notify_sent_ && BIO_ctrl_pending(wbio_) == 0) closed_to_guest_ = true;
  }

  /// Records OpenSSL produced -> the to-guest ring (as far as it has room).
  void drain_wbio() {
    std::array<std::byte, 4096> tmp;
    while (BIO_ctrl_pending(wbio_) > 0 && to_guest_.free() > 0) {
      const int n = BIO_read(wbio_, tmp.data(), int(std::min(tmp.size(), to_guest_.free())));
      if (n <= 0) break;
      to_guest_.push(Bytes(tmp.data(), size_t(n)));
    }
  }

  void fail(Errno e) {
    failed_ = true;
    error_ = e;
    watch_.reset();
    abort_dns();
  }

  void abort_dns() {
    if (!dns_fd_) return;
    const linger lg{1, 0};  // RST: the DNS server drops what it had for this connection
    (void)::setsockopt(dns_fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    watch_.reset();
    dns_fd_.reset();
  }

  /// The flow's TcpConn, told from our own event.
  void notify() {
    if (failed_) {
      ref_.peer_error(error_);
      return;
    }
    ref_.peer_readable();
    ref_.peer_writable();
  }
  void schedule_wake() {
    if (!wake_.pending()) wake_ = owner_.loop_.schedule_after(Duration::zero(), [this] { notify(); });
  }

  DotTerminator& owner_;
  flows::TcpFlowRef ref_;
  IpAddr dst_;
  SslPtr ssl_;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;
  flows::ByteRing to_guest_, to_dns_;
  bool handshaken_ = false, connected_ = false, failed_ = false, leaf_installed_ = false;
  bool guest_fin_ = false, guest_close_notify_ = false, dns_write_shut_ = false;
  bool dns_read_closed_ = false, dns_eof_ = false, close_notify_sent_ = false, closed_to_guest_ = false;
  Errno error_{ECONNRESET};
  UniqueFd dns_fd_;
  event::Watch watch_;  // after dns_fd_: deregistered before it closes
  event::TimerHandle handshake_timer_, wake_;
};

// ---- DotTerminator ------------------------------------------------------------------------

namespace {

DotSession* session_of(SSL* ssl) { return static_cast<DotSession*>(SSL_get_app_data(ssl)); }

// Without a server_name extension the servername callback may not run: the iPAddress leaf
// for the dialled address is installed here (R-DNS-9, R-TLS-3).
int on_client_hello(SSL* ssl, int* alert, void*) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) == 1) return SSL_CLIENT_HELLO_SUCCESS;
  if (!session_of(ssl)->install_leaf(nullptr)) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

int on_servername(SSL* ssl, int* alert, void*) {
  DotSession* s = session_of(ssl);
  if (s->leaf_installed()) return SSL_TLSEXT_ERR_OK;
  if (!s->install_leaf(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name))) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

// RFC 7858 §3.2: `dot` when the guest offers it; no ALPN otherwise (stub resolvers such as
// kdig offer none).
int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
            void*) {
  for (unsigned int i = 0; i < inlen;) {
    const unsigned int n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == kAlpnDot.size() && std::memcmp(in + i + 1, kAlpnDot.data(), n) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(n);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

Result<std::unique_ptr<DotTerminator>, std::string> DotTerminator::create(event::Loop& loop, Counters& counters,
                                                                          LeafCache& leaves, DnsTcpEndpoint dns,
                                                                          DotConfig config) {
  std::unique_ptr<DotTerminator> t(new DotTerminator(loop, counters, leaves, std::move(dns), config));
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return unexpected("DoT: cannot create the TLS server context: " + openssl_error());
  t->ctx_.reset(ctx);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);  // R-TLS-4: 1.2-1.3 toward the guest
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_max_early_data(ctx, 0);  // no 0-RTT (R-TLS-4)
  SSL_CTX_set_client_hello_cb(ctx, on_client_hello, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>("moat-dot"), 8);
  return t;
}

DotTerminator::DotTerminator(event::Loop& loop, Counters& counters, LeafCache& leaves, DnsTcpEndpoint dns,
                             DotConfig config)
    : loop_(loop), counters_(counters), leaves_(leaves), dns_(std::move(dns)), cfg_(config) {}

DotTerminator::~DotTerminator() = default;

flows::TcpTake DotTerminator::on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef ref) {
  constexpr uint16_t kDot = 853;
  if (f.ingress || f.remote_port != kDot) return flows::TcpTake::pass();
  const std::optional<flows::Endpoint> ep = dns_ ? dns_(f.remote) : std::nullopt;
  auto s = std::make_unique<DotSession>(*this, f, ref);
  if (!ep || !s->start(*ep)) {
    MOAT_LOG_RATELIMITED(info, "dot: cannot serve a connection to %s (listener, buffers or socket)",
                         f.remote.to_string().c_str());
    plan = flows::DialPlan{};  // RST
    return flows::TcpTake::dial();
  }
  sessions_.push_back(std::move(s));
  return flows::TcpTake::in_process(*sessions_.back());
}

void DotTerminator::on_closed(flows::TcpPeer& peer) {
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->get() == &peer) {
      (*it)->detach();
      dead_.splice(dead_.end(), sessions_, it);  // freed after this event (see ConnectTunnels)
      if (!reaper_.pending()) reaper_ = loop_.schedule_after(Duration::zero(), [this] { dead_.clear(); });
      return;
    }
  }
}

}  // namespace moat::tls
