#pragma once
// A minimal NETLINK_ROUTE client: just the requests moat needs to configure a TAP in a
// network namespace (R-ADDR-6). Every request carries NLM_F_ACK and waits (bounded) for
// the kernel's ack; a negative ack becomes the request's Errno.
//
// A Netlink socket talks to the network namespace it was opened in, so open it after
// setns()/unshare(), in the namespace to configure.
#include <cstdint>
#include <string_view>

#include "base/addr.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace moat::ns {

class Netlink {
 public:
  /// Opens and binds a NETLINK_ROUTE socket in the current network namespace.
  static Result<Netlink> open();

  /// Interface index of `name` (ENODEV when there is none, EINVAL when too long).
  Result<int> ifindex(std::string_view name);
  Status link_set_up(int ifindex);
  Status link_set_mtu(int ifindex, uint32_t mtu);
  Status link_set_mac(int ifindex, const MacAddr& mac);
  /// Adds addr/prefix (with its broadcast address when prefix <= 30). EEXIST if present.
  Status add_addr4(int ifindex, Ipv4Addr addr, int prefix);
  /// Adds addr/prefix; nodad sets IFA_F_NODAD (via IFA_FLAGS) so it is usable at once.
  Status add_addr6(int ifindex, const Ipv6Addr& addr, int prefix, bool nodad = true);
  /// 0.0.0.0/0 via gw dev ifindex in the main table. EEXIST if a default route exists.
  Status add_default_route4(Ipv4Addr gw, int ifindex);
  /// ::/0 via gw (normally the gateway's link-local address) dev ifindex.
  Status add_default_route6(const Ipv6Addr& gw, int ifindex);
  /// A NUD_PERMANENT neighbour entry addr -> mac on ifindex (created or replaced).
  Status add_neighbour(int ifindex, const IpAddr& addr, const MacAddr& mac);
  Status delete_link(int ifindex);

 private:
  explicit Netlink(UniqueFd fd) noexcept : fd_(std::move(fd)) {}
  class Message;
  /// Sends one request and waits for its ack. When `ifindex_out` is given, the index of
  /// an RTM_NEWLINK reply (to RTM_GETLINK) is stored there.
  Status transact(Message& m, int* ifindex_out = nullptr);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

}  // namespace moat::ns
