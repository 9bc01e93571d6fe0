#pragma once
// GuestStack: a small client TCP/IP stack that plays the guest in the deterministic harness
// (SPEC R-HARD-6; tests/unit/harness). It is an independent implementation — built on the
// production wire/ Reprs for parsing and emitting, but none of moat's stack or TCP code —
// so the harness checks moat against a second opinion rather than against itself.
//
// What it does:
//   link      Ethernet; answers ARP requests and Neighbour Solicitations for its own
//             addresses; resolves the gateway's MAC with ARP (IPv4) and NS/NA (IPv6),
//             retrying every second.
//   IP        IPv4 and IPv6 without options/extension headers; verifies the IPv4 header
//             checksum (Ipv4Repr::parse) and the TCP checksum (pseudo-header) of every
//             segment and counts what it drops.
//   TCP       active open only (a client: the harness's remote peers are moat's flows).
//             RFC 793 states; MSS option; no window scaling, SACK or timestamps. Sender:
//             go-back-N on RTO (exponential back-off, 200 ms .. 8 s, at most max_retries
//             in a row, then the connection times out), fast retransmit of one segment on
//             the third duplicate ACK, at most max_in_flight segments outstanding. Receiver:
//             in-order delivery with an out-of-order store (bounded), an ACK for every
//             segment that carries data, SYN or FIN, RST accepted in window (RFC 793 §3.4).
//             TIME_WAIT lasts 2 s of simulated time.
//
// Lifecycle of a TcpSocket (RFC 793 §3.2 names): closed -> syn_sent (connect) ->
// established -> {fin_wait_1 -> fin_wait_2 | closing} -> time_wait -> closed (we close
// first), or established -> close_wait -> last_ack -> closed (the peer closes first). A
// RST, or max_retries timeouts, end it in closed with reset / timed_out set.
//
// Everything runs on the caller's thread with the caller's `now`; no I/O, no clock.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/time.h"
#include "wire/tcp.h"

namespace moat::test {

enum class GuestTcpState : uint8_t {
  closed,
  syn_sent,
  established,
  fin_wait_1,
  fin_wait_2,
  closing,
  time_wait,
  close_wait,
  last_ack,
};
const char* to_string(GuestTcpState s) noexcept;

struct GuestStackConfig {
  MacAddr mac{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x02}};
  Ipv4Addr addr4 = Ipv4Addr::from_octets(100, 96, 0, 2);
  Ipv4Addr gateway4 = Ipv4Addr::from_octets(100, 96, 0, 1);
  Ipv6Addr addr6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
  Ipv6Addr gateway6{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  uint32_t mtu = 1500;
  uint16_t rcv_window = 65535;  ///< advertised receive window (no scaling)
  uint32_t max_in_flight = 32;  ///< segments outstanding at most
  int max_retries = 10;         ///< RTOs in a row before the connection times out
  Duration rto_min = std::chrono::milliseconds(200), rto_max = std::chrono::seconds(8);
  Duration syn_rto = std::chrono::seconds(1);
  Duration time_wait = std::chrono::seconds(2);
};

class GuestStack;

/// One client connection. Owned by its GuestStack (stable address until the stack dies).
class TcpSocket {
 public:
  [[nodiscard]] GuestTcpState state() const noexcept { return state_; }
  /// Queues bytes to send (any amount; sent as the window allows).
  void write(Bytes data);
  /// Our FIN after everything written so far.
  void close();
  /// Sends RST and forgets the connection.
  void abort(Instant now);

  /// Every byte received in order so far.
  [[nodiscard]] const std::vector<std::byte>& received() const noexcept { return received_; }
  [[nodiscard]] bool fin_received() const noexcept { return fin_received_; }
  /// All written bytes (and our FIN, once close()d) acknowledged.
  [[nodiscard]] bool all_acked() const noexcept { return send_buf_.empty() && (!fin_queued_ || fin_acked_); }
  [[nodiscard]] bool reset() const noexcept { return reset_; }
  /// The state the connection was in when a RST ended it.
  [[nodiscard]] GuestTcpState reset_in() const noexcept { return reset_in_; }
  [[nodiscard]] bool timed_out() const noexcept { return timed_out_; }
  [[nodiscard]] bool is_v6() const noexcept { return v6_; }
  [[nodiscard]] uint16_t local_port() const noexcept { return lport_; }
  [[nodiscard]] uint16_t remote_port() const noexcept { return rport_; }
  [[nodiscard]] const IpAddr& remote() const noexcept { return remote_; }

  struct Stats {
    uint64_t segments_sent = 0, retransmits = 0, rto_fired = 0, fast_retransmits = 0, dup_segments = 0,
             ooo_stored = 0, ooo_dropped = 0, rst_received = 0;
  };
  [[nodiscard]] const Stats& stats() const noexcept { return stats_; }
  [[nodiscard]] std::string describe() const;

 private:
  friend class GuestStack;
  TcpSocket(GuestStack& stack, bool v6, IpAddr remote, uint16_t lport, uint16_t rport, wire::SeqNum iss);

  void on_segment(const wire::TcpRepr& seg, Bytes payload, Instant now);
  void on_synchronized(const wire::TcpRepr& seg, Bytes payload, Instant now);
  void on_ack(const wire::TcpRepr& seg, Bytes payload, Instant now);
  void on_data(const wire::TcpRepr& seg, Bytes payload, Instant now);
  void on_fin_consumed(Instant now);
  void output(Instant now);
  void on_timer(Instant now);
  [[nodiscard]] std::optional<Instant> deadline() const noexcept;
  void send_segment(uint8_t flags, wire::SeqNum seq, Bytes payload, bool syn_options = false);
  void send_ack() { send_segment(wire::tcp_flags::ack, snd_nxt_, {}); }
  void arm_rto(Instant now) { rto_at_ = now + rto_; }
  void enter_closed();
  [[nodiscard]] wire::SeqNum snd_max() const noexcept { return snd_max_; }
  [[nodiscard]] uint32_t mss() const noexcept;

  GuestStack& stack_;
  bool v6_;
  IpAddr local_, remote_;
  uint16_t lport_, rport_;
  GuestTcpState state_ = GuestTcpState::closed;

  // Send side. send_buf_ holds the bytes from snd_una_ on (sent-unacked, then unsent).
  wire::SeqNum iss_, snd_una_, snd_nxt_, snd_max_;
  uint32_t snd_wnd_ = 0;
  uint16_t peer_mss_ = 536;
  std::deque<std::byte> send_buf_;
  bool fin_queued_ = false, fin_acked_ = false;
  uint32_t dupacks_ = 0;
  Duration rto_;
  int retries_ = 0;
  std::optional<Instant> rto_at_;
  std::optional<Instant> time_wait_until_;

  // Receive side.
  wire::SeqNum irs_, rcv_nxt_;
  std::vector<std::byte> received_;
  std::map<uint32_t, std::vector<std::byte>> ooo_;  ///< offset from rcv_nxt_'s origin (irs_+1) -> bytes
  std::optional<wire::SeqNum> ooo_fin_;               ///< a FIN seen beyond rcv_nxt_
  bool fin_received_ = false;

  bool reset_ = false, timed_out_ = false;
  GuestTcpState reset_in_ = GuestTcpState::closed;
  Stats stats_;
};

class GuestStack {
 public:
  /// `out` puts a frame on the link toward moat.
  GuestStack(const GuestStackConfig& cfg, std::function<void(Bytes)> out, uint64_t seed);

  /// A frame from the link.
  void on_frame(Bytes frame, Instant now);
  /// Timers (ARP/NS retries, TCP RTO, TIME_WAIT) and queued output; call after on_frame
  /// batches and whenever time moves.
  void poll(Instant now);
  [[nodiscard]] std::optional<Instant> next_deadline() const noexcept;

  /// Starts resolving the gateway of the family (no-op once known).
  void resolve_gateway(bool v6, Instant now);
  [[nodiscard]] bool gateway_known(bool v6) const noexcept { return v6 ? gw6_mac_.has_value() : gw4_mac_.has_value(); }

  /// Opens a connection (sends SYN) to remote:port from an ephemeral port.
  TcpSocket& connect(const IpAddr& remote, uint16_t port, Instant now);
  /// Sends one bare TCP segment (edge-case tests: stray RST, ACK to nothing, ...).
  void send_raw_tcp(const IpAddr& remote, uint16_t sport, uint16_t dport, const wire::TcpRepr& seg, Bytes payload);
  /// Segments that matched no socket, as parsed (edge-case tests look at them).
  struct Stray {
    IpAddr remote;
    wire::TcpRepr seg;
  };
  std::vector<Stray>& strays() noexcept { return strays_; }

  struct Stats {
    uint64_t frames_in = 0, frames_out = 0, bad_frames = 0, bad_checksum = 0, not_for_us = 0,
             no_route = 0, arp_requests = 0, ns_sent = 0;
  };
  [[nodiscard]] const Stats& stats() const noexcept { return stats_; }
  [[nodiscard]] const GuestStackConfig& config() const noexcept { return cfg_; }

 private:
  friend class TcpSocket;
  void on_arp(Bytes payload, Instant now);
  void on_ipv4(Bytes packet, Instant now);
  void on_ipv6(Bytes packet, Instant now);
  void on_tcp(const IpAddr& src, const IpAddr& dst, Bytes l4, Instant now);
  /// Sends an IP packet carrying `l4` (already checksummed) to the gateway's MAC; false
  /// (counted no_route) while the MAC is unknown.
  bool send_ip(bool v6, const IpAddr& dst, uint8_t proto, Bytes l4);
  void send_frame(const MacAddr& dst, uint16_t ethertype, Bytes payload);
  void send_arp_request();
  void send_ns();

  GuestStackConfig cfg_;
  std::function<void(Bytes)> out_;
  std::optional<MacAddr> gw4_mac_, gw6_mac_;
  std::optional<Instant> arp_retry_at_, ns_retry_at_;
  uint16_t next_port_;
  uint32_t isn_state_;
  uint16_t ip_ident_ = 1;
  std::vector<std::unique_ptr<TcpSocket>> sockets_;
  std::vector<Stray> strays_;
  Stats stats_;
};

}  // namespace moat::test
