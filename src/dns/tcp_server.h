#pragma once
// DNS over TCP from the guest (SPEC R-DNS-10). The TCP engine terminates the guest's
// TCP/53 connection like any other flow (so it counts toward limits.max_flows) and dials
// the DialPlan it is given: a listener of this server on 127.0.0.1, one listener per
// original destination, so the forwarder knows which resolver the guest asked (R-DNS-3
// step 5) without changing the TCP engine.
//
// Lifecycle of one session (one accepted loopback connection):
//   open       reading length-prefixed queries; each goes to the Forwarder, at most 16
//              in flight; answers are written in completion order.
//   throttled  16 in flight, or the forwarder is at dns.max_inflight (R-DNS-11): the
//              socket is not read until an answer comes back.
//   draining   the guest sent a zero-length message or FIN: nothing more is read; once
//              the in-flight answers are written the connection is shut down (FIN).
//   closed     drained, idle for dns.tcp_idle_timeout, an I/O error, or a malformed
//              frame: queries still in flight are cancelled, the slot is reused.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/addr.h"
#include "base/counters.h"
#include "base/unique_fd.h"
#include "dns/forwarder.h"
#include "event/loop.h"

namespace moat::dns {

struct TcpServerConfig {
  Duration idle_timeout = std::chrono::seconds(30);
  uint32_t max_sessions = 64;        ///< R-DNS-10
  uint32_t max_in_flight = 16;       ///< per session
  uint32_t max_listeners = 16;       ///< distinct direct-query destinations
};

class TcpServer {
 public:
  TcpServer(event::Loop& loop, Counters& counters, Forwarder& fwd, TcpServerConfig cfg);
  ~TcpServer();
  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;

  /// Where the TCP engine should dial a guest connection to dst:53 (127.0.0.1:port of the
  /// listener for that destination, created on first use). nullopt: refuse (listener cap,
  /// or the socket could not be created).
  std::optional<std::pair<IpAddr, uint16_t>> endpoint_for(const IpAddr& dst);
  [[nodiscard]] size_t sessions() const noexcept { return open_sessions_; }

 private:
  struct Listener;
  struct Session;
  void on_accept(Listener& l);
  /// Re-watches a listener paused by on_accept() for want of fds.
  void resume_accept(Listener& l);
  void on_session_io(uint32_t idx, uint32_t gen, uint32_t events);
  void read_queries(Session& s);
  void flush(Session& s);
  void close(Session& s);
  void update_interest(Session& s);
  void touch(Session& s);

  event::Loop& loop_;
  Counters& counters_;
  Forwarder& fwd_;
  TcpServerConfig cfg_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Session>> sessions_;
  size_t open_sessions_ = 0;
};

}  // namespace moat::dns
