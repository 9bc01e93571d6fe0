#include "config/loader.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <functional>
#include <utility>

#include "base/strings.h"
#include "base/file.h"
#include "config/doc.h"
#include "config/settings.h"
#include "policy/profiles.h"
#include "policy/rule.h"

namespace moat::config {

namespace doc {

std::string where(std::string_view origin, Pos p) {
  if (p.line == 0) return std::string(origin);
  return std::string(origin) + ":" + std::to_string(p.line) + ":" + std::to_string(p.col);
}

std::string_view kind_name(Value::Kind k) noexcept {
  switch (k) {
    case Value::Kind::table: return "a table";
    case Value::Kind::array: return "an array";
    case Value::Kind::string: return "a string";
    case Value::Kind::integer: return "an integer";
    case Value::Kind::floating: return "a float";
    case Value::Kind::boolean: return "a boolean";
    case Value::Kind::datetime: return "a date/time";
    case Value::Kind::null: return "null";
  }
  return "a value";
}

}  // namespace doc

namespace {

using doc::Member;
using doc::Pos;
using doc::Value;
using Kind = Value::Kind;
using policy::Action;

constexpr size_t kMaxErrors = 20;  // §5.2

std::string q(std::string_view s) { return quote_value(s); }  // bounded, escaped (§5.2)

std::string join(std::initializer_list<std::string_view> names) {
  std::string s;
  for (auto n : names) {
    if (!s.empty()) s += ", ";
    s += n;
  }
  return s;
}

/// A key this build recognises but does not implement, and why.
struct Unsupported {
  std::string_view key;
  std::string_view hint;
};

using Handler = std::function<void(const Value&, const std::string& path)>;
struct Field {
  std::string_view key;
  Handler fn;
};

constexpr std::string_view kNotBuilt = "not supported by this moat build";

class Loader {
 public:
  Loader(std::string_view origin, Config& cfg) : origin_(origin), cfg_(cfg) {
    auto slash = origin.rfind('/');
    if (slash != std::string_view::npos) base_dir_ = std::string(origin.substr(0, slash + 1));
  }

  std::vector<UserError> errs;

  void top(const Value& root) { table(root, ""); }

 private:
  // --- errors -----------------------------------------------------------------------
  void err(Pos p, std::string_view path, std::string what, std::string hint = {}) {
    if (errs.size() >= kMaxErrors) return;
    std::string w = doc::where(origin_, p);
    if (!path.empty()) w += ": " + std::string(path);
    errs.push_back({std::move(w), std::move(what), std::move(hint)});
  }

  bool type(const Value& v, const std::string& path, Kind k) {
    if (v.kind == k) return true;
    err(v.pos, path, "expected " + std::string(doc::kind_name(k)) + ", got " + std::string(doc::kind_name(v.kind)));
    return false;
  }

  static std::string child(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  static std::string item(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

  /// Dispatches every member of table `v` to its field; unknown keys get a suggestion.
  void walk(const Value& v, const std::string& path, const std::vector<Field>& fields,
            std::initializer_list<Unsupported> unsupported = {}) {
    if (!type(v, path, Kind::table)) return;
    for (const auto& m : v.members) {
      std::string p = child(path, m.key);
      bool done = false;
      for (const auto& f : fields) {
        if (f.key == m.key) {
          f.fn(m.value, p);
          done = true;
          break;
        }
      }
      for (const auto& u : unsupported) {
        if (done) break;
        if (u.key == m.key) {
          err(m.key_pos, p, std::string(kNotBuilt), std::string(u.hint));
          done = true;
        }
      }
      if (done) continue;
      std::string_view best;
      size_t best_d = 3;
      auto consider = [&](std::string_view k) {
        size_t d = edit_distance(m.key, k);
        if (d < best_d) {
          best_d = d;
          best = k;
        }
      };
      for (const auto& f : fields) consider(f.key);
      for (const auto& u : unsupported) consider(u.key);
      err(m.key_pos, p, "unknown key", best.empty() ? std::string() : "did you mean " + q(best) + "?");
    }
  }

  // --- typed values -------------------------------------------------------------------
  bool get_bool(const Value& v, const std::string& path, bool* out) {
    if (!type(v, path, Kind::boolean)) return false;
    *out = v.boolean;
    return true;
  }

  bool get_string(const Value& v, const std::string& path, std::string* out) {
    if (!type(v, path, Kind::string)) return false;
    *out = v.str;
    return true;
  }

  bool get_int(const Value& v, const std::string& path, int64_t lo, int64_t hi, int64_t* out) {
    if (!type(v, path, Kind::integer)) return false;
    if (v.out_of_range || v.integer < lo || v.integer > hi) {
      err(v.pos, path, (v.out_of_range ? std::string("the value") : std::to_string(v.integer)) + " is out of range",
          "expected " + std::to_string(lo) + "-" + std::to_string(hi));
      return false;
    }
    *out = v.integer;
    return true;
  }

  /// One of `names`; returns the index or -1 after an error.
  int get_enum(const Value& v, const std::string& path, std::initializer_list<std::string_view> names) {
    if (!type(v, path, Kind::string)) return -1;
    int i = 0;
    for (auto n : names) {
      if (v.str == n) return i;
      ++i;
    }
    err(v.pos, path, q(v.str) + " is not one of " + join(names));
    return -1;
  }

  /// An array whose items `fn` handles one by one.
  void each(const Value& v, const std::string& path, const std::function<void(const Value&, const std::string&)>& fn) {
    if (!type(v, path, Kind::array)) return;
    for (size_t i = 0; i < v.items.size(); ++i) fn(v.items[i], item(path, i));
  }

  /// §4.1 paths: `~` is expanded, relative paths are relative to the config file.
  bool get_path(const Value& v, const std::string& path, std::string* out, bool allow_dash = false) {
    std::string s;
    if (!get_string(v, path, &s)) return false;
    if (s.empty()) {
      err(v.pos, path, "empty path");
      return false;
    }
    if (s.find('\0') != std::string::npos) {
      err(v.pos, path, "path contains a NUL byte");
      return false;
    }
    if (allow_dash && s == "-") {
      *out = s;
      return true;
    }
    if (s == "~" || s.rfind("~/", 0) == 0) {
      const char* home = std::getenv("HOME");
      if (home == nullptr || *home == '\0') {
        err(v.pos, path, q(s) + ": cannot expand \"~\"", "HOME is not set");
        return false;
      }
      s = std::string(home) + s.substr(1);
    } else if (s.front() != '/') {
      s = base_dir_ + s;
    }
    *out = std::move(s);
    return true;
  }

  template <class A>
  bool get_addr(const Value& v, const std::string& path, const char* family, A* out) {
    std::string s;
    if (!get_string(v, path, &s)) return false;
    auto a = A::parse(s);
    if (!a) {
      err(v.pos, path, q(s) + " is not " + family + " address");
      return false;
    }
    *out = *a;
    return true;
  }

  // --- the schema walker ---------------------------------------------------------------
  /// Every member of table `t` at `path` is a setting, a table of settings, or an error.
  void table(const Value& t, const std::string& path) {
    if (!type(t, path, Kind::table)) return;
    for (const auto& m : t.members) {
      std::string p = child(path, m.key);
      // A quoted key holding a dot ("net.mtu" = 1) names no setting: only nesting does.
      const bool plain = m.key.find('.') == std::string::npos;
      if (const Setting* s = plain ? setting_by_key(p) : nullptr) {
        setting(*s, m, p);
      } else if (plain && is_table(p)) {
        table(m.value, p);
        if (p == "dns") dns_checks(m.value, p);
      } else {
        std::string_view best;
        size_t best_d = 3;
        for (const auto& k : children(path)) {
          size_t d = edit_distance(m.key, k);
          if (d < best_d) best_d = d, best = k;
        }
        err(m.key_pos, p, "unknown key", best.empty() ? std::string() : "did you mean " + q(best) + "?");
      }
    }
  }

  /// A key with settings below it (`net`, `net.ipv4`).
  static bool is_table(std::string_view path) {
    for (const auto& s : settings())
      if (s.key.size() > path.size() && s.key.substr(0, path.size()) == path && s.key[path.size()] == '.') return true;
    return false;
  }

  /// The names a table at `path` knows, for "did you mean".
  static std::vector<std::string_view> children(std::string_view path) {
    std::vector<std::string_view> out;
    for (const auto& s : settings()) {
      std::string_view k = s.key;
      if (k.empty()) continue;
      if (!path.empty()) {
        if (k.size() <= path.size() || k.substr(0, path.size()) != path || k[path.size()] != '.') continue;
        k.remove_prefix(path.size() + 1);
      }
      k = k.substr(0, k.find('.'));
      if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
    }
    return out;
  }

  void problem(Pos pos, const std::string& path, const std::optional<Problem>& e) {
    if (e) err(pos, path, e->what, e->hint);
  }

  /// One value, through the same functions the flag uses (settings.h).
  void setting(const Setting& s, const Member& m, const std::string& p) {
    const Value& v = m.value;
    FlagState st;
    switch (s.type) {
      case ValueType::unsupported: return err(m.key_pos, p, std::string(kNotBuilt), std::string(s.help));
      case ValueType::boolean: {
        bool b = false;
        if (get_bool(v, p, &b)) problem(v.pos, p, apply_bool(s, cfg_, Source::file, b));
        return;
      }
      case ValueType::integer:
        if (!type(v, p, Kind::integer)) return;
        if (v.out_of_range) return err(v.pos, p, "the value is out of range", range_text(s));
        return problem(v.pos, p, apply_int(s, cfg_, Source::file, v.integer));
      case ValueType::duration:
        // §4.1: a duration is a string with a unit; a bare integer gets the same "needs a
        // unit" message as the flag's "30".
        if (v.kind == Kind::integer) return problem(v.pos, p, apply_duration(s, cfg_, Source::file, std::to_string(v.integer)));
        if (v.kind == Kind::floating)
          return err(v.pos, p, "a bare number needs a unit", "write a string such as \"30s\" or \"500ms\"");
        if (!type(v, p, Kind::string)) return;
        return problem(v.pos, p, apply_duration(s, cfg_, Source::file, v.str));
      case ValueType::size:
        // §4.1: a byte count or a string with a unit, through the flag's parser either way.
        if (v.kind == Kind::integer) {
          if (v.out_of_range || v.integer < 0) return err(v.pos, p, "the value is out of range", range_text(s));
          return problem(v.pos, p, apply_size(s, cfg_, Source::file, std::to_string(v.integer)));
        }
        if (!type(v, p, Kind::string)) return;
        return problem(v.pos, p, apply_size(s, cfg_, Source::file, v.str));
      case ValueType::enumeration:
        if (!type(v, p, Kind::string)) return;
        return problem(v.pos, p, apply_choice(s, cfg_, Source::file, v.str));
      case ValueType::text:
        if (!type(v, p, Kind::string)) return;
        return problem(v.pos, p, apply_text(s, cfg_, Source::file, v.str, st));
      case ValueType::path: {
        std::string path;
        if (get_path(v, p, &path, s.dash_ok))
          problem(v.pos, p, apply_text(s, cfg_, Source::file, path, st));
        return;
      }
      case ValueType::list:
      case ValueType::path_list:
        // A file's list replaces what was there (R-CLI-1: the flags append after it).
        if (!type(v, p, Kind::array)) return;
        s.clear(cfg_);
        for (size_t i = 0; i < v.items.size(); ++i) {
          const Value& e = v.items[i];
          std::string ip = item(p, i);
          std::string text;
          bool ok = s.type == ValueType::path_list ? get_path(e, ip, &text) : get_string(e, ip, &text);
          if (ok) problem(e.pos, ip, apply_text(s, cfg_, Source::file, text, st));
        }
        return;
      case ValueType::custom:
        if (s.key == "schema") return schema(v, p);
        if (s.key == "policy.rules") return rules(v, p);
        if (s.key == "policy.profiles") return profiles(s, v, p);
        if (s.key == "publish") return publish(v, p);
        if (s.key == "dns.hosts") return hosts(v, p, &cfg_.dns.hosts);
        if (s.key == "tls.ports") return tls_ports(s, v, p);
        if (s.key == "tls.host_ca") return host_ca(v, p);
        return;
    }
  }

  void schema(const Value& v, const std::string& p) {
    if (!type(v, p, Kind::integer)) return;
    if (v.out_of_range || v.integer != 1)
      err(v.pos, p, "unsupported schema " + (v.out_of_range ? std::string("value") : std::to_string(v.integer)) +
                        " (this moat supports 1)");
  }

  /// Checks across the keys of [dns], once the whole table is read.
  void dns_checks(const Value& t, const std::string& path) {
    const auto& d = cfg_.dns;
    if (d.pin_min_ttl > d.pin_max_ttl) err(t.pos, child(path, "pin_min_ttl"), "is greater than pin_max_ttl");
    if (d.timeout > d.deadline) err(t.pos, child(path, "timeout"), "is greater than dns.deadline");
  }

  /// tls.ports: an array of port numbers, replacing the default [443].
  void tls_ports(const Setting& s, const Value& v, const std::string& p) {
    if (!type(v, p, Kind::array)) return;
    cfg_.tls.ports.clear();
    FlagState st;
    each(v, p, [&](const Value& e, const std::string& ip) {
      if (!type(e, ip, Kind::integer)) return;
      problem(e.pos, ip, apply_text(s, cfg_, Source::file, e.out_of_range ? "out of range" : std::to_string(e.integer), st));
    });
  }

  /// tls.host_ca: an array of tables {hosts = [PATTERN...], file = PATH}.
  void host_ca(const Value& v, const std::string& path) {
    std::vector<HostCaConfig> out;
    each(v, path, [&](const Value& t, const std::string& p) {
      if (!type(t, p, Kind::table)) return;
      HostCaConfig h;
      bool have_hosts = false, have_file = false;
      for (const auto& m : t.members) {
        const std::string mp = child(p, m.key);
        if (m.key == "hosts") {
          have_hosts = true;
          if (!type(m.value, mp, Kind::array)) continue;
          if (m.value.items.empty()) err(m.value.pos, mp, "is empty", "list at least one NAME, *.SUFFIX or *");
          each(m.value, mp, [&](const Value& e, const std::string& ep) {
            std::string text;
            if (get_string(e, ep, &text)) problem(e.pos, ep, add_host_pattern(text, &h.hosts));
          });
        } else if (m.key == "file") {
          have_file = get_path(m.value, mp, &h.file);
        } else {
          err(m.key_pos, mp, "unknown key", "a tls.host_ca entry has `hosts` and `file`");
        }
      }
      if (!have_hosts) err(t.pos, p, "has no `hosts`");
      if (!have_file) err(t.pos, p, "has no `file`");
      out.push_back(std::move(h));
    });
    cfg_.tls.host_ca = std::move(out);
  }

  /// policy.profiles: the items are checked together, as every --profile value is.
  void profiles(const Setting& s, const Value& v, const std::string& p) {
    if (!type(v, p, Kind::array)) return;
    std::vector<std::string> items;
    for (size_t i = 0; i < v.items.size(); ++i) {
      std::string x;
      if (!get_string(v.items[i], item(p, i), &x)) return;
      items.push_back(std::move(x));
    }
    if (items.empty()) {  // an empty set, as parse_profiles() makes of no items
      cfg_.policy.inputs.config_profiles = policy::ProfileSet{};
      return;
    }
    FlagState st;  // the items before the last, as earlier --profile values would be
    st.values.assign(items.begin(), items.end() - 1);
    problem(v.pos, p, apply_text(s, cfg_, Source::file, items.back(), st));
  }


  void hosts(const Value& t, const std::string& path, std::vector<std::pair<std::string, std::vector<IpAddr>>>* out) {
    if (!type(t, path, Kind::table)) return;
    std::vector<std::pair<std::string, std::vector<IpAddr>>> res;
    for (const auto& m : t.members) {
      std::string p = path + "." + m.key;
      auto n = policy::normalize_name(m.key);
      if (!n) {
        err(m.key_pos, p, q(m.key) + ": " + n.error().what, n.error().hint);
        continue;
      }
      std::vector<IpAddr> addrs;
      auto one = [&](const Value& e, const std::string& ep) {
        IpAddr a;
        if (get_addr(e, ep, "an IP", &a)) addrs.push_back(a);
      };
      if (m.value.kind == Kind::string) one(m.value, p);
      else if (m.value.kind == Kind::array) each(m.value, p, one);
      else err(m.value.pos, p, "expected an address or an array of addresses, got " + std::string(doc::kind_name(m.value.kind)));
      res.emplace_back(*n, std::move(addrs));
    }
    *out = std::move(res);
  }

  void rules(const Value& v, const std::string& path) {
    std::vector<policy::Rule> out;
    each(v, path, [&](const Value& e, const std::string& p) {
      if (e.kind == Kind::string) {
        auto r = policy::parse_rules(e.str, policy::Origin::config);
        if (!r) return err(e.pos, p, r.error().what, r.error().hint);
        for (auto& rule : *r) out.push_back(std::move(rule));
      } else if (e.kind == Kind::table) {
        rule_table(e, p, &out);
      } else {
        err(e.pos, p, "expected a rule string or table, got " + std::string(doc::kind_name(e.kind)));
      }
    });
    cfg_.policy.inputs.config = std::move(out);
  }

  /// R-POL-16: the table is spelled as a rule string and parsed by parse_rules(), so both
  /// forms share one validator and one set of messages; each piece of the string remembers
  /// which key it came from, so an error points at that key.
  void rule_table(const Value& t, const std::string& path, std::vector<policy::Rule>* out) {
    struct Span {
      size_t begin, end;
      std::string path;
      Pos pos;
    };
    std::string text;
    std::vector<Span> spans;
    auto piece = [&](std::string_view sep, const std::string& s, const std::string& p, Pos pos) {
      text += sep;
      spans.push_back({text.size(), text.size() + s.size(), p, pos});
      text += s;
    };
    const Member *action = nullptr, *direction = nullptr, *target = nullptr, *protocols = nullptr, *ports = nullptr;
    std::string label;
    bool bad = false;
    static constexpr std::string_view kTargets[] = {"target", "cidr", "domain", "suffix", "group", "any"};
    static constexpr std::string_view kKeys[] = {"action", "direction", "target", "cidr", "domain", "suffix",
                                                 "group", "any", "protocols", "ports", "label"};
    for (const auto& m : t.members) {
      std::string p = child(path, m.key);
      bool is_target = std::find(std::begin(kTargets), std::end(kTargets), m.key) != std::end(kTargets);
      if (is_target) {
        if (target != nullptr) {
          err(m.key_pos, p, q(target->key) + " and " + q(m.key) + " cannot be combined", "give exactly one target");
          bad = true;
        }
        target = &m;
      } else if (m.key == "action") {
        action = &m;
      } else if (m.key == "direction") {
        direction = &m;
      } else if (m.key == "protocols") {
        protocols = &m;
      } else if (m.key == "ports") {
        ports = &m;
      } else if (m.key == "label") {
        if (!get_string(m.value, p, &label)) bad = true;
      } else {
        std::string_view best;
        size_t bd = 3;
        for (auto k : kKeys)
          if (size_t d = edit_distance(m.key, k); d < bd) bd = d, best = k;
        err(m.key_pos, p, "unknown key", best.empty() ? "" : "did you mean " + q(best) + "?");
        bad = true;
      }
    }
    // A value must stay inside its own piece of the rule string.
    auto word = [&](const Member& m, const std::string& p, const Value& v, std::string* s, std::string_view what,
                    bool colon_ok = false) {
      if (!get_string(v, p, s)) return false;
      bool ok = !s->empty();
      int depth = 0;
      for (char c : *s) {
        if (c == '[') ++depth;
        if (c == ']') --depth;
        if (c == ',' || c == '@' || c == '+' || c == ' ' || c == '\t' || (c == ':' && !(colon_ok && depth > 0))) ok = false;
      }
      if (!ok) err(v.pos, p, q(*s) + " is not " + std::string(what));
      (void)m;
      return ok;
    };
    if (action == nullptr) {
      err(t.pos, path, "missing \"action\"", "a rule table needs action = \"allow\" or \"deny\"");
      bad = true;
    }
    if (target == nullptr && !bad) {
      err(t.pos, path, "missing a target", "give one of target, cidr, domain, suffix, group, or any = true");
      bad = true;
    }
    std::string s;
    if (action != nullptr) {
      std::string p = child(path, "action");
      if (word(*action, p, action->value, &s, "an action (allow or deny)")) piece("", s, p, action->value.pos);
      else bad = true;
    }
    if (direction != nullptr) {
      std::string p = child(path, "direction");
      if (word(*direction, p, direction->value, &s, "a direction (egress, ingress or any)"))
        piece(":", s, p, direction->value.pos);
      else bad = true;
    }
    if (target != nullptr) {
      std::string p = child(path, target->key);
      const Value& v = target->value;
      std::string t_text;
      if (target->key == "any") {
        bool b = false;
        if (!get_bool(v, p, &b)) bad = true;
        else if (!b) err(v.pos, p, "must be true", "omit it, or give another target"), bad = true;
        t_text = "any";
      } else if (target->key == "domain" || target->key == "suffix") {
        std::string n;
        if (!get_string(v, p, &n)) {
          bad = true;
        } else {
          std::string_view body = n;
          if (target->key == "suffix" && body.rfind("*.", 0) == 0) body.remove_prefix(2);
          auto r = policy::normalize_name(body);
          if (!r) err(v.pos, p, q(n) + ": " + r.error().what, r.error().hint), bad = true;
          else t_text = std::string(target->key) + "=" + *r;
        }
      } else if (target->key == "cidr") {
        if (!get_string(v, p, &s)) {
          bad = true;
        } else if (s.empty() || s.find_first_of(",@+ \t") != std::string::npos) {
          err(v.pos, p, q(s) + " is not a CIDR");
          bad = true;
        } else {
          t_text = "cidr=" + (s.find(':') != std::string::npos && s.front() != '[' ? "[" + s + "]" : s);
        }
      } else if (target->key == "group") {
        if (word(*target, p, v, &s, "a group")) t_text = "group=" + s;
        else bad = true;
      } else {  // target: rule-string target syntax
        if (word(*target, p, v, &s, "a rule target", /*colon_ok=*/true)) t_text = s;
        else bad = true;
      }
      if (!t_text.empty()) piece("@", t_text, p, v.pos);
    }
    std::string protos_text;
    if (protocols != nullptr) {
      std::string p = child(path, "protocols");
      each(protocols->value, p, [&](const Value& e, const std::string& ip) {
        std::string w;
        if (!word(*protocols, ip, e, &w, "a protocol (tcp, udp, icmp, icmpv4, icmpv6, any)")) return void(bad = true);
        protos_text += (protos_text.empty() ? "" : "+") + w;
      });
      if (protocols->value.kind != Kind::array) bad = true;
    }
    std::string ports_text;
    if (ports != nullptr) {
      std::string p = child(path, "ports");
      each(ports->value, p, [&](const Value& e, const std::string& ip) {
        std::string w;
        if (e.kind == Kind::integer) {
          if (e.out_of_range || e.integer < 1 || e.integer > 65535)
            return err(e.pos, ip, (e.out_of_range ? std::string("the value") : std::to_string(e.integer)) +
                                      " is not a port", "ports are 1-65535"), void(bad = true);
          w = std::to_string(e.integer);
        } else if (e.kind == Kind::string) {
          if (!word(*ports, ip, e, &w, "a port or \"lo-hi\" range")) return void(bad = true);
        } else {
          err(e.pos, ip, "expected a port number or a \"lo-hi\" string, got " + std::string(doc::kind_name(e.kind)));
          return void(bad = true);
        }
        ports_text += (ports_text.empty() ? "" : "+") + w;
      });
      if (ports->value.kind != Kind::array) bad = true;
    }
    if (bad) return;
    if (protocols != nullptr && !protos_text.empty()) piece(":", protos_text, child(path, "protocols"), protocols->value.pos);
    else if (ports != nullptr && !ports_text.empty()) piece(":", "any", child(path, "ports"), ports->value.pos);
    if (ports != nullptr && !ports_text.empty()) piece(":", ports_text, child(path, "ports"), ports->value.pos);

    auto r = policy::parse_rules(text, policy::Origin::config);
    if (!r) {
      const auto& e = r.error();
      size_t off = e.column == 0 ? 0 : e.column - 1;
      const Span* hit = nullptr;
      for (const auto& sp : spans)
        if (off >= sp.begin && off <= sp.end) hit = &sp;  // separators belong to the next piece
      if (hit == nullptr && !spans.empty()) hit = &spans.back();
      if (hit != nullptr) err(hit->pos, hit->path, e.what, e.hint);
      else err(t.pos, path, e.what, e.hint);
      return;
    }
    if (r->size() != 1) return err(t.pos, path, "does not describe exactly one rule");
    (*r)[0].label = label;
    out->push_back(std::move((*r)[0]));
  }

  void publish(const Value& v, const std::string& path) {
    std::vector<PublishSpec> out;
    each(v, path, [&](const Value& e, const std::string& p) {
      std::string spec;
      Pos pos = e.pos;
      if (e.kind == Kind::string) {
        spec = e.str;
      } else if (e.kind == Kind::table) {
        std::string proto = "tcp", bind;
        int64_t host_port = -1, guest_port = -1;
        bool ok = true;
        walk(e, p,
             {
                 {"proto",
                  [&](const Value& x, const std::string& xp) {
                    int i = get_enum(x, xp, {"tcp", "udp"});
                    if (i < 0) ok = false;
                    else proto = x.str;
                  }},
                 {"bind",
                  [&](const Value& x, const std::string& xp) {
                    IpAddr a;
                    if (get_addr(x, xp, "an IP", &a)) bind = x.str;
                    else ok = false;
                  }},
                 {"host_port", [&](const Value& x, const std::string& xp) { ok = get_int(x, xp, 0, 65535, &host_port) && ok; }},
                 {"guest_port", [&](const Value& x, const std::string& xp) { ok = get_int(x, xp, 1, 65535, &guest_port) && ok; }},
             },
             {
                 {"preserve_source", "source preservation is not implemented"},
                 {"max_connections", "per-publish connection limits are not implemented"},
                 {"splice", "splice is not configurable in this build"},
             });
        if (guest_port < 0) {
          err(e.pos, p, "missing \"guest_port\"");
          ok = false;
        }
        if (host_port < 0) {
          err(e.pos, p, "missing \"host_port\"", "0 picks a free port");
          ok = false;
        }
        if (!ok) return;
        if (!bind.empty()) spec = (bind.find(':') != std::string::npos ? "[" + bind + "]" : bind) + ":";
        spec += std::to_string(host_port) + ":" + std::to_string(guest_port) + "/" + proto;
      } else {
        return err(e.pos, p, "expected a publish string or table, got " + std::string(doc::kind_name(e.kind)));
      }
      auto r = parse_publish(spec);
      if (!r) return err(pos, p, r.error());
      out.push_back(std::move(*r));
    });
    cfg_.flows.publish = std::move(out);
  }

  std::string_view origin_;
  Config& cfg_;
  std::string base_dir_;
};

}  // namespace

Format format_for_path(std::string_view path) noexcept {
  constexpr std::string_view kJson = ".json";
  return path.size() >= kJson.size() && path.substr(path.size() - kJson.size()) == kJson ? Format::json : Format::toml;
}

Result<void, std::vector<UserError>> load_config_text(std::string_view text, Format fmt, std::string_view origin,
                                                      Config& cfg) {
  std::vector<UserError> errs;
  doc::Value root;
  bool ok = fmt == Format::json ? doc::read_json(text, origin, &root, &errs) : doc::read_toml(text, origin, &root, &errs);
  if (!ok) return unexpected(std::move(errs));
  Config work = cfg;  // applied to a copy: on error the caller's config is unchanged
  Loader l(origin, work);
  l.top(root);
  if (!l.errs.empty()) {
    if (l.errs.size() > kMaxErrors) l.errs.resize(kMaxErrors);
    return unexpected(std::move(l.errs));
  }
  cfg = std::move(work);
  return {};
}

Result<void, std::vector<UserError>> load_config_file(const std::string& path, Config& cfg) {
  auto text = read_bounded_file(path, kMaxConfigFileBytes);
  if (!text) {
    std::string hint = text.error().kind == ReadFileError::Kind::too_large ? "a config file is a few KiB" : "";
    return unexpected(std::vector<UserError>{{path, text.error().message(), std::move(hint)}});
  }
  return load_config_text(*text, format_for_path(path), path, cfg);
}

}  // namespace moat::config
