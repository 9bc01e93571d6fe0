#include "wire/errors.h"

namespace moat::wire {

std::string_view parse_error_name(ParseError e) noexcept {
  switch (e) {
    case ParseError::truncated: return "truncated";
    case ParseError::bad_version: return "bad_version";
    case ParseError::bad_length: return "bad_length";
    case ParseError::bad_checksum: return "bad_checksum";
    case ParseError::bad_option: return "bad_option";
    case ParseError::routing_header: return "routing_header";
    case ParseError::too_many_ext_headers: return "too_many_ext_headers";
    case ParseError::unsupported: return "unsupported";
  }
  return "unknown";  // only reachable with an out-of-range cast
}

}  // namespace moat::wire
