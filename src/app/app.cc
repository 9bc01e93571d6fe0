// `moat run`, `moat attach` and `moat serve`: bring the guest link (a TAP in a namespace, a
// serve socket or an inherited fd) to a GatewayAssembly (assembly.h), run the loop,
// translate signals, and map outcomes to the exit statuses of SPEC §5.1.
#include "app/app.h"

#include <fcntl.h>
#include <signal.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "app/control.h"
#include "app/gateway.h"
#include "base/log.h"
#include "harden/harden.h"
#include "config/settings.h"
#include "event/clock.h"
#include "event/loop.h"
#include "ns/attach.h"
#include "ns/sandbox.h"
#include "tls/ca.h"
#include "transport/qemu_stream.h"
#include "transport/tap.h"
#include "transport/unix_socket.h"
#include "transport/unixgram.h"

namespace moat::app {
namespace {

void user_error(const std::string& msg) { std::fprintf(stderr, "moat: error: %s\n", msg.c_str()); }


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

namespace {

/// Blocks the signals moat handles and returns a signalfd for them (the loop reads it).
UniqueFd block_signals(sigset_t* old) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGCHLD}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, old);
  return UniqueFd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
}


/// The directory of a file path ("." for a bare name), for the Landlock rules of files moat
/// creates, renames or removes by path.
std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? std::string("/") : path.substr(0, slash);
}

/// R-HARD-7: the filesystem a gateway still reaches once set up. Read: resolv.conf (the
/// forwarder follows it when no upstream is given), /etc/localtime (log and audit times), the
/// OpenSSL configuration and trust store when TLS is intercepted. Write (create, truncate,
/// rename, remove beneath): the directories of the files moat writes or removes by path
/// after setup — the audit file (reopened on SIGHUP), the pid and ready files, serve's
/// socket. Everything else is denied; descriptors opened during setup are not affected.
harden::LandlockPlan landlock_plan(const config::Config& c, harden::Front front) {
  harden::LandlockPlan p;
  if (c.flows.dns_upstreams.empty()) p.rules.push_back({c.flows.resolv_conf, false});
  p.rules.push_back({"/etc/localtime", false});
#ifdef MOAT_SANITIZER_RUNTIME
  // Sanitizer builds: LeakSanitizer's exit check reads /proc/<pid>/task and ASan reports
  // read /proc/self/maps (seccomp.cc allows their syscalls for the same reason).
  p.rules.push_back({"/proc/self", false});
#endif
  if (c.tls.intercept)
    for (const char* d : {"/etc/ssl", "/usr/lib/ssl", "/usr/share/ca-certificates"}) p.rules.push_back({d, false});
  for (const std::string* f : {&c.audit.file, &c.pid_file, &c.ready_file})
    if (!f->empty() && *f != "-") p.rules.push_back({dir_of(*f), true});
  // policy.reload and SIGHUP re-read the --config file (app/control.cc). Its directory, not
  // the file: an editor that writes a new file and renames it over the old one leaves a new
  // inode, which a rule on the file would not cover.
  if (!c.control.reload_file.empty()) p.rules.push_back({dir_of(c.control.reload_file), false});
  (void)front;
  return p;
}

/// R-HARD-3/4: what lock_down() will do once the gateway is set up. Resolved first, before
/// any file is opened, so that a bad hardening.runas fails setup with nothing behind it (and
/// NSS reads /etc/passwd while it still may). The error is printed.
std::optional<harden::LockDownPlan> hardening_plan(const config::Config& c, harden::Front front) {
  harden::LockDownPlan p;
  p.front = front;
  p.seccomp = harden::SeccompMode(int(c.hardening.seccomp));  // same order: on, log, off
  if (harden::is_real_root()) {
    auto r = harden::resolve_runas(c.hardening.runas);
    if (!r) {
      user_error("--runas (hardening.runas): " + r.error());
      return std::nullopt;
    }
    p.runas = std::move(r).value();
  }
  // Used by path after the switch: the audit file (SIGHUP reopens it), the pid file (removed
  // at exit).
  p.handover = {c.audit.file, c.pid_file};
  if (c.hardening.landlock) p.landlock = landlock_plan(c, front);
  return p;
}

/// Applies the plan once everything is open; a failure is a setup failure (fail closed).
bool apply_hardening(const harden::LockDownPlan& p) {
  if (auto r = harden::lock_down(p); !r) {
    user_error("hardening: " + r.error());
    return false;
  }
  return true;
}

/// The loop and one GatewayAssembly for a command-line front end; the guest link is a TAP
/// fd (run, attach) or serve's socket or inherited fd.
struct Runtime {
  event::SystemClock clock;
  event::Loop loop{clock};
  GatewayAssembly gw;
  std::optional<Errno> link_error;

  /// The control socket and metrics endpoint (R-CTL-1, R-OBS-7); null until open_control().
  std::unique_ptr<GatewayControl> control;

  explicit Runtime(GatewayPlan plan) : gw(loop, std::move(plan)) {}
  ~Runtime() {
    control.reset();  // its sockets close (a control socket file is removed) before the gateway stops
    gw.stop("exit");
  }
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Error: one line for "moat: error: ...".
  Result<void, std::string> init(UniqueFd tap_fd, GatewayOutputs& out) {
    // R-TR-6: the TAP was created with IFF_VNET_HDR iff offloads are on.
    auto tc = tap_fd_vnet(tap_fd.get(), "the TAP", gw.plan().cfg.transport.offloads);
    if (!tc) return unexpected(tc.error());
    auto tap = transport::TapTransport::create(std::move(tap_fd), gw.counters(), *tc);
    if (!tap) return unexpected(std::string("cannot serve the TAP: ") + tap.error().message());
    return init(std::move(tap).value(), out, "the TAP");
  }

  /// Same over any guest link (serve's sockets and inherited fds); `what` names it in errors.
  Result<void, std::string> init(std::unique_ptr<transport::FrameTransport> link, GatewayOutputs& out,
                                 const char* what) {
    if (auto a = gw.assemble(std::move(link), out); !a) return a;
    if (auto st = gw.start([this](const Errno& e) {
          link_error = e;
          loop.stop();
        });
        !st)
      return unexpected(std::string("cannot serve ") + what + ": " + st.error().message());
    return {};
  }

  /// After init(), before the ready file and the privilege drop: the control socket and the
  /// metrics endpoint (R-CTL-1, R-OBS-7). `on_shutdown` is the control `shutdown` method
  /// (attach, serve: as SIGTERM). A filesystem control socket is handed to the runas user
  /// (it is removed at exit). Error: one line for "moat: error: ...".
  Result<void, std::string> open_control(std::function<void()> on_shutdown, harden::LockDownPlan& hardening) {
    auto c = GatewayControl::open(loop, gw, std::move(on_shutdown));
    if (!c) return unexpected(c.error());
    control = std::move(c).value();
    if (const std::string p = control->control_path(); !p.empty()) {
      hardening.handover.push_back(p);
      if (hardening.landlock) hardening.landlock->rules.push_back({dir_of(p), true});  // R-HARD-7: removed at exit
    }
    return {};
  }

  /// SIGHUP (R-CLI-5): policy.reload (with --config) and audit.reopen (log rotation, R-OBS-3).
  void reopen_audit() {
    if (control) return control->on_sighup();
    if (auto r = gw.reopen_audit(); !r) MOAT_LOG(warn, "%s; keeping the old audit file", r.error().c_str());
  }

  void log_stats(LogLevel level) { gw.log_stats(level); }

  /// A SIGTERM/SIGINT asked moat to stop: a drain in progress ends at once.
  void request_stop() {
    stop_requested = true;
    loop.stop();
  }

  /// attach and serve (no child): SIGTERM/SIGINT stop the loop, SIGUSR1 logs the counters,
  /// SIGHUP reloads the policy (with --config) and reopens the audit file.
  Result<event::Watch> watch_daemon_signals(int sigfd) {
    return loop.watch(sigfd, EPOLLIN, [this, sigfd](uint32_t) {
      signalfd_siginfo si;
      while (::read(sigfd, &si, sizeof si) == ssize_t(sizeof si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) request_stop();
        else if (si.ssi_signo == SIGUSR1) log_stats(LogLevel::info);
        else if (si.ssi_signo == SIGHUP) reopen_audit();
      }
    });
  }

  /// R-CLI-2 "nothing lost at exit": keeps serving until the flows have finished their
  /// work (FlowManager::drain_backlog() empty and, while the guest may still be sending,
  /// no frame from it for one tick) or `timeout` has passed; then drained flows are closed
  /// quietly and the rest reset, counted in run.drain_reset and named in ONE warning.
  /// `guest_gone`: the link ended (serve --once), nothing more comes from the guest.
  /// A SIGTERM/SIGINT (request_stop) or a failing link ends the wait at once. Runs on the
  /// loop's thread with the loop stopped; uses no syscall the gateway does not already use.
  void drain(Duration timeout, bool guest_gone, const char* who) {
    Gateway* g = gw.gateway();
    FlowManager* fm = g ? g->flows() : nullptr;
    if (!fm) return;
    const Instant start = loop.now();
    size_t reset = fm->begin_drain(guest_gone, start);
    DrainBacklog left = fm->drain_backlog();
    MOAT_LOG(debug, "%s: draining %zu TCP flow(s), %zu queued UDP datagram(s), %zu DNS quer%s (at most %s)", who,
             left.tcp, left.udp, left.dns, left.dns == 1 ? "y" : "ies", config::format_duration(timeout).c_str());
    bool timed_out = timeout <= Duration::zero();
    const bool link_was_gone = link_error.has_value();  // serve's drain starts with it
    const auto link_failed = [&] { return link_error.has_value() && !link_was_gone; };
    if (!timed_out && !stop_requested && !link_failed()) {
      const auto frames = [this] { return gw.counters().values[size_t(Counter::link_from_guest_frames)]; };
      uint64_t frames_seen = frames();
      event::TimerHandle tick;
      std::function<void()> check = [&] {
        const uint64_t f = frames();
        // The guest kernel may still hold frames for us (the command's sockets, its TAP
        // queue) while no flow looks busy: one quiet tick before calling it done.
        const bool quiet = guest_gone || f == frames_seen;
        frames_seen = f;
        left = fm->drain_backlog();
        if (quiet && left.empty()) return loop.stop();
        if (loop.now() - start >= timeout) {
          timed_out = true;
          return loop.stop();
        }
        tick = loop.schedule_after(kDrainTick, check);
      };
      tick = loop.schedule_after(kDrainTick, check);
      loop.run();
      left = fm->drain_backlog();
    }
    reset += fm->end_drain(loop.now());
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(loop.now() - start);
    if (reset == 0 && left.udp == 0 && left.dns == 0) {
      MOAT_LOG(debug, "%s: drained in %lld ms", who, static_cast<long long>(took.count()));
      return;
    }
    gw.counters().inc(Counter::run_drain_reset, reset);
    const char* why = stop_requested ? "stopped by a signal"
                      : link_failed() ? "the guest link failed"
                      : timed_out    ? "drain timeout"
                                     : "drain";
    MOAT_LOG(warn,
             "%s: %s after %lld ms (run.drain_timeout %s): reset %zu TCP flow(s) still carrying data; "
             "dropped %zu queued UDP datagram(s); %zu DNS quer%s unanswered",
             who, why, static_cast<long long>(took.count()), config::format_duration(timeout).c_str(), reset, left.udp,
             left.dns, left.dns == 1 ? "y" : "ies");
  }

  static constexpr Duration kDrainTick = std::chrono::milliseconds(20);
  bool stop_requested = false;
};

/// The files of a CLI gateway (pid file, pcap, audit); the error is printed.
std::optional<GatewayOutputs> open_outputs(const config::Config& c) {
  auto out = GatewayOutputs::open(c, /*with_pid_file=*/true);
  if (!out) {
    user_error(out.error());
    return std::nullopt;
  }
  return std::move(out).value();
}

/// systemd's Type=notify (contrib/systemd/moat@.service): READY=1 to $NOTIFY_SOCKET (a path
/// or "@abstract"), sent before the lock-down, like every readiness signal.
void notify_systemd_ready() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  const size_t n = std::strlen(path);
  if (n >= sizeof sa.sun_path) return;
  std::memcpy(sa.sun_path, path, n);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return;
  const std::string msg = "READY=1\nMAINPID=" + std::to_string(::getpid());
  if (::sendto(fd.get(), msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&sa),
               socklen_t(offsetof(sockaddr_un, sun_path) + n)) < 0)
    MOAT_LOG(warn, "NOTIFY_SOCKET %s: cannot notify systemd: %s", path, std::strerror(errno));
}

void write_ready_file(const config::Config& c) {
  if (!c.ready_file.empty() && !write_pid_file(c.ready_file))
    MOAT_LOG(warn, "--ready-file %s: cannot write: %s", c.ready_file.c_str(), std::strerror(errno));
  // R-CLI-5 --ready-fd: one line, then the descriptor is closed (a pipe's reader sees EOF).
  if (c.ready_fd >= 0) {
    static constexpr char kReady[] = "READY=1\n";
    if (::write(c.ready_fd, kReady, sizeof kReady - 1) != ssize_t(sizeof kReady - 1))
      MOAT_LOG(warn, "--ready-fd %d: cannot write: %s", c.ready_fd, std::strerror(errno));
    ::close(c.ready_fd);
  }
  notify_systemd_ready();
}

void announce(const GatewayPlan& p, const std::string& link) {
  const config::Config& c = p.cfg;
  const Families& f = p.families;
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
  auto t = make_fd_link(UniqueFd(o.fd), type, counters, where, o.plan.cfg.transport.offloads);
  if (!t) return unexpected(t.error());
  s.link = std::move(t).value();
  s.description = std::string(type == FdType::stream ? "inherited stream fd "
                              : type == FdType::tap  ? "inherited TAP fd "
                                                     : "inherited datagram fd ") +
                  std::to_string(o.fd);
  return s;
}

}  // namespace

int run_sandbox(const RunOptions& o) {
  constexpr int kFail = 125;
  const GatewayPlan& plan = o.plan;
  const config::Config& cfg = plan.cfg;
  auto hardening = hardening_plan(cfg, harden::Front::run);
  if (!hardening) return kFail;
  auto out = open_outputs(cfg);
  if (!out) return kFail;

  ns::SandboxSpec spec;
  spec.argv = o.argv;
  spec.tap = tap_setup(cfg, plan.families, /*configure=*/true);
  if (plan.families.ipv4) {
    spec.nameservers.push_back(cfg.net.dns4());
    spec.host_alias_addrs.push_back(cfg.net.ipv4_gateway);
  }
  if (plan.families.ipv6) {
    spec.nameservers.push_back(cfg.net.dns6());
    spec.host_alias_addrs.push_back(cfg.net.ipv6_gateway);
  }
  if (plan.ca) {
    // R-TLS-10: the child trusts moat's CA (plan.ca was resolved by finish_config()).
    spec.ca_pem = plan.ca->pem();
    static_assert(int(config::RunConfig::CaTrust::env) == int(ns::SandboxSpec::CaTrust::env) &&
                  int(config::RunConfig::CaTrust::none) == int(ns::SandboxSpec::CaTrust::none));
    spec.ca_trust = ns::SandboxSpec::CaTrust(int(cfg.run.ca_trust));  // same order: bind+env, env, none
  }
  auto sb = ns::Sandbox::start(spec);
  if (!sb) {
    user_error(sb.error());
    out->discard();
    return kFail;
  }
  ns::Sandbox& child = sb.value();

  sigset_t old_mask;
  UniqueFd sigfd = block_signals(&old_mask);
  Runtime rt(plan);
  if (auto s = rt.init(child.take_tap_fd(), *out); !s) {
    user_error(s.error());
    child.kill_child(SIGKILL);
    child.wait_for(std::chrono::seconds(2));
    out->discard();
    return kFail;
  }

  std::optional<int> status;
  auto on_child_exit = [&] {
    if (status) return;  // the pidfd stays readable once the child is gone
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
        case SIGINT:
          // While the command runs SIGTERM is its (R-CLI-2) and SIGINT comes to it from the
          // terminal; once it has exited and moat drains, either stops moat at once.
          if (status) rt.request_stop();
          else if (si.ssi_signo == SIGTERM) child.kill_child(SIGTERM);
          break;
        case SIGHUP:
          rt.reopen_audit();
          child.kill_child(SIGHUP);  // R-CLI-2: forwarded to the command
          break;
        case SIGUSR1:
          rt.log_stats(LogLevel::info);
          break;
        case SIGCHLD:
          on_child_exit();
          break;
        default:  // SIGQUIT: the terminal delivers it to the command itself
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
    out->discard();
    return kFail;
  }
  // R-CTL-3 shutdown in `run`: the command gets SIGTERM (as moat's own SIGTERM does); moat
  // drains and exits with its status.
  if (auto s = rt.open_control([&child] { child.kill_child(SIGTERM); }, *hardening); !s) {
    user_error(s.error());
    child.kill_child(SIGKILL);
    child.wait_for(std::chrono::seconds(2));
    out->discard();
    return kFail;
  }
  announce(plan, cfg.net.ifname);
  write_ready_file(cfg);
  // Hardened before the command is released: it never runs next to a privileged moat.
  if (!apply_hardening(*hardening)) {
    child.kill_child(SIGKILL);
    child.wait_for(std::chrono::seconds(2));
    return kFail;
  }
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
  } else {
    // R-CLI-2: the command is gone, its data may not be. The namespace is still held
    // (Sandbox), so the guest kernel keeps sending what its sockets queued; serve until the
    // flows are done or run.drain_timeout passes. The exit status stays the command's.
    pid_watch.reset();
    rt.drain(cfg.run.drain_timeout, /*guest_gone=*/false, "run");
  }
  rt.log_stats(LogLevel::debug);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return *status;
}

int attach(const AttachOptions& o) {
  const GatewayPlan& plan = o.plan;
  const config::Config& cfg = plan.cfg;
  auto hardening = hardening_plan(cfg, harden::Front::attach);
  if (!hardening) return 2;
  auto out = open_outputs(cfg);
  if (!out) return 2;

  std::optional<ns::NetnsId> netns_id;
  if (!o.netns_path.empty()) {
    auto id = ns::netns_id(o.netns_path);
    if (!id) {
      user_error("--netns " + o.netns_path + ": cannot open: " + id.error().message());
      out->discard();
      return 2;
    }
    netns_id = *id;
  }
  auto tap = ns::attach_tap(o.netns_path, o.pid, tap_setup(cfg, plan.families, o.configure));
  if (!tap) {
    user_error(tap.error());
    out->discard();
    return 2;
  }
  UniqueFd pidfd;
  if (o.pid != 0) {
    auto p = ns::open_pidfd(o.pid);
    if (p) pidfd = std::move(p).value();
  }

  sigset_t old_mask;
  UniqueFd sigfd = block_signals(&old_mask);
  Runtime rt(plan);
  if (auto s = rt.init(std::move(tap).value(), *out); !s) {
    user_error(s.error());
    out->discard();
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
  if (auto s = rt.open_control([&] {
        stop_reason = "shutdown requested on the control socket";
        rt.request_stop();
      }, *hardening);
      !s) {
    user_error(s.error());
    out->discard();
    return 2;
  }

  announce(plan, cfg.net.ifname);
  write_ready_file(cfg);
  if (!apply_hardening(*hardening)) return 1;
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

int serve(const ServeOptions& o) {
  constexpr int kUsage = 2;
  const GatewayPlan& plan = o.plan;
  const config::Config& cfg = plan.cfg;
  auto hardening = hardening_plan(cfg, harden::Front::serve);
  if (!hardening) return kUsage;
  if (o.kind != ServeKind::fd) {
    hardening->handover.push_back(o.path);  // the socket file, removed at stop
    if (hardening->landlock && o.path.rfind('@', 0) != 0) hardening->landlock->rules.push_back({dir_of(o.path), true});
  }
  auto out = open_outputs(cfg);
  if (!out) return kUsage;

  sigset_t old_mask;
  UniqueFd sigfd = block_signals(&old_mask);
  Runtime rt(plan);
  auto sl = make_serve_link(o, rt.gw.counters());
  if (!sl) {
    user_error(sl.error());
    out->discard();
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return kUsage;
  }
  const std::string description = sl->description;
  // On a failure below, rt's destructor closes the transport, which removes the socket file.
  if (auto s = rt.init(std::move(sl->link), *out, description.c_str()); !s) {
    user_error(s.error());
    out->discard();
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return kUsage;
  }
  auto sig_watch = rt.watch_daemon_signals(sigfd.get());
  if (!sig_watch) {
    user_error(std::string("serve: cannot watch signals: ") + sig_watch.error().message());
    out->discard();
    return 1;
  }
  if (auto s = rt.open_control([&rt] { rt.request_stop(); }, *hardening); !s) {
    user_error(s.error());
    out->discard();
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return kUsage;
  }
  announce(plan, description);
  write_ready_file(cfg);
  if (!apply_hardening(*hardening)) return 1;
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
  // R-CLI-2 for VMs: when the guest left for good (--once, an fd's end), what moat holds
  // toward the host still goes out and the host sides get their FIN. A signal or a failing
  // link keeps R-CLI-5's stop: flows reset at once.
  if (rt.link_error && transport::is_link_gone(*rt.link_error) && !rt.stop_requested)
    rt.drain(cfg.run.drain_timeout, /*guest_gone=*/true, "serve");
  rt.log_stats(LogLevel::debug);
  sig_watch->reset();
  rt.control.reset();
  rt.gw.stop("exit");  // resets open flows, flushes the capture, removes the socket file
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return rc;
}

}  // namespace moat::app
