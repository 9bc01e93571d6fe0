// DHCPv6 server for exactly one client (SPEC R-NET-8, RFC 8415).
//
// As for DHCPv4 there is one address to give (guest6), so no binding table exists: every
// stateful exchange hands out guest6 in whatever IA_NA the client named, and Release or
// Decline change nothing. Stateless service (Information-request) only tells the client
// the DNS server and search domains; it is what the RA's O flag invites.
//
// Which messages are answered:
//   mode        Information-request   Solicit / Request / Renew / Rebind / Confirm / Release / Decline
//   off         not even parsed (the multicast is ignored like any other group, R-NET-9)
//   stateless   Reply                 ignored (dhcp6.ignored): no addresses on offer
//   stateful    Reply                 Advertise / Reply per RFC 8415 §18.3
// A message naming another server's DUID is for someone else and is ignored, like one in
// the wrong mode; a message without a client id where RFC 8415 §16 requires one is
// malformed (drop.dhcp_malformed).
#include <chrono>
#include <cstring>

#include "base/log.h"
#include "stack/interface.h"
#include "wire/dhcpv6.h"
#include "wire/udp.h"

namespace moat::stack {

namespace {

// R-NET-8 fixed values.
constexpr uint32_t kPreferredS = 14400;
constexpr uint32_t kValidS = 86400;
constexpr uint32_t kT1S = kPreferredS / 2;       // 50 %
constexpr uint32_t kT2S = kPreferredS * 4 / 5;   // 80 %
constexpr uint32_t kInfoRefreshS = 86400;
// RFC 8415 §18.2.1: 255 lets the client take this Advertise at once instead of collecting
// others for a second; there is no other server on the link.
constexpr uint8_t kPreference = 255;

bool same(Bytes a, Bytes b) noexcept {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

}  // namespace

void Interface::on_dhcp6(const wire::Ipv6Repr& ip, Bytes udp_payload, Instant now) {
  // R-ADDR-4: DHCPv6 clients speak from their link-local address (or a guest /64 address
  // when renewing); :: cannot be answered.
  if (ip.src.is_unspecified()) return drop(DropReason::bad_src);
  // Processing is limited like DHCPv4 (R-NET-7), so a flood costs no parsing.
  if (!dhcp_limit_.take(now)) {
    counters_.inc(Counter::dhcp_rate_limited);
    return drop(DropReason::rate_limit);
  }
  auto parsed = wire::Dhcpv6Repr::parse(udp_payload);
  if (!parsed) return drop(DropReason::dhcp_malformed);
  const wire::Dhcpv6Repr& req = *parsed;
  const Bytes our_duid(server_duid_.data(), server_duid_.size());

  using Type = wire::Dhcpv6Type;
  const bool stateful = cfg_.dhcpv6 == Dhcpv6Mode::stateful;
  auto ignore_msg = [&](const char* why) {
    counters_.inc(Counter::dhcp6_ignored);
    MOAT_LOG_RATELIMITED(debug, "dhcp6: ignored message type %u (%s)", unsigned(req.type), why);
  };
  // RFC 8415 §16: the checks per message type that decide whether it is for us at all.
  if (req.type != Type::information_request && req.client_id.empty()) return drop(DropReason::dhcp_malformed);
  const bool server_id_ours = same(req.server_id, our_duid);
  switch (req.type) {
    case Type::solicit:
    case Type::rebind:
    case Type::confirm:
      if (!req.server_id.empty()) return drop(DropReason::dhcp_malformed);  // §16.2, §16.5, §16.7
      break;
    case Type::request:
    case Type::renew:
    case Type::release:
    case Type::decline:
      if (!server_id_ours) return ignore_msg("another server's id");
      break;
    case Type::information_request:
      if (!req.server_id.empty() && !server_id_ours) return ignore_msg("another server's id");
      break;
    default:
      return drop(DropReason::dhcp_malformed);  // a server's message type from the guest
  }
  if (req.type != Type::information_request && !stateful) return ignore_msg("stateful service is off");

  wire::Dhcpv6Repr rep;
  rep.type = Type::reply;
  rep.transaction_id = req.transaction_id;
  rep.server_id = our_duid;
  rep.client_id = req.client_id;  // echoed (RFC 8415 §18.3)
  rep.dns_servers = std::span<const Ipv6Addr>(dns6_list_);                  // 23
  rep.domain_list = std::span<const std::string>(cfg_.search_domains);      // 24, empty: none
  auto give_address = [&] {
    if (!req.ia_na) return;  // nothing asked for; the reply still carries the DNS options
    wire::Dhcpv6IaNa ia;
    ia.iaid = req.ia_na->iaid;
    ia.t1 = kT1S;
    ia.t2 = kT2S;
    ia.addr = wire::Dhcpv6IaAddr{cfg_.guest6, kPreferredS, kValidS};
    rep.ia_na = ia;
  };
  switch (req.type) {
    case Type::information_request:
      rep.information_refresh_time = kInfoRefreshS;  // R-NET-8
      break;
    case Type::solicit:
      give_address();
      if (req.rapid_commit) {
        rep.rapid_commit = true;  // §18.3.1: a committed Reply instead of an Advertise
      } else {
        rep.type = Type::advertise;
        rep.preference = kPreference;
      }
      break;
    case Type::request:
    case Type::renew:
    case Type::rebind:
      give_address();
      break;
    case Type::confirm: {
      // §18.3.3: without addresses there is nothing to confirm and no reply.
      if (!req.ia_na || !req.ia_na->addr) return ignore_msg("confirm without an address");
      const bool on_link = req.ia_na->addr->addr.in_subnet(cfg_.guest6, cfg_.prefix6);
      rep.status = on_link ? wire::Dhcpv6Status::success : wire::Dhcpv6Status::not_on_link;
      break;
    }
    case Type::release:
    case Type::decline:
      // One address, no bindings: nothing changes (cf. DHCPv4 RELEASE/DECLINE).
      MOAT_LOG_RATELIMITED(info, "dhcp6: guest %s its address (nothing to do)",
                           req.type == Type::release ? "released" : "declined");
      rep.status = wire::Dhcpv6Status::success;
      break;
    default:
      return drop(DropReason::dhcp_malformed);
  }

  const size_t len = rep.len();
  const Ipv6Addr& src = gateway_ll_;
  const Ipv6Addr& dst = ip.src;
  bool sent = send_ipv6_to(guest_mac_, src, dst, wire::kProtoUdp, wire::UdpRepr::kHeaderLen + len,
                           [&](MutBytes l4) {
                             wire::UdpRepr udp;
                             udp.src_port = wire::kDhcpv6ServerPort;
                             udp.dst_port = wire::kDhcpv6ClientPort;
                             return rep.emit(l4.subspan(wire::UdpRepr::kHeaderLen, len)) && udp.emit_v6(l4, src, dst);
                           },
                           64);
  if (!sent) return;  // cannot happen for a validated config; send_frame counted it
  counters_.inc(rep.type == Type::advertise ? Counter::dhcp6_advertises : Counter::dhcp6_replies);
}

}  // namespace moat::stack
