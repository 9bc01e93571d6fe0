#include "http/h1_parse.h"

#include <cstring>

#include "http/authority.h"
#include "http/http.h"

namespace moat::http {

namespace {

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// field-value (RFC 9110 §5.5): visible ASCII, obs-text, SP, HTAB. CR, LF and NUL are not.
bool valid_value(std::string_view v) noexcept {
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 && c != '\t') return false;
    if (c == 0x7f) return false;
  }
  return true;
}

bool all_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

namespace {
struct TcharTable {
  bool t[256] = {};
  constexpr TcharTable() {
    for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  }
};
constexpr TcharTable kTchar;
}  // namespace

bool is_tchar(char c) noexcept { return kTchar.t[static_cast<unsigned char>(c)]; }

bool split_field_line(std::string_view line, std::string_view* name, std::string_view* value) noexcept {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  *name = line.substr(0, colon);
  for (char c : *name) {
    if (!is_tchar(c)) return false;  // also a space before ':' (RFC 9112 §5.1) and obs-fold
  }
  *value = trim_ows(line.substr(colon + 1));
  return valid_value(*value);
}

const char* parse_request_head(std::string_view head, RequestHead* out) noexcept {
  *out = RequestHead{};
  if (head.size() < 4 || head.substr(head.size() - 4) != "\r\n\r\n") return "incomplete head";
  head.remove_suffix(2);  // every line, the request line included, now ends in "\r\n"
  size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  // request-line = method SP request-target SP HTTP-version (RFC 9112 §3)
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return "malformed request line";
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return "malformed request line";
  out->method = line.substr(0, sp1);
  out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  for (char c : out->method) {
    if (!is_tchar(c)) return "malformed method";
  }
  for (char ch : out->target) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) return "malformed request target";
  }
  if (version == "HTTP/1.1") {
    out->http10 = false;
  } else if (version == "HTTP/1.0") {
    out->http10 = true;
  } else {
    return "unsupported HTTP version";
  }
  out->connect = out->method == "CONNECT";

  int hosts = 0, lengths = 0, encodings = 0;
  std::string_view te;
  size_t pos = eol + 2;
  while (pos < head.size()) {
    eol = head.find("\r\n", pos);
    const std::string_view field = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (field.find('\r') != std::string_view::npos || field.find('\n') != std::string_view::npos) {
      return "bare CR or LF";
    }
    if (++out->fields > kMaxFields) return "too many header fields";
    std::string_view name, value;
    if (!split_field_line(field, &name, &value)) return "malformed header field";
    if (iequals(name, "host")) {
      ++hosts;
      out->host = value;
    } else if (iequals(name, "content-length")) {
      ++lengths;
      if (!all_digits(value) || value.size() > 18) return "invalid Content-Length";
      uint64_t n = 0;
      for (char c : value) n = n * 10 + uint64_t(c - '0');
      out->content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      ++encodings;
      te = value;
    } else if (iequals(name, "upgrade")) {
      out->upgrade = true;
      for (size_t k = 0; k + 3 <= value.size(); ++k) {
        if (iequals(value.substr(k, 3), "h2c")) out->upgrade_h2c = true;
      }
    }
  }
  if (hosts == 0) return "missing Host";
  if (hosts > 1) return "duplicate Host";
  if (lengths > 1) return "duplicate Content-Length";
  if (encodings > 0) {
    if (encodings > 1 || !iequals(te, "chunked")) return "unsupported Transfer-Encoding";
    if (lengths > 0) return "Transfer-Encoding with Content-Length";
    if (out->http10) return "Transfer-Encoding on HTTP/1.0";
    out->body = BodyKind::chunked;
  } else if (lengths == 1 && out->content_length > 0) {
    out->body = BodyKind::length;
  }
  if (out->connect && out->body != BodyKind::none) return "CONNECT with a body";
  return nullptr;
}

ChunkedDecoder::Status ChunkedDecoder::feed(std::string_view in, size_t* used,
                                            FunctionRef<void(std::string_view)> on_data) noexcept {
  constexpr uint32_t kMaxSizeLine = 4096;
  size_t i = 0;
  while (i < in.size() && state_ != State::done) {
    const char c = in[i];
    switch (state_) {
      case State::size: {
        const int h = hex_value(c);
        if (h >= 0) {
          if (++size_digits_ > 15) return fail("chunk size too large");
          remaining_ = remaining_ * 16 + uint64_t(h);
          ++i;
          break;
        }
        if (size_digits_ == 0) return fail("malformed chunk size");
        if (c == '\r') {
          state_ = State::size_lf;
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::ext;  // chunk-ext (and BWS before it), not interpreted
        } else {
          return fail("malformed chunk size");
        }
        ++i;
        ++line_len_;
        break;
      }
      case State::ext: {
        if (c == '\r') {
          state_ = State::size_lf;
        } else if (c == '\n' || c == '\0') {
          return fail("bare LF in chunk extension");
        }
        ++i;
        if (++line_len_ > kMaxSizeLine) return fail("chunk extension too long");
        break;
      }
      case State::size_lf: {
        if (c != '\n') return fail("malformed chunk size line");
        ++i;
        line_len_ = 0;
        size_digits_ = 0;
        state_ = remaining_ == 0 ? State::trailer : State::data;
        break;
      }
      case State::data: {
        const size_t n = size_t(std::min<uint64_t>(remaining_, in.size() - i));
        on_data(in.substr(i, n));
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::data_cr;
        break;
      }
      case State::data_cr:
        if (c != '\r') return fail("missing CRLF after chunk");
        ++i;
        state_ = State::data_lf;
        break;
      case State::data_lf:
        if (c != '\n') return fail("missing CRLF after chunk");
        ++i;
        state_ = State::size;
        break;
      case State::trailer: {
        // trailer-section = *( field-line CRLF ) CRLF; an empty line ends the body. Field
        // lines are checked for CR/LF/NUL only (they are forwarded, never interpreted).
        if (c == '\r') {
          state_ = State::trailer_lf;
        } else if (c == '\n' || c == '\0') {
          return fail("malformed trailer");
        } else {
          ++line_len_;
        }
        ++i;
        if (++trailer_bytes_ > kMaxHeaderBlock) return fail("trailers too large");
        break;
      }
      case State::trailer_lf: {
        if (c != '\n') return fail("malformed trailer");
        ++i;
        if (line_len_ == 0) {
          state_ = State::done;
        } else {
          if (++trailer_fields_ > kMaxFields) return fail("too many trailer fields");
          line_len_ = 0;
          state_ = State::trailer;
        }
        break;
      }
      case State::done:
        break;
    }
  }
  *used = i;
  return state_ == State::done ? Status::done : Status::more;
}

bool parse_status_line(std::string_view line, int* status) noexcept {
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4)
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return false;
  if (line[7] != '0' && line[7] != '1') return false;
  const std::string_view code = line.substr(9, 3);
  if (!all_digits(code)) return false;
  if (line.size() > 12 && line[12] != ' ') return false;
  *status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  return *status >= 100;
}

}  // namespace moat::http
