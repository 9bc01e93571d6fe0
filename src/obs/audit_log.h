#pragma once
// AuditLog: the gateway's audit trail (SPEC R-OBS-3) as JSON Lines, one object per line.
//
// Lifecycle: open() creates the sink (a file opened O_APPEND|O_CLOEXEC|O_NONBLOCK with mode
// 0600, or `-` for a fresh non-blocking description of stderr) -> emit() formats an event
// and appends it to a bounded in-memory buffer (1 MiB) -> a zero-delay loop timer writes
// the buffer out with non-blocking write()s after the current handler -> on EAGAIN the rest
// stays buffered and is retried 10 ms later -> the destructor makes one last non-blocking
// attempt. The loop never waits for the sink: when the buffer is full the event is
// dropped whole and counted in `audit.dropped`.
//
// Filter: `events` selects event names; empty means every event except `dns_query`
// (R-OBS-3). `audit.dns` then narrows the DNS events: `none` removes dns_denied,
// dns_blocked and dns_rebind_blocked, `all` adds dns_query.
//
// Every line starts with the common fields `ts` (RFC 3339 UTC, µs), `gw` and `ev`; the
// caller adds the rest through a JsonWriter (write_flow() for the flow fields).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/addr.h"
#include "base/counters.h"
#include "base/function_ref.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "event/loop.h"
#include "obs/json.h"

namespace moat::obs {

struct AuditOptions {
  std::string file;                 ///< path, or "-" for stderr
  std::string gateway;              ///< `gw` field
  std::vector<std::string> events;  ///< empty = all but dns_query
  enum class Dns : uint8_t { none, denied, all } dns = Dns::denied;
  size_t buffer_bytes = size_t{1} << 20;
  /// Also hands every line (without the newline) to this callback as it is emitted, on the
  /// emitting thread (the C ABI's audit_cb). With an invalid fd it is the only sink.
  std::function<void(const std::string& line)> line_sink;
};

/// The deciding rule of a verdict; `index` is nullopt for a default.
struct RuleRef {
  std::optional<uint64_t> index;
  std::string_view origin;  ///< block|cli|config|profile|floor|default
  std::string_view text;
  std::string_view label;
};

/// The common flow fields of R-OBS-3; empty string_views and nullopts are written as null.
struct FlowFields {
  uint64_t flow = 0;
  std::string_view proto;  ///< tcp|udp|icmp
  std::string_view dir;    ///< egress|ingress
  IpAddr src, dst;
  uint16_t src_port = 0, dst_port = 0;
  bool ports = true;  ///< false for ICMP: addresses only
  std::string_view name, name_src;  ///< name_src: sni|host|pin|connect|query
  std::string_view verdict;         ///< allow|deny
  std::optional<RuleRef> rule;
  std::string_view path;  ///< fast|gate|inspect
  std::string_view reason;
};
void write_flow(JsonWriter& w, const FlowFields& f);

/// "2026-11-27T23:18:52.123456Z" for a CLOCK_REALTIME reading.
std::string rfc3339_micros(int64_t unix_micros);

class AuditLog {
 public:
  /// Opens the sink `path` ("-" = stderr). Error: "--audit PATH: cannot open: ERRNO" (§5.2 without the prefix).
  static Result<UniqueFd, std::string> open_sink(const std::string& path);
  /// open_sink(opt.file) and a log over it.
  static Result<std::unique_ptr<AuditLog>, std::string> open(const AuditOptions& opt, event::Loop& loop,
                                                             Counters& counters);
  /// A log over an already open fd (tests).
  AuditLog(UniqueFd fd, const AuditOptions& opt, event::Loop& loop, Counters& counters);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  /// Whether events named `ev` pass the filter (callers may skip building them).
  [[nodiscard]] bool wants(std::string_view ev) const noexcept;
  /// Appends one line `{"ts":..,"gw":..,"ev":ev, <fields>}` unless filtered out or the
  /// buffer is full (then `audit.dropped` counts it).
  void emit(std::string_view ev, FunctionRef<void(JsonWriter&)> fields);
  /// Writes what the sink takes now (never blocks).
  void flush() noexcept;
  /// SIGHUP (R-OBS-3, log rotation): writes what it can, then opens the path again; on
  /// failure the old sink stays. Returns the open error, if any.
  Result<void, std::string> reopen();

  /// events.subscribe (R-CTL-3): `fn` sees every emitted line (without its newline) on the
  /// emitting thread, after the filter, until unobserve(). It must not emit or (un)observe.
  using Observer = std::function<void(std::string_view line)>;
  uint64_t observe(Observer fn);
  void unobserve(uint64_t id) noexcept;

  [[nodiscard]] size_t buffered() const noexcept { return buf_.size() - head_; }
  [[nodiscard]] uint64_t dropped() const noexcept { return dropped_; }

 private:
  void schedule_flush(Duration delay);

  UniqueFd fd_;
  AuditOptions opt_;
  event::Loop& loop_;
  Counters& counters_;
  std::string buf_;   // [head_, size) waits for the sink
  size_t head_ = 0;
  std::string line_;  // scratch for one event
  uint64_t dropped_ = 0;
  bool sink_failed_ = false;
  event::TimerHandle flush_timer_;
  std::vector<std::pair<uint64_t, Observer>> observers_;
  uint64_t next_observer_ = 1;
};

}  // namespace moat::obs
