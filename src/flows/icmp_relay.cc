#include "flows/icmp_relay.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "base/check.h"
#include "base/log.h"

namespace moat::flows {
namespace {

/// True if the host lets this process open a ping socket of `domain`.
bool probe_ping_socket(int domain) {
  const int proto = domain == AF_INET6 ? int(IPPROTO_ICMPV6) : int(IPPROTO_ICMP);
  UniqueFd fd(::socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, proto));
  return fd.valid();
}

}  // namespace

IcmpRelay::IcmpRelay(event::Loop& loop, GuestIo& guest, Counters& counters, const IcmpConfig& config)
    : loop_(loop),
      guest_(guest),
      counters_(counters),
      cfg_(config),
      sessions_(std::clamp<uint32_t>(config.max_sessions, 1, IcmpConfig::kMaxSessionsCap)),
      index_(sessions_.size()),
      lru_(sessions_) {
  cfg_.max_sessions = uint32_t(sessions_.size());
  available_[0] = probe_ping_socket(AF_INET);
  const int v4_errno = errno;
  available_[1] = probe_ping_socket(AF_INET6);
  if (!available_[0] || !available_[1]) {
    // R-ICMP-2: one warning, naming the knob the operator has to turn.
    MOAT_LOG(warn,
             "icmp: echo relay unavailable for %s%s%s (%s): the host forbids unprivileged ping sockets; "
             "allow this process's group in sysctl net.ipv4.ping_group_range",
             available_[0] ? "" : "IPv4", (!available_[0] && !available_[1]) ? " and " : "",
             available_[1] ? "" : "IPv6", std::strerror(available_[0] ? errno : v4_errno));
  }
  free_.reserve(sessions_.size());
  for (uint32_t i = uint32_t(sessions_.size()); i-- > 0;) {
    sessions_[i].relay = this;
    sessions_[i].index = i;
    free_.push_back(i);
  }
  recv_buffer_ = std::make_unique_for_overwrite<std::byte[]>(kRecvBufferSize);
  send_buffer_ = std::make_unique_for_overwrite<std::byte[]>(kRecvBufferSize);
}

IcmpRelay::~IcmpRelay() {
  for (uint32_t i = 0; i < sessions_.size(); ++i)
    if (sessions_[i].used) destroy(i);
}

void IcmpRelay::on_echo_v4(const wire::Ipv4Repr& ip, const wire::Icmpv4Repr& echo, Instant now) {
  if (!available_[0]) return counters_.inc(Counter::icmp_relay_unavailable);
  on_echo(IpAddr(ip.src), IpAddr(ip.dst), echo.ident, echo.seq, echo.data, now);
}

void IcmpRelay::on_echo_v6(const wire::Ipv6Repr& ip, const wire::Icmpv6Repr& echo, Instant now) {
  if (!available_[1]) return counters_.inc(Counter::icmp_relay_unavailable);
  on_echo(IpAddr(ip.src), IpAddr(ip.dst), echo.ident, echo.seq, echo.data, now);
}

void IcmpRelay::on_echo(const IpAddr& guest, const IpAddr& dst, uint16_t ident, uint16_t seq, Bytes data,
                        Instant now) {
  uint32_t s = find(guest, dst, ident);
  if (s == kNone) s = create(guest, dst, ident, now);
  if (s == kNone) return counters_.drop(DropReason::table_full);  // socket error, logged
  Session& session = sessions_[s];
  session.last_used = now;
  lru_.touch(s);

  // The request as the kernel wants it: an echo header whose identifier and checksum it
  // fills in itself (ping_v4_sendmsg / ping_v6_sendmsg), then the guest's data.
  const size_t len = wire::Icmpv4Repr::kHeaderLen + data.size();
  if (len > kRecvBufferSize) return counters_.drop(DropReason::oversize);
  std::byte* p = send_buffer_.get();
  store_u8(p, dst.is_v6 ? wire::kIcmpv6EchoRequest : wire::kIcmpEchoRequest);
  store_u8(p + 1, 0);
  store_be16(p + 2, 0);
  store_be16(p + 4, 0);
  store_be16(p + 6, seq);
  if (!data.empty()) std::memcpy(p + 8, data.data(), data.size());
  if (::send(session.fd.get(), p, len, MSG_DONTWAIT) < 0) {
    MOAT_LOG_RATELIMITED(debug, "icmp: echo to %s failed: %s", dst.to_string().c_str(), std::strerror(errno));
    return;
  }
  counters_.inc(Counter::icmp_echo_relayed);
  arm_expiry();
}

uint64_t IcmpRelay::hash_key(const IpAddr& guest, const IpAddr& dst, uint16_t ident) const {
  std::array<std::byte, 36> k{};
  if (guest.is_v6) {
    std::memcpy(k.data(), guest.v6.bytes.data(), 16);
    std::memcpy(k.data() + 16, dst.v6.bytes.data(), 16);
    k[32] = std::byte{6};
  } else {
    store_be32(k.data(), guest.v4.value);
    store_be32(k.data() + 16, dst.v4.value);
    k[32] = std::byte{4};
  }
  store_be16(k.data() + 33, ident);
  return hasher_(Bytes(k.data(), k.size()));
}

uint32_t IcmpRelay::find(const IpAddr& guest, const IpAddr& dst, uint16_t ident) const {
  return index_.find(hash_key(guest, dst, ident), [&](uint32_t s) {
    const Session& x = sessions_[s];
    return x.guest_ident == ident && x.guest == guest && x.destination == dst;
  });
}

uint32_t IcmpRelay::create(const IpAddr& guest, const IpAddr& dst, uint16_t ident, Instant now) {
  const int domain = dst.is_v6 ? AF_INET6 : AF_INET;
  UniqueFd fd(::socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, dst.is_v6 ? int(IPPROTO_ICMPV6) : int(IPPROTO_ICMP)));
  if (!fd) {
    MOAT_LOG_RATELIMITED(warn, "icmp: cannot open ping socket: %s", std::strerror(errno));
    return kNone;
  }
  // Connected, so the kernel hands this socket only replies from the destination.
  sockaddr_storage ss{};
  socklen_t len;
  if (dst.is_v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    std::memcpy(&s6->sin6_addr, dst.v6.bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(dst.v4.value);
    len = sizeof(sockaddr_in);
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    MOAT_LOG_RATELIMITED(debug, "icmp: connect to %s failed: %s", dst.to_string().c_str(), std::strerror(errno));
    return kNone;
  }

  if (free_.empty()) destroy(lru_.head());  // R-ICMP-2: at most max_sessions, LRU out
  const uint32_t s = free_.back();
  Session& session = sessions_[s];
  auto watch = loop_.watch(fd.get(), EPOLLIN, session);
  if (!watch) {
    MOAT_LOG_RATELIMITED(warn, "icmp: cannot watch ping socket: %s", watch.error().message());
    return kNone;
  }
  free_.pop_back();
  session.used = true;
  session.guest = guest;
  session.destination = dst;
  session.guest_ident = ident;
  session.hash = hash_key(guest, dst, ident);
  session.last_used = now;
  session.fd = std::move(fd);
  session.watch = std::move(*watch);
  index_.insert(session.hash, s);
  lru_.push_back(s);
  ++session_count_;
  return s;
}

void IcmpRelay::destroy(uint32_t s) {
  Session& session = sessions_[s];
  MOAT_ASSERT(session.used);
  session.watch.reset();  // before the fd closes
  session.fd.reset();
  index_.erase(session.hash, s, [&](uint32_t o) { return sessions_[o].hash; });
  lru_.remove(s);
  session.used = false;
  free_.push_back(s);
  --session_count_;
}

void IcmpRelay::Session::on_io(uint32_t) { relay->read_replies(*this); }

void IcmpRelay::read_replies(Session& session) {
  const Instant now = loop_.now();
  for (unsigned i = 0; i < kReadBatch; ++i) {
    const ssize_t n = ::recv(session.fd.get(), recv_buffer_.get(), kRecvBufferSize, MSG_DONTWAIT);
    if (n < 0) {
      // A reported ICMP error (sk_err) is returned once and cleared; keep reading.
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      continue;
    }
    if (size_t(n) < wire::Icmpv4Repr::kHeaderLen) continue;
    const std::byte* p = recv_buffer_.get();
    const uint8_t type = load_u8(p);
    const uint16_t seq = load_be16(p + 6);
    const Bytes data(p + 8, size_t(n) - 8);
    bool sent = false;
    // Replies are rewritten to the guest's identifier, sequence and data kept, and come
    // from the destination the guest pinged (R-ICMP-2).
    if (!session.destination.is_v6) {
      if (type != wire::kIcmpEchoReply) continue;
      wire::Icmpv4Repr reply;
      reply.type = wire::kIcmpEchoReply;
      reply.ident = session.guest_ident;
      reply.seq = seq;
      reply.data = data;
      sent = guest_.send_ipv4(session.destination.v4, session.guest.v4, wire::kProtoIcmp, reply.len(),
                              [&](MutBytes out) { reply.emit(out); });
    } else {
      if (type != wire::kIcmpv6EchoReply) continue;
      wire::Icmpv6Repr reply;
      reply.type = wire::kIcmpv6EchoReply;
      reply.ident = session.guest_ident;
      reply.seq = seq;
      reply.data = data;
      const Ipv6Addr& src = session.destination.v6;
      const Ipv6Addr& dst = session.guest.v6;
      sent = guest_.send_ipv6(src, dst, wire::kProtoIcmpv6, reply.len(), [&](MutBytes out) { reply.emit(out, src, dst); });
    }
    if (sent) {
      session.last_used = now;
      lru_.touch(session.index);
    }
  }
}

void IcmpRelay::arm_expiry() {
  if (expiry_timer_.pending() || lru_.empty()) return;
  expiry_timer_ = loop_.schedule_at(sessions_[lru_.head()].last_used + cfg_.idle_timeout, [this] { on_expiry(); });
}

void IcmpRelay::on_expiry() {
  const Instant now = loop_.now();
  while (!lru_.empty() && sessions_[lru_.head()].last_used + cfg_.idle_timeout <= now) destroy(lru_.head());
  arm_expiry();
}

}  // namespace moat::flows
