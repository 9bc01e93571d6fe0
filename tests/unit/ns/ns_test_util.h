#pragma once
// Helpers for the namespace tests: run code in a forked child inside a fresh network
// namespace (so nothing touches the host's interfaces) and collect what it reports.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

namespace moat::ns::testing {

inline bool is_root() { return ::geteuid() == 0; }

#define MOAT_REQUIRE_ROOT() \
  if (!::moat::ns::testing::is_root()) GTEST_SKIP() << "needs root (namespaces, TAP)"

/// Reads fd until EOF or until `timeout` passes.
inline std::string read_all(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, int(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

/// Waits for pid (bounded), SIGKILLing it on timeout. Returns the raw status or -1.
inline int wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1;
    }
    ::usleep(2000);
  }
}

/// Forks; the child optionally unshares `unshare_flags`, runs fn and sends its result back.
inline std::string in_child(int unshare_flags, const std::function<std::string()>& fn,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(20000)) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) return "ERR: pipe";
  pid_t pid = ::fork();
  if (pid < 0) return "ERR: fork";
  if (pid == 0) {
    ::close(p[0]);
    std::string out;
    if (unshare_flags && ::unshare(unshare_flags) < 0) out = "ERR: unshare";
    else out = fn();
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::write(p[1], out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += size_t(n);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out = read_all(p[0], timeout);
  ::close(p[0]);
  wait_child(pid, std::chrono::milliseconds(2000));
  return out;
}

inline std::string in_new_netns(const std::function<std::string()>& fn) { return in_child(CLONE_NEWNET, fn); }

/// Output of a shell command (tests may read state with `ip`; production code never does).
inline std::string sh(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return "ERR: popen";
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  ::pclose(f);
  return out;
}

/// A process sitting in a new network namespace until destroyed (killed by PID).
class NetnsHolder {
 public:
  NetnsHolder() {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0 || ::pipe2(hold_, O_CLOEXEC) < 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(hold_[1]);
      if (::unshare(CLONE_NEWNET) < 0) ::_exit(1);
      char c = 'x';
      (void)!::write(ready[1], &c, 1);
      pollfd p{hold_[0], POLLIN, 0};
      ::poll(&p, 1, 60000);  // until the test closes the pipe (bounded)
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(hold_[0]);
    char c;
    pollfd p{ready[0], POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1 || ::read(ready[0], &c, 1) != 1) pid_ = -1;
    ::close(ready[0]);
  }
  ~NetnsHolder() { stop(); }
  void stop() {
    if (pid_ > 0) {
      ::close(hold_[1]);
      ::kill(pid_, SIGKILL);
      wait_child(pid_, std::chrono::milliseconds(2000));
      pid_ = -1;
    }
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::string netns_path() const { return "/proc/" + std::to_string(pid_) + "/ns/net"; }
  /// Runs fn inside the holder's network namespace (in a forked child).
  [[nodiscard]] std::string run_inside(const std::function<std::string()>& fn) const {
    std::string path = netns_path();
    return in_child(0, [&]() -> std::string {
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) < 0) return "ERR: setns";
      return fn();
    });
  }

 private:
  pid_t pid_ = -1;
  int hold_[2] = {-1, -1};
};

}  // namespace moat::ns::testing
