#include "tls/interceptor.h"

#include <algorithm>

#include "base/log.h"
#include "sniff/tls_client_hello.h"

namespace moat::tls {

Treatment treatment(const config::TlsConfig& cfg, uint16_t port, std::string_view sni) {
  if (!cfg.intercept || std::find(cfg.ports.begin(), cfg.ports.end(), port) == cfg.ports.end())
    return Treatment::not_intercepted;
  if (!sni.empty() && best_rank(cfg.bypass, sni) >= 0) return Treatment::bypassed;
  return Treatment::intercepted;
}

std::string_view treatment_name(Treatment t) noexcept {
  switch (t) {
    case Treatment::not_intercepted: return "not intercepted";
    case Treatment::intercepted: return "intercepted";
    case Treatment::bypassed: return "bypassed";
  }
  return "?";
}

/// tls.non_tls = reject (or no memory for a session): the guest gets RST, from the peer's
/// own event as TcpFlowRef requires.
class Interceptor::Refuser final : public flows::TcpPeer {
 public:
  Refuser(event::Loop& loop, flows::TcpFlowRef ref, Errno e) {
    timer_ = loop.schedule_after(Duration::zero(), [ref, e] { ref.peer_error(e); });
  }
  size_t readable() override { return 0; }
  [[nodiscard]] bool read_closed() const override { return false; }
  Result<size_t> peek(size_t, MutBytes) override { return size_t{0}; }
  Status consume(size_t) override { return {}; }
  size_t writable() override { return 0; }
  // The held first flight is released into this peer: refusing it resets the guest at once.
  Result<size_t> write(Bytes) override { return unexpected(Errno{ECONNRESET}); }
  void shutdown_write() override {}
  void abort() override { timer_.cancel(); }

 private:
  event::TimerHandle timer_;
};

Interceptor::Interceptor(event::Loop& loop, Counters& counters, const config::TlsConfig& cfg)
    : loop_(loop), counters_(counters), cfg_(cfg) {}

Interceptor::~Interceptor() {
  for (auto& [p, s] : sessions_)
    if (auto* x = dynamic_cast<Session*>(s.get())) x->detach();
}

Result<std::unique_ptr<Interceptor>, std::string> Interceptor::create(event::Loop& loop, Counters& counters,
                                                                       const config::TlsConfig& cfg,
                                                                       LeafCache& leaves, obs::AuditLog* audit,
                                                                       MemoryBudget* budget, size_t ring_bytes) {
  std::unique_ptr<Interceptor> ic(new Interceptor(loop, counters, cfg));
  if (!cfg.keylog_file.empty()) {
    auto k = KeyLog::open(cfg.keylog_file);
    if (!k) return unexpected(k.error());
    ic->keylog_ = std::move(*k);
    counters.set(Counter::tls_keylog_active, 1);
    MOAT_LOG(warn, "tls: writing TLS session keys to %s (tls.keylog_file): anyone who can read it can decrypt "
             "the intercepted traffic", cfg.keylog_file.c_str());
  }
  auto up = UpstreamTls::create(cfg, ic->keylog_.get());
  if (!up) return unexpected(up.error());
  ic->upstream_ = std::move(*up);
  auto g = GuestTls::create(leaves, ic->keylog_.get());
  if (!g) return unexpected(g.error());
  ic->guest_ = std::move(*g);
  SessionEnv& e = ic->env_;
  e.loop = &loop;
  e.counters = &counters;
  e.upstream = ic->upstream_.get();
  e.guest = ic->guest_.get();
  e.audit = audit;
  e.budget = budget;
  e.upstream_error = cfg.upstream_error;
  e.handshake_timeout = cfg.handshake_timeout;
  e.ring_bytes = ring_bytes;
  return ic;
}

bool Interceptor::intercepted_port(uint16_t port) const noexcept {
  return std::find(cfg_.ports.begin(), cfg_.ports.end(), port) != cfg_.ports.end();
}

flows::TcpTake Interceptor::on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef) {
  // The fast path classifies nothing: ask for the gate path, which dials at once (so
  // latency is the fast path's) and holds the ClientHello until it is read.
  if (f.ingress || !intercepted_port(f.remote_port) || plan.count == 0) return flows::TcpTake::pass();
  return flows::TcpTake::classify();
}

flows::TcpPeer* Interceptor::on_allowed(const flows::FlowInfo& f, flows::TcpFlowRef ref) {
  if (f.ingress || !intercepted_port(f.remote_port)) return nullptr;
  const sniff::Result hello = parse_client_hello(f.first_flight);
  const bool is_tls = !f.first_flight.empty() && hello.kind != sniff::Kind::other;
  if (!is_tls) {
    // R-TLS-4 step 3: its policy was decided without a name already.
    counters_.inc(Counter::tls_non_tls);
    if (cfg_.non_tls == config::TlsConfig::NonTls::passthrough) return nullptr;  // relayed opaquely
    auto r = std::make_unique<Refuser>(loop_, ref, Errno{ECONNRESET});
    flows::TcpPeer* p = r.get();
    sessions_.emplace(p, std::move(r));
    return p;
  }
  const std::string_view sni = hello.kind == sniff::Kind::name ? std::string_view(hello.name) : std::string_view();
  if (!sni.empty() && best_rank(cfg_.bypass, sni) >= 0) {
    counters_.inc(Counter::tls_bypassed);
    return nullptr;  // step 2: the engine replays the ClientHello upstream and splices
  }
  // The gate path's host connection is already up: TLS goes over it (no second dial).
  UniqueFd fd = ref.take_host_socket();
  std::optional<flows::Endpoint> dial_to;
  if (!fd) dial_to = ref.dial_target();
  return &make_session(f, ref, std::move(fd), dial_to, {});
}

Session& Interceptor::make_session(const flows::FlowInfo& f, flows::TcpFlowRef ref, UniqueFd upstream,
                                   std::optional<flows::Endpoint> dial_to, std::string expected_sni) {
  auto s = std::make_unique<Session>(env_, f, ref);
  Session& r = *s;
  sessions_.emplace(s.get(), std::move(s));
  r.start(std::move(upstream), dial_to, std::move(expected_sni));
  return r;
}

void Interceptor::on_closed(flows::TcpPeer& peer) {
  auto it = sessions_.find(&peer);
  if (it == sessions_.end()) return;
  if (auto* s = dynamic_cast<Session*>(it->second.get())) s->detach();
  // Freed after this event: on_closed can run inside the session's own call chain (its
  // peer_error() reached the engine, which swept the flow).
  dead_.push_back(std::move(it->second));
  sessions_.erase(it);
  if (!reaper_.pending()) reaper_ = loop_.schedule_after(Duration::zero(), [this] { reap(); });
}

void Interceptor::reap() { dead_.clear(); }

}  // namespace moat::tls
