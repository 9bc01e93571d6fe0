#include "ports/publisher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <cstring>

#include "base/log.h"
#include "wire/udp.h"

namespace moat::ports {

namespace {

IpAddr from_sockaddr(const sockaddr_storage& ss, uint16_t* port) {
  if (ss.ss_family == AF_INET) {
    const auto& sa = reinterpret_cast<const sockaddr_in&>(ss);
    *port = ntohs(sa.sin_port);
    return Ipv4Addr{ntohl(sa.sin_addr.s_addr)};
  }
  const auto& sa6 = reinterpret_cast<const sockaddr_in6&>(ss);
  *port = ntohs(sa6.sin6_port);
  Ipv6Addr a;
  std::memcpy(a.bytes.data(), &sa6.sin6_addr, 16);
  if (a.is_v4_mapped())  // R-POL-4 normalisation: mapped peers are IPv4
    return Ipv4Addr::from_octets(a.bytes[12], a.bytes[13], a.bytes[14], a.bytes[15]);
  return a;
}

socklen_t to_sockaddr(const IpAddr& a, uint16_t port, sockaddr_storage* ss, bool v6_socket) {
  std::memset(ss, 0, sizeof *ss);
  if (!a.is_v6 && !v6_socket) {
    auto* sa = reinterpret_cast<sockaddr_in*>(ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    sa->sin_addr.s_addr = htonl(a.v4.value);
    return sizeof(sockaddr_in);
  }
  auto* sa6 = reinterpret_cast<sockaddr_in6*>(ss);
  sa6->sin6_family = AF_INET6;
  sa6->sin6_port = htons(port);
  if (a.is_v6) {
    std::memcpy(&sa6->sin6_addr, a.v6.bytes.data(), 16);
  } else {  // an IPv4 peer on a dual-stack socket
    uint8_t* b = sa6->sin6_addr.s6_addr;
    b[10] = b[11] = 0xff;
    auto o = a.v4.octets();
    std::memcpy(b + 12, o.data(), 4);
  }
  return sizeof(sockaddr_in6);
}

bool is_loopback(const IpAddr& a) { return a.is_v6 ? a.v6.is_loopback() : a.v4.is_loopback(); }

}  // namespace

/// One published mapping of a UDP listener: a host peer and how the guest sees it.
struct Publisher::Mapping {
  IpAddr peer;
  uint16_t peer_port = 0;
  IpAddr guest_dst;  ///< the guest address datagrams go to
  IpAddr src;        ///< the source the guest sees
  uint16_t src_port = 0;
  Instant last_used{};
  uint64_t policy_generation = 0;  ///< Admission::generation() of its ingress decision
};

struct Publisher::Listener final : event::IoHandler {
  Publisher* owner = nullptr;
  config::PublishSpec spec;
  uint16_t host_port = 0;   ///< bound port (ephemeral resolved)
  uint16_t guest_port = 0;
  UniqueFd fd;
  bool v6_socket = false;
  event::Watch watch;
  /// TCP, while accept() fails for want of fds (EMFILE/ENFILE): the listener is not
  /// watched (a level-triggered backlog would wake the loop forever) until this fires.
  event::TimerHandle resume;
  std::vector<Mapping> mappings;  ///< UDP only; bounded by udp_max_mappings
  void on_io(uint32_t) override {
    if (spec.proto == config::Proto::tcp) owner->on_tcp_accept(*this);
    else owner->on_udp_readable(*this);
  }
};

Publisher::Publisher(event::Loop& loop, flows::TcpEngine& tcp, flows::GuestIo& guest, Counters& counters,
                     const PublisherConfig& config)
    : loop_(loop), tcp_(tcp), guest_(guest), counters_(counters), cfg_(config), buf_(65536) {
  if (::getrandom(&rng_, sizeof rng_, GRND_NONBLOCK) != ssize_t(sizeof rng_)) rng_ = 0x6d6f6174;
}

Publisher::~Publisher() = default;

Result<void, std::string> Publisher::bind_all(const std::vector<config::PublishSpec>& specs) {
  for (const auto& spec : specs) {
    if (auto r = bind_spec(spec, "--publish"); !r) {
      listeners_.clear();
      return r;
    }
  }
  return {};
}

namespace {

}  // namespace

Result<std::vector<std::string>, Publisher::ChangeError> Publisher::add(const config::PublishSpec& spec) {
  // R-PUB-1: a host binding published twice is an error. Ephemeral ports never collide.
  if (spec.host_port != 0) {
    for (const auto& l : listeners_) {
      if (l->spec.proto != spec.proto || l->spec.bind != spec.bind) continue;
      if (l->host_port >= spec.host_port && uint32_t(l->host_port) < uint32_t(spec.host_port) + spec.count)
        return unexpected(ChangeError{ChangeError::Kind::conflict,
                                      "publish \"" + spec.text + "\": host port " + std::to_string(l->host_port) +
                                          " is already published by \"" + l->spec.text + "\""});
    }
  }
  const size_t before = listeners_.size();
  if (auto r = bind_spec(spec, "publish"); !r) return unexpected(ChangeError{ChangeError::Kind::bind, r.error()});
  std::vector<std::string> lines;
  auto all = describe();
  for (size_t i = before; i < all.size(); ++i) lines.push_back(std::move(all[i]));
  return lines;
}

Result<size_t, Publisher::ChangeError> Publisher::remove(const config::PublishSpec& spec) {
  const size_t n = std::erase_if(listeners_, [&](const auto& l) { return config::same_binding(l->spec, spec); });
  if (n == 0) {
    std::string have;
    for (const auto& d : describe()) have += (have.empty() ? "" : ", ") + d;
    return unexpected(ChangeError{ChangeError::Kind::not_found,
                                  "unpublish \"" + spec.text + "\": no such published port; published: " +
                                      (have.empty() ? "none" : have)});
  }
  return n;
}

Result<void, std::string> Publisher::bind_spec(const config::PublishSpec& spec, std::string_view where) {
  const size_t before = listeners_.size();
  {
    for (uint32_t i = 0; i < spec.count; ++i) {
      auto l = std::make_unique<Listener>();
      l->owner = this;
      l->spec = spec;
      l->guest_port = uint16_t(spec.guest_port + i);
      uint16_t want = spec.host_port == 0 ? 0 : uint16_t(spec.host_port + i);
      l->v6_socket = spec.bind.is_v6;
      int type = spec.proto == config::Proto::tcp ? SOCK_STREAM : SOCK_DGRAM;
      l->fd.reset(::socket(l->v6_socket ? AF_INET6 : AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      auto fail = [&](const char* what) -> Result<void, std::string> {
        int e = errno;
        listeners_.resize(before);  // close what this spec bound
        std::string msg = std::string(where) + " \"" + spec.text + "\": " + what + " " +
                          (spec.bind.is_v6 ? std::string("[").append(spec.bind.to_string()).append("]") : spec.bind.to_string()) + ":" +
                          std::to_string(want) + ": " + std::strerror(e);
        if (e == EACCES && want < 1024)
          msg += "; ports < 1024 need CAP_NET_BIND_SERVICE or sysctl net.ipv4.ip_unprivileged_port_start";
        return unexpected(msg);
      };
      if (!l->fd) return fail("socket for");
      int one = 1, zero = 0;
      // TCP: reuse a port with connections still in TIME_WAIT. Never on UDP: two UDP sockets
      // that both set SO_REUSEADDR share a port, which would hide a port already in use.
      if (type == SOCK_STREAM) ::setsockopt(l->fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (l->v6_socket) ::setsockopt(l->fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // [::] is dual-stack
      sockaddr_storage ss;
      socklen_t len = to_sockaddr(spec.bind, want, &ss, l->v6_socket);
      if (::bind(l->fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("bind");
      if (type == SOCK_STREAM && ::listen(l->fd.get(), 1024) != 0) return fail("listen on");
      socklen_t sl = sizeof ss;
      ::getsockname(l->fd.get(), reinterpret_cast<sockaddr*>(&ss), &sl);
      from_sockaddr(ss, &l->host_port);
      auto w = loop_.watch(l->fd.get(), EPOLLIN, *l);
      if (!w) {
        errno = w.error().value;
        return fail("watch");
      }
      l->watch = std::move(w).value();
      bool loopback = spec.bind.is_v6 ? spec.bind.v6.is_loopback() : spec.bind.v4.is_loopback();
      if (!loopback)
        MOAT_LOG(warn, "%.*s \"%s\": listening on a non-loopback address (%s)", int(where.size()), where.data(), spec.text.c_str(),
                 spec.bind.to_string().c_str());
      listeners_.push_back(std::move(l));
    }
  }
  return {};
}

std::vector<std::string> Publisher::describe() const {
  std::vector<std::string> out;
  for (const auto& l : listeners_) {
    std::string b = l->spec.bind.is_v6 ? std::string("[").append(l->spec.bind.to_string()).append("]") : l->spec.bind.to_string();
    out.push_back(std::string(l->spec.proto == config::Proto::tcp ? "tcp " : "udp ") + b + ":" +
                  std::to_string(l->host_port) + " -> guest port " + std::to_string(l->guest_port));
  }
  return out;
}

bool Publisher::source_for(const IpAddr& peer, uint16_t peer_port, IpAddr* guest_dst, IpAddr* src,
                           uint16_t* src_port) {
  // The guest address in the peer's family, or the other family if the guest lacks it.
  bool use_v6 = peer.is_v6 ? bool(cfg_.guest6) : !cfg_.guest4;
  if (use_v6 && !cfg_.guest6) return false;
  if (!use_v6 && !cfg_.guest4) return false;
  *guest_dst = use_v6 ? IpAddr(*cfg_.guest6) : IpAddr(*cfg_.guest4);
  IpAddr gateway = use_v6 ? IpAddr(cfg_.gateway6) : IpAddr(cfg_.gateway4);
  auto ephemeral = [&] {
    rng_ = rng_ * 6364136223846793005ull + 1442695040888963407ull;
    return uint16_t(49152 + (rng_ >> 33) % 16384);
  };
  if (!cfg_.preserve_source) {
    *src = gateway;
    *src_port = ephemeral();
    return true;
  }
  if (peer.is_v6 != use_v6) {  // (c) a family the guest lacks
    *src = gateway;
    *src_port = ephemeral();
    return true;
  }
  bool in_guest_net = use_v6 ? peer.v6.in_subnet(*cfg_.guest6, 64) || peer.v6 == *cfg_.guest6
                             : peer.v4.in_subnet(*cfg_.guest4, cfg_.prefix4);
  if (is_loopback(peer) || in_guest_net) {  // (a), (b)
    *src = gateway;
    *src_port = peer_port;
    return true;
  }
  *src = peer;
  *src_port = peer_port;
  return true;
}

void Publisher::on_tcp_accept(Listener& l) {
  for (int i = 0; i < 64; ++i) {  // bounded per wake-up
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    UniqueFd c(::accept4(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &sl, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c) {
      const int e = errno;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        pause_accepting(l, e);
        return;
      }
      if (e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
        MOAT_LOG_RATELIMITED(warn, "publish: accept failed: %s", std::strerror(e));
      return;
    }
    uint16_t peer_port = 0;
    IpAddr peer = from_sockaddr(ss, &peer_port);
    IpAddr guest, src;
    uint16_t src_port = 0;
    if (!source_for(peer, peer_port, &guest, &src, &src_port)) {
      linger lg{1, 0};  // the peer sees RST
      ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      counters_.inc(Counter::ports_refused);
      continue;
    }
    if (!admit(peer, peer_port, l.guest_port, true)) {
      linger lg{1, 0};  // R-POL-11: the accepted connection is closed (the peer sees RST)
      ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      continue;
    }
    // A refusal (max_flows, ...) resets the accepted connection inside the engine.
    auto r = tcp_.open_to_guest(std::move(c), guest, l.guest_port, src, src_port, loop_.now());
    if (!r) {
      counters_.inc(Counter::ports_refused);
      MOAT_LOG_RATELIMITED(debug, "publish: cannot open to the guest: %s", r.error().message());
    }
  }
}

// R-LIM-3: out of fds the backlog stays readable, and a level-triggered watch would
// wake the loop for a failing accept() forever (a spin). Instead the listener goes
// unwatched for kAcceptBackoff; the peers wait in the kernel's backlog meanwhile (their
// connect already succeeded) and are served once fds are free again. One failed accept
// per back-off is all the shortage costs.
void Publisher::pause_accepting(Listener& l, int err) {
  counters_.inc(Counter::ports_accept_emfile);
  MOAT_LOG_RATELIMITED(warn, "publish \"%s\": accept failed: %s; pausing the listener (raise ulimit -n)",
                       l.spec.text.c_str(), std::strerror(err));
  l.watch.reset();
  l.resume = loop_.schedule_after(kAcceptBackoff, [this, lp = &l] { resume_accepting(*lp); });
}

void Publisher::resume_accepting(Listener& l) {
  // The timer belongs to the listener, so `l` is alive here (remove() cancels it).
  auto w = loop_.watch(l.fd.get(), EPOLLIN, l);
  if (!w) {  // epoll itself out of memory: try again later rather than lose the listener
    l.resume = loop_.schedule_after(kAcceptBackoff, [this, lp = &l] { resume_accepting(*lp); });
    return;
  }
  l.watch = std::move(*w);
  on_tcp_accept(l);  // what queued meanwhile (level-triggered would report it anyway)
}

bool Publisher::admit(const IpAddr& peer, uint16_t peer_port, uint16_t guest_port, bool tcp) {
  if (!admission_) return true;
  flows::FlowInfo info;
  info.proto = tcp ? flows::FlowProto::tcp : flows::FlowProto::udp;
  info.ingress = true;
  info.remote = peer;  // the real peer (normalised by policy), not the address the guest sees
  info.remote_port = peer_port;
  info.guest_port = guest_port;
  info.guest = peer.is_v6 && cfg_.guest6 ? IpAddr(*cfg_.guest6) : cfg_.guest4 ? IpAddr(*cfg_.guest4) : IpAddr();
  return admission_->ingress(info);
}

void Publisher::on_udp_readable(Listener& l) {
  Instant now = loop_.now();
  for (int i = 0; i < 32; ++i) {
    sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t n = ::recvfrom(l.fd.get(), buf_.data(), buf_.size(), 0, reinterpret_cast<sockaddr*>(&ss), &sl);
    if (n < 0) return;
    uint16_t peer_port = 0;
    IpAddr peer = from_sockaddr(ss, &peer_port);
    Mapping* m = nullptr;
    for (auto& x : l.mappings)
      if (x.peer == peer && x.peer_port == peer_port) m = &x;
    if (m && now - m->last_used > cfg_.udp_idle_timeout) m = nullptr;  // expired: map afresh
    // R-POL-11: decided for a new mapping, and again after a policy change.
    if (admission_ && (!m || m->policy_generation != admission_->generation())) {
      if (!admit(peer, peer_port, l.guest_port, false)) {
        counters_.drop(DropReason::policy);
        if (m) m->last_used = Instant{};  // expire it
        continue;
      }
      if (m) m->policy_generation = admission_->generation();
    }
    if (!m) {
      Mapping fresh;
      fresh.peer = peer;
      fresh.peer_port = peer_port;
      if (!source_for(peer, peer_port, &fresh.guest_dst, &fresh.src, &fresh.src_port)) continue;
      // Drop expired mappings; at the cap evict the least recently used (R-PUB-4).
      std::erase_if(l.mappings, [&](const Mapping& x) { return now - x.last_used > cfg_.udp_idle_timeout; });
      if (l.mappings.size() >= cfg_.udp_max_mappings) {
        auto lru = std::min_element(l.mappings.begin(), l.mappings.end(),
                                    [](const Mapping& a, const Mapping& b) { return a.last_used < b.last_used; });
        l.mappings.erase(lru);
      }
      if (admission_) fresh.policy_generation = admission_->generation();
      l.mappings.push_back(fresh);
      m = &l.mappings.back();
    }
    m->last_used = now;
    Bytes payload(buf_.data(), size_t(n));
    bool ok = m->guest_dst.is_v6
                  ? guest_.send_udp_v6(m->src.v6, m->guest_dst.v6, m->src_port, l.guest_port, payload)
                  : guest_.send_udp_v4(m->src.v4, m->guest_dst.v4, m->src_port, l.guest_port, payload);
    if (ok) counters_.inc(Counter::udp_datagrams_to_guest);
  }
}

bool Publisher::on_guest_udp(const IpAddr& src, const IpAddr& dst, uint16_t src_port, uint16_t dst_port,
                             Bytes payload, Instant now) {
  for (auto& l : listeners_) {
    if (l->spec.proto != config::Proto::udp || l->guest_port != src_port) continue;
    for (auto& m : l->mappings) {
      if (m.src == dst && m.src_port == dst_port && m.guest_dst == src && now - m.last_used <= cfg_.udp_idle_timeout) {
        m.last_used = now;
        sockaddr_storage ss;
        socklen_t len = to_sockaddr(m.peer, m.peer_port, &ss, l->v6_socket);
        if (::sendto(l->fd.get(), payload.data(), payload.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&ss),
                     len) >= 0)
          counters_.inc(Counter::udp_datagrams_from_guest);
        return true;
      }
    }
  }
  return false;
}

bool Publisher::on_guest_udp_v4(const wire::Ipv4Repr& ip, Bytes udp, Instant now) {
  if (listeners_.empty()) return false;
  Bytes payload;
  auto u = wire::UdpRepr::parse(udp, &payload);
  if (!u) return false;
  return on_guest_udp(ip.src, ip.dst, u->src_port, u->dst_port, payload, now);
}

bool Publisher::on_guest_udp_v6(const wire::Ipv6Repr& ip, Bytes udp, Instant now) {
  if (listeners_.empty()) return false;
  Bytes payload;
  auto u = wire::UdpRepr::parse(udp, &payload);
  if (!u) return false;
  return on_guest_udp(ip.src, ip.dst, u->src_port, u->dst_port, payload, now);
}

}  // namespace moat::ports
