#include "dns/interceptor.h"

#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/udp.h"

namespace moat::dns {

namespace {
constexpr uint8_t kIcmp4PortUnreachable = 3;
constexpr uint8_t kIcmp6PortUnreachable = 4;
constexpr uint16_t kDns = 53, kDot = 853, kMdns = 5353, kLlmnr = 5355, kNetbiosNs = 137;
}  // namespace

Interceptor::Interceptor(event::Loop& loop, Counters& counters, flows::GuestIo& io, const InterceptorConfig& config,
                         const policy::EngineRef& policy, PinSet& pins, const BlockList& block, obs::AuditLog* audit)
    : counters_(counters),
      io_(io),
      policy_(policy),
      audit_(audit),
      refuse_alt_ports_(config.refuse_alt_ports),
      deny_silently_(config.deny_silently),
      fwd_(std::make_unique<Forwarder>(loop, counters, config.forwarder, policy, pins, block)),
      tcp_(std::make_unique<TcpServer>(loop, counters, *fwd_, config.tcp)) {
  if (audit_) fwd_->set_audit([this](const DnsEvent& e) { audit_dns(e); }, config.audit_all_queries);
}

void Interceptor::attach(flows::Dispatch& d) {
  d.add_hook(flows::PacketMatch::dst_ports(wire::kProtoUdp, {kDns}), *this);
  if (refuse_alt_ports_) {
    d.add_hook(flows::PacketMatch::dst_ports(wire::kProtoUdp, {kDot, kMdns, kLlmnr, kNetbiosNs}), *this);
    d.add_hook(flows::PacketMatch::dst_ports(wire::kProtoTcp, {kMdns, kLlmnr}), *this);
  }
  d.add_tcp_provider(*this);
}

bool Interceptor::on_guest_packet(const flows::GuestPacket& p) {
  if (p.proto == wire::kProtoUdp && p.dst_port == kDns) {
    on_udp_query(p);
    return true;
  }
  // Only the refused ports were registered besides UDP/53.
  refuse_port(p);
  return true;
}

void Interceptor::on_udp_query(const flows::GuestPacket& p) {
  Bytes payload;
  auto hdr = wire::UdpRepr::parse(p.l4, &payload);
  if (!hdr) {
    counters_.drop(DropReason::bad_udp);
    return;
  }
  Client c;
  c.guest = p.src;
  c.guest_port = hdr->src_port;
  c.server = p.dst;
  c.server_port = kDns;
  c.transport = Transport::udp;
  fwd_->on_query(c, payload, *this);
}

void Interceptor::refuse_port(const flows::GuestPacket& p) {
  counters_.inc(Counter::dns_alt_port_refused);
  if (deny_silently_) return;
  if (p.ip4) {
    io_.send_icmp_error_v4(*p.ip4, p.l4, p.ip4->dst, wire::kIcmpDestUnreachable, kIcmp4PortUnreachable, p.now);
  } else {
    io_.send_icmp_error_v6(*p.ip6, p.l4, p.ip6->dst, wire::kIcmpv6DestUnreachable, kIcmp6PortUnreachable, p.now);
  }
}

flows::TcpTake Interceptor::on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef) {
  if (f.remote_port == kDns) {
    // R-DNS-1/10: answered by the forwarder whatever the destination, through the listener
    // for that destination so the forwarder knows which resolver the guest asked.
    const bool to_gateway = plan.to_gateway;
    plan = flows::DialPlan{};
    plan.to_gateway = to_gateway;
    plan.is_dns = true;
    if (auto e = tcp_->endpoint_for(f.remote)) plan.add(flows::Endpoint{e->first, e->second});
    return flows::TcpTake::dial();
  }
  if (f.remote_port == kDot && refuse_alt_ports_ && !dot_terminated_) {
    plan = flows::DialPlan{};  // R-DNS-1: RST so stubs fall back to port 53
    return flows::TcpTake::dial();
  }
  return flows::TcpTake::pass();
}

void Interceptor::on_answer(const Client& c, std::vector<std::byte> msg) {
  if (c.guest.is_v6) io_.send_udp_v6(c.server.v6, c.guest.v6, c.server_port, c.guest_port, msg);
  else io_.send_udp_v4(c.server.v4, c.guest.v4, c.server_port, c.guest_port, msg);
}

// R-OBS-3 dns_query / dns_denied / dns_blocked / dns_rebind_blocked.
void Interceptor::audit_dns(const DnsEvent& e) {
  const std::string_view ev = dns_event_name(e.kind);
  if (!audit_->wants(ev)) return;
  static constexpr std::string_view kRcodes[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  const auto rc = size_t(e.rcode);
  const policy::Policy& pol = policy_.get().policy();
  audit_->emit(ev, [&](obs::JsonWriter& w) {
    obs::FlowFields f;
    f.proto = e.client->transport == Transport::tcp ? "tcp" : "udp";
    f.dir = "egress";
    f.src = e.client->guest;
    f.src_port = e.client->guest_port;
    f.dst = e.client->server;
    f.dst_port = e.client->server_port;
    f.name = e.qname;
    f.name_src = "query";
    const bool refused = e.kind != DnsEvent::Kind::query;
    f.verdict = refused ? "deny" : "allow";
    if (e.kind == DnsEvent::Kind::blocked) {
      f.rule = obs::RuleRef{std::nullopt, "block", {}, "block list"};
    } else if (e.verdict) {
      if (e.verdict->rule && *e.verdict->rule < pol.rules.size()) {
        const policy::Rule& r = pol.rules[*e.verdict->rule];
        f.rule = obs::RuleRef{*e.verdict->rule, policy::origin_name(r.origin), r.text, r.label};
      } else {
        f.rule = obs::RuleRef{std::nullopt, "default", {}, {}};
      }
    }
    if (e.kind == DnsEvent::Kind::rebind_blocked) f.reason = "rebind";
    obs::write_flow(w, f);
    w.str("qname", e.qname);
    w.u64("qtype", e.qtype);
    w.str("rcode", rc < std::size(kRcodes) ? kRcodes[rc] : "OTHER");
    if (e.address) w.str("address", e.address->to_string());
    if (!refused) {
      w.u64("answers", e.answers);
      if (e.upstream) w.endpoint("upstream", e.upstream->addr, e.upstream->port);
      w.u64("latency_ms", uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(e.latency).count()));
      w.boolean("pinned", e.pinned);
    }
  });
}

}  // namespace moat::dns
