#include "ns/attach.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "ns/fd_channel.h"

namespace moat::ns {

namespace {

constexpr std::chrono::milliseconds kHelperTimeout{10'000};

std::string errno_text(int e) { return std::strerror(e); }

/// The helper: enter, set up, reply, exit. Never returns.
[[noreturn]] void helper_main(int sock, int userns_fd, int netns_fd, const TapSetup& setup) {
  // If moat dies meanwhile there is no one to send the fd to.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The user namespace first: it grants the capabilities that entering its netns needs.
  if (userns_fd >= 0 && ::setns(userns_fd, CLONE_NEWUSER) < 0) {
    detail::send_error(sock, "cannot enter its user namespace: " + errno_text(errno));
    ::_exit(1);
  }
  if (::setns(netns_fd, CLONE_NEWNET) < 0) {
    int e = errno;
    std::string msg = "cannot enter: " + errno_text(e);
    if (e == EPERM) msg += " (needs CAP_SYS_ADMIN over its user namespace)";
    detail::send_error(sock, msg);
    ::_exit(1);
  }
  auto tap = setup_tap_here(setup);
  if (!tap) {
    detail::send_error(sock, tap.error());
    ::_exit(1);
  }
  detail::send_fd(sock, tap->get());
  ::_exit(0);
}

bool same_ns(int fd, const char* own) {
  struct stat a{}, b{};
  return ::fstat(fd, &a) == 0 && ::stat(own, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

Result<UniqueFd, std::string> attach_tap(const std::string& netns_path, pid_t pid, const TapSetup& setup,
                                         const std::string& userns_path) {
  const bool by_path = !netns_path.empty();
  if (!by_path && pid <= 0) return unexpected(std::string("attach: give --netns or --pid"));
  const std::string where = by_path ? "--netns " + netns_path : "--pid " + std::to_string(pid);
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::string ns_path = by_path ? netns_path : proc + "/ns/net";

  UniqueFd netns(::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!netns) {
    if (!by_path && errno == ENOENT) return unexpected(where + ": no such process");
    return unexpected(where + ": cannot open " + ns_path + ": " + errno_text(errno));
  }
  int type = ::ioctl(netns.get(), NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) return unexpected(where + ": not a network namespace");

  UniqueFd userns;
  if (!userns_path.empty()) {
    userns.reset(::open(userns_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!userns) return unexpected("--userns " + userns_path + ": cannot open: " + errno_text(errno));
  } else if (::geteuid() != 0) {
    if (by_path) {
      userns.reset(::ioctl(netns.get(), NS_GET_USERNS));  // the netns owner; O_CLOEXEC by the kernel
      if (!userns && errno != EPERM) return unexpected(where + ": cannot find its user namespace: " + errno_text(errno));
    } else {
      userns.reset(::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
      if (!userns) return unexpected(where + ": cannot open its user namespace: " + errno_text(errno));
    }
    // setns() into one's own user namespace is EINVAL; it is also unnecessary.
    if (userns && same_ns(userns.get(), "/proc/self/ns/user")) userns.reset();
  }

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return unexpected(where + ": socketpair: " + errno_text(errno));
  UniqueFd ours(sv[0]), theirs(sv[1]);

  pid_t child = ::fork();
  if (child < 0) return unexpected(where + ": fork: " + errno_text(errno));
  if (child == 0) {
    ours.reset();
    helper_main(theirs.get(), userns.get(), netns.get(), setup);
  }
  theirs.reset();  // so a helper that dies without replying reads as EOF
  auto reply = detail::recv_fd(ours.get(), kHelperTimeout, where + ": namespace helper");
  // The helper exits right after replying; on timeout this kills it.
  (void)detail::reap_bounded(child, reply ? std::chrono::milliseconds(2000) : std::chrono::milliseconds(0));
  if (!reply) {
    if (reply.error().rfind(where, 0) == 0) return reply;  // already prefixed
    return unexpected(where + ": " + reply.error());
  }
  return reply;
}

Result<UniqueFd> open_pidfd(pid_t pid) {
  int fd = int(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return sys_error();
  return UniqueFd(fd);
}

Result<NetnsId> netns_id(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) < 0) return sys_error();
  return NetnsId{st.st_dev, st.st_ino};
}

bool netns_path_alive(const std::string& path, const NetnsId& id) {
  auto now = netns_id(path);
  return now && *now == id;
}

}  // namespace moat::ns
