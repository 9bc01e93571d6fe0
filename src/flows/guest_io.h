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

class GuestIo {
 public:
  virtual ~GuestIo() = default;
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
