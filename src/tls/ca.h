#pragma once
// tls::CertAuthority: the CA that signs interception leaves (SPEC R-TLS-2, R-CLI-6).
//
// Resolution order (one function, from_config()):
//   1. tls.ca_cert + tls.ca_key (both or neither): a user-supplied CA, loaded and validated
//      (a CA certificate with keyCertSign; RSA >= 2048 or ECDSA P-256/P-384; the key matches).
//   2. tls.ca = ephemeral: a fresh in-memory CA for this gateway, never written anywhere.
//   3. persistent (default): $XDG_DATA_HOME/moat/ca.{crt,key} (fallback ~/.local/share/moat/),
//      loaded, or created when neither file exists. Creation and loading run under an
//      exclusive flock on ca.lock; files are written to a temporary name, fsynced and renamed;
//      the directory is 0700 and the key 0600. A half-present pair, a key that does not match,
//      a parse failure or a non-CA certificate is an error: never regenerated silently.
// Every error is a config::UserError naming the file (or the setting) and the reason.
//
// Lifecycle: built during setup (before the privilege drop to nobody, before seccomp), then
// immutable; the leaf cache and the C ABI borrow it. Not thread-safe to mutate (nothing does).
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

#include "base/result.h"
#include "config/config.h"
#include "tls/openssl_handles.h"

namespace moat::tls {

/// Where the persistent CA lives (R-TLS-2 3.).
struct CaPaths {
  std::string dir;   ///< $XDG_DATA_HOME/moat or ~/.local/share/moat
  std::string cert;  ///< dir/ca.crt
  std::string key;   ///< dir/ca.key
  std::string lock;  ///< dir/ca.lock
};

/// The persistent CA's paths from the environment: $XDG_DATA_HOME when set and absolute
/// (the XDG spec ignores relative values), else $HOME/.local/share, else the passwd entry's
/// home directory. Fails only when no home directory can be found.
Result<CaPaths, config::UserError> persistent_ca_paths();

class CertAuthority {
 public:
  enum class Source : uint8_t { persistent, ephemeral, user };

  /// R-TLS-2 resolution (see the file comment). `created`, when given, is set to whether a
  /// persistent CA was created by this call.
  static Result<std::unique_ptr<CertAuthority>, config::UserError> from_config(const config::TlsConfig& tls,
                                                                             bool* created = nullptr);
  /// A fresh CA as R-TLS-2 specifies generated ones (ECDSA P-256, SHA-256, CN
  /// "moat interception CA (<user>@<hostname>)", O moat, 128-bit serial, now - 1 h .. +10 y,
  /// basicConstraints critical CA:TRUE pathlen 0, keyUsage critical keyCertSign cRLSign, SKI).
  static Result<std::unique_ptr<CertAuthority>, config::UserError> generate(Source source = Source::ephemeral);
  /// Loads and validates a PEM certificate + PEM private key pair (the files are read with
  /// read_bounded_file). Errors name the file at fault.
  static Result<std::unique_ptr<CertAuthority>, config::UserError> load(const std::string& cert_path,
                                                                      const std::string& key_path,
                                                                      Source source = Source::user);
  /// Validates PEM text already in memory (what load() does after reading; the fuzz target's
  /// entry). `cert_name`/`key_name` are what errors call the two inputs.
  static Result<std::unique_ptr<CertAuthority>, config::UserError> from_pem(std::string_view cert_pem,
                                                                          std::string_view key_pem,
                                                                          const std::string& cert_name,
                                                                          const std::string& key_name,
                                                                          Source source = Source::user);

  /// The persistent CA at `paths`: loaded when both files exist, created when neither does,
  /// an error when only one does. Runs under the flock on paths.lock.
  static Result<std::unique_ptr<CertAuthority>, config::UserError> load_or_create(const CaPaths& paths,
                                                                                bool* created = nullptr);
  /// The persistent CA at `paths` when it exists (`moat ca show`): never creates anything; an
  /// error naming ca.crt when there is no CA yet. Reads under the flock when it can take it.
  static Result<std::unique_ptr<CertAuthority>, config::UserError> load_existing(const CaPaths& paths);
  /// `moat ca init`: like load_or_create(); with `force`, an existing pair (or half of one)
  /// is first renamed to ca.crt.old / ca.key.old and a new CA is created.
  static Result<std::unique_ptr<CertAuthority>, config::UserError> init(const CaPaths& paths, bool force,
                                                                      bool* created = nullptr);

  CertAuthority(const CertAuthority&) = delete;
  CertAuthority& operator=(const CertAuthority&) = delete;

  /// Borrowed: valid as long as this CertAuthority.
  [[nodiscard]] X509* cert() const noexcept { return cert_.get(); }
  [[nodiscard]] EVP_PKEY* key() const noexcept { return key_.get(); }
  /// The certificate as PEM text ("-----BEGIN CERTIFICATE-----\n...").
  [[nodiscard]] const std::string& pem() const noexcept { return pem_; }
  [[nodiscard]] Source source() const noexcept { return source_; }
  /// The file it came from (persistent, user); empty for an ephemeral CA.
  [[nodiscard]] const std::string& cert_path() const noexcept { return cert_path_; }
  [[nodiscard]] std::time_t not_before() const noexcept { return not_before_; }
  [[nodiscard]] std::time_t not_after() const noexcept { return not_after_; }
  /// The digest leaves are signed with: SHA-384 for a P-384 CA, SHA-256 otherwise.
  [[nodiscard]] const EVP_MD* sign_digest() const noexcept { return sign_md_; }
  /// The one-line subject ("CN=..., O=..."), for `moat ca show --text` and logs.
  [[nodiscard]] std::string subject() const;
  /// SHA-256 of the DER certificate, as "AB:CD:..." (`moat ca show --text`).
  [[nodiscard]] std::string sha256_fingerprint() const;

 private:
  CertAuthority(X509Ptr cert, EvpPkeyPtr key, Source source, std::string cert_path);

  X509Ptr cert_;
  EvpPkeyPtr key_;
  Source source_;
  std::string cert_path_;
  std::string pem_;
  std::time_t not_before_ = 0, not_after_ = 0;
  const EVP_MD* sign_md_ = nullptr;
};

/// The largest CA certificate or key file moat reads: real CA PEMs are a few KiB (an RSA
/// 8192 key is ~6.5 KiB); 1 MiB leaves room for long chains in a cert file and still keeps
/// a mistaken path (/dev/zero, a log) from growing memory.
inline constexpr size_t kCaFileMax = size_t{1} << 20;

}  // namespace moat::tls
