// LeafCache (R-TLS-3): every field of a minted leaf parsed back with OpenSSL, IP-SAN leaves,
// the LRU bound, re-minting near expiry, invalid names and the memory charge.
#include "tls/leaf.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <chrono>

namespace moat::tls {
namespace {

using namespace std::chrono_literals;

std::time_t asn1_time(const ASN1_TIME* t) {
  struct tm tm {};
  EXPECT_EQ(ASN1_TIME_to_tm(t, &tm), 1);
  return timegm(&tm);
}

class LeafTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = CertAuthority::generate();
    ASSERT_TRUE(ca) << ca.error().format();
    ca_ = std::move(*ca);
  }
  std::unique_ptr<LeafCache> make(config::TlsConfig tls = {}, MemoryBudget* budget = nullptr,
                                  Counters* counters = nullptr) {
    auto c = LeafCache::create(*ca_, tls, budget, counters);
    EXPECT_TRUE(c);
    return c ? std::move(*c) : nullptr;
  }
  std::unique_ptr<CertAuthority> ca_;
  IpAddr dst_ = Ipv4Addr::from_octets(93, 184, 216, 34);
};

// A leaf verifies against the CA as a TLS server certificate for its name.
bool verifies(X509* leaf, X509* ca, const char* host, const char* ip = nullptr) {
  Handle<X509_STORE, &X509_STORE_free> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca);
  Handle<X509_STORE_CTX, &X509_STORE_CTX_free> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  X509_VERIFY_PARAM* p = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
  if (host) X509_VERIFY_PARAM_set1_host(p, host, 0);
  if (ip) X509_VERIFY_PARAM_set1_ip_asc(p, ip);
  return X509_verify_cert(ctx.get()) == 1;
}

TEST_F(LeafTest, DnsLeafHasEveryFieldOfRTls3) {
  config::TlsConfig tls;
  auto cache = make(tls);
  std::time_t now = std::time(nullptr);
  auto leaf = cache->get_at("Example.COM", dst_, now);
  ASSERT_TRUE(leaf);
  X509* x = leaf->get();

  EXPECT_EQ(X509_get_version(x), X509_VERSION_3);
  // Random 128-bit positive serial.
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr));
  EXPECT_EQ(BN_num_bytes(serial.get()), 16);
  EXPECT_FALSE(BN_is_negative(serial.get()));
  // CN = the (lowercased) SNI; issuer = the CA's subject.
  char cn[128] = {};
  ASSERT_GT(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn), 0);
  EXPECT_STREQ(cn, "example.com");
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca_->cert())), 0);
  // Validity: backdated 1 h (but not before the CA), 24 h ahead.
  EXPECT_EQ(asn1_time(X509_get0_notBefore(x)), std::max(now - 3600, ca_->not_before()));
  EXPECT_EQ(asn1_time(X509_get0_notAfter(x)), now + 24 * 3600);
  // SAN = dNSName(sni), not critical (there is a CN).
  int crit = -1;
  GeneralNamesPtr san(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, &crit, nullptr)));
  ASSERT_TRUE(san);
  EXPECT_EQ(crit, 0);
  ASSERT_EQ(sk_GENERAL_NAME_num(san.get()), 1);
  GENERAL_NAME* g = sk_GENERAL_NAME_value(san.get(), 0);
  ASSERT_EQ(g->type, GEN_DNS);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                        size_t(ASN1_STRING_length(g->d.dNSName))),
            "example.com");
  // keyUsage critical digitalSignature only.
  Handle<ASN1_BIT_STRING, &ASN1_BIT_STRING_free> ku(
      static_cast<ASN1_BIT_STRING*>(X509_get_ext_d2i(x, NID_key_usage, &crit, nullptr)));
  ASSERT_TRUE(ku);
  EXPECT_EQ(crit, 1);
  EXPECT_EQ(X509_get_key_usage(x), uint32_t(KU_DIGITAL_SIGNATURE));
  // EKU serverAuth only.
  EXPECT_EQ(X509_get_extended_key_usage(x), uint32_t(XKU_SSL_SERVER));
  // basicConstraints CA:FALSE.
  Handle<BASIC_CONSTRAINTS, &BASIC_CONSTRAINTS_free> bc(
      static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(x, NID_basic_constraints, &crit, nullptr)));
  ASSERT_TRUE(bc);
  EXPECT_FALSE(bc->ca);
  EXPECT_EQ(X509_check_ca(x), 0);
  // AKI = the CA's SKI.
  const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(x);
  ASSERT_NE(akid, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(akid, X509_get0_subject_key_id(ca_->cert())), 0);
  // The leaf key is the gateway's P-256 key; the signature is the CA's.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(x), cache->leaf_key()), 1);
  EXPECT_EQ(EVP_PKEY_get_bits(cache->leaf_key()), 256);
  EXPECT_EQ(X509_verify(x, ca_->key()), 1);
  EXPECT_TRUE(verifies(x, ca_->cert(), "example.com"));
  EXPECT_FALSE(verifies(x, ca_->cert(), "other.example"));
}

TEST_F(LeafTest, IpLeafForAConnectionWithoutSni) {
  auto cache = make();
  auto leaf = cache->get("", dst_);
  ASSERT_TRUE(leaf);
  GeneralNamesPtr san(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf->get(), NID_subject_alt_name, nullptr, nullptr)));
  ASSERT_TRUE(san);
  GENERAL_NAME* g = sk_GENERAL_NAME_value(san.get(), 0);
  ASSERT_EQ(g->type, GEN_IPADD);
  ASSERT_EQ(ASN1_STRING_length(g->d.iPAddress), 4);
  const unsigned char want[] = {93, 184, 216, 34};
  EXPECT_EQ(std::memcmp(ASN1_STRING_get0_data(g->d.iPAddress), want, 4), 0);
  EXPECT_TRUE(verifies(leaf->get(), ca_->cert(), nullptr, "93.184.216.34"));

  IpAddr v6 = *IpAddr::parse("2001:db8::1");
  auto leaf6 = cache->get("", v6);
  ASSERT_TRUE(leaf6);
  EXPECT_TRUE(verifies(leaf6->get(), ca_->cert(), nullptr, "2001:db8::1"));
  EXPECT_FALSE(verifies(leaf6->get(), ca_->cert(), nullptr, "2001:db8::2"));
  EXPECT_EQ(cache->size(), 2u);
  EXPECT_EQ(cache->stats().minted, 2u);
}

TEST_F(LeafTest, InvalidSniFailsThatCallOnlyAndIsNeverCached) {
  Counters counters;
  auto cache = make({}, nullptr, &counters);
  for (std::string_view bad : {"*.example.com", "a..b", "trailing.", ".lead", "sp ace", "bad\x01name",
                               "\xc3\xa9t\xc3\xa9.fr"}) {
    auto leaf = cache->get(bad, dst_);
    ASSERT_FALSE(leaf) << bad;
    EXPECT_EQ(leaf.error().kind, LeafError::Kind::invalid_name);
  }
  std::string long_label(64, 'a');
  EXPECT_FALSE(cache->get(long_label + ".com", dst_));
  std::string long_name;
  for (int i = 0; i < 51; ++i) long_name += "abcd.";
  long_name += "com";  // 258 characters: one label too many
  EXPECT_GT(long_name.size(), 253u);
  EXPECT_FALSE(cache->get(long_name, dst_));
  EXPECT_EQ(cache->size(), 0u);
  EXPECT_EQ(counters.get(Counter::tls_leaf_mint_failed), 9u);
  // A good name right after works.
  EXPECT_TRUE(cache->get("ok.example", dst_));
  EXPECT_EQ(cache->size(), 1u);
}

TEST_F(LeafTest, LongNameHasNoCnAndACriticalSan) {
  auto cache = make();
  std::string name = std::string(60, 'a') + ".example.com";  // 72 > 64
  auto leaf = cache->get(name, dst_);
  ASSERT_TRUE(leaf);
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf->get())), 0);
  int crit = -1;
  GeneralNamesPtr san(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf->get(), NID_subject_alt_name, &crit, nullptr)));
  EXPECT_EQ(crit, 1);
  EXPECT_TRUE(verifies(leaf->get(), ca_->cert(), name.c_str()));
}

TEST_F(LeafTest, CacheHitReturnsTheSameLeafCaseInsensitively) {
  Counters counters;
  auto cache = make({}, nullptr, &counters);
  auto a = cache->get("api.example.com", dst_);
  auto b = cache->get("API.example.com", dst_);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(cache->stats().hits, 1u);
  EXPECT_EQ(counters.get(Counter::tls_leaf_cache_hits), 1u);
  EXPECT_EQ(counters.get(Counter::tls_leaf_minted), 1u);
}

TEST_F(LeafTest, LruIsBoundedAndEvictsTheLeastRecentlyUsed) {
  config::TlsConfig tls;
  tls.leaf_cache = 3;
  Counters counters;
  auto cache = make(tls, nullptr, &counters);
  auto a = cache->get("a.test", dst_);
  ASSERT_TRUE(a);
  ASSERT_TRUE(cache->get("b.test", dst_));
  ASSERT_TRUE(cache->get("c.test", dst_));
  ASSERT_TRUE(cache->get("a.test", dst_));  // a is now the most recent
  ASSERT_TRUE(cache->get("d.test", dst_));  // evicts b
  EXPECT_EQ(cache->size(), 3u);
  EXPECT_EQ(cache->stats().evicted, 1u);
  EXPECT_EQ(counters.get(Counter::tls_leaf_cache_size), 3u);
  uint64_t minted = cache->stats().minted;
  ASSERT_TRUE(cache->get("a.test", dst_));
  EXPECT_EQ(cache->stats().minted, minted);  // still cached
  ASSERT_TRUE(cache->get("b.test", dst_));
  EXPECT_EQ(cache->stats().minted, minted + 1);  // was evicted
  // The evicted leaf handed out earlier is still a valid object (reference counted).
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(cache->get("n" + std::to_string(i) + ".test", dst_));
  EXPECT_EQ(cache->size(), 3u);
  EXPECT_TRUE(verifies(a->get(), ca_->cert(), "a.test"));
}

TEST_F(LeafTest, ReMintsWhenLessThanAnHourRemains) {
  config::TlsConfig tls;
  tls.leaf_validity = 2h;
  auto cache = make(tls);
  std::time_t t0 = std::time(nullptr);
  auto first = cache->get_at("r.test", dst_, t0);
  ASSERT_TRUE(first);
  auto hit = cache->get_at("r.test", dst_, t0 + 3599);  // 3601 s left: still good
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->get(), first->get());
  auto again = cache->get_at("r.test", dst_, t0 + 3601);  // 3599 s left: re-mint
  ASSERT_TRUE(again);
  EXPECT_NE(again->get(), first->get());
  EXPECT_EQ(cache->stats().reminted, 1u);
  EXPECT_EQ(cache->size(), 1u);
  EXPECT_EQ(asn1_time(X509_get0_notAfter(again->get())), t0 + 3601 + 7200);
}

TEST_F(LeafTest, NotAfterIsClampedToTheCa) {
  config::TlsConfig tls;
  auto cache = make(tls);
  std::time_t late = ca_->not_after() - 5 * 3600;  // 5 h before the CA expires
  auto leaf = cache->get_at("late.test", dst_, late);
  ASSERT_TRUE(leaf);
  EXPECT_EQ(asn1_time(X509_get0_notAfter(leaf->get())), ca_->not_after());
  // After the CA's end nothing can be minted, and nothing is cached.
  auto none = cache->get_at("after.test", dst_, ca_->not_after() + 1);
  EXPECT_FALSE(none);
  EXPECT_EQ(cache->size(), 1u);
}

TEST_F(LeafTest, ChargesTheBudgetAndEvictsUnderIt) {
  MemoryBudget budget(0);
  {
    auto cache = make({}, &budget);
    ASSERT_TRUE(cache->get("one.test", dst_));
    EXPECT_GT(budget.used(), LeafCache::kEntryOverhead);
    EXPECT_EQ(budget.used(), cache->charged());
  }
  EXPECT_EQ(budget.used(), 0u);  // released with the cache

  // A budget that holds about two leaves: the cache stays within it, the oldest go first.
  MemoryBudget small(3 * (LeafCache::kEntryOverhead + 800));
  auto cache = make({}, &small);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(cache->get("n" + std::to_string(i) + ".test", dst_));
  EXPECT_LT(small.used(), small.limit());
  EXPECT_LE(cache->size(), 3u);
  EXPECT_GE(cache->size(), 1u);
  // A budget too small for even one leaf: leaves are still served, uncached.
  MemoryBudget tiny(100);
  auto none = make({}, &tiny);
  ASSERT_TRUE(none->get("x.test", dst_));
  EXPECT_EQ(none->size(), 0u);
  EXPECT_EQ(none->stats().uncached, 1u);
  EXPECT_EQ(tiny.used(), 0u);
}

TEST_F(LeafTest, InstallsLeafKeyAndChainOnAnSsl) {
  auto cache = make();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  SslPtr ssl(SSL_new(ctx.get()));
  ASSERT_TRUE(cache->install(ssl.get(), "chain.test", dst_));
  X509* cert = SSL_get_certificate(ssl.get());
  ASSERT_NE(cert, nullptr);
  EXPECT_TRUE(verifies(cert, ca_->cert(), "chain.test"));
  EXPECT_EQ(EVP_PKEY_eq(SSL_get_privatekey(ssl.get()), cache->leaf_key()), 1);
  STACK_OF(X509)* chain = nullptr;
  ASSERT_EQ(SSL_get0_chain_certs(ssl.get(), &chain), 1);
  ASSERT_EQ(sk_X509_num(chain), 1);
  EXPECT_EQ(X509_cmp(sk_X509_value(chain, 0), ca_->cert()), 0);
  // An invalid name installs nothing and says why.
  SslPtr ssl2(SSL_new(ctx.get()));
  auto bad = cache->install(ssl2.get(), "bad name", dst_);
  ASSERT_FALSE(bad);
  EXPECT_EQ(SSL_get_certificate(ssl2.get()), nullptr);
}

// A real handshake in memory: an OpenSSL client that trusts only the CA verifies the chain
// moat serves (leaf + CA) for the SNI, or for the address without SNI, in TLS 1.3 and 1.2;
// the server picks the leaf in its servername callback, as the interceptor does.
struct HandshakeResult {
  bool done = false;
  long verify = -1;
  std::string server_error;
};

HandshakeResult handshake(LeafCache& cache, const CertAuthority& ca, const char* sni, const char* expect_host,
                          const char* expect_ip, int version) {
  struct Ctx {
    LeafCache* cache;
    IpAddr dst;
    std::string error;
  } sctx{&cache, Ipv4Addr::from_octets(93, 184, 216, 34), {}};
  SslCtxPtr server_ctx(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_set_min_proto_version(server_ctx.get(), version);
  SSL_CTX_set_max_proto_version(server_ctx.get(), version);
  SSL_CTX_set_tlsext_servername_arg(server_ctx.get(), &sctx);
  SSL_CTX_set_tlsext_servername_callback(server_ctx.get(), +[](SSL* ssl, int*, void* arg) -> int {
    auto* c = static_cast<Ctx*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    auto r = c->cache->install(ssl, name ? name : "", c->dst);
    if (!r) c->error = r.error().detail;
    return r ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_ALERT_FATAL;
  });
  SslCtxPtr client_ctx(SSL_CTX_new(TLS_client_method()));
  X509_STORE_add_cert(SSL_CTX_get_cert_store(client_ctx.get()), ca.cert());
  SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_PEER, nullptr);
  SslPtr server(SSL_new(server_ctx.get())), client(SSL_new(client_ctx.get()));
  if (sni) SSL_set_tlsext_host_name(client.get(), sni);
  X509_VERIFY_PARAM* vp = SSL_get0_param(client.get());
  if (expect_host) X509_VERIFY_PARAM_set1_host(vp, expect_host, 0);
  if (expect_ip) X509_VERIFY_PARAM_set1_ip_asc(vp, expect_ip);
  BIO *bc = nullptr, *bs = nullptr;
  BIO_new_bio_pair(&bc, 0, &bs, 0);
  SSL_set_bio(client.get(), bc, bc);
  SSL_set_bio(server.get(), bs, bs);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  HandshakeResult res;
  for (int i = 0; i < 20 && !res.done; ++i) {
    int a = SSL_do_handshake(client.get()), b = SSL_do_handshake(server.get());
    res.done = a == 1 && b == 1;
    if ((a <= 0 && SSL_get_error(client.get(), a) == SSL_ERROR_SSL) ||
        (b <= 0 && SSL_get_error(server.get(), b) == SSL_ERROR_SSL))
      break;
  }
  ERR_clear_error();
  res.verify = SSL_get_verify_result(client.get());
  res.server_error = sctx.error;
  return res;
}

TEST_F(LeafTest, RealHandshakeVerifiesAgainstTheCa) {
  auto cache = make();
  for (int v : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    auto r = handshake(*cache, *ca_, "api.example.com", "api.example.com", nullptr, v);
    EXPECT_TRUE(r.done) << v << " " << r.server_error;
    EXPECT_EQ(r.verify, X509_V_OK) << X509_verify_cert_error_string(r.verify);
    // No SNI: the IP-SAN leaf for the destination.
    auto ip = handshake(*cache, *ca_, nullptr, nullptr, "93.184.216.34", v);
    EXPECT_TRUE(ip.done) << v << " " << ip.server_error;
    EXPECT_EQ(ip.verify, X509_V_OK) << X509_verify_cert_error_string(ip.verify);
  }
  // A client expecting another name rejects the leaf (it names only the SNI).
  auto wrong = handshake(*cache, *ca_, "api.example.com", "evil.example", nullptr, TLS1_3_VERSION);
  EXPECT_FALSE(wrong.done);
  EXPECT_EQ(wrong.verify, X509_V_ERR_HOSTNAME_MISMATCH);
  // An SNI that cannot be minted fails that handshake only.
  auto bad = handshake(*cache, *ca_, "bad_name..example", nullptr, nullptr, TLS1_3_VERSION);
  EXPECT_FALSE(bad.done);
  EXPECT_FALSE(bad.server_error.empty());
  auto after = handshake(*cache, *ca_, "api.example.com", "api.example.com", nullptr, TLS1_3_VERSION);
  EXPECT_TRUE(after.done);
}

}  // namespace
}  // namespace moat::tls
