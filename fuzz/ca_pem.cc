// Fuzz target: loading a CA pair (R-TLS-2): the bytes are a certificate file and a key file,
// split at the first NUL (no NUL: the same bytes for both). CertAuthority::from_pem() is
// what load() runs on the files' text after the bounded read.
// Invariants: no crash or leak; a success is really a usable CA: a CA certificate whose key
// matches, which can then mint a leaf that verifies against it.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "config/config.h"
#include "tls/ca.h"
#include "tls/leaf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  std::string_view cert = in.substr(0, nul), key = nul == std::string_view::npos ? in : in.substr(nul + 1);
  auto ca = moat::tls::CertAuthority::from_pem(cert, key, "ca.crt", "ca.key");
  if (!ca) {
    if (ca.error().where != "ca.crt" && ca.error().where != "ca.key") __builtin_trap();
    if (ca.error().what.empty()) __builtin_trap();
    return 0;
  }
  X509* x = (*ca)->cert();
  if (X509_check_ca(x) != 1 || X509_check_private_key(x, (*ca)->key()) != 1) __builtin_trap();
  if ((*ca)->pem().empty() || (*ca)->not_after() <= (*ca)->not_before()) __builtin_trap();
  moat::config::TlsConfig tls;
  tls.leaf_cache = 2;
  auto cache = moat::tls::LeafCache::create(**ca, tls);
  if (!cache) return 0;  // e.g. a CA whose name cannot be copied: refused, not crashed
  auto leaf = (*cache)->get("fuzz.example", moat::Ipv4Addr::from_octets(192, 0, 2, 1));
  if (leaf && X509_verify(leaf->get(), (*ca)->key()) != 1) __builtin_trap();
  return 0;
}
