#include "control/server.h"

#include <sys/socket.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace moat::control {

std::string default_socket_address(uid_t uid, std::string_view gateway_name) {
  return "@moat/" + std::to_string(uid) + "/" + std::string(gateway_name);
}

struct Server::Client {
  UniqueFd fd;          // before watch: the Watch is destroyed first
  event::Watch watch;
  event::TimerHandle idle;
  std::string in;       // bytes of requests not yet handled (at most max_request + one read)
  std::string out;      // [out_pos, size) is still to be written
  size_t out_pos = 0;
  bool closing = false;  // close once `out` is written (oversize request)
  uint64_t subscription = 0;        // events.subscribe: the EventSource id, 0 = none
  std::vector<std::string> events;  // the subscribed event names (empty: all)
  [[nodiscard]] bool writing() const noexcept { return out_pos < out.size(); }
};

Result<std::unique_ptr<Server>, std::string> Server::create(event::Loop& loop, Dispatcher& dispatcher,
                                                            Counters& counters, ServerOptions opts) {
  auto sock = transport::bind_unix(opts.address, SOCK_STREAM, 0600);
  if (!sock) return unexpected(sock.error());
  std::unique_ptr<Server> s(new Server(loop, dispatcher, counters, std::move(opts), std::move(sock).value()));
  auto w = loop.watch(s->sock_.fd(), EPOLLIN, [srv = s.get()](uint32_t) { srv->on_accept(); });
  if (!w) return unexpected(s->opts_.address + ": cannot watch the control socket: " + w.error().message());
  s->listen_watch_ = std::move(w).value();
  return s;
}

Server::Server(event::Loop& loop, Dispatcher& dispatcher, Counters& counters, ServerOptions opts,
               transport::BoundUnixSocket sock)
    : loop_(loop), dispatcher_(dispatcher), counters_(counters), opts_(std::move(opts)), sock_(std::move(sock)) {}

/// The connection of the request being handled (Dispatcher's Session).
class Server::ClientSession final : public Session {
 public:
  ClientSession(Server& s, Client& c) : s_(s), c_(c) {}
  MethodResult<void> subscribe_events(std::vector<std::string> events) override {
    if (!s_.opts_.events)
      return unexpected(MethodError{ErrorCode::not_found,
                                    "events.subscribe: this gateway has no audit log; start it with --audit FILE"});
    if (c_.subscription != 0)
      return unexpected(MethodError{ErrorCode::conflict, "events.subscribe: this connection is subscribed already"});
    Server* srv = &s_;
    Client* cp = &c_;
    c_.events = std::move(events);
    c_.subscription = s_.opts_.events->subscribe([srv, cp](std::string_view line) { srv->on_event(*cp, line); });
    return {};
  }

 private:
  Server& s_;
  Client& c_;
};

void Server::on_event(Client& c, std::string_view line) {
  if (!c.events.empty()) {
    // Audit lines are {"ts":"…","gw":"…","ev":"NAME",…} (obs/audit_log.cc): match the ev member.
    const size_t at = line.find("\"ev\":\"");
    if (at == std::string_view::npos) return;
    const std::string_view rest = line.substr(at + 6);
    const std::string_view ev = rest.substr(0, rest.find('"'));
    if (std::find(c.events.begin(), c.events.end(), ev) == c.events.end()) return;
  }
  if (c.closing || c.out.size() - c.out_pos + line.size() + 1 > opts_.max_event_backlog) {
    counters_.inc(Counter::control_events_dropped);
    return;
  }
  if (c.out_pos > 0 && c.out_pos >= c.out.size() / 2) {
    // Drop what was sent, so a stream that never drains completely stays bounded too.
    c.out.erase(0, c.out_pos);
    c.out_pos = 0;
  }
  c.out.append(line);
  c.out += '\n';
  // Written from the loop, not from inside the audit log's emit (no close from here).
  (void)c.watch.modify(EPOLLOUT);
}

Server::~Server() {
  for (auto& c : clients_) {
    if (c->subscription != 0 && opts_.events) opts_.events->unsubscribe(c->subscription);
    c->watch.reset();
    c->idle = {};
  }
  clients_.clear();
  listen_watch_.reset();
}

size_t Server::clients() const noexcept { return clients_.size(); }

size_t Server::buffered_bytes() const noexcept {
  size_t n = 0;
  for (const auto& c : clients_) n += c->in.size() + c->out.size();
  return n;
}

void Server::on_accept() {
  // Bounded: at most a backlog's worth per wakeup (listen(8)) plus a few, so one busy
  // listener cannot starve the data path.
  for (int i = 0; i < 16; ++i) {
    UniqueFd fd(::accept4(sock_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        MOAT_LOG_RATELIMITED(warn, "control socket %s: accept: %s", opts_.address.c_str(), std::strerror(errno));
      return;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
      counters_.inc(Counter::control_refused);
      MOAT_LOG_RATELIMITED(warn, "control socket %s: cannot read the peer's credentials: %s; closed",
                           opts_.address.c_str(), std::strerror(errno));
      continue;
    }
    if (cred.uid != 0 && cred.uid != opts_.owner_uid) {
      // R-CTL-1: only root and the user who started moat.
      counters_.inc(Counter::control_refused);
      MOAT_LOG_RATELIMITED(warn, "control socket %s: refused pid %d uid %u (only uid 0 and %u may connect)",
                           opts_.address.c_str(), int(cred.pid), unsigned(cred.uid), unsigned(opts_.owner_uid));
      continue;
    }
    if (clients_.size() >= opts_.max_clients) {
      counters_.inc(Counter::control_limited);
      static constexpr std::string_view kBusy =
          R"x({"id":null,"error":{"code":"limit","message":"too many control clients (at most 8)"}})x"
          "\n";
      (void)::send(fd.get(), kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      MOAT_LOG_RATELIMITED(warn, "control socket %s: %zu clients already; closed a new one", opts_.address.c_str(),
                           clients_.size());
      continue;
    }
    auto c = std::make_unique<Client>();
    c->fd = std::move(fd);
    Client* cp = c.get();
    auto w = loop_.watch(cp->fd.get(), EPOLLIN | EPOLLRDHUP, [this, cp](uint32_t ev) { on_client_io(*cp, ev); });
    if (!w) {
      MOAT_LOG_RATELIMITED(warn, "control socket %s: cannot watch a client: %s", opts_.address.c_str(),
                           w.error().message());
      continue;
    }
    cp->watch = std::move(w).value();
    clients_.push_back(std::move(c));
    counters_.inc(Counter::control_clients);
    touch(*cp);
  }
}

void Server::touch(Client& c) {
  Client* cp = &c;
  c.idle = loop_.schedule_after(opts_.idle_timeout, [this, cp] {
    if (cp->subscription != 0 && !cp->writing()) return touch(*cp);  // a quiet subscriber
    counters_.inc(Counter::control_idle_closed);
    close_client(*cp);
  });
}

void Server::close_client(Client& c) {
  auto it = std::find_if(clients_.begin(), clients_.end(), [&](const auto& p) { return p.get() == &c; });
  if (it == clients_.end()) return;
  // The Watch and timer go before the fd (Watch's contract); the Loop skips events of a
  // Watch destroyed in this batch, so destroying the client from its own callback is safe
  // once nothing of it is touched afterwards.
  if ((*it)->subscription != 0 && opts_.events) opts_.events->unsubscribe((*it)->subscription);
  (*it)->watch.reset();
  (*it)->idle = {};
  clients_.erase(it);
}

void Server::on_client_io(Client& c, uint32_t events) {
  if (events & EPOLLOUT) {
    if (!flush(c)) return close_client(c);
    if (c.writing()) return;
    if (c.closing) return close_client(c);
    std::string().swap(c.out);  // a big response's memory goes back at once
    c.out_pos = 0;
    (void)c.watch.modify(EPOLLIN | EPOLLRDHUP);
    // Requests that arrived while the response was queued.
    if (!handle_lines(c) || c.writing()) return;
  }
  if (c.writing() || c.closing) return;  // no reading while a response waits (bounded memory)
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    // Read a bounded amount per event; level-triggered, the loop comes back for the rest.
    char buf[16384];
    bool eof = false;
    for (int i = 0; i < 8; ++i) {
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) {
        eof = true;
        break;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
        return close_client(c);
      }
      c.in.append(buf, size_t(n));
      if (c.in.size() > opts_.max_request + 1) break;  // handle_lines() refuses it
    }
    touch(c);
    if (!handle_lines(c)) return;
    // A client may half-close after its last request: its responses are written first.
    if (eof && !c.writing()) return close_client(c);
    if (eof) c.closing = true;
  }
}

bool Server::handle_lines(Client& c) {
  size_t start = 0;
  bool alive = true;
  while (!c.writing() && !c.closing) {
    const size_t nl = c.in.find('\n', start);
    if (nl == std::string::npos) {
      if (c.in.size() - start > opts_.max_request) {
        // R-CTL-1: requests are at most 1 MiB. One `limit` answer, then the connection ends.
        counters_.inc(Counter::control_oversize);
        c.out = dispatcher_.handle(std::string_view(c.in).substr(start, opts_.max_request + 1));
        c.out += '\n';
        c.out_pos = 0;
        c.closing = true;
        start = c.in.size();
      } else {
        break;
      }
    } else {
      std::string_view line(c.in.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank lines are ignored
      counters_.inc(Counter::control_requests);
      ClientSession session(*this, c);
      c.out += dispatcher_.handle(line, &session);
      c.out += '\n';
    }
    if (!flush(c)) {
      alive = false;
      break;
    }
    if (c.writing()) {
      (void)c.watch.modify(EPOLLOUT);  // input waits until the response is out
      break;
    }
    std::string().swap(c.out);
    c.out_pos = 0;
  }
  if (!alive) {
    close_client(c);
    return false;
  }
  c.in.erase(0, start);
  if (c.closing && !c.writing()) {
    close_client(c);
    return false;
  }
  return true;
}

bool Server::flush(Client& c) {
  while (c.writing()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      return false;
    }
    c.out_pos += size_t(n);
    touch(c);
  }
  return true;
}

}  // namespace moat::control
