#pragma once
// Small string helpers shared by every parser of user input (CLI flags, rule strings,
// --impair keys): "did you mean" suggestions need an edit distance.
#include <cstddef>
#include <string_view>

namespace moat {

/// Levenshtein distance between a and b.
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace moat
