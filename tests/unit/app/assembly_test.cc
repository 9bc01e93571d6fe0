// The composition root (app/assembly.h): finish_config() errors, defaults and naming;
// GatewayOutputs' undo; GatewayAssembly's lifecycle over a socketpair link.
#include "app/assembly.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "event/clock.h"
#include "event/loop.h"
#include "transport/tap.h"

namespace moat::app {
namespace {

/// IPv4 only, with an explicit upstream (no resolv.conf read, no warning).
config::Config v4_config() {
  config::Config c;
  c.net.ipv4_enable = config::FamilyMode::on;
  c.net.ipv6_enable = config::FamilyMode::off;
  c.flows.dns_upstreams.push_back(*config::parse_upstream("127.0.0.1:53"));
  return c;
}

std::string joined(const std::vector<config::UserError>& errs) {
  std::string s;
  for (const auto& e : errs) s += e.format() + "\n";
  return s;
}

FinishOptions abi_options() {
  FinishOptions o;
  o.default_mtu = 1500;
  o.sources = key_sources();
  o.require_a_family = false;
  return o;
}

TEST(FinishConfig, FillsDefaultsAndDerivesTheSlices) {
  FinishOptions o;
  o.default_ifname = "eth0";
  auto p = finish_config(v4_config(), o);
  ASSERT_TRUE(p) << joined(p.error());
  EXPECT_EQ(p->cfg.net.ifname, "eth0");
  EXPECT_EQ(p->cfg.net.mtu, kTapDefaultMtu);
  EXPECT_TRUE(p->families.ipv4);
  EXPECT_FALSE(p->families.ipv6);
  EXPECT_EQ(p->link.mtu, kTapDefaultMtu);
  EXPECT_TRUE(p->link.ipv4_active);
  EXPECT_FALSE(p->link.ipv6_active);
  ASSERT_EQ(p->flows.dns_upstreams.size(), 1u);
  EXPECT_NE(p->flows.policy, nullptr);
  EXPECT_EQ(p->flows.audit_log, nullptr);  // the assembly sets it
  EXPECT_NE(p->cfg.dns.block_list, nullptr);  // compiled (empty) even without dns.block
  EXPECT_FALSE(p->impair);
}

TEST(FinishConfig, AbiDefaultsKeepTheConfiguredValues) {
  auto c = v4_config();
  c.net.ifname = "tap7";
  c.net.mtu = 9000;
  auto p = finish_config(c, abi_options());
  ASSERT_TRUE(p) << joined(p.error());
  EXPECT_EQ(p->cfg.net.ifname, "tap7");
  EXPECT_EQ(p->link.mtu, 9000u);
  auto d = finish_config(v4_config(), abi_options());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->link.mtu, 1500u);
  EXPECT_EQ(d->cfg.net.ifname, "");
}

TEST(FinishConfig, NeitherFamilyIsAnErrorNamedByTheFrontEnd) {
  auto c = v4_config();
  c.net.ipv4_enable = config::FamilyMode::off;
  auto p = finish_config(c, FinishOptions{});
  ASSERT_FALSE(p);
  ASSERT_EQ(p.error().size(), 1u);
  EXPECT_EQ(p.error()[0].where, "--ipv4-enable");
  EXPECT_NE(p.error()[0].hint.find("--ipv4-enable on"), std::string::npos);
  // The C ABI has always accepted it (require_a_family = false).
  EXPECT_TRUE(finish_config(c, abi_options()));
}

TEST(FinishConfig, TlsCaIsAPairAndTheKeyLogDefaultsToTheEnvironment) {
  auto c = v4_config();
  c.tls.ca_cert = "/etc/ca.pem";
  auto p = finish_config(c, FinishOptions{});
  ASSERT_FALSE(p);
  ASSERT_EQ(p.error().size(), 1u);
  EXPECT_EQ(p.error()[0].where, "--tls-ca-cert (tls.ca_cert)");
  EXPECT_EQ(p.error()[0].what, "is given without --tls-ca-key (tls.ca_key)");
  c.tls.ca_key = "/etc/ca.key";
  EXPECT_TRUE(finish_config(c, FinishOptions{}));

  auto k = v4_config();
  ::setenv("SSLKEYLOGFILE", "/tmp/keys.log", 1);
  FinishOptions own;
  own.own_process = true;
  auto cli = finish_config(k, own);
  auto abi = finish_config(k, abi_options());
  ::unsetenv("SSLKEYLOGFILE");
  ASSERT_TRUE(cli);
  ASSERT_TRUE(abi);
  EXPECT_EQ(cli->cfg.tls.keylog_file, "/tmp/keys.log");
  EXPECT_EQ(abi->cfg.tls.keylog_file, "");
}

TEST(FinishConfig, FlowTimeoutsAndQueuesReachTheEngines) {
  auto c = v4_config();
  c.flows.tcp_idle_timeout = Duration::zero();  // 0 = never
  c.flows.tcp_half_closed_timeout = std::chrono::seconds(90);
  c.flows.tcp_close_timeout = std::chrono::seconds(5);
  c.flows.tcp_keepalive = false;
  c.flows.tcp_keepalive_count = 7;
  c.flows.tcp_max_window = 1u << 20;
  c.flows.udp_idle_timeout = std::chrono::seconds(7);
  c.flows.udp_max_peers = 9;
  c.flows.udp_queue_datagrams = 11;
  c.flows.udp_queue_bytes = 8192;
  c.flows.icmp_idle_timeout = std::chrono::seconds(3);
  c.flows.icmp_gateway_echo = false;
  auto p = finish_config(c, FinishOptions{});
  ASSERT_TRUE(p);
  const auto& e = p->flows.engines;
  EXPECT_EQ(e.tcp.idle_timeout, Duration::max());
  EXPECT_EQ(e.tcp.half_closed_timeout, std::chrono::seconds(90));
  EXPECT_EQ(e.tcp.close_timeout, std::chrono::seconds(5));
  EXPECT_FALSE(e.tcp.keepalive);
  EXPECT_EQ(e.tcp.keepalive_count, 7);
  EXPECT_EQ(e.tcp.max_window, 1u << 20);
  EXPECT_EQ(e.udp.idle_timeout, std::chrono::seconds(7));
  EXPECT_EQ(e.udp.max_peers, 9u);
  EXPECT_EQ(e.udp.queue_datagrams, 11u);
  EXPECT_EQ(e.udp.queue_bytes, 8192u);
  EXPECT_EQ(e.icmp.idle_timeout, std::chrono::seconds(3));
  EXPECT_FALSE(p->link.gateway_echo);
}

TEST(FinishConfig, AddressErrorsNameFlagsOrKeys) {
  auto c = v4_config();
  c.net.ipv4_gateway = c.net.ipv4_address;
  auto flags = finish_config(c, FinishOptions{});
  ASSERT_FALSE(flags);
  EXPECT_EQ(flags.error()[0].where, "--gateway4");
  auto keys = finish_config(c, abi_options());
  ASSERT_FALSE(keys);
  EXPECT_EQ(keys.error()[0].where, "net.ipv4.gateway");
}

TEST(FinishConfig, CompilesTheDnsBlockListIntoThePolicy) {
  auto c = v4_config();
  c.dns.block.push_back("ads.example");
  auto p = finish_config(c, abi_options());
  ASSERT_TRUE(p) << joined(p.error());
  ASSERT_NE(p->cfg.dns.block_list, nullptr);
  EXPECT_FALSE(p->cfg.policy.inputs.block.empty());
  EXPECT_FALSE(p->flows.dns.block.empty());
}

TEST(FinishConfig, EarlierErrorsComeFirstAndSkipTheBlockFiles) {
  auto c = v4_config();
  c.dns.block_files.push_back("/nonexistent/moat-block-list");
  auto alone = finish_config(c, FinishOptions{});
  ASSERT_FALSE(alone);
  EXPECT_NE(joined(alone.error()).find("/nonexistent/moat-block-list"), std::string::npos);
  auto with_flag_error = finish_config(c, FinishOptions{}, {{"--max-flows", "0 is out of range", ""}});
  ASSERT_FALSE(with_flag_error);
  ASSERT_EQ(with_flag_error.error().size(), 1u);
  EXPECT_EQ(with_flag_error.error()[0].where, "--max-flows");
}

TEST(FinishConfig, ParsesTheImpairment) {
  auto c = v4_config();
  c.flows.impair = "loss=0.5,seed=7";
  auto p = finish_config(c, abi_options());
  ASSERT_TRUE(p) << joined(p.error());
  ASSERT_TRUE(p->impair);
  c.flows.impair = "loss=2";
  auto bad = finish_config(c, abi_options());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error()[0].where, "net.impair");
}

TEST(HostAddrs, OnlyTheActiveFamiliesAndDistinctDnsAddresses) {
  config::NetConfig n;
  auto v4 = host_addrs(n, Families{true, false});
  ASSERT_EQ(v4.addrs.size(), 1u);  // dns4 defaults to the gateway
  EXPECT_EQ(v4.addrs[0], IpAddr(n.ipv4_gateway));
  n.ipv4_dns = Ipv4Addr::from_octets(100, 96, 0, 53);
  n.ipv6_dns = *Ipv6Addr::parse("fd42:6d73:62::53");
  auto both = host_addrs(n, Families{true, true});
  EXPECT_EQ(both.addrs.size(), 5u);  // gateway4, dns4, gateway6, its link-local, dns6
  auto v6 = host_addrs(n, Families{false, true});
  ASSERT_EQ(v6.addrs.size(), 3u);
  EXPECT_EQ(v6.addrs[1], IpAddr(n.gateway_mac.link_local()));
}

class TmpDir {
 public:
  TmpDir() {
    char tmpl[] = "/tmp/moat-assembly-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TmpDir() { std::system(("rm -rf " + path_).c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

TEST(GatewayOutputs, DiscardRemovesOnlyWhatItCreated) {
  TmpDir dir;
  auto c = v4_config();
  c.pid_file = dir.path() + "/moat.pid";
  c.pcap_file = dir.path() + "/link.pcap";
  c.audit.file = dir.path() + "/audit.jsonl";
  std::ofstream(c.audit.file) << "old line\n";  // exists before: kept
  auto out = GatewayOutputs::open(c, /*with_pid_file=*/true);
  ASSERT_TRUE(out) << out.error();
  EXPECT_TRUE(exists(c.pid_file));
  EXPECT_TRUE(exists(c.pcap_file));
  EXPECT_TRUE(out->pcap.has_value());
  EXPECT_TRUE(bool(out->audit));
  out->discard();
  EXPECT_FALSE(exists(c.pid_file));
  EXPECT_FALSE(exists(c.pcap_file));
  EXPECT_TRUE(exists(c.audit.file));
}

TEST(GatewayOutputs, AFailureLeavesNothingAndNamesTheSetting) {
  TmpDir dir;
  auto c = v4_config();
  c.pid_file = dir.path() + "/moat.pid";
  c.pcap_file = dir.path() + "/missing/link.pcap";
  auto out = GatewayOutputs::open(c, /*with_pid_file=*/true);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().rfind("--pcap " + c.pcap_file + ": cannot open", 0), 0u) << out.error();
  EXPECT_FALSE(exists(c.pid_file));
  auto abi = GatewayOutputs::open(c, /*with_pid_file=*/false, {.pid_file = "", .pcap = ""});
  ASSERT_FALSE(abi);
  EXPECT_EQ(abi.error().rfind(c.pcap_file + ": cannot open", 0), 0u) << abi.error();
}

class AssemblyTest : public ::testing::Test {
 protected:
  event::SystemClock clock_;
  event::Loop loop_{clock_};
  int peer_ = -1;

  std::unique_ptr<transport::FrameTransport> link(Counters& counters) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    peer_ = sv[1];
    auto t = transport::TapTransport::create(UniqueFd(sv[0]), counters, transport::TapConfig{});
    EXPECT_TRUE(t);
    return std::move(t).value();
  }
  ~AssemblyTest() override {
    if (peer_ >= 0) ::close(peer_);
  }
};

TEST_F(AssemblyTest, LifecycleAuditsStartAndStopAroundTheGateway) {
  auto plan = finish_config(v4_config(), abi_options());
  ASSERT_TRUE(plan);
  GatewayAssembly a(loop_, std::move(plan).value());
  EXPECT_EQ(a.gateway(), nullptr);
  GatewayOutputs out;
  std::vector<std::string> lines;
  AssemblyHooks hooks;
  hooks.audit_line_sink = [&](const std::string& l) { lines.push_back(l); };
  ASSERT_TRUE(a.assemble(link(a.counters()), out, hooks));
  ASSERT_NE(a.gateway(), nullptr);
  ASSERT_NE(a.audit(), nullptr);
  ASSERT_TRUE(a.start([](const Errno&) {}));
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.front().find(R"("ev":"gateway_start")"), std::string::npos);
  const std::string running = a.stats_json([](std::string& s) { s += ",\"extra\":1"; });
  EXPECT_NE(running.find("\"policy.generation\":0"), std::string::npos) << running;
  EXPECT_NE(running.find(",\"extra\":1}"), std::string::npos) << running;
  EXPECT_TRUE(a.reopen_audit());  // audit hook only: nothing to reopen

  a.stop("test");
  a.stop("again");  // idempotent
  EXPECT_EQ(a.gateway(), nullptr);
  EXPECT_EQ(a.audit(), nullptr);
  EXPECT_NE(lines.back().find(R"("ev":"gateway_stop")"), std::string::npos) << lines.back();
  EXPECT_NE(lines.back().find(R"("reason":"test")"), std::string::npos) << lines.back();
  const std::string stopped = a.stats_json();
  EXPECT_EQ(stopped.find("policy.generation"), std::string::npos) << stopped;
  EXPECT_NE(stopped.find("\"counters\":{"), std::string::npos);
}

TEST_F(AssemblyTest, NoAuditLogWithoutFileOrHook) {
  auto plan = finish_config(v4_config(), abi_options());
  ASSERT_TRUE(plan);
  GatewayAssembly a(loop_, std::move(plan).value());
  GatewayOutputs out;
  ASSERT_TRUE(a.assemble(link(a.counters()), out));
  EXPECT_EQ(a.audit(), nullptr);
  EXPECT_TRUE(a.reopen_audit());
}

TEST_F(AssemblyTest, APublishFailureIsAnError) {
  auto c = v4_config();
  auto spec = config::parse_publish("127.0.0.1:1:80/tcp");  // a privileged port twice
  ASSERT_TRUE(spec);
  c.flows.publish.push_back(*spec);
  c.flows.publish.push_back(*spec);
  auto plan = finish_config(c, abi_options());
  ASSERT_TRUE(plan);
  GatewayAssembly a(loop_, std::move(plan).value());
  GatewayOutputs out;
  auto r = a.assemble(link(a.counters()), out);
  EXPECT_FALSE(r);
}

}  // namespace
}  // namespace moat::app
