#pragma once
// The one bounded reader for files a user names (config files, rules files, DNS block
// lists, the host's /etc/hosts for `moat run`). Every caller gives its own limit as a named
// constant with a reason: a limit keeps a mistaken path (/dev/zero, a log file, a FIFO fed
// forever) from growing moat's memory without bound, and the right size differs by file.
#include <cstddef>
#include <string>

#include "base/result.h"

namespace moat {

/// Why read_bounded_file() failed.
struct ReadFileError {
  enum class Kind : uint8_t { open, read, directory, not_regular, too_large };
  Kind kind = Kind::open;
  int err = 0;         ///< errno for open/read
  size_t limit = 0;    ///< the caller's limit, for too_large
  uint32_t mode = 0;   ///< st_mode, for not_regular (names the kind of file)

  /// The §5.2 message body: "cannot open: No such file or directory", "cannot read: ...",
  /// "is a directory", "is not a regular file (a FIFO)", "larger than 16 MiB" (the limit
  /// in whole MiB or KiB).
  [[nodiscard]] std::string message() const;
};

/// Reads all of `path` (O_CLOEXEC, EINTR retried), refusing directories, anything that is
/// not a regular file, and anything longer than `max_bytes`. Stops reading as soon as the
/// limit is passed, so a huge file costs at most `max_bytes` plus one buffer.
///
/// The open is O_NONBLOCK and the type is checked with fstat() before any read: opening a
/// FIFO without a writer, or reading one whose writer never writes, would block moat
/// forever, and a character device or socket is never a config or list. A pipe as input
/// (`--config /dev/stdin`, `<(...)`) is therefore refused too; no caller documents one.
Result<std::string, ReadFileError> read_bounded_file(const std::string& path, size_t max_bytes);

}  // namespace moat
