#include "obs/metrics.h"

#include <cmath>
#include <cstdio>

namespace moat::obs {
namespace {

/// The levels among the counter table and how they are named as gauges.
struct GaugeDef {
  Counter c;
  std::string_view name;
  std::string_view help;
};
constexpr GaugeDef kGauges[] = {
    {Counter::tcp_active, "moat_tcp_active", "TCP flows open now"},
    {Counter::udp_sessions_active, "moat_udp_sessions_active", "UDP sessions open now"},
    {Counter::dns_pins_active, "moat_dns_pins_active", "live DNS pins (name, address) now"},
    {Counter::dns_tcp_sessions, "moat_dns_tcp_sessions", "guest DNS-over-TCP sessions open now"},
    {Counter::queue_to_guest_high_water, "moat_queue_to_guest_high_water",
     "most frames ever queued toward the guest at once"},
    {Counter::memory_used, "moat_memory_used_bytes", "bytes charged to the memory budget now (R-LIM-2)"},
    {Counter::memory_high_water, "moat_memory_high_water_bytes", "most bytes ever charged to the memory budget"},
    {Counter::memory_budget, "moat_memory_budget_bytes", "the memory budget (limits.memory_budget)"},
    {Counter::memory_level, "moat_memory_level", "memory budget level: 0 normal, 1 pressure, 2 refuse, 3 full"},
};

const GaugeDef* gauge_def(Counter c) noexcept {
  for (const auto& g : kGauges)
    if (g.c == c) return &g;
  return nullptr;
}

void sample(std::string& out, std::string_view name, const std::string& label, std::string_view value) {
  out += name;
  out += label;
  out += ' ';
  out += value;
  out += '\n';
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  // HELP text escapes backslash and newline.
  for (char ch : help) {
    if (ch == '\\') out += "\\\\";
    else if (ch == '\n') out += "\\n";
    else out += ch;
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9.007199254740992e15) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::string metric_name(std::string_view dotted) {
  std::string s(dotted);
  for (char& ch : s)
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')) ch = '_';
  // promtool's lint reads a word "us" as an abbreviated unit (microseconds) and fails the
  // check: drop.not_for_us is exported as moat_drop_not_for_gateway_total (its HELP text
  // names the counter).
  for (size_t pos; (pos = s.find("_us")) != std::string::npos && (pos + 3 == s.size() || s[pos + 3] == '_');)
    s.replace(pos, 3, "_gateway");
  return s;
}

bool is_gauge(Counter c) noexcept { return gauge_def(c) != nullptr; }

std::string escape_label_value(std::string_view v) {
  std::string s;
  s.reserve(v.size());
  for (char ch : v) {
    if (ch == '\\') s += "\\\\";
    else if (ch == '"') s += "\\\"";
    else if (ch == '\n') s += "\\n";
    else s += ch;
  }
  return s;
}

std::string prometheus_text(std::string_view gateway, const Counters& counters, std::span<const Gauge> extra) {
  const std::string label = "{gateway=\"" + escape_label_value(gateway) + "\"}";
  std::string out;
  out.reserve(32 * 1024);
  for (size_t i = 0; i < kCounterCount; ++i) {
    const Counter c = Counter(i);
    const std::string dotted(counter_name(c));
    if (const GaugeDef* g = gauge_def(c)) {
      family(out, g->name, "gauge", std::string(g->help) + " (" + dotted + ")");
      sample(out, g->name, label, std::to_string(counters.values[i]));
      continue;
    }
    const std::string name = "moat_" + metric_name(dotted) + "_total";
    family(out, name, "counter", "moat counter " + dotted + " (SPEC R-OBS-1)");
    sample(out, name, label, std::to_string(counters.values[i]));
  }
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    const std::string reason(drop_reason_name(DropReason(i)));
    const std::string name = "moat_drop_" + metric_name(reason) + "_total";
    family(out, name, "counter", "guest frames discarded for reason " + reason + " (drop." + reason + ", R-OBS-2)");
    sample(out, name, label, std::to_string(counters.drops[i]));
  }
  family(out, "moat_drop_all_total", "counter", "guest frames discarded for any reason (drop.total)");
  sample(out, "moat_drop_all_total", label, std::to_string(counters.total_drops()));
  for (const Gauge& g : extra) {
    family(out, g.name, "gauge", g.help);
    sample(out, g.name, label, format_double(g.value));
  }
  return out;
}

}  // namespace moat::obs
