#pragma once
// Key log (SPEC R-TLS-9): NSS key-log lines ("CLIENT_RANDOM ...", TLS 1.3 traffic secrets)
// for both the guest and the upstream sessions, appended to one file created 0600, so
// Wireshark/tshark can decrypt a capture. Opened at set-up (before the privilege drop);
// each line is one write(2) on an O_APPEND fd, so lines never interleave.
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "tls/openssl_handles.h"

namespace moat::tls {

class KeyLog {
 public:
  /// Opens (creates 0600, appends) `path`. Error: "tls.keylog_file PATH: cannot open: ...".
  static Result<std::unique_ptr<KeyLog>, std::string> open(const std::string& path);
  /// Installs the callback on `ctx` (its app data must not be used by anything else).
  void attach(SSL_CTX* ctx) noexcept;
  /// Appends one line (a newline is added).
  void write_line(const char* line) noexcept;
  [[nodiscard]] uint64_t lines() const noexcept { return lines_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  KeyLog(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
  uint64_t lines_ = 0;
};

}  // namespace moat::tls
