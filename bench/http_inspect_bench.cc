// Micro-benchmarks of the HTTP inspector (src/http, R-TLS-6):
//   BM_H1Request          one typical request head checked and forwarded, its response
//                         followed (per-request cost; head in one read = parsed in place)
//   BM_H1RequestSplit     the same head arriving in two reads (the held-copy path)
//   BM_H2DataFromGuest    bulk DATA frames guest→upstream (16 KiB frames), bytes/s
//   BM_H2DataFromUpstream bulk DATA frames upstream→guest, bytes/s
//   BM_H2Request          one HEADERS block HPACK-decoded by the mirror, checked, forwarded
// Run: build/bench/bench_http_inspect [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include "http/h1_inspector.h"
#include "http/h2_inspector.h"

namespace {

using moat::as_bytes;
using moat::Bytes;
using namespace moat::http;

class CountingSink : public Sink {
 public:
  void to_upstream(Bytes b) override { upstream += b.size(); }
  void to_guest(Bytes b) override { guest += b.size(); }
  void on_event(const Event&) override { ++events; }
  size_t upstream = 0, guest = 0, events = 0;
};

const std::string kRequest =
    "GET /v1/models/list?limit=20&offset=0 HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: python-requests/2.31.0\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept: application/json\r\n"
    "Connection: keep-alive\r\n"
    "Authorization: Bearer MOAT_SECRET_API_KEY_0123456789abcdef\r\n"
    "Content-Type: application/json\r\n"
    "X-Request-Id: 6f1c2b9e-8d4a-4b6e-9c1f-2a3b4c5d6e7f\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

void BM_H1Request(benchmark::State& state) {
  CountingSink sink;
  H1Inspector in("api.example.com", sink, nullptr);
  for (auto _ : state) {
    (void)in.from_guest(as_bytes(kRequest));
    (void)in.from_upstream(as_bytes(kResponse));
  }
  if (sink.events != 0) state.SkipWithError("unexpected event");
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetBytesProcessed(int64_t(state.iterations() * kRequest.size()));
}
BENCHMARK(BM_H1Request);

void BM_H1RequestSplit(benchmark::State& state) {
  CountingSink sink;
  H1Inspector in("api.example.com", sink, nullptr);
  const std::string_view r(kRequest);
  for (auto _ : state) {
    (void)in.from_guest(as_bytes(r.substr(0, 100)));
    (void)in.from_guest(as_bytes(r.substr(100)));
    (void)in.from_upstream(as_bytes(kResponse));
  }
  if (sink.events != 0) state.SkipWithError("unexpected event");
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_H1RequestSplit);

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string s;
  const auto len = uint32_t(payload.size());
  s += char(len >> 16), s += char(len >> 8), s += char(len), s += char(type), s += char(flags);
  s += char(stream >> 24), s += char(stream >> 16), s += char(stream >> 8), s += char(stream);
  s += payload;
  return s;
}

// Preface, SETTINGS and a POST on stream 1 without END_STREAM (HPACK by hand: static-table
// indices and literals, no Huffman).
std::string h2_open() {
  std::string block = "\x83\x87";                   // :method POST, :scheme https
  block += "\x44\x07/upload";                       // :path /upload (literal, indexed name)
  block += "\x41\x0f" "api.example.com";            // :authority
  return "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, "") + frame(1, 0x4, 1, block);
}

void BM_H2DataFromGuest(benchmark::State& state) {
  CountingSink sink;
  H2Inspector in("api.example.com", sink, nullptr);
  (void)in.from_guest(as_bytes(h2_open()));
  std::string bulk;
  const std::string payload(16384, 'd');
  for (int i = 0; i < 64; ++i) bulk += frame(0, 0, 1, payload);  // 1 MiB per read
  for (auto _ : state) {
    if (in.from_guest(as_bytes(bulk)) != Next::relay) state.SkipWithError("closed");
  }
  state.SetBytesProcessed(int64_t(state.iterations() * bulk.size()));
}
BENCHMARK(BM_H2DataFromGuest);

void BM_H2DataFromUpstream(benchmark::State& state) {
  CountingSink sink;
  H2Inspector in("api.example.com", sink, nullptr);
  (void)in.from_guest(as_bytes(h2_open()));
  (void)in.from_upstream(as_bytes(frame(4, 0, 0, "") + frame(1, 0x4, 1, "\x88")));
  std::string bulk;
  const std::string payload(16384, 'd');
  for (int i = 0; i < 64; ++i) bulk += frame(0, 0, 1, payload);
  for (auto _ : state) {
    if (in.from_upstream(as_bytes(bulk)) != Next::relay) state.SkipWithError("closed");
  }
  state.SetBytesProcessed(int64_t(state.iterations() * bulk.size()));
}
BENCHMARK(BM_H2DataFromUpstream);

void BM_H2Request(benchmark::State& state) {
  CountingSink sink;
  H2Inspector in("api.example.com", sink, nullptr);
  (void)in.from_guest(as_bytes(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + frame(4, 0, 0, "")));
  // Each request: a new stream (id += 2), answered by the upstream so streams do not pile up.
  std::string block = "\x82\x87\x84\x41\x0f" "api.example.com";
  block += "\x40\x0a" "user-agent" "\x09" "bench/1.0";  // literal with incremental indexing
  uint32_t id = 1;
  std::string req, resp;
  for (auto _ : state) {
    req = frame(1, 0x5, id, block);
    resp = frame(1, 0x5, id, "\x88");
    (void)in.from_guest(as_bytes(req));
    (void)in.from_upstream(as_bytes(resp));
    id += 2;
    if (id > 0x7fff0000u) state.SkipWithError("stream ids exhausted");
  }
  if (sink.events != 0) state.SkipWithError("unexpected event");
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_H2Request);

}  // namespace
