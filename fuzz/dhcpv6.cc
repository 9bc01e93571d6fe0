// DHCPv6 fuzz target (SPEC R-HARD-6, R-NET-8): arbitrary bytes as a UDP payload into
// Dhcpv6Repr::parse, then the same bytes through the stack's server on ff02::1:2:547 in
// stateful mode. Whatever parses must emit into exactly len() bytes and parse back to the
// same values, so parse and emit cannot drift apart. Seeds: fuzz/corpus/dhcpv6 (a
// dhclient Solicit and Information-request, moat's Reply, a Renew with two addresses).
#include <cstddef>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "stack/interface.h"
#include "wire/dhcpv6.h"
#include "wire/ethernet.h"
#include "wire/ipv6.h"
#include "wire/udp.h"

namespace {

using moat::Bytes;
using moat::MutBytes;
using moat::wire::Dhcpv6Repr;

bool same(Bytes a, Bytes b) {
  return std::string_view(reinterpret_cast<const char*>(a.data()), a.size()) ==
         std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

bool same_ia(const std::optional<moat::wire::Dhcpv6IaNa>& a, const std::optional<moat::wire::Dhcpv6IaNa>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  if (a->iaid != b->iaid || a->t1 != b->t1 || a->t2 != b->t2 || a->status != b->status) return false;
  if (a->addr.has_value() != b->addr.has_value()) return false;
  return !a->addr || (a->addr->addr == b->addr->addr && a->addr->preferred_lifetime == b->addr->preferred_lifetime &&
                      a->addr->valid_lifetime == b->addr->valid_lifetime);
}

bool same(const Dhcpv6Repr& a, const Dhcpv6Repr& b) {
  return a.type == b.type && a.transaction_id == b.transaction_id && same(a.client_id, b.client_id) &&
         same(a.server_id, b.server_id) && same_ia(a.ia_na, b.ia_na) && a.preference == b.preference &&
         a.status == b.status && a.status_message == b.status_message && a.rapid_commit == b.rapid_commit &&
         a.information_refresh_time == b.information_refresh_time;
}

struct NullSink : moat::stack::FrameSink {
  void send_to_guest(Bytes) override {}
};

void through_stack(Bytes payload) {
  static moat::Counters counters;
  static NullSink sink;
  static moat::stack::Interface* iface = [] {
    moat::stack::LinkConfig cfg;
    cfg.dhcpv6 = moat::stack::Dhcpv6Mode::stateful;
    cfg.search_domains = {"corp.example"};
    return new moat::stack::Interface(cfg, sink, counters);  // lives for the whole run
  }();
  static moat::Instant now{};
  now += std::chrono::seconds(1);  // stay under the 50/s processing limit

  const moat::MacAddr guest{{0x02, 0x6d, 0x6f, 0x00, 0x00, 0x02}};
  const moat::Ipv6Addr src = guest.link_local();
  const moat::Ipv6Addr& dst = moat::wire::kDhcpv6AllServers;
  std::vector<std::byte> frame(14 + 40 + 8 + payload.size());
  moat::wire::EthernetRepr eth{moat::MacAddr::for_ipv6_multicast(dst), guest, moat::wire::kEtherTypeIpv6};
  eth.emit(MutBytes(frame.data(), 14));
  moat::wire::Ipv6Repr ip;
  ip.src = src;
  ip.dst = dst;
  ip.next_header = moat::wire::kProtoUdp;
  ip.hop_limit = 1;
  ip.payload_len = uint32_t(8 + payload.size());
  ip.emit(MutBytes(frame.data() + 14, 40));
  MutBytes l4(frame.data() + 54, 8 + payload.size());
  if (!payload.empty()) std::memcpy(l4.data() + 8, payload.data(), payload.size());
  moat::wire::UdpRepr udp{moat::wire::kDhcpv6ClientPort, moat::wire::kDhcpv6ServerPort};
  udp.emit_v6(l4, src, dst);
  iface->on_frame_from_guest(Bytes(frame.data(), frame.size()), now);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  if (size <= 65535 - 48) through_stack(in);
  auto first = Dhcpv6Repr::parse(in);
  if (!first.has_value()) return 0;

  const size_t n = first->len();
  std::vector<std::byte> out(n);
  if (!first->emit(out)) __builtin_trap();
  std::vector<std::byte> short_out(n - 1);
  if (first->emit(short_out)) __builtin_trap();

  auto second = Dhcpv6Repr::parse(out);
  if (!second.has_value()) __builtin_trap();
  if (!same(*first, *second)) __builtin_trap();
  return 0;
}
