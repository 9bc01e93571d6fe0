#pragma once
// Logging: `MOAT_LOG(info, "fmt", ...)` (printf format, checked by the compiler).
// Anything a guest can trigger uses MOAT_LOG_RATELIMITED: at most one line per 10 s per
// call site, followed by a count of what was suppressed (SPEC R-OBS-4).
// wire/ never logs.
#include <atomic>
#include <cstdint>
#include <string_view>

namespace moat {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };

/// Parses "error|warn|info|debug|trace".
bool parse_log_level(std::string_view s, LogLevel* out) noexcept;
void set_log_level(LogLevel l) noexcept;
LogLevel log_level() noexcept;
inline bool log_enabled(LogLevel l) noexcept;

void log_write(LogLevel l, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));

/// Where the calling thread's log lines go instead of stderr (the C ABI's log_cb, one per
/// embedded gateway): `fn` gets the whole line ("moat: info: ...", no newline). Per thread,
/// so gateways in one process keep their lines apart. fn null = stderr.
struct LogSink {
  void (*fn)(void* userdata, LogLevel level, const char* line) = nullptr;
  void* userdata = nullptr;
};
/// Sets the calling thread's sink; returns the previous one (restore it when done).
LogSink set_thread_log_sink(LogSink s) noexcept;

namespace detail {
extern std::atomic<int> g_log_level;
/// Per-call-site limiter state; allow() returns the number of lines suppressed since the
/// last emitted one (>= 0) when this call may print, or -1 when it must stay quiet.
struct LogRateLimit {
  std::atomic<int64_t> last_ms{INT64_MIN / 2};
  std::atomic<uint64_t> suppressed{0};
  int64_t allow() noexcept;
};
}  // namespace detail

inline bool log_enabled(LogLevel l) noexcept {
  return static_cast<int>(l) <= detail::g_log_level.load(std::memory_order_relaxed);
}

}  // namespace moat

#define MOAT_LOG(level, ...)                                                                   \
  do {                                                                                         \
    if (::moat::log_enabled(::moat::LogLevel::level)) ::moat::log_write(::moat::LogLevel::level, __VA_ARGS__); \
  } while (0)

#define MOAT_LOG_RATELIMITED(level, fmt, ...)                                                  \
  do {                                                                                         \
    if (::moat::log_enabled(::moat::LogLevel::level)) {                                        \
      static ::moat::detail::LogRateLimit moat_rl_;                                            \
      int64_t moat_sup_ = moat_rl_.allow();                                                    \
      if (moat_sup_ > 0)                                                                       \
        ::moat::log_write(::moat::LogLevel::level, fmt " (%lld similar suppressed)", ##__VA_ARGS__, \
                          static_cast<long long>(moat_sup_));                                  \
      else if (moat_sup_ == 0)                                                                 \
        ::moat::log_write(::moat::LogLevel::level, fmt, ##__VA_ARGS__);                        \
    }                                                                                          \
  } while (0)
