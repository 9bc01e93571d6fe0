#pragma once
// TcpPeerProvider: how a module above flows/ takes the upstream side of a guest TCP flow
// without the TCP engine knowing what it is (the DNS forwarder's TCP/53, TLS interception).
//
// The engine asks its providers in registration order at two points of a flow's life and
// stops at the first that acts; a flow no provider takes gets the built-in peers (the host
// socket on the fast path, the first-flight GatePeer in front of it on the gate and inspect
// paths):
//   SYN          admitted (path fast/gate/inspect, no name yet): a provider may rewrite the
//                DialPlan (DNS: moat's own listener, or an empty plan = RST), or supply an
//                in-process peer; the guest handshake then completes at once, nothing is
//                dialled and no first-flight gate runs (the provider enforces its own policy).
//                Or it may ask for the first flight to be classified (TcpTake::classify):
//                a fast-path flow then takes the gate path (dialled at once, guest bytes
//                held until classified), so that it reaches `classified` and `first flight`
//                below (TLS interception on tls.ports, CONNECT on any port: the fast path
//                classifies nothing).
//   classified   a gate/inspect flow's first flight was classified, *before* policy (f has
//                the name and FlowInfo::first_flight the held bytes): a provider may take
//                the flow and answer for its policy itself (CONNECT tunnels: the policy
//                query is the tunnel's target, not the proxy).
//   first flight a gate/inspect flow the policy allowed, with its name (SNI, Host, CONNECT)
//                and path: a provider may supply a peer that takes the flow from here on.
//                The held first flight is written to it (a TLS interceptor sees the
//                ClientHello; FlowInfo::first_flight shows it before the choice); a host
//                connection made for the gate path is reset (a gate flow whose host
//                already sent the guest bytes is not offered) unless the provider took it
//                with TcpFlowRef::take_host_socket() to use it itself (no second dial).
// A supplied peer is the provider's: it must stay valid until on_closed(), which the engine
// calls once the flow's slot is freed (no TcpConn call follows).
#include <cstdint>
#include <optional>

#include "base/unique_fd.h"

#include "base/result.h"
#include "flows/admission.h"
#include "flows/destinations.h"
#include "flows/flow_table.h"
#include "flows/tcp_peer.h"

namespace moat::flows {

class TcpEngine;

/// How an in-process peer wakes its flow. Copyable; a call after the flow ended is ignored
/// (the slot's generation no longer matches). Never call it from inside a TcpPeer method
/// (TcpConn is in the middle of a call): call it from the peer's own event instead.
class TcpFlowRef {
 public:
  TcpFlowRef() = default;
  /// readable() grew or read_closed() became true: TcpConn sends to the guest.
  void peer_readable() const;
  /// writable() grew: TcpConn reopens the guest's window.
  void peer_writable() const;
  /// The upstream failed: the guest gets RST.
  void peer_error(Errno e) const;
  [[nodiscard]] FlowId id() const noexcept { return id_; }
  /// During on_first_flight() / on_allowed() on the gate path only: the flow's connected host socket, which
  /// becomes the caller's (its watch is removed; the engine no longer touches it). An
  /// invalid fd anywhere else (inspect path: nothing was dialled).
  [[nodiscard]] UniqueFd take_host_socket() const;
  /// Where the engine would dial this flow (the first target of its DialPlan: the
  /// gateway's own address maps to loopback, R-ADDR-5); nullopt when there is none.
  [[nodiscard]] std::optional<Endpoint> dial_target() const;

 private:
  friend class TcpEngine;
  TcpFlowRef(TcpEngine* engine, FlowId id) noexcept : engine_(engine), id_(id) {}
  TcpEngine* engine_ = nullptr;
  FlowId id_;
};

/// What a provider does with a new flow at its SYN.
struct TcpTake {
  enum class Kind : uint8_t { pass, dial, peer, classify };
  Kind kind = Kind::pass;
  TcpPeer* peer = nullptr;
  static TcpTake pass() noexcept { return {}; }
  /// The provider rewrote the DialPlan (count 0: refused with RST, counted tcp.refused).
  static TcpTake dial() noexcept { return {Kind::dial, nullptr}; }
  /// The engine keeps the flow but classifies its first flight (fast -> gate path), so
  /// on_allowed() is offered it with its name.
  static TcpTake classify() noexcept { return {Kind::classify, nullptr}; }
  /// The flow terminates on `p` (in-process).
  static TcpTake in_process(TcpPeer& p) noexcept { return {Kind::peer, &p}; }
};

class TcpPeerProvider {
 public:
  virtual ~TcpPeerProvider() = default;
  /// A guest SYN that admission let through; `f` has the 4-tuple and f.path, `plan` is
  /// where the engine would dial.
  virtual TcpTake on_syn(const FlowInfo& f, DialPlan& plan, TcpFlowRef ref) {
    (void)f, (void)plan, (void)ref;
    return TcpTake::pass();
  }
  /// A gate/inspect flow's first flight was classified (f.name_src, f.name,
  /// f.first_flight), before any policy decision: a peer that takes the flow over and
  /// decides its policy itself, or nullptr. TcpFlowRef::take_host_socket() works here too.
  virtual TcpPeer* on_first_flight(const FlowInfo& f, TcpFlowRef ref) {
    (void)f, (void)ref;
    return nullptr;
  }
  /// A gate/inspect flow whose first flight was allowed (f.path, f.name_src, f.name set):
  /// a peer to take it over, or nullptr to pass.
  virtual TcpPeer* on_allowed(const FlowInfo& f, TcpFlowRef ref) {
    (void)f, (void)ref;
    return nullptr;
  }
  /// A flow this provider supplied `peer` for is gone; the engine will not touch `peer` again.
  virtual void on_closed(TcpPeer& peer) { (void)peer; }
};

}  // namespace moat::flows
