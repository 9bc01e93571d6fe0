#include "tls/upstream.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "tls/keylog.h"

namespace moat::tls {

std::string openssl_error(const char* fallback) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return fallback;
  const char* r = ERR_reason_error_string(e);
  if (r) return r;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

int pattern_rank(std::string_view pattern, std::string_view host) noexcept {
  if (pattern == "*") return 0;
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    const std::string_view suffix = pattern.substr(2);
    if (host.empty()) return -1;
    if (host == suffix) return int(suffix.size()) + 1;  // the apex is included (R-TLS-4)
    if (host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix &&
        host[host.size() - suffix.size() - 1] == '.')
      return int(suffix.size()) + 1;
    return -1;
  }
  return (!host.empty() && pattern == host) ? kExactRank : -1;
}

int best_rank(const std::vector<std::string>& patterns, std::string_view host) noexcept {
  int best = -1;
  for (const auto& p : patterns) best = std::max(best, pattern_rank(p, host));
  return best;
}

namespace {

int session_key_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

// Every certificate of a PEM file (R-TLS-5: "each may hold several certificates").
// `key` names the setting and index for the §5.2 message: "tls.extra_ca[0]".
Result<std::vector<X509Ptr>, std::string> read_pem_certs(const std::string& path, const std::string& key) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return unexpected(key + " " + path + ": cannot open: " + std::strerror(errno));
  std::vector<X509Ptr> out;
  for (;;) {
    X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
    if (!x) break;
    out.emplace_back(x);
  }
  std::fclose(f);
  ERR_clear_error();  // the loop ends on "no start line"
  if (out.empty()) return unexpected(key + " " + path + ": no CERTIFICATE block found");
  return out;
}

}  // namespace

void set_session_key(SSL* ssl, const std::string* key) noexcept {
  SSL_set_ex_data(ssl, session_key_index(), const_cast<std::string*>(key));
}

std::string session_key(std::string_view sni, const IpAddr& ip, uint16_t port) {
  std::string k(sni);
  k += '|';
  k += ip.to_string();
  k += ':';
  k += std::to_string(port);
  return k;
}

Result<std::unique_ptr<UpstreamTls>, std::string> UpstreamTls::create(const config::TlsConfig& cfg, KeyLog* keylog) {
  std::unique_ptr<UpstreamTls> u(new UpstreamTls());
  u->keylog_ = keylog;
  u->ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!u->ctx_) return unexpected("tls: cannot create the upstream TLS context: " + openssl_error());
  SSL_CTX* ctx = u->ctx_.get();
  SSL_CTX_set_min_proto_version(
      ctx, cfg.upstream_min_version == config::TlsConfig::MinVersion::tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Many servers close without close_notify: that EOF ends the direction, no error.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes: a record the socket did not take stays ours to retry; no moving-buffer
  // check because the pending plaintext lives in the session's own buffer.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Resumption per host (R-TLS-4 "session tickets on both sides"): OpenSSL's client cache
  // is keyed by nothing useful, so sessions are kept here under (SNI, address, port).
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &UpstreamTls::on_new_session);
  SSL_CTX_set_app_data(ctx, u.get());

  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (cfg.system_roots) {
    // The bundle file only (Debian: /usr/lib/ssl/cert.pem -> ca-certificates.crt), read
    // now; $SSL_CERT_FILE overrides it as it does for every OpenSSL program.
    const char* env = std::getenv(X509_get_default_cert_file_env());
    const std::string file = (env && *env) ? env : X509_get_default_cert_file();
    if (X509_STORE_load_file(store, file.c_str()) != 1) {
      ERR_clear_error();
      MOAT_LOG(warn, "tls: the system trust store %s could not be read; upstreams verify against tls.extra_ca only",
               file.c_str());
    }
  }
  for (size_t i = 0; i < cfg.extra_ca.size(); ++i) {
    auto certs = read_pem_certs(cfg.extra_ca[i], "tls.extra_ca[" + std::to_string(i) + "]");
    if (!certs) return unexpected(certs.error());
    for (auto& c : *certs) X509_STORE_add_cert(store, c.get());
    ERR_clear_error();  // duplicates are not an error
  }
  for (size_t i = 0; i < cfg.host_ca.size(); ++i) {
    const auto& h = cfg.host_ca[i];
    auto certs = read_pem_certs(h.file, "tls.host_ca[" + std::to_string(i) + "]");
    if (!certs) return unexpected(certs.error());
    X509StorePtr s(X509_STORE_new());
    // The default anchors stay trusted for these hosts; the entry adds its own CA.
    STACK_OF(X509_OBJECT)* objs = X509_STORE_get0_objects(store);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); ++i)
      if (X509* x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i))) X509_STORE_add_cert(s.get(), x);
    for (auto& c : *certs) X509_STORE_add_cert(s.get(), c.get());
    ERR_clear_error();
    u->host_stores_.push_back(std::move(s));
    u->host_patterns_.push_back(h.hosts);
  }
  u->no_verify_ = cfg.no_verify;
  if (keylog) keylog->attach(ctx);
  return u;
}

UpstreamTls::~UpstreamTls() = default;

VerifyChoice UpstreamTls::choose(std::string_view host) const {
  VerifyChoice c;
  int best = -1;
  for (size_t i = 0; i < host_patterns_.size(); ++i) {
    const int r = best_rank(host_patterns_[i], host);
    if (r > best) {
      best = r;
      c.host_ca = int(i);
    }
  }
  const int nv = best_rank(no_verify_, host);
  if (nv >= 0 && nv >= best) {
    c.verify = false;
    c.host_ca = -1;
  }
  return c;
}

Result<SslPtr, std::string> UpstreamTls::new_ssl(std::string_view sni, const IpAddr& ip, uint16_t port, Bytes alpn,
                                                 const VerifyChoice& how) {
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) return unexpected("SSL_new: " + openssl_error());
  const std::string name(sni);
  if (!name.empty() && SSL_set_tlsext_host_name(ssl.get(), name.c_str()) != 1)
    return unexpected("server name " + name + ": " + openssl_error());
  if (!how.verify) {
    SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    if (how.host_ca >= 0 && size_t(how.host_ca) < host_stores_.size())
      SSL_set1_verify_cert_store(ssl.get(), host_stores_[size_t(how.host_ca)].get());
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    // R-TLS-5: the name checked is the SNI, or the address for a hello without one.
    const int ok = name.empty() ? X509_VERIFY_PARAM_set1_ip_asc(param, ip.to_string().c_str())
                                : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) return unexpected("hostname check for " + (name.empty() ? ip.to_string() : name) + ": " +
                                   openssl_error());
  }
  // Exactly the guest's ALPN offer (R-TLS-4); none when the guest offered none.
  if (!alpn.empty() &&
      SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(alpn.data()), unsigned(alpn.size())) != 0)
    return unexpected("ALPN offer: " + openssl_error());
  if (auto it = sessions_.find(session_key(sni, ip, port)); it != sessions_.end())
    SSL_set_session(ssl.get(), it->second.get());
  SSL_set_connect_state(ssl.get());
  return ssl;
}

int UpstreamTls::on_new_session(SSL* ssl, SSL_SESSION* sess) {
  auto* self = static_cast<UpstreamTls*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, session_key_index()));
  if (!self || !key || key->empty()) return 0;
  // Only verified (or deliberately unverified) sessions reach here: a failed handshake
  // produces no ticket, so the cache cannot be poisoned with an unverified peer.
  self->store_session(*key, sess);
  return 1;  // we keep the reference
}

void UpstreamTls::store_session(const std::string& key, SSL_SESSION* sess) {
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    it->second.reset(sess);
    return;
  }
  while (sessions_.size() >= kMaxSessions && !session_order_.empty()) {
    sessions_.erase(session_order_.front());
    session_order_.pop_front();
  }
  sessions_.emplace(key, SslSessionPtr(sess));
  session_order_.push_back(key);
}

}  // namespace moat::tls
