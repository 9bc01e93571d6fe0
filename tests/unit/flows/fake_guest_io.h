#pragma once
// A GuestIo that records what the flow layer sends to the guest (UDP/ICMP relay tests).
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "flows/guest_io.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"

namespace moat::flows::testing {

using Buf = std::vector<std::byte>;

struct SentUdp {
  IpAddr src, dst;
  uint16_t src_port = 0, dst_port = 0;
  Buf payload;
};

struct SentIcmpError {
  bool v6 = false;
  wire::Ipv4Repr offending4;
  wire::Ipv6Repr offending6;
  Buf offending_l4;
  IpAddr src;
  uint8_t type = 0, code = 0;
  uint32_t mtu = 0;
};

struct SentIp {
  bool v6 = false;
  IpAddr src, dst;
  uint8_t proto = 0;
  Buf l4;
};

class FakeGuestIo final : public GuestIo {
 public:
  bool send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, size_t l4_len, FunctionRef<void(MutBytes)> fill) override {
    SentIp p{false, src, dst, proto, Buf(l4_len)};
    fill(MutBytes(p.l4));
    ip.push_back(std::move(p));
    return true;
  }
  bool send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t nh, size_t l4_len,
                 FunctionRef<void(MutBytes)> fill) override {
    SentIp p{true, src, dst, nh, Buf(l4_len)};
    fill(MutBytes(p.l4));
    ip.push_back(std::move(p));
    return true;
  }
  bool send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t sp, uint16_t dp, Bytes payload) override {
    udp.push_back(SentUdp{src, dst, sp, dp, Buf(payload.begin(), payload.end())});
    return true;
  }
  bool send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t sp, uint16_t dp, Bytes payload) override {
    udp.push_back(SentUdp{src, dst, sp, dp, Buf(payload.begin(), payload.end())});
    return true;
  }
  bool send_icmp_error_v4(const wire::Ipv4Repr& off, Bytes l4, Ipv4Addr src, uint8_t type, uint8_t code, Instant,
                          uint16_t mtu) override {
    SentIcmpError e;
    e.offending4 = off;
    e.offending_l4.assign(l4.begin(), l4.end());
    e.src = src;
    e.type = type;
    e.code = code;
    e.mtu = mtu;
    errors.push_back(std::move(e));
    return true;
  }
  bool send_icmp_error_v6(const wire::Ipv6Repr& off, Bytes l4, const Ipv6Addr& src, uint8_t type, uint8_t code, Instant,
                          uint32_t mtu) override {
    SentIcmpError e;
    e.v6 = true;
    e.offending6 = off;
    e.offending_l4.assign(l4.begin(), l4.end());
    e.src = src;
    e.type = type;
    e.code = code;
    e.mtu = mtu;
    errors.push_back(std::move(e));
    return true;
  }
  [[nodiscard]] bool output_blocked() const override { return false; }
  void set_output_ready(std::function<void()> cb) override { ready = std::move(cb); }
  [[nodiscard]] uint32_t mtu() const override { return 1500; }

  std::vector<SentUdp> udp;
  std::vector<SentIcmpError> errors;
  std::vector<SentIp> ip;
  std::function<void()> ready;
};

}  // namespace moat::flows::testing
