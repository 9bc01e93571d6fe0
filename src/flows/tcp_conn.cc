#include "flows/tcp_conn.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "wire/ipv4.h"

namespace moat::flows {

using wire::SeqNum;
using wire::TcpRepr;
namespace tf = wire::tcp_flags;

namespace {

// R-TCP-2: MSS assumed when the guest sends none.
constexpr uint16_t kDefaultMss4 = 536, kDefaultMss6 = 1220;
// Cap on what we believe the peer holds, keeping sequence arithmetic far from 2^31.
constexpr size_t kMaxKnown = size_t{1} << 30;

Instant add_sat(Instant t, Duration d) noexcept {
  if (d <= Duration::zero()) return Instant::max();  // 0 disables a timeout (R-TCP-11)
  return t > Instant::max() - d ? Instant::max() : t + d;
}

}  // namespace

const char* tcp_state_name(TcpState s) noexcept {
  switch (s) {
    case TcpState::Closed: return "CLOSED";
    case TcpState::SynSent: return "SYN-SENT";
    case TcpState::SynReceived: return "SYN-RECEIVED";
    case TcpState::Established: return "ESTABLISHED";
    case TcpState::FinWait1: return "FIN-WAIT-1";
    case TcpState::FinWait2: return "FIN-WAIT-2";
    case TcpState::CloseWait: return "CLOSE-WAIT";
    case TcpState::Closing: return "CLOSING";
    case TcpState::LastAck: return "LAST-ACK";
    case TcpState::TimeWait: return "TIME-WAIT";
  }
  return "?";
}

// ---- Out-of-order queue (R-TCP-8) --------------------------------------------------------

OooPool::OooPool(size_t cap_bytes) : cap_(cap_bytes / kChunkSize) {
  // Both bounded by the cap, so growing the pool never reallocates them.
  storage_.reserve(cap_);
  free_.reserve(cap_);
}

std::byte* OooPool::acquire() noexcept {
  if (!free_.empty()) {
    std::byte* c = free_.back();
    free_.pop_back();
    return c;
  }
  if (storage_.size() >= cap_) return nullptr;
  if (!charge_.try_resize(charge_.bytes() + kChunkSize)) return nullptr;  // R-LIM-2: the segment is dropped
  storage_.push_back(std::make_unique_for_overwrite<std::byte[]>(kChunkSize));  // first growth only
  return storage_.back().get();
}

void OooPool::release(std::byte* chunk) noexcept {
  if (chunk != nullptr) free_.push_back(chunk);
}

size_t OooQueue::stored_bytes() const noexcept {
  size_t n = 0;
  for (size_t i = 0; i < count_; ++i) n += uint32_t(r_[i].end - r_[i].start);
  return n;
}

size_t OooQueue::chunks_held() const noexcept {
  return size_t(std::count_if(chunks_.begin(), chunks_.end(), [](const std::byte* c) { return c != nullptr; }));
}

void OooQueue::copy_in(SeqNum seq, SeqNum from, SeqNum to, Bytes data) noexcept {
  uint32_t off = uint32_t(from - base_);
  size_t src = uint32_t(from - seq);
  size_t n = uint32_t(to - from);
  while (n > 0) {
    const size_t in = off % OooPool::kChunkSize;
    const size_t m = std::min(n, OooPool::kChunkSize - in);
    std::memcpy(chunk_at(off) + in, data.data() + src, m);
    off += uint32_t(m);
    src += m;
    n -= m;
  }
}

OooQueue::Insert OooQueue::insert(SeqNum rcv_nxt, SeqNum limit, SeqNum seq, Bytes data) noexcept {
  if (pool_ == nullptr || data.empty() || data.size() > kMaxBytes || seq <= rcv_nxt) return Insert::Dropped;
  advance(rcv_nxt);
  if (count_ == 0) {  // an empty queue holds no chunk: lay the ring out from rcv_nxt
    base_ = rcv_nxt;
    head_ = 0;
  }
  // Clip to the advertised window and to the ring's reach.
  const SeqNum s = seq;
  const SeqNum e = seq_min(seq + uint32_t(data.size()), seq_min(limit, base_ + uint32_t(kMaxBytes)));
  if (e <= s) return Insert::Dropped;
  // Ranges [i, k) touch [s, e) (overlap or adjacency): they merge with it.
  size_t i = 0;
  while (i < count_ && r_[i].end < s) ++i;
  size_t k = i;
  while (k < count_ && r_[k].start <= e) ++k;
  if (k == i + 1 && r_[i].start <= s && e <= r_[i].end) return Insert::Duplicate;
  if (count_ - (k - i) + 1 > kMaxRanges) return Insert::Dropped;
  // Chunks for the span; on exhaustion give back the ones taken here and drop.
  const uint32_t first = uint32_t(s - base_) / OooPool::kChunkSize;
  const uint32_t last = uint32_t(e - base_ - 1) / OooPool::kChunkSize;
  std::array<uint32_t, kMaxChunks> taken{};
  size_t ntaken = 0;
  for (uint32_t c = first; c <= last; ++c) {
    std::byte*& slot = chunks_[(head_ + c) % kMaxChunks];
    if (slot != nullptr) continue;
    slot = pool_->acquire();
    if (slot == nullptr) {
      for (size_t t = 0; t < ntaken; ++t) {
        std::byte*& back = chunks_[(head_ + taken[t]) % kMaxChunks];
        pool_->release(back);
        back = nullptr;
      }
      return Insert::Dropped;
    }
    taken[ntaken++] = c;
  }
  // Copy only the gaps between stored ranges: bytes already held stay as first received.
  SeqNum cur = s;
  for (size_t j = i; j < k; ++j) {
    if (r_[j].start > cur) copy_in(seq, cur, r_[j].start, data);
    cur = seq_max(cur, r_[j].end);
  }
  if (cur < e) copy_in(seq, cur, e, data);
  Range m{s, e};
  if (k > i) {
    m.start = seq_min(s, r_[i].start);
    m.end = seq_max(e, r_[k - 1].end);
  }
  // r_ = r_[0, i) + m + r_[k, count_)
  std::array<Range, kMaxRanges> out{};
  size_t n = 0;
  for (size_t j = 0; j < i; ++j) out[n++] = r_[j];
  out[n++] = m;
  for (size_t j = k; j < count_; ++j) out[n++] = r_[j];
  r_ = out;
  count_ = uint8_t(n);
  return Insert::Stored;
}

Bytes OooQueue::contiguous(SeqNum rcv_nxt) const noexcept {
  if (count_ == 0 || r_[0].start > rcv_nxt || r_[0].end <= rcv_nxt || rcv_nxt < base_) return {};
  const uint32_t off = uint32_t(rcv_nxt - base_);
  const size_t in = off % OooPool::kChunkSize;
  const size_t n = std::min<size_t>(uint32_t(r_[0].end - rcv_nxt), OooPool::kChunkSize - in);
  return Bytes(chunk_at(off) + in, n);
}

void OooQueue::advance(SeqNum rcv_nxt) noexcept {
  if (count_ == 0) return;
  size_t drop = 0;
  while (drop < count_ && r_[drop].end <= rcv_nxt) ++drop;
  if (drop == count_) {
    clear();
    return;
  }
  if (drop > 0) {
    for (size_t j = drop; j < count_; ++j) r_[j - drop] = r_[j];
    count_ = uint8_t(count_ - drop);
  }
  if (r_[0].start < rcv_nxt) r_[0].start = rcv_nxt;
  // Whole chunks behind rcv_nxt go back to the pool; the ring moves on.
  while (base_ + uint32_t(OooPool::kChunkSize) <= rcv_nxt) {
    pool_->release(chunks_[head_]);
    chunks_[head_] = nullptr;
    head_ = uint8_t((head_ + 1) % kMaxChunks);
    base_ += uint32_t(OooPool::kChunkSize);
  }
}

void OooQueue::clear() noexcept {
  for (auto& c : chunks_) {
    if (c != nullptr) pool_->release(c);
    c = nullptr;
  }
  count_ = 0;
  head_ = 0;
}

// ---- Opening ------------------------------------------------------------------------

void TcpConn::open_passive(const FlowKey& key, const TcpRepr& syn, SeqNum iss, const TcpParams& params,
                           GuestIo& io, TcpPeer& peer, Instant now) {
  key_ = key;
  params_ = params;
  io_ = &io;
  peer_ = &peer;
  state_ = TcpState::SynReceived;  // RFC 9293 §3.10.7.2: LISTEN + SYN
  created_ = last_payload_ = now;
  irs_ = syn.seq;
  rcv_nxt_ = rcv_adv_ = syn.seq + 1;  // SYN payload ignored, not acknowledged (R-TCP-2)
  iss_ = snd_una_ = snd_nxt_ = snd_max_ = recover_ = iss;
  peer_head_ = iss + 1;
  const uint16_t guest_mss = syn.mss.value_or(key.guest.is_v6 ? kDefaultMss6 : kDefaultMss4);
  snd_mss_ = std::max<uint16_t>(64, std::min(guest_mss, params.own_mss));
  rcv_mss_ = std::max<uint16_t>(64, std::min(guest_mss, params.own_mss));
  // RFC 7323 §2.2: scaling only if both SYNs carry the option; the SYN's window is unscaled.
  if (syn.window_scale) {
    snd_wscale_ = *syn.window_scale;
    rcv_wscale_ = params.window_shift();
    ws_ok_ = true;
  }
  snd_wnd_ = syn.window;
  snd_wl1_ = syn.seq;
  snd_wl2_ = iss;
  rearm(now);
}

void TcpConn::open_active(const FlowKey& key, SeqNum iss, const TcpParams& params, GuestIo& io, TcpPeer& peer,
                          Instant now) {
  key_ = key;
  params_ = params;
  io_ = &io;
  peer_ = &peer;
  state_ = TcpState::SynSent;  // RFC 9293 §3.10.1 active OPEN
  created_ = last_payload_ = now;
  iss_ = snd_una_ = snd_nxt_ = snd_max_ = recover_ = iss;
  peer_head_ = iss + 1;
  peer_connected_ = true;  // the host side is an accepted socket
  rcv_wscale_ = params.window_shift();
  snd_mss_ = rcv_mss_ = std::min<uint16_t>(key.guest.is_v6 ? kDefaultMss6 : kDefaultMss4, params.own_mss);
  send_syn(false);
  snd_nxt_ = snd_max_ = iss + 1;
  timing_ = true;
  rtt_seq_ = iss;
  rtt_start_ = now;
  timer_ = Retransmit{now + rto_};
}

void TcpConn::on_peer_connected(Instant now) {
  if (state_ != TcpState::SynReceived || peer_connected_) return;
  peer_connected_ = true;
  send_syn(true);
  snd_nxt_ = snd_max_ = iss_ + 1;
  timing_ = true;
  rtt_seq_ = iss_;
  rtt_start_ = now;
  timer_ = Retransmit{now + rto_};
}

void TcpConn::enter_established(Instant now) {
  state_ = TcpState::Established;
  synced_once_ = true;
  last_payload_ = now;
  // Upstream bytes that arrived during the handshake (server-first protocols) had no
  // edge-triggered event we could act on: look now.
  peer_known_ = std::min(peer_->readable(), kMaxKnown);
}

// ---- Segment arrival (RFC 9293 §3.10.7) -----------------------------------------------

void TcpConn::on_segment(const TcpRepr& seg, Bytes payload, Instant now) {
  switch (state_) {
    case TcpState::Closed:
    case TcpState::TimeWait:
      return;  // the owner answers these (RST or TIME_WAIT record)
    case TcpState::SynSent:
      on_segment_syn_sent(seg, now);
      break;
    default:
      on_segment_synchronized(seg, payload, now);
      break;
  }
  if (!finished()) rearm(now);
}

// RFC 9293 §3.10.7.3, SYN-SENT.
void TcpConn::on_segment_syn_sent(const TcpRepr& seg, Instant now) {
  // First: an ACK must acknowledge our SYN; otherwise <SEQ=SEG.ACK><CTL=RST>.
  const bool has_ack = seg.has(tf::ack);
  if (has_ack && (seg.ack <= iss_ || seg.ack > snd_max_)) {
    if (!seg.has(tf::rst)) send_flags(tf::rst, seg.ack, SeqNum{0});
    return;
  }
  // Second: RST with an acceptable ACK resets the connection (guest refused).
  if (seg.has(tf::rst)) {
    if (has_ack) {
      peer_->abort();
      close(TcpCloseReason::ResetByGuest);
    }
    return;
  }
  // Fourth: SYN. Without ACK it is a simultaneous open, which a guest never does to a
  // port it did not connect to: dropped.
  if (!seg.has(tf::syn) || !has_ack) return;
  irs_ = seg.seq;
  rcv_nxt_ = rcv_adv_ = seg.seq + 1;
  const uint16_t guest_mss = seg.mss.value_or(key_.guest.is_v6 ? kDefaultMss6 : kDefaultMss4);
  snd_mss_ = rcv_mss_ = std::max<uint16_t>(64, std::min(guest_mss, params_.own_mss));
  if (seg.window_scale) {  // RFC 7323 §2.2: both SYNs carried it
    snd_wscale_ = *seg.window_scale;
    ws_ok_ = true;
  } else {
    rcv_wscale_ = 0;
  }
  snd_wnd_ = seg.window;  // unscaled on a SYN
  snd_wl1_ = seg.seq;
  snd_wl2_ = seg.ack;
  snd_una_ = seg.ack;
  if (timing_) rtt_sample(now - rtt_start_);
  timing_ = false;
  retries_ = 0;
  timer_ = Idle{Instant::max()};
  enter_established(now);
  update_window();
  send_ack();
  push(now);
}

void TcpConn::on_segment_synchronized(const TcpRepr& seg, Bytes payload, Instant now) {
  // SYN-RECEIVED while the upstream connect is in progress: nothing has been sent, so a
  // retransmitted SYN is absorbed (R-TCP-1); a RST for the SYN ends the attempt.
  if (state_ == TcpState::SynReceived && !peer_connected_) {
    if (seg.has(tf::rst) && seg.seq == rcv_nxt_) {
      peer_->abort();
      close(TcpCloseReason::ResetByGuest);
    }
    return;
  }
  if (seg.has(tf::syn) && !seg.has(tf::rst)) {
    // A retransmitted SYN in SYN-RECEIVED: our SYN-ACK was lost, send it again.
    if (state_ == TcpState::SynReceived && seg.seq == irs_ && !seg.has(tf::ack)) {
      send_syn(true);
      return;
    }
    // RFC 5961 §4.2: a SYN in a synchronized state, whatever its sequence number, gets a
    // challenge ACK (R-TCP-1: duplicate SYN on an established flow).
    send_challenge_ack();
    return;
  }

  // First (RFC 9293 §3.10.7.4): sequence number acceptability.
  const uint32_t seg_len = uint32_t(payload.size()) + (seg.has(tf::fin) ? 1 : 0);
  const uint32_t wnd = rcv_adv_ > rcv_nxt_ ? uint32_t(rcv_adv_ - rcv_nxt_) : 0;
  bool acceptable;
  if (seg_len == 0) {
    acceptable = wnd == 0 ? seg.seq == rcv_nxt_ : (rcv_nxt_ <= seg.seq && seg.seq < rcv_nxt_ + wnd);
  } else if (wnd == 0) {
    acceptable = false;
  } else {
    const SeqNum last = seg.seq + (seg_len - 1);
    acceptable = (rcv_nxt_ <= seg.seq && seg.seq < rcv_nxt_ + wnd) || (rcv_nxt_ <= last && last < rcv_nxt_ + wnd);
  }
  if (!acceptable) {
    if (seg.has(tf::rst)) return;  // RFC 5961 §3.2: out-of-window RST silently dropped
    // RFC 9293 §3.10.7.4: "special allowance should be made to accept valid ACKs" even
    // when the segment's data does not fit (zero window probes, old duplicates).
    if (seg.has(tf::ack) && state_ != TcpState::SynReceived) {
      if (!process_ack(seg, payload.size(), now)) return;
    }
    send_ack();
    if (!finished()) push(now);
    return;
  }

  // Second: RST (RFC 5961 §3.2): exact sequence number resets, else challenge ACK.
  if (seg.has(tf::rst)) {
    if (seg.seq == rcv_nxt_) {
      peer_->abort();
      close(TcpCloseReason::ResetByGuest);
    } else {
      send_challenge_ack();
    }
    return;
  }

  // Fifth: ACK field.
  if (!process_ack(seg, payload.size(), now)) return;
  // Sixth: URG is ignored, urgent bytes are ordinary data (R-TCP-13).
  // Seventh and eighth: payload and FIN.
  process_payload(seg, payload, now);
  if (!finished()) push(now);
}

// Fifth step of RFC 9293 §3.10.7.4. False: stop processing the segment.
bool TcpConn::process_ack(const TcpRepr& seg, size_t payload_len, Instant now) {
  if (!seg.has(tf::ack)) return false;  // "if the ACK bit is off, drop the segment"
  if (state_ == TcpState::SynReceived) {
    // SYN-RECEIVED: an ACK of our SYN completes the handshake; any other gets a RST.
    if (!(snd_una_ < seg.ack && seg.ack <= snd_max_)) {
      send_flags(tf::rst, seg.ack, SeqNum{0});
      return false;
    }
    snd_una_ = seg.ack;
    if (timing_) rtt_sample(now - rtt_start_);
    timing_ = false;
    retries_ = 0;
    timer_ = Idle{Instant::max()};
    snd_wnd_ = uint32_t(seg.window) << snd_wscale_;
    snd_wl1_ = seg.seq;
    snd_wl2_ = seg.ack;
    enter_established(now);
    return true;
  }
  if (seg.ack > snd_max_) {
    // Acknowledges something not yet sent: ACK and drop.
    send_ack();
    return false;
  }
  const uint32_t seg_wnd = uint32_t(seg.window) << snd_wscale_;
  if (seg.ack > snd_una_) {
    // New data acknowledged. Karn's rule: only an untouched timed segment gives an RTT.
    if (timing_ && seg.ack > rtt_seq_) {
      rtt_sample(now - rtt_start_);
      timing_ = false;
    }
    snd_una_ = seg.ack;
    if (snd_nxt_ < snd_una_) snd_nxt_ = snd_una_;  // after a rewind the guest had more
    retries_ = 0;
    dupacks_ = 0;
    timer_ = Idle{Instant::max()};  // RFC 6298 §5.3: rearm() restarts the RTO
  } else if (seg.ack == snd_una_ && payload_len == 0 && !seg.has(tf::fin) && seg_wnd == snd_wnd_ &&
             snd_max_ > snd_una_) {
    // RFC 5681 §2 duplicate ACK; the third triggers fast retransmit (§3.2), once per
    // window of data (NewReno's `recover`, RFC 6582 §3.2 step 1).
    if (++dupacks_ == kDupAckThreshold && snd_una_ >= recover_) {
      recover_ = snd_max_;
      ++fast_retransmits_;
      ++total_retransmits_;
      rewind();
    }
  }
  // Send window update (RFC 9293 §3.10.7.4): only from a segment not older than the last.
  if (seg.ack >= snd_una_ && (snd_wl1_ < seg.seq || (snd_wl1_ == seg.seq && snd_wl2_ <= seg.ack))) {
    snd_wnd_ = seg_wnd;
    snd_wl1_ = seg.seq;
    snd_wl2_ = seg.ack;
  }
  // Our FIN acknowledged.
  if (fin_acked()) {
    switch (state_) {
      case TcpState::FinWait1: state_ = TcpState::FinWait2; break;
      case TcpState::Closing: state_ = TcpState::TimeWait; reason_ = TcpCloseReason::Normal; return false;
      case TcpState::LastAck: close(TcpCloseReason::Normal); return false;
      default: break;
    }
  }
  return true;
}

// Seventh and eighth steps of RFC 9293 §3.10.7.4 (R-TCP-8, R-TCP-9).
void TcpConn::process_payload(const TcpRepr& seg, Bytes payload, Instant now) {
  const bool fin = seg.has(tf::fin);
  if (payload.empty() && !fin) return;
  const bool accepts_data =
      state_ == TcpState::Established || state_ == TcpState::FinWait1 || state_ == TcpState::FinWait2;
  const SeqNum seg_end = seg.seq + uint32_t(payload.size());
  if (!accepts_data || seg_end + (fin ? 1 : 0) <= rcv_nxt_) {
    // After the guest's FIN (CLOSE-WAIT, CLOSING, LAST-ACK) or an old duplicate
    // (retransmitted FIN, data we have): re-ACK.
    send_ack();
    return;
  }
  if (seg.seq > rcv_nxt_) {
    // Out of order: the payload inside the window waits in the reordering queue (a FIN
    // beyond a hole is not kept: the guest retransmits it). Either way a duplicate ACK, so
    // the guest fast-retransmits the hole (R-TCP-8).
    if (ooo_.enabled()) (void)ooo_.insert(rcv_nxt_, rcv_adv_, seg.seq, payload);
    send_ack();
    return;
  }
  const SeqNum rcv_before = rcv_nxt_;
  // Trim what we already have (overlap) and what lies beyond the advertised window.
  Bytes data = payload.subspan(std::min<size_t>(payload.size(), uint32_t(rcv_nxt_ - seg.seq)));
  const size_t room = rcv_adv_ > rcv_nxt_ ? size_t(rcv_adv_ - rcv_nxt_) : 0;
  bool truncated = false;
  if (data.size() > room) {
    data = data.first(room);
    truncated = true;
  }
  if (!data.empty()) {
    auto w = peer_->write(data);
    if (!w) {
      on_peer_error(w.error(), now);
      return;
    }
    rcv_nxt_ += uint32_t(*w);
    if (*w < data.size()) truncated = true;  // the peer could not take it all: the guest retransmits
    if (*w > 0) {
      last_payload_ = now;
      ack_pending_ = true;
      window_dirty_ = true;
      if (*w >= rcv_mss_) ++full_segments_unacked_;
    }
  }
  if (fin && !truncated && rcv_nxt_ == seg_end) {
    // Eighth: FIN. Everything before it reached the peer, which shuts its write side once
    // that is written (R-TCP-9). Nothing follows a FIN: queued bytes beyond it are void.
    ooo_.clear();
    rcv_nxt_ += 1;
    guest_fin_ = true;
    peer_->shutdown_write();
    switch (state_) {
      case TcpState::Established: state_ = TcpState::CloseWait; break;
      case TcpState::FinWait1:
        if (fin_acked()) {
          state_ = TcpState::TimeWait;
          reason_ = TcpCloseReason::Normal;
        } else {
          state_ = TcpState::Closing;
          fin_exchange_start_ = now;
        }
        break;
      case TcpState::FinWait2:
        state_ = TcpState::TimeWait;
        reason_ = TcpCloseReason::Normal;
        break;
      default: break;
    }
    send_ack();
    return;
  }
  if (!ooo_.empty()) {
    // The segment filled all or part of a hole: what now follows it contiguously goes to
    // the peer too, and the ACK goes at once (RFC 5681 §4.2), so the guest's recovery
    // moves on to the next hole without waiting for the batch to end.
    ooo_.advance(rcv_nxt_);
    if (!drain_ooo(now)) return;
    if (rcv_nxt_ != rcv_before) {
      send_ack();
      return;
    }
  }
  // ACK at least every second full-sized segment (RFC 9293 §3.8.6.3, R-TCP-8); the rest
  // waits for flush() at the end of the batch.
  if (truncated || full_segments_unacked_ >= 2) send_ack();
}

// Writes the queued out-of-order bytes that now follow rcv_nxt_ to the peer. Like the
// in-order path, rcv_nxt_ advances only by what the peer took; the rest stays queued
// (inside the window already advertised). False: the peer failed, the connection closed.
bool TcpConn::drain_ooo(Instant now) {
  for (;;) {
    const Bytes b = ooo_.contiguous(rcv_nxt_);
    if (b.empty()) return true;
    auto w = peer_->write(b);
    if (!w) {
      on_peer_error(w.error(), now);
      return false;
    }
    if (*w == 0) return true;
    rcv_nxt_ += uint32_t(*w);
    ooo_.advance(rcv_nxt_);
    last_payload_ = now;
    ack_pending_ = true;
    window_dirty_ = true;
    if (*w < b.size()) return true;
  }
}

// ---- Output -----------------------------------------------------------------------------

bool TcpConn::emit(const TcpRepr& r, size_t payload_len, FunctionRef<bool(MutBytes)> fill, const TcpTxOffload& off) {
  const size_t hl = r.header_len();
  bool ok = true;
  auto writer = [&](MutBytes l4) {
    if (payload_len > 0) ok = fill(l4.subspan(hl, payload_len));
    if (off.partial) {
      // The guest's kernel trusts a partial checksum (virtio NEEDS_CSUM), so a segment
      // whose payload could not be read cannot be spoiled through it: it is sent as an
      // old duplicate instead (ending at snd_una, which the guest already has), which a
      // receiver discards and answers with an ACK (RFC 9293 §3.10.7.4).
      TcpRepr h = r;
      if (!ok) h.seq = snd_una_ - uint32_t(payload_len);
      if (key_.guest.is_v6) h.emit_v6_partial(l4, key_.remote.v6, key_.guest.v6);
      else h.emit_v4_partial(l4, key_.remote.v4, key_.guest.v4);
      return;
    }
    if (key_.guest.is_v6) r.emit_v6(l4, key_.remote.v6, key_.guest.v6);
    else r.emit_v4(l4, key_.remote.v4, key_.guest.v4);
    // The frame is already committed; if its payload could not be read, spoil the
    // checksum so the guest drops it rather than taking garbage as data.
    if (!ok) l4[wire::TcpRepr::kChecksumOffset] ^= std::byte{0xff};
  };
  const size_t l4_len = hl + payload_len;
  bool sent;
  if (off.partial || off.gso_size != 0) {
    sent = key_.guest.is_v6 ? io_->send_tcp_v6(key_.remote.v6, key_.guest.v6, l4_len, writer, off)
                            : io_->send_tcp_v4(key_.remote.v4, key_.guest.v4, l4_len, writer, off);
  } else {
    sent = key_.guest.is_v6 ? io_->send_ipv6(key_.remote.v6, key_.guest.v6, wire::kProtoTcp, l4_len, writer)
                            : io_->send_ipv4(key_.remote.v4, key_.guest.v4, wire::kProtoTcp, l4_len, writer);
  }
  return sent && ok;
}

TcpRepr TcpConn::header(uint8_t flags, SeqNum seq) noexcept {
  TcpRepr r;
  r.src_port = key_.remote_port;
  r.dst_port = key_.guest_port;
  r.seq = seq;
  r.ack = rcv_nxt_;
  r.flags = flags;
  r.window = (flags & tf::rst) ? 0 : window_field();
  return r;
}

bool TcpConn::send_flags(uint8_t flags, SeqNum seq, std::optional<SeqNum> ack) {
  TcpRepr r = header(flags, seq);
  if (ack) r.ack = *ack;
  return emit(r, 0, [](MutBytes) { return true; });
}

void TcpConn::send_syn(bool with_ack) {
  TcpRepr r;
  r.src_port = key_.remote_port;
  r.dst_port = key_.guest_port;
  r.seq = iss_;
  r.ack = with_ack ? rcv_nxt_ : SeqNum{0};
  r.flags = with_ack ? (tf::syn | tf::ack) : tf::syn;  // ECE/CWR never set (R-TCP-2)
  r.mss = params_.own_mss;
  // RFC 7323 §2.2: in a SYN-ACK only if the guest offered it; in our SYN we offer.
  if (!with_ack || ws_ok_) r.window_scale = rcv_wscale_;
  // The window of a SYN is never scaled (RFC 7323 §2.2).
  const size_t w = std::min<size_t>({peer_->writable(), params_.max_window, 65535});
  r.window = uint16_t(w);
  if (rcv_nxt_ + uint32_t(w) > rcv_adv_) rcv_adv_ = rcv_nxt_ + uint32_t(w);
  emit(r, 0, [](MutBytes) { return true; });
}

void TcpConn::send_ack() {
  if (send_flags(tf::ack, snd_nxt_)) {
    ack_pending_ = false;
    full_segments_unacked_ = 0;
  }
}

void TcpConn::send_challenge_ack() {
  ++challenge_acks_;
  send_flags(tf::ack, snd_nxt_);
}

void TcpConn::send_rst_to_guest() {
  TcpRepr r = header(tf::rst | tf::ack, snd_nxt_);
  emit(r, 0, [](MutBytes) { return true; });
}

bool TcpConn::send_data(SeqNum seq, size_t len, bool psh, const TcpTxOffload& offload) {
  TcpRepr r = header(psh ? (tf::ack | tf::psh) : tf::ack, seq);
  const size_t off = size_t(uint32_t(seq - peer_head_));
  const bool ok = emit(r, len, [&](MutBytes p) {
    auto n = peer_->peek(off, p);
    if (!n) {
      peer_error_ = n.error();
      return false;
    }
    return *n == p.size();
  }, offload);
  if (ok) {
    ack_pending_ = false;  // the segment carries the ACK
    full_segments_unacked_ = 0;
  }
  return ok;
}

uint16_t TcpConn::window_field() noexcept {
  // Rounded *up* to the scale unit so the advertised right edge never moves back.
  const uint32_t w = rcv_adv_ > rcv_nxt_ ? uint32_t(rcv_adv_ - rcv_nxt_) : 0;
  const uint32_t unit = uint32_t{1} << rcv_wscale_;
  const uint32_t field = std::min<uint32_t>((w + unit - 1) >> rcv_wscale_, 65535);
  const SeqNum edge = rcv_nxt_ + (field << rcv_wscale_);
  if (edge > rcv_adv_) rcv_adv_ = edge;
  return uint16_t(field);
}

void TcpConn::update_window() noexcept {
  window_dirty_ = false;
  if (guest_fin_) return;
  const uint64_t cap = ws_ok_ ? (uint64_t{65535} << rcv_wscale_) : 65535;
  // One scale unit is held back: window_field() rounds up to it so the right edge never
  // moves back, and that rounding must not promise more than the peer can take.
  const uint32_t unit = uint32_t{1} << rcv_wscale_;
  size_t w = size_t(std::min<uint64_t>({peer_->writable(), params_.max_window, cap}));
  w = w > unit ? w - unit : 0;
  if (rcv_nxt_ + uint32_t(w) > rcv_adv_) rcv_adv_ = rcv_nxt_ + uint32_t(w);
}

void TcpConn::push(Instant now) {
  if (!peer_connected_) return;
  switch (state_) {
    case TcpState::Established:
    case TcpState::CloseWait:
    case TcpState::FinWait1:  // retransmissions only (nothing new after our FIN)
    case TcpState::Closing:
    case TcpState::LastAck:
      break;
    default:
      return;
  }
  blocked_on_output_ = false;
  const size_t limit = peer_->peek_limit();
  const SeqNum avail_end = peer_head_ + uint32_t(std::min(peer_known_, limit));
  const SeqNum wnd_end = snd_una_ + snd_wnd_;
  const SeqNum end = seq_min(avail_end, wnd_end);
  // R-TR-6: what the link takes. A super-frame always has a partial checksum (Linux's tun
  // requires NEEDS_CSUM with GSO); plain segments have one when checksum offload is on.
  const TxCaps caps = io_->tx_caps();
  const bool tso = key_.guest.is_v6 ? caps.tso6 : caps.tso4;
  uint32_t tso_max = 0;  // payload of the largest super-frame, a multiple of snd_mss_
  if (tso) {
    // Data segments carry no TCP options: a 65535-byte IP packet holds this much payload.
    const uint32_t ip_hdr = key_.guest.is_v6 ? wire::Ipv6Repr::kHeaderLen : wire::Ipv4Repr::kHeaderLen;
    tso_max = 0xffff - ip_hdr - uint32_t(wire::TcpRepr::kHeaderLen);
    if (caps.max_tso_payload != 0) tso_max = std::min(tso_max, caps.max_tso_payload);
    tso_max -= tso_max % snd_mss_;
  }
  while (snd_nxt_ < end) {
    if (io_->output_blocked()) {
      blocked_on_output_ = true;
      break;
    }
    const uint32_t left = uint32_t(end - snd_nxt_);
    uint32_t len = std::min<uint32_t>(left, snd_mss_);
    TcpTxOffload off;
    off.partial = caps.csum;
    if (tso && left > snd_mss_ && tso_max > snd_mss_) {
      // Every segment the guest cuts is snd_mss_ bytes except the burst's very last one,
      // exactly what the loop below would have sent one by one.
      len = std::min(left, tso_max);
      off.gso_size = snd_mss_;
      off.partial = true;
    }
    const bool psh = snd_nxt_ + len == end;
    if (!send_data(snd_nxt_, len, psh, off)) break;
    if (!timing_ && snd_nxt_ >= snd_max_) {
      timing_ = true;
      rtt_seq_ = snd_nxt_;
      rtt_start_ = now;
    }
    snd_nxt_ += len;
    if (snd_nxt_ > snd_max_) snd_max_ = snd_nxt_;
    if (!std::holds_alternative<Retransmit>(timer_)) timer_ = Retransmit{now + rto_};
  }
  if (peer_error_.value != 0) {
    const Errno e = peer_error_;
    peer_error_ = Errno{};
    on_peer_error(e, now);
    return;
  }
  // Upstream EOF: FIN after the pending data (R-TCP-9).
  if (peer_->read_closed() && !fin_sent_ && !blocked_on_output_ && snd_nxt_ == avail_end &&
      uint64_t(peer_known_) <= limit &&
      (state_ == TcpState::Established || state_ == TcpState::CloseWait || fin_ever_)) {
    // After a rewind the FIN keeps its sequence number.
    if (fin_ever_ && snd_nxt_ != fin_seq_) return;
    // A blocked link (full queue, ingress rate limit) holds the FIN too, and the flow waits
    // for the output-ready callback like a data segment would: without the flag nothing
    // would ever send it.
    if (io_->output_blocked()) {
      blocked_on_output_ = true;
      return;
    }
    if (send_flags(tf::fin | tf::ack, snd_nxt_)) {
      ack_pending_ = false;
      if (!fin_ever_) {
        fin_ever_ = true;
        fin_seq_ = snd_nxt_;
        if (state_ == TcpState::Established) {
          state_ = TcpState::FinWait1;
        } else if (state_ == TcpState::CloseWait) {
          state_ = TcpState::LastAck;
          fin_exchange_start_ = now;
        }
      }
      fin_sent_ = true;
      snd_nxt_ += 1;
      if (snd_nxt_ > snd_max_) snd_max_ = snd_nxt_;
      if (!std::holds_alternative<Retransmit>(timer_)) timer_ = Retransmit{now + rto_};
    } else {
      blocked_on_output_ = io_->output_blocked();
    }
  }
}

// ---- Peer events ------------------------------------------------------------------------

void TcpConn::on_peer_readable(Instant now) {
  if (finished() || !peer_connected_) return;
  if (state_ == TcpState::SynSent || state_ == TcpState::SynReceived) return;  // read on establishment
  peer_known_ = std::min(peer_->readable(), kMaxKnown);
  push(now);
  if (!finished()) rearm(now);
}

bool TcpConn::window_nearly_closed() const noexcept {
  if (finished() || guest_fin_) return false;
  if (state_ != TcpState::Established && state_ != TcpState::FinWait1 && state_ != TcpState::FinWait2) return false;
  const uint32_t offered = rcv_adv_ > rcv_nxt_ ? uint32_t(rcv_adv_ - rcv_nxt_) : 0;
  return offered < params_.max_window / 4;
}

void TcpConn::on_peer_writable(Instant now) {
  if (finished() || guest_fin_) return;
  if (state_ != TcpState::Established && state_ != TcpState::FinWait1 && state_ != TcpState::FinWait2) return;
  if (!ooo_.empty()) {
    // Queued bytes the peer could not take earlier.
    const SeqNum before = rcv_nxt_;
    if (!drain_ooo(now)) return;
    if (rcv_nxt_ != before) {
      update_window();
      send_ack();
      rearm(now);
      return;
    }
  }
  // Only when the window we last offered is small is a window update worth its syscalls
  // (receiver SWS avoidance, RFC 9293 §3.8.6.2.2: update by min(RCV.BUFF/2, MSS)).
  const uint32_t offered = rcv_adv_ > rcv_nxt_ ? uint32_t(rcv_adv_ - rcv_nxt_) : 0;
  if (offered >= params_.max_window / 4) return;
  const SeqNum old_edge = rcv_adv_;
  update_window();
  const uint32_t grew = uint32_t(rcv_adv_ - old_edge);
  if (grew >= std::min<uint32_t>(params_.max_window / 2, rcv_mss_) || (offered == 0 && grew > 0)) send_ack();
  rearm(now);
}

void TcpConn::on_peer_error(Errno /*e*/, Instant /*now*/) {
  if (finished()) return;
  // ECONNRESET / EPIPE / ETIMEDOUT upstream: RST to the guest (R-TCP-10).
  if (state_ != TcpState::SynReceived || peer_connected_) send_rst_to_guest();
  close(TcpCloseReason::ResetByUpstream);
}

void TcpConn::abort(TcpCloseReason why, Instant /*now*/) {
  if (finished()) return;
  send_rst_to_guest();
  peer_->abort();
  close(why);
}

void TcpConn::close(TcpCloseReason why) {
  ooo_.clear();  // chunks back to the pool
  state_ = TcpState::Closed;
  if (reason_ == TcpCloseReason::None || why != TcpCloseReason::Normal) reason_ = why;
  timer_ = Idle{Instant::max()};
  ack_pending_ = false;
}

// ---- Flush and timers -----------------------------------------------------------------

size_t TcpConn::consume_pending() const noexcept {
  SeqNum end = snd_una_;
  if (fin_ever_ && end > fin_seq_) end = fin_seq_;
  return end > peer_head_ ? size_t(uint32_t(end - peer_head_)) : 0;
}

void TcpConn::do_consume() {
  const size_t n = consume_pending();
  if (n == 0) return;
  // Only what the guest acknowledged leaves the peer (the peer is the retransmit queue).
  if (auto r = peer_->consume(n); !r) {
    peer_error_ = r.error();
    return;
  }
  peer_head_ += uint32_t(n);
  peer_known_ -= std::min(n, peer_known_);
}

void TcpConn::flush(Instant now) {
  if (state_ == TcpState::Closed) return;
  do_consume();
  if (peer_error_.value != 0) {
    const Errno e = peer_error_;
    peer_error_ = Errno{};
    on_peer_error(e, now);
    return;
  }
  if (ack_pending_) {
    if (window_dirty_) update_window();
    send_ack();
  }
}

void TcpConn::rtt_sample(Duration r) noexcept {
  if (r < Duration::zero()) r = Duration::zero();
  // RFC 6298 §2.2 / §2.3 (alpha 1/8, beta 1/4, K 4, G 1 ms).
  if (!have_rtt_) {
    srtt_ = r;
    rttvar_ = r / 2;
    have_rtt_ = true;
  } else {
    const Duration diff = srtt_ > r ? srtt_ - r : r - srtt_;
    rttvar_ = (3 * rttvar_ + diff) / 4;
    srtt_ = (7 * srtt_ + r) / 8;
  }
  rto_ = std::clamp<Duration>(srtt_ + std::max<Duration>(std::chrono::milliseconds(1), 4 * rttvar_), kMinRto,
                              kMaxRto);
}

void TcpConn::rewind() {
  // Go-back-N: everything from the first unacknowledged byte again (R-TCP-7).
  snd_nxt_ = snd_una_;
  timing_ = false;  // Karn
  if (fin_ever_ && snd_una_ <= fin_seq_) fin_sent_ = false;
}

void TcpConn::retransmit(Instant now) {
  ++retries_;
  ++total_retransmits_;
  dupacks_ = 0;
  if (state_ == TcpState::SynSent) {
    if (retries_ > kMaxSynRetries) {  // R-TCP-9 published ports: SYN at 0, 1, 3, 7 s
      peer_->abort();
      close(TcpCloseReason::ConnectTimeout);
      return;
    }
  } else if (retries_ >= kMaxRetransmits) {  // R-TCP-7: 12 consecutive timeouts
    abort(TcpCloseReason::RetransmitLimit, now);
    return;
  }
  rto_ = std::min(rto_ * 2, kMaxRto);  // RFC 6298 §5.5
  timer_ = Retransmit{now + rto_};
  switch (state_) {
    case TcpState::SynSent: send_syn(false); break;
    case TcpState::SynReceived: send_syn(true); break;
    default:
      rewind();
      push(now);
      break;
  }
}

Instant TcpConn::limit_deadline() const noexcept {
  switch (state_) {
    case TcpState::SynReceived: return add_sat(created_, params_.connect_timeout);
    case TcpState::Established: return add_sat(last_payload_, params_.idle_timeout);
    case TcpState::FinWait1:
    case TcpState::FinWait2:
    case TcpState::CloseWait: return add_sat(last_payload_, params_.half_closed_timeout);
    case TcpState::Closing:
    case TcpState::LastAck: return add_sat(fin_exchange_start_, params_.close_timeout);
    default: return Instant::max();
  }
}

void TcpConn::rearm(Instant now) {
  if (finished()) {
    timer_ = Idle{Instant::max()};
    return;
  }
  if (state_ == TcpState::SynReceived && !peer_connected_) {
    timer_ = Close{limit_deadline()};
    return;
  }
  if (snd_max_ != snd_una_) {  // SYN, data or FIN outstanding
    if (!std::holds_alternative<Retransmit>(timer_)) timer_ = Retransmit{now + rto_};
    return;
  }
  const bool unsent = peer_known_ > size_t(uint32_t(snd_nxt_ - peer_head_)) || (peer_->read_closed() && !fin_sent_);
  if (snd_wnd_ == 0 && unsent && state_ != TcpState::SynSent && state_ != TcpState::SynReceived) {
    if (!std::holds_alternative<ZeroWindowProbe>(timer_)) timer_ = ZeroWindowProbe{now + rto_, rto_};
    return;
  }
  if (state_ == TcpState::Closing || state_ == TcpState::LastAck) {
    timer_ = Close{limit_deadline()};
    return;
  }
  timer_ = Idle{limit_deadline()};
}

std::optional<Instant> TcpConn::next_deadline() const noexcept {
  if (finished()) return std::nullopt;
  Instant d = limit_deadline();
  std::visit([&](const auto& t) { d = std::min(d, t.deadline); }, timer_);
  if (d == Instant::max()) return std::nullopt;
  return d;
}

void TcpConn::on_timer(Instant now) {
  if (finished()) return;
  if (now >= limit_deadline()) {
    // R-TCP-11: connect / idle / half-closed / close timeouts reset both sides.
    if (state_ == TcpState::SynReceived && !peer_connected_) {
      close(TcpCloseReason::ConnectTimeout);  // the owner answers with ICMP (R-TCP-3)
    } else if (state_ == TcpState::SynReceived) {
      abort(TcpCloseReason::ConnectTimeout, now);
    } else if (state_ == TcpState::Closing || state_ == TcpState::LastAck) {
      abort(TcpCloseReason::CloseTimeout, now);
    } else {
      abort(TcpCloseReason::IdleTimeout, now);
    }
    return;
  }
  if (auto* rt = std::get_if<Retransmit>(&timer_); rt && now >= rt->deadline) {
    retransmit(now);
  } else if (auto* zw = std::get_if<ZeroWindowProbe>(&timer_); zw && now >= zw->deadline) {
    // RFC 9293 §3.8.6.1 persist: a segment just left of the window makes the guest answer
    // with its current window (Linux's tcp_xmit_probe_skb).
    send_flags(tf::ack, snd_una_ - 1);
    const Duration b = std::min(zw->backoff * 2, kMaxRto);
    timer_ = ZeroWindowProbe{now + b, b};
    return;
  }
  if (!finished()) {
    flush(now);
    if (!finished()) rearm(now);
  }
}

uint64_t TcpConn::bytes_from_guest() const noexcept {
  if (!synced_once_) return 0;
  // rcv_nxt counts the SYN and, once received, the FIN.
  const uint32_t d = rcv_nxt_.value - irs_.value - 1 - (guest_fin_ ? 1 : 0);
  return d < (1u << 31) ? d : 0;
}

uint64_t TcpConn::bytes_to_guest() const noexcept {
  if (!synced_once_) return 0;
  uint32_t d = snd_una_.value - iss_.value;
  if (d > 0) --d;                 // our SYN
  if (fin_acked() && d > 0) --d;  // our FIN
  return d < (1u << 31) ? d : 0;
}

void TcpConn::on_guest_gone() {
  if (finished() || guest_fin_ || guest_gone_ || !peer_) return;
  // guest_fin_ stays false: rcv_nxt_ has no FIN in it (bytes_from_guest) and the states
  // stay as they are; the owner knows the link is gone.
  guest_gone_ = true;
  ooo_.clear();
  peer_->shutdown_write();
}

}  // namespace moat::flows
