// CertAuthority (R-TLS-2): generated fields; filled in below with load/create/validation.
#include "tls/ca.h"

#include <gtest/gtest.h>

namespace moat::tls {
namespace {

TEST(CaGenerate, FieldsAsSpecified) {
  auto ca = CertAuthority::generate();
  ASSERT_TRUE(ca) << ca.error().format();
  X509* x = (*ca)->cert();
  EXPECT_EQ(X509_check_ca(x), 1);
  EXPECT_NE((*ca)->pem().find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  EXPECT_NE((*ca)->subject().find("moat interception CA ("), std::string::npos);
}

}  // namespace
}  // namespace moat::tls
