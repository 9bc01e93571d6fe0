#include "policy/engine.h"

#include <algorithm>
#include <array>

namespace moat::policy {

std::string_view tcp_path_name(TcpPath p) noexcept {
  switch (p) {
    case TcpPath::fast: return "fast path";
    case TcpPath::gate: return "fast path + gate";
    case TcpPath::inspect: return "inspect path";
    case TcpPath::reject: return "reject at SYN";
  }
  return "reject at SYN";
}

Engine::Engine(Policy policy, HostAddrs host) : policy_(std::move(policy)), host_(std::move(host)) {
  // Index the block-list prefix while its rules have the shape compile_dns_block() gives.
  size_t n = 0;
  for (; n < policy_.rules.size(); ++n) {
    const Rule& r = policy_.rules[n];
    if (r.origin != Origin::block || r.action != Action::deny || r.dir != Direction::egress || !r.protos.empty() ||
        !r.ports.empty() || !r.target.is_name())
      break;
  }
  if (n < 2) return;  // a scan is as cheap
  block_.count = n;
  for (size_t i = 0; i < n; ++i) {
    const Target& t = policy_.rules[i].target;
    (t.kind == Target::Kind::domain ? block_.exact : block_.suffix).emplace(t.name, uint32_t(i));
  }
}

std::optional<size_t> Engine::block_lookup(std::string_view name) const {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return std::nullopt;
  char buf[256];
  std::string big;
  char* p = buf;
  if (name.size() > sizeof buf) {
    big.resize(name.size());
    p = big.data();
  }
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    p[i] = (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
  }
  const std::string_view n(p, name.size());
  std::optional<size_t> best;
  auto consider = [&best](const NameIndex& m, std::string_view k) {
    if (auto it = m.find(k); it != m.end() && (!best || it->second < *best)) best = it->second;
  };
  consider(block_.exact, n);
  // A suffix entry matches the name itself and every name below it, on label boundaries.
  for (std::string_view rest = n;;) {
    consider(block_.suffix, rest);
    const size_t dot = rest.find('.');
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return best;
}

namespace {

bool ports_accept(const Rule& r, std::optional<uint16_t> port) {
  if (r.ports.empty()) return true;
  // R-POL-7: a rule with ports never matches a query without one (ICMP).
  if (!port) return false;
  return std::any_of(r.ports.begin(), r.ports.end(), [&](PortRange pr) { return pr.contains(*port); });
}

bool dir_accepts(Direction rule_dir, Direction q) { return rule_dir == Direction::any || rule_dir == q; }

/// The pins of one address, fetched once per decision: with many domain rules each would
/// otherwise look the address up again. Up to kMax names are kept; beyond that (or for
/// another address) it asks the underlying lookup.
class PinCache final : public PinLookup {
 public:
  PinCache(const PinLookup& inner, const IpAddr& a) : inner_(inner), addr_(a) {}
  bool any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view)> pred) const override {
    if (!(a == addr_)) return inner_.any_pin_matches(a, pred);
    if (!loaded_) {
      loaded_ = true;
      inner_.any_pin_matches(a, [this](std::string_view n) {
        if (count_ == kMax) return overflow_ = true;
        names_[count_++] = n;
        return false;
      });
    }
    if (overflow_) return inner_.any_pin_matches(a, pred);
    for (size_t i = 0; i < count_; ++i)
      if (pred(names_[i])) return true;
    return false;
  }

 private:
  static constexpr size_t kMax = 8;
  const PinLookup& inner_;
  IpAddr addr_;
  mutable std::array<std::string_view, kMax> names_{};
  mutable size_t count_ = 0;
  mutable bool loaded_ = false, overflow_ = false;
};

}  // namespace

MatchOutcome Engine::match(const Rule& r, const Query& q, const IpAddr& a, Group g, const PinLookup& pins,
                           std::string* detail) const {
  auto say = [&](std::string_view s) {
    if (detail) *detail = s;
  };
  if (!dir_accepts(r.dir, q.dir)) return MatchOutcome::skip_direction;
  if (!r.protos.accepts(q.proto)) return MatchOutcome::skip_protocol;
  if (!ports_accept(r, q.port)) return MatchOutcome::skip_port;
  const Target& t = r.target;
  switch (t.kind) {
    case Target::Kind::any: return MatchOutcome::matched;
    case Target::Kind::cidr: return t.cidr.contains(a) ? MatchOutcome::matched : MatchOutcome::skip_target;
    case Target::Kind::group: return g == t.group ? MatchOutcome::matched : MatchOutcome::skip_target;
    case Target::Kind::domain:
    case Target::Kind::suffix: break;
  }
  auto m = [&t](std::string_view n) { return t.matches_name(n); };
  switch (q.src.kind) {
    case NameSource::Kind::none:
      if (pins.any_pin_matches(a, m)) return say("pin matches"), MatchOutcome::matched;
      return MatchOutcome::skip_no_pin;
    case NameSource::Kind::connect:
      if (m(q.src.name)) return say("connect name matches"), MatchOutcome::matched;
      return say("name does not match"), MatchOutcome::skip_target;
    case NameSource::Kind::claimed: break;
  }
  // R-POL-7 table, row claimed(N): a deny needs only the name; an allow also needs a pin
  // (the SNI-spoof defence) unless sni_requires_pin is off.
  if (!m(q.src.name)) return say("name does not match"), MatchOutcome::skip_target;
  if (r.action == Action::deny) return say("sni matches"), MatchOutcome::matched;
  if (!policy_.sni_requires_pin) return say("sni matches, pin not required"), MatchOutcome::matched;
  if (pins.any_pin_matches(a, m)) return say("sni matches, pin matches"), MatchOutcome::matched;
  return say("sni matches, no pin"), MatchOutcome::skip_no_pin;
}

Verdict Engine::decide(const Query& q, const PinLookup& any_pins) const {
  const Action def = q.dir == Direction::ingress ? policy_.default_ingress : policy_.default_egress;
  const IpAddr a = normalize(q.addr);
  const PinCache pins(any_pins, a);
  const Group g = classify(a, host_);
  if (g == Group::none) return Verdict{Action::deny, std::nullopt};  // R-POL-4: always refused
  if (block_.count && q.dir == Direction::egress) {
    std::optional<size_t> hit;
    if (q.src.kind == NameSource::Kind::none) {
      pins.any_pin_matches(a, [&](std::string_view n) {
        hit = block_lookup(n);
        return hit.has_value();
      });
    } else {
      hit = block_lookup(q.src.name);  // a deny needs no pin (R-POL-7)
    }
    if (hit) return Verdict{Action::deny, *hit};
  }
  for (size_t i = block_.count; i < policy_.rules.size(); ++i)
    if (match(policy_.rules[i], q, a, g, pins, nullptr) == MatchOutcome::matched)
      return Verdict{policy_.rules[i].action, i};
  return Verdict{def, std::nullopt};
}

Verdict Engine::decide_dns(std::string_view qname, Proto proto, uint16_t port) const {
  if (!qname.empty() && qname.back() == '.') qname.remove_suffix(1);
  const bool valid_name = normalize_name(qname).has_value();
  if (block_.count && valid_name)
    if (auto hit = block_lookup(qname)) return Verdict{Action::deny, *hit};
  for (size_t i = block_.count; i < policy_.rules.size(); ++i) {
    const Rule& r = policy_.rules[i];
    if (r.dir == Direction::ingress) continue;
    const Target& t = r.target;
    bool hit = false;
    if (t.is_name()) {
      hit = valid_name && t.matches_name(qname);  // protocol and port filters ignored (R-POL-8)
    } else if (t.kind == Target::Kind::any || (t.kind == Target::Kind::group && t.group == Group::host)) {
      hit = r.protos.accepts(proto) && ports_accept(r, port);
    }
    if (hit) return Verdict{r.action, i};
  }
  return Verdict{policy_.default_egress, std::nullopt};
}

TcpPath Engine::select_path(const IpAddr& addr, uint16_t port, const PinLookup& any_pins) const {
  const PinCache pins(any_pins, normalize(addr));
  const Query q0{Direction::egress, addr, port, Proto::tcp, NameSource::none()};
  const Verdict v0 = decide(q0, pins);
  bool reach_allow = v0.allowed(), reach_deny = !v0.allowed();
  const IpAddr a = normalize(addr);
  const Group g = classify(a, host_);
  if (g == Group::none) return TcpPath::reject;
  bool decided = false;
  if (block_.count) reach_deny = true;  // some claimed name matches a block entry
  for (size_t i = block_.count; i < policy_.rules.size(); ++i) {
    const Rule& r = policy_.rules[i];
    if (!dir_accepts(r.dir, Direction::egress) || !r.protos.accepts(Proto::tcp) || !ports_accept(r, port)) continue;
    const Target& t = r.target;
    if (!t.is_name()) {
      // Name-independent: decides for every N that gets this far.
      const bool hit = t.kind == Target::Kind::any || (t.kind == Target::Kind::cidr && t.cidr.contains(a)) ||
                       (t.kind == Target::Kind::group && t.group == g);
      if (hit) {
        (r.action == Action::allow ? reach_allow : reach_deny) = true;
        decided = true;
        break;
      }
      continue;
    }
    if (r.action == Action::deny) {
      reach_deny = true;  // some N matches it; no pin needed
    } else if (!policy_.sni_requires_pin ||
               pins.any_pin_matches(a, [&t](std::string_view n) { return t.matches_name(n); })) {
      reach_allow = true;
    }
  }
  if (!decided) (policy_.default_egress == Action::allow ? reach_allow : reach_deny) = true;
  if (v0.allowed()) return reach_deny ? TcpPath::gate : TcpPath::fast;
  return reach_allow ? TcpPath::inspect : TcpPath::reject;
}

bool Engine::rebind_exception(const Verdict& dns_verdict, const IpAddr& answer) const {
  if (dns_verdict.rule && *dns_verdict.rule < policy_.rules.size()) {
    const Rule& r = policy_.rules[*dns_verdict.rule];
    if (r.action == Action::allow && r.target.is_name()) return true;  // (a)
  }
  const IpAddr a = normalize(answer);
  const Group g = classify(a, host_);
  for (size_t i = block_.count; i < policy_.rules.size(); ++i) {
    const Rule& r = policy_.rules[i];
    // (b). The dns macro is about reaching the resolver, not about answers naming the host,
    // so it never grants an exception (R-DNS-8 excludes it from (a) for the same reason).
    if (r.dir == Direction::ingress || r.dns_macro) continue;
    const Target& t = r.target;
    if ((t.kind == Target::Kind::cidr && t.cidr.contains(a)) || (t.kind == Target::Kind::group && t.group == g))
      return r.action == Action::allow;
  }
  return false;  // defaults never grant an exception
}

std::vector<ExplainLine> Engine::explain(const Query& q, const PinLookup& pins) const {
  std::vector<ExplainLine> out;
  const IpAddr a = normalize(q.addr);
  const Group g = classify(a, host_);
  out.reserve(policy_.rules.size() - block_.count + 1);
  if (block_.count) {
    // One line for the whole block list: the entry that matched, or none.
    ExplainLine l{0, Origin::block, "(block list, " + std::to_string(block_.count) + " entries)",
                  MatchOutcome::skip_target, "no entry matches"};
    if (q.dir != Direction::egress) {
      l.outcome = MatchOutcome::skip_direction;
      l.detail.clear();
    } else {
      std::optional<size_t> hit;
      if (q.src.kind == NameSource::Kind::none) {
        const bool pinned = pins.any_pin_matches(a, [&](std::string_view n) {
          hit = block_lookup(n);
          return hit.has_value();
        });
        if (!pinned) l.outcome = MatchOutcome::skip_no_pin, l.detail = "no pinned name is blocked";
      } else {
        hit = block_lookup(q.src.name);
      }
      if (hit) {
        l.index = *hit;
        l.text = policy_.rules[*hit].text;
        l.outcome = MatchOutcome::matched;
        l.detail = q.src.kind == NameSource::Kind::none ? "pin matches" : "name matches";
      }
    }
    out.push_back(std::move(l));
  }
  for (size_t i = block_.count; i < policy_.rules.size(); ++i) {
    const Rule& r = policy_.rules[i];
    ExplainLine l{i, r.origin, r.text, MatchOutcome::skip_target, {}};
    l.outcome = match(r, q, a, g, pins, &l.detail);
    out.push_back(std::move(l));
  }
  return out;
}

std::string format_explain_line(const ExplainLine& l) {
  auto pad = [](std::string s, size_t w) {
    if (s.size() < w) s.append(w - s.size(), ' ');
    else s += ' ';
    return s;
  };
  std::string s = pad("rule #" + std::to_string(l.index), 9) + pad(std::string(origin_name(l.origin)), 7) + pad(l.text, 29);
  switch (l.outcome) {
    case MatchOutcome::matched: return s + "MATCH" + (l.detail.empty() ? "" : " (" + l.detail + ")");
    case MatchOutcome::skip_direction: return s + "skip: direction";
    case MatchOutcome::skip_protocol: return s + "skip: protocol";
    case MatchOutcome::skip_port: return s + "skip: port";
    case MatchOutcome::skip_target: return s + "skip: " + (l.detail.empty() ? "target" : l.detail);
    case MatchOutcome::skip_no_pin: return s + "skip: " + (l.detail.empty() ? "no pin" : l.detail);
  }
  return s;
}

namespace {

bool ports_cover(const std::vector<PortRange>& outer, const std::vector<PortRange>& inner) {
  if (outer.empty()) return true;
  if (inner.empty()) return false;
  std::vector<PortRange> merged = outer;
  std::sort(merged.begin(), merged.end(), [](PortRange x, PortRange y) { return x.lo < y.lo; });
  std::vector<PortRange> u;
  for (PortRange r : merged) {
    if (!u.empty() && uint32_t(r.lo) <= uint32_t(u.back().hi) + 1) u.back().hi = std::max(u.back().hi, r.hi);
    else u.push_back(r);
  }
  return std::all_of(inner.begin(), inner.end(), [&](PortRange in) {
    return std::any_of(u.begin(), u.end(), [&](PortRange o) { return o.lo <= in.lo && in.hi <= o.hi; });
  });
}

bool target_covers(const Rule& outer, const Rule& inner) {
  const Target &o = outer.target, &i = inner.target;
  if (o.kind == Target::Kind::any) return true;
  if (o.kind == Target::Kind::cidr && i.kind == Target::Kind::cidr) return o.cidr.covers(i.cidr);
  if (o.kind == Target::Kind::group && i.kind == Target::Kind::group) return o.group == i.group;
  if (o.is_name() && i.is_name()) {
    // An allow needs a pin where a deny does not (claimed names), so an allow never
    // shadows a deny for the same names.
    if (outer.action == Action::allow && inner.action == Action::deny) return false;
    if (o.kind == Target::Kind::domain) return i.kind == Target::Kind::domain && i.name == o.name;
    return o.matches_name(i.name);
  }
  return false;
}

std::string rule_ref(size_t i, const Rule& r) { return "rule #" + std::to_string(i) + " \"" + r.text + "\""; }

}  // namespace

std::vector<std::string> Engine::lint() const {
  std::vector<std::string> out;
  const auto& rules = policy_.rules;
  // Block-list rules are skipped: there may be 10^6 of them and they are all denies of names.
  for (size_t j = 0; j < rules.size(); ++j) {
    const Rule& in = rules[j];
    if (in.origin == Origin::block) continue;
    for (size_t i = 0; i < j; ++i) {
      const Rule& o = rules[i];
      if (o.origin == Origin::block) continue;
      if (!dir_accepts(o.dir, in.dir) || (o.dir != Direction::any && in.dir == Direction::any)) continue;
      if (!in.protos.within(o.protos) || !ports_cover(o.ports, in.ports) || !target_covers(o, in)) continue;
      out.push_back(rule_ref(j, in) + " is shadowed by " + rule_ref(i, o) + " and never matches");
      break;
    }
  }
  for (size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    if (r.action != Action::allow) continue;
    Group g = Group::none;
    if (r.target.kind == Target::Kind::group) g = r.target.group;
    else if (r.target.kind == Target::Kind::cidr) g = classify(r.target.cidr.net, HostAddrs{});
    if (g == Group::metadata || g == Group::loopback || g == Group::link_local)
      out.push_back(rule_ref(i, r) + " allows " + std::string(group_name(g)) + " addresses");
  }
  if (policy_.profiles.all)
    out.push_back("profile \"all\" allows all traffic (rebind protection and the refused DNS ports still apply)");
  if (!policy_.sni_requires_pin)
    out.push_back("policy.sni_requires_pin = false: an SNI or Host alone can make any address reachable");
  if (policy_.profiles.empty() && !decide_dns("", Proto::udp, 53).allowed() && !decide_dns("", Proto::tcp, 53).allowed())
    out.push_back("the profile set is empty (only explicit rules apply) and no rule allows DNS; add \"allow@dns\"");
  return out;
}

}  // namespace moat::policy
