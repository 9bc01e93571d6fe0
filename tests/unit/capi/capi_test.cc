// The C ABI (include/moat/moat.h) as a C caller sees it: argument and option errors,
// config errors as §5.2 lines, the lifecycle, frames through the rings to the gateway's
// own services (ARP, ping) on its loop thread, ENOSPC/EAGAIN, stats JSON and live policy
// updates.
#include "moat/moat.h"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/frame_builder.h"

namespace moat {
namespace {

using namespace moat::test;

// IPv4 only, so no router advertisement lands in the to-guest ring.
constexpr std::string_view kV4Only = R"({"net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}}})";

moat_gateway* make_gw(std::string_view cfg = kV4Only, const moat_gateway_opts* opts = nullptr) {
  moat_error err{};
  moat_gateway* gw = moat_gateway_new(cfg.data(), cfg.size(), MOAT_FMT_JSON, opts, &err);
  EXPECT_NE(gw, nullptr) << err.message;
  return gw;
}

std::string new_error(std::string_view cfg, int fmt, const moat_gateway_opts* opts = nullptr, int* code = nullptr) {
  moat_error err{};
  std::memset(err.message, 'x', sizeof err.message);  // must come back NUL-terminated
  moat_gateway* gw = moat_gateway_new(cfg.data(), cfg.size(), fmt, opts, &err);
  EXPECT_EQ(gw, nullptr);
  moat_gateway_free(gw);
  if (code) *code = err.code;
  return std::string(err.message, strnlen(err.message, sizeof err.message));
}

/// Pulls frames until one satisfies `pred` or 2 s pass (waiting on the eventfd).
template <class Pred>
std::optional<Buf> pull_until(moat_gateway* gw, Pred pred) {
  Buf buf(70000);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    size_t len = 0;
    int rc = moat_pull_frame(gw, buf.data(), buf.size(), &len);
    if (rc == MOAT_OK) {
      Buf f(buf.begin(), buf.begin() + long(len));
      if (pred(span(f))) return f;
      continue;
    }
    EXPECT_EQ(rc, MOAT_EAGAIN);
    pollfd p{moat_rx_eventfd(gw), POLLIN, 0};
    ::poll(&p, 1, 100);
  }
  return std::nullopt;
}

bool is_arp_reply(Bytes f) {
  auto a = as_arp(f);
  return a && a->arp.op == wire::ArpOp::reply;
}

std::string stats(moat_gateway* gw) {
  char* json = nullptr;
  EXPECT_EQ(moat_stats_json(gw, &json), MOAT_OK);
  std::string s = json ? json : "";
  moat_free(json);
  return s;
}

TEST(CApi, AbiVersion) { EXPECT_EQ(moat_abi_version(), uint32_t(MOAT_ABI_VERSION)); }

TEST(CApi, NullHandlesAreRefused) {
  moat_error err{};
  char buf[64];
  size_t len = 0;
  char* json = nullptr;
  EXPECT_EQ(moat_gateway_start(nullptr, &err), MOAT_EINVAL);
  EXPECT_NE(std::string(err.message).find("NULL handle"), std::string::npos);
  EXPECT_EQ(moat_gateway_start(nullptr, nullptr), MOAT_EINVAL);
  EXPECT_EQ(moat_push_frame(nullptr, buf, sizeof buf), MOAT_EINVAL);
  EXPECT_EQ(moat_pull_frame(nullptr, buf, sizeof buf, &len), MOAT_EINVAL);
  EXPECT_EQ(moat_rx_eventfd(nullptr), MOAT_EINVAL);
  EXPECT_EQ(moat_stats_json(nullptr, &json), MOAT_EINVAL);
  EXPECT_EQ(moat_policy_update(nullptr, "allow@any", 9, MOAT_FMT_RULES, 0, &err), MOAT_EINVAL);
  moat_gateway_stop(nullptr);
  moat_gateway_free(nullptr);
  moat_free(nullptr);

  moat_gateway* gw = make_gw();
  EXPECT_EQ(moat_push_frame(gw, nullptr, 60), MOAT_EINVAL);
  EXPECT_EQ(moat_pull_frame(gw, buf, sizeof buf, nullptr), MOAT_EINVAL);
  EXPECT_EQ(moat_pull_frame(gw, nullptr, 10, &len), MOAT_EINVAL);
  EXPECT_EQ(moat_stats_json(gw, nullptr), MOAT_EINVAL);
  EXPECT_EQ(moat_policy_update(gw, nullptr, 5, MOAT_FMT_RULES, 0, &err), MOAT_EINVAL);
  moat_gateway_free(gw);
}

TEST(CApi, BadConfigReturnsSection52Lines) {
  int code = 0;
  std::string m = new_error(R"({"net": {"mtu": 1500, "bogus_key": 1}})", MOAT_FMT_JSON, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_EQ(m.rfind("moat: error: config:1:", 0), 0u) << m;
  EXPECT_NE(m.find("bogus_key"), std::string::npos) << m;

  m = new_error("[net]\nmtu = \n", MOAT_FMT_TOML, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_EQ(m.rfind("moat: error: config:2:", 0), 0u) << m;

  m = new_error("{\"net\": ", MOAT_FMT_JSON, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_EQ(m.rfind("moat: error: config:", 0), 0u) << m;

  // dns.block_files are compiled as in `moat run`, never ignored: a missing file is an error.
  m = new_error(R"({"dns": {"block_files": ["/nonexistent/moat-block.txt"]}})", MOAT_FMT_JSON, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_NE(m.find("/nonexistent/moat-block.txt"), std::string::npos) << m;

  // net.impair is finished by the step `moat run` uses too (app::finish_config), never ignored.
  m = new_error(R"({"net": {"impair": "loss=1.5"}})", MOAT_FMT_JSON, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_EQ(m.rfind("moat: error: net.impair: ", 0), 0u) << m;

  // R-ADDR-2 after parsing: the broadcast address of the /30 as the guest address.
  m = new_error(R"({"net": {"ipv4": {"enable": "on", "address": "100.96.0.3"}, "ipv6": {"enable": "off"}}})",
                MOAT_FMT_JSON, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_EQ(m.rfind("moat: error: net.ipv4.address: ", 0), 0u) << m;

  m = new_error("", 7, nullptr, &code);
  EXPECT_EQ(code, MOAT_EINVAL);
  EXPECT_NE(m.find("fmt"), std::string::npos);

  moat_error err{};
  EXPECT_EQ(moat_gateway_new(nullptr, 5, MOAT_FMT_TOML, nullptr, &err), nullptr);
  EXPECT_EQ(err.code, MOAT_EINVAL);
  EXPECT_EQ(moat_gateway_new("{", 1, MOAT_FMT_JSON, nullptr, nullptr), nullptr);  // err may be NULL
}

TEST(CApi, ManyErrorsAreTruncatedToTheMessageBuffer) {
  std::string cfg = "{";
  for (int i = 0; i < 20; ++i) cfg += (i ? ",\"" : "\"") + std::string("unknown_key_number_") + std::to_string(i) + "\": 1";
  cfg += "}";
  std::string m = new_error(cfg, MOAT_FMT_JSON);
  EXPECT_LE(m.size(), 511u);
  EXPECT_NE(m.find('\n'), std::string::npos);  // several lines
}

TEST(CApi, BadOptionsAreRefused) {
  moat_gateway_opts o{};
  int code = 0;
  EXPECT_NE(new_error(kV4Only, MOAT_FMT_JSON, &o, &code).find("struct_size"), std::string::npos);
  EXPECT_EQ(code, MOAT_EINVAL);
  o.struct_size = sizeof o;
  o.vnet_hdr_len = 11;
  EXPECT_NE(new_error(kV4Only, MOAT_FMT_JSON, &o).find("vnet_hdr_len"), std::string::npos);
  o.vnet_hdr_len = 0;
  o.offloads = 0x10;
  EXPECT_NE(new_error(kV4Only, MOAT_FMT_JSON, &o).find("unknown bits"), std::string::npos);
  o.offloads = 0;
  o.ring_frames = 70000;
  EXPECT_NE(new_error(kV4Only, MOAT_FMT_JSON, &o).find("ring_frames"), std::string::npos);
  o.ring_frames = 0;
  o.ring_bytes = 1000;
  EXPECT_NE(new_error(kV4Only, MOAT_FMT_JSON, &o).find("ring_bytes"), std::string::npos);
  o.ring_bytes = 0;
  o.offloads = MOAT_OFF_CSUM;  // offloads without a header to describe them
  EXPECT_NE(new_error(kV4Only, MOAT_FMT_JSON, &o).find("vnet_hdr_len to 10 or 12"), std::string::npos);
  o.offloads = 0;

  // A newer caller's larger struct: accepted while the unknown tail is zero.
  struct Newer {
    moat_gateway_opts base;
    uint64_t future_field;
  } n{};
  n.base.struct_size = sizeof n;
  moat_gateway* gw = make_gw(kV4Only, &n.base);
  moat_gateway_free(gw);
  n.future_field = 1;
  EXPECT_NE(new_error(kV4Only, MOAT_FMT_JSON, &n.base).find("upgrade"), std::string::npos);
  // An older caller's smaller struct (only struct_size): defaults.
  moat_gateway_opts old{};
  old.struct_size = sizeof(size_t);
  old.ring_frames = 99999;  // beyond the declared size: must be ignored
  gw = make_gw(kV4Only, &old);
  moat_gateway_free(gw);
}

// §5.2: a late failure (here a published port already taken) leaves no output file behind.
TEST(CApi, LateFailureRemovesTheOutputsItCreated) {
  int busy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(busy, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  socklen_t sl = sizeof sa;
  ASSERT_EQ(::getsockname(busy, reinterpret_cast<sockaddr*>(&sa), &sl), 0);
  const int port = ntohs(sa.sin_port);

  char dir_tmpl[] = "/tmp/moat-capi-test.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_tmpl), nullptr);
  const std::string dir = dir_tmpl, pcap = dir + "/link.pcap", audit = dir + "/audit.jsonl";
  std::string cfg = R"({"net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}}, "pcap": {"file": ")" + pcap +
                    R"("}, "audit": {"file": ")" + audit + R"("}, "publish": [{"host_port": )" +
                    std::to_string(port) + R"(, "guest_port": 80}]})";
  int code = 0;
  std::string m = new_error(cfg, MOAT_FMT_JSON, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_NE(m.find(std::to_string(port)), std::string::npos) << m;
  EXPECT_NE(::access(pcap.c_str(), F_OK), 0) << "pcap file left behind";
  EXPECT_NE(::access(audit.c_str(), F_OK), 0) << "audit file left behind";
  ::close(busy);

  // The same outputs work once the port is free, and stay.
  moat_gateway* gw = make_gw(cfg);
  ASSERT_NE(gw, nullptr);
  moat_gateway_free(gw);
  EXPECT_EQ(::access(pcap.c_str(), F_OK), 0);
  EXPECT_EQ(::access(audit.c_str(), F_OK), 0);
  ::unlink(pcap.c_str());
  ::unlink(audit.c_str());
  ::rmdir(dir.c_str());
}

TEST(CApi, DefaultConfigFromNull) {
  moat_error err{};
  moat_gateway* gw = moat_gateway_new(nullptr, 0, MOAT_FMT_TOML, nullptr, &err);
  ASSERT_NE(gw, nullptr) << err.message;
  EXPECT_EQ(err.code, MOAT_OK);
  EXPECT_EQ(err.message[0], '\0');
  moat_gateway_free(gw);
}

TEST(CApi, ArpAndPingThroughTheRings) {
  moat_gateway* gw = make_gw();
  moat_error err{};
  ASSERT_EQ(moat_gateway_start(gw, &err), MOAT_OK) << err.message;
  EXPECT_EQ(moat_gateway_start(gw, &err), MOAT_ESTATE);

  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  ASSERT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_OK);
  auto reply = pull_until(gw, is_arp_reply);
  ASSERT_TRUE(reply.has_value());
  auto a = as_arp(span(*reply));
  EXPECT_EQ(a->arp.sender_ip, g.gateway4);
  EXPECT_EQ(a->arp.sender_mac, g.gateway_mac);
  EXPECT_EQ(a->arp.target_mac, g.guest_mac);

  Buf data = text("ping through the ring");
  Buf echo = g.icmp4_echo(g.gateway4, 77, 1, span(data));
  ASSERT_EQ(moat_push_frame(gw, echo.data(), echo.size()), MOAT_OK);
  auto pong = pull_until(gw, [](Bytes f) {
    auto i = as_icmpv4(f);
    return i && i->icmp.type == wire::kIcmpEchoReply;
  });
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(as_icmpv4(span(*pong))->icmp.ident, 77);

  std::string s = stats(gw);
  EXPECT_NE(s.find("\"link.from_guest.frames\":2"), std::string::npos) << s;
  EXPECT_NE(s.find("\"arp.replies\":1"), std::string::npos) << s;
  EXPECT_NE(s.find("\"icmp.echo_local\":1"), std::string::npos) << s;
  EXPECT_NE(s.find("\"rings\":{\"from_guest\":{\"frames\":0,\"capacity_frames\":1024,\"capacity_bytes\":8388608}"),
            std::string::npos)
      << s;
  moat_gateway_free(gw);
}

// net.impair applies to the rings as to a TAP (one gateway assembly): with loss=1 the ARP
// request never reaches the stack.
TEST(CApi, ImpairmentAppliesToTheRings) {
  moat_gateway* gw = make_gw(R"({"net": {"impair": "loss=1", "ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}}})");
  moat_error err{};
  ASSERT_EQ(moat_gateway_start(gw, &err), MOAT_OK) << err.message;
  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  ASSERT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_OK);
  std::string s;
  for (int i = 0; i < 40 && s.find("\"impair.dropped\":1") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    s = stats(gw);
  }
  EXPECT_NE(s.find("\"impair.dropped\":1"), std::string::npos) << s;
  EXPECT_NE(s.find("\"arp.replies\":0"), std::string::npos) << s;
  moat_gateway_free(gw);
}

// R-TR-6 on the rings: every frame carries a virtio-net header both ways; from the guest it
// is interpreted (partial checksums, bad GSO types), to the guest it is all zero for plain
// frames, and the lengths of push, pull and ENOSPC include it.
TEST(CApi, VirtioNetHeaderOnTheRings) {
  for (uint32_t hl : {10u, 12u}) {
    SCOPED_TRACE(hl);
    moat_gateway_opts o{};
    o.struct_size = sizeof o;
    o.vnet_hdr_len = hl;
    o.offloads = MOAT_OFF_CSUM | MOAT_OFF_TSO4;
    moat_gateway* gw = make_gw(kV4Only, &o);
    ASSERT_EQ(moat_gateway_start(gw, nullptr), MOAT_OK);
    GuestFrames g;
    auto with_hdr = [&](const Buf& f, uint8_t flags, uint8_t gso_type, uint16_t csum_start, uint16_t csum_offset) {
      Buf b(hl, std::byte{0});
      b[0] = std::byte{flags};
      b[1] = std::byte{gso_type};
      b[6] = std::byte(csum_start & 0xff);  // little-endian (virtio 1.x)
      b[7] = std::byte(csum_start >> 8);
      b[8] = std::byte(csum_offset & 0xff);
      b[9] = std::byte(csum_offset >> 8);
      b.insert(b.end(), f.begin(), f.end());
      return b;
    };
    auto strip = [&](Bytes f) { return f.size() >= hl ? f.subspan(hl) : Bytes{}; };
    auto header_is_zero = [&](Bytes f) {
      for (size_t i = 0; i < hl; ++i)
        if (f[i] != std::byte{0}) return false;
      return true;
    };

    // A plain ARP request; the reply comes back with an all-zero header.
    Buf req = with_hdr(g.arp_request(g.gateway4), 0, 0, 0, 0);
    ASSERT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_OK);
    auto reply = pull_until(gw, [&](Bytes f) { return is_arp_reply(strip(f)); });
    ASSERT_TRUE(reply.has_value());
    EXPECT_TRUE(header_is_zero(span(*reply)));
    EXPECT_EQ(as_arp(strip(span(*reply)))->arp.target_mac, g.guest_mac);

    // An ICMP echo whose checksum the guest left to the "NIC" (NEEDS_CSUM, field 0): moat
    // completes it (ICMP is validated) and answers.
    Buf data = text("partial checksum");
    Buf echo = g.icmp4_echo(g.gateway4, 91, 1, span(data));
    const size_t l4 = 14 + 20;
    echo[l4 + 2] = echo[l4 + 3] = std::byte{0};
    Buf pushed = with_hdr(echo, 1 /* NEEDS_CSUM */, 0, uint16_t(l4), 2);
    ASSERT_EQ(moat_push_frame(gw, pushed.data(), pushed.size()), MOAT_OK);
    auto pong = pull_until(gw, [&](Bytes f) {
      auto i = as_icmpv4(strip(f));
      return i && i->icmp.type == wire::kIcmpEchoReply;
    });
    ASSERT_TRUE(pong.has_value());
    EXPECT_EQ(as_icmpv4(strip(span(*pong)))->icmp.ident, 91);
    EXPECT_TRUE(header_is_zero(span(*pong)));

    // ENOSPC reports the length with the header; the frame stays.
    Buf req2 = with_hdr(g.arp_request(g.gateway4), 0, 0, 0, 0);
    ASSERT_EQ(moat_push_frame(gw, req2.data(), req2.size()), MOAT_OK);
    char small[20];
    size_t len = 0;
    int rc = MOAT_EAGAIN;
    for (int i = 0; i < 40 && rc == MOAT_EAGAIN; ++i) {
      pollfd p{moat_rx_eventfd(gw), POLLIN, 0};
      ::poll(&p, 1, 50);
      rc = moat_pull_frame(gw, small, sizeof small, &len);
    }
    ASSERT_EQ(rc, MOAT_ENOSPC);
    EXPECT_GE(len, hl + 42);
    std::vector<std::byte> big(len);
    size_t len2 = 0;
    ASSERT_EQ(moat_pull_frame(gw, big.data(), big.size(), &len2), MOAT_OK);
    EXPECT_EQ(len2, len);
    EXPECT_TRUE(is_arp_reply(Bytes(big.data() + hl, len2 - hl)));

    // An unknown gso_type is dropped as drop.vnet_hdr; a buffer without room for header +
    // Ethernet header is a runt, refused at the push.
    Buf bad = with_hdr(g.arp_request(g.gateway4), 0, 2 /* not a GSO type */, 0, 0);
    ASSERT_EQ(moat_push_frame(gw, bad.data(), bad.size()), MOAT_OK);
    Buf runt(hl + 13);
    EXPECT_EQ(moat_push_frame(gw, runt.data(), runt.size()), MOAT_EINVAL);
    std::string s;
    for (int i = 0; i < 100; ++i) {
      s = stats(gw);
      if (s.find("\"vnet_hdr\":1") != std::string::npos && s.find("\"runt\":1") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_NE(s.find("\"vnet_hdr\":1"), std::string::npos) << s;
    EXPECT_NE(s.find("\"runt\":1"), std::string::npos) << s;
    EXPECT_NE(s.find("\"arp.replies\":2"), std::string::npos) << s;
    moat_gateway_free(gw);
  }
}

TEST(CApi, PullWithSmallBufferIsEnospcAndKeepsTheFrame) {
  moat_gateway* gw = make_gw();
  ASSERT_EQ(moat_gateway_start(gw, nullptr), MOAT_OK);
  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  ASSERT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_OK);
  pollfd p{moat_rx_eventfd(gw), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  char small[20];
  size_t len = 0;
  ASSERT_EQ(moat_pull_frame(gw, small, sizeof small, &len), MOAT_ENOSPC);
  EXPECT_GE(len, 42u);  // Ethernet + ARP (maybe padded)
  EXPECT_EQ(::poll(&p, 1, 0), 1);  // still readable: the frame is still there
  std::vector<char> big(len);
  size_t len2 = 0;
  ASSERT_EQ(moat_pull_frame(gw, big.data(), big.size(), &len2), MOAT_OK);
  EXPECT_EQ(len2, len);
  EXPECT_TRUE(is_arp_reply(Bytes(reinterpret_cast<const std::byte*>(big.data()), len2)));
  EXPECT_EQ(moat_pull_frame(gw, big.data(), big.size(), &len2), MOAT_EAGAIN);
  moat_gateway_free(gw);
}

TEST(CApi, FullFromGuestRingIsEagainAndFramesWaitForStart) {
  moat_gateway_opts o{};
  o.struct_size = sizeof o;
  o.ring_frames = 4;
  moat_gateway* gw = make_gw(kV4Only, &o);
  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_OK) << i;
  EXPECT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_EAGAIN);
  // Bad lengths: refused and counted (drop.runt / drop.oversize) once the loop runs.
  EXPECT_EQ(moat_push_frame(gw, req.data(), 13), MOAT_EINVAL);
  std::vector<char> huge(65551);
  EXPECT_EQ(moat_push_frame(gw, huge.data(), huge.size()), MOAT_EINVAL);
  ASSERT_EQ(moat_gateway_start(gw, nullptr), MOAT_OK);
  int replies = 0;
  while (pull_until(gw, is_arp_reply)) ++replies;
  // The ARP responder may rate-limit identical requests; at least one is answered.
  EXPECT_GE(replies, 1);
  std::string s = stats(gw);
  EXPECT_NE(s.find("\"link.from_guest.frames\":4"), std::string::npos) << s;
  EXPECT_NE(s.find("\"runt\":1"), std::string::npos) << s;
  EXPECT_NE(s.find("\"oversize\":1"), std::string::npos) << s;
  moat_gateway_free(gw);
}

TEST(CApi, StopJoinsAndLeavesPullsWorking) {
  moat_gateway* gw = make_gw();
  ASSERT_EQ(moat_gateway_start(gw, nullptr), MOAT_OK);
  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  ASSERT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_OK);
  pollfd p{moat_rx_eventfd(gw), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  moat_gateway_stop(gw);
  moat_gateway_stop(gw);  // idempotent
  EXPECT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_ESTATE);
  moat_error err{};
  EXPECT_EQ(moat_gateway_start(gw, &err), MOAT_ESTATE);
  char buf[100];
  size_t len = 0;
  EXPECT_EQ(moat_pull_frame(gw, buf, sizeof buf, &len), MOAT_OK);
  EXPECT_EQ(moat_policy_update(gw, "allow@any", 9, MOAT_FMT_RULES, 0, &err), MOAT_ESTATE);
  EXPECT_FALSE(stats(gw).empty());  // counters stay readable
  moat_gateway_free(gw);
}

TEST(CApi, NeverStartedGatewayIsFreedCleanly) {
  moat_gateway* gw = make_gw();
  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  ASSERT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_OK);
  EXPECT_NE(stats(gw).find("\"from_guest\":{\"frames\":1"), std::string::npos);
  moat_gateway_free(gw);
}

int policy_generation(moat_gateway* gw) {
  std::string s = stats(gw);
  auto at = s.find("\"policy.generation\":");
  if (at == std::string::npos) return -1;
  return std::stoi(s.substr(at + 20));
}

TEST(CApi, PolicyUpdateValidatesThenSwapsOnTheLoop) {
  moat_gateway* gw = make_gw();
  ASSERT_EQ(moat_gateway_start(gw, nullptr), MOAT_OK);
  moat_error err{};
  EXPECT_EQ(policy_generation(gw), 0);

  // Rules text as a --rules-file holds it: # comments and blank lines are skipped.
  std::string rules = "# from the VMM\nallow@host:tcp:8080\n\ndeny@metadata, allow@*.example.com:tcp:443  # web\n";
  ASSERT_EQ(moat_policy_update(gw, rules.data(), rules.size(), MOAT_FMT_RULES, 0, &err), MOAT_OK) << err.message;
  EXPECT_EQ(policy_generation(gw), 1);

  // A bad rule (the second one overall): the old policy stays, the message is a §5.2 line.
  std::string bad = "allow@host:tcp:8080, allow@host:443";
  EXPECT_EQ(moat_policy_update(gw, bad.data(), bad.size(), MOAT_FMT_RULES, 0, &err), MOAT_ECONFIG);
  EXPECT_EQ(err.code, MOAT_ECONFIG);
  EXPECT_EQ(std::string(err.message).rfind("moat: error: rule #2 \"allow@host:443\" col ", 0), 0u) << err.message;
  EXPECT_EQ(policy_generation(gw), 1);

  std::string doc = R"({"policy": {"profiles": ["all"]}})";
  ASSERT_EQ(moat_policy_update(gw, doc.data(), doc.size(), MOAT_FMT_JSON, 0, &err), MOAT_OK) << err.message;
  EXPECT_EQ(policy_generation(gw), 2);
  std::string toml = "[policy]\nprofiles = [\"public\"]\nrules = [\"allow@host:tcp:22\"]\n";
  ASSERT_EQ(moat_policy_update(gw, toml.data(), toml.size(), MOAT_FMT_TOML, 0, &err), MOAT_OK) << err.message;
  EXPECT_EQ(policy_generation(gw), 3);

  std::string bad_doc = R"({"policy": {"profiles": ["nonsense"]}})";
  EXPECT_EQ(moat_policy_update(gw, bad_doc.data(), bad_doc.size(), MOAT_FMT_JSON, 0, &err), MOAT_ECONFIG);
  EXPECT_EQ(std::string(err.message).rfind("moat: error: policy:1:", 0), 0u) << err.message;
  EXPECT_EQ(policy_generation(gw), 3);

  EXPECT_EQ(moat_policy_update(gw, doc.data(), doc.size(), MOAT_FMT_JSON, 1, &err), MOAT_EINVAL);
  EXPECT_NE(std::string(err.message).find("revalidate"), std::string::npos);
  EXPECT_EQ(moat_policy_update(gw, doc.data(), doc.size(), 9, 0, &err), MOAT_EINVAL);
  EXPECT_EQ(policy_generation(gw), 3);
  moat_gateway_free(gw);
}

// Control calls from several threads while frames flow: serialised, no deadlock, and the
// counters stay consistent (run under ASan/UBSan in CI).
TEST(CApi, ConcurrentControlCallsWhileFramesFlow) {
  moat_gateway* gw = make_gw();
  ASSERT_EQ(moat_gateway_start(gw, nullptr), MOAT_OK);
  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  std::atomic<bool> stop{false};
  std::thread pusher([&] {
    for (int i = 0; i < 2000 && !stop; ++i) {
      (void)moat_push_frame(gw, req.data(), req.size());
      if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::thread puller([&] {
    char buf[2048];
    size_t len;
    while (!stop) {
      if (moat_pull_frame(gw, buf, sizeof buf, &len) != MOAT_OK) {
        pollfd p{moat_rx_eventfd(gw), POLLIN, 0};
        ::poll(&p, 1, 10);
      }
    }
  });
  std::vector<std::thread> ctl;
  for (int t = 0; t < 3; ++t)
    ctl.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_FALSE(stats(gw).empty());
        std::string r = "allow@host:tcp:" + std::to_string(1000 + i);
        EXPECT_EQ(moat_policy_update(gw, r.data(), r.size(), MOAT_FMT_RULES, 0, nullptr), MOAT_OK);
      }
    });
  for (auto& t : ctl) t.join();
  pusher.join();
  stop = true;
  puller.join();
  EXPECT_EQ(policy_generation(gw), 150);
  moat_gateway_free(gw);
}


// --- moat_gateway_attach_fd (R-TR-5 transports behind the ABI)

struct TermRecord {
  std::atomic<int> reason{0};
};

/// Reads one QEMU-framed frame (4-byte big-endian length + frame) from `fd` within 2 s.
std::optional<Buf> read_qemu_frame(int fd, Buf& pending) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pending.size() >= 4) {
      uint32_t n = (uint32_t(pending[0]) << 24) | (uint32_t(pending[1]) << 16) | (uint32_t(pending[2]) << 8) |
                   uint32_t(pending[3]);
      if (pending.size() >= 4 + n) {
        Buf f(pending.begin() + 4, pending.begin() + 4 + long(n));
        pending.erase(pending.begin(), pending.begin() + 4 + long(n));
        return f;
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    std::byte tmp[4096];
    ssize_t r = ::read(fd, tmp, sizeof tmp);
    if (r <= 0) return std::nullopt;
    pending.insert(pending.end(), tmp, tmp + r);
  }
  return std::nullopt;
}

TEST(CApi, AttachFdStreamCarriesFramesAndEofTerminates) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  TermRecord term;
  moat_gateway_opts o{};
  o.struct_size = sizeof o;
  o.userdata = &term;
  o.terminate_cb = [](void* ud, int reason) { static_cast<TermRecord*>(ud)->reason.store(reason); };
  moat_gateway* gw = make_gw(kV4Only, &o);
  moat_error err{};
  EXPECT_EQ(moat_gateway_attach_fd(gw, sv[0], MOAT_FD_TAP, &err), MOAT_EINVAL);  // the wrong kind
  EXPECT_NE(std::string(err.message).find("does not match"), std::string::npos) << err.message;
  EXPECT_EQ(moat_gateway_attach_fd(gw, sv[0], 42, &err), MOAT_EINVAL);
  EXPECT_EQ(moat_gateway_attach_fd(gw, -1, MOAT_FD_STREAM, &err), MOAT_EINVAL);
  EXPECT_EQ(moat_gateway_attach_fd(nullptr, sv[0], MOAT_FD_STREAM, &err), MOAT_EINVAL);
  ASSERT_EQ(moat_gateway_attach_fd(gw, sv[0], MOAT_FD_STREAM, &err), MOAT_OK) << err.message;
  EXPECT_EQ(moat_gateway_attach_fd(gw, sv[0], MOAT_FD_STREAM, &err), MOAT_ESTATE);
  ::close(sv[0]);  // the gateway holds its own duplicate
  ASSERT_EQ(moat_gateway_start(gw, &err), MOAT_OK) << err.message;
  EXPECT_EQ(moat_gateway_attach_fd(gw, sv[1], MOAT_FD_STREAM, &err), MOAT_ESTATE);

  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  EXPECT_EQ(moat_push_frame(gw, req.data(), req.size()), MOAT_ESTATE);
  size_t len = 0;
  char buf[64];
  EXPECT_EQ(moat_pull_frame(gw, buf, sizeof buf, &len), MOAT_ESTATE);
  EXPECT_EQ(moat_rx_eventfd(gw), MOAT_ESTATE);

  // The test is the VMM: QEMU stream framing both ways.
  Buf framed = {std::byte{0}, std::byte{0}, std::byte(req.size() >> 8), std::byte(req.size() & 0xff)};
  framed.insert(framed.end(), req.begin(), req.end());
  ASSERT_EQ(::write(sv[1], framed.data(), framed.size()), ssize_t(framed.size()));
  Buf pending;
  std::optional<Buf> reply;
  for (int i = 0; i < 10 && !reply; ++i) {
    auto f = read_qemu_frame(sv[1], pending);
    if (!f) break;
    if (is_arp_reply(span(*f))) reply = f;
  }
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(as_arp(span(*reply))->arp.target_mac, g.guest_mac);
  EXPECT_NE(stats(gw).find("\"arp.replies\":1"), std::string::npos);

  // EOF from the VMM ends the loop: terminate_cb(MOAT_TERM_LINK_CLOSED) on the loop thread.
  ::close(sv[1]);
  for (int i = 0; i < 200 && term.reason.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(term.reason.load(), MOAT_TERM_LINK_CLOSED);
  moat_gateway_free(gw);
}

TEST(CApi, AttachFdDatagramAndRefusals) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  moat_gateway* gw = make_gw();
  moat_error err{};
  EXPECT_EQ(moat_gateway_attach_fd(gw, sv[0], MOAT_FD_STREAM, &err), MOAT_EINVAL);
  ASSERT_EQ(moat_gateway_attach_fd(gw, sv[0], MOAT_FD_DGRAM, &err), MOAT_OK) << err.message;
  ASSERT_EQ(moat_gateway_start(gw, &err), MOAT_OK) << err.message;
  GuestFrames g;
  Buf req = g.arp_request(g.gateway4);
  ASSERT_EQ(::send(sv[1], req.data(), req.size(), 0), ssize_t(req.size()));
  bool got = false;
  Buf buf(70000);
  for (int i = 0; i < 20 && !got; ++i) {
    pollfd p{sv[1], POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    ssize_t n = ::recv(sv[1], buf.data(), buf.size(), 0);
    ASSERT_GT(n, 0);
    got = is_arp_reply(Bytes(buf.data(), size_t(n)));
  }
  EXPECT_TRUE(got);
  moat_gateway_free(gw);
  ::close(sv[0]);
  ::close(sv[1]);

  // A socket fd carries plain frames: a gateway with a virtio-net header refuses it; an fd
  // that is no socket or TAP is refused with a message.
  moat_gateway_opts o{};
  o.struct_size = sizeof o;
  o.vnet_hdr_len = 12;
  gw = make_gw(kV4Only, &o);
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  EXPECT_EQ(moat_gateway_attach_fd(gw, sv[0], MOAT_FD_DGRAM, &err), MOAT_EINVAL);
  EXPECT_NE(std::string(err.message).find("vnet_hdr_len 0"), std::string::npos) << err.message;
  ::close(sv[0]);
  ::close(sv[1]);
  moat_gateway_free(gw);
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  gw = make_gw();
  EXPECT_EQ(moat_gateway_attach_fd(gw, pipefd[0], MOAT_FD_TAP, &err), MOAT_EINVAL);
  EXPECT_NE(std::string(err.message).find("neither a socket nor a TAP"), std::string::npos) << err.message;
  moat_gateway_free(gw);
  ::close(pipefd[0]);
  ::close(pipefd[1]);
}


// --- moat_publish / moat_unpublish (R-PUB-6)

/// A TCP port that was free a moment ago on 127.0.0.1.
uint16_t free_port() {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(s);
  return ntohs(sa.sin_port);
}

/// connect() to 127.0.0.1:port; the connected fd, or -errno.
int connect_local(uint16_t port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    ::close(s);
    return -e;
  }
  return s;
}

TEST(CApi, PublishAndUnpublishAtRuntime) {
  moat_gateway* gw = make_gw();
  moat_error err{};
  ASSERT_EQ(moat_gateway_start(gw, &err), MOAT_OK);
  const uint16_t port = free_port();
  const std::string spec = std::to_string(port) + ":80";
  EXPECT_EQ(connect_local(port), -ECONNREFUSED);
  ASSERT_EQ(moat_publish(gw, spec.c_str(), &err), MOAT_OK) << err.message;
  int c = connect_local(port);
  ASSERT_GE(c, 0) << "publish did not bind: " << -c;

  // The same host port again: R-PUB-1 duplicate binding, refused before any bind.
  EXPECT_EQ(moat_publish(gw, ("127.0.0.1:" + std::to_string(port) + ":81/tcp").c_str(), &err), MOAT_EINVAL);
  EXPECT_NE(std::string(err.message).find("already published"), std::string::npos) << err.message;
  EXPECT_EQ(moat_publish(gw, "80:", &err), MOAT_ECONFIG);
  EXPECT_EQ(std::string(err.message).rfind("moat: error: publish \"80:\": ", 0), 0u) << err.message;
  EXPECT_EQ(moat_publish(gw, nullptr, &err), MOAT_EINVAL);
  EXPECT_EQ(moat_unpublish(gw, (std::to_string(port) + ":81").c_str(), &err), MOAT_EINVAL);
  EXPECT_NE(std::string(err.message).find("no such published port"), std::string::npos) << err.message;

  // The accepted connection became a flow toward the guest (moat asks for the guest's MAC
  // or sends the SYN); closing the listener must not end it.
  auto to_guest = pull_until(gw, [](Bytes f) { return as_arp(f).has_value() || as_ipv4(f).has_value(); });
  EXPECT_TRUE(to_guest.has_value());
  ASSERT_EQ(moat_unpublish(gw, ("127.0.0.1:" + std::to_string(port) + ":80/tcp").c_str(), &err), MOAT_OK) << err.message;
  EXPECT_EQ(connect_local(port), -ECONNREFUSED);
  pollfd p{c, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 300), 0) << "the established connection was closed by unpublish";
  ::close(c);
  // Published again after the unpublish: the port is free for it.
  EXPECT_EQ(moat_publish(gw, spec.c_str(), &err), MOAT_OK) << err.message;
  // A port someone else holds: MOAT_EIO, one line naming the spec and errno.
  int busy = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(busy, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(busy, 1), 0);
  socklen_t sl = sizeof sa;
  ::getsockname(busy, reinterpret_cast<sockaddr*>(&sa), &sl);
  const std::string taken = std::to_string(ntohs(sa.sin_port)) + ":22";
  EXPECT_EQ(moat_publish(gw, taken.c_str(), &err), MOAT_EIO);
  EXPECT_EQ(std::string(err.message).rfind("moat: error: publish \"" + taken + "\": bind 127.0.0.1:", 0), 0u) << err.message;
  EXPECT_NE(std::string(err.message).find("in use"), std::string::npos) << err.message;
  ::close(busy);
  moat_gateway_free(gw);
}


// --- moat_control (R-CTL-2/3 through the ABI) and the secret/CA calls

std::string control(moat_gateway* gw, const std::string& req) {
  char* out = nullptr;
  EXPECT_EQ(moat_control(gw, req.c_str(), &out), MOAT_OK);
  std::string s = out ? out : "";
  moat_free(out);
  return s;
}

std::string read_all(const std::string& path) {
  std::string s;
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

TEST(CApi, ControlRequestsOnARunningGateway) {
  char dir_tmpl[] = "/tmp/moat-capi-ctl.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_tmpl), nullptr);
  const std::string dir = dir_tmpl, audit = dir + "/audit.jsonl";
  std::string cfg = R"({"net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}}, "audit": {"file": ")" + audit +
                    R"("}, "policy": {"rules": ["allow@*.github.com:tcp:443"]}})";
  moat_gateway* gw = make_gw(cfg);
  ASSERT_NE(gw, nullptr);
  ASSERT_EQ(moat_gateway_start(gw, nullptr), MOAT_OK);
  char* out = nullptr;
  EXPECT_EQ(moat_control(nullptr, "{}", &out), MOAT_EINVAL);
  EXPECT_EQ(moat_control(gw, nullptr, &out), MOAT_EINVAL);
  EXPECT_EQ(moat_control(gw, "{}", nullptr), MOAT_EINVAL);

  std::string r = control(gw, R"({"id":1,"method":"version"})");
  EXPECT_NE(r.find(R"("abi":1)"), std::string::npos) << r;
  EXPECT_NE(r.find(R"("id":1)"), std::string::npos) << r;
  r = control(gw, R"({"id":2,"method":"stats"})");
  EXPECT_NE(r.find(R"("link.from_guest.frames")"), std::string::npos) << r;
  r = control(gw, R"({"id":3,"method":"policy.get"})");
  EXPECT_NE(r.find(R"({"index":0,"origin":"config","rule":"allow@*.github.com:tcp:443"})"), std::string::npos) << r;
  r = control(gw, R"({"id":4,"method":"policy.explain","params":{"dst":"api.github.com:443","ip":"140.82.112.3"}})");
  EXPECT_NE(r.find(R"("allowed":true)"), std::string::npos) << r;
  EXPECT_NE(r.find("MATCH"), std::string::npos) << r;

  // policy.set: a bad rule is invalid_config and changes nothing; a good one is swapped in.
  r = control(gw, R"({"id":5,"method":"policy.set","params":{"policy":"alow@example.com"}})");
  EXPECT_NE(r.find(R"("code":"invalid_config")"), std::string::npos) << r;
  r = control(gw, R"({"id":6,"method":"policy.set","params":{"policy":["deny@10.0.0.0/8","allow@example.com"]}})");
  EXPECT_NE(r.find(R"("result":{"rules":)"), std::string::npos) << r;
  r = control(gw, R"({"id":7,"method":"policy.get"})");
  EXPECT_NE(r.find(R"("rule":"deny@10.0.0.0/8")"), std::string::npos) << r;
  EXPECT_EQ(r.find("github"), std::string::npos) << r;
  EXPECT_NE(stats(gw).find("\"policy.generation\":1"), std::string::npos);

  // publish / unpublish through the protocol; the ephemeral port is reported.
  r = control(gw, R"({"id":8,"method":"publish","params":{"spec":"0:8080"}})");
  EXPECT_NE(r.find("-> guest port 8080"), std::string::npos) << r;
  r = control(gw, R"({"id":9,"method":"unpublish","params":{"spec":"0:8080"}})");
  EXPECT_NE(r.find(R"("closed":1)"), std::string::npos) << r;
  r = control(gw, R"({"id":10,"method":"unpublish","params":{"spec":"0:8080"}})");
  EXPECT_NE(r.find(R"("code":"not_found")"), std::string::npos) << r;
  r = control(gw, R"({"id":11,"method":"publish","params":{"spec":"99999:1"}})");
  EXPECT_NE(r.find(R"("code":"invalid_config")"), std::string::npos) << r;
  r = control(gw, R"({"id":12,"method":"audit.reopen"})");
  EXPECT_NE(r.find(R"("reopened":true)"), std::string::npos) << r;
  r = control(gw, R"({"id":13,"method":"flows"})");
  EXPECT_NE(r.find(R"("code":"unknown_method")"), std::string::npos) << r;
  r = control(gw, "not json");
  EXPECT_NE(r.find(R"("code":"invalid_params")"), std::string::npos) << r;

  // The ABI's own mutating calls are audited too (by "abi").
  moat_error err{};
  ASSERT_EQ(moat_publish(gw, "0:9090/udp", &err), MOAT_OK) << err.message;

  r = control(gw, R"({"id":14,"method":"shutdown"})");
  EXPECT_NE(r.find(R"("stopped":true)"), std::string::npos) << r;
  EXPECT_EQ(moat_push_frame(gw, "xxxxxxxxxxxxxxxx", 16), MOAT_ESTATE);
  r = control(gw, R"({"id":15,"method":"policy.get"})");
  EXPECT_NE(r.find(R"("code":"internal")"), std::string::npos) << r;
  moat_gateway_free(gw);

  const std::string a = read_all(audit);
  EXPECT_NE(a.find(R"("ev":"config_change","what":"policy.set","by":"control")"), std::string::npos) << a;
  EXPECT_NE(a.find(R"("ev":"config_change","what":"publish 0:8080","by":"control")"), std::string::npos) << a;
  EXPECT_NE(a.find(R"("ev":"config_change","what":"unpublish 0:8080","by":"control")"), std::string::npos) << a;
  EXPECT_NE(a.find(R"("ev":"config_change","what":"publish 0:9090/udp","by":"abi")"), std::string::npos) << a;
  ::unlink(audit.c_str());
  ::rmdir(dir.c_str());
}

TEST(CApi, SecretsAndCaOnAGatewayWithoutThem) {
  moat_gateway* gw = make_gw();
  moat_error err{};
  EXPECT_EQ(moat_secret_rotate(gw, "GITHUB_TOKEN", "v", 1, &err), MOAT_ESTATE);
  EXPECT_NE(std::string(err.message).find("no secret \"GITHUB_TOKEN\" is configured"), std::string::npos) << err.message;
  EXPECT_EQ(moat_secret_rotate(gw, nullptr, "v", 1, &err), MOAT_EINVAL);
  EXPECT_EQ(moat_secret_rotate(gw, "X", nullptr, 1, &err), MOAT_EINVAL);
  EXPECT_EQ(moat_secret_rotate(nullptr, "X", "v", 1, &err), MOAT_EINVAL);
  char* env = reinterpret_cast<char*>(1);
  ASSERT_EQ(moat_guest_env(gw, &env), MOAT_OK);
  ASSERT_NE(env, nullptr);
  EXPECT_STREQ(env, "");
  moat_free(env);
  EXPECT_EQ(moat_guest_env(nullptr, &env), MOAT_EINVAL);
  EXPECT_EQ(env, nullptr);
  char* pem = reinterpret_cast<char*>(1);
  EXPECT_EQ(moat_ca_pem(gw, &pem), MOAT_ESTATE);
  EXPECT_EQ(pem, nullptr);
  EXPECT_EQ(moat_ca_pem(gw, nullptr), MOAT_EINVAL);
  moat_gateway_free(gw);
}

// R-TLS-10 "VM integrators get the PEM from moat_ca_pem()": with tls.intercept the gateway's
// CA (here ephemeral: one per gateway) as PEM, the same text on every call.
TEST(CApi, CaPemWithInterception) {
  constexpr std::string_view kTls =
      R"({"net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}}, "tls": {"intercept": true, "ca": "ephemeral"}})";
  moat_gateway* gw = make_gw(kTls);
  ASSERT_NE(gw, nullptr);
  char* pem = nullptr;
  ASSERT_EQ(moat_ca_pem(gw, &pem), MOAT_OK);
  ASSERT_NE(pem, nullptr);
  std::string a = pem;
  moat_free(pem);
  EXPECT_EQ(a.rfind("-----BEGIN CERTIFICATE-----\n", 0), 0u) << a;
  EXPECT_NE(a.find("-----END CERTIFICATE-----\n"), std::string::npos);
  ASSERT_EQ(moat_ca_pem(gw, &pem), MOAT_OK);
  EXPECT_EQ(a, pem);
  moat_free(pem);
  EXPECT_EQ(moat_ca_pem(gw, nullptr), MOAT_EINVAL);
  // Another gateway, another ephemeral CA.
  moat_gateway* gw2 = make_gw(kTls);
  ASSERT_EQ(moat_ca_pem(gw2, &pem), MOAT_OK);
  EXPECT_NE(a, pem);
  moat_free(pem);
  moat_gateway_free(gw2);
  moat_gateway_free(gw);
}

// A bad CA fails moat_gateway_new with MOAT_ECONFIG naming the file; nothing is started.
TEST(CApi, BadCaFailsCreation) {
  constexpr std::string_view kBad =
      R"({"net": {"ipv4": {"enable": "on"}, "ipv6": {"enable": "off"}}, )"
      R"("tls": {"intercept": true, "ca_cert": "/nonexistent/moat-ca.crt", "ca_key": "/nonexistent/moat-ca.key"}})";
  int code = 0;
  std::string msg = new_error(kBad, MOAT_FMT_JSON, nullptr, &code);
  EXPECT_EQ(code, MOAT_ECONFIG);
  EXPECT_NE(msg.find("/nonexistent/moat-ca.crt: cannot open: No such file or directory"), std::string::npos) << msg;
}

// log_cb and audit_cb: the gateway's lines and events reach the embedder, not stderr/a file.
struct Sinks {
  std::mutex mu;
  std::vector<std::pair<int, std::string>> logs;
  std::vector<std::string> audit;
  std::set<std::thread::id> audit_threads;
};

TEST(CApi, LogAndAuditCallbacks) {
  Sinks sinks;
  moat_gateway_opts o{};
  o.struct_size = sizeof o;
  o.userdata = &sinks;
  o.log_cb = [](void* ud, int level, const char* line) {
    auto* s = static_cast<Sinks*>(ud);
    std::lock_guard lock(s->mu);
    s->logs.emplace_back(level, line);
  };
  o.audit_cb = [](void* ud, const char* line) {
    auto* s = static_cast<Sinks*>(ud);
    std::lock_guard lock(s->mu);
    s->audit.emplace_back(line);
    s->audit_threads.insert(std::this_thread::get_id());
  };
  // No audit.file: the callback is the only audit sink.
  moat_gateway* gw = make_gw(kV4Only, &o);
  ASSERT_NE(gw, nullptr);
  moat_error err{};
  ASSERT_EQ(moat_gateway_start(gw, &err), MOAT_OK);
  ASSERT_EQ(moat_publish(gw, "0:8080", &err), MOAT_OK) << err.message;
  ASSERT_EQ(moat_policy_update(gw, "allow@example.com", 17, MOAT_FMT_RULES, 0, &err), MOAT_OK) << err.message;
  char* out = nullptr;
  ASSERT_EQ(moat_control(gw, R"({"id":1,"method":"audit.reopen"})", &out), MOAT_OK);
  EXPECT_NE(std::string(out).find(R"("reopened":true)"), std::string::npos) << out;
  moat_free(out);
  moat_gateway_free(gw);

  std::lock_guard lock(sinks.mu);
  bool published = false;
  for (const auto& [level, line] : sinks.logs) {
    EXPECT_EQ(line.find('\n'), std::string::npos);
    if (line.find("moat: info: published tcp 127.0.0.1:") == 0 && level == 2) published = true;
  }
  EXPECT_TRUE(published) << "log lines: " << sinks.logs.size();
  ASSERT_GE(sinks.audit.size(), 4u);
  EXPECT_NE(sinks.audit.front().find(R"("ev":"gateway_start")"), std::string::npos) << sinks.audit.front();
  EXPECT_NE(sinks.audit.back().find(R"("ev":"gateway_stop")"), std::string::npos) << sinks.audit.back();
  int changes = 0;
  for (const auto& a : sinks.audit) {
    EXPECT_EQ(a.front(), '{');
    EXPECT_EQ(a.back(), '}');
    if (a.find(R"("ev":"config_change")") != std::string::npos) ++changes;
  }
  EXPECT_EQ(changes, 2);  // publish + policy update, both by "abi"
  // gateway_start/stop ran on this thread; config_change on the loop thread.
  EXPECT_EQ(sinks.audit_threads.size(), 2u);
}

}  // namespace
}  // namespace moat
