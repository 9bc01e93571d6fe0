// Whole frame-ingress fuzz target: arbitrary bytes into Interface::on_frame_from_guest,
// once raw and once behind a valid Ethernet header addressed to the gateway MAC (so the
// fuzzer spends its time past demux). A PacketHandler is set so delivered packets are
// exercised through the send helpers too, as the flow layer would: each one answers with
// an ICMP error quoting the packet. Time advances with the input so rate limiters and
// the RA timer both fill and drain. Seeds: fuzz/corpus/ingress (see
// tests/unit/stack/corpus_test.cc). LLVMFuzzerCustomMutator (below) repairs lengths and
// checksums after each mutation (frame_fixup.h).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "frame_fixup.h"
#include "stack/interface.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"

namespace {

using namespace moat;

struct CountingSink : stack::FrameSink {
  size_t frames = 0, bytes = 0;
  void send_to_guest(Bytes frame) override {
    ++frames;
    bytes += frame.size();
    // Every frame we emit must be a sane Ethernet frame.
    if (frame.size() < 14 || frame.size() > stack::Interface::kMaxFrame) __builtin_trap();
  }
};

struct ErrorHandler : stack::PacketHandler {
  stack::Interface* iface = nullptr;
  void on_ipv4(const wire::Ipv4Repr& ip, Bytes l4, Instant now) override {
    iface->send_icmp_error_v4(ip, l4, iface->config().gateway4, wire::kIcmpDestUnreachable, 3, now);
  }
  void on_ipv6(const wire::Ipv6Repr& ip, Bytes l4, Instant now) override {
    iface->send_icmp_error_v6(ip, l4, iface->config().gateway6, wire::kIcmpv6DestUnreachable, 4, now);
  }
};

constexpr uint16_t kTypes[] = {0x0800, 0x86dd, 0x0806};

}  // namespace

// Mutate, then repair the reading the input was made for: an input that is an Ethernet
// frame carrying IP (most seeds) gets its frame fixed (3 times in 4); otherwise data[0]
// picks the EtherType of the network-layer packet behind it, as LLVMFuzzerTestOneInput
// reads it, and that packet is fixed.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (size == 0 || moat::fuzz::fixup_disabled()) return size;
  const uint64_t r = moat::fuzz::mix(seed);
  if (r % moat::fuzz::kLeaveBrokenOneIn == 0) return size;
  const uint16_t type = size >= 14 ? moat::fuzz::get16(data + 12) : 0;
  const bool frame = type == 0x0800 || type == 0x86dd || type == 0x8100;
  if (frame && ((r >> 8) & 3) != 0) moat::fuzz::fix_frame(data, size);
  else moat::fuzz::fix_l3(kTypes[data[0] % 3], data + 1, size - 1);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static stack::LinkConfig cfg = [] {
    stack::LinkConfig c;
    c.seed = 1;
    c.hostname = "fuzz";
    c.search_domains = {"example.org"};
    c.mtu = 1500;
    return c;
  }();
  static CountingSink sink;
  static ErrorHandler handler;
  static Counters counters;
  // One Interface for the whole run: state (learned MAC, rate limiters, RA schedule)
  // carries across inputs as it would across frames.
  static stack::Interface iface(cfg, sink, counters);
  static bool started = false;
  static Instant now = Instant{} + std::chrono::seconds(1);
  if (!started) {
    handler.iface = &iface;
    iface.set_packet_handler(&handler);
    iface.start(now);
    started = true;
  }
  now += std::chrono::milliseconds(7);
  if (auto d = iface.next_deadline(); d && *d <= now) iface.on_timer(now);

  Bytes raw(reinterpret_cast<const std::byte*>(data), size);
  iface.on_frame_from_guest(raw, now);

  // Behind a valid Ethernet header to the gateway MAC. The first two input bytes pick the
  // EtherType among the three the stack serves, so the rest is a network-layer payload.
  static std::vector<std::byte> frame(stack::Interface::kMaxFrame + 16);
  if (size > stack::Interface::kMaxFrame) return 0;
  uint16_t type = kTypes[(size > 0 ? data[0] : 0) % 3];
  std::memcpy(frame.data(), cfg.gateway_mac.bytes.data(), 6);
  std::memcpy(frame.data() + 6, cfg.guest_mac.bytes.data(), 6);
  store_be16(frame.data() + 12, type);
  size_t body = size > 0 ? size - 1 : 0;
  if (body > 0) std::memcpy(frame.data() + 14, data + 1, body);
  iface.on_frame_from_guest(Bytes(frame.data(), 14 + body), now);
  return 0;
}
