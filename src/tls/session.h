#pragma once
// Session: one intercepted TLS connection (SPEC R-TLS-4/5/9), the TcpPeer a guest flow
// talks to once the Interceptor took it.
//
//   guest (TcpConn) ⇄ [from_guest ring → guest SSL (server, BIO over the rings) → plaintext]
//                    ⇄ [plaintext → upstream SSL (client) on the host socket] ⇄ upstream
//
// The guest side is an OpenSSL server whose BIO reads the guest's ciphertext straight from
// one bounded ring and writes records straight into the other (no memory BIO in between,
// no copy beyond the one into the ring). The upstream side is an OpenSSL client on the
// non-blocking host socket, driven by the loop. Every buffer is allocated once, when the
// session starts, and charged to the MemoryBudget: two rings of `ring_bytes` and two
// plaintext buffers of one TLS record. A guest or upstream that does not read stops the
// other side (the ring is full -> the peer's window closes; the plaintext buffer is full
// -> nothing more is read from the socket), so memory never grows.
//
// Lifecycle (phase_):
//   hello        the guest's ClientHello is awaited; OpenSSL's client-hello callback
//                reads SNI and ALPN and pauses the guest handshake (RETRY).
//   connecting   (inspect path only) the upstream is being dialled.
//   upstream     the upstream handshake runs with the guest's SNI and exactly its ALPN
//                offer, verified (R-TLS-5).
//   guest        the guest handshake resumes with the leaf, selecting the ALPN upstream
//                chose. On an upstream failure: the `alert` mode aborts it with
//                handshake_failure; the `http` mode completes it (http/1.1) and answers
//                with 502 (src/http's error responder, h2 or http/1.1).
//   relay        plaintext flows both ways through the PlainFilter seam (R-TLS-6, src/http)
//                or unchanged. Guest FIN / close_notify -> upstream close_notify + SHUT_WR;
//                upstream EOF -> guest close_notify + FIN; each direction independently.
//   done         failed or aborted; waits for the engine's on_closed().
// The handshake timeout (tls.handshake_timeout) covers hello..guest.
//
// Re-entrancy: TcpPeer methods only move bytes in the rings and schedule work (a zero-delay
// timer); the work itself, and every TcpFlowRef call, happens in the session's own events
// (the timer, the socket's readiness), as TcpFlowRef requires.
#include <cstdint>
#include <memory>
#include <string>

#include "base/counters.h"
#include "base/memory_budget.h"
#include "base/unique_fd.h"
#include "config/config.h"
#include "event/loop.h"
#include "flows/admission.h"
#include "flows/stream_peer.h"
#include "flows/tcp_peer.h"
#include "flows/tcp_peer_provider.h"
#include "http/http.h"
#include "obs/audit_log.h"
#include "tls/leaf.h"
#include "tls/openssl_handles.h"

namespace moat::obs {
class AuditLog;
}

namespace moat::tls {

class KeyLog;
class UpstreamTls;

/// The guest-side context every session shares (one SSL_CTX per role, STYLE/issue).
class GuestTls {
 public:
  /// `leaves` (tls-certs' LeafCache: the leaf per name, the gateway's key, the CA chain)
  /// outlives the context.
  static Result<std::unique_ptr<GuestTls>, std::string> create(LeafCache& leaves, KeyLog* keylog = nullptr);
  [[nodiscard]] SSL_CTX* ctx() const noexcept { return ctx_.get(); }
  [[nodiscard]] LeafCache& leaves() const noexcept { return *leaves_; }

 private:
  GuestTls() = default;
  SslCtxPtr ctx_;
  LeafCache* leaves_ = nullptr;
};

/// Where a PlainFilter writes: the upstream TLS or the guest TLS of its session.
class PlainSink {
 public:
  /// Takes at most data.size() bytes; returns how many (0: no room now, call again later).
  virtual size_t write(Bytes data) = 0;

 protected:
  ~PlainSink() = default;
};

/// The R-TLS-6 seam (session.cc's HttpFilter puts src/http's Pump behind it). It sees
/// every plaintext byte the guest sends, in order, and decides what goes upstream and
/// what moat answers itself. Without a filter the session relays unchanged.
class PlainFilter {
 public:
  virtual ~PlainFilter() = default;
  /// Guest plaintext. Returns how many bytes of `in` it consumed (fewer: a sink was full;
  /// the rest is offered again once it drained).
  virtual size_t from_guest(Bytes in, PlainSink& to_upstream, PlainSink& to_guest) = 0;
  /// Upstream plaintext, same contract (an HTTP filter watches responses: 101, ...).
  virtual size_t from_upstream(Bytes in, PlainSink& to_guest) { return to_guest.write(in); }
  /// The upstream ended its side (close_notify or EOF); last words for the guest.
  virtual void upstream_eof(PlainSink& to_guest) { (void)to_guest; }
  /// The filter is done with this connection: after what it wrote, the guest gets
  /// close_notify and FIN, the upstream (if any) is closed.
  [[nodiscard]] virtual bool wants_close() const { return false; }
};

/// Everything a session borrows from the gateway; outlives every session.
struct SessionEnv {
  event::Loop* loop = nullptr;
  Counters* counters = nullptr;
  UpstreamTls* upstream = nullptr;
  GuestTls* guest = nullptr;
  obs::AuditLog* audit = nullptr;  ///< null = no audit
  MemoryBudget* budget = nullptr;  ///< null = not accounted
  config::TlsConfig::UpstreamError upstream_error = config::TlsConfig::UpstreamError::http;
  Duration handshake_timeout = std::chrono::seconds(10);
  size_t ring_bytes = 256u << 10;  ///< per direction (limits.flow_buffer)
  /// R-TLS-6 HTTP checks (src/http) on http/1.1, h2 and ALPN-less connections; off =
  /// plaintext relayed unchanged (tests of the TLS layer alone).
  bool http_checks = true;
};

class Session final : public flows::TcpPeer, private event::IoHandler {
 public:
  /// `f`: the flow as the policy allowed it (addresses, name); `ref` wakes its TcpConn.
  Session(SessionEnv& env, const flows::FlowInfo& f, flows::TcpFlowRef ref);
  ~Session() override;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Starts the session. `upstream`: a connected socket (the gate path's, or a CONNECT
  /// tunnel's), else the session dials `dial_to` itself once the hello is in.
  /// `expected_sni` (CONNECT, R-TLS-8): a hello naming anything else fails the session.
  /// Buffers are charged here; if the budget refuses them the flow is reset.
  void start(UniqueFd upstream, std::optional<flows::Endpoint> dial_to, std::string expected_sni = {});

  enum class Phase : uint8_t { hello, connecting, upstream, guest, relay, done };
  [[nodiscard]] Phase phase() const noexcept { return phase_; }
  [[nodiscard]] const std::string& sni() const noexcept { return sni_; }
  [[nodiscard]] const std::string& alpn() const noexcept { return alpn_selected_; }
  [[nodiscard]] const std::string& failure() const noexcept { return failure_; }
  /// The engine is done with this peer (on_closed): no TcpPeer call follows.
  void detach() noexcept;

  // ---- flows::TcpPeer (called by TcpConn) ----
  size_t readable() override { return to_guest_.size(); }
  [[nodiscard]] bool read_closed() const override { return guest_closed_; }
  Result<size_t> peek(size_t offset, MutBytes out) override;
  Status consume(size_t n) override;
  size_t writable() override;
  Result<size_t> write(Bytes data) override;
  void shutdown_write() override;
  void abort() override;

  // For the guest SSL's BIO (session.cc).
  int bio_read(char* out, int len) noexcept;
  int bio_write(const char* in, int len) noexcept;
  [[nodiscard]] bool bio_eof() const noexcept { return guest_fin_ && from_guest_.size() == 0; }
  // OpenSSL callbacks (session.cc).
  int on_client_hello(SSL* ssl, int* alert);
  int on_alpn_select(const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen);

 private:
  enum class HelloStep : uint8_t { wait, paused, serve, refuse };
  void on_io(uint32_t events) override;
  void kick() noexcept;
  void pump();
  void drive_guest_handshake();
  void start_upstream();
  void begin_upstream_tls();
  void drive_upstream_handshake();
  void relay();
  bool guest_to_upstream();
  bool upstream_to_guest();
  void upstream_done(bool ok, std::string reason, bool verify_failure);
  void fail(std::string_view why, Errno e);
  void update_watch();
  void close_upstream(bool abortive) noexcept;
  void audit(std::string_view ev, std::string_view reason);
  void make_filter();
  /// The flow_* fields of this flow's audit lines (tls_*, http_authority_mismatch).
  [[nodiscard]] obs::FlowFields flow_fields() const;
  void http_audit(const http::Event& e);

  // Guest-bound plaintext sink (for filters): SSL_write into the to-guest ring.
  struct GuestSink final : PlainSink {
    Session* s = nullptr;
    size_t write(Bytes data) override;
  };
  // Upstream-bound plaintext sink: SSL_write on the upstream connection.
  struct UpSink final : PlainSink {
    Session* s = nullptr;
    size_t write(Bytes data) override;
  };

  SessionEnv& env_;
  flows::FlowInfo info_;
  std::string name_;  // FlowInfo::name is a view; the session keeps its own copy
  flows::TcpFlowRef ref_;
  Phase phase_ = Phase::hello;
  HelloStep hello_ = HelloStep::wait;
  std::string sni_, expected_sni_, alpn_offer_, alpn_selected_, failure_;
  std::optional<flows::Endpoint> dial_to_;

  flows::ByteRing from_guest_, to_guest_;  // guest ciphertext, each way
  MemoryCharge plain_charge_;
  std::unique_ptr<std::byte[]> g2u_, u2g_;  // one record of plaintext each way
  size_t g2u_off_ = 0, g2u_len_ = 0, u2g_off_ = 0, u2g_len_ = 0;
  static constexpr size_t kPlain = 16 * 1024;

  SslPtr guest_ssl_;
  SslPtr up_ssl_;
  std::string session_key_;
  UniqueFd up_fd_;
  event::Watch watch_;  // after up_fd_: deregistered before the fd closes
  event::TimerHandle kick_timer_, deadline_;
  bool kick_armed_ = false;
  bool up_want_write_ = false;
  std::unique_ptr<PlainFilter> filter_;
  GuestSink guest_sink_;
  UpSink up_sink_;

  bool guest_fin_ = false;        // TcpConn: the guest sent FIN
  bool guest_eof_ = false;        // no more guest plaintext (close_notify or FIN)
  bool up_shut_ = false;          // close_notify + SHUT_WR sent upstream
  bool up_eof_ = false;           // no more upstream plaintext
  bool guest_closed_ = false;     // close_notify queued for the guest: read_closed()
  bool conn_aborted_ = false;     // TcpConn aborted (guest RST, ...)
  bool failed_ = false;
  bool detached_ = false;
  bool filter_eof_told_ = false;  // PlainFilter::upstream_eof() called
  bool error_mode_ = false;       // upstream failed, tls.upstream_error = http: 502s
  bool error_reported_ = false;   // peer_error() was called
  bool guest_ring_full_ = false;  // the guest SSL found the to-guest ring full
  Errno error_{0};
  uint32_t last_events_ = 0;
};

}  // namespace moat::tls
