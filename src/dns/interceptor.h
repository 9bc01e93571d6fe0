#pragma once
// Interceptor: DNS's place in the packet path (SPEC R-DNS-1). It owns the Forwarder and
// the guest TCP/53 server, and registers with the flow Dispatch:
//
//   UDP/53 to any address          -> Forwarder::on_query; answers go back to the guest
//                                     from the address it queried (this is the AnswerSink);
//   UDP 853/5353/5355/137, TCP 5353/5355 (DoQ, mDNS, LLMNR, NetBIOS-NS)
//                                  -> ICMP port unreachable (nothing with deny_response
//                                     drop), counted dns.alt_port_refused;
//   TCP/53 to any address          -> a TcpPeerProvider that points the flow's DialPlan at
//                                     the TcpServer's loopback listener for that
//                                     destination (the TCP engine terminates the guest's
//                                     connection like any other, so it counts toward
//                                     max_flows); TCP/853 gets an empty plan (RST, so stubs
//                                     fall back to port 53) unless DoT is terminated (tls/).
//
// The alternative ports are only refused with dns.refuse_alt_ports. It also renders the
// forwarder's events as R-OBS-3 dns_* audit lines.
#include <memory>

#include "base/counters.h"
#include "dns/block_list.h"
#include "dns/forwarder.h"
#include "dns/pin_set.h"
#include "dns/tcp_server.h"
#include "event/loop.h"
#include "flows/dispatch.h"
#include "flows/guest_io.h"
#include "obs/audit_log.h"
#include "policy/engine.h"

namespace moat::dns {

struct InterceptorConfig {
  ForwarderConfig forwarder;
  TcpServerConfig tcp;
  bool refuse_alt_ports = true;    ///< dns.refuse_alt_ports (R-DNS-1)
  bool deny_silently = false;      ///< policy.deny_response = drop: refusals send no ICMP
  bool audit_all_queries = false;  ///< audit.dns = all: a dns_query line per answer too
};

class Interceptor final : private flows::PacketHook, private flows::TcpPeerProvider, private AnswerSink {
 public:
  /// `audit` null: no dns_* lines. Everything passed by reference must outlive it.
  Interceptor(event::Loop& loop, Counters& counters, flows::GuestIo& io, const InterceptorConfig& config,
              const policy::EngineRef& policy, PinSet& pins, const BlockList& block, obs::AuditLog* audit);
  Interceptor(const Interceptor&) = delete;
  Interceptor& operator=(const Interceptor&) = delete;

  /// Registers the hooks and the TCP/53 provider above with `d`.
  void attach(flows::Dispatch& d);

  /// TCP/853 is taken by a DoT provider registered after this one (R-DNS-9): not refused here.
  void set_dot_terminated(bool on) noexcept { dot_terminated_ = on; }

  Forwarder& forwarder() noexcept { return *fwd_; }
  TcpServer& tcp_server() noexcept { return *tcp_; }

 private:
  bool on_guest_packet(const flows::GuestPacket& p) override;
  flows::TcpTake on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef ref) override;
  /// UDP DNS answers to the guest, from the address it queried (R-DNS-1).
  void on_answer(const Client& c, std::vector<std::byte> msg) override;
  void on_udp_query(const flows::GuestPacket& p);
  void refuse_port(const flows::GuestPacket& p);
  void audit_dns(const DnsEvent& e);

  Counters& counters_;
  flows::GuestIo& io_;
  const policy::EngineRef& policy_;
  obs::AuditLog* audit_;
  bool refuse_alt_ports_;
  bool dot_terminated_ = false;
  bool deny_silently_;
  std::unique_ptr<Forwarder> fwd_;
  std::unique_ptr<TcpServer> tcp_;
};

}  // namespace moat::dns
