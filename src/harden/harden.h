#pragma once
// Process hardening of the CLI front ends (SPEC R-HARD-3, R-HARD-4, R-SEC-2): once a gateway is
// set up, moat gives up what it no longer needs — its uid (→ hardening.runas), every
// capability, the right to gain privileges, every syscall the data path does not make — and
// can no longer be ptraced or dumped. Library mode (the C ABI) never calls this (R-ABI-1).
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace moat::harden {

/// hardening.seccomp: `on` kills the process on a syscall outside the allow-list, `log`
/// allows and logs it (the kernel's audit log / dmesg), `off` installs no filter.
enum class SeccompMode : uint8_t { on, log, off };

/// The identity hardening.runas names, resolved before anything is opened (NSS may load
/// libraries and read files, which the filter would forbid later).
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string spec;  ///< as written, for messages
};

/// Resolves `user[:group]` (names or numeric ids; without a group, the user's primary group).
/// The error is the text after "moat: error: <where>: ".
Result<RunAs, std::string> resolve_runas(std::string_view spec);

/// True when moat runs as real root (uid 0) in the initial user namespace: the only case in
/// which it switches to hardening.runas (R-HARD-4). Root inside a container's user
/// namespace only drops its capabilities.
bool is_real_root();

/// Which front end is locking down. The filter is the same; `run` keeps a real and saved
/// uid of 0 (see KeepSignalRights) so it can still signal a root child.
enum class Front : uint8_t { run, attach, serve };

/// A path the gateway still reaches after lock_down() (R-HARD-7): read (files, or everything
/// beneath a directory), or — `write` — also create, write, truncate and remove files and
/// sockets beneath a directory (an audit file reopened or rotated, the pid file removed).
struct LandlockRule {
  std::string path;
  bool write = false;
};

/// hardening.landlock: the paths a front end keeps; everything else of the filesystem is
/// denied (open descriptors are not affected).
struct LandlockPlan {
  std::vector<LandlockRule> rules;
};

/// What lock_down() does.
struct LockDownPlan {
  Front front = Front::serve;
  SeccompMode seccomp = SeccompMode::on;
  /// Switch to this identity (set only when is_real_root()).
  std::optional<RunAs> runas;
  /// Files moat keeps using by path after the switch (the audit file, reopened on SIGHUP; a
  /// serve socket and the pid file, removed at exit): their owner becomes runas' uid (the
  /// group is kept, so a socket's group access stays as --socket-mode set it).
  std::vector<std::string> handover;
  /// Restrict the filesystem with Landlock (unset: hardening.landlock = false).
  std::optional<LandlockPlan> landlock;
};

/// Applies the plan, in this order: non-dumpable and RLIMIT_CORE 0 (always) → hand the files
/// over → drop the bounding set (while CAP_SETPCAP is held) → setgroups/setresgid/setresuid →
/// clear the effective, permitted, inheritable and ambient sets → PR_SET_NO_NEW_PRIVS →
/// Landlock → the seccomp filter. Logs one warning for seccomp `log` or `off`. The error is one line for
/// "moat: error: "; on error the caller must not serve (fail closed).
Result<void, std::string> lock_down(const LockDownPlan& plan);

/// The kernel's Landlock ABI version, 0 without Landlock.
int landlock_abi();
/// Restricts this thread (and what it forks later) to `plan` (landlock.cc). Needs
/// no_new_privs. False when the kernel has no Landlock (logged once, not an error).
Result<bool, std::string> apply_landlock(const LandlockPlan& plan);

/// Installs the seccomp allow-list (seccomp.cc). Needs no_new_privs (or CAP_SYS_ADMIN).
Result<void, std::string> install_seccomp(SeccompMode mode);

}  // namespace moat::harden
