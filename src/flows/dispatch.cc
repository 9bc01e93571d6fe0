#include "flows/dispatch.h"

#include "base/check.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"
#include "wire/tcp.h"
#include "wire/udp.h"

namespace moat::flows {

namespace {
// R-POL-10: administratively prohibited (IPv4 3/13, IPv6 1/1).
constexpr uint8_t kIcmp4DestUnreachable = 3, kIcmp4AdminProhibited = 13;
constexpr uint8_t kIcmp6DestUnreachable = 1, kIcmp6AdminProhibited = 1;
}  // namespace

PacketMatch PacketMatch::dst_ports(uint8_t proto, std::initializer_list<uint16_t> ports) {
  MOAT_CHECK(ports.size() <= kMaxPorts);
  PacketMatch m;
  m.proto = proto;
  for (uint16_t p : ports) m.ports[m.port_count++] = p;
  return m;
}

namespace {
template <class C>
C with_budget(C c, MemoryBudget* b) {
  c.budget = b;
  return c;
}
}  // namespace

Dispatch::Dispatch(event::Loop& loop, GuestIo& io, Counters& counters, const DispatchConfig& config)
    : io_(io),
      counters_(counters),
      budget_(config.budget),
      destinations_(config.destinations),
      tcp_(loop, io, destinations_, counters, with_budget(config.tcp, config.budget)),
      udp_(loop, io, destinations_, counters, with_budget(config.udp, config.budget)) {
  if (config.icmp_relay) icmp_ = std::make_unique<IcmpRelay>(loop, io, counters, config.icmp);
}

void Dispatch::set_admission(Admission* a) noexcept {
  admission_ = a;
  tcp_.set_admission(a);
  udp_.set_admission(a);
}

void Dispatch::add_hook(const PacketMatch& m, PacketHook& hook) {
  MOAT_CHECK(hook_count_ < kMaxHooks);
  hooks_[hook_count_++] = Hook{m, &hook};
}

bool Dispatch::run_hooks(uint8_t proto, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6, Bytes l4,
                         Instant now) {
  // Below a whole UDP header (the ports for TCP) no hook is asked: the engine counts it.
  const size_t min_len = proto == wire::kProtoUdp ? wire::UdpRepr::kHeaderLen : 4;
  if (hook_count_ == 0 || l4.size() < min_len) return false;
  const uint16_t dport = load_be16(l4.data() + 2);
  GuestPacket p;
  bool built = false;
  for (size_t i = 0; i < hook_count_; ++i) {
    const Hook& h = hooks_[i];
    if (!h.match.matches(proto, dport)) continue;
    if (!built) {  // most packets match nothing: build the view only when one does
      p.ip4 = ip4;
      p.ip6 = ip6;
      p.proto = proto;
      p.src = ip4 ? IpAddr(ip4->src) : IpAddr(ip6->src);
      p.dst = ip4 ? IpAddr(ip4->dst) : IpAddr(ip6->dst);
      p.src_port = load_be16(l4.data());
      p.dst_port = dport;
      p.l4 = l4;
      p.now = now;
      built = true;
    }
    if (h.hook->on_guest_packet(p)) return true;
  }
  return false;
}

bool Dispatch::admit_echo(const IpAddr& src, const IpAddr& dst, const wire::Ipv4Repr* ip4, const wire::Ipv6Repr* ip6,
                          Bytes l4, Instant now) {
  if (!admission_) return true;
  FlowInfo info;
  info.proto = FlowProto::icmp;
  info.guest = src;
  info.remote = dst;
  if (admission_->icmp_echo(info)) return true;
  // R-POL-10: administratively prohibited from the gateway, or silence.
  if (admission_->drop_denied()) {
    counters_.drop(DropReason::policy);
  } else if (ip4) {
    io_.send_icmp_error_v4(*ip4, l4, destinations_.config().gateway4, kIcmp4DestUnreachable, kIcmp4AdminProhibited,
                           now);
  } else {
    io_.send_icmp_error_v6(*ip6, l4, destinations_.config().gateway6, kIcmp6DestUnreachable, kIcmp6AdminProhibited,
                           now);
  }
  return false;
}

bool Dispatch::over_budget(uint8_t proto, Bytes l4) noexcept {
  if (!budget_ || !budget_->at_least(MemoryLevel::full)) return false;
  if (proto == wire::kProtoTcp) {
    Bytes payload;
    auto seg = wire::TcpRepr::parse(l4, &payload);
    // A malformed segment goes on to the engine, which counts it as such.
    if (!seg || (payload.empty() && !seg->has(wire::tcp_flags::syn))) return false;
  }
  counters_.drop(DropReason::memory);
  return true;
}

void Dispatch::on_ipv4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) {
  if (over_budget(ip.protocol, l4)) return;
  switch (ip.protocol) {
    case wire::kProtoTcp:
      if (run_hooks(wire::kProtoTcp, &ip, nullptr, l4, now)) return;
      tcp_.on_segment_v4(ip, l4, now);
      return;
    case wire::kProtoUdp:
      if (run_hooks(wire::kProtoUdp, &ip, nullptr, l4, now)) return;
      udp_.on_datagram_v4(ip, l4, now);
      return;
    case wire::kProtoIcmp: {
      auto echo = wire::Icmpv4Repr::parse(l4);
      if (!echo) {
        counters_.drop(DropReason::bad_icmp);
      } else if (echo->type != wire::kIcmpEchoRequest || echo->code != 0) {
        counters_.inc(Counter::ignored_icmp);
      } else if (!icmp_) {
        counters_.drop(DropReason::policy);
      } else if (admit_echo(IpAddr(ip.src), IpAddr(ip.dst), &ip, nullptr, l4, now)) {
        icmp_->on_echo_v4(ip, *echo, now);
      }
      return;
    }
    default:
      counters_.drop(DropReason::unsupported_proto);
  }
}

void Dispatch::on_ipv6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) {
  if (over_budget(ip.next_header, l4)) return;
  switch (ip.next_header) {
    case wire::kProtoTcp:
      if (run_hooks(wire::kProtoTcp, nullptr, &ip, l4, now)) return;
      tcp_.on_segment_v6(ip, l4, now);
      return;
    case wire::kProtoUdp:
      if (run_hooks(wire::kProtoUdp, nullptr, &ip, l4, now)) return;
      udp_.on_datagram_v6(ip, l4, now);
      return;
    case wire::kProtoIcmpv6: {
      auto echo = wire::Icmpv6Repr::parse(l4, ip.src, ip.dst);
      if (!echo) {
        counters_.drop(DropReason::bad_icmp);
      } else if (echo->type != wire::kIcmpv6EchoRequest || echo->code != 0) {
        counters_.inc(Counter::ignored_icmp);
      } else if (!icmp_) {
        counters_.drop(DropReason::policy);
      } else if (admit_echo(IpAddr(ip.src), IpAddr(ip.dst), nullptr, &ip, l4, now)) {
        icmp_->on_echo_v6(ip, *echo, now);
      }
      return;
    }
    default:
      counters_.drop(DropReason::unsupported_proto);
  }
}

}  // namespace moat::flows
