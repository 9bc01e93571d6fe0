// ARP responder (SPEC R-NET-2, RFC 826). moat answers for the gateway and DNS IPv4
// addresses only, and learns the guest MAC from the guest's own ARP traffic, including
// gratuitous ARP and RFC 5227 probes.
//
// ARP is answered even while IPv4 is inactive (R-ADDR-3): a statically configured guest
// must reach the gateway MAC to receive the Destination Unreachable that makes it fall
// back to IPv6 at once, instead of waiting out neighbour resolution.
#include "base/log.h"
#include "stack/interface.h"

namespace moat::stack {

void Interface::on_arp(const wire::EthernetRepr& eth, Bytes payload, Instant now) {
  (void)eth;
  auto parsed = wire::ArpRepr::parse(payload);
  if (!parsed) return drop(DropReason::bad_arp);
  const wire::ArpRepr& arp = *parsed;
  if (arp.sender_mac.is_multicast() || arp.sender_mac.is_zero()) return drop(DropReason::bad_arp);

  // R-ADDR-4: the guest speaks only for its own address; a probe (RFC 5227 §2.1.1) has
  // sender 0.0.0.0 because the guest does not own an address yet.
  const bool probe = arp.sender_ip.is_unspecified();
  if (!probe && arp.sender_ip != cfg_.guest4) return drop(DropReason::bad_src);
  learn_guest_mac(arp.sender_mac);  // gratuitous ARP, probes and requests alike

  // Requests for any other address (including the guest's own, i.e. gratuitous ARP) and
  // replies from the guest need no answer: we never proxy-ARP.
  if (arp.op != wire::ArpOp::request || !is_gateway_addr(arp.target_ip))
    return ignore(Counter::ignored_neighbor);
  if (!arp_limit_.take(now)) {
    counters_.inc(Counter::arp_rate_limited);
    return drop(DropReason::rate_limit);
  }

  wire::ArpRepr reply;
  reply.op = wire::ArpOp::reply;
  reply.sender_mac = cfg_.gateway_mac;
  reply.sender_ip = arp.target_ip;
  reply.target_mac = arp.sender_mac;
  reply.target_ip = arp.sender_ip;
  // RFC 826: the reply goes straight back to the requester's hardware address.
  send_frame(arp.sender_mac, wire::kEtherTypeArp, wire::ArpRepr::kLen, [&](MutBytes out) { return reply.emit(out); });
  counters_.inc(Counter::arp_replies);
}

}  // namespace moat::stack
