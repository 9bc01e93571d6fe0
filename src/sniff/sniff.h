#pragma once
// Common result of the first-flight parsers (SPEC R-TCP-6). Each parser is handed the
// whole first flight received so far (at most kMaxFirstFlight bytes) and re-parses it
// from the start: no state survives between calls, so bytes split across segments or
// records need nothing special, and there is no partial state to get wrong.
#include <cstddef>
#include <cstdint>
#include <string>

namespace moat::sniff {

/// R-TCP-4/5/6 bound on the bytes read before a decision.
inline constexpr size_t kMaxFirstFlight = 16 * 1024;

enum class Kind : uint8_t {
  need_more,  ///< still a prefix of this protocol; give more bytes
  other,      ///< not this protocol
  no_name,    ///< this protocol, but no usable name (absent, IP literal, malformed, too long)
  name,       ///< `name` from SNI or Host (validated, lowercase, no trailing dot)
  connect,    ///< HTTP CONNECT: `name` is the authority's host (R-TLS-8)
  mismatch,   ///< HTTP absolute-form target naming another host than Host (authority_mismatch)
};

struct Result {
  Kind kind = Kind::need_more;
  std::string name;
  friend bool operator==(const Result&, const Result&) = default;
};

}  // namespace moat::sniff
