#include "wire/emit_sink.h"

namespace moat::wire {

size_t encoded_domain_len(std::string_view name) noexcept {
  constexpr size_t kMaxName = 255, kMaxLabel = 63;  // RFC 1035 §2.3.4
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kMaxName) return 0;
  size_t total = 1;  // the root label
  while (true) {
    const size_t dot = name.find('.');
    const size_t label = dot == std::string_view::npos ? name.size() : dot;
    if (label == 0 || label > kMaxLabel) return 0;
    total += 1 + label;
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
    if (name.empty()) return 0;  // "a..": an empty label before the stripped trailing dot
  }
  return total <= kMaxName ? total : 0;
}

}  // namespace moat::wire
