#include "sniff/first_flight.h"

#include "sniff/http_head.h"
#include "sniff/tls_client_hello.h"

namespace moat::sniff {

Classification classify_first_flight(Bytes data, bool final) {
  if (data.size() >= kMaxFirstFlight) {
    data = data.first(kMaxFirstFlight);
    final = true;
  }
  Classification c;
  Result tls = moat::tls::parse_client_hello(data);
  if (tls.kind != Kind::other) {
    c.kind = tls.kind;
    c.source = tls.kind == Kind::name ? Source::sni : Source::none;
    c.name = std::move(tls.name);
  } else {
    Result http = moat::http::parse_request_head(data);
    c.kind = http.kind == Kind::other ? Kind::no_name : http.kind;
    c.source = (http.kind == Kind::name || http.kind == Kind::mismatch) ? Source::host : Source::none;
    c.name = std::move(http.name);
  }
  if (c.kind == Kind::need_more && final) c.kind = Kind::no_name;
  if (c.kind == Kind::no_name) {
    c.source = Source::none;
    c.name.clear();
  }
  return c;
}

}  // namespace moat::sniff
