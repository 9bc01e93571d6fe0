#pragma once
// DotTerminator: DNS over TLS from the guest (SPEC R-DNS-9, RFC 7858), a flows
// TcpPeerProvider registered while interception is on.
//
// TCP/853 to any address is taken at SYN onto an in-process DotSession: moat is the TLS
// server (a leaf from the gateway's LeafCache for the SNI, or an iPAddress leaf for the
// address the guest dialled; ALPN `dot` selected when offered), and the plaintext inside —
// DNS over TCP, length-prefixed (RFC 1035 §4.2.2) — goes to DNS's own TCP server exactly as
// a TCP/53 connection to that address would (same forwarder: block list, name policy, pins,
// rebind check, dns_* audit lines). TLS stays here; DNS semantics stay in dns/: the only
// thing this module knows of DNS is where the TCP/53 listener for an address is (a
// function the app wires to dns::TcpServer::endpoint_for).
//
// Lifecycle of one DotSession:
//   handshake  the guest's ClientHello..Finished through memory BIOs; the DNS listener is
//              connected meanwhile. tls.handshake_timeout (10 s) -> reset.
//   relay      guest records -> SSL_read -> plaintext to the DNS socket; DNS answers ->
//              SSL_write -> records to the guest. Every buffer is bounded (the BIO and the
//              rings below), and a full one stops reading the other side.
//   closing    guest close_notify or FIN -> SHUT_WR toward DNS (it answers what is in
//              flight, then closes); DNS EOF (its 30 s idle timeout, R-DNS-10) ->
//              close_notify + FIN to the guest.
//   failed     handshake failure or I/O error: the guest is reset (counted).
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>

#include "base/counters.h"
#include "base/memory_budget.h"
#include "event/loop.h"
#include "flows/tcp_peer_provider.h"
#include "tls/leaf.h"
#include "tls/openssl_handles.h"

namespace moat::tls {

struct DotConfig {
  Duration handshake_timeout = std::chrono::seconds(10);  ///< tls.handshake_timeout
  uint32_t buffer = 64 << 10;                             ///< per direction
  MemoryBudget* budget = nullptr;                         ///< R-LIM-2; null = not accounted
};

/// Where DNS over TCP to `dst` is served (the TCP/53 listener for that destination);
/// nullopt: refuse.
using DnsTcpEndpoint = std::function<std::optional<flows::Endpoint>(const IpAddr& dst)>;

class DotSession;

class DotTerminator final : public flows::TcpPeerProvider {
 public:
  /// `leaves` outlives it. Error: OpenSSL could not make the server context.
  static Result<std::unique_ptr<DotTerminator>, std::string> create(event::Loop& loop, Counters& counters,
                                                                    LeafCache& leaves, DnsTcpEndpoint dns,
                                                                    DotConfig config);
  ~DotTerminator() override;
  DotTerminator(const DotTerminator&) = delete;
  DotTerminator& operator=(const DotTerminator&) = delete;

  [[nodiscard]] size_t live_sessions() const noexcept { return sessions_.size(); }

  flows::TcpTake on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef ref) override;
  void on_closed(flows::TcpPeer& peer) override;

 private:
  friend class DotSession;
  DotTerminator(event::Loop& loop, Counters& counters, LeafCache& leaves, DnsTcpEndpoint dns, DotConfig config);

  event::Loop& loop_;
  Counters& counters_;
  LeafCache& leaves_;
  DnsTcpEndpoint dns_;
  DotConfig cfg_;
  SslCtxPtr ctx_;
  std::list<std::unique_ptr<DotSession>> sessions_, dead_;
  event::TimerHandle reaper_;
};

}  // namespace moat::tls
