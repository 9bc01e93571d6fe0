// Fuzz target: parse_rules() on arbitrary input. Every accepted rule must re-parse from its
// normalised `text` to the same rule (the normal form is a fixed point).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/rule.h"

namespace {

using moat::policy::Rule;

bool same(const Rule& a, const Rule& b) {
  return a.action == b.action && a.dir == b.dir && a.target.kind == b.target.kind &&
         a.target.cidr == b.target.cidr && a.target.name == b.target.name && a.target.group == b.target.group &&
         a.protos == b.protos && a.ports == b.ports && a.dns_macro == b.dns_macro && a.text == b.text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto rules = moat::policy::parse_rules(in, moat::policy::Origin::cli);
  if (!rules) {
    const auto& e = rules.error();
    if (e.what.empty() || e.column == 0 || e.column > e.rule_text.size() + 1) __builtin_trap();
    (void)moat::policy::format_rule_error("--rule #1", e);
    return 0;
  }
  for (const Rule& r : *rules) {
    auto again = moat::policy::parse_rules(r.text, moat::policy::Origin::cli);
    if (!again || again->size() != 1 || !same(r, again->front())) __builtin_trap();
  }
  return 0;
}
