#include "policy/explain.h"

#include <charconv>

namespace moat::policy {

void StaticPins::add(std::string name, const IpAddr& a) { pins_.emplace_back(std::move(name), normalize(a)); }

bool StaticPins::any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view name)> pred) const {
  const IpAddr n = normalize(a);
  for (const auto& [name, addr] : pins_)
    if (addr == n && pred(name)) return true;
  return false;
}

std::vector<std::string> StaticPins::names_of(const IpAddr& a) const {
  std::vector<std::string> out;
  const IpAddr n = normalize(a);
  for (const auto& [name, addr] : pins_)
    if (addr == n) out.push_back(name);
  return out;
}

namespace {

std::string pad(std::string s, size_t w) {
  if (s.size() < w) s.append(w - s.size(), ' ');
  else s += ' ';
  return s;
}

std::string endpoint(const IpAddr& a, std::optional<uint16_t> port) {
  std::string s = a.is_v6 ? "[" + a.to_string() + "]" : a.to_string();
  if (!port) return a.to_string();
  return s + ":" + std::to_string(*port);
}

/// `rule #1 (cli) "allow@*.github.com:tcp:443" [label]`.
std::string rule_ref(const Engine& e, size_t i) {
  const Rule& r = e.policy().rules[i];
  std::string s = "rule #" + std::to_string(i) + " (" + std::string(origin_name(r.origin)) + ") \"" + r.text + "\"";
  if (!r.label.empty()) s += " [" + r.label + "]";
  return s;
}

/// "allow by rule #1 (cli) "allow@*.github.com:tcp:443"" or "deny by default".
std::string describe(const Engine& e, const Verdict& v) {
  return std::string(action_name(v.action)) + " by " + (v.rule ? rule_ref(e, *v.rule) : std::string("default"));
}

/// A representative address for "would a private answer pass rebind protection".
IpAddr private_example(const Engine& e, const IpAddr& pinned) {
  Group g = e.group_of(pinned);
  if (g != Group::public_ && g != Group::none) return pinned;
  return IpAddr(Ipv4Addr::from_octets(10, 0, 0, 1));
}

}  // namespace

ExplainReport explain_report(const Engine& e, const ExplainRequest& rq, const PinLookup& pins,
                             const StaticPins* shown_pins) {
  ExplainReport rep;
  Query q = rq.query;
  const IpAddr a = normalize(q.addr);
  const bool named = !rq.name.empty();
  const bool tcp_egress = q.dir == Direction::egress && q.proto == Proto::tcp && q.port.has_value();

  std::string line = pad("query", 9) + std::string(direction_name(q.dir)) + " " + std::string(proto_name(q.proto)) + " ";
  if (q.dir == Direction::ingress)  // the peer address and the published guest port (R-POL-11)
    line += "from " + a.to_string() + (q.port ? " to guest port " + std::to_string(*q.port) : std::string());
  else
    line += endpoint(a, q.port);
  line += " group=" + std::string(group_name(e.group_of(a)));
  if (named) line += " name=" + rq.name + " (sni)";
  if (shown_pins != nullptr) {
    std::string names;
    for (const auto& n : shown_pins->names_of(a)) names += (names.empty() ? "" : ",") + n;
    line += " pins(" + a.to_string() + ")={" + names + "}";
  }
  rep.lines.push_back(line);

  Verdict dns_v;
  if (named && q.dir == Direction::egress) {
    dns_v = e.decide_dns(rq.name, Proto::udp, 53);
    rep.lines.push_back(pad("dns", 9) + rq.name + " -> " + describe(e, dns_v));
    if (!rq.rebind_protection) {
      rep.lines.push_back(pad("rebind", 9) + "protection off (dns.rebind_protection = false)");
    } else {
      IpAddr ex = private_example(e, a);
      bool pass = dns_v.allowed() && e.rebind_exception(dns_v, ex);
      rep.lines.push_back(pad("rebind", 9) + "a " + std::string(group_name(e.group_of(ex))) + " answer (" +
                          ex.to_string() + ") for " + rq.name +
                          (pass ? " would pass (R-DNS-8 exception)" : " would be dropped by rebind protection"));
    }
  }

  // The primary evaluation: a name arrives as a claimed SNI/Host (S = claimed), as the
  // data path sees it on the inspect path or gate; without one, pins only (S = none).
  q.src = named ? NameSource::claimed(rq.name) : NameSource::none();
  for (const auto& l : e.explain(q, pins)) rep.lines.push_back(format_explain_line(l));
  rep.verdict = e.decide(q, pins);
  // No floor policy in this build (R-MT-2): the tenant verdict is the effective one.
  std::string v = pad("verdict", 9) + std::string(action_name(rep.verdict.action)) + " (tenant) / allow (floor: none)";
  if (tcp_egress) v += "     path: " + std::string(tcp_path_name(e.select_path(a, *q.port, pins)));
  rep.lines.push_back(v);
  rep.lines.push_back(pad("by", 9) + (rep.verdict.rule ? rule_ref(e, *rep.verdict.rule)
                                                        : "default_" + std::string(direction_name(q.dir)) + " = " +
                                                              std::string(action_name(rep.verdict.action))));
  if (named) {
    Query none = q;
    none.src = NameSource::none();
    rep.lines.push_back(pad("no-name", 9) + describe(e, e.decide(none, pins)) +
                        " (a first packet without SNI/Host: pins only)");
  }
  rep.allowed = rep.verdict.allowed();
  return rep;
}

Result<ExplainRequest, ExplainInputError> make_explain_request(const ExplainInputs& in, StaticPins& pins,
                                                               FunctionRef<std::string(std::string_view field)> name_of) {
  // A name destination without `ip` stands for this public, otherwise unremarkable address.
  const IpAddr kSymbolicPublic = Ipv4Addr::from_octets(100, 128, 0, 1);
  auto fail = [](std::string field, std::string what, std::string hint = {}) {
    return unexpected(ExplainInputError{std::move(field), std::move(what), std::move(hint)});
  };
  if (in.ingress && !in.src) return fail("ingress", "needs " + name_of("src") + " (the peer address)");
  if (!in.ingress && in.src) return fail("src", "only applies to ingress queries");
  if (in.ingress && (!in.sni.empty() || in.ip)) return fail("ingress", "ingress queries carry no name");
  ExplainRequest rq;
  if (!in.ingress) {
    if (in.dst.host.empty()) return fail("dst", "has no host", "write HOST:PORT[/tcp|/udp|/icmp]");
    if (auto literal = IpAddr::parse(in.dst.host)) {
      if (in.ip) return fail("ip", "only applies when " + name_of("dst") + " names a host");
      rq.query.addr = *literal;
    } else if (auto n = normalize_name(in.dst.host)) {
      rq.name = *n;
      rq.query.addr = in.ip.value_or(kSymbolicPublic);
      pins.add(*n, rq.query.addr);
    } else {
      return fail("dst", "\"" + in.dst.host + "\": " + n.error().what, n.error().hint);
    }
    if (!in.sni.empty()) {
      if (!rq.name.empty() && rq.name != in.sni)
        return fail("sni", "differs from the " + name_of("dst") + " name", "give the name once");
      rq.name = in.sni;
    }
  }
  for (const auto& [n, a] : in.pins) pins.add(n, a);
  if (in.ingress) {
    rq.query.dir = Direction::ingress;
    rq.query.addr = *in.src;
  }
  rq.query.port = in.dst.port;
  if (in.dst.proto == "tcp") rq.query.proto = Proto::tcp;
  else if (in.dst.proto == "udp") rq.query.proto = Proto::udp;
  else rq.query.proto = normalize(rq.query.addr).is_v6 ? Proto::icmpv6 : Proto::icmpv4;
  rq.rebind_protection = in.rebind_protection;
  return rq;
}

Result<ExplainDst, ExplainDstError> parse_explain_dst(std::string_view v) {
  ExplainDst d;
  std::string_view s = v;
  auto err = [](std::string what, std::string hint = {}) {
    return unexpected(ExplainDstError{std::move(what), std::move(hint)});
  };
  if (auto slash = s.rfind('/'); slash != std::string_view::npos && s.find(']', slash) == std::string_view::npos) {
    std::string_view p = s.substr(slash + 1);
    if (p != "tcp" && p != "udp" && p != "icmp") return err("has a protocol other than tcp, udp, icmp", "write HOST:PORT/udp");
    d.proto = std::string(p);
    s = s.substr(0, slash);
  }
  std::string_view host = s, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return err("has no closing ']'");
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return err("is not HOST:PORT", "write [2001:db8::1]:443");
      port = rest.substr(1);
    }
  } else if (auto colon = s.rfind(':'); colon != std::string_view::npos) {
    if (s.find(':') != colon) return err("is an IPv6 address without brackets", "write [2001:db8::1]:443");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  d.host = std::string(host);
  if (port.empty()) {
    if (d.proto != "icmp") return err("has no port", "write HOST:PORT[/tcp|/udp|/icmp]");
    return d;
  }
  if (d.proto == "icmp") return err("gives a port to ICMP", "write HOST/icmp");
  unsigned pn = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), pn);
  if (ec != std::errc{} || end != port.data() + port.size() || pn < 1 || pn > 65535)
    return err("has a port outside 1..65535");
  d.port = uint16_t(pn);
  return d;
}

}  // namespace moat::policy
