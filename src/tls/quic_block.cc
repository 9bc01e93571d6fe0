#include "tls/quic_block.h"

#include <algorithm>

#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/udp.h"

namespace moat::tls {

namespace {
constexpr uint8_t kIcmp4PortUnreachable = 3;  // RFC 792
constexpr uint8_t kIcmp6PortUnreachable = 4;  // RFC 4443 §3.1
}  // namespace

QuicBlocker::QuicBlocker(Counters& counters, flows::GuestIo& io, QuicBlockConfig config)
    : counters_(counters), io_(io), cfg_(std::move(config)) {}

void QuicBlocker::attach(flows::Dispatch& d) {
  if (cfg_.ports.empty()) return;
  if (cfg_.ports.size() <= flows::PacketMatch::kMaxPorts) {
    flows::PacketMatch m;
    m.proto = wire::kProtoUdp;
    for (uint16_t port : cfg_.ports) m.ports[m.port_count++] = port;
    d.add_hook(m, *this);
  } else {
    // More intercepted ports than a hook can list: offered every UDP datagram, filtered here.
    d.add_hook(flows::PacketMatch::any_port(wire::kProtoUdp), *this);
  }
}

bool QuicBlocker::on_guest_packet(const flows::GuestPacket& p) {
  if (std::find(cfg_.ports.begin(), cfg_.ports.end(), p.dst_port) == cfg_.ports.end()) return false;
  counters_.inc(Counter::tls_quic_blocked);
  if (cfg_.deny_silently) return true;
  // From the address the guest sent to, as a host without a listener would answer; the
  // quote lets the guest kernel report ECONNREFUSED on a connected socket (R-ICMP-3).
  if (p.ip4) {
    io_.send_icmp_error_v4(*p.ip4, p.l4, p.ip4->dst, wire::kIcmpDestUnreachable, kIcmp4PortUnreachable, p.now);
  } else {
    io_.send_icmp_error_v6(*p.ip6, p.l4, p.ip6->dst, wire::kIcmpv6DestUnreachable, kIcmp6PortUnreachable, p.now);
  }
  return true;
}

}  // namespace moat::tls
