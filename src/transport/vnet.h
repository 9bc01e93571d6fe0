#pragma once
// The virtio-net header (virtio 1.2 §5.1.6, `struct virtio_net_hdr`) that a transport may put
// in front of every frame (SPEC R-TR-1, R-TR-6), and the offloads it carries. Transport-
// agnostic: TapTransport uses it with IFF_VNET_HDR, and the serve --fd and C ABI transports
// use the same helpers with the peer's header length and offload mask.
//
// Layout (little-endian, as on every Linux host moat runs on and in virtio 1.x):
//   u8 flags | u8 gso_type | le16 hdr_len | le16 gso_size | le16 csum_start | le16 csum_offset
//   [| le16 num_buffers]   (12-byte v1 header; the 10-byte legacy one stops before it)
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/bytes.h"
#include "base/counters.h"
#include "base/function_ref.h"

namespace moat::transport {

/// flags (virtio 1.2 §5.1.6).
inline constexpr uint8_t kVnetNeedsCsum = 1, kVnetDataValid = 2;
/// gso_type values; kVnetGsoEcn is a flag bit on top of TCPV4/TCPV6.
inline constexpr uint8_t kVnetGsoNone = 0, kVnetGsoTcpv4 = 1, kVnetGsoUdp = 3, kVnetGsoTcpv6 = 4,
                         kVnetGsoUdpL4 = 5, kVnetGsoEcn = 0x80;
/// Header lengths a transport may use (R-TR-1): none, legacy, v1.
inline constexpr size_t kVnetHdrLegacy = 10, kVnetHdrV1 = 12;

/// Offloads a peer accepts for frames moat sends it (TUNSETOFFLOAD, the ABI's offload mask).
enum Offload : uint8_t { kOffloadCsum = 1, kOffloadTso4 = 2, kOffloadTso6 = 4, kOffloadUso = 8 };
using OffloadMask = uint8_t;

struct VnetHeader {
  uint8_t flags = 0;
  uint8_t gso_type = kVnetGsoNone;
  uint16_t hdr_len = 0;      ///< Ethernet + IP + L4 header bytes of a GSO frame (a hint)
  uint16_t gso_size = 0;     ///< payload bytes per segment
  uint16_t csum_start = 0;   ///< from the Ethernet header: where the L4 checksum starts
  uint16_t csum_offset = 0;  ///< from csum_start: where the checksum field is
  [[nodiscard]] bool needs_csum() const noexcept { return (flags & kVnetNeedsCsum) != 0; }
  /// Reads the first 10 bytes of `in` (at least 10; num_buffers is ignored).
  static VnetHeader parse(Bytes in) noexcept;
  /// Writes `out.size()` bytes (10 or 12; num_buffers = 0).
  void emit(MutBytes out) const noexcept;
};

/// Completes a partial L4 checksum in place, as a virtio device would: the 16-bit field at
/// csum_start + csum_offset holds the pseudo-header sum; the result is the ones' complement
/// of the sum over [csum_start, end). False if the offsets do not fit `frame`.
bool complete_checksum(MutBytes frame, uint16_t csum_start, uint16_t csum_offset) noexcept;

/// The from-guest half of R-TR-6: turns one buffer (header + frame) into the Ethernet frames
/// the stack sees, or drops it with exactly one counter.
///  * no GSO: the frame as is. NEEDS_CSUM on TCP or UDP is left partial (moat never
///    validates L4 checksums, R-NET-3); on anything else (ICMP, which is validated) the
///    checksum is completed first, so no valid frame is refused for an offload.
///  * TCPV4/TCPV6 (ECN bit ignored): one TCP segment that may exceed the MSS, as is.
///  * UDP (UFO): one datagram that may exceed the MTU, as is.
///  * UDP_L4 (USO): split into datagrams of gso_size payload bytes, each with its own IP
///    and UDP header and complete checksums (IPv6 forbids a zero UDP checksum).
///  * anything else, a header that does not fit its frame, or GSO on the wrong protocol:
///    drop.vnet_hdr. Frames outside 14..65550 bytes: drop.runt / drop.oversize.
/// Delivered frames are counted in link.from_guest.frames/bytes.
class VnetFromGuest {
 public:
  /// `hdr_len` is 10 or 12. Allocates one 65550-byte scratch frame for USO (only then).
  VnetFromGuest(size_t hdr_len, Counters& counters);
  [[nodiscard]] size_t hdr_len() const noexcept { return hdr_len_; }
  /// `buf` is one buffer as read from the transport, header included; it may be changed
  /// in place (checksum completion). Calls on_frame for each resulting frame.
  void process(MutBytes buf, FunctionRef<void(Bytes)> on_frame);

 private:
  void deliver(Bytes frame, FunctionRef<void(Bytes)> on_frame);
  void split_uso(Bytes frame, uint16_t gso_size, FunctionRef<void(Bytes)> on_frame);
  void drop(DropReason r) noexcept;

  size_t hdr_len_;
  Counters& counters_;
  std::vector<std::byte> scratch_;  ///< one USO segment being built
};

}  // namespace moat::transport
