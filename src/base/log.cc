#include "base/log.h"

#include <time.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace moat {
namespace detail {
std::atomic<int> g_log_level{static_cast<int>(LogLevel::info)};

int64_t LogRateLimit::allow() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  int64_t now = int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now - last >= 10000 && last_ms.compare_exchange_strong(last, now)) {
    return int64_t(suppressed.exchange(0));
  }
  suppressed.fetch_add(1, std::memory_order_relaxed);
  return -1;
}
}  // namespace detail

bool parse_log_level(std::string_view s, LogLevel* out) noexcept {
  static constexpr std::string_view names[] = {"error", "warn", "info", "debug", "trace"};
  for (int i = 0; i < 5; ++i) {
    if (s == names[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void set_log_level(LogLevel l) noexcept { detail::g_log_level.store(static_cast<int>(l)); }
LogLevel log_level() noexcept { return static_cast<LogLevel>(detail::g_log_level.load()); }

namespace {
thread_local LogSink t_sink;
}  // namespace

LogSink set_thread_log_sink(LogSink s) noexcept {
  LogSink old = t_sink;
  t_sink = s;
  return old;
}

void log_write(LogLevel l, const char* fmt, ...) noexcept {
  static constexpr const char* names[] = {"error", "warning", "info", "debug", "trace"};
  char buf[8192];  // a stats snapshot is one line of ~2 KiB
  int n = std::snprintf(buf, sizeof buf, "moat: %s: ", names[static_cast<int>(l)]);
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(buf + n, sizeof buf - size_t(n) - 1, fmt, ap);
  va_end(ap);
  size_t len = size_t(n) + (m < 0 ? 0 : std::min(size_t(m), sizeof buf - size_t(n) - 2));
  if (t_sink.fn) {
    buf[len] = '\0';
    t_sink.fn(t_sink.userdata, l, buf);
    return;
  }
  buf[len++] = '\n';
  // One write(2) per line so concurrent writers do not interleave within a line.
  ssize_t r = ::write(STDERR_FILENO, buf, len);
  (void)r;  // nowhere to report a failed log write
}

}  // namespace moat
