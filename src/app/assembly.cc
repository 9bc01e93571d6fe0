// The composition root (see assembly.h and README.md): finish_config(), GatewayOutputs and
// GatewayAssembly, shared by moat run/attach/serve and the C ABI.
#include "app/assembly.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "base/file.h"
#include "base/unique_fd.h"
#include "dns/block_list.h"
#include "dns/tcp_server.h"
#include "obs/json.h"

namespace moat::app {
namespace {

bool has_route(int family) {
  UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  if (family == AF_INET) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    inet_pton(AF_INET, "192.0.2.1", &sa.sin_addr);  // TEST-NET-1: connect() sends nothing
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  }
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(53);
  inet_pton(AF_INET6, "2001:db8::1", &sa.sin6_addr);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
}

flows::Endpoint endpoint(const config::UpstreamSpec& u) { return flows::Endpoint{u.addr, u.port}; }

/// R-LIM-3: raise RLIMIT_NOFILE to the hard limit. If that is still below what the limits
/// need (max_flows + max_pending_connects + 2 * udp sessions + icmp sessions + DNS upstream
/// sockets (dns.max_inflight) + DNS-over-TCP sessions and listeners + 64), the limits are
/// reduced proportionally, with a warning, so a shortage never surfaces later as EMFILE.
/// (The DNS-TCP session and listener caps are fixed; they are counted but not scaled.)
void raise_fd_limit(config::Config& cfg) {
  config::FlowConfig& fl = cfg.flows;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  constexpr uint64_t kReserve = 64;  // the TAP, epoll, signalfd, listeners, logs, pcap
  // Each DNS-over-TCP session holds its loopback accept plus the guest flow's host socket;
  // each direct-query destination holds a listener (dns/tcp_server.h defaults, as app uses).
  const dns::TcpServerConfig dns_tcp{};
  const uint64_t fixed = kReserve + 2ull * dns_tcp.max_sessions + dns_tcp.max_listeners;
  const uint64_t need = uint64_t(fl.max_flows) + fl.max_pending_connects + 2ull * fl.udp_max_sessions +
                        fl.icmp_max_sessions + cfg.dns.max_inflight + fixed;
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return;
  const double f = rl.rlim_cur > fixed ? double(rl.rlim_cur - fixed) / double(need - fixed) : 0.0;
  auto scale = [f](uint32_t v) { return std::max<uint32_t>(1, uint32_t(double(v) * f)); };
  MOAT_LOG(warn,
           "the file-descriptor limit (%llu) is below what the limits need (%llu); reducing them to "
           "max_flows %u, max_pending_connects %u, udp sessions %u, icmp sessions %u, dns.max_inflight %u "
           "(raise it with ulimit -n)",
           static_cast<unsigned long long>(rl.rlim_cur), static_cast<unsigned long long>(need), scale(fl.max_flows),
           scale(fl.max_pending_connects), scale(fl.udp_max_sessions), scale(fl.icmp_max_sessions),
           scale(cfg.dns.max_inflight));
  fl.max_flows = scale(fl.max_flows);
  fl.max_pending_connects = scale(fl.max_pending_connects);
  fl.udp_max_sessions = scale(fl.udp_max_sessions);
  fl.icmp_max_sessions = scale(fl.icmp_max_sessions);
  cfg.dns.max_inflight = scale(cfg.dns.max_inflight);
}

/// Writes `content` to path via a temporary file + rename, so readers never see a partial file.
bool write_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return false;
  bool ok = ::write(fd.get(), content.data(), content.size()) == ssize_t(content.size());
  fd.reset();
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

/// The gateway's own addresses in flows::DestinationConfig (the rest is flows_setup's).
flows::DestinationConfig gateway_destinations(const config::NetConfig& n, const Families& f) {
  flows::DestinationConfig d;
  d.ipv4_active = f.ipv4;
  d.ipv6_active = f.ipv6;
  d.gateway4 = n.ipv4_gateway;
  d.dns4 = n.dns4();
  d.gateway6 = n.ipv6_gateway;
  d.gateway6_link_local = n.gateway_mac.link_local();
  d.dns6 = n.dns6();
  return d;
}

}  // namespace

policy::HostAddrs host_addrs(const config::NetConfig& n, const Families& f) {
  return host_addrs(gateway_destinations(n, f));
}

bool write_pid_file(const std::string& path) { return write_atomically(path, std::to_string(::getpid()) + "\n"); }

void PidFile::remove() noexcept {
  if (path_.empty()) return;
  const std::string path = std::exchange(path_, {});
  // Read a few bytes only: whatever the file holds now, ours is "<pid>\n". A forked child
  // (run's command before exec) has another pid and so never removes it.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    if (errno != ENOENT)
      MOAT_LOG(warn, "pid file %s left behind: %s (the --runas user must reach and write its directory)",
               path.c_str(), std::strerror(errno));
    return;
  }
  char buf[32];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0) return;
  if (std::string_view(buf, size_t(n)) != std::to_string(::getpid()) + "\n") return;
  // After the privilege drop (R-HARD-4) the runas user must be able to write the directory.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    MOAT_LOG(warn, "pid file %s left behind: %s (the --runas user must reach and write its directory)",
             path.c_str(), std::strerror(errno));
}

// --- finish_config ----------------------------------------------------------------------

Families resolve_families(const config::NetConfig& net) {
  Families f;
  auto resolve = [](config::FamilyMode m, int af) {
    return m == config::FamilyMode::on || (m == config::FamilyMode::automatic && has_route(af));
  };
  f.ipv4 = resolve(net.ipv4_enable, AF_INET);
  f.ipv6 = resolve(net.ipv6_enable, AF_INET6);
  return f;
}

stack::LinkConfig link_config(const config::Config& c, const Families& f) {
  stack::LinkConfig l;
  const auto& n = c.net;
  l.gateway_mac = n.gateway_mac;
  l.guest_mac = n.guest_mac;
  l.mtu = n.mtu ? n.mtu : kTapDefaultMtu;
  l.ipv4_active = f.ipv4;
  l.ipv6_active = f.ipv6;
  l.guest4 = n.ipv4_address;
  l.gateway4 = n.ipv4_gateway;
  l.dns4 = n.dns4();
  l.prefix4 = n.ipv4_prefix;
  l.guest6 = n.ipv6_address;
  l.gateway6 = n.ipv6_gateway;
  l.dns6 = n.dns6();
  l.prefix6 = n.ipv6_prefix;
  l.dhcp4 = n.dhcp4;
  l.lease_time = n.lease_time;
  l.hostname = n.hostname;
  l.search_domains = n.search_domains;
  l.ra = n.ra;
  l.ra_interval = n.ra_interval;
  l.gateway_echo = c.flows.icmp_gateway_echo;
  switch (n.dhcpv6) {
    case config::Dhcpv6Mode::off: l.dhcpv6 = stack::Dhcpv6Mode::off; break;
    case config::Dhcpv6Mode::stateless: l.dhcpv6 = stack::Dhcpv6Mode::stateless; break;
    case config::Dhcpv6Mode::stateful: l.dhcpv6 = stack::Dhcpv6Mode::stateful; break;
  }
  l.seed = uint64_t(::getpid()) * 0x9e3779b97f4a7c15ull ^ uint64_t(time(nullptr));
  return l;
}

std::vector<config::UserError> compile_dns_block(config::Config& cfg) {
  std::vector<config::UserError> errs;
  auto list = std::make_shared<dns::BlockList>();
  for (const auto& e : cfg.dns.block)
    if (auto r = list->add(e); !r) errs.push_back({"--dns-block", r.error(), ""});
  for (const auto& f : cfg.dns.block_files)
    if (auto r = list->add_file(f); !r) errs.push_back({r.error().where, r.error().what, ""});
  if (cfg.dns.block_doh) list->add_doh_names();
  if (!errs.empty()) return errs;
  cfg.policy.inputs.block = list->rules();
  cfg.dns.block_list = std::move(list);
  return errs;
}

FlowsSetup flows_setup(const config::Config& c, const Families& f) {
  FlowsSetup s;
  const auto& n = c.net;
  auto& d = s.engines.destinations;
  d = gateway_destinations(n, f);
  d.map_gateway_to_loopback = c.flows.map_gateway_to_loopback;
  std::vector<config::UpstreamSpec> ups = c.flows.dns_upstreams;
  if (ups.empty()) {
    // R-DNS-4: the host's resolv.conf (moat's sockets live in the host namespace).
    // A resolv.conf is a few lines; 1 MiB refuses a wrong path (R-DNS-4 reads it as given).
    constexpr size_t kMaxResolvConf = 1u << 20;
    std::string text;
    if (auto r = read_bounded_file(c.flows.resolv_conf, kMaxResolvConf))
      text = std::move(*r);
    else
      MOAT_LOG(warn, "%s: %s", c.flows.resolv_conf.c_str(), r.error().message().c_str());
    ups = config::parse_resolv_conf(text);
    if (ups.empty())
      MOAT_LOG(warn, "no DNS upstream: %s names no nameserver and no --dns-upstream was given",
               c.flows.resolv_conf.c_str());
  }
  for (const auto& u : ups) {
    d.dns_upstreams.push_back(endpoint(u));
    s.dns_upstreams.push_back(dns::Upstream{u.addr, u.port, u.tcp});
  }
  s.engines.tcp.max_flows = c.flows.max_flows;
  s.engines.tcp.max_pending_connects = c.flows.max_pending_connects;
  s.engines.tcp.connect_timeout = c.flows.connect_timeout;
  s.engines.tcp.flow_buffer = c.flows.flow_buffer;
  auto never_if_zero = [](Duration d) { return d == Duration::zero() ? Duration::max() : d; };
  s.engines.tcp.idle_timeout = never_if_zero(c.flows.tcp_idle_timeout);
  s.engines.tcp.half_closed_timeout = never_if_zero(c.flows.tcp_half_closed_timeout);
  s.engines.tcp.close_timeout = c.flows.tcp_close_timeout;
  s.engines.tcp.keepalive = c.flows.tcp_keepalive;
  s.engines.tcp.keepalive_idle = c.flows.tcp_keepalive_idle;
  s.engines.tcp.keepalive_interval = c.flows.tcp_keepalive_interval;
  s.engines.tcp.keepalive_count = int(c.flows.tcp_keepalive_count);
  s.engines.tcp.max_window = c.flows.tcp_max_window;
  s.engines.udp.max_sessions = c.flows.udp_max_sessions;
  s.engines.udp.idle_timeout = c.flows.udp_idle_timeout;
  s.engines.udp.max_peers = c.flows.udp_max_peers;
  s.engines.udp.queue_datagrams = c.flows.udp_queue_datagrams;
  s.engines.udp.queue_bytes = c.flows.udp_queue_bytes;
  s.engines.icmp.max_sessions = c.flows.icmp_max_sessions;
  s.engines.icmp.idle_timeout = c.flows.icmp_idle_timeout;
  s.engines.icmp_relay = c.flows.icmp_relay;
  s.policy = std::make_shared<const policy::Engine>(policy::resolve_policy(c.policy.inputs), host_addrs(d));
  s.deny_response = c.policy.deny_response;
  s.first_flight_timeout = c.policy.first_flight_timeout;
  s.dns = c.dns;
  s.audit = c.audit;
  auto& p = s.publish;
  if (f.ipv4) p.guest4 = n.ipv4_address;
  p.prefix4 = n.ipv4_prefix;
  p.gateway4 = n.ipv4_gateway;
  if (f.ipv6) p.guest6 = n.ipv6_address;
  p.gateway6 = n.ipv6_gateway;
  return s;
}

std::string gateway_name(const config::Config& c) {
  return c.name.empty() ? "moat-" + std::to_string(::getpid()) : c.name;
}

obs::AuditOptions audit_options(const config::Config& c) {
  obs::AuditOptions ao;
  ao.file = c.audit.file;
  ao.gateway = gateway_name(c);
  ao.events = c.audit.events;
  ao.dns = c.audit.dns == config::AuditDns::none  ? obs::AuditOptions::Dns::none
           : c.audit.dns == config::AuditDns::all ? obs::AuditOptions::Dns::all
                                                  : obs::AuditOptions::Dns::denied;
  return ao;
}

std::optional<std::string> check_impair(std::string_view spec) {
  auto r = transport::parse_impair(spec);
  if (!r) return r.error();
  return std::nullopt;
}

config::NetSources key_sources() {
  config::NetSources s;
  s.mtu = "net.mtu";
  s.ipv4 = "net.ipv4.address";
  s.gateway4 = "net.ipv4.gateway";
  s.dns4 = "net.ipv4.dns";
  s.ipv6 = "net.ipv6.address";
  s.gateway6 = "net.ipv6.gateway";
  s.dns6 = "net.ipv6.dns";
  s.guest_mac = "net.guest_mac";
  s.gateway_mac = "net.gateway_mac";
  s.ifname = "net.ifname";
  return s;
}

Result<GatewayPlan, std::vector<config::UserError>> finish_config(config::Config cfg, const FinishOptions& o,
                                                                  std::vector<config::UserError> earlier) {
  std::vector<config::UserError>& errs = earlier;
  if (cfg.net.ifname.empty()) cfg.net.ifname = o.default_ifname;
  if (cfg.net.mtu == 0) cfg.net.mtu = o.default_mtu;
  GatewayPlan plan;
  plan.families = resolve_families(cfg.net);
  const Families& fam = plan.families;
  if (o.require_a_family && !fam.ipv4 && !fam.ipv6)
    errs.push_back({o.families_source, "neither IPv4 nor IPv6 is active",
                    "the host has no route for either family; use " + o.families_fix});
  for (auto& e : config::validate(cfg.net, fam.ipv4, fam.ipv6, o.sources)) errs.push_back(std::move(e));
  // R-TLS-2: a user-supplied CA is a pair.
  if (cfg.tls.ca_cert.empty() != cfg.tls.ca_key.empty())
    errs.push_back({cfg.tls.ca_cert.empty() ? "--tls-ca-key (tls.ca_key)" : "--tls-ca-cert (tls.ca_cert)",
                    "is given without " + std::string(cfg.tls.ca_cert.empty() ? "--tls-ca-cert (tls.ca_cert)"
                                                                                : "--tls-ca-key (tls.ca_key)"),
                    "a CA is a certificate and its key: give both, or neither"});
  // R-TLS-9: the key log defaults to $SSLKEYLOGFILE, for a moat that owns its process (an
  // embedder's environment is not the gateway's configuration).
  if (o.own_process && cfg.tls.keylog_file.empty())
    if (const char* k = std::getenv("SSLKEYLOGFILE"); k != nullptr && *k != '\0') cfg.tls.keylog_file = k;
  // Reading block files is pointless (and slow for big lists) once the input is known bad.
  if (errs.empty())
    for (auto& e : compile_dns_block(cfg)) errs.push_back(std::move(e));
  if (errs.empty() && !cfg.flows.impair.empty()) {
    // The CLI checked --impair and the file's key already (with their names); this catches
    // the ABI's net.impair.
    auto spec = transport::parse_impair(cfg.flows.impair);
    if (!spec) errs.push_back({"net.impair", spec.error(), ""});
    else plan.impair = *spec;
  }
  if (!errs.empty()) {
    if (errs.size() > 20) errs.resize(20);
    return unexpected(std::move(errs));
  }
  if (o.own_process) {
    set_log_level(cfg.log_level);
    raise_fd_limit(cfg);  // before flows_setup() copies the limits
  }
  plan.link = link_config(cfg, fam);
  plan.flows = flows_setup(cfg, fam);
  plan.cfg = std::move(cfg);
  return plan;
}

// --- GatewayOutputs ---------------------------------------------------------------------

Result<GatewayOutputs, std::string> GatewayOutputs::open(const config::Config& c, bool with_pid_file,
                                                         const OutputNames& names) {
  GatewayOutputs out;
  if (with_pid_file && !c.pid_file.empty()) {
    if (!write_pid_file(c.pid_file))
      return unexpected(names.pid_file + " " + c.pid_file + ": cannot write: " + std::strerror(errno));
    out.pid_file_ = PidFile(c.pid_file);
  }
  if (!c.pcap_file.empty()) {
    auto w = transport::PcapWriter::open(c.pcap_file);
    if (!w) {
      std::string msg = (names.pcap.empty() ? "" : names.pcap + " ") + c.pcap_file + ": cannot open: " + w.error().message();
      out.discard();
      return unexpected(std::move(msg));
    }
    out.pcap.emplace(std::move(w).value());
    out.created_.push_back(c.pcap_file);
  }
  if (!c.audit.file.empty()) {
    const bool fresh = c.audit.file != "-" && ::access(c.audit.file.c_str(), F_OK) != 0;
    auto fd = obs::AuditLog::open_sink(c.audit.file);
    if (!fd) {
      out.discard();
      return unexpected(fd.error());
    }
    out.audit = std::move(*fd);
    if (fresh) out.created_.push_back(c.audit.file);
  }
  return out;
}

void GatewayOutputs::discard() {
  pcap.reset();
  audit.reset();
  for (const auto& f : created_) ::unlink(f.c_str());
  created_.clear();
  pid_file_.remove();
}

// --- GatewayAssembly --------------------------------------------------------------------

GatewayAssembly::GatewayAssembly(event::Loop& loop, GatewayPlan plan)
    : loop_(loop), plan_(std::move(plan)), budget_(plan_.cfg.flows.memory_budget, &counters_) {}

GatewayAssembly::~GatewayAssembly() { stop("exit"); }

Result<void, std::string> GatewayAssembly::assemble(std::unique_ptr<transport::FrameTransport> link,
                                                    GatewayOutputs& out, const AssemblyHooks& hooks) {
  // The decorators wrap the link from the inside out: the capture sees frames as they cross
  // the guest link, before any impairment (R-OBS-5).
  transport::PcapTap* pcap = nullptr;
  if (out.pcap) {
    auto p = std::make_unique<transport::PcapTap>(std::move(link), std::move(out.pcap));
    out.pcap.reset();
    pcap = p.get();
    link = std::move(p);
  }
  transport::ImpairedLink* impaired = nullptr;
  if (plan_.impair) {
    auto il = std::make_unique<transport::ImpairedLink>(std::move(link), *plan_.impair, loop_, counters_);
    impaired = il.get();
    link = std::move(il);
  }
  if (out.audit || hooks.audit_line_sink) {
    obs::AuditOptions ao = audit_options(plan_.cfg);
    ao.line_sink = hooks.audit_line_sink;
    audit_ = std::make_unique<obs::AuditLog>(std::move(out.audit), ao, loop_, counters_);
    audit_->emit("gateway_start", [](obs::JsonWriter& w) { w.str("version", MOAT_VERSION_STRING); });
    plan_.flows.audit_log = audit_.get();
  }
  // R-LIM-2: the write buffers allocated once for the whole run are charged up front.
  fixed_charge_.set_budget(&budget_);
  fixed_charge_.resize((audit_ ? obs::AuditOptions{}.buffer_bytes : 0) +
                       (pcap ? transport::PcapConfig{}.buffer_bytes : 0));
  // R-LIM-2 / R-LIM-4: flows refused for memory are audited, at most once a second.
  plan_.flows.engines.budget = &budget_;
  budget_.set_limit_hook([this] {
    if (audit_) audit_->emit("limit_hit", [](obs::JsonWriter& w) { w.str("limit", "memory"); });
  });
  gateway_ = std::make_unique<Gateway>(loop_, counters_, plan_.link, std::move(link), pcap, &plan_.flows, impaired);
  gateway_->interface().set_budget(&budget_);
  if (auto pb = gateway_->flows()->publish(plan_.cfg.flows.publish); !pb) return unexpected(pb.error());
  for (const auto& d : gateway_->flows()->publisher().describe()) MOAT_LOG(info, "published %s", d.c_str());
  return {};
}

Status GatewayAssembly::start(std::function<void(const Errno&)> on_link_gone) {
  return gateway_->start(std::move(on_link_gone));
}

void GatewayAssembly::stop(std::string_view reason) {
  if (stopped_) return;
  stopped_ = true;
  gateway_.reset();  // resets open flows, flushes the capture, closes the link
  plan_.flows.audit_log = nullptr;
  if (audit_) {
    audit_->emit("gateway_stop", [&](obs::JsonWriter& w) { w.str("reason", reason); });
    audit_.reset();  // flushes what it can without blocking
  }
}

Result<void, std::string> GatewayAssembly::reopen_audit() {
  if (!audit_ || plan_.cfg.audit.file.empty()) return {};  // nothing, or audit hook only
  return audit_->reopen();
}

void GatewayAssembly::log_stats(LogLevel level) {
  if (gateway_) gateway_->flush_capture();
  if (log_enabled(level)) log_write(level, "stats: %s", format_counters(counters_).c_str());
}

std::string GatewayAssembly::stats_json(const std::function<void(std::string&)>& extra) {
  std::string s = "{\"gateway\":";
  obs::append_json_string(s, gateway_name(plan_.cfg));
  s += ",\"counters\":{";
  for (size_t i = 0; i < kCounterCount; ++i) {
    if (i) s += ',';
    obs::append_json_string(s, counter_name(Counter(i)));
    s += ':' + std::to_string(counters_.values[i]);
  }
  s += "},\"drops\":{";
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    if (i) s += ',';
    obs::append_json_string(s, drop_reason_name(DropReason(i)));
    s += ':' + std::to_string(counters_.drops[i]);
  }
  s += "},\"drop.total\":" + std::to_string(counters_.total_drops());
  // How many live policy replacements took effect (R-POL-12); absent once stopped.
  if (gateway_) s += ",\"policy.generation\":" + std::to_string(gateway_->flows()->policy().generation());
  if (extra) extra(s);
  s += '}';
  return s;
}

}  // namespace moat::app
