// See guest_stack.h. RFC sections are cited where a rule comes from; where this stack is
// simpler than a real one (no window scaling, no SACK, no congestion control beyond a
// segment cap) the header says so.
#include "support/guest_stack.h"

#include <algorithm>
#include <cstring>

#include "support/frame_builder.h"
#include "support/sim_rng.h"
#include "wire/arp.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"
#include "wire/ndp.h"

namespace moat::test {

namespace tf = wire::tcp_flags;
using wire::SeqNum;

const char* to_string(GuestTcpState s) noexcept {
  switch (s) {
    case GuestTcpState::closed: return "CLOSED";
    case GuestTcpState::syn_sent: return "SYN-SENT";
    case GuestTcpState::established: return "ESTABLISHED";
    case GuestTcpState::fin_wait_1: return "FIN-WAIT-1";
    case GuestTcpState::fin_wait_2: return "FIN-WAIT-2";
    case GuestTcpState::closing: return "CLOSING";
    case GuestTcpState::time_wait: return "TIME-WAIT";
    case GuestTcpState::close_wait: return "CLOSE-WAIT";
    case GuestTcpState::last_ack: return "LAST-ACK";
  }
  return "?";
}

// ---- TcpSocket ---------------------------------------------------------------------------

TcpSocket::TcpSocket(GuestStack& stack, bool v6, IpAddr remote, uint16_t lport, uint16_t rport, SeqNum iss)
    : stack_(stack), v6_(v6), remote_(remote), lport_(lport), rport_(rport), iss_(iss), snd_una_(iss),
      snd_nxt_(iss), snd_max_(iss), rto_(stack.cfg_.syn_rto) {
  if (v6) local_ = stack.cfg_.addr6;
  else local_ = stack.cfg_.addr4;
}

std::string TcpSocket::describe() const {
  std::string s = std::string(v6_ ? "v6 " : "v4 ") + to_string(state_) + " lport=" + std::to_string(lport_) +
                  " snd_una=" + std::to_string(snd_una_.value) + " snd_nxt=" + std::to_string(snd_nxt_.value) +
                  " unacked+unsent=" + std::to_string(send_buf_.size()) + " snd_wnd=" + std::to_string(snd_wnd_) +
                  " received=" + std::to_string(received_.size()) + " ooo=" + std::to_string(ooo_.size()) +
                  " retries=" + std::to_string(retries_) + " rto_fired=" + std::to_string(stats_.rto_fired) +
                  " retransmits=" + std::to_string(stats_.retransmits);
  if (reset_) s += " RESET";
  if (timed_out_) s += " TIMED-OUT";
  if (fin_received_) s += " fin_received";
  return s;
}

uint32_t TcpSocket::mss() const noexcept {
  const uint32_t own = stack_.cfg_.mtu - (v6_ ? 60 : 40);
  return std::min<uint32_t>(own, peer_mss_);
}

void TcpSocket::write(Bytes data) {
  if (fin_queued_ || state_ == GuestTcpState::closed) return;
  send_buf_.insert(send_buf_.end(), data.begin(), data.end());
}

void TcpSocket::close() {
  if (state_ == GuestTcpState::closed) return;
  fin_queued_ = true;
}

void TcpSocket::abort(Instant now) {
  (void)now;
  if (state_ == GuestTcpState::closed) return;
  if (state_ != GuestTcpState::syn_sent) send_segment(tf::rst | tf::ack, snd_nxt_, {});
  enter_closed();
}

void TcpSocket::enter_closed() {
  state_ = GuestTcpState::closed;
  rto_at_.reset();
  time_wait_until_.reset();
}

std::optional<Instant> TcpSocket::deadline() const noexcept {
  if (time_wait_until_) return time_wait_until_;
  return rto_at_;
}

void TcpSocket::send_segment(uint8_t flags, SeqNum seq, Bytes payload, bool syn_options) {
  wire::TcpRepr r;
  r.src_port = lport_;
  r.dst_port = rport_;
  r.seq = seq;
  r.flags = flags;
  if (flags & tf::ack) r.ack = rcv_nxt_;
  r.window = stack_.cfg_.rcv_window;
  if (syn_options) r.mss = uint16_t(stack_.cfg_.mtu - (v6_ ? 60 : 40));
  Buf l4(r.header_len() + payload.size());
  if (!payload.empty()) std::memcpy(l4.data() + r.header_len(), payload.data(), payload.size());
  if (v6_) r.emit_v6(MutBytes(l4), local_.v6, remote_.v6);
  else r.emit_v4(MutBytes(l4), local_.v4, remote_.v4);
  ++stats_.segments_sent;
  const bool occupies = !payload.empty() || (flags & (tf::syn | tf::fin));
  if (occupies && seq < snd_max_) ++stats_.retransmits;
  stack_.send_ip(v6_, remote_, wire::kProtoTcp, Bytes(l4));
}

void TcpSocket::output(Instant now) {
  switch (state_) {
    case GuestTcpState::established:
    case GuestTcpState::close_wait:
    case GuestTcpState::fin_wait_1:
    case GuestTcpState::closing:
    case GuestTcpState::last_ack: break;
    default: return;
  }
  const uint32_t seg = mss();
  for (int guard = 0; guard < 1024; ++guard) {
    const uint32_t in_flight = uint32_t(snd_nxt_ - snd_una_);
    const size_t data_off = std::min<size_t>(in_flight, send_buf_.size());
    const size_t unsent = send_buf_.size() - data_off;
    if (unsent > 0) {
      if (in_flight >= snd_wnd_ || in_flight >= stack_.cfg_.max_in_flight * seg) return;
      const size_t len = std::min<size_t>({seg, unsent, size_t(snd_wnd_ - in_flight)});
      Buf payload(send_buf_.begin() + long(data_off), send_buf_.begin() + long(data_off + len));
      send_segment(tf::ack | tf::psh, snd_nxt_, Bytes(payload));
      snd_nxt_ += uint32_t(len);
      snd_max_ = wire::seq_max(snd_max_, snd_nxt_);
      if (!rto_at_) arm_rto(now);
      continue;
    }
    // Everything written is in flight: our FIN goes right after it (RFC 793 §3.5),
    // unless it is already in flight.
    const bool fin_in_flight = in_flight == send_buf_.size() + 1;
    if (fin_queued_ && !fin_acked_ && !fin_in_flight) {
      send_segment(tf::fin | tf::ack, snd_nxt_, {});
      snd_nxt_ += 1;
      snd_max_ = wire::seq_max(snd_max_, snd_nxt_);
      if (state_ == GuestTcpState::established) state_ = GuestTcpState::fin_wait_1;
      else if (state_ == GuestTcpState::close_wait) state_ = GuestTcpState::last_ack;
      if (!rto_at_) arm_rto(now);
    }
    return;
  }
}

void TcpSocket::on_timer(Instant now) {
  if (time_wait_until_ && *time_wait_until_ <= now) {
    enter_closed();  // RFC 793 §3.5: 2 MSL (shortened for the simulation)
    return;
  }
  if (!rto_at_ || *rto_at_ > now) return;
  rto_at_.reset();
  const bool outstanding = snd_una_ != snd_max_;
  const bool probe = snd_wnd_ == 0 && !send_buf_.empty();
  if (!outstanding && !probe) return;
  if (++retries_ > stack_.cfg_.max_retries) {
    timed_out_ = true;  // RFC 1122 §4.2.3.5 R2: give up
    enter_closed();
    return;
  }
  ++stats_.rto_fired;
  rto_ = std::min(rto_ * 2, stack_.cfg_.rto_max);
  if (state_ == GuestTcpState::syn_sent) {
    send_segment(tf::syn, iss_, {}, true);
  } else if (snd_wnd_ == 0 && !send_buf_.empty()) {
    // Zero-window probe (RFC 1122 §4.2.2.17): one byte beyond the window.
    Buf b(1, send_buf_.front());
    send_segment(tf::ack, snd_una_, Bytes(b));
    snd_nxt_ = wire::seq_max(snd_nxt_, snd_una_ + 1);
    snd_max_ = wire::seq_max(snd_max_, snd_nxt_);
  } else {
    // Go-back-N: everything from snd_una again, as the window allows.
    snd_nxt_ = snd_una_;
    dupacks_ = 0;
    output(now);
  }
  arm_rto(now);
}

void TcpSocket::on_segment(const wire::TcpRepr& seg, Bytes payload, Instant now) {
  if (state_ == GuestTcpState::closed) return;
  if (state_ != GuestTcpState::syn_sent) {
    on_synchronized(seg, payload, now);
    return;
  }
  // RFC 793 §3.9 "SEGMENT ARRIVES", SYN-SENT.
  if (seg.has(tf::ack) && seg.ack != iss_ + 1) {
    if (!seg.has(tf::rst)) {
      wire::TcpRepr rst;
      rst.seq = seg.ack;
      rst.flags = tf::rst;
      stack_.send_raw_tcp(remote_, lport_, rport_, rst, {});
    }
    return;
  }
  if (seg.has(tf::rst)) {
    if (seg.has(tf::ack)) {
      ++stats_.rst_received;
      reset_ = true;
      reset_in_ = state_;
      enter_closed();
    }
    return;
  }
  if (!seg.has(tf::syn) || !seg.has(tf::ack)) return;  // no simultaneous open
  irs_ = seg.seq;
  rcv_nxt_ = irs_ + 1;
  snd_una_ = seg.ack;
  snd_nxt_ = wire::seq_max(snd_nxt_, snd_una_);
  snd_wnd_ = seg.window;
  if (seg.mss) peer_mss_ = *seg.mss;
  state_ = GuestTcpState::established;
  rto_ = stack_.cfg_.rto_min;
  retries_ = 0;
  rto_at_.reset();
  send_ack();
  output(now);
}

void TcpSocket::on_synchronized(const wire::TcpRepr& seg, Bytes payload, Instant now) {
  // RFC 793 §3.3 acceptability of the segment against our receive window.
  const uint32_t wnd = stack_.cfg_.rcv_window;
  const uint32_t seg_len = uint32_t(payload.size()) + (seg.has(tf::syn) ? 1 : 0) + (seg.has(tf::fin) ? 1 : 0);
  auto in_window = [&](SeqNum s) { return s >= rcv_nxt_ && s < rcv_nxt_ + wnd; };
  // A bare ACK may sit exactly at the right edge: a peer that filled our window sends its
  // ACKs with SEG.SEQ = RCV.NXT + RCV.WND. RFC 793's strict test refuses them (and asks
  // for "special allowance" for ACKs); like Linux (tcp_sequence) we accept the edge, or the
  // peer's ACKs would be lost until our window moves.
  const bool acceptable =
      seg_len == 0 ? (seg.seq >= rcv_nxt_ && seg.seq <= rcv_nxt_ + wnd)
                   : (in_window(seg.seq) || in_window(seg.seq + (seg_len - 1)));
  if (!acceptable) {
    ++stats_.dup_segments;
    if (!seg.has(tf::rst)) send_ack();
    return;
  }
  if (seg.has(tf::rst)) {
    ++stats_.rst_received;
    reset_ = state_ != GuestTcpState::time_wait;
    reset_in_ = state_;
    enter_closed();
    return;
  }
  if (seg.has(tf::syn)) {
    send_ack();  // RFC 5961 §4.2: challenge ACK for a SYN in window
    return;
  }
  if (!seg.has(tf::ack)) return;
  // ACK processing (RFC 793 §3.9 "fifth, check the ACK field").
  if (seg.ack > snd_max_) {
    send_ack();
    return;
  }
  if (seg.ack > snd_una_) {
    const uint32_t acked = uint32_t(seg.ack - snd_una_);
    const size_t data = std::min<size_t>(acked, send_buf_.size());
    send_buf_.erase(send_buf_.begin(), send_buf_.begin() + long(data));
    if (acked > data) fin_acked_ = true;
    snd_una_ = seg.ack;
    snd_nxt_ = wire::seq_max(snd_nxt_, snd_una_);
    snd_wnd_ = seg.window;
    retries_ = 0;
    dupacks_ = 0;
    rto_ = stack_.cfg_.rto_min;
    if (snd_una_ == snd_max_) rto_at_.reset();
    else arm_rto(now);
    if (fin_acked_) {
      if (state_ == GuestTcpState::fin_wait_1) state_ = GuestTcpState::fin_wait_2;
      else if (state_ == GuestTcpState::closing) {
        state_ = GuestTcpState::time_wait;
        time_wait_until_ = now + stack_.cfg_.time_wait;
      } else if (state_ == GuestTcpState::last_ack) {
        enter_closed();
        return;
      }
    }
  } else if (seg.ack == snd_una_) {
    const bool pure = payload.empty() && !seg.has(tf::fin);
    if (pure && seg.window == snd_wnd_ && snd_max_ != snd_una_) {
      if (++dupacks_ == 3) {
        // Fast retransmit (RFC 5681 §3.2), of the first unacknowledged segment only.
        ++stats_.fast_retransmits;
        if (!send_buf_.empty()) {
          const size_t len = std::min<size_t>(mss(), send_buf_.size());
          Buf b(send_buf_.begin(), send_buf_.begin() + long(len));
          send_segment(tf::ack | tf::psh, snd_una_, Bytes(b));
        } else if (fin_queued_) {
          send_segment(tf::fin | tf::ack, snd_una_, {});
        }
      }
    }
    snd_wnd_ = seg.window;
  }
  if (state_ == GuestTcpState::time_wait) {
    if (seg.has(tf::fin)) send_ack();
    return;
  }
  switch (state_) {
    case GuestTcpState::established:
    case GuestTcpState::fin_wait_1:
    case GuestTcpState::fin_wait_2: on_data(seg, payload, now); break;
    default: break;  // CLOSE-WAIT, CLOSING, LAST-ACK: the peer's FIN came already
  }
  output(now);
}

void TcpSocket::on_data(const wire::TcpRepr& seg, Bytes payload, Instant now) {
  if (payload.empty() && !seg.has(tf::fin)) return;
  const SeqNum origin = irs_ + 1;
  auto rel = [&](SeqNum s) { return uint32_t(s - origin); };
  SeqNum seq = seg.seq;
  const std::optional<SeqNum> fin = seg.has(tf::fin) ? std::optional<SeqNum>(seq + uint32_t(payload.size()))
                                                     : std::nullopt;
  if (seq < rcv_nxt_) {
    const uint32_t skip = uint32_t(rcv_nxt_ - seq);
    payload = skip >= payload.size() ? Bytes{} : payload.subspan(skip);
    seq = rcv_nxt_;
  }
  if (seq > rcv_nxt_) {
    // Out of order: keep it (bounded) and send a duplicate ACK.
    if (!payload.empty()) {
      if (ooo_.size() < 1024) {
        auto& slot = ooo_[rel(seq)];
        if (slot.size() < payload.size()) slot.assign(payload.begin(), payload.end());
        ++stats_.ooo_stored;
      } else {
        ++stats_.ooo_dropped;
      }
    }
    if (fin) ooo_fin_ = fin;
    send_ack();
    return;
  }
  received_.insert(received_.end(), payload.begin(), payload.end());
  rcv_nxt_ += uint32_t(payload.size());
  // Pull in whatever the out-of-order store now continues.
  while (!ooo_.empty() && ooo_.begin()->first <= rel(rcv_nxt_)) {
    auto it = ooo_.begin();
    const uint32_t end = it->first + uint32_t(it->second.size());
    const uint32_t cur = rel(rcv_nxt_);
    if (end > cur) {
      received_.insert(received_.end(), it->second.begin() + long(cur - it->first), it->second.end());
      rcv_nxt_ += end - cur;
    }
    ooo_.erase(it);
  }
  if ((fin && *fin == rcv_nxt_) || (ooo_fin_ && *ooo_fin_ == rcv_nxt_)) on_fin_consumed(now);
  send_ack();
}

void TcpSocket::on_fin_consumed(Instant now) {
  rcv_nxt_ += 1;
  fin_received_ = true;
  ooo_fin_.reset();
  if (state_ == GuestTcpState::established) {
    state_ = GuestTcpState::close_wait;
  } else if (state_ == GuestTcpState::fin_wait_1) {
    state_ = GuestTcpState::closing;
  } else if (state_ == GuestTcpState::fin_wait_2) {
    state_ = GuestTcpState::time_wait;
    rto_at_.reset();
    time_wait_until_ = now + stack_.cfg_.time_wait;
  }
}

// ---- GuestStack ------------------------------------------------------------------------

GuestStack::GuestStack(const GuestStackConfig& cfg, std::function<void(Bytes)> out, uint64_t seed)
    : cfg_(cfg), out_(std::move(out)) {
  SimRng rng(seed ^ 0x67756573745f7463ULL);
  next_port_ = uint16_t(40000 + rng.below(10000));
  isn_state_ = uint32_t(rng.next());
}

void GuestStack::send_frame(const MacAddr& dst, uint16_t ethertype, Bytes payload) {
  Buf f = eth_frame(dst, cfg_.mac, ethertype, payload);
  ++stats_.frames_out;
  out_(Bytes(f));
}

bool GuestStack::send_ip(bool v6, const IpAddr& dst, uint8_t proto, Bytes l4) {
  const auto& mac = v6 ? gw6_mac_ : gw4_mac_;
  if (!mac) {
    ++stats_.no_route;
    return false;
  }
  if (v6) {
    wire::Ipv6Repr ip;
    ip.src = cfg_.addr6;
    ip.dst = dst.v6;
    ip.next_header = proto;
    ip.hop_limit = 64;
    Buf p = ipv6_packet(ip, l4);
    send_frame(*mac, wire::kEtherTypeIpv6, Bytes(p));
  } else {
    wire::Ipv4Repr ip;
    ip.src = cfg_.addr4;
    ip.dst = dst.v4;
    ip.protocol = proto;
    ip.ttl = 64;
    ip.dont_fragment = true;
    ip.ident = ip_ident_++;
    Buf p = ipv4_packet(ip, l4);
    send_frame(*mac, wire::kEtherTypeIpv4, Bytes(p));
  }
  return true;
}

void GuestStack::send_arp_request() {
  ++stats_.arp_requests;
  wire::ArpRepr a{wire::ArpOp::request, cfg_.mac, cfg_.addr4, MacAddr{}, cfg_.gateway4};
  Buf p(wire::ArpRepr::kLen);
  a.emit(MutBytes(p));
  send_frame(MacAddr::broadcast(), wire::kEtherTypeArp, Bytes(p));
}

void GuestStack::send_ns() {
  ++stats_.ns_sent;
  const Ipv6Addr src = cfg_.mac.link_local();
  const Ipv6Addr dst = cfg_.gateway6.solicited_node();
  wire::NdpRepr m;
  m.type = wire::kNdpNeighborSolicit;
  m.target = cfg_.gateway6;
  m.source_ll = cfg_.mac;
  Buf l4 = ndp_msg(m, src, dst);
  wire::Ipv6Repr ip;
  ip.src = src;
  ip.dst = dst;
  ip.next_header = wire::kProtoIcmpv6;
  ip.hop_limit = 255;  // RFC 4861 §7.1.1
  Buf p = ipv6_packet(ip, Bytes(l4));
  send_frame(MacAddr::for_ipv6_multicast(dst), wire::kEtherTypeIpv6, Bytes(p));
}

void GuestStack::resolve_gateway(bool v6, Instant now) {
  if (gateway_known(v6)) return;
  if (v6) {
    send_ns();
    ns_retry_at_ = now + std::chrono::seconds(1);
  } else {
    send_arp_request();
    arp_retry_at_ = now + std::chrono::seconds(1);
  }
}

TcpSocket& GuestStack::connect(const IpAddr& remote, uint16_t port, Instant now) {
  isn_state_ = isn_state_ * 1664525u + 1013904223u;
  const uint16_t lport = next_port_++;
  sockets_.push_back(std::unique_ptr<TcpSocket>(new TcpSocket(*this, remote.is_v6, remote, lport, port,
                                                              SeqNum{isn_state_})));
  TcpSocket& s = *sockets_.back();
  s.state_ = GuestTcpState::syn_sent;
  s.send_segment(tf::syn, s.iss_, {}, true);
  s.snd_nxt_ = s.iss_ + 1;
  s.snd_max_ = s.snd_nxt_;
  s.arm_rto(now);
  return s;
}

void GuestStack::send_raw_tcp(const IpAddr& remote, uint16_t sport, uint16_t dport, const wire::TcpRepr& seg,
                              Bytes payload) {
  wire::TcpRepr r = seg;
  r.src_port = sport;
  r.dst_port = dport;
  Buf l4(r.header_len() + payload.size());
  if (!payload.empty()) std::memcpy(l4.data() + r.header_len(), payload.data(), payload.size());
  if (remote.is_v6) r.emit_v6(MutBytes(l4), cfg_.addr6, remote.v6);
  else r.emit_v4(MutBytes(l4), cfg_.addr4, remote.v4);
  send_ip(remote.is_v6, remote, wire::kProtoTcp, Bytes(l4));
}

void GuestStack::on_frame(Bytes frame, Instant now) {
  ++stats_.frames_in;
  auto eth = wire::EthernetRepr::parse(frame);
  if (!eth) {
    ++stats_.bad_frames;
    return;
  }
  if (eth->dst != cfg_.mac && !eth->dst.is_multicast()) {
    ++stats_.not_for_us;
    return;
  }
  const Bytes payload = frame.subspan(wire::EthernetRepr::kHeaderLen);
  switch (eth->ethertype) {
    case wire::kEtherTypeArp: on_arp(payload, now); break;
    case wire::kEtherTypeIpv4: on_ipv4(payload, now); break;
    case wire::kEtherTypeIpv6: on_ipv6(payload, now); break;
    default: ++stats_.not_for_us; break;
  }
}

void GuestStack::on_arp(Bytes payload, Instant now) {
  (void)now;
  auto a = wire::ArpRepr::parse(payload);
  if (!a) {
    ++stats_.bad_frames;
    return;
  }
  if (a->op == wire::ArpOp::reply && a->sender_ip == cfg_.gateway4) {
    gw4_mac_ = a->sender_mac;
    arp_retry_at_.reset();
  } else if (a->op == wire::ArpOp::request && a->target_ip == cfg_.addr4) {
    wire::ArpRepr r{wire::ArpOp::reply, cfg_.mac, cfg_.addr4, a->sender_mac, a->sender_ip};
    Buf p(wire::ArpRepr::kLen);
    r.emit(MutBytes(p));
    send_frame(a->sender_mac, wire::kEtherTypeArp, Bytes(p));
  }
}

void GuestStack::on_ipv4(Bytes packet, Instant now) {
  Bytes l4;
  auto ip = wire::Ipv4Repr::parse(packet, &l4);  // verifies the header checksum
  if (!ip) {
    ++stats_.bad_frames;
    return;
  }
  if (ip->dst != cfg_.addr4 || ip->is_fragment()) {
    ++stats_.not_for_us;
    return;
  }
  if (ip->protocol == wire::kProtoTcp) on_tcp(ip->src, ip->dst, l4, now);
  else ++stats_.not_for_us;
}

void GuestStack::on_ipv6(Bytes packet, Instant now) {
  Bytes l4;
  auto ip = wire::Ipv6Repr::parse(packet, &l4);
  if (!ip) {
    ++stats_.bad_frames;
    return;
  }
  if (ip->next_header == wire::kProtoIcmpv6) {
    auto m = wire::NdpRepr::parse(l4, ip->src, ip->dst);
    if (!m) return;  // RA, echo and other ICMPv6: not needed here
    if (m->type == wire::kNdpNeighborAdvert && m->target == cfg_.gateway6 && m->target_ll) {
      gw6_mac_ = *m->target_ll;
      ns_retry_at_.reset();
    } else if (m->type == wire::kNdpNeighborSolicit &&
               (m->target == cfg_.addr6 || m->target == cfg_.mac.link_local())) {
      // RFC 4861 §7.2.4: a solicited advertisement, to the soliciting node.
      wire::NdpRepr na;
      na.type = wire::kNdpNeighborAdvert;
      na.target = m->target;
      na.solicited = !ip->src.is_unspecified();
      na.override_ = true;
      na.target_ll = cfg_.mac;
      const Ipv6Addr dst = ip->src.is_unspecified() ? Ipv6Addr::all_nodes() : ip->src;
      Buf nl4 = ndp_msg(na, m->target, dst);
      wire::Ipv6Repr oip;
      oip.src = m->target;
      oip.dst = dst;
      oip.next_header = wire::kProtoIcmpv6;
      oip.hop_limit = 255;
      Buf p = ipv6_packet(oip, Bytes(nl4));
      const MacAddr to = dst.is_multicast() ? MacAddr::for_ipv6_multicast(dst) : m->source_ll.value_or(MacAddr::broadcast());
      send_frame(to, wire::kEtherTypeIpv6, Bytes(p));
    }
    return;
  }
  if (ip->dst != cfg_.addr6 || ip->fragment) {
    ++stats_.not_for_us;
    return;
  }
  if (ip->next_header == wire::kProtoTcp) on_tcp(ip->src, ip->dst, l4, now);
  else ++stats_.not_for_us;
}

void GuestStack::on_tcp(const IpAddr& src, const IpAddr& dst, Bytes l4, Instant now) {
  wire::Checksum c = src.is_v6 ? wire::pseudo_header_v6(src.v6, dst.v6, wire::kProtoTcp, uint32_t(l4.size()))
                               : wire::pseudo_header_v4(src.v4, dst.v4, wire::kProtoTcp, uint16_t(l4.size()));
  c.add(l4);
  if (c.finish() != 0) {
    ++stats_.bad_checksum;
    return;
  }
  Bytes payload;
  auto seg = wire::TcpRepr::parse(l4, &payload);
  if (!seg) {
    ++stats_.bad_frames;
    return;
  }
  for (auto& s : sockets_) {
    if (s->state_ != GuestTcpState::closed && s->remote_ == src && s->rport_ == seg->src_port &&
        s->lport_ == seg->dst_port) {
      s->on_segment(*seg, payload, now);
      return;
    }
  }
  strays_.push_back(Stray{src, *seg});
  if (seg->has(tf::rst)) return;
  // RFC 793 §3.4 "Reset Generation", CLOSED: a segment to no connection gets a RST.
  wire::TcpRepr rst;
  if (seg->has(tf::ack)) {
    rst.seq = seg->ack;
    rst.flags = tf::rst;
  } else {
    rst.ack = seg->seq + uint32_t(payload.size()) + (seg->has(tf::syn) ? 1 : 0) + (seg->has(tf::fin) ? 1 : 0);
    rst.flags = tf::rst | tf::ack;
  }
  send_raw_tcp(src, seg->dst_port, seg->src_port, rst, {});
}

void GuestStack::poll(Instant now) {
  if (arp_retry_at_ && *arp_retry_at_ <= now) {
    send_arp_request();
    arp_retry_at_ = now + std::chrono::seconds(1);
  }
  if (ns_retry_at_ && *ns_retry_at_ <= now) {
    send_ns();
    ns_retry_at_ = now + std::chrono::seconds(1);
  }
  for (auto& s : sockets_) {
    if (auto d = s->deadline(); d && *d <= now) s->on_timer(now);
    s->output(now);
  }
}

std::optional<Instant> GuestStack::next_deadline() const noexcept {
  std::optional<Instant> d;
  auto take = [&](std::optional<Instant> t) {
    if (t && (!d || *t < *d)) d = t;
  };
  take(arp_retry_at_);
  take(ns_retry_at_);
  for (auto& s : sockets_) take(s->deadline());
  return d;
}

}  // namespace moat::test
