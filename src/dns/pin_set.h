#pragma once
// The pin set (SPEC R-DNS-6): which names this guest resolved to which addresses, and
// until when. The policy engine reads it through policy::PinLookup (R-POL-7: domain rules
// match addresses only through pins).
//
// Lifecycle of one pin (name, address):
//   absent   -> live      an answer to an A/AAAA query for the name (or a CNAME chain
//                         starting at it) carried the address: expiry = now + lifetime.
//   live     -> live      a later answer carries it again: expiry = max(old, new) (merge,
//                         never shortened).
//   live     -> absent    the expiry passes (removed lazily on the next insert or purge),
//                         or the set is full and this pin expires soonest (evicted).
//
// Time comes from the caller's Loop (Loop::now()), so tests drive it with a FakeClock.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/addr.h"
#include "base/memory_budget.h"
#include "base/time.h"
#include "dns/message.h"
#include "event/loop.h"
#include "policy/engine.h"

namespace moat::dns {

struct PinConfig {
  Duration min_ttl = std::chrono::seconds(300);
  Duration max_ttl = std::chrono::hours(24);
  uint32_t max_pins = 65536;
  /// R-LIM-2: each pin is charged (kPinCost + its name twice); at the refuse level a new pin
  /// replaces the soonest-expiring one instead of growing the set. Null: not accounted.
  MemoryBudget* budget = nullptr;
};

class PinSet final : public policy::PinLookup {
 public:
  PinSet(const event::Loop& loop, PinConfig cfg) : loop_(loop), cfg_(cfg), charge_(cfg.budget) {}

  bool any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view name)> pred) const override;

  /// R-DNS-6 for a NOERROR answer to an A/AAAA query for `qname` (lowercase text): follows
  /// the CNAME chain from qname (≤ 16 links, loops rejected) and pins every A/AAAA record
  /// owned by qname or a chain name. Returns the number of addresses pinned (0: nothing).
  size_t update(std::string_view qname, const std::vector<Record>& answers);
  /// Pins `addrs` to `name` with lifetime `ttl` (clamped); used by update() and local answers.
  void pin(std::string_view name, const IpAddr& addr, Duration ttl);

  /// Live pins (name/address pairs), after dropping the expired ones.
  size_t live();
  /// Every live name of `a` (for explain and tests).
  std::vector<std::string> names_of(const IpAddr& a) const;
  /// Calls `fn` for each live pin (control `dns.pins`, R-CTL-3), in no particular order.
  void for_each(FunctionRef<void(std::string_view name, const IpAddr& addr, Instant expiry)> fn) const;

  static constexpr size_t kMaxChain = 16;
  /// What one pin costs besides its name's two copies: a hash-map entry share, a multimap
  /// node, the Pin itself (measured order of magnitude; the charge follows the count).
  static constexpr size_t kPinCost = 192;
  /// Bytes charged for the live pins.
  [[nodiscard]] uint64_t charged() const noexcept { return charge_.bytes(); }

 private:
  struct AddrKey {
    std::array<uint8_t, 17> b{};
    friend bool operator==(const AddrKey&, const AddrKey&) = default;
  };
  struct AddrHash {
    size_t operator()(const AddrKey& k) const noexcept;
  };
  static AddrKey key_of(const IpAddr& a) noexcept;
  struct Pin {
    std::string name;
    Instant expiry;
  };
  void purge(Instant now);
  void evict_one();
  static uint64_t cost(size_t name_len) noexcept;

  const event::Loop& loop_;
  PinConfig cfg_;
  std::unordered_map<AddrKey, std::vector<Pin>, AddrHash> by_addr_;
  std::multimap<Instant, std::pair<AddrKey, std::string>> by_expiry_;
  size_t count_ = 0;
  MemoryCharge charge_;
};

}  // namespace moat::dns
