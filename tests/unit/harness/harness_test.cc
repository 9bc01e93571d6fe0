// Deterministic in-process harness tests (SPEC R-HARD-6): transfers and TCP edge cases
// between the test guest stack and moat's Interface + TcpEngine over a seeded lossy link.
// Every test writes its link's pcap (see harness.h); on failure the path is printed.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "harness.h"

namespace moat::test {
namespace {

namespace tf = wire::tcp_flags;
using namespace std::chrono_literals;

const IpAddr kRemote4 = Ipv4Addr::from_octets(192, 0, 2, 10);
const IpAddr kRemote6 = *Ipv6Addr::parse("2001:db8::10");

std::string test_name() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string n = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : n)
    if (c == '/') c = '_';
  return n;
}

LinkFaults faults(double loss, double reorder, double dup) {
  LinkFaults f;
  f.loss = loss;
  f.reorder = reorder;
  f.duplicate = dup;
  return f;
}

/// Prints the pcap path and the run's numbers when the test failed.
struct OnFailure {
  explicit OnFailure(Sim& s) : sim(s) {}
  OnFailure(const OnFailure&) = delete;
  OnFailure& operator=(const OnFailure&) = delete;
  Sim& sim;
  ~OnFailure() {
    if (::testing::Test::HasFailure()) std::cerr << "harness: " << sim.summary() << "\n";
  }
};

bool same_bytes(const std::vector<std::byte>& a, const std::vector<std::byte>& b) { return a == b; }

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// ---- Bulk transfers ------------------------------------------------------------------------

struct BulkResult {
  bool done = false;
  bool guest_got = false, host_got = false;
  std::string pcap;
};

/// `up` bytes guest -> host and `down` bytes host -> guest on one connection, both sides
/// closing after their data; checks content and a clean end on both sides.
///
/// `allow_late_rst`: under heavy loss the last ACK of a FIN exchange moat closed first can
/// be lost until moat's TIME-WAIT record (2 s, R-TCP-9) expires; the guest's next FIN
/// retransmission then gets a RST in LAST-ACK. Everything was delivered by then, so with
/// this flag that end counts as done (the byte checks still apply).
BulkResult bulk(bool v6, uint64_t seed, size_t up, size_t down, LinkFaults f, const std::string& name,
                bool allow_late_rst = false) {
  SimConfig cfg;
  cfg.seed = seed;
  cfg.to_moat = f;
  cfg.to_guest = f;
  cfg.name = name;
  Sim sim(cfg);
  OnFailure guard(sim);
  const auto up_data = pattern(up, seed * 2 + 1);
  const auto down_data = pattern(down, seed * 2 + 2);
  sim.host().on_accept = [&](HostApp::Conn& c) {
    c.to_send = down_data;
    c.shutdown_when_sent = true;
  };
  BulkResult r;
  r.pcap = sim.pcap_path();
  EXPECT_TRUE(sim.resolve(v6));
  TcpSocket& s = sim.guest().connect(v6 ? kRemote6 : kRemote4, 443, sim.now());
  s.write(Bytes(up_data));
  s.close();
  auto late_rst = [&] {
    return allow_late_rst && s.reset() && s.reset_in() == GuestTcpState::last_ack && s.fin_received() &&
           sim.host().conn_count() == 1 && sim.host().conn(0).received.size() == up;
  };
  r.done = sim.run_until(
      [&] {
        return (s.fin_received() && s.all_acked() && sim.host().conn_count() == 1 &&
                sim.host().conn(0).peer.app_read_closed()) ||
               late_rst();
      },
      600s);
  EXPECT_TRUE(r.done) << s.describe() << "; " << sim.moat_side(s);
  if (sim.host().conn_count() != 1) {
    ADD_FAILURE() << "host saw " << sim.host().conn_count() << " connections";
    return r;
  }
  HostApp::Conn& c = sim.host().conn(0);
  r.host_got = same_bytes(c.received, up_data);
  r.guest_got = same_bytes(s.received(), down_data);
  EXPECT_TRUE(r.host_got) << "host received " << c.received.size() << " of " << up << " bytes";
  EXPECT_TRUE(r.guest_got) << "guest received " << s.received().size() << " of " << down << " bytes";
  // Both FINs exchanged: the guest (which closed too) ends in TIME-WAIT or CLOSED, and moat
  // frees the flow once its own FIN is acknowledged.
  EXPECT_TRUE(sim.run_until([&] { return sim.tcp().active_flows() == 0 && c.closed; }, 120s))
      << "moat still holds " << sim.tcp().active_flows() << " flow(s); " << s.describe();
  EXPECT_TRUE(s.state() == GuestTcpState::time_wait || s.state() == GuestTcpState::closed) << s.describe();
  EXPECT_TRUE(!s.reset() || late_rst()) << s.describe();
  EXPECT_EQ(sim.counters().get(Counter::internal_errors), 0u);
  EXPECT_EQ(sim.guest().stats().bad_checksum, 0u);
  return r;
}

class HarnessBulk : public ::testing::TestWithParam<bool> {};

TEST_P(HarnessBulk, FewMiBBothWaysUnderLossReorderDuplication) {
  const bool v6 = GetParam();
  const BulkResult r = bulk(v6, 42, 3 << 20, 3 << 20, faults(0.05, 0.05, 0.05), test_name());
  EXPECT_TRUE(r.done && r.host_got && r.guest_got) << "pcap: " << r.pcap;
}

TEST_P(HarnessBulk, CleanLinkIsFastAndRetransmitsNothing) {
  const bool v6 = GetParam();
  SimConfig cfg;
  cfg.seed = 3;
  cfg.name = test_name();
  Sim sim(cfg);
  OnFailure guard(sim);
  const auto down = pattern(1 << 20, 9);
  sim.host().on_accept = [&](HostApp::Conn& c) {
    c.to_send = down;
    c.shutdown_when_sent = true;
  };
  ASSERT_TRUE(sim.resolve(v6));
  TcpSocket& s = sim.guest().connect(v6 ? kRemote6 : kRemote4, 80, sim.now());
  ASSERT_TRUE(sim.run_until([&] { return s.fin_received(); }, 60s)) << s.describe();
  EXPECT_TRUE(same_bytes(s.received(), down));
  EXPECT_EQ(sim.counters().get(Counter::tcp_retransmits), 0u);
  EXPECT_EQ(s.stats().retransmits, 0u);
  // 1 MiB over a 1 ms round trip with a 64 KiB window: well under a simulated second.
  EXPECT_LT(sim.sim_seconds(), 1.0) << sim.summary();
}

INSTANTIATE_TEST_SUITE_P(V4V6, HarnessBulk, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? std::string("v6") : std::string("v4"); });

// A sweep over seeds and fault mixes (a few by default; MOAT_HARNESS_SWEEP=N for N seeds
// from MOAT_HARNESS_SWEEP_FIRST (100), e.g. to hunt for a seed that breaks something, then
// replay it by number). Each seed picks loss 0-15 %, reordering 0-20 %, duplication 0-10 %,
// the family and up to 512 KiB each way.
BulkResult sweep_case(uint64_t seed) {
  SimRng r(seed);
  const double loss = 0.01 * double(r.below(16)), reorder = 0.01 * double(r.below(21)), dup = 0.01 * double(r.below(11));
  const bool v6 = r.below(2) == 1;
  const size_t up = size_t(r.below(512 << 10)), down = size_t(r.below(512 << 10));
  SCOPED_TRACE("seed " + std::to_string(seed) + " loss " + std::to_string(loss) + " reorder " +
               std::to_string(reorder) + " dup " + std::to_string(dup) + (v6 ? " v6" : " v4") + " up " +
               std::to_string(up) + " down " + std::to_string(down));
  BulkResult b =
      bulk(v6, seed, up, down, faults(loss, reorder, dup), test_name() + ".seed" + std::to_string(seed), true);
  EXPECT_TRUE(b.done && b.host_got && b.guest_got) << b.pcap;
  return b;
}

TEST(HarnessSweep, ManySeedsUnderHeavyFaults) {
  const char* env = std::getenv("MOAT_HARNESS_SWEEP");
  const char* first_env = std::getenv("MOAT_HARNESS_SWEEP_FIRST");
  const uint64_t n = env ? std::strtoull(env, nullptr, 10) : 6;
  const uint64_t first = first_env ? std::strtoull(first_env, nullptr, 10) : 100;
  for (uint64_t seed = first; seed < first + n; ++seed) {
    const BulkResult b = sweep_case(seed);
    if (::testing::Test::HasFailure()) break;
    std::remove(b.pcap.c_str());  // keep only a failing seed's capture
  }
}

// FINDING (open, for the TCP owner; see the harness report): under sustained loss moat's
// RTO backs off to the 60 s maximum and stays there. Go-back-N (R-TCP-7) resends every
// segment after a loss, so by Karn's rule the ACKs that follow give no RTT sample, and
// without TCP timestamps nothing collapses the backoff (RFC 6298 §5 note). If a segment
// is then lost during the FIN exchange, the next retransmission is due 60 s later — no
// earlier than tcp.close_timeout (60 s from moat's FIN, R-TCP-11), which resets both sides
// first: the guest loses the tail of the download (seed 296: 7456 bytes; seed 1021: 60 KB)
// and gets a RST. Replays of the two sweep seeds that hit it (~1 in 500 at these fault
// rates); enable once fixed (e.g. RTT samples from never-retransmitted segments, or
// timestamps, or a retransmission scheduled before the close deadline).
TEST(HarnessFinding, DISABLED_RtoBackedOffPastCloseTimeoutLosesDownloadTail) {
  for (uint64_t seed : {uint64_t{296}, uint64_t{1021}}) {
    (void)sweep_case(seed);
  }
}

// ---- Heavy loss ----------------------------------------------------------------------------

class HarnessHeavyLoss : public ::testing::TestWithParam<uint64_t> {};

TEST_P(HarnessHeavyLoss, ThirtyPercentLossCompletesOrTimesOutCleanly) {
  const uint64_t seed = GetParam();
  SimConfig cfg;
  cfg.seed = seed;
  cfg.to_moat = faults(0.30, 0.05, 0.02);
  cfg.to_guest = faults(0.30, 0.05, 0.02);
  cfg.name = test_name();
  Sim sim(cfg);
  OnFailure guard(sim);
  const auto up = pattern(128 << 10, seed);
  const auto down = pattern(128 << 10, seed + 100);
  sim.host().on_accept = [&](HostApp::Conn& c) {
    c.to_send = down;
    c.shutdown_when_sent = true;
  };
  ASSERT_TRUE(sim.resolve(seed & 1));
  TcpSocket& s = sim.guest().connect((seed & 1) ? kRemote6 : kRemote4, 443, sim.now());
  s.write(Bytes(up));
  s.close();
  const bool guest_done = sim.run_until(
      [&] {
        return (s.fin_received() && s.all_acked()) || s.timed_out() || s.reset() ||
               s.state() == GuestTcpState::closed;
      },
      1200s);
  ASSERT_TRUE(guest_done) << s.describe();
  if (s.fin_received() && s.all_acked()) {
    // Completed: every byte intact both ways.
    EXPECT_TRUE(same_bytes(s.received(), down));
    ASSERT_EQ(sim.host().conn_count(), 1u);
    EXPECT_TRUE(same_bytes(sim.host().conn(0).received, up));
  } else {
    // Gave up: whatever arrived is a prefix of what was sent (never wrong bytes).
    EXPECT_TRUE(std::equal(s.received().begin(), s.received().end(), down.begin())) << s.describe();
  }
  // Either way moat ends the flow by itself (FIN handshake, RST, or its own timeouts) and
  // holds nothing afterwards.
  EXPECT_TRUE(sim.run_until([&] { return sim.tcp().active_flows() == 0; }, 1200s))
      << "moat still holds the flow; guest " << s.describe();
  EXPECT_EQ(sim.counters().get(Counter::internal_errors), 0u);
  RecordProperty("completed", (s.fin_received() && s.all_acked()) ? "yes" : "no");
  std::cerr << "harness: 30% loss seed " << seed << ": "
            << ((s.fin_received() && s.all_acked()) ? "completed" : "timed out") << " after "
            << sim.sim_seconds() << " simulated s, guest retransmits " << s.stats().retransmits
            << ", moat retransmits " << sim.counters().get(Counter::tcp_retransmits) << "\n";
}

TEST(HarnessTimeout, BlackholedLinkTimesOutOnBothSides) {
  SimConfig cfg;
  cfg.seed = 21;
  cfg.name = test_name();
  Sim sim(cfg);
  OnFailure guard(sim);
  sim.host().on_accept = [](HostApp::Conn& c) { c.to_send = pattern(4 << 20, 21); };
  ASSERT_TRUE(sim.resolve(false));
  TcpSocket& s = sim.guest().connect(kRemote4, 443, sim.now());
  s.write(Bytes(pattern(1 << 20, 22)));
  ASSERT_TRUE(sim.run_until([&] { return s.received().size() > 200000; }, 10s)) << s.describe();
  // The link dies both ways with data in flight in both directions.
  sim.link().faults(SimLink::Dir::to_moat).loss = 1.0;
  sim.link().faults(SimLink::Dir::to_guest).loss = 1.0;
  ASSERT_TRUE(sim.run_until([&] { return s.timed_out(); }, 600s)) << s.describe();
  // moat gives up on its own (retransmission limit), tells the upstream (reset), frees the
  // flow and counts a timeout; nothing else breaks.
  ASSERT_TRUE(sim.run_until([&] { return sim.tcp().active_flows() == 0; }, 3600s));
  EXPECT_TRUE(sim.host().conn(0).closed);
  EXPECT_TRUE(sim.host().conn(0).peer.aborted_by_conn());
  EXPECT_GE(sim.counters().get(Counter::tcp_timeouts), 1u);
  EXPECT_EQ(sim.counters().get(Counter::internal_errors), 0u);
  std::cerr << "harness: blackholed flow freed by moat after " << sim.sim_seconds() << " simulated s\n";
}

INSTANTIATE_TEST_SUITE_P(Seeds, HarnessHeavyLoss, ::testing::Values(uint64_t{1}, uint64_t{2}, uint64_t{5}));

// ---- Handshake and teardown edge cases ------------------------------------------------------

class HarnessEdge : public ::testing::TestWithParam<bool> {
 protected:
  SimConfig cfg;
  std::unique_ptr<Sim> sim;
  std::unique_ptr<OnFailure> guard;
  void start() {
    cfg.name = test_name();
    sim = std::make_unique<Sim>(cfg);
    guard = std::make_unique<OnFailure>(*sim);
    ASSERT_TRUE(sim->resolve(GetParam()));
  }
  [[nodiscard]] IpAddr remote() const { return GetParam() ? kRemote6 : kRemote4; }
  void TearDown() override { guard.reset(); }
};

TEST_P(HarnessEdge, SynToRefusedPortGetsRst) {
  start();
  sim->host().refused_ports.insert(81);
  TcpSocket& s = sim->guest().connect(remote(), 81, sim->now());
  ASSERT_TRUE(sim->run_until([&] { return s.state() == GuestTcpState::closed; }, 10s)) << s.describe();
  EXPECT_TRUE(s.reset());
  EXPECT_EQ(s.stats().retransmits, 0u);  // refused at once, no SYN retry needed
  EXPECT_EQ(sim->counters().get(Counter::tcp_refused), 1u);
  EXPECT_EQ(sim->tcp().active_flows(), 0u);
}

TEST_P(HarnessEdge, LostSynAckIsRecoveredBySynRetransmit) {
  start();
  sim->link().faults(SimLink::Dir::to_guest).loss = 1.0;  // the first SYN-ACK(s) vanish
  TcpSocket& s = sim->guest().connect(remote(), 443, sim->now());
  sim->run_for(500ms);
  EXPECT_EQ(s.state(), GuestTcpState::syn_sent);
  sim->link().faults(SimLink::Dir::to_guest).loss = 0;
  ASSERT_TRUE(sim->run_until([&] { return s.state() == GuestTcpState::established; }, 10s)) << s.describe();
  EXPECT_GE(s.stats().retransmits, 1u);  // our SYN went again
  EXPECT_EQ(sim->host().conn_count(), 1u);  // the retransmitted SYN did not open a second flow
  EXPECT_EQ(sim->tcp().active_flows(), 1u);
  const auto data = pattern(10000, 1);
  s.write(Bytes(data));
  ASSERT_TRUE(sim->run_until([&] { return sim->host().conn(0).received.size() == data.size(); }, 10s));
  EXPECT_TRUE(same_bytes(sim->host().conn(0).received, data));
}

TEST_P(HarnessEdge, LostHandshakeAckIsCoveredByFirstData) {
  start();
  TcpSocket& s = sim->guest().connect(remote(), 443, sim->now());
  // Let the SYN through and the SYN-ACK back, then lose everything toward moat: the
  // guest's final handshake ACK is gone.
  ASSERT_TRUE(sim->run_until([&] { return sim->link().stats(SimLink::Dir::to_moat).sent >= 3; }, 5s));
  sim->link().faults(SimLink::Dir::to_moat).loss = 1.0;
  ASSERT_TRUE(sim->run_until([&] { return s.state() == GuestTcpState::established; }, 5s)) << s.describe();
  sim->run_for(5ms);
  sim->link().faults(SimLink::Dir::to_moat).loss = 0;
  const auto data = pattern(3000, 2);
  s.write(Bytes(data));  // its ACK completes moat's handshake (RFC 793 §3.4)
  ASSERT_TRUE(sim->run_until([&] { return sim->host().conn_count() == 1 && sim->host().conn(0).received.size() == data.size(); },
                             20s))
      << s.describe();
  EXPECT_TRUE(same_bytes(sim->host().conn(0).received, data));
  EXPECT_FALSE(s.reset());
}

TEST_P(HarnessEdge, UpstreamResetReachesGuestAsRst) {
  start();
  sim->host().on_accept = [](HostApp::Conn& c) {
    c.abort_after_read = true;
    c.abort_after_bytes = 5000;
  };
  TcpSocket& s = sim->guest().connect(remote(), 443, sim->now());
  s.write(Bytes(pattern(20000, 3)));
  ASSERT_TRUE(sim->run_until([&] { return s.reset(); }, 10s)) << s.describe();
  EXPECT_EQ(s.state(), GuestTcpState::closed);
  EXPECT_TRUE(sim->run_until([&] { return sim->tcp().active_flows() == 0; }, 5s));
  EXPECT_EQ(sim->counters().get(Counter::tcp_reset_by_upstream), 1u);
}

TEST_P(HarnessEdge, GuestResetFreesFlowAndAbortsUpstream) {
  start();
  sim->host().on_accept = [](HostApp::Conn& c) { c.to_send = pattern(1 << 20, 4); };
  TcpSocket& s = sim->guest().connect(remote(), 443, sim->now());
  ASSERT_TRUE(sim->run_until([&] { return s.received().size() >= 100000; }, 10s)) << s.describe();
  s.abort(sim->now());
  ASSERT_TRUE(sim->run_until([&] { return sim->tcp().active_flows() == 0; }, 5s));
  EXPECT_TRUE(sim->host().conn(0).peer.aborted_by_conn());
  EXPECT_TRUE(sim->host().conn(0).closed);
  EXPECT_EQ(sim->counters().get(Counter::tcp_reset_by_guest), 1u);
  // What moat still had in flight meets a closed port: the guest stack answers RST, and
  // moat stays quiet after that.
  sim->run_for(5s);
  EXPECT_EQ(sim->tcp().active_flows(), 0u);
}

TEST_P(HarnessEdge, SimultaneousCloseBothSidesFinish) {
  start();
  const auto down = pattern(50000, 5), up = pattern(50000, 6);
  sim->host().on_accept = [&](HostApp::Conn& c) {
    c.to_send = down;
    c.shutdown_when_sent = true;
  };
  TcpSocket& s = sim->guest().connect(remote(), 443, sim->now());
  s.write(Bytes(up));
  s.close();  // our FIN goes right after the data, while moat's data and FIN are coming
  ASSERT_TRUE(sim->run_until([&] { return s.fin_received() && s.all_acked(); }, 20s)) << s.describe();
  EXPECT_TRUE(same_bytes(s.received(), down));
  EXPECT_TRUE(same_bytes(sim->host().conn(0).received, up));
  EXPECT_TRUE(sim->run_until([&] { return sim->tcp().active_flows() == 0; }, 120s));
  EXPECT_TRUE(sim->run_until([&] { return s.state() == GuestTcpState::closed; }, 10s)) << s.describe();
}

TEST_P(HarnessEdge, HostClosesFirstGuestKeepsSendingHalfClosed) {
  start();
  sim->host().on_accept = [](HostApp::Conn& c) {
    c.to_send = pattern(1000, 7);
    c.shutdown_when_sent = true;
  };
  TcpSocket& s = sim->guest().connect(remote(), 443, sim->now());
  ASSERT_TRUE(sim->run_until([&] { return s.fin_received(); }, 10s)) << s.describe();
  EXPECT_EQ(s.state(), GuestTcpState::close_wait);
  // Half-close (RFC 793 §3.5): the guest's direction is still open.
  const auto up = pattern(200000, 8);
  s.write(Bytes(up));
  ASSERT_TRUE(sim->run_until([&] { return sim->host().conn(0).received.size() == up.size(); }, 20s)) << s.describe();
  EXPECT_TRUE(same_bytes(sim->host().conn(0).received, up));
  s.close();
  ASSERT_TRUE(sim->run_until([&] { return s.state() == GuestTcpState::closed; }, 20s)) << s.describe();
  EXPECT_FALSE(s.reset());
  EXPECT_TRUE(sim->run_until([&] { return sim->tcp().active_flows() == 0; }, 120s));
}

TEST_P(HarnessEdge, AckForUnknownConnectionGetsRst) {
  start();
  wire::TcpRepr ack;
  ack.seq = wire::SeqNum{1234};
  ack.ack = wire::SeqNum{5678};
  ack.flags = tf::ack;
  ack.window = 1000;
  sim->guest().send_raw_tcp(remote(), 45000, 443, ack, {});
  ASSERT_TRUE(sim->run_until([&] { return !sim->guest().strays().empty(); }, 5s));
  const auto& st = sim->guest().strays().front();
  EXPECT_TRUE(st.seg.has(tf::rst));
  EXPECT_EQ(st.seg.seq.value, 5678u);  // RFC 793 §3.4: <SEQ=SEG.ACK><CTL=RST>
  EXPECT_EQ(sim->tcp().active_flows(), 0u);
  EXPECT_EQ(sim->host().conn_count(), 0u);
}

TEST_P(HarnessEdge, DuplicateSynOnEstablishedFlowDoesNotOpenAnother) {
  cfg.to_moat = faults(0, 0, 1.0);  // every guest frame arrives twice
  start();
  TcpSocket& s = sim->guest().connect(remote(), 443, sim->now());
  const auto up = pattern(40000, 9);
  s.write(Bytes(up));
  s.close();
  ASSERT_TRUE(sim->run_until([&] { return sim->host().conn_count() == 1 && sim->host().conn(0).peer.app_read_closed(); }, 20s))
      << s.describe();
  EXPECT_EQ(sim->host().conn_count(), 1u);
  EXPECT_TRUE(same_bytes(sim->host().conn(0).received, up));
}

INSTANTIATE_TEST_SUITE_P(V4V6, HarnessEdge, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? std::string("v6") : std::string("v4"); });

// ---- Determinism ---------------------------------------------------------------------------

TEST(HarnessDeterminism, SameSeedGivesByteIdenticalPcaps) {
  const BulkResult a = bulk(false, 7, 256 << 10, 256 << 10, faults(0.05, 0.05, 0.05), test_name() + ".run1");
  const BulkResult b = bulk(false, 7, 256 << 10, 256 << 10, faults(0.05, 0.05, 0.05), test_name() + ".run2");
  const BulkResult c = bulk(false, 8, 256 << 10, 256 << 10, faults(0.05, 0.05, 0.05), test_name() + ".seed8");
  ASSERT_TRUE(a.done && b.done && c.done);
  const std::string pa = file_bytes(a.pcap), pb = file_bytes(b.pcap), pc = file_bytes(c.pcap);
  EXPECT_GT(pa.size(), size_t(256 << 10) * 2) << a.pcap;
  EXPECT_TRUE(pa == pb) << "pcaps differ: " << a.pcap << " vs " << b.pcap;
  EXPECT_FALSE(pa == pc) << "a different seed gave the same run: " << c.pcap;
  EXPECT_GT(getrandom_calls(), 0u);  // the seeded getrandom is the one moat called
}

TEST(HarnessDeterminism, Ipv6SameSeedTwice) {
  const BulkResult a = bulk(true, 11, 128 << 10, 128 << 10, faults(0.05, 0.05, 0.05), test_name() + ".run1");
  const BulkResult b = bulk(true, 11, 128 << 10, 128 << 10, faults(0.05, 0.05, 0.05), test_name() + ".run2");
  ASSERT_TRUE(a.done && b.done);
  EXPECT_TRUE(file_bytes(a.pcap) == file_bytes(b.pcap)) << a.pcap << " vs " << b.pcap;
}

}  // namespace
}  // namespace moat::test
