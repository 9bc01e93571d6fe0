#pragma once
// Published ports (SPEC R-PUB): host listeners whose connections and datagrams become
// guest-bound flows.
//
// Lifecycle: constructed (nothing bound) -> bind_all() binds every listener before moat
// reports ready (a failure names the spec and errno; everything bound so far is closed)
// -> serving (accepts and datagrams on the loop; add() and remove() change the listeners at
// runtime, R-PUB-6) -> destroyed (listeners closed; flows already handed to the TCP engine
// live on there).
//
// Source preservation (R-PUB-5): the guest sees the peer's real address and port, except
// (a) a loopback peer appears as the gateway address of the guest's family, (b) a peer
// inside the guest prefix appears as the gateway, (c) a peer of a family the guest lacks
// appears as the gateway of the guest's family with an ephemeral port.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/counters.h"
#include "base/unique_fd.h"
#include "config/net_specs.h"
#include "event/loop.h"
#include "flows/dispatch.h"
#include "flows/guest_io.h"
#include "flows/tcp_engine.h"

namespace moat::ports {

struct PublisherConfig {
  std::optional<Ipv4Addr> guest4;  ///< nullopt: IPv4 inactive
  int prefix4 = 30;
  Ipv4Addr gateway4;
  std::optional<Ipv6Addr> guest6;  ///< nullopt: IPv6 inactive
  Ipv6Addr gateway6;
  bool preserve_source = true;
  Duration udp_idle_timeout = std::chrono::seconds(60);
  uint32_t udp_max_mappings = 1024;  ///< per entry
};

class Publisher final : public flows::PacketHook {
 public:
  Publisher(event::Loop& loop, flows::TcpEngine& tcp, flows::GuestIo& guest, Counters& counters,
            const PublisherConfig& config);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  /// Binds and registers every listener. Error: one line naming the spec (§5.2); then no
  /// listener is left (start-up: moat does not report ready).
  Result<void, std::string> bind_all(const std::vector<config::PublishSpec>& specs);

  /// Why add() or remove() failed; `message` is one line naming the spec (§5.2).
  struct ChangeError {
    enum class Kind { bind, conflict, not_found } kind;
    std::string message;
  };
  /// R-PUB-6 publish at runtime: binds one spec (every port of its range) or nothing. A host
  /// binding already published is a conflict (R-PUB-1), checked before any bind. Returns
  /// the describe() lines of the new listeners (ephemeral ports resolved).
  Result<std::vector<std::string>, ChangeError> add(const config::PublishSpec& spec);
  /// R-PUB-6 unpublish: closes the listeners of the published spec equal to `spec` (proto,
  /// bind, host ports, guest ports). TCP connections already accepted are flows of the TCP
  /// engine and continue; the UDP mappings of the listener end with it. Returns the number
  /// of listeners closed.
  Result<size_t, ChangeError> remove(const config::PublishSpec& spec);
  /// Ingress policy (R-POL-11) for connections and datagrams; null allows everything.
  void set_admission(flows::Admission* a) noexcept { admission_ = a; }
  /// "tcp 127.0.0.1:8080 -> 80" per listener, with ephemeral ports resolved.
  [[nodiscard]] std::vector<std::string> describe() const;

  /// A guest UDP datagram; true if it is a reply on a published UDP mapping (then it is
  /// sent to the peer through the listener, without egress policy: R-PUB-4).
  bool on_guest_udp_v4(const wire::Ipv4Repr& ip, Bytes udp, Instant now);
  bool on_guest_udp_v6(const wire::Ipv6Repr& ip, Bytes udp, Instant now);
  /// The same as a Dispatch hook (registered for UDP to any port, before DNS).
  bool on_guest_packet(const flows::GuestPacket& p) override {
    return p.ip4 ? on_guest_udp_v4(*p.ip4, p.l4, p.now) : on_guest_udp_v6(*p.ip6, p.l4, p.now);
  }

 private:
  struct Listener;
  struct Mapping;
  void on_tcp_accept(Listener& l);
  /// accept() failed for want of fds or memory: unwatch the listener for kAcceptBackoff.
  void pause_accepting(Listener& l, int err);
  void resume_accepting(Listener& l);
  /// How long a listener stays unwatched after EMFILE/ENFILE (R-LIM-3: no spin).
  static constexpr Duration kAcceptBackoff = std::chrono::milliseconds(100);
  void on_udp_readable(Listener& l);
  bool on_guest_udp(const IpAddr& src, const IpAddr& dst, uint16_t src_port, uint16_t dst_port, Bytes payload,
                    Instant now);
  /// The address the guest sees for a host peer (R-PUB-5); false if the guest has no family at all.
  bool source_for(const IpAddr& peer, uint16_t peer_port, IpAddr* guest_dst, IpAddr* src, uint16_t* src_port);
  bool admit(const IpAddr& peer, uint16_t peer_port, uint16_t guest_port, bool tcp);
  /// Binds every port of `spec` and appends the listeners; on failure closes only those.
  /// Errors start with `where` ("--publish" at start-up, "publish" at runtime) and the spec.
  Result<void, std::string> bind_spec(const config::PublishSpec& spec, std::string_view where);

  event::Loop& loop_;
  flows::TcpEngine& tcp_;
  flows::GuestIo& guest_;
  Counters& counters_;
  flows::Admission* admission_ = nullptr;
  PublisherConfig cfg_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::byte> buf_;  ///< one datagram (allocated once)
  uint64_t rng_;
};

}  // namespace moat::ports
