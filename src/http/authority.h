#pragma once
// Authority comparison for R-TLS-6: a Host header, an absolute-form target, a CONNECT target
// or an h2 :authority against the expected authority (the SNI, or the destination address
// when the ClientHello had none).
#include <string>
#include <string_view>

namespace moat::http {

enum class AuthorityCheck : unsigned char { match, mismatch, invalid };

/// The host part of "host", "host:port", "[v6]" or "[v6]:port" (brackets removed, trailing
/// dot removed). Empty when malformed: empty host, a non-digit port, bytes outside RFC 3986
/// reg-name/IP-literal characters, userinfo.
std::string_view authority_host(std::string_view authority) noexcept;

/// Compares `authority` with `expected`: case-insensitive, port ignored, trailing dot
/// ignored; IP literals compare by address (so "[::1]" matches "0::1").
AuthorityCheck check_authority(std::string_view expected, std::string_view authority) noexcept;

/// check_authority() with the expected side parsed once (per connection), so a request costs
/// no address parsing unless its authority is an IP literal compared with an IP.
class AuthorityMatcher {
 public:
  explicit AuthorityMatcher(std::string_view expected);
  [[nodiscard]] AuthorityCheck check(std::string_view authority) const noexcept;
  [[nodiscard]] const std::string& expected() const noexcept { return expected_; }

 private:
  std::string expected_;  // brackets and trailing dot removed
  bool is_ip_ = false;
  int family_ = 0;
  unsigned char addr_[16] = {};
};

/// The authority of an absolute-form target ("http://host:port/path?q" → "host:port"),
/// userinfo dropped; empty if `target` is not absolute-form.
std::string_view absolute_form_authority(std::string_view target) noexcept;

/// ASCII case-insensitive equality.
bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace moat::http
