// Fuzz target: the HTTP/1 inspector (R-TLS-6) on a guest request stream and an upstream
// response stream, interleaved and split as the input says, plus the R-TLS-5 502 responder.
// Input: records of [control byte][n bytes]: bit 7 = direction (1 = upstream), bits 0..6 + 1 =
// n. The first byte picks the expected authority (name or IP literal).
// The same records also drive a Pump whose writers take only (control & 0x0f) * 8 bytes per
// call (back-pressure), so its held output is exercised too.
// Invariants: no crash; held bytes within the R-TLS-6 limits at every step; the charged
// memory within its bound and back to zero at the end; nothing is relayed after close.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/memory_budget.h"
#include "http/error_responder.h"
#include "http/inspector.h"
#include "http/pump.h"

namespace {

class NullSink : public moat::http::Sink {
 public:
  void to_upstream(moat::Bytes b) override { upstream += b.size(); }
  void to_guest(moat::Bytes b) override { guest += b.size(); }
  void on_event(const moat::http::Event& e) override {
    // Views must be readable.
    volatile size_t n = e.host.size() + e.method.size() + e.path.size() + e.reason.size();
    (void)n;
  }
  size_t upstream = 0, guest = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moat::http;
  if (size < 1) return 0;
  static constexpr std::string_view kAuthorities[] = {"a.example", "10.0.0.1", "fd00::1", "A.Example."};
  const std::string_view expected = kAuthorities[data[0] % 4];
  moat::MemoryBudget budget(0);
  {
    NullSink sink, err_sink;
    Inspector in(expected, (data[0] & 4) ? Alpn::http1 : Alpn::none, sink, &budget);
    ErrorResponder err(Alpn::http1, "a.example:443", "failed TLS verification: x", err_sink);
    auto pump = Pump::inspect(expected, Alpn::http1, &budget, [](const Event&) {});
    size_t i = 1;
    bool closed = false;
    while (i < size) {
      const uint8_t c = data[i++];
      const size_t n = std::min<size_t>((c & 0x7f) + 1, size - i);
      const moat::Bytes chunk(reinterpret_cast<const std::byte*>(data + i), n);
      i += n;
      const size_t up_before = sink.upstream, guest_before = sink.guest;
      const Next next = (c & 0x80) ? in.from_upstream(chunk) : in.from_guest(chunk);
      if (!(c & 0x80)) (void)err.from_guest(chunk);
      size_t room = size_t(c & 0x0f) * 8;
      auto writer = [&room](moat::Bytes b) {
        const size_t n = std::min(room, b.size());
        room -= n;
        return n;
      };
      const size_t took = (c & 0x80) ? pump->from_upstream(chunk, writer) : pump->from_guest(chunk, writer, writer);
      if (took != 0 && took != chunk.size()) __builtin_trap();  // all or nothing
      if (pump->pending_bytes() > 4 * kMaxHeaderBlock + 1024) __builtin_trap();
      if (closed && (sink.upstream != up_before || sink.guest != guest_before)) __builtin_trap();
      if (next == Next::close) closed = true;
      if (in.held_bytes() > 3 * kMaxHeaderBlock) __builtin_trap();
      if (budget.used() > 8 * kMaxHeaderBlock + 2 * kMaxPipelined) __builtin_trap();
    }
    (void)in.upstream_eof();
  }
  if (budget.used() != 0) __builtin_trap();
  return 0;
}
