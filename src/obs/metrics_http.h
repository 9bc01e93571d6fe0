#pragma once
// The tiny HTTP/1 server behind `--metrics ADDR:PORT` (SPEC R-OBS-7): GET (and HEAD)
// /metrics answers the Prometheus text; any other path 404, any other method 405, anything
// unparseable 400. One request per connection (`Connection: close`), on the gateway's loop.
//
// The request parser is separate and pure (parse_http_request) so it can be fuzzed
// (fuzz/metrics_http_request.cc): the peer is whoever can reach the listen address, so its
// bytes are untrusted.
//
// Bounds: a request head is at most kMaxRequestHead (8 KiB) — more is a 431 and a close;
// at most kMaxClients (16) connections — more are closed at accept; kIdleTimeout (10 s)
// for a whole exchange; one response queued per connection (nothing is read after the
// request head), so a scraper that never reads holds one response (~50 KiB) until the
// timeout.
//
// Connection lifecycle: accepted -> reading head -> response queued and written (EPOLLOUT
// while the socket is full) -> closed (after the write, at the timeout, or on an error).
// Syscalls on the running path: accept4, recvfrom, sendto, close, epoll_ctl (allowed by
// src/harden/seccomp.cc's socket group).
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/addr.h"
#include "base/counters.h"
#include "base/result.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "event/loop.h"

namespace moat::obs {

/// What parse_http_request() found in the bytes received so far.
struct HttpRequest {
  enum class Status : uint8_t {
    incomplete,  ///< no end of head yet (and not over the limit)
    complete,    ///< a request line and headers ending in an empty line
    bad,         ///< not HTTP/1.x (400)
    too_large,   ///< the head is over the limit (431)
  };
  Status status = Status::incomplete;
  std::string_view method;  ///< views into the input; valid with `complete`
  std::string_view target;  ///< as sent (origin form)
  std::string_view path;    ///< target without the query
  int minor_version = 1;
};

inline constexpr size_t kMaxRequestHead = 8192;

/// Parses the head of one HTTP/1.0 or 1.1 request (RFC 9112 §2-§5, strictly: one SP
/// between the three request-line parts, a token method, an origin-form target, CRLF or
/// bare LF line ends, header lines `name: value` with a token name). The body is ignored.
HttpRequest parse_http_request(std::string_view in, size_t max_head = kMaxRequestHead);

/// The response to a parsed request: status line, headers, body (`text` for GET /metrics).
/// `head_only`: HEAD.
std::string http_response(const HttpRequest& r, const std::string& metrics_text);

/// "ADDR:PORT" or "[V6ADDR]:PORT" (PORT 0-65535). Error: the reason, for a §5.2 line.
struct ListenAddr {
  IpAddr addr;
  uint16_t port = 0;
};
Result<ListenAddr, std::string> parse_listen_addr(std::string_view s);

class MetricsServer {
 public:
  using TextFn = std::function<std::string()>;
  /// Binds and listens at `addr` (before the privilege drop). Error: "<ADDR:PORT>: <what>".
  static Result<std::unique_ptr<MetricsServer>, std::string> create(event::Loop& loop, const ListenAddr& addr,
                                                                    Counters& counters, TextFn text);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// The bound port (the one asked for, or the kernel's choice for port 0).
  [[nodiscard]] uint16_t port() const noexcept { return port_; }

  static constexpr size_t kMaxClients = 16;
  static constexpr Duration kIdleTimeout = std::chrono::seconds(10);

  struct Client;

 private:
  MetricsServer(event::Loop& loop, Counters& counters, TextFn text);
  void on_accept();
  void on_client_io(Client& c, uint32_t events);
  void close_client(Client& c);

  event::Loop& loop_;
  Counters& counters_;
  TextFn text_;
  UniqueFd listen_fd_;  // before listen_watch_
  event::Watch listen_watch_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace moat::obs
