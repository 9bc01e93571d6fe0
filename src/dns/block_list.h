#pragma once
// Block lists (SPEC R-DNS-7, R-DNS-12): exact names and `*.suffix` entries (the suffix
// form also matches the apex). Lookup walks the name's label boundaries: one hash probe
// per label, so the cost is O(labels) whatever the list size.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "base/result.h"
#include "policy/rule.h"

namespace moat::dns {

class BlockList {
 public:
  static constexpr size_t kMaxEntries = 1000000;          ///< total, over every source
  /// Per file: public block lists (hosts-format ad/malware lists) run to tens of MiB,
  /// unlike config files, so their limit is larger (read_bounded_file()).
  static constexpr size_t kMaxFileBytes = 64u << 20;

  /// A §5.2 error: `where` is `FILE:LINE` or `FILE`, `what` e.g. `"x" is not a valid name`.
  struct Error {
    std::string where;
    std::string what;
  };
  /// Adds one `dns.block` / `--dns-block` value (name or `*.suffix`). Error: what is wrong
  /// (the caller adds the `<where>`).
  Result<void, std::string> add(std::string_view entry);
  /// Reads a block file: one name per line or hosts-file lines (`0.0.0.0 name ...`, the
  /// address ignored), `#` comments. Errors: `FILE:LINE` + `"x" is not a valid name`,
  /// `FILE` + `cannot open: ...` / `larger than 64 MiB`.
  Result<void, Error> add_file(const std::string& path);
  /// Parses file contents (add_file without the I/O); `origin` names the file in errors.
  Result<void, Error> add_text(std::string_view text, std::string_view origin);
  /// R-DNS-12: the built-in well-known DoH/DoT names and the Firefox canary.
  void add_doh_names();

  /// True when `name` (lowercase, no trailing dot) is blocked.
  [[nodiscard]] bool blocked(std::string_view name) const;
  [[nodiscard]] size_t size() const noexcept { return exact_.size() + suffix_.size(); }
  [[nodiscard]] bool empty() const noexcept { return size() == 0; }

  /// The compiled deny rules (Origin::block) that go before every policy rule, so a blocked
  /// name is also denied in an SNI or Host (R-DNS-7, R-POL-6).
  [[nodiscard]] std::vector<policy::Rule> rules() const;

 private:
  Result<void, std::string> insert(std::string_view entry);
  std::unordered_set<std::string> exact_;
  std::unordered_set<std::string> suffix_;
  std::vector<std::string> order_;  ///< entries as added ("*.x" for suffixes), for rules()
};

}  // namespace moat::dns
