#pragma once
// RAII aliases for OpenSSL objects (STYLE "Ownership", Seastar's tls_openssl.cc): a
// unique_ptr whose deleter is the matching *_free function.
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace moat::tls {

template <class T, void (*Free)(T*)>
struct OsslDeleter {
  void operator()(T* p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T*)>
using Handle = std::unique_ptr<T, OsslDeleter<T, Free>>;

using SslCtxPtr = Handle<SSL_CTX, &SSL_CTX_free>;
using SslPtr = Handle<SSL, &SSL_free>;
using SslSessionPtr = Handle<SSL_SESSION, &SSL_SESSION_free>;
using X509Ptr = Handle<X509, &X509_free>;
using X509StorePtr = Handle<X509_STORE, &X509_STORE_free>;
using EvpPkeyPtr = Handle<EVP_PKEY, &EVP_PKEY_free>;
using BioPtr = Handle<BIO, &BIO_free_all>;

/// The first error on OpenSSL's thread queue as text ("unable to get local issuer
/// certificate"), and clears the queue; `fallback` when it is empty.
std::string openssl_error(const char* fallback = "unknown error");

}  // namespace moat::tls
