#include "tls/keylog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"

namespace moat::tls {

namespace {

int keylog_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

void keylog_cb(const SSL* ssl, const char* line) {
  auto* k = static_cast<KeyLog*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keylog_index()));
  if (k) k->write_line(line);
}

}  // namespace

Result<std::unique_ptr<KeyLog>, std::string> KeyLog::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return unexpected("tls.keylog_file " + path + ": cannot open: " + std::strerror(errno));
  UniqueFd f(fd);
  // An existing file keeps its owner, but never stays readable by others: it holds keys.
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) (void)::fchmod(fd, st.st_mode & 0700);
  return std::unique_ptr<KeyLog>(new KeyLog(std::move(f), path));
}

void KeyLog::attach(SSL_CTX* ctx) noexcept {
  SSL_CTX_set_ex_data(ctx, keylog_index(), this);
  SSL_CTX_set_keylog_callback(ctx, keylog_cb);
}

void KeyLog::write_line(const char* line) noexcept {
  // One write per line (O_APPEND: atomic for these sizes); a short or failed write loses
  // that line only, and is logged, never fatal.
  char buf[512];
  const size_t n = std::strlen(line);
  if (n + 1 > sizeof buf) return;
  std::memcpy(buf, line, n);
  buf[n] = '\n';
  if (::write(fd_.get(), buf, n + 1) != ssize_t(n + 1)) {
    MOAT_LOG_RATELIMITED(warn, "tls: key log %s: write failed: %s", path_.c_str(), std::strerror(errno));
    return;
  }
  ++lines_;
}

}  // namespace moat::tls
