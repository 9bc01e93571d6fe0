#include "transport/impair.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "support/alloc_counter.h"
#include "event/clock.h"
#include "event/loop.h"

namespace moat::transport {
namespace {

using Frame = std::vector<std::byte>;

// A frame whose payload carries its sequence number, so tests can follow order. The
// impairment layer never parses frames, so no real headers are needed.
Frame make_frame(uint32_t id, size_t len = 60) {
  Frame f(len, std::byte{0});
  store_be32(f.data() + 14, id);
  return f;
}
uint32_t id_of(Bytes f) { return load_be32(f.data() + 14); }

/// In-memory inner transport: receive() hands out `from_guest`, send() records into
/// `to_guest` (refusing once `accept_limit` frames were taken).
class FakeLink final : public FrameTransport {
 public:
  std::deque<Frame> from_guest;
  std::vector<Frame> to_guest;
  size_t accept_limit = SIZE_MAX;
  // Allocation-free mode: receive() hands out `repeat` this many times, send() only counts.
  size_t repeat_count = 0;
  Frame repeat;
  bool count_only = false;
  size_t sent_count = 0;

  [[nodiscard]] int fd() const override { return -1; }
  Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) override {
    size_t n = 0;
    for (; n < max_frames && repeat_count != 0; ++n, --repeat_count) on_frame(repeat);
    while (n < max_frames && !from_guest.empty()) {
      Frame f = std::move(from_guest.front());
      from_guest.pop_front();
      on_frame(f);
      ++n;
    }
    return n;
  }
  bool send(Bytes frame) override {
    if (count_only) return ++sent_count, true;
    if (to_guest.size() >= accept_limit) return false;
    to_guest.emplace_back(frame.begin(), frame.end());
    return true;
  }
  Status flush() override { return {}; }
  [[nodiscard]] bool has_pending_output() const override { return false; }
  [[nodiscard]] bool output_full() const override { return to_guest.size() >= accept_limit; }
};

// ---------------------------------------------------------------------------------------
// Parser

TEST(ImpairParse, AcceptsFullSpec) {
  auto r = parse_impair("loss=0.05,delay=5ms,jitter=1ms,seed=7");
  ASSERT_TRUE(r) << r.error();
  EXPECT_DOUBLE_EQ(r->loss, 0.05);
  EXPECT_EQ(r->reorder, 0.0);
  EXPECT_EQ(r->duplicate, 0.0);
  EXPECT_EQ(r->delay, std::chrono::milliseconds(5));
  EXPECT_EQ(r->jitter, std::chrono::milliseconds(1));
  EXPECT_EQ(r->seed, 7u);
}

TEST(ImpairParse, AcceptsEveryKeyAndUnit) {
  auto r = parse_impair("reorder=1,duplicate=0,loss=0.5,delay=0.5s,jitter=250us,seed=18446744073709551615");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->reorder, 1.0);
  EXPECT_EQ(r->loss, 0.5);
  EXPECT_EQ(r->delay, std::chrono::milliseconds(500));
  EXPECT_EQ(r->jitter, std::chrono::microseconds(250));
  EXPECT_EQ(r->seed, UINT64_MAX);
  EXPECT_TRUE(r->delays());

  auto d = parse_impair("seed=3");
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, (ImpairSpec{.seed = 3}));
  EXPECT_FALSE(d->delays());
  EXPECT_EQ(parse_impair("delay=1.5ms")->delay, std::chrono::microseconds(1500));
  EXPECT_EQ(parse_impair("delay=60s")->delay, std::chrono::seconds(60));
}

TEST(ImpairParse, RejectsWithExactMessages) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "empty spec (expected key=value[,key=value...] with keys loss, reorder, duplicate, delay, jitter, seed)"},
      {"loss=1.5", "loss: \"1.5\" is not a probability in [0, 1]"},
      {"loss=-0.1", "loss: \"-0.1\" is not a probability in [0, 1]"},
      {"reorder=nan", "reorder: \"nan\" is not a probability in [0, 1]"},
      {"duplicate=", "duplicate: \"\" is not a probability in [0, 1]"},
      {"loss=0.1x", "loss: \"0.1x\" is not a probability in [0, 1]"},
      {"los=0.1", "unknown key \"los\" (did you mean \"loss\"?)"},
      {"dup=0.1", "unknown key \"dup\" (did you mean \"duplicate\"?)"},
      {"jiter=1ms", "unknown key \"jiter\" (did you mean \"jitter\"?)"},
      {"bandwidth=1", "unknown key \"bandwidth\" (known keys: loss, reorder, duplicate, delay, jitter, seed)"},
      {"loss", "loss: missing \"=VALUE\""},
      {"loss=0.1,loss=0.2", "loss: given twice (\"0.1\" and \"0.2\")"},
      {"loss=0.1,", "empty item in \"loss=0.1,\" (stray ',')"},
      {",loss=0.1", "empty item in \",loss=0.1\" (stray ',')"},
      {"delay=5", "delay: \"5\" is not a duration (a number with unit us, ms or s, e.g. \"5ms\")"},
      {"delay=ms", "delay: \"ms\" is not a duration (a number with unit us, ms or s, e.g. \"5ms\")"},
      {"jitter=-1ms", "jitter: \"-1ms\" is not a duration (a number with unit us, ms or s, e.g. \"5ms\")"},
      {"delay=5 ms", "delay: \"5 ms\" is not a duration (a number with unit us, ms or s, e.g. \"5ms\")"},
      {"delay=61s", "delay: \"61s\" exceeds the maximum of 60s"},
      {"seed=-1", "seed: \"-1\" is not an unsigned 64-bit integer"},
      {"seed=18446744073709551616", "seed: \"18446744073709551616\" is not an unsigned 64-bit integer"},
      {"seed=1.5", "seed: \"1.5\" is not an unsigned 64-bit integer"},
      {"loss = 0.1", "unknown key \"loss \" (did you mean \"loss\"?)"},
  };
  for (const auto& [text, message] : cases) {
    auto r = parse_impair(text);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error(), message) << text;
    EXPECT_EQ(r.error().find('\n'), std::string::npos);
  }
}

TEST(ImpairParse, FormatRoundTrips) {
  auto spec = parse_impair("loss=0.05,reorder=0.1,duplicate=0.02,delay=1.5ms,jitter=250us,seed=9");
  ASSERT_TRUE(spec);
  const std::string text = format_impair(*spec);
  EXPECT_EQ(text, "loss=0.05,reorder=0.1,duplicate=0.02,delay=1500us,jitter=250us,seed=9");
  auto again = parse_impair(text);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(*again, *spec);
}

// ---------------------------------------------------------------------------------------
// Decisions

std::vector<FrameFate> fates(const ImpairSpec& spec, ImpairDecider::Stream stream, size_t n) {
  ImpairDecider d(spec, stream);
  std::vector<FrameFate> out;
  for (size_t i = 0; i < n; ++i) out.push_back(d.next());
  return out;
}
bool same(const std::vector<FrameFate>& a, const std::vector<FrameFate>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].drop != b[i].drop || a[i].duplicate != b[i].duplicate || a[i].reorder != b[i].reorder ||
        a[i].delay != b[i].delay)
      return false;
  return true;
}

TEST(ImpairDecider, SameSeedSameDecisionsDifferentSeedDifferent) {
  const ImpairSpec spec{.loss = 0.3, .reorder = 0.3, .duplicate = 0.3, .delay = 5ms, .jitter = 2ms, .seed = 42};
  using S = ImpairDecider::Stream;
  EXPECT_TRUE(same(fates(spec, S::from_guest, 2000), fates(spec, S::from_guest, 2000)));
  ImpairSpec other = spec;
  other.seed = 43;
  EXPECT_FALSE(same(fates(spec, S::from_guest, 2000), fates(other, S::from_guest, 2000)));
  // The two directions are separate streams.
  EXPECT_FALSE(same(fates(spec, S::from_guest, 2000), fates(spec, S::to_guest, 2000)));
}

TEST(ImpairDecider, JitterStaysInRange) {
  const ImpairSpec spec{.delay = 5ms, .jitter = 2ms, .seed = 1};
  ImpairDecider d(spec, ImpairDecider::Stream::to_guest);
  Duration lo = Duration::max(), hi = Duration::min();
  for (int i = 0; i < 100000; ++i) {
    const Duration x = d.next().delay;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  EXPECT_GE(lo, 3ms);
  EXPECT_LE(hi, 7ms);
  EXPECT_LT(lo, 3100us);  // the whole range is used
  EXPECT_GT(hi, 6900us);
  // Jitter larger than the delay clamps at zero instead of going negative.
  ImpairDecider z(ImpairSpec{.delay = 1ms, .jitter = 5ms}, ImpairDecider::Stream::to_guest);
  for (int i = 0; i < 10000; ++i) EXPECT_GE(z.next().delay, Duration::zero());
}

// ---------------------------------------------------------------------------------------
// ImpairedLink

class ImpairLinkTest : public ::testing::Test {
 protected:
  void make(const ImpairSpec& spec, const ImpairLimits& limits = {}) {
    auto fake = std::make_unique<FakeLink>();
    fake_ = fake.get();
    ImpairHooks hooks;
    hooks.deliver_from_guest = [this](Bytes f) { later_.emplace_back(f.begin(), f.end()); };
    hooks.after_release = [this] { ++after_release_; };
    link_ = std::make_unique<ImpairedLink>(std::move(fake), spec, loop_, counters_, std::move(hooks), limits);
  }
  /// Feeds `n` from-guest frames numbered from `first` and returns the ids delivered at once.
  std::vector<uint32_t> receive_ids(uint32_t first, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) fake_->from_guest.push_back(make_frame(first + i));
    std::vector<uint32_t> ids;
    while (!fake_->from_guest.empty()) {
      auto r = link_->receive([&](Bytes f) { ids.push_back(id_of(f)); }, kMaxFramesPerWakeup);
      EXPECT_TRUE(r);
    }
    return ids;
  }
  std::vector<uint32_t> sent_ids() const {
    std::vector<uint32_t> ids;
    for (const Frame& f : fake_->to_guest) ids.push_back(id_of(f));
    return ids;
  }
  std::vector<uint32_t> later_ids() const {
    std::vector<uint32_t> ids;
    for (const Frame& f : later_) ids.push_back(id_of(f));
    return ids;
  }
  void advance(Duration d) {
    clock_.advance(d);
    loop_.run_once(Duration::zero());
  }

  event::FakeClock clock_;
  event::Loop loop_{clock_};
  Counters counters_;
  FakeLink* fake_ = nullptr;
  std::vector<Frame> later_;
  int after_release_ = 0;
  std::unique_ptr<ImpairedLink> link_;  // declared last: destroyed before the loop
};

TEST_F(ImpairLinkTest, NoImpairmentForwardsUnchanged) {
  make(ImpairSpec{.seed = 5});
  EXPECT_EQ(receive_ids(0, 100).size(), 100u);
  for (uint32_t i = 0; i < 100; ++i) EXPECT_TRUE(link_->send(make_frame(i)));
  EXPECT_EQ(fake_->to_guest.size(), 100u);
  EXPECT_EQ(loop_.timer_count(), 0u);
}

TEST_F(ImpairLinkTest, LossRateWithinToleranceBothDirections) {
  constexpr uint32_t kFrames = 100000;
  make(ImpairSpec{.loss = 0.05, .seed = 11});
  const size_t delivered = receive_ids(0, kFrames).size();
  for (uint32_t i = 0; i < kFrames; ++i) EXPECT_TRUE(link_->send(make_frame(i)));  // loss is not refusal
  const size_t sent = fake_->to_guest.size();
  // sigma = sqrt(n p (1 - p)) ~= 69 frames; 0.5 % is ~7 sigma.
  EXPECT_NEAR(static_cast<double>(kFrames - delivered) / kFrames, 0.05, 0.005);
  EXPECT_NEAR(static_cast<double>(kFrames - sent) / kFrames, 0.05, 0.005);
  EXPECT_EQ(counters_.get(Counter::impair_dropped), (kFrames - delivered) + (kFrames - sent));
  EXPECT_EQ(counters_.total_drops(), 0u);  // impairment loss is not a drop.* reason
}

TEST_F(ImpairLinkTest, SameSeedSameOutputIndependentOfInterleaving) {
  const ImpairSpec spec{.loss = 0.1, .reorder = 0.1, .duplicate = 0.1, .seed = 99};
  auto run = [&](const ImpairSpec& s, bool interleave) {
    make(s);
    std::vector<uint32_t> from_guest;
    if (interleave) {
      for (uint32_t i = 0; i < 1000; ++i) {
        auto ids = receive_ids(i, 1);
        from_guest.insert(from_guest.end(), ids.begin(), ids.end());
        (void)link_->send(make_frame(i));
      }
    } else {
      for (uint32_t i = 0; i < 1000; ++i) (void)link_->send(make_frame(i));
      from_guest = receive_ids(0, 1000);
    }
    auto out = std::make_pair(from_guest, sent_ids());
    link_.reset();
    return out;
  };
  const auto a = run(spec, false);
  const auto b = run(spec, true);
  EXPECT_EQ(a, b);
  ImpairSpec other = spec;
  other.seed = 100;
  const auto c = run(other, false);
  EXPECT_NE(a.first, c.first);
  EXPECT_NE(a.second, c.second);
}

TEST_F(ImpairLinkTest, DuplicateDeliversTwice) {
  make(ImpairSpec{.duplicate = 1});
  EXPECT_EQ(receive_ids(0, 3), (std::vector<uint32_t>{0, 0, 1, 1, 2, 2}));
  EXPECT_TRUE(link_->send(make_frame(7)));
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{7, 7}));
  EXPECT_EQ(counters_.get(Counter::impair_duplicated), 4u);
}

TEST_F(ImpairLinkTest, DuplicateRate) {
  make(ImpairSpec{.duplicate = 0.1, .seed = 3});
  const size_t n = receive_ids(0, 20000).size();
  EXPECT_NEAR(static_cast<double>(n - 20000) / 20000, 0.1, 0.01);
  EXPECT_EQ(counters_.get(Counter::impair_duplicated), n - 20000);
}

TEST_F(ImpairLinkTest, ReorderSwapsWithTheNextFrame) {
  // reorder=1: frame 0 is held, frame 1 finds the slot taken and goes out, then 0; and so on.
  make(ImpairSpec{.reorder = 1});
  EXPECT_EQ(receive_ids(0, 6), (std::vector<uint32_t>{1, 0, 3, 2, 5, 4}));
  for (uint32_t i = 0; i < 4; ++i) EXPECT_TRUE(link_->send(make_frame(i)));
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{1, 0, 3, 2}));
  EXPECT_EQ(counters_.get(Counter::impair_reordered), 5u);
  EXPECT_EQ(loop_.timer_count(), 0u);  // hold timers were cancelled by the successors
}

TEST_F(ImpairLinkTest, ReorderRateIsObservable) {
  make(ImpairSpec{.reorder = 0.1, .seed = 8});
  auto ids = receive_ids(0, 10000);
  advance(ImpairedLink::kReorderMaxHold);  // a last frame may still be held
  for (uint32_t id : later_ids()) ids.push_back(id);
  ASSERT_EQ(ids.size(), 10000u);
  size_t inversions = 0;
  for (size_t i = 1; i < ids.size(); ++i) inversions += ids[i] < ids[i - 1];
  // Each held frame makes one inversion, except one released at the very end.
  const uint64_t reordered = counters_.get(Counter::impair_reordered);
  EXPECT_TRUE(inversions == reordered || inversions + 1 == reordered) << inversions << " vs " << reordered;
  EXPECT_NEAR(static_cast<double>(inversions) / 10000, 0.1, 0.015);
}

TEST_F(ImpairLinkTest, HeldFrameWithoutSuccessorIsReleasedByTimer) {
  make(ImpairSpec{.reorder = 1});
  EXPECT_TRUE(receive_ids(0, 1).empty());
  EXPECT_TRUE(link_->send(make_frame(9)));
  EXPECT_TRUE(fake_->to_guest.empty());
  EXPECT_EQ(link_->from_guest_waiting(), 1u);
  advance(ImpairedLink::kReorderMaxHold - 1ms);
  EXPECT_TRUE(later_.empty());
  advance(1ms);
  EXPECT_EQ(later_ids(), (std::vector<uint32_t>{0}));
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{9}));
  EXPECT_EQ(after_release_, 2);
  EXPECT_EQ(link_->from_guest_waiting() + link_->to_guest_waiting(), 0u);
}

TEST_F(ImpairLinkTest, DelayHoldsFramesUntilTheClockPasses) {
  make(ImpairSpec{.delay = 5ms});
  EXPECT_TRUE(receive_ids(0, 3).empty());  // nothing delivered during receive()
  for (uint32_t i = 10; i < 13; ++i) EXPECT_TRUE(link_->send(make_frame(i)));
  EXPECT_TRUE(fake_->to_guest.empty());
  EXPECT_EQ(counters_.get(Counter::impair_delayed), 6u);
  advance(4ms);
  EXPECT_TRUE(later_.empty());
  EXPECT_TRUE(fake_->to_guest.empty());
  // A frame sent 4 ms in is due 5 ms later, not with the first batch.
  EXPECT_TRUE(link_->send(make_frame(13)));
  advance(1ms);
  EXPECT_EQ(later_ids(), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{10, 11, 12}));
  EXPECT_GE(after_release_, 1);
  advance(3ms);
  EXPECT_EQ(sent_ids().size(), 3u);
  advance(1ms);
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{10, 11, 12, 13}));
  EXPECT_EQ(loop_.timer_count(), 0u);
}

TEST_F(ImpairLinkTest, JitterNeverReordersDelayedFrames) {
  make(ImpairSpec{.delay = 5ms, .jitter = 5ms, .seed = 4});
  for (uint32_t i = 0; i < 1000; ++i) {
    EXPECT_TRUE(link_->send(make_frame(i)));
    advance(50us);
  }
  advance(20ms);
  const auto ids = sent_ids();
  ASSERT_EQ(ids.size(), 1000u);
  for (uint32_t i = 0; i < 1000; ++i) EXPECT_EQ(ids[i], i);
}

TEST_F(ImpairLinkTest, ReorderAndDelayCompose) {
  make(ImpairSpec{.reorder = 1, .delay = 1ms});
  for (uint32_t i = 0; i < 4; ++i) EXPECT_TRUE(link_->send(make_frame(i)));
  EXPECT_TRUE(fake_->to_guest.empty());
  advance(1ms);
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{1, 0, 3, 2}));
}

TEST_F(ImpairLinkTest, DelayStoreIsBoundedByFrames) {
  make(ImpairSpec{.delay = 1ms}, ImpairLimits{.max_frames = 4});
  for (uint32_t i = 0; i < 4; ++i) EXPECT_TRUE(link_->send(make_frame(i)));
  EXPECT_TRUE(link_->output_full());
  for (uint32_t i = 4; i < 10; ++i) EXPECT_FALSE(link_->send(make_frame(i)));  // caller counts queue_full
  EXPECT_TRUE(receive_ids(0, 10).empty());
  EXPECT_EQ(counters_.dropped(DropReason::queue_full), 6u);  // from-guest overflow, counted here
  EXPECT_EQ(link_->from_guest_waiting(), 4u);
  advance(1ms);
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(later_ids(), (std::vector<uint32_t>{0, 1, 2, 3}));
  EXPECT_FALSE(link_->output_full());
}

TEST_F(ImpairLinkTest, DelayStoreIsBoundedByBytesAndWraps) {
  // max_bytes = one maximal frame: three 20000-byte frames fit, a fourth does not.
  make(ImpairSpec{.delay = 1ms}, ImpairLimits{.max_frames = 1024, .max_bytes = kMaxFrameLen});
  for (uint32_t round = 0; round < 5; ++round) {
    for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE(link_->send(make_frame(round * 10 + i, 20000)));
    EXPECT_FALSE(link_->send(make_frame(99, 20000)));
    EXPECT_TRUE(link_->output_full());
    advance(1ms);
    ASSERT_EQ(fake_->to_guest.size(), 3u * (round + 1));
    EXPECT_EQ(id_of(fake_->to_guest.back()), round * 10 + 2);
    EXPECT_EQ(fake_->to_guest.back().size(), 20000u);
  }
}

TEST_F(ImpairLinkTest, DelayedFrameRefusedByInnerIsCounted) {
  make(ImpairSpec{.delay = 1ms});
  fake_->accept_limit = 1;
  EXPECT_TRUE(link_->send(make_frame(0)));
  EXPECT_TRUE(link_->send(make_frame(1)));
  EXPECT_FALSE(link_->output_full());  // nothing reached the inner transport yet
  advance(1ms);
  EXPECT_EQ(sent_ids(), (std::vector<uint32_t>{0}));
  EXPECT_EQ(counters_.dropped(DropReason::queue_full), 1u);
  EXPECT_TRUE(link_->output_full());  // the inner queue's state shows through
}

TEST_F(ImpairLinkTest, MissingHookIsAnInternalError) {
  make(ImpairSpec{.delay = 1ms});
  link_->set_hooks({});
  EXPECT_TRUE(receive_ids(0, 2).empty());
  advance(1ms);
  EXPECT_EQ(counters_.get(Counter::internal_errors), 2u);
}

TEST_F(ImpairLinkTest, PendingTimersAreCancelledOnDestruction) {
  make(ImpairSpec{.reorder = 1, .delay = 1ms});
  EXPECT_TRUE(link_->send(make_frame(0)));
  EXPECT_TRUE(link_->send(make_frame(1)));
  EXPECT_TRUE(link_->send(make_frame(2)));  // held: hold timer + delay timer pending
  EXPECT_EQ(loop_.timer_count(), 2u);
  link_.reset();
  EXPECT_EQ(loop_.timer_count(), 0u);
}

TEST_F(ImpairLinkTest, SteadyStateDoesNotAllocate) {
  make(ImpairSpec{.loss = 0.05, .reorder = 0.1, .duplicate = 0.02, .delay = 1ms, .jitter = 500us, .seed = 2});
  size_t from_guest_delivered = 0;
  ImpairHooks hooks;
  hooks.deliver_from_guest = [&](Bytes) { ++from_guest_delivered; };
  link_->set_hooks(std::move(hooks));
  fake_->count_only = true;
  fake_->repeat = make_frame(1, 1500);
  const Frame to_guest = make_frame(2, 1500);
  auto run = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      fake_->repeat_count = 8;
      (void)link_->receive([](Bytes) {}, kMaxFramesPerWakeup);
      for (int k = 0; k < 8; ++k) (void)link_->send(to_guest);
      advance(100us);
    }
  };
  run(2000);  // warm-up: timer slots and heap reach their working size
  test::start_counting_allocations();
  run(20000);
  EXPECT_EQ(test::stop_counting_allocations(), 0u);
  EXPECT_GT(from_guest_delivered, 100000u);
  EXPECT_GT(fake_->sent_count, 100000u);
  EXPECT_GT(counters_.get(Counter::impair_reordered), 0u);
}

}  // namespace
}  // namespace moat::transport
