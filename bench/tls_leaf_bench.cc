// R-TLS-3 on the handshake path: what a new name costs (one mint: a certificate signed by
// the CA key) against a cache hit, for the generated P-256 CA and a user RSA-2048 CA, and the
// full SSL install (leaf + key + chain on an SSL) a guest handshake pays.
//   build/bench/bench_tls_leaf [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <openssl/pem.h>

#include <string>

#include "tls/ca.h"
#include "tls/leaf.h"

namespace moat::tls {
namespace {

const IpAddr kDst = Ipv4Addr::from_octets(93, 184, 216, 34);

std::unique_ptr<CertAuthority> p256_ca() { return std::move(*CertAuthority::generate()); }

// A user-supplied RSA-2048 CA (made here with the same OpenSSL calls a user's tool would).
std::unique_ptr<CertAuthority> rsa_ca() {
  EvpPkeyPtr key(EVP_RSA_gen(2048));
  X509Ptr x(X509_new());
  X509_set_version(x.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_NAME* n = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("bench RSA CA"), -1, -1, 0);
  X509_set_issuer_name(x.get(), n);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400L * 365);
  X509_set_pubkey(x.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  X509ExtensionPtr bc(X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, "critical,CA:TRUE"));
  X509_add_ext(x.get(), bc.get(), -1);
  X509_sign(x.get(), key.get(), EVP_sha256());
  auto pem = [](auto write) {
    BioPtr b(BIO_new(BIO_s_mem()));
    write(b.get());
    char* d = nullptr;
    long len = BIO_get_mem_data(b.get(), &d);
    return std::string(d, size_t(len));
  };
  std::string c = pem([&](BIO* b) { PEM_write_bio_X509(b, x.get()); });
  std::string k = pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
  return std::move(*CertAuthority::from_pem(c, k, "rsa.crt", "rsa.key"));
}

// Every iteration a name the cache has not seen: a mint (and an LRU insert/evict).
void mint(benchmark::State& state, std::unique_ptr<CertAuthority> ca) {
  config::TlsConfig tls;
  auto cache = std::move(*LeafCache::create(*ca, tls));
  uint64_t i = 0;
  for (auto _ : state) {
    auto leaf = cache->get("host" + std::to_string(i++) + ".example.com", kDst);
    if (!leaf) state.SkipWithError("mint failed");
    benchmark::DoNotOptimize(leaf);
  }
  state.counters["mints/s"] = benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
}
void BM_MintP256Ca(benchmark::State& s) { mint(s, p256_ca()); }
void BM_MintRsa2048Ca(benchmark::State& s) { mint(s, rsa_ca()); }
BENCHMARK(BM_MintP256Ca);
BENCHMARK(BM_MintRsa2048Ca);

// The same name again and again: the cache hit of every connection after the first.
void BM_CacheHit(benchmark::State& state) {
  auto ca = p256_ca();
  config::TlsConfig tls;
  auto cache = std::move(*LeafCache::create(*ca, tls));
  (void)cache->get("api.example.com", kDst);
  for (auto _ : state) {
    auto leaf = cache->get("api.example.com", kDst);
    benchmark::DoNotOptimize(leaf);
  }
}
BENCHMARK(BM_CacheHit);

// A full cache (1000 names) hit in LRU order: hashing and list splicing at the default size.
void BM_CacheHitFull(benchmark::State& state) {
  auto ca = p256_ca();
  config::TlsConfig tls;
  auto cache = std::move(*LeafCache::create(*ca, tls));
  std::vector<std::string> names;
  for (int i = 0; i < 1000; ++i) names.push_back("n" + std::to_string(i) + ".example.com");
  for (auto& n : names) (void)cache->get(n, kDst);
  size_t i = 0;
  for (auto _ : state) {
    auto leaf = cache->get(names[i++ % names.size()], kDst);
    benchmark::DoNotOptimize(leaf);
  }
}
BENCHMARK(BM_CacheHitFull);

// What the SNI callback does per guest handshake on a hit: leaf + key + chain on an SSL.
void BM_InstallOnSsl(benchmark::State& state) {
  auto ca = p256_ca();
  config::TlsConfig tls;
  auto cache = std::move(*LeafCache::create(*ca, tls));
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  (void)cache->get("api.example.com", kDst);
  for (auto _ : state) {
    state.PauseTiming();
    SslPtr ssl(SSL_new(ctx.get()));
    state.ResumeTiming();
    auto r = cache->install(ssl.get(), "api.example.com", kDst);
    if (!r) state.SkipWithError("install failed");
  }
}
BENCHMARK(BM_InstallOnSsl);

}  // namespace
}  // namespace moat::tls
