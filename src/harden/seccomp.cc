// R-HARD-3: the seccomp allow-list of `moat run|attach|serve`, installed by lock_down() once
// the gateway is set up. Every syscall the running gateway may make is listed below, grouped
// by the component that makes it; anything else kills the process (SECCOMP_RET_KILL_PROCESS).
//
// What is *not* here, on purpose: execve/fork/clone (nothing is started after setup; the
// `run` child exists before the filter), open of devices, mount, ptrace, bpf, setuid & co.
// (privileges were dropped before), socket families other than those the relays use.
//
// The list was checked with `strace -f -ff -qq -o` attached to moat during
// tests/integration/hardening_test.sh (the calls after the seccomp() line), which drives every
// path below under the filter, and by the whole integration suite passing with the filter
// on; the drain's and failure paths' calls are allowed generously. Names an architecture
// lacks (e.g. `open` on arm64) are skipped.
#include <linux/sockios.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <span>

#include "base/log.h"
#include "harden/harden.h"

namespace moat::harden {
namespace {

/// One group of the allow-list: who needs these calls, and the calls.
struct Group {
  const char* who;
  std::span<const char* const> calls;
};

// --- the allow-list, by component ---------------------------------------------------------

// event/: the epoll Loop, its one timerfd (TimerQueue), Loop::post()'s eventfd, the clock.
constexpr const char* kEventLoop[] = {
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "epoll_create1", "eventfd2",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "poll", "ppoll",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
};

// Every component: fds are read, written and closed; the allocator maps memory (glibc's
// malloc: brk/mmap, mremap for realloc of big blocks, madvise/munmap when trimming;
// mprotect for arenas' guard pages).
constexpr const char* kFdsAndMemory[] = {
    "read", "write", "readv", "writev", "close", "fcntl", "dup", "dup3",
    "brk", "munmap", "mremap", "madvise",  // mmap and mprotect: only without PROT_EXEC, below
    "futex", "getrandom", "restart_syscall", "sched_yield", "getpid", "gettid", "getuid", "geteuid",
    "getgid", "getegid", "getrlimit", "prlimit64", "uname",
};

// transport/ (TAP, qemu stream, unixgram) and flows/ (TCP engine, UDP and ICMP relays over
// host sockets; ping sockets are SOCK_DGRAM/IPPROTO_ICMP), dns/ (forwarder over UDP and
// TCP, the guest TCP/53 server's loopback listeners), ports/ (published listeners accept).
// control/server.cc (the control socket, R-CTL-1: accept4, getsockopt SO_PEERCRED,
// recvfrom/sendto on AF_UNIX) and obs/metrics_http.cc (--metrics: accept4, recvfrom, sendto,
// shutdown on TCP) need nothing beyond this group; both sockets are bound before the filter.
constexpr const char* kSockets[] = {
    // socket: only AF_INET, AF_INET6 and AF_UNIX, below
    "connect", "bind", "listen", "accept", "accept4", "shutdown",
    "getsockopt", "setsockopt", "getsockname", "getpeername",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
    "splice", "pipe2", "socketpair",
};

// obs/ (audit file: SIGHUP reopens it by path), app/control.cc (policy.reload and SIGHUP
// re-read the --config file: openat, fstat, read), transport/ (pcap), app/ (pid and ready files,
// removed or replaced at exit; a serve socket file is unlinked at stop), base/ (resolv.conf,
// bounded file reads), ns/ (attach checks every second that its namespace path still
// exists: stat; `run`'s Sandbox removes its R-TLS-10 CA bundle files and their directory at
// exit with unlinkat, AT_REMOVEDIR for the directory).
constexpr const char* kFiles[] = {
    "open", "openat", "creat", "fstat", "newfstatat", "stat", "lstat", "statx", "lseek",
    "pread64", "pwrite64", "fsync", "fdatasync", "ftruncate", "unlink", "unlinkat", "rename", "renameat",
    "renameat2", "readlink", "readlinkat", "access", "faccessat", "faccessat2", "getdents64", "umask",
};

// app/: signals arrive on a signalfd (SIGTERM, SIGHUP, SIGUSR1, SIGCHLD...); `run` forwards
// SIGTERM/SIGHUP to its child's process group, reaps it (pidfd, wait4/waitid) and kills it on
// failure; abort() raises SIGABRT on a fatal check (tgkill) so a crash stays a crash.
constexpr const char* kSignalsAndChild[] = {
    "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "signalfd4", "sigaltstack",
    "rt_sigtimedwait", "kill", "tgkill", "tkill", "pidfd_open", "pidfd_send_signal", "wait4", "waitid",
};

// Exit paths: the drain after a `run` child exits and SIGTERM's clean stop close and shut
// down everything (see kFdsAndMemory, kSockets; waiting uses the loop, poll or nanosleep)
// and then exit.
constexpr const char* kExit[] = {"exit", "exit_group"};

// ioctl is allowed only for these requests: FIONREAD (flows/host_socket_peer: bytes queued
// on a host socket), SIOCOUTQ (unsent bytes), TCGETS (isatty() of stdio by the C library).
constexpr unsigned long kIoctls[] = {FIONREAD, SIOCOUTQ, TCGETS};

#if defined(MOAT_SANITIZER_RUNTIME)
// Sanitizer builds only (MOAT_SANITIZE, `make asan`): at exit LeakSanitizer stops the world
// from a cloned tracer thread (clone, prctl PR_SET_PTRACER/PR_SET_DUMPABLE, ptrace, wait4,
// getppid) and reads /proc/self (getdents); an error report forks llvm-symbolizer. Without these the
// sanitized gateway would die by SIGSYS at its leak check instead of reporting. A release
// build never contains them.
constexpr const char* kSanitizerRuntime[] = {
    "clone", "clone3", "fork", "vfork", "execve", "prctl", "ptrace", "getppid", "wait4", "waitid",
    "process_vm_readv", "pipe", "dup2", "sched_getaffinity", "mincore", "getdents", "getdents64", "readlink",
    "setresuid",  // privileges.cc: run's effective uid back to 0 for the leak check, at exit
};
#endif

constexpr Group kGroups[] = {
    {"event loop", kEventLoop},       {"fds and memory", kFdsAndMemory}, {"sockets", kSockets},
    {"files", kFiles},                {"signals and child", kSignalsAndChild}, {"exit", kExit},
#if defined(MOAT_SANITIZER_RUNTIME)
    {"sanitizer runtime", kSanitizerRuntime},
#endif
};

struct CtxDeleter {
  void operator()(void* ctx) const noexcept { seccomp_release(static_cast<scmp_filter_ctx>(ctx)); }
};

}  // namespace

Result<void, std::string> install_seccomp(SeccompMode mode) {
  if (mode == SeccompMode::off) {
    MOAT_LOG(warn, "hardening.seccomp = off: no seccomp filter; every syscall is allowed (debugging only)");
    return {};
  }
  const uint32_t deny = mode == SeccompMode::on ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_LOG;
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(deny));
  if (!ctx) return unexpected(std::string("seccomp: cannot create the filter"));
  // lock_down() set no_new_privs itself; libseccomp must not need CAP_SYS_ADMIN.
  (void)seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 1);
  for (const Group& g : kGroups) {
    for (const char* name : g.calls) {
      const int nr = seccomp_syscall_resolve_name(name);
      if (nr == __NR_SCMP_ERROR) continue;  // this architecture has no such call
      if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0); rc != 0)
        return unexpected(std::string("seccomp: cannot allow ") + name + " (" + g.who + "): " + std::strerror(-rc));
    }
  }
  // Memory is never made executable after setup (W^X): the allocator's mmap and mprotect
  // only with PROT_EXEC clear.
  for (int nr : {SCMP_SYS(mmap), SCMP_SYS(mprotect)}) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        rc != 0)
      return unexpected(std::string("seccomp: cannot allow mmap/mprotect: ") + std::strerror(-rc));
  }
  // Host sockets of the relays and DNS (IPv4, IPv6; ping sockets are AF_INET/AF_INET6
  // SOCK_DGRAM); AF_UNIX for a serve link. Netlink, packet and raw families were for setup.
  for (scmp_datum_t family : {scmp_datum_t(AF_INET), scmp_datum_t(AF_INET6), scmp_datum_t(AF_UNIX)}) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, family));
        rc != 0)
      return unexpected(std::string("seccomp: cannot allow socket: ") + std::strerror(-rc));
  }
  for (unsigned long req : kIoctls) {
    if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, req)); rc != 0)
      return unexpected(std::string("seccomp: cannot allow ioctl: ") + std::strerror(-rc));
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0)
    return unexpected(std::string("seccomp: cannot load the filter: ") + std::strerror(-rc));
  if (mode == SeccompMode::log)
    MOAT_LOG(warn, "hardening.seccomp = log: syscalls outside the allow-list are logged by the kernel, not refused");
  return {};
}

}  // namespace moat::harden
