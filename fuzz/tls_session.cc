// Guest bytes through tls::Session's guest side (R-TLS-4, §5.4): the ring BIO, OpenSSL's
// server handshake, the client-hello callback's SNI and ALPN parsers, the ALPN choice and,
// with no upstream reachable, the 502 responder behind the PlainFilter seam. The first
// byte of the input picks the write sizes (segments of any split); everything moat sends
// back is consumed as a reading guest would. Must never crash, hang or grow unbounded.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "event/clock.h"
#include "event/loop.h"
#include "tls/ca.h"
#include "tls/leaf.h"
#include "tls/session.h"
#include "tls/upstream.h"

using namespace moat;

namespace {

struct World {
  event::SystemClock clock;
  event::Loop loop{clock};
  Counters counters;
  config::TlsConfig cfg;
  std::unique_ptr<tls::CertAuthority> ca;
  std::unique_ptr<tls::LeafCache> leaves;
  std::unique_ptr<tls::UpstreamTls> upstream;
  std::unique_ptr<tls::GuestTls> guest;
  tls::SessionEnv env;
  World() {
    cfg.system_roots = false;
    ca = std::move(*tls::CertAuthority::generate());
    leaves = std::move(*tls::LeafCache::create(*ca, cfg));
    upstream = std::move(*tls::UpstreamTls::create(cfg));
    guest = std::move(*tls::GuestTls::create(*leaves));
    env.loop = &loop;
    env.counters = &counters;
    env.upstream = upstream.get();
    env.guest = guest.get();
    env.ring_bytes = 64 << 10;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* w = new World();
  if (size == 0) return 0;
  const size_t step = size_t(data[0] % 64) * 37 + 1;
  ++data;
  --size;
  flows::FlowInfo f;
  f.guest = IpAddr(Ipv4Addr::from_octets(10, 0, 2, 15));
  f.remote = IpAddr(Ipv4Addr::from_octets(192, 0, 2, 1));
  f.guest_port = 40000;
  f.remote_port = 443;
  {
    tls::Session s(w->env, f, flows::TcpFlowRef{});
    s.start(UniqueFd{}, std::nullopt);  // no upstream: every hello ends in the error path
    std::byte sink[16384];
    size_t off = 0;
    for (int round = 0; round < 4096 && s.phase() != tls::Session::Phase::done; ++round) {
      if (off < size) {
        const size_t n = std::min({step, size - off, s.writable()});
        if (n > 0) {
          auto r = s.write(Bytes(reinterpret_cast<const std::byte*>(data) + off, n));
          if (r) off += *r;
        }
      } else if (round > 0 && off == size) {
        s.shutdown_write();
        off = size + 1;
      }
      w->loop.run_once(Duration::zero());
      for (size_t have; (have = s.readable()) > 0;) {
        auto p = s.peek(0, MutBytes(sink, std::min(have, sizeof sink)));
        if (!p || *p == 0) break;
        (void)s.consume(*p);
      }
      if (off > size && s.readable() == 0 && s.read_closed()) break;
    }
    s.detach();
  }
  w->loop.run_once(Duration::zero());
  return 0;
}
