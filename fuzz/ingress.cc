// Whole frame-ingress fuzz target: arbitrary bytes into Interface::on_frame_from_guest,
// once raw and once behind a valid Ethernet header addressed to the gateway MAC (so the
// fuzzer spends its time past demux). A PacketHandler is set so delivered packets are
// exercised through the send helpers too, as the flow layer would: each one answers with
// an ICMP error quoting the packet. Time advances with the input so rate limiters and
// the RA timer both fill and drain. Seeds: fuzz/corpus/ingress (see
// tests/unit/stack/corpus_test.cc).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

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

}  // namespace

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
  static constexpr uint16_t kTypes[] = {0x0800, 0x86dd, 0x0806};
  uint16_t type = kTypes[(size > 0 ? data[0] : 0) % 3];
  std::memcpy(frame.data(), cfg.gateway_mac.bytes.data(), 6);
  std::memcpy(frame.data() + 6, cfg.guest_mac.bytes.data(), 6);
  store_be16(frame.data() + 12, type);
  size_t body = size > 0 ? size - 1 : 0;
  if (body > 0) std::memcpy(frame.data() + 14, data + 1, body);
  iface.on_frame_from_guest(Bytes(frame.data(), 14 + body), now);
  return 0;
}
