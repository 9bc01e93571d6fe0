#include "flows/udp_relay.h"

#include <linux/errqueue.h>
#include <netinet/ip.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>

#include "base/check.h"
#include "base/log.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/udp.h"

namespace moat::flows {
namespace {

// ICMP codes used for R-UDP-5 (RFC 792, RFC 1191, RFC 1812 §5.2.7.1, RFC 4443 §3.1).
constexpr uint8_t kIcmp4NetUnreachable = 0, kIcmp4HostUnreachable = 1, kIcmp4PortUnreachable = 3,
                  kIcmp4FragNeeded = 4, kIcmp4AdminProhibited = 13;
constexpr uint8_t kIcmp6NoRoute = 0, kIcmp6AdminProhibited = 1, kIcmp6AddrUnreachable = 3,
                  kIcmp6PortUnreachable = 4;
constexpr uint32_t kIpv6MinMtu = 1280;
constexpr unsigned kMaxErrorsPerWakeup = 32;

/// Serialises an endpoint for hashing: family, 16 address bytes, port.
struct KeyBytes {
  std::array<std::byte, 24> b{};
  size_t n = 0;
  void addr(const IpAddr& a) {
    b[n++] = std::byte(a.is_v6 ? 6 : 4);
    if (a.is_v6) {
      std::memcpy(b.data() + n, a.v6.bytes.data(), 16);
      n += 16;
    } else {
      store_be32(b.data() + n, a.v4.value);
      n += 4;
    }
  }
  void u16(uint16_t v) {
    store_be16(b.data() + n, v);
    n += 2;
  }
  void u32(uint32_t v) {
    store_be32(b.data() + n, v);
    n += 4;
  }
  [[nodiscard]] Bytes span() const { return Bytes(b.data(), n); }
};

socklen_t to_sockaddr(const Endpoint& e, sockaddr_storage* ss) { return moat::to_sockaddr(e.addr, e.port, ss); }

bool from_sockaddr(const void* sa, socklen_t len, Endpoint* out) {
  sa_family_t family;
  if (len < socklen_t(sizeof(family))) return false;
  std::memcpy(&family, sa, sizeof(family));
  if (family == AF_INET6 && len >= socklen_t(sizeof(sockaddr_in6))) {
    sockaddr_in6 s6;
    std::memcpy(&s6, sa, sizeof(s6));
    Ipv6Addr a;
    std::memcpy(a.bytes.data(), &s6.sin6_addr, 16);
    *out = Endpoint{IpAddr(a), ntohs(s6.sin6_port)};
    return true;
  }
  if (family == AF_INET && len >= socklen_t(sizeof(sockaddr_in))) {
    sockaddr_in s4;
    std::memcpy(&s4, sa, sizeof(s4));
    *out = Endpoint{IpAddr(Ipv4Addr{ntohl(s4.sin_addr.s_addr)}), ntohs(s4.sin_port)};
    return true;
  }
  return false;
}

}  // namespace

// ---- Construction ------------------------------------------------------------------------

UdpRelay::UdpRelay(event::Loop& loop, GuestIo& guest, const Destinations& destinations, Counters& counters,
                   const UdpConfig& config)
    : loop_(loop),
      guest_(guest),
      destinations_(destinations),
      counters_(counters),
      cfg_(config),
      sessions_(std::clamp<uint32_t>(config.max_sessions, 1, UdpConfig::kMaxSessionsCap)),
      session_index_(sessions_.size()),
      session_lru_(sessions_),
      peer_index_(std::clamp<uint32_t>(config.max_peers_total, 1, UdpConfig::kMaxPeersTotalCap)),
      peer_lru_(peers_) {
  cfg_.max_sessions = uint32_t(sessions_.size());
  cfg_.max_peers = std::clamp<uint32_t>(cfg_.max_peers, 1, UdpConfig::kMaxPeersCap);
  cfg_.max_peers_total = std::clamp<uint32_t>(cfg_.max_peers_total, 1, UdpConfig::kMaxPeersTotalCap);
  cfg_.queue_datagrams = std::max<uint32_t>(cfg_.queue_datagrams, 1);
  cfg_.queue_bytes = std::max<uint32_t>(cfg_.queue_bytes, 2048);

  // Everything the datagram path needs is reserved now (pages are touched lazily).
  free_sessions_.reserve(sessions_.size());
  for (uint32_t i = uint32_t(sessions_.size()); i-- > 0;) {
    free_sessions_.push_back(i);
    for (uint8_t f = 0; f < 2; ++f) {
      HostSocket& hs = sessions_[i].sockets[f];
      hs.relay = this;
      hs.session = i;
      hs.family = Family(f);
    }
  }
  peers_.reserve(cfg_.max_peers_total);
  free_peers_.reserve(cfg_.max_peers_total);
  const size_t max_queues = std::max<size_t>(1, cfg_.queue_bytes_total / cfg_.queue_bytes);
  queues_.reserve(max_queues);
  free_queues_.reserve(max_queues);

  recv_buffers_ = std::make_unique_for_overwrite<std::byte[]>(kRecvBatch * kRecvBufferSize);
  fixed_charge_.set_budget(cfg_.budget);
  fixed_charge_.resize(kRecvBatch * kRecvBufferSize);
  queue_charge_.set_budget(cfg_.budget);
  for (unsigned i = 0; i < kRecvBatch; ++i) {
    recv_iovs_[i] = iovec{recv_buffers_.get() + i * kRecvBufferSize, kRecvBufferSize};
    recv_msgs_[i].msg_hdr.msg_iov = &recv_iovs_[i];
    recv_msgs_[i].msg_hdr.msg_iovlen = 1;
  }
}

UdpRelay::~UdpRelay() {
  // Watches must go before the Loop; destroying sessions releases them.
  for (uint32_t i = 0; i < sessions_.size(); ++i)
    if (sessions_[i].used) destroy_session(i);
}

// ---- From the guest ------------------------------------------------------------------------

void UdpRelay::on_datagram_v4(const wire::Ipv4Repr& ip, Bytes udp, Instant now) {
  Bytes payload;
  auto hdr = wire::UdpRepr::parse(udp, &payload);
  if (!hdr) return counters_.drop(DropReason::bad_udp);
  on_datagram(IpAddr(ip.src), IpAddr(ip.dst), hdr->src_port, hdr->dst_port, udp.first(8 + payload.size()), payload,
              hdr->checksum, ip.ttl, ip.dont_fragment, now);
}

void UdpRelay::on_datagram_v6(const wire::Ipv6Repr& ip, Bytes udp, Instant now) {
  Bytes payload;
  auto hdr = wire::UdpRepr::parse(udp, &payload);
  if (!hdr) return counters_.drop(DropReason::bad_udp);
  on_datagram(IpAddr(ip.src), IpAddr(ip.dst), hdr->src_port, hdr->dst_port, udp.first(8 + payload.size()), payload,
              hdr->checksum, ip.hop_limit, false, now);
}

void UdpRelay::on_datagram(const IpAddr& src, const IpAddr& dst, uint16_t src_port, uint16_t dst_port, Bytes udp,
                           Bytes payload, uint16_t checksum, uint8_t ttl, bool dont_fragment, Instant now) {
  counters_.inc(Counter::udp_datagrams_from_guest);
  const DialPlan plan = destinations_.plan_udp(dst, dst_port);
  if (plan.count == 0) return refuse(src, dst, udp, uint16_t(udp.size()), ttl, now);
  // UDP has no connect failure to fall back on: the first target is the destination.
  const Endpoint& target = plan.targets[0];

  uint32_t s = find_session(src, src_port);
  if (admission_) {
    const uint32_t known = s == kNone ? kNone : find_peer(s, target);
    if (known == kNone || peers_[known].policy_generation != admission_->generation()) {
      FlowInfo info;
      info.proto = FlowProto::udp;
      info.guest = src;
      info.guest_port = src_port;
      info.remote = dst;  // as the guest addressed it
      info.remote_port = dst_port;
      if (!admission_->udp(info)) {
        // A peer that a policy change now denies loses its filter hole at once.
        if (known != kNone) destroy_peer(known);
        // R-POL-10: ICMP administratively prohibited, or silence under drop.
        if (admission_->drop_denied()) return counters_.drop(DropReason::policy);
        return refuse(src, dst, udp, uint16_t(udp.size()), ttl, now, true);
      }
      if (known != kNone) peers_[known].policy_generation = admission_->generation();
    }
  }
  if (s == kNone) {
    // R-LIM-2: at 90 % of the memory budget no new session (R-POL-10 response).
    if (cfg_.budget && cfg_.budget->refuse_new(now)) {
      if (admission_ && admission_->drop_denied()) return counters_.drop(DropReason::memory);
      return refuse(src, dst, udp, uint16_t(udp.size()), ttl, now, true);
    }
    s = create_session(src, src_port, now);
  }
  Session& session = sessions_[s];
  session.last_active = now;
  session_lru_.touch(s);

  HostSocket* sock = socket_for(s, target.addr.is_v6 ? kV6 : kV4);
  if (!sock) return counters_.drop(DropReason::table_full);  // fd exhaustion; logged

  uint32_t p = find_peer(s, target);
  if (p == kNone) {
    p = create_peer(s, target);
    if (admission_) peers_[p].policy_generation = admission_->generation();
  }
  Peer& peer = peers_[p];
  peer.visible = Endpoint{dst, dst_port};
  peer.last_used = now;
  peer.udp_length = uint16_t(udp.size());
  peer.udp_checksum = checksum;
  peer.ttl = ttl;
  peer.dont_fragment = dont_fragment;
  peer_lru_.touch(p);
  session_list_remove(p);
  session_list_push_back(p);

  send_to_host(*sock, target, payload, dont_fragment, now);
  arm_expiry();
}

void UdpRelay::refuse(const IpAddr& src, const IpAddr& dst, Bytes udp, uint16_t udp_length, uint8_t ttl,
                      Instant now, bool prohibited) {
  // Nothing may be dialled for this destination (R-ADDR-5 with loopback mapping off):
  // answer like a closed port so the guest's socket fails fast.
  if (!src.is_v6) {
    wire::Ipv4Repr ip;
    ip.src = src.v4;
    ip.dst = dst.v4;
    ip.protocol = wire::kProtoUdp;
    ip.ttl = ttl;
    ip.payload_len = udp_length;
    guest_.send_icmp_error_v4(ip, udp, dst.v4, wire::kIcmpDestUnreachable,
                              prohibited ? kIcmp4AdminProhibited : kIcmp4PortUnreachable, now);
  } else {
    wire::Ipv6Repr ip;
    ip.src = src.v6;
    ip.dst = dst.v6;
    ip.next_header = wire::kProtoUdp;
    ip.hop_limit = ttl;
    ip.payload_len = udp_length;
    guest_.send_icmp_error_v6(ip, udp, dst.v6, wire::kIcmpv6DestUnreachable,
                              prohibited ? kIcmp6AdminProhibited : kIcmp6PortUnreachable, now);
  }
}

// ---- Sessions --------------------------------------------------------------------------------

uint32_t UdpRelay::find_session(const IpAddr& guest, uint16_t port) const {
  KeyBytes k;
  k.addr(guest);
  k.u16(port);
  return session_index_.find(hasher_(k.span()), [&](uint32_t s) {
    return sessions_[s].guest_port == port && sessions_[s].guest == guest;
  });
}

uint32_t UdpRelay::create_session(const IpAddr& guest, uint16_t port, Instant now) {
  if (free_sessions_.empty()) {
    // R-UDP-3: at the limit the least recently active session makes room.
    counters_.inc(Counter::udp_evicted);
    destroy_session(session_lru_.head());
  }
  const uint32_t s = free_sessions_.back();
  free_sessions_.pop_back();
  Session& session = sessions_[s];
  KeyBytes k;
  k.addr(guest);
  k.u16(port);
  session.used = true;
  session.guest = guest;
  session.guest_port = port;
  session.hash = hasher_(k.span());
  session.last_active = now;
  session.peer_count = 0;
  session.peer_head = session.peer_tail = kNone;
  session_index_.insert(session.hash, s);
  session_lru_.push_back(s);
  ++session_count_;
  counters_.values[size_t(Counter::udp_sessions_active)] = session_count_;
  return s;
}

void UdpRelay::destroy_session(uint32_t s) {
  Session& session = sessions_[s];
  MOAT_ASSERT(session.used);
  while (session.peer_head != kNone) destroy_peer(session.peer_head);
  for (HostSocket& hs : session.sockets) {
    release_queue(hs);
    hs.watch.reset();  // before the fd is closed (event/loop.h)
    hs.fd.reset();
    hs.dont_fragment = -1;
  }
  session_index_.erase(session.hash, s, [&](uint32_t o) { return sessions_[o].hash; });
  session_lru_.remove(s);
  session.used = false;
  free_sessions_.push_back(s);
  --session_count_;
  counters_.values[size_t(Counter::udp_sessions_active)] = session_count_;
}

UdpRelay::HostSocket* UdpRelay::socket_for(uint32_t s, Family family) {
  HostSocket& hs = sessions_[s].sockets[family];
  if (hs.fd) return &hs;
  const int domain = family == kV6 ? AF_INET6 : AF_INET;
  UniqueFd fd(::socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    MOAT_LOG_RATELIMITED(warn, "udp: cannot create host socket: %s", std::strerror(errno));
    return nullptr;
  }
  const int one = 1;
  // R-UDP-5: errors (ICMP from the path, local EMSGSIZE) arrive on the error queue.
  const bool ok = family == kV6
                      ? ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0 &&
                            ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one)) == 0
                      : ::setsockopt(fd.get(), IPPROTO_IP, IP_RECVERR, &one, sizeof(one)) == 0;
  if (!ok) {
    MOAT_LOG_RATELIMITED(warn, "udp: setsockopt on host socket failed: %s", std::strerror(errno));
    return nullptr;
  }
  auto watch = loop_.watch(fd.get(), EPOLLIN, hs);
  if (!watch) {
    MOAT_LOG_RATELIMITED(warn, "udp: cannot watch host socket: %s", watch.error().message());
    return nullptr;
  }
  hs.fd = std::move(fd);
  hs.watch = std::move(*watch);
  hs.dont_fragment = -1;
  return &hs;
}

uint16_t UdpRelay::host_port(const IpAddr& guest, uint16_t guest_port, bool v6) const {
  const uint32_t s = find_session(guest, guest_port);
  if (s == kNone) return 0;
  const HostSocket& hs = sessions_[s].sockets[v6 ? kV6 : kV4];
  if (!hs.fd) return 0;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(hs.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  Endpoint e;
  return from_sockaddr(&ss, len, &e) ? e.port : 0;
}

// ---- Peers ---------------------------------------------------------------------------------

uint64_t UdpRelay::peer_hash(uint32_t s, const Endpoint& target) const {
  KeyBytes k;
  k.addr(target.addr);
  k.u16(target.port);
  k.u32(s);
  return hasher_(k.span());
}

uint32_t UdpRelay::find_peer(uint32_t s, const Endpoint& target) const {
  return peer_index_.find(peer_hash(s, target),
                          [&](uint32_t p) { return peers_[p].session == s && peers_[p].target == target; });
}

uint32_t UdpRelay::create_peer(uint32_t s, const Endpoint& target) {
  // R-UDP-2: at most max_peers per session, least recently used first out; the pool-wide
  // cap evicts the globally least recently used peer.
  if (sessions_[s].peer_count >= cfg_.max_peers) destroy_peer(sessions_[s].peer_head);
  if (peer_count_ >= cfg_.max_peers_total) destroy_peer(peer_lru_.head());
  uint32_t p;
  if (!free_peers_.empty()) {
    p = free_peers_.back();
    free_peers_.pop_back();
  } else {
    p = uint32_t(peers_.size());
    peers_.emplace_back();  // within the reserved capacity: no reallocation
  }
  Peer& peer = peers_[p];
  peer = Peer{};
  peer.used = true;
  peer.session = s;
  peer.target = target;
  peer.hash = peer_hash(s, target);
  peer_index_.insert(peer.hash, p);
  peer_lru_.push_back(p);
  session_list_push_back(p);
  ++sessions_[s].peer_count;
  ++peer_count_;
  return p;
}

void UdpRelay::destroy_peer(uint32_t p) {
  Peer& peer = peers_[p];
  MOAT_ASSERT(peer.used);
  peer_index_.erase(peer.hash, p, [&](uint32_t o) { return peers_[o].hash; });
  peer_lru_.remove(p);
  session_list_remove(p);
  --sessions_[peer.session].peer_count;
  peer.used = false;
  free_peers_.push_back(p);
  --peer_count_;
}

void UdpRelay::session_list_remove(uint32_t p) {
  Peer& peer = peers_[p];
  Session& s = sessions_[peer.session];
  LruLinks& l = peer.session_lru;
  if (l.prev != kNone) peers_[l.prev].session_lru.next = l.next;
  else s.peer_head = l.next;
  if (l.next != kNone) peers_[l.next].session_lru.prev = l.prev;
  else s.peer_tail = l.prev;
  l = LruLinks{};
}

void UdpRelay::session_list_push_back(uint32_t p) {
  Peer& peer = peers_[p];
  Session& s = sessions_[peer.session];
  peer.session_lru.prev = s.peer_tail;
  peer.session_lru.next = kNone;
  if (s.peer_tail != kNone) peers_[s.peer_tail].session_lru.next = p;
  else s.peer_head = p;
  s.peer_tail = p;
}

// ---- Host I/O --------------------------------------------------------------------------------

void UdpRelay::HostSocket::on_io(uint32_t events) { relay->on_socket_io(*this, events); }

void UdpRelay::on_socket_io(HostSocket& sock, uint32_t events) {
  const Instant now = loop_.now();
  if (events & EPOLLERR) read_errors(sock, now);
  if (events & EPOLLOUT) flush_queue(sock, now);
  if (events & EPOLLIN) read_datagrams(sock, now);
}

void UdpRelay::read_datagrams(HostSocket& sock, Instant now) {
  Session& session = sessions_[sock.session];
  for (unsigned i = 0; i < kRecvBatch; ++i) {
    recv_msgs_[i].msg_hdr.msg_name = &recv_addrs_[i];
    recv_msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    recv_msgs_[i].msg_hdr.msg_control = nullptr;
    recv_msgs_[i].msg_hdr.msg_controllen = 0;
    recv_msgs_[i].msg_hdr.msg_flags = 0;
  }
  int n = ::recvmmsg(sock.fd.get(), recv_msgs_.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
  if (n < 0) {
    // A pending socket error (ICMP reported through sk_err, e.g. ECONNREFUSED) is returned
    // once by the next receive and then cleared; the error queue carries the detail.
    if (errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK) read_errors(sock, now);
    return;
  }
  for (int i = 0; i < n; ++i) {
    const msghdr& h = recv_msgs_[i].msg_hdr;
    Endpoint from;
    if (!from_sockaddr(&recv_addrs_[i], h.msg_namelen, &from)) continue;
    // R-UDP-2 filtering: only from an endpoint the guest sent to within the idle timeout.
    const uint32_t p = find_peer(sock.session, from);
    if (p == kNone || peers_[p].last_used + cfg_.idle_timeout <= now) {
      counters_.inc(Counter::udp_unsolicited);
      continue;
    }
    const Peer& peer = peers_[p];
    const Bytes data(recv_buffers_.get() + size_t(i) * kRecvBufferSize,
                     std::min<size_t>(recv_msgs_[i].msg_len, kRecvBufferSize));
    // R-UDP-4: the source is the peer exactly as the guest addressed it.
    bool sent;
    if (!session.guest.is_v6)
      sent = guest_.send_udp_v4(peer.visible.addr.v4, session.guest.v4, peer.visible.port, session.guest_port, data);
    else
      sent = guest_.send_udp_v6(peer.visible.addr.v6, session.guest.v6, peer.visible.port, session.guest_port, data);
    if (sent) {
      counters_.inc(Counter::udp_datagrams_to_guest);
      session.last_active = now;
      session_lru_.touch(sock.session);
    }
  }
}

void UdpRelay::read_errors(HostSocket& sock, Instant now) {
  alignas(cmsghdr) std::array<std::byte, 512> control;
  for (unsigned i = 0; i < kMaxErrorsPerWakeup; ++i) {
    sockaddr_storage name{};
    iovec iov{err_payload_.data(), err_payload_.size()};
    msghdr msg{};
    msg.msg_name = &name;
    msg.msg_namelen = sizeof(name);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(sock.fd.get(), &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) return;  // EAGAIN: queue empty

    const sock_extended_err* ee = nullptr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
          (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR))
        ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
    }
    Endpoint target;
    if (!ee || !from_sockaddr(&name, msg.msg_namelen, &target)) continue;

    // The original destination finds the peer. Local errors (EMSGSIZE) on an unconnected
    // socket carry port 0: take the session's most recent peer at that address.
    uint32_t p = find_peer(sock.session, target);
    if (p == kNone && target.port == 0)
      for (uint32_t q = sessions_[sock.session].peer_tail; q != kNone; q = peers_[q].session_lru.prev)
        if (peers_[q].target.addr == target.addr) {
          p = q;
          break;
        }
    if (p == kNone) continue;
    const Bytes quoted(err_payload_.data(), std::min<size_t>(size_t(n), err_payload_.size()));

    // The reporting node (SO_EE_OFFENDER), mapped back to what the guest sees: the peer
    // itself if it reported, else the gateway (R-UDP-5).
    Endpoint offender;
    const sockaddr* off = SO_EE_OFFENDER(ee);
    const bool have_offender = off->sa_family != AF_UNSPEC &&
                               from_sockaddr(off, off->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in),
                                             &offender);
    const Peer& peer = peers_[p];
    const bool v6 = sessions_[sock.session].guest.is_v6;
    IpAddr router = v6 ? IpAddr(destinations_.config().gateway6) : IpAddr(destinations_.config().gateway4);
    if (have_offender && offender.addr.is_v6 == v6) {
      if (offender.addr == peer.target.addr) router = peer.visible.addr;
      // A host-local reporter (loopback) means nothing to the guest: keep the gateway.
      else if (!(v6 ? offender.addr.v6.is_loopback() : offender.addr.v4.is_loopback())) router = offender.addr;
    }

    if (ee->ee_origin == SO_EE_ORIGIN_LOCAL) {
      // Our own host refused the datagram: to the guest that is its router, the gateway.
      router = v6 ? IpAddr(destinations_.config().gateway6) : IpAddr(destinations_.config().gateway4);
      if (ee->ee_errno == EMSGSIZE && ee->ee_info > 0) {
        if (!v6) send_error_to_guest(p, router, wire::kIcmpDestUnreachable, kIcmp4FragNeeded, ee->ee_info, quoted, now);
        else if (ee->ee_info >= kIpv6MinMtu)
          send_error_to_guest(p, router, wire::kIcmpv6PacketTooBig, 0, ee->ee_info, quoted, now);
      }
      continue;
    }
    if (ee->ee_origin == SO_EE_ORIGIN_ICMP && !v6 && ee->ee_type == wire::kIcmpDestUnreachable) {
      switch (ee->ee_code) {
        case kIcmp4PortUnreachable:  // the peer answered: it is the source (R-UDP-5)
          send_error_to_guest(p, peer.visible.addr, wire::kIcmpDestUnreachable, kIcmp4PortUnreachable, 0, quoted, now);
          break;
        case kIcmp4FragNeeded:
          send_error_to_guest(p, router, wire::kIcmpDestUnreachable, kIcmp4FragNeeded, ee->ee_info, quoted, now);
          break;
        default:  // net/host/protocol unreachable, administratively prohibited, ...
          if (ee->ee_code <= 15)
            send_error_to_guest(p, router, wire::kIcmpDestUnreachable, ee->ee_code, 0, quoted, now);
          break;
      }
      continue;
    }
    if (ee->ee_origin == SO_EE_ORIGIN_ICMP6 && v6) {
      if (ee->ee_type == wire::kIcmpv6DestUnreachable) {
        if (ee->ee_code == kIcmp6PortUnreachable)
          send_error_to_guest(p, peer.visible.addr, wire::kIcmpv6DestUnreachable, kIcmp6PortUnreachable, 0, quoted,
                              now);
        else if (ee->ee_code <= 6)
          send_error_to_guest(p, router, wire::kIcmpv6DestUnreachable, ee->ee_code, 0, quoted, now);
      } else if (ee->ee_type == wire::kIcmpv6PacketTooBig && ee->ee_info >= kIpv6MinMtu) {
        send_error_to_guest(p, router, wire::kIcmpv6PacketTooBig, 0, ee->ee_info, quoted, now);
      }
    }
    // Time exceeded and the rest are R-ICMP-5 (ttl_mirror), not relayed here.
  }
}

void UdpRelay::send_error_to_guest(uint32_t p, const IpAddr& src, uint8_t type, uint8_t code, uint32_t mtu,
                                   Bytes quoted_payload, Instant now) {
  const Peer& peer = peers_[p];
  const Session& session = sessions_[peer.session];
  // The quote (R-UDP-5): the guest's IP header and UDP header rebuilt from the session, then
  // whatever part of the payload the kernel handed back. That is all a guest kernel needs
  // to find its socket (addresses, protocol, ports).
  const size_t payload_len = std::min(quoted_payload.size(), quote_.size() - wire::UdpRepr::kHeaderLen);
  const size_t l4_len = wire::UdpRepr::kHeaderLen + payload_len;
  std::byte* q = quote_.data();
  store_be16(q, session.guest_port);
  store_be16(q + 2, peer.visible.port);
  store_be16(q + 4, peer.udp_length);
  store_be16(q + 6, peer.udp_checksum);
  if (payload_len) std::memcpy(q + 8, quoted_payload.data(), payload_len);
  const Bytes l4(q, l4_len);

  if (!session.guest.is_v6) {
    if (src.is_v6) return;
    wire::Ipv4Repr ip;
    ip.src = session.guest.v4;
    ip.dst = peer.visible.addr.v4;
    ip.protocol = wire::kProtoUdp;
    ip.ttl = peer.ttl;
    ip.dont_fragment = peer.dont_fragment;
    ip.payload_len = peer.udp_length;
    guest_.send_icmp_error_v4(ip, l4, src.v4, type, code, now, uint16_t(std::min<uint32_t>(mtu, 0xffff)));
  } else {
    if (!src.is_v6) return;
    wire::Ipv6Repr ip;
    ip.src = session.guest.v6;
    ip.dst = peer.visible.addr.v6;
    ip.next_header = wire::kProtoUdp;
    ip.hop_limit = peer.ttl;
    ip.payload_len = peer.udp_length;
    guest_.send_icmp_error_v6(ip, l4, src.v6, type, code, now, mtu);
  }
}

void UdpRelay::set_dont_fragment(HostSocket& sock, bool df) {
  // R-UDP-5 DF mirroring: switch only when the guest's DF bit changes.
  if (sock.family != kV4 || sock.dont_fragment == int8_t(df)) return;
  const int mode = df ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT;
  if (::setsockopt(sock.fd.get(), IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof(mode)) == 0)
    sock.dont_fragment = int8_t(df);
}

void UdpRelay::send_to_host(HostSocket& sock, const Endpoint& target, Bytes payload, bool dont_fragment, Instant now) {
  // Order is kept: once datagrams wait, new ones queue behind them.
  if (sock.queue != kNone) {
    if (!enqueue(sock, target, payload, dont_fragment)) counters_.drop(DropReason::queue_full);
    return;
  }
  set_dont_fragment(sock, dont_fragment);
  sockaddr_storage ss;
  const socklen_t len = to_sockaddr(target, &ss);
  const ssize_t n = ::sendto(sock.fd.get(), payload.data(), payload.size(), MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&ss), len);
  if (n >= 0) return;
  const int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK) {
    if (!enqueue(sock, target, payload, dont_fragment)) counters_.drop(DropReason::queue_full);
    else (void)sock.watch.modify(EPOLLIN | EPOLLOUT);
    return;
  }
  on_send_error(sock, target, err, now);
}

void UdpRelay::on_send_error(HostSocket& sock, const Endpoint& target, int err, Instant now) {
  // EMSGSIZE (DF set and too big for the path) was also queued on the error queue, with the
  // MTU: handle it now so the guest hears about it in this iteration.
  if (err == EMSGSIZE) return read_errors(sock, now);
  const uint32_t p = find_peer(sock.session, target);
  if (p == kNone) return;
  const bool v6 = sessions_[sock.session].guest.is_v6;
  const IpAddr gw = v6 ? IpAddr(destinations_.config().gateway6) : IpAddr(destinations_.config().gateway4);
  uint8_t code;
  switch (err) {
    case ENETUNREACH: code = v6 ? kIcmp6NoRoute : kIcmp4NetUnreachable; break;
    case EHOSTUNREACH:
    case EADDRNOTAVAIL: code = v6 ? kIcmp6AddrUnreachable : kIcmp4HostUnreachable; break;
    case EACCES:
    case EPERM: code = v6 ? kIcmp6AdminProhibited : kIcmp4AdminProhibited; break;
    case ECONNREFUSED:  // a pending port unreachable surfaced on this send
      return;
    default:
      MOAT_LOG_RATELIMITED(debug, "udp: sendto failed: %s", std::strerror(err));
      return;
  }
  send_error_to_guest(p, gw, v6 ? wire::kIcmpv6DestUnreachable : wire::kIcmpDestUnreachable, code, 0, {}, now);
}

bool UdpRelay::enqueue(HostSocket& sock, const Endpoint& target, Bytes payload, bool dont_fragment) {
  if (payload.size() > cfg_.queue_bytes) return false;
  if (sock.queue == kNone) {
    if (!free_queues_.empty()) {
      sock.queue = free_queues_.back();
      free_queues_.pop_back();
    } else if (queues_.size() < queues_.capacity() &&
               queue_charge_.try_resize(queue_charge_.bytes() + cfg_.queue_bytes)) {
      // The pool grows to its bound once (and as the memory budget allows, R-LIM-2);
      // rings are recycled afterwards.
      auto q = std::make_unique<SendQueue>();
      q->bytes = std::make_unique_for_overwrite<std::byte[]>(cfg_.queue_bytes);
      q->entries = std::make_unique<SendQueue::Entry[]>(cfg_.queue_datagrams);
      sock.queue = uint32_t(queues_.size());
      queues_.push_back(std::move(q));
    } else {
      return false;  // every ring in use: bounded memory wins over this datagram
    }
  }
  SendQueue& q = *queues_[sock.queue];
  if (q.count == cfg_.queue_datagrams || payload.size() > cfg_.queue_bytes - q.byte_used) return false;
  const size_t cap = cfg_.queue_bytes;
  const size_t at = (q.byte_head + q.byte_used) % cap;
  const size_t first = std::min(payload.size(), cap - at);
  if (first) std::memcpy(q.bytes.get() + at, payload.data(), first);
  if (payload.size() > first) std::memcpy(q.bytes.get(), payload.data() + first, payload.size() - first);
  q.entries[(q.head + q.count) % cfg_.queue_datagrams] =
      SendQueue::Entry{target, uint32_t(at), uint32_t(payload.size()), dont_fragment};
  ++q.count;
  q.byte_used += payload.size();
  return true;
}

void UdpRelay::flush_queue(HostSocket& sock, Instant now) {
  if (sock.queue == kNone) {
    (void)sock.watch.modify(EPOLLIN);
    return;
  }
  SendQueue& q = *queues_[sock.queue];
  const size_t cap = cfg_.queue_bytes;
  while (q.count) {
    const SendQueue::Entry e = q.entries[q.head];
    set_dont_fragment(sock, e.dont_fragment);
    sockaddr_storage ss;
    msghdr msg{};
    msg.msg_name = &ss;
    msg.msg_namelen = to_sockaddr(e.target, &ss);
    const size_t first = std::min<size_t>(e.len, cap - e.offset);
    std::array<iovec, 2> iov{iovec{q.bytes.get() + e.offset, first}, iovec{q.bytes.get(), e.len - first}};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = e.len > first ? 2 : 1;
    if (::sendmsg(sock.fd.get(), &msg, MSG_DONTWAIT) < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;  // still full: EPOLLOUT stays armed
      on_send_error(sock, e.target, err, now);
    }
    q.head = (q.head + 1) % cfg_.queue_datagrams;
    --q.count;
    q.byte_head = (q.byte_head + e.len) % cap;
    q.byte_used -= e.len;
  }
  release_queue(sock);
  (void)sock.watch.modify(EPOLLIN);
}

size_t UdpRelay::queued_datagrams() const noexcept {
  size_t n = 0;
  for (const auto& q : queues_) n += q->count;  // free queues are empty (release_queue)
  return n;
}

void UdpRelay::release_queue(HostSocket& sock) {
  if (sock.queue == kNone) return;
  SendQueue& q = *queues_[sock.queue];
  q.head = q.count = 0;
  q.byte_head = q.byte_used = 0;
  free_queues_.push_back(sock.queue);
  sock.queue = kNone;
}

// ---- Expiry ---------------------------------------------------------------------------------

void UdpRelay::arm_expiry() {
  // One timer for everything: list heads are the oldest, so the earliest deadline is the
  // older of the two heads. Activity only pushes deadlines later, so a pending timer is
  // never late; at worst it fires early and re-arms.
  if (expiry_timer_.pending()) return;
  std::optional<Instant> deadline;
  if (!peer_lru_.empty()) deadline = peers_[peer_lru_.head()].last_used + cfg_.idle_timeout;
  if (!session_lru_.empty()) {
    const Instant d = sessions_[session_lru_.head()].last_active + cfg_.idle_timeout;
    if (!deadline || d < *deadline) deadline = d;
  }
  if (deadline) expiry_timer_ = loop_.schedule_at(*deadline, [this] { on_expiry(); });
}

void UdpRelay::on_expiry() {
  const Instant now = loop_.now();
  while (!peer_lru_.empty() && peers_[peer_lru_.head()].last_used + cfg_.idle_timeout <= now)
    destroy_peer(peer_lru_.head());
  while (!session_lru_.empty() && sessions_[session_lru_.head()].last_active + cfg_.idle_timeout <= now)
    destroy_session(session_lru_.head());
  arm_expiry();
}

}  // namespace moat::flows
