#include "config/settings.h"

#include <fcntl.h>

#include <array>
#include <charconv>

#include "base/strings.h"

#include "policy/profiles.h"
#include "policy/rule.h"

namespace moat::config {

namespace {

using namespace std::chrono_literals;

// Every value an error repeats is quoted by quote_value(): bounded and escaped (§5.2).
std::string q(std::string_view s) { return quote_value(s); }

constexpr int64_t ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

Opt fail(std::string what, std::string hint = {}) { return Problem{std::move(what), std::move(hint), {}}; }

// --- value parsers shared by several settings --------------------------------------------

template <class A>
Opt parse_addr(std::string_view v, const char* family, A* out) {
  auto a = A::parse(v);
  if (!a) return fail(q(v) + " is not " + family + " address");
  *out = *a;
  return std::nullopt;
}

/// An R-POL-3 name (lowercased); `wildcard` also accepts a leading "*." (kept).
Opt parse_name(std::string_view v, bool wildcard, std::string* out) {
  std::string_view body = v;
  bool wild = wildcard && body.rfind("*.", 0) == 0;
  if (wild) body.remove_prefix(2);
  auto n = policy::normalize_name(body);
  if (!n) return fail(q(v) + ": " + n.error().what, n.error().hint);
  if (wild && n->find('.') == std::string::npos) return fail(q(v) + ": a suffix needs at least 2 labels");
  *out = (wild ? "*." : "") + *n;
  return std::nullopt;
}

/// A DHCP option 12 hostname (RFC 952/1123 §2.1): dot-separated labels of 1-63 letters,
/// digits and '-', not starting or ending with '-', 253 bytes in all. Stricter than an
/// R-POL-3 name on purpose: the guest's DHCP client writes it into its own configuration.
Opt parse_hostname(std::string_view v, std::string* out) {
  constexpr std::string_view kHint = "use labels of 1-63 letters, digits and '-' separated by dots, 253 bytes in all";
  if (v.empty()) return fail("empty hostname", std::string(kHint));
  if (v.size() > 253) return fail(q(v) + " is longer than 253 bytes", std::string(kHint));
  std::string_view rest = v;
  for (;;) {
    const size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty()) return fail(q(v) + " has an empty label", std::string(kHint));
    if (label.size() > 63) return fail(q(v) + " has a label longer than 63 bytes", std::string(kHint));
    for (char ch : label) {
      const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
      if (!ok) return fail(q(v) + " is not a valid hostname", std::string(kHint));
    }
    if (label.front() == '-' || label.back() == '-')
      return fail(q(v) + " has a label that starts or ends with '-'", std::string(kHint));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  *out = v;
  return std::nullopt;
}

/// --tls-port / an element of tls.ports: 1-65535, listed once.
Opt add_tls_port(Config& c, std::string_view v) {
  uint32_t port = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), port);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || port == 0 || port > 65535)
    return fail(q(v) + " is not a port", "expected 1-65535");
  for (uint16_t have : c.tls.ports)
    if (have == port) return std::nullopt;
  c.tls.ports.push_back(uint16_t(port));
  return std::nullopt;
}

Opt set_action(std::string_view v, std::optional<policy::Action>* out) {
  if (v == "allow") *out = policy::Action::allow;
  else if (v == "deny") *out = policy::Action::deny;
  return std::nullopt;
}

constexpr std::string_view kAuditEvents[] = {
    "flow_open",  "flow_deny",   "flow_close",         "dns_query",         "dns_denied",
    "dns_blocked", "dns_rebind_blocked", "tls_upstream_verify_failed", "tls_error", "http_authority_mismatch",
    "connect_sni_mismatch", "secret_violation", "limit_hit", "config_change", "gateway_start", "gateway_stop"};

// --- the table -----------------------------------------------------------------------------
//
// Ranges follow SPEC §4.2 where it gives one; where it leaves them open, config/README.md
// lists the choice. Order is --help order within each group.

/// net.ipv4.enable and --no-ipv4 (its "off" switch), likewise for IPv6; index into "auto,on,off".
Opt set_ipv4_enable(Config& c, Source, int64_t i) {
  c.net.ipv4_enable = i == 0 ? FamilyMode::automatic : i == 1 ? FamilyMode::on : FamilyMode::off;
  return std::nullopt;
}
Opt set_ipv6_enable(Config& c, Source, int64_t i) {
  c.net.ipv6_enable = i == 0 ? FamilyMode::automatic : i == 1 ? FamilyMode::on : FamilyMode::off;
  return std::nullopt;
}

using VT = ValueType;
using G = Group;

constexpr Setting kSettings[] = {
    // --- net ---
    // 0 is not a value a user can write (SPEC: 576/1280-65520). Unset, NetConfig::mtu stays
    // 0 and app::finish_config() puts in the transport's default.
    {.key = "net.mtu", .flag = "--mtu", .value_name = "N", .type = VT::integer, .lo = 576, .hi = 65520,
     .unit = "bytes", .def = "65520 on TAP and sockets, 1500 on in-process rings",
     .help = "IP MTU of the guest link (at least 1280 while IPv6 is active)",
     .group = G::addressing, .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.net.mtu = uint32_t(v);
       return std::nullopt;
     }},
    {.flag = "--ipv4", .value_name = "ADDR/LEN", .type = VT::text, .def = "100.96.0.2/30",
     .help = "guest IPv4 address and prefix (net.ipv4.address + net.ipv4.prefix)", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       auto e = parse_ipv4_prefix("", v, &c.net.ipv4_address, &c.net.ipv4_prefix);
       if (e) return fail(e->what, e->hint);
       return std::nullopt;
     }},
    {.key = "net.ipv4.address", .type = VT::text, .def = "100.96.0.2", .help = "guest IPv4 address",
     .group = G::addressing, .set_text = [](Config& c, Source, std::string_view v, FlagState&) {
       return parse_addr(v, "an IPv4", &c.net.ipv4_address);
     }},
    {.key = "net.ipv4.prefix", .type = VT::integer, .lo = 8, .hi = 30, .def = "30",
     .help = "guest IPv4 prefix length", .group = G::addressing,
     .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.net.ipv4_prefix = int(v);
       return std::nullopt;
     }},
    {.key = "net.ipv4.gateway", .flag = "--gateway4", .value_name = "ADDR", .type = VT::text, .def = "100.96.0.1",
     .help = "gateway IPv4 address", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) {
       return parse_addr(v, "an IPv4", &c.net.ipv4_gateway);
     }},
    {.key = "net.ipv4.dns", .flag = "--dns4", .value_name = "ADDR", .type = VT::text, .def = "the gateway",
     .help = "DNS IPv4 address given to the guest", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       Ipv4Addr a;
       if (auto e = parse_addr(v, "an IPv4", &a)) return e;
       c.net.ipv4_dns = a;
       return std::nullopt;
     }},
    {.key = "net.ipv4.enable", .flag = "--ipv4-enable", .value_name = "MODE", .type = VT::enumeration,
     .choices = "auto,on,off", .def = "auto", .help = "auto|on|off: IPv4 on the link (auto: iff the host has a route)",
     .group = G::addressing, .set_int = set_ipv4_enable},
    {.flag = "--no-ipv4", .type = VT::enumeration, .choices = "auto,on,off", .flag_value = "off",
     .help = "same as --ipv4-enable off", .group = G::addressing,
     .set_int = set_ipv4_enable},
    {.key = "net.ipv4.dhcp", .flag = "--no-dhcp", .type = VT::boolean, .flag_value = "false", .def = "true",
     .help = "serve DHCPv4", .flag_help = "do not serve DHCPv4", .group = G::addressing,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.net.dhcp4 = b;
       return std::nullopt;
     }},
    {.key = "net.ipv4.lease_time", .type = VT::duration, .lo = ms(60s), .hi = ms(std::chrono::hours(365 * 24)),
     .def = "24h", .help = "DHCPv4 lease time", .group = G::addressing,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.net.lease_time = d;
       return std::nullopt;
     }},
    {.flag = "--ipv6", .value_name = "ADDR/64", .type = VT::text, .def = "fd42:6d73:62::2/64",
     .help = "guest IPv6 address (net.ipv6.address + net.ipv6.prefix)", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       auto e = parse_ipv6_prefix("", v, &c.net.ipv6_address, &c.net.ipv6_prefix);
       if (e) return fail(e->what, e->hint);
       return std::nullopt;
     }},
    {.key = "net.ipv6.address", .type = VT::text, .def = "fd42:6d73:62::2", .help = "guest IPv6 address",
     .group = G::addressing, .set_text = [](Config& c, Source, std::string_view v, FlagState&) {
       return parse_addr(v, "an IPv6", &c.net.ipv6_address);
     }},
    {.key = "net.ipv6.prefix", .type = VT::integer, .lo = 64, .hi = 64, .def = "64",
     .help = "guest IPv6 prefix length (must be 64)", .group = G::addressing,
     .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.net.ipv6_prefix = int(v);
       return std::nullopt;
     }},
    {.key = "net.ipv6.gateway", .flag = "--gateway6", .value_name = "ADDR", .type = VT::text,
     .def = "fd42:6d73:62::1", .help = "gateway IPv6 address", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) {
       return parse_addr(v, "an IPv6", &c.net.ipv6_gateway);
     }},
    {.key = "net.ipv6.dns", .flag = "--dns6", .value_name = "ADDR", .type = VT::text, .def = "the gateway",
     .help = "DNS IPv6 address given to the guest", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       Ipv6Addr a;
       if (auto e = parse_addr(v, "an IPv6", &a)) return e;
       c.net.ipv6_dns = a;
       return std::nullopt;
     }},
    {.key = "net.ipv6.enable", .flag = "--ipv6-enable", .value_name = "MODE", .type = VT::enumeration,
     .choices = "auto,on,off", .def = "auto", .help = "auto|on|off: IPv6 on the link", .group = G::addressing,
     .set_int = set_ipv6_enable},
    {.flag = "--no-ipv6", .type = VT::enumeration, .choices = "auto,on,off", .flag_value = "off",
     .help = "same as --ipv6-enable off", .group = G::addressing,
     .set_int = set_ipv6_enable},
    {.key = "net.ipv6.ra", .flag = "--no-ra", .type = VT::boolean, .flag_value = "false", .def = "true",
     .help = "send IPv6 router advertisements", .flag_help = "send no IPv6 router advertisements", .group = G::addressing,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.net.ra = b;
       return std::nullopt;
     }},
    {.key = "net.ipv6.ra_interval", .type = VT::duration, .lo = ms(4s), .hi = ms(1800s), .def = "600s",
     .help = "router advertisement interval", .group = G::addressing,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.net.ra_interval = d;
       return std::nullopt;
     }},
    {.key = "net.ipv6.dhcpv6", .flag = "--dhcpv6", .value_name = "MODE", .type = VT::text, .def = "stateless",
     .help = "stateless|stateful|off: DHCPv6 service and RA M/O flags", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       auto m = parse_dhcpv6_mode(v);
       if (!m) return fail(m.error());
       c.net.dhcpv6 = *m;
       return std::nullopt;
     }},
    {.key = "net.guest_mac", .flag = "--guest-mac", .value_name = "MAC", .type = VT::text,
     .def = "02:6d:6f:00:00:02", .help = "guest MAC", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) {
       return parse_addr(v, "an Ethernet", &c.net.guest_mac);
     }},
    {.key = "net.gateway_mac", .flag = "--gateway-mac", .value_name = "MAC", .type = VT::text,
     .def = "02:6d:6f:00:00:01", .help = "gateway MAC", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) {
       return parse_addr(v, "an Ethernet", &c.net.gateway_mac);
     }},
    {.key = "net.ifname", .flag = "--ifname", .value_name = "NAME", .type = VT::text, .def = "run: eth0, attach: moat0",
     .help = "name of the TAP in the namespace (1-15 bytes)", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       if (v.empty() || v.size() > 15) return fail(q(v) + " must be 1-15 bytes");
       c.net.ifname = v;
       return std::nullopt;
     }},
    {.key = "net.hostname", .flag = "--hostname", .value_name = "NAME", .type = VT::text,
     .help = "hostname offered by DHCP (option 12; labels of letters, digits, '-')", .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) {
       return parse_hostname(v, &c.net.hostname);
     }},
    {.key = "net.search_domains", .type = VT::list, .help = "DNS search domains (DHCP 15/119, DNSSL)",
     .group = G::addressing,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       std::string s;
       if (auto e = parse_name(v, false, &s)) return e;
       c.net.search_domains.push_back(std::move(s));
       return std::nullopt;
     },
     .clear = [](Config& c) { c.net.search_domains.clear(); }},
    {.key = "net.map_gateway_to_loopback", .flag = "--no-host-loopback", .type = VT::boolean,
     .flag_value = "false", .def = "true", .help = "map the gateway address to the host's loopback (R-ADDR-5)",
     .flag_help = "do not map the gateway address to the host's loopback",
     .group = G::flows, .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.flows.map_gateway_to_loopback = b;
       return std::nullopt;
     }},
    {.key = "net.impair", .flag = "--impair", .value_name = "SPEC", .type = VT::text,
     .help = "loss=P,reorder=P,duplicate=P,delay=DUR,jitter=DUR,seed=N on the guest link", .group = G::flows,
     // The grammar lives in app/ (config cannot depend on it): the command line checks the
     // value with app::check_impair() for the flag and the key alike.
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.flows.impair = v;
       return std::nullopt;
     }},
    {.key = "net.host_loopback4", .type = VT::unsupported,
     .help = "the host loopback addresses are fixed (127.0.0.1, ::1) in this build"},
    {.key = "net.host_loopback6", .type = VT::unsupported,
     .help = "the host loopback addresses are fixed (127.0.0.1, ::1) in this build"},
    {.key = "net.deployment", .type = VT::unsupported, .help = "write gateway.deployment"},
    // --- transport ---
    {.flag = "--offloads", .value_name = "LIST", .type = VT::text, .def = "auto",
     .help = "auto|none|csum,tso4,tso6,uso: virtio-net offloads on the TAP", .group = G::flows,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       auto o = parse_offloads(v);
       if (!o) return fail(o.error());
       c.transport.offloads = *o;
       return std::nullopt;
     }},
    {.key = "transport", .type = VT::unsupported,
     .help = "transport settings come from the command line (--offloads, serve flags)"},
    // --- tcp / udp / icmp / limits ---
    {.key = "tcp.connect_timeout", .flag = "--connect-timeout", .value_name = "DUR", .type = VT::duration,
     .lo = ms(1s), .hi = ms(10min), .def = "30s", .help = "host connect timeout", .group = G::flows,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.flows.connect_timeout = d;
       return std::nullopt;
     }},
    {.key = "tcp.idle_timeout", .type = VT::unsupported, .help = "TCP timeouts other than connect_timeout are fixed in this build"},
    {.key = "tcp.half_closed_timeout", .type = VT::unsupported, .help = "TCP timeouts other than connect_timeout are fixed in this build"},
    {.key = "tcp.close_timeout", .type = VT::unsupported, .help = "TCP timeouts other than connect_timeout are fixed in this build"},
    {.key = "tcp.keepalive", .type = VT::unsupported, .help = "TCP keepalive is not configurable in this build"},
    {.key = "tcp.keepalive_idle", .type = VT::unsupported, .help = "TCP keepalive is not configurable in this build"},
    {.key = "tcp.keepalive_interval", .type = VT::unsupported, .help = "TCP keepalive is not configurable in this build"},
    {.key = "tcp.keepalive_count", .type = VT::unsupported, .help = "TCP keepalive is not configurable in this build"},
    {.key = "tcp.max_window", .type = VT::unsupported, .help = "the TCP window is fixed in this build"},
    {.key = "udp.max_sessions", .type = VT::integer, .lo = 1, .hi = 16384, .def = "1024",
     .help = "UDP session limit", .group = G::flows, .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.flows.udp_max_sessions = uint32_t(v);
       return std::nullopt;
     }},
    {.key = "udp.idle_timeout", .type = VT::unsupported, .help = "UDP timeouts are fixed in this build"},
    {.key = "udp.max_peers", .type = VT::unsupported, .help = "UDP per-session limits are fixed in this build"},
    {.key = "udp.queue_datagrams", .type = VT::unsupported, .help = "UDP queue sizes are fixed in this build"},
    {.key = "udp.queue_bytes", .type = VT::unsupported, .help = "UDP queue sizes are fixed in this build"},
    {.key = "icmp.relay", .flag = "--no-icmp", .type = VT::boolean, .flag_value = "false", .def = "true",
     .help = "relay ICMP echo to other hosts", .flag_help = "do not relay ICMP echo to other hosts", .group = G::flows,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.flows.icmp_relay = b;
       return std::nullopt;
     }},
    {.key = "icmp.max_sessions", .type = VT::integer, .lo = 1, .hi = 4096, .def = "256",
     .help = "ICMP echo session limit", .group = G::flows, .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.flows.icmp_max_sessions = uint32_t(v);
       return std::nullopt;
     }},
    {.key = "icmp.gateway_echo", .type = VT::unsupported, .help = "the gateway always answers echo in this build"},
    {.key = "icmp.idle_timeout", .type = VT::unsupported, .help = "ICMP timeouts are fixed in this build"},
    {.key = "icmp.error_rate", .type = VT::unsupported, .help = "the ICMP error rate is fixed in this build"},
    {.key = "icmp.ttl_mirror", .type = VT::unsupported, .help = "TTL mirroring is not implemented"},
    {.key = "limits.max_flows", .flag = "--max-flows", .value_name = "N", .type = VT::integer, .lo = 1,
     .hi = 65536, .def = "4096", .help = "TCP flow limit (R-LIM-1)", .group = G::flows,
     .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.flows.max_flows = uint32_t(v);
       return std::nullopt;
     }},
    {.key = "limits.max_pending_connects", .type = VT::integer, .lo = 1, .hi = 8192, .def = "512",
     .help = "host connects in progress at once", .group = G::flows,
     .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.flows.max_pending_connects = uint32_t(v);
       return std::nullopt;
     }},
    {.key = "limits.memory_budget", .flag = "--memory-budget", .value_name = "SIZE", .type = VT::size,
     .lo = int64_t{1} << 20, .hi = int64_t{16} << 30, .def = "256MiB",
     .help = "user-space buffer budget: 75% slows, 90% refuses new flows, 100% drops (R-LIM-2)", .group = G::flows,
     .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.flows.memory_budget = uint64_t(v);
       return std::nullopt;
     }},
    {.key = "limits.flow_buffer", .type = VT::size, .lo = int64_t{4} << 10, .hi = int64_t{16} << 20, .def = "256KiB",
     .help = "guest-to-host bytes held per TCP flow when the host is slower (R-LIM-1)", .group = G::flows,
     .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.flows.flow_buffer = uint32_t(v);
       return std::nullopt;
     }},
    {.key = "publish", .flag = "--publish", .short_flag = "-p", .value_name = "SPEC", .type = VT::custom,
     .help = "[BIND:]HOSTPORT[-N]:GUESTPORT[-N][/tcp|/udp] (repeatable; appends to the file's)", .group = G::flows,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       auto p = parse_publish(v);
       if (!p) return fail(p.error());
       c.flows.publish.push_back(std::move(*p));
       return std::nullopt;
     }},
    // --- dns ---
    {.key = "dns.upstreams", .flag = "--dns-upstream", .value_name = "ADDR[:PORT]", .type = VT::list,
     .def = "resolv.conf", .help = "DNS server for the guest's queries (repeatable, failover order; replaces the file's)",
     .group = G::dns, .flag_replaces = true,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       auto u = parse_upstream(v);
       if (!u) return fail(u.error());
       c.flows.dns_upstreams.push_back(*u);
       return std::nullopt;
     },
     .clear = [](Config& c) { c.flows.dns_upstreams.clear(); }},
    {.key = "dns.resolv_conf", .type = VT::path, .def = "/etc/resolv.conf",
     .help = "where the host's upstreams are read when none is given", .group = G::dns,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.flows.resolv_conf = v;
       return std::nullopt;
     }},
    {.key = "dns.timeout", .flag = "--dns-timeout", .value_name = "DUR", .type = VT::duration,
     .lo = ms(DnsConfig::kTimeoutMin), .hi = ms(DnsConfig::kTimeoutMax), .def = "2s",
     .help = "per-attempt timeout for upstream DNS queries", .group = G::dns,
     .set_duration = [](Config& c, Source src, Duration d) -> Opt {
       c.dns.timeout = d;
       // No flag sets dns.deadline: a longer attempt stretches it rather than contradicting
       // it (the file key is checked against the file's deadline after the [dns] table).
       if (src == Source::flag && c.dns.deadline < d) c.dns.deadline = d;
       return std::nullopt;
     }},
    {.key = "dns.deadline", .type = VT::duration, .lo = ms(100ms), .hi = ms(60s), .def = "5s",
     .help = "whole-query deadline (at least dns.timeout)", .group = G::dns,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.dns.deadline = d;
       return std::nullopt;
     }},
    {.key = "dns.rebind_protection", .flag = "--no-rebind-protection", .type = VT::boolean, .flag_value = "false",
     .def = "true", .help = "refuse DNS answers with private, loopback or link-local addresses (R-DNS-8)",
     .flag_help = "let DNS answers carry private, loopback or link-local addresses",
     .group = G::dns, .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.dns.rebind_protection = b;
       return std::nullopt;
     }},
    {.key = "dns.block", .flag = "--dns-block", .value_name = "NAME", .type = VT::list,
     .help = "answer NXDOMAIN for NAME or *.SUFFIX and deny it in SNI/Host (repeatable)", .group = G::dns,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       std::string s;
       if (auto e = parse_name(v, true, &s)) return e;
       c.dns.block.push_back(std::move(s));
       return std::nullopt;
     },
     .clear = [](Config& c) { c.dns.block.clear(); }},
    {.key = "dns.block_files", .flag = "--dns-block-file", .value_name = "PATH", .type = VT::path_list,
     .help = "block every name in PATH (one per line or hosts format; repeatable)", .group = G::dns,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.dns.block_files.emplace_back(v);
       return std::nullopt;
     },
     .clear = [](Config& c) { c.dns.block_files.clear(); }},
    {.key = "dns.block_doh", .flag = "--block-doh", .type = VT::boolean, .flag_value = "true", .def = "false",
     .help = "block well-known DNS-over-HTTPS/TLS resolver names (best effort)", .group = G::dns,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.dns.block_doh = b;
       return std::nullopt;
     }},
    {.key = "dns.hosts", .flag = "--dns-host", .value_name = "NAME=IP", .type = VT::custom,
     .help = "answer NAME locally with IP (repeatable; several IPs per name allowed)", .group = G::dns,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       const size_t eq = v.find('=');
       if (eq == std::string_view::npos) return fail(q(v) + " is not NAME=IP", "write e.g. db.internal=10.0.0.5");
       return add_dns_host(c, v.substr(0, eq), v.substr(eq + 1));
     }},
    {.key = "dns.pin_min_ttl", .type = VT::duration, .lo = 0, .hi = ms(std::chrono::hours(24 * 7)), .def = "300s",
     .help = "shortest time a DNS answer pins its addresses (R-DNS-6)", .group = G::dns,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.dns.pin_min_ttl = d;
       return std::nullopt;
     }},
    {.key = "dns.pin_max_ttl", .type = VT::duration, .lo = ms(1s), .hi = ms(std::chrono::hours(24 * 7)),
     .def = "24h", .help = "longest time a DNS answer pins its addresses", .group = G::dns,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.dns.pin_max_ttl = d;
       return std::nullopt;
     }},
    {.key = "dns.max_pins", .type = VT::integer, .lo = 1, .hi = 1 << 20, .def = "65536",
     .help = "DNS pins held at once", .group = G::dns, .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.dns.max_pins = uint32_t(v);
       return std::nullopt;
     }},
    {.key = "dns.refuse_alt_ports", .type = VT::boolean, .def = "true",
     .help = "refuse DNS to other ports than 53 (R-DNS-1)", .group = G::dns,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.dns.refuse_alt_ports = b;
       return std::nullopt;
     }},
    {.key = "dns.direct_queries", .type = VT::enumeration, .choices = "target,upstream,deny", .def = "target",
     .help = "what a query to another resolver does (R-DNS-3)", .group = G::dns,
     .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.dns.direct_queries = DirectQueries(i);
       return std::nullopt;
     }},
    {.key = "dns.max_inflight", .type = VT::integer, .lo = 1, .hi = 4096, .def = "256",
     .help = "upstream DNS queries in flight", .group = G::dns,
     .set_int = [](Config& c, Source, int64_t v) -> Opt {
       c.dns.max_inflight = uint32_t(v);
       return std::nullopt;
     }},
    {.key = "dns.tcp_idle_timeout", .type = VT::duration, .lo = ms(1s), .hi = ms(1h), .def = "30s",
     .help = "idle DNS-over-TCP connections are closed after this", .group = G::dns,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.dns.tcp_idle_timeout = d;
       return std::nullopt;
     }},
    // --- policy ---
    {.key = "policy.rules", .flag = "--rule", .short_flag = "-r", .value_name = "RULES", .type = VT::custom,
     .help = "action[:direction]@target[:protos[:ports]], comma-separated (repeatable; before the file's rules)",
     .group = G::policy,
     .set_text = [](Config& c, Source, std::string_view v, FlagState& st) -> Opt {
       auto r = policy::parse_rules(v, policy::Origin::cli);
       size_t first = st.count + 1;  // #N counts rules across every --rule value
       if (!r) {
         const auto& e = r.error();
         return Problem{e.what, e.hint,
                        "--rule #" + std::to_string(first + e.rule_index_in_value) + " " + q(e.rule_text) + " col " +
                            std::to_string(e.column)};
       }
       st.count += r->size();
       for (auto& rule : *r) c.policy.inputs.cli.push_back(std::move(rule));
       return std::nullopt;
     }},
    {.key = "policy.profiles", .flag = "--profile", .value_name = "LIST", .type = VT::custom, .def = "public",
     .help = "public,private,host | none | all (comma-separated, repeatable)", .group = G::policy,
     .set_text = [](Config& c, Source src, std::string_view v, FlagState& st) -> Opt {
       // Every value of the flag (or item of the key) is checked together: `none` and
       // `all` exclude the others wherever they stand.
       st.values.emplace_back(v);
       std::vector<std::string_view> views(st.values.begin(), st.values.end());
       auto p = policy::parse_profiles(views);
       if (!p) return fail(p.error().what, p.error().hint);
       (src == Source::flag ? c.policy.inputs.cli_profiles : c.policy.inputs.config_profiles) = *p;
       return std::nullopt;
     }},
    {.key = "policy.default_egress", .flag = "--default-egress", .value_name = "allow|deny", .type = VT::enumeration,
     .choices = "allow,deny", .def = "from the profiles", .help = "egress verdict when no rule matches",
     .group = G::policy, .set_int = [](Config& c, Source src, int64_t i) -> Opt {
       auto& out = src == Source::flag ? c.policy.inputs.cli_default_egress : c.policy.inputs.config_default_egress;
       return set_action(i == 0 ? "allow" : "deny", &out);
     }},
    {.key = "policy.default_ingress", .flag = "--default-ingress", .value_name = "allow|deny",
     .type = VT::enumeration, .choices = "allow,deny", .def = "from the profiles",
     .help = "ingress verdict (published ports) when no rule matches", .group = G::policy,
     .set_int = [](Config& c, Source src, int64_t i) -> Opt {
       auto& out = src == Source::flag ? c.policy.inputs.cli_default_ingress : c.policy.inputs.config_default_ingress;
       return set_action(i == 0 ? "allow" : "deny", &out);
     }},
    {.key = "policy.deny_response", .flag = "--deny-response", .value_name = "reject|drop", .type = VT::enumeration,
     .choices = "reject,drop", .def = "reject",
     .help = "answer refused traffic with RST/ICMP (reject) or silence (drop)", .group = G::policy,
     .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.policy.deny_response = DenyResponse(i);
       return std::nullopt;
     }},
    {.key = "policy.first_flight_timeout", .flag = "--first-flight-timeout", .value_name = "DUR",
     .type = VT::duration, .lo = ms(50ms), .hi = ms(30s), .def = "1s",
     .help = "wait for a TLS SNI / HTTP Host on the inspect path", .group = G::policy,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.policy.first_flight_timeout = d;
       return std::nullopt;
     }},
    {.key = "policy.sni_requires_pin", .type = VT::boolean, .def = "true",
     .help = "an SNI/Host name must be pinned by the guest's DNS (R-POL-7)", .group = G::policy,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.policy.inputs.sni_requires_pin = b;
       return std::nullopt;
     }},
    {.key = "audit.file", .flag = "--audit", .value_name = "FILE", .type = VT::path,
     .help = "write one JSON line per flow decision and close to FILE (- = stderr)", .group = G::policy,
     .dash_ok = true, .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.audit.file = v;
       return std::nullopt;
     }},
    {.key = "audit.dns", .flag = "--audit-dns", .value_name = "none|denied|all", .type = VT::enumeration,
     .choices = "none,denied,all", .def = "denied", .help = "which DNS queries the audit log records",
     .group = G::policy, .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.audit.dns = AuditDns(i);
       return std::nullopt;
     }},
    {.key = "audit.events", .type = VT::list, .def = "all but dns_query", .help = "audit events to record",
     .group = G::policy,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       for (auto k : kAuditEvents)
         if (k == v) {
           c.audit.events.emplace_back(v);
           return std::nullopt;
         }
       std::string_view best;
       size_t bd = 3;
       for (auto k : kAuditEvents)
         if (size_t d = edit_distance(v, k); d < bd) bd = d, best = k;
       return fail(q(v) + " is not an audit event", best.empty() ? "" : "did you mean " + q(best) + "?");
     },
     .clear = [](Config& c) { c.audit.events.clear(); }},
    // --- output ---
    // --- gateway ---
    {.key = "gateway.name", .flag = "--name", .value_name = "NAME", .type = VT::text, .def = "moat-<pid>",
     .help = "gateway name used in logs and the audit log ([A-Za-z0-9._-], 1-64)", .group = G::output,
     .set_text = [](Config& c, Source, std::string_view s, FlagState&) -> Opt {
       bool ok = !s.empty() && s.size() <= 64;
       for (char ch : s)
         ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                     ch == '_' || ch == '-');
       if (!ok) return fail(q(s) + " is not a valid gateway name", "use 1-64 of A-Z a-z 0-9 . _ -");
       c.name = s;
       return std::nullopt;
     }},
    {.key = "gateway.deployment", .type = VT::enumeration, .choices = "single-tenant,multi-tenant",
     .def = "single-tenant", .help = "single-tenant only in this build",
     .set_int = [](Config&, Source, int64_t i) -> Opt {
       if (i == 1) return fail("multi-tenant deployment is not supported by this moat build");
       return std::nullopt;
     }},
    {.key = "pcap.file", .flag = "--pcap", .value_name = "FILE", .type = VT::path,
     .help = "capture the guest link to FILE (classic pcap, mode 0600)", .group = G::output,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.pcap_file = v;
       return std::nullopt;
     }},
    {.key = "pcap.snaplen", .type = VT::unsupported, .help = "the capture length is fixed (262144) in this build"},
    {.key = "pcap.max_size", .type = VT::unsupported, .help = "capture rotation is not implemented"},
    {.flag = "--ready-file", .value_name = "FILE", .type = VT::path,
     .help = "write moat's PID to FILE (atomically) once it serves", .group = G::output,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.ready_file = v;
       return std::nullopt;
     }},
    {.flag = "--ready-fd", .value_name = "N", .type = VT::integer, .lo = 3, .hi = 1 << 20,
     .help = "write READY=1 and a newline to descriptor N, then close it, once moat serves (R-CLI-5)",
     .group = G::output, .set_int = [](Config& c, Source, int64_t i) -> Opt {
       // Checked now, before moat opens descriptors of its own that could take number N.
       if (::fcntl(int(i), F_GETFD) == -1) return fail(std::to_string(i) + " is not an open file descriptor",
                                                       "the descriptor must be open when moat starts");
       c.ready_fd = int(i);
       return std::nullopt;
     }},
    {.flag = "--pid-file", .value_name = "FILE", .type = VT::path,
     .help = "write moat's PID to FILE at start (removed at exit)",
     .group = G::output, .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.pid_file = v;
       return std::nullopt;
     }},
    {.key = "log.level", .flag = "--log-level", .value_name = "LEVEL", .type = VT::enumeration,
     .choices = "error,warn,info,debug,trace", .def = "info", .help = "error|warn|info|debug|trace",
     .group = G::output, .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.log_level = LogLevel(int(i));  // the choices are LogLevel's order
       return std::nullopt;
     }},
    {.flag = "--verbose", .short_flag = "-v", .type = VT::text, .help = "raise the log level one step",
     .group = G::output, .set_text = [](Config& c, Source, std::string_view, FlagState&) -> Opt {
       if (c.log_level < LogLevel::trace) c.log_level = LogLevel(int(c.log_level) + 1);
       return std::nullopt;
     }},
    // --- hardening (R-HARD-3/4; the CLI only) ---
    {.key = "hardening.seccomp", .flag = "--seccomp", .value_name = "MODE", .type = VT::enumeration,
     .choices = "on,log,off", .def = "on",
     .help = "on|log|off: seccomp allow-list after setup (log, off: debugging only)", .group = G::output,
     .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.hardening.seccomp = HardeningConfig::Seccomp(int(i));  // the choices are the enum's order
       return std::nullopt;
     }},
    {.key = "hardening.runas", .flag = "--runas", .value_name = "USER[:GROUP]", .type = VT::text, .def = "nobody",
     .help = "identity after setup when started as real root", .group = G::output,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       // Resolved (getpwnam) by the front end before anything is opened; here only the form.
       const size_t colon = v.find(':');
       if (v.empty() || colon == 0 || colon + 1 == v.size() || v.size() > 64 ||
           v.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:") !=
               std::string_view::npos ||
           (colon != std::string_view::npos && v.find(':', colon + 1) != std::string_view::npos))
         return fail(q(v.substr(0, 64)) + (v.size() > 64 ? "..." : "") + " is not a user[:group]",
                     "a user name or uid, optionally ':' and a group name or gid");
       c.hardening.runas = v;
       return std::nullopt;
     }},
    {.key = "hardening.landlock", .flag = "--no-landlock", .type = VT::boolean, .flag_value = "false", .def = "true",
     .help = "after setup, restrict the filesystem to the paths moat still uses (Landlock, R-HARD-7)",
     .flag_help = "do not restrict the filesystem with Landlock (debugging only)", .group = G::output,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.hardening.landlock = b;
       return std::nullopt;
     }},
    {.key = "log.format", .type = VT::unsupported, .help = "logs are text only in this build"},
    {.key = "log.file", .type = VT::unsupported, .help = "logs go to stderr in this build"},
    // --- TLS interception (SPEC §3.9 R-TLS-1..10) ---
    {.key = "tls.intercept", .flag = "--tls", .type = VT::boolean, .flag_value = "true", .def = "false",
     .help = "intercept TLS on tls.ports with moat's CA (R-TLS-1)", .group = G::tls,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.tls.intercept = b;
       c.tls.intercept_set = true;
       return std::nullopt;
     }},
    {.key = "tls.ports", .flag = "--tls-port", .value_name = "PORT", .type = VT::custom, .def = "443",
     .help = "also intercept TLS on TCP PORT (repeatable; the file's tls.ports replaces the list)", .group = G::tls,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt { return add_tls_port(c, v); }},
    {.key = "tls.bypass", .flag = "--tls-bypass", .value_name = "PATTERN", .type = VT::list,
     .help = "splice TLS to NAME, *.SUFFIX or * opaquely, without interception (repeatable)", .group = G::tls,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       return add_host_pattern(v, &c.tls.bypass);
     },
     .clear = [](Config& c) { c.tls.bypass.clear(); }},
    {.key = "tls.ca", .flag = "--tls-ephemeral-ca", .type = VT::enumeration, .choices = "persistent,ephemeral",
     .flag_value = "ephemeral", .def = "persistent",
     .help = "persistent|ephemeral: the CA in $XDG_DATA_HOME/moat, or a new in-memory one per gateway",
     .flag_help = "use a fresh in-memory CA for this gateway, never written to disk", .group = G::tls,
     .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.tls.ca = TlsConfig::CaMode(int(i));  // the choices are the enum's order
       return std::nullopt;
     }},
    {.key = "tls.ca_cert", .flag = "--tls-ca-cert", .value_name = "FILE", .type = VT::path,
     .help = "the interception CA's certificate (PEM; with --tls-ca-key)", .group = G::tls,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.tls.ca_cert = v;
       return std::nullopt;
     }},
    {.key = "tls.ca_key", .flag = "--tls-ca-key", .value_name = "FILE", .type = VT::path,
     .help = "the interception CA's private key (PEM; with --tls-ca-cert)", .group = G::tls,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.tls.ca_key = v;
       return std::nullopt;
     }},
    {.key = "tls.leaf_validity", .type = VT::duration, .lo = ms(std::chrono::hours(2)),
     .hi = ms(std::chrono::hours(24 * 90)), .def = "24h", .help = "lifetime of a minted leaf certificate (R-TLS-3)",
     .group = G::tls, .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.tls.leaf_validity = d;
       return std::nullopt;
     }},
    {.key = "tls.leaf_backdate", .type = VT::duration, .lo = 0, .hi = ms(std::chrono::hours(24 * 7)), .def = "1h",
     .help = "how far before now a leaf becomes valid (guest clock skew)", .group = G::tls,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.tls.leaf_backdate = d;
       return std::nullopt;
     }},
    {.key = "tls.leaf_cache", .type = VT::integer, .lo = 1, .hi = 100000, .def = "1000",
     .help = "leaf certificates kept (LRU)", .group = G::tls, .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.tls.leaf_cache = uint32_t(i);
       return std::nullopt;
     }},
    {.key = "tls.system_roots", .type = VT::boolean, .def = "true",
     .help = "trust the system's CA store for upstream certificates (R-TLS-5)", .group = G::tls,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.tls.system_roots = b;
       return std::nullopt;
     }},
    {.key = "tls.extra_ca", .flag = "--tls-extra-ca", .value_name = "FILE", .type = VT::path_list,
     .help = "also trust the CA certificates in FILE (PEM) upstream (repeatable)", .group = G::tls,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.tls.extra_ca.emplace_back(v);
       return std::nullopt;
     },
     .clear = [](Config& c) { c.tls.extra_ca.clear(); }},
    {.key = "tls.host_ca", .flag = "--tls-host-ca", .value_name = "PATTERN=FILE", .type = VT::custom,
     .help = "trust FILE's CA certificates for upstream hosts matching PATTERN (repeatable)", .group = G::tls,
     .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       const size_t eq = v.find('=');
       if (eq == std::string_view::npos || eq + 1 == v.size())
         return fail(q(v) + " is not PATTERN=FILE", "write e.g. *.corp.example=/etc/corp-ca.pem");
       HostCaConfig h;
       if (auto e = add_host_pattern(v.substr(0, eq), &h.hosts)) return e;
       h.file = v.substr(eq + 1);
       c.tls.host_ca.push_back(std::move(h));
       return std::nullopt;
     }},
    {.key = "tls.no_verify", .flag = "--tls-no-verify", .value_name = "PATTERN", .type = VT::list,
     .help = "do not verify upstream certificates of NAME, *.SUFFIX or * (repeatable; secrets never go there)",
     .group = G::tls, .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       return add_host_pattern(v, &c.tls.no_verify);
     },
     .clear = [](Config& c) { c.tls.no_verify.clear(); }},
    {.key = "tls.upstream_min_version", .type = VT::enumeration, .choices = "1.2,1.3", .def = "1.2",
     .help = "lowest TLS version accepted from upstreams", .group = G::tls,
     .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.tls.upstream_min_version = TlsConfig::MinVersion(int(i));
       return std::nullopt;
     }},
    {.key = "tls.block_quic", .flag = "--allow-quic", .type = VT::boolean, .flag_value = "false", .def = "true",
     .help = "refuse UDP to tls.ports while intercepting, so clients fall back to TLS (R-TLS-7)",
     .flag_help = "let UDP (QUIC) to the intercepted ports through", .group = G::tls,
     .set_bool = [](Config& c, Source, bool b) -> Opt {
       c.tls.block_quic = b;
       return std::nullopt;
     }},
    {.key = "tls.non_tls", .type = VT::enumeration, .choices = "passthrough,reject", .def = "passthrough",
     .help = "what a non-TLS first flight on an intercepted port gets", .group = G::tls,
     .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.tls.non_tls = TlsConfig::NonTls(int(i));
       return std::nullopt;
     }},
    {.key = "tls.upstream_error", .type = VT::enumeration, .choices = "http,alert", .def = "http",
     .help = "an upstream TLS failure: 502 with the reason (http) or a handshake alert", .group = G::tls,
     .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.tls.upstream_error = TlsConfig::UpstreamError(int(i));
       return std::nullopt;
     }},
    {.key = "tls.handshake_timeout", .type = VT::duration, .lo = 100, .hi = ms(std::chrono::minutes(2)), .def = "10s",
     .help = "limit for each of the ClientHello, the upstream and the guest handshake", .group = G::tls,
     .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.tls.handshake_timeout = d;
       return std::nullopt;
     }},
    {.key = "tls.keylog_file", .flag = "--tls-keylog", .value_name = "FILE", .type = VT::path,
     .help = "append TLS session keys (NSS key log, 0600) to FILE; default $SSLKEYLOGFILE (R-TLS-9)",
     .group = G::tls, .set_text = [](Config& c, Source, std::string_view v, FlagState&) -> Opt {
       c.tls.keylog_file = v;
       return std::nullopt;
     }},
    {.key = "run.ca_trust", .flag = "--ca-trust", .value_name = "MODE", .type = VT::enumeration,
     .choices = "bind+env,env,none", .def = "bind+env",
     .help = "run: how the command trusts moat's CA: bind-mount + env vars, env vars, or nothing (R-TLS-10)",
     .group = G::tls, .set_int = [](Config& c, Source, int64_t i) -> Opt {
       c.run.ca_trust = RunConfig::CaTrust(int(i));  // the choices are the enum's order
       return std::nullopt;
     }},
    // --- whole tables this build refuses ---
    {.key = "schema", .type = VT::custom, .help = "the config schema version; only 1"},
    {.key = "fragments", .type = VT::unsupported, .help = "fragment reassembly limits are fixed in this build"},
    {.key = "secrets", .type = VT::unsupported, .help = "secret injection is not implemented; remove the [secrets] table"},
    {.key = "forward", .type = VT::unsupported, .help = "guest-to-host forwards are not implemented"},
    {.key = "rate", .type = VT::unsupported, .help = "rate limiting is not implemented; remove the [rate] table"},
    {.key = "control", .type = VT::unsupported, .help = "the control socket is not implemented"},
    {.key = "run.drain_timeout", .flag = "--drain-timeout", .value_name = "DUR", .type = VT::duration, .lo = 0,
     .hi = ms(RunConfig::kDrainTimeoutMax), .def = "5s",
     .help = "run: serve this long after CMD exits (serve --once: after the VM left) so flows finish; 0 = reset at once",
     .group = G::flows, .set_duration = [](Config& c, Source, Duration d) -> Opt {
       c.run.drain_timeout = d;
       return std::nullopt;
     }},
    {.key = "run.dns_config", .type = VT::unsupported, .help = "run settings other than drain_timeout are not configurable in this build"},
    {.key = "run.userns", .type = VT::unsupported, .help = "run settings other than drain_timeout are not configurable in this build"},
    {.key = "run.map_user", .type = VT::unsupported, .help = "run settings other than drain_timeout are not configurable in this build"},
    {.key = "run.mask_paths", .type = VT::unsupported, .help = "run settings other than drain_timeout are not configurable in this build"},
    {.key = "operator", .type = VT::unsupported,
     .help = "operator settings belong in the operator config, which this build does not read"},
    {.key = "floor", .type = VT::unsupported,
     .help = "the floor policy belongs in the operator config, which this build does not read"},
};

}  // namespace

std::span<const Setting> settings() { return kSettings; }

const Setting* setting_by_key(std::string_view key) {
  for (const auto& s : kSettings)
    if (!s.key.empty() && s.key == key) return &s;
  return nullptr;
}

const Setting* setting_by_flag(std::string_view flag) {
  for (const auto& s : kSettings)
    if ((!s.flag.empty() && s.flag == flag) || (!s.short_flag.empty() && s.short_flag == flag)) return &s;
  return nullptr;
}

std::string format_duration(Duration d) {
  int64_t v = ms(d);
  if (v == 0) return "0s";
  if (v % 3'600'000 == 0) return std::to_string(v / 3'600'000) + "h";
  if (v % 60'000 == 0) return std::to_string(v / 60'000) + "m";
  if (v % 1000 == 0) return std::to_string(v / 1000) + "s";
  return std::to_string(v) + "ms";
}

std::string format_size(uint64_t bytes) {
  if (bytes == 0) return "0B";
  if (bytes % (uint64_t{1} << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes % (uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes % (uint64_t{1} << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

std::optional<uint64_t> parse_size(std::string_view text) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || p == text.data()) return std::nullopt;
  const std::string_view unit(p, size_t(text.data() + text.size() - p));
  struct U {
    std::string_view name;
    uint64_t mult;
  };
  static constexpr U kUnits[] = {{"", 1},           {"B", 1},          {"KB", 1000},          {"KiB", 1024},
                                 {"MB", 1000000},   {"MiB", 1 << 20},  {"GB", 1000000000},    {"GiB", 1 << 30}};
  for (const U& u : kUnits) {
    if (u.name != unit) continue;
    if (n > (uint64_t{1} << 62) / u.mult) return std::nullopt;  // no overflow, and far beyond any cap
    return n * u.mult;
  }
  return std::nullopt;
}

std::string range_text(const Setting& s) {
  std::string r;
  if (s.type == ValueType::duration) {
    r = format_duration(std::chrono::milliseconds(s.lo)) + "-" + format_duration(std::chrono::milliseconds(s.hi));
  } else if (s.type == ValueType::size) {
    r = format_size(uint64_t(s.lo)) + "-" + format_size(uint64_t(s.hi));
  } else if (s.lo == s.hi) {
    r = std::to_string(s.lo);
  } else {
    r = std::to_string(s.lo) + "-" + std::to_string(s.hi);
  }
  return "expected " + std::string(s.zero_ok ? "0 or " : "") + r;
}

std::string choices_text(const Setting& s) {
  std::string out;
  for (char ch : s.choices) out += ch == ',' ? std::string(", ") : std::string(1, ch);
  return out;
}

Opt apply_bool(const Setting& s, Config& c, Source src, bool v) { return s.set_bool(c, src, v); }

Opt apply_int(const Setting& s, Config& c, Source src, int64_t v) {
  if (!(s.zero_ok && v == 0) && (v < s.lo || v > s.hi)) return fail(std::to_string(v) + " is out of range", range_text(s));
  return s.set_int(c, src, v);
}

Opt apply_duration(const Setting& s, Config& c, Source src, std::string_view text) {
  auto d = parse_duration(text);
  // A bare 0 needs no unit where 0 is in range ("--drain-timeout 0" = off).
  if (!d && text == "0" && s.lo == 0) d = Duration::zero();
  if (!d) {
    bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
    if (digits) return fail(q(text) + " needs a unit (e.g. " + q(std::string(text) + "s") + ")");
    return fail(q(text) + " is not a duration", "write e.g. \"30s\", \"500ms\", \"10m\" or \"2h\"");
  }
  if (ms(*d) < s.lo || ms(*d) > s.hi) return fail(q(text) + " is out of range", range_text(s));
  return s.set_duration(c, src, *d);
}

Opt apply_size(const Setting& s, Config& c, Source src, std::string_view text) {
  auto n = parse_size(text);
  if (!n) {
    // Only the value's head: a 100 KB value is not echoed in full.
    const std::string_view shown = text.size() > 64 ? text.substr(0, 64) : text;
    return fail(q(shown) + (text.size() > 64 ? "... " : " ") + "is not a size",
                "write a byte count or e.g. \"64KiB\", \"256MiB\", \"1GiB\" (KB/MB/GB are powers of 1000)");
  }
  if (*n < uint64_t(s.lo) || *n > uint64_t(s.hi)) return fail(q(text) + " is out of range", range_text(s));
  return s.set_int(c, src, int64_t(*n));
}

Opt apply_choice(const Setting& s, Config& c, Source src, std::string_view text) {
  int64_t i = 0;
  std::string_view rest = s.choices;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    if (rest.substr(0, comma) == text) return s.set_int(c, src, i);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
    ++i;
  }
  return fail(q(text) + " is not one of " + choices_text(s));
}

Opt apply_text(const Setting& s, Config& c, Source src, std::string_view text, FlagState& st) {
  return s.set_text(c, src, text, st);
}

Opt apply_flag(const Setting& s, Config& c, std::string_view value, FlagState& st) {
  if (s.value_name.empty()) value = s.flag_value;  // a switch
  switch (s.type) {
    case ValueType::boolean: return apply_bool(s, c, Source::flag, value == "true");
    case ValueType::integer: {
      int64_t x = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), x);
      if (ec == std::errc::result_out_of_range && p == value.data() + value.size())
        return fail(escape_control(value, kQuotedValueMax) + " is out of range", range_text(s));
      if (value.empty() || ec != std::errc() || p != value.data() + value.size())
        return fail(q(value) + " is not a number");
      return apply_int(s, c, Source::flag, x);
    }
    case ValueType::duration: return apply_duration(s, c, Source::flag, value);
    case ValueType::size: return apply_size(s, c, Source::flag, value);
    case ValueType::enumeration: return apply_choice(s, c, Source::flag, value);
    case ValueType::list:
    case ValueType::path_list:
      if (s.type == ValueType::path_list && value.empty()) return fail("empty path");
      // R-CLI-1: list flags append to the file's list; --dns-upstream replaces it.
      if (s.flag_replaces && st.count == 0 && s.clear != nullptr) s.clear(c);
      ++st.count;
      return apply_text(s, c, Source::flag, value, st);
    case ValueType::path:
      // The file's loader refuses an empty path too (get_path()); an empty flag value
      // would otherwise switch the output off without a word (--pcap "", --pid-file "").
      if (value.empty()) return fail("empty path");
      return apply_text(s, c, Source::flag, value, st);
    case ValueType::text:
    case ValueType::custom: return apply_text(s, c, Source::flag, value, st);
    case ValueType::unsupported: break;
  }
  return fail("not supported by this moat build");
}

std::string help_text(const Setting& s) {
  if (s.value_name.empty()) return std::string(s.flag_help.empty() ? s.help : s.flag_help);
  std::string h(s.help);
  std::string extra;
  if (!s.def.empty()) extra = "default " + std::string(s.def);
  if (s.type == ValueType::integer || s.type == ValueType::duration || s.type == ValueType::size) {
    std::string r = range_text(s).substr(std::string_view("expected ").size());
    if (!s.unit.empty()) r += " " + std::string(s.unit);
    extra += (extra.empty() ? "" : "; ") + r;
  }
  if (!extra.empty()) h += " (" + extra + ")";
  return h;
}

std::string_view group_name(Group g) noexcept {
  switch (g) {
    case Group::addressing: return "Addressing";
    case Group::flows: return "Flows and published ports";
    case Group::dns: return "DNS";
    case Group::policy: return "Policy and audit";
    case Group::output: return "Output and logging";
    case Group::tls: return "TLS interception";
  }
  return "Options";
}

Opt add_dns_host(Config& c, std::string_view name, std::string_view ip) {
  auto n = policy::normalize_name(name);
  if (!n) return fail(q(name) + ": " + n.error().what, n.error().hint);
  auto a = IpAddr::parse(ip);
  if (!a) return fail(q(ip) + " is not an IP address");
  for (auto& [have, addrs] : c.dns.hosts) {
    if (have != *n) continue;
    addrs.push_back(*a);
    return std::nullopt;
  }
  c.dns.hosts.emplace_back(*n, std::vector<IpAddr>{*a});
  return std::nullopt;
}

// A TLS host pattern (tls.bypass, tls.no_verify, tls.host_ca): "*", "*.suffix" (one label or
// more: "*.test" is fine here) or an exact name; lowercased, no trailing dot.
Opt add_host_pattern(std::string_view v, std::vector<std::string>* out) {
  if (v == "*") {
    out->emplace_back("*");
    return std::nullopt;
  }
  std::string_view body = v;
  const bool wild = body.rfind("*.", 0) == 0;
  if (wild) body.remove_prefix(2);
  if (body.find('*') != std::string_view::npos)
    return fail(q(v) + " is not a host pattern", "write NAME, *.SUFFIX or *");
  auto n = policy::normalize_name(body);
  if (!n) return fail(q(v) + ": " + n.error().what, n.error().hint);
  out->push_back((wild ? "*." : "") + *n);
  return std::nullopt;
}

}  // namespace moat::config
