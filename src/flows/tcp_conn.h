#pragma once
// TcpConn: moat's end of one guest TCP connection (RFC 9293), with its upstream behind a
// TcpPeer. Pure protocol logic: time comes in as `Instant now`, output goes out through
// GuestIo, and next_deadline() tells the owner when to call on_timer() (smoltcp's poll_at).
//
// Lifecycle, state by state (RFC 9293 §3.3.2 names):
//   SynReceived  guest SYN taken (open_passive). While `peer_connected_` is false the
//                host connect is in progress: retransmitted SYNs are absorbed and nothing
//                is sent (SYN-ACK only after the connect succeeded, R-TCP-3). Then the
//                SYN-ACK is sent and retransmitted on RTO / duplicate SYN.
//   SynSent      published port (open_active): our SYN retried at 1 s, 2 s, 4 s; guest
//                RST or silence -> Closed (the owner resets the host side).
//   Established  data both ways. Guest FIN -> CloseWait; upstream EOF -> our FIN -> FinWait1.
//   FinWait1     our FIN sent: ACK of it -> FinWait2; guest FIN -> Closing.
//   FinWait2     waiting for the guest's FIN -> TimeWait.
//   CloseWait    guest FIN received and the upstream write side shut; upstream data still
//                flows to the guest; upstream EOF -> our FIN -> LastAck.
//   Closing      both FINs sent, ours not yet acked -> TimeWait.
//   LastAck      our FIN sent after the guest's -> Closed when acked.
//   TimeWait     both FINs exchanged. The owner turns the flow into a 2 s TIME_WAIT record
//                (R-TCP-9) and frees it.
//   Closed       finished or reset; close_reason() says why. The owner frees it.
//
// Sending (R-TCP-7): segments of at most min(guest MSS, own MSS), up to the guest's
// window, PSH on the last of a burst; payload is peeked from the peer straight into the
// frame. When the link takes TSO for the flow's family (GuestIo::tx_caps, R-TR-6) a burst
// goes out as super-frames of up to ~64 KiB, gso_size = that MSS, every segment but the
// burst's last full-sized, partial checksum; sequence bookkeeping is exactly that of the
// segments the guest cuts them into. With checksum offload alone, data segments carry
// partial checksums. Go-back-N from snd_una on RTO (RFC 6298) and after 3 duplicate ACKs
// (RFC 5681 §3.2). Zero-window persist probes (RFC 9293 §3.8.6.1).
// Receiving (R-TCP-8): in-order in-window payload is written to the peer; out-of-order
// payload inside the advertised window is kept in a bounded OooQueue (when the owner gave
// an OooPool, else dropped) and answered with a duplicate ACK; when the hole is filled the
// now-contiguous bytes follow to the peer and the ACK jumps. Overlaps are trimmed. ACK at
// least every second full segment and at flush().
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "base/memory_budget.h"
#include "base/time.h"
#include "flows/flow_table.h"
#include "flows/guest_io.h"
#include "flows/tcp_peer.h"
#include "wire/tcp.h"

namespace moat::flows {

enum class TcpState : uint8_t {
  Closed,
  SynSent,
  SynReceived,
  Established,
  FinWait1,
  FinWait2,
  CloseWait,
  Closing,
  LastAck,
  TimeWait,
};
const char* tcp_state_name(TcpState s) noexcept;

/// Why a connection ended (counted and audited by the owner).
enum class TcpCloseReason : uint8_t {
  None,
  Normal,            ///< both FINs exchanged
  ResetByGuest,      ///< acceptable guest RST
  ResetByUpstream,   ///< ECONNRESET/EPIPE/ETIMEDOUT from the peer
  RetransmitLimit,   ///< 12 consecutive RTOs
  IdleTimeout,       ///< idle / half-closed timeout
  CloseTimeout,      ///< FIN exchange took longer than close_timeout
  ConnectTimeout,    ///< no SYN-ACK / SYN answer in time
  Aborted,           ///< the owner called abort()
};

/// Per-connection parameters, derived once from TcpConfig and the MTU.
struct TcpParams {
  uint16_t own_mss = 1460;          ///< MTU - 40 / MTU - 60 (R-TCP-2)
  uint32_t max_window = 8 << 20;    ///< tcp.max_window
  Duration idle_timeout = std::chrono::hours(2), half_closed_timeout = std::chrono::minutes(10),
           close_timeout = std::chrono::seconds(60), connect_timeout = std::chrono::seconds(30);
  /// Smallest shift s (<= 14) with 65535 << s >= max_window (R-TCP-2).
  [[nodiscard]] uint8_t window_shift() const noexcept {
    uint8_t s = 0;
    while (s < wire::TcpRepr::kMaxWindowScale && (uint64_t{65535} << s) < max_window) ++s;
    return s;
  }
};

/// Gateway-wide store for out-of-order guest payload (R-TCP-8 reordering queue): a
/// free-list of fixed 64 KiB chunks shared by every flow of a TcpEngine. Chunks are
/// allocated lazily, on first need, up to `cap_bytes`, and reused after that (no allocation
/// once warmed up); an exhausted pool makes acquire() fail and the segment is dropped.
class OooPool {
 public:
  static constexpr size_t kChunkSize = 64 << 10;
  explicit OooPool(size_t cap_bytes);
  OooPool(const OooPool&) = delete;
  OooPool& operator=(const OooPool&) = delete;

  /// New chunks are charged to `budget` (R-LIM-2) and kept charged while the pool lives.
  void set_budget(MemoryBudget* budget) noexcept { charge_.set_budget(budget); }
  /// A chunk of kChunkSize bytes, or nullptr when the cap is reached or the budget refuses.
  [[nodiscard]] std::byte* acquire() noexcept;
  void release(std::byte* chunk) noexcept;

  [[nodiscard]] size_t capacity_chunks() const noexcept { return cap_; }
  [[nodiscard]] size_t allocated_chunks() const noexcept { return storage_.size(); }
  [[nodiscard]] size_t chunks_in_use() const noexcept { return storage_.size() - free_.size(); }

 private:
  size_t cap_;
  std::vector<std::unique_ptr<std::byte[]>> storage_;  // reserved to cap_ up front
  std::vector<std::byte*> free_;                        // reserved to cap_ up front
  MemoryCharge charge_;                                 // storage_.size() chunks
};

/// One flow's out-of-order guest payload: at most kMaxRanges disjoint, non-adjacent byte
/// ranges (sorted by sequence number) inside [base, base + kMaxBytes). The bytes live in a
/// ring of kMaxChunks pool chunks laid out by sequence number: chunk slot (head + i) holds
/// [base + i*K, base + (i+1)*K), K = OooPool::kChunkSize. As rcv_nxt passes whole chunks they
/// go back to the pool and base moves on; an empty queue holds no chunk.
class OooQueue {
 public:
  static constexpr size_t kMaxRanges = 16;          ///< R-TCP-8: per-flow segment bound
  static constexpr size_t kMaxBytes = size_t{1} << 20;  ///< R-TCP-8: per-flow byte bound
  static constexpr size_t kMaxChunks = kMaxBytes / OooPool::kChunkSize;
  static_assert(kMaxBytes % OooPool::kChunkSize == 0);

  enum class Insert : uint8_t { Stored, Duplicate, Dropped };

  OooQueue() = default;
  ~OooQueue() { clear(); }
  OooQueue(const OooQueue&) = delete;
  OooQueue& operator=(const OooQueue&) = delete;

  void set_pool(OooPool* pool) noexcept { pool_ = pool; }
  [[nodiscard]] bool enabled() const noexcept { return pool_ != nullptr; }
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  [[nodiscard]] size_t ranges() const noexcept { return count_; }
  [[nodiscard]] size_t stored_bytes() const noexcept;
  [[nodiscard]] size_t chunks_held() const noexcept;

  /// Stores `data` (first byte at `seq`, rcv_nxt < seq) clipped to [rcv_nxt, limit) and to
  /// the queue's reach; only the bytes not already stored are copied. Dropped (nothing
  /// kept) when it would need more than kMaxRanges ranges, lies beyond the reach, or the
  /// pool has no chunk for it.
  Insert insert(wire::SeqNum rcv_nxt, wire::SeqNum limit, wire::SeqNum seq, Bytes data) noexcept;
  /// Stored bytes starting exactly at `rcv_nxt`, up to the end of their range or chunk
  /// (call again after advance() for the rest). Empty when there is a hole.
  [[nodiscard]] Bytes contiguous(wire::SeqNum rcv_nxt) const noexcept;
  /// Forgets everything before `rcv_nxt` and returns chunks it no longer needs.
  void advance(wire::SeqNum rcv_nxt) noexcept;
  /// Forgets everything and returns every chunk.
  void clear() noexcept;

 private:
  struct Range {
    wire::SeqNum start, end;  // [start, end)
  };
  std::byte* chunk_at(uint32_t off) const noexcept {
    return chunks_[(head_ + off / OooPool::kChunkSize) % kMaxChunks];
  }
  void copy_in(wire::SeqNum seq, wire::SeqNum from, wire::SeqNum to, Bytes data) noexcept;

  OooPool* pool_ = nullptr;
  std::array<std::byte*, kMaxChunks> chunks_{};
  std::array<Range, kMaxRanges> r_{};
  wire::SeqNum base_;
  uint8_t head_ = 0;
  uint8_t count_ = 0;
};

class TcpConn {
 public:
  // RFC 6298 §2 and R-TCP-7.
  static constexpr Duration kInitialRto = std::chrono::seconds(1);
  static constexpr Duration kMinRto = std::chrono::milliseconds(200);
  static constexpr Duration kMaxRto = std::chrono::seconds(60);
  static constexpr int kMaxRetransmits = 12;
  static constexpr int kMaxSynRetries = 3;  ///< open_active: SYN at 0, +1, +2, +4 s
  static constexpr int kDupAckThreshold = 3;

  // The one protocol timer (STYLE "Time and timers"; smoltcp's `enum Timer`).
  struct Idle {
    Instant deadline;  ///< idle / half-closed timeout; Instant::max() when disabled
  };
  struct Retransmit {
    Instant deadline;  ///< RTO of the oldest unacked segment (or SYN / FIN)
  };
  struct ZeroWindowProbe {
    Instant deadline;
    Duration backoff;
  };
  struct Close {
    Instant deadline;  ///< connect timeout (SynReceived) or close_timeout (FIN exchange)
  };
  using Timer = std::variant<Idle, Retransmit, ZeroWindowProbe, Close>;

  TcpConn() = default;
  TcpConn(const TcpConn&) = delete;
  TcpConn& operator=(const TcpConn&) = delete;

  /// Guest SYN (RFC 9293 §3.10.7.2, LISTEN): -> SynReceived, nothing sent until
  /// on_peer_connected(). `peer` and `io` must outlive the connection.
  void open_passive(const FlowKey& key, const wire::TcpRepr& syn, wire::SeqNum iss, const TcpParams& params,
                    GuestIo& io, TcpPeer& peer, Instant now);
  /// Published port: sends our SYN -> SynSent (RFC 9293 §3.10.1).
  void open_active(const FlowKey& key, wire::SeqNum iss, const TcpParams& params, GuestIo& io, TcpPeer& peer,
                   Instant now);

  /// One segment from the guest (parsed header + payload after it).
  void on_segment(const wire::TcpRepr& seg, Bytes payload, Instant now);
  /// The upstream connect succeeded: SYN-ACK now.
  void on_peer_connected(Instant now);
  /// The peer has new bytes or reached EOF (EPOLLIN / EPOLLRDHUP), or output was unblocked.
  void on_peer_readable(Instant now);
  /// The peer can take more (EPOLLOUT): window update if it grew.
  void on_peer_writable(Instant now);
  /// The peer failed (ECONNRESET, EPIPE, ETIMEDOUT...): RST to the guest -> Closed.
  void on_peer_error(Errno e, Instant now);
  /// Timer expiry; harmless if called early.
  void on_timer(Instant now);
  /// End of a from-guest batch: acks consumed in the peer, pending ACK / window update sent.
  void flush(Instant now);
  /// Owner-initiated reset of both sides (limits, shutdown, policy): RST to the guest,
  /// abort() to the peer.
  void abort(TcpCloseReason why, Instant now);
  /// The guest's link is gone for good (a VM disconnected from `serve --once`): no guest
  /// byte can follow, so the peer's write side is shut after what it already took, as after
  /// a guest FIN (out-of-order bytes beyond a hole are void). Nothing is sent to the guest
  /// and the state does not change. Idempotent; no-op once finished or after a guest FIN.
  void on_guest_gone();
  /// Ends the connection without sending anything (the owner answered, e.g. with ICMP).
  void abort_silently(TcpCloseReason why) { if (!finished()) close(why); }
  /// Out-of-order guest payload is queued in chunks of `pool` (which must outlive the
  /// connection); without a pool it is dropped. Call before the first segment.
  void set_ooo_pool(OooPool* pool) noexcept { ooo_.set_pool(pool); }
  [[nodiscard]] const OooQueue& ooo() const noexcept { return ooo_; }

  [[nodiscard]] std::optional<Instant> next_deadline() const noexcept;
  [[nodiscard]] TcpState state() const noexcept { return state_; }
  [[nodiscard]] TcpCloseReason close_reason() const noexcept { return reason_; }
  [[nodiscard]] bool finished() const noexcept { return state_ == TcpState::Closed || state_ == TcpState::TimeWait; }
  /// Something for flush() to do (ACK owed, acked bytes to consume).
  [[nodiscard]] bool needs_flush() const noexcept { return ack_pending_ || consume_pending() > 0; }
  /// Output stopped because GuestIo::output_blocked(); call on_peer_readable() when ready.
  [[nodiscard]] bool blocked_on_output() const noexcept { return blocked_on_output_; }
  /// The window offered to the guest has fallen below a quarter of the maximum, so the
  /// guest may soon stall until we reopen it. The engine then asks the kernel for an
  /// EPOLLOUT edge when the host socket frees send-buffer space (Watch::rearm), since a
  /// socket we never overfilled would otherwise never report it (on_peer_writable).
  [[nodiscard]] bool window_nearly_closed() const noexcept;
  [[nodiscard]] bool guest_fin_received() const noexcept { return guest_fin_; }
  [[nodiscard]] const FlowKey& key() const noexcept { return key_; }
  [[nodiscard]] const Timer& timer() const noexcept { return timer_; }
  [[nodiscard]] uint32_t retransmits() const noexcept { return total_retransmits_; }
  [[nodiscard]] uint32_t fast_retransmits() const noexcept { return fast_retransmits_; }
  [[nodiscard]] uint32_t challenge_acks() const noexcept { return challenge_acks_; }
  /// For a TIME_WAIT record: the ACK to repeat.
  [[nodiscard]] wire::SeqNum snd_nxt() const noexcept { return snd_nxt_; }
  [[nodiscard]] wire::SeqNum rcv_nxt() const noexcept { return rcv_nxt_; }
  /// Payload accepted from the guest / acknowledged by the guest so far (audit, R-OBS-3).
  [[nodiscard]] uint64_t bytes_from_guest() const noexcept;
  [[nodiscard]] uint64_t bytes_to_guest() const noexcept;
  [[nodiscard]] Duration rto() const noexcept { return rto_; }

 private:
  // RFC 9293 §3.10.7.3 / §3.10.7.4.
  void on_segment_syn_sent(const wire::TcpRepr& seg, Instant now);
  void on_segment_synchronized(const wire::TcpRepr& seg, Bytes payload, Instant now);
  bool process_ack(const wire::TcpRepr& seg, size_t payload_len, Instant now);
  void process_payload(const wire::TcpRepr& seg, Bytes payload, Instant now);
  bool drain_ooo(Instant now);
  void enter_established(Instant now);

  // Output.
  void push(Instant now);
  bool send_data(wire::SeqNum seq, size_t len, bool psh, const TcpTxOffload& off = {});
  bool send_flags(uint8_t flags, wire::SeqNum seq, std::optional<wire::SeqNum> ack = std::nullopt);
  wire::TcpRepr header(uint8_t flags, wire::SeqNum seq) noexcept;
  void send_syn(bool with_ack);
  void send_ack();
  void send_challenge_ack();
  void send_rst_to_guest();
  bool emit(const wire::TcpRepr& r, size_t payload_len, FunctionRef<bool(MutBytes payload)> fill,
            const TcpTxOffload& off = {});
  uint16_t window_field() noexcept;
  void update_window() noexcept;

  // Timers and teardown.
  void retransmit(Instant now);
  void rewind();
  void rearm(Instant now);
  [[nodiscard]] Instant limit_deadline() const noexcept;
  void close(TcpCloseReason why);
  void do_consume();
  [[nodiscard]] size_t consume_pending() const noexcept;
  [[nodiscard]] bool fin_acked() const noexcept { return fin_ever_ && snd_una_ > fin_seq_; }
  void rtt_sample(Duration r) noexcept;

  FlowKey key_{};
  TcpParams params_{};
  GuestIo* io_ = nullptr;
  TcpPeer* peer_ = nullptr;
  TcpState state_ = TcpState::Closed;
  TcpCloseReason reason_ = TcpCloseReason::None;

  // Send sequence space (RFC 9293 §3.3.1). snd_max_ is the highest ever sent: after a
  // go-back-N rewind, ACKs up to it are still acceptable.
  wire::SeqNum iss_, snd_una_, snd_nxt_, snd_max_, snd_wl1_, snd_wl2_;
  uint32_t snd_wnd_ = 0;
  uint8_t snd_wscale_ = 0;  // guest's shift, applied to its window
  uint16_t snd_mss_ = 536;  // min(guest MSS, own MSS)
  wire::SeqNum peer_head_;  // sequence number of the peer's first held byte
  size_t peer_known_ = 0;   // bytes the peer is known to hold (lower bound, refreshed per event)
  bool fin_sent_ = false;   // FIN is at or before snd_nxt_ (cleared by a rewind)
  bool fin_ever_ = false;   // FIN has its sequence number fin_seq_
  wire::SeqNum fin_seq_;
  Errno peer_error_{};      // failure seen inside a fill callback, handled after it

  // Receive sequence space.
  wire::SeqNum irs_, rcv_nxt_, rcv_adv_;  // rcv_adv_: right edge advertised (never moves back)
  uint8_t rcv_wscale_ = 0;
  bool ws_ok_ = false;      // window scaling negotiated (RFC 7323 §2.2)
  uint16_t rcv_mss_ = 536;  // largest guest segment we expect (for "every 2nd full segment")
  bool guest_fin_ = false;
  bool guest_gone_ = false;  // on_guest_gone(): the upstream write side was shut for it
  OooQueue ooo_;            // out-of-order payload beyond rcv_nxt_, within rcv_adv_

  bool peer_connected_ = false;
  bool synced_once_ = false;  // reached Established (byte counts are meaningful)
  bool ack_pending_ = false;
  bool window_dirty_ = false;  // recompute the window (syscalls) before the next ACK
  bool blocked_on_output_ = false;
  uint8_t full_segments_unacked_ = 0;

  // RTT / RTO (RFC 6298), Karn's rule: one timed segment, never a retransmitted one.
  Duration srtt_{}, rttvar_{}, rto_ = kInitialRto;
  bool have_rtt_ = false, timing_ = false;
  wire::SeqNum rtt_seq_;
  Instant rtt_start_{};
  int retries_ = 0;
  int dupacks_ = 0;
  wire::SeqNum recover_;  // no second fast retransmit before snd_una passes this
  uint32_t total_retransmits_ = 0, fast_retransmits_ = 0, challenge_acks_ = 0;

  Timer timer_ = Idle{Instant::max()};
  Instant created_{}, last_payload_{}, fin_exchange_start_{};
};

}  // namespace moat::flows
