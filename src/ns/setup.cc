#include "ns/setup.h"

#include <unistd.h>

#include "ns/netlink.h"
#include "ns/tap.h"

namespace moat::ns {

namespace {

std::string fail(const TapSetup& s, const std::string& what, Errno e) {
  return s.ifname + ": " + what + ": " + e.message();
}

/// Everything after the TAP exists. Returns an error message or nothing.
std::optional<std::string> configure_link(const TapSetup& s, Netlink& nl, int index) {
  const std::string conf6 = "/proc/sys/net/ipv6/conf/" + s.ifname + "/";
  if (s.configure) {
    // Before the link goes up, so the kernel sends no RS and does not start DAD or SLAAC
    // with its own prefix guesses. Without kernel IPv6 the directory is missing, which is
    // only an error when IPv6 is meant to be active.
    if (::access(conf6.c_str(), F_OK) == 0) {
      for (const char* key : {"accept_ra", "autoconf", "accept_dad"}) {
        if (auto r = write_sysctl(conf6 + key, "0"); !r) return fail(s, "set " + conf6 + key, r.error());
      }
      // net.ipv6.conf.default.disable_ipv6 = 1 is inherited by new links; an active
      // family needs it off on ours (only ours: the namespace's other links are not moat's).
      if (s.guest6) {
        auto cur = read_sysctl(conf6 + "disable_ipv6");
        if (cur && *cur != "0") {
          if (auto r = write_sysctl(conf6 + "disable_ipv6", "0"); !r)
            return fail(s, "set " + conf6 + "disable_ipv6", r.error());
        }
      }
    } else if (s.guest6) {
      return s.ifname + ": IPv6 is active but the kernel has no IPv6 (" + conf6 + " is missing)";
    }
  }
  if (auto r = nl.link_set_mac(index, s.guest_mac); !r) return fail(s, "set MAC " + s.guest_mac.to_string(), r.error());
  if (auto r = nl.link_set_mtu(index, s.mtu); !r) return fail(s, "set MTU " + std::to_string(s.mtu), r.error());
  if (s.configure && s.guest4) {
    if (auto r = nl.add_addr4(index, *s.guest4, s.prefix4); !r)
      return fail(s, "add address " + s.guest4->to_string() + "/" + std::to_string(s.prefix4), r.error());
  }
  if (s.configure && s.guest6) {
    if (auto r = nl.add_addr6(index, *s.guest6, s.prefix6, true); !r)
      return fail(s, "add address " + s.guest6->to_string() + "/" + std::to_string(s.prefix6), r.error());
  }
  auto lo = nl.ifindex("lo");
  if (!lo) return fail(s, "find lo", lo.error());
  if (auto r = nl.link_set_up(*lo); !r) return fail(s, "bring lo up", r.error());
  if (auto r = nl.link_set_up(index); !r) return fail(s, "bring link up", r.error());
  if (!s.configure) return std::nullopt;

  // Routes need the link up (the v4 gateway must be on a connected prefix, the v6 one on
  // an up link). Neighbours come last so a link state change cannot flush them.
  if (s.guest4) {
    if (auto r = nl.add_default_route4(s.gateway4, index); !r)
      return fail(s, "add default route via " + s.gateway4.to_string(), r.error());
  }
  const Ipv6Addr gw_ll = s.gateway_mac.link_local();
  if (s.guest6) {
    if (auto r = nl.add_default_route6(gw_ll, index); !r)
      return fail(s, "add default route via " + gw_ll.to_string(), r.error());
  }
  auto neigh = [&](const IpAddr& a) -> std::optional<std::string> {
    if (auto r = nl.add_neighbour(index, a, s.gateway_mac); !r)
      return fail(s, "add neighbour " + a.to_string() + " lladdr " + s.gateway_mac.to_string(), r.error());
    return std::nullopt;
  };
  if (s.guest4) {
    if (auto e = neigh(s.gateway4)) return e;
    if (s.dns4 != s.gateway4 && !s.dns4.is_unspecified())
      if (auto e = neigh(s.dns4)) return e;
  }
  if (s.guest6) {
    if (auto e = neigh(s.gateway6)) return e;
    if (s.dns6 != s.gateway6 && !s.dns6.is_unspecified())
      if (auto e = neigh(s.dns6)) return e;
    if (auto e = neigh(gw_ll)) return e;
  }
  return std::nullopt;
}

}  // namespace

Result<UniqueFd, std::string> setup_tap_here(const TapSetup& s) {
  auto nl = Netlink::open();
  if (!nl) return unexpected("open rtnetlink socket: " + std::string(nl.error().message()));
  // Checked first so an existing interface gives a clear message and is never touched;
  // IFF_TUN_EXCL in create_tap closes the race with someone creating it meanwhile.
  if (auto existing = nl->ifindex(s.ifname); existing) {
    return unexpected(s.ifname + ": an interface of that name already exists");
  } else if (existing.error().value != ENODEV) {
    return unexpected(fail(s, "look up interface", existing.error()));
  }
  auto tap = create_tap(s.ifname, s.vnet_hdr);
  if (!tap) {
    if (tap.error().value == EBUSY) return unexpected(s.ifname + ": an interface of that name already exists");
    std::string msg = fail(s, "create TAP (/dev/net/tun)", tap.error());
    if (tap.error().value == EACCES || tap.error().value == EPERM)
      msg += "; needs CAP_NET_ADMIN and, without root, /dev/net/tun readable and writable (mode 0666)";
    return unexpected(std::move(msg));
  }
  auto index = nl->ifindex(s.ifname);
  if (!index) return unexpected(fail(s, "look up new TAP", index.error()));  // closing tap deletes it
  if (auto err = configure_link(s, *nl, *index)) {
    // Closing the only fd of a non-persistent TAP unregisters it too; RTM_DELLINK first
    // makes the removal explicit and independent of fds leaked elsewhere.
    (void)nl->delete_link(*index);
    return unexpected(std::move(*err));
  }
  return std::move(tap.value());
}

}  // namespace moat::ns
