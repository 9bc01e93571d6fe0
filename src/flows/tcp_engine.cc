#include "flows/tcp_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "sniff/first_flight.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"

namespace moat::flows {

using wire::SeqNum;
using wire::TcpRepr;
namespace tf = wire::tcp_flags;

namespace {

constexpr Duration kTimeWait = std::chrono::seconds(2);  // R-TCP-9
constexpr uint32_t kEpollEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

// ICMP codes of R-TCP-3.
constexpr uint8_t kIcmp4DestUnreachable = 3, kIcmp4NetUnreachable = 0, kIcmp4HostUnreachable = 1,
                  kIcmp4AdminProhibited = 13;
constexpr uint8_t kIcmp6DestUnreachable = 1, kIcmp6NoRoute = 0, kIcmp6AddrUnreachable = 3,
                  kIcmp6AdminProhibited = 1;

/// The `close` value of a flow_close audit line (R-OBS-3).
std::string_view close_reason_name(TcpCloseReason r, bool opened) noexcept {
  switch (r) {
    case TcpCloseReason::Normal: return "fin";
    case TcpCloseReason::ResetByGuest: return "guest_rst";
    case TcpCloseReason::ResetByUpstream: return "upstream_rst";
    case TcpCloseReason::IdleTimeout: return "idle_timeout";
    case TcpCloseReason::ConnectTimeout: return "connect_timeout";
    case TcpCloseReason::RetransmitLimit:
    case TcpCloseReason::CloseTimeout: return "error";
    case TcpCloseReason::Aborted: return opened ? "shutdown" : "connect_failed";
    case TcpCloseReason::None: break;
  }
  return "error";
}

bool is_martian(const IpAddr& a) noexcept {
  if (a.is_v6) return a.v6.is_unspecified() || a.v6.is_multicast();
  return a.v4.is_unspecified() || a.v4.is_multicast() || a.v4.is_broadcast();
}

/// Errors after which the next DialPlan target is tried (R-ADDR-5).
bool try_next_target(int err) noexcept {
  return err == ECONNREFUSED || err == EADDRNOTAVAIL || err == ENETUNREACH;
}

bool is_resource_error(int err) noexcept {
  return err == EADDRNOTAVAIL || err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

int so_error(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

TcpParams make_params(const TcpConfig& c, uint32_t mtu, uint32_t ip_overhead) {
  TcpParams p;
  const uint32_t mss = mtu > ip_overhead + 536 ? mtu - ip_overhead : 536;
  p.own_mss = uint16_t(std::min<uint32_t>(mss, 65495));
  p.max_window = std::max<uint32_t>(c.max_window, 1024);
  p.idle_timeout = c.idle_timeout;
  p.half_closed_timeout = c.half_closed_timeout;
  p.close_timeout = c.close_timeout;
  p.connect_timeout = c.connect_timeout;
  return p;
}

}  // namespace

void TcpFlow::on_io(uint32_t events) { engine->on_host_io(*this, events); }

TcpEngine::TcpEngine(event::Loop& loop, GuestIo& io, const Destinations& destinations, Counters& counters,
                     const TcpConfig& config)
    : loop_(loop),
      io_(io),
      dest_(destinations),
      counters_(counters),
      cfg_(config),
      params4_(make_params(config, io.mtu(), 40)),
      params6_(make_params(config, io.mtu(), 60)),
      isn_key_(SipKey::random()),
      ooo_pool_(config.ooo_pool_bytes),
      table_(std::max<uint32_t>(config.max_flows, 1)),
      tw_(std::max<uint32_t>(config.time_wait_max, 1)) {
  use_peek_off_ = cfg_.use_peek_off && kernel_has_tcp_peek_off();
  // Without SO_PEEK_OFF, in-flight bytes are skipped into this buffer on every peek, so it
  // bounds what may be in flight (passt's tcp_buf_discard).
  if (!use_peek_off_) discard_.resize(std::max<uint32_t>(cfg_.max_window, 1 << 20));
  discard_charge_.set_budget(cfg_.budget);
  discard_charge_.resize(discard_.size());
  ooo_pool_.set_budget(cfg_.budget);
  dirty_.reserve(2 * size_t(table_.capacity()));
  dirty_scratch_.reserve(2 * size_t(table_.capacity()));
  blocked_.reserve(2 * size_t(table_.capacity()));
  blocked_scratch_.reserve(2 * size_t(table_.capacity()));
  tw_ring_.assign(tw_.capacity(), FlowId{});
  pending_dests_.reserve(table_.capacity());  // at most one entry per flow
  io_.set_output_ready([this] { on_output_ready(); });
}

TcpEngine::~TcpEngine() { io_.set_output_ready(nullptr); }

HostSocketPeer::Options TcpEngine::peer_options() noexcept {
  HostSocketPeer::Options o;
  o.flow_buffer = cfg_.flow_buffer;
  o.max_window = cfg_.max_window;
  o.use_peek_off = use_peek_off_;
  o.discard = MutBytes(discard_.data(), discard_.size());
  o.budget = cfg_.budget;
  o.ring_cache = &ring_cache_;
  return o;
}

// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 µs
// clock, F a keyed hash (SipHash-2-4 under a getrandom key).
SeqNum TcpEngine::make_isn(const FlowKey& key, Instant now) const noexcept {
  const auto ticks = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() / 4;
  return SeqNum{uint32_t(hash_flow_key(isn_key_, key)) + uint32_t(ticks)};
}

Status TcpEngine::setup_socket(int fd) const noexcept {
  // R-TCP-3 / R-TCP-12 / R-TCP-13.
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) return sys_error();
  if (::setsockopt(fd, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one) < 0) return sys_error();
  if (cfg_.keepalive) {
    const int idle = int(std::chrono::duration_cast<std::chrono::seconds>(cfg_.keepalive_idle).count());
    const int intvl = int(std::chrono::duration_cast<std::chrono::seconds>(cfg_.keepalive_interval).count());
    const int cnt = cfg_.keepalive_count;
    ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (idle > 0) ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    if (intvl > 0) ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    if (cnt > 0) ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  }
  return {};
}

// ---- From the guest -----------------------------------------------------------------------

void TcpEngine::on_segment_v4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) {
  Bytes payload;
  auto seg = TcpRepr::parse(l4, &payload);
  if (!seg) {
    counters_.drop(DropReason::bad_tcp);
    return;
  }
  const FlowKey key{ip.src, ip.dst, seg->src_port, seg->dst_port};
  on_segment(key, *seg, payload, l4, &ip, nullptr, now);
}

void TcpEngine::on_segment_v6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) {
  Bytes payload;
  auto seg = TcpRepr::parse(l4, &payload);
  if (!seg) {
    counters_.drop(DropReason::bad_tcp);
    return;
  }
  const FlowKey key{ip.src, ip.dst, seg->src_port, seg->dst_port};
  on_segment(key, *seg, payload, l4, nullptr, &ip, now);
}

void TcpEngine::on_segment(const FlowKey& key, const TcpRepr& seg, Bytes payload, Bytes l4,
                           const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Instant now) {
  if (auto id = table_.find(key)) {
    TcpFlow& f = *table_.get(*id);
    f.conn.on_segment(seg, payload, now);
    if (f.gate.holding() && !f.conn.finished()) check_gate(f, now, false);
    post_event(f, now);
    sweep();
    return;
  }
  expire_time_wait(now);
  if (auto tid = tw_.find(key)) {
    const TimeWaitRecord rec = *tw_.get(*tid);
    if (seg.has(tf::rst)) {
      tw_.close(*tid);  // RFC 1337 would ignore it; dropping the record is harmless here
      tw_.sweep();
      return;
    }
    if (seg.has(tf::syn) && !seg.has(tf::ack)) {
      // A new connection reusing the 4-tuple (RFC 9293 §3.6.1 allows it from TIME-WAIT).
      tw_.close(*tid);
      tw_.sweep();
      on_syn(key, seg, l4, ip4, ip6, now);
      sweep();
      return;
    }
    // Retransmitted FIN (our ACK was lost) or a stray segment: ACK again (R-TCP-9).
    send_bare(key, tf::ack, rec.seq, rec.ack, rec.window);
    return;
  }
  if (seg.has(tf::rst)) return;  // RFC 9293 §3.10.7.1: a RST to a closed port is dropped
  if (seg.has(tf::syn) && !seg.has(tf::ack)) {
    on_syn(key, seg, l4, ip4, ip6, now);
    sweep();
    return;
  }
  // RFC 9293 §3.10.7.1, CLOSED: ACK set -> <SEQ=SEG.ACK><CTL=RST>; else
  // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
  if (seg.has(tf::ack)) {
    send_bare(key, tf::rst, seg.ack, SeqNum{0});
  } else {
    const uint32_t len = uint32_t(payload.size()) + (seg.has(tf::syn) ? 1 : 0) + (seg.has(tf::fin) ? 1 : 0);
    send_bare(key, tf::rst | tf::ack, SeqNum{0}, seg.seq + len);
  }
}

void TcpEngine::refuse(const FlowKey& key, const TcpRepr& syn) {
  // RST+ACK acknowledging the SYN: a bare RST is ignored by Linux in SYN-SENT.
  send_bare(key, tf::rst | tf::ack, SeqNum{0}, syn.seq + 1);
}

// R-TCP-1 admission, R-TCP-3 fast-path connect.
void TcpEngine::on_syn(const FlowKey& key, const TcpRepr& seg, Bytes l4, const wire::Ipv4Repr* ip4,
                       const wire::Ipv6Repr* ip6, Instant now) {
  if (is_martian(key.remote) || key.remote_port == 0) {
    counters_.drop(DropReason::martian);
    refuse(key, seg);
    return;
  }
  // R-CLI-2: while draining, the guest's processes are gone; a SYN now has no one to
  // serve (a left-over retransmission, or a straggler that only delays the exit).
  if (draining_) {
    counters_.inc(Counter::tcp_refused);
    refuse(key, seg);
    return;
  }
  // R-TCP-16 / R-LIM-4: at a limit new flows are refused, established ones never evicted.
  if (table_.live() >= cfg_.max_flows) {
    counters_.inc(Counter::limits_hits_max_flows);
    MOAT_LOG_RATELIMITED(warn, "tcp: limit max_flows (%u) reached, refusing", cfg_.max_flows);
    refuse(key, seg);
    return;
  }
  // R-LIM-2: at 90 % of the memory budget new flows get the R-POL-10 response.
  if (cfg_.budget && cfg_.budget->refuse_new(now)) {
    if (admission_ && admission_->drop_denied()) counters_.drop(DropReason::memory);
    else refuse(key, seg);
    return;
  }
  if (pending_connects_ >= cfg_.max_pending_connects) {
    counters_.inc(Counter::limits_hits_max_pending_connects);
    // Fair share (TCP.md "Pending connects"): a destination with fewer pending connects
    // than the busiest one gets a slot by failing the busiest one's oldest connect (once
    // the SYN passed policy and is about to dial, below).
    if (!connect_victim(key.remote)) {
      MOAT_LOG_RATELIMITED(warn, "tcp: limit max_pending_connects (%u) reached, refusing",
                           cfg_.max_pending_connects);
      refuse(key, seg);
      return;
    }
  }
  // R-TCP-1 step 5 / R-POL-9: the path. The policy address is the one the guest used.
  FlowInfo info;
  info.guest = key.guest;
  info.guest_port = key.guest_port;
  info.remote = key.remote;
  info.remote_port = key.remote_port;
  TcpPath path = TcpPath::fast;
  if (admission_) {
    path = admission_->tcp_syn(info);
    if (path == TcpPath::reject) {
      // R-POL-10: RST at once, or the SYN is ignored (the guest times out).
      if (admission_->drop_denied()) counters_.drop(DropReason::policy);
      else refuse(key, seg);
      return;
    }
  }
  info.path = path;
  DialPlan plan = dest_.plan_tcp(key.remote, key.remote_port);
  // The slot first: a provider's TcpFlowRef names it. A refusal below frees it again.
  auto id = table_.insert(key);
  if (!id) {
    counters_.inc(Counter::limits_hits_max_flows);
    refuse(key, seg);
    return;
  }
  TcpFlow& f = *table_.get(*id);
  f.engine = this;
  f.id = *id;
  for (TcpPeerProvider* p : providers_) {
    const TcpTake t = p->on_syn(info, plan, TcpFlowRef{this, *id});
    if (t.kind == TcpTake::Kind::pass) continue;
    if (t.kind == TcpTake::Kind::classify) {
      // The provider wants to see the first flight (TLS interception): the fast path
      // becomes the gate path; gate and inspect classify already.
      if (path == TcpPath::fast) path = TcpPath::gate;
      info.path = path;
      break;
    }
    if (t.kind == TcpTake::Kind::peer && t.peer) {
      f.provider = p;
      f.provided = t.peer;
    }
    break;
  }
  if (!f.provided && plan.count == 0) {
    counters_.inc(Counter::tcp_refused);
    refuse(key, seg);
    f.finished = true;
    table_.close(*id);
    return;
  }
  counters_.set(Counter::tcp_active, table_.live());  // gauge (R-OBS-1)
  f.plan = plan;
  f.next_target = 0;
  f.path = path;
  f.started = now;
  if (admission_) f.audit_id = admission_->next_flow_id();
  if (ip4) {
    f.syn_ip4 = *ip4;
  } else {
    f.syn_ip6 = *ip6;
    f.syn_ip6.ext_headers_len = 0;
  }
  // Quote the header only: SYN payload is ignored anyway (R-TCP-2).
  const size_t hl = std::min<size_t>(l4.size(), size_t(load_u8(l4.data() + 12) >> 4) * 4);
  f.syn_l4_len = uint8_t(std::min(hl, f.syn_l4.size()));
  std::memcpy(f.syn_l4.data(), l4.data(), f.syn_l4_len);
  if (ip4) f.syn_ip4.payload_len = f.syn_l4_len;
  else f.syn_ip6.payload_len = f.syn_l4_len;

  if (cfg_.ooo_pool_bytes > 0) f.conn.set_ooo_pool(&ooo_pool_);
  if (f.provided) {
    // In-process upstream: nothing to dial, and the provider applies its own policy.
    f.conn.open_passive(key, seg, make_isn(key, now), params_for(key.guest.is_v6), io_, *f.provided, now);
    counters_.inc(Counter::tcp_opened);
    report_opened(f);
    f.conn.on_peer_connected(now);
    post_event(f, now);
    return;
  }
  TcpPeer* peer = &f.host;
  if (path == TcpPath::gate) {
    f.gate.start(&f.host);
    peer = &f.gate;
  } else if (path == TcpPath::inspect) {
    f.gate.start(nullptr);
    peer = &f.gate;
  }
  f.conn.open_passive(key, seg, make_isn(key, now), params_for(key.guest.is_v6), io_, *peer, now);
  if (path == TcpPath::inspect) {
    // R-TCP-5: complete the guest handshake without dialling; the first flight decides.
    f.conn.on_peer_connected(now);
    f.gate_deadline = now + (admission_ ? admission_->first_flight_timeout() : std::chrono::seconds(1));
  } else {
    if (pending_connects_ >= cfg_.max_pending_connects) evict_connect_for(key.remote, now);
    begin_connect(f, now);
    dial(f, now);
  }
  post_event(f, now);
}

// ---- Pending connects (TCP.md "Pending connects") ----------------------------------------

void TcpEngine::begin_connect(TcpFlow& f, Instant now) {
  MOAT_ASSERT(!f.connecting);
  f.connecting = true;
  f.connect_started = now;
  ++pending_connects_;
  const IpAddr& remote = f.conn.key().remote;
  for (PendingDest& d : pending_dests_) {
    if (d.remote == remote) {
      ++d.count;
      return;
    }
  }
  pending_dests_.push_back(PendingDest{remote, 1});  // capacity reserved: no allocation
}

void TcpEngine::end_connect(TcpFlow& f) {
  if (!f.connecting) return;
  f.connecting = false;
  --pending_connects_;
  const IpAddr& remote = f.conn.key().remote;
  for (size_t i = 0; i < pending_dests_.size(); ++i) {
    PendingDest& d = pending_dests_[i];
    if (d.remote != remote) continue;
    if (--d.count == 0) {
      d = pending_dests_.back();  // order does not matter
      pending_dests_.pop_back();
    }
    return;
  }
  // A bug, not input: counted in release, fatal in debug.
  counters_.inc(Counter::internal_errors);
  MOAT_LOG_RATELIMITED(error, "tcp: a pending connect without its destination entry");
  MOAT_ASSERT(false);
}

uint32_t TcpEngine::pending_connects_to(const IpAddr& remote) const noexcept {
  for (const PendingDest& d : pending_dests_)
    if (d.remote == remote) return d.count;
  return 0;
}

TcpFlow* TcpEngine::connect_victim(const IpAddr& remote) {
  // The busiest destination; the SYN's own destination must have fewer pending connects,
  // else it is the hog (or all are equal) and the SYN is refused as before.
  uint32_t busiest = 0;
  for (const PendingDest& d : pending_dests_) busiest = std::max(busiest, d.count);
  if (busiest <= pending_connects_to(remote)) return nullptr;
  // The oldest pending connect among the destinations with that many. One pass over the
  // slab, only while the limit is hit (bounded by max_flows).
  TcpFlow* victim = nullptr;
  table_.for_each_live([&](FlowId, TcpFlow& f) {
    if (!f.connecting || f.finished || pending_connects_to(f.conn.key().remote) != busiest) return;
    if (!victim || f.connect_started < victim->connect_started) victim = &f;
  });
  return victim;
}

void TcpEngine::evict_connect_for(const IpAddr& remote, Instant now) {
  TcpFlow* victim = connect_victim(remote);
  if (!victim) return;  // a provider or policy call in between freed a slot: nothing to do
  counters_.inc(Counter::tcp_connect_evicted);
  MOAT_LOG_RATELIMITED(info, "tcp: max_pending_connects (%u) reached; failing the oldest of %u connects to %s",
                       cfg_.max_pending_connects, pending_connects_to(victim->conn.key().remote),
                       victim->conn.key().remote.to_string().c_str());
  // Failed as its connect timeout would fail it: ICMP host unreachable (RST once the guest
  // handshake is complete, on the inspect path).
  connect_failed(*victim, ETIMEDOUT, now);
  post_event(*victim, now);
}

void TcpEngine::report_opened(TcpFlow& f) {
  if (!admission_ || f.opened) return;
  f.opened = true;
  admission_->flow_opened(flow_info(f));
}

void TcpEngine::for_each_flow(FunctionRef<void(const FlowSnapshot&)> fn) {
  table_.for_each_live([&](FlowId, TcpFlow& f) {
    FlowSnapshot s;
    s.info = flow_info(f);
    s.bytes_from_guest = f.conn.bytes_from_guest();
    s.bytes_to_guest = f.conn.bytes_to_guest();
    s.started = f.started;
    s.state = tcp_state_name(f.conn.state());
    fn(s);
  });
}

FlowInfo TcpEngine::flow_info(const TcpFlow& f) const {
  FlowInfo info;
  const FlowKey& k = f.conn.key();
  info.id = f.audit_id;
  info.proto = FlowProto::tcp;
  info.ingress = f.ingress;
  info.guest = k.guest;
  info.guest_port = k.guest_port;
  info.remote = k.remote;
  info.remote_port = k.remote_port;
  info.path = f.path;
  info.name_src = f.name_src;
  info.name = f.name;
  return info;
}

// R-TCP-4/5/6: classify what the guest sent so far; decide once it is classified.
void TcpEngine::check_gate(TcpFlow& f, Instant now, bool timed_out) {
  // An inspect flow keeps holding while it dials after the allow: decided already.
  if (!f.gate.holding() || f.inspect_dial) return;
  const bool final = timed_out || f.gate.guest_fin() || f.gate.held().size() >= GatePeer::kMaxHeld;
  if (f.gate.held().empty() && !final) return;
  auto c = sniff::classify_first_flight(f.gate.held(), final);
  if (c.kind == sniff::Kind::need_more) {
    // A partial TLS/HTTP head: wait for the rest, but not beyond the first-flight timeout.
    if (f.gate_deadline == Instant::max() && admission_)
      f.gate_deadline = now + admission_->first_flight_timeout();
    return;
  }
  switch (c.kind) {
    case sniff::Kind::name: f.name_src = c.source == sniff::Source::sni ? NameSrc::sni : NameSrc::host; break;
    case sniff::Kind::connect: f.name_src = NameSrc::connect; break;
    case sniff::Kind::mismatch: f.name_src = NameSrc::mismatch; break;
    default: f.name_src = NameSrc::none; break;
  }
  f.name = std::move(c.name);
  f.gate_deadline = Instant::max();
  // Before policy: a provider may take the flow and answer for it (see tcp_peer_provider.h),
  // under the same condition as on_allowed below.
  if (!providers_.empty() && (f.path == TcpPath::inspect || f.conn.bytes_to_guest() == 0)) {
    FlowInfo info = flow_info(f);
    info.first_flight = f.gate.held();
    for (TcpPeerProvider* p : providers_) {
      if (TcpPeer* peer = p->on_first_flight(info, TcpFlowRef{this, f.id})) {
        hand_over(f, *p, *peer, now);
        return;
      }
    }
  }
  const bool allow = admission_ ? admission_->tcp_first_flight(flow_info(f)) : true;
  if (!allow) {
    // R-TCP-4/5, R-POL-10: after the handshake a denial is always RST; the upstream (if
    // any) gets an abortive close, so no guest byte ever reaches it.
    f.close_why = "policy_deny";
    f.conn.abort(TcpCloseReason::Aborted, now);
    return;
  }
  // The flow as the policy allowed it, with its name: a provider may take it over here
  // (TLS interception) instead of the host socket — unless the host already sent the guest
  // something on the gate path (a banner), which the new peer could not continue.
  if (!providers_.empty() && (f.path == TcpPath::inspect || f.conn.bytes_to_guest() == 0)) {
    FlowInfo info = flow_info(f);
    info.first_flight = f.gate.held();
    for (TcpPeerProvider* p : providers_) {
      if (TcpPeer* peer = p->on_allowed(info, TcpFlowRef{this, f.id})) {
        hand_over(f, *p, *peer, now);
        return;
      }
    }
  }
  if (f.path == TcpPath::gate) {
    if (auto r = f.gate.release(); !r) {
      f.conn.on_peer_error(r.error(), now);
      return;
    }
    f.conn.on_peer_writable(now);  // the window opens beyond 16 KiB
    return;
  }
  // Inspect path: dial now; the held bytes are replayed once connected.
  f.inspect_dial = true;
  begin_connect(f, now);
  f.gate_deadline = now + cfg_.connect_timeout;
  dial(f, now);
}

void TcpEngine::inspect_connected(TcpFlow& f, Instant now) {
  f.inspect_dial = false;
  f.gate_deadline = Instant::max();
  f.gate.attach_upstream(&f.host);
  if (auto r = f.gate.release(); !r) {
    f.conn.on_peer_error(r.error(), now);
    return;
  }
  f.conn.on_peer_writable(now);
  f.conn.on_peer_readable(now);
}

void TcpEngine::hand_over(TcpFlow& f, TcpPeerProvider& provider, TcpPeer& peer, Instant now) {
  f.provider = &provider;
  f.provided = &peer;
  end_connect(f);  // not reachable on the gate path today (the handshake waits for it)
  // The gate path's host connection saw no guest byte yet: it gets RST, not a FIN that
  // would look like an (empty) request.
  f.watch.reset();
  f.host.abort();  // no-op without a socket (inspect path)
  f.host.reset();
  f.gate.attach_upstream(&peer);
  if (!f.opened) counters_.inc(Counter::tcp_opened);
  report_opened(f);
  if (auto r = f.gate.release(); !r) {
    f.conn.on_peer_error(r.error(), now);
    return;
  }
  f.conn.on_peer_writable(now);
  if (!f.conn.finished()) f.conn.on_peer_readable(now);
}

void TcpEngine::on_provided_event(FlowId id, PeerEvent ev, Errno err) {
  TcpFlow* f = table_.get(id);
  if (!f || f->finished || table_.is_closing(id) || !f->provided) return;
  const Instant now = loop_.now();
  switch (ev) {
    case PeerEvent::readable: f->conn.on_peer_readable(now); break;
    case PeerEvent::writable: f->conn.on_peer_writable(now); break;
    case PeerEvent::error: f->conn.on_peer_error(err, now); break;
  }
  post_event(*f, now);
  sweep();
}

void TcpFlowRef::peer_readable() const {
  if (engine_) engine_->on_provided_event(id_, TcpEngine::PeerEvent::readable, Errno{0});
}
void TcpFlowRef::peer_writable() const {
  if (engine_) engine_->on_provided_event(id_, TcpEngine::PeerEvent::writable, Errno{0});
}
void TcpFlowRef::peer_error(Errno e) const {
  if (engine_) engine_->on_provided_event(id_, TcpEngine::PeerEvent::error, e);
}

UniqueFd TcpFlowRef::take_host_socket() const {
  if (!engine_) return UniqueFd{};
  TcpFlow* f = engine_->table_.get(id_);
  // Only a gate flow still holding its first flight: connected, and no guest byte sent.
  if (!f || f->finished || f->path != TcpPath::gate || !f->gate.holding() || f->connecting ||
      f->host.fd() < 0)
    return UniqueFd{};
  f->watch.reset();
  return f->host.release();
}

std::optional<Endpoint> TcpFlowRef::dial_target() const {
  if (!engine_) return std::nullopt;
  const TcpFlow* f = engine_->table_.get(id_);
  if (!f || f->plan.count == 0) return std::nullopt;
  return f->plan.targets[0];
}

void TcpEngine::dial(TcpFlow& f, Instant now) {
  while (f.next_target < f.plan.count) {
    const Endpoint& ep = f.plan.targets[f.next_target++];
    f.watch.reset();
    f.host.reset();
    UniqueFd fd(::socket(ep.addr.is_v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd) {
      connect_failed(f, errno, now);
      return;
    }
    if (auto s = setup_socket(fd.get()); !s) {
      connect_failed(f, s.error().value, now);
      return;
    }
    sockaddr_storage ss;
    const socklen_t sl = to_sockaddr(ep.addr, ep.port, &ss);
    const int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), sl);
    const int err = rc == 0 ? 0 : errno;
    if (rc == 0 || err == EINPROGRESS) {
      f.host.attach(std::move(fd), peer_options());
      auto w = loop_.watch(f.host.fd(), kEpollEvents, f);
      if (!w) {
        f.host.reset();
        connect_failed(f, w.error().value, now);
        return;
      }
      f.watch = std::move(*w);
      if (rc == 0) on_connect_event(f, EPOLLOUT, now);
      return;
    }
    f.last_errno = err;
    if (err == ECONNREFUSED) f.saw_refused = true;
    if (!try_next_target(err)) {
      connect_failed(f, err, now);
      return;
    }
  }
  connect_failed(f, f.saw_refused ? ECONNREFUSED : (f.last_errno ? f.last_errno : ECONNREFUSED), now);
}

void TcpEngine::on_connect_event(TcpFlow& f, uint32_t events, Instant now) {
  const int err = so_error(f.host.fd());
  if (err == 0 && (events & EPOLLOUT) && !(events & EPOLLERR)) {
    end_connect(f);
    counters_.inc(Counter::tcp_opened);
    report_opened(f);
    if (f.inspect_dial) inspect_connected(f, now);
    else f.conn.on_peer_connected(now);
    return;
  }
  if (err == 0) return;  // not decided yet
  f.last_errno = err;
  if (err == ECONNREFUSED) f.saw_refused = true;
  if (try_next_target(err) && f.next_target < f.plan.count) {
    dial(f, now);
    return;
  }
  connect_failed(f, f.saw_refused ? ECONNREFUSED : err, now);
}

// R-TCP-3 failure mapping.
void TcpEngine::connect_failed(TcpFlow& f, int err, Instant now) {
  end_connect(f);
  f.watch.reset();
  f.host.reset();
  if (f.inspect_dial) {
    // R-TCP-5: after the handshake no ICMP can be used.
    f.inspect_dial = false;
    f.gate_deadline = Instant::max();
    f.close_why = err == ETIMEDOUT ? "connect_timeout" : "connect_failed";
    counters_.inc(is_resource_error(err) ? Counter::tcp_host_resource_errors : Counter::tcp_refused);
    f.conn.abort(TcpCloseReason::Aborted, now);
    return;
  }
  const bool v6 = f.conn.key().guest.is_v6;
  uint8_t code4 = 0, code6 = 0;
  bool icmp = true;
  switch (err) {
    case ENETUNREACH:
      code4 = kIcmp4NetUnreachable;
      code6 = kIcmp6NoRoute;
      break;
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ETIMEDOUT:
      code4 = kIcmp4HostUnreachable;
      code6 = kIcmp6AddrUnreachable;
      break;
    case EACCES:
    case EPERM:
      code4 = kIcmp4AdminProhibited;
      code6 = kIcmp6AdminProhibited;
      break;
    default:
      icmp = false;
      break;
  }
  if (icmp) {
    counters_.inc(Counter::tcp_unreachable);
    const Bytes quote(f.syn_l4.data(), f.syn_l4_len);
    if (v6) {
      io_.send_icmp_error_v6(f.syn_ip6, quote, dest_.config().gateway6, kIcmp6DestUnreachable, code6, now);
    } else {
      io_.send_icmp_error_v4(f.syn_ip4, quote, dest_.config().gateway4, kIcmp4DestUnreachable, code4, now);
    }
    f.conn.abort_silently(TcpCloseReason::ConnectTimeout);
    return;
  }
  if (is_resource_error(err)) {
    counters_.inc(Counter::tcp_host_resource_errors);
    MOAT_LOG_RATELIMITED(warn, "tcp: host resource error on connect: %s", std::strerror(err));
  } else {
    counters_.inc(Counter::tcp_refused);
  }
  // RST+ACK, ack = SYN.seq + 1 (seq is our unsent ISN; Linux checks only the ACK).
  f.conn.abort(TcpCloseReason::Aborted, now);
}

// ---- Host socket events -----------------------------------------------------------------

void TcpEngine::on_host_io(TcpFlow& f, uint32_t events) {
  if (f.finished || table_.is_closing(f.id)) return;
  const Instant now = loop_.now();
  if (f.connecting) {
    on_connect_event(f, events, now);
  } else {
    if (events & EPOLLERR) {
      if (const int err = so_error(f.host.fd()); err != 0) f.conn.on_peer_error(Errno{err}, now);
    }
    if (!f.conn.finished() && (events & EPOLLOUT)) {
      if (f.host.buffered() > 0) {
        if (auto r = f.host.on_writable(); !r) f.conn.on_peer_error(r.error(), now);
      }
      if (!f.conn.finished()) f.conn.on_peer_writable(now);
    }
    if (events & (EPOLLRDHUP | EPOLLHUP)) f.host.set_read_closed();
    if (!f.conn.finished() && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) f.conn.on_peer_readable(now);
  }
  post_event(f, now);
  sweep();
}

void TcpEngine::on_flow_timer(FlowId id) {
  TcpFlow* f = table_.get(id);
  if (!f || f->finished) return;
  const Instant now = loop_.now();
  f->timer_at = Instant::max();  // the handle has fired
  if (now >= f->gate_deadline) {
    if (f->inspect_dial && f->connecting) {
      connect_failed(*f, ETIMEDOUT, now);
    } else if (f->gate.holding()) {
      check_gate(*f, now, true);  // R-TCP-5: a timeout counts as "no name"
    } else {
      f->gate_deadline = Instant::max();
    }
  }
  if (!f->conn.finished()) f->conn.on_timer(now);
  post_event(*f, now);
  sweep();
}

void TcpEngine::on_output_ready() {
  const Instant now = loop_.now();
  blocked_scratch_.clear();
  std::swap(blocked_, blocked_scratch_);
  for (const FlowId id : blocked_scratch_) {
    TcpFlow* f = table_.get(id);
    if (!f || f->finished) continue;
    f->in_blocked = false;
    if (io_.output_blocked()) {  // blocked again: keep the rest for the next callback
      f->in_blocked = true;
      blocked_.push_back(id);
      continue;
    }
    f->conn.on_peer_readable(now);
    post_event(*f, now);
  }
  sweep();
}

void TcpEngine::flush(Instant now) {
  dirty_scratch_.clear();
  std::swap(dirty_, dirty_scratch_);
  for (const FlowId id : dirty_scratch_) {
    TcpFlow* f = table_.get(id);
    if (!f || f->finished) continue;
    f->in_dirty = false;
    f->conn.flush(now);
    // Nothing tells us when a socket we never overfilled drains: ask for an EPOLLOUT edge
    // while the guest's window is nearly closed (a buffered ring already has one pending).
    if (f->conn.window_nearly_closed() && f->host.buffered() == 0) (void)f->watch.rearm();
    post_event(*f, now);
  }
  sweep();
}

// ---- Bookkeeping ------------------------------------------------------------------------

void TcpEngine::post_event(TcpFlow& f, Instant now) {
  if (f.finished) return;
  if (f.conn.finished()) {
    finish(f, now);
    return;
  }
  if (f.conn.needs_flush() && !f.in_dirty) {
    f.in_dirty = true;
    dirty_.push_back(f.id);
  }
  if (f.conn.blocked_on_output() && !f.in_blocked) {
    f.in_blocked = true;
    blocked_.push_back(f.id);
  }
  arm_timer(f);
}

void TcpEngine::arm_timer(TcpFlow& f) {
  auto d = f.conn.next_deadline();
  if (f.gate_deadline != Instant::max() && (!d || f.gate_deadline < *d)) d = f.gate_deadline;
  if (!d) return;  // a stale pending timer only fires early, which is harmless
  if (f.timer.pending()) {
    if (f.timer_at <= *d) return;  // lazy: it will fire early and be re-armed
    if (f.timer.reschedule(*d)) {
      f.timer_at = *d;
      return;
    }
  }
  // 16 bytes of capture: held inside std::function without allocating.
  f.timer = loop_.schedule_at(*d, [this, id = f.id] { on_flow_timer(id); });
  f.timer_at = *d;
}

void TcpEngine::finish(TcpFlow& f, Instant now) {
  f.finished = true;
  if (f.connecting) {
    end_connect(f);
    // R-TCP-3: no answer from the host within connect_timeout -> ICMP host unreachable.
    if (f.conn.close_reason() == TcpCloseReason::ConnectTimeout) {
      counters_.inc(Counter::tcp_timeouts);
      counters_.inc(Counter::tcp_unreachable);
      const Bytes quote(f.syn_l4.data(), f.syn_l4_len);
      if (f.conn.key().guest.is_v6) {
        io_.send_icmp_error_v6(f.syn_ip6, quote, dest_.config().gateway6, kIcmp6DestUnreachable,
                               kIcmp6AddrUnreachable, now);
      } else {
        io_.send_icmp_error_v4(f.syn_ip4, quote, dest_.config().gateway4, kIcmp4DestUnreachable,
                               kIcmp4HostUnreachable, now);
      }
    }
  } else {
    switch (f.conn.close_reason()) {
      case TcpCloseReason::ResetByGuest: counters_.inc(Counter::tcp_reset_by_guest); break;
      case TcpCloseReason::ResetByUpstream: counters_.inc(Counter::tcp_reset_by_upstream); break;
      case TcpCloseReason::IdleTimeout:
      case TcpCloseReason::CloseTimeout:
      case TcpCloseReason::ConnectTimeout:
      case TcpCloseReason::RetransmitLimit: counters_.inc(Counter::tcp_timeouts); break;
      default: break;
    }
  }
  counters_.inc(Counter::tcp_retransmits, f.conn.retransmits());
  counters_.inc(Counter::tcp_fast_retransmits, f.conn.fast_retransmits());
  counters_.inc(Counter::tcp_challenge_acks, f.conn.challenge_acks());
  if (f.conn.guest_fin_received() && f.conn.close_reason() == TcpCloseReason::Normal) {
    add_time_wait(f.conn.key(), f.conn.snd_nxt(), f.conn.rcv_nxt(), now);
  }
  if (admission_ && f.audit_id != 0) {
    CloseInfo c;
    c.bytes_from_guest = f.conn.bytes_from_guest();
    c.bytes_to_guest = f.conn.bytes_to_guest();
    c.duration = now - f.started;
    c.reason = !f.close_why.empty() ? f.close_why : close_reason_name(f.conn.close_reason(), f.opened);
    admission_->flow_closed(flow_info(f), c);
  }
  table_.close(f.id);
}

void TcpEngine::sweep() {
  if (table_.closing() == 0) return;
  table_.sweep([](TcpFlow& f) {
    if (f.provider) f.provider->on_closed(*f.provided);
  });
  counters_.set(Counter::tcp_active, table_.live());
}

void TcpEngine::abort_all(Instant now) {
  table_.for_each_live([&](FlowId, TcpFlow& f) {
    if (f.finished) return;
    f.conn.abort(TcpCloseReason::Aborted, now);
    post_event(f, now);
  });
  sweep();
}

size_t TcpEngine::begin_drain(bool guest_gone, Instant now) {
  draining_ = true;
  size_t reset = 0;
  if (!guest_gone || guest_gone_) return reset;
  guest_gone_ = true;
  table_.for_each_live([&](FlowId, TcpFlow& f) {
    if (f.finished || f.conn.finished()) return;
    const TcpState st = f.conn.state();
    if (st == TcpState::SynReceived || st == TcpState::SynSent) {
      f.conn.abort(TcpCloseReason::Aborted, now);
      ++reset;
    } else {
      f.conn.on_guest_gone();
    }
    post_event(f, now);
  });
  sweep();
  return reset;
}

bool TcpEngine::drained(const TcpFlow& f) const {
  if (f.finished || f.conn.finished()) return true;
  if (!f.conn.guest_fin_received() && !guest_gone_) return false;
  if (f.host.fd() >= 0) return f.host.delivered();
  // No host socket: an in-process peer took the FIN; an inspect flow not dialled yet has
  // the guest's bytes still in its gate.
  return f.provided != nullptr;
}

size_t TcpEngine::undrained_flows() {
  size_t n = 0;
  table_.for_each_live([&](FlowId, TcpFlow& f) {
    if (!drained(f)) ++n;
  });
  return n;
}

size_t TcpEngine::end_drain(Instant now) {
  draining_ = true;
  size_t reset = 0;
  table_.for_each_live([&](FlowId, TcpFlow& f) {
    if (f.finished) return;
    if (drained(f)) {
      // The host's socket is closed without SO_LINGER 0 when the slot is swept.
      f.host.discard_input();
      f.conn.abort_silently(TcpCloseReason::Normal);
    } else {
      f.conn.abort(TcpCloseReason::Aborted, now);
      ++reset;
    }
    post_event(f, now);
  });
  sweep();
  return reset;
}

const TcpConn* TcpEngine::find(const FlowKey& key) {
  auto id = table_.find(key);
  return id ? &table_.get(*id)->conn : nullptr;
}

// ---- TIME_WAIT ----------------------------------------------------------------------------

void TcpEngine::add_time_wait(const FlowKey& key, SeqNum seq, SeqNum ack, Instant now) {
  if (cfg_.time_wait_max == 0) return;
  if (auto old = tw_.find(key)) tw_.close(*old);
  const size_t cap = tw_ring_.size();
  if (tw_count_ == cap) {  // oldest evicted (R-TCP-9)
    const FlowId oldest = tw_ring_[tw_head_];
    if (tw_.get(oldest) && !tw_.is_closing(oldest)) {
      counters_.inc(Counter::tcp_time_wait_evicted);
      tw_.close(oldest);
    }
    tw_head_ = (tw_head_ + 1) % cap;
    --tw_count_;
  }
  tw_.sweep();
  auto id = tw_.insert(key);
  if (!id) return;
  TimeWaitRecord& r = *tw_.get(*id);
  r.seq = seq;
  r.ack = ack;
  r.window = 0;
  r.expiry = now + kTimeWait;
  tw_ring_[(tw_head_ + tw_count_) % cap] = *id;
  ++tw_count_;
}

void TcpEngine::expire_time_wait(Instant now) {
  const size_t cap = tw_ring_.size();
  bool any = false;
  while (tw_count_ > 0) {
    const FlowId id = tw_ring_[tw_head_];
    if (const TimeWaitRecord* r = tw_.get(id); r && !tw_.is_closing(id)) {
      if (r->expiry > now) break;
      tw_.close(id);
      any = true;
    }
    tw_head_ = (tw_head_ + 1) % cap;
    --tw_count_;
  }
  if (any) tw_.sweep();
}

// ---- Ingress (published ports) --------------------------------------------------------------

Result<void, Errno> TcpEngine::open_to_guest(UniqueFd accepted, IpAddr guest, uint16_t guest_port, IpAddr src_seen,
                                             uint16_t src_port, Instant now) {
  if (!accepted) return unexpected(Errno{EBADF});
  // A refused connection is closed with SO_LINGER 0: the host peer sees RST, as for a
  // refused connect, not a FIN that reads as an empty but successful exchange (R-LIM-4).
  auto refuse_accepted = [&accepted](int err) -> Result<void, Errno> {
    linger lg{1, 0};
    ::setsockopt(accepted.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    accepted.reset();
    return unexpected(Errno{err});
  };
  if (guest.is_v6 != src_seen.is_v6) return refuse_accepted(EAFNOSUPPORT);
  const FlowKey key{guest, src_seen, guest_port, src_port};
  if (draining_) return refuse_accepted(ECONNREFUSED);  // R-CLI-2: the guest is leaving
  if (table_.find(key)) return refuse_accepted(EADDRINUSE);
  if (table_.live() >= cfg_.max_flows) {
    counters_.inc(Counter::limits_hits_max_flows);
    MOAT_LOG_RATELIMITED(warn, "tcp: limit max_flows (%u) reached, resetting a published connection",
                         cfg_.max_flows);
    return refuse_accepted(ENOBUFS);
  }
  if (cfg_.budget && cfg_.budget->refuse_new(now)) return unexpected(Errno{ENOBUFS});  // R-LIM-2
  expire_time_wait(now);
  if (auto tid = tw_.find(key)) {
    tw_.close(*tid);
    tw_.sweep();
  }
  if (auto s = setup_socket(accepted.get()); !s) return refuse_accepted(s.error().value);
  auto id = table_.insert(key);
  if (!id) return refuse_accepted(ENOBUFS);
  TcpFlow& f = *table_.get(*id);
  f.engine = this;
  f.id = *id;
  f.host.attach(std::move(accepted), peer_options());
  auto w = loop_.watch(f.host.fd(), kEpollEvents, f);
  if (!w) {
    f.host.abort();  // RST, as above
    f.finished = true;
    table_.close(*id);
    sweep();
    return unexpected(w.error());
  }
  f.watch = std::move(*w);
  counters_.inc(Counter::tcp_ingress_opened);
  if (cfg_.ooo_pool_bytes > 0) f.conn.set_ooo_pool(&ooo_pool_);
  f.conn.open_active(key, make_isn(key, now), params_for(guest.is_v6), io_, f.host, now);
  f.ingress = true;
  f.started = now;
  if (admission_) {
    f.audit_id = admission_->next_flow_id();
    f.opened = true;  // R-OBS-3: ingress flows open when the guest is dialled
    admission_->flow_opened(flow_info(f));
  }
  post_event(f, now);
  counters_.set(Counter::tcp_active, table_.live());
  sweep();
  return {};
}

// ---- Bare segments ------------------------------------------------------------------------

void TcpEngine::send_bare(const FlowKey& key, uint8_t flags, SeqNum seq, SeqNum ack, uint16_t window) {
  TcpRepr r;
  r.src_port = key.remote_port;
  r.dst_port = key.guest_port;
  r.seq = seq;
  r.ack = ack;
  r.flags = flags;
  r.window = window;
  auto fill = [&](MutBytes l4) {
    if (key.guest.is_v6) r.emit_v6(l4, key.remote.v6, key.guest.v6);
    else r.emit_v4(l4, key.remote.v4, key.guest.v4);
  };
  if (key.guest.is_v6) io_.send_ipv6(key.remote.v6, key.guest.v6, wire::kProtoTcp, r.header_len(), fill);
  else io_.send_ipv4(key.remote.v4, key.guest.v4, wire::kProtoTcp, r.header_len(), fill);
}

}  // namespace moat::flows
