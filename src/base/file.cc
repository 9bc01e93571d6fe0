#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace moat {

std::string ReadFileError::message() const {
  switch (kind) {
    case Kind::open: return std::string("cannot open: ") + std::strerror(err);
    case Kind::read: return std::string("cannot read: ") + std::strerror(err);
    case Kind::directory: return "is a directory";
    case Kind::not_regular: {
      const char* what = S_ISFIFO(mode)   ? " (a FIFO)"
                         : S_ISCHR(mode)  ? " (a character device)"
                         : S_ISBLK(mode)  ? " (a block device)"
                         : S_ISSOCK(mode) ? " (a socket)"
                                          : "";
      return std::string("is not a regular file") + what;
    }
    case Kind::too_large:
      if (limit >= (size_t{1} << 20) && limit % (size_t{1} << 20) == 0)
        return "larger than " + std::to_string(limit >> 20) + " MiB";
      if (limit >= 1024 && limit % 1024 == 0) return "larger than " + std::to_string(limit >> 10) + " KiB";
      return "larger than " + std::to_string(limit) + " bytes";
  }
  return "cannot read";
}

Result<std::string, ReadFileError> read_bounded_file(const std::string& path, size_t max_bytes) {
  using Kind = ReadFileError::Kind;
  // O_NONBLOCK: open() of a FIFO without a writer would block here, before fstat() can
  // tell what the path is. O_NOCTTY: a terminal given by mistake must not become ours.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) return unexpected(ReadFileError{Kind::open, errno, max_bytes});
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return unexpected(ReadFileError{Kind::read, errno, max_bytes});
  // read() on a directory fails with EISDIR on Linux anyway; saying so plainly is clearer.
  if (S_ISDIR(st.st_mode)) return unexpected(ReadFileError{Kind::directory, EISDIR, max_bytes});
  if (!S_ISREG(st.st_mode)) return unexpected(ReadFileError{Kind::not_regular, 0, max_bytes, st.st_mode});
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return unexpected(ReadFileError{Kind::read, errno, max_bytes});
    if (n == 0) break;
    if (size_t(n) > max_bytes - text.size()) return unexpected(ReadFileError{Kind::too_large, 0, max_bytes});
    text.append(buf, size_t(n));
  }
  return text;
}

}  // namespace moat
