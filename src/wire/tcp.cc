#include "wire/tcp.h"

#include "wire/checksum.h"
#include "wire/ipv4.h"

namespace moat::wire {
namespace {

// RFC 9293 §3.1 header layout.
constexpr size_t kSrcPortOff = 0, kDstPortOff = 2, kSeqOff = 4, kAckOff = 8, kDataOffOff = 12, kFlagsOff = 13,
                 kWindowOff = 14, kUrgentOff = 18;

// Option lengths, kind and length octets included.
constexpr uint8_t kMssLen = 4, kWindowScaleLen = 3, kSackPermittedLen = 2, kTimestampsLen = 10;

/// Reads the option list into `r`. Each step consumes at least one byte of at most 40,
/// so the loop is bounded by the header; the explicit cap documents it.
Result<bool, ParseError> parse_options(Bytes opts, TcpRepr& r) noexcept {
  ByteReader rd(opts);
  for (size_t steps = 0; steps < TcpRepr::kMaxHeaderLen - TcpRepr::kHeaderLen && !rd.empty(); ++steps) {
    const uint8_t kind = rd.u8();
    if (kind == kTcpOptEnd) break;
    if (kind == kTcpOptNop) continue;
    const uint8_t len = rd.u8();
    if (!rd.ok() || len < 2) return unexpected(ParseError::bad_option);
    ByteReader body(rd.bytes(len - 2u));
    if (!rd.ok()) return unexpected(ParseError::bad_option);
    switch (kind) {
      case kTcpOptMss:
        if (len == kMssLen && !r.mss) r.mss = body.u16();
        break;
      case kTcpOptWindowScale:
        // RFC 7323 §2.3: a shift above 14 is treated as 14.
        if (len == kWindowScaleLen && !r.window_scale) {
          const uint8_t shift = body.u8();
          r.window_scale = shift > TcpRepr::kMaxWindowScale ? TcpRepr::kMaxWindowScale : shift;
        }
        break;
      case kTcpOptSackPermitted:
        if (len == kSackPermittedLen) r.sack_permitted = true;
        break;
      case kTcpOptTimestamps:
        if (len == kTimestampsLen && !r.timestamps) {
          const uint32_t tsval = body.u32();
          r.timestamps = std::pair{tsval, body.u32()};
        }
        break;
      default:  // SACK blocks, MD5, TFO, ...: ignored (SPEC R-TCP-2)
        break;
    }
  }
  return true;
}

/// Writes header and options (checksum zero); false if `out` cannot hold them.
bool write_header(const TcpRepr& r, MutBytes out) noexcept {
  const size_t hl = r.header_len();
  if (out.size() < hl) return false;
  ByteWriter w(out.first(hl));
  w.u16(r.src_port);
  w.u16(r.dst_port);
  w.u32(r.seq.value);
  w.u32(r.ack.value);
  w.u8(uint8_t((hl / 4) << 4));
  w.u8(r.flags);
  w.u16(r.window);
  w.u16(0);  // checksum, filled in last
  w.u16(r.urgent);
  // Linux's SYN layout, NOP-padded so every option stays 4-aligned: MSS, [SACK-permitted]
  // timestamps or NOP NOP SACK-permitted, NOP window scale.
  if (r.mss) {
    w.u8(kTcpOptMss);
    w.u8(kMssLen);
    w.u16(*r.mss);
  }
  if (r.timestamps) {
    if (r.sack_permitted) {
      w.u8(kTcpOptSackPermitted);
      w.u8(kSackPermittedLen);
    } else {
      w.u8(kTcpOptNop);
      w.u8(kTcpOptNop);
    }
    w.u8(kTcpOptTimestamps);
    w.u8(kTimestampsLen);
    w.u32(r.timestamps->first);
    w.u32(r.timestamps->second);
  } else if (r.sack_permitted) {
    w.u8(kTcpOptNop);
    w.u8(kTcpOptNop);
    w.u8(kTcpOptSackPermitted);
    w.u8(kSackPermittedLen);
  }
  if (r.window_scale) {
    w.u8(kTcpOptNop);
    w.u8(kTcpOptWindowScale);
    w.u8(kWindowScaleLen);
    w.u8(*r.window_scale);
  }
  return w.ok() && w.written() == hl;
}

void finish(Checksum c, MutBytes out) noexcept {
  c.add(out);
  store_be16(out.data() + TcpRepr::kChecksumOffset, c.finish());
}

// finish() leaves the complement of the folded sum; the partial field is the folded sum.
void finish_partial(Checksum c, MutBytes out) noexcept {
  store_be16(out.data() + TcpRepr::kChecksumOffset, uint16_t(~c.finish()));
}

}  // namespace

Result<TcpRepr, ParseError> TcpRepr::parse(Bytes segment, Bytes* payload) noexcept {
  if (segment.size() < kHeaderLen) return unexpected(ParseError::truncated);
  const std::byte* p = segment.data();
  const size_t header_len = size_t(load_u8(p + kDataOffOff) >> 4) * 4;
  if (header_len < kHeaderLen) return unexpected(ParseError::bad_length);
  if (header_len > segment.size()) return unexpected(ParseError::truncated);

  TcpRepr r;
  r.src_port = load_be16(p + kSrcPortOff);
  r.dst_port = load_be16(p + kDstPortOff);
  r.seq = SeqNum{load_be32(p + kSeqOff)};
  r.ack = SeqNum{load_be32(p + kAckOff)};
  r.flags = load_u8(p + kFlagsOff);
  r.window = load_be16(p + kWindowOff);
  r.urgent = load_be16(p + kUrgentOff);
  const auto options = parse_options(segment.subspan(kHeaderLen, header_len - kHeaderLen), r);
  if (!options.has_value()) return unexpected(options.error());
  if (payload) *payload = segment.subspan(header_len);
  return r;
}

size_t TcpRepr::header_len() const noexcept {
  size_t n = kHeaderLen;
  if (mss) n += 4;
  if (window_scale) n += 4;
  if (timestamps) n += 12;          // with SACK-permitted sharing its two NOPs
  else if (sack_permitted) n += 4;
  return n;
}

bool TcpRepr::emit_v4(MutBytes out, Ipv4Addr src, Ipv4Addr dst) const noexcept {
  if (out.size() > 0xffff || !write_header(*this, out)) return false;
  finish(pseudo_header_v4(src, dst, kProtoTcp, uint16_t(out.size())), out);
  return true;
}

bool TcpRepr::emit_v6(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept {
  if (out.size() > 0xffffffffu || !write_header(*this, out)) return false;
  finish(pseudo_header_v6(src, dst, kProtoTcp, uint32_t(out.size())), out);
  return true;
}

bool TcpRepr::emit_v4_partial(MutBytes out, Ipv4Addr src, Ipv4Addr dst) const noexcept {
  if (out.size() > 0xffff || !write_header(*this, out)) return false;
  finish_partial(pseudo_header_v4(src, dst, kProtoTcp, uint16_t(out.size())), out);
  return true;
}

bool TcpRepr::emit_v6_partial(MutBytes out, const Ipv6Addr& src, const Ipv6Addr& dst) const noexcept {
  if (out.size() > 0xffffffffu || !write_header(*this, out)) return false;
  finish_partial(pseudo_header_v6(src, dst, kProtoTcp, uint32_t(out.size())), out);
  return true;
}

}  // namespace moat::wire
