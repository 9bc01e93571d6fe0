#include "dns/pin_set.h"

#include <algorithm>
#include <cstring>

#include "policy/groups.h"

namespace moat::dns {

size_t PinSet::AddrHash::operator()(const AddrKey& k) const noexcept {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (uint8_t b : k.b) h = (h ^ b) * 1099511628211ull;
  return size_t(h);
}

PinSet::AddrKey PinSet::key_of(const IpAddr& raw) noexcept {
  const IpAddr a = policy::normalize(raw);  // R-DNS-6: mapped IPv6 is stored as IPv4
  AddrKey k;
  if (a.is_v6) {
    k.b[0] = 6;
    std::memcpy(k.b.data() + 1, a.v6.bytes.data(), 16);
  } else {
    k.b[0] = 4;
    store_be32(reinterpret_cast<std::byte*>(k.b.data() + 1), a.v4.value);
  }
  return k;
}

bool PinSet::any_pin_matches(const IpAddr& a, FunctionRef<bool(std::string_view)> pred) const {
  auto it = by_addr_.find(key_of(a));
  if (it == by_addr_.end()) return false;
  const Instant now = loop_.now();
  for (const Pin& p : it->second)
    if (p.expiry > now && pred(p.name)) return true;
  return false;
}

void PinSet::for_each(FunctionRef<void(std::string_view name, const IpAddr& addr, Instant expiry)> fn) const {
  const Instant now = loop_.now();
  for (const auto& [k, pins] : by_addr_) {
    IpAddr a;
    if (k.b[0] == 6) {
      Ipv6Addr v6;
      std::memcpy(v6.bytes.data(), k.b.data() + 1, 16);
      a = v6;
    } else {
      a = Ipv4Addr{load_be32(reinterpret_cast<const std::byte*>(k.b.data() + 1))};
    }
    for (const Pin& p : pins)
      if (p.expiry > now) fn(p.name, a, p.expiry);
  }
}

std::vector<std::string> PinSet::names_of(const IpAddr& a) const {
  std::vector<std::string> out;
  any_pin_matches(a, [&](std::string_view n) {
    out.emplace_back(n);
    return false;
  });
  return out;
}

uint64_t PinSet::cost(size_t name_len) noexcept {
  // std::string keeps up to 15 bytes inline (no heap block).
  return kPinCost + (name_len > 15 ? 2 * (name_len + 1) : 0);
}

void PinSet::purge(Instant now) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) evict_one();
}

void PinSet::evict_one() {
  auto e = by_expiry_.begin();
  auto it = by_addr_.find(e->second.first);
  if (it != by_addr_.end()) {
    auto& v = it->second;
    auto p = std::find_if(v.begin(), v.end(), [&](const Pin& x) { return x.name == e->second.second; });
    if (p != v.end()) {
      charge_.resize(charge_.bytes() - std::min<uint64_t>(charge_.bytes(), cost(p->name.size())));
      *p = std::move(v.back());
      v.pop_back();
      --count_;
    }
    if (v.empty()) by_addr_.erase(it);
  }
  by_expiry_.erase(e);
}

size_t PinSet::live() {
  purge(loop_.now());
  return count_;
}

void PinSet::pin(std::string_view name, const IpAddr& addr, Duration ttl) {
  if (cfg_.max_pins == 0) return;
  const Instant now = loop_.now();
  purge(now);
  const Instant expiry = now + std::clamp(ttl, cfg_.min_ttl, std::max(cfg_.min_ttl, cfg_.max_ttl));
  const AddrKey k = key_of(addr);
  auto& v = by_addr_[k];
  for (Pin& p : v) {
    if (p.name != name) continue;
    if (expiry <= p.expiry) return;  // merge never shortens
    auto [lo, hi] = by_expiry_.equal_range(p.expiry);
    for (auto e = lo; e != hi; ++e) {
      if (e->second.first == k && e->second.second == name) {
        by_expiry_.erase(e);
        break;
      }
    }
    p.expiry = expiry;
    by_expiry_.emplace(expiry, std::make_pair(k, std::string(name)));
    return;
  }
  // R-LIM-2: under memory pressure the set stops growing; the new pin takes the place of
  // the soonest-expiring one (the new answer is the one the guest is about to use).
  if (charge_.budget() && charge_.budget()->at_least(MemoryLevel::refuse) && count_ > 0) {
    evict_one();  // may erase k's own (empty) entry: `v` is not used below
  }
  auto& slot = by_addr_[k];
  slot.push_back(Pin{std::string(name), expiry});
  by_expiry_.emplace(expiry, std::make_pair(k, std::string(name)));
  charge_.resize(charge_.bytes() + cost(name.size()));
  ++count_;
  // Full: the soonest-expiring pins go (possibly the new one, if it is the soonest).
  while (count_ > cfg_.max_pins) evict_one();
}

size_t PinSet::update(std::string_view qname, const std::vector<Record>& answers) {
  // The chain: qname, then each CNAME target owned by the previous link.
  std::vector<std::string_view> chain{qname};
  uint32_t min_ttl = UINT32_MAX;
  for (size_t link = 0; link < kMaxChain; ++link) {
    const Record* next = nullptr;
    for (const Record& r : answers)
      if (r.type == kTypeCname && r.owner == chain.back()) {
        next = &r;
        break;
      }
    if (!next) break;
    // A loop makes the whole answer suspect: pin nothing.
    if (std::find(chain.begin(), chain.end(), std::string_view(next->target)) != chain.end()) return 0;
    min_ttl = std::min(min_ttl, next->ttl);
    chain.push_back(next->target);
  }
  std::vector<const Record*> pinned;
  for (const Record& r : answers) {
    if (r.type != kTypeA && r.type != kTypeAaaa) continue;
    if (std::find(chain.begin(), chain.end(), std::string_view(r.owner)) == chain.end()) continue;
    pinned.push_back(&r);
    min_ttl = std::min(min_ttl, r.ttl);
  }
  for (const Record* r : pinned) pin(qname, r->addr, std::chrono::seconds(min_ttl));
  return pinned.size();
}

}  // namespace moat::dns
