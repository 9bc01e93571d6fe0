#include "stack/reassembly.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace moat::stack {
namespace {

constexpr uint8_t kProtoTcp = 6, kProtoUdp = 17, kProtoIcmp = 1, kProtoIcmpv6 = 58;
constexpr uint8_t kNextHopByHop = 0, kNextRouting = 43, kNextFragment = 44, kNextNone = 59, kNextDestOpts = 60;
constexpr size_t kIpv6FixedLen = 40, kIpv6PayloadLenOff = 4, kIpv6NextHeaderOff = 6;
constexpr size_t kFragmentHeaderLen = 8;

/// Bytes of the upper-layer header the first fragment must carry (RFC 1858 §3 for TCP,
/// RFC 7112 §5 for IPv6): enough for the flow layer to find ports/identifiers.
size_t upper_header_len(uint8_t protocol) noexcept {
  switch (protocol) {
    case kProtoTcp: return 20;
    case kProtoUdp:
    case kProtoIcmp:
    case kProtoIcmpv6: return 8;
    case kNextNone: return 0;
    default: return 1;  // unknown layout: at least one byte of it must be there
  }
}

/// Walks the extension headers at the start of a first fragment's data (those after the
/// Fragment header: destination options, routing). Returns their length and the
/// upper-layer protocol, or nullopt when the chain (or the upper-layer header) does not fit
/// in the first fragment (RFC 7112 §5) or is not a valid chain.
struct UpperLayer {
  size_t offset;
  uint8_t protocol;
};
std::optional<UpperLayer> walk_first_fragment(uint8_t next, Bytes data) noexcept {
  size_t off = 0;
  for (int walked = 0; next == kNextDestOpts || next == kNextRouting; ++walked) {
    if (walked == wire::Ipv6Repr::kMaxExtHeaders) return std::nullopt;
    if (data.size() - off < 8) return std::nullopt;
    const size_t len = (size_t(load_u8(data.data() + off + 1)) + 1) * 8;
    if (len > data.size() - off) return std::nullopt;
    next = load_u8(data.data() + off);
    off += len;
  }
  // A second Fragment header or a hop-by-hop header here is not a valid chain (RFC 8200 §4.1).
  if (next == kNextFragment || next == kNextHopByHop) return std::nullopt;
  if (upper_header_len(next) > data.size() - off) return std::nullopt;
  return UpperLayer{off, next};
}

/// Finds the bytes after the Fragment header of an IPv6 packet (bounded by its payload
/// length). Only the headers Ipv6Repr::parse accepts before a Fragment header are walked.
std::optional<Bytes> v6_fragment_data(Bytes packet) noexcept {
  if (packet.size() < kIpv6FixedLen) return std::nullopt;
  const size_t payload_len = load_be16(packet.data() + kIpv6PayloadLenOff);
  if (payload_len > packet.size() - kIpv6FixedLen) return std::nullopt;
  Bytes rest = packet.subspan(kIpv6FixedLen, payload_len);
  uint8_t next = load_u8(packet.data() + kIpv6NextHeaderOff);
  for (int walked = 0; walked < wire::Ipv6Repr::kMaxExtHeaders; ++walked) {
    if (rest.size() < 8) return std::nullopt;
    if (next == kNextFragment) return rest.subspan(kFragmentHeaderLen);
    if (next != kNextHopByHop && next != kNextDestOpts && next != kNextRouting) return std::nullopt;
    const size_t len = (size_t(load_u8(rest.data() + 1)) + 1) * 8;
    if (len > rest.size()) return std::nullopt;
    next = load_u8(rest.data());
    rest = rest.subspan(len);
  }
  return std::nullopt;
}

}  // namespace

Reassembler::Reassembler(const ReassemblyConfig& config, Counters& counters) : cfg_(config), counters_(counters) {
  cfg_.max_datagrams = std::clamp<uint32_t>(cfg_.max_datagrams, 1, ReassemblyConfig::kMaxDatagramsCap);
  cfg_.max_fragments = std::clamp<uint32_t>(cfg_.max_fragments, 1, ReassemblyConfig::kMaxFragmentsCap);
  slots_.resize(cfg_.max_datagrams);
  ranges_.resize(size_t{cfg_.max_datagrams} * cfg_.max_fragments);
  // Uninitialised on purpose: the pages of a 4 MiB arena only become resident as
  // fragments are written into them.
  storage_ = std::make_unique_for_overwrite<std::byte[]>(size_t{cfg_.max_datagrams} * kSlotBytes);
}

uint32_t Reassembler::find(const Key& key) const noexcept {
  for (uint32_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].used && slots_[i].key == key) return i;
  return kNone;
}

uint32_t Reassembler::find_live(const Key& key, Instant now) noexcept {
  const uint32_t slot = find(key);
  if (slot == kNone || slots_[slot].deadline > now) return slot;
  // Past its lifetime but expire() has not run yet: a late fragment must not revive it.
  counters_.inc(Counter::frag_timeout);
  release(slot);
  return kNone;
}

uint32_t Reassembler::allocate(const Key& key, Instant now) noexcept {
  if (used_ == slots_.size()) evict_oldest(kNone);
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.used) continue;
    s = Slot{};
    s.used = true;
    s.key = key;
    s.deadline = now + cfg_.lifetime;
    s.seq = next_seq_++;
    ++used_;
    return i;
  }
  return kNone;  // unreachable: evict_oldest freed one
}

void Reassembler::release(uint32_t slot) noexcept {
  Slot& s = slots_[slot];
  MOAT_ASSERT(s.used);
  bytes_held_ -= s.received;
  charge_.resize(bytes_held_);
  s.used = false;
  --used_;
}

void Reassembler::evict_oldest(uint32_t except) noexcept {
  uint32_t oldest = kNone;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].used || i == except) continue;
    if (oldest == kNone || slots_[i].seq < slots_[oldest].seq) oldest = i;
  }
  if (oldest == kNone) return;
  counters_.inc(Counter::frag_evicted);
  release(oldest);
}

void Reassembler::discard_invalid(uint32_t slot) noexcept {
  counters_.inc(Counter::frag_invalid);
  counters_.drop(DropReason::fragment_invalid);
  if (slot != kNone) release(slot);
}

Reassembler::AddResult Reassembler::add_range(uint32_t slot, uint32_t offset, Bytes data, bool final) noexcept {
  Slot& s = slots_[slot];
  const uint32_t end = offset + uint32_t(data.size());
  Range* r = ranges(slot);

  // Total length: set by the one fragment without M; everything must agree with it.
  if (final) {
    if (s.have_total && s.total != end) return AddResult::invalid;
    if (!s.have_total)
      for (uint32_t i = 0; i < s.nranges; ++i)
        if (uint32_t(r[i].offset) + r[i].len >= end) return AddResult::invalid;  // data past the end, or M mismatch
  } else if (s.have_total && end >= s.total) {
    return AddResult::invalid;
  }

  // RFC 5722 §3 (applied to IPv4 too, R-FRAG-1): any overlap discards the datagram; an
  // exact duplicate is harmless only if its bytes are identical.
  for (uint32_t i = 0; i < s.nranges; ++i) {
    const uint32_t a = r[i].offset, b = a + r[i].len;
    if (a == offset && b == end) {
      if (data.size() == 0 || std::memcmp(buffer(slot) + offset, data.data(), data.size()) == 0)
        return AddResult::duplicate;
      return AddResult::invalid;
    }
    if (offset < b && a < end) return AddResult::invalid;
  }
  if (s.nranges == cfg_.max_fragments) return AddResult::invalid;

  // The byte budget (R-FRAG-1, R-LIM-2): make room by evicting older datagrams.
  while (bytes_held_ + data.size() > cfg_.max_bytes) {
    const size_t before = used_;
    evict_oldest(slot);
    if (used_ == before) return AddResult::invalid;  // this datagram alone is over budget
  }

  if (!charge_.try_resize(bytes_held_ + data.size())) return AddResult::no_memory;
  std::memcpy(buffer(slot) + offset, data.data(), data.size());
  r[s.nranges++] = Range{uint16_t(offset), uint16_t(data.size())};
  s.received += uint32_t(data.size());
  bytes_held_ += data.size();
  if (final) {
    s.total = end;
    s.have_total = true;
  }
  if (offset == 0) s.have_first = true;
  return (s.have_total && s.received == s.total && s.have_first) ? AddResult::completed : AddResult::held;
}

std::optional<ReassembledV4> Reassembler::add_v4(const wire::Ipv4Repr& ip, Bytes payload, Instant now) {
  if (!ip.is_fragment()) return ReassembledV4{ip, payload};
  const bool final = !ip.more_fragments;
  const uint32_t offset = ip.frag_offset;
  const uint32_t end = offset + uint32_t(payload.size());
  // Cheap checks before any state is touched: empty or misaligned non-final fragments,
  // oversize datagrams (RFC 791 total length is 16 bits), a first fragment too short to
  // hold the upper-layer header (RFC 1858 §3).
  Key key{false, ip.protocol, ip.ident, {}, {}};
  const auto s4 = ip.src.octets(), d4 = ip.dst.octets();
  std::copy(s4.begin(), s4.end(), key.src.begin());
  std::copy(d4.begin(), d4.end(), key.dst.begin());
  if (payload.empty() || (!final && payload.size() % 8 != 0) || end > kMaxDatagram - wire::Ipv4Repr::kHeaderLen ||
      (offset == 0 && payload.size() < upper_header_len(ip.protocol))) {
    discard_invalid(find(key));
    return std::nullopt;
  }

  uint32_t slot = find_live(key, now);
  if (slot == kNone) slot = allocate(key, now);
  if (slot == kNone) return std::nullopt;

  switch (add_range(slot, offset, payload, final)) {
    case AddResult::invalid: discard_invalid(slot); return std::nullopt;
    case AddResult::duplicate: return std::nullopt;
    case AddResult::no_memory: counters_.drop(DropReason::memory); return std::nullopt;
    case AddResult::held:
      if (offset == 0) slots_[slot].ip4 = ip;
      return std::nullopt;
    case AddResult::completed: break;
  }
  Slot& s = slots_[slot];
  if (offset == 0) s.ip4 = ip;
  ReassembledV4 out{s.ip4, Bytes(buffer(slot), s.total)};
  out.ip.more_fragments = false;
  out.ip.frag_offset = 0;
  out.ip.payload_len = uint16_t(s.total);
  out.ip.header_len_bytes = wire::Ipv4Repr::kHeaderLen;
  counters_.inc(Counter::frag_reassembled);
  release(slot);  // the buffer stays intact until the next add_*()
  return out;
}

std::optional<ReassembledV6> Reassembler::add_v6(const wire::Ipv6Repr& ip, Bytes packet, Instant now) {
  const std::optional<Bytes> data = ip.fragment ? v6_fragment_data(packet) : std::nullopt;
  if (!data) {  // caller bug or a packet that does not match its Repr
    discard_invalid(kNone);
    return std::nullopt;
  }
  const wire::Ipv6FragmentInfo& frag = *ip.fragment;
  const bool final = !frag.more;
  const uint32_t offset = frag.offset;
  const uint32_t end = offset + uint32_t(data->size());

  Key key{true, 0, frag.ident, ip.src.bytes, ip.dst.bytes};

  std::optional<UpperLayer> upper;
  if (offset == 0) upper = walk_first_fragment(frag.next_header, *data);
  const bool bad = data->empty() || (!final && data->size() % 8 != 0) || end > kMaxDatagram ||
                   (offset == 0 && !upper);
  if (bad) {
    discard_invalid(find(key));
    return std::nullopt;
  }

  // RFC 8200 §4.5: an atomic fragment is a whole packet, and must not disturb (or be
  // mixed into) a reassembly with the same identification (RFC 6946 §4).
  if (offset == 0 && final) {
    ReassembledV6 out{ip, data->subspan(upper->offset)};
    out.ip.fragment.reset();
    out.ip.next_header = upper->protocol;
    out.ip.payload_len = uint32_t(out.l4.size());
    out.ip.ext_headers_len = 0;
    return out;
  }

  uint32_t slot = find_live(key, now);
  if (slot == kNone) slot = allocate(key, now);
  if (slot == kNone) return std::nullopt;

  switch (add_range(slot, offset, *data, final)) {
    case AddResult::invalid: discard_invalid(slot); return std::nullopt;
    case AddResult::duplicate: return std::nullopt;
    case AddResult::no_memory: counters_.drop(DropReason::memory); return std::nullopt;
    case AddResult::held:
    case AddResult::completed: break;
  }
  Slot& s = slots_[slot];
  if (offset == 0) {
    s.ip6 = ip;
    s.upper_offset = uint32_t(upper->offset);
    s.upper_protocol = upper->protocol;
  }
  if (!(s.have_total && s.received == s.total && s.have_first)) return std::nullopt;

  ReassembledV6 out{s.ip6, Bytes(buffer(slot) + s.upper_offset, s.total - s.upper_offset)};
  out.ip.fragment.reset();
  out.ip.next_header = s.upper_protocol;
  out.ip.payload_len = uint32_t(out.l4.size());
  out.ip.ext_headers_len = 0;
  counters_.inc(Counter::frag_reassembled);
  release(slot);
  return out;
}

void Reassembler::expire(Instant now) {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].used || slots_[i].deadline > now) continue;
    counters_.inc(Counter::frag_timeout);
    release(i);
  }
}

std::optional<Instant> Reassembler::next_deadline() const noexcept {
  std::optional<Instant> earliest;
  for (const Slot& s : slots_)
    if (s.used && (!earliest || s.deadline < *earliest)) earliest = s.deadline;
  return earliest;
}

}  // namespace moat::stack
