// `moat run` and `moat attach`: build the gateway for a TAP in a namespace, run the loop,
// translate signals, and map outcomes to the exit statuses of SPEC §5.1.
#include "app/app.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

#include "app/gateway.h"
#include "dns/block_list.h"
#include "base/log.h"
#include "event/clock.h"
#include "event/loop.h"
#include "ns/attach.h"
#include "obs/audit_log.h"
#include "ns/sandbox.h"
#include "transport/impair.h"
#include "transport/pcap.h"
#include "transport/qemu_stream.h"
#include "transport/tap.h"
#include "transport/unix_socket.h"
#include "transport/unixgram.h"

namespace moat::app {
namespace {

constexpr uint32_t kTapDefaultMtu = 65520;  // R-ADDR-1

void user_error(const std::string& msg) { std::fprintf(stderr, "moat: error: %s\n", msg.c_str()); }

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

/// transport.offloads (R-TR-6) as a mask: `auto` asks for CSUM, TSO4 and TSO6.
transport::OffloadMask offload_mask(const config::OffloadSpec& o) {
  using namespace transport;
  if (o.automatic) return kOffloadCsum | kOffloadTso4 | kOffloadTso6;
  return OffloadMask((o.csum ? kOffloadCsum : 0) | (o.tso4 ? kOffloadTso4 : 0) | (o.tso6 ? kOffloadTso6 : 0) |
                     (o.uso ? kOffloadUso : 0));
}

/// R-TR-6 on a TAP fd, moat's own (run/attach) or an inherited one: the header is what the
/// fd was opened with (IFF_VNET_HDR, TUNGETVNETHDRSZ); `spec` is the mask the peer accepts
/// and what moat asks the kernel for with TUNSETOFFLOAD (only to turn offloads on: an fd
/// whose owner wants none keeps its own setting). Without IFF_VNET_HDR there is no header and no
/// offload, whatever `spec` says (logged once at info).
Result<transport::TapConfig, std::string> tap_fd_vnet(int fd, const std::string& where,
                                                      const config::OffloadSpec& spec) {
  transport::TapConfig tc;
  const transport::OffloadMask mask = offload_mask(spec);
  ifreq ifr{};
  if (::ioctl(fd, TUNGETIFF, &ifr) != 0 || (ifr.ifr_flags & IFF_VNET_HDR) == 0) {
    if (mask != 0) MOAT_LOG(info, "%s: the TAP has no IFF_VNET_HDR: no virtio-net header, no offloads", where.c_str());
    return tc;
  }
  int hdr = 0;
  if (::ioctl(fd, TUNGETVNETHDRSZ, &hdr) != 0)
    return unexpected(where + ": cannot read the virtio-net header size (TUNGETVNETHDRSZ): " + std::strerror(errno));
  if (hdr != int(transport::kVnetHdrLegacy) && hdr != int(transport::kVnetHdrV1))
    return unexpected(where + ": the TAP's virtio-net header is " + std::to_string(hdr) +
                      " bytes; moat supports 10 or 12 (TUNSETVNETHDRSZ)");
  tc.vnet_hdr_len = size_t(hdr);
  tc.guest_offloads = mask & (transport::kOffloadCsum | transport::kOffloadTso4 | transport::kOffloadTso6);
  if (mask == 0) return tc;
  if (auto st = transport::set_tap_offloads(fd, mask); !st) {
    if (!spec.automatic)
      return unexpected("--offloads: the TAP refused them (TUNSETOFFLOAD: " + std::string(st.error().message()) + ")");
    MOAT_LOG(warn, "%s: TUNSETOFFLOAD failed (%s); using virtio-net headers without offloads", where.c_str(),
             st.error().message());
    tc.guest_offloads = 0;
  }
  return tc;
}

}  // namespace

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
  switch (n.dhcpv6) {
    case config::Dhcpv6Mode::off: l.dhcpv6 = stack::Dhcpv6Mode::off; break;
    case config::Dhcpv6Mode::stateless: l.dhcpv6 = stack::Dhcpv6Mode::stateless; break;
    case config::Dhcpv6Mode::stateful: l.dhcpv6 = stack::Dhcpv6Mode::stateful; break;
  }
  l.seed = uint64_t(::getpid()) * 0x9e3779b97f4a7c15ull ^ uint64_t(time(nullptr));
  return l;
}

namespace {

ns::TapSetup tap_setup(const config::Config& c, const Families& f, bool configure) {
  ns::TapSetup t;
  const auto& n = c.net;
  t.ifname = n.ifname;
  t.guest_mac = n.guest_mac;
  t.gateway_mac = n.gateway_mac;
  t.mtu = n.mtu ? n.mtu : kTapDefaultMtu;
  t.configure = configure;
  t.vnet_hdr = offload_mask(c.transport.offloads) != 0;  // R-ADDR-6: IFF_VNET_HDR when offloads are on
  if (f.ipv4) t.guest4 = n.ipv4_address;
  t.prefix4 = n.ipv4_prefix;
  t.gateway4 = n.ipv4_gateway;
  t.dns4 = n.dns4();
  if (f.ipv6) t.guest6 = n.ipv6_address;
  t.prefix6 = n.ipv6_prefix;
  t.gateway6 = n.ipv6_gateway;
  t.dns6 = n.dns6();
  return t;
}

}  // namespace

flows::Endpoint endpoint(const config::UpstreamSpec& u) { return flows::Endpoint{u.addr, u.port}; }

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

/// The flow engines' slice of the config (R-ADDR-5 mapping, DNS upstreams, limits).
FlowsSetup flows_setup(const config::Config& c, const Families& f) {
  FlowsSetup s;
  const auto& n = c.net;
  auto& d = s.destinations;
  d.ipv4_active = f.ipv4;
  d.ipv6_active = f.ipv6;
  d.gateway4 = n.ipv4_gateway;
  d.dns4 = n.dns4();
  d.gateway6 = n.ipv6_gateway;
  d.gateway6_link_local = n.gateway_mac.link_local();
  d.dns6 = n.dns6();
  d.map_gateway_to_loopback = c.flows.map_gateway_to_loopback;
  std::vector<config::UpstreamSpec> ups = c.flows.dns_upstreams;
  if (ups.empty()) {
    // R-DNS-4: the host's resolv.conf (moat's sockets live in the host namespace).
    std::string text;
    if (FILE* fp = std::fopen(c.flows.resolv_conf.c_str(), "re")) {
      char buf[4096];
      size_t k;
      while ((k = std::fread(buf, 1, sizeof buf, fp)) > 0 && text.size() < (1u << 20)) text.append(buf, k);
      std::fclose(fp);
    }
    ups = config::parse_resolv_conf(text);
    if (ups.empty())
      MOAT_LOG(warn, "no DNS upstream: %s names no nameserver and no --dns-upstream was given",
               c.flows.resolv_conf.c_str());
  }
  for (const auto& u : ups) {
    d.dns_upstreams.push_back(endpoint(u));
    s.dns_upstreams.push_back(dns::Upstream{u.addr, u.port, u.tcp});
  }
  s.tcp.max_flows = c.flows.max_flows;
  s.tcp.max_pending_connects = c.flows.max_pending_connects;
  s.tcp.connect_timeout = c.flows.connect_timeout;
  s.udp.max_sessions = c.flows.udp_max_sessions;
  s.icmp.max_sessions = c.flows.icmp_max_sessions;
  s.icmp_relay = c.flows.icmp_relay;
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

namespace {

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

/// Blocks the signals moat handles and returns a signalfd for them (the loop reads it).
UniqueFd block_signals(sigset_t* old) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGCHLD}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, old);
  return UniqueFd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}

/// Everything opened before the namespace work, so a failure leaves nothing behind.
struct Outputs {
  std::optional<transport::PcapWriter> pcap;
  std::string pcap_path;
  UniqueFd audit;             ///< --audit sink (R-OBS-3)
  bool audit_created = false;  ///< the file did not exist before: removed on a setup failure
  bool ok = true;

  explicit Outputs(const config::Config& c) {
    if (!c.pid_file.empty() && !write_atomically(c.pid_file, std::to_string(::getpid()) + "\n")) {
      user_error("--pid-file " + c.pid_file + ": cannot write: " + std::strerror(errno));
      ok = false;
      return;
    }
    if (!c.pcap_file.empty()) {
      auto w = transport::PcapWriter::open(c.pcap_file);
      if (!w) {
        user_error("--pcap " + c.pcap_file + ": cannot open: " + w.error().message());
        ok = false;
        return;
      }
      pcap.emplace(std::move(w).value());
      pcap_path = c.pcap_file;
    }
    if (!c.audit.file.empty()) {
      audit_created = c.audit.file != "-" && ::access(c.audit.file.c_str(), F_OK) != 0;
      auto fd = obs::AuditLog::open_sink(c.audit.file);
      if (!fd) {
        user_error(fd.error());
        discard(c);
        ok = false;
        return;
      }
      audit = std::move(*fd);
    }
  }
  /// Undo on a setup failure (§5.2: no output file is left behind).
  void discard(const config::Config& c) {
    if (pcap) {
      pcap.reset();
      ::unlink(pcap_path.c_str());
    }
    if (!c.pid_file.empty()) ::unlink(c.pid_file.c_str());
    if (audit) {
      audit.reset();
      if (audit_created) ::unlink(c.audit.file.c_str());
    }
  }
};

/// Loop + link + gateway for a TAP fd, shared by run and attach.
struct Runtime {
  event::SystemClock clock;
  event::Loop loop{clock};
  Counters counters;
  transport::PcapTap* pcap = nullptr;
  std::unique_ptr<obs::AuditLog> audit;  // before gateway: outlives the flows that emit
  std::unique_ptr<Gateway> gateway;
  std::optional<Errno> link_error;

  ~Runtime() {
    if (audit) audit->emit("gateway_stop", [](obs::JsonWriter& w) { w.str("reason", "exit"); });
    gateway.reset();
  }

  /// Error: one line for "moat: error: ...".
  Result<void, std::string> init(UniqueFd tap_fd, const config::Config& c, const Families& f, Outputs& out) {
    // R-TR-6: the TAP was created with IFF_VNET_HDR iff offloads are on.
    auto tc = tap_fd_vnet(tap_fd.get(), "the TAP", c.transport.offloads);
    if (!tc) return unexpected(tc.error());
    auto tap = transport::TapTransport::create(std::move(tap_fd), counters, *tc);
    if (!tap) return unexpected(std::string("cannot serve the TAP: ") + tap.error().message());
    return init(std::move(tap).value(), c, f, out, "the TAP");
  }

  /// Same over any guest link (serve's sockets and inherited fds); `what` names it in errors.
  Result<void, std::string> init(std::unique_ptr<transport::FrameTransport> link, const config::Config& c,
                                 const Families& f, Outputs& out, const char* what) {
    if (out.pcap) {
      auto p = std::make_unique<transport::PcapTap>(std::move(link), std::move(out.pcap));
      out.pcap.reset();
      pcap = p.get();
      link = std::move(p);
    }
    transport::ImpairedLink* impaired = nullptr;
    if (!c.flows.impair.empty()) {
      auto spec = transport::parse_impair(c.flows.impair);  // validated by the CLI already
      if (!spec) return unexpected("--impair: " + spec.error());
      auto il = std::make_unique<transport::ImpairedLink>(std::move(link), *spec, loop, counters);
      impaired = il.get();
      link = std::move(il);
    }
    FlowsSetup fs = flows_setup(c, f);
    if (out.audit) {
      audit = std::make_unique<obs::AuditLog>(std::move(out.audit), audit_options(c), loop, counters);
      audit->emit("gateway_start", [](obs::JsonWriter& w) { w.str("version", MOAT_VERSION_STRING); });
      fs.audit_log = audit.get();
    }
    gateway = std::make_unique<Gateway>(loop, counters, link_config(c, f), std::move(link), pcap, &fs, impaired);
    if (auto st = gateway->start([this](const Errno& e) {
          link_error = e;
          loop.stop();
        });
        !st)
      return unexpected(std::string("cannot serve ") + what + ": " + st.error().message());
    if (auto pb = gateway->flows()->publish(c.flows.publish); !pb) return unexpected(pb.error());
    for (const auto& d : gateway->flows()->publisher().describe()) MOAT_LOG(info, "published %s", d.c_str());
    return {};
  }

  /// SIGHUP: reopen the audit file (log rotation, R-OBS-3).
  void reopen_audit() {
    if (!audit) return;
    if (auto r = audit->reopen(); !r) MOAT_LOG(warn, "%s; keeping the old audit file", r.error().c_str());
  }

  void log_stats(LogLevel level) {
    if (gateway) gateway->flush_capture();
    if (log_enabled(level)) log_write(level, "stats: %s", format_counters(counters).c_str());
  }

  /// attach and serve (no child): SIGTERM/SIGINT stop the loop, SIGUSR1 logs the counters,
  /// SIGHUP reopens the audit file (config reload: TODO(policy)).
  Result<event::Watch> watch_daemon_signals(int sigfd) {
    return loop.watch(sigfd, EPOLLIN, [this, sigfd](uint32_t) {
      signalfd_siginfo si;
      while (::read(sigfd, &si, sizeof si) == ssize_t(sizeof si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) loop.stop();
        else if (si.ssi_signo == SIGUSR1) log_stats(LogLevel::info);
        else if (si.ssi_signo == SIGHUP) reopen_audit();
      }
    });
  }
};

/// R-LIM-3: raise RLIMIT_NOFILE to the hard limit. If that is still below what the flow
/// limits need (max_flows + max_pending_connects + 2 * udp sessions + icmp sessions + 64),
/// the limits are reduced proportionally, with a warning, so a shortage never surfaces
/// later as EMFILE.
void raise_fd_limit(config::FlowConfig& fl) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  constexpr uint64_t kReserve = 64;  // the TAP, epoll, signalfd, listeners, logs, pcap
  const uint64_t need =
      uint64_t(fl.max_flows) + fl.max_pending_connects + 2ull * fl.udp_max_sessions + fl.icmp_max_sessions + kReserve;
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) return;
  const double f = rl.rlim_cur > kReserve ? double(rl.rlim_cur - kReserve) / double(need - kReserve) : 0.0;
  auto scale = [f](uint32_t v) { return std::max<uint32_t>(1, uint32_t(double(v) * f)); };
  MOAT_LOG(warn,
           "the file-descriptor limit (%llu) is below what the flow limits need (%llu); reducing them to "
           "max_flows %u, max_pending_connects %u, udp sessions %u, icmp sessions %u (raise it with ulimit -n)",
           static_cast<unsigned long long>(rl.rlim_cur), static_cast<unsigned long long>(need), scale(fl.max_flows),
           scale(fl.max_pending_connects), scale(fl.udp_max_sessions), scale(fl.icmp_max_sessions));
  fl.max_flows = scale(fl.max_flows);
  fl.max_pending_connects = scale(fl.max_pending_connects);
  fl.udp_max_sessions = scale(fl.udp_max_sessions);
  fl.icmp_max_sessions = scale(fl.icmp_max_sessions);
}

void announce(const config::Config& c, const Families& f, const std::string& link) {
  MOAT_LOG(info, "serving %s: ipv4 %s, ipv6 %s, mtu %u", link.c_str(),
           f.ipv4 ? (c.net.ipv4_address.to_string() + "/" + std::to_string(c.net.ipv4_prefix) + " via " +
                     c.net.ipv4_gateway.to_string())
                        .c_str()
                  : "off",
           f.ipv6 ? (c.net.ipv6_address.to_string() + "/64 via " + c.net.ipv6_gateway.to_string()).c_str() : "off",
           c.net.mtu ? c.net.mtu : kTapDefaultMtu);
}

/// The guest link of `serve`: a bound socket or an inherited fd (R-TR-3/4/5). Errors are
/// complete §5.2 texts (without "moat: error: ").
struct ServeLink {
  std::unique_ptr<transport::FrameTransport> link;
  std::string description;
};

}  // namespace

Result<FdType, std::string> detect_fd_type(int fd, const std::string& where) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    if (errno == EBADF) return unexpected(where + ": not an open file descriptor; pass one moat inherits");
    return unexpected(where + ": cannot inspect: " + std::strerror(errno));
  }
  if (S_ISSOCK(st.st_mode)) {
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0)
      return unexpected(where + ": cannot read the socket type: " + std::strerror(errno));
    if (type == SOCK_STREAM) return FdType::stream;
    if (type == SOCK_DGRAM || type == SOCK_SEQPACKET) return FdType::dgram;
    return unexpected(where + ": unsupported socket type " + std::to_string(type) + "; use a stream, datagram or seqpacket socket");
  }
  if (S_ISCHR(st.st_mode)) {
    ifreq ifr{};
    if (::ioctl(fd, TUNGETIFF, &ifr) == 0) {
      if ((ifr.ifr_flags & IFF_TAP) == 0) return unexpected(where + ": a TUN (layer 3) device; moat needs a TAP (IFF_TAP)");
      if ((ifr.ifr_flags & IFF_NO_PI) == 0) return unexpected(where + ": the TAP lacks IFF_NO_PI");
      return FdType::tap;
    }
  }
  return unexpected(where + ": neither a socket nor a TAP device; give --fd-type tap|stream|dgram if it is one");
}


Result<std::unique_ptr<transport::FrameTransport>, std::string> make_fd_link(UniqueFd fd, FdType type,
                                                                           Counters& counters,
                                                                           const std::string& where,
                                                                           const config::OffloadSpec& offloads) {
  if (type == FdType::stream) {
    auto t = transport::QemuStreamTransport::from_connected_fd(std::move(fd), counters);
    if (!t) return unexpected(where + ": cannot serve: " + t.error().message());
    return std::unique_ptr<transport::FrameTransport>(std::move(t).value());
  }
  // A TAP and a connected datagram/seqpacket socket share the one-frame-per-call semantics.
  transport::TapConfig tc;
  if (type == FdType::tap) {
    auto v = tap_fd_vnet(fd.get(), where, offloads);
    if (!v) return unexpected(v.error());
    tc = *v;
  }
  auto t = transport::TapTransport::create(std::move(fd), counters, tc);
  if (!t) return unexpected(where + ": cannot serve: " + t.error().message());
  return std::unique_ptr<transport::FrameTransport>(std::move(t).value());
}

namespace {

Result<ServeLink, std::string> make_serve_link(const ServeOptions& o, Counters& counters) {
  ServeLink s;
  switch (o.kind) {
    case ServeKind::qemu: {
      auto sock = transport::bind_unix(o.path, SOCK_STREAM, mode_t(o.socket_mode));
      if (!sock) return unexpected(sock.error());
      auto t = transport::QemuStreamTransport::listen(std::move(sock).value(), o.once, counters);
      if (!t) return unexpected(o.path + ": cannot serve: " + t.error().message());
      s.link = std::move(t).value();
      s.description = "qemu stream " + o.path;
      return s;
    }
    case ServeKind::unixgram: {
      auto sock = transport::bind_unix(o.path, SOCK_DGRAM, mode_t(o.socket_mode));
      if (!sock) return unexpected(sock.error());
      auto t = transport::UnixgramTransport::create(std::move(sock).value(), counters);
      if (!t) return unexpected(o.path + ": cannot serve: " + t.error().message());
      s.link = std::move(t).value();
      s.description = "unix datagram " + o.path;
      return s;
    }
    case ServeKind::fd:
      break;
  }
  const std::string where = "--fd " + std::to_string(o.fd);
  auto detected = detect_fd_type(o.fd, where);  // also proves the fd is open
  if (!detected && (o.fd_type == FdType::detect || ::fcntl(o.fd, F_GETFD) < 0)) return unexpected(detected.error());
  const FdType type = o.fd_type == FdType::detect ? *detected : o.fd_type;
  // The fd is ours from here on; it is not inherited by anything moat starts.
  ::fcntl(o.fd, F_SETFD, FD_CLOEXEC);
  auto t = make_fd_link(UniqueFd(o.fd), type, counters, where, o.cfg.transport.offloads);
  if (!t) return unexpected(t.error());
  s.link = std::move(t).value();
  s.description = std::string(type == FdType::stream ? "inherited stream fd "
                              : type == FdType::tap  ? "inherited TAP fd "
                                                     : "inherited datagram fd ") +
                  std::to_string(o.fd);
  return s;
}

}  // namespace

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

Families resolve_families(const config::NetConfig& net) {
  Families f;
  auto resolve = [](config::FamilyMode m, int af) {
    return m == config::FamilyMode::on || (m == config::FamilyMode::automatic && has_route(af));
  };
  f.ipv4 = resolve(net.ipv4_enable, AF_INET);
  f.ipv6 = resolve(net.ipv6_enable, AF_INET6);
  return f;
}

int run_sandbox(const RunOptions& options) {
  constexpr int kFail = 125;
  RunOptions o = options;  // the flow limits may be reduced to the fd limit (R-LIM-3)
  set_log_level(o.cfg.log_level);
  raise_fd_limit(o.cfg.flows);
  Outputs out(o.cfg);
  if (!out.ok) return kFail;

  ns::SandboxSpec spec;
  spec.argv = o.argv;
  spec.tap = tap_setup(o.cfg, o.families, /*configure=*/true);
  if (o.families.ipv4) {
    spec.nameservers.push_back(o.cfg.net.dns4());
    spec.host_alias_addrs.push_back(o.cfg.net.ipv4_gateway);
  }
  if (o.families.ipv6) {
    spec.nameservers.push_back(o.cfg.net.dns6());
    spec.host_alias_addrs.push_back(o.cfg.net.ipv6_gateway);
  }
  auto sb = ns::Sandbox::start(spec);
  if (!sb) {
    user_error(sb.error());
    out.discard(o.cfg);
    return kFail;
  }
  ns::Sandbox& child = sb.value();

  sigset_t old_mask;
  UniqueFd sigfd = block_signals(&old_mask);
  Runtime rt;
  if (auto s = rt.init(child.take_tap_fd(), o.cfg, o.families, out); !s) {
    user_error(s.error());
    child.kill_child(SIGKILL);
    child.wait_for(std::chrono::seconds(2));
    out.discard(o.cfg);
    return kFail;
  }

  std::optional<int> status;
  auto on_child_exit = [&] {
    if (auto st = child.try_wait()) {
      status = st;
      rt.loop.stop();
    }
  };
  auto sig_watch = rt.loop.watch(sigfd.get(), EPOLLIN, [&](uint32_t) {
    signalfd_siginfo si;
    while (::read(sigfd.get(), &si, sizeof si) == ssize_t(sizeof si)) {
      switch (si.ssi_signo) {
        case SIGTERM:
        case SIGHUP:
          if (si.ssi_signo == SIGHUP) rt.reopen_audit();
          child.kill_child(int(si.ssi_signo));  // R-CLI-2: forwarded to the command
          break;
        case SIGUSR1:
          rt.log_stats(LogLevel::info);
          break;
        case SIGCHLD:
          on_child_exit();
          break;
        default:  // SIGINT, SIGQUIT: the terminal delivers them to the command itself
          break;
      }
    }
  });
  std::optional<event::Watch> pid_watch;
  if (child.pidfd() >= 0) {
    auto w = rt.loop.watch(child.pidfd(), EPOLLIN, [&](uint32_t) { on_child_exit(); });
    if (w) pid_watch.emplace(std::move(w).value());
  }
  if (!sig_watch) {
    user_error(std::string("run: cannot watch signals: ") + sig_watch.error().message());
    child.kill_child(SIGKILL);
    child.wait_for(std::chrono::seconds(2));
    out.discard(o.cfg);
    return kFail;
  }
  announce(o.cfg, o.families, o.cfg.net.ifname);
  if (!o.cfg.ready_file.empty() && !write_atomically(o.cfg.ready_file, std::to_string(::getpid()) + "\n"))
    MOAT_LOG(warn, "--ready-file %s: cannot write: %s", o.cfg.ready_file.c_str(), std::strerror(errno));
  if (auto s = child.release(); !s) {
    user_error(std::string("run: cannot start the command: ") + s.error().message());
    child.kill_child(SIGKILL);
    child.wait_for(std::chrono::seconds(2));
    return kFail;
  }
  on_child_exit();  // it may already be gone (SIGCHLD raced the signalfd)
  if (!status) rt.loop.run();

  if (!status) {
    // The loop stopped without the child exiting: the gateway failed. Fail closed (§5.3).
    MOAT_LOG(error, "run: the guest link failed (%s); stopping the command",
             rt.link_error ? rt.link_error->message() : "unknown");
    child.kill_child(SIGKILL);
    child.wait_for(std::chrono::seconds(2));
    status = kFail;
  }
  rt.log_stats(LogLevel::debug);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return *status;
}

int attach(const AttachOptions& options) {
  AttachOptions o = options;  // the flow limits may be reduced to the fd limit (R-LIM-3)
  set_log_level(o.cfg.log_level);
  raise_fd_limit(o.cfg.flows);
  Outputs out(o.cfg);
  if (!out.ok) return 2;

  std::optional<ns::NetnsId> netns_id;
  if (!o.netns_path.empty()) {
    auto id = ns::netns_id(o.netns_path);
    if (!id) {
      user_error("--netns " + o.netns_path + ": cannot open: " + id.error().message());
      out.discard(o.cfg);
      return 2;
    }
    netns_id = *id;
  }
  auto tap = ns::attach_tap(o.netns_path, o.pid, tap_setup(o.cfg, o.families, o.configure));
  if (!tap) {
    user_error(tap.error());
    out.discard(o.cfg);
    return 2;
  }
  UniqueFd pidfd;
  if (o.pid != 0) {
    auto p = ns::open_pidfd(o.pid);
    if (p) pidfd = std::move(p).value();
  }

  sigset_t old_mask;
  UniqueFd sigfd = block_signals(&old_mask);
  Runtime rt;
  if (auto s = rt.init(std::move(tap).value(), o.cfg, o.families, out); !s) {
    user_error(s.error());
    out.discard(o.cfg);
    return 2;
  }
  const char* stop_reason = "signal";
  auto sig_watch = rt.watch_daemon_signals(sigfd.get());
  if (!sig_watch) {
    user_error(std::string("attach: cannot watch signals: ") + sig_watch.error().message());
    return 1;
  }
  // R-CLI-3: exit 0 when the namespace or the process goes away. A TAP keeps its namespace
  // alive, so its reads never fail; watch the target itself.
  std::optional<event::Watch> pid_watch;
  if (pidfd) {
    auto w = rt.loop.watch(pidfd.get(), EPOLLIN, [&](uint32_t) {
      stop_reason = "the target process exited";
      rt.loop.stop();
    });
    if (w) pid_watch.emplace(std::move(w).value());
  }
  event::TimerHandle ns_timer;
  std::function<void()> check_ns = [&] {
    if (!ns::netns_path_alive(o.netns_path, *netns_id)) {
      stop_reason = "the namespace was removed";
      rt.loop.stop();
      return;
    }
    ns_timer = rt.loop.schedule_after(std::chrono::seconds(1), check_ns);
  };
  if (netns_id) ns_timer = rt.loop.schedule_after(std::chrono::seconds(1), check_ns);

  announce(o.cfg, o.families, o.cfg.net.ifname);
  if (!o.cfg.ready_file.empty() && !write_atomically(o.cfg.ready_file, std::to_string(::getpid()) + "\n"))
    MOAT_LOG(warn, "--ready-file %s: cannot write: %s", o.cfg.ready_file.c_str(), std::strerror(errno));
  rt.loop.run();
  int rc = 0;
  if (rt.link_error) {
    MOAT_LOG(error, "attach: the guest link failed: %s", rt.link_error->message());
    rc = transport::is_link_gone(*rt.link_error) ? 0 : 1;
  } else {
    MOAT_LOG(info, "stopping: %s", stop_reason);
  }
  rt.log_stats(LogLevel::debug);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return rc;
}

}  // namespace moat::app

namespace moat::app {

int serve(const ServeOptions& options) {
  constexpr int kUsage = 2;
  ServeOptions o = options;  // the flow limits may be reduced to the fd limit (R-LIM-3)
  set_log_level(o.cfg.log_level);
  raise_fd_limit(o.cfg.flows);
  Outputs out(o.cfg);
  if (!out.ok) return kUsage;

  sigset_t old_mask;
  UniqueFd sigfd = block_signals(&old_mask);
  Runtime rt;
  auto sl = make_serve_link(o, rt.counters);
  if (!sl) {
    user_error(sl.error());
    out.discard(o.cfg);
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return kUsage;
  }
  const std::string description = sl->description;
  // On a failure below, rt's destructor closes the transport, which removes the socket file.
  if (auto s = rt.init(std::move(sl->link), o.cfg, o.families, out, description.c_str()); !s) {
    user_error(s.error());
    out.discard(o.cfg);
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return kUsage;
  }
  auto sig_watch = rt.watch_daemon_signals(sigfd.get());
  if (!sig_watch) {
    user_error(std::string("serve: cannot watch signals: ") + sig_watch.error().message());
    out.discard(o.cfg);
    return 1;
  }
  announce(o.cfg, o.families, description);
  if (!o.cfg.ready_file.empty() && !write_atomically(o.cfg.ready_file, std::to_string(::getpid()) + "\n"))
    MOAT_LOG(warn, "--ready-file %s: cannot write: %s", o.cfg.ready_file.c_str(), std::strerror(errno));
  rt.loop.run();
  int rc = 0;
  if (rt.link_error) {
    if (transport::is_link_gone(*rt.link_error)) {
      MOAT_LOG(info, "stopping: the guest link ended");
    } else {
      MOAT_LOG(error, "serve: the guest link failed: %s", rt.link_error->message());
      rc = 1;
    }
  } else {
    MOAT_LOG(info, "stopping: signal");
  }
  rt.log_stats(LogLevel::debug);
  sig_watch->reset();
  rt.gateway.reset();  // resets open flows, flushes the capture, removes the socket file
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return rc;
}

}  // namespace moat::app
