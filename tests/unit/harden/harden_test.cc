#include "harden/harden.h"

#include "base/file.h"
#include "base/unique_fd.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace moat::harden {
namespace {

TEST(ResolveRunas, NamesAndIds) {
  auto root = resolve_runas("root");
  ASSERT_TRUE(root) << root.error();
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);
  auto ids = resolve_runas("4321:1234");
  ASSERT_TRUE(ids) << ids.error();
  EXPECT_EQ(ids->uid, 4321u);
  EXPECT_EQ(ids->gid, 1234u);
  auto bare = resolve_runas("54321");  // no passwd entry: its group is the same number
  ASSERT_TRUE(bare) << bare.error();
  EXPECT_EQ(bare->gid, 54321u);
  auto with_group = resolve_runas("root:0");
  ASSERT_TRUE(with_group);
  EXPECT_EQ(with_group->gid, 0u);
}

TEST(ResolveRunas, Errors) {
  EXPECT_EQ(resolve_runas("no-such-user-x").error(), "no such user \"no-such-user-x\"");
  EXPECT_EQ(resolve_runas("root:no-such-group-x").error(), "no such group \"no-such-group-x\"");
  EXPECT_FALSE(resolve_runas(""));
  EXPECT_FALSE(resolve_runas("root:"));
}

/// Runs `body` in a forked child after lock_down(plan); returns the child's wait status.
template <class F>
int in_locked_child(const LockDownPlan& plan, F body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!lock_down(plan)) ::_exit(90);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(LockDown, AllowedCallsWorkAndTheProcessIsHardened) {
  const int st = in_locked_child({.front = Front::serve, .seccomp = SeccompMode::on}, [] {
    // prctl itself is outside the list (moat makes no prctl after setup): read the status.
    auto st = read_bounded_file("/proc/self/status", 1 << 16);
    if (!st || st->find("NoNewPrivs:\t1") == std::string::npos) return 1;
    if (st->find("Seccomp:\t2") == std::string::npos || st->find("CapEff:\t0000000000000000") == std::string::npos)
      return 2;
    int p[2];
    if (::pipe2(p, 0) != 0 || ::write(p[1], "x", 1) != 1) return 3;
    void* m = std::malloc(1 << 20);  // the allocator's mmap
    std::free(m);
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(LockDown, LandlockLeavesOnlyTheListedPaths) {
  if (landlock_abi() == 0) GTEST_SKIP() << "no Landlock in this kernel";
  char dir_tmpl[] = "/tmp/moat-landlock-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_tmpl), nullptr);
  const std::string dir = dir_tmpl;
  const std::string readable = dir + "-ro.txt";
  {
    UniqueFd f(::open(readable.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    ASSERT_TRUE(f);
  }
  UniqueFd held(::open("/etc/hostname", O_RDONLY | O_CLOEXEC));  // opened before: still usable
  LockDownPlan plan{.front = Front::serve, .seccomp = SeccompMode::off};
  plan.landlock = LandlockPlan{{{dir, true}, {readable, false}, {"/proc/self", false}}};
  const int st = in_locked_child(plan, [&] {
    const std::string f = dir + "/audit.jsonl";
    UniqueFd w(::open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600));  // a write dir: create, rename, remove
    if (!w || ::rename(f.c_str(), (f + ".1").c_str()) != 0 || ::unlink((f + ".1").c_str()) != 0) return 1;
    if (UniqueFd r(::open(readable.c_str(), O_RDONLY)); !r) return 2;  // a read file
    if (UniqueFd r(::open(readable.c_str(), O_WRONLY)); r || errno != EACCES) return 3;  // ...read only
    if (UniqueFd r(::open("/etc/passwd", O_RDONLY)); r || errno != EACCES) return 4;  // not listed
    if (UniqueFd r(::open("/tmp/moat-landlock-new", O_WRONLY | O_CREAT, 0600)); r || errno != EACCES) return 5;
    char c;
    if (::pread(held.get(), &c, 1, 0) != 1) return 6;  // descriptors from before keep working
    return 0;
  });
  ::unlink(readable.c_str());
  ::rmdir(dir.c_str());
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(LockDown, AForbiddenCallKillsTheProcess) {
  // unshare is outside the allow-list (in every build; ptrace is allowed in sanitizer builds
  // for LeakSanitizer): SECCOMP_RET_KILL_PROCESS.
  const int st = in_locked_child({.front = Front::serve, .seccomp = SeccompMode::on}, [] {
    (void)::syscall(SYS_unshare, 0);
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(st)) << st;
  EXPECT_EQ(WTERMSIG(st), SIGSYS);
}

TEST(LockDown, NoExecutableMemoryAndNoOtherSocketFamilies) {
  const LockDownPlan plan{.front = Front::serve, .seccomp = SeccompMode::on};
  int st = in_locked_child(plan, [] {
    (void)::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return 0;
  });
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) << st;
  st = in_locked_child(plan, [] {
    (void)::socket(AF_NETLINK, SOCK_RAW, 0);
    return 0;
  });
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) << st;
  st = in_locked_child(plan, [] {
    // A relay's host socket: socket, bind, connect, getsockname are allowed.
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 1;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 2;
    return ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : 3;
  });
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(LockDown, LogModeAllowsTheCall) {
  const int st = in_locked_child({.front = Front::serve, .seccomp = SeccompMode::log}, [] {
    (void)::syscall(SYS_ptrace, 0, 0, 0, 0);
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(LockDown, RunasSwitchesUidAndRunKeepsRealRoot) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root";
  const RunAs nobody{65534, 65534, "65534"};
  int st = in_locked_child({.front = Front::attach, .seccomp = SeccompMode::off, .runas = nobody}, [] {
    uid_t r, e, s;
    if (::getresuid(&r, &e, &s) != 0 || r != 65534 || e != 65534 || s != 65534) return 1;
    return ::setuid(0) == 0 ? 2 : 0;
  });
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
  st = in_locked_child({.front = Front::run, .seccomp = SeccompMode::off, .runas = nobody}, [] {
    uid_t r, e, s;
    if (::getresuid(&r, &e, &s) != 0 || r != 0 || e != 65534 || s != 0) return 1;
    // A root process (our parent) can still be signalled: signal 0 checks permission only.
    return ::kill(::getppid(), 0) == 0 ? 0 : 3;
  });
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

}  // namespace
}  // namespace moat::harden
