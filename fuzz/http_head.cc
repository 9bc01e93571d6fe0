// Fuzz target: the HTTP/1 request-head parser (R-TCP-6) on arbitrary first flights.
// Invariants: a name or connect result carries a valid R-POL-3 name; results without a
// name carry none; a head whose verdict is final does not change when more bytes follow.
#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/rule.h"
#include "sniff/http_head.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moat::sniff::Kind;
  const moat::Bytes in(reinterpret_cast<const std::byte*>(data), size);
  auto r = moat::http::parse_request_head(in);
  if (r.kind == Kind::name || r.kind == Kind::connect || r.kind == Kind::mismatch) {
    auto n = moat::policy::normalize_name(r.name);
    if (!n || *n != r.name) __builtin_trap();
  } else if (!r.name.empty()) {
    __builtin_trap();
  }
  if (r.kind != Kind::need_more && r.kind != Kind::other) {
    std::string more(reinterpret_cast<const char*>(data), size);
    more += "X-More: 1\r\n\r\n";
    auto r2 = moat::http::parse_request_head(moat::Bytes(reinterpret_cast<const std::byte*>(more.data()), more.size()));
    if (size < moat::sniff::kMaxFirstFlight && !(r2 == r)) __builtin_trap();
  }
  return 0;
}
