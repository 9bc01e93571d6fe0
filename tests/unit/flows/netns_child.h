#pragma once
// Runs test code in a forked child inside a fresh network namespace (loopback only), so
// tests may change sysctls and interface settings without touching the host.
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include "base/unique_fd.h"

namespace moat::flows::testing {

/// The child's result is "" on success or a failure message, passed back through a pipe.
inline std::string in_new_netns(const std::function<std::string()>& body) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(p[0]);
    std::string out = ::unshare(CLONE_NEWNET) == 0 ? body() : std::string("unshare(CLONE_NEWNET) failed");
    if (!out.empty()) (void)!::write(p[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[512];
  for (;;) {
    pollfd pf{p[0], POLLIN, 0};
    if (::poll(&pf, 1, 20000) != 1) {
      out += "child timed out";
      ::kill(pid, SIGKILL);
      break;
    }
    const ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) out += " (child crashed)";
  return out;
}

/// Brings `lo` up, optionally with a smaller MTU (0: leave it).
inline bool bring_lo_up(int mtu = 0) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (mtu > 0) {
    ifr.ifr_mtu = mtu;
    if (::ioctl(s.get(), SIOCSIFMTU, &ifr) != 0) return false;
  }
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return false;
  ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
  return ::ioctl(s.get(), SIOCSIFFLAGS, &ifr) == 0;
}

#define CHILD_CHECK(cond)                                    \
  do {                                                       \
    if (!(cond)) return std::string("check failed: " #cond); \
  } while (0)

}  // namespace moat::flows::testing
