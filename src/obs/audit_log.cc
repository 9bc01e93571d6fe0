#include "obs/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "base/log.h"

namespace moat::obs {

namespace {
constexpr Duration kRetryDelay = std::chrono::milliseconds(10);

bool is_dns_refusal(std::string_view ev) {
  return ev == "dns_denied" || ev == "dns_blocked" || ev == "dns_rebind_blocked";
}

int64_t realtime_micros() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}
}  // namespace

std::string rfc3339_micros(int64_t us) {
  const time_t secs = time_t(us / 1000000);
  const unsigned frac = unsigned(us % 1000000) % 1000000u;
  tm t{};
  ::gmtime_r(&secs, &t);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, frac);
  return buf;
}

void write_flow(JsonWriter& w, const FlowFields& f) {
  const auto opt_str = [&](std::string_view k, std::string_view v) {
    if (v.empty()) w.null(k);
    else w.str(k, v);
  };
  w.u64("flow", f.flow);
  opt_str("proto", f.proto);
  opt_str("dir", f.dir);
  w.endpoint("src", f.src, f.src_port, f.ports);
  w.endpoint("dst", f.dst, f.dst_port, f.ports);
  opt_str("name", f.name);
  opt_str("name_src", f.name_src);
  opt_str("verdict", f.verdict);
  if (f.rule) {
    w.begin_object("rule");
    if (f.rule->index) w.u64("index", *f.rule->index);
    else w.null("index");
    w.str("origin", f.rule->origin);
    opt_str("text", f.rule->text);
    opt_str("label", f.rule->label);
    w.end_object();
  } else {
    w.null("rule");
  }
  opt_str("path", f.path);
  opt_str("reason", f.reason);
}

Result<UniqueFd, std::string> AuditLog::open_sink(const std::string& path) {
  UniqueFd fd;
  if (path == "-") {
    // A new open file description of stderr, so O_NONBLOCK does not leak to the shared one
    // (a pipe or terminal the command also writes to); dup() as a fallback.
    fd = UniqueFd(::open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC));
    if (!fd) fd = UniqueFd(::fcntl(2, F_DUPFD_CLOEXEC, 3));
  } else {
    fd = UniqueFd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC, 0600));
  }
  if (!fd) return unexpected("--audit " + path + ": cannot open: " + std::strerror(errno));
  return fd;
}

Result<std::unique_ptr<AuditLog>, std::string> AuditLog::open(const AuditOptions& opt, event::Loop& loop,
                                                               Counters& counters) {
  auto fd = open_sink(opt.file);
  if (!fd) return unexpected(fd.error());
  return std::make_unique<AuditLog>(std::move(*fd), opt, loop, counters);
}

AuditLog::AuditLog(UniqueFd fd, const AuditOptions& opt, event::Loop& loop, Counters& counters)
    : fd_(std::move(fd)), opt_(opt), loop_(loop), counters_(counters) {
  buf_.reserve(opt_.buffer_bytes);
  line_.reserve(1024);
}

AuditLog::~AuditLog() { flush(); }

bool AuditLog::wants(std::string_view ev) const noexcept {
  if (ev == "dns_query" && opt_.dns == AuditOptions::Dns::all && opt_.events.empty()) return true;
  if (is_dns_refusal(ev) && opt_.dns == AuditOptions::Dns::none) return false;
  if (opt_.events.empty()) return ev != "dns_query";
  return std::find(opt_.events.begin(), opt_.events.end(), ev) != opt_.events.end();
}

void AuditLog::emit(std::string_view ev, FunctionRef<void(JsonWriter&)> fields) {
  if (!wants(ev)) return;
  line_.clear();
  line_ += "{\"ts\":\"";
  line_ += rfc3339_micros(realtime_micros());
  line_ += '"';
  JsonWriter w(line_, false);
  w.str("gw", opt_.gateway).str("ev", ev);
  fields(w);
  line_ += '}';
  if (opt_.line_sink) opt_.line_sink(line_);
  for (const auto& o : observers_) o.second(line_);
  if (!fd_) return;  // callback only
  line_ += '\n';
  if (head_ > 0 && buf_.size() + line_.size() > opt_.buffer_bytes) {
    buf_.erase(0, head_);  // compact: at most one memmove of < 1 MiB per overflow
    head_ = 0;
  }
  if (sink_failed_ || buf_.size() + line_.size() > opt_.buffer_bytes) {
    ++dropped_;
    counters_.inc(Counter::audit_dropped);
    return;
  }
  buf_ += line_;
  schedule_flush(Duration::zero());
}

uint64_t AuditLog::observe(Observer fn) {
  const uint64_t id = next_observer_++;
  observers_.emplace_back(id, std::move(fn));
  return id;
}

void AuditLog::unobserve(uint64_t id) noexcept {
  std::erase_if(observers_, [id](const auto& o) { return o.first == id; });
}

void AuditLog::schedule_flush(Duration delay) {
  if (flush_timer_.pending()) return;
  flush_timer_ = loop_.schedule_after(delay, [this] { flush(); });
}

void AuditLog::flush() noexcept {
  if (!fd_) return;
  while (head_ < buf_.size()) {
    const ssize_t n = ::write(fd_.get(), buf_.data() + head_, buf_.size() - head_);
    if (n > 0) {
      head_ += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      schedule_flush(kRetryDelay);
      return;
    }
    // The sink is gone (EPIPE, ENOSPC, EIO...): count what is lost from now on.
    MOAT_LOG_RATELIMITED(warn, "audit: write failed: %s; events are dropped", std::strerror(errno));
    sink_failed_ = true;
    const size_t lost = size_t(std::count(buf_.begin() + ptrdiff_t(head_), buf_.end(), '\n'));
    dropped_ += lost;
    counters_.inc(Counter::audit_dropped, lost);
    buf_.clear();
    head_ = 0;
    return;
  }
  buf_.clear();
  head_ = 0;
}

Result<void, std::string> AuditLog::reopen() {
  if (opt_.file.empty()) return {};
  flush();
  auto fd = open_sink(opt_.file);
  if (!fd) return unexpected(fd.error());
  fd_ = std::move(*fd);
  sink_failed_ = false;
  if (buffered() > 0) schedule_flush(Duration::zero());
  return {};
}

}  // namespace moat::obs
