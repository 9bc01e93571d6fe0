// TapTransport over socketpair(AF_UNIX, SOCK_SEQPACKET): the same one-frame-per-read /
// one-frame-per-write semantics as a TAP fd, without needing CAP_NET_ADMIN.
#include "transport/tap.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "event/loop.h"

namespace moat::transport {
namespace {

// An Ethernet-sized test frame whose first 4 bytes carry a sequence number.
std::vector<std::byte> make_frame(uint32_t seq, size_t len = 60) {
  std::vector<std::byte> f(len, std::byte{0xab});
  store_be32(f.data(), seq);
  return f;
}

class TapTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    ours_fd_ = sv[0];
    guest_.reset(sv[1]);
    // Small buffers so EAGAIN comes quickly and deterministically.
    int sz = 4096;
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }

  std::unique_ptr<TapTransport> make(const TapConfig& cfg = {}) {
    auto r = TapTransport::create(UniqueFd(ours_fd_), counters_, cfg);
    EXPECT_TRUE(r.has_value());
    return r.has_value() ? std::move(r).value() : nullptr;
  }

  void guest_send(Bytes frame) {
    ASSERT_EQ(::send(guest_.get(), frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  }

  // Reads one frame the transport sent; empty when none is waiting.
  std::vector<std::byte> guest_recv() {
    std::vector<std::byte> buf(kMaxFrameLen + 1);
    ssize_t n = ::recv(guest_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) return {};
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

  int ours_fd_ = -1;
  UniqueFd guest_;
  Counters counters_;
};

TEST_F(TapTransportTest, CreateSetsNonBlocking) {
  auto t = make();
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(::fcntl(t->fd(), F_GETFL) & O_NONBLOCK);
  EXPECT_FALSE(t->has_pending_output());
  EXPECT_FALSE(t->output_full());
}

TEST_F(TapTransportTest, CreateRejectsBadConfig) {
  TapConfig cfg;
  cfg.queue_frames = 0;
  auto r = TapTransport::create(UniqueFd(ours_fd_), counters_, cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().value, EINVAL);
  cfg = TapConfig{};
  cfg.queue_bytes = kMaxFrameLen - 1;
  int fd2 = ::dup(guest_.get());
  r = TapTransport::create(UniqueFd(fd2), counters_, cfg);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().value, EINVAL);
}

TEST_F(TapTransportTest, ReceivesAtMost64FramesPerCall) {
  int big = 1 << 20;
  ::setsockopt(ours_fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  auto t = make();
  std::vector<uint32_t> seen;
  for (uint32_t i = 0; i < 100; ++i) guest_send(make_frame(i));
  auto on_frame = [&](Bytes f) {
    EXPECT_EQ(f.size(), 60u);
    seen.push_back(load_be32(f.data()));
  };
  Result<size_t> r = t->receive(on_frame, kMaxFramesPerWakeup);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 64u);
  r = t->receive(on_frame, kMaxFramesPerWakeup);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 36u);  // < max: drained
  r = t->receive(on_frame, kMaxFramesPerWakeup);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 0u);
  ASSERT_EQ(seen.size(), 100u);
  for (uint32_t i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_EQ(counters_.get(Counter::link_from_guest_frames), 100u);
  EXPECT_EQ(counters_.get(Counter::link_from_guest_bytes), 6000u);
}

TEST_F(TapTransportTest, DropsRuntAndOversizeFrames) {
  int big = 1 << 20;
  ::setsockopt(guest_.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  ::setsockopt(ours_fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  auto t = make();
  guest_send(make_frame(1, 13));                 // runt
  guest_send(make_frame(2, kMinFrameLen));       // smallest valid
  guest_send(make_frame(3, kMaxFrameLen));       // largest valid
  guest_send(make_frame(4, kMaxFrameLen + 1));   // oversize
  std::vector<size_t> lens;
  Result<size_t> r = t->receive([&](Bytes f) { lens.push_back(f.size()); }, 64);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 4u);
  EXPECT_EQ(lens, (std::vector<size_t>{kMinFrameLen, kMaxFrameLen}));
  EXPECT_EQ(counters_.dropped(DropReason::runt), 1u);
  EXPECT_EQ(counters_.dropped(DropReason::oversize), 1u);
  EXPECT_EQ(counters_.get(Counter::link_from_guest_frames), 2u);
}

TEST_F(TapTransportTest, PeerClosedIsLinkGone) {
  auto t = make();
  guest_send(make_frame(7));
  guest_.reset();
  int delivered = 0;
  Result<size_t> r = t->receive([&](Bytes) { ++delivered; }, 64);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(is_link_gone(r.error()));
  EXPECT_EQ(delivered, 1);  // frames before the EOF were still delivered
  // Writing to a closed peer must not raise SIGPIPE.
  auto f = make_frame(1);
  EXPECT_FALSE(t->send(f));
}

TEST_F(TapTransportTest, SendWritesImmediatelyWhenWritable) {
  auto t = make();
  auto f = make_frame(42, 100);
  EXPECT_TRUE(t->send(f));
  EXPECT_FALSE(t->has_pending_output());
  EXPECT_EQ(guest_recv(), f);
  EXPECT_EQ(counters_.get(Counter::link_to_guest_frames), 1u);
  EXPECT_EQ(counters_.get(Counter::link_to_guest_bytes), 100u);
}

TEST_F(TapTransportTest, RefusesInvalidLengths) {
  auto t = make();
  auto runt = make_frame(0, 13);
  auto huge = make_frame(0, kMaxFrameLen + 1);
  EXPECT_FALSE(t->send(runt));
  EXPECT_FALSE(t->send(huge));
  EXPECT_EQ(counters_.get(Counter::internal_errors), 2u);
  EXPECT_TRUE(guest_recv().empty());
}

TEST_F(TapTransportTest, QueuesOnEagainDropsWhenFullAndFlushesInOrder) {
  TapConfig cfg;
  cfg.queue_frames = 8;
  auto t = make(cfg);
  uint32_t seq = 0;
  // Fill the peer: the transport writes directly until EAGAIN, then starts queueing.
  while (!t->has_pending_output()) {
    ASSERT_TRUE(t->send(make_frame(seq++, 500)));
    ASSERT_LT(seq, 10000u);
  }
  const uint32_t first_queued = seq - 1;
  while (t->queued_frames() < 8) ASSERT_TRUE(t->send(make_frame(seq++, 500)));
  EXPECT_TRUE(t->output_full());
  EXPECT_FALSE(t->send(make_frame(seq, 500)));  // queue full: dropped (caller counts)
  EXPECT_EQ(t->queued_frames(), 8u);
  EXPECT_EQ(t->queued_bytes(), 8u * 500u);
  EXPECT_EQ(counters_.get(Counter::queue_to_guest_high_water), 8u);

  // Still blocked: flush keeps everything.
  ASSERT_TRUE(t->flush().has_value());
  EXPECT_EQ(t->queued_frames(), 8u);

  // The guest drains; flush writes the backlog; every accepted frame arrives once, in order.
  std::vector<uint32_t> got;
  for (int rounds = 0; rounds < 100 && (t->has_pending_output() || got.size() < seq); ++rounds) {
    for (auto f = guest_recv(); !f.empty(); f = guest_recv()) got.push_back(load_be32(f.data()));
    ASSERT_TRUE(t->flush().has_value());
  }
  EXPECT_FALSE(t->has_pending_output());
  EXPECT_FALSE(t->output_full());
  ASSERT_EQ(got.size(), seq);
  for (uint32_t i = 0; i < seq; ++i) EXPECT_EQ(got[i], i);
  EXPECT_LE(first_queued, seq);
}

TEST_F(TapTransportTest, ByteBudgetLimitsQueue) {
  TapConfig cfg;
  cfg.queue_bytes = kMaxFrameLen;  // the minimum
  auto t = make(cfg);
  uint32_t seq = 0;
  while (!t->has_pending_output()) ASSERT_TRUE(t->send(make_frame(seq++, 1500)));
  // 1500 already queued; 65550 / 1500 = 43 frames fit in total.
  while (t->send(make_frame(seq, 1500))) ++seq;
  EXPECT_EQ(t->queued_frames(), 43u);
  EXPECT_TRUE(t->output_full());
  auto small = make_frame(0, 14);
  EXPECT_TRUE(t->send(small));  // 64500 + 14 still fits the byte budget
}

TEST_F(TapTransportTest, RingWrapsWithMixedSizes) {
  // Random sizes through a small ring with partial drains: content and order survive
  // every wrap position.
  TapConfig cfg;
  cfg.queue_frames = 16;
  cfg.queue_bytes = kMaxFrameLen;
  auto t = make(cfg);
  uint32_t rng = 12345;
  auto next = [&] { return rng = rng * 1103515245u + 12345u; };
  uint32_t sent = 0, expect = 0;
  for (int step = 0; step < 3000; ++step) {
    if (next() % 3 != 0) {
      const size_t len = 14 + (next() >> 8) % 3000;
      auto f = make_frame(sent, len);
      f[len - 1] = static_cast<std::byte>(sent * 7);
      if (t->send(f)) ++sent;
    } else {
      for (int k = 0, n = static_cast<int>(next() % 4); k < n; ++k) {
        auto f = guest_recv();
        if (f.empty()) break;
        ASSERT_EQ(load_be32(f.data()), expect);
        ASSERT_EQ(f.back(), static_cast<std::byte>(expect * 7));
        ++expect;
      }
      ASSERT_TRUE(t->flush().has_value());
    }
  }
  for (int rounds = 0; rounds < 1000 && expect < sent; ++rounds) {
    for (auto f = guest_recv(); !f.empty(); f = guest_recv()) {
      ASSERT_EQ(load_be32(f.data()), expect);
      ++expect;
    }
    ASSERT_TRUE(t->flush().has_value());
  }
  EXPECT_EQ(expect, sent);
  EXPECT_GT(sent, 1000u);
}

TEST_F(TapTransportTest, DrivenByLoopWithEpollout) {
  // The wiring the app does: EPOLLIN -> receive, EPOLLOUT only while output is queued.
  event::FakeClock clock;
  event::Loop loop(clock);
  TapConfig cfg;
  cfg.queue_frames = 64;
  auto t = make(cfg);
  event::Watch w;
  int received = 0;
  auto on_io = [&](uint32_t ev) {
    if (ev & EPOLLIN) {
      ASSERT_TRUE(t->receive([&](Bytes) { ++received; }, kMaxFramesPerWakeup).has_value());
    }
    if (ev & EPOLLOUT) {
      ASSERT_TRUE(t->flush().has_value());
    }
    ASSERT_TRUE(w.modify(EPOLLIN | (t->has_pending_output() ? EPOLLOUT : 0u)).has_value());
  };
  auto r = loop.watch(t->fd(), EPOLLIN, on_io);
  ASSERT_TRUE(r.has_value());
  w = std::move(r).value();

  uint32_t seq = 0;
  while (!t->has_pending_output()) ASSERT_TRUE(t->send(make_frame(seq++, 400)));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(t->send(make_frame(seq++, 400)));
  ASSERT_TRUE(w.modify(EPOLLIN | EPOLLOUT).has_value());
  loop.run_once(std::chrono::milliseconds(0));
  EXPECT_TRUE(t->has_pending_output());  // guest has not read yet

  std::vector<uint32_t> got;
  for (int i = 0; i < 100 && got.size() < seq; ++i) {
    for (auto f = guest_recv(); !f.empty(); f = guest_recv()) got.push_back(load_be32(f.data()));
    loop.run_once(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(got.size(), seq);
  EXPECT_FALSE(t->has_pending_output());
  EXPECT_EQ(w.events(), uint32_t{EPOLLIN});

  guest_send(make_frame(1));
  loop.run_once(std::chrono::milliseconds(100));
  EXPECT_EQ(received, 1);
  w.reset();
}

}  // namespace
}  // namespace moat::transport
