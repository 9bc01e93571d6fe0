#pragma once
// Admission: how the flow engines ask "may this flow exist?" (SPEC §2.4, R-POL-9..11).
// The interface belongs to flows so the engines stay testable without the app; the app
// implements it over the policy engine, the pin set, counters and the audit log. Every
// method is called on the loop thread. An engine without an Admission allows everything
// (tests of the data path itself).
#include <cstdint>
#include <string>
#include <string_view>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/time.h"

namespace moat::flows {

enum class FlowProto : uint8_t { tcp, udp, icmp };

/// R-POL-9 treatment of a TCP SYN (SPEC §2.3).
enum class TcpPath : uint8_t { fast, gate, inspect, reject };
std::string_view tcp_path_name(TcpPath p) noexcept;  ///< "fast", "gate", "inspect", "reject"

/// What the first flight said about the name (R-TCP-6).
enum class NameSrc : uint8_t { none, sni, host, connect, mismatch };
std::string_view name_src_name(NameSrc s) noexcept;  ///< null-able audit value: "", "sni", "host", ...

/// One flow as policy sees it: the remote end is the address the guest used (the gateway
/// for host services, not the loopback address it is dialled to).
struct FlowInfo {
  uint64_t id = 0;  ///< audit flow id (0 before one is assigned)
  FlowProto proto = FlowProto::tcp;
  bool ingress = false;
  IpAddr guest, remote;
  uint16_t guest_port = 0, remote_port = 0;  ///< 0 for ICMP
  TcpPath path = TcpPath::fast;
  NameSrc name_src = NameSrc::none;
  std::string_view name;  ///< from the first flight; not owned
  /// TcpPeerProvider::on_allowed only: the held first flight (a ClientHello, a request
  /// head, ...), so a provider can tell TLS from other bytes; not owned.
  Bytes first_flight;
};

/// How a flow ended, for the flow_close audit line (R-OBS-3 `close`).
struct CloseInfo {
  uint64_t bytes_from_guest = 0, bytes_to_guest = 0;
  Duration duration{};
  std::string_view reason;  ///< fin, guest_rst, upstream_rst, connect_failed, ..., policy_deny
};

class Admission {
 public:
  virtual ~Admission() = default;

  /// A fresh flow id for audit lines.
  virtual uint64_t next_flow_id() = 0;
  /// Egress TCP SYN: path selection (R-POL-9). A reject is counted and audited here.
  virtual TcpPath tcp_syn(const FlowInfo& f) = 0;
  /// The first flight of a gate/inspect flow was classified (`f.name_src`, `f.name`):
  /// true = allow. A deny (including NameSrc::mismatch) is counted and audited here.
  virtual bool tcp_first_flight(const FlowInfo& f) = 0;
  /// What tcp_decide() found.
  struct Decision {
    bool allow = false;
    std::string rule;  ///< the deciding rule: its label, else its index, else "default"
  };
  /// An egress TCP query a TcpPeerProvider makes for a flow it took before policy (a
  /// CONNECT target: f.remote / f.remote_port are the target's, f.name_src connect or
  /// none). Counted, and a deny audited, like tcp_first_flight.
  virtual Decision tcp_decide(const FlowInfo& f) { return Decision{tcp_first_flight(f), {}}; }
  /// First datagram to a UDP peer, or the first after a policy change (S = none).
  virtual bool udp(const FlowInfo& f) = 0;
  /// An ICMP echo request to a relayed destination (no port).
  virtual bool icmp_echo(const FlowInfo& f) = 0;
  /// A published-port connection or datagram (R-POL-11): `remote` is the peer.
  virtual bool ingress(const FlowInfo& f) = 0;
  /// Changes whenever the policy is replaced: cached verdicts must be re-evaluated.
  [[nodiscard]] virtual uint64_t generation() const = 0;
  /// policy.deny_response = drop (R-POL-10): denied SYNs/datagrams are ignored silently.
  [[nodiscard]] virtual bool drop_denied() const = 0;
  /// policy.first_flight_timeout (R-TCP-5).
  [[nodiscard]] virtual Duration first_flight_timeout() const = 0;

  /// Audit hooks: an allowed flow is established / a flow ended.
  virtual void flow_opened(const FlowInfo& f) = 0;
  virtual void flow_closed(const FlowInfo& f, const CloseInfo& c) = 0;
};

}  // namespace moat::flows
