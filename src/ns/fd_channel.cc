#include "ns/fd_channel.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <array>
#include <cstring>

namespace moat::ns::detail {

namespace {
constexpr size_t kMaxMessage = 1024;

int64_t now_ms() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool send_tagged(int sock, char tag, std::string_view text, int fd, int extra_fd = -1) noexcept {
  std::array<char, kMaxMessage> buf{};
  buf[0] = tag;
  size_t n = std::min(text.size(), buf.size() - 1);
  if (n > 0) std::memcpy(buf.data() + 1, text.data(), n);  // text.data() may be null when empty
  iovec iov{buf.data(), n + 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(2 * sizeof(int))> control{};
  if (fd >= 0) {
    const int fds[2] = {fd, extra_fd};
    const size_t count = extra_fd >= 0 ? 2 : 1;
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(count * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, count * sizeof(int));
  }
  ssize_t r;
  do {
    r = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (r < 0 && errno == EINTR);
  return r == ssize_t(n + 1);
}
}  // namespace

bool send_fd(int sock, int fd, int extra_fd) noexcept { return send_tagged(sock, 'F', {}, fd, extra_fd); }
bool send_error(int sock, std::string_view message) noexcept { return send_tagged(sock, 'E', message, -1); }

Result<UniqueFd, std::string> recv_fd(int sock, std::chrono::milliseconds timeout, std::string_view what,
                                      UniqueFd* extra) {
  const int64_t deadline = now_ms() + timeout.count();
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return unexpected(std::string(what) + ": timed out after " + std::to_string(timeout.count()) + " ms");
    pollfd p{sock, POLLIN, 0};
    int r = ::poll(&p, 1, int(left));
    if (r < 0 && errno != EINTR) return unexpected(std::string(what) + ": poll: " + std::strerror(errno));
    if (r > 0) break;
  }
  std::array<char, kMaxMessage> buf{};
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * 4)> control{};
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return unexpected(std::string(what) + ": receive: " + std::strerror(errno));
  // Collect every passed fd first so none leaks, whatever the message says.
  UniqueFd received, second;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (!received) received.reset(fd);
      else if (!second && extra) second.reset(fd);
      else ::close(fd);
    }
  }
  if (n == 0) return unexpected(std::string(what) + ": exited before reporting");
  if (buf[0] == 'E') return unexpected(std::string(buf.data() + 1, size_t(n) - 1));
  if (buf[0] != 'F' || !received) return unexpected(std::string(what) + ": malformed reply");
  if (extra) *extra = std::move(second);
  return received;
}

std::optional<int> reap_bounded(pid_t pid, std::chrono::milliseconds timeout) noexcept {
  const int64_t deadline = now_ms() + timeout.count();
  bool killed = false;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (!killed && now_ms() >= deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    } else if (killed && now_ms() >= deadline + 5000) {
      return std::nullopt;  // stuck in the kernel (D state); leave it to init
    }
    // 5 ms steps: helpers exit right after replying, so this rarely loops more than once;
    // after SIGKILL a second 5 s bound applies.
    timespec ts{0, 5 * 1000 * 1000};
    ::nanosleep(&ts, nullptr);
  }
}

}  // namespace moat::ns::detail
