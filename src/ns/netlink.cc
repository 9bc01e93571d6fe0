#include "ns/netlink.h"

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace moat::ns {

namespace {
// A reply longer than this (an RTM_NEWLINK with every attribute) is read with MSG_TRUNC
// and only its header is looked at, so the size is not critical.
constexpr size_t kRecvBuffer = 32 * 1024;
// The kernel acks rtnetlink requests synchronously; 5 s only guards against a wedged rtnl.
constexpr int kAckTimeoutSeconds = 5;
}  // namespace

/// One request being built in a fixed, aligned buffer. Kernel ABI structs are copied in with
/// memcpy (never cast onto the buffer), attributes are appended NLA-aligned.
class Netlink::Message {
 public:
  Message(uint16_t type, uint16_t flags) noexcept {
    nlmsghdr h{};
    h.nlmsg_len = NLMSG_HDRLEN;
    h.nlmsg_type = type;
    h.nlmsg_flags = uint16_t(flags | NLM_F_REQUEST | NLM_F_ACK);
    std::memcpy(buf_.data(), &h, sizeof h);
    len_ = NLMSG_HDRLEN;
  }
  /// Appends the family header (ifinfomsg, ifaddrmsg, ...).
  template <class T>
  void body(const T& t) noexcept {
    append(&t, sizeof t);
  }
  void attr(uint16_t type, const void* data, size_t n) noexcept {
    nlattr a{};
    a.nla_len = uint16_t(NLA_HDRLEN + n);
    a.nla_type = type;
    append(&a, sizeof a);
    append(data, n);
  }
  void attr_u32(uint16_t type, uint32_t v) noexcept { attr(type, &v, sizeof v); }
  void attr_str(uint16_t type, std::string_view s) noexcept {
    std::array<char, IFNAMSIZ> z{};
    std::memcpy(z.data(), s.data(), std::min(s.size(), z.size() - 1));
    attr(type, z.data(), std::min(s.size(), z.size() - 1) + 1);
  }
  [[nodiscard]] bool ok() const noexcept { return ok_; }
  void set_seq(uint32_t seq) noexcept {
    std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_seq), &seq, sizeof seq);
  }
  [[nodiscard]] const std::byte* data() const noexcept { return buf_.data(); }
  [[nodiscard]] size_t size() const noexcept { return len_; }

 private:
  void append(const void* p, size_t n) noexcept {
    size_t padded = NLMSG_ALIGN(n);
    if (padded > buf_.size() - len_) {
      ok_ = false;
      return;
    }
    std::memcpy(buf_.data() + len_, p, n);
    std::memset(buf_.data() + len_ + n, 0, padded - n);
    len_ += padded;
    uint32_t total = uint32_t(len_);
    std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_len), &total, sizeof total);
  }
  alignas(NLMSG_ALIGNTO) std::array<std::byte, 512> buf_{};
  size_t len_ = 0;
  bool ok_ = true;
};

Result<Netlink> Netlink::open() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return sys_error();
  timeval tv{kAckTimeoutSeconds, 0};
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) return sys_error();
  // Acks then carry only the header of the request they answer, not a copy of it.
  int one = 1;
  (void)::setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof local) < 0) return sys_error();
  return Netlink(std::move(fd));
}

Status Netlink::transact(Message& m, int* ifindex_out) {
  if (!m.ok()) return unexpected(Errno{EMSGSIZE});
  const uint32_t seq = ++seq_;
  m.set_seq(seq);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = ::sendto(fd_.get(), m.data(), m.size(), 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return sys_error();

  // Replies to other (earlier, timed-out) sequence numbers are skipped; the loop is bounded
  // by SO_RCVTIMEO on each recv and by a cap on the number of unrelated messages.
  static thread_local std::array<std::byte, kRecvBuffer> buf;
  for (int batches = 0; batches < 64; ++batches) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return unexpected(Errno{errno == EAGAIN ? ETIMEDOUT : errno});
    }
    size_t avail = std::min(size_t(n), buf.size());
    size_t off = 0;
    while (avail - off >= sizeof(nlmsghdr)) {
      nlmsghdr h;
      std::memcpy(&h, buf.data() + off, sizeof h);
      if (h.nlmsg_len < sizeof h || h.nlmsg_len > avail - off) break;  // truncated tail
      const std::byte* payload = buf.data() + off + NLMSG_HDRLEN;
      size_t payload_len = h.nlmsg_len - NLMSG_HDRLEN;
      if (h.nlmsg_seq == seq) {
        if (h.nlmsg_type == NLMSG_ERROR) {
          if (payload_len < sizeof(int)) return unexpected(Errno{EPROTO});
          int err;
          std::memcpy(&err, payload, sizeof err);
          if (err == 0) return {};
          return unexpected(Errno{-err});
        }
        if (h.nlmsg_type == RTM_NEWLINK && ifindex_out && payload_len >= sizeof(ifinfomsg)) {
          ifinfomsg ifi;
          std::memcpy(&ifi, payload, sizeof ifi);
          *ifindex_out = ifi.ifi_index;
        }
      }
      off += NLMSG_ALIGN(h.nlmsg_len);
    }
  }
  return unexpected(Errno{EPROTO});
}

Result<int> Netlink::ifindex(std::string_view name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return unexpected(Errno{EINVAL});
  Message m(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.body(ifi);
  m.attr_str(IFLA_IFNAME, name);
  int index = 0;
  if (auto s = transact(m, &index); !s) return unexpected(s.error());
  if (index <= 0) return unexpected(Errno{ENODEV});
  return index;
}

namespace {
ifinfomsg link_header(int ifindex) noexcept {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  return ifi;
}
}  // namespace

Status Netlink::link_set_up(int ifindex) {
  Message m(RTM_NEWLINK, 0);
  ifinfomsg ifi = link_header(ifindex);
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  m.body(ifi);
  return transact(m);
}

Status Netlink::link_set_mtu(int ifindex, uint32_t mtu) {
  Message m(RTM_NEWLINK, 0);
  m.body(link_header(ifindex));
  m.attr_u32(IFLA_MTU, mtu);
  return transact(m);
}

Status Netlink::link_set_mac(int ifindex, const MacAddr& mac) {
  Message m(RTM_NEWLINK, 0);
  m.body(link_header(ifindex));
  m.attr(IFLA_ADDRESS, mac.bytes.data(), mac.bytes.size());
  return transact(m);
}

Status Netlink::delete_link(int ifindex) {
  Message m(RTM_DELLINK, 0);
  m.body(link_header(ifindex));
  return transact(m);
}

Status Netlink::add_addr4(int ifindex, Ipv4Addr addr, int prefix) {
  if (prefix < 0 || prefix > 32) return unexpected(Errno{EINVAL});
  Message m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = uint8_t(prefix);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = uint32_t(ifindex);
  m.body(ifa);
  auto octets = addr.octets();  // network order is octet order
  m.attr(IFA_LOCAL, octets.data(), octets.size());
  m.attr(IFA_ADDRESS, octets.data(), octets.size());
  if (prefix <= 30) {
    auto brd = Ipv4Addr{addr.value | ~Ipv4Addr::mask(prefix)}.octets();
    m.attr(IFA_BROADCAST, brd.data(), brd.size());
  }
  return transact(m);
}

Status Netlink::add_addr6(int ifindex, const Ipv6Addr& addr, int prefix, bool nodad) {
  if (prefix < 0 || prefix > 128) return unexpected(Errno{EINVAL});
  Message m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET6;
  ifa.ifa_prefixlen = uint8_t(prefix);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = uint32_t(ifindex);
  ifa.ifa_flags = nodad ? IFA_F_NODAD : 0;
  m.body(ifa);
  m.attr(IFA_LOCAL, addr.bytes.data(), addr.bytes.size());
  m.attr(IFA_ADDRESS, addr.bytes.data(), addr.bytes.size());
  if (nodad) m.attr_u32(IFA_FLAGS, IFA_F_NODAD);
  return transact(m);
}

namespace {
rtmsg default_route_header(uint8_t family) noexcept {
  rtmsg rt{};
  rt.rtm_family = family;
  rt.rtm_dst_len = 0;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_STATIC;
  rt.rtm_scope = RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  return rt;
}
}  // namespace

Status Netlink::add_default_route4(Ipv4Addr gw, int ifindex) {
  Message m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  m.body(default_route_header(AF_INET));
  auto octets = gw.octets();
  m.attr(RTA_GATEWAY, octets.data(), octets.size());
  m.attr_u32(RTA_OIF, uint32_t(ifindex));
  return transact(m);
}

Status Netlink::add_default_route6(const Ipv6Addr& gw, int ifindex) {
  Message m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  m.body(default_route_header(AF_INET6));
  m.attr(RTA_GATEWAY, gw.bytes.data(), gw.bytes.size());
  m.attr_u32(RTA_OIF, uint32_t(ifindex));
  return transact(m);
}

Status Netlink::add_neighbour(int ifindex, const IpAddr& addr, const MacAddr& mac) {
  Message m(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
  ndmsg nd{};
  nd.ndm_family = addr.is_v6 ? AF_INET6 : AF_INET;
  nd.ndm_ifindex = ifindex;
  nd.ndm_state = NUD_PERMANENT;
  nd.ndm_type = RTN_UNICAST;
  m.body(nd);
  if (addr.is_v6) {
    m.attr(NDA_DST, addr.v6.bytes.data(), addr.v6.bytes.size());
  } else {
    auto octets = addr.v4.octets();
    m.attr(NDA_DST, octets.data(), octets.size());
  }
  m.attr(NDA_LLADDR, mac.bytes.data(), mac.bytes.size());
  return transact(m);
}

}  // namespace moat::ns
