#pragma once
// HTTP/1.1 message syntax (RFC 9112) for the inspector: request heads, chunked framing and
// response status lines. Strict on purpose (R-SEC-4 "strict framing"): anything two HTTP
// implementations could frame differently is malformed. Pure functions over bytes; the
// incremental state lives in the callers.
#include <cstdint>
#include <string_view>

#include "base/function_ref.h"

namespace moat::http {

enum class BodyKind : uint8_t { none, length, chunked };

/// One request head, as views into the head bytes it was parsed from.
struct RequestHead {
  std::string_view method, target;
  std::string_view host;  ///< the one Host value, trimmed
  bool http10 = false;
  BodyKind body = BodyKind::none;
  uint64_t content_length = 0;
  bool upgrade = false;  ///< an Upgrade header is present (RFC 9110 §7.8)
  bool upgrade_h2c = false;  ///< ... and it offers h2c (never valid over TLS, RFC 9113 §3.1)
  bool connect = false;
  uint32_t fields = 0;
};

/// Parses a complete request head: the request line through the empty line, `head` ending in
/// "\r\n\r\n". Returns nullptr on success, else a short reason for the 400 and the event.
/// RFC 9112 §3 request line (method token, one SP, target of visible ASCII, one SP,
/// HTTP/1.0 or HTTP/1.1), §5 field lines (token ":" OWS value OWS; no obs-fold, no bare CR
/// or LF, no NUL), exactly one Host (§3.2), framing per §6.1–6.3 with R-SEC-4: TE with CL,
/// TE other than "chunked", a TE on HTTP/1.0, duplicate or invalid CL are malformed.
const char* parse_request_head(std::string_view head, RequestHead* out) noexcept;

/// RFC 9112 §7.1 chunked body, fed in pieces of any size. Data bytes are reported through
/// `on_data` (the decoded body, for scanning); framing bytes are only consumed.
/// Bounds: a chunk-size line (with extensions) ≤ 4 KiB, trailers ≤ kMaxHeaderBlock bytes and
/// kMaxFields lines, chunk size < 2^60.
class ChunkedDecoder {
 public:
  enum class Status : uint8_t { more, done, error };
  /// Consumes bytes of `in` up to the end of the body; `*used` says how many.
  Status feed(std::string_view in, size_t* used, FunctionRef<void(std::string_view)> on_data) noexcept;
  [[nodiscard]] const char* error() const noexcept { return error_; }
  void reset() noexcept { *this = ChunkedDecoder{}; }

 private:
  enum class State : uint8_t { size, ext, size_lf, data, data_cr, data_lf, trailer, trailer_lf, done };
  Status fail(const char* why) noexcept {
    error_ = why;
    return Status::error;
  }
  State state_ = State::size;
  uint64_t remaining_ = 0;
  uint32_t line_len_ = 0;      // bytes of the current size line / trailer line
  uint32_t size_digits_ = 0;
  uint32_t trailer_bytes_ = 0, trailer_fields_ = 0;
  const char* error_ = nullptr;
};

/// Parses "HTTP/1.x SSS reason" (without CRLF); false when malformed.
bool parse_status_line(std::string_view line, int* status) noexcept;

/// Splits a field line into trimmed name and value; false when malformed.
bool split_field_line(std::string_view line, std::string_view* name, std::string_view* value) noexcept;

/// A token character (RFC 9110 §5.6.2).
bool is_tchar(char c) noexcept;

}  // namespace moat::http
