#pragma once
// Small string helpers shared by every parser of user input (CLI flags, rule strings,
// --impair keys): "did you mean" suggestions need an edit distance, and every error that
// repeats a user's value repeats it through quote_value(), so a 100 KB value or one with a
// newline cannot flood the terminal or break the one-line `moat: error:` format (§5.2).
#include <cstddef>
#include <string>
#include <string_view>

namespace moat {

/// Levenshtein distance between a and b.
size_t edit_distance(std::string_view a, std::string_view b);

/// How many bytes of a value an error message repeats before cutting it short.
inline constexpr size_t kQuotedValueMax = 64;

/// `v` in double quotes for an error message: control characters, DEL, `"`, `\` and bytes
/// that are not well-formed UTF-8 as C escapes (`\n`, `\x00`, `\xff`; valid UTF-8 stays
/// readable), at most `max` bytes of the value, and when it was cut, `…` after the closing
/// quote and its total length: `"aaaa"… (100000 bytes)`.
std::string quote_value(std::string_view v, size_t max = kQuotedValueMax);

/// `s` with control characters (and DEL) written as C escapes, the rest unchanged (UTF-8
/// passes through): keeps text that is not a quoted value, such as a path or a parser's
/// message, on one line. At most `max` bytes of `s` are kept, then `…`.
std::string escape_control(std::string_view s, size_t max = 4096);

}  // namespace moat
