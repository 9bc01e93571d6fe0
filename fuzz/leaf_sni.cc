// Fuzz target: leaf minting for a guest's SNI (R-TLS-3). The SNI comes from the guest's
// ClientHello, so any bytes must either mint a leaf naming exactly that (lowercased) name or
// address, or fail that call only; a failure is never cached and the LRU stays bounded.
// The input is a sequence of SNIs separated by NUL bytes, fed to one cache of 4 leaves.
#include <openssl/x509v3.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"
#include "tls/ca.h"
#include "tls/leaf.h"

namespace {

struct Fixture {
  std::unique_ptr<moat::tls::CertAuthority> ca;
  std::unique_ptr<moat::tls::LeafCache> cache;
  moat::MemoryBudget budget{0};
};

Fixture& fixture() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    auto ca = moat::tls::CertAuthority::generate();
    if (!ca) __builtin_trap();
    fx->ca = std::move(*ca);
    moat::config::TlsConfig tls;
    tls.leaf_cache = 4;
    auto c = moat::tls::LeafCache::create(*fx->ca, tls, &fx->budget);
    if (!c) __builtin_trap();
    fx->cache = std::move(*c);
    return fx;
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = fixture();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const moat::IpAddr dst = moat::Ipv4Addr::from_octets(198, 51, 100, 7);
  for (int n = 0; n < 8 && !in.empty(); ++n) {
    size_t nul = in.find('\0');
    std::string_view sni = in.substr(0, nul);
    in = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
    size_t before = f.cache->size();
    auto leaf = f.cache->get(sni, dst);
    if (!leaf) {
      if (f.cache->size() != before) __builtin_trap();  // never cached
      continue;
    }
    std::string want(sni);
    for (char& c : want) c = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    X509* x = leaf->get();
    if (sni.empty() || moat::IpAddr::parse(want)) {
      std::string ip = sni.empty() ? dst.to_string() : moat::IpAddr::parse(want)->to_string();
      if (X509_check_ip_asc(x, ip.c_str(), 0) != 1) __builtin_trap();
    } else {
      if (!moat::tls::is_mintable_hostname(want)) __builtin_trap();
      if (X509_check_host(x, want.data(), want.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr) != 1)
        __builtin_trap();
    }
    if (f.cache->size() > 4) __builtin_trap();
    if (f.budget.used() != f.cache->charged()) __builtin_trap();
  }
  return 0;
}
