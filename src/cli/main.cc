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
#include "cli/flags.h"
#include "base/unique_fd.h"
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

std::string quote(std::string_view v) { return "\"" + std::string(v) + "\""; }

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

Err parse_family_mode(std::string_view flag, std::string_view v, config::FamilyMode* out) {
  if (v == "auto") *out = config::FamilyMode::automatic;
  else if (v == "on") *out = config::FamilyMode::on;
  else if (v == "off") *out = config::FamilyMode::off;
  else return UserError{std::string(flag), quote(v) + " is not one of auto, on, off", ""};
  return std::nullopt;
}

template <class A>
Err parse_addr(std::string_view flag, std::string_view v, A* out, const char* family) {
  auto a = A::parse(v);
  if (!a) return UserError{std::string(flag), quote(v) + " is not an " + family + " address", ""};
  *out = *a;
  return std::nullopt;
}

Err parse_action(std::string_view flag, std::string_view v, std::optional<policy::Action>* out) {
  if (v == "allow") *out = policy::Action::allow;
  else if (v == "deny") *out = policy::Action::deny;
  else return UserError{std::string(flag), quote(v) + " is not one of allow, deny", ""};
  return std::nullopt;
}

/// Policy and audit flags (R-POL-5/6/10/15, R-OBS-3).
void add_policy_flags(config::Config& c, std::vector<Flag>& f) {
  auto& pc = c.policy;
  f.push_back({"--rule", "-r", "RULES",
               "action[:direction]@target[:protos[:ports]], comma-separated (repeatable; before the file's rules)",
               [&pc, n = size_t(0)](std::string_view v) mutable -> Err {
                 auto r = policy::parse_rules(v, policy::Origin::cli);
                 size_t first = ++n;  // #N counts rules across every --rule value
                 if (!r) {
                   const auto& e = r.error();
                   return UserError{"--rule #" + std::to_string(first + e.rule_index_in_value) + " " +
                                        quote(e.rule_text) + " col " + std::to_string(e.column),
                                    e.what, e.hint};
                 }
                 n += r->size() - 1;
                 for (auto& rule : *r) pc.inputs.cli.push_back(std::move(rule));
                 return std::nullopt;
               }});
  f.push_back({"--profile", "", "LIST", "public,private,host | none | all (comma-separated, repeatable; default public)",
               [&pc, items = std::vector<std::string>()](std::string_view v) mutable -> Err {
                 items.emplace_back(v);
                 std::vector<std::string_view> views(items.begin(), items.end());
                 auto p = policy::parse_profiles(views);
                 if (!p) return UserError{"--profile", p.error().what, p.error().hint};
                 pc.inputs.cli_profiles = *p;
                 return std::nullopt;
               }});
  f.push_back({"--default-egress", "", "allow|deny", "egress verdict when no rule matches",
               [&pc](std::string_view v) { return parse_action("--default-egress", v, &pc.inputs.cli_default_egress); }});
  f.push_back({"--default-ingress", "", "allow|deny", "ingress verdict (published ports) when no rule matches",
               [&pc](std::string_view v) { return parse_action("--default-ingress", v, &pc.inputs.cli_default_ingress); }});
  f.push_back({"--deny-response", "", "reject|drop", "answer refused traffic with RST/ICMP (reject) or silence (drop)",
               [&pc](std::string_view v) -> Err {
                 if (v == "reject") pc.deny_response = config::DenyResponse::reject;
                 else if (v == "drop") pc.deny_response = config::DenyResponse::drop;
                 else return UserError{"--deny-response", quote(v) + " is not one of reject, drop", ""};
                 return std::nullopt;
               }});
  f.push_back({"--first-flight-timeout", "", "DUR", "wait for a TLS SNI / HTTP Host on the inspect path (default 1s)",
               [&pc](std::string_view v) -> Err {
                 auto d = config::parse_duration(v);
                 if (!d) return UserError{"--first-flight-timeout", quote(v) + " is not a duration", "write e.g. 1s or 500ms"};
                 if (*d < std::chrono::milliseconds(50) || *d > std::chrono::seconds(30))
                   return UserError{"--first-flight-timeout", std::string(v) + " is out of range", "expected 50ms-30s"};
                 pc.first_flight_timeout = *d;
                 return std::nullopt;
               }});
  f.push_back({"--audit", "", "FILE", "write one JSON line per flow decision and close to FILE (- = stderr)",
               [&c](std::string_view v) -> Err { c.audit.file = v; return std::nullopt; }});
  f.push_back({"--audit-dns", "", "none|denied|all", "which DNS queries the audit log records (default denied)",
               [&c](std::string_view v) -> Err {
                 if (v == "none") c.audit.dns = config::AuditDns::none;
                 else if (v == "denied") c.audit.dns = config::AuditDns::denied;
                 else if (v == "all") c.audit.dns = config::AuditDns::all;
                 else return UserError{"--audit-dns", quote(v) + " is not one of none, denied, all", ""};
                 return std::nullopt;
               }});
}

/// `-c/--config FILE`: read by preload_config() before any other flag is applied, so the
/// flag itself does nothing when parse_flags() meets it.
void add_config_flag(std::vector<Flag>& f) {
  f.push_back({"--config", "-c", "FILE", "TOML (or .json) config file; flags override it (SPEC §4)",
               [](std::string_view) -> Err { return std::nullopt; }});
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

/// DNS flags (SPEC §4.2 dns.*), filling config::DnsConfig; block lists are read later by
/// app::compile_dns_block() (finish_config), so every error is reported before side effects.
void add_dns_flags(config::Config& c, std::vector<Flag>& f) {
  auto& d = c.dns;
  f.push_back({"--dns-block", "", "NAME", "answer NXDOMAIN for NAME or *.SUFFIX and deny it in SNI/Host (repeatable)",
               [&d](std::string_view v) -> Err {
                 d.block.emplace_back(v);
                 return std::nullopt;
               }});
  f.push_back({"--dns-block-file", "", "PATH", "block every name in PATH (one per line or hosts format; repeatable)",
               [&d](std::string_view v) -> Err {
                 d.block_files.emplace_back(v);
                 return std::nullopt;
               }});
  f.push_back({"--dns-host", "", "NAME=IP", "answer NAME locally with IP (repeatable; several IPs per name allowed)",
               [&d](std::string_view v) -> Err {
                 const size_t eq = v.find('=');
                 if (eq == std::string_view::npos)
                   return UserError{"--dns-host", quote(v) + " is not NAME=IP", "write e.g. db.internal=10.0.0.5"};
                 auto name = policy::normalize_name(v.substr(0, eq));
                 if (!name) return UserError{"--dns-host", name.error().what, name.error().hint};
                 auto ip = IpAddr::parse(v.substr(eq + 1));
                 if (!ip) return UserError{"--dns-host", quote(v.substr(eq + 1)) + " is not an IP address", ""};
                 for (auto& [n, addrs] : d.hosts) {
                   if (n != *name) continue;
                   addrs.push_back(*ip);
                   return std::nullopt;
                 }
                 d.hosts.emplace_back(*name, std::vector<IpAddr>{*ip});
                 return std::nullopt;
               }});
  f.push_back({"--dns-timeout", "", "DUR", "per-attempt timeout for upstream DNS queries (default 2s)",
               [&d](std::string_view v) -> Err {
                 auto t = config::parse_duration(v);
                 if (!t) return UserError{"--dns-timeout", quote(v) + " is not a duration", "write e.g. 2s or 500ms"};
                 if (*t < config::DnsConfig::kTimeoutMin || *t > config::DnsConfig::kTimeoutMax)
                   return UserError{"--dns-timeout", std::string(v) + " is out of range", "expected 100ms-30s"};
                 d.timeout = *t;
                 // No flag sets dns.deadline: a longer attempt stretches it rather than
                 // contradicting it (the file key is checked against the file's deadline).
                 if (d.deadline < d.timeout) d.deadline = d.timeout;
                 return std::nullopt;
               }});
  f.push_back({"--no-rebind-protection", "", "", "let DNS answers carry private, loopback or link-local addresses",
               [&d](std::string_view) -> Err {
                 d.rebind_protection = false;
                 return std::nullopt;
               }});
  f.push_back({"--block-doh", "", "", "block well-known DNS-over-HTTPS/TLS resolver names (best effort)",
               [&d](std::string_view) -> Err {
                 d.block_doh = true;
                 return std::nullopt;
               }});
}

/// Flags shared by run and attach (and later serve): addressing, logging, outputs.
std::vector<Flag> gateway_flags(config::Config& c) {
  auto& n = c.net;
  std::vector<Flag> f;
  add_config_flag(f);
  f.push_back({"--mtu", "", "N", "IP MTU of the guest link (default 65520; 576/1280-65520)",
               [&n](std::string_view v) { return parse_u32("--mtu", v, 0, UINT32_MAX, &n.mtu); }});
  f.push_back({"--ipv4", "", "ADDR/LEN", "guest IPv4 address and prefix (default 100.96.0.2/30)",
               [&n](std::string_view v) { return config::parse_ipv4_prefix("--ipv4", v, &n.ipv4_address, &n.ipv4_prefix); }});
  f.push_back({"--gateway4", "", "ADDR", "gateway IPv4 address (default 100.96.0.1)",
               [&n](std::string_view v) { return parse_addr("--gateway4", v, &n.ipv4_gateway, "IPv4"); }});
  f.push_back({"--dns4", "", "ADDR", "DNS IPv4 address given to the guest (default: the gateway)",
               [&n](std::string_view v) {
                 Ipv4Addr a;
                 auto e = parse_addr("--dns4", v, &a, "IPv4");
                 if (!e) n.ipv4_dns = a;
                 return e;
               }});
  f.push_back({"--ipv6", "", "ADDR/64", "guest IPv6 address (default fd42:6d73:62::2/64)",
               [&n](std::string_view v) { return config::parse_ipv6_prefix("--ipv6", v, &n.ipv6_address, &n.ipv6_prefix); }});
  f.push_back({"--gateway6", "", "ADDR", "gateway IPv6 address (default fd42:6d73:62::1)",
               [&n](std::string_view v) { return parse_addr("--gateway6", v, &n.ipv6_gateway, "IPv6"); }});
  f.push_back({"--dns6", "", "ADDR", "DNS IPv6 address given to the guest (default: the gateway)",
               [&n](std::string_view v) {
                 Ipv6Addr a;
                 auto e = parse_addr("--dns6", v, &a, "IPv6");
                 if (!e) n.ipv6_dns = a;
                 return e;
               }});
  f.push_back({"--ipv4-enable", "", "MODE", "auto|on|off: IPv4 on the link (auto: iff the host has a route)",
               [&n](std::string_view v) { return parse_family_mode("--ipv4-enable", v, &n.ipv4_enable); }});
  f.push_back({"--ipv6-enable", "", "MODE", "auto|on|off: IPv6 on the link",
               [&n](std::string_view v) { return parse_family_mode("--ipv6-enable", v, &n.ipv6_enable); }});
  f.push_back({"--no-ipv4", "", "", "same as --ipv4-enable off",
               [&n](std::string_view) -> Err { n.ipv4_enable = config::FamilyMode::off; return std::nullopt; }});
  f.push_back({"--no-ipv6", "", "", "same as --ipv6-enable off",
               [&n](std::string_view) -> Err { n.ipv6_enable = config::FamilyMode::off; return std::nullopt; }});
  f.push_back({"--guest-mac", "", "MAC", "guest MAC (default 02:6d:6f:00:00:02)",
               [&n](std::string_view v) { return parse_addr("--guest-mac", v, &n.guest_mac, "Ethernet"); }});
  f.push_back({"--gateway-mac", "", "MAC", "gateway MAC (default 02:6d:6f:00:00:01)",
               [&n](std::string_view v) { return parse_addr("--gateway-mac", v, &n.gateway_mac, "Ethernet"); }});
  f.push_back({"--ifname", "", "NAME", "name of the TAP in the namespace (run: eth0, attach: moat0)",
               [&n](std::string_view v) -> Err { n.ifname = v; return std::nullopt; }});
  f.push_back({"--hostname", "", "NAME", "hostname offered by DHCP (option 12)",
               [&n](std::string_view v) -> Err { n.hostname = v; return std::nullopt; }});
  f.push_back({"--no-dhcp", "", "", "do not serve DHCPv4",
               [&n](std::string_view) -> Err { n.dhcp4 = false; return std::nullopt; }});
  f.push_back({"--no-ra", "", "", "send no IPv6 router advertisements",
               [&n](std::string_view) -> Err { n.ra = false; return std::nullopt; }});
  f.push_back({"--dhcpv6", "", "MODE", "stateless|stateful|off: DHCPv6 service and RA M/O flags (default stateless)",
               [&n](std::string_view v) -> Err {
                 auto m = config::parse_dhcpv6_mode(v);
                 if (!m) return UserError{"--dhcpv6", m.error(), ""};
                 n.dhcpv6 = *m;
                 return std::nullopt;
               }});
  f.push_back({"--offloads", "", "LIST", "auto|none|csum,tso4,tso6,uso: virtio-net offloads on the TAP (default auto)",
               [&c](std::string_view v) -> Err {
                 auto o = config::parse_offloads(v);
                 if (!o) return UserError{"--offloads", o.error(), ""};
                 c.transport.offloads = *o;
                 return std::nullopt;
               }});
  auto& fl = c.flows;
  f.push_back({"--dns-upstream", "", "ADDR[:PORT]",
               "DNS server for the guest's queries (repeatable, in failover order; default: resolv.conf)",
               [&fl, first = true](std::string_view v) mutable -> Err {
                 if (first) fl.dns_upstreams.clear();  // R-CLI-1: the flag replaces the file's list
                 first = false;
                 auto u = config::parse_upstream(v);
                 if (!u) return UserError{"--dns-upstream", u.error(), ""};
                 fl.dns_upstreams.push_back(*u);
                 return std::nullopt;
               }});
  f.push_back({"--no-host-loopback", "", "", "do not map the gateway address to the host's loopback",
               [&fl](std::string_view) -> Err { fl.map_gateway_to_loopback = false; return std::nullopt; }});
  f.push_back({"--publish", "-p", "SPEC", "[BIND:]HOSTPORT[-N]:GUESTPORT[-N][/tcp|/udp] (repeatable)",
               [&fl](std::string_view v) -> Err {
                 auto p = config::parse_publish(v);
                 if (!p) return UserError{"--publish", p.error(), ""};
                 fl.publish.push_back(std::move(*p));
                 return std::nullopt;
               }});
  f.push_back({"--impair", "", "SPEC", "loss=P,reorder=P,duplicate=P,delay=DUR,jitter=DUR,seed=N on the guest link",
               [&fl](std::string_view v) -> Err {
                 if (auto e = app::check_impair(v)) return UserError{"--impair", *e, ""};
                 fl.impair = v;
                 return std::nullopt;
               }});
  f.push_back({"--max-flows", "", "N", "TCP flow limit (default 4096, at most 65536)",
               [&fl](std::string_view v) { return parse_u32("--max-flows", v, 1, 65536, &fl.max_flows); }});
  f.push_back({"--connect-timeout", "", "DUR", "host connect timeout (default 30s; 1s-10m)",
               [&fl](std::string_view v) -> Err {
                 auto d = config::parse_duration(v);
                 if (!d) return UserError{"--connect-timeout", quote(v) + " is not a duration", "write e.g. 30s or 500ms"};
                 if (*d < std::chrono::seconds(1) || *d > std::chrono::minutes(10))
                   return UserError{"--connect-timeout", std::string(v) + " is out of range", "expected 1s-10m"};
                 fl.connect_timeout = *d;
                 return std::nullopt;
               }});
  f.push_back({"--no-icmp", "", "", "do not relay ICMP echo to other hosts",
               [&fl](std::string_view) -> Err { fl.icmp_relay = false; return std::nullopt; }});
  add_policy_flags(c, f);
  add_dns_flags(c, f);
  f.push_back({"--name", "", "NAME", "gateway name used in logs (default moat-<pid>)",
               [&c](std::string_view v) -> Err { c.name = v; return std::nullopt; }});
  f.push_back({"--pcap", "", "FILE", "capture the guest link to FILE (classic pcap, mode 0600)",
               [&c](std::string_view v) -> Err { c.pcap_file = v; return std::nullopt; }});
  f.push_back({"--ready-file", "", "FILE", "write moat's PID to FILE (atomically) once it serves",
               [&c](std::string_view v) -> Err { c.ready_file = v; return std::nullopt; }});
  f.push_back({"--pid-file", "", "FILE", "write moat's PID to FILE at start",
               [&c](std::string_view v) -> Err { c.pid_file = v; return std::nullopt; }});
  f.push_back({"--log-level", "", "LEVEL", "error|warn|info|debug|trace (default info)",
               [&c](std::string_view v) -> Err {
                 if (!parse_log_level(v, &c.log_level))
                   return UserError{"--log-level", quote(v) + " is not one of error, warn, info, debug, trace", ""};
                 return std::nullopt;
               }});
  f.push_back({"--verbose", "-v", "", "raise the log level one step",
               [&c](std::string_view) -> Err {
                 if (c.log_level < LogLevel::trace) c.log_level = LogLevel(int(c.log_level) + 1);
                 return std::nullopt;
               }});
  return f;
}

void print_errors(const std::vector<UserError>& errs) {
  for (const auto& e : errs) std::fprintf(stderr, "%s\n", e.format().c_str());
}

/// Resolves auto families, fills defaults and runs R-ADDR-2 validation; prints every error
/// (flag errors first, at most 20) and returns false if there was any.
bool finish_config(config::Config& c, const char* default_ifname, app::Families* fam,
                   std::vector<UserError> errs, const config::NetSources& src = {}) {
  if (c.net.ifname.empty()) c.net.ifname = default_ifname;
  *fam = app::resolve_families(c.net);
  if (!fam->ipv4 && !fam->ipv6)
    errs.push_back({"--ipv4-enable", "neither IPv4 nor IPv6 is active",
                    "the host has no route for either family; use --ipv4-enable on"});
  for (auto& e : config::validate(c.net, fam->ipv4, fam->ipv6, src)) errs.push_back(std::move(e));
  if (errs.empty())
    for (auto& e : app::compile_dns_block(c)) errs.push_back(std::move(e));
  if (errs.size() > 20) errs.resize(20);
  print_errors(errs);
  return errs.empty();
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
  if (!finish_config(o.cfg, "eth0", &o.families, errs, net_sources(cfg_path, file_net, o.cfg.net))) return kFail;
  o.argv = std::move(r.positional);
  return app::run_sandbox(o);
}

int cmd_attach(const std::vector<std::string>& args) {
  constexpr int kUsage = 2;
  app::AttachOptions o;
  auto flags = gateway_flags(o.cfg);
  flags.push_back({"--netns", "", "PATH", "network namespace to serve (e.g. /run/netns/NAME)",
                   [&o](std::string_view v) -> Err { o.netns_path = v; return std::nullopt; }});
  flags.push_back({"--pid", "", "PID", "serve the network namespace of PID",
                   [&o](std::string_view v) -> Err {
                     uint32_t p = 0;
                     auto e = parse_u32("--pid", v, 1, 0x3fffffff, &p);
                     o.pid = pid_t(p);
                     return e;
                   }});
  flags.push_back({"--no-configure", "", "", "create the TAP only; the namespace runs DHCP/SLAAC itself",
                   [&o](std::string_view) -> Err { o.configure = false; return std::nullopt; }});
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
  if (!finish_config(o.cfg, "moat0", &o.families, errs, net_sources(cfg_path, file_net, o.cfg.net))) return kUsage;
  return app::attach(o);
}

int cmd_serve(const std::vector<std::string>& args) {
  constexpr int kUsage = 2;
  app::ServeOptions o;
  auto flags = gateway_flags(o.cfg);
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
  if (!finish_config(o.cfg, "moat0", &o.families, errs, net_sources(cfg_path, file_net, o.cfg.net))) return kUsage;
  return app::serve(o);
}

// --- moat policy check / explain (R-CLI-7, R-CLI-8, R-POL-13, R-POL-14) -----------------

/// The addresses of group `host` for a config (as app/ computes them for the data path),
/// with every family that is not switched off.
policy::HostAddrs host_addrs_of(const config::NetConfig& n) {
  policy::HostAddrs h;
  if (n.ipv4_enable != config::FamilyMode::off) {
    h.addrs.push_back(IpAddr(n.ipv4_gateway));
    if (n.dns4() != n.ipv4_gateway) h.addrs.push_back(IpAddr(n.dns4()));
  }
  if (n.ipv6_enable != config::FamilyMode::off) {
    h.addrs.push_back(IpAddr(n.ipv6_gateway));
    h.addrs.push_back(IpAddr(n.gateway_mac.link_local()));
    if (!(n.dns6() == n.ipv6_gateway)) h.addrs.push_back(IpAddr(n.dns6()));
  }
  return h;
}

bool read_small_file(const std::string& path, std::string* out, std::vector<UserError>* errs) {
  constexpr size_t kMax = 16u << 20;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    errs->push_back({path, std::string("cannot open: ") + std::strerror(errno), ""});
    return false;
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      errs->push_back({path, std::string("cannot read: ") + std::strerror(errno), ""});
      return false;
    }
    if (n == 0) return true;
    out->append(buf, size_t(n));
    if (out->size() > kMax) {
      errs->push_back({path, "larger than 16 MiB", ""});
      return false;
    }
  }
}

/// A rules file (R-CLI-7): one rule string per line (or several, comma-separated), `#`
/// starts a comment. Errors point at FILE:LINE:COL of the offending rule.
std::vector<UserError> load_rules_file(const std::string& path, std::vector<policy::Rule>* out) {
  std::vector<UserError> errs;
  std::string text;
  if (!read_small_file(path, &text, &errs)) return errs;
  auto r = policy::parse_rules_text(text, policy::Origin::config, 20);
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
  {
    std::vector<Flag> pf;
    add_policy_flags(c, pf);
    for (auto& f : pf)
      if (f.name == "--rule" || f.name == "--profile" || f.name == "--default-egress" || f.name == "--default-ingress")
        flags.push_back(std::move(f));
  }
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
  if (sub == "run") return cmd_run(args);
  if (sub == "attach") return cmd_attach(args);
  if (sub == "serve") return cmd_serve(args);
  if (sub == "policy") return cmd_policy(args);
  std::fprintf(stderr, "moat: error: %s: unknown subcommand; see moat --help\n", sub.c_str());
  return 2;
}
