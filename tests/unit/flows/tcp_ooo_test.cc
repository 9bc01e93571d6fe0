// The out-of-order queue for guest -> upstream payload (R-TCP-8 bounded reordering queue):
// OooQueue / OooPool on their own, TcpConn driven by hand on a scripted peer, and the
// TcpEngine with real host sockets.
#include <string>

#include "flows/tcp_conn.h"
#include "tcp_engine_fixture.h"

namespace moat::flows::test {
namespace {

namespace tf = wire::tcp_flags;
using wire::SeqNum;
using wire::TcpRepr;

/// Byte at stream offset i: a pattern that shows misplaced bytes.
std::byte pat(size_t i) { return std::byte(uint8_t('A' + (i * 7 + i / 26) % 26)); }
Buf pattern(size_t from, size_t n) {
  Buf b(n);
  for (size_t i = 0; i < n; ++i) b[i] = pat(from + i);
  return b;
}
std::string pattern_str(size_t from, size_t n) { return str(pattern(from, n)); }

/// Upstream that takes at most `budget` more bytes (partial writes on demand).
class ScriptedPeer final : public TcpPeer {
 public:
  std::string got;
  size_t budget = SIZE_MAX;
  size_t window = 1 << 20;
  bool shut = false, aborted = false;

  size_t readable() override { return 0; }
  [[nodiscard]] bool read_closed() const override { return false; }
  Result<size_t> peek(size_t, MutBytes) override { return size_t{0}; }
  Status consume(size_t) override { return {}; }
  size_t writable() override { return window; }
  Result<size_t> write(Bytes data) override {
    const size_t n = std::min(data.size(), budget);
    got.append(reinterpret_cast<const char*>(data.data()), n);
    if (budget != SIZE_MAX) budget -= n;
    return n;
  }
  void shutdown_write() override { shut = true; }
  void abort() override { aborted = true; }
};

// ---- OooQueue on its own ----------------------------------------------------------------

TEST(OooQueue, MergesOverlapsAndDrainsInOrder) {
  OooPool pool(4 * OooPool::kChunkSize);
  OooQueue q;
  q.set_pool(&pool);
  const SeqNum base{0xfffffff0u};  // wraps inside the queue
  const SeqNum limit = base + 100000;
  auto put = [&](size_t off, size_t n) { return q.insert(base, limit, base + uint32_t(off), Bytes(pattern(off, n))); };
  EXPECT_EQ(put(200, 100), OooQueue::Insert::Stored);        // [200,300)
  EXPECT_EQ(put(150, 100), OooQueue::Insert::Stored);        // [150,300)
  EXPECT_EQ(put(160, 80), OooQueue::Insert::Duplicate);      // inside
  EXPECT_EQ(put(400, 100), OooQueue::Insert::Stored);        // [150,300) [400,500)
  EXPECT_EQ(q.ranges(), 2u);
  EXPECT_EQ(q.stored_bytes(), 250u);
  EXPECT_EQ(put(290, 120), OooQueue::Insert::Stored);        // bridges: [150,500)
  EXPECT_EQ(q.ranges(), 1u);
  EXPECT_EQ(q.stored_bytes(), 350u);
  EXPECT_EQ(put(500, 10), OooQueue::Insert::Stored);         // adjacent: [150,510)
  EXPECT_EQ(q.ranges(), 1u);
  EXPECT_TRUE(q.contiguous(base).empty());                   // hole [0,150)
  // rcv_nxt reaches 150: everything after it is contiguous.
  const SeqNum at = base + 150;
  q.advance(at);
  Bytes b = q.contiguous(at);
  EXPECT_EQ(str(Buf(b.begin(), b.end())), pattern_str(150, 360));
  q.advance(at + uint32_t(b.size()));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(pool.chunks_in_use(), 0u);
}

TEST(OooQueue, SpansChunksAndSlidesTheRing) {
  OooPool pool(16 * OooPool::kChunkSize);
  OooQueue q;
  q.set_pool(&pool);
  const size_t K = OooPool::kChunkSize;
  const SeqNum base{1000};
  const SeqNum limit = base + uint32_t(8 << 20);
  // A segment crossing the first chunk boundary, and one near the 1 MiB reach.
  ASSERT_EQ(q.insert(base, limit, base + uint32_t(K - 10), Bytes(pattern(K - 10, 100))), OooQueue::Insert::Stored);
  EXPECT_EQ(q.chunks_held(), 2u);
  ASSERT_EQ(q.insert(base, limit, base + uint32_t(OooQueue::kMaxBytes - 50), Bytes(pattern(OooQueue::kMaxBytes - 50, 100))),
            OooQueue::Insert::Stored);
  EXPECT_EQ(q.stored_bytes(), 150u);  // clipped at the reach (base + 1 MiB)
  EXPECT_EQ(q.chunks_held(), 3u);
  // Beyond the reach: dropped.
  EXPECT_EQ(q.insert(base, limit, base + uint32_t(OooQueue::kMaxBytes + 10), Bytes(pattern(0, 10))),
            OooQueue::Insert::Dropped);
  // rcv_nxt moves to the first stored byte: the first chunk goes back, the ring slides
  // and the reach with it.
  SeqNum rcv = base + uint32_t(K - 10);
  q.advance(rcv);
  std::string drained;
  for (Bytes b = q.contiguous(rcv); !b.empty(); b = q.contiguous(rcv)) {
    drained.append(reinterpret_cast<const char*>(b.data()), b.size());
    rcv += uint32_t(b.size());
    q.advance(rcv);
  }
  EXPECT_EQ(drained, pattern_str(K - 10, 100));
  EXPECT_EQ(q.chunks_held(), 2u);  // chunk 1 (partly behind rcv_nxt) and the last one
  EXPECT_EQ(q.insert(rcv, limit, base + uint32_t(OooQueue::kMaxBytes + 10), Bytes(pattern(OooQueue::kMaxBytes + 10, 10))),
            OooQueue::Insert::Stored);
  q.clear();
  EXPECT_EQ(pool.chunks_in_use(), 0u);
}

TEST(OooQueue, AtMostSixteenRanges) {
  OooPool pool(OooPool::kChunkSize);
  OooQueue q;
  q.set_pool(&pool);
  const SeqNum base{5};
  for (size_t i = 0; i < OooQueue::kMaxRanges; ++i) {
    EXPECT_EQ(q.insert(base, base + 10000, base + uint32_t(2 + 2 * i), Bytes(pattern(2 + 2 * i, 1))),
              OooQueue::Insert::Stored);
  }
  EXPECT_EQ(q.ranges(), OooQueue::kMaxRanges);
  // A 17th disjoint range is dropped; one that merges with neighbours is not.
  EXPECT_EQ(q.insert(base, base + 10000, base + 100, Bytes(pattern(100, 1))), OooQueue::Insert::Dropped);
  EXPECT_EQ(q.insert(base, base + 10000, base + 3, Bytes(pattern(3, 1))), OooQueue::Insert::Stored);
  EXPECT_EQ(q.ranges(), OooQueue::kMaxRanges - 1);
}

TEST(OooPool, GrowsLazilyToItsCapAndReuses) {
  OooPool pool(2 * OooPool::kChunkSize + 5);
  EXPECT_EQ(pool.capacity_chunks(), 2u);
  EXPECT_EQ(pool.allocated_chunks(), 0u);
  std::byte* a = pool.acquire();
  std::byte* b = pool.acquire();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(pool.acquire(), nullptr);
  pool.release(a);
  EXPECT_EQ(pool.acquire(), a);
  EXPECT_EQ(pool.allocated_chunks(), 2u);
  pool.release(a);
  pool.release(b);
  EXPECT_EQ(pool.chunks_in_use(), 0u);
}

// ---- TcpConn ------------------------------------------------------------------------------

class TcpConnOoo : public ::testing::Test {
 protected:
  FakeGuestIo io;
  ScriptedPeer peer;
  OooPool pool{16 << 20};  // declared before conn: outlives its chunks
  TcpConn conn;
  TcpParams params;
  FlowKey key{Ipv4Addr::from_octets(100, 96, 0, 2), Ipv4Addr::from_octets(1, 2, 3, 4), 40000, 443};
  Instant t{std::chrono::hours(1)};
  SeqNum g0{9000}, mseq;  // g0: the guest's first data byte

  void SetUp() override {
    params.max_window = 1 << 20;
    TcpRepr syn;
    syn.src_port = 40000;
    syn.dst_port = 443;
    syn.seq = g0 - 1;
    syn.flags = tf::syn;
    syn.window = 65535;
    syn.mss = 1000;
    syn.window_scale = 7;
    conn.set_ooo_pool(&pool);
    conn.open_passive(key, syn, SeqNum{77777}, params, io, peer, t);
    conn.on_peer_connected(t);
    mseq = SeqNum{77778};
    io.out.clear();
    seg(0, {}, tf::ack);
    ASSERT_EQ(conn.state(), TcpState::Established);
  }
  /// Guest segment at stream offset `off` carrying pattern bytes.
  void data(size_t off, size_t n, uint8_t extra = 0) { seg(off, pattern(off, n), tf::ack | extra); }
  void seg(size_t off, const Buf& payload, uint8_t flags) {
    TcpRepr r;
    r.src_port = 40000;
    r.dst_port = 443;
    r.seq = g0 + uint32_t(off);
    r.ack = mseq;
    r.flags = flags;
    r.window = 65535;
    conn.on_segment(r, Bytes(payload), t);
  }
  /// ACK numbers of what moat sent since the last call (stream offsets).
  std::vector<uint32_t> acks() {
    std::vector<uint32_t> v;
    for (auto& e : io.out)
      if (auto s = parse_seg(e)) v.push_back(uint32_t(s->h.ack - g0));
    io.out.clear();
    return v;
  }
};

TEST_F(TcpConnOoo, HoleFilledDeliversEverythingAndAckJumps) {
  data(1000, 1000);
  data(2000, 1000);
  data(3000, 500);
  // Each is answered at once with a duplicate ACK (fast retransmit), nothing delivered.
  EXPECT_EQ(acks(), (std::vector<uint32_t>{0, 0, 0}));
  EXPECT_EQ(peer.got.size(), 0u);
  EXPECT_EQ(conn.ooo().stored_bytes(), 2500u);
  EXPECT_EQ(conn.ooo().ranges(), 1u);
  // The retransmitted hole: all 3500 bytes in order, the ACK jumps to the end.
  data(0, 1000);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{3500}));
  EXPECT_EQ(peer.got, pattern_str(0, 3500));
  EXPECT_EQ(conn.rcv_nxt(), g0 + 3500);
  EXPECT_TRUE(conn.ooo().empty());
  EXPECT_EQ(pool.chunks_in_use(), 0u);
  // Late duplicates of queued data: old, re-ACKed, not delivered twice.
  data(2000, 1000);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{3500}));
  EXPECT_EQ(peer.got.size(), 3500u);
}

TEST_F(TcpConnOoo, OverlappingAndDuplicateSegments) {
  data(3000, 1000);  // [3000,4000)
  data(2500, 1000);  // overlaps its front: [2500,4000)
  data(2600, 500);   // entirely stored: duplicate
  data(5000, 1000);  // [2500,4000) [5000,6000)
  data(3900, 1200);  // bridges: [2500,6000)
  data(2500, 1000);  // duplicate
  EXPECT_EQ(acks(), (std::vector<uint32_t>{0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(conn.ooo().ranges(), 1u);
  EXPECT_EQ(conn.ooo().stored_bytes(), 3500u);
  // Partial fill: the hole [1000,2500) stays, nothing beyond it moves.
  data(0, 1000);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{1000}));
  // A retransmission overlapping both the delivered part and the queue.
  data(500, 2100);  // [500,2600): trimmed to [1000,2600), then [2600,6000) from the queue
  EXPECT_EQ(acks(), (std::vector<uint32_t>{6000}));
  EXPECT_EQ(peer.got, pattern_str(0, 6000));
  EXPECT_EQ(pool.chunks_in_use(), 0u);
}

TEST_F(TcpConnOoo, PartialPeerWriteKeepsTheRestQueued) {
  data(1000, 2000);
  acks();
  peer.budget = 1500;  // the peer takes the hole and half of the queue
  data(0, 1000);
  EXPECT_EQ(peer.got, pattern_str(0, 1500));
  EXPECT_EQ(conn.rcv_nxt(), g0 + 1500);  // only what the peer took
  EXPECT_EQ(acks(), (std::vector<uint32_t>{1500}));
  EXPECT_EQ(conn.ooo().stored_bytes(), 1500u);
  // The peer drains: the rest follows without a retransmission.
  peer.budget = SIZE_MAX;
  conn.on_peer_writable(t);
  EXPECT_EQ(peer.got, pattern_str(0, 3000));
  EXPECT_EQ(acks(), (std::vector<uint32_t>{3000}));
  EXPECT_TRUE(conn.ooo().empty());
}

TEST_F(TcpConnOoo, NeverBeyondTheAdvertisedWindow) {
  // After the handshake the right edge is the SYN-ACK's unscaled 65535: a segment
  // crossing it is stored only up to it.
  data(60000, 10000);
  EXPECT_EQ(conn.ooo().stored_bytes(), 5535u);
  data(70000, 1000);  // entirely beyond: unacceptable, not stored
  EXPECT_EQ(conn.ooo().stored_bytes(), 5535u);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{0, 0}));
  data(0, 60000);
  EXPECT_EQ(peer.got, pattern_str(0, 65535));
  EXPECT_EQ(conn.rcv_nxt(), g0 + 65535);
}

TEST_F(TcpConnOoo, FinBeyondAHoleIsLeftForRetransmission) {
  data(1000, 1000, tf::fin);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{0}));
  data(0, 1000);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{2000}));  // the payload, not the FIN
  EXPECT_EQ(conn.state(), TcpState::Established);
  EXPECT_FALSE(peer.shut);
  seg(2000, {}, tf::ack | tf::fin);  // the guest retransmits it
  EXPECT_EQ(acks(), (std::vector<uint32_t>{2001}));
  EXPECT_EQ(conn.state(), TcpState::CloseWait);
  EXPECT_TRUE(peer.shut);
  EXPECT_EQ(peer.got, pattern_str(0, 2000));
}

TEST_F(TcpConnOoo, PoolExhaustedFallsBackToDrop) {
  // Someone else holds every chunk.
  std::vector<std::byte*> held;
  while (std::byte* c = pool.acquire()) held.push_back(c);
  data(1000, 1000);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{0}));  // still the duplicate ACK
  EXPECT_TRUE(conn.ooo().empty());
  data(0, 1000);
  conn.flush(t);  // in order with an empty queue: the usual delayed ACK
  EXPECT_EQ(acks(), (std::vector<uint32_t>{1000}));  // the dropped segment is not acked
  EXPECT_EQ(peer.got, pattern_str(0, 1000));
  // One chunk back: queuing works again.
  pool.release(held.back());
  held.pop_back();
  data(2000, 1000);
  EXPECT_EQ(conn.ooo().stored_bytes(), 1000u);
  data(1000, 1000);
  EXPECT_EQ(acks(), (std::vector<uint32_t>{1000, 3000}));
  EXPECT_EQ(peer.got, pattern_str(0, 3000));
  for (std::byte* c : held) pool.release(c);
}

TEST_F(TcpConnOoo, ResetReturnsChunksToThePool) {
  conn.on_peer_writable(t);  // window beyond the SYN-ACK's 65535
  data(1000, 1000);
  data(70000, 1000);  // a second chunk
  EXPECT_EQ(pool.chunks_in_use(), 2u);
  seg(0, {}, tf::rst);
  EXPECT_EQ(conn.state(), TcpState::Closed);
  EXPECT_EQ(pool.chunks_in_use(), 0u);
}

TEST_F(TcpConnOoo, WithoutPoolOutOfOrderIsDropped) {
  TcpConn plain;
  TcpRepr syn;
  syn.src_port = 40001;
  syn.dst_port = 443;
  syn.seq = g0 - 1;
  syn.flags = tf::syn;
  syn.window = 65535;
  FlowKey k2 = key;
  k2.guest_port = 40001;
  plain.open_passive(k2, syn, SeqNum{1}, params, io, peer, t);
  plain.on_peer_connected(t);
  TcpRepr r;
  r.src_port = 40001;
  r.dst_port = 443;
  r.seq = g0;
  r.ack = SeqNum{2};
  r.flags = tf::ack;
  r.window = 65535;
  plain.on_segment(r, {}, t);
  r.seq = g0 + 100;
  Buf p = pattern(100, 10);
  plain.on_segment(r, Bytes(p), t);
  EXPECT_TRUE(plain.ooo().empty());
  EXPECT_EQ(pool.chunks_in_use(), 0u);
}

// ---- TcpEngine ----------------------------------------------------------------------------

using TcpEngineOoo = TcpEngineFixture;

TEST_F(TcpEngineOoo, ReorderedSegmentsReachTheHostInOrder) {
  start();
  UniqueFd host = handshake();
  io.out.clear();
  const SeqNum s0 = gseq;
  send(tf::ack, s0 + 1000, mseq, Bytes(pattern(1000, 1000)));
  send(tf::ack, s0 + 3000, mseq, Bytes(pattern(3000, 1000)));
  send(tf::ack, s0 + 2000, mseq, Bytes(pattern(2000, 1000)));
  for (auto& s : take()) EXPECT_EQ(s.h.ack, s0);  // duplicate ACKs
  EXPECT_EQ(engine->ooo_pool().chunks_in_use(), 1u);
  send(tf::ack, s0, mseq, Bytes(pattern(0, 1000)));
  engine->flush(now());
  auto out = take();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.front().h.ack, s0 + 4000);
  EXPECT_EQ(host_read(host.get(), 4000), pattern_str(0, 4000));
  EXPECT_EQ(engine->ooo_pool().chunks_in_use(), 0u);
}

TEST_F(TcpEngineOoo, FlowCloseReturnsChunks) {
  start();
  UniqueFd host = handshake();
  send(tf::ack, gseq + 500, mseq, Bytes(pattern(500, 100)));
  EXPECT_EQ(engine->ooo_pool().chunks_in_use(), 1u);
  send(tf::rst, gseq, SeqNum{0});
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(engine->ooo_pool().chunks_in_use(), 0u);
  EXPECT_EQ(engine->ooo_pool().allocated_chunks(), 1u);  // kept for reuse
}

TEST_F(TcpEngineOoo, PoolCapSharedByFlows) {
  cfg.ooo_pool_bytes = OooPool::kChunkSize;  // one chunk for the whole gateway
  start();
  UniqueFd h1 = handshake();
  const SeqNum g1 = gseq, m1 = mseq;
  gport = 40001;
  gseq = SeqNum{50000};
  UniqueFd h2 = handshake();
  io.out.clear();
  send(tf::ack, gseq + 100, mseq, Bytes(pattern(100, 100)));  // flow 2 takes the chunk
  EXPECT_EQ(engine->ooo_pool().chunks_in_use(), 1u);
  gport = 40000;
  send(tf::ack, g1 + 100, m1, Bytes(pattern(100, 100)));  // flow 1: none left, dropped
  EXPECT_EQ(engine->ooo_pool().chunks_in_use(), 1u);
  send(tf::ack, g1, m1, Bytes(pattern(0, 100)));
  engine->flush(now());
  EXPECT_EQ(host_read(h1.get(), 100), pattern_str(0, 100));
  EXPECT_EQ(engine->find({guest4, gw4, 40000, port})->rcv_nxt(), g1 + 100);
}

}  // namespace
}  // namespace moat::flows::test
