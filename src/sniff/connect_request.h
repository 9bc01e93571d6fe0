#pragma once
// HTTP CONNECT request heads from the guest and the proxy's answers (RFC 9110 §9.3.6,
// RFC 9112 §3.2.3, SPEC R-TLS-8). Both are guest- or host-controlled bytes: parsed within
// kMaxFirstFlight (16 KiB), stateless (each call re-parses from the first byte, like the
// other first-flight parsers), never an error passed upward: malformed is a result.
//
// A request is `CONNECT SP authority SP HTTP/1.x CRLF *(field-line CRLF) CRLF`, where the
// authority is `host:port` with a port 1..65535 and a host that is an R-POL-3 name, an
// IPv4 literal or a bracketed IPv6 literal. Anything else that starts with "CONNECT " —
// no port, bad characters, a bare LF or CR, a NUL, a field line without a colon or with
// whitespace before it, no end of head within 16 KiB — is malformed (R-TLS-8: 400).
//
// A proxy answer is `HTTP/1.x SP 3DIGIT [SP reason] CRLF *(field-line CRLF) CRLF` within
// 16 KiB; the status code is returned, the caller decides what a 2xx means.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "base/addr.h"
#include "base/bytes.h"

namespace moat::http {

enum class ParseStatus : uint8_t {
  need_more,  ///< a prefix of a valid head: give more bytes
  ok,         ///< a complete, valid head of head_len bytes
  malformed,  ///< cannot become valid
};

struct ConnectRequest {
  ParseStatus status = ParseStatus::need_more;
  size_t head_len = 0;            ///< through the empty line (ok only)
  std::string host;               ///< normalised name (lowercase, no trailing dot); empty for a literal
  std::optional<IpAddr> literal;  ///< the target when it is an IP literal (normalised)
  uint16_t port = 0;
  friend bool operator==(const ConnectRequest&, const ConnectRequest&) = default;
};

/// `in` is the guest's first flight from its first byte.
ConnectRequest parse_connect_request(Bytes in);
/// True when `in` starts like a CONNECT request ("CONNECT " or a prefix of it).
bool starts_connect(Bytes in) noexcept;

struct ProxyResponse {
  ParseStatus status = ParseStatus::need_more;
  size_t head_len = 0;  ///< through the empty line (ok only)
  uint16_t code = 0;    ///< 100..999 (ok only)
  friend bool operator==(const ProxyResponse&, const ProxyResponse&) = default;
};

/// `in` is what the proxy sent from its first byte.
ProxyResponse parse_proxy_response(Bytes in);

}  // namespace moat::http
