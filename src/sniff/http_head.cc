#include "sniff/http_head.h"

#include <array>
#include <string_view>

#include "policy/rule.h"

namespace moat::http {

namespace {

using sniff::Kind;
using sniff::Result;

constexpr std::array<std::string_view, 9> kMethods = {"GET ",   "HEAD ",    "POST ",  "PUT ",    "DELETE ",
                                                      "OPTIONS ", "TRACE ", "PATCH ", "CONNECT "};

Result no_name() { return Result{Kind::no_name, {}}; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "host", "host:port", "[v6]" or "[v6]:port" -> the host part, or nullopt if malformed.
// An IPv6 literal comes back with its brackets (normalize_name then rejects it).
std::optional<std::string_view> host_of_authority(std::string_view a) {
  if (a.empty()) return std::nullopt;
  if (a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    return a.substr(0, close + 1);
  }
  const size_t colon = a.find(':');
  if (colon == std::string_view::npos) return a;
  std::string_view port = a.substr(colon + 1);
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return a.substr(0, colon);
}

// A validated name, or nullopt (IP literal, bracketed IPv6, invalid).
std::optional<std::string> valid_name(std::string_view host) {
  if (host.empty() || host.front() == '[') return std::nullopt;
  auto n = policy::normalize_name(host);
  if (!n) return std::nullopt;
  return std::move(*n);
}

}  // namespace

sniff::Result parse_request_head(Bytes in) {
  const std::string_view s(reinterpret_cast<const char*>(in.data()), in.size());
  if (s.empty()) return Result{};
  std::string_view method;
  bool prefix = false;
  for (std::string_view m : kMethods) {
    if (s.size() >= m.size() ? s.substr(0, m.size()) == m : m.substr(0, s.size()) == s) {
      if (s.size() >= m.size()) method = m.substr(0, m.size() - 1);
      else prefix = true;
      if (!method.empty()) break;
    }
  }
  if (method.empty()) return prefix ? Result{} : Result{Kind::other, {}};

  const size_t end = s.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return s.size() >= sniff::kMaxFirstFlight ? no_name() : Result{};
  }
  const std::string_view head = s.substr(0, end + 2);  // every line ends in \r\n
  size_t line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, line_end);
  // METHOD SP request-target SP HTTP-version (RFC 9112 §3).
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = request_line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return no_name();
  const std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = request_line.substr(sp2 + 1);
  if (version.substr(0, 7) != "HTTP/1.") return no_name();

  std::optional<std::string_view> host;
  int host_count = 0;
  size_t pos = line_end + 2;
  while (pos < head.size()) {
    const size_t e = head.find("\r\n", pos);
    const std::string_view line = head.substr(pos, e - pos);
    pos = e + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return no_name();
    const std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return no_name();  // RFC 9112 §5.1
    if (iequals(name, "host")) {
      ++host_count;
      host = trim(line.substr(colon + 1));
    }
  }

  if (method == "CONNECT") {
    auto h = host_of_authority(target);
    if (!h) return no_name();
    auto n = valid_name(*h);
    if (!n) return no_name();
    return Result{Kind::connect, std::move(*n)};
  }
  if (host_count != 1) return no_name();
  auto hh = host_of_authority(*host);
  if (!hh) return no_name();
  auto n = valid_name(*hh);
  if (!n) return no_name();
  // Absolute form (RFC 9112 §3.2.2): its authority must be the same host.
  const size_t scheme = target.find("://");
  if (scheme != std::string_view::npos && target.front() != '/') {
    std::string_view auth = target.substr(scheme + 3);
    auth = auth.substr(0, auth.find_first_of("/?#"));
    if (const size_t at = auth.rfind('@'); at != std::string_view::npos) auth = auth.substr(at + 1);
    auto th = host_of_authority(auth);
    if (!th) return Result{Kind::mismatch, std::move(*n)};
    std::string_view t = *th;
    if (!t.empty() && t.back() == '.') t.remove_suffix(1);
    if (!iequals(t, *n)) return Result{Kind::mismatch, std::move(*n)};
  }
  return Result{Kind::name, std::move(*n)};
}

}  // namespace moat::http
