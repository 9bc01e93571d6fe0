#include "transport/unix_socket.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/strings.h"

namespace moat::transport {

BoundUnixSocket::BoundUnixSocket(BoundUnixSocket&& o) noexcept
    : fd_(std::move(o.fd_)), path_(std::move(o.path_)), dev_(o.dev_), ino_(o.ino_) {
  o.path_.clear();
}

BoundUnixSocket& BoundUnixSocket::operator=(BoundUnixSocket&& o) noexcept {
  if (this != &o) {
    remove();
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    o.path_.clear();
    dev_ = o.dev_;
    ino_ = o.ino_;
  }
  return *this;
}

void BoundUnixSocket::remove() noexcept {
  fd_.reset();
  if (path_.empty()) return;
  struct stat st {};
  // Only our own file: a later moat may have replaced it (it was stale to that one).
  if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ && st.st_ino == ino_)
    ::unlink(path_.c_str());
  path_.clear();
}

Result<socklen_t, std::string> make_unix_addr(std::string_view path, sockaddr_un* sa) {
  *sa = sockaddr_un{};
  sa->sun_family = AF_UNIX;
  if (path.empty()) return unexpected(std::string("empty socket path"));
  const bool abstract = path.front() == '@';
  // A filesystem name needs its terminating NUL inside sun_path; an abstract one starts
  // with a NUL byte instead of the '@'.
  const size_t limit = abstract ? sizeof sa->sun_path : sizeof sa->sun_path - 1;
  if (path.size() > limit)
    return unexpected(std::string(path) + ": name too long (" + std::to_string(path.size()) + " bytes, at most " +
                      std::to_string(limit) + ")");
  std::memcpy(sa->sun_path, path.data(), path.size());
  if (abstract) sa->sun_path[0] = '\0';
  return socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
}

namespace {

std::string describe(const std::string& path, int e, const char* action) {
  std::string s = path + ": " + action + ": " + std::strerror(e);
  if (e == ENOENT) s = path + ": directory does not exist";
  return s;
}

/// True when a live process is bound to / listening on `sa` (connect succeeds).
bool socket_is_live(const sockaddr_un& sa, socklen_t len, int type) {
  UniqueFd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return false;
  // A stream listener with a full backlog answers EAGAIN: still live.
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&sa), len) == 0) return true;
  return errno == EAGAIN || errno == EINPROGRESS;
}

}  // namespace

Result<BoundUnixSocket, std::string> bind_unix(const std::string& path, int type, mode_t mode) {
  sockaddr_un sa{};
  auto len = make_unix_addr(path, &sa);
  if (!len) return unexpected(len.error());
  const bool abstract = path.front() == '@';
  if (!abstract) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        return unexpected(path + ": exists and is not a socket; remove it or choose another path");
      // Probe with both types: the file may belong to a stream or a datagram server.
      if (socket_is_live(sa, *len, SOCK_STREAM) || socket_is_live(sa, *len, SOCK_DGRAM))
        return unexpected(path + ": address in use by another process");
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) return unexpected(describe(path, errno, "cannot replace the stale socket"));
    } else if (errno != ENOENT) {
      return unexpected(describe(path, errno, "cannot inspect"));
    }
  }
  UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return unexpected(describe(path, errno, "cannot create a socket"));
  // The file gets its final mode at creation (umask), so it is never briefly more open;
  // chmod afterwards makes bits the umask cannot add (group/other when asked) exact.
  const mode_t old_mask = ::umask(0777 & ~mode);
  const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), *len);
  const int bind_errno = errno;
  ::umask(old_mask);
  if (rc != 0) {
    if (bind_errno == EADDRINUSE) return unexpected(path + ": address in use by another process");
    return unexpected(describe(path, bind_errno, "cannot bind"));
  }
  dev_t dev = 0;
  ino_t ino = 0;
  std::string file;
  if (!abstract) {
    file = path;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      dev = st.st_dev;
      ino = st.st_ino;
    }
  }
  BoundUnixSocket sock(std::move(fd), file, dev, ino);
  if (!abstract && ::chmod(path.c_str(), mode) != 0) return unexpected(describe(path, errno, "cannot set the mode"));
  if (type == SOCK_STREAM && ::listen(sock.fd(), 8) != 0) return unexpected(describe(path, errno, "cannot listen"));
  return sock;
}

Result<mode_t, std::string> parse_socket_mode(std::string_view text) {
  if (text.empty() || text.size() > 4) return unexpected(quote_value(text) + " is not an octal mode like 0600");
  mode_t m = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return unexpected(quote_value(text) + " is not an octal mode like 0600");
    m = m * 8 + mode_t(c - '0');
  }
  if (m > 0777) return unexpected(quote_value(text) + " has bits above 0777");
  if ((m & 0600) != 0600) return unexpected(quote_value(text) + " must give the owner read and write (0600)");
  return m;
}

}  // namespace moat::transport
