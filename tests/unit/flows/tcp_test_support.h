#pragma once
// TCP scenario helpers (smoltcp's send!/recv!): a fake GuestIo capturing what moat sends,
// parsed back with the production Reprs, and a fixture that plays the guest.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/counters.h"
#include "flows/guest_io.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"
#include "wire/tcp.h"

namespace moat::flows::test {

using Buf = std::vector<std::byte>;
inline Buf text(std::string_view s) {
  Buf b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}
inline std::string str(const Buf& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

struct Emitted {
  bool v6 = false;
  IpAddr src, dst;
  uint8_t proto = 0;
  Buf l4;
  TcpTxOffload offload;  // send_tcp_v4/v6 only
  // ICMP errors
  bool icmp_error = false;
  uint8_t type = 0, code = 0;
};

/// Captures every packet (or, with capture = false, only counts them: no allocation).
class FakeGuestIo final : public GuestIo {
 public:
  std::vector<Emitted> out;
  bool capture = true;
  size_t sent = 0, sent_bytes = 0;
  bool blocked = false;
  std::function<void()> ready;
  uint32_t mtu_value = 1500;
  std::vector<std::byte> scratch = std::vector<std::byte>(65536);

  bool send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, size_t l4_len, FunctionRef<void(MutBytes)> fill) override {
    if (l4_len + 20 > mtu_value) return false;
    last_offload = {};
    return record(false, src, dst, proto, l4_len, fill);
  }
  bool send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t nh, size_t l4_len,
                 FunctionRef<void(MutBytes)> fill) override {
    if (l4_len + 40 > mtu_value) return false;
    last_offload = {};
    return record(true, src, dst, nh, l4_len, fill);
  }
  // R-TR-6: what the fake link accepts; default none (plain frames, like before).
  TxCaps caps;
  [[nodiscard]] TxCaps tx_caps() const override { return caps; }
  bool send_tcp_v4(Ipv4Addr src, Ipv4Addr dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                   const TcpTxOffload& o) override {
    if (!offload_ok(20, l4_len, o)) return false;
    last_offload = o;
    return record(false, src, dst, wire::kProtoTcp, l4_len, fill);
  }
  bool send_tcp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, size_t l4_len, FunctionRef<void(MutBytes)> fill,
                   const TcpTxOffload& o) override {
    if (!offload_ok(40, l4_len, o)) return false;
    last_offload = o;
    return record(true, src, dst, wire::kProtoTcp, l4_len, fill);
  }
  bool send_udp_v4(Ipv4Addr, Ipv4Addr, uint16_t, uint16_t, Bytes) override { return true; }
  bool send_udp_v6(const Ipv6Addr&, const Ipv6Addr&, uint16_t, uint16_t, Bytes) override { return true; }
  bool send_icmp_error_v4(const wire::Ipv4Repr& off, Bytes l4, Ipv4Addr src, uint8_t type, uint8_t code, Instant,
                          uint16_t) override {
    Emitted e;
    e.src = src;
    e.dst = off.src;
    e.icmp_error = true;
    e.type = type;
    e.code = code;
    e.l4.assign(l4.begin(), l4.end());
    out.push_back(e);
    return true;
  }
  bool send_icmp_error_v6(const wire::Ipv6Repr& off, Bytes l4, const Ipv6Addr& src, uint8_t type, uint8_t code,
                          Instant, uint32_t) override {
    Emitted e;
    e.v6 = true;
    e.src = src;
    e.dst = off.src;
    e.icmp_error = true;
    e.type = type;
    e.code = code;
    e.l4.assign(l4.begin(), l4.end());
    out.push_back(e);
    return true;
  }
  [[nodiscard]] bool output_blocked() const override { return blocked; }
  void set_output_ready(std::function<void()> cb) override { ready = std::move(cb); }
  [[nodiscard]] uint32_t mtu() const override { return mtu_value; }

 private:
  // The rules the real Interface enforces: offloads only as advertised, TSO frames partial,
  // each cut segment within the MTU, the whole packet within 65535 bytes.
  bool offload_ok(size_t ip_hdr, size_t l4_len, const TcpTxOffload& o) const {
    if (o.partial && !caps.csum && !caps.tso4 && !caps.tso6) return false;
    if (o.gso_size == 0) return ip_hdr + l4_len <= mtu_value;
    return o.partial && (ip_hdr == 20 ? caps.tso4 : caps.tso6) && ip_hdr + l4_len <= 0xffff &&
           ip_hdr + 20 + o.gso_size <= mtu_value;
  }
  TcpTxOffload last_offload;
  bool record(bool v6, IpAddr src, IpAddr dst, uint8_t proto, size_t l4_len, FunctionRef<void(MutBytes)> fill) {
    if (blocked) return false;
    ++sent;
    sent_bytes += l4_len;
    if (!capture) {
      if (scratch.size() < l4_len) return false;
      fill(MutBytes(scratch.data(), l4_len));
      return true;
    }
    Emitted e;
    e.v6 = v6;
    e.src = src;
    e.dst = dst;
    e.proto = proto;
    e.offload = last_offload;
    last_offload = {};
    e.l4.resize(l4_len);
    fill(MutBytes(e.l4));
    out.push_back(std::move(e));
    return true;
  }
};

/// A segment moat sent, parsed back.
struct Seg {
  wire::TcpRepr h;
  Buf payload;
  [[nodiscard]] bool has(uint8_t f) const { return h.has(f); }
};

inline std::optional<Seg> parse_seg(const Emitted& e) {
  if (e.icmp_error) return std::nullopt;
  Bytes payload;
  auto r = wire::TcpRepr::parse(Bytes(e.l4), &payload);
  if (!r) return std::nullopt;
  return Seg{*r, Buf(payload.begin(), payload.end())};
}

inline std::string flags_str(uint8_t f) {
  std::string s;
  namespace tf = wire::tcp_flags;
  if (f & tf::syn) s += "S";
  if (f & tf::ack) s += "A";
  if (f & tf::fin) s += "F";
  if (f & tf::rst) s += "R";
  if (f & tf::psh) s += "P";
  return s;
}

}  // namespace moat::flows::test
