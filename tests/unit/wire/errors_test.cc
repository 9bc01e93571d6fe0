#include "wire/errors.h"

#include <gtest/gtest.h>

namespace moat::wire {
namespace {

TEST(ParseError, Names) {
  EXPECT_EQ(parse_error_name(ParseError::truncated), "truncated");
  EXPECT_EQ(parse_error_name(ParseError::bad_version), "bad_version");
  EXPECT_EQ(parse_error_name(ParseError::bad_length), "bad_length");
  EXPECT_EQ(parse_error_name(ParseError::bad_checksum), "bad_checksum");
  EXPECT_EQ(parse_error_name(ParseError::bad_option), "bad_option");
  EXPECT_EQ(parse_error_name(ParseError::routing_header), "routing_header");
  EXPECT_EQ(parse_error_name(ParseError::too_many_ext_headers), "too_many_ext_headers");
  EXPECT_EQ(parse_error_name(ParseError::unsupported), "unsupported");
}

}  // namespace
}  // namespace moat::wire
