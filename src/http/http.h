#pragma once
// The vocabulary shared by the HTTP inspector and the error responder (SPEC R-TLS-5/6):
// what the TLS session tells them (the expected authority, the ALPN) and what they ask the
// TLS session to do (the Sink).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/bytes.h"

namespace moat::http {

/// The protocol the TLS handshake settled on. `none` (no ALPN) means HTTP/1 is expected.
enum class Alpn : uint8_t { none, http1, h2 };

/// Maps the negotiated ALPN string ("h2", "http/1.1", "" ...) to Alpn; anything else is
/// not HTTP (nullopt-like: returns false) and the caller relays it opaquely (R-TLS-4).
bool alpn_from_string(std::string_view alpn, Alpn* out) noexcept;

/// R-TLS-6 limits. Hard caps: the fuzz targets and tests check that held memory stays under
/// them whatever the guest sends.
inline constexpr size_t kMaxHeaderBlock = 64 * 1024;  ///< one request head / h2 header block
inline constexpr size_t kMaxFields = 1024;            ///< header fields in one block
inline constexpr size_t kMaxH2Streams = 1024;         ///< concurrent h2 streams per connection
/// HPACK dynamic table for the guest's encoder, at most: the upstream may advertise more
/// (SETTINGS_HEADER_TABLE_SIZE), a guest encoder using more than this gets COMPRESSION_ERROR.
inline constexpr uint32_t kMaxHpackTable = 64 * 1024;
/// HTTP/1 requests forwarded and not yet answered (pipelining depth).
inline constexpr size_t kMaxPipelined = 1024;
/// Response head lines are parsed line by line (bytes pass straight through); one line is
/// held at most this long.
inline constexpr size_t kMaxResponseLine = 64 * 1024;

enum class EventKind : uint8_t {
  authority_mismatch,  ///< audit `http_authority_mismatch`: host/method/path/stream_id set
  malformed,           ///< 400 / GOAWAY(PROTOCOL_ERROR): reason set
  limit,               ///< a header/stream/pipelining limit: reason set
  compression_error,   ///< GOAWAY(COMPRESSION_ERROR)
  upgraded,            ///< HTTP/1 became opaque (101 or CONNECT 2xx); h2: extended CONNECT stream
  upstream_framing,    ///< the upstream's responses could not be followed: connection closed
};

/// What happened, for the caller's audit log and counters. The views are valid only during
/// Sink::on_event().
struct Event {
  EventKind kind;
  std::string_view host;    ///< the authority the request claimed (mismatch), host part only
  std::string_view method;
  std::string_view path;    ///< request target / :path, as sent
  uint32_t stream_id = 0;   ///< h2 stream, 0 for HTTP/1
  std::string_view reason;  ///< a short fixed phrase ("duplicate Content-Length", ...)
};

/// Where scanned guest→upstream payload comes from (R-SEC-5 scans all of it).
enum class Payload : uint8_t { h1_body, h1_opaque, h2_data, h2_opaque };

/// The driver of an inspector (the TLS session). Calls happen synchronously inside the
/// inspector's entry points, in the order the bytes must be written. Spans are valid only
/// during the call: they often point into the caller's own input buffer (pass-through is
/// zero-copy), otherwise into the inspector's held header block.
class Sink {
 public:
  virtual ~Sink() = default;
  /// Plaintext for the upstream TLS session, in order.
  virtual void to_upstream(Bytes bytes) = 0;
  /// Plaintext for the guest TLS session, in order: upstream bytes passed through unchanged,
  /// and moat's own answers (421, 400, GOAWAY) at a message or frame boundary.
  virtual void to_guest(Bytes bytes) = 0;
  /// For audit and counters.
  virtual void on_event(const Event& event) = 0;
  /// Guest→upstream payload that is not a header block (bodies, DATA, opaque bytes after an
  /// upgrade), seen just before the same bytes go to to_upstream(): the placeholder
  /// scanner's hook (R-SEC-5, the next issue). Default: ignored.
  virtual void scan(Bytes bytes, Payload kind, uint32_t stream_id) {
    (void)bytes, (void)kind, (void)stream_id;
  }
};

/// After an entry point returns: keep relaying, or flush what was given to to_guest() and
/// to_upstream() and close both sides (h1: after 421/400; h2: after GOAWAY).
enum class Next : uint8_t { relay, close };

}  // namespace moat::http
