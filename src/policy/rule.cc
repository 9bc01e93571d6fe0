#include "policy/rule.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <span>

namespace moat::policy {

std::string_view action_name(Action a) noexcept { return a == Action::allow ? "allow" : "deny"; }

std::string_view direction_name(Direction d) noexcept {
  switch (d) {
    case Direction::egress: return "egress";
    case Direction::ingress: return "ingress";
    case Direction::any: return "any";
  }
  return "egress";
}

std::string_view proto_name(Proto p) noexcept {
  switch (p) {
    case Proto::tcp: return "tcp";
    case Proto::udp: return "udp";
    case Proto::icmpv4: return "icmpv4";
    case Proto::icmpv6: return "icmpv6";
  }
  return "tcp";
}

std::string_view origin_name(Origin o) noexcept {
  switch (o) {
    case Origin::block: return "block";
    case Origin::cli: return "cli";
    case Origin::config: return "config";
    case Origin::profile: return "profile";
    case Origin::floor: return "floor";
    case Origin::default_: return "default";
  }
  return "cli";
}

// ---------------------------------------------------------------------------------------------
// Cidr and Target

bool Cidr::contains(const IpAddr& given) const noexcept {
  const IpAddr a = normalize(given);
  if (!net.is_v6) {
    if (!a.is_v6) return a.v4.in_subnet(net.v4, prefix);
    if (auto e = nat64_embedded(a.v6)) return e->in_subnet(net.v4, prefix);
    return false;
  }
  return a.is_v6 && a.v6.in_subnet(net.v6, prefix);
}

bool Cidr::covers(const Cidr& inner) const noexcept {
  if (net.is_v6 != inner.net.is_v6 || prefix > inner.prefix) return false;
  return net.is_v6 ? inner.net.v6.in_subnet(net.v6, prefix) : inner.net.v4.in_subnet(net.v4, prefix);
}

std::string Cidr::to_string() const {
  std::string s = net.to_string();
  if (prefix != (net.is_v6 ? 128 : 32)) s += "/" + std::to_string(prefix);
  return s;
}

namespace {

char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

}  // namespace

bool Target::matches_name(std::string_view n) const noexcept {
  if (!n.empty() && n.back() == '.') n.remove_suffix(1);
  if (kind == Kind::domain) return iequal(n, name);
  if (kind != Kind::suffix) return false;
  if (n.size() == name.size()) return iequal(n, name);
  // Aligned on labels: "evilexample.com" never matches suffix "example.com".
  return n.size() > name.size() && n[n.size() - name.size() - 1] == '.' &&
         iequal(n.substr(n.size() - name.size()), name);
}

// ---------------------------------------------------------------------------------------------
// Names (R-POL-3)


namespace {

std::string quote(std::string_view s) { return quote_value(s); }  // bounded, escaped (§5.2)

/// The closest keyword within edit distance 2, or empty.
std::string_view closest(std::string_view tok, std::span<const std::string_view> cands) {
  std::string_view best;
  size_t best_d = 3;
  for (auto c : cands) {
    size_t d = edit_distance(tok, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string_view closest(std::string_view tok, std::initializer_list<std::string_view> cands) {
  return closest(tok, std::span<const std::string_view>(cands.begin(), cands.size()));
}

std::string did_you_mean(std::string_view kw) { return kw.empty() ? "" : "did you mean " + quote(kw) + "?"; }

bool is_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// Tokens made of digits, dots and '/' are IPv4 attempts, never names.
bool is_v4_like(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.' || c == '/'; });
}

/// Decimal value of a digit string of at most 9 digits (callers check is_digits).
uint32_t to_number(std::string_view s) noexcept {
  uint32_t v = 0;
  for (char c : s.substr(0, 9)) v = v * 10 + uint32_t(c - '0');
  return v;
}

size_t label_count(std::string_view name) noexcept { return size_t(std::count(name.begin(), name.end(), '.')) + 1; }

}  // namespace

Result<std::string, NameError> normalize_name(std::string_view name) {
  auto fail = [](size_t col, std::string what, std::string hint = {}) {
    return unexpected(NameError{col, std::move(what), std::move(hint)});
  };
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return fail(1, "empty name");
  if (IpAddr::parse(name)) return fail(1, quote(name) + " is an IP address, not a name");
  if (auto p = name.find("://"); p != std::string_view::npos)
    return fail(1, "a URL scheme is not allowed in a name", "write the host name only");
  for (size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x80) return fail(i + 1, quote(name) + " is not ASCII", "use the A-label (xn--…) form");
    if (c == '*') return fail(i + 1, "\"*\" is only allowed as a leading \"*.\"");
    if (c == '/') return fail(i + 1, "a path is not allowed in a name");
    if (c == ':') return fail(i + 1, "a port is not allowed in a name");
    if (c == '@') return fail(i + 1, "userinfo is not allowed in a name");
    if (c <= ' ' || c == 0x7f) return fail(i + 1, "whitespace or control character in a name");
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.';
    if (!ok) return fail(i + 1, "invalid character " + quote(std::string(1, char(c))) + " in a name");
  }
  if (name.size() > 253) return fail(254, "name longer than 253 octets");
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    size_t end = dot == std::string_view::npos ? name.size() : dot;
    if (end == start) return fail(start + 1, "empty label in a name");
    if (end - start > 63) return fail(start + 1, "label longer than 63 octets");
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  std::string out(name);
  for (auto& c : out) c = ascii_lower(c);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rule strings (R-POL-15)

std::string rule_to_string(const Rule& r) {
  std::string s(action_name(r.action));
  if (r.dir != Direction::egress) s += ":" + std::string(direction_name(r.dir));
  s += "@";
  if (r.dns_macro) {
    s += "dns";
    if (r.protos == ProtoSet{ProtoSet::bit(Proto::tcp)}) s += ":tcp";
    if (r.protos == ProtoSet{ProtoSet::bit(Proto::udp)}) s += ":udp";
    return s;
  }
  switch (r.target.kind) {
    case Target::Kind::any: s += "any"; break;
    case Target::Kind::group: s += group_name(r.target.group); break;
    case Target::Kind::cidr:
      s += r.target.cidr.net.is_v6 ? "[" + r.target.cidr.to_string() + "]" : r.target.cidr.to_string();
      break;
    case Target::Kind::domain:
      // A bare name must look like an fqdn to the parser; otherwise spell out the kind.
      if (r.target.name.find('.') != std::string::npos && !is_v4_like(r.target.name)) s += r.target.name;
      else s += "domain=" + r.target.name;
      break;
    case Target::Kind::suffix: s += "*." + r.target.name; break;
  }
  if (r.protos.empty() && r.ports.empty()) return s;
  s += ":";
  if (r.protos.empty()) {
    s += "any";
  } else {
    std::string p;
    auto add = [&](std::string_view n) {  // appends only: g++ 12 -O3 -Wrestrict misfires on "x" + string
      if (!p.empty()) p += '+';
      p += n;
    };
    if (r.protos.has(Proto::tcp)) add("tcp");
    if (r.protos.has(Proto::udp)) add("udp");
    if (r.protos.has(Proto::icmpv4) && r.protos.has(Proto::icmpv6)) add("icmp");
    else if (r.protos.has(Proto::icmpv4)) add("icmpv4");
    else if (r.protos.has(Proto::icmpv6)) add("icmpv6");
    s += p;
  }
  if (r.ports.empty()) return s;
  s += ":";
  for (size_t i = 0; i < r.ports.size(); ++i) {
    if (i) s += "+";
    s += std::to_string(r.ports[i].lo);
    if (r.ports[i].hi != r.ports[i].lo) s += "-" + std::to_string(r.ports[i].hi);
  }
  return s;
}

namespace {

/// Error inside one rule; column is 1-based within the rule.
struct Err {
  size_t column;
  std::string what;
  std::string hint;
};

constexpr std::array<std::string_view, 10> kTargetKeywords = {
    "any", "dns", "public", "private", "host", "loopback", "link-local", "metadata", "multicast", "reserved"};
constexpr std::array<std::string_view, 8> kGroupKeywords = {
    "public", "private", "host", "loopback", "link-local", "metadata", "multicast", "reserved"};

/// Parses one trimmed rule. `orig` keeps the user's case for messages; `low` is the
/// ASCII-lowercased copy (same length) that the grammar is matched against.
class RuleParser {
 public:
  RuleParser(std::string_view orig, Origin origin) : orig_(orig), low_(orig) {
    for (auto& c : low_) c = ascii_lower(c);
    rule_.origin = origin;
  }

  Result<Rule, Err> parse() {
    if (orig_.empty()) return fail(1, "empty rule");
    for (size_t i = 0; i < orig_.size(); ++i)
      if (orig_[i] == ' ' || orig_[i] == '\t' || orig_[i] == '\n' || orig_[i] == '\r')
        return fail(i + 1, "a rule contains no spaces");
    const std::string_view low = low_;
    const size_t at = low.find('@');
    const std::string_view head = low.substr(0, at);
    // head = action [ ":" direction ]
    const size_t c1 = head.find(':');
    const std::string_view action = head.substr(0, c1);
    if (action == "allow") rule_.action = Action::allow;
    else if (action == "deny") rule_.action = Action::deny;
    else if (action.empty()) return fail(1, "missing action", "start the rule with \"allow\" or \"deny\"");
    else return fail(1, "unknown action " + quote(orig_.substr(0, action.size())), did_you_mean(closest(action, {"allow", "deny"})));
    if (c1 != std::string_view::npos) {
      std::string_view dir = head.substr(c1 + 1);
      const size_t c2 = dir.find(':');
      if (c2 != std::string_view::npos)
        return fail(c1 + 2 + c2, "unexpected " + quote(orig_.substr(c1 + 1 + c2, head.size() - c1 - 1 - c2)) + " before \"@\"");
      dir_col_ = c1 + 2;
      if (dir == "egress") rule_.dir = Direction::egress;
      else if (dir == "ingress") rule_.dir = Direction::ingress;
      else if (dir == "any") rule_.dir = Direction::any;
      else if (dir.empty()) return fail(dir_col_, "empty direction", "write \"egress\", \"ingress\" or \"any\"");
      else return fail(dir_col_, "unknown direction " + quote(orig_.substr(c1 + 1, dir.size())), did_you_mean(closest(dir, {"egress", "ingress", "any"})));
    }
    if (at == std::string_view::npos)
      return fail(orig_.size() + 1, "missing \"@\" and a target", "write \"" + std::string(orig_) + "@TARGET\"");
    if (auto e = parse_target(at + 1)) return unexpected(std::move(*e));
    if (auto e = parse_protos_and_ports()) return unexpected(std::move(*e));
    if (auto e = validate()) return unexpected(std::move(*e));
    rule_.text = rule_to_string(rule_);
    return std::move(rule_);
  }

 private:
  static Unexpected<Err> fail(size_t col, std::string what, std::string hint = {}) {
    return unexpected(Err{col, std::move(what), std::move(hint)});
  }
  static std::optional<Err> err(size_t col, std::string what, std::string hint = {}) {
    return Err{col, std::move(what), std::move(hint)};
  }
  std::string_view o(size_t pos, size_t n = std::string_view::npos) const { return orig_.substr(pos, n); }

  /// An IPv6 address (optionally "/len") written without brackets starting at `pos`: the
  /// longest prefix ending at a ':' boundary or the end that parses. Empty if none.
  std::string_view unbracketed_v6(size_t pos) const {
    const std::string_view t = std::string_view(low_).substr(pos);
    if (std::count(t.begin(), t.end(), ':') < 2) return {};
    for (size_t end = t.size();;) {
      const std::string_view cand = t.substr(0, end);
      const std::string_view addr = cand.substr(0, cand.find('/'));
      if (Ipv6Addr::parse(addr) && (addr.size() == cand.size() || is_digits(cand.substr(addr.size() + 1))))
        return o(pos, end);
      if (end == 0) break;
      const size_t c = t.rfind(':', end - 1);
      if (c == std::string_view::npos) break;
      end = c;
    }
    return {};
  }

  std::optional<Err> parse_prefix(std::string_view s, size_t col, int max, int& out) {
    if (!is_digits(s) || s.size() > 3) return err(col, "prefix length " + quote(s) + " is not a number");
    out = int(to_number(s));
    if (out > max) return err(col, "prefix length " + std::to_string(out) + " is out of range (0-" + std::to_string(max) + ")");
    return std::nullopt;
  }

  /// A CIDR or bare address at [pos, pos+len) (without brackets). Host bits are an error.
  std::optional<Err> parse_cidr(size_t pos, size_t len, bool v6, bool bracketed) {
    const std::string_view text = std::string_view(low_).substr(pos, len);
    const size_t slash = text.find('/');
    const std::string_view addr = text.substr(0, slash);
    Cidr c;
    if (v6) {
      auto a = Ipv6Addr::parse(addr);
      if (!a) return err(pos + 1, quote(o(pos, addr.size())) + " is not a valid IPv6 address");
      c.net = IpAddr(*a);
      c.prefix = 128;
    } else {
      auto a = Ipv4Addr::parse(addr);
      if (!a) return err(pos + 1, quote(o(pos, addr.size())) + " is not a valid IPv4 address");
      c.net = IpAddr(*a);
      c.prefix = 32;
    }
    if (slash != std::string_view::npos)
      if (auto e = parse_prefix(text.substr(slash + 1), pos + slash + 2, v6 ? 128 : 32, c.prefix)) return e;
    Cidr net = c;
    if (v6) {
      for (size_t i = 0; i < 16; ++i) {
        int keep = std::clamp(c.prefix - int(i) * 8, 0, 8);
        net.net.v6.bytes[i] = uint8_t(net.net.v6.bytes[i] & uint8_t(0xff00u >> keep));
      }
    } else {
      net.net.v4.value &= Ipv4Addr::mask(c.prefix);
    }
    if (!(net == c)) {
      std::string fix = net.net.to_string() + "/" + std::to_string(c.prefix);
      if (bracketed) fix = "[" + fix + "]";
      return err(pos + 1, std::string(o(pos, len)) + " has host bits set", "did you mean " + fix + "?");
    }
    // R-POL-4: a v4-mapped prefix of length >= 96 is rewritten to IPv4 at parse time.
    if (v6 && c.prefix >= 96 && c.net.v6.is_v4_mapped()) {
      c.net = normalize(c.net);
      c.prefix -= 96;
    }
    rule_.target.kind = Target::Kind::cidr;
    rule_.target.cidr = c;
    return std::nullopt;
  }

  /// "[" ipv6 [ "/" len ] "]" at `pos`; sets `end_` past the ']'.
  std::optional<Err> parse_bracketed(size_t pos) {
    const size_t close = low_.find(']', pos);
    if (close == std::string::npos) return err(pos + 1, "missing \"]\" after the IPv6 address");
    if (auto e = parse_cidr(pos + 1, close - pos - 1, true, true)) return e;
    end_ = close + 1;
    if (end_ < low_.size() && low_[end_] != ':')
      return err(end_ + 1, "unexpected " + quote(o(end_)) + " after \"]\"");
    return std::nullopt;
  }

  std::optional<Err> unbracketed_error(size_t pos) {
    std::string_view v6 = unbracketed_v6(pos);
    if (v6.empty()) return std::nullopt;
    return err(pos + 1, "IPv6 address " + quote(v6) + " needs brackets", "write \"[" + std::string(v6) + "]\"");
  }

  std::optional<Err> set_name(size_t pos, std::string_view raw, Target::Kind kind) {
    auto n = normalize_name(raw);
    if (!n) return err(pos + n.error().column, n.error().what, n.error().hint);
    if (kind == Target::Kind::suffix && label_count(*n) < 2)
      return err(pos + 1, "suffix " + quote(*n) + " needs at least 2 labels");
    rule_.target.kind = kind;
    rule_.target.name = std::move(*n);
    return std::nullopt;
  }

  std::optional<Err> parse_target(size_t pos) {
    const std::string_view low = low_;
    if (pos >= low.size()) return err(pos + 1, "missing target after \"@\"");
    if (low[pos] == ':') {
      if (auto e = unbracketed_error(pos)) return e;  // allow@::1
      return err(pos + 1, "missing target after \"@\"");
    }
    if (auto p = low.find("://", pos); p != std::string_view::npos)
      return err(pos + 1, "a URL is not a target", "write the host name only");
    if (low[pos] == '[') return parse_bracketed(pos);
    if (low.substr(pos).starts_with("cidr=")) {
      const size_t v = pos + 5;
      if (v < low.size() && low[v] == '[') return parse_bracketed(v);
      if (auto e = unbracketed_error(v)) return e;
      end_ = std::min(low.find(':', v), low.size());
      if (end_ == v) return err(v + 1, "missing address after \"cidr=\"");
      return parse_cidr(v, end_ - v, false, false);
    }
    if (auto e = unbracketed_error(pos)) return e;
    end_ = std::min(low.find(':', pos), low.size());
    const std::string_view tok = low.substr(pos, end_ - pos);
    const std::string_view otok = o(pos, tok.size());
    if (tok == "any") {
      rule_.target.kind = Target::Kind::any;
    } else if (tok == "dns") {
      rule_.dns_macro = true;
      rule_.target.kind = Target::Kind::group;
      rule_.target.group = Group::host;
    } else if (auto g = parse_group(tok)) {
      rule_.target.kind = Target::Kind::group;
      rule_.target.group = *g;
    } else if (const size_t eq = tok.find('='); eq != std::string_view::npos) {
      const std::string_view key = tok.substr(0, eq), val = tok.substr(eq + 1);
      const size_t vpos = pos + eq + 1;
      if (key == "domain") return set_name(vpos, o(vpos, val.size()), Target::Kind::domain);
      if (key == "suffix") {
        // "suffix=*.x" is redundant but unambiguous.
        if (val.starts_with("*.")) return set_name(vpos + 2, o(vpos + 2, val.size() - 2), Target::Kind::suffix);
        return set_name(vpos, o(vpos, val.size()), Target::Kind::suffix);
      }
      if (key == "group") {
        auto g = parse_group(val);
        if (!g) return err(vpos + 1, "unknown group " + quote(o(vpos, val.size())), did_you_mean(closest(val, kGroupKeywords)));
        rule_.target.kind = Target::Kind::group;
        rule_.target.group = *g;
        return std::nullopt;
      }
      auto s = closest(key, {"domain", "suffix", "group", "cidr"});
      return err(pos + 1, "unknown target kind " + quote(std::string(o(pos, eq + 1))),
                 s.empty() ? "" : did_you_mean(std::string(s) + "="));
    } else if (tok.starts_with("*.")) {
      return set_name(pos + 2, o(pos + 2, tok.size() - 2), Target::Kind::suffix);
    } else if (is_v4_like(tok)) {
      return parse_cidr(pos, tok.size(), false, false);
    } else if (tok.find('.') != std::string_view::npos) {
      return set_name(pos, otok, Target::Kind::domain);
    } else {
      // A single label: a misspelt keyword, an invalid name, or a name needing "domain=".
      if (auto s = closest(tok, kTargetKeywords); !s.empty())
        return err(pos + 1, "unknown target " + quote(otok), did_you_mean(s));
      auto n = normalize_name(otok);
      if (!n) return err(pos + n.error().column, n.error().what, n.error().hint);
      return err(pos + 1, quote(otok) + " is a single-label name", "write \"domain=" + *n + "\"");
    }
    return std::nullopt;
  }

  static bool is_port_item(std::string_view s) {
    const size_t dash = s.find('-');
    if (dash == std::string_view::npos) return is_digits(s);
    return is_digits(s.substr(0, dash)) && is_digits(s.substr(dash + 1));
  }

  std::optional<Err> parse_port(std::string_view s, size_t col, uint16_t& out) {
    if (!is_digits(s)) return err(col, quote(s) + " is not a port");
    const uint32_t v = s.size() > 5 ? 100000 : to_number(s);
    if (v == 0 || v > 65535) return err(col, "port " + std::string(s) + " is out of range (1-65535)");
    out = uint16_t(v);
    return std::nullopt;
  }

  std::optional<Err> parse_protos_and_ports() {
    const std::string_view low = low_;
    if (end_ >= low.size()) return std::nullopt;
    // low[end_] == ':' here.
    const size_t ppos = end_ + 1;
    const size_t pend = std::min(low.find(':', ppos), low.size());
    const std::string_view protos = low.substr(ppos, pend - ppos);
    protos_col_ = ppos + 1;
    bool any = false;
    // A part made only of port items means the protocol was left out (allow@host:443).
    bool all_ports = !protos.empty();
    for (size_t s = 0; s <= protos.size();) {
      size_t e = std::min(protos.find('+', s), protos.size());
      if (!is_port_item(protos.substr(s, e - s))) all_ports = false;
      s = e + 1;
    }
    for (size_t s = 0; s <= protos.size();) {
      const size_t e = std::min(protos.find('+', s), protos.size());
      const std::string_view item = protos.substr(s, e - s);
      const size_t col = ppos + s + 1;
      if (item.empty()) return err(col, "empty protocol item");
      if (item == "any") any = true;
      else if (item == "tcp") rule_.protos.add(Proto::tcp);
      else if (item == "udp") rule_.protos.add(Proto::udp);
      else if (item == "icmp") rule_.protos.add(Proto::icmpv4), rule_.protos.add(Proto::icmpv6);
      else if (item == "icmpv4") rule_.protos.add(Proto::icmpv4);
      else if (item == "icmpv6") rule_.protos.add(Proto::icmpv6);
      else if (is_port_item(item)) {
        std::string hint;
        if (all_ports && pend == low.size())
          hint = "write \"" + std::string(o(0, ppos)) + "tcp:" + std::string(o(ppos)) + "\"";
        return err(col, quote(o(ppos + s, item.size())) + " is not a protocol", hint);
      } else {
        return err(col, "unknown protocol " + quote(o(ppos + s, item.size())),
                   did_you_mean(closest(item, {"tcp", "udp", "icmp", "icmpv4", "icmpv6", "any"})));
      }
      s = e + 1;
    }
    if (any) rule_.protos = ProtoSet{};
    if (pend >= low.size()) return std::nullopt;
    const size_t qpos = pend + 1;
    const size_t qend = std::min(low.find(':', qpos), low.size());
    if (qend != low.size()) return err(qend + 1, "unexpected " + quote(o(qend)) + " after the ports");
    const std::string_view ports = low.substr(qpos, qend - qpos);
    ports_col_ = qpos + 1;
    bool any_port = false;
    for (size_t s = 0; s <= ports.size();) {
      const size_t e = std::min(ports.find('+', s), ports.size());
      const std::string_view item = ports.substr(s, e - s);
      const size_t col = qpos + s + 1;
      if (item.empty()) return err(col, "empty port item");
      if (item == "any") {
        any_port = true;
      } else {
        const size_t dash = item.find('-');
        PortRange r;
        if (dash == std::string_view::npos) {
          if (auto x = parse_port(item, col, r.lo)) return x;
          r.hi = r.lo;
        } else {
          if (auto x = parse_port(item.substr(0, dash), col, r.lo)) return x;
          if (auto x = parse_port(item.substr(dash + 1), col + dash + 1, r.hi)) return x;
          if (r.lo > r.hi)
            return err(col, "port range " + quote(item) + " has low > high",
                       "write \"" + std::to_string(r.hi) + "-" + std::to_string(r.lo) + "\"");
        }
        rule_.ports.push_back(r);
      }
      s = e + 1;
    }
    if (any_port) rule_.ports.clear();
    return std::nullopt;
  }

  std::optional<Err> validate() {
    if (rule_.dns_macro) {
      if (rule_.dir != Direction::egress) return err(dir_col_, "the dns macro is egress only");
      if (rule_.protos.has_icmp()) return err(protos_col_, "the dns macro takes only tcp or udp");
      if (ports_col_ != 0)
        return err(ports_col_, "the dns macro takes no ports (it means port 53)", "for DoT write \"allow@host:tcp:853\"");
      if (rule_.protos.empty()) rule_.protos = ProtoSet{uint8_t(ProtoSet::bit(Proto::tcp) | ProtoSet::bit(Proto::udp))};
      rule_.ports = {PortRange{53, 53}};
      return std::nullopt;
    }
    if (rule_.protos.has_icmp()) {
      if (rule_.dir != Direction::egress) return err(dir_col_, "ICMP rules must be egress");
      if (!rule_.ports.empty() || ports_col_ != 0) return err(ports_col_, "ICMP rules take no ports");
    }
    return std::nullopt;
  }

  std::string_view orig_;
  std::string low_;
  Rule rule_;
  size_t end_ = 0;        ///< offset just past the target
  size_t dir_col_ = 1;    ///< column of the direction keyword (or of the action when omitted)
  size_t protos_col_ = 0;
  size_t ports_col_ = 0;  ///< 0 when no ports part was written
};

}  // namespace

Result<std::vector<Rule>, std::vector<RulesTextError>> parse_rules_text(std::string_view text, Origin origin,
                                                                         size_t max_errors) {
  std::vector<Rule> rules;
  std::vector<RulesTextError> errs;
  size_t line_no = 0, pos = 0;
  while (pos < text.size() && errs.size() < max_errors) {
    const size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, (nl == std::string_view::npos ? text.size() : nl) - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto r = parse_rules(line, origin);
    if (!r) {
      RuleError e = r.error();
      // Where the failing comma piece starts in the line, its leading blanks skipped.
      size_t start = 0;
      for (size_t k = 0; k < e.rule_index_in_value; ++k) {
        const size_t c = line.find(',', start);
        if (c == std::string_view::npos) break;
        start = c + 1;
      }
      while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
      errs.push_back({line_no, start + e.column, rules.size() + e.rule_index_in_value + 1, std::move(e)});
      continue;
    }
    for (auto& rule : *r) rules.push_back(std::move(rule));
  }
  if (!errs.empty()) return unexpected(std::move(errs));
  return rules;
}

Result<std::vector<Rule>, RuleError> parse_rules(std::string_view value, Origin origin) {
  std::vector<Rule> out;
  size_t index = 0;
  for (size_t start = 0;; ++index) {
    const size_t comma = std::min(value.find(',', start), value.size());
    std::string_view piece = value.substr(start, comma - start);
    while (!piece.empty() && (piece.front() == ' ' || piece.front() == '\t')) piece.remove_prefix(1);
    while (!piece.empty() && (piece.back() == ' ' || piece.back() == '\t')) piece.remove_suffix(1);
    auto r = RuleParser(piece, origin).parse();
    if (!r) return unexpected(RuleError{index, r.error().column, r.error().what, r.error().hint, std::string(piece)});
    out.push_back(std::move(*r));
    if (comma == value.size()) break;
    start = comma + 1;
  }
  return out;
}

std::string format_rule_error(std::string_view where, const RuleError& e, ErrorStyle style) {
  std::string s = "moat: error: " + std::string(where);
  if (style == ErrorStyle::cli) s += " \"" + e.rule_text + "\" col " + std::to_string(e.column);
  s += ": " + e.what;
  if (!e.hint.empty()) s += "; " + e.hint;
  return s;
}

}  // namespace moat::policy
