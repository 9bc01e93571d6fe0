// R-HARD-4 and R-SEC-2: the privilege half of lock_down(). No libcap: the few calls it needs
// (capset, PR_CAPBSET_DROP, PR_CAP_AMBIENT) are plain syscalls.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "base/file.h"
#include "base/log.h"
#include "harden/harden.h"

namespace moat::harden {
namespace {

std::string sys_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

/// A decimal id, or nullopt when `s` is not all digits (then it is a name).
std::optional<uint32_t> numeric_id(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

/// getpwnam_r/getgrnam_r buffers: 64 KiB covers any sane entry (a group with many members is
/// the big one); entries beyond it are reported, not truncated.
constexpr size_t kNssBuffer = 64 * 1024;

}  // namespace

Result<RunAs, std::string> resolve_runas(std::string_view spec) {
  const size_t colon = spec.find(':');
  const std::string_view user = spec.substr(0, colon);
  const std::string_view group = colon == std::string_view::npos ? std::string_view() : spec.substr(colon + 1);
  if (user.empty()) return unexpected(std::string("expected user[:group], got \"") + std::string(spec) + "\"");
  if (colon != std::string_view::npos && group.empty())
    return unexpected(std::string("\"") + std::string(spec) + "\": the group after ':' is empty");

  RunAs r;
  r.spec = std::string(spec);
  std::vector<char> buf(kNssBuffer);
  passwd pw{};
  passwd* found = nullptr;
  const std::string user_s(user);
  if (auto id = numeric_id(user)) {
    r.uid = *id;
    // A numeric uid needs no passwd entry; its group is then the same number unless given.
    if (::getpwuid_r(*id, &pw, buf.data(), buf.size(), &found) == 0 && found) r.gid = pw.pw_gid;
    else r.gid = *id;
  } else {
    int e = ::getpwnam_r(user_s.c_str(), &pw, buf.data(), buf.size(), &found);
    if (e != 0 || !found)
      return unexpected("no such user \"" + user_s + "\"" + (e != 0 ? std::string(" (") + std::strerror(e) + ")" : ""));
    r.uid = pw.pw_uid;
    r.gid = pw.pw_gid;
  }
  if (!group.empty()) {
    if (auto id = numeric_id(group)) {
      r.gid = *id;
    } else {
      struct group gr {};
      struct group* gfound = nullptr;
      const std::string group_s(group);
      int e = ::getgrnam_r(group_s.c_str(), &gr, buf.data(), buf.size(), &gfound);
      if (e != 0 || !gfound)
        return unexpected("no such group \"" + group_s + "\"" + (e != 0 ? std::string(" (") + std::strerror(e) + ")" : ""));
      r.gid = gr.gr_gid;
    }
  }
  return r;
}

bool is_real_root() {
  if (::getuid() != 0) return false;
  // In the initial user namespace uid_map is the identity over the whole range; in any
  // other namespace "root" is some mapped uid, and moat only drops its capabilities.
  auto map = read_bounded_file("/proc/self/uid_map", 4096);
  if (!map) return true;  // no /proc: assume the worst case, and switch
  unsigned long inside = 1, outside = 1, count = 0;
  if (std::sscanf(map->c_str(), "%lu %lu %lu", &inside, &outside, &count) != 3) return true;
  return inside == 0 && outside == 0 && count == 4294967295UL;
}

namespace {

/// Sets every capability set of this (the only) thread to empty. The bounding set needs
/// CAP_SETPCAP, so a caller drops it first, while that is still held.
Result<void, std::string> clear_capability_sets() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, _LINUX_CAPABILITY_U32S_3> data{};
  if (::syscall(SYS_capset, &hdr, data.data()) != 0) return unexpected(sys_text("capset"));
  // Ambient capabilities (Linux 4.3+); EINVAL on older kernels, where there are none.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return unexpected(sys_text("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
  return {};
}

/// Drops the whole bounding set. Without CAP_SETPCAP (a non-root moat) this is impossible
/// and also unnecessary: nothing is ever exec'd, and no_new_privs forbids gaining any
/// capability through exec. Returns whether the set is now empty.
bool drop_bounding_set() {
  bool all = true;
  for (int cap = 0; cap < 64; ++cap) {
    if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) break;  // EINVAL: past CAP_LAST_CAP
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) all = false;
  }
  return all;
}

void hand_over(const std::vector<std::string>& paths, uid_t uid) {
  for (const auto& p : paths) {
    if (p.empty() || p == "-") continue;
    // Owner only (gid -1): a socket's group access stays what --socket-mode gave it. Never
    // through a symlink: moat hands over its own files, not what a link points at.
    if (::fchownat(AT_FDCWD, p.c_str(), uid, gid_t(-1), AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT)
      MOAT_LOG(warn, "%s: cannot hand the file over to the runas user (%s); it may not be reopened or removed later",
               p.c_str(), std::strerror(errno));
  }
}

}  // namespace

Result<void, std::string> lock_down(const LockDownPlan& plan) {
  // R-HARD-4 / R-SEC-2, in every mode: no core file, no ptrace or /proc/PID/mem by processes
  // of the same uid (a `run` child included).
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) return unexpected(sys_text("setrlimit(RLIMIT_CORE)"));
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return unexpected(sys_text("prctl(PR_SET_DUMPABLE)"));

  if (plan.runas) {
    hand_over(plan.handover, plan.runas->uid);
    // As root, also make uid 0 itself powerless should moat ever regain it (exec is
    // forbidden anyway): no capabilities from being root, no ambient raise. Best effort.
    (void)::prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
                                         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
                  0, 0, 0);
  }
  const bool bounding_empty = drop_bounding_set();

  if (plan.runas) {
    const RunAs& r = *plan.runas;
    const gid_t g = r.gid;
    if (::setgroups(1, &g) != 0) return unexpected(sys_text("setgroups"));
    if (::setresgid(g, g, g) != 0) return unexpected(sys_text("setresgid"));
    // `run`: the child runs as root (real root without a user namespace, or mapped root in
    // one, i.e. uid 0 outside). kill(2) lets a sender whose real or effective uid equals the
    // target's real or saved uid signal it, and the check is made at send time (also for a
    // pidfd). So run keeps real and saved uid 0 to forward SIGTERM/SIGHUP and kill the
    // child's group, and takes runas only as its effective (hence filesystem) uid. The
    // capability sets are emptied below and SECBIT_NOROOT is set, so uid 0 grants nothing,
    // and setresuid is outside the seccomp filter.
    const uid_t real = plan.front == Front::run ? 0 : r.uid;
    if (::setresuid(real, r.uid, real) != 0) return unexpected(sys_text("setresuid"));
#if defined(MOAT_SANITIZER_RUNTIME)
    // Sanitizer builds only: LeakSanitizer's exit check ptraces this process from a cloned
    // task with the same credentials, which the kernel refuses while real (0) and effective
    // (runas) uids differ. Just before it (atexit handlers run in reverse order, so this one
    // runs before the check the runtime registered at start-up) the effective uid goes back
    // to the saved 0, with no capabilities. seccomp.cc allows setresuid in these builds only.
    if (plan.front == Front::run && r.uid != 0)
      std::atexit([] { (void)::setresuid(uid_t(-1), 0, uid_t(-1)); });
#endif
    // Paranoia (setpriv does the same): attach and serve must not get root back.
    if (plan.front != Front::run && r.uid != 0 && ::setuid(0) == 0)
      return unexpected("setresuid: uid 0 could be regained after switching to " + r.spec);
  }
  if (auto c = clear_capability_sets(); !c) return c;
  // A change of the effective uid resets dumpable to fs.suid_dumpable: set it again.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return unexpected(sys_text("prctl(PR_SET_DUMPABLE)"));
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return unexpected(sys_text("prctl(PR_SET_NO_NEW_PRIVS)"));
  if (!bounding_empty)
    MOAT_LOG(debug, "the capability bounding set is kept (no CAP_SETPCAP); no_new_privs makes it unusable");
  if (plan.landlock)
    if (auto r = apply_landlock(*plan.landlock); !r) return unexpected("landlock: " + r.error());
  return install_seccomp(plan.seccomp);
}

}  // namespace moat::harden
