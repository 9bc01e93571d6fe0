// TcpConn with the in-process StreamPeer (no sockets), FlowTable, ByteRing.
#include "flows/flow_table.h"
#include "flows/stream_peer.h"
#include "flows/tcp_conn.h"
#include "tcp_test_support.h"

namespace moat::flows::test {
namespace {

namespace tf = wire::tcp_flags;
using wire::SeqNum;
using wire::TcpRepr;

TEST(FlowTable, GenerationRejectsStaleIds) {
  FlowTable<int> t(2);
  FlowKey k1{Ipv4Addr{1}, Ipv4Addr{2}, 10, 20}, k2{Ipv4Addr{1}, Ipv4Addr{2}, 11, 20};
  auto a = t.insert(k1);
  auto b = t.insert(k2);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(t.insert(FlowKey{Ipv4Addr{3}, Ipv4Addr{2}, 10, 20}));  // full
  EXPECT_FALSE(t.insert(k1).has_value());                              // duplicate
  *t.get(*a) = 42;
  t.close(*a);
  EXPECT_NE(t.get(*a), nullptr);  // closing: still reachable until the sweep
  EXPECT_FALSE(t.find(k1));       // but no longer indexed
  t.sweep();
  EXPECT_EQ(t.get(*a), nullptr);  // stale generation
  auto c = t.insert(k1);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->index, a->index);
  EXPECT_NE(c->generation, a->generation);
  EXPECT_EQ(*t.get(*c), 0);  // rebuilt in place
  EXPECT_EQ(t.find(k1), c);
  EXPECT_EQ(t.find(k2), b);
}

TEST(FlowTable, ManyInsertRemoveKeepsIndexConsistent) {
  FlowTable<int> t(64);
  std::vector<std::optional<FlowId>> ids(64);
  for (int round = 0; round < 50; ++round) {
    for (uint16_t i = 0; i < 64; ++i) {
      FlowKey k{Ipv4Addr{uint32_t(i % 3)}, Ipv4Addr{9}, i, 80};
      if (ids[i]) {
        ASSERT_EQ(t.find(k), ids[i]);
        if ((i + round) % 3 == 0) {
          t.close(*ids[i]);
          ids[i].reset();
        }
      }
    }
    t.sweep();
    for (uint16_t i = 0; i < 64; ++i) {
      FlowKey k{Ipv4Addr{uint32_t(i % 3)}, Ipv4Addr{9}, i, 80};
      if (!ids[i] && !t.find(k)) ids[i] = t.insert(k);
    }
    // All live keys findable.
    size_t n = 0;
    t.for_each_live([&](FlowId, int&) { ++n; });
    EXPECT_EQ(n, t.live());
  }
}

TEST(ByteRing, WrapsAndPeeks) {
  ByteRing r(8);
  Buf a = text("abcdef");
  EXPECT_EQ(r.push(Bytes(a)), 6u);
  EXPECT_EQ(r.pop(4), 4u);
  Buf b = text("ghijklmn");
  EXPECT_EQ(r.push(Bytes(b)), 6u);  // 2 + 6 = 8
  Buf out(8);
  EXPECT_EQ(r.peek(1, MutBytes(out)), 7u);
  EXPECT_EQ(str(Buf(out.begin(), out.begin() + 7)), "fghijkl");
}

TEST(RingCache, KeepsDrainedRingsChargedForReuseBoundedAndNotUnderPressure) {
  MemoryBudget budget(4 << 20);
  RingCache cache;  // outlives the rings below, as the engine's does its flows'
  {
    ByteRing r;
    ASSERT_TRUE(r.allocate(256 << 10, &budget, &cache));
    r.free_storage();  // kept: still mapped and charged
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_EQ(budget.used(), 256u << 10);
    ASSERT_TRUE(r.allocate(256 << 10, &budget, &cache));  // taken back: no second charge
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_EQ(budget.used(), 256u << 10);
  }  // destroyed: into the cache
  EXPECT_EQ(cache.size(), 1u);
  // At most kMaxEntries mappings are kept; the rest are unmapped and released.
  std::vector<ByteRing> rings(RingCache::kMaxEntries + 2);
  for (auto& r : rings) ASSERT_TRUE(r.allocate(128 << 10, &budget, &cache));
  for (auto& r : rings) r.free_storage();
  EXPECT_EQ(cache.size(), RingCache::kMaxEntries);
  EXPECT_EQ(budget.used(), (256u << 10) + (RingCache::kMaxEntries - 1) * (128u << 10));
  // Under pressure (>= 75 %) the cache gives back everything and keeps nothing more.
  ByteRing big;
  ASSERT_TRUE(big.allocate(2 << 20, &budget, &cache));
  ASSERT_TRUE(budget.at_least(MemoryLevel::pressure));
  big.free_storage();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(ByteRing, ChargesTheBudgetWhileMappedAndReleasesExactly) {
  MemoryBudget budget(1 << 20);
  ByteRing r;
  ASSERT_TRUE(r.allocate(256 << 10, &budget));
  EXPECT_EQ(budget.used(), 256u << 10);
  Buf a = text("abcdef");
  EXPECT_EQ(r.push(Bytes(a)), 6u);
  ByteRing moved(std::move(r));
  EXPECT_EQ(budget.used(), 256u << 10);
  EXPECT_EQ(moved.size(), 6u);
  // Another 768 KiB would reach the limit: refused, nothing changes.
  ByteRing big;
  EXPECT_FALSE(big.allocate(768 << 10, &budget));
  EXPECT_EQ(big.capacity(), 0u);
  EXPECT_EQ(budget.used(), 256u << 10);
  moved.free_storage();
  EXPECT_EQ(moved.capacity(), 0u);
  EXPECT_EQ(budget.used(), 0u);
  ASSERT_TRUE(big.allocate(768 << 10, &budget));
  {
    ByteRing gone = std::move(big);
  }
  EXPECT_EQ(budget.used(), 0u);
}

/// A TcpConn on a StreamPeer, driven by hand.
class TcpConnStream : public ::testing::Test {
 protected:
  FakeGuestIo io;
  StreamPeer peer{4096};
  TcpConn conn;
  TcpParams params;
  FlowKey key{Ipv4Addr::from_octets(100, 96, 0, 2), Ipv4Addr::from_octets(1, 2, 3, 4), 40000, 443};
  Instant t{std::chrono::hours(1)};
  SeqNum gseq{500}, mseq;

  void SetUp() override {
    params.max_window = 4096;
    TcpRepr syn;
    syn.src_port = 40000;
    syn.dst_port = 443;
    syn.seq = gseq;
    syn.flags = tf::syn;
    syn.window = 65535;
    syn.mss = 1000;
    conn.open_passive(key, syn, SeqNum{77777}, params, io, peer, t);
    EXPECT_TRUE(io.out.empty());
    conn.on_peer_connected(t);
    Seg sa = take1();
    EXPECT_EQ(sa.h.flags, tf::syn | tf::ack);
    EXPECT_EQ(sa.h.window, 4096);  // what the stream peer can take
    gseq += 1;
    mseq = sa.h.seq + 1;
    seg(tf::ack, {});
    EXPECT_EQ(conn.state(), TcpState::Established);
  }
  void seg(uint8_t flags, const Buf& payload, uint16_t window = 65535) {
    TcpRepr r;
    r.src_port = 40000;
    r.dst_port = 443;
    r.seq = gseq;
    r.ack = mseq;
    r.flags = flags;
    r.window = window;
    conn.on_segment(r, Bytes(payload), t);
  }
  Seg take1() {
    EXPECT_FALSE(io.out.empty());
    if (io.out.empty()) return {};
    auto s = parse_seg(io.out.front());
    io.out.erase(io.out.begin());
    return s.value_or(Seg{});
  }
};

TEST_F(TcpConnStream, BothWays) {
  // guest -> app
  seg(tf::ack | tf::psh, text("hello"));
  gseq += 5;
  conn.flush(t);
  Seg ack = take1();
  EXPECT_EQ(ack.h.ack, gseq);
  EXPECT_EQ(ack.h.window, 4096 - 5);
  Buf in(16);
  EXPECT_EQ(peer.app_read(MutBytes(in)), 5u);
  EXPECT_EQ(str(Buf(in.begin(), in.begin() + 5)), "hello");
  // app -> guest, segmented at the guest MSS (1000).
  Buf big(2500, std::byte{'y'});
  EXPECT_EQ(peer.app_write(Bytes(big)), 2500u);
  conn.on_peer_readable(t);
  Seg a = take1(), b = take1(), c = take1();
  EXPECT_EQ(a.payload.size(), 1000u);
  EXPECT_EQ(b.payload.size(), 1000u);
  EXPECT_EQ(c.payload.size(), 500u);
  EXPECT_TRUE(c.has(tf::psh));
  EXPECT_FALSE(a.has(tf::psh));
  // Held until acked (the peer is the retransmit queue), then consumed at flush.
  EXPECT_EQ(peer.to_guest_queued(), 2500u);
  mseq += 2500;
  seg(tf::ack, {});
  conn.flush(t);
  EXPECT_EQ(peer.to_guest_queued(), 0u);
  // App EOF -> FIN; guest FIN -> TIME-WAIT.
  peer.app_shutdown_write();
  conn.on_peer_readable(t);
  Seg fin = take1();
  EXPECT_TRUE(fin.has(tf::fin));
  mseq += 1;
  seg(tf::ack, {});
  EXPECT_EQ(conn.state(), TcpState::FinWait2);
  seg(tf::ack | tf::fin, {});
  EXPECT_EQ(conn.state(), TcpState::TimeWait);
  EXPECT_TRUE(peer.app_read_closed());
}

TEST_F(TcpConnStream, WindowBoundedByPeerBuffer) {
  Buf chunk(1000, std::byte{'a'});
  for (int i = 0; i < 4; ++i) {
    seg(tf::ack, chunk);
    gseq += 1000;
  }
  conn.flush(t);
  io.out.clear();
  // 4000 of 4096 taken: a 1000-byte segment is trimmed to the 96 that fit.
  seg(tf::ack, chunk);
  auto s = parse_seg(io.out.back());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->h.ack, gseq + 96);
  EXPECT_EQ(peer.app_readable(), 4096u);
}

TEST_F(TcpConnStream, AppAbortResetsGuest) {
  peer.app_write(Bytes(text("x")));
  peer.app_abort();
  conn.on_peer_readable(t);
  ASSERT_FALSE(io.out.empty());
  auto rst = parse_seg(io.out.back());
  ASSERT_TRUE(rst);
  EXPECT_TRUE(rst->has(tf::rst));
  EXPECT_EQ(conn.state(), TcpState::Closed);
  EXPECT_EQ(conn.close_reason(), TcpCloseReason::ResetByUpstream);
}

TEST_F(TcpConnStream, GuestRstAbortsPeer) {
  seg(tf::rst, {});
  EXPECT_EQ(conn.state(), TcpState::Closed);
  EXPECT_TRUE(peer.aborted_by_conn());
}

TEST_F(TcpConnStream, AckOfUnsentDataIsAnsweredAndDropped) {
  mseq += 100;
  seg(tf::ack, text("zz"));
  Seg a = take1();
  EXPECT_EQ(a.h.ack, gseq);  // data not taken
  EXPECT_EQ(peer.app_readable(), 0u);
}

TEST_F(TcpConnStream, FinWithHoleIsNotAccepted) {
  gseq += 10;
  seg(tf::ack | tf::fin, {});
  Seg a = take1();
  EXPECT_EQ(a.h.ack, gseq - 10);
  EXPECT_EQ(conn.state(), TcpState::Established);
}

TEST_F(TcpConnStream, RttSampleSetsRto) {
  peer.app_write(Bytes(text("rtt")));
  conn.on_peer_readable(t);
  take1();
  t += std::chrono::milliseconds(50);
  mseq += 3;
  seg(tf::ack, {});
  // SRTT 50 ms, RTTVAR 25 ms -> 150 ms, floored at 200 ms (R-TCP-7).
  EXPECT_EQ(conn.rto(), TcpConn::kMinRto);
  ASSERT_TRUE(conn.next_deadline());
}

TEST(TcpParams, WindowShift) {
  TcpParams p;
  p.max_window = 8 << 20;
  EXPECT_EQ(p.window_shift(), 8);
  p.max_window = 65535;
  EXPECT_EQ(p.window_shift(), 0);
  p.max_window = 65536;
  EXPECT_EQ(p.window_shift(), 1);
  p.max_window = 1u << 31;
  EXPECT_EQ(p.window_shift(), 14);
}

}  // namespace
}  // namespace moat::flows::test
