#pragma once
// A parsed TOML or JSON document as one position-carrying tree, so both formats share one
// schema walker (loader.cc) and one set of messages (SPEC §4.1: "Both carry the same
// schema"). Internal to config/.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace moat::config::doc {

/// 1-based line and column of a key or value in the source text (0 = unknown).
struct Pos {
  uint32_t line = 0;
  uint32_t col = 0;
};

struct Member;

/// One node. Tables keep their members in source order.
struct Value {
  enum class Kind : uint8_t { table, array, string, integer, floating, boolean, datetime, null };
  Kind kind = Kind::null;
  Pos pos;
  std::string str;        ///< string
  int64_t integer = 0;    ///< integer
  bool out_of_range = false;  ///< integer did not fit int64 (JSON)
  double floating = 0;    ///< floating
  bool boolean = false;   ///< boolean
  std::vector<Member> members;  ///< table
  std::vector<Value> items;     ///< array
};

struct Member {
  std::string key;
  Pos key_pos;
  Value value;
};

/// "a table", "an integer", ... for wrong-type messages.
std::string_view kind_name(Value::Kind k) noexcept;

/// Parses TOML (via toml++, without exceptions). Syntax errors are appended to `errs` as
/// `ORIGIN:LINE:COL: what` lines; returns false on any.
bool read_toml(std::string_view text, std::string_view origin, Value* out, std::vector<UserError>* errs);

/// Parses strict JSON (RFC 8259, via nlohmann's SAX parser). Duplicate keys are errors.
bool read_json(std::string_view text, std::string_view origin, Value* out, std::vector<UserError>* errs);

/// `ORIGIN:LINE:COL` (or just ORIGIN when the position is unknown).
std::string where(std::string_view origin, Pos p);

}  // namespace moat::config::doc
