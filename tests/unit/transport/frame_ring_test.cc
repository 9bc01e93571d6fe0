// FrameRing: the placement every transport queue shares (TAP to-guest queue, impairment
// delay store, QEMU stream output, SpscFrameRing). Empty, full by frames and by bytes,
// entries outside 1..max_entry, wrap-around with content intact, the exact byte budget
// against a model, trim_front for stream writes, metadata, and no allocation after
// construction.
#include "transport/frame_ring.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <vector>

#include "base/time.h"
#include "support/alloc_counter.h"
#include "transport/frame_transport.h"

namespace moat::transport {
namespace {

std::vector<std::byte> make_entry(uint32_t seq, size_t len) {
  std::vector<std::byte> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = std::byte(uint8_t(seq * 131 + i * 7));
  return f;
}

bool entry_ok(Bytes f, uint32_t seq, size_t len, size_t skip = 0) {
  if (f.size() != len - skip) return false;
  for (size_t i = 0; i < f.size(); ++i)
    if (f[i] != std::byte(uint8_t(seq * 131 + (i + skip) * 7))) return false;
  return true;
}

TEST(FrameRing, DefaultConstructedIsUnallocatedAndTakesNothing) {
  FrameRing<> r;
  EXPECT_FALSE(r.allocated());
  EXPECT_TRUE(r.empty());
  EXPECT_FALSE(r.can_push(1));
  auto f = make_entry(0, 14);
  EXPECT_FALSE(r.push(f));
}

TEST(FrameRing, EmptyRingHasNothingAndAcceptsAMaximalEntry) {
  FrameRing<> r(4, kMaxFrameLen, kMaxFrameLen);
  EXPECT_TRUE(r.allocated());
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.bytes(), 0u);
  EXPECT_TRUE(r.can_push(kMaxFrameLen));
  EXPECT_EQ(r.capacity_frames(), 4u);
  EXPECT_EQ(r.capacity_bytes(), kMaxFrameLen);
  EXPECT_EQ(r.max_entry(), kMaxFrameLen);
}

TEST(FrameRing, RefusesEmptyAndOversizeEntriesAndStaysUnchanged) {
  FrameRing<> r(4, 4 * kMaxFrameLen, kMaxFrameLen);
  EXPECT_FALSE(r.push(Bytes{}));
  auto big = make_entry(0, kMaxFrameLen + 1);
  EXPECT_FALSE(r.can_push(big.size()));
  EXPECT_FALSE(r.push(big));
  EXPECT_TRUE(r.empty());
  // Header and body together count against max_entry.
  auto body = make_entry(0, kMaxFrameLen);
  std::byte hdr[10] = {};
  EXPECT_FALSE(r.push(Bytes(hdr, sizeof hdr), body));
  EXPECT_TRUE(r.push(body));
  EXPECT_EQ(r.size(), 1u);
}

TEST(FrameRing, FullByFramesRefusesUntilOneIsPopped) {
  FrameRing<> r(3, kMaxFrameLen, kMaxFrameLen);
  for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(r.push(make_entry(i, 100)));
  EXPECT_FALSE(r.can_push(14));
  EXPECT_FALSE(r.push(make_entry(3, 14)));
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r.bytes(), 300u);
  r.pop_front();
  EXPECT_TRUE(r.push(make_entry(3, 14)));
  for (uint32_t i = 1; i < 4; ++i) {
    ASSERT_FALSE(r.empty());
    EXPECT_TRUE(entry_ok(r.front(), i, i == 3 ? 14 : 100));
    r.pop_front();
  }
  EXPECT_TRUE(r.empty());
}

TEST(FrameRing, FullByBytes) {
  FrameRing<> r(100, 1000, 600);
  ASSERT_TRUE(r.push(make_entry(0, 600)));
  EXPECT_TRUE(r.can_push(400));
  EXPECT_FALSE(r.can_push(401));
  EXPECT_FALSE(r.push(make_entry(1, 401)));
  EXPECT_TRUE(r.push(make_entry(1, 400)));
  EXPECT_FALSE(r.can_push(1));
  EXPECT_EQ(r.bytes(), 1000u);
}

TEST(FrameRing, HeadAndBodyAreOneContiguousEntry) {
  FrameRing<> r(4, 1000, 600);
  const std::byte hdr[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
  const std::byte body[2] = {std::byte{4}, std::byte{5}};
  ASSERT_TRUE(r.push(Bytes(hdr, 3), Bytes(body, 2)));
  const Bytes e = r.front();
  ASSERT_EQ(e.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(e[i], std::byte(uint8_t(i + 1)));
}

TEST(FrameRing, WrapsAroundWithContentIntact) {
  // Room for 2.x maximal entries: a third one has to wrap to offset 0.
  FrameRing<> r(8, 2 * kMaxFrameLen, kMaxFrameLen);
  std::deque<std::pair<uint32_t, size_t>> model;
  std::mt19937 rng(11);
  uint32_t seq = 0;
  for (int step = 0; step < 20000; ++step) {
    const size_t len = 1 + rng() % kMaxFrameLen;
    if (r.can_push(len)) {
      ASSERT_TRUE(r.push(make_entry(seq, len))) << step;
      model.emplace_back(seq++, len);
    }
    // Pop one or two, leaving a backlog so the live region wraps.
    for (unsigned k = rng() % 3; k != 0 && !model.empty(); --k) {
      ASSERT_TRUE(entry_ok(r.front(), model.front().first, model.front().second)) << step;
      // entry(i) sees the same entries in order.
      for (size_t i = 0; i < model.size(); ++i)
        ASSERT_EQ(r.entry(i).size(), model[i].second);
      r.pop_front();
      model.pop_front();
    }
  }
  EXPECT_GT(seq, 5000u);
}

// Whatever the wrap state, an entry within the frame and byte budgets is accepted and one
// beyond them is refused: the slack makes the byte budget exact.
TEST(FrameRing, BudgetIsExactWhateverTheWrapState) {
  constexpr size_t kFrames = 32, kBytes = 200000;
  FrameRing<> r(kFrames, kBytes, kMaxFrameLen);
  std::mt19937 rng(3);
  std::deque<std::pair<uint32_t, size_t>> live;
  size_t live_bytes = 0;
  uint32_t seq = 0;
  for (int step = 0; step < 200000; ++step) {
    if (rng() % 2) {
      const size_t len = rng() % 3 ? 14 + rng() % 2000 : 14 + rng() % (kMaxFrameLen - 14);
      const bool fits = live.size() < kFrames && live_bytes + len <= kBytes;
      ASSERT_EQ(r.can_push(len), fits) << step;
      ASSERT_EQ(r.push(make_entry(seq, len)), fits) << step;
      if (fits) {
        live.emplace_back(seq++, len);
        live_bytes += len;
      }
    } else if (!live.empty()) {
      ASSERT_TRUE(entry_ok(r.front(), live.front().first, live.front().second)) << step;
      r.pop_front();
      live_bytes -= live.front().second;
      live.pop_front();
    }
    ASSERT_EQ(r.bytes(), live_bytes);
  }
}

TEST(FrameRing, TrimFrontKeepsTheRestOfAPartlyWrittenEntry) {
  FrameRing<> r(4, 1000, 600);
  ASSERT_TRUE(r.push(make_entry(0, 500)));
  ASSERT_TRUE(r.push(make_entry(1, 300)));
  EXPECT_FALSE(r.can_push(201));
  r.trim_front(100);  // a stream took 100 bytes of the first entry
  EXPECT_EQ(r.bytes(), 700u);
  EXPECT_TRUE(entry_ok(r.front(), 0, 500, 100));
  EXPECT_TRUE(r.can_push(300));  // the budget counts only what is left
  ASSERT_TRUE(r.push(make_entry(2, 300)));
  r.pop_front();
  EXPECT_TRUE(entry_ok(r.front(), 1, 300));
  r.pop_front();
  EXPECT_TRUE(entry_ok(r.front(), 2, 300));
}

TEST(FrameRing, MetadataTravelsWithItsEntry) {
  FrameRing<Instant> r(4, 1000, 600);
  const Instant t0{};
  ASSERT_TRUE(r.push(make_entry(0, 20), t0 + std::chrono::milliseconds(5)));
  ASSERT_TRUE(r.push(make_entry(1, 20), t0 + std::chrono::milliseconds(7)));
  EXPECT_EQ(r.front_meta(), t0 + std::chrono::milliseconds(5));
  r.pop_front();
  EXPECT_EQ(r.front_meta(), t0 + std::chrono::milliseconds(7));
}

TEST(FrameRing, ClearDiscardsEverythingAndKeepsSequenceNumbers) {
  FrameRing<> r(4, 1000, 600);
  ASSERT_TRUE(r.push(make_entry(0, 20)));
  ASSERT_TRUE(r.push(make_entry(1, 20)));
  r.pop_front();
  EXPECT_EQ(r.head_seq(), 1u);
  r.clear();
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.bytes(), 0u);
  EXPECT_EQ(r.head_seq(), 2u);
  ASSERT_TRUE(r.push(make_entry(2, 600)));
  EXPECT_TRUE(entry_ok(r.at(2), 2, 600));
}

TEST(FrameRing, DoesNotAllocateAfterConstruction) {
  FrameRing<Instant> r(16, 4 * kMaxFrameLen, kMaxFrameLen);
  auto big = make_entry(1, kMaxFrameLen);
  auto small = make_entry(2, 60);
  const std::byte hdr[10] = {};
  test::start_counting_allocations();
  for (int i = 0; i < 1000; ++i) {
    (void)r.push(big, Instant{});
    (void)r.push(Bytes(hdr, sizeof hdr), small, Instant{});
    if (r.size() > 3) {
      r.trim_front(1);
      r.pop_front();
      r.pop_front();
    }
  }
  r.clear();
  EXPECT_EQ(test::stop_counting_allocations(), 0u);
}

}  // namespace
}  // namespace moat::transport
