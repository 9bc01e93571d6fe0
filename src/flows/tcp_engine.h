#pragma once
// TcpEngine: every guest TCP flow of one gateway — admission (R-TCP-1), host connect and
// failure mapping (R-TCP-3), the relay, published-port flows toward the guest, TIME_WAIT
// records and limits. One per Loop; everything runs on the loop thread.
//
// Ownership: flows live in a FlowTable<TcpFlow> allocated once (max_flows slots). Each
// slot is the epoll IoHandler of its host socket (no closure, no allocation per event)
// and owns its TimerHandle in the loop's TimerQueue (no timerfd per flow). A flow that
// finishes is closed in the table and swept at the end of the engine entry point that
// finished it; the Loop's and TimerQueue's generation checks drop late events for it.
//
// Timers are lazy: a flow's timer is moved earlier when its deadline moves earlier, but
// never later — when it fires early the TcpConn finds nothing due and it is re-armed. So
// restarting the RTO on every ACK costs nothing.
//
// Batching: on_segment_v4/v6 handles one guest segment at once (payload written to the
// host socket straight from the frame); flush(), at the end of the transport's batch,
// consumes acked bytes from the host sockets (one recv(MSG_TRUNC) per flow) and sends
// the coalesced ACKs with a freshly computed window (one getsockopt + ioctl per flow).
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/counters.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "event/loop.h"
#include "flows/admission.h"
#include "flows/destinations.h"
#include "flows/flow_table.h"
#include "flows/gate_peer.h"
#include "flows/guest_io.h"
#include "flows/host_socket_peer.h"
#include "flows/tcp_conn.h"
#include "flows/tcp_peer_provider.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

namespace moat::flows {

struct TcpConfig {
  uint32_t max_flows = 4096;
  uint32_t max_pending_connects = 512;
  Duration connect_timeout = std::chrono::seconds(30), idle_timeout = std::chrono::hours(2),
           half_closed_timeout = std::chrono::minutes(10), close_timeout = std::chrono::seconds(60);
  bool keepalive = true;
  Duration keepalive_idle = std::chrono::seconds(120), keepalive_interval = std::chrono::seconds(30);
  int keepalive_count = 4;
  uint32_t max_window = 8 << 20;
  uint32_t flow_buffer = 256 << 10;
  uint32_t time_wait_max = 4096;
  /// Gateway-wide cap on out-of-order guest payload held for reordering (R-TCP-8): 64 KiB
  /// chunks allocated on first need, reused after that. 0 disables the queue.
  uint32_t ooo_pool_bytes = 16 << 20;
  /// The gateway's memory budget (R-LIM-2): flow rings and reordering chunks are charged
  /// to it, new flows refused at its refuse level. Null = not accounted.
  MemoryBudget* budget = nullptr;
  /// false forces the pre-6.9 fallback (MSG_PEEK into a discard buffer) even when the
  /// kernel has SO_PEEK_OFF on TCP (tests).
  bool use_peek_off = true;
};

/// One slab slot: a guest connection and its host socket.
struct TcpFlow final : event::IoHandler {
  class TcpEngine* engine = nullptr;
  FlowId id;
  TcpConn conn;
  HostSocketPeer host;
  event::Watch watch;  // after `host`: deregistered before the fd closes
  event::TimerHandle timer;
  Instant timer_at = Instant::max();

  // SYN-RECEIVED while dialling (R-TCP-3, R-ADDR-5).
  bool connecting = false;
  Instant connect_started{};  // the oldest pending connect is the one evicted first
  bool saw_refused = false;
  int last_errno = 0;
  DialPlan plan;
  uint8_t next_target = 0;
  wire::Ipv4Repr syn_ip4;  // the guest's SYN, quoted by ICMP errors (R-ICMP-3)
  wire::Ipv6Repr syn_ip6;
  std::array<std::byte, wire::TcpRepr::kMaxHeaderLen> syn_l4{};
  uint8_t syn_l4_len = 0;

  bool in_dirty = false, in_blocked = false, finished = false;

  // Policy (R-POL-9, R-TCP-4/5). On the gate and inspect paths TcpConn talks to `gate`,
  // which holds the first flight until it is classified; `gate_deadline` is the
  // first-flight timeout while holding, then the connect timeout of an inspect dial.
  TcpPath path = TcpPath::fast;
  bool ingress = false;  // published port (open_to_guest)
  GatePeer gate;
  // A peer supplied by a TcpPeerProvider (in-process upstream); the host socket is unused.
  TcpPeerProvider* provider = nullptr;
  TcpPeer* provided = nullptr;
  bool inspect_dial = false;  // inspect path: dialling after an allow
  bool opened = false;        // flow_opened() reported
  Instant gate_deadline = Instant::max();
  uint64_t audit_id = 0;
  Instant started{};
  std::string_view close_why;  // moat's own close reason (policy_deny), overrides the conn's
  NameSrc name_src = NameSrc::none;
  std::string name;

  void on_io(uint32_t events) override;
};

class TcpEngine {
 public:
  TcpEngine(event::Loop& loop, GuestIo& io, const Destinations& destinations, Counters& counters,
            const TcpConfig& config);
  ~TcpEngine();
  TcpEngine(const TcpEngine&) = delete;
  TcpEngine& operator=(const TcpEngine&) = delete;

  /// A TCP segment from the guest (the L4 bytes after the IP header).
  void on_segment_v4(const wire::Ipv4Repr& ip, Bytes tcp_segment, Instant now);
  void on_segment_v6(const wire::Ipv6Repr& ip, Bytes tcp_segment, Instant now);
  /// End of a from-guest frame batch: coalesced ACKs and window updates.
  void flush(Instant now);
  /// Published ports (ingress): `accepted` is a connected host socket; moat opens TCP to
  /// guest:guest_port from src_seen:src_port (SYN retries at 1, 2, 4 s; guest RST or no
  /// answer -> host side reset), then relays like any flow. EADDRINUSE: that 4-tuple is
  /// live; ENOBUFS: max_flows reached (counted).
  Result<void, Errno> open_to_guest(UniqueFd accepted, IpAddr guest, uint16_t guest_port, IpAddr src_seen,
                                    uint16_t src_port, Instant now);
  /// Policy for new flows (R-POL-9); null allows everything (data-path tests). Must
  /// outlive the engine.
  void set_admission(Admission* a) noexcept { admission_ = a; }
  /// Adds a provider asked, after those added before it, for each new flow's peer (see
  /// tcp_peer_provider.h). Set up before any flow; must outlive the engine's flows.
  void add_provider(TcpPeerProvider& p) { providers_.push_back(&p); }
  /// Resets every flow (both sides), e.g. at shutdown.
  void abort_all(Instant now);

  // ---- The drain (R-CLI-2: nothing the guest sent is lost at exit) ----
  // A flow is *drained* when the guest's side of it is complete: it is finished, or the
  // guest's FIN arrived (or the guest's link is gone) and its upstream took every byte
  // and the FIN — on a host socket: write side shut, ring empty, nothing unacknowledged
  // in the kernel (HostSocketPeer::delivered); a provided peer: it was told. What the
  // host still sends toward a guest that has left is not waited for.
  /// Enters the drain: new guest SYNs are refused (RST, tcp.refused) and open_to_guest
  /// fails with ECONNREFUSED. `guest_gone`: the link is gone for good (serve --once), so
  /// every flow's upstream is shut after what moat holds (TcpConn::on_guest_gone), and
  /// flows still in their handshake are reset at once (they carry nothing). Returns the
  /// number of flows it reset.
  size_t begin_drain(bool guest_gone, Instant now);
  [[nodiscard]] bool draining() const noexcept { return draining_; }
  /// Flows not drained yet (one ioctl per flow with a shut host socket).
  [[nodiscard]] size_t undrained_flows();
  /// Ends every flow: drained ones quietly (unread host input discarded, then a plain
  /// close: the host sees the FIN it already has, no RST), the others reset on both sides.
  /// Returns the number reset.
  size_t end_drain(Instant now);

  [[nodiscard]] size_t active_flows() const noexcept { return table_.live(); }
  [[nodiscard]] size_t pending_connects() const noexcept { return pending_connects_; }
  /// Pending connects to one destination address (the fair-share unit, TCP.md).
  [[nodiscard]] uint32_t pending_connects_to(const IpAddr& remote) const noexcept;
  [[nodiscard]] size_t time_wait_records() const noexcept { return tw_.live(); }
  [[nodiscard]] const OooPool& ooo_pool() const noexcept { return ooo_pool_; }
  /// The connection for a 4-tuple (tests, control socket).
  [[nodiscard]] const TcpConn* find(const FlowKey& key);
  /// One live flow as the control socket's `flows` method lists it.
  struct FlowSnapshot {
    FlowInfo info;  ///< info.name points into the flow: copy it in the callback
    uint64_t bytes_from_guest = 0, bytes_to_guest = 0;
    Instant started{};
    const char* state = "";
  };
  /// Calls `fn` for every live flow (control socket `flows`): one scan of the slab, no
  /// allocation, nothing changed.
  void for_each_flow(FunctionRef<void(const FlowSnapshot&)> fn);

 private:
  friend struct TcpFlow;
  friend class TcpFlowRef;
  enum class PeerEvent : uint8_t { readable, writable, error };
  struct TimeWaitRecord {
    wire::SeqNum seq, ack;
    uint16_t window = 0;
    Instant expiry{};
  };

  void on_segment(const FlowKey& key, const wire::TcpRepr& seg, Bytes payload, Bytes l4,
                  const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Instant now);
  void on_syn(const FlowKey& key, const wire::TcpRepr& seg, Bytes l4, const wire::Ipv4Repr* ip4,
              const wire::Ipv6Repr* ip6, Instant now);
  void on_host_io(TcpFlow& f, uint32_t events);
  void on_connect_event(TcpFlow& f, uint32_t events, Instant now);
  void dial(TcpFlow& f, Instant now);
  void connect_failed(TcpFlow& f, int err, Instant now);
  void on_flow_timer(FlowId id);
  /// Pending-connect bookkeeping: every `connecting` transition goes through these two.
  void begin_connect(TcpFlow& f, Instant now);
  void end_connect(TcpFlow& f);
  /// max_pending_connects is reached: the pending connect a new connect to `remote` may
  /// displace — the oldest of the busiest destination, if `remote` has fewer pending
  /// connects than it; null: refuse the SYN.
  TcpFlow* connect_victim(const IpAddr& remote);
  /// Fails connect_victim(remote) as its connect timeout would (tcp.connect_evicted).
  void evict_connect_for(const IpAddr& remote, Instant now);
  void check_gate(TcpFlow& f, Instant now, bool timed_out);
  void inspect_connected(TcpFlow& f, Instant now);
  /// A provider took a released gate/inspect flow: `peer` replaces the host socket.
  void hand_over(TcpFlow& f, TcpPeerProvider& provider, TcpPeer& peer, Instant now);
  /// A provided peer's TcpFlowRef call.
  void on_provided_event(FlowId id, PeerEvent ev, Errno err);
  void report_opened(TcpFlow& f);
  FlowInfo flow_info(const TcpFlow& f) const;
  void on_output_ready();

  void post_event(TcpFlow& f, Instant now);
  void finish(TcpFlow& f, Instant now);
  void arm_timer(TcpFlow& f);
  void sweep();

  bool drained(const TcpFlow& f) const;

  void add_time_wait(const FlowKey& key, wire::SeqNum seq, wire::SeqNum ack, Instant now);
  void expire_time_wait(Instant now);

  /// A segment that belongs to no TcpConn (refusals, RFC 9293 §3.10.7.1 replies).
  void send_bare(const FlowKey& key, uint8_t flags, wire::SeqNum seq, wire::SeqNum ack, uint16_t window = 0);
  void refuse(const FlowKey& key, const wire::TcpRepr& syn);
  wire::SeqNum make_isn(const FlowKey& key, Instant now) const noexcept;
  Status setup_socket(int fd) const noexcept;
  [[nodiscard]] const TcpParams& params_for(bool v6) const noexcept { return v6 ? params6_ : params4_; }
  HostSocketPeer::Options peer_options() noexcept;

  event::Loop& loop_;
  GuestIo& io_;
  const Destinations& dest_;
  Admission* admission_ = nullptr;
  std::vector<TcpPeerProvider*> providers_;
  Counters& counters_;
  TcpConfig cfg_;
  TcpParams params4_, params6_;
  SipKey isn_key_;
  bool use_peek_off_ = true;
  std::vector<std::byte> discard_;  // only without SO_PEEK_OFF
  MemoryCharge discard_charge_;     // discard_, for the engine's life

  OooPool ooo_pool_;     // before table_: outlives every flow's chunks
  RingCache ring_cache_;  // before table_: outlives every flow's ring
  FlowTable<TcpFlow> table_;
  size_t pending_connects_ = 0;
  /// Pending connects per destination address; unordered, one entry per destination with
  /// at least one (linear scans: at most max_pending_connects entries in practice).
  struct PendingDest {
    IpAddr remote;
    uint32_t count = 0;
  };
  std::vector<PendingDest> pending_dests_;
  bool draining_ = false, guest_gone_ = false;
  std::vector<FlowId> dirty_, dirty_scratch_;      // flows owing a flush()
  std::vector<FlowId> blocked_, blocked_scratch_;  // flows waiting for to-guest queue space

  // TIME_WAIT (R-TCP-9): records in a table of their own, evicted oldest-first through a
  // ring of ids in creation order (= expiry order, the lifetime being fixed).
  FlowTable<TimeWaitRecord> tw_;
  std::vector<FlowId> tw_ring_;
  size_t tw_head_ = 0, tw_count_ = 0;
};

}  // namespace moat::flows
