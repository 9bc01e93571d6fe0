// control::Server (R-CTL-1) on a real Loop over an abstract unix socket: framing (pipelined
// requests, CRLF, blank lines), the 1 MiB request bound, the client limit, the idle timeout,
// and the memory bound for a client that sends without ever reading.
#include "control/server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "event/clock.h"
#include "transport/unix_socket.h"

namespace moat::control {
namespace {

/// Every method answers; `stats` returns `big` bytes of JSON (to fill a socket).
struct Backend final : control::Backend {
  size_t big = 16;
  std::string version_json() override { return R"({"moat":"test","abi":1})"; }
  MethodResult<std::string> stats_json() override { return R"({"pad":")" + std::string(big, 'x') + R"("})"; }
  MethodResult<std::vector<std::string>> publish(const std::string& s) override { return std::vector<std::string>{s}; }
  MethodResult<size_t> unpublish(const std::string&) override { return size_t{1}; }
  MethodResult<std::shared_ptr<const policy::Engine>> policy_engine() override {
    return unexpected(MethodError{ErrorCode::internal, "none"});
  }
  bool rebind_protection() override { return true; }
  MethodResult<void> policy_set(const std::string&, PolicyFormat) override { return {}; }
  MethodResult<std::vector<Pin>> dns_pins() override { return std::vector<Pin>{}; }
  MethodResult<void> audit_reopen() override { return {}; }
  MethodResult<void> shutdown() override { return {}; }
  void config_change(std::string_view) override {}
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }
  void start(ServerOptions o) {
    server_.reset();
    static int n = 0;
    o.address = "@moat-unit-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
    o.owner_uid = ::getuid();
    addr_ = o.address;
    auto s = Server::create(loop_, dispatcher_, counters_, std::move(o));
    ASSERT_TRUE(s) << s.error();
    server_ = std::move(s).value();
  }
  UniqueFd connect() {
    sockaddr_un sa{};
    auto len = transport::make_unix_addr(addr_, &sa);
    EXPECT_TRUE(len);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), *len), 0);
    spin(5);  // the server accepts
    return fd;
  }
  void spin(int iterations) {
    for (int i = 0; i < iterations; ++i) loop_.run_once(std::chrono::milliseconds(1));
  }
  /// Runs the loop and reads until `lines` newlines arrived or `eof` (or ~2 s).
  std::string read_lines(int fd, size_t lines, bool* eof = nullptr) {
    std::string got;
    for (int i = 0; i < 400; ++i) {
      spin(1);
      char buf[65536];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) got.append(buf, size_t(n));
      if (n == 0) {
        if (eof) *eof = true;
        return got;
      }
      if (size_t(std::count(got.begin(), got.end(), '\n')) >= lines) return got;
    }
    return got;
  }
  static void send_all(int fd, std::string_view s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), ssize_t(s.size()));
  }

  event::SystemClock clock_;
  event::Loop loop_{clock_};
  Counters counters_;
  Backend backend_;
  Dispatcher dispatcher_{backend_};
  std::string addr_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, AnswersPipelinedRequestsInOrder) {
  auto fd = connect();
  send_all(fd.get(), "{\"id\":1,\"method\":\"version\"}\n\n  \r\n{\"id\":2,\"method\":\"stats\"}\r\n{\"id\":3,\"method\":\"nope\"}\n");
  const std::string got = read_lines(fd.get(), 3);
  const size_t a = got.find("{\"id\":1,\"result\":{\"moat\":\"test\"");
  const size_t b = got.find("{\"id\":2,\"result\":{\"pad\":");
  const size_t c = got.find("{\"id\":3,\"error\":{\"code\":\"unknown_method\"");
  ASSERT_NE(a, std::string::npos) << got;
  ASSERT_NE(b, std::string::npos) << got;
  ASSERT_NE(c, std::string::npos) << got;
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(std::count(got.begin(), got.end(), '\n'), 3);  // blank lines are not requests
  EXPECT_EQ(counters_.get(Counter::control_requests), 3u);
  EXPECT_EQ(counters_.get(Counter::control_clients), 1u);
}

TEST_F(ServerTest, ARequestSplitAcrossWritesIsOneRequest) {
  auto fd = connect();
  send_all(fd.get(), "{\"id\":9,\"me");
  spin(3);
  send_all(fd.get(), "thod\":\"version\"}\n");
  EXPECT_NE(read_lines(fd.get(), 1).find("{\"id\":9,\"result\""), std::string::npos);
}

TEST_F(ServerTest, OversizeRequestGetsLimitAndIsClosed) {
  auto fd = connect();
  std::string big(Dispatcher::kMaxRequest + 10, 'a');
  size_t off = 0;
  bool eof = false;
  std::string got;
  // The server reads while we write; stop once everything is sent or the server closed.
  for (int i = 0; i < 2000 && off < big.size(); ++i) {
    ssize_t n = ::send(fd.get(), big.data() + off, big.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) off += size_t(n);
    else if (n < 0 && errno != EAGAIN) break;
    spin(1);
  }
  got = read_lines(fd.get(), 1, &eof);
  EXPECT_NE(got.find("\"code\":\"limit\""), std::string::npos) << got.substr(0, 200);
  if (!eof) read_lines(fd.get(), 2, &eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(counters_.get(Counter::control_oversize), 1u);
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(ServerTest, ClientLimit) {
  ServerOptions o;
  o.max_clients = 2;
  start(o);
  auto a = connect();
  auto b = connect();
  auto c = connect();
  bool eof = false;
  const std::string got = read_lines(c.get(), 1, &eof);
  EXPECT_NE(got.find("\"code\":\"limit\""), std::string::npos) << got;
  EXPECT_EQ(server_->clients(), 2u);
  EXPECT_EQ(counters_.get(Counter::control_limited), 1u);
  // The first two still work.
  send_all(a.get(), "{\"id\":1,\"method\":\"version\"}\n");
  EXPECT_NE(read_lines(a.get(), 1).find("\"result\""), std::string::npos);
}

TEST_F(ServerTest, IdleClientIsClosed) {
  ServerOptions o;
  o.idle_timeout = std::chrono::milliseconds(50);
  start(o);
  auto fd = connect();
  bool eof = false;
  read_lines(fd.get(), 1, &eof);
  EXPECT_TRUE(eof);
  EXPECT_EQ(counters_.get(Counter::control_idle_closed), 1u);
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(ServerTest, AClientThatNeverReadsHoldsAtMostOneResponse) {
  backend_.big = 200 * 1024;  // each answer is bigger than the socket buffers
  auto fd = connect();
  const std::string req = "{\"id\":1,\"method\":\"stats\"}\n";
  size_t sent = 0, max_buffered = 0;
  for (int i = 0; i < 2000; ++i) {
    if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == ssize_t(req.size())) ++sent;
    spin(1);
    max_buffered = std::max(max_buffered, server_->buffered_bytes());
  }
  // The server stopped reading once a response was stuck: the client's requests wait in
  // the kernel (our sends fail with EAGAIN), not in moat's memory.
  EXPECT_LT(sent, 2000u);
  EXPECT_LE(max_buffered, backend_.big + 64 + 8 * 16384 + Dispatcher::kMaxRequest);
  EXPECT_LE(server_->buffered_bytes(), backend_.big + 64 + 8 * 16384);
}

/// An EventSource the test emits into.
struct Events final : EventSource {
  std::vector<std::pair<uint64_t, Sink>> sinks;
  uint64_t next = 1;
  uint64_t subscribe(Sink s) override {
    sinks.emplace_back(next, std::move(s));
    return next++;
  }
  void unsubscribe(uint64_t id) noexcept override {
    std::erase_if(sinks, [id](const auto& p) { return p.first == id; });
  }
  void emit(std::string_view line) {
    for (auto& s : sinks) s.second(line);
  }
};

TEST_F(ServerTest, EventsSubscribeStreamsFilteredLinesAndBoundsTheBacklog) {
  Events ev;
  ServerOptions o;
  o.events = &ev;
  o.max_event_backlog = 4096;
  start(o);
  auto fd = connect();
  send_all(fd.get(), "{\"id\":1,\"method\":\"events.subscribe\",\"params\":{\"events\":[\"flow_open\"]}}\n");
  EXPECT_NE(read_lines(fd.get(), 1).find("\"subscribed\":true"), std::string::npos);
  ASSERT_EQ(ev.sinks.size(), 1u);
  ev.emit(R"({"ts":"t","gw":"g","ev":"flow_deny","flow":1})");
  ev.emit(R"({"ts":"t","gw":"g","ev":"flow_open","flow":2})");
  const std::string got = read_lines(fd.get(), 1);
  EXPECT_EQ(got, "{\"ts\":\"t\",\"gw\":\"g\",\"ev\":\"flow_open\",\"flow\":2}\n");
  send_all(fd.get(), "{\"id\":2,\"method\":\"events.subscribe\"}\n");
  EXPECT_NE(read_lines(fd.get(), 1).find("\"code\":\"conflict\""), std::string::npos);
  // A subscriber that does not read: the socket fills, then at most the backlog is held.
  const std::string line = R"({"ts":"t","gw":"g","ev":"flow_open","pad":")" + std::string(1000, 'x') + "\"}";
  for (int i = 0; i < 2000; ++i) {
    ev.emit(line);
    if (i % 10 == 0) spin(1);
  }
  EXPECT_GT(counters_.get(Counter::control_events_dropped), 0u);
  EXPECT_LE(server_->buffered_bytes(), 4096u + 16384u);
  fd.reset();
  spin(5);
  EXPECT_TRUE(ev.sinks.empty());  // unsubscribed when the client went away
}

TEST_F(ServerTest, EventsSubscribeWithoutAnAuditLogIsNotFound) {
  auto fd = connect();
  send_all(fd.get(), "{\"id\":1,\"method\":\"events.subscribe\"}\n");
  EXPECT_NE(read_lines(fd.get(), 1).find("\"code\":\"not_found\""), std::string::npos);
}

TEST_F(ServerTest, AbstractAddressDefault) {
  EXPECT_EQ(default_socket_address(1000, "box-1"), "@moat/1000/box-1");
}

}  // namespace
}  // namespace moat::control
