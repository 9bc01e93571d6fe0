#pragma once
// moat's own answers to the guest: HTTP/1 responses and HTTP/2 frames (RFC 9113 §4.1, §6).
// The h2 header blocks are HPACK-encoded by a fresh nghttp2 deflater with every field
// "never indexed" (RFC 7541 §6.2.3): such a block references only the static table and
// leaves the guest decoder's dynamic table untouched, so it can be spliced between the
// upstream's frames without knowing the upstream encoder's state.
#include <cstdint>
#include <string>
#include <string_view>

namespace moat::http {

/// RFC 9113 §7 error codes used here.
enum class H2Error : uint32_t {
  no_error = 0x0,
  protocol_error = 0x1,
  internal_error = 0x2,
  flow_control_error = 0x3,
  frame_size_error = 0x6,
  refused_stream = 0x7,
  compression_error = 0x9,
  enhance_your_calm = 0xb,
};

/// "HTTP/1.1 <status> <phrase>" with a text/plain body, Content-Length and, when `close`,
/// `Connection: close`.
std::string h1_response(int status, std::string_view body, bool close = true);

/// The reason phrase moat uses for `status` (RFC 9110 §15).
std::string_view reason_phrase(int status) noexcept;

/// Appends a 9-byte frame header.
void h2_frame_header(std::string* out, uint32_t length, uint8_t type, uint8_t flags, uint32_t stream_id);

/// Appends HEADERS (:status, content-type text/plain, content-length) and, when `body` is
/// not empty, one DATA frame with END_STREAM. Bodies are short (≤ 16 KiB, one frame).
void h2_response(std::string* out, uint32_t stream_id, int status, std::string_view body);

/// Appends GOAWAY(last_stream_id, error) with optional debug data.
void h2_goaway(std::string* out, uint32_t last_stream_id, H2Error error, std::string_view debug = {});

/// Body texts, each one line ending in '\n'.
std::string misdirected_body(std::string_view expected, std::string_view claimed);
std::string malformed_body(std::string_view reason);

}  // namespace moat::http
