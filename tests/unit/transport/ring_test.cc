// SpscFrameRing / RingTransport (R-TR-7): ordering, wrap-around, the frame and byte budgets,
// EAGAIN/ENOSPC semantics, the eventfd wake-up protocol, and a concurrent
// producer/consumer run.
#include "transport/ring.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

namespace moat::transport {
namespace {

/// A frame of `len` bytes whose content encodes `seq` (checked by expect_frame).
std::vector<std::byte> make_frame(uint32_t seq, size_t len) {
  std::vector<std::byte> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = std::byte(uint8_t(seq * 131 + i * 7));
  return f;
}

bool frame_ok(Bytes f, uint32_t seq, size_t len) {
  if (f.size() != len) return false;
  for (size_t i = 0; i < len; ++i)
    if (f[i] != std::byte(uint8_t(seq * 131 + i * 7))) return false;
  return true;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

std::unique_ptr<SpscFrameRing> ring(size_t frames, size_t bytes) {
  auto r = SpscFrameRing::create(RingConfig{frames, bytes});
  EXPECT_TRUE(r.has_value());
  return std::move(r).value();
}

TEST(SpscFrameRing, RejectsConfigOutsideCaps) {
  EXPECT_FALSE(SpscFrameRing::create(RingConfig{0, 1 << 20}).has_value());
  EXPECT_FALSE(SpscFrameRing::create(RingConfig{RingConfig::kMaxFrames + 1, 1 << 20}).has_value());
  EXPECT_FALSE(SpscFrameRing::create(RingConfig{16, kMaxFrameLen - 1}).has_value());
  EXPECT_FALSE(SpscFrameRing::create(RingConfig{16, RingConfig::kMaxBytes + 1}).has_value());
  EXPECT_TRUE(SpscFrameRing::create(RingConfig{1, kMaxFrameLen}).has_value());
}

TEST(SpscFrameRing, FifoOrderAcrossManyWrapArounds) {
  auto r = ring(8, 3 * kMaxFrameLen);
  std::mt19937 rng(7);
  uint32_t pushed = 0, popped = 0;
  std::vector<size_t> lens;
  size_t total = 0;
  // Keep it 0..5 frames deep with sizes up to 30000 B (always within the budget): the byte
  // ring (4 * 65550 B) wraps many times over ~60 MB of traffic.
  while (popped < 4000) {
    bool push = r->size() == 0 || (r->size() < 5 && rng() % 2);
    if (push) {
      size_t len = 14 + rng() % 30000;
      auto f = make_frame(pushed, len);
      ASSERT_TRUE(r->try_push(f)) << "frame " << pushed << " len " << len << " depth " << r->size();
      lens.push_back(len);
      total += len;
      ++pushed;
    } else {
      auto f = r->front();
      ASSERT_TRUE(f.has_value());
      ASSERT_TRUE(frame_ok(*f, popped, lens[popped])) << "frame " << popped;
      r->pop();
      ++popped;
    }
  }
  EXPECT_GT(total, 50u * (kMaxFrameLen * 4));
}

TEST(SpscFrameRing, FullByFramesRefusesAndLeavesRingUnchanged) {
  auto r = ring(4, kMaxFrameLen);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(r->try_push(make_frame(i, 100)));
  EXPECT_FALSE(r->can_accept(100));
  EXPECT_FALSE(r->try_push(make_frame(99, 100)));
  EXPECT_EQ(r->size(), 4u);
  ASSERT_TRUE(frame_ok(*r->front(), 0, 100));
  r->pop();
  EXPECT_TRUE(r->try_push(make_frame(4, 100)));
  for (uint32_t i = 1; i <= 4; ++i) {
    auto f = r->front();
    ASSERT_TRUE(f && frame_ok(*f, i, 100)) << i;
    r->pop();
  }
  EXPECT_FALSE(r->front().has_value());
}

TEST(SpscFrameRing, FullByBytes) {
  auto r = ring(64, kMaxFrameLen);  // budget 65550 B
  ASSERT_TRUE(r->try_push(make_frame(0, 30000)));
  ASSERT_TRUE(r->try_push(make_frame(1, 30000)));
  EXPECT_FALSE(r->try_push(make_frame(2, 30000)));  // 90000 > 65550
  EXPECT_TRUE(r->try_push(make_frame(2, 5550)));    // exactly the budget
  EXPECT_FALSE(r->try_push(make_frame(3, 14)));
  r->pop();
  EXPECT_TRUE(r->try_push(make_frame(3, 30000)));
}

TEST(SpscFrameRing, RejectsEmptyAndOversizeFrames) {
  auto r = ring(4, kMaxFrameLen);
  EXPECT_FALSE(r->try_push(Bytes{}));
  auto big = make_frame(0, kMaxFrameLen + 1);
  EXPECT_FALSE(r->try_push(big));
  auto max = make_frame(0, kMaxFrameLen);
  EXPECT_TRUE(r->try_push(max));
}

// The byte budget is exact: whatever the wrap state, a frame that fits the frame and
// byte budgets is accepted and one that does not is refused.
TEST(SpscFrameRing, BudgetIsExactWhateverTheWrapState) {
  constexpr size_t kFrames = 32, kBytes = 200000;
  auto r = ring(kFrames, kBytes);
  std::mt19937 rng(3);
  std::vector<size_t> live;  // model: lengths in FIFO order
  size_t live_bytes = 0, head = 0;
  uint32_t seq_in = 0, seq_out = 0;
  for (int step = 0; step < 200000; ++step) {
    if (rng() % 2) {
      size_t len = rng() % 3 ? 14 + rng() % 2000 : 14 + rng() % (kMaxFrameLen - 14);
      bool fits = live.size() - head < kFrames && live_bytes + len <= kBytes;
      ASSERT_EQ(r->try_push(make_frame(seq_in, len)), fits) << "step " << step;
      if (fits) {
        live.push_back(len);
        live_bytes += len;
        ++seq_in;
      }
    } else if (head < live.size()) {
      auto f = r->front();
      ASSERT_TRUE(f && frame_ok(*f, seq_out, live[head])) << "step " << step;
      r->pop();
      live_bytes -= live[head++];
      ++seq_out;
    }
  }
}

TEST(SpscFrameRing, WasDrainedTellsWhenTheConsumerMayBeAsleep) {
  auto r = ring(8, kMaxFrameLen);
  bool d = false;
  ASSERT_TRUE(r->try_push(make_frame(0, 50), &d));
  EXPECT_TRUE(d);
  ASSERT_TRUE(r->try_push(make_frame(1, 50), &d));
  EXPECT_FALSE(d);
  r->pop();
  r->pop();
  ASSERT_TRUE(r->try_push(make_frame(2, 50), &d));
  EXPECT_TRUE(d);
}

TEST(SpscFrameRing, ConcurrentProducerAndConsumerKeepOrderAndContent) {
  auto r = ring(64, 256 * 1024);
  constexpr uint32_t kN = 200000;
  auto len_of = [](uint32_t seq) { return size_t(14 + (seq * 2654435761u) % 9000); };
  std::thread producer([&] {
    for (uint32_t i = 0; i < kN;) {
      auto f = make_frame(i, len_of(i));
      while (!r->try_push(f)) std::this_thread::yield();
      ++i;
    }
  });
  uint32_t bad = 0;
  for (uint32_t i = 0; i < kN;) {
    auto f = r->front();
    if (!f) {
      std::this_thread::yield();
      continue;
    }
    if (!frame_ok(*f, i, len_of(i))) ++bad;
    r->pop();
    ++i;
  }
  producer.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_FALSE(r->front().has_value());
}

// --- RingTransport

struct RingFixture : ::testing::Test {
  Counters counters;
  std::unique_ptr<RingTransport> t;
  void make(size_t frames = 8, size_t bytes = kMaxFrameLen) {
    auto r = RingTransport::create(counters, RingConfig{frames, bytes}, RingConfig{frames, bytes});
    ASSERT_TRUE(r.has_value());
    t = std::move(r).value();
  }
  std::vector<std::vector<std::byte>> receive_all(size_t max = kMaxFramesPerWakeup) {
    std::vector<std::vector<std::byte>> got;
    auto n = t->receive([&](Bytes f) { got.emplace_back(f.begin(), f.end()); }, max);
    EXPECT_TRUE(n.has_value());
    return got;
  }
};

TEST_F(RingFixture, PushWakesTheLoopAndReceiveDeliversInOrder) {
  make();
  EXPECT_FALSE(readable(t->fd()));
  for (uint32_t i = 0; i < 3; ++i) ASSERT_EQ(t->push_from_guest(make_frame(i, 60 + i)), RingTransport::PushResult::ok);
  EXPECT_TRUE(readable(t->fd()));
  auto got = receive_all();
  ASSERT_EQ(got.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE(frame_ok(got[i], i, 60 + i));
  EXPECT_FALSE(readable(t->fd()));
  EXPECT_EQ(counters.get(Counter::link_from_guest_frames), 3u);
  EXPECT_EQ(counters.get(Counter::link_from_guest_bytes), 60u + 61 + 62);
}

TEST_F(RingFixture, FullFromGuestRingRefusesWithoutTakingTheFrame) {
  make(4);
  for (uint32_t i = 0; i < 4; ++i) ASSERT_EQ(t->push_from_guest(make_frame(i, 100)), RingTransport::PushResult::ok);
  EXPECT_EQ(t->push_from_guest(make_frame(4, 100)), RingTransport::PushResult::full);
  auto got = receive_all();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(frame_ok(got[3], 3, 100));
  EXPECT_EQ(counters.total_drops(), 0u);
}

TEST_F(RingFixture, BadLengthsAreCountedAsRuntAndOversize) {
  make();
  EXPECT_EQ(t->push_from_guest(make_frame(0, 13)), RingTransport::PushResult::invalid);
  EXPECT_EQ(t->push_from_guest(make_frame(0, kMaxFrameLen + 1)), RingTransport::PushResult::invalid);
  EXPECT_EQ(t->push_from_guest(make_frame(0, 14)), RingTransport::PushResult::ok);
  auto got = receive_all();
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(counters.dropped(DropReason::runt), 1u);
  EXPECT_EQ(counters.dropped(DropReason::oversize), 1u);
}

// R-TR-6: with a virtio-net header, send_offloaded() writes it in front of the frame,
// send() writes an all-zero one, pushes and pulls count it in their lengths, and
// guest_offloads() is what the embedder declared.
TEST_F(RingFixture, VirtioNetHeaderIsWrittenInFrontAndCountedInLengths) {
  EXPECT_FALSE(RingTransport::create(counters, {}, {}, RingLinkConfig{11, 0}).has_value());
  EXPECT_FALSE(RingTransport::create(counters, {}, {}, RingLinkConfig{0, kOffloadCsum}).has_value());
  auto r = RingTransport::create(counters, RingConfig{8, 2 * kMaxFrameLen}, RingConfig{8, 2 * kMaxFrameLen},
                                 RingLinkConfig{kVnetHdrV1, kOffloadCsum | kOffloadTso4});
  ASSERT_TRUE(r.has_value());
  t = std::move(r).value();
  EXPECT_EQ(t->guest_offloads(), kOffloadCsum | kOffloadTso4);

  auto frame = make_frame(7, 100);
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kVnetGsoTcpv4;
  h.hdr_len = 54;
  h.gso_size = 1448;
  h.csum_start = 34;
  h.csum_offset = 16;
  ASSERT_TRUE(t->send_offloaded(Bytes(frame.data(), frame.size()), h));
  ASSERT_TRUE(t->send(Bytes(frame.data(), frame.size())));
  std::vector<std::byte> buf(200);
  size_t len = 0;
  ASSERT_EQ(t->pull_to_guest(MutBytes(buf.data(), 50), &len), RingTransport::PullResult::too_small);
  EXPECT_EQ(len, kVnetHdrV1 + 100);
  ASSERT_EQ(t->pull_to_guest(MutBytes(buf.data(), buf.size()), &len), RingTransport::PullResult::ok);
  ASSERT_EQ(len, kVnetHdrV1 + 100);
  VnetHeader back = VnetHeader::parse(Bytes(buf.data(), kVnetHdrV1));
  EXPECT_EQ(back.flags, h.flags);
  EXPECT_EQ(back.gso_type, h.gso_type);
  EXPECT_EQ(back.gso_size, h.gso_size);
  EXPECT_EQ(back.csum_start, h.csum_start);
  EXPECT_EQ(back.csum_offset, h.csum_offset);
  EXPECT_EQ(buf[10], std::byte{0});  // num_buffers
  EXPECT_EQ(buf[11], std::byte{0});
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), buf.begin() + kVnetHdrV1));
  ASSERT_EQ(t->pull_to_guest(MutBytes(buf.data(), buf.size()), &len), RingTransport::PullResult::ok);
  EXPECT_TRUE(std::all_of(buf.begin(), buf.begin() + kVnetHdrV1, [](std::byte b) { return b == std::byte{0}; }));

  // From the guest: header + frame; the frame alone reaches the stack. A maximal frame fits
  // with its header; lengths are checked without it.
  std::vector<std::byte> in(kVnetHdrV1, std::byte{0});
  in.insert(in.end(), frame.begin(), frame.end());
  ASSERT_EQ(t->push_from_guest(Bytes(in.data(), in.size())), RingTransport::PushResult::ok);
  std::vector<std::byte> max_in(kVnetHdrV1 + kMaxFrameLen, std::byte{0});
  max_in[kVnetHdrV1 + 12] = std::byte{0x08};  // EtherType IPv4 (the content does not matter here)
  ASSERT_EQ(t->push_from_guest(Bytes(max_in.data(), max_in.size())), RingTransport::PushResult::ok);
  EXPECT_EQ(t->push_from_guest(Bytes(max_in.data(), kVnetHdrV1 + 13)), RingTransport::PushResult::invalid);
  max_in.push_back(std::byte{0});
  EXPECT_EQ(t->push_from_guest(Bytes(max_in.data(), max_in.size())), RingTransport::PushResult::invalid);
  auto got = receive_all();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(frame_ok(got[0], 7, 100));
  EXPECT_EQ(got[1].size(), kMaxFrameLen);
  EXPECT_EQ(counters.dropped(DropReason::runt), 1u);
  EXPECT_EQ(counters.dropped(DropReason::oversize), 1u);
}

TEST_F(RingFixture, BatchLimitLeavesTheWakeUpArmed) {
  make(16);
  for (uint32_t i = 0; i < 10; ++i) ASSERT_EQ(t->push_from_guest(make_frame(i, 80)), RingTransport::PushResult::ok);
  EXPECT_EQ(receive_all(4).size(), 4u);
  EXPECT_TRUE(readable(t->fd()));
  EXPECT_EQ(receive_all(4).size(), 4u);
  EXPECT_TRUE(readable(t->fd()));
  EXPECT_EQ(receive_all(4).size(), 2u);
  EXPECT_FALSE(readable(t->fd()));
}

TEST_F(RingFixture, PullSemantics) {
  make();
  EXPECT_FALSE(readable(t->to_guest_fd()));
  std::vector<std::byte> buf(2000);
  size_t len = 0;
  EXPECT_EQ(t->pull_to_guest(buf, &len), RingTransport::PullResult::empty);
  ASSERT_TRUE(t->send(make_frame(0, 1500)));
  ASSERT_TRUE(t->send(make_frame(1, 90)));
  EXPECT_FALSE(t->has_pending_output());
  EXPECT_TRUE(readable(t->to_guest_fd()));
  // Too small: ENOSPC with the required length; the frame stays at the head.
  EXPECT_EQ(t->pull_to_guest(MutBytes(buf.data(), 1499), &len), RingTransport::PullResult::too_small);
  EXPECT_EQ(len, 1500u);
  EXPECT_TRUE(readable(t->to_guest_fd()));
  ASSERT_EQ(t->pull_to_guest(buf, &len), RingTransport::PullResult::ok);
  EXPECT_TRUE(frame_ok(Bytes(buf.data(), len), 0, 1500));
  ASSERT_EQ(t->pull_to_guest(buf, &len), RingTransport::PullResult::ok);
  EXPECT_TRUE(frame_ok(Bytes(buf.data(), len), 1, 90));
  EXPECT_EQ(t->pull_to_guest(buf, &len), RingTransport::PullResult::empty);
  EXPECT_FALSE(readable(t->to_guest_fd()));  // reset by the empty pull
  ASSERT_TRUE(t->send(make_frame(2, 60)));
  EXPECT_TRUE(readable(t->to_guest_fd()));
  EXPECT_EQ(counters.get(Counter::queue_to_guest_high_water), 2u);
}

TEST_F(RingFixture, FullToGuestRingBlocksOutputUntilThePullWakesTheLoop) {
  make(4, 4 * kMaxFrameLen);  // full by frames; one pull makes room for a maximal frame
  EXPECT_FALSE(t->output_full());
  for (uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(t->send(make_frame(i, 100)));
  EXPECT_TRUE(t->output_full());
  EXPECT_FALSE(t->send(make_frame(4, 100)));
  EXPECT_FALSE(readable(t->fd()));
  std::vector<std::byte> buf(200);
  size_t len = 0;
  ASSERT_EQ(t->pull_to_guest(buf, &len), RingTransport::PullResult::ok);
  EXPECT_TRUE(readable(t->fd()));  // the loop is woken to resume output
  EXPECT_TRUE(receive_all().empty());
  EXPECT_FALSE(t->output_full());
  EXPECT_TRUE(t->send(make_frame(4, 100)));
}

TEST_F(RingFixture, RefusesInvalidToGuestFrames) {
  make();
  EXPECT_FALSE(t->send(make_frame(0, 10)));
  EXPECT_EQ(counters.get(Counter::internal_errors), 1u);
}

// Host thread pushes and pulls while the "loop" thread receives and echoes every frame
// back; everything arrives, in order, with no lost wake-up (each side sleeps in poll()).
TEST_F(RingFixture, ConcurrentEchoThroughBothRingsWithEventfdWakeups) {
  make(32, 1 << 20);
  constexpr uint32_t kN = 50000;
  auto len_of = [](uint32_t seq) { return size_t(14 + (seq * 40503u) % 3000); };
  std::atomic<bool> done{false};
  std::thread loop([&] {
    uint32_t echoed = 0;
    while (echoed < kN) {
      pollfd p{t->fd(), POLLIN, 0};
      ::poll(&p, 1, 1000);
      (void)t->receive(
          [&](Bytes f) {
            while (!t->send(f)) std::this_thread::yield();  // test only: the real loop drops
            ++echoed;
          },
          kMaxFramesPerWakeup);
    }
    done = true;
  });
  std::thread producer([&] {
    for (uint32_t i = 0; i < kN; ++i) {
      auto f = make_frame(i, len_of(i));
      while (t->push_from_guest(f) == RingTransport::PushResult::full) std::this_thread::yield();
    }
  });
  std::vector<std::byte> buf(kMaxFrameLen);
  uint32_t got = 0, bad = 0;
  while (got < kN) {
    size_t len = 0;
    auto r = t->pull_to_guest(buf, &len);
    if (r == RingTransport::PullResult::ok) {
      if (!frame_ok(Bytes(buf.data(), len), got, len_of(got))) ++bad;
      ++got;
      continue;
    }
    pollfd p{t->to_guest_fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) == 0) break;  // a lost wake-up would stop here
  }
  producer.join();
  loop.join();
  EXPECT_EQ(got, kN);
  EXPECT_EQ(bad, 0u);
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace moat::transport
