// Neighbour discovery (SPEC R-NET-5, RFC 4861) and Router Advertisements (R-NET-6).
//
// moat is the only router and the only other node on the link, so NDP reduces to:
// answer NS for our three addresses, learn the guest MAC (before one is learned; see on_ndp),
// and advertise the guest /64 with MTU and DNS (RFC 8106). We never send Redirects and
// never resolve other on-link addresses on the guest's behalf.
#include "base/log.h"
#include "stack/interface.h"
#include "wire/icmpv6.h"

namespace moat::stack {

namespace {

// R-NET-6 fixed values.
constexpr uint8_t kRaCurHopLimit = 64;
constexpr uint16_t kRaRouterLifetimeS = 1800;
constexpr uint32_t kPrefixValidS = 86400;
constexpr uint32_t kPrefixPreferredS = 14400;
constexpr uint32_t kRdnssLifetimeS = 1800;
constexpr auto kMinSolicitedRaGap = std::chrono::seconds(3);
// RFC 4861 §6.1, §7.1: NDP must arrive with hop limit 255, proving it was not routed.
constexpr uint8_t kNdpHopLimit = 255;

Ipv6Addr prefix_of(const Ipv6Addr& a, int prefix_len) noexcept {
  Ipv6Addr p = a;
  for (int i = 0; i < 16; ++i) {
    int bits = prefix_len - i * 8;
    if (bits >= 8) continue;
    p.bytes[i] = bits <= 0 ? 0 : static_cast<uint8_t>(p.bytes[i] & (0xff00 >> bits));
  }
  return p;
}

bool is_solicited_node(const Ipv6Addr& a) noexcept {
  static constexpr uint8_t kPrefix[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
  for (int i = 0; i < 13; ++i)
    if (a.bytes[i] != kPrefix[i]) return false;
  return true;
}

}  // namespace

void Interface::on_ndp(const wire::EthernetRepr& eth, const wire::Ipv6Repr& ip, Bytes l4, Instant now) {
  if (ip.hop_limit != kNdpHopLimit) return drop(DropReason::bad_ndp);
  auto parsed = wire::NdpRepr::parse(l4, ip.src, ip.dst);  // checksum, code 0, options
  if (!parsed) return drop(DropReason::bad_ndp);
  const wire::NdpRepr& nd = *parsed;
  const bool from_unspecified = ip.src.is_unspecified();
  // RFC 4861 §6.1.1 / §7.1.1: no source link-layer option from ::.
  if (from_unspecified && nd.source_ll) return drop(DropReason::bad_ndp);

  // The link-layer options must name the frame's sender: a mismatch is a forged option
  // (there is no proxy on this link, RFC 4389), and answering it would aim at a third MAC.
  if (nd.source_ll && *nd.source_ll != eth.src) return drop(DropReason::bad_ndp);
  if (nd.type == wire::kNdpNeighborAdvert && nd.target_ll && *nd.target_ll != eth.src)
    return drop(DropReason::bad_ndp);
  // Guest MAC source of truth (R-ADDR-4): NDP from link-local or :: sources carries no
  // guest identity (any frame can claim fe80::x), so it may teach the MAC only before one
  // is learned. Once learned, only a frame from a guest address (IPv4 guest4, an IPv6
  // guest-prefix address: NDP from one included) moves it; NDP from another MAC is still
  // answered, to that MAC, so a guest whose NIC changed can resolve the gateway, but never
  // redirects the rest of moat's traffic (counted ndp.foreign_mac).
  const bool src_global = ip.src.in_subnet(cfg_.guest6, cfg_.prefix6) && !is_gateway_addr(ip.src);
  if (eth.src != guest_mac_ && guest_mac_learned_ && !src_global) counters_.inc(Counter::ndp_foreign_mac);
  else learn_guest_mac(eth.src);

  switch (nd.type) {
    case wire::kNdpRouterSolicit: {
      if (!ra_enabled_) return ignore(Counter::ignored_neighbor);
      // R-NET-6: at most one solicited RA per 3 s, however many RSs arrive.
      if (last_solicited_ra_ && now - *last_solicited_ra_ < kMinSolicitedRaGap) return drop(DropReason::rate_limit);
      if (!ndp_limit_.take(now)) {
        counters_.inc(Counter::ndp_rate_limited);
        return drop(DropReason::rate_limit);
      }
      last_solicited_ra_ = now;
      // RFC 4861 §6.2.6 allows a unicast reply; R-NET-6 always multicasts to ff02::1.
      send_router_advert();
      return;
    }
    case wire::kNdpNeighborSolicit: {
      if (nd.target.is_multicast()) return drop(DropReason::bad_ndp);  // RFC 4861 §7.1.1
      // A DAD probe (RFC 4862 §5.4.2) comes from :: to the target's solicited-node group.
      if (from_unspecified && !(is_solicited_node(ip.dst) && ip.dst == nd.target.solicited_node()))
        return drop(DropReason::bad_ndp);
      // R-NET-5: only our addresses are answered; DAD probes for the guest's own
      // addresses (and NS for anything else) are ignored so the guest's DAD succeeds.
      if (!is_gateway_addr(nd.target)) return ignore(Counter::ignored_neighbor);
      if (!ndp_limit_.take(now)) {
        counters_.inc(Counter::ndp_rate_limited);
        return drop(DropReason::rate_limit);
      }
      wire::NdpRepr na;
      na.type = wire::kNdpNeighborAdvert;
      na.target = nd.target;
      na.router = true;
      na.override_ = true;
      na.target_ll = cfg_.gateway_mac;
      // RFC 4861 §7.2.4: a DAD probe is answered to all-nodes with S=0 (so the guest's
      // DAD for a gateway address fails); otherwise a solicited NA goes to the asker.
      na.solicited = !from_unspecified;
      const Ipv6Addr dst = from_unspecified ? Ipv6Addr::all_nodes() : ip.src;
      const MacAddr dst_mac = from_unspecified ? MacAddr::for_ipv6_multicast(dst) : nd.source_ll.value_or(eth.src);
      const Ipv6Addr& src = nd.target;  // the NA comes from the address asked about
      send_ipv6_to(dst_mac, src, dst, wire::kProtoIcmpv6, na.len(), [&](MutBytes out) { return na.emit(out, src, dst); },
                   kNdpHopLimit);
      counters_.inc(Counter::ndp_replies);
      return;
    }
    case wire::kNdpNeighborAdvert:
      // Unsolicited NAs announce the guest's own addresses; the MAC was learned above
      // (target_ll, when present, equals it).
      return ignore(Counter::ignored_neighbor);
    default:
      // Router Advertisements from the guest: it is not a router here (R-ICMP-4 spirit).
      return ignore(Counter::ignored_icmp);
  }
}

void Interface::send_router_advert() {
  const Ipv6Addr all_nodes = Ipv6Addr::all_nodes();
  wire::NdpRepr ra;
  ra.type = wire::kNdpRouterAdvert;
  ra.cur_hop_limit = kRaCurHopLimit;
  // R-NET-6: M iff stateful DHCPv6, O iff any DHCPv6.
  ra.managed = cfg_.dhcpv6 == Dhcpv6Mode::stateful;
  ra.other = cfg_.dhcpv6 != Dhcpv6Mode::off;
  ra.router_lifetime = kRaRouterLifetimeS;
  ra.reachable_time = 0;
  ra.retrans_timer = 0;
  ra.source_ll = cfg_.gateway_mac;
  ra.mtu = cfg_.mtu;
  wire::NdpPrefixInfo pi;
  pi.prefix = prefix_of(cfg_.guest6, cfg_.prefix6);
  pi.prefix_len = static_cast<uint8_t>(cfg_.prefix6);
  pi.on_link = true;
  pi.autonomous = true;
  pi.valid_lifetime = kPrefixValidS;
  pi.preferred_lifetime = kPrefixPreferredS;
  ra.prefix = pi;
  ra.rdnss = cfg_.dns6;  // RFC 8106 §5.1
  ra.rdnss_lifetime = kRdnssLifetimeS;
  ra.dnssl = std::span<const std::string>(cfg_.search_domains);  // RFC 8106 §5.2; empty: no option
  bool sent = send_ipv6_to(MacAddr::for_ipv6_multicast(all_nodes), gateway_ll_, all_nodes, wire::kProtoIcmpv6,
                           ra.len(), [&](MutBytes out) { return ra.emit(out, gateway_ll_, all_nodes); }, kNdpHopLimit);
  if (sent) counters_.inc(Counter::ra_sent);
}

Duration Interface::jittered_ra_interval() noexcept {
  // splitmix64: tiny, seedable, and good enough to de-synchronise many gateways.
  rng_state_ += 0x9e3779b97f4a7c15ull;
  uint64_t z = rng_state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  // R-NET-6: ra_interval ± 10 %, uniformly.
  const int64_t base = cfg_.ra_interval.count();
  const int64_t spread = base / 10;
  if (spread <= 0) return cfg_.ra_interval;
  const int64_t offset = static_cast<int64_t>(z % static_cast<uint64_t>(2 * spread + 1)) - spread;
  return Duration(base + offset);
}

}  // namespace moat::stack
