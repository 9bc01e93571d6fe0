#include "dns/forwarder.h"

#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "policy/groups.h"

namespace moat::dns {

namespace {

constexpr std::string_view kHostInternal = "host.moat.internal";
constexpr size_t kMaxUpstreamAnswer = 65535;

socklen_t to_sockaddr(const Upstream& u, sockaddr_storage& ss) { return moat::to_sockaddr(u.addr, u.port, &ss); }

policy::Proto proto_of(Transport t) { return t == Transport::tcp ? policy::Proto::tcp : policy::Proto::udp; }

}  // namespace

std::string_view dns_event_name(DnsEvent::Kind k) noexcept {
  switch (k) {
    case DnsEvent::Kind::query: return "dns_query";
    case DnsEvent::Kind::denied: return "dns_denied";
    case DnsEvent::Kind::blocked: return "dns_blocked";
    case DnsEvent::Kind::rebind_blocked: return "dns_rebind_blocked";
  }
  return "dns_query";
}

/// One forwarded query. Slots are reused; `gen` makes stale socket events and timers no-ops.
struct Forwarder::Pending {
  bool used = false;
  uint32_t slot = 0;
  uint32_t gen = 0;
  Client client;
  AnswerSink* sink = nullptr;
  Query query;
  std::vector<std::byte> msg;  ///< the guest's query, ID rewritten per attempt
  policy::Verdict verdict;     ///< the name's DNS verdict (rebind exception (a))
  std::vector<Upstream> targets;
  size_t next = 0;             ///< next index into targets
  Upstream current;
  bool over_tcp = false;
  uint16_t wire_id = 0;
  Instant started{}, deadline{};
  UniqueFd fd;
  event::Watch watch;  // declared after fd: destroyed first
  event::TimerHandle timer;
  std::vector<std::byte> tcp_out;  ///< length-prefixed query
  size_t tcp_sent = 0;
  std::vector<std::byte> tcp_in;   ///< length-prefixed answer being read
};

Forwarder::Forwarder(event::Loop& loop, Counters& counters, ForwarderConfig cfg, const policy::EngineRef& policy,
                     PinSet& pins, const BlockList& block)
    : loop_(loop), counters_(counters), cfg_(std::move(cfg)), policy_(policy), pins_(pins), block_(block) {
  unhealthy_until_.assign(cfg_.upstreams.size(), Instant{});
}

Forwarder::~Forwarder() = default;

void Forwarder::set_upstreams(std::vector<Upstream> u) {
  cfg_.upstreams = std::move(u);
  unhealthy_until_.assign(cfg_.upstreams.size(), Instant{});
}

bool Forwarder::is_local(const IpAddr& a) const noexcept {
  const IpAddr n = policy::normalize(a);
  return std::any_of(cfg_.local_addrs.begin(), cfg_.local_addrs.end(), [&](const IpAddr& l) { return l == n; });
}

uint16_t Forwarder::random_id() {
  if (rnd_left_ == 0) {
    // Fresh IDs must be unpredictable (off-path spoofing); getrandom never blocks once the
    // pool is initialised, and a batch keeps it to one syscall per 64 queries.
    if (::getrandom(rnd_.data(), sizeof rnd_, GRND_NONBLOCK) != ssize_t(sizeof rnd_)) {
      for (auto& v : rnd_) v = uint16_t(v * 31421u + 6927u + uint16_t(loop_.now().time_since_epoch().count()));
    }
    rnd_left_ = rnd_.size();
  }
  return rnd_[--rnd_left_];
}

void Forwarder::reply_now(const Client& c, AnswerSink& sink, const Query& q, std::vector<std::byte> answer) {
  if (c.transport == Transport::udp && truncate_to(answer, q.udp_limit(), q.has_opt))
    counters_.inc(Counter::dns_truncated);
  sink.on_answer(c, std::move(answer));
}

bool Forwarder::on_query(const Client& c, Bytes msg, AnswerSink& sink) {
  auto parsed = parse_query(msg);
  if (!parsed) {
    const QueryFailure& f = parsed.error();
    if (f.error == QueryError::garbage) {
      counters_.drop(DropReason::dns_malformed);
      return false;
    }
    counters_.inc(Counter::dns_queries);
    const Rcode rc = f.error == QueryError::notimp ? Rcode::notimp : Rcode::formerr;
    sink.on_answer(c, build_empty(f.header, f.question_ok ? &f.question : nullptr, f.has_opt, rc));
    return true;
  }
  counters_.inc(Counter::dns_queries);
  const Query& q = *parsed;
  const std::string& qname = q.question.name.text;
  DnsEvent ev;
  ev.client = &c;
  ev.qname = qname;
  ev.qtype = q.question.qtype;

  // 1. Block list.
  if (block_.blocked(qname)) {
    counters_.inc(Counter::dns_blocked);
    ev.kind = DnsEvent::Kind::blocked;
    ev.rcode = Rcode::nxdomain;
    emit(ev);
    reply_now(c, sink, q, build_empty(q.header, &q.question, q.has_opt, Rcode::nxdomain));
    return true;
  }
  // 2. Name policy (R-POL-8). A deny is NXDOMAIN, never REFUSED.
  const policy::Engine& engine = policy_.get();
  // Plain DNS is always port 53 here (DoT on 853 is not intercepted, R-DNS-9).
  const policy::Verdict verdict = engine.decide_dns(qname, proto_of(c.transport), 53);
  if (!verdict.allowed()) {
    counters_.inc(Counter::dns_denied);
    ev.kind = DnsEvent::Kind::denied;
    ev.rcode = Rcode::nxdomain;
    ev.verdict = verdict;
    emit(ev);
    reply_now(c, sink, q, build_empty(q.header, &q.question, q.has_opt, Rcode::nxdomain));
    return true;
  }
  // 3. Inactive family.
  const bool is_a = q.question.qclass == kClassIn && q.question.qtype == kTypeA;
  const bool is_aaaa = q.question.qclass == kClassIn && q.question.qtype == kTypeAaaa;
  if ((is_a && !cfg_.ipv4_active) || (is_aaaa && !cfg_.ipv6_active)) {
    counters_.inc(Counter::dns_nodata_family);
    reply_now(c, sink, q, build_empty(q.header, &q.question, q.has_opt, Rcode::noerror));
    return true;
  }
  // 4. Local names: authoritative, pinned, never forwarded.
  const std::vector<IpAddr>* local = nullptr;
  if (qname == kHostInternal) local = &cfg_.gateway_addrs;
  for (const auto& [name, addrs] : cfg_.hosts)
    if (!local && name == qname) local = &addrs;
  if (local) {
    if (is_a || is_aaaa)
      for (const IpAddr& a : *local)
        if (a.is_v6 == is_aaaa) pins_.pin(qname, a, std::chrono::seconds(kLocalTtl));
    counters_.set(Counter::dns_pins_active, pins_.live());
    if (audit_all_) {
      ev.answers = uint32_t(local->size());
      ev.pinned = is_a || is_aaaa;
      emit(ev);
    }
    reply_now(c, sink, q, build_local(q, *local));
    return true;
  }
  // 5. Upstream choice.
  std::vector<Upstream> targets;
  if (is_local(c.server) || cfg_.direct_queries == DirectQueries::upstream) {
    for (uint32_t i : upstream_order(loop_.now())) {
      Upstream u = cfg_.upstreams[i];
      if (c.transport == Transport::tcp) u.tcp = true;  // same transport as the guest
      targets.push_back(u);
    }
    if (targets.empty()) {
      counters_.inc(Counter::dns_servfail);
      MOAT_LOG_RATELIMITED(warn, "dns: no upstream resolver configured; answering SERVFAIL");
      reply_now(c, sink, q, build_empty(q.header, &q.question, q.has_opt, Rcode::servfail));
      return true;
    }
  } else {
    // A query to another resolver (R-DNS-3 step 5): evaluated as an egress flow to it.
    bool allowed = cfg_.direct_queries == DirectQueries::target;
    if (allowed) {
      policy::Query fq;
      fq.dir = policy::Direction::egress;
      fq.addr = c.server;
      fq.port = c.server_port;
      fq.proto = proto_of(c.transport);
      const policy::Verdict v = engine.decide(fq, pins_);
      allowed = v.allowed();
      ev.verdict = v;
    }
    if (!allowed) {
      counters_.inc(Counter::dns_denied);
      ev.kind = DnsEvent::Kind::denied;
      ev.rcode = Rcode::nxdomain;
      emit(ev);
      reply_now(c, sink, q, build_empty(q.header, &q.question, q.has_opt, Rcode::nxdomain));
      return true;
    }
    targets.push_back(Upstream{policy::normalize(c.server), c.server_port, c.transport == Transport::tcp});
  }
  // R-DNS-11: the in-flight limit. TCP sessions check can_accept() before reading.
  if (inflight_ >= cfg_.max_inflight) {
    counters_.inc(Counter::dns_dropped_overload);
    return false;
  }
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = uint32_t(slots_.size());
    slots_.push_back(std::make_unique<Pending>());
    slots_.back()->slot = slot;
  }
  Pending& p = *slots_[slot];
  p.used = true;
  ++p.gen;
  ++inflight_;
  p.client = c;
  p.sink = &sink;
  p.query = q;
  p.msg.assign(msg.begin(), msg.end());
  p.verdict = verdict;
  p.targets = std::move(targets);
  p.next = 0;
  p.started = loop_.now();
  p.deadline = p.started + cfg_.deadline;
  const uint32_t gen = p.gen;
  p.timer = loop_.schedule_at(p.deadline, [this, slot, gen] { on_timer(slot, gen); });
  start_attempt(slot);
  return true;
}

std::vector<uint32_t> Forwarder::upstream_order(Instant now) const {
  // Healthy upstreams in configured order, then the ones that timed out recently.
  std::vector<uint32_t> order;
  for (uint32_t i = 0; i < cfg_.upstreams.size(); ++i)
    if (unhealthy_until_[i] <= now) order.push_back(i);
  for (uint32_t i = 0; i < cfg_.upstreams.size(); ++i)
    if (unhealthy_until_[i] > now) order.push_back(i);
  return order;
}

void Forwarder::start_attempt(uint32_t slot) {
  Pending& p = *slots_[slot];
  const Instant now = loop_.now();
  if (p.next >= p.targets.size() || now >= p.deadline) {
    counters_.inc(Counter::dns_servfail);
    finish(p, build_empty(p.query.header, &p.query.question, p.query.has_opt, Rcode::servfail));
    return;
  }
  if (p.next > 0) counters_.inc(Counter::dns_failovers);
  p.current = p.targets[p.next++];
  p.over_tcp = p.current.tcp;
  p.wire_id = random_id();
  set_id(p.msg, p.wire_id);
  p.watch.reset();
  p.fd.reset();
  const uint32_t gen = p.gen;
  p.timer = loop_.schedule_at(std::min(now + cfg_.timeout, p.deadline), [this, slot, gen] { on_timer(slot, gen); });
  if (p.over_tcp) attempt_tcp(p);
  else attempt_udp(p);
}

void Forwarder::attempt_udp(Pending& p) {
  sockaddr_storage ss;
  const socklen_t sl = to_sockaddr(p.current, ss);
  UniqueFd fd(::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), sl) != 0 ||
      ::send(fd.get(), p.msg.data(), p.msg.size(), MSG_NOSIGNAL) < 0) {
    return attempt_failed(p, false);
  }
  const uint32_t slot = p.slot, gen = p.gen;
  auto w = loop_.watch(fd.get(), EPOLLIN, [this, slot, gen](uint32_t ev) { on_udp_io(slot, gen, ev); });
  if (!w) return attempt_failed(p, false);
  p.fd = std::move(fd);
  p.watch = std::move(*w);
}

void Forwarder::attempt_tcp(Pending& p) {
  sockaddr_storage ss;
  const socklen_t sl = to_sockaddr(p.current, ss);
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return attempt_failed(p, false);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), sl) != 0 && errno != EINPROGRESS)
    return attempt_failed(p, false);
  p.tcp_out.resize(2 + p.msg.size());
  store_be16(p.tcp_out.data(), uint16_t(p.msg.size()));
  std::memcpy(p.tcp_out.data() + 2, p.msg.data(), p.msg.size());
  p.tcp_sent = 0;
  p.tcp_in.clear();
  const uint32_t slot = p.slot, gen = p.gen;
  auto w = loop_.watch(fd.get(), EPOLLIN | EPOLLOUT, [this, slot, gen](uint32_t ev) { on_tcp_io(slot, gen, ev); });
  if (!w) return attempt_failed(p, false);
  p.fd = std::move(fd);
  p.watch = std::move(*w);
}

void Forwarder::attempt_failed(Pending& p, bool timeout) {
  if (timeout) {
    counters_.inc(Counter::dns_upstream_timeouts);
    for (size_t i = 0; i < cfg_.upstreams.size(); ++i)
      if (cfg_.upstreams[i].addr == p.current.addr && cfg_.upstreams[i].port == p.current.port)
        unhealthy_until_[i] = loop_.now() + cfg_.unhealthy_for;
  }
  p.watch.reset();
  p.fd.reset();
  start_attempt(p.slot);
}

void Forwarder::on_timer(uint32_t slot, uint32_t gen) {
  Pending& p = *slots_[slot];
  if (!p.used || p.gen != gen) return;
  if (loop_.now() >= p.deadline) {
    // The whole query ran out of time (R-DNS-4): SERVFAIL.
    if (p.fd) counters_.inc(Counter::dns_upstream_timeouts);
    counters_.inc(Counter::dns_servfail);
    finish(p, build_empty(p.query.header, &p.query.question, p.query.has_opt, Rcode::servfail));
    return;
  }
  attempt_failed(p, true);
}

void Forwarder::on_udp_io(uint32_t slot, uint32_t gen, uint32_t) {
  Pending& p = *slots_[slot];
  if (!p.used || p.gen != gen || !p.fd) return;
  std::array<std::byte, 4096> small;
  std::vector<std::byte> big;
  for (int i = 0; i < 16; ++i) {
    // Peek the size first so answers up to 64 KiB are read whole without a 64 KiB stack buffer.
    ssize_t n = ::recv(p.fd.get(), small.data(), small.size(), MSG_PEEK | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      return attempt_failed(p, false);  // ICMP error (ECONNREFUSED...) → next upstream
    }
    Bytes msg;
    if (size_t(n) <= small.size()) {
      n = ::recv(p.fd.get(), small.data(), small.size(), 0);
      if (n < 0) return;
      msg = Bytes(small.data(), size_t(n));
    } else {
      big.resize(std::min<size_t>(size_t(n), kMaxUpstreamAnswer));
      n = ::recv(p.fd.get(), big.data(), big.size(), 0);
      if (n < 0) return;
      msg = Bytes(big.data(), size_t(n));
    }
    auto r = parse_response(msg);
    auto h = Header::parse(msg);
    if (h && h->qr() && h->id == p.wire_id && h->tc() && (!r || same_question(r->question, p.query.question))) {
      // R-DNS-4: a truncated answer is retried over TCP to the same upstream.
      p.watch.reset();
      p.fd.reset();
      p.over_tcp = true;
      attempt_tcp(p);
      return;
    }
    if (!r || r->header.id != p.wire_id || !same_question(r->question, p.query.question)) continue;  // ignored
    on_upstream_answer(p, msg, *r);
    return;
  }
}

void Forwarder::on_tcp_io(uint32_t slot, uint32_t gen, uint32_t events) {
  Pending& p = *slots_[slot];
  if (!p.used || p.gen != gen || !p.fd) return;
  if (events & EPOLLERR) return attempt_failed(p, false);
  while (p.tcp_sent < p.tcp_out.size()) {
    ssize_t n = ::send(p.fd.get(), p.tcp_out.data() + p.tcp_sent, p.tcp_out.size() - p.tcp_sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return attempt_failed(p, false);
    }
    p.tcp_sent += size_t(n);
    if (p.tcp_sent == p.tcp_out.size()) (void)p.watch.modify(EPOLLIN);
  }
  for (;;) {
    const size_t want = p.tcp_in.size() < 2 ? 2 : 2 + size_t(load_be16(p.tcp_in.data()));
    if (p.tcp_in.size() >= 2 && p.tcp_in.size() == want) break;
    const size_t have = p.tcp_in.size();
    p.tcp_in.resize(want);
    ssize_t n = ::recv(p.fd.get(), p.tcp_in.data() + have, want - have, 0);
    if (n <= 0) {
      p.tcp_in.resize(have);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0 && errno == EINTR) continue;
      return attempt_failed(p, false);  // EOF or error before a whole answer
    }
    p.tcp_in.resize(have + size_t(n));
  }
  Bytes msg(p.tcp_in.data() + 2, p.tcp_in.size() - 2);
  auto r = parse_response(msg);
  if (!r || r->header.id != p.wire_id || !same_question(r->question, p.query.question))
    return attempt_failed(p, false);
  on_upstream_answer(p, msg, *r);
}

void Forwarder::on_upstream_answer(Pending& p, Bytes msg, const Response& r) {
  std::vector<std::byte> answer(msg.begin(), msg.end());
  const auto& qq = p.query.question;
  const bool addr_query = qq.qclass == kClassIn && (qq.qtype == kTypeA || qq.qtype == kTypeAaaa);
  DnsEvent ev;
  ev.client = &p.client;
  ev.qname = qq.name.text;
  ev.qtype = qq.qtype;
  ev.upstream = p.current;
  if (r.header.rcode() == Rcode::noerror) {
    // 7. Rebind protection (R-DNS-8): any non-public address turns the answer into NXDOMAIN
    //    unless an explicit allow grants it.
    if (cfg_.rebind_protection) {
      const policy::Engine& engine = policy_.get();
      for (const Record& rec : r.records) {
        if (rec.type != kTypeA && rec.type != kTypeAaaa) continue;
        if (engine.group_of(rec.addr) == policy::Group::public_) continue;
        if (engine.rebind_exception(p.verdict, rec.addr)) continue;
        counters_.inc(Counter::dns_rebind_blocked);
        ev.kind = DnsEvent::Kind::rebind_blocked;
        ev.address = rec.addr;
        ev.rcode = Rcode::nxdomain;
        emit(ev);
        finish(p, build_empty(p.query.header, &qq, p.query.has_opt, Rcode::nxdomain));
        return;
      }
    }
    // 8. Pin update (R-DNS-6).
    if (addr_query) {
      ev.pinned = pins_.update(qq.name.text, r.records) > 0;
      counters_.set(Counter::dns_pins_active, pins_.live());
    }
  }
  ev.answers = uint32_t(r.records.size());
  ev.rcode = r.header.rcode();
  ev.latency = loop_.now() - p.started;
  if (audit_all_) emit(ev);
  finish(p, std::move(answer));
}

void Forwarder::finish(Pending& p, std::vector<std::byte> answer) {
  // 9. The guest's ID back; UDP answers cut to the guest's limit (R-DNS-5).
  set_id(answer, p.query.header.id);
  if (p.client.transport == Transport::udp && truncate_to(answer, p.query.udp_limit(), p.query.has_opt))
    counters_.inc(Counter::dns_truncated);
  AnswerSink* sink = p.sink;
  const Client client = p.client;
  release(p);
  sink->on_answer(client, std::move(answer));
}

void Forwarder::release(Pending& p) {
  p.watch.reset();
  p.fd.reset();
  p.timer.cancel();
  p.used = false;
  ++p.gen;
  p.sink = nullptr;
  p.targets.clear();
  p.msg.clear();
  p.tcp_in.clear();
  p.tcp_out.clear();
  free_.push_back(p.slot);
  --inflight_;
}

void Forwarder::cancel(const AnswerSink& sink) {
  for (auto& s : slots_)
    if (s->used && s->sink == &sink) release(*s);
}

}  // namespace moat::dns
