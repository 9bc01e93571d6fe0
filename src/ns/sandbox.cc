#include "ns/sandbox.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "base/file.h"
#include "ns/fd_channel.h"
#include "ns/tap.h"

// glibc 2.36's <sys/mount.h> has these; older headers do not (and <linux/mount.h> clashes).
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

extern char** environ;

namespace moat::ns {

namespace {

constexpr int kExitSetupFailed = 125;
constexpr int kExitCannotExecute = 126;
constexpr int kExitNotFound = 127;
constexpr char kReadyByte = 'R';
// The host's /etc/hosts is copied into the sandbox's; a few KiB in practice, and an
// unreadable or absurd one falls back to a minimal file rather than failing the run.
constexpr size_t kMaxHostsFile = 1 << 20;
// The system CA bundle copied into the merged one (R-TLS-10): Debian's is ~220 KiB;
// 16 MiB is far beyond any real bundle and still bounds a mistaken huge file.
constexpr size_t kMaxSystemBundle = size_t{16} << 20;

std::string errno_text(int e) { return std::strerror(e); }

Status write_new_file(const std::string& path, const std::string& content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return sys_error();
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error();
    off += size_t(n);
  }
  return {};
}

/// moat's private directory for the generated files. Removed on destruction, which in
/// start() is as soon as the child has bind-mounted them: a bind mount pins the inode, so
/// nothing of moat's stays on disk even if moat is SIGKILLed later.
class TempDir {
 public:
  TempDir() = default;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    for (const auto& f : files_) ::unlink(f.c_str());
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  Status create(const char* prefix = "moat-run") {
    std::string base = "/tmp";
    if (const char* xdg = ::getenv("XDG_RUNTIME_DIR"); xdg && xdg[0] == '/' && ::access(xdg, W_OK | X_OK) == 0)
      base = xdg;
    std::string tmpl = base + "/" + prefix + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return sys_error();  // mode 0700
    path_ = tmpl;
    return {};
  }
  Result<std::string> add(const char* name, const std::string& content) {
    std::string p = path_ + "/" + name;
    if (auto r = write_new_file(p, content); !r) {
      ::unlink(p.c_str());
      return unexpected(r.error());
    }
    files_.push_back(p);
    return p;
  }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Gives up ownership: the caller removes the directory and files from now on.
  void release(std::string* dir, std::vector<std::string>* files) {
    *dir = std::exchange(path_, {});
    *files = std::exchange(files_, {});
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

/// Everything the child needs, prepared before fork() so the child mostly makes syscalls.
struct ChildPlan {
  const SandboxSpec* spec;
  std::vector<char*> argv;
  std::vector<char*> envp;  // empty = inherit environ
  std::vector<std::string> env_storage;  // what envp points into when moat built the environment
  std::string resolv_src, hosts_src;
  std::string bundle_src, bundle_target;  // R-TLS-10 bind+env: merged bundle over the system one
  bool private_mounts;                    // a mount namespace: dns_config or the bundle bind
  bool use_userns;
  uid_t outer_uid;
  gid_t outer_gid;
  pid_t parent;
  bool hand_over_tty;  // moat's process group owns the terminal: give it to the child
};

std::string userns_failure_cause(int e) {
  auto is = [](const char* path, const char* value) {
    auto v = read_sysctl(path);
    return v && *v == value;
  };
  if (is("/proc/sys/kernel/unprivileged_userns_clone", "0"))
    return "kernel.unprivileged_userns_clone is 0; set it to 1 or run as root";
  if (is("/proc/sys/user/max_user_namespaces", "0")) return "user.max_user_namespaces is 0; raise it or run as root";
  if (is("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"))
    return "AppArmor restricts unprivileged user namespaces; install the moat AppArmor profile or run as root";
  return errno_text(e);
}

std::optional<std::string> enter_userns(const ChildPlan& p) {
  // A process that changed credentials (e.g. moat dropped privileges) is not dumpable, so
  // its /proc/self files belong to the initial root and it could not write its own maps.
  // CMD is exec'd from here anyway, and exec resets this as usual.
  (void)::prctl(PR_SET_DUMPABLE, 1);
  if (::unshare(CLONE_NEWUSER) < 0) return "cannot create a user namespace: " + userns_failure_cause(errno);
  // A single-id self-mapping needs no privilege; setgroups must be denied before gid_map.
  uid_t inner_uid = p.spec->map_user_root ? 0 : p.outer_uid;
  gid_t inner_gid = p.spec->map_user_root ? 0 : p.outer_gid;
  if (auto r = write_sysctl("/proc/self/setgroups", "deny"); !r && r.error().value != ENOENT)
    return "user namespace: write /proc/self/setgroups: " + errno_text(r.error().value);
  std::string uid_map = std::to_string(inner_uid) + " " + std::to_string(p.outer_uid) + " 1";
  std::string gid_map = std::to_string(inner_gid) + " " + std::to_string(p.outer_gid) + " 1";
  if (auto r = write_sysctl("/proc/self/uid_map", uid_map); !r)
    return "user namespace: write uid_map: " + errno_text(r.error().value);
  if (auto r = write_sysctl("/proc/self/gid_map", gid_map); !r)
    return "user namespace: write gid_map: " + errno_text(r.error().value);
  return std::nullopt;
}

/// Bind-mounts src over the file `target` resolves to. A dangling symlink (e.g. to a
/// resolver that is not running) has no file to mount on: the mount goes over the symlink
/// itself, which move_mount(2) allows because it does not follow a trailing symlink.
std::optional<std::string> bind_over(const std::string& src, const char* target) {
  char real[PATH_MAX];
  if (::realpath(target, real)) {
    struct stat st{};
    if (::stat(real, &st) == 0 && !S_ISREG(st.st_mode))
      return std::string(target) + ": " + real + " is not a regular file";
    if (::mount(src.c_str(), real, nullptr, MS_BIND, nullptr) < 0)
      return std::string(target) + ": bind-mount over " + real + ": " + errno_text(errno);
    // Best effort: locked flags (nosuid, nodev of the source mount) can make this EPERM.
    (void)::mount(nullptr, real, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr);
    return std::nullopt;
  }
  int e = errno;
  struct stat lst{};
  if (::lstat(target, &lst) == 0 && S_ISLNK(lst.st_mode)) {
    UniqueFd tree(int(::syscall(SYS_open_tree, AT_FDCWD, src.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
    if (!tree) return std::string(target) + ": open_tree " + src + ": " + errno_text(errno);
    if (::syscall(SYS_move_mount, tree.get(), "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
      return std::string(target) + ": mount over dangling symlink: " + errno_text(errno);
    return std::nullopt;
  }
  if (e == ENOENT) {
    // Nothing to mount on, and creating the file would change the host's filesystem.
    std::fprintf(stderr, "moat: warning: %s does not exist; the sandbox cannot use the generated file\n", target);
    return std::nullopt;
  }
  return std::string(target) + ": " + errno_text(e);
}

std::optional<std::string> child_setup(const ChildPlan& p, UniqueFd* tap_out) {
  const SandboxSpec& spec = *p.spec;
  if (p.use_userns) {
    if (auto e = enter_userns(p)) return e;
  }
  int flags = CLONE_NEWNET | (p.private_mounts ? CLONE_NEWNS : 0);
  if (::unshare(flags) < 0) {
    int e = errno;
    return std::string(p.private_mounts ? "cannot create network and mount namespaces: "
                                        : "cannot create a network namespace: ") +
           errno_text(e) + (e == EPERM && !p.use_userns ? "; run as root or allow user namespaces" : "");
  }
  if (p.private_mounts) {
    // Private propagation first, or the bind mounts below would show up on the host.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
      return "make mounts private: " + errno_text(errno);
  }
  if (spec.dns_config) {
    if (auto e = bind_over(p.resolv_src, "/etc/resolv.conf")) return e;
    if (auto e = bind_over(p.hosts_src, "/etc/hosts")) return e;
  }
  if (!p.bundle_target.empty()) {
    // R-TLS-10 bind+env: tools that read the system bundle by its path (OpenSSL's default
    // CAfile, curl, git, Python's ssl) trust moat without any variable.
    if (auto e = bind_over(p.bundle_src, p.bundle_target.c_str())) return e;
  }
  auto tap = setup_tap_here(spec.tap);
  if (!tap) return tap.error();
  // ping sockets (used by unprivileged ping) for every group. Inside a user namespace
  // only mapped gids are accepted, so fall back to the one mapped gid.
  const std::string pgr = "/proc/sys/net/ipv4/ping_group_range";
  if (auto r = write_sysctl(pgr, "0 2147483647"); !r) {
    gid_t g = (p.use_userns && !spec.map_user_root) ? p.outer_gid : 0;
    std::string one = std::to_string(g) + " " + std::to_string(g);
    if (r.error().value != EINVAL || !write_sysctl(pgr, one))
      return "set net.ipv4.ping_group_range: " + errno_text(r.error().value);
  }
  *tap_out = std::move(tap.value());
  return std::nullopt;
}

[[noreturn]] void child_main(const ChildPlan& p, int sock) {
  // Own process group, so moat can signal CMD and everything it starts (kill_child).
  ::setpgid(0, 0);
  // Fail closed: without moat there is no gateway, so the sandbox must not outlive it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != p.parent) ::_exit(kExitSetupFailed);

  UniqueFd tap;
  if (auto err = child_setup(p, &tap)) {
    detail::send_error(sock, "run: " + *err);
    ::_exit(kExitSetupFailed);
  }
  // The namespace itself, so moat can keep it alive after CMD exits (the drain, R-CLI-2):
  // the guest kernel's orphaned sockets must still be able to send their queued data and
  // FIN. Opened here, by the child, so moat needs neither /proc nor ptrace access to it;
  // without it (no /proc) moat still works, it just relies on the TAP's own reference.
  UniqueFd netns(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!detail::send_fd(sock, tap.get(), netns.get())) ::_exit(kExitSetupFailed);
  tap.reset();  // moat has its own reference now; ours must not keep the TAP alive
  netns.reset();

  char b = 0;
  ssize_t n;
  do {
    n = ::read(sock, &b, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || b != kReadyByte) ::_exit(kExitSetupFailed);  // moat gave up or died
  ::close(sock);

  sigset_t all;
  sigfillset(&all);
  if (p.hand_over_tty) {
    // We are a background process group now: tcsetpgrp would raise SIGTTOU.
    sigset_t ttou, old;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    ::sigprocmask(SIG_BLOCK, &ttou, &old);
    (void)::tcsetpgrp(STDIN_FILENO, ::getpid());
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
  }
  // Ignored signals stay ignored across exec; moat ignores SIGINT/SIGQUIT while the child
  // runs, CMD must not inherit that. Same for the signal mask.
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (p.envp.empty()) ::execvp(p.argv[0], p.argv.data());
  else ::execvpe(p.argv[0], p.argv.data(), p.envp.data());
  int e = errno;
  std::fprintf(stderr, "moat: error: run: cannot execute \"%s\": %s\n", p.argv[0], std::strerror(e));
  ::_exit(e == ENOENT || e == ENOTDIR ? kExitNotFound : kExitCannotExecute);
}

int decode_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kExitSetupFailed;
}

/// Takes the terminal back from the child's process group once it is gone, so moat's own
/// output after the child exits is not stopped by SIGTTOU.
void reclaim_tty(pid_t child_pgrp) noexcept {
  if (!::isatty(STDIN_FILENO) || ::tcgetpgrp(STDIN_FILENO) != child_pgrp) return;
  sigset_t ttou, old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  ::pthread_sigmask(SIG_BLOCK, &ttou, &old);
  (void)::tcsetpgrp(STDIN_FILENO, ::getpgrp());
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

std::string make_resolv_conf(const std::vector<IpAddr>& nameservers) {
  std::string s = "# Generated by moat: the gateway's DNS interceptor.\n";
  for (const auto& a : nameservers) s += "nameserver " + a.to_string() + "\n";
  s += "options edns0\n";
  return s;
}

std::string make_hosts(const std::string& host_hosts, const std::string& alias, const std::vector<IpAddr>& addrs) {
  std::string s = host_hosts;
  if (!s.empty() && s.back() != '\n') s += '\n';
  s += "# Added by moat\n";
  for (const auto& a : addrs) s += a.to_string() + "\t" + alias + "\n";
  return s;
}

namespace {

/// R-TLS-10: a detached process that removes the CA files once `Sandbox` lets go of the pipe
/// (destroyed, or moat exited, even by SIGKILL: the kernel closes the write end then). By
/// the time the Sandbox is destroyed moat runs as its runas user under Landlock and seccomp,
/// which may no longer remove files in /tmp or $XDG_RUNTIME_DIR; the janitor is forked before
/// all that and keeps moat's original identity. Double-forked (reparented to init, nothing
/// for moat to reap) and in its own session (terminal signals do not reach it). Returns the
/// pipe's write end (O_CLOEXEC), or an invalid fd when it could not be started.
UniqueFd spawn_ca_janitor(const std::string& dir, const std::vector<std::string>& files) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return UniqueFd();
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t mid = ::fork();
  if (mid < 0) return UniqueFd();
  if (mid == 0) {
    if (::fork() != 0) ::_exit(0);  // the grandchild is the janitor
    ::setsid();
    ::prctl(PR_SET_NAME, "moat-ca-cleanup");
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGQUIT, SIG_IGN);
    ::signal(SIGHUP, SIG_IGN);
    // Hold nothing of moat's: no TAP, socket or output may stay open because of us.
    int keep = rd.get();
    for (int fd = 0; fd < 65536; ++fd)
      if (fd != keep) (void)::close(fd);  // bounded; close_range is not in every libc
    char b;
    ssize_t n;
    do {
      n = ::read(keep, &b, 1);
    } while (n < 0 && errno == EINTR);
    for (const auto& f : files) ::unlink(f.c_str());
    ::rmdir(dir.c_str());
    ::_exit(0);
  }
  int st = 0;
  while (::waitpid(mid, &st, 0) < 0 && errno == EINTR) {
  }
  return wr;
}

}  // namespace

std::string make_ca_bundle(const std::string& system_bundle, const std::string& ca_pem) {
  std::string s = system_bundle;
  if (!s.empty() && s.back() != '\n') s += '\n';
  s += "# moat interception CA (R-TLS-10)\n";
  s += ca_pem;
  if (!s.empty() && s.back() != '\n') s += '\n';
  return s;
}

std::vector<std::string> with_ca_env(const std::vector<std::string>& env, const std::string& bundle_path,
                                     const std::string& ca_path) {
  auto is_ca_var = [](const std::string& e) {
    auto named = [&](const char* k) {
      size_t n = std::strlen(k);
      return e.size() > n && e.compare(0, n, k) == 0 && e[n] == '=';
    };
    for (const char* k : kCaBundleEnvVars)
      if (named(k)) return true;
    return named(kCaOnlyEnvVar);
  };
  std::vector<std::string> out;
  out.reserve(env.size() + 5);
  for (const auto& e : env)
    if (!is_ca_var(e)) out.push_back(e);
  for (const char* k : kCaBundleEnvVars) out.push_back(std::string(k) + "=" + bundle_path);
  out.push_back(std::string(kCaOnlyEnvVar) + "=" + ca_path);
  return out;
}

Result<Sandbox, std::string> Sandbox::start(const SandboxSpec& spec) {
  if (spec.argv.empty()) return unexpected(std::string("run: no command given"));

  ChildPlan plan{};
  plan.spec = &spec;
  plan.use_userns = spec.userns == SandboxSpec::Userns::always ||
                    (spec.userns == SandboxSpec::Userns::automatic && ::geteuid() != 0);
  plan.outer_uid = ::geteuid();
  plan.outer_gid = ::getegid();
  plan.parent = ::getpid();
  plan.hand_over_tty = ::isatty(STDIN_FILENO) && ::tcgetpgrp(STDIN_FILENO) == ::getpgrp();
  for (const auto& a : spec.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  TempDir ca_files;
  const bool ca_trust = !spec.ca_pem.empty() && spec.ca_trust != SandboxSpec::CaTrust::none;
  if (ca_trust) {
    // R-TLS-10. The files must outlive start(): the variables name them for as long as the
    // command runs, so this directory is kept (and removed with the Sandbox).
    if (auto r = ca_files.create("moat-ca"); !r)
      return unexpected("run: create temporary directory: " + errno_text(r.error().value));
    // Readable by whatever user the command becomes (they are public certificates).
    (void)::chmod(ca_files.path().c_str(), 0755);
    std::string system_path, system_text;
    for (const char* b : kSystemCaBundles) {
      if (::access(b, F_OK) != 0) continue;
      system_path = b;
      if (auto t = read_bounded_file(b, kMaxSystemBundle)) system_text = std::move(*t);
      else std::fprintf(stderr, "moat: warning: %s: %s; the sandbox's bundle holds only moat's CA\n", b,
                        t.error().message().c_str());
      break;
    }
    auto bundle = ca_files.add("ca-bundle.crt", make_ca_bundle(system_text, spec.ca_pem));
    if (!bundle) return unexpected("run: write " + ca_files.path() + "/ca-bundle.crt: " + errno_text(bundle.error().value));
    auto ca = ca_files.add("moat-ca.crt", spec.ca_pem);
    if (!ca) return unexpected("run: write " + ca_files.path() + "/moat-ca.crt: " + errno_text(ca.error().value));
    std::vector<std::string> base;
    if (spec.env) base = *spec.env;
    else
      for (char** e = environ; e && *e; ++e) base.emplace_back(*e);
    plan.env_storage = with_ca_env(base, *bundle, *ca);
    if (spec.ca_trust == SandboxSpec::CaTrust::bind_env && !system_path.empty()) {
      plan.bundle_src = *bundle;
      plan.bundle_target = system_path;
    }
  }
  plan.private_mounts = spec.dns_config || !plan.bundle_target.empty();
  if (!plan.env_storage.empty()) {
    for (const auto& e : plan.env_storage) plan.envp.push_back(const_cast<char*>(e.c_str()));
    plan.envp.push_back(nullptr);
  } else if (spec.env) {
    for (const auto& e : *spec.env) plan.envp.push_back(const_cast<char*>(e.c_str()));
    plan.envp.push_back(nullptr);
  }

  TempDir files;
  if (spec.dns_config) {
    if (auto r = files.create(); !r) return unexpected("run: create temporary directory: " + errno_text(r.error().value));
    auto resolv = files.add("resolv.conf", make_resolv_conf(spec.nameservers));
    if (!resolv) return unexpected("run: write " + files.path() + "/resolv.conf: " + errno_text(resolv.error().value));
    auto host_hosts = read_bounded_file("/etc/hosts", kMaxHostsFile);
    std::string base = host_hosts ? *host_hosts : "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    auto hosts = files.add("hosts", make_hosts(base, spec.host_alias, spec.host_alias_addrs));
    if (!hosts) return unexpected("run: write " + files.path() + "/hosts: " + errno_text(hosts.error().value));
    plan.resolv_src = *resolv;
    plan.hosts_src = *hosts;
  }

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return unexpected("run: socketpair: " + errno_text(errno));
  UniqueFd ours(sv[0]), theirs(sv[1]);

  pid_t child = ::fork();
  if (child < 0) return unexpected("run: fork: " + errno_text(errno));
  if (child == 0) {
    ours.reset();
    child_main(plan, theirs.get());
  }
  theirs.reset();
  // Also done by the child; doing it here too closes the race with an early kill_child().
  (void)::setpgid(child, child);

  Sandbox sb;
  sb.pid_ = child;
  if (int pfd = int(::syscall(SYS_pidfd_open, child, 0)); pfd >= 0) sb.pidfd_.reset(pfd);
  auto tap = detail::recv_fd(ours.get(), spec.setup_timeout, "run: sandbox setup", &sb.netns_);
  if (!tap) {
    // The child exits 125 right after reporting; a hung one is killed by reap_bounded.
    (void)detail::reap_bounded(child, std::chrono::milliseconds(2000));
    sb.pid_ = -1;
    return unexpected(tap.error());
  }
  sb.tap_ = std::move(tap.value());
  sb.control_ = std::move(ours);
  ca_files.release(&sb.ca_dir_, &sb.ca_files_);  // they live as long as the command
  if (!sb.ca_dir_.empty()) sb.ca_janitor_ = spawn_ca_janitor(sb.ca_dir_, sb.ca_files_);
  return sb;  // `files` is removed here; the child's bind mounts keep the content
}

Sandbox::Sandbox(Sandbox&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::move(o.pidfd_)),
      control_(std::move(o.control_)),
      tap_(std::move(o.tap_)),
      netns_(std::move(o.netns_)),
      status_(o.status_),
      ca_dir_(std::exchange(o.ca_dir_, {})),
      ca_files_(std::exchange(o.ca_files_, {})),
      ca_janitor_(std::move(o.ca_janitor_)) {}

Sandbox::~Sandbox() {
  if (pid_ > 0 && !status_) {
    kill_child(SIGKILL);
    if (auto st = detail::reap_bounded(pid_, std::chrono::milliseconds(2000))) status_ = decode_status(*st);
    reclaim_tty(pid_);
  }
  if (ca_janitor_) {
    ca_janitor_.reset();  // EOF: the janitor removes the CA files (spawn_ca_janitor)
  } else {
    // No janitor (it could not be started): best effort here. This runs at exit, under the
    // seccomp filter: unlinkat (AT_REMOVEDIR for the directory) is on its allow-list,
    // rmdir(2) is not (harden/seccomp.cc, kFiles); Landlock may still refuse it.
    for (const auto& f : ca_files_) ::unlinkat(AT_FDCWD, f.c_str(), 0);
    if (!ca_dir_.empty()) ::unlinkat(AT_FDCWD, ca_dir_.c_str(), AT_REMOVEDIR);
  }
}

std::vector<std::string> Sandbox::ca_trust_paths() const {
  std::vector<std::string> v;
  if (ca_dir_.empty()) return v;
  v.push_back(ca_dir_);
  v.insert(v.end(), ca_files_.begin(), ca_files_.end());
  return v;
}

Status Sandbox::release() {
  if (!control_) return unexpected(Errno{EBADF});
  char b = kReadyByte;
  ssize_t n;
  do {
    n = ::send(control_.get(), &b, 1, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sys_error();
  control_.reset();
  return {};
}

std::optional<int> Sandbox::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return std::nullopt;
  status_ = decode_status(status);
  reclaim_tty(pid_);
  return status_;
}

std::optional<int> Sandbox::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto s = try_wait()) return s;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    timespec ts{0, 5 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
}

void Sandbox::kill_child(int sig) noexcept {
  // After reaping, the pid (and pgid) may belong to someone else.
  if (pid_ <= 0 || status_) return;
  if (::kill(-pid_, sig) < 0) (void)::kill(pid_, sig);
}

}  // namespace moat::ns
