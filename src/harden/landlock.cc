// Landlock (SPEC R-HARD-7): once a gateway is set up, the filesystem it can still reach is
// the short list its front end names (harden.h LandlockPlan): the configuration and
// resolv.conf to read, the directories of the files it still writes, renames or removes.
// Everything opened before (the TAP, sockets, the pcap, the audit file) keeps working:
// Landlock checks access when a path is opened, never on an open descriptor.
//
// Raw syscalls (glibc has no wrappers); the ABI version decides which access rights exist:
// v1 the base set, v2 REFER, v3 TRUNCATE, v5 IOCTL_DEV. Network and scope restrictions
// (v4, v6) are not used: moat connects wherever the policy allows, and the policy is moat's.
#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/unique_fd.h"
#include "harden/harden.h"

namespace moat::harden {

namespace {

#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

constexpr uint64_t kRead = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
constexpr uint64_t kWrite = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG |
                            LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                            LANDLOCK_ACCESS_FS_TRUNCATE;
constexpr uint64_t kFileOnly =
    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
    LANDLOCK_ACCESS_FS_IOCTL_DEV | LANDLOCK_ACCESS_FS_EXECUTE;

/// Every filesystem right ABI `abi` knows: all of them are denied unless a rule grants them.
uint64_t handled_for(int abi) {
  uint64_t h = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;  // v1: EXECUTE .. MAKE_SYM
  if (abi >= 2) h |= LANDLOCK_ACCESS_FS_REFER;
  if (abi >= 3) h |= LANDLOCK_ACCESS_FS_TRUNCATE;
  if (abi >= 5) h |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
  return h;
}

std::string sys_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

int landlock_abi() {
  const long v = ::syscall(__NR_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  return v < 0 ? 0 : int(v);
}

Result<bool, std::string> apply_landlock(const LandlockPlan& plan) {
  const int abi = landlock_abi();
  if (abi == 0) {
    MOAT_LOG(info, "landlock: not available in this kernel (%s); filesystem access is not restricted",
             errno == ENOSYS ? "no syscall" : std::strerror(errno));
    return false;
  }
  const uint64_t handled = handled_for(abi);
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = handled;
  UniqueFd ruleset(int(::syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0)));
  if (!ruleset) return unexpected(sys_text("landlock_create_ruleset"));
  for (const LandlockRule& r : plan.rules) {
    UniqueFd fd(::open(r.path.c_str(), O_PATH | O_CLOEXEC));
    if (!fd) {
      // A path that is not there (yet) cannot be opened later either: nothing to allow.
      MOAT_LOG(debug, "landlock: %s: %s (not allowed)", r.path.c_str(), std::strerror(errno));
      continue;
    }
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) return unexpected(sys_text("fstat"));
    uint64_t access = (r.write ? (kRead | kWrite) : kRead) & handled;
    if (!S_ISDIR(st.st_mode)) access &= kFileOnly;  // rights on a file are the file's only
    if (access == 0) continue;
    landlock_path_beneath_attr pb{};
    pb.allowed_access = access;
    pb.parent_fd = fd.get();
    if (::syscall(__NR_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0)
      return unexpected(sys_text(("landlock_add_rule " + r.path).c_str()));
  }
  // Needs no_new_privs (lock_down sets it first) or CAP_SYS_ADMIN.
  if (::syscall(__NR_landlock_restrict_self, ruleset.get(), 0) != 0) return unexpected(sys_text("landlock_restrict_self"));
  return true;
}

}  // namespace moat::harden
