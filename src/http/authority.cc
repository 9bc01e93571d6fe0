#include "http/authority.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace moat::http {

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

// RFC 3986 §3.2.2 reg-name: unreserved / pct-encoded / sub-delims.
struct RegNameTable {
  bool t[256] = {};
  constexpr RegNameTable() {
    for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (char c : std::string_view("-._~%!$&'()*+,;=")) t[static_cast<unsigned char>(c)] = true;
  }
};
constexpr RegNameTable kRegName;
bool reg_name_char(char c) noexcept { return kRegName.t[static_cast<unsigned char>(c)]; }

bool ipv6_literal_char(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

// Parses an IP literal (no brackets) into `out` (4 or 16 bytes used); false if not one.
bool parse_ip(std::string_view s, std::array<unsigned char, 16>* out, int* family) noexcept {
  if (s.empty() || s.size() >= 64) return false;
  char buf[64];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  if (inet_pton(AF_INET, buf, out->data()) == 1) {
    *family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, buf, out->data()) == 1) {
    *family = AF_INET6;
    return true;
  }
  return false;
}

std::string_view strip_dot(std::string_view s) noexcept {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view authority_host(std::string_view a) noexcept {
  if (a.empty()) return {};
  std::string_view host, port;
  if (a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return {};
    host = a.substr(1, close - 1);
    const std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return {};
      port = rest.substr(1);
    }
    if (host.empty()) return {};
    for (char c : host) {
      if (!ipv6_literal_char(c)) return {};
    }
  } else {
    const size_t colon = a.rfind(':');
    host = colon == std::string_view::npos ? a : a.substr(0, colon);
    if (colon != std::string_view::npos) port = a.substr(colon + 1);
    for (char c : host) {
      if (!reg_name_char(c)) return {};  // also rejects a second ':' and '@' (userinfo)
    }
  }
  if (port.size() > 5) return {};
  for (char c : port) {
    if (c < '0' || c > '9') return {};
  }
  host = strip_dot(host);
  return host;
}

AuthorityMatcher::AuthorityMatcher(std::string_view expected) {
  expected = strip_dot(expected);
  if (!expected.empty() && expected.front() == '[' && expected.back() == ']') {
    expected = expected.substr(1, expected.size() - 2);
  }
  expected_.assign(expected);
  std::array<unsigned char, 16> a{};
  is_ip_ = parse_ip(expected, &a, &family_);
  std::memcpy(addr_, a.data(), sizeof addr_);
}

AuthorityCheck AuthorityMatcher::check(std::string_view authority) const noexcept {
  const std::string_view host = authority_host(authority);
  if (host.empty()) return AuthorityCheck::invalid;
  if (is_ip_) {
    std::array<unsigned char, 16> b{};
    int fb = 0;
    if (!parse_ip(host, &b, &fb)) return AuthorityCheck::mismatch;
    const size_t n = family_ == AF_INET ? 4 : 16;
    return family_ == fb && std::memcmp(addr_, b.data(), n) == 0 ? AuthorityCheck::match : AuthorityCheck::mismatch;
  }
  return iequals(expected_, host) ? AuthorityCheck::match : AuthorityCheck::mismatch;
}

AuthorityCheck check_authority(std::string_view expected, std::string_view authority) noexcept {
  return AuthorityMatcher(expected).check(authority);
}

std::string_view absolute_form_authority(std::string_view target) noexcept {
  if (target.empty() || target.front() == '/') return {};
  const size_t scheme = target.find("://");
  if (scheme == std::string_view::npos || scheme == 0) return {};
  for (char c : target.substr(0, scheme)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
                    c == '-' || c == '.';
    if (!ok) return {};
  }
  std::string_view auth = target.substr(scheme + 3);
  auth = auth.substr(0, auth.find_first_of("/?#"));
  if (const size_t at = auth.rfind('@'); at != std::string_view::npos) auth = auth.substr(at + 1);
  return auth;
}

}  // namespace moat::http
