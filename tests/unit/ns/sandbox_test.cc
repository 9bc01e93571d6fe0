#include "ns/sandbox.h"

#include <gtest/gtest.h>
#include <net/if.h>
#include <poll.h>
#include <sys/stat.h>

#include <regex>

#include "base/file.h"
#include "ns/tap.h"
#include "ns_test_util.h"

namespace moat::ns {
namespace {

using namespace std::chrono_literals;
using testing::read_all;

SandboxSpec base_spec(std::vector<std::string> argv) {
  SandboxSpec s;
  s.argv = std::move(argv);
  s.tap.ifname = "moat0";
  s.tap.guest_mac = *MacAddr::parse("02:00:00:00:02:02");
  s.tap.gateway_mac = *MacAddr::parse("02:00:00:00:02:01");
  s.tap.mtu = 1500;
  s.tap.guest4 = Ipv4Addr::from_octets(100, 96, 2, 2);
  s.tap.prefix4 = 24;
  s.tap.gateway4 = Ipv4Addr::from_octets(100, 96, 2, 1);
  s.tap.dns4 = Ipv4Addr::from_octets(100, 96, 2, 3);
  s.tap.guest6 = *Ipv6Addr::parse("fd42:6d73:62:2::2");
  s.tap.gateway6 = *Ipv6Addr::parse("fd42:6d73:62:2::1");
  s.tap.dns6 = *Ipv6Addr::parse("fd42:6d73:62:2::3");
  s.nameservers = {s.tap.dns4, s.tap.dns6};
  s.host_alias_addrs = {s.tap.gateway4, s.tap.gateway6};
  return s;
}

/// A pipe whose write end the sandboxed shell inherits (not CLOEXEC) as fd `w`.
struct Capture {
  int r = -1, w = -1;
  Capture() {
    int p[2];
    if (::pipe(p) == 0) {
      r = p[0];
      w = p[1];
      ::fcntl(r, F_SETFD, FD_CLOEXEC);
    }
  }
  ~Capture() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  /// Closes our copy of the write end, then reads until the sandbox closes its copy.
  std::string collect() {
    ::close(w);
    w = -1;
    return read_all(r, 10s);
  }
  [[nodiscard]] std::string to() const { return " >&" + std::to_string(w); }
};

std::string host_file(const char* path) {
  auto r = read_sysctl(path);  // any small file
  return r ? *r : "<missing>";
}

bool write_small_file(const char* path, const std::string& content) {
  int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == ssize_t(content.size());
  ::close(fd);
  return ok;
}

/// Runs argv in a sandbox to completion; returns the status (or -1).
int run_to_exit(const SandboxSpec& spec, std::string* error = nullptr) {
  auto sb = Sandbox::start(spec);
  if (!sb) {
    if (error) *error = sb.error();
    return -1;
  }
  UniqueFd tap = sb->take_tap_fd();  // keep the TAP (and the child's link) alive
  if (!sb->release()) return -2;
  auto st = sb->wait_for(10s);
  return st ? *st : -3;
}

TEST(Sandbox, ChildSeesResolverHostsAndTap) {
  MOAT_REQUIRE_ROOT();
  const std::string resolv_before = host_file("/etc/resolv.conf");
  const std::string hosts_before = host_file("/etc/hosts");
  Capture cap;
  auto spec = base_spec({"sh", "-c",
                         "{ cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; ip -o addr; ip route; "
                         "cat /proc/sys/net/ipv4/ping_group_range; grep moat-run /proc/self/mountinfo; }" +
                             cap.to()});
  auto sb = Sandbox::start(spec);
  ASSERT_TRUE(sb) << sb.error();
  EXPECT_GT(sb->pid(), 0);
  EXPECT_GE(sb->pidfd(), 0);
  UniqueFd tap = sb->take_tap_fd();
  ASSERT_TRUE(tap.valid());
  EXPECT_FALSE(sb->take_tap_fd().valid());
  EXPECT_EQ(::if_nametoindex("moat0"), 0u);  // not in our namespace
  ASSERT_TRUE(sb->release());
  std::string out = cap.collect();
  pollfd p{sb->pidfd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10000), 1);
  EXPECT_EQ(sb->try_wait(), std::optional<int>(0));

  EXPECT_NE(out.find("nameserver 100.96.2.3\nnameserver fd42:6d73:62:2::3\noptions edns0\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("100.96.2.1\thost.moat.internal\nfd42:6d73:62:2::1\thost.moat.internal\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("moat0    inet 100.96.2.2/24"), std::string::npos) << out;
  EXPECT_NE(out.find("moat0    inet6 fd42:6d73:62:2::2/64"), std::string::npos) << out;
  EXPECT_NE(out.find("default via 100.96.2.1 dev moat0"), std::string::npos) << out;
  EXPECT_NE(out.find("0\t2147483647"), std::string::npos) << out;
  // The host's files are untouched, and moat's generated copies are already gone from disk.
  EXPECT_EQ(host_file("/etc/resolv.conf"), resolv_before);
  EXPECT_EQ(host_file("/etc/hosts"), hosts_before);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("moat-run-[A-Za-z0-9]{6}"))) << out;
  struct stat st{};
  EXPECT_NE(::stat(("/tmp/" + m.str()).c_str(), &st), 0);
  if (const char* xdg = ::getenv("XDG_RUNTIME_DIR")) {
    EXPECT_NE(::stat((std::string(xdg) + "/" + m.str()).c_str(), &st), 0);
  }
  // And the bind mounts never reached our mount namespace.
  EXPECT_EQ(host_file("/proc/self/mountinfo").find("moat-run-"), std::string::npos);
}

TEST(Sandbox, ExitStatusPassthrough) {
  MOAT_REQUIRE_ROOT();
  EXPECT_EQ(run_to_exit(base_spec({"sh", "-c", "exit 7"})), 7);
  EXPECT_EQ(run_to_exit(base_spec({"sh", "-c", "kill -9 $$"})), 137);
  EXPECT_EQ(run_to_exit(base_spec({"true"})), 0);
}

TEST(Sandbox, ExecFailures) {
  MOAT_REQUIRE_ROOT();
  EXPECT_EQ(run_to_exit(base_spec({"moat-test-no-such-command"})), 127);
  EXPECT_EQ(run_to_exit(base_spec({"/nonexistent/dir/cmd"})), 127);
  EXPECT_EQ(run_to_exit(base_spec({"/etc/passwd"})), 126);  // not executable
}

TEST(Sandbox, KillChildSignalsTheProcessGroup) {
  MOAT_REQUIRE_ROOT();
  Capture cap;
  // The grandchild (sleep) is in the same process group and dies too.
  auto sb = Sandbox::start(base_spec({"sh", "-c", "sleep 30 & echo started" + cap.to() + "; wait"}));
  ASSERT_TRUE(sb) << sb.error();
  ASSERT_TRUE(sb->release());
  ::close(cap.w);
  cap.w = -1;
  char buf[16];
  pollfd p{cap.r, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  ASSERT_GT(::read(cap.r, buf, sizeof buf), 0);
  sb->kill_child(SIGTERM);
  EXPECT_EQ(sb->wait_for(10s), std::optional<int>(128 + SIGTERM));
  // EOF on the pipe means the backgrounded sleep (which holds it) is gone as well.
  EXPECT_EQ(read_all(cap.r, 5s), "");
  sb->kill_child(SIGKILL);  // reaped: a no-op
}

TEST(Sandbox, DroppedBeforeReleaseNeverRunsTheCommand) {
  MOAT_REQUIRE_ROOT();
  char dir[] = "/tmp/moat-sb-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string marker = std::string(dir) + "/ran";
  pid_t pid;
  {
    auto sb = Sandbox::start(base_spec({"touch", marker}));
    ASSERT_TRUE(sb) << sb.error();
    pid = sb->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0);  // killed and reaped by the destructor
  struct stat st{};
  EXPECT_NE(::stat(marker.c_str(), &st), 0);
  ::rmdir(dir);
}

TEST(Sandbox, SetupFailureIsReportedAndLeavesNothing) {
  MOAT_REQUIRE_ROOT();
  auto spec = base_spec({"true"});
  spec.tap.mtu = 70000;
  auto sb = Sandbox::start(spec);
  ASSERT_FALSE(sb);
  EXPECT_EQ(sb.error(), "run: moat0: set MTU 70000: Invalid argument");
  EXPECT_EQ(host_file("/proc/self/mountinfo").find("moat-run-"), std::string::npos);

  spec = base_spec({});
  auto empty = Sandbox::start(spec);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error(), "run: no command given");
}

TEST(Sandbox, WithoutDnsConfigKeepsTheHostResolver) {
  MOAT_REQUIRE_ROOT();
  Capture cap;
  auto spec = base_spec({"sh", "-c", "cat /etc/resolv.conf" + cap.to()});
  spec.dns_config = false;
  auto sb = Sandbox::start(spec);
  ASSERT_TRUE(sb) << sb.error();
  ASSERT_TRUE(sb->release());
  std::string out = cap.collect();
  EXPECT_EQ(sb->wait_for(10s), std::optional<int>(0));
  EXPECT_EQ(out.find("options edns0"), std::string::npos) << out;
  auto host = read_sysctl("/etc/resolv.conf");
  if (host) {
    EXPECT_EQ(out.substr(0, host->size()), *host);
  }
}

TEST(Sandbox, UserNamespaceMapsCallerToRoot) {
  MOAT_REQUIRE_ROOT();
  Capture cap;
  auto spec = base_spec({"sh", "-c", "{ id -u; cat /proc/self/uid_map; cat /etc/resolv.conf; ip -o link; } " + cap.to()});
  spec.userns = SandboxSpec::Userns::always;
  auto sb = Sandbox::start(spec);
  ASSERT_TRUE(sb) << sb.error();
  ASSERT_TRUE(sb->release());
  std::string out = cap.collect();
  EXPECT_EQ(sb->wait_for(10s), std::optional<int>(0));
  EXPECT_EQ(out.substr(0, 2), "0\n") << out;
  EXPECT_NE(out.find("0          0          1"), std::string::npos) << out;  // a single-id map
  EXPECT_NE(out.find("nameserver 100.96.2.3"), std::string::npos) << out;
  EXPECT_NE(out.find("moat0:"), std::string::npos) << out;
}

TEST(Sandbox, DanglingResolvConfSymlinkIsCovered) {
  MOAT_REQUIRE_ROOT();
  // A private mount namespace with a tmpfs /etc in which resolv.conf points nowhere
  // (like systemd-resolved's stub when resolved is not running). Nothing leaks out.
  std::string out = testing::in_child(CLONE_NEWNS, [] {
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return std::string("ERR: private");
    if (::mount("tmpfs", "/etc", "tmpfs", 0, "mode=0755") < 0) return std::string("ERR: tmpfs");
    if (::symlink("/run/moat-test-nonexistent/stub-resolv.conf", "/etc/resolv.conf") < 0)
      return std::string("ERR: symlink");
    if (!write_small_file("/etc/hosts", "10.1.1.1\tonly-in-test\n")) return std::string("ERR: hosts");
    Capture cap;
    auto sb = Sandbox::start(base_spec({"sh", "-c", "cat /etc/resolv.conf /etc/hosts" + cap.to()}));
    if (!sb) return "ERR: " + sb.error();
    if (!sb->release()) return std::string("ERR: release");
    std::string r = cap.collect();
    auto st = sb->wait_for(10s);
    return r + "status=" + std::to_string(st ? *st : -1);
  });
  EXPECT_NE(out.find("nameserver 100.96.2.3"), std::string::npos) << out;
  EXPECT_NE(out.find("10.1.1.1\tonly-in-test\n# Added by moat\n100.96.2.1\thost.moat.internal"), std::string::npos)
      << out;
  EXPECT_NE(out.find("status=0"), std::string::npos) << out;
}

}  // namespace
}  // namespace moat::ns

namespace moat::ns {
namespace {

// --- R-TLS-10 guest trust ----------------------------------------------------------------

const std::string kFakeCa = "-----BEGIN CERTIFICATE-----\nTUFSS0VS\n-----END CERTIFICATE-----\n";

const char* first_system_bundle() {
  for (const char* b : kSystemCaBundles)
    if (::access(b, F_OK) == 0) return b;
  return nullptr;
}

TEST(SandboxCaTrust, MergedBundleAndEnvHelpers) {
  EXPECT_EQ(make_ca_bundle("A\nB", "CA\n"), "A\nB\n# moat interception CA (R-TLS-10)\nCA\n");
  EXPECT_EQ(make_ca_bundle("", "CA"), "# moat interception CA (R-TLS-10)\nCA\n");
  auto env = with_ca_env({"PATH=/bin", "SSL_CERT_FILE=/old", "SSL_CERT_FILEX=keep", "NODE_EXTRA_CA_CERTS=/x"},
                         "/b.crt", "/c.crt");
  std::vector<std::string> want = {"PATH=/bin",
                                   "SSL_CERT_FILEX=keep",
                                   "SSL_CERT_FILE=/b.crt",
                                   "REQUESTS_CA_BUNDLE=/b.crt",
                                   "CURL_CA_BUNDLE=/b.crt",
                                   "GIT_SSL_CAINFO=/b.crt",
                                   "NODE_EXTRA_CA_CERTS=/c.crt"};
  EXPECT_EQ(env, want);
}

// The command sees the variables pointing at readable files with moat's CA, and (bind+env)
// the system bundle path shows the merged bundle; the host's bundle is untouched; the files
// go away with the Sandbox.
void check_trust(SandboxSpec::CaTrust mode, SandboxSpec::Userns userns) {
  const char* sys = first_system_bundle();
  const std::string sys_before = sys ? read_bounded_file(sys, 64 << 20).value_or("") : "";
  Capture cap;
  std::string script = "{ for v in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO NODE_EXTRA_CA_CERTS; do "
                       "eval f=\\$$v; echo \"$v=$f\"; grep -c TUFSS0VS \"$f\"; done; ";
  if (sys) script += std::string("echo SYS; grep -c TUFSS0VS ") + sys + "; ";
  script += "true; }" + cap.to();  // grep -c exits 1 when it counts 0
  auto spec = base_spec({"sh", "-c", script});
  spec.ca_pem = kFakeCa;
  spec.ca_trust = mode;
  spec.userns = userns;
  std::vector<std::string> paths;
  {
    auto sb = Sandbox::start(spec);
    ASSERT_TRUE(sb) << sb.error();
    paths = sb->ca_trust_paths();
    ASSERT_TRUE(sb->release());
    std::string out = cap.collect();
    EXPECT_EQ(sb->wait_for(10s), std::optional<int>(0)) << out;
    if (mode == SandboxSpec::CaTrust::none) {
      EXPECT_TRUE(paths.empty());
      EXPECT_NE(out.find("SSL_CERT_FILE=\n"), std::string::npos) << out;
    } else {
      ASSERT_EQ(paths.size(), 3u);
      EXPECT_NE(out.find("SSL_CERT_FILE=" + paths[1] + "\n1\n"), std::string::npos) << out;
      EXPECT_NE(out.find("REQUESTS_CA_BUNDLE=" + paths[1] + "\n1\n"), std::string::npos) << out;
      EXPECT_NE(out.find("CURL_CA_BUNDLE=" + paths[1] + "\n1\n"), std::string::npos) << out;
      EXPECT_NE(out.find("GIT_SSL_CAINFO=" + paths[1] + "\n1\n"), std::string::npos) << out;
      EXPECT_NE(out.find("NODE_EXTRA_CA_CERTS=" + paths[2] + "\n1\n"), std::string::npos) << out;
      // The merged bundle keeps the system's certificates.
      auto merged = read_bounded_file(paths[1], 64 << 20);
      ASSERT_TRUE(merged);
      if (sys) {
        EXPECT_EQ(merged->substr(0, sys_before.size()), sys_before);
      }
    }
    if (sys) {
      bool bound = mode == SandboxSpec::CaTrust::bind_env;
      EXPECT_NE(out.find(std::string("SYS\n") + (bound ? "1" : "0") + "\n"), std::string::npos) << out;
      EXPECT_EQ(read_bounded_file(sys, 64 << 20).value_or(""), sys_before);  // host untouched
    }
  }
  // Removed by the janitor process shortly after the Sandbox went away.
  struct stat st {};
  for (int i = 0; i < 200 && !paths.empty() && ::stat(paths[0].c_str(), &st) == 0; ++i) ::usleep(10'000);
  for (const auto& p : paths) EXPECT_NE(::stat(p.c_str(), &st), 0) << p << " left behind";
}

TEST(SandboxCaTrust, BindAndEnv) {
  MOAT_REQUIRE_ROOT();
  check_trust(SandboxSpec::CaTrust::bind_env, SandboxSpec::Userns::never);
}
TEST(SandboxCaTrust, BindAndEnvInAUserNamespace) {
  MOAT_REQUIRE_ROOT();
  check_trust(SandboxSpec::CaTrust::bind_env, SandboxSpec::Userns::always);
}
TEST(SandboxCaTrust, EnvOnly) {
  MOAT_REQUIRE_ROOT();
  check_trust(SandboxSpec::CaTrust::env, SandboxSpec::Userns::never);
}
TEST(SandboxCaTrust, NoneChangesNothing) {
  MOAT_REQUIRE_ROOT();
  ::unsetenv("SSL_CERT_FILE");
  check_trust(SandboxSpec::CaTrust::none, SandboxSpec::Userns::never);
}

}  // namespace
}  // namespace moat::ns
