#pragma once
// unique_ptr aliases for OpenSSL objects (STYLE: Seastar's tls_openssl.cc `Handle<T, &T_free>`).
// Every OpenSSL object moat owns lives in one of these; raw pointers are borrowed views.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

namespace moat::tls {

template <class T, void (*Free)(T*)>
struct OpensslFree {
  void operator()(T* p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T*)>
using Handle = std::unique_ptr<T, OpensslFree<T, Free>>;

using X509Ptr = Handle<X509, &X509_free>;
using EvpPkeyPtr = Handle<EVP_PKEY, &EVP_PKEY_free>;
using EvpPkeyCtxPtr = Handle<EVP_PKEY_CTX, &EVP_PKEY_CTX_free>;
using BioPtr = Handle<BIO, &BIO_free_all>;
using X509ExtensionPtr = Handle<X509_EXTENSION, &X509_EXTENSION_free>;
using X509NamePtr = Handle<X509_NAME, &X509_NAME_free>;
using Asn1IntegerPtr = Handle<ASN1_INTEGER, &ASN1_INTEGER_free>;
using BignumPtr = Handle<BIGNUM, &BN_free>;
using SslCtxPtr = Handle<SSL_CTX, &SSL_CTX_free>;
using SslPtr = Handle<SSL, &SSL_free>;
using SslSessionPtr = Handle<SSL_SESSION, &SSL_SESSION_free>;
using X509StorePtr = Handle<X509_STORE, &X509_STORE_free>;

inline void x509_stack_free(STACK_OF(X509) * s) noexcept { sk_X509_pop_free(s, X509_free); }
using X509StackPtr = Handle<STACK_OF(X509), &x509_stack_free>;
inline void general_names_free(GENERAL_NAMES* s) noexcept { GENERAL_NAMES_free(s); }
using GeneralNamesPtr = Handle<GENERAL_NAMES, &general_names_free>;

/// A new reference to `x` (X509_up_ref), as an owning handle.
inline X509Ptr x509_ref(X509* x) noexcept {
  if (x) X509_up_ref(x);
  return X509Ptr(x);
}

/// The first error on OpenSSL's thread-local queue as text (empty when none), and clears
/// the queue so the next failure does not report a stale reason.
std::string openssl_error_text();
/// The first error's reason ("certificate verify failed"), and clears the queue;
/// `fallback` when the queue is empty (tls/upstream.cc).
std::string openssl_error(const char* fallback = "unknown error");

}  // namespace moat::tls
