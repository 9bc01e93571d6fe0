#include "transport/impair.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>

#include "base/check.h"
#include "base/strings.h"

namespace moat::transport {

// ---------------------------------------------------------------------------------------
// Parsing

namespace {

constexpr std::array<std::string_view, 6> kKeys = {"loss", "reorder", "duplicate", "delay", "jitter", "seed"};
enum KeyIndex : size_t { kLoss, kReorder, kDuplicate, kDelay, kJitter, kSeed };

std::string quoted(std::string_view s) {
  return quote_value(s);  // bounded, escaped (§5.2)
}

std::string unknown_key_error(std::string_view key) {
  // Suggest a key within two edits, or one the given text abbreviates ("dup").
  std::optional<std::string_view> best;
  size_t best_distance = 3;
  for (std::string_view k : kKeys) {
    size_t d = edit_distance(key, k);
    if (key.size() >= 2 && k.substr(0, key.size()) == key) d = std::min<size_t>(d, 1);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
  }
  std::string msg = "unknown key " + quoted(key);
  if (best) return msg + " (did you mean " + quoted(*best) + "?)";
  msg += " (known keys:";
  for (size_t i = 0; i < kKeys.size(); ++i) {
    msg += i == 0 ? " " : ", ";
    msg += kKeys[i];
  }
  return msg + ")";
}

/// The whole of `s` as a finite double, or nothing.
std::optional<double> parse_number(std::string_view s) {
  double v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v, std::chars_format::general);
  if (ec != std::errc{} || ptr != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

Result<double, std::string> parse_probability(std::string_view key, std::string_view value) {
  const std::optional<double> v = parse_number(value);
  if (!v || !(*v >= 0.0 && *v <= 1.0))
    return unexpected(std::string(key) + ": " + quoted(value) + " is not a probability in [0, 1]");
  return *v;
}

Result<Duration, std::string> parse_duration(std::string_view key, std::string_view value) {
  struct Unit {
    std::string_view suffix;
    double ns;
  };
  // "ms" and "us" before "s": the longest suffix wins.
  static constexpr Unit kUnits[] = {{"ms", 1e6}, {"us", 1e3}, {"s", 1e9}};
  for (const Unit& u : kUnits) {
    if (value.size() <= u.suffix.size() || value.substr(value.size() - u.suffix.size()) != u.suffix) continue;
    const std::optional<double> n = parse_number(value.substr(0, value.size() - u.suffix.size()));
    if (!n || *n < 0.0) break;
    const double ns = *n * u.ns;
    if (ns > static_cast<double>(ImpairSpec::kMaxDelay.count()))
      return unexpected(std::string(key) + ": " + quoted(value) + " exceeds the maximum of " +
                        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(ImpairSpec::kMaxDelay).count()) +
                        "s");
    return Duration(std::llround(ns));
  }
  return unexpected(std::string(key) + ": " + quoted(value) +
                    " is not a duration (a number with unit us, ms or s, e.g. \"5ms\")");
}

Result<uint64_t, std::string> parse_seed(std::string_view key, std::string_view value) {
  uint64_t v = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, v, 10);
  if (value.empty() || ec != std::errc{} || ptr != end)
    return unexpected(std::string(key) + ": " + quoted(value) + " is not an unsigned 64-bit integer");
  return v;
}

std::string format_duration(Duration d) {
  const int64_t ns = d.count();
  char buf[64];
  if (ns % 1'000'000'000 == 0) std::snprintf(buf, sizeof buf, "%" PRId64 "s", ns / 1'000'000'000);
  else if (ns % 1'000'000 == 0) std::snprintf(buf, sizeof buf, "%" PRId64 "ms", ns / 1'000'000);
  else if (ns % 1'000 == 0) std::snprintf(buf, sizeof buf, "%" PRId64 "us", ns / 1'000);
  else std::snprintf(buf, sizeof buf, "%" PRId64 ".%03" PRId64 "us", ns / 1'000, ns % 1'000);
  return buf;
}

}  // namespace

Result<ImpairSpec, std::string> parse_impair(std::string_view text) {
  if (text.empty())
    return unexpected(std::string("empty spec (expected key=value[,key=value...] with keys loss, reorder, "
                                  "duplicate, delay, jitter, seed)"));
  ImpairSpec spec;
  std::array<std::optional<std::string_view>, kKeys.size()> seen{};
  size_t pos = 0;
  while (true) {
    const size_t comma = text.find(',', pos);
    const std::string_view item = text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    if (item.empty()) return unexpected("empty item in " + quoted(text) + " (stray ',')");
    const size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const auto it = std::find(kKeys.begin(), kKeys.end(), key);
    if (it == kKeys.end()) return unexpected(unknown_key_error(key));
    const auto index = static_cast<size_t>(it - kKeys.begin());
    if (eq == std::string_view::npos) return unexpected(std::string(key) + ": missing \"=VALUE\"");
    const std::string_view value = item.substr(eq + 1);
    if (seen[index])
      return unexpected(std::string(key) + ": given twice (" + quoted(*seen[index]) + " and " + quoted(value) + ")");
    seen[index] = value;

    switch (index) {
      case kLoss:
      case kReorder:
      case kDuplicate: {
        auto p = parse_probability(key, value);
        if (!p) return unexpected(p.error());
        (index == kLoss ? spec.loss : index == kReorder ? spec.reorder : spec.duplicate) = *p;
        break;
      }
      case kDelay:
      case kJitter: {
        auto d = parse_duration(key, value);
        if (!d) return unexpected(d.error());
        (index == kDelay ? spec.delay : spec.jitter) = *d;
        break;
      }
      case kSeed: {
        auto s = parse_seed(key, value);
        if (!s) return unexpected(s.error());
        spec.seed = *s;
        break;
      }
      default:
        break;
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return spec;
}

std::string format_impair(const ImpairSpec& spec) {
  // Shortest representation that reads back to the same double ("0.05", not "0.050000000000000003").
  auto prob = [](double p) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, p);
    return ec == std::errc{} ? std::string(buf, end) : std::string("?");
  };
  return "loss=" + prob(spec.loss) + ",reorder=" + prob(spec.reorder) + ",duplicate=" + prob(spec.duplicate) +
         ",delay=" + format_duration(spec.delay) + ",jitter=" + format_duration(spec.jitter) +
         ",seed=" + std::to_string(spec.seed);
}

// ---------------------------------------------------------------------------------------
// Decisions

namespace {

uint64_t splitmix64(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t rotl(uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

}  // namespace

ImpairDecider::ImpairDecider(const ImpairSpec& spec, Stream stream) noexcept
    : loss_(spec.loss),
      reorder_(spec.reorder),
      duplicate_(spec.duplicate),
      delay_ns_(spec.delay.count()),
      jitter_ns_(spec.jitter.count()) {
  // Mix the direction into the seed *before* splitmix, so the two directions get unrelated
  // streams (not one stream shifted by a few draws).
  uint64_t x = spec.seed ^ (static_cast<uint64_t>(stream) * 0xd1b54a32d192ed03ULL + 0x5851f42d4c957f2dULL);
  for (uint64_t& s : s_) s = splitmix64(x);
}

uint64_t ImpairDecider::next_u64() noexcept {
  // xoshiro256** 1.0 (Blackman & Vigna, public domain reference implementation).
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double ImpairDecider::next_unit() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

FrameFate ImpairDecider::next() noexcept {
  // Always four draws, in a fixed order: see the class comment.
  FrameFate f;
  f.drop = next_unit() < loss_;
  f.duplicate = next_unit() < duplicate_;
  f.reorder = next_unit() < reorder_;
  const double j = next_unit() * 2.0 - 1.0;  // [-1, 1)
  int64_t ns = delay_ns_ + static_cast<int64_t>(std::llround(j * static_cast<double>(jitter_ns_)));
  f.delay = Duration(std::max<int64_t>(ns, 0));
  return f;
}

// ---------------------------------------------------------------------------------------
// ImpairedLink

ImpairedLink::ImpairedLink(std::unique_ptr<FrameTransport> inner, const ImpairSpec& spec, event::Loop& loop,
                           Counters& counters, ImpairHooks hooks, const ImpairLimits& limits)
    : inner_(std::move(inner)),
      spec_(spec),
      loop_(loop),
      counters_(counters),
      hooks_(std::move(hooks)),
      from_guest_(spec, ImpairDecider::Stream::from_guest),
      to_guest_(spec, ImpairDecider::Stream::to_guest) {
  MOAT_CHECK(inner_ != nullptr);
  MOAT_CHECK(limits.max_frames >= 1 && limits.max_frames <= ImpairLimits::kMaxFrames);
  MOAT_CHECK(limits.max_bytes >= kMaxFrameLen && limits.max_bytes <= ImpairLimits::kMaxBytes);
  from_guest_.from_guest = true;
  for (Lane* lane : {&from_guest_, &to_guest_}) {
    if (spec.delays()) lane->store = DelayStore(limits.max_frames, limits.max_bytes, kMaxFrameLen);
    if (spec.reorder > 0) lane->held.resize(kMaxFrameLen);
  }
}

ImpairedLink::~ImpairedLink() = default;

size_t ImpairedLink::from_guest_waiting() const noexcept {
  return from_guest_.store.size() + (from_guest_.holding ? 1 : 0);
}
size_t ImpairedLink::to_guest_waiting() const noexcept { return to_guest_.store.size() + (to_guest_.holding ? 1 : 0); }

Result<size_t> ImpairedLink::receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) {
  // Stack lambdas behind FunctionRefs: no allocation per frame (as in PcapTap).
  auto deliver_now = [&on_frame](Bytes f) {
    on_frame(f);
    return true;
  };
  auto impair = [this, &deliver_now](Bytes frame) {
    if (!admit(from_guest_, frame, deliver_now)) count_lost();
  };
  return inner_->receive(impair, max_frames);
}

bool ImpairedLink::send(Bytes frame) {
  auto send_now = [this](Bytes f) { return inner_->send(f); };
  return admit(to_guest_, frame, send_now);
}

bool ImpairedLink::output_full() const {
  // Conservative like TapTransport: "could not take a maximal frame".
  return inner_->output_full() || (to_guest_.store.allocated() && !to_guest_.store.can_push(kMaxFrameLen));
}

bool ImpairedLink::admit(Lane& lane, Bytes frame, Sink sink) {
  // A to-guest frame of invalid length is a moat bug; the inner transport counts it.
  if (frame.size() < kMinFrameLen || frame.size() > kMaxFrameLen) return sink(frame);

  const FrameFate fate = lane.decider.next();
  if (fate.drop) {
    counters_.inc(Counter::impair_dropped);
    return true;  // lost on the wire, not refused by a queue
  }
  bool accepted = true;
  bool held_now = false;
  if (fate.reorder && !lane.holding && !lane.held.empty()) {
    std::memcpy(lane.held.data(), frame.data(), frame.size());
    lane.held_len = frame.size();
    lane.held_delay = fate.delay;
    lane.holding = true;
    held_now = true;
    counters_.inc(Counter::impair_reordered);
    // Two pointers fit std::function's local buffer: no allocation.
    lane.hold_timer = loop_.schedule_after(kReorderMaxHold, [this, l = &lane] { on_hold_timer(*l); });
  } else {
    accepted = forward(lane, frame, fate.delay, sink);
  }
  if (fate.duplicate && accepted) {
    counters_.inc(Counter::impair_duplicated);
    (void)forward(lane, frame, fate.delay, sink);  // a lost copy was never a guest frame: uncounted
  }
  // The frame that was held back goes out right after its successor: that is the reorder.
  if (lane.holding && !held_now) release_held(lane, sink);
  return accepted;
}

bool ImpairedLink::forward(Lane& lane, Bytes frame, Duration delay, Sink sink) {
  if (!lane.store.allocated()) return sink(frame);
  Instant release = loop_.now() + delay;
  if (release < lane.last_release) release = lane.last_release;  // FIFO: delay never reorders
  if (!lane.store.push(frame, release)) return false;  // full: frames or bytes
  lane.last_release = release;
  counters_.inc(Counter::impair_delayed);
  // A pending timer is due no later than this frame (release times are non-decreasing).
  if (!lane.delay_timer.pending())
    lane.delay_timer = loop_.schedule_at(release, [this, l = &lane] { on_delay_timer(*l); });
  return true;
}

void ImpairedLink::release_held(Lane& lane, Sink sink) {
  lane.holding = false;
  lane.hold_timer.cancel();
  if (!forward(lane, Bytes(lane.held.data(), lane.held_len), lane.held_delay, sink)) count_lost();
}

void ImpairedLink::on_delay_timer(Lane& lane) {
  const Instant now = loop_.now();
  while (!lane.store.empty() && lane.store.front_meta() <= now) {
    if (!deliver_later(lane, lane.store.front())) count_lost();
    lane.store.pop_front();
  }
  if (!lane.store.empty())
    lane.delay_timer = loop_.schedule_at(lane.store.front_meta(), [this, l = &lane] { on_delay_timer(*l); });
  if (hooks_.after_release) hooks_.after_release();
}

void ImpairedLink::on_hold_timer(Lane& lane) {
  if (!lane.holding) return;
  auto later = [this, &lane](Bytes f) { return deliver_later(lane, f); };
  release_held(lane, later);
  if (hooks_.after_release) hooks_.after_release();
}

bool ImpairedLink::deliver_later(Lane& lane, Bytes frame) {
  if (!lane.from_guest) return inner_->send(frame);
  if (!hooks_.deliver_from_guest) {
    counters_.inc(Counter::internal_errors);  // the owner did not wire the hook: a moat bug
    return true;
  }
  hooks_.deliver_from_guest(frame);
  return true;
}

void ImpairedLink::count_lost() { counters_.drop(DropReason::queue_full); }

}  // namespace moat::transport
