#pragma once
// R-TCP-6 first-flight classification: TLS, then HTTP/1, else "no name". Classification
// completes as soon as the bytes can no longer be a prefix of either, usually at the first
// byte; `final` (the guest sent FIN, the 16 KiB bound or the timeout was reached) turns a
// pending need_more into no_name.
#include "base/bytes.h"
#include "sniff/sniff.h"

namespace moat::sniff {

enum class Source : uint8_t { none, sni, host };

struct Classification {
  Kind kind = Kind::need_more;  ///< need_more, no_name, name, connect or mismatch (never other)
  Source source = Source::none;  ///< where `name` came from
  std::string name;
};

Classification classify_first_flight(Bytes first_flight, bool final);

}  // namespace moat::sniff
