// DHCPv4 server for exactly one client (SPEC R-NET-7, RFC 2131/2132).
//
// There is one address to give (guest4), so the server is stateless: every DISCOVER is
// offered guest4, every REQUEST for guest4 from us is acknowledged, and anything else is
// NAKed. No lease table exists; a RELEASE or DECLINE changes nothing but a log line.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/log.h"
#include "stack/interface.h"
#include "wire/udp.h"

namespace moat::stack {

namespace {

constexpr uint16_t kServerPort = 67, kClientPort = 68;
constexpr uint8_t kOptionClasslessRoute = 121;  // RFC 3442

bool requested(Bytes parameter_request_list, uint8_t option) noexcept {
  for (std::byte b : parameter_request_list)
    if (static_cast<uint8_t>(b) == option) return true;
  return false;
}

/// Whether `s` may go out as a DHCP text option (12 host name, 15 domain name): one
/// option holds at most 255 bytes (RFC 2132 §2), and control characters would end up in
/// the guest's own configuration files. config/ already refuses such values (a hostname
/// is labels of letters, digits and '-'); this is defence in depth for anything that
/// reaches the stack another way (the C ABI, a future caller), so the option is left out
/// rather than sent truncated or raw.
bool sendable_text_option(std::string_view s) noexcept {
  if (s.size() > 255) return false;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

uint32_t seconds_u32(Duration d) noexcept {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  return static_cast<uint32_t>(std::clamp<int64_t>(s, 0, 0xffffffff));
}

}  // namespace

void Interface::on_dhcp4(const wire::Ipv4Repr& ip, Bytes udp_payload, Instant now) {
  (void)ip;
  // R-NET-7: processing (not just replies) is limited, so a flood costs no parsing.
  if (!dhcp_limit_.take(now)) {
    counters_.inc(Counter::dhcp_rate_limited);
    return drop(DropReason::rate_limit);
  }
  auto parsed = wire::Dhcpv4Repr::parse(udp_payload);
  if (!parsed) return drop(DropReason::dhcp_malformed);
  const wire::Dhcpv4Repr& req = *parsed;
  // Only client messages (BOOTREQUEST) carrying option 53 are served.
  if (req.op != 1 || !req.message_type) return drop(DropReason::dhcp_malformed);
  // R-NET-7: any chaddr is served, and it becomes the learned guest MAC: at once while no
  // MAC is learned (a booting VM), otherwise when its REQUEST is acknowledged below (a
  // client taking the lease). A DISCOVER or INFORM flood with random chaddrs moves nothing.
  if (!guest_mac_learned_) learn_guest_mac(req.chaddr);

  using Type = wire::DhcpMessageType;
  Type reply_type;
  switch (*req.message_type) {
    case Type::discover:
      reply_type = Type::offer;
      break;
    case Type::request: {
      // RFC 2131 §4.3.2: SELECTING / INIT-REBOOT name the address in option 50,
      // RENEWING / REBINDING in ciaddr. R-NET-7: a wrong address or a server id that is
      // not ours is NAKed (a client that picked another server has nowhere else to go).
      const Ipv4Addr wanted = req.requested_ip.value_or(req.ciaddr);
      const bool ours = !req.server_id || *req.server_id == cfg_.gateway4;
      reply_type = (ours && wanted == cfg_.guest4) ? Type::ack : Type::nak;
      if (reply_type == Type::ack) learn_guest_mac(req.chaddr);  // the unicast ACK goes to it
      break;
    }
    case Type::inform:  // RFC 2131 §4.3.5: configuration only, no address, no lease
      reply_type = Type::ack;
      break;
    case Type::release:
      counters_.inc(Counter::dhcp_releases);
      MOAT_LOG_RATELIMITED(info, "dhcp: guest released its lease (nothing to do)");
      return;
    case Type::decline:
      MOAT_LOG_RATELIMITED(warn, "dhcp: guest declined %s (address conflict on its side?)",
                           cfg_.guest4.to_string().c_str());
      return;
    default:  // server-side message types coming from the guest
      return drop(DropReason::dhcp_malformed);
  }

  const bool inform = *req.message_type == Type::inform;
  const bool nak = reply_type == Type::nak;
  wire::Dhcpv4Repr rep;
  rep.op = 2;
  rep.xid = req.xid;
  rep.broadcast = req.broadcast;
  rep.ciaddr = nak ? Ipv4Addr{} : req.ciaddr;
  rep.yiaddr = (nak || inform) ? Ipv4Addr{} : cfg_.guest4;
  rep.giaddr = req.giaddr;
  rep.chaddr = req.chaddr;
  rep.message_type = reply_type;
  rep.server_id = cfg_.gateway4;  // option 54
  const uint32_t mask = Ipv4Addr::mask(cfg_.prefix4);
  if (nak) {
    rep.message = "requested address not available";
  } else {
    rep.subnet_mask = Ipv4Addr{mask};                           // 1
    rep.router = cfg_.gateway4;                                 // 3
    rep.dns_servers = std::span<const Ipv4Addr>(dns4_list_);    // 6
    rep.interface_mtu = static_cast<uint16_t>(std::min<uint32_t>(cfg_.mtu, 0xffff));  // 26
    rep.broadcast_addr = Ipv4Addr{cfg_.guest4.value | ~mask};   // 28
    if (!inform) {  // RFC 2131 §4.3.5: an INFORM reply carries no lease times
      const uint32_t lease = seconds_u32(cfg_.lease_time);
      rep.lease_time = lease;                                                    // 51
      rep.renewal_time = lease / 2;                                              // 58: T1 = 50 %
      rep.rebinding_time = static_cast<uint32_t>(uint64_t{lease} * 7 / 8);       // 59: T2 = 87.5 %
    }
    if (sendable_text_option(cfg_.hostname)) rep.hostname = cfg_.hostname;        // 12
    if (!cfg_.search_domains.empty() && sendable_text_option(cfg_.search_domains.front()))
      rep.domain_name = cfg_.search_domains.front();                             // 15
    rep.search_domains = std::span<const std::string>(cfg_.search_domains);      // 119
    if (requested(req.parameter_request_list, kOptionClasslessRoute))
      rep.classless_default_route = cfg_.gateway4;  // 121 (RFC 3442); clients then ignore 3
  }

  // R-NET-7 / RFC 2131 §4.1: broadcast when the client asked for it or has no address
  // yet; a NAK is always broadcast (§4.3.2). Otherwise unicast to ciaddr.
  const bool to_broadcast = nak || req.broadcast || req.ciaddr.is_unspecified();
  const Ipv4Addr dst = to_broadcast ? Ipv4Addr::broadcast() : req.ciaddr;
  const MacAddr dst_mac = to_broadcast ? MacAddr::broadcast() : guest_mac_;
  const size_t dhcp_len = rep.len();
  const Ipv4Addr src = cfg_.gateway4;
  bool sent = send_ipv4_to(dst_mac, src, dst, wire::kProtoUdp, wire::UdpRepr::kHeaderLen + dhcp_len,
                           [&](MutBytes l4) {
                             wire::UdpRepr udp;
                             udp.src_port = kServerPort;
                             udp.dst_port = kClientPort;
                             return rep.emit(l4.subspan(wire::UdpRepr::kHeaderLen, dhcp_len)) &&
                                    udp.emit_v4(l4, src, dst);
                           },
                           Ipv4SendOptions{});
  // Cannot fail for a validated config (MTU >= 576 fits any reply we build, names are
  // encodable); send_frame() counted internal_errors if it did.
  if (!sent) return;
  switch (reply_type) {
    case Type::offer: counters_.inc(Counter::dhcp_offers); break;
    case Type::ack: counters_.inc(Counter::dhcp_acks); break;
    default: counters_.inc(Counter::dhcp_naks); break;
  }
}

}  // namespace moat::stack
