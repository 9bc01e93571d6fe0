#include "app/policy_admission.h"

namespace moat::app {

namespace {

policy::Proto proto_of(const flows::FlowInfo& f) {
  switch (f.proto) {
    case flows::FlowProto::tcp: return policy::Proto::tcp;
    case flows::FlowProto::udp: return policy::Proto::udp;
    case flows::FlowProto::icmp: break;
  }
  return f.remote.is_v6 ? policy::Proto::icmpv6 : policy::Proto::icmpv4;
}

std::string_view proto_name(const flows::FlowInfo& f) {
  switch (f.proto) {
    case flows::FlowProto::tcp: return "tcp";
    case flows::FlowProto::udp: return "udp";
    case flows::FlowProto::icmp: break;
  }
  return "icmp";
}

}  // namespace

PolicyAdmission::PolicyAdmission(policy::EngineRef& policy, PinsFn pins, Counters& counters, obs::AuditLog* audit,
                                 config::DenyResponse deny_response, Duration first_flight_timeout)
    : policy_(policy),
      pins_(std::move(pins)),
      counters_(counters),
      audit_(audit),
      deny_response_(deny_response),
      first_flight_timeout_(first_flight_timeout) {}

policy::Query PolicyAdmission::query(const flows::FlowInfo& f) const {
  policy::Query q;
  q.dir = f.ingress ? policy::Direction::ingress : policy::Direction::egress;
  q.addr = f.remote;
  if (f.proto != flows::FlowProto::icmp) q.port = f.ingress ? f.guest_port : f.remote_port;
  q.proto = proto_of(f);
  switch (f.name_src) {
    case flows::NameSrc::sni:
    case flows::NameSrc::host: q.src = policy::NameSource::claimed(f.name); break;
    case flows::NameSrc::connect: q.src = policy::NameSource::connect(f.name); break;
    default: q.src = policy::NameSource::none(); break;
  }
  return q;
}

namespace {
/// R-DNS-1: TCP/53 to any address is answered by moat's DNS forwarder (the DialPlan points at
/// its loopback listener), which applies name policy (R-POL-8) and the direct-query egress
/// check (R-DNS-3 step 5) to every query, so such a flow is not judged by its address.
bool dns_port(const flows::FlowInfo& f, bool dot) {
  return !f.ingress && f.proto == flows::FlowProto::tcp && (f.remote_port == 53 || (dot && f.remote_port == 853));
}
}  // namespace

/// R-DNS-1/9: also TCP/853 while DoT is terminated (its queries are judged one by one).
bool PolicyAdmission::dns_redirected(const flows::FlowInfo& f) const { return dns_port(f, dot_terminated_); }

policy::Verdict PolicyAdmission::open_verdict(const flows::FlowInfo& f) const {
  if (dns_redirected(f)) return policy::Verdict{policy::Action::allow, std::nullopt};
  return policy_.get().decide(query(f), pins_());
}

policy::Verdict PolicyAdmission::decide_counted(const flows::FlowInfo& f) {
  const policy::Verdict v = policy_.get().decide(query(f), pins_());
  counters_.inc(v.allowed() ? Counter::policy_allow : Counter::policy_deny);
  return v;
}

flows::TcpPath PolicyAdmission::tcp_syn(const flows::FlowInfo& f) {
  // A SYN-time verdict on DNS would only turn NXDOMAIN into a RST and send DNS bytes
  // through the first-flight gate.
  if (dns_redirected(f)) {
    counters_.inc(Counter::tcp_path_fast);
    return flows::TcpPath::fast;
  }
  const policy::Engine& e = policy_.get();
  const policy::TcpPath p = e.select_path(f.remote, f.remote_port, pins_());
  switch (p) {
    case policy::TcpPath::fast:
      counters_.inc(Counter::tcp_path_fast);
      counters_.inc(Counter::policy_allow);
      return flows::TcpPath::fast;
    case policy::TcpPath::gate:
      counters_.inc(Counter::tcp_path_gate);
      counters_.inc(Counter::policy_allow);
      return flows::TcpPath::gate;
    case policy::TcpPath::inspect:
      counters_.inc(Counter::tcp_path_inspect);
      return flows::TcpPath::inspect;
    case policy::TcpPath::reject: break;
  }
  counters_.inc(Counter::tcp_path_rejected);
  counters_.inc(Counter::policy_deny);
  if (audit_ && audit_->wants("flow_deny")) {
    flows::FlowInfo g = f;
    g.path = flows::TcpPath::reject;
    audit("flow_deny", g, e.decide(query(g), pins_()), false, "policy");
  }
  return flows::TcpPath::reject;
}

bool PolicyAdmission::tcp_first_flight(const flows::FlowInfo& f) {
  if (f.name_src == flows::NameSrc::mismatch) {
    // R-TCP-6: an absolute-form target naming another host is refused outright.
    counters_.inc(Counter::policy_deny);
    if (audit_) audit("flow_deny", f, policy::Verdict{policy::Action::deny, std::nullopt}, true, "authority_mismatch");
    return false;
  }
  const policy::Verdict v = decide_counted(f);
  if (!v.allowed() && audit_) audit("flow_deny", f, v, true, "policy");
  return v.allowed();
}

flows::Admission::Decision PolicyAdmission::tcp_decide(const flows::FlowInfo& f) {
  const policy::Verdict v = decide_counted(f);
  if (!v.allowed() && audit_) audit("flow_deny", f, v, true, "policy");
  Decision d;
  d.allow = v.allowed();
  const policy::Policy& pol = policy_.get().policy();
  if (v.rule && *v.rule < pol.rules.size()) {
    const policy::Rule& r = pol.rules[*v.rule];
    d.rule = r.label.empty() ? std::to_string(*v.rule) : r.label;
  } else {
    d.rule = "default";
  }
  return d;
}

bool PolicyAdmission::udp(const flows::FlowInfo& f) {
  const policy::Verdict v = decide_counted(f);
  if (audit_) audit(v.allowed() ? "flow_open" : "flow_deny", f, v, false, v.allowed() ? "" : "policy");
  return v.allowed();
}

bool PolicyAdmission::icmp_echo(const flows::FlowInfo& f) {
  const policy::Verdict v = decide_counted(f);
  if (!v.allowed() && audit_) audit("flow_deny", f, v, false, "policy");
  return v.allowed();
}

bool PolicyAdmission::ingress(const flows::FlowInfo& f) {
  const policy::Verdict v = decide_counted(f);
  if (!v.allowed() && audit_) audit("flow_deny", f, v, false, "policy");
  return v.allowed();
}

void PolicyAdmission::flow_opened(const flows::FlowInfo& f) {
  if (!audit_ || !audit_->wants("flow_open")) return;
  audit("flow_open", f, open_verdict(f), !f.ingress, "");
}

void PolicyAdmission::flow_closed(const flows::FlowInfo& f, const flows::CloseInfo& c) {
  if (!audit_ || !audit_->wants("flow_close")) return;
  audit("flow_close", f, open_verdict(f), !f.ingress, "", &c);
}

void PolicyAdmission::audit(std::string_view ev, const flows::FlowInfo& f, const policy::Verdict& v,
                            bool with_path, std::string_view reason, const flows::CloseInfo* close) {
  if (!audit_ || !audit_->wants(ev)) return;
  const policy::Engine& e = policy_.get();
  obs::FlowFields ff;
  ff.flow = f.id;
  ff.proto = proto_name(f);
  ff.dir = f.ingress ? "ingress" : "egress";
  // src/dst as the packets flow: egress guest -> remote, ingress peer -> guest.
  ff.src = f.ingress ? f.remote : f.guest;
  ff.src_port = f.ingress ? f.remote_port : f.guest_port;
  ff.dst = f.ingress ? f.guest : f.remote;
  ff.dst_port = f.ingress ? f.guest_port : f.remote_port;
  ff.ports = f.proto != flows::FlowProto::icmp;
  ff.verdict = v.allowed() ? "allow" : "deny";
  ff.name = f.name;
  ff.name_src = flows::name_src_name(f.name_src);
  if (v.rule && *v.rule < e.policy().rules.size()) {
    const policy::Rule& r = e.policy().rules[*v.rule];
    ff.rule = obs::RuleRef{*v.rule, policy::origin_name(r.origin), r.text, r.label};
    if (f.name_src == flows::NameSrc::none && r.target.is_name()) ff.name_src = "pin";
  } else {
    ff.rule = obs::RuleRef{std::nullopt, "default", "", ""};
  }
  if (with_path && f.path != flows::TcpPath::reject) ff.path = flows::tcp_path_name(f.path);
  ff.reason = reason;
  audit_->emit(ev, [&](obs::JsonWriter& w) {
    obs::write_flow(w, ff);
    if (ev == "flow_open") {
      w.str("tls", "none");  // no TLS interception (R-TLS) yet
      w.null("alpn");
    }
    if (close) {
      w.u64("bytes_from_guest", close->bytes_from_guest);
      w.u64("bytes_to_guest", close->bytes_to_guest);
      w.u64("duration_ms", uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(close->duration).count()));
      w.str("close", close->reason);
    }
  });
}

}  // namespace moat::app
