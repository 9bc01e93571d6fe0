#include "base/counters.h"

namespace moat {

std::string_view drop_reason_name(DropReason r) noexcept {
  static constexpr std::string_view names[] = {
#define MOAT_X(name) #name,
      MOAT_DROP_REASONS(MOAT_X)
#undef MOAT_X
  };
  auto i = static_cast<size_t>(r);
  return i < kDropReasonCount ? names[i] : std::string_view("?");
}

std::string_view counter_name(Counter c) noexcept {
  static constexpr std::string_view names[] = {
#define MOAT_X(id, name) name,
      MOAT_COUNTERS(MOAT_X)
#undef MOAT_X
  };
  auto i = static_cast<size_t>(c);
  return i < kCounterCount ? names[i] : std::string_view("?");
}

uint64_t Counters::total_drops() const noexcept {
  uint64_t t = 0;
  for (uint64_t d : drops) t += d;
  return t;
}

}  // namespace moat
