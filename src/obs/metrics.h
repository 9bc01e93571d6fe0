#pragma once
// The Prometheus text exposition format, version 0.0.4 (SPEC R-OBS-7), of one gateway's
// counters: what GET /metrics serves and `moat stats --prometheus` prints.
//
//   * every counter of R-OBS-1 (base/counters.h) as `moat_<name, dots as underscores>_total`,
//     every drop reason as `moat_drop_<reason>_total`, with `# HELP` and `# TYPE counter`;
//   * the entries of the counter table that are levels, not counts (tcp.active, memory.*,
//     dns.pins_active, ...) as gauges without `_total`, memory ones in bytes;
//   * further gauges the caller measures (flows per protocol, policy generation, ...);
//   * each sample carries the label `gateway="<name>"` (escaped per the format: \\ \" \n).
// Output passes `promtool check metrics` (tests/integration/control_test.sh).
#include <span>
#include <string>
#include <string_view>

#include "base/counters.h"

namespace moat::obs {

/// A gauge the caller adds. `name` is the full metric name (moat_…, [a-z0-9_]).
struct Gauge {
  std::string_view name;
  std::string_view help;
  double value = 0;
};

/// "link.from_guest.frames" -> "link_from_guest_frames" (every byte outside [a-zA-Z0-9_]
/// becomes '_').
std::string metric_name(std::string_view dotted);

/// True for the counter-table entries that hold a level (set(), or inc and dec) rather than
/// a monotonic count; they are exported as gauges.
bool is_gauge(Counter c) noexcept;

/// The whole exposition for one gateway, ending in a newline.
std::string prometheus_text(std::string_view gateway, const Counters& counters, std::span<const Gauge> extra = {});

/// Escapes a label value: backslash, double quote and newline (the format's three escapes).
std::string escape_label_value(std::string_view v);

}  // namespace moat::obs
