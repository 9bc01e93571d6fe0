#pragma once
// http::Inspector — the one object a TLS session drives for an intercepted connection's
// plaintext (SPEC R-TLS-6). It picks HTTP/1 or HTTP/2 from the negotiated ALPN and forwards
// to H1Inspector or H2Inspector; see README.md for the call sequence.
#include <memory>
#include <string_view>

#include "base/memory_budget.h"
#include "http/h1_inspector.h"
#include "http/h2_inspector.h"
#include "http/http.h"

namespace moat::http {

class Inspector {
 public:
  /// `expected_authority`: the SNI, or the destination IP literal when the ClientHello had
  /// none. `alpn`: what the guest handshake selected (none = HTTP/1). `budget` may be null.
  Inspector(std::string_view expected_authority, Alpn alpn, Sink& sink, MemoryBudget* budget = nullptr);
  ~Inspector();
  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  /// Guest→upstream plaintext, any split. Results arrive through the Sink.
  Next from_guest(Bytes bytes);
  /// Upstream→guest plaintext, any split; passed through unchanged via Sink::to_guest().
  Next from_upstream(Bytes bytes);
  /// The upstream closed its side (close_notify or EOF).
  Next upstream_eof();

  [[nodiscard]] bool closing() const noexcept;
  [[nodiscard]] Alpn alpn() const noexcept { return alpn_; }
  /// Bytes held for incomplete header blocks and lines (bounded by the R-TLS-6 limits).
  [[nodiscard]] size_t held_bytes() const noexcept;

 private:
  Alpn alpn_;
  std::unique_ptr<H1Inspector> h1_;
  std::unique_ptr<H2Inspector> h2_;
};

}  // namespace moat::http
