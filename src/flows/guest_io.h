#pragma once
// What the flow layer needs from the guest link. app/ implements it over stack::Interface;
// unit tests use a fake that captures the emitted packets.
#include <cstdint>
#include <functional>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/function_ref.h"
#include "base/time.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

namespace moat::flows {

/// What the guest link accepts in frames moat sends it (R-TR-6), as the flow layer sees it.
struct TxCaps {
  bool csum = false;  ///< partial L4 checksums (virtio NEEDS_CSUM)
  bool tso4 = false;  ///< TCP super-frames over IPv4 (implies partial checksums)
  bool tso6 = false;  ///< TCP super-frames over IPv6
  /// Largest TCP payload of one super-frame (TSO); 0 = as much as a 65535-byte IP packet holds.
  uint32_t max_tso_payload = 0;
};

/// How one TCP segment uses those offloads (see send_tcp_v4/v6).
struct TcpTxOffload {
  uint16_t gso_size = 0;  ///< > 0: a super-frame the guest cuts into segments of this payload
  bool partial = false;   ///< the checksum field holds the pseudo-header sum only
};

class GuestIo {
 public:
  virtual ~GuestIo() = default;
  /// Offloads the link accepts; the default is none (plain, complete frames).
  [[nodiscard]] virtual TxCaps tx_caps() const { return {}; }
  /// One TCP packet that may use tx_caps(): with o.gso_size > 0 it may exceed the MTU (up
  /// to a 65535-byte IP packet) as long as IP + TCP header + gso_size fits it; TSO frames
  /// must be partial. `fill` writes the TCP header, payload and (partial) checksum. The
  /// default, for links without offloads, takes only plain segments.
  virtual bool send_tcp_v4(Ipv4Addr src, Ipv4Addr dst, size_t l4_len, FunctionRef<void(MutBytes l4)> fill,
                           const TcpTxOffload& o) {
    if (o.gso_size != 0 || o.partial) return false;
    return send_ipv4(src, dst, wire::kProtoTcp, l4_len, fill);
  }
  virtual bool send_tcp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, size_t l4_len,
                           FunctionRef<void(MutBytes l4)> fill, const TcpTxOffload& o) {
    if (o.gso_size != 0 || o.partial) return false;
    return send_ipv6(src, dst, wire::kProtoTcp, l4_len, fill);
  }
  /// One IPv4 packet (20 + l4_len bytes) to the guest; `fill` writes the L4 header, payload
  /// and checksum into exactly l4_len bytes. False: not sent (too big for the MTU, or the
  /// to-guest queue dropped it).
  virtual bool send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, size_t l4_len,
                         FunctionRef<void(MutBytes l4)> fill) = 0;
  /// One IPv6 packet (40 + l4_len bytes, no extension headers) to the guest.
  virtual bool send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t next_header, size_t l4_len,
                         FunctionRef<void(MutBytes l4)> fill) = 0;
  /// One UDP datagram (header built here, checksum computed) to the guest; when it does not
  /// fit the MTU it is fragmented (R-UDP-4): IPv4 fragments with a per-gateway
  /// identification counter, IPv6 fragments with a Fragment header and a random 32-bit id.
  /// IPv4 DF is set when the datagram fits.
  virtual bool send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t src_port, uint16_t dst_port, Bytes payload) = 0;
  virtual bool send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t src_port, uint16_t dst_port,
                           Bytes payload) = 0;
  /// ICMP errors quoting a guest packet (R-ICMP-3 rules and rate limit apply).
  virtual bool send_icmp_error_v4(const wire::Ipv4Repr& offending, Bytes offending_l4, Ipv4Addr src, uint8_t type,
                                  uint8_t code, Instant now, uint16_t next_hop_mtu = 0) = 0;
  virtual bool send_icmp_error_v6(const wire::Ipv6Repr& offending, Bytes offending_l4, const Ipv6Addr& src,
                                  uint8_t type, uint8_t code, Instant now, uint32_t mtu_or_pointer = 0) = 0;
  /// True while the to-guest queue is full: TCP builds no new segments until
  /// the callback given to set_output_ready() runs (R-TR-2 back-pressure).
  [[nodiscard]] virtual bool output_blocked() const = 0;
  virtual void set_output_ready(std::function<void()> cb) = 0;
  /// IP MTU of the guest link.
  [[nodiscard]] virtual uint32_t mtu() const = 0;
};

}  // namespace moat::flows
