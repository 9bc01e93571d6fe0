#pragma once
// Upstream TLS (SPEC R-TLS-4/5): the one client SSL_CTX every intercepted flow shares,
// the trust anchors loaded at set-up (system store, tls.extra_ca, tls.host_ca), the
// per-host choice of what to verify against (tls.host_ca, tls.no_verify: exact pattern >
// longest suffix > shorter suffix), and upstream session resumption per host.
//
// Everything that reads a file happens in UpstreamTls::create(), before the seccomp filter
// and the privilege drop (R-HARD): the system roots are read from the bundle *file* into
// the store (no hashed-directory lookup, which would open files at verification time).
#include <climits>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/bytes.h"
#include "base/addr.h"
#include "base/result.h"
#include "config/config.h"
#include "tls/openssl_handles.h"

namespace moat::tls {

class KeyLog;

/// How well the normalised pattern `pattern` ("name", "*.suffix" or "*") matches `host`
/// (lowercase, no trailing dot): -1 no match, kExactRank for the exact name, otherwise
/// 1 + the suffix's length ("*.example.com" matches example.com and every name under it;
/// "*" matches everything with rank 0). Higher wins (R-TLS-5).
inline constexpr int kExactRank = INT_MAX;
int pattern_rank(std::string_view pattern, std::string_view host) noexcept;
/// The best rank of any pattern in `patterns` (-1 when none matches).
int best_rank(const std::vector<std::string>& patterns, std::string_view host) noexcept;

/// What verification an upstream gets.
struct VerifyChoice {
  bool verify = true;          ///< false: tls.no_verify matched best
  int host_ca = -1;            ///< index into tls.host_ca whose store applies, -1 = the default store
};

class UpstreamTls {
 public:
  /// Loads the trust anchors and builds the client context. Error: a §5.2 line naming the
  /// file or key ("tls.extra_ca /x.pem: no certificate found").
  static Result<std::unique_ptr<UpstreamTls>, std::string> create(const config::TlsConfig& cfg,
                                                                  KeyLog* keylog = nullptr);
  ~UpstreamTls();
  UpstreamTls(const UpstreamTls&) = delete;
  UpstreamTls& operator=(const UpstreamTls&) = delete;

  /// R-TLS-5 precedence over tls.host_ca and tls.no_verify for `host` (empty = no SNI:
  /// only "*" patterns match). At equal rank no_verify wins (the user said so explicitly).
  [[nodiscard]] VerifyChoice choose(std::string_view host) const;

  /// A client SSL for one upstream connection: SNI = `sni` (none when empty), ALPN offer =
  /// `alpn` (wire format: length-prefixed names, exactly the guest's), hostname checked
  /// against `sni` or else `ip`, a cached session for (sni, ip, port) offered for
  /// resumption. The SSL is not yet bound to a socket.
  Result<SslPtr, std::string> new_ssl(std::string_view sni, const IpAddr& ip, uint16_t port, Bytes alpn,
                                      const VerifyChoice& how);

  [[nodiscard]] SSL_CTX* ctx() const noexcept { return ctx_.get(); }
  [[nodiscard]] size_t cached_sessions() const noexcept { return sessions_.size(); }
  /// Number of upstream handshakes that resumed a session.
  [[nodiscard]] uint64_t resumed() const noexcept { return resumed_; }
  void note_resumed() noexcept { ++resumed_; }

  /// Upper bound on cached upstream sessions (one per host:port; oldest evicted first).
  static constexpr size_t kMaxSessions = 1024;

 private:
  UpstreamTls() = default;
  static int on_new_session(SSL* ssl, SSL_SESSION* sess);
  void store_session(const std::string& key, SSL_SESSION* sess);

  SslCtxPtr ctx_;
  std::vector<X509StorePtr> host_stores_;  // one per tls.host_ca entry (default anchors + its CA)
  std::vector<std::vector<std::string>> host_patterns_;
  std::vector<std::string> no_verify_;
  std::unordered_map<std::string, SslSessionPtr> sessions_;
  std::deque<std::string> session_order_;  // insertion order, for eviction
  uint64_t resumed_ = 0;
  KeyLog* keylog_ = nullptr;
  friend class KeyLog;
};

/// The cache key an upstream SSL carries (ex_data) so that its new-session callback can
/// store the ticket under it; owned by the caller, outliving the SSL.
void set_session_key(SSL* ssl, const std::string* key) noexcept;
std::string session_key(std::string_view sni, const IpAddr& ip, uint16_t port);

}  // namespace moat::tls
