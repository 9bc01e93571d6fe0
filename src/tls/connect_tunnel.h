#pragma once
// ConnectTunnels: HTTP CONNECT through a guest's proxy (SPEC R-TLS-8), a flows
// TcpPeerProvider registered while interception is on.
//
// It asks for every TCP flow's first flight (TcpTake::classify: fast-path flows take the
// gate path) and takes, before policy, those that start with "CONNECT ", with the gate
// path's connection to the proxy (TcpFlowRef::take_host_socket: no second dial). The flow's own
// destination is the proxy; the policy question is the tunnel's target.
//
// Lifecycle of one tunnel (ConnectPeer, an in-process flows::TcpPeer):
//   request    guest bytes are held (16 KiB) until the request head is complete; it is
//              parsed by http::parse_connect_request (fuzzed). Malformed (or a FIN before
//              the end of the head) -> answering 400.
//   decided    egress query: address = the literal target, or the proxy's address with
//              S = connect(host); port = the target port; protocol tcp (Admission::
//              tcp_decide, counted and audited there). Deny -> answering 403 with
//              `X-Moat-Deny: <rule label or index>`: the proxy is never sent a byte.
//   dialling   allow: on the gate path's connection (inspect path: moat dials the flow's
//              dial target, the proxy as the guest dialled it), moat writes the guest's
//              request head unchanged. A deny resets that connection (SO_LINGER 0). Guest bytes that
//              follow the head are held (within the same 16 KiB).
//   awaiting   the proxy's answer head is peeked (not consumed) until complete: an exact
//              2xx with nothing after the head -> open; another status -> open as well (the
//              answer is relayed, the connection is opaque); a malformed answer or a 2xx
//              with extra bytes -> answering 502 (counted tls.connect.bad_response).
//   open       the tunnel is spliced opaquely: every call goes to the proxy socket (a
//              flows::HostSocketPeer, with the flow buffer and memory budget of the
//              engine's own host sockets); the held bytes are written first.
//   answering  moat's own answer (400 / 403 / 502) goes to the guest, then FIN; the guest's
//              further bytes are discarded and the proxy connection (if any) is reset.
// A failed dial of every target resets the guest (as on the inspect path, R-TCP-5).
//
//   intercepted  a 2xx for a target port in tls.ports whose host is not bypassed, with an
//              Interceptor: the answer head is kept here for the guest, the proxy socket
//              (the tunnel) becomes the upstream of an interceptor Session whose expected
//              SNI is the authority host (another SNI closes it, audit
//              connect_sni_mismatch); every TcpPeer call goes to the session after the head.
// Without an Interceptor the same tunnels are spliced and the expected SNI is checked here
// (a ClientHello for another name resets the tunnel, audit connect_sni_mismatch).
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "base/counters.h"
#include "base/memory_budget.h"
#include "event/loop.h"
#include "flows/admission.h"
#include "flows/tcp_peer_provider.h"
#include "obs/audit_log.h"

namespace moat::tls {

class Interceptor;

struct ConnectConfig {
  std::vector<uint16_t> intercept_ports{443};  ///< tls.ports: where the expected SNI is enforced
  std::vector<std::string> bypass;             ///< tls.bypass patterns (exact, *.suffix, *)
  uint32_t flow_buffer = 256 << 10;            ///< limits.flow_buffer: the proxy socket's ring
  uint32_t max_window = 8 << 20;
  MemoryBudget* budget = nullptr;              ///< R-LIM-2; null = not accounted
  /// Runs the tunnelled TLS of an intercepted port (R-TLS-8 with R-TLS-4); null: the
  /// tunnel is spliced and only the expected SNI is checked here. Outlives the tunnels.
  Interceptor* interceptor = nullptr;
};

/// True when `host` matches one of the tls.bypass patterns (exact, `*.suffix` with the
/// apex, or `*`). Patterns are normalised (lowercase, no trailing dot) by the config.
bool bypassed(const std::vector<std::string>& patterns, std::string_view host);

class ConnectPeer;

class ConnectTunnels final : public flows::TcpPeerProvider {
 public:
  /// `admission` answers the tunnels' policy queries; `audit` may be null. All must outlive it.
  ConnectTunnels(event::Loop& loop, Counters& counters, flows::Admission& admission, obs::AuditLog* audit,
                 ConnectConfig config);
  ~ConnectTunnels() override;
  ConnectTunnels(const ConnectTunnels&) = delete;
  ConnectTunnels& operator=(const ConnectTunnels&) = delete;

  [[nodiscard]] size_t open_tunnels() const noexcept { return peers_.size(); }

  flows::TcpTake on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef ref) override;
  flows::TcpPeer* on_first_flight(const flows::FlowInfo& f, flows::TcpFlowRef ref) override;
  void on_closed(flows::TcpPeer& peer) override;

 private:
  friend class ConnectPeer;
  event::Loop& loop_;
  Counters& counters_;
  flows::Admission& admission_;
  obs::AuditLog* audit_;
  ConnectConfig cfg_;
  std::vector<std::byte> discard_;  // HostSocketPeer's fallback without SO_PEEK_OFF
  std::list<std::unique_ptr<ConnectPeer>> peers_;
  std::list<std::unique_ptr<ConnectPeer>> dead_;  // closed flows' peers, freed by reaper_
  event::TimerHandle reaper_;
};

}  // namespace moat::tls
