// The drain hooks of the TCP engine (R-CLI-2): what counts as drained, what end_drain()
// closes quietly and what it resets, refusals while draining, and a guest that is gone.
#include <sys/ioctl.h>

#include "tcp_engine_fixture.h"

namespace moat::flows::test {
namespace {

using TcpDrainTest = TcpEngineFixture;

Buf bytes(size_t n, char c) { return Buf(n, std::byte(c)); }

/// The host socket's next read: "eof", "rst" (ECONNRESET) or "data"/"none".
std::string host_end(int fd) {
  char b[4096];
  for (int i = 0; i < 200; ++i) {
    const ssize_t n = ::recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (n == 0) return "eof";
    if (n > 0) continue;  // read past what the guest sent
    if (errno == ECONNRESET) return "rst";
    ::usleep(5000);
  }
  return "none";
}

TEST_F(TcpDrainTest, GuestFinDeliveredIsDrainedAndClosedQuietly) {
  start();
  UniqueFd host = handshake();
  engine->begin_drain(/*guest_gone=*/false, now());
  send_data(bytes(1000, 'a'));
  EXPECT_EQ(engine->undrained_flows(), 1u);  // no FIN yet
  send(tf::ack | tf::fin, gseq, mseq);
  gseq += 1;
  engine->flush(now());
  EXPECT_EQ(host_read(host.get(), 1000).size(), 1000u);
  // The host has every byte and the FIN (nothing unacknowledged): drained.
  EXPECT_TRUE(pump_until([&] { return engine->undrained_flows() == 0; }));
  EXPECT_EQ(engine->end_drain(now()), 0u);
  EXPECT_EQ(host_end(host.get()), "eof");
  EXPECT_EQ(engine->active_flows(), 0u);
}

TEST_F(TcpDrainTest, UnreadDataIsNotDrainedAndIsResetAtTheEnd) {
  start(/*rcvbuf=*/4096);
  UniqueFd host = handshake();
  int small = 4096;
  ::setsockopt(host.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  engine->begin_drain(false, now());
  for (int i = 0; i < 8; ++i) send_data(bytes(8000, 'b'));
  send(tf::ack | tf::fin, gseq, mseq);
  engine->flush(now());
  pump(5);
  // The guest's FIN is in, but the host has not taken the bytes: not drained.
  EXPECT_EQ(engine->undrained_flows(), 1u);
  EXPECT_EQ(engine->end_drain(now()), 1u);
  EXPECT_EQ(host_end(host.get()), "rst");
}

TEST_F(TcpDrainTest, NewSynsAreRefusedWhileDraining) {
  start();
  engine->begin_drain(false, now());
  EXPECT_TRUE(engine->draining());
  send(tf::syn, gseq, SeqNum{0});
  Seg s = expect_recv();
  EXPECT_EQ(s.h.flags, tf::rst | tf::ack);
  EXPECT_EQ(s.h.ack, gseq + 1);
  EXPECT_EQ(counters.get(Counter::tcp_refused), 1u);
  EXPECT_EQ(engine->active_flows(), 0u);
}

TEST_F(TcpDrainTest, GuestGoneShutsTheUpstreamAfterWhatMoatHolds) {
  start();
  UniqueFd host = handshake();
  send_data(bytes(3000, 'c'));
  engine->flush(now());
  EXPECT_EQ(engine->begin_drain(/*guest_gone=*/true, now()), 0u);
  EXPECT_EQ(host_read(host.get(), 3000).size(), 3000u);
  EXPECT_TRUE(pump_until([&] { return engine->undrained_flows() == 0; }));
  EXPECT_EQ(host_end(host.get()), "eof");
  EXPECT_EQ(engine->end_drain(now()), 0u);
}

TEST_F(TcpDrainTest, GuestGoneResetsHandshakes) {
  start();
  send(tf::syn, gseq, SeqNum{0});  // connecting: SynReceived
  EXPECT_EQ(engine->active_flows(), 1u);
  EXPECT_EQ(engine->begin_drain(/*guest_gone=*/true, now()), 1u);
  EXPECT_EQ(engine->active_flows(), 0u);
  EXPECT_EQ(engine->undrained_flows(), 0u);
}

TEST_F(TcpDrainTest, EstablishedWithoutFinIsNotDrained) {
  start();
  UniqueFd host = handshake();
  engine->begin_drain(false, now());
  EXPECT_EQ(engine->undrained_flows(), 1u);
  EXPECT_EQ(engine->end_drain(now()), 1u);
  EXPECT_EQ(host_end(host.get()), "rst");
}

}  // namespace
}  // namespace moat::flows::test
