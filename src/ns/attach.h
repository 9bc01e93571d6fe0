#pragma once
// `moat attach`: create and configure the TAP inside an existing network namespace, while
// moat itself stays in the host namespaces (R-CLI-3).
#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "ns/setup.h"

namespace moat::ns {

/// Forks a short-lived helper that enters the target namespaces, runs setup_tap_here and
/// passes the TAP fd back over a socketpair (SCM_RIGHTS); then reaps it. Bounded: 10 s.
///
/// Target: `netns_path` (--netns) when non-empty, else /proc/<pid>/ns/net (--pid).
/// User namespace: `userns_path` (--userns) when non-empty; otherwise, when moat is not
/// root, the target's (--pid: /proc/<pid>/ns/user; --netns: the owner of the netns), unless
/// that is moat's own.
///
/// Errors are one line prefixed with the flag, ready for "moat: error: " + message, e.g.
/// "--netns /run/netns/x: cannot enter: Operation not permitted (needs CAP_SYS_ADMIN over
/// its user namespace)" or "--pid 42: moat0: an interface of that name already exists".
///
/// Lifetime: the TAP fd holds a reference on the namespace, so the namespace (and the TAP)
/// stay alive after its last process exits or `ip netns del` unmounts it; reading the TAP
/// does NOT fail then. Watch the target instead: open_pidfd() for --pid, netns_id() +
/// netns_path_alive() for --netns.
Result<UniqueFd, std::string> attach_tap(const std::string& netns_path, pid_t pid, const TapSetup& setup,
                                         const std::string& userns_path = {});

/// pidfd_open(pid): readable once the process exits. For watching the --pid target.
Result<UniqueFd> open_pidfd(pid_t pid);

/// Identity of a namespace file (nsfs device + inode).
struct NetnsId {
  dev_t dev = 0;
  ino_t ino = 0;
  friend bool operator==(const NetnsId&, const NetnsId&) = default;
};
Result<NetnsId> netns_id(const std::string& path);
/// True while `path` still names namespace `id`; false once it was unmounted or replaced
/// (`ip netns del`). Cheap (one stat); poll it from a timer, e.g. every second.
bool netns_path_alive(const std::string& path, const NetnsId& id);

}  // namespace moat::ns
