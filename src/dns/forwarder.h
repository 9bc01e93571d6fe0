#pragma once
// The DNS forwarder of one gateway (SPEC R-DNS-2..8, R-DNS-11): every guest query, over
// UDP or TCP and to any address, goes through one pipeline, in R-DNS-3's order:
//
//   validate (R-DNS-2) → block list (R-DNS-7) → name policy (Engine::decide_dns) →
//   inactive family → local names (host.moat.internal, dns.hosts) → upstream choice
//   (configured upstreams, or the queried resolver per dns.direct_queries) → forward with a
//   fresh random ID → rebind protection (R-DNS-8) → pin update (R-DNS-6) → guest ID
//   restored, UDP answers truncated to the guest's limit (R-DNS-5).
//
// Lifecycle of one forwarded query (a slot in a table of dns.max_inflight):
//   attempt   a new connected non-blocking UDP socket (or a TCP connection for tcp://
//             upstreams and after TC=1) to one upstream, with a fresh random ID, and a
//             timer at min(now + dns.timeout, deadline). Only an answer whose ID and
//             question match counts (the connected socket already filters the source).
//   failover  timeout, ICMP error or TCP failure: the upstream is marked unhealthy for
//             30 s (timeouts only) and the next one is tried; healthy upstreams go first.
//   done      an answer (any rcode: SERVFAIL/REFUSED/NXDOMAIN are answers, not retried),
//             or SERVFAIL at dns.deadline or when every upstream failed. The answer goes
//             to the query's AnswerSink; the slot, socket and timer are released.
//   cancelled the sink went away (TCP session closed): cancel(sink) releases its slots.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/counters.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "dns/block_list.h"
#include "dns/message.h"
#include "dns/pin_set.h"
#include "event/loop.h"
#include "policy/engine.h"

namespace moat::dns {

enum class Transport : uint8_t { udp, tcp };

struct Upstream {
  IpAddr addr;
  uint16_t port = 53;
  bool tcp = false;  ///< tcp:// — every attempt over TCP
  friend bool operator==(const Upstream&, const Upstream&) = default;
};

enum class DirectQueries : uint8_t { target, upstream, deny };  ///< dns.direct_queries

struct ForwarderConfig {
  std::vector<Upstream> upstreams;
  /// The gateway and DNS addresses: queries to these use the configured upstreams.
  std::vector<IpAddr> local_addrs;
  /// host.moat.internal answers: the gateway address of each active family.
  std::vector<IpAddr> gateway_addrs;
  bool ipv4_active = true, ipv6_active = true;
  Duration timeout = std::chrono::seconds(2);
  Duration deadline = std::chrono::seconds(5);
  Duration unhealthy_for = std::chrono::seconds(30);
  bool rebind_protection = true;
  DirectQueries direct_queries = DirectQueries::target;
  uint32_t max_inflight = 256;
  /// dns.hosts: normalised name → addresses.
  std::vector<std::pair<std::string, std::vector<IpAddr>>> hosts;
};

/// Who asked: the guest's address and port, and the address and port it queried (the
/// answer's source). For TCP the guest side may be unknown (unspecified).
struct Client {
  IpAddr guest;
  uint16_t guest_port = 0;
  IpAddr server;
  uint16_t server_port = 53;
  Transport transport = Transport::udp;
};

/// Receives finished answers. For UDP the gateway sends them to the guest; a TCP session
/// queues them on its connection.
class AnswerSink {
 public:
  virtual void on_answer(const Client& c, std::vector<std::byte> msg) = 0;

 protected:
  ~AnswerSink() = default;
};

/// What the audit log needs about a refused or answered query (R-OBS-3 dns_* events).
struct DnsEvent {
  enum class Kind : uint8_t { query, denied, blocked, rebind_blocked };
  Kind kind = Kind::query;
  const Client* client = nullptr;
  std::string_view qname;
  uint16_t qtype = 0;
  Rcode rcode = Rcode::noerror;
  std::optional<IpAddr> address;      ///< rebind: the offending answer
  std::optional<policy::Verdict> verdict;  ///< denied: the deciding rule
  std::optional<Upstream> upstream;   ///< query: who answered
  uint32_t answers = 0;
  Duration latency{};
  bool pinned = false;
};
std::string_view dns_event_name(DnsEvent::Kind k) noexcept;  ///< "dns_query", "dns_denied", ...

class Forwarder {
 public:
  Forwarder(event::Loop& loop, Counters& counters, ForwarderConfig cfg, const policy::EngineRef& policy,
            PinSet& pins, const BlockList& block);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  /// One guest query. The answer goes to `sink` — at once for local decisions, later for
  /// forwarded ones. False: dropped (garbage, or UDP above max_inflight).
  bool on_query(const Client& c, Bytes msg, AnswerSink& sink);
  /// Forgets every query of `sink` (its answers will never be delivered).
  void cancel(const AnswerSink& sink);

  /// True while another forwarded query fits (R-DNS-11); TCP sessions stop reading otherwise.
  [[nodiscard]] bool can_accept() const noexcept { return inflight_ < cfg_.max_inflight; }
  [[nodiscard]] size_t inflight() const noexcept { return inflight_; }
  [[nodiscard]] bool is_local(const IpAddr& a) const noexcept;
  [[nodiscard]] const ForwarderConfig& config() const noexcept { return cfg_; }

  /// Audit hook (obs::AuditLog in app/); called for denied/blocked/rebind and, if
  /// `all_queries`, for every answered query.
  void set_audit(std::function<void(const DnsEvent&)> fn, bool all_queries) {
    audit_ = std::move(fn);
    audit_all_ = all_queries;
  }
  /// Replaces the upstreams for new queries (resolv.conf change, reload).
  void set_upstreams(std::vector<Upstream> u);

 private:
  struct Pending;
  void start_attempt(uint32_t slot);
  void attempt_udp(Pending& p);
  void attempt_tcp(Pending& p);
  void on_udp_io(uint32_t slot, uint32_t gen, uint32_t events);
  void on_tcp_io(uint32_t slot, uint32_t gen, uint32_t events);
  void on_timer(uint32_t slot, uint32_t gen);
  void attempt_failed(Pending& p, bool timeout);
  void on_upstream_answer(Pending& p, Bytes msg, const Response& r);
  void finish(Pending& p, std::vector<std::byte> answer);
  void release(Pending& p);
  void reply_now(const Client& c, AnswerSink& sink, const Query& q, std::vector<std::byte> answer);
  void emit(const DnsEvent& e) const {
    if (audit_) audit_(e);
  }
  std::vector<uint32_t> upstream_order(Instant now) const;
  uint16_t random_id();

  event::Loop& loop_;
  Counters& counters_;
  ForwarderConfig cfg_;
  const policy::EngineRef& policy_;
  PinSet& pins_;
  const BlockList& block_;
  std::vector<std::unique_ptr<Pending>> slots_;
  std::vector<uint32_t> free_;
  size_t inflight_ = 0;
  std::vector<Instant> unhealthy_until_;  ///< per upstream
  std::function<void(const DnsEvent&)> audit_;
  bool audit_all_ = false;
  std::array<uint16_t, 64> rnd_{};
  size_t rnd_left_ = 0;
};

}  // namespace moat::dns
