#include "base/file.h"

#include <gtest/gtest.h>
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

TEST(ReadBoundedFile, EndlessFileStopsAtTheLimit) {
  auto r = read_bounded_file("/dev/zero", size_t{16} << 20);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), "larger than 16 MiB");
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
