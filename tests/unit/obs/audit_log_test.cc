#include "obs/audit_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "event/clock.h"

namespace moat::obs {
namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
  }
  std::string read_all() const {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(r, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, size_t(n));
    }
    return out;
  }
};

class AuditLogTest : public ::testing::Test {
 protected:
  event::SystemClock clock_;
  event::Loop loop_{clock_};
  Counters counters_;
};

TEST(AuditTime, Rfc3339Micros) {
  EXPECT_EQ(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(rfc3339_micros(1795821532123456), "2026-11-27T23:18:52.123456Z");
}

TEST_F(AuditLogTest, WritesOneJsonObjectPerLineAfterTheHandler) {
  Pipe p;
  AuditOptions opt;
  opt.gateway = "gw1";
  AuditLog log(UniqueFd(p.w), opt, loop_, counters_);
  FlowFields f;
  f.flow = 7;
  f.proto = "tcp";
  f.dir = "egress";
  f.src = IpAddr(Ipv4Addr::from_octets(100, 96, 0, 2));
  f.src_port = 40000;
  f.dst = IpAddr(Ipv4Addr::from_octets(10, 1, 2, 3));
  f.dst_port = 443;
  f.name = "evil\"name\n";
  f.name_src = "sni";
  f.verdict = "deny";
  f.rule = RuleRef{3, "cli", "deny@private", ""};
  f.reason = "policy";
  log.emit("flow_deny", [&](JsonWriter& w) { write_flow(w, f); });
  EXPECT_EQ(p.read_all(), "");  // not written inside the handler
  loop_.run_once(std::chrono::milliseconds(100));
  const std::string out = p.read_all();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1);  // exactly one line: the name's newline is escaped
  EXPECT_EQ(out.rfind("{\"ts\":\"", 0), 0u);
  const std::string rest = out.substr(out.find("\",\"gw\""));
  EXPECT_EQ(rest,
            R"(","gw":"gw1","ev":"flow_deny","flow":7,"proto":"tcp","dir":"egress","src":"100.96.0.2:40000",)"
            R"("dst":"10.1.2.3:443","name":"evil\"name\n","name_src":"sni","verdict":"deny",)"
            R"("rule":{"index":3,"origin":"cli","text":"deny@private","label":null},"path":null,"reason":"policy"})"
            "\n");
}

TEST_F(AuditLogTest, FilterDefaultsToAllButDnsQuery) {
  Pipe p;
  AuditOptions opt;
  AuditLog log(UniqueFd(p.w), opt, loop_, counters_);
  EXPECT_TRUE(log.wants("flow_open"));
  EXPECT_TRUE(log.wants("dns_denied"));
  EXPECT_FALSE(log.wants("dns_query"));
  opt.dns = AuditOptions::Dns::all;
  AuditLog all(UniqueFd(::dup(p.w)), opt, loop_, counters_);
  EXPECT_TRUE(all.wants("dns_query"));
  opt.dns = AuditOptions::Dns::none;
  AuditLog none(UniqueFd(::dup(p.w)), opt, loop_, counters_);
  EXPECT_FALSE(none.wants("dns_blocked"));
  EXPECT_TRUE(none.wants("flow_close"));
  opt.dns = AuditOptions::Dns::denied;
  opt.events = {"flow_deny"};
  AuditLog only(UniqueFd(::dup(p.w)), opt, loop_, counters_);
  EXPECT_TRUE(only.wants("flow_deny"));
  EXPECT_FALSE(only.wants("flow_open"));
  only.emit("flow_open", [](JsonWriter& w) { w.u64("x", 1); });
  EXPECT_EQ(only.buffered(), 0u);
}

TEST_F(AuditLogTest, SlowSinkDropsAndCountsWithoutBlocking) {
  Pipe p;
  ASSERT_GE(::fcntl(p.w, F_SETFL, O_NONBLOCK), 0);
  AuditOptions opt;
  opt.buffer_bytes = 4096;
  AuditLog log(UniqueFd(p.w), opt, loop_, counters_);
  const std::string big(200, 'x');
  // Nobody reads the pipe: it fills (64 KiB), then the 4 KiB buffer, then events drop.
  for (int i = 0; i < 2000; ++i) {
    log.emit("flow_open", [&](JsonWriter& w) { w.str("pad", big); });
    log.flush();
  }
  EXPECT_GT(log.dropped(), 0u);
  EXPECT_EQ(counters_.get(Counter::audit_dropped), log.dropped());
  EXPECT_LE(log.buffered(), 4096u);
  // Draining the pipe lets the retry timer write the rest.
  const std::string first = p.read_all();
  EXPECT_FALSE(first.empty());
  for (int i = 0; i < 10 && log.buffered() > 0; ++i) loop_.run_once(std::chrono::milliseconds(50));
  EXPECT_EQ(log.buffered(), 0u);
  const std::string all = first + p.read_all();
  size_t lines = 0;
  for (char c : all) lines += c == '\n';
  EXPECT_EQ(lines + log.dropped(), 2000u);
}

TEST_F(AuditLogTest, OpenCreatesAFileWithMode0600InAppendMode) {
  char tmpl[] = "/tmp/moat-audit-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/audit.jsonl";
  {
    auto log = AuditLog::open(AuditOptions{.file = path}, loop_, counters_);
    ASSERT_TRUE(log.has_value());
    (*log)->emit("gateway_start", [](JsonWriter& w) { w.str("version", "t"); });
  }  // the destructor flushes
  {
    auto log = AuditLog::open(AuditOptions{.file = path}, loop_, counters_);
    ASSERT_TRUE(log.has_value());
    (*log)->emit("gateway_stop", [](JsonWriter&) {});
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int fd = ::open(path.c_str(), O_RDONLY);
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  const std::string text(buf, size_t(n));
  EXPECT_NE(text.find("\"ev\":\"gateway_start\""), std::string::npos);
  EXPECT_NE(text.find("\"ev\":\"gateway_stop\""), std::string::npos);
  EXPECT_LT(text.find("gateway_start"), text.find("gateway_stop"));
  ::unlink(path.c_str());
  ::rmdir(tmpl);
}

TEST_F(AuditLogTest, ReopenFollowsLogRotation) {
  char tmpl[] = "/tmp/moat-audit-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/audit.jsonl", rotated = path + ".1";
  auto log = AuditLog::open(AuditOptions{.file = path}, loop_, counters_);
  ASSERT_TRUE(log.has_value());
  (*log)->emit("flow_open", [](JsonWriter& w) { w.u64("n", 1); });
  (*log)->flush();
  ASSERT_EQ(::rename(path.c_str(), rotated.c_str()), 0);
  ASSERT_TRUE((*log)->reopen().has_value());
  (*log)->emit("flow_open", [](JsonWriter& w) { w.u64("n", 2); });
  (*log)->flush();
  auto slurp = [](const std::string& p) {
    std::string out;
    if (FILE* f = std::fopen(p.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
      std::fclose(f);
    }
    return out;
  };
  EXPECT_NE(slurp(rotated).find("\"n\":1"), std::string::npos);
  EXPECT_EQ(slurp(rotated).find("\"n\":2"), std::string::npos);
  EXPECT_NE(slurp(path).find("\"n\":2"), std::string::npos);
  ::unlink(path.c_str());
  ::unlink(rotated.c_str());
  ::rmdir(tmpl);
}

TEST_F(AuditLogTest, OpenErrorNamesTheFlag) {
  auto log = AuditLog::open(AuditOptions{.file = "/nonexistent-dir/x/audit"}, loop_, counters_);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().rfind("--audit /nonexistent-dir/x/audit: cannot open: ", 0), 0u);
}

}  // namespace
}  // namespace moat::obs
