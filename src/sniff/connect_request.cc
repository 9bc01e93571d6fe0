#include "sniff/connect_request.h"

#include <algorithm>
#include <string_view>

#include "policy/groups.h"
#include "policy/rule.h"
#include "sniff/sniff.h"

namespace moat::http {

namespace {

constexpr std::string_view kConnect = "CONNECT ";

std::string_view as_sv(Bytes in) { return {reinterpret_cast<const char*>(in.data()), in.size()}; }

bool is_tchar(char c) {  // RFC 9110 §5.6.2 token characters
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

/// Finds the end of the head ("\r\n\r\n"); checks every byte before it: CR only before LF,
/// LF only after CR, no NUL or other control bytes except HTAB. npos: not complete yet;
/// `bad` is set when the bytes so far cannot start a valid head.
size_t head_end(std::string_view s, bool& bad) {
  bad = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] != '\n') {
        bad = true;
        return std::string_view::npos;
      }
      continue;
    }
    if (c == '\n') {
      if (i == 0 || s[i - 1] != '\r') {
        bad = true;
        return std::string_view::npos;
      }
      if (i >= 3 && s[i - 2] == '\n' && s[i - 3] == '\r') return i + 1;
      continue;
    }
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
      bad = true;
      return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

/// Field lines between the start line and the empty line: `name: value` with a token name.
bool fields_ok(std::string_view fields) {
  while (!fields.empty()) {
    const size_t e = fields.find("\r\n");
    if (e == std::string_view::npos) return false;
    const std::string_view line = fields.substr(0, e);
    fields.remove_prefix(e + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    for (char c : line.substr(0, colon)) {
      if (!is_tchar(c)) return false;
    }
  }
  return true;
}

std::optional<uint16_t> parse_port(std::string_view p) {
  if (p.empty() || p.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + uint32_t(c - '0');
  }
  if (v == 0 || v > 65535) return std::nullopt;
  return uint16_t(v);
}

bool http1_version(std::string_view v) {
  return v.size() == 8 && v.substr(0, 7) == "HTTP/1." && v[7] >= '0' && v[7] <= '9';
}

ConnectRequest malformed() { return ConnectRequest{ParseStatus::malformed, 0, {}, std::nullopt, 0}; }

}  // namespace

bool starts_connect(Bytes in) noexcept {
  const std::string_view s = as_sv(in);
  const size_t n = std::min(s.size(), kConnect.size());
  return n > 0 && s.substr(0, n) == kConnect.substr(0, n);
}

ConnectRequest parse_connect_request(Bytes in) {
  std::string_view s = as_sv(in);
  if (s.size() > sniff::kMaxFirstFlight) s = s.substr(0, sniff::kMaxFirstFlight);
  if (s.empty()) return ConnectRequest{};
  if (!starts_connect(Bytes(in.data(), s.size()))) return malformed();
  bool bad = false;
  const size_t end = head_end(s, bad);
  if (bad) return malformed();
  if (end == std::string_view::npos) return s.size() >= sniff::kMaxFirstFlight ? malformed() : ConnectRequest{};

  const std::string_view head = s.substr(0, end);
  const size_t line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  // CONNECT SP authority SP HTTP-version: exactly two single spaces.
  const size_t sp1 = kConnect.size() - 1;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return malformed();
  const std::string_view authority = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!http1_version(line.substr(sp2 + 1))) return malformed();
  if (!fields_ok(head.substr(line_end + 2, head.size() - line_end - 4))) return malformed();

  // authority-form (RFC 9112 §3.2.3): uri-host ":" port, IPv6 in brackets.
  std::string_view host, port;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || close + 1 >= authority.size() || authority[close + 1] != ':')
      return malformed();
    host = authority.substr(1, close - 1);
    port = authority.substr(close + 2);
    auto a = IpAddr::parse(host);
    if (!a || !a->is_v6) return malformed();
  } else {
    const size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return malformed();
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return malformed();  // unbracketed IPv6
  }
  const auto p = parse_port(port);
  if (!p) return malformed();
  ConnectRequest r;
  r.status = ParseStatus::ok;
  r.head_len = end;
  r.port = *p;
  if (auto a = IpAddr::parse(host)) {
    r.literal = policy::normalize(*a);
    return r;
  }
  auto n = policy::normalize_name(host);
  if (!n) return malformed();
  r.host = std::move(*n);
  return r;
}

ProxyResponse parse_proxy_response(Bytes in) {
  std::string_view s = as_sv(in);
  if (s.size() > sniff::kMaxFirstFlight) s = s.substr(0, sniff::kMaxFirstFlight);
  // A prefix of "HTTP/1.x NNN" that is already wrong fails at once.
  constexpr std::string_view kHttp = "HTTP/1.";
  const size_t n = std::min(s.size(), kHttp.size());
  if (s.substr(0, n) != kHttp.substr(0, n)) return ProxyResponse{ParseStatus::malformed, 0, 0};
  bool bad = false;
  const size_t end = head_end(s, bad);
  if (bad) return ProxyResponse{ParseStatus::malformed, 0, 0};
  if (end == std::string_view::npos) {
    return s.size() >= sniff::kMaxFirstFlight ? ProxyResponse{ParseStatus::malformed, 0, 0} : ProxyResponse{};
  }
  const std::string_view head = s.substr(0, end);
  const size_t line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  // HTTP-version SP 3DIGIT SP [reason] (RFC 9112 §4; a missing SP before an empty reason
  // is tolerated, as clients do).
  if (line.size() < 12 || !http1_version(line.substr(0, 8)) || line[8] != ' ') {
    return ProxyResponse{ParseStatus::malformed, 0, 0};
  }
  uint16_t code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return ProxyResponse{ParseStatus::malformed, 0, 0};
    code = uint16_t(code * 10 + uint16_t(line[i] - '0'));
  }
  if (code < 100 || (line.size() > 12 && line[12] != ' ')) return ProxyResponse{ParseStatus::malformed, 0, 0};
  if (!fields_ok(head.substr(line_end + 2, head.size() - line_end - 4))) return ProxyResponse{ParseStatus::malformed, 0, 0};
  return ProxyResponse{ParseStatus::ok, end, code};
}

}  // namespace moat::http
