#include "config/net_specs.h"

#include <algorithm>
#include <charconv>

namespace moat::config {
namespace {

bool parse_port(std::string_view s, uint16_t* out, bool allow_zero = false) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > 65535 || (v == 0 && !allow_zero))
    return false;
  *out = uint16_t(v);
  return true;
}

std::string q(std::string_view s) { return std::string("\"").append(s).append("\""); }

/// "a" or "a-b" -> first port and count.
bool parse_range(std::string_view s, uint16_t* first, uint16_t* count, bool allow_zero) {
  auto dash = s.find('-');
  if (dash == std::string_view::npos) {
    *count = 1;
    return parse_port(s, first, allow_zero);
  }
  uint16_t lo = 0, hi = 0;
  if (!parse_port(s.substr(0, dash), &lo) || !parse_port(s.substr(dash + 1), &hi) || lo > hi) return false;
  *first = lo;
  *count = uint16_t(hi - lo + 1);
  return true;
}

}  // namespace

Result<UpstreamSpec, std::string> parse_upstream(std::string_view s) {
  UpstreamSpec u;
  std::string_view orig = s;
  if (s.rfind("tcp://", 0) == 0) {
    u.tcp = true;
    s.remove_prefix(6);
  } else if (s.rfind("udp://", 0) == 0) {
    s.remove_prefix(6);
  } else if (s.find("://") != std::string_view::npos) {
    return unexpected(q(orig) + " has an unsupported scheme; use IP[:PORT] or tcp://IP[:PORT]");
  }
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return unexpected(q(orig) + " has no closing ']'");
    auto a = Ipv6Addr::parse(s.substr(1, close - 1));
    if (!a) return unexpected(q(s.substr(1, close - 1)) + " is not an IPv6 address");
    u.addr = *a;
    auto rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || !parse_port(rest.substr(1), &u.port))
        return unexpected(q(orig) + " has a bad port; write [IPv6]:PORT with PORT 1-65535");
    }
    return u;
  }
  if (auto a = Ipv6Addr::parse(s)) {  // a bare IPv6 address (no port)
    u.addr = *a;
    return u;
  }
  auto colon = s.rfind(':');
  auto host = colon == std::string_view::npos ? s : s.substr(0, colon);
  auto a = Ipv4Addr::parse(host);
  if (!a) return unexpected(q(host) + " is not an IP address (hostnames are not supported here)");
  u.addr = *a;
  if (colon != std::string_view::npos && !parse_port(s.substr(colon + 1), &u.port))
    return unexpected(q(s.substr(colon + 1)) + " is not a port (1-65535)");
  return u;
}

bool same_binding(const PublishSpec& a, const PublishSpec& b) noexcept {
  return a.proto == b.proto && a.bind == b.bind && a.host_port == b.host_port && a.guest_port == b.guest_port &&
         a.count == b.count;
}

Result<PublishSpec, std::string> parse_publish(std::string_view s) {
  PublishSpec p;
  p.text = std::string(s);
  std::string_view body = s;
  if (auto slash = body.rfind('/'); slash != std::string_view::npos) {
    auto proto = body.substr(slash + 1);
    if (proto == "tcp") p.proto = Proto::tcp;
    else if (proto == "udp") p.proto = Proto::udp;
    else return unexpected(q(proto) + " is not a protocol; write /tcp or /udp");
    body = body.substr(0, slash);
  }
  // Optional bind address: bracketed IPv6 "[...]:" or IPv4 "a.b.c.d:" (the third field).
  if (!body.empty() && body.front() == '[') {
    auto close = body.find(']');
    if (close == std::string_view::npos || close + 1 >= body.size() || body[close + 1] != ':')
      return unexpected(q(s) + ": a bracketed bind address must be followed by ':'");
    auto a = Ipv6Addr::parse(body.substr(1, close - 1));
    if (!a) return unexpected(q(body.substr(1, close - 1)) + " is not an IPv6 address");
    p.bind = *a;
    body = body.substr(close + 2);
  } else if (size_t colons = size_t(std::count(body.begin(), body.end(), ':')); colons == 2) {
    auto c = body.find(':');
    auto a = Ipv4Addr::parse(body.substr(0, c));
    if (!a) return unexpected(q(body.substr(0, c)) + " is not an IPv4 address");
    p.bind = *a;
    body = body.substr(c + 1);
  } else if (colons > 2) {
    return unexpected(q(s) + ": an IPv6 bind address must be bracketed, e.g. [::1]:8080:80");
  }
  auto colon = body.find(':');
  if (colon == std::string_view::npos || body.find(':', colon + 1) != std::string_view::npos)
    return unexpected(q(s) + " needs HOSTPORT:GUESTPORT, e.g. 8080:80 or 127.0.0.1:8080:80/tcp");
  auto host = body.substr(0, colon), guest = body.substr(colon + 1);
  uint16_t hcount = 1, gcount = 1;
  if (!parse_range(host, &p.host_port, &hcount, /*allow_zero=*/true))
    return unexpected(q(host) + " is not a host port or range (1-65535, low-high)");
  if (!parse_range(guest, &p.guest_port, &gcount, false))
    return unexpected(q(guest) + " is not a guest port or range (1-65535, low-high)");
  if (p.host_port == 0 && gcount != 1) return unexpected(std::string("host port 0 (ephemeral) cannot map a range"));
  if (p.host_port != 0 && hcount != gcount)
    return unexpected("the host range has " + std::to_string(hcount) + " ports but the guest range has " +
                      std::to_string(gcount) + "; ranges must have equal length");
  p.count = gcount;
  return p;
}

std::vector<UpstreamSpec> parse_resolv_conf(std::string_view text) {
  std::vector<UpstreamSpec> out;
  size_t pos = 0;
  for (int lines = 0; pos < text.size() && lines < 10000; ++lines) {
    auto nl = text.find('\n', pos);
    auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    auto skip_ws = [](std::string_view v) {
      size_t i = 0;
      while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
      return v.substr(i);
    };
    line = skip_ws(line);
    if (line.rfind("nameserver", 0) != 0) continue;
    line = skip_ws(line.substr(10));
    auto end = line.find_first_of(" \t#;\r");
    auto addr = line.substr(0, end);
    if (auto pct = addr.find('%'); pct != std::string_view::npos) addr = addr.substr(0, pct);
    if (auto a = IpAddr::parse(addr)) out.push_back(UpstreamSpec{*a, 53, false});
  }
  return out;
}

Result<Dhcpv6Mode, std::string> parse_dhcpv6_mode(std::string_view s) {
  if (s == "stateless") return Dhcpv6Mode::stateless;
  if (s == "stateful") return Dhcpv6Mode::stateful;
  if (s == "off") return Dhcpv6Mode::off;
  return unexpected(std::string("\"").append(s) + "\" is not one of stateless, stateful, off");
}

Result<OffloadSpec, std::string> parse_offloads(std::string_view s) {
  OffloadSpec o;
  if (s == "auto") return o;
  o.automatic = false;
  if (s == "none") return o;
  std::string_view rest = s;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    bool* flag = item == "csum" ? &o.csum : item == "tso4" ? &o.tso4 : item == "tso6" ? &o.tso6
               : item == "uso"  ? &o.uso  : nullptr;
    if (flag == nullptr)
      return unexpected(std::string("\"").append(item) + "\" is not an offload (expected auto, none, or a list of csum, tso4, tso6, uso)");
    if (*flag) return unexpected(std::string("\"").append(item) + "\" is listed twice");
    *flag = true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if ((o.tso4 || o.tso6 || o.uso) && !o.csum)
    return unexpected(std::string("\"").append(s) + "\": tso4, tso6 and uso need csum");
  return o;
}

}  // namespace moat::config
