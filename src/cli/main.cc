// moat command line: subcommand dispatch, flags -> one validated config::Config, then app/.
// Bad input is reported as §5.2 one-line errors (all of them, up to 20) before anything is
// created; exit statuses follow §5.1 (125 for `run`, 2 for usage errors elsewhere).
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "app/app.h"
#include "cli/docgen.h"
#include "cli/flags.h"
#include "base/file.h"
#include "config/config.h"
#include "config/loader.h"
#include "policy/engine.h"
#include "policy/explain.h"
#include "policy/profiles.h"
#include "policy/rule.h"
#include "transport/unix_socket.h"

namespace moat::cli {
namespace {

constexpr const char* kVersion = MOAT_VERSION_STRING;  // project(VERSION) in CMakeLists.txt, via moat_cli

using config::UserError;
using Err = std::optional<UserError>;

std::string quote(std::string_view v) { return quote_value(v); }  // bounded, escaped (§5.2)

Err parse_u32(std::string_view flag, std::string_view v, uint32_t lo, uint32_t hi, uint32_t* out) {
  uint64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size())
    return UserError{std::string(flag), quote(v) + " is not a number", ""};
  if (x < lo || x > hi)
    return UserError{std::string(flag), std::string(v) + " is out of range",
                     "expected " + std::to_string(lo) + "-" + std::to_string(hi)};
  *out = uint32_t(x);
  return std::nullopt;
}

/// `-c/--config FILE`: read by preload_config() before any other flag is applied, so the
/// flag itself does nothing when parse_flags() meets it.
void add_config_flag(std::vector<Flag>& f) {
  f.push_back({"--config", "-c", "FILE", "TOML (or .json) config file; flags override it (SPEC §4)",
               [](std::string_view) -> Err { return std::nullopt; }, "Config file"});
}

/// R-CLI-1: the config file is applied before every flag wherever --config stands; the
/// flags then override its scalars, go before its rules (PolicyInputs::cli vs ::config),
/// append to its lists, and --dns-upstream replaces its upstreams.
std::vector<UserError> preload_config(const std::vector<Flag>& flags, const std::vector<std::string>& args,
                                      bool stop_at_positional, config::Config& c, std::string* path_out = nullptr) {
  auto paths = prescan_flag(flags, args, "--config", stop_at_positional);
  if (paths.empty()) return {};
  if (paths.size() > 1) return {{"--config", "given more than once", "merge the files into one"}};
  if (paths[0].empty()) return {{"--config", "empty path", "write --config FILE"}};
  if (path_out != nullptr) *path_out = paths[0];
  auto r = config::load_config_file(paths[0], c);
  if (!r) return r.error();
  std::vector<UserError> errs;
  if (!c.flows.impair.empty())
    if (auto e = app::check_impair(c.flows.impair)) errs.push_back({paths[0] + ": net.impair", *e, ""});
  return errs;
}

/// Names the config key rather than the flag in R-ADDR-2 messages for values that came
/// from the file and were not overridden by a flag.
config::NetSources net_sources(const std::string& path, const config::NetConfig& file, const config::NetConfig& fin) {
  config::NetSources s;
  if (path.empty()) return s;
  const config::NetConfig def;
  auto from_file = [&](bool file_set, bool unchanged, std::string* src, const char* key) {
    if (file_set && unchanged) *src = path + ": " + key;
  };
  from_file(file.mtu != def.mtu, fin.mtu == file.mtu, &s.mtu, "net.mtu");
  from_file(file.ipv4_address != def.ipv4_address || file.ipv4_prefix != def.ipv4_prefix,
            fin.ipv4_address == file.ipv4_address && fin.ipv4_prefix == file.ipv4_prefix, &s.ipv4, "net.ipv4.address");
  from_file(file.ipv4_gateway != def.ipv4_gateway, fin.ipv4_gateway == file.ipv4_gateway, &s.gateway4, "net.ipv4.gateway");
  from_file(file.ipv4_dns != def.ipv4_dns, fin.ipv4_dns == file.ipv4_dns, &s.dns4, "net.ipv4.dns");
  from_file(!(file.ipv6_address == def.ipv6_address) || file.ipv6_prefix != def.ipv6_prefix,
            fin.ipv6_address == file.ipv6_address && fin.ipv6_prefix == file.ipv6_prefix, &s.ipv6, "net.ipv6.address");
  from_file(!(file.ipv6_gateway == def.ipv6_gateway), fin.ipv6_gateway == file.ipv6_gateway, &s.gateway6,
            "net.ipv6.gateway");
  from_file(file.ipv6_dns != def.ipv6_dns, fin.ipv6_dns == file.ipv6_dns, &s.dns6, "net.ipv6.dns");
  from_file(!(file.guest_mac == def.guest_mac), fin.guest_mac == file.guest_mac, &s.guest_mac, "net.guest_mac");
  from_file(!(file.gateway_mac == def.gateway_mac), fin.gateway_mac == file.gateway_mac, &s.gateway_mac,
            "net.gateway_mac");
  from_file(file.ifname != def.ifname, fin.ifname == file.ifname, &s.ifname, "net.ifname");
  return s;
}

/// Flags shared by run, attach and serve: every setting of the schema that has a flag
/// (config/settings.h), after --config.
std::vector<Flag> gateway_flags(config::Config& c) {
  std::vector<Flag> f;
  add_config_flag(f);
  for (auto& x : setting_flags(c)) {
    if (x.name == "--impair") {
      // The impairment grammar lives in app/, which config/ cannot call: the same check
      // runs for the file's net.impair in preload_config().
      x.apply = [inner = std::move(x.apply)](std::string_view v) -> Err {
        if (auto e = app::check_impair(v)) return UserError{"--impair", *e, ""};
        return inner(v);
      };
    }
    f.push_back(std::move(x));
  }
  return f;
}

/// Puts the flags from `first` on under --help heading `group`.
void set_group(std::vector<Flag>& f, size_t first, const char* group) {
  for (size_t i = first; i < f.size(); ++i) f[i].group = group;
}

void print_errors(const std::vector<UserError>& errs) {
  for (const auto& e : errs) std::fprintf(stderr, "%s\n", e.format().c_str());
}

/// app::finish_config() (the one finish step; R-ADDR-2/3, the DNS block list, R-LIM-3) for
/// a command-line gateway; prints every error (flag errors first, at most 20) and returns
/// false if there was any.
bool finish_config(config::Config& c, const char* default_ifname, app::GatewayPlan* plan,
                   std::vector<UserError> errs, const config::NetSources& src = {}) {
  app::FinishOptions fo;
  fo.default_ifname = default_ifname;
  fo.sources = src;
  fo.own_process = true;
  auto p = app::finish_config(std::move(c), fo, std::move(errs));
  if (!p) {
    print_errors(p.error());
    return false;
  }
  *plan = std::move(p).value();
  return true;
}

int cmd_run(const std::vector<std::string>& args) {
  constexpr int kFail = 125;  // §5.1: moat's own failure in `run`
  app::RunOptions o;
  auto flags = gateway_flags(o.cfg);
  std::string cfg_path;
  auto errs = preload_config(flags, args, /*stop_at_positional=*/true, o.cfg, &cfg_path);
  const config::NetConfig file_net = o.cfg.net;
  auto r = parse_flags(flags, args, /*stop_at_positional=*/true);
  if (r.help) {
    std::printf("%s", format_help("moat run [OPTIONS] [--] CMD [ARGS...]", flags).c_str());
    return 0;
  }
  if (r.positional.empty()) r.errors.push_back({"run", "missing command", "write moat run [OPTIONS] -- CMD"});
  errs.insert(errs.end(), r.errors.begin(), r.errors.end());
  if (!finish_config(o.cfg, "eth0", &o.plan, errs, net_sources(cfg_path, file_net, o.cfg.net))) return kFail;
  o.argv = std::move(r.positional);
  return app::run_sandbox(o);
}

int cmd_attach(const std::vector<std::string>& args) {
  constexpr int kUsage = 2;
  app::AttachOptions o;
  auto flags = gateway_flags(o.cfg);
  const size_t own = flags.size();
  flags.push_back({"--netns", "", "PATH", "network namespace to serve (e.g. /run/netns/NAME)",
                   [&o](std::string_view v) -> Err {
                     if (v.empty()) return UserError{"--netns", "empty path", "write --netns PATH"};
                     o.netns_path = v;
                     return std::nullopt;
                   }});
  flags.push_back({"--pid", "", "PID", "serve the network namespace of PID",
                   [&o](std::string_view v) -> Err {
                     uint32_t p = 0;
                     auto e = parse_u32("--pid", v, 1, 0x3fffffff, &p);
                     o.pid = pid_t(p);
                     return e;
                   }});
  flags.push_back({"--no-configure", "", "", "create the TAP only; the namespace runs DHCP/SLAAC itself",
                   [&o](std::string_view) -> Err { o.configure = false; return std::nullopt; }});
  set_group(flags, own, "Namespace");
  std::string cfg_path;
  auto errs = preload_config(flags, args, /*stop_at_positional=*/false, o.cfg, &cfg_path);
  const config::NetConfig file_net = o.cfg.net;
  auto r = parse_flags(flags, args, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help("moat attach (--netns PATH | --pid PID) [OPTIONS]", flags).c_str());
    return 0;
  }
  if (r.errors.empty() && o.netns_path.empty() == (o.pid == 0))
    r.errors.push_back({"attach", "give exactly one of --netns, --pid", ""});
  errs.insert(errs.end(), r.errors.begin(), r.errors.end());
  if (!finish_config(o.cfg, "moat0", &o.plan, errs, net_sources(cfg_path, file_net, o.cfg.net))) return kUsage;
  return app::attach(o);
}

int cmd_serve(const std::vector<std::string>& args) {
  constexpr int kUsage = 2;
  app::ServeOptions o;
  auto flags = gateway_flags(o.cfg);
  const size_t own = flags.size();
  int transports = 0;
  bool have_fd_type = false;
  flags.push_back({"--qemu", "", "PATH", "listen on unix stream socket PATH (@name: abstract) for QEMU -netdev stream",
                   [&](std::string_view v) -> Err {
                     ++transports;
                     o.kind = app::ServeKind::qemu;
                     o.path = v;
                     if (v.empty()) return UserError{"--qemu", "empty socket path", ""};
                     return std::nullopt;
                   }});
  flags.push_back({"--unixgram", "", "PATH", "bind unix datagram socket PATH (@name: abstract), one frame per datagram",
                   [&](std::string_view v) -> Err {
                     ++transports;
                     o.kind = app::ServeKind::unixgram;
                     o.path = v;
                     if (v.empty()) return UserError{"--unixgram", "empty socket path", ""};
                     return std::nullopt;
                   }});
  flags.push_back({"--fd", "", "N", "serve the inherited descriptor N (stream, datagram/seqpacket socket or TAP)",
                   [&](std::string_view v) -> Err {
                     ++transports;
                     o.kind = app::ServeKind::fd;
                     uint32_t n = 0;
                     auto e = parse_u32("--fd", v, 0, 1u << 20, &n);
                     o.fd = int(n);
                     if (!e && n <= 2)
                       return UserError{"--fd", std::string(v) + " is standard input/output/error", "pass a descriptor >= 3"};
                     // Checked while the flags are parsed, before moat opens a descriptor it
                     // keeps (only the config file was opened and closed): if the caller closed
                     // N, the first descriptor moat opens (a signalfd, an epoll) would get
                     // number N and be adopted as the guest link.
                     if (!e && ::fcntl(int(n), F_GETFD) == -1 && errno == EBADF)
                       return UserError{"--fd " + std::string(v), "not an open file descriptor",
                                        "the descriptor must be open when moat starts"};
                     return e;
                   }});
  flags.push_back({"--fd-type", "", "tap|stream|dgram", "what --fd is (default: detected from the descriptor)",
                   [&](std::string_view v) -> Err {
                     have_fd_type = true;
                     if (v == "tap") o.fd_type = app::FdType::tap;
                     else if (v == "stream") o.fd_type = app::FdType::stream;
                     else if (v == "dgram") o.fd_type = app::FdType::dgram;
                     else return UserError{"--fd-type", quote(v) + " is not one of tap, stream, dgram", ""};
                     return std::nullopt;
                   }});
  flags.push_back({"--once", "", "", "exit when the first peer disconnects (--qemu)",
                   [&](std::string_view) -> Err { o.once = true; return std::nullopt; }});
  flags.push_back({"--socket-mode", "", "MODE", "file mode of the socket (octal, default 0600)",
                   [&](std::string_view v) -> Err {
                     auto m = transport::parse_socket_mode(v);
                     if (!m) return UserError{"--socket-mode", m.error(), ""};
                     o.socket_mode = unsigned(*m);
                     return std::nullopt;
                   }});
  set_group(flags, own, "Transport");
  std::string cfg_path;
  auto errs = preload_config(flags, args, /*stop_at_positional=*/false, o.cfg, &cfg_path);
  const config::NetConfig file_net = o.cfg.net;
  auto r = parse_flags(flags, args, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help("moat serve (--qemu PATH | --unixgram PATH | --fd N [--fd-type T]) [OPTIONS]", flags).c_str());
    return 0;
  }
  if (transports != 1) r.errors.push_back({"serve", "give exactly one of --qemu, --unixgram, --fd", ""});
  else if (have_fd_type && o.kind != app::ServeKind::fd)
    r.errors.push_back({"--fd-type", "only applies to --fd", ""});
  errs.insert(errs.end(), r.errors.begin(), r.errors.end());
  if (!finish_config(o.cfg, "moat0", &o.plan, errs, net_sources(cfg_path, file_net, o.cfg.net))) return kUsage;
  return app::serve(o);
}

// --- moat policy check / explain (R-CLI-7, R-CLI-8, R-POL-13, R-POL-14) -----------------

/// The addresses of group `host` for a config (as app/ computes them for the data path),
/// with every family that is not switched off.
policy::HostAddrs host_addrs_of(const config::NetConfig& n) {
  policy::HostAddrs h = app::host_addrs(
      n, app::Families{n.ipv4_enable != config::FamilyMode::off, n.ipv6_enable != config::FamilyMode::off});
  return h;
}

/// A rules file (R-CLI-7): one rule string per line (or several, comma-separated), `#`
/// starts a comment. Errors point at FILE:LINE:COL of the offending rule.
std::vector<UserError> load_rules_file(const std::string& path, std::vector<policy::Rule>* out) {
  std::vector<UserError> errs;
  auto text = read_bounded_file(path, config::kMaxConfigFileBytes);
  if (!text) return {{path, text.error().message(), ""}};
  auto r = policy::parse_rules_text(*text, policy::Origin::config, 20);
  if (!r) {
    for (const auto& e : r.error())
      errs.push_back({path + ":" + std::to_string(e.line) + ":" + std::to_string(e.column), e.error.what, e.error.hint});
    return errs;
  }
  for (auto& rule : *r) out->push_back(std::move(rule));
  return errs;
}

bool is_config_name(std::string_view f) {
  auto ends = [&](std::string_view s) { return f.size() >= s.size() && f.substr(f.size() - s.size()) == s; };
  return ends(".toml") || ends(".json");
}

int cmd_policy_check(const std::vector<std::string>& args) {
  constexpr int kInvalid = 1, kUsage = 2;
  bool strict = false, print = false;
  std::vector<Flag> flags;
  flags.push_back({"--strict", "", "", "warnings make the check fail (exit 1)",
                   [&](std::string_view) -> Err { strict = true; return std::nullopt; }});
  flags.push_back({"--print", "", "", "also print the normalised, expanded policy",
                   [&](std::string_view) -> Err { print = true; return std::nullopt; }});
  // FILE may stand anywhere among the switches: take the non-options out first.
  std::vector<std::string> files, rest;
  for (const auto& a : args) (a.size() > 1 && a[0] == '-' ? rest : files).push_back(a);
  auto r = parse_flags(flags, rest, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help("moat policy check FILE [--strict] [--print]\n"
                                  "  FILE: a config (.toml, .json) or a rules file (one rule per line, # comments)",
                                  flags).c_str());
    return 0;
  }
  if (files.size() != 1) r.errors.push_back({"policy check", "give exactly one FILE", "moat policy check FILE [--strict]"});
  if (!r.errors.empty()) {
    print_errors(r.errors);
    return kUsage;
  }
  const std::string& file = files[0];
  config::Config c;
  std::vector<UserError> errs;
  if (is_config_name(file)) {
    if (auto lr = config::load_config_file(file, c); !lr) errs = lr.error();
    if (errs.empty()) {
      config::NetSources src = net_sources(file, c.net, c.net);
      bool v4 = c.net.ipv4_enable != config::FamilyMode::off, v6 = c.net.ipv6_enable != config::FamilyMode::off;
      errs = config::validate(c.net, v4, v6, src);
    }
  } else {
    errs = load_rules_file(file, &c.policy.inputs.config);
  }
  if (!errs.empty()) {
    if (errs.size() > 20) errs.resize(20);
    print_errors(errs);
    return kInvalid;
  }
  policy::Engine e(policy::resolve_policy(c.policy.inputs), host_addrs_of(c.net));
  auto warnings = e.lint();
  for (const auto& w : warnings) std::fprintf(stderr, "moat: warning: %s\n", w.c_str());
  const auto& p = e.policy();
  if (print) {
    for (size_t i = 0; i < p.rules.size(); ++i) {
      const auto& rule = p.rules[i];
      std::printf("rule #%-3zu %-7s %s%s\n", i, std::string(policy::origin_name(rule.origin)).c_str(), rule.text.c_str(),
                  rule.label.empty() ? "" : ("  [" + rule.label + "]").c_str());
    }
  }
  std::string profiles = p.profiles.empty() ? "(empty)" : p.profiles.to_string();
  std::printf("%s: valid: %zu rules, profiles %s, default egress %s, default ingress %s\n", file.c_str(),
              p.rules.size(), profiles.c_str(), std::string(policy::action_name(p.default_egress)).c_str(),
              std::string(policy::action_name(p.default_ingress)).c_str());
  if (p.profiles.empty())
    std::printf("%s: the profile set is empty: only the explicit rules apply (default egress %s)\n", file.c_str(),
                std::string(policy::action_name(p.default_egress)).c_str());
  if (strict && !warnings.empty()) return kInvalid;
  return 0;
}

/// --dst HOST:PORT[/tcp|/udp|/icmp] (R-CLI-8); IPv6 as [ADDR]:PORT; ICMP needs no port.
using Dst = policy::ExplainDst;
Err parse_dst(std::string_view v, Dst* d) {
  auto r = policy::parse_explain_dst(v);
  if (!r) return UserError{"--dst", quote(v) + " " + r.error().what, r.error().hint};
  *d = std::move(*r);
  return std::nullopt;
}

int cmd_policy_explain(const std::vector<std::string>& args) {
  constexpr int kDenied = 1, kUsage = 2;
  config::Config c;
  std::vector<Flag> flags;
  add_config_flag(flags);
  for (auto& f : setting_flags(c, [](const config::Setting& s) {
         return s.key == "policy.rules" || s.key == "policy.profiles" || s.key == "policy.default_egress" ||
                s.key == "policy.default_ingress";
       }))
    flags.push_back(std::move(f));
  policy::ExplainInputs in;  // filled by the flags below
  bool have_dst = false;
  flags.push_back({"--dst", "", "HOST:PORT[/PROTO]", "destination to explain; PROTO tcp (default), udp or icmp",
                   [&](std::string_view v) -> Err {
                     have_dst = true;
                     return parse_dst(v, &in.dst);
                   }});
  flags.push_back({"--sni", "", "NAME", "a name the first flight claims (TLS SNI or HTTP Host)",
                   [&](std::string_view v) -> Err {
                     auto n = policy::normalize_name(v);
                     if (!n) return UserError{"--sni", quote(v) + ": " + n.error().what, n.error().hint};
                     in.sni = *n;
                     return std::nullopt;
                   }});
  flags.push_back({"--ip", "", "IP", "the address a name destination resolves to (default 100.128.0.1, public)",
                   [&](std::string_view v) -> Err {
                     auto a = IpAddr::parse(v);
                     if (!a) return UserError{"--ip", quote(v) + " is not an IP address", ""};
                     in.ip = *a;
                     return std::nullopt;
                   }});
  flags.push_back({"--pin", "", "NAME=IP", "a DNS pin of the guest (repeatable)",
                   [&](std::string_view v) -> Err {
                     auto eq = v.find('=');
                     if (eq == std::string_view::npos) return UserError{"--pin", quote(v) + " is not NAME=IP", ""};
                     auto n = policy::normalize_name(v.substr(0, eq));
                     if (!n) return UserError{"--pin", quote(v.substr(0, eq)) + ": " + n.error().what, n.error().hint};
                     auto a = IpAddr::parse(v.substr(eq + 1));
                     if (!a) return UserError{"--pin", quote(v.substr(eq + 1)) + " is not an IP address", ""};
                     in.pins.emplace_back(*n, *a);
                     return std::nullopt;
                   }});
  flags.push_back({"--ingress", "", "", "explain an ingress query: --src peer to the published guest port of --dst",
                   [&](std::string_view) -> Err { in.ingress = true; return std::nullopt; }});
  flags.push_back({"--src", "", "IP", "the peer address of an --ingress query",
                   [&](std::string_view v) -> Err {
                     auto a = IpAddr::parse(v);
                     if (!a) return UserError{"--src", quote(v) + " is not an IP address", ""};
                     in.src = *a;
                     return std::nullopt;
                   }});
  auto errs = preload_config(flags, args, /*stop_at_positional=*/false, c);
  auto r = parse_flags(flags, args, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help("moat policy explain [--config FILE] [--rule R] [--profile P] --dst HOST:PORT[/tcp|/udp|/icmp]",
                                  flags).c_str());
    return 0;
  }
  errs.insert(errs.end(), r.errors.begin(), r.errors.end());
  if (!have_dst && r.errors.empty()) errs.push_back({"policy explain", "missing --dst", "write --dst HOST:PORT[/tcp|/udp|/icmp]"});
  policy::StaticPins pin_set;
  Result<policy::ExplainRequest, policy::ExplainInputError> rq = policy::ExplainRequest{};
  if (errs.empty()) {
    in.rebind_protection = c.dns.rebind_protection;
    rq = policy::make_explain_request(in, pin_set, [](std::string_view f) { return "--" + std::string(f); });
    if (!rq) errs.push_back({"--" + rq.error().field, rq.error().what, rq.error().hint});
  }
  if (!errs.empty()) {
    if (errs.size() > 20) errs.resize(20);
    print_errors(errs);
    return kUsage;
  }
  policy::Engine e(policy::resolve_policy(c.policy.inputs), host_addrs_of(c.net));
  auto rep = policy::explain_report(e, *rq, pin_set, &pin_set);
  for (const auto& l : rep.lines) std::printf("%s\n", l.c_str());
  return rep.allowed ? 0 : kDenied;
}

int cmd_policy(const std::vector<std::string>& args) {
  constexpr int kUsage = 2;
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fprintf(args.empty() ? stderr : stdout,
                 "Usage:\n"
                 "  moat policy check FILE [--strict] [--print]   validate a config or rules file, print warnings\n"
                 "  moat policy explain [OPTIONS] --dst HOST:PORT[/tcp|/udp|/icmp]   show how a query is decided\n");
    return args.empty() ? kUsage : 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "check") return cmd_policy_check(rest);
  if (args[0] == "explain") return cmd_policy_explain(rest);
  std::fprintf(stderr, "moat: error: policy %s: unknown subcommand; use check or explain\n", args[0].c_str());
  return kUsage;
}

/// `moat __man 1|5`: moat(1) from every subcommand's --help data, moat.toml(5) from the
/// settings schema (docgen.h); the build runs it, users read `man moat`.
int cmd_man(const std::vector<std::string>& args) {
  if (args.size() != 1 || (args[0] != "1" && args[0] != "5")) {
    std::fprintf(stderr, "moat: error: __man: give 1 (moat.1) or 5 (moat.toml.5)\n");
    return 2;
  }
  if (args[0] == "5") {
    std::printf("%s", man_moat_toml(kVersion).c_str());
    return 0;
  }
  HelpCapture cap;
  set_help_capture(&cap);
  (void)cmd_run({"--help"});
  (void)cmd_attach({"--help"});
  (void)cmd_serve({"--help"});
  (void)cmd_policy({"check", "--help"});
  (void)cmd_policy({"explain", "--help"});
  set_help_capture(nullptr);
  std::printf("%s", man_moat(cap, kVersion).c_str());
  return 0;
}

void usage(FILE* to) {
  std::fprintf(to,
               "moat %s — a user-space network gateway for sandboxes\n\n"
               "Usage:\n"
               "  moat run [OPTIONS] [--] CMD [ARGS...]   run CMD in a new network namespace behind moat\n"
               "  moat attach (--netns PATH | --pid PID)  serve an existing network namespace\n"
               "  moat serve (--qemu PATH | --unixgram PATH | --fd N)  serve a VM's link on a socket or fd\n"
               "  moat policy check FILE | explain --dst HOST:PORT  validate or explain a policy\n"
               "  moat --version | --help\n\n"
               "`moat SUBCOMMAND --help` lists the options.\n",
               kVersion);
}

}  // namespace
}  // namespace moat::cli

int main(int argc, char** argv) {
  using namespace moat::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    usage(stderr);
    return 2;
  }
  std::string sub = args.front();
  args.erase(args.begin());
  if (sub == "--version" || sub == "version") {
    std::printf("moat %s\n", kVersion);
    return 0;
  }
  if (sub == "--help" || sub == "-h" || sub == "help") {
    usage(stdout);
    return 0;
  }
  if (sub == "__man") return cmd_man(args);  // the build's man pages (not in --help)
  if (sub == "run") return cmd_run(args);
  if (sub == "attach") return cmd_attach(args);
  if (sub == "serve") return cmd_serve(args);
  if (sub == "policy") return cmd_policy(args);
  std::fprintf(stderr, "moat: error: %s: unknown subcommand; see moat --help\n", sub.c_str());
  return 2;
}
