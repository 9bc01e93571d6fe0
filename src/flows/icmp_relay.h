#pragma once
// moat::flows::IcmpRelay — the guest's echo requests to non-gateway destinations, sent
// through unprivileged ping sockets (SPEC R-ICMP-2).
//
// Theory of operation
// -------------------
// Linux "ping sockets" (SOCK_DGRAM + IPPROTO_ICMP / IPPROTO_ICMPV6) let an unprivileged
// process send echo requests: the kernel owns the identifier field (it is the socket's
// "port", chosen at bind time) and delivers to the socket only the echo replies carrying
// it. moat therefore keeps one connected ping socket per (guest address, guest identifier,
// destination): the request goes out with the kernel's identifier, and each reply is
// rewritten with the guest's identifier (sequence number and data untouched) and sent to
// the guest from the destination address.
//
// Whether ping sockets are allowed depends on the host (`net.ipv4.ping_group_range`, which
// governs ICMPv6 ping sockets too); it is probed once per family at construction. Where
// they are forbidden, requests are dropped (`icmp.relay_unavailable`) and a single warning
// naming the sysctl is logged.
//
// Session lifecycle, state by state:
//   free     in the free list, no socket.
//   active   keyed in the index with a connected, watched socket; refreshed by every
//            request and reply.
//       -> free after idle_timeout (one loop timer drives all expiries off the LRU head),
//          or LRU eviction when a new session needs the slot (max_sessions).
// Sessions are preallocated and looked up through a fixed-size hash index, so a request
// or reply never allocates.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/counters.h"
#include "base/time.h"
#include "base/unique_fd.h"
#include "event/loop.h"
#include "flows/guest_io.h"
#include "flows/relay_index.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

namespace moat::flows {

/// The `icmp.*` relay slice (R-ICMP-2, R-LIM-1).
struct IcmpConfig {
  uint32_t max_sessions = 256;
  Duration idle_timeout = 60s;
  static constexpr uint32_t kMaxSessionsCap = 4096;  ///< R-LIM-1 hard cap
};

class IcmpRelay {
 public:
  /// Largest echo reply read from a ping socket.
  static constexpr size_t kRecvBufferSize = 65536;
  /// Replies read per wake-up and socket.
  static constexpr unsigned kReadBatch = 16;

  IcmpRelay(event::Loop& loop, GuestIo& guest, Counters& counters, const IcmpConfig& config);
  ~IcmpRelay();
  IcmpRelay(const IcmpRelay&) = delete;
  IcmpRelay& operator=(const IcmpRelay&) = delete;

  /// An echo request (`echo.type == kIcmpEchoRequest`) to a destination that is not the
  /// gateway, already allowed by policy.
  void on_echo_v4(const wire::Ipv4Repr& ip, const wire::Icmpv4Repr& echo, Instant now);
  void on_echo_v6(const wire::Ipv6Repr& ip, const wire::Icmpv6Repr& echo, Instant now);

  [[nodiscard]] bool available_v4() const noexcept { return available_[0]; }
  [[nodiscard]] bool available_v6() const noexcept { return available_[1]; }
  [[nodiscard]] size_t active_sessions() const noexcept { return session_count_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Session final : event::IoHandler {
    IcmpRelay* relay = nullptr;
    uint32_t index = kNone;
    bool used = false;
    IpAddr guest, destination;
    uint16_t guest_ident = 0;
    uint64_t hash = 0;
    LruLinks lru;
    Instant last_used{};
    UniqueFd fd;  // before the Watch: the Watch is destroyed first
    event::Watch watch;
    void on_io(uint32_t events) override;
  };

  void on_echo(const IpAddr& guest, const IpAddr& dst, uint16_t ident, uint16_t seq, Bytes data, Instant now);
  uint64_t hash_key(const IpAddr& guest, const IpAddr& dst, uint16_t ident) const;
  uint32_t find(const IpAddr& guest, const IpAddr& dst, uint16_t ident) const;
  uint32_t create(const IpAddr& guest, const IpAddr& dst, uint16_t ident, Instant now);
  void destroy(uint32_t s);
  void read_replies(Session& session);
  void arm_expiry();
  void on_expiry();

  event::Loop& loop_;
  GuestIo& guest_;
  Counters& counters_;
  IcmpConfig cfg_;
  std::array<bool, 2> available_{};  // [0] IPv4, [1] IPv6
  KeyHasher hasher_;

  std::vector<Session> sessions_;
  std::vector<uint32_t> free_;
  RelayIndex index_;
  LruList<Session, &Session::lru> lru_;
  size_t session_count_ = 0;
  event::TimerHandle expiry_timer_;

  std::unique_ptr<std::byte[]> recv_buffer_;  // one reply at a time, allocated once
  std::unique_ptr<std::byte[]> send_buffer_;  // the request as written to the socket
};

}  // namespace moat::flows
