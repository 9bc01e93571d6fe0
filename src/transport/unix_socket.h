#pragma once
// Unix-domain socket paths for the serve transports (SPEC R-TR-3/4, §5.2 "socket path"):
// filesystem or abstract (`@name`) addresses, stale-socket replacement, the socket file's
// mode, and removal on shutdown.
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace moat::transport {

/// A bound unix socket plus what is needed to remove its file again.
///
/// Lifecycle: bind_unix() -> bound (the file exists with the requested mode; a stream
/// socket is listening) -> destroyed: the fd is closed and the file is unlinked if it is
/// still the one this object created (same device and inode), so a newer moat that
/// replaced a stale file is never disturbed. Abstract names leave no file.
class BoundUnixSocket {
 public:
  BoundUnixSocket() = default;
  BoundUnixSocket(UniqueFd fd, std::string path, dev_t dev, ino_t ino) noexcept
      : fd_(std::move(fd)), path_(std::move(path)), dev_(dev), ino_(ino) {}
  BoundUnixSocket(BoundUnixSocket&& o) noexcept;
  BoundUnixSocket& operator=(BoundUnixSocket&& o) noexcept;
  BoundUnixSocket(const BoundUnixSocket&) = delete;
  BoundUnixSocket& operator=(const BoundUnixSocket&) = delete;
  ~BoundUnixSocket() { remove(); }

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Closes the socket and unlinks its file (if still ours). Idempotent.
  void remove() noexcept;

 private:
  UniqueFd fd_;
  std::string path_;  ///< filesystem path; empty for an abstract name
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

/// Fills `sa` for PATH (`@name` = abstract namespace). Returns the address length, or an
/// error text ("name too long ...") for the §5.2 line.
Result<socklen_t, std::string> make_unix_addr(std::string_view path, sockaddr_un* sa);

/// Creates a non-blocking, close-on-exec unix socket of `type` (SOCK_STREAM, listening, or
/// SOCK_DGRAM) bound to `path` with file mode `mode`.
/// * An existing socket file nobody listens on is replaced; a live one, or an existing file
///   that is not a socket, is an error.
/// Errors are complete "<path>: <what>[; <hint>]" texts for `moat: error: `; on error
/// nothing is left behind.
Result<BoundUnixSocket, std::string> bind_unix(const std::string& path, int type, mode_t mode);

/// Parses an octal file mode such as "0600" or "660" (at most 0777).
Result<mode_t, std::string> parse_socket_mode(std::string_view text);

}  // namespace moat::transport
