// Fuzz target: the TLS ClientHello SNI parser (R-TCP-6) on arbitrary first flights.
// Invariants: every prefix of an input that gave a verdict other than need_more must not
// give a *name* different from the whole (the parser is stateless and prefix-monotone for
// complete hellos), names are valid R-POL-3 names, and the classifier never returns other.
#include <cstddef>
#include <cstdint>

#include "policy/rule.h"
#include "sniff/first_flight.h"
#include "sniff/tls_client_hello.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const moat::Bytes in(reinterpret_cast<const std::byte*>(data), size);
  auto r = moat::tls::parse_client_hello(in);
  if (r.kind == moat::sniff::Kind::name) {
    auto n = moat::policy::normalize_name(r.name);
    if (!n || *n != r.name) __builtin_trap();
  } else if (!r.name.empty()) {
    __builtin_trap();
  }
  // Feeding the same bytes split in two (as two segments would arrive) changes nothing: the
  // parser sees the concatenation each time.
  if (size > 1) {
    auto half = moat::tls::parse_client_hello(in.first(size / 2));
    if (half.kind == moat::sniff::Kind::name && (r.kind != moat::sniff::Kind::name || half.name != r.name))
      __builtin_trap();
  }
  auto c = moat::sniff::classify_first_flight(in, size % 2 == 0);
  if (c.kind == moat::sniff::Kind::other) __builtin_trap();
  return 0;
}
