// virtio-net header + frame fuzz target (SPEC R-HARD-6, R-TR-6): the first byte picks the
// header length (10 or 12), the rest is one buffer as a transport reads it. VnetFromGuest
// validates the header (completing partial checksums, splitting USO) and every resulting
// frame goes through the stack's whole ingress path. Seeds: fuzz/corpus/vnet_frame (a plain
// ARP frame, a TSO TCP segment, a partial-checksum ICMP echo, a USO datagram).
// LLVMFuzzerCustomMutator (below) repairs the frame's lengths and checksums after each
// mutation (frame_fixup.h); of the virtio-net header only the checksum position of a
// NEEDS_CSUM frame is kept consistent, the rest is left to the mutation.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "frame_fixup.h"
#include "stack/interface.h"
#include "transport/vnet.h"

namespace {

struct NullSink : moat::stack::FrameSink {
  void send_to_guest(moat::Bytes) override {}
};

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, max_size);
  if (size == 0 || moat::fuzz::fixup_disabled()) return size;
  if (moat::fuzz::mix(seed) % moat::fuzz::kLeaveBrokenOneIn == 0) return size;
  const size_t hdr = 1 + ((data[0] & 1) ? 12 : 10);
  if (size <= hdr) return size;
  // NEEDS_CSUM (virtio 1.x §5.1.6.2): the guest leaves the pseudo-header sum in the field
  // and csum_start / csum_offset (little-endian) say where; keep all three consistent.
  moat::fuzz::L4Spot spot;
  spot.partial = (data[1] & moat::transport::kVnetNeedsCsum) != 0;
  moat::fuzz::fix_frame(data + hdr, size - hdr, &spot);
  if (spot.partial && spot.found) {
    data[1 + 6] = uint8_t(spot.start);
    data[1 + 7] = uint8_t(spot.start >> 8);
    data[1 + 8] = uint8_t(spot.offset);
    data[1 + 9] = uint8_t(spot.offset >> 8);
  }
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static moat::Counters counters;
  static NullSink sink;
  static moat::stack::Interface* iface = [] {
    moat::stack::LinkConfig cfg;
    return new moat::stack::Interface(cfg, sink, counters);  // lives for the whole run
  }();
  static moat::transport::VnetFromGuest* v10 = new moat::transport::VnetFromGuest(10, counters);
  static moat::transport::VnetFromGuest* v12 = new moat::transport::VnetFromGuest(12, counters);
  static moat::Instant now{};
  if (size < 1) return 0;
  now += std::chrono::milliseconds(10);
  std::vector<std::byte> buf(reinterpret_cast<const std::byte*>(data + 1),
                             reinterpret_cast<const std::byte*>(data + size));
  auto* v = (data[0] & 1) ? v12 : v10;
  v->process(moat::MutBytes(buf.data(), buf.size()),
             [](moat::Bytes frame) { iface->on_frame_from_guest(frame, now); });
  return 0;
}
