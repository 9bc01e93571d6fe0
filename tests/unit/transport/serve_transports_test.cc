// The serve transports over real unix sockets: QemuStreamTransport (R-TR-3/5: framing,
// reassembly, framing errors, one peer at a time, reconnect, --once, whole-frame output ring),
// UnixgramTransport (R-TR-4: learned peer, foreign senders, VFKT) and bind_unix (stale sockets,
// non-sockets, live listeners, file mode).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "transport/qemu_stream.h"
#include "transport/unix_socket.h"
#include "transport/unixgram.h"

namespace moat::transport {
namespace {

std::vector<std::byte> make_frame(uint32_t seq, size_t len = 60) {
  std::vector<std::byte> f(len, std::byte(seq & 0xff));
  store_be32(f.data(), seq);
  return f;
}

std::vector<std::byte> framed(const std::vector<std::byte>& f) {
  std::vector<std::byte> out(4 + f.size());
  store_be32(out.data(), uint32_t(f.size()));
  std::memcpy(out.data() + 4, f.data(), f.size());
  return out;
}

bool wait_readable(int fd, int ms = 2000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

void write_all(int fd, const std::vector<std::byte>& b) {
  ASSERT_EQ(::write(fd, b.data(), b.size()), ssize_t(b.size()));
}

class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/moat-serve-unit.XXXXXX";
    path_ = ::mkdtemp(t);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

UniqueFd connect_stream(const std::string& path) {
  UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  auto len = make_unix_addr(path, &sa);
  EXPECT_TRUE(len);
  EXPECT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), *len), 0);
  return c;
}

class QemuStreamTest : public ::testing::Test {
 protected:
  void listen(bool once = false) {
    auto sock = bind_unix(path_, SOCK_STREAM, 0600);
    ASSERT_TRUE(sock) << sock.error();
    auto t = QemuStreamTransport::listen(std::move(sock).value(), once, counters_);
    ASSERT_TRUE(t);
    link_ = std::move(t).value();
  }
  /// Services readiness like the Gateway does; returns the frames delivered.
  Result<size_t> pump() {
    got_.clear();
    wait_readable(link_->fd(), 1000);
    return link_->receive([this](Bytes f) { got_.emplace_back(f.begin(), f.end()); }, kMaxFramesPerWakeup);
  }

  TempDir dir_;
  std::string path_ = dir_.file("vm.sock");
  Counters counters_;
  std::unique_ptr<QemuStreamTransport> link_;
  std::vector<std::vector<std::byte>> got_;
};

TEST_F(QemuStreamTest, DeliversFramesBothWays) {
  listen();
  UniqueFd vm = connect_stream(path_);
  ASSERT_TRUE(pump());  // accept
  ASSERT_TRUE(link_->connected());
  auto f = make_frame(7, 100);
  write_all(vm.get(), framed(f));
  ASSERT_TRUE(pump());
  ASSERT_EQ(got_.size(), 1u);
  EXPECT_EQ(got_[0], f);
  auto g = make_frame(9, 1514);
  ASSERT_TRUE(link_->send(g));
  std::vector<std::byte> buf(4 + g.size());
  ASSERT_TRUE(wait_readable(vm.get()));
  ASSERT_EQ(::recv(vm.get(), buf.data(), buf.size(), MSG_WAITALL), ssize_t(buf.size()));
  EXPECT_EQ(buf, framed(g));
  EXPECT_EQ(counters_.get(Counter::link_from_guest_frames), 1u);
  EXPECT_EQ(counters_.get(Counter::link_to_guest_frames), 1u);
}

TEST_F(QemuStreamTest, ReassemblesFramesSplitAcrossReads) {
  listen();
  UniqueFd vm = connect_stream(path_);
  ASSERT_TRUE(pump());
  auto f = make_frame(1, 300);
  auto b = framed(f);
  auto two = framed(make_frame(2, 64));
  // 2 bytes of the prefix, then the rest of the prefix and part of the body, then the rest
  // plus a whole second frame.
  ASSERT_EQ(::write(vm.get(), b.data(), 2), 2);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(got_.empty());
  ASSERT_EQ(::write(vm.get(), b.data() + 2, 100), 100);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(got_.empty());
  std::vector<std::byte> rest(b.begin() + 102, b.end());
  rest.insert(rest.end(), two.begin(), two.end());
  write_all(vm.get(), rest);
  ASSERT_TRUE(pump());
  ASSERT_EQ(got_.size(), 2u);
  EXPECT_EQ(got_[0], f);
  EXPECT_EQ(got_[1], make_frame(2, 64));
}

TEST_F(QemuStreamTest, RuntIsDroppedWithoutLosingSync) {
  listen();
  UniqueFd vm = connect_stream(path_);
  ASSERT_TRUE(pump());
  auto runt = framed(std::vector<std::byte>(10, std::byte{1}));
  auto good = framed(make_frame(3));
  runt.insert(runt.end(), good.begin(), good.end());
  write_all(vm.get(), runt);
  ASSERT_TRUE(pump());
  ASSERT_EQ(got_.size(), 1u);
  EXPECT_EQ(counters_.dropped(DropReason::runt), 1u);
}

TEST_F(QemuStreamTest, FramingErrorsCloseTheConnectionAndKeepListening) {
  listen();
  const uint32_t bad[] = {0, uint32_t(kMaxFrameLen + 1), 0xffffffffu};
  for (uint32_t len : bad) {
    UniqueFd vm = connect_stream(path_);
    ASSERT_TRUE(pump());
    ASSERT_TRUE(link_->connected());
    std::vector<std::byte> b(64);
    store_be32(b.data(), len);
    write_all(vm.get(), b);
    ASSERT_TRUE(pump());  // not kLinkGone: the gateway keeps running
    EXPECT_FALSE(link_->connected());
    char c;
    ASSERT_TRUE(wait_readable(vm.get()));
    EXPECT_EQ(::read(vm.get(), &c, 1), 0);  // moat closed it
  }
  EXPECT_EQ(counters_.get(Counter::transport_framing_errors), 3u);
  EXPECT_EQ(counters_.dropped(DropReason::framing), 3u);
}

TEST_F(QemuStreamTest, TruncatedPrefixAtEndOfStreamIsAFramingError) {
  listen();
  {
    UniqueFd vm = connect_stream(path_);
    ASSERT_TRUE(pump());
    std::vector<std::byte> b(2);
    write_all(vm.get(), b);
  }  // closed with half a prefix sent
  ASSERT_TRUE(pump());
  EXPECT_FALSE(link_->connected());
  EXPECT_EQ(counters_.get(Counter::transport_framing_errors), 1u);
  // A clean close is not an error.
  { UniqueFd vm = connect_stream(path_); ASSERT_TRUE(pump()); }
  ASSERT_TRUE(pump());
  EXPECT_EQ(counters_.get(Counter::transport_framing_errors), 1u);
}

TEST_F(QemuStreamTest, SecondClientIsClosedFirstKeepsWorking) {
  listen();
  UniqueFd a = connect_stream(path_);
  ASSERT_TRUE(pump());
  UniqueFd b = connect_stream(path_);
  ASSERT_TRUE(pump());
  char c;
  ASSERT_TRUE(wait_readable(b.get()));
  EXPECT_EQ(::read(b.get(), &c, 1), 0);
  write_all(a.get(), framed(make_frame(5)));
  ASSERT_TRUE(pump());
  EXPECT_EQ(got_.size(), 1u);
}

TEST_F(QemuStreamTest, ReconnectAfterDisconnectAndOnceEndsTheLink) {
  listen();
  { UniqueFd vm = connect_stream(path_); ASSERT_TRUE(pump()); }
  ASSERT_TRUE(pump());
  EXPECT_FALSE(link_->connected());
  EXPECT_TRUE(link_->send(make_frame(1)));  // unplugged: lost, not an error
  UniqueFd vm = connect_stream(path_);
  ASSERT_TRUE(pump());
  EXPECT_TRUE(link_->connected());

  link_.reset();
  ::unlink(path_.c_str());
  listen(/*once=*/true);
  { UniqueFd v = connect_stream(path_); ASSERT_TRUE(pump()); }
  auto r = pump();
  ASSERT_FALSE(r);
  EXPECT_TRUE(is_link_gone(r.error()));
}

TEST_F(QemuStreamTest, OutputRingDropsWholeFramesOnly) {
  listen();
  UniqueFd vm = connect_stream(path_);
  ASSERT_TRUE(pump());
  // The VM does not read: the kernel buffers fill, then the 4 MiB ring, then frames are refused.
  uint32_t sent = 0, refused = 0;
  for (uint32_t i = 0; i < 20000 && refused < 10; ++i) {
    if (link_->send(make_frame(i, 1400))) ++sent;
    else ++refused;
  }
  EXPECT_GT(refused, 0u);
  EXPECT_TRUE(link_->output_full());
  EXPECT_LE(link_->queued_bytes(), QemuStreamTransport::kOutputLimit);
  // Drain everything: every frame arrives whole and in order, sequence numbers contiguous up
  // to the last accepted one (the refused ones come after them).
  int fl = ::fcntl(vm.get(), F_GETFL);
  ::fcntl(vm.get(), F_SETFL, fl | O_NONBLOCK);
  uint32_t expect = 0;
  std::vector<std::byte> stream;
  for (int rounds = 0; rounds < 100000 && expect < sent; ++rounds) {
    ASSERT_TRUE(pump());  // flushes the ring as the socket drains
    std::byte buf[65536];
    ssize_t n;
    while ((n = ::read(vm.get(), buf, sizeof buf)) > 0) stream.insert(stream.end(), buf, buf + n);
    size_t pos = 0;
    while (stream.size() - pos >= 4) {
      uint32_t len = load_be32(stream.data() + pos);
      ASSERT_EQ(len, 1400u);
      if (stream.size() - pos - 4 < len) break;
      ASSERT_EQ(load_be32(stream.data() + pos + 4), expect);
      ASSERT_EQ(stream[pos + 4 + len - 1], std::byte(expect & 0xff));
      ++expect;
      pos += 4 + len;
    }
    stream.erase(stream.begin(), stream.begin() + pos);
  }
  EXPECT_EQ(expect, sent);
  EXPECT_FALSE(link_->has_pending_output());
}

TEST(QemuStreamFd, EndOfStreamEndsTheLink) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd vm(sv[1]);
  Counters counters;
  auto t = QemuStreamTransport::from_connected_fd(UniqueFd(sv[0]), counters);
  ASSERT_TRUE(t);
  auto& link = **t;
  write_all(vm.get(), framed(make_frame(1)));
  size_t n = 0;
  ASSERT_TRUE(wait_readable(link.fd()));
  ASSERT_TRUE(link.receive([&](Bytes) { ++n; }, 64));
  EXPECT_EQ(n, 1u);
  vm.reset();
  ASSERT_TRUE(wait_readable(link.fd()));
  auto r = link.receive([&](Bytes) {}, 64);
  ASSERT_FALSE(r);
  EXPECT_TRUE(is_link_gone(r.error()));
}

TEST(UnixgramTest, LearnsPeerDropsForeignSendersAndRebindsOnHandshake) {
  TempDir dir;
  const std::string path = dir.file("moat.dgram");
  Counters counters;
  auto sock = bind_unix(path, SOCK_DGRAM, 0600);
  ASSERT_TRUE(sock) << sock.error();
  auto t = UnixgramTransport::create(std::move(sock).value(), counters);
  ASSERT_TRUE(t);
  auto& link = **t;
  auto bound = [&](const char* name) {
    UniqueFd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    auto len = make_unix_addr(dir.file(name), &sa);
    EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), *len), 0);
    return s;
  };
  sockaddr_un moat{};
  auto moat_len = make_unix_addr(path, &moat);
  auto send_to_moat = [&](int fd, const std::vector<std::byte>& b) {
    ASSERT_EQ(::sendto(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&moat), *moat_len), ssize_t(b.size()));
  };
  size_t delivered = 0;
  auto pump = [&] {
    wait_readable(link.fd(), 500);
    ASSERT_TRUE(link.receive([&](Bytes) { ++delivered; }, 64));
  };
  UniqueFd a = bound("a"), b = bound("b");
  EXPECT_TRUE(link.send(make_frame(0)));  // no peer yet: lost
  send_to_moat(a.get(), make_frame(1));
  pump();
  EXPECT_EQ(delivered, 1u);
  EXPECT_TRUE(link.has_peer());
  ASSERT_TRUE(link.send(make_frame(2)));
  ASSERT_TRUE(wait_readable(a.get()));
  std::byte buf[100];
  EXPECT_EQ(::recv(a.get(), buf, sizeof buf, 0), 60);
  send_to_moat(b.get(), make_frame(3));  // foreign
  pump();
  EXPECT_EQ(delivered, 1u);
  EXPECT_EQ(counters.dropped(DropReason::foreign_peer), 1u);
  const std::vector<std::byte> vfkt = {std::byte{'V'}, std::byte{'F'}, std::byte{'K'}, std::byte{'T'}};
  send_to_moat(b.get(), vfkt);
  send_to_moat(b.get(), make_frame(4));
  pump();
  EXPECT_EQ(delivered, 2u);
  ASSERT_TRUE(link.send(make_frame(5)));
  ASSERT_TRUE(wait_readable(b.get()));
  EXPECT_EQ(::recv(b.get(), buf, sizeof buf, 0), 60);
  EXPECT_FALSE(wait_readable(a.get(), 50));
}

TEST(BindUnixTest, StaleSocketReplacedNonSocketAndLiveListenerRefused) {
  TempDir dir;
  const std::string path = dir.file("s.sock");
  {  // a stale socket file: bound, never listening, closed
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un sa{};
    auto len = make_unix_addr(path, &sa);
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), *len), 0);
  }
  auto live = bind_unix(path, SOCK_STREAM, 0640);
  ASSERT_TRUE(live) << live.error();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  auto again = bind_unix(path, SOCK_STREAM, 0600);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), path + ": address in use by another process");
  live->remove();
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // removed on close

  const std::string plain = dir.file("plain");
  UniqueFd f(::open(plain.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  auto r = bind_unix(plain, SOCK_STREAM, 0600);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("exists and is not a socket"), std::string::npos);
  EXPECT_EQ(::access(plain.c_str(), F_OK), 0);

  EXPECT_FALSE(bind_unix("/tmp/" + std::string(200, 'x'), SOCK_STREAM, 0600));
  auto abs = bind_unix("@moat-unit-" + std::to_string(::getpid()), SOCK_DGRAM, 0600);
  EXPECT_TRUE(abs) << (abs ? "" : abs.error());
}

TEST(SocketModeTest, Parses) {
  EXPECT_EQ(*parse_socket_mode("0600"), 0600u);
  EXPECT_EQ(*parse_socket_mode("660"), 0660u);
  EXPECT_FALSE(parse_socket_mode("0999"));
  EXPECT_FALSE(parse_socket_mode("rw"));
  EXPECT_FALSE(parse_socket_mode("0400"));  // the owner must be able to connect
  EXPECT_FALSE(parse_socket_mode(""));
}

}  // namespace
}  // namespace moat::transport
