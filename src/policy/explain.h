#pragma once
// `moat policy explain` (SPEC R-POL-14, R-CLI-8): the whole report, assembled from the same
// Engine calls the data path makes (decide, explain, select_path, decide_dns,
// rebind_exception). Pure: the caller supplies pins and prints the lines.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "policy/engine.h"

namespace moat::policy {

/// A fixed set of pins (`--pin NAME=IP`, or a name destination pinned to its address).
class StaticPins final : public PinLookup {
 public:
  /// `name` is normalised by the caller (lowercase, no trailing dot); `a` is normalised here.
  void add(std::string name, const IpAddr& a);
  bool any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view name)> pred) const override;
  /// The names pinned to `a`, in insertion order.
  [[nodiscard]] std::vector<std::string> names_of(const IpAddr& a) const;

 private:
  std::vector<std::pair<std::string, IpAddr>> pins_;
};

/// An explain destination, `HOST:PORT[/tcp|/udp|/icmp]`, `[IPv6]:PORT`, `HOST/icmp` (R-CLI-8),
/// as `moat policy explain --dst` and the control method policy.explain take it. `host` may be
/// empty (ingress: only the guest port matters); ICMP has no port, TCP and UDP need one.
struct ExplainDst {
  std::string host;
  std::optional<uint16_t> port;
  std::string proto = "tcp";
};
/// Why a destination was refused: `what` follows the quoted text; `hint` may be empty.
struct ExplainDstError {
  std::string what, hint;
};
Result<ExplainDst, ExplainDstError> parse_explain_dst(std::string_view v);

/// What a front-end (`moat policy explain`, the control method policy.explain) collects
/// before a request is built: the parsed destination, an optional claimed name (already
/// normalised), the address a name destination stands for, the pins, ingress and its peer.
struct ExplainInputs {
  ExplainDst dst;
  std::string sni;
  std::optional<IpAddr> ip;
  std::vector<std::pair<std::string, IpAddr>> pins;  ///< names normalised
  bool ingress = false;
  std::optional<IpAddr> src;
  bool rebind_protection = true;
};
/// A refused combination: `field` is one of dst, sni, ip, src, ingress; `what` follows it.
struct ExplainInputError {
  std::string field, what, hint;
};

struct ExplainRequest {
  Query query;              ///< direction, address, port, protocol; `src` is ignored
  std::string name;         ///< a name destination or --sni (normalised), evaluated as claimed; empty = none
  bool rebind_protection = true;  ///< dns.rebind_protection
};

struct ExplainReport {
  std::vector<std::string> lines;
  Verdict verdict;          ///< with S = claimed(name) when a name is given, else S = none
  bool allowed = false;     ///< the exit status of `policy explain` (0 allowed, 1 denied)
};

/// Builds the request and fills `pins` (the given ones, plus a name destination pinned to
/// `ip`, or to a stand-in public address, as if the guest had resolved it through moat,
/// R-CLI-8). `name_of` spells another field in a message as the front-end calls it.
Result<ExplainRequest, ExplainInputError> make_explain_request(const ExplainInputs& in, StaticPins& pins,
                                                               FunctionRef<std::string(std::string_view field)> name_of);

/// Lines, in order: `query`, then for a name `dns` and `rebind`, one `rule #N` line per rule
/// (evaluated with the name as a claimed SNI when given), `verdict` (tenant / floor, and
/// the TCP path for TCP egress), `by` (the deciding rule or the default), and for a name
/// `no-name` (the S = none verdict: a first flight that carries no name).
ExplainReport explain_report(const Engine& e, const ExplainRequest& rq, const PinLookup& pins,
                             const StaticPins* shown_pins = nullptr);

}  // namespace moat::policy
