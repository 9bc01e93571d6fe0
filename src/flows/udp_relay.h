#pragma once
// moat::flows::UdpRelay — the guest's UDP flows re-created on host UDP sockets
// (SPEC R-UDP-2..5).
//
// Theory of operation
// -------------------
// A *session* is keyed by (guest address, guest port). It owns at most one unconnected,
// non-blocking host UDP socket per family, created on the first datagram that needs it.
// Every destination of the session goes out of that one socket, so all of them see the
// same host source port: endpoint-independent mapping (RFC 4787 §4.1, REQ-1).
//
// A *peer* is one host endpoint (address, port) the session sent to; it remembers the
// endpoint as the guest addressed it (the "visible" endpoint: the gateway rather than the
// 127.0.0.1 it was mapped to, R-ADDR-5). Inbound datagrams are delivered only from a peer
// (address- and port-dependent filtering, RFC 4787 §5 REQ-8 "APDF"), with the visible
// endpoint as their source; anything else is `udp.unsolicited`.
//
// Bounds (R-UDP-3, R-LIM-1): sessions <= max_sessions (least recently active evicted,
// `udp.evicted`); peers per session <= max_peers and peers overall <= max_peers_total
// (least recently used evicted); idle sessions and peers expire after idle_timeout. Both
// expiries are driven by one loop timer: sessions and peers sit in LRU lists ordered by
// last use, so the list heads are the next to expire. Sessions are preallocated; peers
// come from a pool reserved up front; lookups go through fixed-size hash indexes. The
// steady-state datagram path therefore never allocates.
//
// Host → guest: each wake-up reads up to 32 datagrams with one recvmmsg into preallocated
// 64 KiB buffers. Guest → host: sendto; on EAGAIN the datagram is copied into a per-socket
// ring (<= queue_datagrams / queue_bytes; excess dropped, `drop.queue_full`) and EPOLLOUT
// is armed until the ring drains. Rings come from a pool bounded by queue_bytes_total and
// are recycled, never freed, so back-pressure allocates only while the pool grows.
//
// Errors (R-UDP-5): sockets set IP_RECVERR / IPV6_RECVERR; each error-queue entry names the
// original destination, which finds the peer, and the ICMP error to the guest quotes an IP
// + UDP header rebuilt from the session (plus whatever payload the kernel returned).
// IPv4 DF is mirrored with IP_MTU_DISCOVER (DO while the guest sets DF, DONT otherwise).
//
// Session lifecycle, state by state:
//   free     in the free list; no sockets, no peers.
//   active   keyed in the index; 0..2 sockets (created lazily), 0..max_peers peers.
//            Refreshed by every datagram from the guest and every datagram delivered.
//       -> free on idle expiry, or LRU eviction when a new session needs the slot.
//            Peers are released first, then the Watches, then the fds (Watch before fd).
// Peer lifecycle: created on the first guest datagram to an endpoint, refreshed only by
// guest datagrams to it (inbound traffic must not keep a filter hole open), released on
// idle expiry, LRU eviction, or with its session.
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/counters.h"
#include "base/memory_budget.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "event/loop.h"
#include "flows/admission.h"
#include "flows/destinations.h"
#include "flows/guest_io.h"
#include "flows/relay_index.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

namespace moat::flows {

/// The `udp.*` config slice (R-UDP-3, R-LIM-1). The constructor clamps to the hard caps.
struct UdpConfig {
  /// The gateway's memory budget (R-LIM-2): new sessions are refused at its refuse level.
  MemoryBudget* budget = nullptr;
  uint32_t max_sessions = 1024;
  Duration idle_timeout = 60s;
  uint32_t max_peers = 1024;            ///< per session
  uint32_t queue_datagrams = 64;        ///< per host socket while it returns EAGAIN
  uint32_t queue_bytes = 512 << 10;     ///< per host socket while it returns EAGAIN
  /// Peers across all sessions (the product max_sessions * max_peers would be 16 M).
  uint32_t max_peers_total = 65536;
  /// All EAGAIN rings together (bounds memory whatever the guest sends, R-LIM-2).
  size_t queue_bytes_total = size_t{8} << 20;

  static constexpr uint32_t kMaxSessionsCap = 16384;  ///< R-LIM-1 hard cap
  static constexpr uint32_t kMaxPeersCap = 65536;
  static constexpr uint32_t kMaxPeersTotalCap = 1u << 20;
};

class UdpRelay {
 public:
  /// Datagrams read per wake-up and socket (R-UDP-3).
  static constexpr unsigned kRecvBatch = 32;
  /// Largest datagram a host socket can deliver (64 KiB buffers).
  static constexpr size_t kRecvBufferSize = 65536;

  UdpRelay(event::Loop& loop, GuestIo& guest, const Destinations& destinations, Counters& counters,
           const UdpConfig& config);
  ~UdpRelay();
  UdpRelay(const UdpRelay&) = delete;
  UdpRelay& operator=(const UdpRelay&) = delete;

  /// A whole UDP datagram from the guest (reassembled if it was fragmented): `udp` is the
  /// UDP header and payload. The caller has already applied R-UDP-1 steps 1-7 (DHCP, DNS,
  /// published ports, QUIC, multicast/broadcast, policy); this is step 8.
  void on_datagram_v4(const wire::Ipv4Repr& ip, Bytes udp, Instant now);
  void on_datagram_v6(const wire::Ipv6Repr& ip, Bytes udp, Instant now);

  /// Egress policy (SPEC §2.4): the first datagram to each peer is decided with S = none
  /// and the verdict kept with the peer until Admission::generation() changes. Null
  /// allows everything. Must outlive the relay.
  void set_admission(Admission* a) noexcept { admission_ = a; }

  /// Guest datagrams still waiting for a host socket that returned EAGAIN (the drain,
  /// R-CLI-2, waits for them to be sent).
  [[nodiscard]] size_t queued_datagrams() const noexcept;
  [[nodiscard]] size_t active_sessions() const noexcept { return session_count_; }
  [[nodiscard]] size_t active_peers() const noexcept { return peer_count_; }
  /// Host port of the session's socket of that family (0 if none): for tests and logs.
  [[nodiscard]] uint16_t host_port(const IpAddr& guest, uint16_t guest_port, bool v6) const;

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  enum Family : uint8_t { kV4 = 0, kV6 = 1 };

  /// Datagrams waiting for a host socket that returned EAGAIN (a byte ring + descriptors).
  struct SendQueue {
    struct Entry {
      Endpoint target;
      uint32_t offset = 0, len = 0;
      bool dont_fragment = false;
    };
    std::unique_ptr<std::byte[]> bytes;
    std::unique_ptr<Entry[]> entries;
    uint32_t head = 0, count = 0;   // entries ring
    size_t byte_head = 0, byte_used = 0;
  };

  /// One host socket of a session; its own IoHandler so dispatch knows (session, family).
  struct HostSocket final : event::IoHandler {
    UdpRelay* relay = nullptr;
    uint32_t session = kNone;
    Family family = kV4;
    UniqueFd fd;          // declared before the Watch: the Watch goes first
    event::Watch watch;
    int8_t dont_fragment = -1;  // v4: the IP_MTU_DISCOVER mode in force (-1: not set yet)
    uint32_t queue = kNone;     // SendQueue index while EAGAIN datagrams wait
    void on_io(uint32_t events) override;
  };

  struct Session {
    bool used = false;
    IpAddr guest;
    uint16_t guest_port = 0;
    uint64_t hash = 0;
    LruLinks lru;
    Instant last_active{};
    uint32_t peer_count = 0;
    uint32_t peer_head = kNone, peer_tail = kNone;  // this session's peers, LRU order
    std::array<HostSocket, 2> sockets;
  };

  struct Peer {
    bool used = false;
    uint32_t session = kNone;
    Endpoint target;   // where the host socket sends (after R-ADDR-5 mapping)
    Endpoint visible;  // as the guest addressed it: the source of replies and errors
    uint64_t hash = 0;
    LruLinks session_lru, global_lru;
    Instant last_used{};
    // The guest's latest datagram to this peer, to rebuild ICMP quotes (R-UDP-5).
    uint16_t udp_length = 0, udp_checksum = 0;
    uint8_t ttl = 64;
    bool dont_fragment = false;
    uint64_t policy_generation = 0;  // Admission::generation() when this peer was allowed
  };

  void on_datagram(const IpAddr& src, const IpAddr& dst, uint16_t src_port, uint16_t dst_port, Bytes udp,
                   Bytes payload, uint16_t checksum, uint8_t ttl, bool dont_fragment, Instant now);
  void refuse(const IpAddr& src, const IpAddr& dst, Bytes udp, uint16_t udp_length, uint8_t ttl, Instant now,
              bool prohibited = false);

  // Sessions.
  uint32_t find_session(const IpAddr& guest, uint16_t port) const;
  uint32_t create_session(const IpAddr& guest, uint16_t port, Instant now);
  void destroy_session(uint32_t s);
  HostSocket* socket_for(uint32_t s, Family family);

  // Peers.
  uint32_t find_peer(uint32_t s, const Endpoint& target) const;
  uint32_t create_peer(uint32_t s, const Endpoint& target);
  void destroy_peer(uint32_t p);
  void session_list_remove(uint32_t p);
  void session_list_push_back(uint32_t p);
  uint64_t peer_hash(uint32_t s, const Endpoint& target) const;

  // Host I/O.
  void on_socket_io(HostSocket& sock, uint32_t events);
  void read_datagrams(HostSocket& sock, Instant now);
  void read_errors(HostSocket& sock, Instant now);
  void send_to_host(HostSocket& sock, const Endpoint& target, Bytes payload, bool dont_fragment, Instant now);
  void set_dont_fragment(HostSocket& sock, bool df);
  bool enqueue(HostSocket& sock, const Endpoint& target, Bytes payload, bool dont_fragment);
  void flush_queue(HostSocket& sock, Instant now);
  void release_queue(HostSocket& sock);
  void on_send_error(HostSocket& sock, const Endpoint& target, int err, Instant now);
  /// ICMP error about the guest's datagram to `peer`; `src` is the error's source.
  void send_error_to_guest(uint32_t peer, const IpAddr& src, uint8_t type, uint8_t code, uint32_t mtu, Bytes quoted_payload,
                           Instant now);

  // Expiry.
  void arm_expiry();
  void on_expiry();

  event::Loop& loop_;
  GuestIo& guest_;
  const Destinations& destinations_;
  Counters& counters_;
  Admission* admission_ = nullptr;
  UdpConfig cfg_;
  KeyHasher hasher_;

  std::vector<Session> sessions_;
  std::vector<uint32_t> free_sessions_;
  RelayIndex session_index_;
  LruList<Session, &Session::lru> session_lru_;
  size_t session_count_ = 0;

  std::vector<Peer> peers_;  // capacity reserved up front; grows by push_back only
  std::vector<uint32_t> free_peers_;
  RelayIndex peer_index_;
  LruList<Peer, &Peer::global_lru> peer_lru_;
  size_t peer_count_ = 0;

  std::vector<std::unique_ptr<SendQueue>> queues_;  // grows to queue_bytes_total / queue_bytes
  MemoryCharge queue_charge_;  // R-LIM-2: the queues_ rings, charged as the pool grows
  MemoryCharge fixed_charge_;  // R-LIM-2: the receive buffers, for the relay's life
  std::vector<uint32_t> free_queues_;

  event::TimerHandle expiry_timer_;

  // recvmmsg batch, allocated once.
  std::unique_ptr<std::byte[]> recv_buffers_;
  std::array<mmsghdr, kRecvBatch> recv_msgs_{};
  std::array<iovec, kRecvBatch> recv_iovs_{};
  std::array<sockaddr_storage, kRecvBatch> recv_addrs_{};
  // Error-queue scratch: the kernel's copy of the original payload, then the quote.
  std::array<std::byte, 1280> err_payload_{};
  std::array<std::byte, 1280> quote_{};
};

}  // namespace moat::flows
