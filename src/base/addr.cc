#include "base/addr.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace moat {

namespace {
// inet_pton wants a NUL-terminated string; names longer than any address are rejected.
template <size_t N>
bool copy_z(std::string_view s, char (&buf)[N]) {
  if (s.size() >= N) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  return true;
}
}  // namespace

std::optional<Ipv4Addr> Ipv4Addr::parse(std::string_view s) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{};
  if (!copy_z(s, buf) || inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
  return Ipv4Addr{ntohl(a.s_addr)};
}

std::string Ipv4Addr::to_string() const {
  char buf[INET_ADDRSTRLEN];
  in_addr a{htonl(value)};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::optional<Ipv6Addr> Ipv6Addr::parse(std::string_view s) {
  char buf[INET6_ADDRSTRLEN];
  Ipv6Addr out;
  if (!copy_z(s, buf) || inet_pton(AF_INET6, buf, out.bytes.data()) != 1) return std::nullopt;
  return out;
}

std::string Ipv6Addr::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

bool Ipv6Addr::in_subnet(const Ipv6Addr& net, int prefix) const noexcept {
  if (prefix < 0) prefix = 0;
  if (prefix > 128) prefix = 128;
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(bytes.data(), net.bytes.data(), size_t(full)) != 0) return false;
  if (rest == 0) return true;
  uint8_t m = uint8_t(0xff << (8 - rest));
  return (bytes[size_t(full)] & m) == (net.bytes[size_t(full)] & m);
}

std::optional<MacAddr> MacAddr::parse(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  MacAddr m;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && s[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    for (size_t j = 0; j < 2; ++j) {
      char c = s[i * 3 + j];
      unsigned d;
      if (c >= '0' && c <= '9') d = unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') d = unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = unsigned(c - 'A' + 10);
      else return std::nullopt;
      v = v * 16 + d;
    }
    m.bytes[i] = uint8_t(v);
  }
  return m;
}

std::string MacAddr::to_string() const {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3],
                bytes[4], bytes[5]);
  return buf;
}

std::optional<IpAddr> IpAddr::parse(std::string_view s) {
  if (auto a = Ipv4Addr::parse(s)) return IpAddr(*a);
  if (auto a = Ipv6Addr::parse(s)) return IpAddr(*a);
  return std::nullopt;
}

socklen_t to_sockaddr(const IpAddr& a, uint16_t port, sockaddr_storage* ss) noexcept {
  std::memset(ss, 0, sizeof(*ss));
  if (a.is_v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    std::memcpy(&s6->sin6_addr, a.v6.bytes.data(), 16);
    return sizeof(sockaddr_in6);
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(ss);
  s4->sin_family = AF_INET;
  s4->sin_port = htons(port);
  s4->sin_addr.s_addr = htonl(a.v4.value);
  return sizeof(sockaddr_in);
}

}  // namespace moat
