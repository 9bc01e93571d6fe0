#pragma once
// moat::stack::Reassembler — bounded reassembly of the guest's IPv4 and IPv6 fragments
// (SPEC R-FRAG-1). The guest is hostile, so every resource is capped and preallocated at
// construction; adding a fragment never allocates.
//
// Theory of operation
// -------------------
// A datagram in progress ("slot") is keyed by RFC 791 §3.2 (src, dst, protocol, ident) for
// IPv4 and RFC 8200 §4.5 (src, dst, ident) for IPv6. Each slot owns a fixed 65535-byte
// buffer (allocated once for all slots; pages are only touched as fragments land in them)
// and a list of the byte ranges received so far. A fragment's bytes are copied to their
// final offset, so completion needs no second pass: once the final fragment has fixed the
// total length and the received ranges add up to it, the buffer *is* the datagram.
//
// Because ranges never overlap (an overlap discards the datagram, RFC 5722), "sum of range
// lengths == total length" means "fully covered".
//
// Slot lifecycle, state by state:
//   free        on the free list; holds nothing.
//   collecting  keyed, holding 1..max_fragments ranges; deadline = first fragment + 10 s.
//       -> free (completed):  the last missing range arrived; the datagram is returned and
//                             stays readable in the buffer until the next add_*() call.
//       -> free (invalid):    overlap, differing duplicate, conflicting total length, too
//                             many fragments, size > 65535, tiny first fragment.
//       -> free (timeout):    expire(now) after the deadline (`frag.timeout`).
//       -> free (evicted):    the oldest slot makes room for a new datagram when all slots
//                             are busy or the byte budget is spent (`frag.evicted`).
//
// Counting (R-OBS-2): every fragment handed in is either held, completes a datagram
// (`frag.reassembled`), is an identical duplicate (silently absorbed), or is dropped with
// `drop.fragment_invalid`; a discarded datagram also bumps `frag.invalid` once.
//
// TODO(udp): ICMP Time Exceeded code 1 (RFC 792) on timeout when the first fragment was
// received is not sent; Linux guests do not need it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/counters.h"
#include "base/memory_budget.h"
#include "base/time.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

namespace moat::stack {

/// Limits of R-FRAG-1. Values above the hard caps are clamped by the constructor.
struct ReassemblyConfig {
  uint32_t max_datagrams = 64;        ///< in progress at once; the oldest is evicted
  uint32_t max_fragments = 128;       ///< distinct fragments per datagram
  Duration lifetime = 10s;            ///< from the first fragment
  size_t max_bytes = size_t{4} << 20;  ///< fragment data held across all datagrams

  /// Hard caps: keep the preallocation (max_datagrams * 64 KiB) sane.
  static constexpr uint32_t kMaxDatagramsCap = 1024, kMaxFragmentsCap = 8192;
};

/// A reassembled IPv4 datagram: the first fragment's header with the fragment fields
/// cleared and payload_len set, and the upper-layer payload (valid until the next add_*).
struct ReassembledV4 {
  wire::Ipv4Repr ip;
  Bytes l4;
};

/// A reassembled IPv6 datagram: the first fragment's header with `fragment` cleared,
/// next_header = the upper-layer protocol, payload_len = l4.size() and ext_headers_len = 0
/// (extension headers are consumed). `l4` is valid until the next add_*().
struct ReassembledV6 {
  wire::Ipv6Repr ip;
  Bytes l4;
};

class Reassembler {
 public:
  /// Largest reassembled fragmentable part (IPv4: total length is 16 bits; IPv6: payload
  /// length is 16 bits, no jumbograms).
  static constexpr size_t kMaxDatagram = 65535;

  /// Allocates all storage (max_datagrams * 64 KiB of buffer + range tables) now.
  Reassembler(const ReassemblyConfig& config, Counters& counters);
  Reassembler(const Reassembler&) = delete;
  Reassembler& operator=(const Reassembler&) = delete;

  /// One IPv4 fragment (`ip.is_fragment()`) as parsed by Ipv4Repr::parse, `payload` being
  /// the bytes after the IP header. Returns the whole datagram when this fragment completes
  /// it. A non-fragment is returned as is (nothing stored).
  std::optional<ReassembledV4> add_v4(const wire::Ipv4Repr& ip, Bytes payload, Instant now);

  /// One IPv6 packet carrying a Fragment header: `ip` as parsed by Ipv6Repr::parse and
  /// `packet` the whole IPv6 packet it was parsed from (fixed header included) — the
  /// reassembler needs the bytes right after the Fragment header, which parse's upper-layer
  /// span skips for a first fragment with extension headers after the Fragment header.
  /// Atomic fragments (offset 0, M=0, RFC 8200 §4.5) are returned at once as whole packets.
  std::optional<ReassembledV6> add_v6(const wire::Ipv6Repr& ip, Bytes packet, Instant now);

  /// Held fragment bytes are charged to `budget` (R-LIM-2); a fragment the budget cannot
  /// take is dropped (`drop.memory`). Null = not accounted.
  void set_budget(MemoryBudget* budget) noexcept {
    charge_.set_budget(budget);
    charge_.resize(bytes_held_);
  }

  /// Discards every datagram whose lifetime ended (`frag.timeout`).
  void expire(Instant now);
  /// Earliest deadline of a datagram in progress.
  [[nodiscard]] std::optional<Instant> next_deadline() const noexcept;

  [[nodiscard]] size_t in_progress() const noexcept { return used_; }
  /// Fragment bytes currently held (the number charged against max_bytes).
  [[nodiscard]] size_t bytes_held() const noexcept { return bytes_held_; }
  [[nodiscard]] const ReassemblyConfig& config() const noexcept { return cfg_; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Range {
    uint16_t offset = 0;
    uint16_t len = 0;  // a non-final fragment's length is < 65536; 0 is rejected
  };
  struct Key {
    bool v6 = false;
    uint8_t protocol = 0;  // v4 only (v6 keys on src/dst/ident, RFC 8200 §4.5)
    uint32_t ident = 0;
    std::array<uint8_t, 16> src{}, dst{};
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct Slot {
    bool used = false;
    Key key;
    Instant deadline{};
    uint64_t seq = 0;               // creation order: the smallest is the oldest
    uint32_t total = 0;             // fragmentable-part length, known once the last fragment came
    bool have_total = false;
    bool have_first = false;
    uint32_t received = 0;          // sum of range lengths
    uint32_t nranges = 0;
    uint32_t upper_offset = 0;      // v6: extension headers after the Fragment header
    uint8_t upper_protocol = 0;     // v6: protocol found by walking the first fragment
    wire::Ipv4Repr ip4;             // header of the first fragment (or of the latest, until then)
    wire::Ipv6Repr ip6;
  };

  enum class AddResult { held, duplicate, completed, invalid, no_memory };

  uint32_t find(const Key& key) const noexcept;
  /// find(), but a slot whose lifetime is over is expired first (`frag.timeout`).
  uint32_t find_live(const Key& key, Instant now) noexcept;
  uint32_t allocate(const Key& key, Instant now) noexcept;
  void release(uint32_t slot) noexcept;
  void evict_oldest(uint32_t except) noexcept;
  /// Copies one fragment into a slot; `final` = no More Fragments flag.
  AddResult add_range(uint32_t slot, uint32_t offset, Bytes data, bool final) noexcept;
  void discard_invalid(uint32_t slot) noexcept;
  std::byte* buffer(uint32_t slot) noexcept { return storage_.get() + size_t{slot} * kSlotBytes; }
  Range* ranges(uint32_t slot) noexcept { return ranges_.data() + size_t{slot} * cfg_.max_fragments; }

  static constexpr size_t kSlotBytes = 65536;

  ReassemblyConfig cfg_;
  Counters& counters_;
  std::vector<Slot> slots_;
  std::vector<Range> ranges_;              // max_datagrams * max_fragments
  std::unique_ptr<std::byte[]> storage_;   // max_datagrams * 64 KiB, uninitialised
  size_t used_ = 0;
  size_t bytes_held_ = 0;
  MemoryCharge charge_;  // == bytes_held_ (R-LIM-2)
  uint64_t next_seq_ = 0;
};

}  // namespace moat::stack
