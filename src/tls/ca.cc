#include "tls/ca.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "base/file.h"
#include "base/log.h"
#include "base/unique_fd.h"

namespace moat::tls {

std::string openssl_error_text() {
  unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return {};
  // The reason alone ("no start line", "key values mismatch") reads better in a one-line
  // user error than ERR_error_string's "error:0480006C:PEM routines::no start line".
  const char* reason = ERR_reason_error_string(first);
  if (reason) return reason;
  char buf[256];
  ERR_error_string_n(first, buf, sizeof buf);
  return buf;
}

namespace {

using config::UserError;

constexpr std::time_t kCaBackdate = 3600;                        // R-TLS-2: valid from now - 1 h
constexpr long kCaValidDays = 3650;                              // ... for 10 years
constexpr std::chrono::seconds kLockWait{10};                    // another `moat ca init` holds it briefly

Unexpected<UserError> fail(std::string where, std::string what, std::string hint = {}) {
  return unexpected(UserError{std::move(where), std::move(what), std::move(hint)});
}

std::string with_reason(std::string what) {
  std::string r = openssl_error_text();
  if (!r.empty()) what += " (" + r + ")";
  return what;
}

std::time_t asn1_to_time(const ASN1_TIME* t) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

// A random positive 128-bit serial (R-TLS-2/3): 16 bytes with the top bit clear (DER
// INTEGERs are signed) and the next bit set so it always encodes in exactly 16 bytes.
bool set_random_serial(X509* x) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) return false;
  b[0] = static_cast<unsigned char>((b[0] & 0x7f) | 0x40);
  BignumPtr bn(BN_bin2bn(b, sizeof b, nullptr));
  if (!bn) return false;
  return BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)) != nullptr;
}

bool add_ext(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  return ext && X509_add_ext(x, ext.get(), -1) == 1;
}

// "<user>@<hostname>" for the generated CA's CN, cut so the CN stays within X.520's 64.
std::string user_at_host() {
  std::string user;
  if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_name) user = pw->pw_name;
  if (user.empty()) user = std::to_string(geteuid());
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  std::string s = user + "@" + host;
  constexpr size_t kMax = 64 - std::char_traits<char>::length("moat interception CA ()");
  if (s.size() > kMax) s.resize(kMax);
  return s;
}

std::string ec_group_name(EVP_PKEY* key) {
  char name[80] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) return {};
  return std::string(name, len);
}

// The password callback for PEM_read: never prompt (moat may run without a terminal, and
// a prompt in the middle of `moat run` would hang it); an encrypted key is an error.
int no_password(char*, int, int, void*) { return -1; }

// Does a signature made with `key` verify with `pub`? X509_check_private_key() compares
// public keys only, and an EC or RSA key file carries its public half next to the private
// one: a damaged private half (found by fuzz/ca_pem) would still "match" and then sign
// leaves that never verify.
bool signs_for(EVP_PKEY* key, EVP_PKEY* pub) {
  static const unsigned char kMsg[] = "moat CA key check";
  EVP_MD_CTX* s = EVP_MD_CTX_new();
  EVP_MD_CTX* v = EVP_MD_CTX_new();
  unsigned char sig[1024];
  size_t len = sizeof sig;
  bool ok = s && v && EVP_PKEY_get_size(key) > 0 && size_t(EVP_PKEY_get_size(key)) <= sizeof sig &&
            EVP_DigestSignInit(s, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestSign(s, sig, &len, kMsg, sizeof kMsg) == 1 &&
            EVP_DigestVerifyInit(v, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
            EVP_DigestVerify(v, sig, len, kMsg, sizeof kMsg) == 1;
  EVP_MD_CTX_free(s);
  EVP_MD_CTX_free(v);
  ERR_clear_error();
  return ok;
}

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", unsigned(m & 07777));
  return buf;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// mkdir -p, new directories 0700 (the XDG base directories and moat's own).
Result<void, UserError> make_dirs(const std::string& dir) {
  std::string cur;
  size_t pos = 0;
  while (pos <= dir.size()) {
    size_t next = dir.find('/', pos);
    if (next == std::string::npos) next = dir.size();
    cur = dir.substr(0, next);
    pos = next + 1;
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
      return fail(cur, std::string("cannot create directory: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return fail(dir, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return fail(dir, "is not a directory");
  if ((st.st_mode & 077) != 0) {
    // R-TLS-2: the directory is 0700. It is ours (we can write the CA into it), so tighten
    // it rather than leave the key's directory listable by others.
    if (::chmod(dir.c_str(), 0700) != 0)
      return fail(dir, "has mode " + mode_text(st.st_mode) + " and cannot be made 0700: " + std::strerror(errno));
    MOAT_LOG(warn, "%s: mode %s changed to 0700 (it holds the CA key)", dir.c_str(), mode_text(st.st_mode).c_str());
  }
  return {};
}

// Writes `data` to `path` atomically: a temporary name in the same directory, fsync,
// rename, then fsync of the directory.
Result<void, UserError> write_atomic(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return fail(tmp, std::string("cannot create: ") + std::strerror(errno));
  // The umask may have taken bits away from `mode`; the key must be exactly 0600.
  if (::fchmod(fd.get(), mode) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail(tmp, std::string("cannot chmod: ") + std::strerror(e));
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      ::unlink(tmp.c_str());
      return fail(tmp, std::string("cannot write: ") + std::strerror(e));
    }
    off += size_t(n);
  }
  if (::fsync(fd.get()) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail(path, std::string("cannot write: ") + std::strerror(e));
  }
  return {};
}

void fsync_dir(const std::string& dir) {
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d) (void)::fsync(d.get());  // best effort: the renames are already visible
}

// Holds the exclusive flock on ca.lock (R-TLS-2) for its lifetime.
class CaLock {
 public:
  static Result<CaLock, UserError> acquire(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return fail(path, std::string("cannot open the lock file: ") + std::strerror(errno));
    // Bounded: the holder is another moat creating or loading the CA, which takes
    // milliseconds; a holder stuck for 10 s is reported instead of hanging the gateway.
    auto deadline = std::chrono::steady_clock::now() + kLockWait;
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR)
        return fail(path, std::string("cannot lock: ") + std::strerror(errno));
      if (std::chrono::steady_clock::now() >= deadline)
        return fail(path, "is locked by another process for more than 10 s", "is another `moat ca init` stuck?");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return CaLock(std::move(fd));
  }

 private:
  explicit CaLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  // closing it releases the lock
};

Result<std::string, UserError> to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return fail("CA", with_reason("cannot encode the certificate"));
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(n));
}

Result<std::string, UserError> key_to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return fail("CA", with_reason("cannot encode the key"));
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(n));
}

// Errors about the persistent pair tell the user the one way out (§5.2's example).
Result<std::unique_ptr<CertAuthority>, UserError> with_persistent_hint(
    Result<std::unique_ptr<CertAuthority>, UserError> r) {
  if (r || !r.error().hint.empty()) return r;
  UserError e = r.error();
  e.hint = "fix or restore it, or run `moat ca init --force` to replace both (the old pair is kept as *.old)";
  return unexpected(std::move(e));
}

Result<std::unique_ptr<CertAuthority>, UserError> create_files(const CaPaths& paths) {
  auto ca = CertAuthority::generate(CertAuthority::Source::persistent);
  if (!ca) return ca;
  auto key_pem = key_to_pem((*ca)->key());
  if (!key_pem) return unexpected(key_pem.error());
  // The key first: a crash between the two renames leaves a key without a certificate,
  // which the next start reports as a half-present pair (never a silent regeneration).
  if (auto r = write_atomic(paths.key, *key_pem, 0600); !r) return unexpected(r.error());
  if (auto r = write_atomic(paths.cert, (*ca)->pem(), 0644); !r) return unexpected(r.error());
  fsync_dir(paths.dir);
  // The certificate path is what errors and `moat ca show` name from now on.
  return CertAuthority::load(paths.cert, paths.key, CertAuthority::Source::persistent);
}

Result<std::unique_ptr<CertAuthority>, UserError> locked_init(const CaPaths& paths, bool force, bool* created) {
  if (created) *created = false;
  if (auto r = make_dirs(paths.dir); !r) return unexpected(r.error());
  auto lock = CaLock::acquire(paths.lock);
  if (!lock) return unexpected(lock.error());
  bool have_cert = exists(paths.cert), have_key = exists(paths.key);
  if (force && (have_cert || have_key)) {
    for (const std::string* p : {&paths.cert, &paths.key}) {
      if (!exists(*p)) continue;
      std::string old = *p + ".old";
      if (::rename(p->c_str(), old.c_str()) != 0)
        return fail(*p, std::string("cannot rename to ") + old + ": " + std::strerror(errno));
    }
    fsync_dir(paths.dir);
    have_cert = have_key = false;
  }
  if (have_cert && have_key) {
    struct stat st {};
    if (::stat(paths.key.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
      MOAT_LOG(warn, "%s: mode %s; the CA key should be 0600", paths.key.c_str(), mode_text(st.st_mode).c_str());
    return with_persistent_hint(CertAuthority::load(paths.cert, paths.key, CertAuthority::Source::persistent));
  }
  if (have_cert != have_key) {
    const std::string& present = have_cert ? paths.cert : paths.key;
    const std::string& missing = have_cert ? paths.key : paths.cert;
    return fail(missing, "is missing but " + present + " exists (a half-present CA pair)",
                "restore the file, or run `moat ca init --force` to replace the pair");
  }
  auto ca = create_files(paths);
  if (ca && created) *created = true;
  return ca;
}

}  // namespace

Result<CaPaths, UserError> persistent_ca_paths() {
  std::string base;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && x[0] == '/') {
    base = x;
  } else {
    std::string home;
    if (const char* h = std::getenv("HOME"); h && h[0] == '/') home = h;
    if (home.empty()) {
      if (const passwd* pw = getpwuid(geteuid()); pw && pw->pw_dir && pw->pw_dir[0] == '/') home = pw->pw_dir;
    }
    if (home.empty())
      return fail("tls.ca", "no home directory for the persistent CA ($XDG_DATA_HOME and $HOME are unset)",
                  "set XDG_DATA_HOME, or use --tls-ephemeral-ca");
    base = home + "/.local/share";
  }
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  CaPaths p;
  p.dir = base + "/moat";
  p.cert = p.dir + "/ca.crt";
  p.key = p.dir + "/ca.key";
  p.lock = p.dir + "/ca.lock";
  return p;
}

CertAuthority::CertAuthority(X509Ptr cert, EvpPkeyPtr key, Source source, std::string cert_path)
    : cert_(std::move(cert)), key_(std::move(key)), source_(source), cert_path_(std::move(cert_path)) {
  not_before_ = asn1_to_time(X509_get0_notBefore(cert_.get()));
  not_after_ = asn1_to_time(X509_get0_notAfter(cert_.get()));
  sign_md_ = (EVP_PKEY_get_base_id(key_.get()) == EVP_PKEY_EC && EVP_PKEY_get_bits(key_.get()) > 256) ? EVP_sha384()
                                                                                                    : EVP_sha256();
  if (auto p = to_pem(cert_.get())) pem_ = std::move(*p);
}

Result<std::unique_ptr<CertAuthority>, UserError> CertAuthority::generate(Source source) {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return fail("tls.ca", with_reason("cannot generate the CA key"));
  X509Ptr x(X509_new());
  X509NamePtr name(X509_NAME_new());
  std::string cn = "moat interception CA (" + user_at_host() + ")";
  std::time_t now = std::time(nullptr);
  bool ok = x && name && X509_set_version(x.get(), X509_VERSION_3) == 1 && set_random_serial(x.get()) &&
            X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1 &&
            X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>("moat"), -1, -1, 0) == 1 &&
            X509_set_subject_name(x.get(), name.get()) == 1 && X509_set_issuer_name(x.get(), name.get()) == 1 &&
            X509_time_adj_ex(X509_getm_notBefore(x.get()), 0, -kCaBackdate, &now) != nullptr &&
            X509_time_adj_ex(X509_getm_notAfter(x.get()), kCaValidDays, -kCaBackdate, &now) != nullptr &&
            X509_set_pubkey(x.get(), key.get()) == 1;
  if (ok) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
    ok = add_ext(x.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash") &&
         X509_sign(x.get(), key.get(), EVP_sha256()) > 0;
  }
  if (!ok) return fail("tls.ca", with_reason("cannot create the CA certificate"));
  return std::unique_ptr<CertAuthority>(new CertAuthority(std::move(x), std::move(key), source, {}));
}

Result<std::unique_ptr<CertAuthority>, UserError> CertAuthority::from_pem(std::string_view cert_pem,
                                                                        std::string_view key_pem,
                                                                        const std::string& cert_name,
                                                                        const std::string& key_name, Source source) {
  ERR_clear_error();
  if (cert_pem.size() > size_t(INT32_MAX) || key_pem.size() > size_t(INT32_MAX)) return fail(cert_name, "too large");
  BioPtr cbio(BIO_new_mem_buf(cert_pem.data(), int(cert_pem.size())));
  if (!cbio) return fail(cert_name, with_reason("out of memory"));
  X509Ptr cert(PEM_read_bio_X509(cbio.get(), nullptr, no_password, nullptr));
  if (!cert) return fail(cert_name, with_reason("not a PEM certificate"));

  BioPtr kbio(BIO_new_mem_buf(key_pem.data(), int(key_pem.size())));
  if (!kbio) return fail(key_name, with_reason("out of memory"));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, no_password, nullptr));
  if (!key) {
    std::string reason = openssl_error_text();
    bool encrypted = key_pem.find("ENCRYPTED") != std::string_view::npos;
    return fail(key_name, encrypted ? "is an encrypted private key (moat needs it unencrypted)"
                                    : "not a PEM private key" + (reason.empty() ? "" : " (" + reason + ")"));
  }

  // R-TLS-2: a CA certificate (basicConstraints CA:TRUE) that may sign certificates.
  // keyUsage first: X509_check_ca() also fails for a CA whose keyUsage lacks keyCertSign,
  // and that deserves its own message.
  if ((X509_get_extension_flags(cert.get()) & EXFLAG_KUSAGE) != 0 &&
      (X509_get_key_usage(cert.get()) & KU_KEY_CERT_SIGN) == 0)
    return fail(cert_name, "cannot sign certificates (its keyUsage lacks keyCertSign)");
  if (X509_check_ca(cert.get()) != 1)
    return fail(cert_name, "is not a CA certificate (basicConstraints CA:TRUE is missing)");

  // RSA >= 2048 or ECDSA P-256/P-384, checked on the private key (which must match the
  // certificate's public key just below).
  int type = EVP_PKEY_get_base_id(key.get());
  if (type == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(key.get());
    if (bits < 2048) return fail(key_name, "is an RSA key of " + std::to_string(bits) + " bits (at least 2048 needed)");
  } else if (type == EVP_PKEY_EC) {
    std::string group = ec_group_name(key.get());
    if (group != "prime256v1" && group != "P-256" && group != "secp384r1" && group != "P-384")
      return fail(key_name, "is an EC key on curve " + (group.empty() ? std::string("(unknown)") : group) +
                                " (P-256 or P-384 needed)");
  } else {
    const char* tn = OBJ_nid2sn(type);
    return fail(key_name, std::string("is a ") + (tn ? tn : "unknown") +
                              " key (RSA >= 2048 or ECDSA P-256/P-384 needed)");
  }
  ERR_clear_error();
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return fail(key_name, "does not match the certificate " + cert_name + " (public keys differ)");
  }
  if (!signs_for(key.get(), X509_get0_pubkey(cert.get())))
    return fail(key_name, "does not match the certificate " + cert_name +
                              " (its signatures do not verify with the certificate's public key)");

  // Validity: leaves live inside it (R-TLS-3), so it must be readable and current.
  struct tm nb_tm {}, na_tm {};
  if (ASN1_TIME_to_tm(X509_get0_notBefore(cert.get()), &nb_tm) != 1 ||
      ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &na_tm) != 1)
    return fail(cert_name, "has an unreadable validity period");
  std::time_t now = std::time(nullptr), nb = timegm(&nb_tm), na = timegm(&na_tm);
  if (na <= nb) return fail(cert_name, "has an empty validity period (notAfter is not after notBefore)");
  if (na <= now) return fail(cert_name, "has expired", "replace it (for the persistent CA: `moat ca init --force`)");
  if (nb > now) return fail(cert_name, "is not valid yet (notBefore is in the future)", "check the clock, or replace it");

  std::string path = (source == Source::ephemeral) ? std::string() : cert_name;
  return std::unique_ptr<CertAuthority>(new CertAuthority(std::move(cert), std::move(key), source, std::move(path)));
}

Result<std::unique_ptr<CertAuthority>, UserError> CertAuthority::load(const std::string& cert_path,
                                                                    const std::string& key_path, Source source) {
  auto cert = read_bounded_file(cert_path, kCaFileMax);
  if (!cert) return fail(cert_path, cert.error().message());
  auto key = read_bounded_file(key_path, kCaFileMax);
  if (!key) return fail(key_path, key.error().message());
  auto ca = from_pem(*cert, *key, cert_path, key_path, source);
  // Key material read into std::string: wipe it before the buffer goes back to the heap.
  OPENSSL_cleanse(key->data(), key->size());
  return ca;
}

Result<std::unique_ptr<CertAuthority>, UserError> CertAuthority::load_or_create(const CaPaths& paths, bool* created) {
  return locked_init(paths, false, created);
}

Result<std::unique_ptr<CertAuthority>, UserError> CertAuthority::load_existing(const CaPaths& paths) {
  bool have_cert = exists(paths.cert), have_key = exists(paths.key);
  if (!have_cert && !have_key) return fail(paths.cert, "no CA yet", "run `moat ca init` to create it");
  // The lock keeps a concurrent `init --force` from being seen half-way; a directory we
  // cannot write (a read-only home) still lets us read.
  std::optional<CaLock> lock;
  if (::access(paths.dir.c_str(), W_OK) == 0) {
    auto l = CaLock::acquire(paths.lock);
    if (!l) return unexpected(l.error());
    lock.emplace(std::move(*l));
    have_cert = exists(paths.cert);
    have_key = exists(paths.key);
  }
  if (have_cert != have_key) {
    const std::string& present = have_cert ? paths.cert : paths.key;
    const std::string& missing = have_cert ? paths.key : paths.cert;
    return fail(missing, "is missing but " + present + " exists (a half-present CA pair)",
                "restore the file, or run `moat ca init --force` to replace the pair");
  }
  return with_persistent_hint(load(paths.cert, paths.key, Source::persistent));
}

Result<std::unique_ptr<CertAuthority>, UserError> CertAuthority::init(const CaPaths& paths, bool force,
                                                                    bool* created) {
  return locked_init(paths, force, created);
}

Result<std::unique_ptr<CertAuthority>, UserError> CertAuthority::from_config(const config::TlsConfig& tls,
                                                                           bool* created) {
  if (created) *created = false;
  if (!tls.ca_cert.empty() || !tls.ca_key.empty()) {
    if (tls.ca_cert.empty()) return fail("tls.ca_cert", "is unset but tls.ca_key is set (both or neither)");
    if (tls.ca_key.empty()) return fail("tls.ca_key", "is unset but tls.ca_cert is set (both or neither)");
    return load(tls.ca_cert, tls.ca_key, Source::user);
  }
  if (tls.ca == config::TlsConfig::CaMode::ephemeral) return generate(Source::ephemeral);
  auto paths = persistent_ca_paths();
  if (!paths) return unexpected(paths.error());
  return load_or_create(*paths, created);
}

std::string CertAuthority::subject() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert_.get()), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(n));
}

std::string CertAuthority::sha256_fingerprint() const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert_.get(), EVP_sha256(), md, &n) != 1) return {};
  std::string s;
  char hex[4];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(hex, sizeof hex, i + 1 < n ? "%02X:" : "%02X", md[i]);
    s += hex;
  }
  return s;
}

}  // namespace moat::tls
