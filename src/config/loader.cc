#include "config/loader.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>

#include "base/strings.h"
#include "base/file.h"
#include "config/doc.h"
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

std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

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

  void top(const Value& root) {
    walk(root, "",
         {
             {"schema", [this](const Value& v, const std::string& p) { schema(v, p); }},
             {"gateway", [this](const Value& v, const std::string& p) { gateway(v, p); }},
             {"net", [this](const Value& v, const std::string& p) { net(v, p); }},
             {"tcp", [this](const Value& v, const std::string& p) { tcp(v, p); }},
             {"udp", [this](const Value& v, const std::string& p) { udp(v, p); }},
             {"icmp", [this](const Value& v, const std::string& p) { icmp(v, p); }},
             {"dns", [this](const Value& v, const std::string& p) { dns(v, p); }},
             {"policy", [this](const Value& v, const std::string& p) { policy(v, p); }},
             {"publish", [this](const Value& v, const std::string& p) { publish(v, p); }},
             {"limits", [this](const Value& v, const std::string& p) { limits(v, p); }},
             {"log", [this](const Value& v, const std::string& p) { log(v, p); }},
             {"audit", [this](const Value& v, const std::string& p) { audit(v, p); }},
             {"pcap", [this](const Value& v, const std::string& p) { pcap(v, p); }},
         },
         {
             {"transport", "transport settings come from the command line (--offloads, serve flags)"},
             {"fragments", "fragment reassembly limits are fixed in this build"},
             {"tls", "TLS interception is not implemented; remove the [tls] table"},
             {"secrets", "secret injection is not implemented; remove the [secrets] table"},
             {"forward", "guest-to-host forwards are not implemented"},
             {"rate", "rate limiting is not implemented; remove the [rate] table"},
             {"control", "the control socket is not implemented"},
             {"run", "run settings are not configurable in this build"},
             {"hardening", "seccomp and privilege dropping are not configurable in this build"},
             {"operator", "operator settings belong in the operator config, which this build does not read"},
             {"floor", "the floor policy belongs in the operator config, which this build does not read"},
         });
  }

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

  template <class T>
  void set_uint(const Value& v, const std::string& path, int64_t lo, int64_t hi, T* out) {
    int64_t x = 0;
    if (get_int(v, path, lo, hi, &x)) *out = T(x);
  }

  /// §4.1: a duration is a string with a unit; a bare number is an error.
  bool get_duration(const Value& v, const std::string& path, Duration lo, Duration hi, std::string_view range,
                    Duration* out) {
    if (v.kind == Kind::integer) {
      std::string n = std::to_string(v.integer);
      err(v.pos, path, q(n) + " needs a unit (e.g. " + q(n + "s") + ")");
      return false;
    }
    if (v.kind == Kind::floating) {
      err(v.pos, path, "a bare number needs a unit", "write a string such as \"30s\" or \"500ms\"");
      return false;
    }
    if (!type(v, path, Kind::string)) return false;
    auto d = parse_duration(v.str);
    if (!d) {
      bool digits = !v.str.empty() && v.str.find_first_not_of("0123456789") == std::string::npos;
      if (digits) err(v.pos, path, q(v.str) + " needs a unit (e.g. " + q(v.str + "s") + ")");
      else err(v.pos, path, q(v.str) + " is not a duration", "write e.g. \"30s\", \"500ms\", \"10m\" or \"2h\"");
      return false;
    }
    if (*d < lo || *d > hi) {
      err(v.pos, path, q(v.str) + " is out of range", "expected " + std::string(range));
      return false;
    }
    *out = *d;
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

  /// An R-POL-3 name (lowercased); `allow_wildcard` accepts a leading "*." (kept).
  bool get_name(const Value& v, const std::string& path, bool allow_wildcard, std::string* out) {
    std::string s;
    if (!get_string(v, path, &s)) return false;
    std::string_view body = s;
    bool wild = allow_wildcard && body.rfind("*.", 0) == 0;
    if (wild) body.remove_prefix(2);
    auto n = policy::normalize_name(body);
    if (!n) {
      err(v.pos, path, q(s) + ": " + n.error().what, n.error().hint);
      return false;
    }
    if (wild && n->find('.') == std::string::npos) {
      err(v.pos, path, q(s) + ": a suffix needs at least 2 labels");
      return false;
    }
    *out = (wild ? "*." : "") + *n;
    return true;
  }

  void duration(const Value& v, const std::string& p, Duration lo, Duration hi, std::string_view range,
                Duration* out) {
    get_duration(v, p, lo, hi, range, out);
  }

  // --- sections -----------------------------------------------------------------------
  void schema(const Value& v, const std::string& p) {
    if (!type(v, p, Kind::integer)) return;
    if (v.out_of_range || v.integer != 1)
      err(v.pos, p, "unsupported schema " + (v.out_of_range ? std::string("value") : std::to_string(v.integer)) +
                        " (this moat supports 1)");
  }

  void gateway(const Value& t, const std::string& path) {
    walk(t, path,
         {
             {"name",
              [this](const Value& v, const std::string& p) {
                std::string s;
                if (!get_string(v, p, &s)) return;
                bool ok = !s.empty() && s.size() <= 64;
                for (char c : s)
                  ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                              c == '_' || c == '-');
                if (!ok) return err(v.pos, p, q(s) + " is not a valid gateway name", "use 1-64 of A-Z a-z 0-9 . _ -");
                cfg_.name = s;
              }},
             {"deployment",
              [this](const Value& v, const std::string& p) {
                int i = get_enum(v, p, {"single-tenant", "multi-tenant"});
                if (i == 1) err(v.pos, p, "multi-tenant deployment is " + std::string(kNotBuilt), "");
              }},
         });
  }

  void net(const Value& t, const std::string& path) {
    auto& n = cfg_.net;
    walk(t, path,
         {
             {"mtu",
              [this, &n](const Value& v, const std::string& p) {
                int64_t x = 0;
                if (!get_int(v, p, 0, 65520, &x)) return;
                if (x != 0 && x < 576) return err(v.pos, p, std::to_string(x) + " is out of range", "expected 0 or 576-65520");
                n.mtu = uint32_t(x);
              }},
             {"guest_mac", [this, &n](const Value& v, const std::string& p) { get_addr(v, p, "an Ethernet", &n.guest_mac); }},
             {"gateway_mac", [this, &n](const Value& v, const std::string& p) { get_addr(v, p, "an Ethernet", &n.gateway_mac); }},
             {"ifname",
              [this, &n](const Value& v, const std::string& p) {
                std::string s;
                if (!get_string(v, p, &s)) return;
                if (s.empty() || s.size() > 15) return err(v.pos, p, q(s) + " must be 1-15 bytes");
                n.ifname = s;
              }},
             {"map_gateway_to_loopback",
              [this](const Value& v, const std::string& p) { get_bool(v, p, &cfg_.flows.map_gateway_to_loopback); }},
             {"hostname",
              [this, &n](const Value& v, const std::string& p) {
                std::string s;
                if (get_name(v, p, false, &s)) n.hostname = s;
              }},
             {"search_domains",
              [this, &n](const Value& v, const std::string& p) {
                std::vector<std::string> out;
                each(v, p, [&](const Value& e, const std::string& ip) {
                  std::string s;
                  if (get_name(e, ip, false, &s)) out.push_back(s);
                });
                n.search_domains = std::move(out);
              }},
             {"impair",
              [this](const Value& v, const std::string& p) {
                // Validated by the command line (app::check_impair) after loading.
                get_string(v, p, &cfg_.flows.impair);
              }},
             {"ipv4", [this](const Value& v, const std::string& p) { ipv4(v, p); }},
             {"ipv6", [this](const Value& v, const std::string& p) { ipv6(v, p); }},
         },
         {
             {"host_loopback4", "the host loopback addresses are fixed (127.0.0.1, ::1) in this build"},
             {"host_loopback6", "the host loopback addresses are fixed (127.0.0.1, ::1) in this build"},
             {"deployment", "write gateway.deployment"},
         });
  }

  int family_mode(const Value& v, const std::string& p, FamilyMode* out) {
    int i = get_enum(v, p, {"auto", "on", "off"});
    if (i == 0) *out = FamilyMode::automatic;
    if (i == 1) *out = FamilyMode::on;
    if (i == 2) *out = FamilyMode::off;
    return i;
  }

  void ipv4(const Value& t, const std::string& path) {
    auto& n = cfg_.net;
    walk(t, path,
         {
             {"enable", [this, &n](const Value& v, const std::string& p) { family_mode(v, p, &n.ipv4_enable); }},
             {"address", [this, &n](const Value& v, const std::string& p) { get_addr(v, p, "an IPv4", &n.ipv4_address); }},
             {"prefix",
              [this, &n](const Value& v, const std::string& p) {
                int64_t x = 0;
                if (get_int(v, p, 8, 30, &x)) n.ipv4_prefix = int(x);
              }},
             {"gateway", [this, &n](const Value& v, const std::string& p) { get_addr(v, p, "an IPv4", &n.ipv4_gateway); }},
             {"dns",
              [this, &n](const Value& v, const std::string& p) {
                Ipv4Addr a;
                if (get_addr(v, p, "an IPv4", &a)) n.ipv4_dns = a;
              }},
             {"dhcp", [this, &n](const Value& v, const std::string& p) { get_bool(v, p, &n.dhcp4); }},
             {"lease_time",
              [this, &n](const Value& v, const std::string& p) {
                duration(v, p, std::chrono::seconds(60), std::chrono::hours(365 * 24), "60s-8760h", &n.lease_time);
              }},
         });
  }

  void ipv6(const Value& t, const std::string& path) {
    auto& n = cfg_.net;
    walk(t, path,
         {
             {"enable", [this, &n](const Value& v, const std::string& p) { family_mode(v, p, &n.ipv6_enable); }},
             {"address", [this, &n](const Value& v, const std::string& p) { get_addr(v, p, "an IPv6", &n.ipv6_address); }},
             {"prefix",
              [this, &n](const Value& v, const std::string& p) {
                int64_t x = 0;
                if (get_int(v, p, 64, 64, &x)) n.ipv6_prefix = int(x);
              }},
             {"gateway", [this, &n](const Value& v, const std::string& p) { get_addr(v, p, "an IPv6", &n.ipv6_gateway); }},
             {"dns",
              [this, &n](const Value& v, const std::string& p) {
                Ipv6Addr a;
                if (get_addr(v, p, "an IPv6", &a)) n.ipv6_dns = a;
              }},
             {"ra", [this, &n](const Value& v, const std::string& p) { get_bool(v, p, &n.ra); }},
             {"dhcpv6",
              [this, &n](const Value& v, const std::string& p) {
                std::string s;
                if (!get_string(v, p, &s)) return;
                auto m = parse_dhcpv6_mode(s);
                if (!m) return err(v.pos, p, m.error());
                n.dhcpv6 = *m;
              }},
             {"ra_interval",
              [this, &n](const Value& v, const std::string& p) {
                duration(v, p, std::chrono::seconds(4), std::chrono::seconds(1800), "4s-1800s", &n.ra_interval);
              }},
         },
         {});
  }

  void tcp(const Value& t, const std::string& path) {
    walk(t, path,
         {{"connect_timeout",
           [this](const Value& v, const std::string& p) {
             duration(v, p, std::chrono::seconds(1), std::chrono::minutes(10), "1s-10m", &cfg_.flows.connect_timeout);
           }}},
         {
             {"idle_timeout", "TCP timeouts other than connect_timeout are fixed in this build"},
             {"half_closed_timeout", "TCP timeouts other than connect_timeout are fixed in this build"},
             {"close_timeout", "TCP timeouts other than connect_timeout are fixed in this build"},
             {"keepalive", "TCP keepalive is not configurable in this build"},
             {"keepalive_idle", "TCP keepalive is not configurable in this build"},
             {"keepalive_interval", "TCP keepalive is not configurable in this build"},
             {"keepalive_count", "TCP keepalive is not configurable in this build"},
             {"max_window", "the TCP window is fixed in this build"},
         });
  }

  void udp(const Value& t, const std::string& path) {
    walk(t, path,
         {{"max_sessions",
           [this](const Value& v, const std::string& p) { set_uint(v, p, 1, 16384, &cfg_.flows.udp_max_sessions); }}},
         {
             {"idle_timeout", "UDP timeouts are fixed in this build"},
             {"max_peers", "UDP per-session limits are fixed in this build"},
             {"queue_datagrams", "UDP queue sizes are fixed in this build"},
             {"queue_bytes", "UDP queue sizes are fixed in this build"},
         });
  }

  void icmp(const Value& t, const std::string& path) {
    walk(t, path,
         {
             {"relay", [this](const Value& v, const std::string& p) { get_bool(v, p, &cfg_.flows.icmp_relay); }},
             {"max_sessions",
              [this](const Value& v, const std::string& p) { set_uint(v, p, 1, 4096, &cfg_.flows.icmp_max_sessions); }},
         },
         {
             {"gateway_echo", "the gateway always answers echo in this build"},
             {"idle_timeout", "ICMP timeouts are fixed in this build"},
             {"error_rate", "the ICMP error rate is fixed in this build"},
             {"ttl_mirror", "TTL mirroring is not implemented"},
         });
  }

  void limits(const Value& t, const std::string& path) {
    walk(t, path,
         {
             {"max_flows", [this](const Value& v, const std::string& p) { set_uint(v, p, 1, 65536, &cfg_.flows.max_flows); }},
             {"max_pending_connects",
              [this](const Value& v, const std::string& p) { set_uint(v, p, 1, 8192, &cfg_.flows.max_pending_connects); }},
         },
         {
             {"memory_budget", "the memory budget is not configurable in this build"},
             {"flow_buffer", "flow buffers are fixed in this build"},
         });
  }

  void log(const Value& t, const std::string& path) {
    walk(t, path,
         {{"level",
           [this](const Value& v, const std::string& p) {
             int i = get_enum(v, p, {"error", "warn", "info", "debug", "trace"});
             if (i >= 0) parse_log_level(v.str, &cfg_.log_level);
           }}},
         {
             {"format", "logs are text only in this build"},
             {"file", "logs go to stderr in this build"},
         });
  }

  void audit(const Value& t, const std::string& path) {
    auto& a = cfg_.audit;
    walk(t, path, {
        {"file", [this, &a](const Value& v, const std::string& p) { get_path(v, p, &a.file, /*allow_dash=*/true); }},
        {"dns",
         [this, &a](const Value& v, const std::string& p) {
           int i = get_enum(v, p, {"none", "denied", "all"});
           if (i >= 0) a.dns = AuditDns(i);
         }},
        {"events",
         [this, &a](const Value& v, const std::string& p) {
           static constexpr std::string_view kEvents[] = {
               "flow_open", "flow_deny", "flow_close", "dns_query", "dns_denied", "dns_blocked",
               "dns_rebind_blocked", "tls_upstream_verify_failed", "tls_error", "http_authority_mismatch",
               "connect_sni_mismatch", "secret_violation", "limit_hit", "config_change", "gateway_start",
               "gateway_stop"};
           std::vector<std::string> out;
           each(v, p, [&](const Value& e, const std::string& ip) {
             std::string s;
             if (!get_string(e, ip, &s)) return;
             for (auto k : kEvents)
               if (k == s) return out.push_back(s);
             std::string_view best;
             size_t bd = 3;
             for (auto k : kEvents)
               if (size_t d = edit_distance(s, k); d < bd) bd = d, best = k;
             err(e.pos, ip, q(s) + " is not an audit event", best.empty() ? "" : "did you mean " + q(best) + "?");
           });
           a.events = std::move(out);
         }},
    });
  }

  void pcap(const Value& t, const std::string& path) {
    walk(t, path, {{"file", [this](const Value& v, const std::string& p) { get_path(v, p, &cfg_.pcap_file); }}},
         {
             {"snaplen", "the capture length is fixed (262144) in this build"},
             {"max_size", "capture rotation is not implemented"},
         });
  }

  void dns(const Value& t, const std::string& path) {
    auto& d = cfg_.dns;
    auto& fl = cfg_.flows;
    walk(t, path, {
        {"upstreams",
         [this, &fl](const Value& v, const std::string& p) {
           std::vector<UpstreamSpec> out;
           each(v, p, [&](const Value& e, const std::string& ip) {
             std::string s;
             if (!get_string(e, ip, &s)) return;
             auto u = parse_upstream(s);
             if (!u) return err(e.pos, ip, u.error());
             out.push_back(*u);
           });
           fl.dns_upstreams = std::move(out);
         }},
        {"resolv_conf", [this, &fl](const Value& v, const std::string& p) { get_path(v, p, &fl.resolv_conf); }},
        {"timeout",
         [this, &d](const Value& v, const std::string& p) {
           duration(v, p, DnsConfig::kTimeoutMin, DnsConfig::kTimeoutMax, "100ms-30s", &d.timeout);
         }},
        {"deadline",
         [this, &d](const Value& v, const std::string& p) {
           duration(v, p, std::chrono::milliseconds(100), std::chrono::seconds(60), "100ms-60s", &d.deadline);
         }},
        {"rebind_protection", [this, &d](const Value& v, const std::string& p) { get_bool(v, p, &d.rebind_protection); }},
        {"block",
         [this, &d](const Value& v, const std::string& p) {
           std::vector<std::string> out;
           each(v, p, [&](const Value& e, const std::string& ip) {
             std::string s;
             if (get_name(e, ip, /*allow_wildcard=*/true, &s)) out.push_back(std::move(s));
           });
           d.block = std::move(out);
         }},
        {"block_files",
         [this, &d](const Value& v, const std::string& p) {
           std::vector<std::string> out;
           each(v, p, [&](const Value& e, const std::string& ip) {
             std::string s;
             if (get_path(e, ip, &s)) out.push_back(std::move(s));
           });
           d.block_files = std::move(out);
         }},
        {"block_doh", [this, &d](const Value& v, const std::string& p) { get_bool(v, p, &d.block_doh); }},
        {"hosts", [this, &d](const Value& v, const std::string& p) { hosts(v, p, &d.hosts); }},
        {"pin_min_ttl",
         [this, &d](const Value& v, const std::string& p) {
           duration(v, p, std::chrono::seconds(0), std::chrono::hours(24 * 7), "0s-168h", &d.pin_min_ttl);
         }},
        {"pin_max_ttl",
         [this, &d](const Value& v, const std::string& p) {
           duration(v, p, std::chrono::seconds(1), std::chrono::hours(24 * 7), "1s-168h", &d.pin_max_ttl);
         }},
        {"max_pins", [this, &d](const Value& v, const std::string& p) { set_uint(v, p, 1, 1 << 22, &d.max_pins); }},
        {"refuse_alt_ports", [this, &d](const Value& v, const std::string& p) { get_bool(v, p, &d.refuse_alt_ports); }},
        {"direct_queries",
         [this, &d](const Value& v, const std::string& p) {
           int i = get_enum(v, p, {"target", "upstream", "deny"});
           if (i >= 0) d.direct_queries = DirectQueries(i);
         }},
        {"max_inflight", [this, &d](const Value& v, const std::string& p) { set_uint(v, p, 1, 65536, &d.max_inflight); }},
        {"tcp_idle_timeout",
         [this, &d](const Value& v, const std::string& p) {
           duration(v, p, std::chrono::seconds(1), std::chrono::hours(1), "1s-1h", &d.tcp_idle_timeout);
         }},
    });
    if (d.pin_min_ttl > d.pin_max_ttl) err(t.pos, child(path, "pin_min_ttl"), "is greater than pin_max_ttl");
    if (d.timeout > d.deadline) err(t.pos, child(path, "timeout"), "is greater than dns.deadline");
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

  void policy(const Value& t, const std::string& path) {
    auto& pc = cfg_.policy;
    auto action = [this](const Value& v, const std::string& p, std::optional<Action>* out) {
      int i = get_enum(v, p, {"allow", "deny"});
      if (i >= 0) *out = i == 0 ? Action::allow : Action::deny;
    };
    walk(t, path, {
        {"profiles",
         [this, &pc](const Value& v, const std::string& p) {
           std::vector<std::string> items;
           bool ok = true;
           each(v, p, [&](const Value& e, const std::string& ip) {
             std::string s;
             if (get_string(e, ip, &s)) items.push_back(s);
             else ok = false;
           });
           if (!ok || v.kind != Kind::array) return;
           std::vector<std::string_view> views(items.begin(), items.end());
           auto r = policy::parse_profiles(views);
           if (!r) return err(v.pos, p, r.error().what, r.error().hint);
           pc.inputs.config_profiles = *r;
         }},
        {"default_egress",
         [&pc, action](const Value& v, const std::string& p) { action(v, p, &pc.inputs.config_default_egress); }},
        {"default_ingress",
         [&pc, action](const Value& v, const std::string& p) { action(v, p, &pc.inputs.config_default_ingress); }},
        {"rules", [this](const Value& v, const std::string& p) { rules(v, p); }},
        {"deny_response",
         [this, &pc](const Value& v, const std::string& p) {
           int i = get_enum(v, p, {"reject", "drop"});
           if (i >= 0) pc.deny_response = DenyResponse(i);
         }},
        {"first_flight_timeout",
         [this, &pc](const Value& v, const std::string& p) {
           duration(v, p, std::chrono::milliseconds(50), std::chrono::seconds(30), "50ms-30s", &pc.first_flight_timeout);
         }},
        {"sni_requires_pin",
         [this, &pc](const Value& v, const std::string& p) { get_bool(v, p, &pc.inputs.sni_requires_pin); }},
    });
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
