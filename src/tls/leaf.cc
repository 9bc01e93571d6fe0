// EVP_PKEY_get1_EC_KEY/EVP_PKEY_assign_EC_KEY are deprecated in OpenSSL 3.0, and used once,
// at construction, on purpose: see legacy_method_key() below.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tls/leaf.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

namespace moat::tls {

namespace {

Unexpected<LeafError> openssl_fail(const char* what) {
  std::string r = openssl_error_text();
  return unexpected(LeafError{LeafError::Kind::openssl, r.empty() ? std::string(what) : std::string(what) + ": " + r});
}

X509ExtensionPtr conf_ext(int nid, const char* value) {
  return X509ExtensionPtr(X509V3_EXT_conf_nid(nullptr, nullptr, nid, value));
}

// AKI = keyIdentifier of the CA: its SKI, or (a user CA without SKI) the SHA-1 of its
// public key, which is how RFC 5280 §4.2.1.2 method (1) derives one.
X509ExtensionPtr make_aki(X509* ca) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  const unsigned char* id = nullptr;
  int id_len = 0;
  if (const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(ca)) {
    id = ASN1_STRING_get0_data(ski);
    id_len = ASN1_STRING_length(ski);
  } else if (X509_pubkey_digest(ca, EVP_sha1(), md, &n) == 1) {
    id = md;
    id_len = int(n);
  }
  if (!id) return nullptr;
  AUTHORITY_KEYID* akid = AUTHORITY_KEYID_new();
  if (!akid) return nullptr;
  akid->keyid = ASN1_OCTET_STRING_new();
  X509ExtensionPtr ext;
  if (akid->keyid && ASN1_OCTET_STRING_set(akid->keyid, id, id_len) == 1)
    ext.reset(X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid));
  AUTHORITY_KEYID_free(akid);
  return ext;
}

bool set_random_serial(X509* x) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) return false;
  b[0] = static_cast<unsigned char>((b[0] & 0x7f) | 0x40);  // positive, always 16 bytes
  BignumPtr bn(BN_bin2bn(b, sizeof b, nullptr));
  return bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)) != nullptr;
}

bool add_san(X509* x, std::string_view name, bool is_ip, const IpAddr& ip, bool critical) {
  GeneralNamesPtr gens(GENERAL_NAMES_new());
  GENERAL_NAME* gen = GENERAL_NAME_new();
  if (!gens || !gen) {
    GENERAL_NAME_free(gen);
    return false;
  }
  bool ok;
  if (is_ip) {
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    unsigned char buf[16];
    int len = 4;
    if (ip.is_v6) {
      std::memcpy(buf, ip.v6.bytes.data(), 16);
      len = 16;
    } else {
      auto o = ip.v4.octets();
      std::memcpy(buf, o.data(), 4);
    }
    ok = os && ASN1_OCTET_STRING_set(os, buf, len) == 1;
    GENERAL_NAME_set0_value(gen, GEN_IPADD, os);  // takes os (even on failure, freed with gen)
  } else {
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    ok = ia5 && ASN1_STRING_set(ia5, name.data(), int(name.size())) == 1;
    GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
  }
  if (!ok || sk_GENERAL_NAME_push(gens.get(), gen) == 0) {
    GENERAL_NAME_free(gen);
    return false;
  }
  return X509_add1_ext_i2d(x, NID_subject_alt_name, gens.get(), critical ? 1 : 0, X509V3_ADD_DEFAULT) == 1;
}

// The leaf key as an EVP_PKEY with a legacy ASN.1 method. Measured with OpenSSL 3.0.x:
// X509_set_pubkey() on a provider-native key (what EVP_EC_gen returns) encodes it through
// OSSL_ENCODER and decodes the result again through OSSL_DECODER, ~200 µs of CPU per call,
// three quarters of a whole mint; on a key with a legacy method it takes the method's
// pub_encode, ~5 µs. The key material is the same (the SSL exports it to the provider once
// when it first signs with it). Null on failure.
EvpPkeyPtr legacy_method_key(EVP_PKEY* provider_key) {
  EC_KEY* ec = EVP_PKEY_get1_EC_KEY(provider_key);
  if (!ec) return nullptr;
  EvpPkeyPtr k(EVP_PKEY_new());
  if (!k || EVP_PKEY_assign_EC_KEY(k.get(), ec) != 1) {
    EC_KEY_free(ec);
    return nullptr;
  }
  return k;
}

char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

}  // namespace

bool is_mintable_hostname(std::string_view sni) noexcept {
  if (sni.empty() || sni.size() > 253) return false;
  size_t label = 0;
  for (char c : sni) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label != 0;  // no trailing dot (RFC 6066 §3: the SNI HostName has none)
}

LeafCache::LeafCache(const CertAuthority& ca, const config::TlsConfig& tls, MemoryBudget* budget, Counters* counters)
    : ca_(&ca),
      validity_(std::chrono::duration_cast<std::chrono::seconds>(tls.leaf_validity).count()),
      backdate_(std::chrono::duration_cast<std::chrono::seconds>(tls.leaf_backdate).count()),
      capacity_(tls.leaf_cache),
      budget_(budget),
      counters_(counters) {}

LeafCache::~LeafCache() {
  if (counters_) counters_->set(Counter::tls_leaf_cache_size, 0);
}

Result<std::unique_ptr<LeafCache>, LeafError> LeafCache::create(const CertAuthority& ca, const config::TlsConfig& tls,
                                                                MemoryBudget* budget, Counters* counters) {
  std::unique_ptr<LeafCache> c(new LeafCache(ca, tls, budget, counters));
  EvpPkeyPtr generated(EVP_EC_gen("P-256"));
  if (!generated) return openssl_fail("cannot generate the leaf key");
  c->leaf_key_ = legacy_method_key(generated.get());
  if (!c->leaf_key_) return openssl_fail("cannot prepare the leaf key");
  c->issuer_.reset(X509_NAME_dup(X509_get_subject_name(ca.cert())));
  c->ext_bc_ = conf_ext(NID_basic_constraints, "CA:FALSE");
  c->ext_ku_ = conf_ext(NID_key_usage, "critical,digitalSignature");
  c->ext_eku_ = conf_ext(NID_ext_key_usage, "serverAuth");
  c->ext_aki_ = make_aki(ca.cert());
  if (!c->issuer_ || !c->ext_bc_ || !c->ext_ku_ || !c->ext_eku_ || !c->ext_aki_)
    return openssl_fail("cannot prepare the leaf template");
  c->chain_.reset(sk_X509_new_null());
  if (!c->chain_) return openssl_fail("cannot allocate the chain");
  X509Ptr ca_ref = x509_ref(ca.cert());
  if (sk_X509_push(c->chain_.get(), ca_ref.get()) == 0) return openssl_fail("cannot build the chain");
  (void)ca_ref.release();  // the stack owns it now
  return c;
}

uint64_t LeafCache::charged() const noexcept {
  uint64_t n = 0;
  for (const Entry& e : lru_) n += e.charge.bytes();
  return n;
}

Result<X509Ptr, LeafError> LeafCache::mint(std::string_view name, bool is_ip, const IpAddr& ip, std::time_t now,
                                           std::time_t* not_after) {
  X509Ptr x(X509_new());
  if (!x) return openssl_fail("out of memory");
  std::time_t nb = std::max(now - backdate_, ca_->not_before());
  std::time_t na = std::min(now + validity_, ca_->not_after());
  if (na <= now) return unexpected(LeafError{LeafError::Kind::openssl, "the CA has expired"});
  // CN = the SNI when it fits X.520's 64 characters (R-TLS-3); an IP leaf's CN is the address
  // text (clients match the SAN; the CN only makes the certificate readable in a UI).
  std::string cn = is_ip ? ip.to_string() : std::string(name);
  bool has_cn = cn.size() <= 64;
  X509NamePtr subject(X509_NAME_new());
  bool ok = subject && X509_set_version(x.get(), X509_VERSION_3) == 1 && set_random_serial(x.get()) &&
            X509_set_issuer_name(x.get(), issuer_.get()) == 1 &&
            (!has_cn || X509_NAME_add_entry_by_txt(subject.get(), "CN", MBSTRING_ASC,
                                                   reinterpret_cast<const unsigned char*>(cn.data()), int(cn.size()),
                                                   -1, 0) == 1) &&
            X509_set_subject_name(x.get(), subject.get()) == 1 &&
            ASN1_TIME_set(X509_getm_notBefore(x.get()), nb) != nullptr &&
            ASN1_TIME_set(X509_getm_notAfter(x.get()), na) != nullptr &&
            X509_set_pubkey(x.get(), leaf_key_.get()) == 1 && X509_add_ext(x.get(), ext_bc_.get(), -1) == 1 &&
            X509_add_ext(x.get(), ext_ku_.get(), -1) == 1 && X509_add_ext(x.get(), ext_eku_.get(), -1) == 1 &&
            X509_add_ext(x.get(), ext_aki_.get(), -1) == 1 &&
            // An empty subject needs a critical SAN (RFC 5280 §4.2.1.6).
            add_san(x.get(), name, is_ip, ip, !has_cn) && X509_sign(x.get(), ca_->key(), ca_->sign_digest()) > 0;
  if (!ok) return openssl_fail("cannot mint the leaf");
  *not_after = na;
  return x;
}

void LeafCache::evict_oldest() {
  if (lru_.empty()) return;
  index_.erase(lru_.back().key);
  lru_.pop_back();
  ++stats_.evicted;
}

Result<X509Ptr, LeafError> LeafCache::get_at(std::string_view sni, const IpAddr& dst, std::time_t now) {
  std::string key;
  std::string name;
  IpAddr ip = dst;
  bool is_ip = sni.empty();
  if (!is_ip) {
    name.resize(sni.size());
    std::transform(sni.begin(), sni.end(), name.begin(), ascii_lower);
    if (auto lit = IpAddr::parse(name)) {
      // Not allowed by RFC 6066, but some clients send it; the leaf names that address.
      is_ip = true;
      ip = *lit;
    } else if (!is_mintable_hostname(name)) {
      ++stats_.failed;
      if (counters_) counters_->inc(Counter::tls_leaf_mint_failed);
      return unexpected(LeafError{LeafError::Kind::invalid_name, "SNI is not a hostname"});
    }
  }
  key = is_ip ? "ip:" + ip.to_string() : "dns:" + name;

  if (auto it = index_.find(key); it != index_.end()) {
    Entry& e = *it->second;
    if (e.not_after - now >= kRemintBefore) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      if (counters_) counters_->inc(Counter::tls_leaf_cache_hits);
      return x509_ref(e.cert.get());
    }
    // Less than an hour left: drop it and mint a fresh one below.
    lru_.erase(it->second);
    index_.erase(it);
    ++stats_.reminted;
  }

  std::time_t not_after = 0;
  auto cert = mint(name, is_ip, ip, now, &not_after);
  if (!cert) {
    ++stats_.failed;
    if (counters_) {
      counters_->inc(Counter::tls_leaf_mint_failed);
      counters_->set(Counter::tls_leaf_cache_size, lru_.size());  // a stale leaf may have gone
    }
    return cert;  // never cached
  }
  ++stats_.minted;
  if (counters_) counters_->inc(Counter::tls_leaf_minted);

  X509Ptr result = x509_ref(cert->get());
  if (capacity_ == 0) {
    ++stats_.uncached;
    return result;
  }
  while (lru_.size() >= capacity_) evict_oldest();
  int der = i2d_X509(cert->get(), nullptr);
  uint64_t bytes = uint64_t(der > 0 ? der : 0) + kEntryOverhead + key.size();
  MemoryCharge charge(budget_);
  while (!charge.try_resize(bytes) && !lru_.empty()) evict_oldest();
  if (charge.bytes() != bytes) {
    ++stats_.uncached;  // the budget cannot hold even one leaf: serve it uncached
  } else {
    lru_.push_front(Entry{key, std::move(*cert), not_after, std::move(charge)});
    index_.emplace(std::move(key), lru_.begin());
  }
  if (counters_) counters_->set(Counter::tls_leaf_cache_size, lru_.size());
  return result;
}

Result<void, LeafError> LeafCache::install_leaf(SSL* ssl, X509* leaf) const {
  ERR_clear_error();
  if (SSL_use_certificate(ssl, leaf) != 1 || SSL_use_PrivateKey(ssl, leaf_key_.get()) != 1 ||
      SSL_set1_chain(ssl, chain_.get()) != 1)
    return openssl_fail("cannot install the leaf");
  return {};
}

Result<void, LeafError> LeafCache::install(SSL* ssl, std::string_view sni, const IpAddr& dst) {
  auto leaf = get(sni, dst);
  if (!leaf) return unexpected(leaf.error());
  return install_leaf(ssl, leaf->get());
}

}  // namespace moat::tls
