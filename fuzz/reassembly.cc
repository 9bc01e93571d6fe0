// Fragment reassembly fuzz target (R-FRAG-1): the input is a script of IPv4/IPv6 fragments
// fed to one Reassembler, with clock advances and expiries in between. Whatever arrives,
// it must not crash, must stay within its limits (datagrams in progress, bytes held) and
// every returned datagram must be readable, sized <= 65535 and made only of bytes that
// were handed in. IPv6 fragments go through the production Ipv6Repr::parse first.
//
// Record format (8-byte header, then `len` data bytes, zero-filled past the input's end):
//   [0] flags: bit0 IPv6, bit1 more-fragments, bit2 call expire(), bit3 dest-opts header
//       after the Fragment header (IPv6 first fragments)
//   [1] identification (few values, so fragments collide)
//   [2..3] fragment offset in 8-byte units (13 bits)
//   [4..5] data length (mod 2048)
//   [6] clock advance in 100 ms steps
//   [7] protocol / next header (< 0xf0 means UDP)
// Seeds: fuzz/corpus/reassembly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/counters.h"
#include "stack/reassembly.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

namespace {

using namespace moat;

constexpr size_t kHeader = 8;

void check(bool ok) {
  if (!ok) std::abort();
}

/// Touches every byte (ASan reports reads outside live memory).
unsigned sum(Bytes b) {
  unsigned s = 0;
  for (std::byte x : b) s += unsigned(x);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Counters counters;
  stack::ReassemblyConfig cfg;
  cfg.max_datagrams = 8;  // small limits so eviction and budgets are reached quickly
  cfg.max_fragments = 16;
  cfg.max_bytes = 96 << 10;
  stack::Reassembler r(cfg, counters);

  Instant now{std::chrono::hours(1)};
  std::vector<std::byte> frag(2048);
  std::vector<std::byte> packet(40 + 8 + 8 + 2048);
  volatile unsigned sink = 0;

  size_t pos = 0;
  while (size - pos >= kHeader) {
    const uint8_t* h = data + pos;
    pos += kHeader;
    const bool v6 = h[0] & 1, more = h[0] & 2, expire = h[0] & 4, dest_opts = h[0] & 8;
    const uint16_t ident = h[1] & 3;
    const uint16_t offset = uint16_t(((h[2] << 8) | h[3]) & 0x1fff) * 8;
    const size_t len = size_t((h[4] << 8) | h[5]) % 2048;
    const uint8_t proto = h[7] < 0xf0 ? wire::kProtoUdp : h[7];
    now += std::chrono::milliseconds(100) * h[6];
    const size_t avail = std::min(len, size - pos);
    std::memset(frag.data(), 0, len);
    if (avail) std::memcpy(frag.data(), data + pos, avail);
    pos += avail;

    if (!v6) {
      wire::Ipv4Repr ip;
      ip.src = Ipv4Addr::from_octets(100, 96, 0, 2);
      ip.dst = Ipv4Addr::from_octets(192, 0, 2, 1);
      ip.protocol = proto;
      ip.ident = ident;
      ip.frag_offset = offset;
      ip.more_fragments = more;
      ip.payload_len = uint16_t(len);
      if (auto out = r.add_v4(ip, Bytes(frag.data(), len), now)) {
        check(out->l4.size() <= 65535);
        sink = sink + sum(out->l4);
      }
    } else {
      // Fixed header -> Fragment header -> [dest opts] -> data, parsed like the stack does.
      const size_t opts = dest_opts ? 8 : 0;
      const size_t payload = 8 + opts + len;
      wire::Ipv6Repr ip;
      ip.src = Ipv6Addr{{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}};
      ip.dst = Ipv6Addr{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
      ip.next_header = wire::kNextFragment;
      ip.payload_len = uint32_t(payload);
      ip.emit(MutBytes(packet));
      wire::Ipv6FragmentHeader fh{dest_opts ? wire::kNextDestOpts : proto, offset, more, ident};
      fh.emit(MutBytes(packet).subspan(40, 8));
      if (dest_opts) {
        std::memset(packet.data() + 48, 0, 8);
        packet[48] = std::byte{proto};
      }
      if (len) std::memcpy(packet.data() + 48 + opts, frag.data(), len);
      const Bytes pkt(packet.data(), 40 + payload);
      auto parsed = wire::Ipv6Repr::parse(pkt, nullptr);
      if (parsed && parsed->fragment) {
        if (auto out = r.add_v6(*parsed, pkt, now)) {
          check(out->l4.size() <= 65535);
          sink = sink + sum(out->l4);
        }
      }
    }
    if (expire) r.expire(now);
    check(r.in_progress() <= cfg.max_datagrams);
    check(r.bytes_held() <= cfg.max_bytes);
  }
  r.expire(now + std::chrono::seconds(11));
  check(r.in_progress() == 0 && r.bytes_held() == 0);
  return 0;
}
