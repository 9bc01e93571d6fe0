#include "transport/vnet.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/log.h"
#include "transport/frame_transport.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"
#include "wire/udp.h"

namespace moat::transport {
namespace {

constexpr size_t kEth = wire::EthernetRepr::kHeaderLen;

uint16_t load_le16(const std::byte* p) noexcept {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}
void store_le16(std::byte* p, uint16_t v) noexcept {
  p[0] = std::byte(v & 0xff);
  p[1] = std::byte(v >> 8);
}

/// The L4 protocol of an IPv4/IPv6 frame without extension headers, or 0. Only used to
/// decide whether a partial checksum can stay partial, so "don't know" is safe (0 means
/// "complete it").
uint8_t l4_protocol(Bytes frame) noexcept {
  if (frame.size() < kEth + 20) return 0;
  const uint16_t ethertype = load_be16(frame.data() + 12);
  if (ethertype == wire::kEtherTypeIpv4) return load_u8(frame.data() + kEth + 9);
  if (ethertype == wire::kEtherTypeIpv6 && frame.size() >= kEth + 40) return load_u8(frame.data() + kEth + 6);
  return 0;
}

}  // namespace

VnetHeader VnetHeader::parse(Bytes in) noexcept {
  VnetHeader h;
  h.flags = load_u8(in.data());
  h.gso_type = load_u8(in.data() + 1);
  h.hdr_len = load_le16(in.data() + 2);
  h.gso_size = load_le16(in.data() + 4);
  h.csum_start = load_le16(in.data() + 6);
  h.csum_offset = load_le16(in.data() + 8);
  return h;
}

void VnetHeader::emit(MutBytes out) const noexcept {
  std::memset(out.data(), 0, out.size());
  store_u8(out.data(), flags);
  store_u8(out.data() + 1, gso_type);
  store_le16(out.data() + 2, hdr_len);
  store_le16(out.data() + 4, gso_size);
  store_le16(out.data() + 6, csum_start);
  store_le16(out.data() + 8, csum_offset);
}

bool complete_checksum(MutBytes frame, uint16_t csum_start, uint16_t csum_offset) noexcept {
  const size_t field = size_t{csum_start} + csum_offset;
  if (csum_start > frame.size() || csum_offset > frame.size() || field + 2 > frame.size()) return false;
  // The field already holds the pseudo-header sum, so the sum over the range is the whole
  // checksum; virtio leaves a result of 0 as 0 (UDP's 0xffff rule is the sender's business).
  wire::Checksum c;
  c.add(Bytes(frame.data() + csum_start, frame.size() - csum_start));
  store_be16(frame.data() + field, c.finish());
  return true;
}

VnetFromGuest::VnetFromGuest(size_t hdr_len, Counters& counters) : hdr_len_(hdr_len), counters_(counters) {}

void VnetFromGuest::drop(DropReason r) noexcept {
  counters_.drop(r);
  std::string_view name = drop_reason_name(r);
  MOAT_LOG_RATELIMITED(debug, "vnet: drop.%.*s", static_cast<int>(name.size()), name.data());
}

void VnetFromGuest::deliver(Bytes frame, FunctionRef<void(Bytes)> on_frame) {
  counters_.inc(Counter::link_from_guest_frames);
  counters_.inc(Counter::link_from_guest_bytes, frame.size());
  on_frame(frame);
}

void VnetFromGuest::process(MutBytes buf, FunctionRef<void(Bytes)> on_frame) {
  if (buf.size() < hdr_len_) return drop(DropReason::vnet_hdr);
  const VnetHeader h = VnetHeader::parse(buf);
  MutBytes frame = buf.subspan(hdr_len_);
  if (frame.size() < kMinFrameLen) return drop(DropReason::runt);
  if (frame.size() > kMaxFrameLen) return drop(DropReason::oversize);
  const uint8_t proto = l4_protocol(frame);
  if (h.needs_csum()) {
    const size_t field = size_t{h.csum_start} + h.csum_offset;
    if (h.csum_start < kEth || field + 2 > frame.size()) return drop(DropReason::vnet_hdr);
    // R-NET-3: TCP and UDP checksums are never validated, so they may stay partial (that is
    // the point of the offload); anything else is completed so its validation passes.
    if (proto != wire::kProtoTcp && proto != wire::kProtoUdp) complete_checksum(frame, h.csum_start, h.csum_offset);
  }
  switch (h.gso_type & ~kVnetGsoEcn) {
    case kVnetGsoNone:
      return deliver(frame, on_frame);
    case kVnetGsoTcpv4:
    case kVnetGsoTcpv6:
      // One segment larger than the MSS: the TCP engine takes it like any segment that
      // fits the advertised window (R-TR-6).
      if (proto != wire::kProtoTcp) return drop(DropReason::vnet_hdr);
      return deliver(frame, on_frame);
    case kVnetGsoUdp:
      // UFO: one datagram larger than the MTU, relayed as one datagram.
      if (proto != wire::kProtoUdp) return drop(DropReason::vnet_hdr);
      return deliver(frame, on_frame);
    case kVnetGsoUdpL4:
      if (proto != wire::kProtoUdp || h.gso_size == 0) return drop(DropReason::vnet_hdr);
      return split_uso(frame, h.gso_size, on_frame);
    default:
      return drop(DropReason::vnet_hdr);
  }
}

void VnetFromGuest::split_uso(Bytes frame, uint16_t gso_size, FunctionRef<void(Bytes)> on_frame) {
  // Re-parse the network layer with the production parsers: they bound every length. The
  // segments are rebuilt with option-free headers (IPv4) and no extension headers (IPv6:
  // a USO frame carrying any is refused).
  auto eth = wire::EthernetRepr::parse(frame);
  if (!eth) return drop(DropReason::vnet_hdr);
  Bytes packet = frame.subspan(kEth);
  Bytes l4;
  const bool v4 = eth->ethertype == wire::kEtherTypeIpv4;
  std::optional<wire::Ipv4Repr> ip4;
  std::optional<wire::Ipv6Repr> ip6;
  if (v4) {
    auto p = wire::Ipv4Repr::parse(packet, &l4);
    if (!p || p->is_fragment()) return drop(DropReason::vnet_hdr);
    ip4 = *p;
  } else {
    auto p = wire::Ipv6Repr::parse(packet, &l4);
    if (!p || p->ext_headers_len != 0 || p->next_header != wire::kProtoUdp) return drop(DropReason::vnet_hdr);
    ip6 = *p;
  }
  if (l4.size() < wire::UdpRepr::kHeaderLen) return drop(DropReason::vnet_hdr);
  const uint16_t src_port = load_be16(l4.data());
  const uint16_t dst_port = load_be16(l4.data() + 2);
  // The UDP length field of a USO super-datagram is not meaningful; the IP length is.
  Bytes payload = l4.subspan(wire::UdpRepr::kHeaderLen);
  if (scratch_.empty()) scratch_.resize(kMaxFrameLen);  // first USO frame only
  const size_t ip_hdr = v4 ? wire::Ipv4Repr::kHeaderLen : wire::Ipv6Repr::kHeaderLen;
  // Each datagram is at most one segment; a bound on the loop for the reader: <= 65535 / 1.
  size_t off = 0;
  uint16_t index = 0;
  do {
    const size_t chunk = std::min<size_t>(gso_size, payload.size() - off);
    const size_t udp_len = wire::UdpRepr::kHeaderLen + chunk;
    MutBytes out(scratch_.data(), kEth + ip_hdr + udp_len);
    eth->emit(out.first(kEth));
    MutBytes udp(out.data() + kEth + ip_hdr, udp_len);
    if (chunk) std::memcpy(udp.data() + wire::UdpRepr::kHeaderLen, payload.data() + off, chunk);
    wire::UdpRepr u{src_port, dst_port};
    if (v4) {
      wire::Ipv4Repr ip = *ip4;
      ip.header_len_bytes = wire::Ipv4Repr::kHeaderLen;
      ip.payload_len = static_cast<uint16_t>(udp_len);
      ip.ident = static_cast<uint16_t>(ip4->ident + index);  // as the kernel's USO does
      ip.emit(out.subspan(kEth, ip_hdr));
      u.emit_v4(udp, ip.src, ip.dst);
    } else {
      wire::Ipv6Repr ip = *ip6;
      ip.payload_len = static_cast<uint32_t>(udp_len);
      ip.emit(out.subspan(kEth, ip_hdr));
      u.emit_v6(udp, ip.src, ip.dst);
    }
    deliver(out, on_frame);
    off += chunk;
    ++index;
  } while (off < payload.size());
}

}  // namespace moat::transport
