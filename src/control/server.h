#pragma once
// control::Server — the control socket of `moat run|attach|serve` (SPEC R-CTL-1): a unix
// stream socket on the gateway's own event loop that frames newline-delimited JSON requests
// for the Dispatcher (R-CTL-2) and writes its responses back.
//
// Endpoint: the abstract name `@moat/<uid>/<name>` by default (a guest's network namespace
// cannot reach the host's abstract namespace: it is per network namespace), or a
// filesystem path (`control.socket`, mode 0600, a stale socket replaced: bind_unix()).
//
// Who may talk: the peer's SO_PEERCRED uid must be 0 or `owner_uid` (the uid that started
// moat, read before any privilege drop). Anyone else is closed at once, counted in
// `control.refused` and logged (rate-limited).
//
// Bounds (a client that never reads, or sends without end, cannot grow memory):
//   * at most kMaxClients connections; one more is closed at accept (`control.limited`);
//   * a request line is at most Dispatcher::kMaxRequest (1 MiB) before its newline; a
//     longer one gets one `limit` error and the connection is closed;
//   * while a response is still queued for a client, the server neither reads nor parses
//     that client's input (the kernel's socket buffer pushes back on the client), so a
//     client holds at most one response (each is bounded by its method: flows ≤ 10000
//     entries, pins ≤ 10000) plus one partial request;
//   * idle timeout kIdleTimeout (60 s) without a complete request or any progress of its
//     output closes the connection (`control.idle_closed`); a subscriber with nothing to
//     send is not idle, one whose events stay unsent for that long is;
//   * events.subscribe (R-CTL-3): audit lines are appended to the connection's output as
//     they are emitted, at most max_event_backlog (1 MiB) unsent; beyond that they are
//     dropped and counted (`control.events_dropped`), so a subscriber that stops reading
//     costs 1 MiB, never the loop's time.
//
// Connection lifecycle:
//   accepted   peer checked; reading requests; each complete line is handled at once (the
//              dispatcher runs on this loop thread) and its response queued + written.
//   writing    a response is partly unsent: EPOLLOUT armed, input not read.
//   closed     EOF, error, oversize request, idle, or server destroyed. The Watch goes first,
//              then the fd (Watch's contract).
//
// Syscalls on the running path: accept4, getsockopt(SO_PEERCRED), recv/send (recvfrom,
// sendto), close, epoll_ctl — already in the seccomp allow-list (src/harden/seccomp.cc).
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "base/counters.h"
#include "base/result.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "control/dispatcher.h"
#include "event/loop.h"
#include "transport/unix_socket.h"

namespace moat::control {

/// R-CTL-1 default name: "@moat/<uid>/<name>".
std::string default_socket_address(uid_t uid, std::string_view gateway_name);

/// Where `events.subscribe` connections get their lines from (the gateway's audit log).
class EventSource {
 public:
  virtual ~EventSource() = default;
  using Sink = std::function<void(std::string_view line)>;
  /// `sink` receives each event line (no newline) on the loop thread until unsubscribe().
  virtual uint64_t subscribe(Sink sink) = 0;
  virtual void unsubscribe(uint64_t id) noexcept = 0;
};

struct ServerOptions {
  std::string address;  ///< "@abstract" or a filesystem path
  uid_t owner_uid = 0;  ///< besides root, the only uid allowed to connect
  size_t max_clients = 8;
  size_t max_request = Dispatcher::kMaxRequest;
  Duration idle_timeout = std::chrono::seconds(60);
  /// events.subscribe: the audit events; null = the method answers not_found.
  EventSource* events = nullptr;
  /// Event lines queued for one subscriber at most; more are dropped (control.events_dropped).
  size_t max_event_backlog = size_t{1} << 20;
};

class Server {
 public:
  /// Binds and listens (before the privilege drop: a filesystem socket is created with mode
  /// 0600 by the starting user). Error: a complete §5.2 text "<address>: <what>".
  static Result<std::unique_ptr<Server>, std::string> create(event::Loop& loop, Dispatcher& dispatcher,
                                                             Counters& counters, ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] const std::string& address() const noexcept { return opts_.address; }
  [[nodiscard]] size_t clients() const noexcept;
  /// Bytes held for all clients (partial requests + queued responses): the bound tests check.
  [[nodiscard]] size_t buffered_bytes() const noexcept;
  /// The filesystem path, if any (to hand over to the runas user), else empty.
  [[nodiscard]] const std::string& path() const noexcept { return sock_.path(); }

  struct Client;  // one connection (server.cc)
  class ClientSession;

 private:
  Server(event::Loop& loop, Dispatcher& dispatcher, Counters& counters, ServerOptions opts,
         transport::BoundUnixSocket sock);
  void on_accept();
  void on_client_io(Client& c, uint32_t events);
  /// Handles complete request lines until a response cannot be written at once. False when
  /// the client was closed (then `c` is gone).
  bool handle_lines(Client& c);
  bool flush(Client& c);
  void touch(Client& c);
  void close_client(Client& c);
  void on_event(Client& c, std::string_view line);

  event::Loop& loop_;
  Dispatcher& dispatcher_;
  Counters& counters_;
  ServerOptions opts_;
  transport::BoundUnixSocket sock_;  // before listen_watch_: the Watch goes first
  event::Watch listen_watch_;
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace moat::control
