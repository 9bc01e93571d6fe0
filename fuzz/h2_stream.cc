// Fuzz target: the HTTP/2 inspector (R-TLS-6) — frame layer, the nghttp2 HPACK mirror and
// the request checks — on a guest frame stream and an upstream frame stream, interleaved
// and split as the input says; and the h2 502 responder (nghttp2 server session) on the
// same guest bytes.
// Input: byte 0 = flags (bit 0: prepend the connection preface so the fuzzer starts at the
// frame layer; bit 1: also run the responder), then records [control byte][n bytes]: bit 7
// = direction (1 = upstream), bits 0..6 + 1 = n (upstream records are 16× longer, so
// SETTINGS and DATA runs fit).
// Invariants: no crash; held bytes and libnghttp2's allocations within their caps at every
// step; charged memory back to zero at the end; nothing relayed after close.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/memory_budget.h"
#include "http/error_responder.h"
#include "http/h2_inspector.h"

namespace {

class NullSink : public moat::http::Sink {
 public:
  void to_upstream(moat::Bytes b) override { upstream += b.size(); }
  void to_guest(moat::Bytes b) override { guest += b.size(); }
  void on_event(const moat::http::Event& e) override {
    volatile size_t n = e.host.size() + e.method.size() + e.path.size() + e.reason.size();
    (void)n;
  }
  size_t upstream = 0, guest = 0;
};

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moat::http;
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  moat::MemoryBudget budget(0);
  {
    NullSink sink, err_sink;
    H2Inspector in("a.example", sink, &budget);
    ErrorResponder err(Alpn::h2, "a.example:443", "failed TLS verification: x", err_sink, &budget);
    if (flags & 1) {
      (void)in.from_guest(moat::as_bytes(kPreface));
      if (flags & 2) (void)err.from_guest(moat::as_bytes(kPreface));
    }
    size_t i = 1;
    bool closed = in.closing();
    while (i < size) {
      const uint8_t c = data[i++];
      const size_t want = (c & 0x80) ? ((c & 0x7f) + 1) * 16 : (c & 0x7f) + 1;
      const size_t n = std::min<size_t>(want, size - i);
      const moat::Bytes chunk(reinterpret_cast<const std::byte*>(data + i), n);
      i += n;
      const size_t up_before = sink.upstream, guest_before = sink.guest;
      const Next next = (c & 0x80) ? in.from_upstream(chunk) : in.from_guest(chunk);
      if (!(c & 0x80) && (flags & 2)) (void)err.from_guest(chunk);
      if (closed && (sink.upstream != up_before || sink.guest != guest_before)) __builtin_trap();
      if (next == Next::close) closed = true;
      if (in.held_bytes() > 2 * kMaxHeaderBlock + 9 * 128) __builtin_trap();
      if (in.nghttp2_bytes() > (1u << 20)) __builtin_trap();
      if (in.open_streams() > kMaxH2Streams) __builtin_trap();
    }
    (void)in.upstream_eof();
  }
  if (budget.used() != 0) __builtin_trap();
  return 0;
}
