// DHCPv4 parser fuzz target (SPEC R-HARD-6): arbitrary bytes as a UDP payload into
// Dhcpv4Repr::parse. Whatever parses must emit into exactly len() bytes and parse back to
// the same values, so parse and emit cannot drift apart. Seeds: fuzz/corpus/dhcpv4 (the
// udhcpc DISCOVER/REQUEST and moat OFFER vectors of tests/unit/wire/dhcpv4_test.cc, plus
// an overloaded message).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "wire/dhcpv4.h"

namespace {

using moat::Bytes;
using moat::wire::Dhcpv4Repr;

bool same(Bytes a, Bytes b) {
  return std::string_view(reinterpret_cast<const char*>(a.data()), a.size()) ==
         std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

bool same(const Dhcpv4Repr& a, const Dhcpv4Repr& b) {
  return a.op == b.op && a.xid == b.xid && a.secs == b.secs && a.broadcast == b.broadcast && a.ciaddr == b.ciaddr &&
         a.yiaddr == b.yiaddr && a.siaddr == b.siaddr && a.giaddr == b.giaddr && a.chaddr == b.chaddr &&
         a.message_type == b.message_type && a.requested_ip == b.requested_ip && a.server_id == b.server_id &&
         same(a.parameter_request_list, b.parameter_request_list) && same(a.client_id, b.client_id) &&
         a.max_message_size == b.max_message_size && a.subnet_mask == b.subnet_mask && a.router == b.router &&
         a.broadcast_addr == b.broadcast_addr && a.interface_mtu == b.interface_mtu && a.lease_time == b.lease_time &&
         a.renewal_time == b.renewal_time && a.rebinding_time == b.rebinding_time && a.hostname == b.hostname &&
         a.domain_name == b.domain_name && a.classless_default_route == b.classless_default_route &&
         a.message == b.message;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  auto first = Dhcpv4Repr::parse(in);
  if (!first.has_value()) return 0;

  const size_t n = first->len();
  if (n < Dhcpv4Repr::kBootpMinLen) __builtin_trap();
  std::vector<std::byte> out(n);
  if (!first->emit(out)) __builtin_trap();
  // One byte short must be refused without writing.
  std::vector<std::byte> short_out(n - 1);
  if (first->emit(short_out)) __builtin_trap();

  auto second = Dhcpv4Repr::parse(out);
  if (!second.has_value()) __builtin_trap();
  if (!same(*first, *second)) __builtin_trap();
  return 0;
}
