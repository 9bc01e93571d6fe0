#pragma once
// `moat run`: the child process in its own namespaces (R-CLI-2, R-ADDR-6, R-ADDR-7).
//
// Lifecycle of a Sandbox, state by state:
//   start()    forks the child. The child unshares (user,) network (and mount) namespaces,
//              bind-mounts the generated resolv.conf/hosts (and, with TLS interception, the
//              merged CA bundle over the system bundle), creates and configures the TAP,
//              sets ping_group_range and sends the TAP fd back. start() returns once the fd
//              arrived (or with the child's one-line error, the child reaped, nothing left).
//   held       the child is blocked reading the control socket; CMD has not run yet. If
//              moat closes the socket or dies, the child exits 125 without running CMD.
//   release()  one byte on the socket; the child hands it the terminal (when moat had it),
//              resets signal dispositions and execs CMD (exec failure: 126/127).
//   running    watch pidfd() (readable when the child exits), then try_wait().
//   reaped     try_wait() returned the status; kill_child() is a no-op from here on.
//              The network namespace is still held (netns fd, taken at start()), so the
//              guest kernel can finish sending what the command's sockets queued while
//              moat drains (R-CLI-2); it goes away with the Sandbox.
// Destroying a Sandbox whose child was not reaped SIGKILLs the child's process group and
// reaps it (fail closed).
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/addr.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "ns/setup.h"

namespace moat::ns {

struct SandboxSpec {
  std::vector<std::string> argv;                 ///< CMD ARGS...; argv[0] is looked up in PATH
  std::optional<std::vector<std::string>> env;   ///< "K=V" list; nullopt = inherit moat's environ
  TapSetup tap;
  /// run.dns_config: private mount ns with the generated resolv.conf and hosts (R-ADDR-7).
  bool dns_config = true;
  std::vector<IpAddr> nameservers;               ///< DNS address of each active family
  std::string host_alias = "host.moat.internal";
  std::vector<IpAddr> host_alias_addrs;          ///< gateway address of each active family
  enum class Userns { automatic, always, never };
  Userns userns = Userns::automatic;             ///< run.userns; automatic = when euid != 0
  bool map_user_root = true;                     ///< run.map_user: root (true) or self
  std::chrono::milliseconds setup_timeout{10'000};  ///< bound on the child's setup
  /// R-TLS-10 guest trust: moat's interception CA as PEM; empty = interception is off and
  /// nothing below happens.
  std::string ca_pem;
  /// run.ca_trust: `bind_env` exports the CA variables and bind-mounts the merged bundle over
  /// the first existing system bundle (private mount namespace); `env` only exports; `none`
  /// does neither.
  enum class CaTrust { bind_env, env, none };
  CaTrust ca_trust = CaTrust::bind_env;
};

/// The system bundles R-TLS-10 binds over, in order (Debian/Ubuntu/Alpine, Fedora/RHEL, BSD-style).
inline constexpr const char* kSystemCaBundles[] = {"/etc/ssl/certs/ca-certificates.crt",
                                                   "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"};
/// The environment variables R-TLS-10 exports: the first four name the merged bundle,
/// NODE_EXTRA_CA_CERTS the moat CA alone (Node adds it to its own roots).
inline constexpr const char* kCaBundleEnvVars[] = {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                                                   "GIT_SSL_CAINFO"};
inline constexpr const char* kCaOnlyEnvVar = "NODE_EXTRA_CA_CERTS";

class Sandbox {
 public:
  /// Forks and sets up the child; returns once the TAP fd arrived. Errors are one line,
  /// ready for "moat: error: " + message (e.g. "run: moat0: set MTU 70000: Invalid
  /// argument"); exit 125 then. Call from the main thread: the child has
  /// PR_SET_PDEATHSIG=SIGKILL, which fires when the *thread* that forked it exits.
  static Result<Sandbox, std::string> start(const SandboxSpec& spec);

  Sandbox(Sandbox&& o) noexcept;
  Sandbox& operator=(Sandbox&&) = delete;
  Sandbox(const Sandbox&) = delete;
  ~Sandbox();

  /// The TAP (O_NONBLOCK). Only once; later calls return an invalid fd.
  UniqueFd take_tap_fd() noexcept { return std::move(tap_); }
  /// Lets the child exec CMD. Call when the gateway is ready (R-CLI-5).
  Status release();
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// pidfd of the child (readable when it exits), or -1 when pidfd_open is unavailable,
  /// in which case watch SIGCHLD and call try_wait().
  [[nodiscard]] int pidfd() const noexcept { return pidfd_.get(); }
  /// Reaps without blocking. The status to exit with: the exit code, or 128 + signal.
  std::optional<int> try_wait();
  /// try_wait() until `timeout` passes (tests, shutdown).
  std::optional<int> wait_for(std::chrono::milliseconds timeout);
  /// Whether moat holds the sandbox's network namespace open (an fd the child sent with
  /// the TAP): it then outlives the command for the drain.
  [[nodiscard]] bool holds_netns() const noexcept { return bool(netns_); }
  /// Sends sig to the child's process group (the child is its leader); no-op once reaped.
  void kill_child(int sig) noexcept;
  /// R-TLS-10: the directory holding the merged bundle and the CA the child's environment
  /// names, then those two files (empty without guest trust). They must stay for the
  /// command's lifetime; a small process forked by start() removes them when the Sandbox
  /// is destroyed or moat exits (shortly after: asynchronously), with moat's identity from
  /// before the privilege drop, Landlock and seccomp.
  [[nodiscard]] std::vector<std::string> ca_trust_paths() const;

 private:
  Sandbox() = default;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd control_;  ///< our end of the socketpair; the ready byte goes here
  UniqueFd tap_;
  UniqueFd netns_;  ///< the child's network namespace, held until the Sandbox is destroyed
  std::optional<int> status_;
  std::string ca_dir_;                  ///< R-TLS-10 files' directory, removed on destruction
  std::vector<std::string> ca_files_;   ///< in ca_dir_: the merged bundle, the CA
  UniqueFd ca_janitor_;                 ///< closing it makes the janitor remove ca_dir_
};

/// R-TLS-10: the merged bundle: the system bundle's text (may be empty), a newline when it
/// lacks one, a comment line, then moat's CA.
std::string make_ca_bundle(const std::string& system_bundle, const std::string& ca_pem);
/// R-TLS-10: `env` ("K=V" entries) without any of the CA variables, then each CA variable
/// set: kCaBundleEnvVars to `bundle_path`, kCaOnlyEnvVar to `ca_path`.
std::vector<std::string> with_ca_env(const std::vector<std::string>& env, const std::string& bundle_path,
                                     const std::string& ca_path);

/// The generated files (exposed for tests).
std::string make_resolv_conf(const std::vector<IpAddr>& nameservers);
std::string make_hosts(const std::string& host_hosts, const std::string& alias, const std::vector<IpAddr>& addrs);

}  // namespace moat::ns
