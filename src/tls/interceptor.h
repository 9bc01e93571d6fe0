#pragma once
// Interceptor: the TcpPeerProvider that takes TLS flows to tls.ports (SPEC R-TLS-4) and
// runs a Session on each. flows/ knows nothing of TLS: the Interceptor registers itself
// with the Dispatch like the DNS interceptor does.
//
//   SYN to a tls.port      TcpTake::classify(): a fast-path flow takes the gate path, so its
//                          first flight is classified and offered to on_allowed (gate and
//                          inspect flows are classified anyway).
//   first flight allowed   bypass SNI -> pass (the engine splices the ClientHello upstream);
//                          not TLS -> pass (tls.non_tls = passthrough) or a session that
//                          resets (reject); TLS -> a Session on the gate path's already
//                          connected host socket (no second dial), or dialling itself on
//                          the inspect path.
//   flow gone              on_closed: the session is detached and freed after the current
//                          event (never from inside its own call chain).
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "flows/dispatch.h"
#include "flows/tcp_peer_provider.h"
#include "tls/keylog.h"
#include "tls/session.h"
#include "tls/upstream.h"

namespace moat::tls {

/// What `moat policy explain` and the provider agree on (R-TLS-4): would a TCP flow to
/// `port` with this SNI (empty = none known) be intercepted, bypassed, or not looked at?
enum class Treatment : uint8_t { not_intercepted, intercepted, bypassed };
Treatment treatment(const config::TlsConfig& cfg, uint16_t port, std::string_view sni);
std::string_view treatment_name(Treatment t) noexcept;

class Interceptor final : private flows::TcpPeerProvider {
 public:
  /// Loads everything that reads files (trust anchors, key log) now, at set-up.
  /// `leaves` (the CA's LeafCache) outlives the Interceptor. Error: a §5.2 line.
  static Result<std::unique_ptr<Interceptor>, std::string> create(event::Loop& loop, Counters& counters,
                                                                  const config::TlsConfig& cfg, LeafCache& leaves,
                                                                  obs::AuditLog* audit, MemoryBudget* budget,
                                                                  size_t ring_bytes);
  ~Interceptor() override;
  Interceptor(const Interceptor&) = delete;
  Interceptor& operator=(const Interceptor&) = delete;

  /// Registers the TCP provider.
  void attach(flows::Dispatch& d) { d.add_tcp_provider(*this); }
  /// The provider itself (tests register it with a TcpEngine directly).
  flows::TcpPeerProvider& provider() noexcept { return *this; }

  /// A session for a flow someone else classified (tls-edges: CONNECT's inner TLS, with an
  /// already connected upstream and the expected SNI). Owned by the Interceptor until the
  /// engine's on_closed() for it (the caller's provider must forward it: release()).
  Session& make_session(const flows::FlowInfo& f, flows::TcpFlowRef ref, UniqueFd upstream,
                        std::optional<flows::Endpoint> dial_to, std::string expected_sni);
  /// The flow of a session from make_session() is gone.
  void release(flows::TcpPeer& peer) { on_closed(peer); }

  [[nodiscard]] size_t live_sessions() const noexcept { return sessions_.size(); }
  [[nodiscard]] UpstreamTls& upstream() noexcept { return *upstream_; }
  [[nodiscard]] GuestTls& guest() noexcept { return *guest_; }
  [[nodiscard]] SessionEnv& env() noexcept { return env_; }
  [[nodiscard]] const KeyLog* keylog() const noexcept { return keylog_.get(); }

 private:
  Interceptor(event::Loop& loop, Counters& counters, const config::TlsConfig& cfg);
  flows::TcpTake on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef ref) override;
  flows::TcpPeer* on_allowed(const flows::FlowInfo& f, flows::TcpFlowRef ref) override;
  void on_closed(flows::TcpPeer& peer) override;
  [[nodiscard]] bool intercepted_port(uint16_t port) const noexcept;
  void reap();

  // A flow that is refused (tls.non_tls = reject, or no buffers): resets the guest from
  // its own event.
  class Refuser;

  event::Loop& loop_;
  Counters& counters_;
  config::TlsConfig cfg_;
  std::unique_ptr<KeyLog> keylog_;
  std::unique_ptr<UpstreamTls> upstream_;
  std::unique_ptr<GuestTls> guest_;
  SessionEnv env_;
  std::unordered_map<const flows::TcpPeer*, std::unique_ptr<flows::TcpPeer>> sessions_;  // live
  std::vector<std::unique_ptr<flows::TcpPeer>> dead_;      // freed by reap()
  event::TimerHandle reaper_;
};

}  // namespace moat::tls
