#pragma once
// Why a parser in wire/ rejected its input. The stack maps each to a DropReason; wire/
// itself never logs or counts.
#include <cstdint>
#include <string_view>

namespace moat::wire {

/// Reason a wire parser rejected a buffer.
enum class ParseError : uint8_t {
  truncated,             ///< shorter than a header / a length field says
  bad_version,           ///< IP version, ARP htype/ptype/hlen/plen, DHCP op/htype/hlen
  bad_length,            ///< an inconsistent length field (IHL < 5, UDP len < 8, ...)
  bad_checksum,          ///< a checksum the SPEC says we verify did not verify
  bad_option,            ///< malformed option list (zero-length option, runs past the end, ...)
  routing_header,        ///< IPv6 routing header with segments-left > 0
  too_many_ext_headers,  ///< more than 8 IPv6 extension headers
  unsupported,           ///< well-formed but a kind we don't parse (ARP op not 1/2, ...)
};

/// Stable lower-case name of `e` ("truncated", "bad_checksum", ...), for logs and tests.
std::string_view parse_error_name(ParseError e) noexcept;

}  // namespace moat::wire
