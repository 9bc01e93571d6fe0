#pragma once
// tls::LeafCache: interception leaf certificates (SPEC R-TLS-3).
//
// One ECDSA P-256 leaf key per gateway, made at construction. get(sni, dst) returns the leaf
// for a name: SAN dNSName(SNI) and CN = SNI when it is <= 64 characters, or, when the
// ClientHello had no SNI, SAN iPAddress(dst). Leaves are signed by the CA once per new name and
// kept in an LRU of tls.leaf_cache entries; a cached leaf with less than 1 h of validity left
// is re-minted. A name that cannot be minted (not a hostname) fails only that call, and a
// failure is never cached. What the cache holds is charged to the gateway's MemoryBudget
// (R-LIM-2); under budget pressure the oldest leaves are evicted first, and a leaf that still
// does not fit is returned without being cached.
//
// Certificate fields: random 128-bit serial; issuer = CA subject; not_before = now -
// tls.leaf_backdate (never before the CA's not_before); not_after = min(now +
// tls.leaf_validity, CA not_after); keyUsage critical digitalSignature; extendedKeyUsage
// serverAuth; basicConstraints CA:FALSE; AKI = the CA's key id; SAN as above.
//
// Lifecycle: constructed during setup from a CertAuthority that outlives it; used on the
// loop thread only (no locks). Leaves handed out are reference-counted X509s, so an eviction
// never frees a certificate an SSL still uses.
#include <cstdint>
#include <ctime>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/addr.h"
#include "base/counters.h"
#include "base/memory_budget.h"
#include "base/result.h"
#include "config/config.h"
#include "tls/ca.h"
#include "tls/openssl_handles.h"

namespace moat::tls {

/// Why a leaf could not be made (the handshake that wanted it fails; nothing is cached).
struct LeafError {
  enum class Kind : uint8_t { invalid_name, openssl };
  Kind kind = Kind::invalid_name;
  std::string detail;  ///< for logs: the reason (OpenSSL's text for `openssl`)
};

/// Is `sni` a name moat mints for: 1-253 characters of LDH labels (underscores allowed, as
/// real names use them), each 1-63 long, no empty label, no trailing dot, no wildcard.
bool is_mintable_hostname(std::string_view sni) noexcept;

class LeafCache {
 public:
  /// Re-mint a cached leaf when less than this much validity remains (R-TLS-3).
  static constexpr std::time_t kRemintBefore = 3600;
  /// What one cached leaf is charged beyond its DER size: the X509 object, its decoded
  /// extensions and the LRU node (measured ~1.5 KiB with OpenSSL 3.0; rounded up).
  static constexpr uint64_t kEntryOverhead = 2048;

  /// Makes the leaf key. `ca` must outlive the cache. `budget` (may be null) is charged for
  /// what the cache holds; `counters` (may be null) gets tls.leaf_* counts.
  static Result<std::unique_ptr<LeafCache>, LeafError> create(const CertAuthority& ca, const config::TlsConfig& tls,
                                                             MemoryBudget* budget = nullptr,
                                                             Counters* counters = nullptr);
  ~LeafCache();
  LeafCache(const LeafCache&) = delete;
  LeafCache& operator=(const LeafCache&) = delete;

  /// The leaf for `sni` (lowercased; empty = none, then `dst` is used), from the cache or
  /// minted now. An SNI that is an IP literal gets an iPAddress SAN for that literal.
  Result<X509Ptr, LeafError> get(std::string_view sni, const IpAddr& dst) { return get_at(sni, dst, std::time(nullptr)); }
  /// get() at wall-clock time `now` (tests drive re-minting with it).
  Result<X509Ptr, LeafError> get_at(std::string_view sni, const IpAddr& dst, std::time_t now);

  /// Installs the leaf for (sni, dst), the leaf key and the chain (leaf + CA) on `ssl`: call
  /// it from the server's SNI / client-hello callback or before SSL_accept.
  Result<void, LeafError> install(SSL* ssl, std::string_view sni, const IpAddr& dst);
  /// Installs an already obtained leaf (from get()) with the key and the chain on `ssl`.
  Result<void, LeafError> install_leaf(SSL* ssl, X509* leaf) const;

  /// The gateway's leaf key (borrowed).
  [[nodiscard]] EVP_PKEY* leaf_key() const noexcept { return leaf_key_.get(); }
  [[nodiscard]] const CertAuthority& ca() const noexcept { return *ca_; }
  [[nodiscard]] size_t size() const noexcept { return lru_.size(); }
  [[nodiscard]] size_t capacity() const noexcept { return capacity_; }
  /// Bytes charged for the cached leaves.
  [[nodiscard]] uint64_t charged() const noexcept;

  /// Counts since construction (also mirrored into Counters when given).
  struct Stats {
    uint64_t hits = 0, minted = 0, reminted = 0, evicted = 0, failed = 0, uncached = 0;
  };
  [[nodiscard]] const Stats& stats() const noexcept { return stats_; }

 private:
  struct Entry {
    std::string key;
    X509Ptr cert;
    std::time_t not_after = 0;
    MemoryCharge charge;
  };
  LeafCache(const CertAuthority& ca, const config::TlsConfig& tls, MemoryBudget* budget, Counters* counters);
  Result<X509Ptr, LeafError> mint(std::string_view name, bool is_ip, const IpAddr& ip, std::time_t now,
                                  std::time_t* not_after);
  void evict_oldest();

  const CertAuthority* ca_;
  EvpPkeyPtr leaf_key_;
  std::time_t validity_, backdate_;
  size_t capacity_;
  MemoryBudget* budget_;
  Counters* counters_;
  X509NamePtr issuer_;
  X509ExtensionPtr ext_bc_, ext_ku_, ext_eku_, ext_aki_;  // the same in every leaf: built once
  X509StackPtr chain_;                                    // [CA], for SSL_set1_chain
  std::list<Entry> lru_;                                  // front = most recently used
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  Stats stats_;
};

}  // namespace moat::tls
