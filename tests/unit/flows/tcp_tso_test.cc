// TcpConn with to-guest offloads (R-TR-6, R-TCP-7): TSO super-frames and partial checksums
// through GuestIo::tx_caps() / send_tcp_v4/v6, on the in-process StreamPeer.
#include "flows/stream_peer.h"
#include "flows/tcp_conn.h"
#include "tcp_test_support.h"
#include "wire/checksum.h"

namespace moat::flows::test {
namespace {

namespace tf = wire::tcp_flags;
using wire::SeqNum;
using wire::TcpRepr;

constexpr uint16_t kMss = 1000;

/// A TcpConn whose guest offered MSS 1000 and a scaled window (shift 7), on a StreamPeer
/// big enough for several super-frames; `v6` picks the family.
class TcpTso : public ::testing::TestWithParam<bool> {
 protected:
  FakeGuestIo io;
  StreamPeer peer{512 << 10};
  TcpConn conn;
  TcpParams params;
  FlowKey key;
  Instant t{std::chrono::hours(1)};
  SeqNum gseq{500}, mseq, first;  // first: sequence number of the first data byte
  Buf data;                        // what the app wrote, byte i at first + i

  bool v6() const { return GetParam(); }

  void SetUp() override {
    if (v6()) {
      key = FlowKey{*Ipv6Addr::parse("fd00::2"), *Ipv6Addr::parse("2001:db8::4"), 40000, 443};
    } else {
      key = FlowKey{Ipv4Addr::from_octets(100, 96, 0, 2), Ipv4Addr::from_octets(1, 2, 3, 4), 40000, 443};
    }
    io.caps = TxCaps{true, true, true, 0};
    params.max_window = 256 << 10;
    params.own_mss = 1460;
    TcpRepr syn;
    syn.src_port = 40000;
    syn.dst_port = 443;
    syn.seq = gseq;
    syn.flags = tf::syn;
    syn.window = 65535;
    syn.mss = kMss;
    syn.window_scale = 7;
    conn.open_passive(key, syn, SeqNum{77777}, params, io, peer, t);
    conn.on_peer_connected(t);
    Seg sa = take1();
    EXPECT_EQ(sa.h.flags, tf::syn | tf::ack);
    gseq += 1;
    mseq = first = sa.h.seq + 1;
    ack(mseq, 1000);  // 128000-byte window
    EXPECT_EQ(conn.state(), TcpState::Established);
  }
  void ack(SeqNum a, uint16_t window = 1000) {
    TcpRepr r;
    r.src_port = 40000;
    r.dst_port = 443;
    r.seq = gseq;
    r.ack = a;
    r.flags = tf::ack;
    r.window = window;
    conn.on_segment(r, {}, t);
  }
  void write(size_t n) {
    const size_t base = data.size();
    for (size_t i = 0; i < n; ++i) data.push_back(std::byte(uint8_t((base + i) * 7 + (base + i) / 251)));
    ASSERT_EQ(peer.app_write(Bytes(data.data() + base, n)), n);
  }
  Seg take1() {
    EXPECT_FALSE(io.out.empty());
    if (io.out.empty()) return {};
    auto s = parse_seg(io.out.front());
    last_ = io.out.front();
    io.out.erase(io.out.begin());
    return s.value_or(Seg{});
  }
  std::vector<Seg> take_all() {
    std::vector<Seg> v;
    while (!io.out.empty()) v.push_back(take1()), frames_.push_back(last_);
    return v;
  }
  /// The payload must be the app's bytes at its sequence number.
  void expect_bytes(const Seg& s) {
    const size_t off = uint32_t(s.h.seq - first);
    ASSERT_LE(off + s.payload.size(), data.size());
    EXPECT_TRUE(std::equal(s.payload.begin(), s.payload.end(), data.begin() + long(off)))
        << "payload at offset " << off << " differs";
  }
  /// The partial checksum is the folded pseudo-header sum (uncomplemented), and completing
  /// it as a virtio device would gives the checksum emit_v4/v6 computes in full.
  void expect_partial_checksum(const Emitted& e) {
    wire::Checksum ph = e.v6 ? wire::pseudo_header_v6(e.src.v6, e.dst.v6, wire::kProtoTcp, uint32_t(e.l4.size()))
                             : wire::pseudo_header_v4(e.src.v4, e.dst.v4, wire::kProtoTcp, uint16_t(e.l4.size()));
    const uint16_t field = load_be16(e.l4.data() + TcpRepr::kChecksumOffset);
    EXPECT_EQ(field, uint16_t(~ph.finish()));
    wire::Checksum dev;
    dev.add(Bytes(e.l4));
    Buf full = e.l4;
    auto r = TcpRepr::parse(Bytes(full), nullptr);
    ASSERT_TRUE(r);
    if (e.v6) r->emit_v6(MutBytes(full), e.src.v6, e.dst.v6);
    else r->emit_v4(MutBytes(full), e.src.v4, e.dst.v4);
    EXPECT_EQ(dev.finish(), load_be16(full.data() + TcpRepr::kChecksumOffset));
  }

  std::vector<Emitted> frames_;
  Emitted last_;
};

TEST_P(TcpTso, BulkSendBuildsSuperFrames) {
  write(200000);
  conn.on_peer_readable(t);
  auto segs = take_all();
  // 128000-byte window: 65000 (65 full segments: a 65535-byte packet cannot hold 66) + 63000.
  ASSERT_EQ(segs.size(), 2u);
  size_t total = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Seg& s = segs[i];
    const Emitted& e = frames_[i];
    EXPECT_EQ(e.offload.gso_size, kMss);
    EXPECT_TRUE(e.offload.partial);
    EXPECT_EQ(s.h.seq, first + uint32_t(total));
    if (i + 1 < segs.size()) {
      EXPECT_EQ(s.payload.size() % kMss, 0u);
    }
    EXPECT_LE(s.payload.size() + s.h.header_len() + (v6() ? 40 : 20), 65535u);
    // R-TCP-7: PSH only on the frame that ends the burst.
    EXPECT_EQ(s.has(tf::psh), i + 1 == segs.size());
    EXPECT_FALSE(s.has(tf::fin));
    expect_bytes(s);
    expect_partial_checksum(e);
    total += s.payload.size();
  }
  EXPECT_EQ(segs[0].payload.size(), 65000u);
  EXPECT_EQ(total, 128000u);  // exactly the window, as ≤ MSS segments would have sent
  // The guest acks everything: the rest (72000) follows, again as super-frames.
  ack(first + 128000);
  conn.flush(t);
  conn.on_peer_readable(t);
  segs = take_all();
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].payload.size(), 65000u);
  EXPECT_EQ(segs[1].payload.size(), 7000u);
  for (const auto& s : segs) expect_bytes(s);
  ack(first + 200000);
  conn.flush(t);
  EXPECT_EQ(conn.bytes_to_guest(), 200000u);
  EXPECT_EQ(conn.snd_nxt(), first + 200000);
}

TEST_P(TcpTso, LastSegmentMayBeShortAndFinFollows) {
  write(2500);
  peer.app_shutdown_write();
  conn.on_peer_readable(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 2u);
  // One super-frame of 2500 bytes = segments 1000, 1000, 500; PSH set (end of the burst).
  EXPECT_EQ(segs[0].payload.size(), 2500u);
  EXPECT_EQ(frames_[0].offload.gso_size, kMss);
  EXPECT_TRUE(segs[0].has(tf::psh));
  EXPECT_FALSE(segs[0].has(tf::fin));
  expect_bytes(segs[0]);
  // The FIN is its own segment after the data (never inside a super-frame).
  EXPECT_TRUE(segs[1].has(tf::fin));
  EXPECT_EQ(segs[1].h.seq, first + 2500);
  EXPECT_EQ(frames_[1].offload.gso_size, 0);
  EXPECT_EQ(conn.state(), TcpState::FinWait1);
}

TEST_P(TcpTso, SmallSendIsOnePlainSegmentWithPartialChecksum) {
  write(700);
  conn.on_peer_readable(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].payload.size(), 700u);
  EXPECT_EQ(frames_[0].offload.gso_size, 0);  // one segment: no GSO
  EXPECT_TRUE(frames_[0].offload.partial);
  expect_partial_checksum(frames_[0]);
  expect_bytes(segs[0]);
}

TEST_P(TcpTso, ChecksumOffloadAloneKeepsMssSegments) {
  io.caps = TxCaps{true, false, false, 0};
  write(2500);
  conn.on_peer_readable(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(segs[i].payload.size(), i < 2 ? 1000u : 500u);
    EXPECT_EQ(frames_[i].offload.gso_size, 0);
    EXPECT_TRUE(frames_[i].offload.partial);
    expect_partial_checksum(frames_[i]);
    expect_bytes(segs[i]);
  }
}

TEST_P(TcpTso, NoCapsNoOffloads) {
  io.caps = TxCaps{};
  write(2500);
  conn.on_peer_readable(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(frames_[i].offload.partial);
    EXPECT_EQ(frames_[i].offload.gso_size, 0);
    EXPECT_LE(segs[i].payload.size(), kMss);
  }
}

TEST_P(TcpTso, MaxPayloadCapIsRoundedToMss) {
  io.caps.max_tso_payload = 16500;  // -> 16000 (16 full segments)
  write(40000);
  conn.on_peer_readable(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 3u);
  EXPECT_EQ(segs[0].payload.size(), 16000u);
  EXPECT_EQ(segs[1].payload.size(), 16000u);
  EXPECT_EQ(segs[2].payload.size(), 8000u);
  EXPECT_EQ(segs[2].h.seq, first + 32000);
}

TEST_P(TcpTso, RtoRetransmitsFromFirstUnackedByte) {
  write(100000);
  conn.on_peer_readable(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 2u);  // 65000 + 35000
  // The guest got the first 12 segments only (a loss inside the first super-frame).
  ack(first + 12000);
  conn.flush(t);
  EXPECT_TRUE(io.out.empty());
  // RTO: go-back-N from snd_una, again as super-frames, bytes as written.
  auto dl = conn.next_deadline();
  ASSERT_TRUE(dl);
  t = *dl;
  conn.on_timer(t);
  segs = take_all();
  ASSERT_FALSE(segs.empty());
  EXPECT_EQ(segs[0].h.seq, first + 12000);
  size_t resent = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    expect_bytes(segs[i]);
    EXPECT_EQ(segs[i].h.seq, first + 12000 + uint32_t(resent));
    if (i + 1 < segs.size()) {
      EXPECT_EQ(segs[i].payload.size() % kMss, 0u);
    }
    resent += segs[i].payload.size();
  }
  EXPECT_EQ(resent, 88000u);  // up to what is available, inside the window
  EXPECT_EQ(conn.retransmits(), 1u);
  ack(first + 100000);
  conn.flush(t);
  EXPECT_EQ(conn.bytes_to_guest(), 100000u);
  EXPECT_EQ(conn.snd_nxt(), first + 100000);
}

TEST_P(TcpTso, FastRetransmitAfterThreeDupAcks) {
  write(100000);
  conn.on_peer_readable(t);
  take_all();
  ack(first + 30000);
  for (int i = 0; i < 3; ++i) ack(first + 30000);
  EXPECT_EQ(conn.fast_retransmits(), 1u);
  auto segs = take_all();
  ASSERT_FALSE(segs.empty());
  EXPECT_EQ(segs[0].h.seq, first + 30000);
  EXPECT_EQ(frames_.back().offload.gso_size, kMss);
  for (const auto& s : segs) expect_bytes(s);
  // A partial ACK in the middle of a retransmitted super-frame still moves things on.
  ack(first + 100000);
  conn.flush(t);
  EXPECT_EQ(conn.bytes_to_guest(), 100000u);
}

TEST_P(TcpTso, ZeroWindowProbeIsPlain) {
  write(5000);
  ack(first, 0);  // the guest closes its window
  conn.on_peer_readable(t);
  EXPECT_TRUE(io.out.empty());
  auto dl = conn.next_deadline();
  ASSERT_TRUE(dl);
  t = *dl;
  conn.on_timer(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].h.seq, first - 1);
  EXPECT_TRUE(segs[0].payload.empty());
  EXPECT_FALSE(frames_[0].offload.partial);
  // The window opens: super-frames again.
  ack(first, 1000);
  segs = take_all();
  ASSERT_EQ(segs.size(), 1u);
  EXPECT_EQ(segs[0].payload.size(), 5000u);
  EXPECT_EQ(frames_.back().offload.gso_size, kMss);
}

TEST_P(TcpTso, BlockedOutputStopsSuperFrames) {
  write(200000);
  io.blocked = true;
  conn.on_peer_readable(t);
  EXPECT_TRUE(io.out.empty());
  EXPECT_TRUE(conn.blocked_on_output());
  io.blocked = false;
  conn.on_peer_readable(t);
  auto segs = take_all();
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].h.seq, first);
}

INSTANTIATE_TEST_SUITE_P(Families, TcpTso, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "v6" : "v4"; });

}  // namespace
}  // namespace moat::flows::test
