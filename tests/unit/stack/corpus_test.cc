// Seed corpus for fuzz/ingress.cc. With MOAT_WRITE_FUZZ_CORPUS=<dir> set, writes one
// binary file per representative guest frame; without it, only checks that every seed is
// accepted without a drop (so the corpus stays meaningful as the stack evolves).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "stack_fixture.h"

namespace moat::stack {
namespace {

using test::Buf;

std::vector<std::pair<std::string, Buf>> seeds(const test::GuestFrames& g) {
  const Ipv4Addr remote4 = Ipv4Addr::from_octets(8, 8, 8, 8);
  const Ipv6Addr remote6 = *Ipv6Addr::parse("2001:db8::1");
  using Type = wire::DhcpMessageType;
  std::vector<std::pair<std::string, Buf>> s;
  s.emplace_back("arp_request", g.arp_request(g.gateway4));
  s.emplace_back("arp_gratuitous", g.arp_gratuitous(g.guest_mac));
  s.emplace_back("ping4_gateway", g.icmp4_echo(g.gateway4, 1, 1, test::span(test::text("abcdefgh"))));
  s.emplace_back("ping4_remote", g.icmp4_echo(remote4, 1, 1, {}));
  s.emplace_back("udp4_remote", g.udp4(g.guest4, remote4, 1000, 53, test::span(test::text("query"))));
  s.emplace_back("tcp4_remote", g.tcp4_raw(remote4, test::span(Buf(20))));
  wire::Dhcpv4Repr discover = g.dhcp_msg(Type::discover);
  const uint8_t prl[] = {1, 3, 6, 121};
  discover.parameter_request_list = std::as_bytes(std::span(prl));
  s.emplace_back("dhcp_discover", g.dhcp(discover));
  wire::Dhcpv4Repr request = g.dhcp_msg(Type::request);
  request.requested_ip = g.guest4;
  request.server_id = g.gateway4;
  s.emplace_back("dhcp_request", g.dhcp(request));
  s.emplace_back("ping6_gateway", g.icmp6_echo(g.gateway6, 1, 1, test::span(test::text("abcdefgh"))));
  s.emplace_back("ping6_link_local", g.icmp6_echo(g.gateway_ll(), 1, 1, {}, g.guest_ll()));
  s.emplace_back("ndp_ns", g.ns(g.gateway6));
  s.emplace_back("ndp_dad", g.ns(g.gateway6, Ipv6Addr{}));
  s.emplace_back("ndp_rs", g.rs());
  s.emplace_back("udp6_remote", g.udp6(remote6, 1000, 53, test::span(test::text("query"))));
  Buf frag(wire::Ipv6FragmentHeader::kLen);
  wire::Ipv6FragmentHeader{wire::kProtoUdp, 0, false, 7}.emit(MutBytes(frag));
  Buf udp = test::udp6_datagram(1, 2, {}, g.guest6, remote6);
  frag.insert(frag.end(), udp.begin(), udp.end());
  s.emplace_back("udp6_atomic_fragment", g.ipv6(g.ip6_header(g.guest6, remote6, wire::kNextFragment), test::span(frag)));
  return s;
}

TEST_F(StackTest, FuzzSeedsAreAcceptedAndWrittenOnRequest) {
  iface->set_packet_handler(&handler);
  const char* dir = std::getenv("MOAT_WRITE_FUZZ_CORPUS");
  for (const auto& [name, frame] : seeds(g)) {
    feed(frame);
    EXPECT_EQ(counters.total_drops(), 0u) << name;
    if (dir == nullptr) continue;
    std::string path = std::string(dir) + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr) << path;
    std::fwrite(frame.data(), 1, frame.size(), f);
    std::fclose(f);
    // The same packet in the fuzzer's second form: one EtherType selector byte (0 IPv4,
    // 1 IPv6, 2 ARP) followed by the network-layer bytes.
    auto eth = wire::EthernetRepr::parse(test::span(frame));
    ASSERT_TRUE(eth);
    uint8_t selector = eth->ethertype == wire::kEtherTypeIpv4 ? 0 : eth->ethertype == wire::kEtherTypeIpv6 ? 1 : 2;
    f = std::fopen((path + ".l3").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputc(selector, f);
    std::fwrite(frame.data() + 14, 1, frame.size() - 14, f);
    std::fclose(f);
  }
}

}  // namespace
}  // namespace moat::stack
