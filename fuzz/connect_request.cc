// Fuzz target: the CONNECT request parser (guest bytes) and the proxy-answer parser (host
// bytes) of R-TLS-8, on arbitrary input. Invariants: an ok request has a head within the
// input and 16 KiB, a port > 0 and either a literal or a valid R-POL-3 name (never both);
// re-parsing just its head gives the same result; an ok answer has a code 100..999 and a
// head within the input.
#include <cstddef>
#include <cstdint>

#include "policy/rule.h"
#include "sniff/connect_request.h"
#include "sniff/sniff.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moat::http::ParseStatus;
  const moat::Bytes in(reinterpret_cast<const std::byte*>(data), size);
  const auto r = moat::http::parse_connect_request(in);
  if (r.status == ParseStatus::ok) {
    if (r.head_len == 0 || r.head_len > size || r.head_len > moat::sniff::kMaxFirstFlight) __builtin_trap();
    if (r.port == 0) __builtin_trap();
    if (r.literal.has_value() == !r.host.empty()) __builtin_trap();
    if (!r.literal) {
      auto n = moat::policy::normalize_name(r.host);
      if (!n || *n != r.host) __builtin_trap();
    }
    if (!(moat::http::parse_connect_request(in.first(r.head_len)) == r)) __builtin_trap();
  } else if (r.head_len != 0 || !r.host.empty() || r.literal) {
    __builtin_trap();
  }
  const auto a = moat::http::parse_proxy_response(in);
  if (a.status == ParseStatus::ok) {
    if (a.code < 100 || a.code > 999 || a.head_len == 0 || a.head_len > size) __builtin_trap();
    if (!(moat::http::parse_proxy_response(in.first(a.head_len)) == a)) __builtin_trap();
  }
  return 0;
}
