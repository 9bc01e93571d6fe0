#pragma once
// Address value types. They hold addresses as values (host order for IPv4, byte arrays
// for IPv6 and MAC); wire/ converts them from and to network byte order.
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace moat {

struct Ipv4Addr {
  uint32_t value = 0;  ///< host byte order: 100.96.0.1 == 0x64600001

  static constexpr Ipv4Addr from_octets(uint8_t a, uint8_t b, uint8_t c, uint8_t d) noexcept {
    return Ipv4Addr{(uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d};
  }
  static constexpr Ipv4Addr broadcast() noexcept { return Ipv4Addr{0xffffffffu}; }
  static std::optional<Ipv4Addr> parse(std::string_view s);
  [[nodiscard]] std::string to_string() const;
  [[nodiscard]] std::array<uint8_t, 4> octets() const noexcept {
    return {uint8_t(value >> 24), uint8_t(value >> 16), uint8_t(value >> 8), uint8_t(value)};
  }
  [[nodiscard]] constexpr bool is_unspecified() const noexcept { return value == 0; }
  [[nodiscard]] constexpr bool is_loopback() const noexcept { return (value >> 24) == 127; }
  [[nodiscard]] constexpr bool is_multicast() const noexcept { return (value >> 28) == 0xe; }
  [[nodiscard]] constexpr bool is_broadcast() const noexcept { return value == 0xffffffffu; }
  [[nodiscard]] constexpr bool is_link_local() const noexcept { return (value >> 16) == 0xa9fe; }
  /// Network mask for a prefix length 0..32.
  static constexpr uint32_t mask(int prefix) noexcept {
    return prefix <= 0 ? 0u : (prefix >= 32 ? 0xffffffffu : ~((1u << (32 - prefix)) - 1));
  }
  [[nodiscard]] constexpr bool in_subnet(Ipv4Addr net, int prefix) const noexcept {
    return ((value ^ net.value) & mask(prefix)) == 0;
  }
  friend constexpr bool operator==(Ipv4Addr, Ipv4Addr) = default;
  friend constexpr auto operator<=>(Ipv4Addr, Ipv4Addr) = default;
};

struct Ipv6Addr {
  std::array<uint8_t, 16> bytes{};

  static std::optional<Ipv6Addr> parse(std::string_view s);
  [[nodiscard]] std::string to_string() const;  ///< RFC 5952 form
  static constexpr Ipv6Addr all_nodes() noexcept {
    return Ipv6Addr{{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  }
  static constexpr Ipv6Addr all_routers() noexcept {
    return Ipv6Addr{{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
  }
  /// ff02::1:ffXX:XXXX for NDP (RFC 4291 §2.7.1).
  [[nodiscard]] Ipv6Addr solicited_node() const noexcept {
    return Ipv6Addr{{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, bytes[13], bytes[14], bytes[15]}};
  }
  [[nodiscard]] bool is_unspecified() const noexcept { return *this == Ipv6Addr{}; }
  [[nodiscard]] bool is_loopback() const noexcept {
    return *this == Ipv6Addr{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  }
  [[nodiscard]] constexpr bool is_multicast() const noexcept { return bytes[0] == 0xff; }
  [[nodiscard]] constexpr bool is_link_local() const noexcept {
    return bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80;
  }
  [[nodiscard]] bool is_v4_mapped() const noexcept {
    for (int i = 0; i < 10; ++i)
      if (bytes[i] != 0) return false;
    return bytes[10] == 0xff && bytes[11] == 0xff;
  }
  [[nodiscard]] bool in_subnet(const Ipv6Addr& net, int prefix) const noexcept;
  friend constexpr bool operator==(const Ipv6Addr&, const Ipv6Addr&) = default;
  friend constexpr auto operator<=>(const Ipv6Addr&, const Ipv6Addr&) = default;
};

struct MacAddr {
  std::array<uint8_t, 6> bytes{};

  static std::optional<MacAddr> parse(std::string_view s);
  [[nodiscard]] std::string to_string() const;
  static constexpr MacAddr broadcast() noexcept { return MacAddr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
  /// 33:33:xx:xx:xx:xx for an IPv6 multicast group (RFC 2464 §7).
  static constexpr MacAddr for_ipv6_multicast(const Ipv6Addr& a) noexcept {
    return MacAddr{{0x33, 0x33, a.bytes[12], a.bytes[13], a.bytes[14], a.bytes[15]}};
  }
  [[nodiscard]] constexpr bool is_multicast() const noexcept { return (bytes[0] & 1) != 0; }
  [[nodiscard]] constexpr bool is_broadcast() const noexcept { return *this == broadcast(); }
  [[nodiscard]] constexpr bool is_zero() const noexcept { return *this == MacAddr{}; }
  /// fe80::/64 + modified EUI-64 (RFC 4291 Appendix A).
  [[nodiscard]] Ipv6Addr link_local() const noexcept {
    return Ipv6Addr{{0xfe, 0x80, 0, 0, 0, 0, 0, 0, uint8_t(bytes[0] ^ 0x02), bytes[1], bytes[2], 0xff, 0xfe,
                     bytes[3], bytes[4], bytes[5]}};
  }
  friend constexpr bool operator==(const MacAddr&, const MacAddr&) = default;
};

/// Either family, for places that carry both (flow keys, config, logs).
struct IpAddr {
  bool is_v6 = false;
  Ipv4Addr v4{};
  Ipv6Addr v6{};

  IpAddr() = default;
  IpAddr(Ipv4Addr a) : is_v6(false), v4(a) {}  // NOLINT: implicit by design
  IpAddr(const Ipv6Addr& a) : is_v6(true), v6(a) {}  // NOLINT
  static std::optional<IpAddr> parse(std::string_view s);
  [[nodiscard]] std::string to_string() const { return is_v6 ? v6.to_string() : v4.to_string(); }
  friend bool operator==(const IpAddr& a, const IpAddr& b) {
    return a.is_v6 == b.is_v6 && (a.is_v6 ? a.v6 == b.v6 : a.v4 == b.v4);
  }
};

/// `a`:`port` as a socket address (sockaddr_in or sockaddr_in6, the rest of `ss` zeroed);
/// returns its length for connect()/sendto().
socklen_t to_sockaddr(const IpAddr& a, uint16_t port, sockaddr_storage* ss) noexcept;

}  // namespace moat
