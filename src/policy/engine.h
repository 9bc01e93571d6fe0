#pragma once
// The policy engine (SPEC R-POL-7..14, R-DNS-8 exceptions). Pure: the caller passes the
// pins through PinLookup and gets verdicts back; no I/O, no clock, no logging.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/addr.h"
#include "base/function_ref.h"
#include "policy/groups.h"
#include "policy/profiles.h"
#include "policy/rule.h"

namespace moat::policy {

/// Names pinned to an address (R-DNS-6), as the engine sees them. The DNS pin set
/// implements it; tests use a map. Implementations normalise `a` (mapped → IPv4).
class PinLookup {
 public:
  virtual ~PinLookup() = default;
  /// True when `pred` returns true for some live pinned name of `a` (lowercase, no dot).
  virtual bool any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view name)> pred) const = 0;
};

/// A PinLookup with no pins.
class NoPins final : public PinLookup {
 public:
  bool any_pin_matches(const IpAddr&, FunctionRef<bool(std::string_view)>) const override { return false; }
};

/// The name source S of R-POL-7. `name` is not owned and must outlive the query.
struct NameSource {
  enum class Kind : uint8_t { none, claimed, connect };
  Kind kind = Kind::none;
  std::string_view name;
  static NameSource none() noexcept { return {}; }
  static NameSource claimed(std::string_view n) noexcept { return {Kind::claimed, n}; }  ///< SNI or Host
  static NameSource connect(std::string_view n) noexcept { return {Kind::connect, n}; }  ///< CONNECT authority
};

/// One policy question (R-POL-7). `port` is absent for ICMP.
struct Query {
  Direction dir = Direction::egress;  ///< egress or ingress (never any)
  IpAddr addr;                        ///< destination (egress) or peer (ingress); normalised by the engine
  std::optional<uint16_t> port;
  Proto proto = Proto::tcp;
  NameSource src;
};

/// The outcome of a decision: an action and the rule that produced it (nullopt = default).
struct Verdict {
  Action action = Action::deny;
  std::optional<size_t> rule;
  [[nodiscard]] bool allowed() const noexcept { return action == Action::allow; }
  [[nodiscard]] bool is_default() const noexcept { return !rule.has_value(); }
  friend bool operator==(const Verdict&, const Verdict&) = default;
};

/// R-POL-9 TCP treatment at SYN time.
enum class TcpPath : uint8_t { fast, gate, inspect, reject };
std::string_view tcp_path_name(TcpPath p) noexcept;  ///< "fast path", "fast path + gate", ...

/// Why a rule did or did not match one query (explain, R-POL-14).
enum class MatchOutcome : uint8_t { matched, skip_direction, skip_protocol, skip_port, skip_target, skip_no_pin };

/// One explain line's data; format_explain_line() renders it.
struct ExplainLine {
  size_t index = 0;
  Origin origin = Origin::cli;
  std::string text;
  MatchOutcome outcome = MatchOutcome::skip_target;
  std::string detail;  ///< "sni matches, pin matches", "name does not match", ...
};

/// The engine over one immutable policy. Cheap to query; build a new one on policy change
/// (R-POL-12 swaps whole snapshots).
class Engine {
 public:
  Engine(Policy policy, HostAddrs host);

  [[nodiscard]] const Policy& policy() const noexcept { return policy_; }
  [[nodiscard]] Group group_of(const IpAddr& a) const noexcept { return classify(a, host_); }

  /// R-POL-7: first matching rule in the query's direction, else that direction's default.
  /// An unspecified address (group none) is always denied, by default (no rule).
  [[nodiscard]] Verdict decide(const Query& q, const PinLookup& pins) const;

  /// R-POL-8: a DNS query for `qname` over `proto` (tcp/udp) to `port` (53/853). `qname`
  /// may have any case and one trailing dot; invalid names only match `any`/`host` rules.
  [[nodiscard]] Verdict decide_dns(std::string_view qname, Proto proto, uint16_t port) const;

  /// R-POL-9 for an egress TCP SYN to addr:port. V* is over-approximated: a domain/suffix
  /// deny counts as reachable whenever its filters pass; a domain/suffix allow counts when
  /// its filters pass and (with sni_requires_pin) some pin of the address satisfies it.
  [[nodiscard]] TcpPath select_path(const IpAddr& addr, uint16_t port, const PinLookup& pins) const;

  /// R-DNS-8 exceptions for a non-public `answer` to a name whose DNS verdict was
  /// `dns_verdict`: (a) that verdict came from an allow domain/suffix rule, or (b) the
  /// first egress/any rule whose CIDR or group target contains the address is an allow
  /// (protocol and port ignored). Defaults never grant. The floor is checked separately.
  [[nodiscard]] bool rebind_exception(const Verdict& dns_verdict, const IpAddr& answer) const;

  /// R-POL-14: one line per rule (matched or why skipped), from the same matcher as decide().
  [[nodiscard]] std::vector<ExplainLine> explain(const Query& q, const PinLookup& pins) const;

  /// R-POL-13 warnings (without the "moat: warning: " prefix). Never changes behaviour.
  [[nodiscard]] std::vector<std::string> lint() const;

 private:
  MatchOutcome match(const Rule& r, const Query& q, const IpAddr& a, Group g, const PinLookup& pins,
                     std::string* detail) const;

  /// The leading block-list rules (R-DNS-7: up to 10^6 `deny@name` / `deny@*.suffix`, egress,
  /// any protocol and port) as hash maps name -> rule index, so a decision costs O(labels)
  /// per name instead of a scan. Evaluated exactly where those rules stand: first.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using NameIndex = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;
  struct BlockIndex {
    NameIndex exact, suffix;
    size_t count = 0;  ///< rules [0, count) are indexed
  };
  /// The lowest-indexed block rule matching `name` (any case, one trailing dot), if any.
  [[nodiscard]] std::optional<size_t> block_lookup(std::string_view name) const;

  Policy policy_;
  HostAddrs host_;
  BlockIndex block_;
};

/// The live policy of one gateway. Owned by the loop thread; a live update (R-POL-12)
/// replace()s the whole snapshot between loop iterations, and `generation()` lets cached
/// per-peer verdicts (UDP, ICMP) notice that they must be re-evaluated.
class EngineRef {
 public:
  explicit EngineRef(std::shared_ptr<const Engine> e) : engine_(std::move(e)) {}
  [[nodiscard]] const Engine& get() const noexcept { return *engine_; }
  [[nodiscard]] std::shared_ptr<const Engine> snapshot() const noexcept { return engine_; }
  [[nodiscard]] uint64_t generation() const noexcept { return generation_; }
  void replace(std::shared_ptr<const Engine> e) {
    engine_ = std::move(e);
    ++generation_;
  }

 private:
  std::shared_ptr<const Engine> engine_;
  uint64_t generation_ = 0;
};

/// `rule #1  cli     allow@*.github.com:tcp:443     MATCH (sni matches, pin matches)`
std::string format_explain_line(const ExplainLine& l);

}  // namespace moat::policy
