// STYLE.md: steady state does zero allocations. A bulk transfer in both directions through
// the TcpEngine (real loopback sockets) runs while global operator new is counting.
#include "support/alloc_counter.h"

#include "tcp_engine_fixture.h"


namespace moat::flows::test {
namespace {

class TcpAlloc : public TcpEngineFixture {
 protected:
  void bulk_transfer(bool reorder, bool tso = false);
};

TEST_F(TcpAlloc, SteadyStateBulkTransferDoesNotAllocate) { bulk_transfer(false); }

// Guest segments 1 and 2 swapped every round: segment 2 waits in the out-of-order queue
// (R-TCP-8), whose pool chunk is allocated in the warm-up and reused after that.
TEST_F(TcpAlloc, ReorderedGuestSegmentsDoNotAllocate) { bulk_transfer(true); }

// R-TR-6: at MTU 1500 with TSO, moat's output is super-frames with partial checksums.
TEST_F(TcpAlloc, TsoSuperFramesDoNotAllocate) { bulk_transfer(false, true); }

void TcpAlloc::bulk_transfer(bool reorder, bool tso) {
  io.mtu_value = tso ? 1500 : 65520;
  if (tso) io.caps = TxCaps{true, true, true, 0};
  start();
  UniqueFd host = handshake();
  io.out.clear();
  io.capture = false;  // count only: the fake itself must not allocate
  std::vector<char> block(1 << 20, 'm');
  Buf chunk(65480, std::byte{'g'});
  Buf l4(65535);
  wire::Ipv4Repr ip;
  ip.src = guest4;
  ip.dst = gw4;
  ip.protocol = wire::kProtoTcp;
  char sink[65536];

  // One round: the host writes 1 MiB, the guest acks everything moat sent; the guest sends
  // 4 segments, the host reads them.
  auto round = [&] {
    ASSERT_GT(::send(host.get(), block.data(), block.size(), MSG_DONTWAIT), 0);
    for (int i = 0; i < 50; ++i) {
      loop.run_once(std::chrono::milliseconds(1));
      // Guest: ACK up to what moat sent (tracked through the fake's byte counter).
      TcpRepr a;
      a.src_port = gport;
      a.dst_port = port;
      a.flags = tf::ack;
      a.window = 65535;
      a.seq = gseq;
      // moat's snd_nxt is readable from the conn; ack all of it.
      a.ack = engine->find({guest4, gw4, gport, port})->snd_nxt();
      mseq = a.ack;
      a.emit_v4(MutBytes(l4.data(), a.header_len()), guest4, gw4);
      ip.payload_len = uint16_t(a.header_len());
      engine->on_segment_v4(ip, Bytes(l4.data(), a.header_len()), now());
      engine->flush(now());
    }
    for (int i = 0; i < 4; ++i) {
      const int k = reorder && (i == 1 || i == 2) ? 3 - i : i;  // 0, 2, 1, 3
      TcpRepr d;
      d.src_port = gport;
      d.dst_port = port;
      d.flags = tf::ack | tf::psh;
      d.window = 65535;
      d.seq = gseq + uint32_t(16000 * k);
      d.ack = mseq;
      const size_t hl = d.header_len();
      std::memcpy(l4.data() + hl, chunk.data(), 16000);
      d.emit_v4(MutBytes(l4.data(), hl + 16000), guest4, gw4);
      ip.payload_len = uint16_t(hl + 16000);
      engine->on_segment_v4(ip, Bytes(l4.data(), hl + 16000), now());
    }
    gseq += 4 * 16000;
    engine->flush(now());
    while (::recv(host.get(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
  };
  for (int i = 0; i < 5; ++i) round();  // warm-up: flow buffers, timer slots, vectors
  const size_t bytes_before = io.sent_bytes;
  const size_t segs_before = io.sent;
  moat::test::start_counting_allocations();
  for (int i = 0; i < 20; ++i) round();
  const size_t allocations = moat::test::stop_counting_allocations();
  EXPECT_EQ(allocations, 0u);
  EXPECT_GT(io.sent - segs_before, 100u) << "a bulk transfer of many segments took place";
  EXPECT_GT(io.sent_bytes - bytes_before, size_t(10) << 20);
  const TcpConn* c = engine->find({guest4, gw4, gport, port});
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->rcv_nxt(), gseq) << "every guest byte was taken";
  if (reorder) {
    EXPECT_EQ(engine->ooo_pool().allocated_chunks(), 1u);
  }
}

}  // namespace
}  // namespace moat::flows::test
