// moat command line: subcommand dispatch, flags -> one validated config::Config, then app/.
// Bad input is reported as §5.2 one-line errors (all of them, up to 20) before anything is
// created; exit statuses follow §5.1 (125 for `run`, 2 for usage errors elsewhere).
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

#include "app/app.h"
#include "cli/flags.h"
#include "config/config.h"
#include "policy/profiles.h"
#include "policy/rule.h"
#include "transport/unix_socket.h"

namespace moat::cli {
namespace {

constexpr const char* kVersion = "0.1.0";

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

/// Flags shared by run and attach (and later serve): addressing, logging, outputs.
std::vector<Flag> gateway_flags(config::Config& c) {
  auto& n = c.net;
  std::vector<Flag> f;
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
                   std::vector<UserError> errs) {
  if (c.net.ifname.empty()) c.net.ifname = default_ifname;
  *fam = app::resolve_families(c.net);
  if (!fam->ipv4 && !fam->ipv6)
    errs.push_back({"--ipv4-enable", "neither IPv4 nor IPv6 is active",
                    "the host has no route for either family; use --ipv4-enable on"});
  for (auto& e : config::validate(c.net, fam->ipv4, fam->ipv6)) errs.push_back(std::move(e));
  if (errs.size() > 20) errs.resize(20);
  print_errors(errs);
  return errs.empty();
}

int cmd_run(const std::vector<std::string>& args) {
  constexpr int kFail = 125;  // §5.1: moat's own failure in `run`
  app::RunOptions o;
  auto flags = gateway_flags(o.cfg);
  auto r = parse_flags(flags, args, /*stop_at_positional=*/true);
  if (r.help) {
    std::printf("%s", format_help("moat run [OPTIONS] [--] CMD [ARGS...]", flags).c_str());
    return 0;
  }
  if (r.positional.empty()) r.errors.push_back({"run", "missing command", "write moat run [OPTIONS] -- CMD"});
  if (!finish_config(o.cfg, "eth0", &o.families, r.errors)) return kFail;
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
  auto r = parse_flags(flags, args, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help("moat attach (--netns PATH | --pid PID) [OPTIONS]", flags).c_str());
    return 0;
  }
  if (r.errors.empty() && o.netns_path.empty() == (o.pid == 0))
    r.errors.push_back({"attach", "give exactly one of --netns, --pid", ""});
  if (!finish_config(o.cfg, "moat0", &o.families, r.errors)) return kUsage;
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
  auto r = parse_flags(flags, args, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help("moat serve (--qemu PATH | --unixgram PATH | --fd N [--fd-type T]) [OPTIONS]", flags).c_str());
    return 0;
  }
  if (transports != 1) r.errors.push_back({"serve", "give exactly one of --qemu, --unixgram, --fd", ""});
  else if (have_fd_type && o.kind != app::ServeKind::fd)
    r.errors.push_back({"--fd-type", "only applies to --fd", ""});
  if (!finish_config(o.cfg, "moat0", &o.families, r.errors)) return kUsage;
  return app::serve(o);
}

void usage(FILE* to) {
  std::fprintf(to,
               "moat %s — a user-space network gateway for sandboxes\n\n"
               "Usage:\n"
               "  moat run [OPTIONS] [--] CMD [ARGS...]   run CMD in a new network namespace behind moat\n"
               "  moat attach (--netns PATH | --pid PID)  serve an existing network namespace\n"
               "  moat serve (--qemu PATH | --unixgram PATH | --fd N)  serve a VM's link on a socket or fd\n"
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
  std::fprintf(stderr, "moat: error: %s: unknown subcommand; see moat --help\n", sub.c_str());
  return 2;
}
