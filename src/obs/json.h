#pragma once
// A minimal JSON writer for one object per line (audit, stats). It appends to a caller's
// std::string and escapes every string per RFC 8259 §7: `"` and `\` get a backslash, the
// control characters U+0000..U+001F become \b \f \n \r \t or \u00XX, and bytes that are not
// valid UTF-8 become \uFFFD-free escapes of their byte value (\u00XX) so a guest-supplied
// name can never break the line or the JSON.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/addr.h"

namespace moat::obs {

/// Appends `s` as a JSON string literal (with the quotes).
void append_json_string(std::string& out, std::string_view s);

/// Writes members of an object already opened by the caller; handles the commas.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out, bool first = true) : out_(out), first_(first) {}

  JsonWriter& str(std::string_view key, std::string_view value);
  JsonWriter& u64(std::string_view key, uint64_t value);
  JsonWriter& i64(std::string_view key, int64_t value);
  JsonWriter& boolean(std::string_view key, bool value);
  JsonWriter& null(std::string_view key);
  /// "ip:port" ("[v6]:port" for IPv6); without a port just the address.
  JsonWriter& endpoint(std::string_view key, const IpAddr& addr, uint16_t port, bool with_port = true);
  /// Opens a nested object member; close it with end_object().
  JsonWriter& begin_object(std::string_view key);
  JsonWriter& end_object();

 private:
  void key(std::string_view k);
  std::string& out_;
  bool first_;
};

}  // namespace moat::obs
