#include "base/file.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace moat {
namespace {

std::string temp_file(const std::string& content) {
  char name[] = "/tmp/moat-file-test-XXXXXX";
  int fd = ::mkstemp(name);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, content.data(), content.size()), ssize_t(content.size()));
  ::close(fd);
  return name;
}

TEST(ReadBoundedFile, ReadsWholeFileUpToTheLimit) {
  std::string path = temp_file(std::string(100000, 'x'));
  auto r = read_bounded_file(path, 100000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size(), 100000u);
  ::unlink(path.c_str());
}

TEST(ReadBoundedFile, RefusesOneByteOverTheLimit) {
  std::string path = temp_file(std::string(2049, 'x'));
  auto r = read_bounded_file(path, 2048);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ReadFileError::Kind::too_large);
  EXPECT_EQ(r.error().message(), "larger than 2 KiB");
  ::unlink(path.c_str());
}

TEST(ReadBoundedFile, CharacterDevicesAreRefusedBeforeAnyRead) {
  // /dev/zero would be endless and /dev/tty could block: neither is a config or a list.
  auto r = read_bounded_file("/dev/zero", size_t{16} << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ReadFileError::Kind::not_regular);
  EXPECT_EQ(r.error().message(), "is not a regular file (a character device)");
}

TEST(ReadBoundedFile, FifoIsRefusedInsteadOfBlocking) {
  char dir[] = "/tmp/moat-fifo-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  // No writer: a blocking open() would wait forever; the test would hang, not fail.
  auto r = read_bounded_file(path, 1024);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "is not a regular file (a FIFO)");
  // A writer that never writes: a blocking read() would wait forever.
  int w = ::open(path.c_str(), O_RDWR | O_NONBLOCK);
  ASSERT_GE(w, 0);
  auto r2 = read_bounded_file(path, 1024);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().kind, ReadFileError::Kind::not_regular);
  ::close(w);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(ReadBoundedFile, SocketIsRefused) {
  char dir[] = "/tmp/moat-sock-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/s";
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  auto r = read_bounded_file(path, 1024);
  ASSERT_FALSE(r);
  // open() of a socket path fails (ENXIO) before fstat() can look: still an error, no hang.
  EXPECT_TRUE(r.error().kind == ReadFileError::Kind::open || r.error().kind == ReadFileError::Kind::not_regular);
  ::close(s);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST(ReadBoundedFile, MissingFileAndDirectory) {
  auto missing = read_bounded_file("/nonexistent/moat-x", 1024);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), "cannot open: No such file or directory");
  auto dir = read_bounded_file("/tmp", 1024);
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().message(), "is a directory");
}

}  // namespace
}  // namespace moat
