#include "base/strings.h"

#include <algorithm>
#include <vector>

namespace moat {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {

void append_escaped(std::string& out, unsigned char c) {
  constexpr char kHex[] = "0123456789abcdef";
  switch (c) {
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    default: break;
  }
  out += "\\x";
  out += kHex[c >> 4];
  out += kHex[c & 0xf];
}


/// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong
/// forms, no surrogates, at most U+10FFFF), or 0 when there is none.
size_t utf8_sequence(std::string_view s) noexcept {
  auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xc0) == 0x80; };
  const unsigned char c = b(0);
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    if ((c == 0xe0 && b(1) < 0xa0) || (c == 0xed && b(1) >= 0xa0)) return 0;  // overlong, surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if ((c == 0xf0 && b(1) < 0x90) || (c == 0xf4 && b(1) >= 0x90)) return 0;  // overlong, > U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::string quote_value(std::string_view v, size_t max) {
  std::string out;
  out.reserve(std::min(v.size(), max) + 32);
  out += '"';
  size_t i = 0;
  while (i < v.size()) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      // Well-formed UTF-8 is shown as written (a non-ASCII name should read as the user
      // typed it); anything else is escaped byte by byte, so the bytes given are visible.
      const size_t n = utf8_sequence(v.substr(i));
      if (n != 0) {
        if (i + n > max) break;  // never cut a character in half
        out.append(v.substr(i, n));
        i += n;
        continue;
      }
    }
    if (i >= max) break;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c >= 0x7f) {
      append_escaped(out, c);
    } else {
      out += char(c);
    }
    ++i;
  }
  out += '"';
  if (i < v.size()) out += "\xe2\x80\xa6 (" + std::to_string(v.size()) + " bytes)";  // "…"
  return out;
}

std::string escape_control(std::string_view s, size_t max) {
  const std::string_view shown = s.substr(0, std::min(s.size(), max));
  std::string out;
  out.reserve(shown.size() + 8);
  for (char ch : shown) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) append_escaped(out, c);
    else out += ch;
  }
  if (shown.size() < s.size()) out += "\xe2\x80\xa6";
  return out;
}

}  // namespace moat
