#pragma once
// The one validated, immutable configuration of a gateway (STYLE: cli/ and config/ produce
// it; each component's constructor takes only its own slice).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/addr.h"
#include "base/log.h"
#include "base/time.h"
#include "config/net_specs.h"
#include "policy/profiles.h"
#include "policy/rule.h"

namespace moat::dns {
class BlockList;
}

namespace moat::config {

enum class FamilyMode { automatic, on, off };

/// [net] (SPEC §4.2, R-ADDR-1/2/3).
struct NetConfig {
  /// 0 = unset: app::finish_config() puts in the transport's default (65520 on TAP and
  /// sockets, 1500 on in-process rings). Users cannot write 0 (net.mtu and --mtu are 576-65520).
  uint32_t mtu = 0;
  MacAddr guest_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x02}};
  MacAddr gateway_mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x01}};
  std::string ifname;  ///< empty = the mode's default (eth0 for run, moat0 for attach)
  std::string hostname;
  std::vector<std::string> search_domains;

  FamilyMode ipv4_enable = FamilyMode::automatic;
  Ipv4Addr ipv4_address = Ipv4Addr::from_octets(100, 96, 0, 2);
  int ipv4_prefix = 30;
  Ipv4Addr ipv4_gateway = Ipv4Addr::from_octets(100, 96, 0, 1);
  std::optional<Ipv4Addr> ipv4_dns;  ///< unset = the gateway
  bool dhcp4 = true;
  Duration lease_time = std::chrono::hours(24);

  FamilyMode ipv6_enable = FamilyMode::automatic;
  Ipv6Addr ipv6_address{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
  int ipv6_prefix = 64;
  Ipv6Addr ipv6_gateway{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  std::optional<Ipv6Addr> ipv6_dns;
  bool ra = true;
  Duration ra_interval = std::chrono::seconds(600);
  Dhcpv6Mode dhcpv6 = Dhcpv6Mode::stateless;  ///< net.ipv6.dhcpv6 (R-NET-8)

  [[nodiscard]] Ipv4Addr dns4() const { return ipv4_dns.value_or(ipv4_gateway); }
  [[nodiscard]] Ipv6Addr dns6() const { return ipv6_dns.value_or(ipv6_gateway); }
};

/// [transport] (SPEC §4.2 transport.*).
struct TransportConfig {
  OffloadSpec offloads;  ///< transport.offloads (R-TR-6), default auto
};

/// Flows: TCP/UDP/ICMP relay settings (SPEC §4.2 tcp.*, udp.*, icmp.*, limits.*).
struct FlowConfig {
  bool map_gateway_to_loopback = true;       ///< net.map_gateway_to_loopback (--no-host-loopback)
  std::vector<UpstreamSpec> dns_upstreams;   ///< --dns-upstream; empty = the host's resolv.conf
  std::string resolv_conf = "/etc/resolv.conf";
  std::vector<PublishSpec> publish;          ///< -p/--publish
  std::string impair;                        ///< --impair spec (validated by the CLI)
  uint32_t max_flows = 4096;                 ///< limits.max_flows, hard cap 65536
  uint32_t max_pending_connects = 512;       ///< hard cap 8192
  uint64_t memory_budget = uint64_t{256} << 20;  ///< limits.memory_budget (R-LIM-2), hard cap 16 GiB
  uint32_t flow_buffer = 256u << 10;         ///< limits.flow_buffer, per direction, hard cap 16 MiB
  Duration connect_timeout = std::chrono::seconds(30);
  uint32_t udp_max_sessions = 1024;          ///< hard cap 16384
  uint32_t icmp_max_sessions = 256;
  bool icmp_relay = true;
};

enum class DenyResponse : uint8_t { reject, drop };  ///< policy.deny_response (R-POL-10)

/// [policy] (SPEC §3.8, §4.2). Rules are parsed when read; resolve_policy() applies R-POL-5/6.
struct PolicyConfig {
  policy::PolicyInputs inputs;       ///< cli/config rules, profiles, defaults, sni_requires_pin
  DenyResponse deny_response = DenyResponse::reject;
  Duration first_flight_timeout = std::chrono::seconds(1);  ///< 50 ms - 30 s
};

enum class DirectQueries : uint8_t { target, upstream, deny };  ///< dns.direct_queries (R-DNS-3)

/// [dns] (SPEC §3.7, §4.2). Upstreams live in FlowConfig::dns_upstreams / resolv_conf.
struct DnsConfig {
  Duration timeout = std::chrono::seconds(2);   ///< per attempt
  /// dns.timeout's valid range, for the file key and --dns-timeout alike.
  static constexpr Duration kTimeoutMin = std::chrono::milliseconds(100), kTimeoutMax = std::chrono::seconds(30);
  Duration deadline = std::chrono::seconds(5);  ///< whole query
  bool rebind_protection = true;
  std::vector<std::string> block;        ///< exact names or "*.suffix", normalised
  std::vector<std::string> block_files;  ///< paths (read at start)
  bool block_doh = false;
  std::vector<std::pair<std::string, std::vector<IpAddr>>> hosts;  ///< dns.hosts, name -> addresses
  Duration pin_min_ttl = std::chrono::seconds(300);
  Duration pin_max_ttl = std::chrono::hours(24);
  uint32_t max_pins = 65536;
  bool refuse_alt_ports = true;
  DirectQueries direct_queries = DirectQueries::target;
  uint32_t max_inflight = 256;
  Duration tcp_idle_timeout = std::chrono::seconds(30);
  /// block + block_files + block_doh, compiled by app::compile_dns_block() (null = none yet).
  std::shared_ptr<const dns::BlockList> block_list;
};

enum class AuditDns : uint8_t { none, denied, all };  ///< audit.dns

/// [audit] (SPEC R-OBS-3).
struct AuditConfig {
  std::string file;  ///< path, "-" = stderr, empty = off
  AuditDns dns = AuditDns::denied;
  std::vector<std::string> events;  ///< empty = every event except dns_query
};

/// hardening.* (R-HARD-3/4): applied by the CLI front ends only, never by the C ABI.
struct HardeningConfig {
  enum class Seccomp : uint8_t { on, log, off };  ///< the order of the setting's choices
  Seccomp seccomp = Seccomp::on;
  std::string runas = "nobody";  ///< user[:group]; used only when started as real root
  bool landlock = true;          ///< R-HARD-7: restrict the filesystem after setup
};

/// A tls.host_ca entry (R-TLS-5): the CA file trusted for upstream hosts matching `hosts`.
struct HostCaConfig {
  std::vector<std::string> hosts;  ///< patterns, normalised (see TlsConfig)
  std::string file;
};

/// [tls] (SPEC §3.9 R-TLS-1..10, §4.2 tls.*). Host patterns (bypass, no_verify, host_ca) are
/// normalised when read: lowercase, no trailing dot; "name" (exact), "*.suffix" (the suffix
/// and every name under it) or "*" (every name).
struct TlsConfig {
  bool intercept = false;           ///< tls.intercept / --tls (R-TLS-1)
  bool intercept_set = false;       ///< tls.intercept was written (true or false) by the user
  std::vector<uint16_t> ports{443};  ///< tls.ports / --tls-port: intercepted TCP ports
  std::vector<std::string> bypass;  ///< tls.bypass: spliced opaquely
  enum class CaMode : uint8_t { persistent, ephemeral };  ///< the order of the setting's choices
  CaMode ca = CaMode::persistent;   ///< tls.ca / --tls-ephemeral-ca (R-TLS-2)
  std::string ca_cert, ca_key;      ///< user-supplied CA: both or neither
  Duration leaf_validity = std::chrono::hours(24);
  Duration leaf_backdate = std::chrono::hours(1);
  uint32_t leaf_cache = 1000;       ///< LRU entries (R-TLS-3)
  bool system_roots = true;         ///< trust the system store upstream (R-TLS-5)
  std::vector<std::string> extra_ca;  ///< PEM files, each may hold several certificates
  std::vector<HostCaConfig> host_ca;
  std::vector<std::string> no_verify;  ///< patterns whose upstream is not verified
  enum class MinVersion : uint8_t { tls12, tls13 };
  MinVersion upstream_min_version = MinVersion::tls12;
  bool block_quic = true;           ///< R-TLS-7
  enum class NonTls : uint8_t { passthrough, reject };
  NonTls non_tls = NonTls::passthrough;
  enum class UpstreamError : uint8_t { http, alert };
  UpstreamError upstream_error = UpstreamError::http;
  Duration handshake_timeout = std::chrono::seconds(10);
  /// tls.keylog_file / --tls-keylog (R-TLS-9); empty = $SSLKEYLOGFILE, filled in by
  /// app::finish_config() for the CLI.
  std::string keylog_file;
};

/// [run] (SPEC §4.2 run.*, R-CLI-2).
struct RunConfig {
  /// run.drain_timeout: how long `moat run` keeps serving after the command exited (and
  /// `serve --once` after the VM disconnected) so that flows finish; 0 = reset at once.
  Duration drain_timeout = std::chrono::seconds(5);
  static constexpr Duration kDrainTimeoutMax = std::chrono::minutes(10);
  /// run.ca_trust (R-TLS-10): how the child trusts moat's CA when interception is on.
  enum class CaTrust : uint8_t { bind_env, env, none };  ///< the order of the setting's choices
  CaTrust ca_trust = CaTrust::bind_env;
};

/// Everything one gateway process needs (grows with each subsystem).
struct Config {
  NetConfig net;
  TransportConfig transport;
  FlowConfig flows;
  PolicyConfig policy;
  DnsConfig dns;
  AuditConfig audit;
  HardeningConfig hardening;
  TlsConfig tls;
  RunConfig run;
  std::string name;        ///< gateway.name; empty = moat-<pid>
  std::string pcap_file;   ///< --pcap; empty = off
  std::string ready_file;  ///< --ready-file: PID + newline, written atomically once serving
  std::string pid_file;    ///< --pid-file: written at start
  int ready_fd = -1;       ///< --ready-fd: "READY=1\n" written and the fd closed once serving
  LogLevel log_level = LogLevel::info;
};

/// Where an error points and what it says; printed as `moat: error: <where>: <what>[; <hint>]` (§5.2).
struct UserError {
  std::string where;
  std::string what;
  std::string hint;
  [[nodiscard]] std::string format() const;
};

/// Which flag or key set each validated field, so messages name what the user wrote.
struct NetSources {
  std::string mtu = "--mtu", ipv4 = "--ipv4", gateway4 = "--gateway4", dns4 = "--dns4";
  std::string ipv6 = "--ipv6", gateway6 = "--gateway6", dns6 = "--dns6";
  std::string guest_mac = "--guest-mac", gateway_mac = "--gateway-mac", ifname = "--ifname";
};

/// R-ADDR-2 checks for the families that will be active. Returns every error found (≤ 20).
std::vector<UserError> validate(const NetConfig& net, bool ipv4_active, bool ipv6_active,
                                const NetSources& src = {});

/// "500ms", "30s", "10m", "2h" (a unit is required, §4.1).
std::optional<Duration> parse_duration(std::string_view s);

/// Parses "ADDR/LEN" for --ipv4 / --ipv6; messages name `flag`.
std::optional<UserError> parse_ipv4_prefix(std::string_view flag, std::string_view value, Ipv4Addr* addr,
                                           int* prefix);
std::optional<UserError> parse_ipv6_prefix(std::string_view flag, std::string_view value, Ipv6Addr* addr,
                                           int* prefix);

}  // namespace moat::config
