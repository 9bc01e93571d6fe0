#pragma once
// Link impairment (SPEC R-NET-10, `--impair loss=P,reorder=P,duplicate=P,delay=DUR,
// jitter=DUR,seed=N`): a FrameTransport decorator that drops, duplicates, reorders and
// delays frames in both directions with seeded, reproducible decisions. It is how moat's
// own tests exercise TCP recovery without netem, and how users try software on a flaky
// network. See README.md "ImpairedLink".
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/counters.h"
#include "base/time.h"
#include "event/loop.h"
#include "transport/frame_ring.h"
#include "transport/frame_transport.h"

namespace moat::transport {

/// The parsed `--impair` / `net.impair` value. All zero means "forward unchanged".
struct ImpairSpec {
  double loss = 0;       ///< probability a frame is dropped
  double reorder = 0;    ///< probability a frame is held back and delivered after the next one
  double duplicate = 0;  ///< probability a frame is delivered twice
  Duration delay{0};     ///< added latency
  Duration jitter{0};    ///< latency varies uniformly in [delay - jitter, delay + jitter] (>= 0)
  uint64_t seed = 1;     ///< same seed, same decisions

  /// Largest delay or jitter accepted: anything longer is a typo, not a network.
  static constexpr Duration kMaxDelay = std::chrono::seconds(60);

  [[nodiscard]] bool delays() const noexcept { return delay > Duration::zero() || jitter > Duration::zero(); }
  friend bool operator==(const ImpairSpec&, const ImpairSpec&) = default;
};

/// Parses "loss=0.05,delay=5ms,jitter=1ms,seed=7". Strict: known keys only (an unknown one
/// gets the closest known key suggested), each at most once, probabilities in [0, 1],
/// durations with a unit (us, ms, s; "5ms", "0.5s"), seed an unsigned 64-bit integer, at
/// least one key. The error is one line naming the key and the value, without a prefix
/// (the CLI adds "moat: error: --impair: "), e.g. `loss: "1.5" is not a probability in [0, 1]`.
Result<ImpairSpec, std::string> parse_impair(std::string_view text);

/// Canonical form of a spec, e.g. "loss=0.05,reorder=0,duplicate=0,delay=5ms,jitter=1ms,seed=7"
/// (for the start-up log line). parse_impair(format_impair(s)) == s up to nanosecond rounding.
std::string format_impair(const ImpairSpec& spec);

/// What happens to one frame.
struct FrameFate {
  bool drop = false;
  bool duplicate = false;
  bool reorder = false;
  Duration delay{0};  ///< delay + this frame's jitter, never negative
};

/// The seeded decision stream of one direction. Every frame consumes exactly four draws
/// whatever the outcome, so the fate of frame #n depends only on (seed, direction, n): not
/// on the other direction, not on timing, not on what earlier frames drew.
/// The generator is xoshiro256** (Blackman/Vigna), seeded through splitmix64.
class ImpairDecider {
 public:
  enum class Stream : uint64_t { from_guest = 0, to_guest = 1 };

  ImpairDecider(const ImpairSpec& spec, Stream stream) noexcept;
  FrameFate next() noexcept;

 private:
  uint64_t next_u64() noexcept;
  double next_unit() noexcept;  ///< uniform in [0, 1), 53 bits

  double loss_, reorder_, duplicate_;
  int64_t delay_ns_, jitter_ns_;
  uint64_t s_[4];
};

/// Capacity of the delay store, per direction (the same defaults as the TAP's to-guest
/// queue, R-TR-2). Frames that do not fit are dropped and counted.
struct ImpairLimits {
  size_t max_frames = 1024;
  /// At least kMaxFrameLen, so any single frame fits.
  size_t max_bytes = size_t{8} << 20;

  /// Same caps and reasoning as TapConfig: far above a useful backlog, low enough that a
  /// typo cannot reserve gigabytes.
  static constexpr size_t kMaxFrames = 65536;
  static constexpr size_t kMaxBytes = size_t{256} << 20;
};

/// How ImpairedLink reaches its owner outside receive()/send().
struct ImpairHooks {
  /// Delivers a from-guest frame released later by a timer (delay, or a reorder hold that
  /// no following frame released). Do exactly what the receive() callback does. The span is
  /// valid only during the call. Required as soon as the spec delays or reorders; a frame
  /// released while it is empty is dropped and counted as internal_errors.
  std::function<void(Bytes)> deliver_from_guest;
  /// Optional: called once after a timer released frames in either direction, so the
  /// owner can do its post-I/O work (re-check has_pending_output() for EPOLLOUT, re-arm
  /// the stack's timer), since frames were pushed into the inner transport or the stack
  /// without going through the owner's I/O handler.
  std::function<void()> after_release;
};

/// FrameTransport decorator applying an ImpairSpec to frames in both directions: from-guest
/// frames inside receive(), to-guest frames inside send(). Owns the inner transport
/// (like PcapTap). Loop-thread only.
///
/// Per frame, in order: loss (dropped, impair.dropped) -> duplicate (forwarded twice,
/// impair.duplicated) -> reorder (held in a one-frame slot and forwarded right after the
/// next frame of the same direction, or after kReorderMaxHold if none comes;
/// impair.reordered) -> delay (kept in the direction's FIFO store until now >= arrival +
/// delay ± jitter and then forwarded by a loop timer; impair.delayed). Release times are
/// clamped to be non-decreasing, so delay and jitter never reorder: reordering is only what
/// `reorder` asks for, which keeps the knobs independent and the store a plain FIFO.
///
/// "Forwarded" means: from-guest, the receive() callback when it happens during receive(),
/// else hooks.deliver_from_guest; to-guest, inner->send().
///
/// Drops, counted once each:
/// * impairment loss: impair.dropped. send() still returns true (the wire lost it, the
///   queue did not refuse it).
/// * the delay store is full: the current to-guest frame makes send() return false (the
///   caller counts drop.queue_full, as for any transport); every other frame that finds the
///   store full, or a delayed/held to-guest frame the inner transport refuses later, is
///   counted here as drop.queue_full. output_full() is true while the to-guest store could
///   not take a maximal frame, so TCP pauses instead.
/// A duplicate copy that cannot be forwarded is dropped silently: it was never a guest frame.
///
/// Memory: the delay stores (FrameRings of max_frames entries and max_bytes + kMaxFrameLen
/// bytes, per direction) are allocated in the constructor only when the spec delays, the reorder slots
/// (kMaxFrameLen per direction) only when it reorders. Timers reuse their queue slot and
/// capture two pointers (no std::function allocation), so steady state allocates nothing.
///
/// Lifecycle: constructed (nothing held) -> running (frames may sit in the stores, with at
/// most one delay timer and one hold timer pending per direction) -> destroyed (pending
/// timers are cancelled; held frames are discarded uncounted). The Loop and Counters must
/// outlive it.
class ImpairedLink final : public FrameTransport {
 public:
  /// How long a reordered frame waits for a successor before it is forwarded anyway.
  static constexpr Duration kReorderMaxHold = std::chrono::milliseconds(10);

  /// `limits` outside ImpairLimits' bounds is a programming error (fatal check).
  ImpairedLink(std::unique_ptr<FrameTransport> inner, const ImpairSpec& spec, event::Loop& loop,
               Counters& counters, ImpairHooks hooks = {}, const ImpairLimits& limits = {});
  ~ImpairedLink() override;
  ImpairedLink(const ImpairedLink&) = delete;
  ImpairedLink& operator=(const ImpairedLink&) = delete;

  /// Replaces the hooks, for owners that exist only after the link was built.
  void set_hooks(ImpairHooks hooks) { hooks_ = std::move(hooks); }
  [[nodiscard]] const ImpairSpec& spec() const noexcept { return spec_; }
  [[nodiscard]] FrameTransport& inner() noexcept { return *inner_; }
  /// Frames waiting in the delay store / reorder slot of each direction (tests, stats).
  [[nodiscard]] size_t from_guest_waiting() const noexcept;
  [[nodiscard]] size_t to_guest_waiting() const noexcept;

  [[nodiscard]] int fd() const override { return inner_->fd(); }
  /// Returns the inner transport's count of frames consumed from the link.
  Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) override;
  bool send(Bytes frame) override;
  Status flush() override { return inner_->flush(); }
  /// Only the inner transport's queue: the delay store drains by timer, not on EPOLLOUT.
  [[nodiscard]] bool has_pending_output() const override { return inner_->has_pending_output(); }
  [[nodiscard]] bool output_full() const override;

 private:
  using Sink = FunctionRef<bool(Bytes)>;

  /// FIFO of frames with their release times (FrameRing: each frame contiguous, one maximal
  /// frame of slack so the byte budget is exact). Unallocated unless the spec delays.
  using DelayStore = FrameRing<Instant>;

  /// One direction's state.
  struct Lane {
    Lane(const ImpairSpec& spec, ImpairDecider::Stream stream) noexcept : decider(spec, stream) {}
    ImpairDecider decider;
    bool from_guest = false;
    DelayStore store;
    Instant last_release{};         // release times never go backwards (FIFO)
    std::vector<std::byte> held;    // reorder slot: kMaxFrameLen bytes when reorder > 0
    size_t held_len = 0;
    bool holding = false;
    Duration held_delay{0};
    event::TimerHandle delay_timer;
    event::TimerHandle hold_timer;
  };

  /// Applies one fate to a frame arriving now. Returns false only when the frame itself
  /// (its first copy) was refused by `sink` or by a full store.
  bool admit(Lane& lane, Bytes frame, Sink sink);
  /// Forwards now, or stores until now + delay. false = refused (not counted here).
  bool forward(Lane& lane, Bytes frame, Duration delay, Sink sink);
  /// Forwards the reorder slot's frame and empties it.
  void release_held(Lane& lane, Sink sink);
  void on_delay_timer(Lane& lane);
  void on_hold_timer(Lane& lane);
  /// The sink used outside receive()/send(): hooks.deliver_from_guest or inner->send.
  bool deliver_later(Lane& lane, Bytes frame);
  /// A frame refused by a full store or inner queue that no caller will count.
  void count_lost();

  std::unique_ptr<FrameTransport> inner_;
  ImpairSpec spec_;
  event::Loop& loop_;
  Counters& counters_;
  ImpairHooks hooks_;
  Lane from_guest_;
  Lane to_guest_;
};

}  // namespace moat::transport
