#include "dns/tcp_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"

namespace moat::dns {

struct TcpServer::Listener {
  IpAddr server;  ///< the address the guest dialled (a local address for the shared listener)
  bool local = false;
  uint16_t port = 0;
  UniqueFd fd;
  event::Watch watch;
  event::TimerHandle resume;  ///< while unwatched after EMFILE (see on_accept)
};

struct TcpServer::Session final : AnswerSink {
  TcpServer* owner = nullptr;
  uint32_t idx = 0;
  uint32_t gen = 0;
  bool open = false;
  bool draining = false;  ///< no more queries will be read
  Client client;
  UniqueFd fd;
  event::Watch watch;
  event::TimerHandle idle;
  std::vector<std::byte> in;   ///< partial frames from the guest
  std::vector<std::byte> out;  ///< length-prefixed answers not yet written
  size_t out_sent = 0;
  uint32_t in_flight = 0;

  void on_answer(const Client&, std::vector<std::byte> msg) override {
    if (!open) return;
    --in_flight;
    const size_t at = out.size();
    out.resize(at + 2 + msg.size());
    store_be16(out.data() + at, uint16_t(msg.size()));
    std::memcpy(out.data() + at + 2, msg.data(), msg.size());
    owner->flush(*this);
  }
};

TcpServer::TcpServer(event::Loop& loop, Counters& counters, Forwarder& fwd, TcpServerConfig cfg)
    : loop_(loop), counters_(counters), fwd_(fwd), cfg_(cfg) {}

TcpServer::~TcpServer() {
  for (auto& s : sessions_)
    if (s->open) fwd_.cancel(*s);
}

std::optional<std::pair<IpAddr, uint16_t>> TcpServer::endpoint_for(const IpAddr& dst) {
  const bool local = fwd_.is_local(dst) || fwd_.config().direct_queries == DirectQueries::upstream;
  for (auto& l : listeners_)
    if (local ? l->local : (!l->local && l->server == dst)) return std::make_pair(IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1)), l->port);
  size_t direct = 0;
  for (auto& l : listeners_) direct += l->local ? 0 : 1;
  if (!local && direct >= cfg_.max_listeners) {
    MOAT_LOG_RATELIMITED(debug, "dns: more than %u resolvers queried over TCP; refusing", cfg_.max_listeners);
    return std::nullopt;
  }
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return std::nullopt;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sl) != 0 || ::listen(fd.get(), 64) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &sl) != 0) {
    MOAT_LOG_RATELIMITED(warn, "dns: cannot open the TCP/53 listener: %s", std::strerror(errno));
    return std::nullopt;
  }
  auto l = std::make_unique<Listener>();
  l->server = local ? (fwd_.config().local_addrs.empty() ? dst : fwd_.config().local_addrs.front()) : dst;
  l->local = local;
  l->port = ntohs(sa.sin_port);
  Listener* lp = l.get();
  auto w = loop_.watch(fd.get(), EPOLLIN, [this, lp](uint32_t) { on_accept(*lp); });
  if (!w) return std::nullopt;
  l->fd = std::move(fd);
  l->watch = std::move(*w);
  listeners_.push_back(std::move(l));
  return std::make_pair(IpAddr(Ipv4Addr::from_octets(127, 0, 0, 1)), lp->port);
}

void TcpServer::resume_accept(Listener& l) {
  auto w = loop_.watch(l.fd.get(), EPOLLIN, [this, lp = &l](uint32_t) { on_accept(*lp); });
  if (!w) {
    l.resume = loop_.schedule_after(std::chrono::milliseconds(100), [this, lp = &l] { resume_accept(*lp); });
    return;
  }
  l.watch = std::move(*w);
  on_accept(l);
}

void TcpServer::on_accept(Listener& l) {
  for (int i = 0; i < 16; ++i) {
    UniqueFd fd(::accept4(l.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      // R-LIM-3: out of fds the backlog stays readable and the level-triggered watch would
      // spin on a failing accept(); unwatch the listener for a short back-off instead.
      const int e = errno;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        counters_.inc(Counter::dns_accept_emfile);
        MOAT_LOG_RATELIMITED(warn, "dns: TCP accept failed: %s; pausing the listener", std::strerror(e));
        l.watch.reset();
        l.resume = loop_.schedule_after(std::chrono::milliseconds(100), [this, lp = &l] { resume_accept(*lp); });
      }
      return;
    }
    if (open_sessions_ >= cfg_.max_sessions) {
      MOAT_LOG_RATELIMITED(debug, "dns: %u TCP sessions open; refusing another", cfg_.max_sessions);
      continue;  // closed: the guest sees the connection end
    }
    Session* s = nullptr;
    for (auto& x : sessions_)
      if (!x->open) {
        s = x.get();
        break;
      }
    if (!s) {
      sessions_.push_back(std::make_unique<Session>());
      s = sessions_.back().get();
      s->owner = this;
      s->idx = uint32_t(sessions_.size() - 1);
    }
    ++s->gen;
    const uint32_t idx = s->idx, gen = s->gen;
    auto w = loop_.watch(fd.get(), EPOLLIN | EPOLLRDHUP, [this, idx, gen](uint32_t ev) { on_session_io(idx, gen, ev); });
    if (!w) continue;
    s->open = true;
    s->draining = false;
    s->client = Client{};
    s->client.server = l.server;
    s->client.server_port = 53;
    s->client.transport = Transport::tcp;
    s->fd = std::move(fd);
    s->watch = std::move(*w);
    s->in.clear();
    s->out.clear();
    s->out_sent = 0;
    s->in_flight = 0;
    ++open_sessions_;
    counters_.inc(Counter::dns_tcp_sessions);
    touch(*s);
  }
}

void TcpServer::touch(Session& s) {
  const uint32_t idx = s.idx, gen = s.gen;
  if (!s.idle.reschedule(loop_.now() + cfg_.idle_timeout)) {
    s.idle = loop_.schedule_after(cfg_.idle_timeout, [this, idx, gen] {
      Session& x = *sessions_[idx];
      if (x.open && x.gen == gen) close(x);
    });
  }
}

void TcpServer::on_session_io(uint32_t idx, uint32_t gen, uint32_t events) {
  Session& s = *sessions_[idx];
  if (!s.open || s.gen != gen) return;
  if (events & EPOLLERR) return close(s);
  if (events & EPOLLOUT) flush(s);
  if (!s.open) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) read_queries(s);
}

void TcpServer::read_queries(Session& s) {
  while (s.open && !s.draining) {
    // Throttle: per-session pipeline depth and the gateway's in-flight limit (R-DNS-11).
    if (s.in_flight >= cfg_.max_in_flight || !fwd_.can_accept()) break;
    // Complete frames already buffered go first.
    if (s.in.size() >= 2) {
      const size_t len = load_be16(s.in.data());
      if (len == 0) {
        s.draining = true;  // zero-length message: close with FIN once answered (R-DNS-10)
        break;
      }
      if (s.in.size() >= 2 + len) {
        ++s.in_flight;
        std::vector<std::byte> frame(s.in.begin() + 2, s.in.begin() + 2 + ptrdiff_t(len));
        s.in.erase(s.in.begin(), s.in.begin() + 2 + ptrdiff_t(len));
        touch(s);
        if (!fwd_.on_query(s.client, frame, s)) --s.in_flight;  // dropped (garbage)
        continue;
      }
    }
    std::byte buf[4096];
    const size_t need = s.in.size() < 2 ? 2 - s.in.size() : 2 + load_be16(s.in.data()) - s.in.size();
    ssize_t n = ::recv(s.fd.get(), buf, std::min(sizeof buf, std::max<size_t>(need, 2)), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return close(s);
    }
    if (n == 0) {
      s.draining = true;  // guest FIN: answer what is in flight, then FIN
      break;
    }
    s.in.insert(s.in.end(), buf, buf + n);
  }
  if (s.open) update_interest(s);
}

void TcpServer::flush(Session& s) {
  while (s.out_sent < s.out.size()) {
    ssize_t n = ::send(s.fd.get(), s.out.data() + s.out_sent, s.out.size() - s.out_sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return close(s);
    }
    s.out_sent += size_t(n);
  }
  if (s.out_sent == s.out.size()) {
    s.out.clear();
    s.out_sent = 0;
  }
  touch(s);
  // An answer freed a pipeline slot: frames already buffered may now go.
  if (!s.draining) read_queries(s);
  else update_interest(s);
}

void TcpServer::update_interest(Session& s) {
  if (!s.open) return;
  if (s.draining && s.in_flight == 0 && s.out.empty()) {
    ::shutdown(s.fd.get(), SHUT_WR);
    return close(s);
  }
  uint32_t ev = EPOLLRDHUP;
  if (!s.draining && s.in_flight < cfg_.max_in_flight && fwd_.can_accept()) ev |= EPOLLIN;
  if (!s.out.empty()) ev |= EPOLLOUT;
  (void)s.watch.modify(ev);
}

void TcpServer::close(Session& s) {
  if (!s.open) return;
  fwd_.cancel(s);
  s.open = false;
  ++s.gen;
  s.watch.reset();
  s.fd.reset();
  s.idle.cancel();
  s.in.clear();
  s.out.clear();
  --open_sessions_;
}

}  // namespace moat::dns
