// NDP fuzz target (SPEC R-HARD-6): the first input byte picks one of a few fixed
// (source, destination) address pairs, so the address rules of RFC 4861 §6.1/§7.1 are
// reached; the rest goes to NdpRepr::parse (checksums are not verified in fuzzing
// builds). Whatever parses must emit into exactly len() bytes and parse back to the same
// values. Seeds: fuzz/corpus/ndp_options (selector byte + the vectors of
// tests/unit/wire/ndp_test.cc).
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "wire/ndp.h"

namespace {

using moat::Bytes;
using moat::Ipv6Addr;
using moat::wire::NdpRepr;

constexpr Ipv6Addr kGuestLl{{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56}};
constexpr Ipv6Addr kGatewayLl{{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x6d, 0x6f, 0xff, 0xfe, 0x61, 0x74, 0x01}};
constexpr Ipv6Addr kGateway{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
constexpr Ipv6Addr kGuest{{0xfd, 0x42, 0x6d, 0x73, 0x00, 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
constexpr Ipv6Addr kSolicitedGateway{{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1}};

struct AddrPair {
  Ipv6Addr src, dst;
};
// 0 RS, 1 NS for the gateway, 2 DAD probe, 3 unsolicited RA/NA, 4 unicast NA.
constexpr std::array<AddrPair, 5> kPairs{{
    {kGuestLl, Ipv6Addr::all_routers()},
    {kGuestLl, kSolicitedGateway},
    {Ipv6Addr{}, kSolicitedGateway},
    {kGatewayLl, Ipv6Addr::all_nodes()},
    {kGateway, kGuest},
}};

bool same(const NdpRepr& a, const NdpRepr& b) {
  return a.type == b.type && a.cur_hop_limit == b.cur_hop_limit && a.managed == b.managed && a.other == b.other &&
         a.router_lifetime == b.router_lifetime && a.reachable_time == b.reachable_time &&
         a.retrans_timer == b.retrans_timer && a.target == b.target && a.router == b.router &&
         a.solicited == b.solicited && a.override_ == b.override_ && a.source_ll == b.source_ll &&
         a.target_ll == b.target_ll && a.mtu == b.mtu && a.prefix == b.prefix && a.rdnss == b.rdnss &&
         a.rdnss_lifetime == b.rdnss_lifetime;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const AddrPair& addrs = kPairs[data[0] % kPairs.size()];
  const Bytes in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  auto first = NdpRepr::parse(in, addrs.src, addrs.dst);
  if (!first.has_value()) return 0;

  const size_t n = first->len();
  if (n == 0 || n > in.size()) __builtin_trap();  // emit writes a subset of what was read
  std::vector<std::byte> out(n);
  if (!first->emit(out, addrs.src, addrs.dst)) __builtin_trap();
  std::vector<std::byte> short_out(n - 1);
  if (first->emit(short_out, addrs.src, addrs.dst)) __builtin_trap();

  auto second = NdpRepr::parse(out, addrs.src, addrs.dst);
  if (!second.has_value()) __builtin_trap();
  if (!same(*first, *second)) __builtin_trap();
  return 0;
}
