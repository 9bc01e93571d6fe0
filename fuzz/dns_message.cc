// DNS message fuzz target (SPEC R-HARD-6, §5.4): arbitrary bytes as a guest query and as an
// upstream answer. Whatever parses as a query must give builders that parse back with the
// same question; truncation at the query's limit must stay within it; an answer's pins
// (CNAME chain walk) must never touch a record outside the answer. Seeds: fuzz/corpus/dns_message
// (queries with and without EDNS, a CNAME answer, compression pointers, a pointer loop).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dns/message.h"
#include "dns/pin_set.h"

namespace {

using namespace moat;
using namespace moat::dns;

[[noreturn]] void bug() { __builtin_trap(); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  if (auto q = parse_query(in)) {
    for (Rcode rc : {Rcode::noerror, Rcode::nxdomain, Rcode::servfail}) {
      auto out = build_empty(q->header, &q->question, q->has_opt, rc);
      auto r = parse_response(out);
      if (!r || !same_question(r->question, q->question) || r->header.id != q->header.id) bug();
    }
    std::vector<IpAddr> addrs{IpAddr(Ipv4Addr::from_octets(100, 96, 0, 1))};
    auto local = build_local(*q, addrs);
    if (!parse_response(local)) bug();
    std::vector<std::byte> copy(in.begin(), in.end());
    if (truncate_to(copy, q->udp_limit(), q->has_opt) && copy.size() > q->udp_limit()) bug();
  } else if (q.error().error != QueryError::garbage) {
    const auto& f = q.error();
    auto out = build_empty(f.header, f.question_ok ? &f.question : nullptr, f.has_opt, Rcode::formerr);
    if (!Header::parse(out)) bug();
  }
  if (auto r = parse_response(in)) {
    static event::FakeClock clock;
    static event::Loop loop(clock);
    PinSet pins(loop, PinConfig{std::chrono::seconds(1), std::chrono::seconds(10), 64});
    pins.update(r->question.name.text, r->records);
    if (pins.live() > 64) bug();
    std::vector<std::byte> copy(in.begin(), in.end());
    for (size_t limit : {size_t(0), size_t(512), size / 2}) {
      std::vector<std::byte> c = copy;
      truncate_to(c, limit, true);
    }
  }
  return 0;
}
