#pragma once
// PolicyAdmission: flows::Admission over the gateway's live policy (EngineRef), its pin
// set, the counters and the audit log (SPEC §2.4, R-POL-7..11, R-OBS-1/3).
//
// Counting: policy.allow / policy.deny once per evaluated decision (SYN: fast/gate count an
// allow, reject a deny; an inspect flow counts when its first flight is decided);
// tcp.path.* once per SYN that got a path.
// Audit: flow_deny for every refusal (SYN, first flight, datagram, echo, ingress);
// flow_open for allowed TCP flows once established and for each newly allowed UDP peer;
// flow_close for every TCP flow that got an id.
#include <cstdint>
#include <functional>

#include "base/counters.h"
#include "config/config.h"
#include "flows/admission.h"
#include "obs/audit_log.h"
#include "policy/engine.h"

namespace moat::app {

class PolicyAdmission final : public flows::Admission {
 public:
  using PinsFn = std::function<const policy::PinLookup&()>;
  PolicyAdmission(policy::EngineRef& policy, PinsFn pins, Counters& counters, obs::AuditLog* audit,
                  config::DenyResponse deny_response, Duration first_flight_timeout);

  uint64_t next_flow_id() override { return ++last_id_; }
  flows::TcpPath tcp_syn(const flows::FlowInfo& f) override;
  bool tcp_first_flight(const flows::FlowInfo& f) override;
  Decision tcp_decide(const flows::FlowInfo& f) override;
  bool udp(const flows::FlowInfo& f) override;
  bool icmp_echo(const flows::FlowInfo& f) override;
  bool ingress(const flows::FlowInfo& f) override;
  [[nodiscard]] uint64_t generation() const override { return policy_.generation(); }
  [[nodiscard]] bool drop_denied() const override { return deny_response_ == config::DenyResponse::drop; }
  [[nodiscard]] Duration first_flight_timeout() const override { return first_flight_timeout_; }
  void flow_opened(const flows::FlowInfo& f) override;
  void flow_closed(const flows::FlowInfo& f, const flows::CloseInfo& c) override;
  /// TCP/853 is DoT terminated by moat (R-DNS-9): judged per query like TCP/53.
  void set_dot_terminated(bool on) noexcept { dot_terminated_ = on; }

 private:
  bool dns_redirected(const flows::FlowInfo& f) const;
  policy::Query query(const flows::FlowInfo& f) const;
  policy::Verdict decide_counted(const flows::FlowInfo& f);
  /// The verdict an admitted TCP flow is audited with: the DNS forwarder's (allow, no rule)
  /// for TCP/53, else the policy's for the flow as it stands.
  policy::Verdict open_verdict(const flows::FlowInfo& f) const;
  void audit(std::string_view ev, const flows::FlowInfo& f, const policy::Verdict& v, bool with_path,
             std::string_view reason, const flows::CloseInfo* close = nullptr);

  policy::EngineRef& policy_;
  PinsFn pins_;
  Counters& counters_;
  obs::AuditLog* audit_;
  config::DenyResponse deny_response_;
  Duration first_flight_timeout_;
  uint64_t last_id_ = 0;
  bool dot_terminated_ = false;
};

}  // namespace moat::app
