#include "config/config.h"

#include <charconv>

namespace moat::config {

std::string UserError::format() const {
  std::string s = "moat: error: " + where + ": " + what;
  if (!hint.empty()) s += "; " + hint;
  return s;
}

namespace {

std::optional<int> parse_prefix_len(std::string_view s, int max) {
  int v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v < 0 || v > max) return std::nullopt;
  return v;
}

std::string cidr4(Ipv4Addr net, int prefix) {
  return Ipv4Addr{net.value & Ipv4Addr::mask(prefix)}.to_string() + "/" + std::to_string(prefix);
}

// Common R-ADDR-2 rules for one IPv4 address inside the guest prefix.
void check_v4(std::vector<UserError>& errs, const std::string& where, Ipv4Addr a, Ipv4Addr net, int prefix) {
  auto bad = [&](std::string what) { errs.push_back({where, a.to_string() + " " + std::move(what), ""}); };
  if (a.is_loopback()) return bad("is a loopback address");
  if (a.is_multicast()) return bad("is a multicast address");
  if (a.is_unspecified()) return bad("is the unspecified address");
  if (a.is_link_local()) return bad("is a link-local address");
  if (a.is_broadcast()) return bad("is the broadcast address");
  if (prefix < 8 || prefix > 30) return;  // reported once for --ipv4
  if (!a.in_subnet(net, prefix)) return bad("is outside the guest subnet " + cidr4(net, prefix));
  uint32_t host = a.value & ~Ipv4Addr::mask(prefix);
  if (host == 0) return bad("is the network address of " + cidr4(net, prefix));
  if (host == ~Ipv4Addr::mask(prefix)) return bad("is the broadcast address of " + cidr4(net, prefix));
}

void check_v6(std::vector<UserError>& errs, const std::string& where, const Ipv6Addr& a, const Ipv6Addr& net,
              int prefix) {
  auto bad = [&](std::string what) { errs.push_back({where, a.to_string() + " " + std::move(what), ""}); };
  if (a.is_loopback()) return bad("is the loopback address");
  if (a.is_multicast()) return bad("is a multicast address");
  if (a.is_unspecified()) return bad("is the unspecified address");
  if (a.is_link_local()) return bad("is a link-local address");
  if (a.is_v4_mapped()) return bad("is an IPv4-mapped address");
  if (prefix != 64) return;
  Ipv6Addr netaddr = net;
  for (size_t i = 8; i < 16; ++i) netaddr.bytes[i] = 0;
  if (!a.in_subnet(net, 64)) return bad("is outside the guest prefix " + netaddr.to_string() + "/64");
  if (a == netaddr) return bad("is the subnet-router anycast address of " + netaddr.to_string() + "/64");
}

void check_mac(std::vector<UserError>& errs, const std::string& where, const MacAddr& m) {
  if (m.is_multicast()) errs.push_back({where, m.to_string() + " is a multicast MAC (I/G bit set)", ""});
  else if (m.is_zero()) errs.push_back({where, "the all-zero MAC is not allowed", ""});
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data() || v > 1'000'000'000) return std::nullopt;
  std::string_view unit(p, size_t(s.data() + s.size() - p));
  if (unit == "ms") return std::chrono::milliseconds(v);
  if (unit == "s") return std::chrono::seconds(v);
  if (unit == "m") return std::chrono::minutes(v);
  if (unit == "h") return std::chrono::hours(v);
  return std::nullopt;
}

std::optional<UserError> parse_ipv4_prefix(std::string_view flag, std::string_view value, Ipv4Addr* addr,
                                           int* prefix) {
  auto slash = value.find('/');
  std::string f(flag), v(value);
  if (slash == std::string_view::npos)
    return UserError{f, "\"" + v + "\" needs a prefix length", "write e.g. 100.96.0.2/30"};
  auto a = Ipv4Addr::parse(value.substr(0, slash));
  if (!a) return UserError{f, std::string("\"").append(value.substr(0, slash)) + "\" is not an IPv4 address", ""};
  auto p = parse_prefix_len(value.substr(slash + 1), 32);
  if (!p) return UserError{f, std::string("\"").append(value.substr(slash + 1)) + "\" is not a prefix length (0-32)", ""};
  *addr = *a;
  *prefix = *p;
  return std::nullopt;
}

std::optional<UserError> parse_ipv6_prefix(std::string_view flag, std::string_view value, Ipv6Addr* addr,
                                           int* prefix) {
  auto slash = value.rfind('/');
  std::string f(flag), v(value);
  if (slash == std::string_view::npos)
    return UserError{f, "\"" + v + "\" needs a prefix length", "write e.g. fd42:6d73:62::2/64"};
  auto a = Ipv6Addr::parse(value.substr(0, slash));
  if (!a) return UserError{f, std::string("\"").append(value.substr(0, slash)) + "\" is not an IPv6 address", ""};
  auto p = parse_prefix_len(value.substr(slash + 1), 128);
  if (!p) return UserError{f, std::string("\"").append(value.substr(slash + 1)) + "\" is not a prefix length (0-128)", ""};
  *addr = *a;
  *prefix = *p;
  return std::nullopt;
}

std::vector<UserError> validate(const NetConfig& n, bool v4, bool v6, const NetSources& src) {
  std::vector<UserError> errs;
  if (v4) {
    if (n.ipv4_prefix < 8 || n.ipv4_prefix > 30)
      errs.push_back({src.ipv4, "prefix length /" + std::to_string(n.ipv4_prefix) + " is out of range",
                      "IPv4 prefixes must be /8 to /30"});
    check_v4(errs, src.ipv4, n.ipv4_address, n.ipv4_address, n.ipv4_prefix);
    check_v4(errs, src.gateway4, n.ipv4_gateway, n.ipv4_address, n.ipv4_prefix);
    if (n.ipv4_gateway == n.ipv4_address)
      errs.push_back({src.gateway4, n.ipv4_gateway.to_string() + " is the guest address", ""});
    if (n.ipv4_dns) {
      check_v4(errs, src.dns4, *n.ipv4_dns, n.ipv4_address, n.ipv4_prefix);
      if (*n.ipv4_dns == n.ipv4_address)
        errs.push_back({src.dns4, n.ipv4_dns->to_string() + " is the guest address", ""});
    }
  }
  if (v6) {
    if (n.ipv6_prefix != 64)
      errs.push_back({src.ipv6, "prefix length /" + std::to_string(n.ipv6_prefix) + " is not supported",
                      "the IPv6 prefix must be /64"});
    check_v6(errs, src.ipv6, n.ipv6_address, n.ipv6_address, n.ipv6_prefix);
    check_v6(errs, src.gateway6, n.ipv6_gateway, n.ipv6_address, n.ipv6_prefix);
    if (n.ipv6_gateway == n.ipv6_address)
      errs.push_back({src.gateway6, n.ipv6_gateway.to_string() + " is the guest address", ""});
    if (n.ipv6_dns) {
      check_v6(errs, src.dns6, *n.ipv6_dns, n.ipv6_address, n.ipv6_prefix);
      if (*n.ipv6_dns == n.ipv6_address)
        errs.push_back({src.dns6, n.ipv6_dns->to_string() + " is the guest address", ""});
    }
  }
  check_mac(errs, src.guest_mac, n.guest_mac);
  check_mac(errs, src.gateway_mac, n.gateway_mac);
  if (n.guest_mac == n.gateway_mac)
    errs.push_back({src.guest_mac, n.guest_mac.to_string() + " is also the gateway MAC", ""});
  if (n.mtu != 0) {
    uint32_t lo = v6 ? 1280 : 576;
    if (n.mtu < lo || n.mtu > 65520)
      errs.push_back({src.mtu, std::to_string(n.mtu) + " is out of range",
                      v6 ? "the MTU must be 1280-65520 while IPv6 is active" : "the MTU must be 576-65520"});
  }
  if (n.ifname.size() > 15) errs.push_back({src.ifname, "\"" + n.ifname + "\" is longer than 15 bytes", ""});
  for (char c : n.ifname) {
    if (c == '/' || c == ' ' || c == ':' || c == '\0') {
      errs.push_back({src.ifname, "\"" + n.ifname + "\" is not a valid interface name", ""});
      break;
    }
  }
  if (errs.size() > 20) errs.resize(20);
  return errs;
}

}  // namespace moat::config
