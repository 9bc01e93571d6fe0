// CertAuthority (R-TLS-2, R-CLI-6): the generated CA's fields, the persistent store (modes,
// flock, atomic write, --force), and every bad-input case of a CA pair, each error naming
// the file at fault.
#include "tls/ca.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>

namespace moat::tls {
namespace {

std::time_t asn1_time(const ASN1_TIME* t) {
  struct tm tm {};
  EXPECT_EQ(ASN1_TIME_to_tm(t, &tm), 1);
  return timegm(&tm);
}

std::string name_entry(X509_NAME* n, int nid) {
  char buf[256] = {};
  int len = X509_NAME_get_text_by_NID(n, nid, buf, sizeof buf);
  return len > 0 ? std::string(buf, size_t(len)) : std::string();
}

// --- fixtures: keys and certificates of every kind ------------------------------------

EvpPkeyPtr ec_key(const char* curve) { return EvpPkeyPtr(EVP_EC_gen(curve)); }
EvpPkeyPtr rsa_key(unsigned bits) { return EvpPkeyPtr(EVP_RSA_gen(bits)); }
EvpPkeyPtr ed25519_key() {
  EVP_PKEY* k = nullptr;
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY_keygen_init(ctx.get());
  EVP_PKEY_keygen(ctx.get(), &k);
  return EvpPkeyPtr(k);
}

struct CertSpec {
  const char* bc = "critical,CA:TRUE";  // nullptr = no basicConstraints
  const char* ku = "critical,keyCertSign,cRLSign";  // nullptr = no keyUsage
  long not_after_days = 365;
  long not_before_days = -1;
};

X509Ptr make_cert(EVP_PKEY* key, const CertSpec& s = {}) {
  X509Ptr x(X509_new());
  X509_set_version(x.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 42);
  X509_NAME* n = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("test CA"), -1, -1, 0);
  X509_set_issuer_name(x.get(), n);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), s.not_before_days * 86400L);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), s.not_after_days * 86400L);
  X509_set_pubkey(x.get(), key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  for (auto [nid, v] : {std::pair{NID_basic_constraints, s.bc}, std::pair{NID_key_usage, s.ku}}) {
    if (!v) continue;
    X509ExtensionPtr e(X509V3_EXT_conf_nid(nullptr, &ctx, nid, v));
    X509_add_ext(x.get(), e.get(), -1);
  }
  const EVP_MD* md = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  EXPECT_GT(X509_sign(x.get(), key, md), 0);
  return x;
}

std::string cert_pem(X509* x) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x);
  char* d = nullptr;
  long n = BIO_get_mem_data(b.get(), &d);
  return std::string(d, size_t(n));
}

std::string key_pem(EVP_PKEY* k, bool encrypted = false) {
  BioPtr b(BIO_new(BIO_s_mem()));
  static char pass[] = "secret";
  if (encrypted)
    PEM_write_bio_PrivateKey(b.get(), k, EVP_aes_128_cbc(), reinterpret_cast<unsigned char*>(pass), 6, nullptr, nullptr);
  else
    PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  char* d = nullptr;
  long n = BIO_get_mem_data(b.get(), &d);
  return std::string(d, size_t(n));
}

void write_file(const std::string& path, const std::string& data, mode_t mode = 0600) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  ::chmod(path.c_str(), mode);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

class TempHome : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-ca-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    if (const char* x = std::getenv("XDG_DATA_HOME")) saved_xdg_ = x;
    ::setenv("XDG_DATA_HOME", (root_ + "/data").c_str(), 1);
    auto p = persistent_ca_paths();
    ASSERT_TRUE(p);
    paths_ = *p;
  }
  void TearDown() override {
    if (saved_xdg_) ::setenv("XDG_DATA_HOME", saved_xdg_->c_str(), 1);
    else ::unsetenv("XDG_DATA_HOME");
    std::string cmd = "rm -rf '" + root_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  // Expects `r` to be an error whose `where` is `file` and whose text contains `what`.
  template <class R>
  void expect_error(const R& r, const std::string& file, const std::string& what) {
    ASSERT_FALSE(r) << "expected an error about " << file;
    EXPECT_EQ(r.error().where, file) << r.error().format();
    EXPECT_NE(r.error().format().find(what), std::string::npos) << r.error().format();
  }
  std::string root_;
  CaPaths paths_;
  std::optional<std::string> saved_xdg_;
};

// --- generated CAs -----------------------------------------------------------------------

TEST(CaGenerate, FieldsAsSpecified) {
  std::time_t before = std::time(nullptr);
  auto ca = CertAuthority::generate();
  ASSERT_TRUE(ca) << ca.error().format();
  X509* x = (*ca)->cert();
  EXPECT_EQ((*ca)->source(), CertAuthority::Source::ephemeral);
  EXPECT_TRUE((*ca)->cert_path().empty());
  EXPECT_EQ(X509_get_version(x), X509_VERSION_3);
  // ECDSA P-256 key, SHA-256 signature, self-signed.
  EVP_PKEY* k = (*ca)->key();
  EXPECT_EQ(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
  char group[64] = {};
  size_t glen = 0;
  ASSERT_EQ(EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_verify(x, k), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
  // Subject: CN "moat interception CA (<user>@<hostname>)", O moat.
  std::string cn = name_entry(X509_get_subject_name(x), NID_commonName);
  EXPECT_EQ(cn.rfind("moat interception CA (", 0), 0u) << cn;
  EXPECT_NE(cn.find('@'), std::string::npos) << cn;
  EXPECT_EQ(cn.back(), ')');
  EXPECT_LE(cn.size(), 64u);
  EXPECT_EQ(name_entry(X509_get_subject_name(x), NID_organizationName), "moat");
  // 128-bit positive random serial.
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr));
  EXPECT_EQ(BN_num_bits(serial.get()), 127);  // top bit clear, next bit set
  EXPECT_FALSE(BN_is_negative(serial.get()));
  auto other = CertAuthority::generate();
  ASSERT_TRUE(other);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(x), X509_get0_serialNumber((*other)->cert())), 0);
  // Valid from now - 1 h for 10 years (3650 days).
  std::time_t nb = asn1_time(X509_get0_notBefore(x)), na = asn1_time(X509_get0_notAfter(x));
  EXPECT_GE(nb, before - 3600 - 1);
  EXPECT_LE(nb, std::time(nullptr) - 3600 + 1);
  EXPECT_EQ(na - nb, 3650L * 86400);
  EXPECT_EQ((*ca)->not_before(), nb);
  EXPECT_EQ((*ca)->not_after(), na);
  // basicConstraints critical CA:TRUE pathlen 0.
  int crit = -1;
  Handle<BASIC_CONSTRAINTS, &BASIC_CONSTRAINTS_free> bc(
      static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(x, NID_basic_constraints, &crit, nullptr)));
  ASSERT_TRUE(bc);
  EXPECT_EQ(crit, 1);
  EXPECT_TRUE(bc->ca);
  ASSERT_NE(bc->pathlen, nullptr);
  EXPECT_EQ(ASN1_INTEGER_get(bc->pathlen), 0);
  // keyUsage critical keyCertSign + cRLSign, nothing else.
  Handle<ASN1_BIT_STRING, &ASN1_BIT_STRING_free> ku(
      static_cast<ASN1_BIT_STRING*>(X509_get_ext_d2i(x, NID_key_usage, &crit, nullptr)));
  ASSERT_TRUE(ku);
  EXPECT_EQ(crit, 1);
  EXPECT_EQ(X509_get_key_usage(x), uint32_t(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  // SKI present.
  EXPECT_NE(X509_get0_subject_key_id(x), nullptr);
  // PEM and the text of `moat ca show --text`.
  EXPECT_EQ((*ca)->pem().rfind("-----BEGIN CERTIFICATE-----\n", 0), 0u);
  EXPECT_EQ((*ca)->pem(), cert_pem(x));
  EXPECT_NE((*ca)->subject().find("CN = moat interception CA ("), std::string::npos) << (*ca)->subject();
  EXPECT_EQ((*ca)->sha256_fingerprint().size(), 32u * 3 - 1);
  EXPECT_EQ((*ca)->sign_digest(), EVP_sha256());
}

// --- the persistent CA ---------------------------------------------------------------------

TEST_F(TempHome, PathsFollowXdgThenHome) {
  EXPECT_EQ(paths_.dir, root_ + "/data/moat");
  EXPECT_EQ(paths_.cert, root_ + "/data/moat/ca.crt");
  EXPECT_EQ(paths_.key, root_ + "/data/moat/ca.key");
  EXPECT_EQ(paths_.lock, root_ + "/data/moat/ca.lock");
  std::string home = std::getenv("HOME") ? std::getenv("HOME") : "";
  ::setenv("HOME", (root_ + "/home").c_str(), 1);
  ::setenv("XDG_DATA_HOME", "relative/dir", 1);  // the XDG spec ignores relative values
  auto p = persistent_ca_paths();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->cert, root_ + "/home/.local/share/moat/ca.crt");
  ::unsetenv("XDG_DATA_HOME");
  p = persistent_ca_paths();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dir, root_ + "/home/.local/share/moat");
  if (!home.empty()) ::setenv("HOME", home.c_str(), 1);
}

TEST_F(TempHome, CreatedOnceWithModesThenLoaded) {
  bool created = false;
  auto ca = CertAuthority::load_or_create(paths_, &created);
  ASSERT_TRUE(ca) << ca.error().format();
  EXPECT_TRUE(created);
  EXPECT_EQ((*ca)->source(), CertAuthority::Source::persistent);
  EXPECT_EQ((*ca)->cert_path(), paths_.cert);
  EXPECT_EQ(mode_of(paths_.dir), 0700u);
  EXPECT_EQ(mode_of(paths_.key), 0600u);
  EXPECT_EQ(mode_of(paths_.cert), 0644u);
  EXPECT_TRUE(exists(paths_.lock));
  EXPECT_EQ(read_file(paths_.cert), (*ca)->pem());
  // No temporary file is left.
  EXPECT_FALSE(exists(paths_.cert + ".tmp." + std::to_string(::getpid())));
  EXPECT_FALSE(exists(paths_.key + ".tmp." + std::to_string(::getpid())));

  auto again = CertAuthority::load_or_create(paths_, &created);
  ASSERT_TRUE(again) << again.error().format();
  EXPECT_FALSE(created);
  EXPECT_EQ((*again)->sha256_fingerprint(), (*ca)->sha256_fingerprint());
  EXPECT_EQ(EVP_PKEY_eq((*again)->key(), (*ca)->key()), 1);
  // from_config's default (persistent) finds the same CA.
  auto cfg = CertAuthority::from_config(config::TlsConfig{}, &created);
  ASSERT_TRUE(cfg) << cfg.error().format();
  EXPECT_FALSE(created);
  EXPECT_EQ((*cfg)->sha256_fingerprint(), (*ca)->sha256_fingerprint());
  // load_existing (moat ca show) too, and it creates nothing when there is nothing.
  auto shown = CertAuthority::load_existing(paths_);
  ASSERT_TRUE(shown);
  EXPECT_EQ((*shown)->pem(), (*ca)->pem());
}

TEST_F(TempHome, LooseDirectoryModeIsTightened) {
  ASSERT_EQ(::mkdir((root_ + "/data").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(paths_.dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(paths_.dir.c_str(), 0755), 0);
  ASSERT_TRUE(CertAuthority::load_or_create(paths_));
  EXPECT_EQ(mode_of(paths_.dir), 0700u);
}

TEST_F(TempHome, ShowWithoutACaCreatesNothing) {
  auto r = CertAuthority::load_existing(paths_);
  expect_error(r, paths_.cert, "no CA yet");
  EXPECT_FALSE(exists(paths_.dir));
}

TEST_F(TempHome, ConcurrentCreatorsMakeOneCa) {
  // flock() locks belong to open file descriptions, so threads that each open ca.lock
  // exclude each other exactly as processes do.
  constexpr int kThreads = 6;
  std::vector<std::string> fps(kThreads);
  std::atomic<int> created_count{0}, go{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i)
    ts.emplace_back([&, i] {
      while (go.load() == 0) std::this_thread::yield();
      bool created = false;
      auto ca = CertAuthority::load_or_create(paths_, &created);
      if (ca) fps[size_t(i)] = (*ca)->sha256_fingerprint();
      if (created) created_count++;
    });
  go = 1;
  for (auto& t : ts) t.join();
  EXPECT_EQ(created_count.load(), 1);
  std::set<std::string> distinct(fps.begin(), fps.end());
  EXPECT_EQ(distinct.size(), 1u);
  EXPECT_FALSE(fps[0].empty());
}

TEST_F(TempHome, ForceKeepsTheOldPair) {
  auto first = CertAuthority::init(paths_, false);
  ASSERT_TRUE(first);
  std::string old_cert = read_file(paths_.cert), old_key = read_file(paths_.key);
  bool created = false;
  auto again = CertAuthority::init(paths_, false, &created);  // exists: just loaded
  ASSERT_TRUE(again);
  EXPECT_FALSE(created);
  EXPECT_EQ(read_file(paths_.cert), old_cert);
  auto forced = CertAuthority::init(paths_, true, &created);
  ASSERT_TRUE(forced) << forced.error().format();
  EXPECT_TRUE(created);
  EXPECT_EQ(read_file(paths_.cert + ".old"), old_cert);
  EXPECT_EQ(read_file(paths_.key + ".old"), old_key);
  EXPECT_NE(read_file(paths_.cert), old_cert);
  EXPECT_EQ(mode_of(paths_.key), 0600u);
  EXPECT_EQ(mode_of(paths_.key + ".old"), 0600u);
  // --force also replaces a broken or half-present pair.
  ASSERT_EQ(::unlink(paths_.key.c_str()), 0);
  EXPECT_FALSE(CertAuthority::init(paths_, false));
  EXPECT_TRUE(CertAuthority::init(paths_, true));
}

TEST_F(TempHome, HalfPresentPairIsAnErrorNamingTheMissingFile) {
  ASSERT_TRUE(CertAuthority::load_or_create(paths_));
  std::string cert = read_file(paths_.cert);
  ASSERT_EQ(::unlink(paths_.key.c_str()), 0);
  auto r = CertAuthority::load_or_create(paths_);
  expect_error(r, paths_.key, "half-present");
  EXPECT_NE(r.error().hint.find("moat ca init --force"), std::string::npos);
  EXPECT_EQ(read_file(paths_.cert), cert);  // never regenerated silently
  EXPECT_FALSE(exists(paths_.key));
  expect_error(CertAuthority::load_existing(paths_), paths_.key, "half-present");

  ASSERT_EQ(::rename(paths_.cert.c_str(), paths_.key.c_str()), 0);  // now only a "key"
  expect_error(CertAuthority::load_or_create(paths_), paths_.cert, "half-present");
}

TEST_F(TempHome, BrokenPersistentPairIsNeverRegenerated) {
  ASSERT_TRUE(CertAuthority::load_or_create(paths_));
  write_file(paths_.cert, "garbage\n", 0644);
  std::string key = read_file(paths_.key);
  auto r = CertAuthority::load_or_create(paths_);
  expect_error(r, paths_.cert, "not a PEM certificate");
  EXPECT_NE(r.error().hint.find("moat ca init --force"), std::string::npos) << r.error().format();
  EXPECT_EQ(read_file(paths_.cert), "garbage\n");
  EXPECT_EQ(read_file(paths_.key), key);
  // A key of another CA.
  auto other = CertAuthority::generate();
  ASSERT_TRUE(other);
  write_file(paths_.cert, (*other)->pem(), 0644);
  expect_error(CertAuthority::load_or_create(paths_), paths_.key, "does not match");
}

TEST_F(TempHome, FromConfigEphemeralWritesNothing) {
  config::TlsConfig tls;
  tls.ca = config::TlsConfig::CaMode::ephemeral;
  auto a = CertAuthority::from_config(tls);
  auto b = CertAuthority::from_config(tls);
  ASSERT_TRUE(a && b);
  EXPECT_EQ((*a)->source(), CertAuthority::Source::ephemeral);
  EXPECT_NE((*a)->sha256_fingerprint(), (*b)->sha256_fingerprint());  // fresh per gateway
  EXPECT_FALSE(exists(root_ + "/data"));
}

// --- user-supplied CAs: every bad input ------------------------------------------------------

class UserCa : public TempHome {
 protected:
  // Writes the pair and loads it through from_config (tls.ca_cert / tls.ca_key).
  Result<std::unique_ptr<CertAuthority>, config::UserError> load_pair(const std::string& cert, const std::string& key) {
    write_file(cert_, cert, 0644);
    write_file(key_, key, 0600);
    config::TlsConfig tls;
    tls.ca_cert = cert_;
    tls.ca_key = key_;
    return CertAuthority::from_config(tls);
  }
  std::string cert_ = "/tmp/x", key_ = "/tmp/y";
  void SetUp() override {
    TempHome::SetUp();
    cert_ = root_ + "/user.crt";
    key_ = root_ + "/user.key";
  }
};

TEST_F(UserCa, GoodPairsLoad) {
  for (const char* curve : {"P-256", "P-384"}) {
    auto k = ec_key(curve);
    auto c = make_cert(k.get());
    auto r = load_pair(cert_pem(c.get()), key_pem(k.get()));
    ASSERT_TRUE(r) << curve << ": " << r.error().format();
    EXPECT_EQ((*r)->source(), CertAuthority::Source::user);
    EXPECT_EQ((*r)->cert_path(), cert_);
    EXPECT_EQ((*r)->sign_digest(), std::string_view(curve) == "P-384" ? EVP_sha384() : EVP_sha256());
  }
  auto rsa = rsa_key(2048);
  auto c = make_cert(rsa.get(), {.ku = nullptr});  // no keyUsage at all: every usage allowed
  auto r = load_pair(cert_pem(c.get()), key_pem(rsa.get()));
  ASSERT_TRUE(r) << r.error().format();
  EXPECT_FALSE(exists(root_ + "/data"));  // the persistent store is not touched
}

TEST_F(UserCa, OnlyOneOfThePair) {
  config::TlsConfig tls;
  tls.ca_cert = "/some/ca.crt";
  auto r = CertAuthority::from_config(tls);
  expect_error(r, "tls.ca_key", "both or neither");
  tls.ca_cert.clear();
  tls.ca_key = "/some/ca.key";
  expect_error(CertAuthority::from_config(tls), "tls.ca_cert", "both or neither");
}

TEST_F(UserCa, MissingUnreadableAndNonRegularFiles) {
  config::TlsConfig tls;
  tls.ca_cert = root_ + "/nope.crt";
  tls.ca_key = key_;
  expect_error(CertAuthority::from_config(tls), tls.ca_cert, "No such file or directory");
  auto k = ec_key("P-256");
  write_file(cert_, cert_pem(make_cert(k.get()).get()));
  tls.ca_cert = cert_;
  tls.ca_key = root_;  // a directory
  expect_error(CertAuthority::from_config(tls), root_, "is a directory");
  tls.ca_key = "/dev/null";
  expect_error(CertAuthority::from_config(tls), "/dev/null", "not a regular file");
  write_file(key_, std::string(kCaFileMax + 1, 'A'));
  tls.ca_key = key_;
  expect_error(CertAuthority::from_config(tls), key_, "larger than 1 MiB");
}

TEST_F(UserCa, ParseFailures) {
  auto k = ec_key("P-256");
  auto c = make_cert(k.get());
  expect_error(load_pair("not a certificate\n", key_pem(k.get())), cert_, "not a PEM certificate");
  expect_error(load_pair("", key_pem(k.get())), cert_, "not a PEM certificate");
  std::string pem = cert_pem(c.get());
  pem[40] = pem[40] == 'A' ? 'B' : 'A';  // a damaged base64 body
  pem.erase(60, 20);
  expect_error(load_pair(pem, key_pem(k.get())), cert_, "not a PEM certificate");
  expect_error(load_pair(cert_pem(c.get()), "garbage"), key_, "not a PEM private key");
  expect_error(load_pair(cert_pem(c.get()), cert_pem(c.get())), key_, "not a PEM private key");
}

TEST_F(UserCa, EncryptedKeyIsRefusedWithoutPrompting) {
  auto k = ec_key("P-256");
  auto r = load_pair(cert_pem(make_cert(k.get()).get()), key_pem(k.get(), /*encrypted=*/true));
  expect_error(r, key_, "encrypted");
}

TEST_F(UserCa, KeyMustMatch) {
  auto k = ec_key("P-256"), other = ec_key("P-256");
  auto r = load_pair(cert_pem(make_cert(k.get()).get()), key_pem(other.get()));
  expect_error(r, key_, "does not match the certificate " + cert_);
}

// A key file whose private half does not belong to its public half (what fuzz/ca_pem found
// by flipping a bit): the public keys match, but its signatures would never verify.
TEST_F(UserCa, DamagedPrivateHalfIsAMismatch) {
  auto a = ec_key("P-256"), b = ec_key("P-256");
  BIGNUM* priv = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(a.get(), OSSL_PKEY_PARAM_PRIV_KEY, &priv), 1);
  unsigned char pub[128];
  size_t pub_len = 0;
  ASSERT_EQ(EVP_PKEY_get_octet_string_param(b.get(), OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &pub_len), 1);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* mixed = nullptr;
  ASSERT_EQ(EVP_PKEY_fromdata_init(ctx.get()), 1);
  ASSERT_EQ(EVP_PKEY_fromdata(ctx.get(), &mixed, EVP_PKEY_KEYPAIR, params), 1);
  EvpPkeyPtr mixed_key(mixed);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_clear_free(priv);
  auto r = load_pair(cert_pem(make_cert(b.get()).get()), key_pem(mixed_key.get()));
  expect_error(r, key_, "signatures do not verify");
}

TEST_F(UserCa, MustBeACaWithKeyCertSign) {
  auto k = ec_key("P-256");
  expect_error(load_pair(cert_pem(make_cert(k.get(), {.bc = "critical,CA:FALSE"}).get()), key_pem(k.get())), cert_,
               "not a CA certificate");
  expect_error(load_pair(cert_pem(make_cert(k.get(), {.bc = nullptr}).get()), key_pem(k.get())), cert_,
               "not a CA certificate");
  expect_error(load_pair(cert_pem(make_cert(k.get(), {.ku = "critical,digitalSignature"}).get()), key_pem(k.get())),
               cert_, "keyCertSign");
}

TEST_F(UserCa, KeyTypesAndSizes) {
  auto rsa1024 = rsa_key(1024);
  expect_error(load_pair(cert_pem(make_cert(rsa1024.get()).get()), key_pem(rsa1024.get())), key_,
               "RSA key of 1024 bits");
  auto p521 = ec_key("P-521");
  expect_error(load_pair(cert_pem(make_cert(p521.get()).get()), key_pem(p521.get())), key_, "secp521r1");
  auto k1 = ec_key("secp256k1");
  expect_error(load_pair(cert_pem(make_cert(k1.get()).get()), key_pem(k1.get())), key_, "P-256 or P-384 needed");
  auto ed = ed25519_key();
  ASSERT_TRUE(ed);
  expect_error(load_pair(cert_pem(make_cert(ed.get()).get()), key_pem(ed.get())), key_, "ED25519 key");
}

TEST_F(UserCa, ExpiredCaIsRefused) {
  auto k = ec_key("P-256");
  auto c = make_cert(k.get(), {.not_after_days = -1, .not_before_days = -30});
  expect_error(load_pair(cert_pem(c.get()), key_pem(k.get())), cert_, "has expired");
}

TEST_F(UserCa, NotYetValidOrEmptyValidityIsRefused) {
  auto k = ec_key("P-256");
  auto future = make_cert(k.get(), {.not_after_days = 30, .not_before_days = 2});
  expect_error(load_pair(cert_pem(future.get()), key_pem(k.get())), cert_, "not valid yet");
  auto empty = make_cert(k.get(), {.not_after_days = 3, .not_before_days = 5});
  expect_error(load_pair(cert_pem(empty.get()), key_pem(k.get())), cert_, "empty validity period");
}

TEST(CaFromPem, ErrorsUseTheGivenNames) {
  auto r = CertAuthority::from_pem("x", "y", "tls.ca_cert /a", "tls.ca_key /b");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().where, "tls.ca_cert /a");
}

}  // namespace
}  // namespace moat::tls
