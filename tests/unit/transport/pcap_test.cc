#include "transport/pcap.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "transport/tap.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

namespace moat::transport {
namespace {

std::string temp_path(const char* name) {
  const char* dir = std::getenv("TMPDIR");
  std::string p = std::string(dir != nullptr ? dir : "/tmp") + "/moat_pcap_" + std::to_string(::getpid()) + "_" + name;
  return p;
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  if (!c.empty()) std::memcpy(out.data(), c.data(), c.size());
  return out;
}

// Expected bytes are assembled independently of PcapWriter: host-order fields (libpcap
// writes native order; readers detect it from the magic).
void put32(std::vector<std::byte>& v, uint32_t x) {
  std::byte b[4];
  std::memcpy(b, &x, 4);
  v.insert(v.end(), b, b + 4);
}
void put16(std::vector<std::byte>& v, uint16_t x) {
  std::byte b[2];
  std::memcpy(b, &x, 2);
  v.insert(v.end(), b, b + 2);
}

std::vector<std::byte> global_header(uint32_t snaplen) {
  std::vector<std::byte> v;
  put32(v, 0xa1b2c3d4);
  put16(v, 2);
  put16(v, 4);
  put32(v, 0);
  put32(v, 0);
  put32(v, snaplen);
  put32(v, 1);
  return v;
}

// A well-formed ARP request (who-has 10.0.0.1 tell 10.0.0.2), padded to 60 bytes.
// ARP carries no checksum, so a literal is exact.
std::vector<std::byte> arp_request() {
  const uint8_t raw[] = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06,  // Ethernet
      0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,                                      // htype ptype hlen plen op
      0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 10, 0, 0, 2,                                      // sender
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 0, 0, 1,                                      // target
  };
  std::vector<std::byte> f(60, std::byte{0});
  std::memcpy(f.data(), raw, sizeof raw);
  return f;
}

class PcapWriterTest : public ::testing::Test {
 protected:
  void TearDown() override { ::unlink(path_.c_str()); }
  std::string path_ = temp_path(::testing::UnitTest::GetInstance()->current_test_info()->name());
};

TEST_F(PcapWriterTest, EmptyCaptureIsJustTheGlobalHeader) {
  auto w = PcapWriter::open(path_);
  ASSERT_TRUE(w.has_value()) << w.error().message();
  // Written at open, before any flush.
  EXPECT_EQ(read_file(path_), global_header(262144));
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(PcapWriterTest, RecordsAreByteExact) {
  PcapConfig cfg;
  cfg.snaplen = 64;
  auto w = PcapWriter::open(path_, cfg);
  ASSERT_TRUE(w.has_value());
  auto arp = arp_request();
  std::vector<std::byte> big(100);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::byte>(i);
  EXPECT_TRUE(w->write(arp, PcapTimestamp{1700000000, 123456}));
  EXPECT_TRUE(w->write(big, PcapTimestamp{1700000001, 999999}));  // truncated to snaplen
  EXPECT_EQ(read_file(path_).size(), 24u);  // still buffered
  ASSERT_TRUE(w->close().has_value());

  std::vector<std::byte> expect = global_header(64);
  put32(expect, 1700000000);
  put32(expect, 123456);
  put32(expect, 60);
  put32(expect, 60);
  expect.insert(expect.end(), arp.begin(), arp.end());
  put32(expect, 1700000001);
  put32(expect, 999999);
  put32(expect, 64);   // incl_len
  put32(expect, 100);  // orig_len
  expect.insert(expect.end(), big.begin(), big.begin() + 64);
  EXPECT_EQ(read_file(path_), expect);
  EXPECT_EQ(w->records(), 2u);
  EXPECT_EQ(w->dropped(), 0u);
  EXPECT_EQ(w->file_bytes(), expect.size());
}

TEST_F(PcapWriterTest, TruncatesExistingFileAndForcesMode) {
  {
    UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    ASSERT_TRUE(fd.valid());
    std::string junk(1000, 'x');
    ASSERT_EQ(::write(fd.get(), junk.data(), junk.size()), 1000);
    ::fchmod(fd.get(), 0644);
  }
  auto w = PcapWriter::open(path_);
  ASSERT_TRUE(w.has_value());
  ASSERT_TRUE(w->close().has_value());
  EXPECT_EQ(read_file(path_).size(), 24u);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(PcapWriterTest, DestructorFlushes) {
  {
    auto w = PcapWriter::open(path_);
    ASSERT_TRUE(w.has_value());
    auto f = arp_request();
    ASSERT_TRUE(w->write(f));
  }
  EXPECT_EQ(read_file(path_).size(), 24u + 16u + 60u);
}

TEST_F(PcapWriterTest, FlushesWhenBufferFills) {
  PcapConfig cfg;
  cfg.snaplen = 100;
  cfg.buffer_bytes = 1000;
  auto w = PcapWriter::open(path_, cfg);
  ASSERT_TRUE(w.has_value());
  auto f = arp_request();  // 76-byte records: 13 fit in 1000 bytes
  for (int i = 0; i < 14; ++i) ASSERT_TRUE(w->write(f));
  EXPECT_EQ(read_file(path_).size(), 24u + 13u * 76u);
  ASSERT_TRUE(w->flush().has_value());
  EXPECT_EQ(read_file(path_).size(), 24u + 14u * 76u);
}

TEST_F(PcapWriterTest, MaxSizeStopsCapture) {
  PcapConfig cfg;
  cfg.max_size = 24 + 2 * 76;
  auto w = PcapWriter::open(path_, cfg);
  ASSERT_TRUE(w.has_value());
  auto f = arp_request();
  EXPECT_TRUE(w->write(f));
  EXPECT_TRUE(w->write(f));
  EXPECT_FALSE(w->write(f));
  EXPECT_TRUE(w->stopped());
  EXPECT_FALSE(w->write(f));
  EXPECT_EQ(w->dropped(), 2u);
  ASSERT_TRUE(w->close().has_value());
  EXPECT_EQ(read_file(path_).size(), 24u + 2u * 76u);
}

TEST_F(PcapWriterTest, HeaderWriteFailureFailsOpen) {
  auto w = PcapWriter::open("/dev/full");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().value, ENOSPC);
}

TEST_F(PcapWriterTest, FailedWritesAreCountedAndStopTheCapture) {
  // RLIMIT_FSIZE makes write(2) fail with EFBIG past a size (SIGXFSZ ignored).
  auto w = PcapWriter::open(path_);
  ASSERT_TRUE(w.has_value());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 24 + 76 + 10;  // header, one record, part of the next
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto f = arp_request();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(w->write(f));
  Status s = w->flush();  // short write, then EFBIG
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().value, EFBIG);
  EXPECT_EQ(w->write_failures(), 1u);
  EXPECT_EQ(w->dropped(), 3u);  // the whole buffer is lost (one record of it hit the file)
  EXPECT_TRUE(w->stopped());
  EXPECT_FALSE(w->write(f));
  EXPECT_EQ(w->dropped(), 4u);
  EXPECT_TRUE(w->close().has_value());  // nothing left to write
}

TEST_F(PcapWriterTest, OpenFailsForBadPath) {
  auto w = PcapWriter::open("/nonexistent-dir/x.pcap");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().value, ENOENT);
}

// Parses the file with a real reader when one is installed.
TEST_F(PcapWriterTest, TcpdumpParsesTheFile) {
  const bool have_tcpdump = std::system("command -v tcpdump >/dev/null 2>&1") == 0;
  const bool have_tshark = std::system("command -v tshark >/dev/null 2>&1") == 0;
  if (!have_tcpdump && !have_tshark) GTEST_SKIP() << "neither tcpdump nor tshark installed";
  {
    auto w = PcapWriter::open(path_);
    ASSERT_TRUE(w.has_value());
    auto f = arp_request();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(w->write(f));
  }
  const std::string out_path = path_ + ".txt";
  const std::string cmd = have_tcpdump ? "tcpdump -r '" + path_ + "' -nn > '" + out_path + "' 2>&1"
                                       : "tshark -r '" + path_ + "' > '" + out_path + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(out_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ::unlink(out_path.c_str());
  EXPECT_EQ(rc, 0) << text;
  size_t lines = 0;
  for (size_t pos = 0; (pos = text.find("Request who-has 10.0.0.1 tell 10.0.0.2", pos)) != std::string::npos; ++pos) ++lines;
  EXPECT_EQ(lines, 3u) << text;
  EXPECT_EQ(text.find("truncated"), std::string::npos) << text;
}

class PcapTapTest : public PcapWriterTest {};

TEST_F(PcapTapTest, RecordsBothDirections) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd guest(sv[1]);
  Counters counters;
  auto tap = TapTransport::create(UniqueFd(sv[0]), counters);
  ASSERT_TRUE(tap.has_value());
  auto writer = PcapWriter::open(path_);
  ASSERT_TRUE(writer.has_value());
  PcapTap pcap(std::move(tap).value(), std::move(writer).value());
  EXPECT_TRUE(pcap.capturing());

  auto from_guest = arp_request();
  ASSERT_EQ(::send(guest.get(), from_guest.data(), from_guest.size(), 0), 60);
  std::vector<std::byte> runt(10);
  ASSERT_EQ(::send(guest.get(), runt.data(), runt.size(), 0), 10);  // dropped, not recorded
  int delivered = 0;
  auto r = pcap.receive([&](Bytes f) {
    ++delivered;
    EXPECT_EQ(f.size(), 60u);
  }, kMaxFramesPerWakeup);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 2u);
  EXPECT_EQ(delivered, 1);

  std::vector<std::byte> to_guest(80, std::byte{0x5a});
  EXPECT_TRUE(pcap.send(to_guest));
  EXPECT_EQ(pcap.writer()->records(), 2u);

  ASSERT_TRUE(pcap.stop().has_value());
  EXPECT_FALSE(pcap.capturing());
  EXPECT_TRUE(pcap.send(to_guest));  // still forwards, no longer records

  const auto file = read_file(path_);
  ASSERT_EQ(file.size(), 24u + 16u + 60u + 16u + 80u);
  EXPECT_EQ(std::memcmp(file.data() + 24 + 16, from_guest.data(), 60), 0);
  EXPECT_EQ(std::memcmp(file.data() + 24 + 16 + 60 + 16, to_guest.data(), 80), 0);
  EXPECT_EQ(counters.get(Counter::link_to_guest_frames), 2u);
}

TEST_F(PcapTapTest, StartAtRuntime) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd guest(sv[1]);
  Counters counters;
  auto tap = TapTransport::create(UniqueFd(sv[0]), counters);
  ASSERT_TRUE(tap.has_value());
  PcapTap pcap(std::move(tap).value());
  EXPECT_FALSE(pcap.capturing());
  EXPECT_TRUE(pcap.flush_capture().has_value());
  std::vector<std::byte> f(60, std::byte{1});
  EXPECT_TRUE(pcap.send(f));
  auto writer = PcapWriter::open(path_);
  ASSERT_TRUE(writer.has_value());
  pcap.start(std::move(writer).value());
  EXPECT_TRUE(pcap.send(f));
  ASSERT_TRUE(pcap.flush_capture().has_value());
  EXPECT_EQ(read_file(path_).size(), 24u + 16u + 60u);
}

// R-TR-6: an offloaded to-guest frame goes to the link untouched (header + partial checksum)
// and is recorded as the guest sees it after the device completed the checksum.
TEST_F(PcapTapTest, OffloadedFrameIsRecordedWithCompletedChecksum) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd guest(sv[1]);
  Counters counters;
  TapConfig tc;
  tc.vnet_hdr_len = kVnetHdrLegacy;
  tc.guest_offloads = kOffloadCsum | kOffloadTso4;
  auto tap = TapTransport::create(UniqueFd(sv[0]), counters, tc);
  ASSERT_TRUE(tap.has_value());
  auto writer = PcapWriter::open(path_);
  ASSERT_TRUE(writer.has_value());
  PcapTap pcap(std::move(tap).value(), std::move(writer).value());
  EXPECT_EQ(pcap.guest_offloads(), kOffloadCsum | kOffloadTso4);

  // A 3000-byte-payload super-frame (gso_size 1000) with a partial TCP checksum.
  const Ipv4Addr src = Ipv4Addr::from_octets(1, 2, 3, 4), dst = Ipv4Addr::from_octets(100, 96, 0, 2);
  constexpr size_t kPayload = 3000, kL4 = 20 + kPayload, kLen = 14 + 20 + kL4;
  std::vector<std::byte> frame(kLen);
  wire::EthernetRepr eth;
  eth.ethertype = wire::kEtherTypeIpv4;
  ASSERT_TRUE(eth.emit(MutBytes(frame.data(), 14)));
  wire::Ipv4Repr ip;
  ip.src = src;
  ip.dst = dst;
  ip.protocol = wire::kProtoTcp;
  ip.payload_len = uint16_t(kL4);
  ASSERT_TRUE(ip.emit(MutBytes(frame.data() + 14, 20)));
  for (size_t i = 0; i < kPayload; ++i) frame[54 + i] = std::byte(uint8_t(i * 13));
  wire::TcpRepr tcp;
  tcp.src_port = 443;
  tcp.dst_port = 40000;
  tcp.flags = wire::tcp_flags::ack;
  const MutBytes l4(frame.data() + 34, kL4);
  ASSERT_TRUE(tcp.emit_v4_partial(l4, src, dst));
  VnetHeader h;
  h.flags = kVnetNeedsCsum;
  h.gso_type = kVnetGsoTcpv4;
  h.hdr_len = 54;
  h.gso_size = 1000;
  h.csum_start = 34;
  h.csum_offset = 16;
  ASSERT_TRUE(pcap.send_offloaded(frame, h));

  // The link got header + the frame unchanged.
  std::vector<std::byte> got(kLen + 64);
  ASSERT_EQ(::recv(guest.get(), got.data(), got.size(), 0), ssize_t(kVnetHdrLegacy + kLen));
  const VnetHeader gh = VnetHeader::parse(Bytes(got.data(), kVnetHdrLegacy));
  EXPECT_EQ(gh.gso_type, kVnetGsoTcpv4);
  EXPECT_EQ(gh.gso_size, 1000);
  EXPECT_EQ(gh.csum_start, 34);
  EXPECT_EQ(std::memcmp(got.data() + kVnetHdrLegacy, frame.data(), kLen), 0);

  // The record: same length, the checksum now verifies over pseudo-header + segment.
  ASSERT_TRUE(pcap.flush_capture().has_value());
  const auto file = read_file(path_);
  ASSERT_EQ(file.size(), 24u + 16u + kLen);
  const std::byte* rec = file.data() + 24 + 16;
  wire::Checksum c = wire::pseudo_header_v4(src, dst, wire::kProtoTcp, uint16_t(kL4));
  c.add(Bytes(rec + 34, kL4));
  EXPECT_EQ(c.finish(), 0);
  EXPECT_NE(std::memcmp(rec + 34 + 16, frame.data() + 34 + 16, 2), 0) << "the recorded checksum was completed";
  EXPECT_EQ(std::memcmp(rec + 54, frame.data() + 54, kPayload), 0);
}

}  // namespace
}  // namespace moat::transport
