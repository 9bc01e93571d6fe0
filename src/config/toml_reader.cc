// TOML → doc::Value through toml++ (Debian's libtomlplusplus-dev), used header-only with
// exceptions off: no throw/try in src/ (STYLE), and the fuzz build instruments it too.
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

#include <algorithm>

#include "config/doc.h"

namespace moat::config::doc {
namespace {

Pos pos_of(const toml::source_region& r) { return Pos{r.begin.line, r.begin.column}; }

Value convert(const toml::node& n) {
  Value v;
  v.pos = pos_of(n.source());
  switch (n.type()) {
    case toml::node_type::table: {
      v.kind = Value::Kind::table;
      for (auto&& [k, child] : *n.as_table())
        v.members.push_back(Member{std::string(k.str()), pos_of(k.source()), convert(child)});
      // toml++ keeps keys sorted by name; errors read better in file order.
      std::stable_sort(v.members.begin(), v.members.end(), [](const Member& a, const Member& b) {
        return a.key_pos.line != b.key_pos.line ? a.key_pos.line < b.key_pos.line : a.key_pos.col < b.key_pos.col;
      });
      break;
    }
    case toml::node_type::array:
      v.kind = Value::Kind::array;
      for (const auto& item : *n.as_array()) v.items.push_back(convert(item));
      break;
    case toml::node_type::string:
      v.kind = Value::Kind::string;
      v.str = n.as_string()->get();
      break;
    case toml::node_type::integer:
      v.kind = Value::Kind::integer;
      v.integer = n.as_integer()->get();
      break;
    case toml::node_type::floating_point:
      v.kind = Value::Kind::floating;
      v.floating = n.as_floating_point()->get();
      break;
    case toml::node_type::boolean:
      v.kind = Value::Kind::boolean;
      v.boolean = n.as_boolean()->get();
      break;
    default:
      v.kind = Value::Kind::datetime;
      break;
  }
  return v;
}

}  // namespace

bool read_toml(std::string_view text, std::string_view origin, Value* out, std::vector<UserError>* errs) {
  toml::parse_result r = toml::parse(text, origin);
  if (!r) {
    const auto& e = r.error();
    errs->push_back({where(origin, pos_of(e.source())), std::string(e.description()), ""});
    return false;
  }
  *out = convert(r.table());
  out->pos = Pos{1, 1};
  return true;
}

}  // namespace moat::config::doc
