#include "tls/connect_tunnel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "flows/host_socket_peer.h"
#include "sniff/connect_request.h"
#include "sniff/sniff.h"
#include "sniff/tls_client_hello.h"
#include "tls/interceptor.h"
#include "tls/session.h"

namespace moat::tls {

namespace {
constexpr uint32_t kEpollEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kMaxHeld = sniff::kMaxFirstFlight;  // R-TLS-8: the head within 16 KiB

int so_error(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  return err;
}

std::string http_answer(std::string_view status, std::string_view extra_header, std::string_view body) {
  std::string s = "HTTP/1.1 ";
  s += status;
  s += "\r\n";
  s += extra_header;
  s += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ";
  s += std::to_string(body.size());
  s += "\r\nConnection: close\r\n\r\n";
  s += body;
  return s;
}

std::string authority(const std::string& host, const std::optional<IpAddr>& literal, uint16_t port) {
  std::string a;
  if (literal) a = literal->is_v6 ? "[" + literal->to_string() + "]" : literal->to_string();
  else a = host;
  return a + ":" + std::to_string(port);
}
}  // namespace

bool bypassed(const std::vector<std::string>& patterns, std::string_view host) {
  for (const std::string& p : patterns) {
    if (p == "*") return true;
    if (p.size() > 2 && p[0] == '*' && p[1] == '.') {
      const std::string_view suffix = std::string_view(p).substr(2);
      if (host == suffix) return true;
      if (host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix &&
          host[host.size() - suffix.size() - 1] == '.')
        return true;
    } else if (host == p) {
      return true;
    }
  }
  return false;
}

// ---- ConnectPeer ------------------------------------------------------------------------

class ConnectPeer final : public flows::TcpPeer, private event::IoHandler {
 public:
  /// `connected`: the gate path's connection to the proxy (no byte sent on it yet), or
  /// invalid (inspect path: `target` is dialled after an allow).
  ConnectPeer(ConnectTunnels& owner, const flows::FlowInfo& f, flows::TcpFlowRef ref, UniqueFd connected,
              std::optional<flows::Endpoint> target)
      : owner_(owner), ref_(ref), flow_id_(f.id), guest_(f.guest), proxy_(f.remote),
        guest_port_(f.guest_port), proxy_port_(f.remote_port), path_(f.path) {
    held_.reserve(kMaxHeld);
    if (target) plan_.add(*target);
    if (connected) up_.attach(std::move(connected), socket_options());
  }
  ConnectPeer(const ConnectPeer&) = delete;
  ConnectPeer& operator=(const ConnectPeer&) = delete;

  // ---- TcpPeer: proxy -> guest ----
  size_t readable() override {
    if (state_ == State::intercepted) return (answer_.size() - answer_off_) + session_->readable();
    if (state_ == State::answering) return answer_.size() - answer_off_;
    return state_ == State::open ? up_.readable() : 0;
  }
  [[nodiscard]] bool read_closed() const override {
    if (state_ == State::intercepted) return answer_off_ == answer_.size() && session_->read_closed();
    if (state_ == State::answering) return true;
    return state_ == State::open && up_.read_closed();
  }
  Result<size_t> peek(size_t offset, MutBytes out) override {
    if (state_ == State::intercepted) {
      // The proxy's 2xx head first, then the session's records.
      const size_t head_left = answer_.size() - answer_off_;
      size_t n = 0;
      if (offset < head_left) {
        n = std::min(out.size(), head_left - offset);
        std::memcpy(out.data(), answer_.data() + answer_off_ + offset, n);
        if (n == out.size()) return n;
        auto r = session_->peek(0, out.subspan(n));
        if (!r) return r;
        return n + *r;
      }
      return session_->peek(offset - head_left, out);
    }
    if (state_ == State::answering) {
      const size_t at = answer_off_ + offset;
      if (at >= answer_.size()) return size_t{0};
      const size_t n = std::min(out.size(), answer_.size() - at);
      std::memcpy(out.data(), answer_.data() + at, n);
      return n;
    }
    if (state_ == State::failed) return unexpected(Errno{ECONNRESET});
    if (state_ != State::open) return size_t{0};
    return up_.peek(offset, out);
  }
  [[nodiscard]] size_t peek_limit() const override {
    if (state_ == State::intercepted) return session_->peek_limit();
    return state_ == State::open ? up_.peek_limit() : SIZE_MAX;
  }
  Status consume(size_t n) override {
    if (state_ == State::intercepted) {
      const size_t from_head = std::min(n, answer_.size() - answer_off_);
      answer_off_ += from_head;
      return n > from_head ? session_->consume(n - from_head) : Status{};
    }
    if (state_ == State::answering) {
      answer_off_ = std::min(answer_.size(), answer_off_ + n);
      return {};
    }
    if (state_ != State::open) return {};
    return up_.consume(n);
  }

  // ---- TcpPeer: guest -> proxy ----
  size_t writable() override {
    switch (state_) {
      case State::intercepted: return session_->writable();
      case State::answering: return kMaxHeld;  // discarded
      case State::failed: return 0;
      case State::open:
        if (!sni_pending_ && held_.empty()) return up_.writable();
        [[fallthrough]];
      default: return guest_fin_ ? 0 : kMaxHeld - std::min(kMaxHeld, held_.size());
    }
  }
  Result<size_t> write(Bytes data) override {
    switch (state_) {
      case State::intercepted: return session_->write(data);
      case State::answering: return data.size();
      case State::failed: return unexpected(Errno{ECONNRESET});
      case State::open:
        if (!sni_pending_ && held_.empty()) return up_.write(data);
        break;
      default: break;
    }
    const size_t n = std::min(data.size(), kMaxHeld - std::min(kMaxHeld, held_.size()));
    held_.insert(held_.end(), data.begin(), data.begin() + ptrdiff_t(n));
    if (state_ == State::request) on_request_bytes();
    else if (state_ == State::open) {
      if (!check_sni()) return unexpected(Errno{ECONNRESET});
      flush_held();
    }
    return n;
  }
  void shutdown_write() override {
    guest_fin_ = true;
    if (state_ == State::intercepted) {
      session_->shutdown_write();
      return;
    }
    if (state_ == State::request) {
      on_request_bytes();  // the head never ended: malformed
    } else if (state_ == State::open) {
      if (sni_pending_) sni_pending_ = false;  // no more bytes: what is held goes as it is
      flush_held();
    }
  }
  void abort() override {
    if (state_ == State::intercepted) {
      session_->abort();
      return;
    }
    state_ = State::failed;
    watch_.reset();
    if (up_.fd() >= 0) up_.abort();
  }

  /// The flow is gone (on_closed): no more events, no more TcpFlowRef calls.
  void detach() {
    if (session_) {
      owner_.cfg_.interceptor->release(*session_);  // the Interceptor frees it
      session_ = nullptr;
    }
    if (state_ != State::failed && state_ != State::answering && up_.fd() >= 0) up_.abort();
    state_ = State::failed;
    watch_.reset();
    wake_ = event::TimerHandle{};
    ref_ = flows::TcpFlowRef{};
  }

 private:
  enum class State : uint8_t { request, dialling, awaiting, open, intercepted, answering, failed };

  void on_request_bytes() {
    const auto r = http::parse_connect_request(Bytes(held_.data(), held_.size()));
    if (r.status == http::ParseStatus::need_more && !guest_fin_ && held_.size() < kMaxHeld) return;
    if (r.status != http::ParseStatus::ok) {
      owner_.counters_.inc(Counter::tls_connect_malformed);
      MOAT_LOG_RATELIMITED(debug, "connect: malformed CONNECT request from the guest, 400");
      answer(http_answer("400 Bad Request", "", "moat: malformed CONNECT request (expected CONNECT host:port HTTP/1.1)\n"));
      return;
    }
    host_ = r.host;
    literal_ = r.literal;
    port_ = r.port;
    // R-TLS-8: the target as an egress query.
    flows::FlowInfo q;
    q.id = flow_id_;
    q.proto = flows::FlowProto::tcp;
    q.guest = guest_;
    q.guest_port = guest_port_;
    q.remote = literal_ ? *literal_ : proxy_;
    q.remote_port = port_;
    q.path = path_;
    q.name_src = literal_ ? flows::NameSrc::none : flows::NameSrc::connect;
    q.name = host_;
    const flows::Admission::Decision d = owner_.admission_.tcp_decide(q);
    const std::string target = authority(host_, literal_, port_);
    if (!d.allow) {
      owner_.counters_.inc(Counter::tls_connect_denied);
      answer(http_answer("403 Forbidden", "X-Moat-Deny: " + d.rule + "\r\n",
                         "moat: CONNECT to " + target + " denied by policy (rule " + d.rule + ")\n"));
      return;
    }
    owner_.counters_.inc(Counter::tls_connect_tunnels);
    enforce_sni_ = !literal_ &&
                   std::find(owner_.cfg_.intercept_ports.begin(), owner_.cfg_.intercept_ports.end(), port_) !=
                       owner_.cfg_.intercept_ports.end() &&
                   !bypassed(owner_.cfg_.bypass, host_);
    head_len_ = r.head_len;
    state_ = State::dialling;
    if (up_.fd() >= 0) {
      // The gate path's connection: already connected, its first readiness event (edge
      // at registration) sends the head.
      auto w = owner_.loop_.watch(up_.fd(), kEpollEvents, *this);
      if (w) {
        watch_ = std::move(*w);
        return;
      }
      up_.reset();
    }
    dial();
  }

  flows::HostSocketPeer::Options socket_options() const {
    flows::HostSocketPeer::Options o;
    o.flow_buffer = owner_.cfg_.flow_buffer;
    o.max_window = owner_.cfg_.max_window;
    o.discard = MutBytes(owner_.discard_.data(), owner_.discard_.size());
    o.use_peek_off = true;
    o.budget = owner_.cfg_.budget;
    return o;
  }

  void dial() {
    while (next_target_ < plan_.count) {
      const flows::Endpoint& ep = plan_.targets[next_target_++];
      watch_.reset();
      up_.reset();
      UniqueFd fd(::socket(ep.addr.is_v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
      if (!fd) continue;
      const int one = 1;
      (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      (void)::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      sockaddr_storage ss;
      const socklen_t sl = to_sockaddr(ep.addr, ep.port, &ss);
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), sl) != 0 && errno != EINPROGRESS) continue;
      up_.attach(std::move(fd), socket_options());
      auto w = owner_.loop_.watch(up_.fd(), kEpollEvents, *this);
      if (!w) {
        up_.reset();
        continue;
      }
      watch_ = std::move(*w);  // a connected socket reports EPOLLOUT at once (edge at registration)
      return;
    }
    // Every target failed: the guest is reset, as on the inspect path (R-TCP-5).
    fail(Errno{ECONNREFUSED});
  }

  void on_io(uint32_t events) override {
    switch (state_) {
      case State::dialling: {
        const int err = so_error(up_.fd());
        if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) {
          dial();
          return;
        }
        if (!(events & EPOLLOUT)) return;
        // Connected: the guest's request head, unchanged, then wait for the answer.
        const Bytes head(held_.data(), head_len_);
        size_t off = 0;
        while (off < head.size()) {
          auto r = up_.write(head.subspan(off));
          if (!r || *r == 0) break;
          off += *r;
        }
        if (off < head.size()) {
          fail(Errno{ECONNRESET});
          return;
        }
        held_.erase(held_.begin(), held_.begin() + ptrdiff_t(head_len_));
        state_ = State::awaiting;
        if (events & (EPOLLIN | EPOLLRDHUP)) on_answer_bytes(events);
        return;
      }
      case State::awaiting:
        if (events & EPOLLERR) {
          if (const int err = so_error(up_.fd()); err != 0) {
            fail(Errno{err});
            return;
          }
        }
        if ((events & EPOLLOUT) && up_.buffered() > 0) (void)up_.on_writable();
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) on_answer_bytes(events);
        return;
      case State::open:
        if (events & EPOLLERR) {
          if (const int err = so_error(up_.fd()); err != 0) {
            fail(Errno{err});
            return;
          }
        }
        if (events & EPOLLOUT) {
          if (up_.buffered() > 0) {
            if (auto r = up_.on_writable(); !r) {
              fail(r.error());
              return;
            }
          }
          flush_held();
          ref_.peer_writable();
        }
        if (events & (EPOLLRDHUP | EPOLLHUP)) up_.set_read_closed();
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) ref_.peer_readable();
        return;
      default: return;
    }
  }

  void on_answer_bytes(uint32_t events) {
    if (events & (EPOLLRDHUP | EPOLLHUP)) up_.set_read_closed();
    const size_t avail = up_.readable();
    scratch_.resize(std::min(avail, kMaxHeld));
    size_t got = 0;
    if (!scratch_.empty()) {
      auto r = up_.peek(0, MutBytes(scratch_.data(), scratch_.size()));
      if (!r) {
        fail(r.error());
        return;
      }
      got = *r;
    }
    const auto a = http::parse_proxy_response(Bytes(scratch_.data(), got));
    if (a.status == http::ParseStatus::need_more && !up_.read_closed() && avail < kMaxHeld) return;
    if (a.status != http::ParseStatus::ok) {
      if (a.status == http::ParseStatus::need_more && got == 0) {
        become_open(false);  // the proxy closed without a word: the guest sees its FIN
        return;
      }
      bad_answer("the proxy's answer is not an HTTP/1 status line and header block");
      return;
    }
    const bool success = a.code >= 200 && a.code <= 299;
    if (!success) {
      // R-TLS-8: relayed as it is; the connection is opaque from here on.
      owner_.counters_.inc(Counter::tls_connect_refused_by_proxy);
      become_open(false);
      return;
    }
    if (avail != a.head_len) {
      bad_answer("the proxy sent bytes after its 2xx answer");
      return;
    }
    if (enforce_sni_ && owner_.cfg_.interceptor) {
      intercept(a.head_len);
      return;
    }
    become_open(enforce_sni_);
  }

  /// R-TLS-8 + R-TLS-4: the tunnel's TLS runs in an interceptor Session over the proxy
  /// socket, expecting the authority as SNI; the 2xx head is served from here first.
  void intercept(size_t head_len) {
    answer_.assign(reinterpret_cast<const char*>(scratch_.data()), head_len);
    answer_off_ = 0;
    if (auto c = up_.consume(head_len); !c) {
      fail(c.error());
      return;
    }
    watch_.reset();
    UniqueFd fd = up_.release();
    flows::FlowInfo fi;
    fi.id = flow_id_;
    fi.proto = flows::FlowProto::tcp;
    fi.guest = guest_;
    fi.guest_port = guest_port_;
    fi.remote = proxy_;
    fi.remote_port = port_;
    fi.path = path_;
    fi.name_src = flows::NameSrc::connect;
    fi.name = host_;
    session_ = &owner_.cfg_.interceptor->make_session(fi, ref_, std::move(fd), std::nullopt, host_);
    state_ = State::intercepted;
    // Guest bytes that came before the 2xx (an eager ClientHello) go to the session.
    size_t off = 0;
    while (off < held_.size()) {
      auto r = session_->write(Bytes(held_.data() + off, held_.size() - off));
      if (!r || *r == 0) break;
      off += *r;
    }
    held_.erase(held_.begin(), held_.begin() + ptrdiff_t(off));
    if (guest_fin_ && held_.empty()) session_->shutdown_write();
    ref_.peer_readable();
    ref_.peer_writable();
  }

  void become_open(bool enforce_sni) {
    state_ = State::open;
    sni_pending_ = enforce_sni;
    if (sni_pending_ && !check_sni()) {
      fail(Errno{ECONNRESET});
      return;
    }
    flush_held();
    ref_.peer_readable();
    ref_.peer_writable();
  }

  /// The tunnel's first flight against the expected SNI (R-TLS-8). False: a mismatch
  /// (audited; the caller resets the tunnel).
  bool check_sni() {
    if (!sni_pending_) return true;
    const auto r = moat::tls::parse_client_hello(Bytes(held_.data(), held_.size()));
    if (r.kind == sniff::Kind::need_more && held_.size() < kMaxHeld) return true;
    sni_pending_ = false;
    if (r.kind == sniff::Kind::name && r.name != host_) {
      owner_.counters_.inc(Counter::tls_connect_sni_mismatch);
      MOAT_LOG_RATELIMITED(info, "connect: tunnel to %s carries TLS for %s: closed", host_.c_str(), r.name.c_str());
      audit_sni_mismatch(r.name);
      state_ = State::failed;
      watch_.reset();
      up_.abort();
      return false;
    }
    return true;
  }

  void audit_sni_mismatch(const std::string& sni) {
    obs::AuditLog* a = owner_.audit_;
    if (!a || !a->wants("connect_sni_mismatch")) return;
    a->emit("connect_sni_mismatch", [&](obs::JsonWriter& w) {
      obs::FlowFields f;
      f.flow = flow_id_;
      f.proto = "tcp";
      f.dir = "egress";
      f.src = guest_;
      f.src_port = guest_port_;
      f.dst = proxy_;
      f.dst_port = proxy_port_;
      f.name = host_;
      f.name_src = "connect";
      f.verdict = "deny";
      f.reason = "connect_sni_mismatch";
      obs::write_flow(w, f);
      w.str("authority", authority(host_, literal_, port_));
      w.str("sni", sni);
    });
  }

  /// Writes the held guest bytes to the proxy (open state), then a remembered FIN.
  void flush_held() {
    if (state_ != State::open || sni_pending_) return;
    size_t off = 0;
    while (off < held_.size()) {
      auto r = up_.write(Bytes(held_.data() + off, held_.size() - off));
      if (!r || *r == 0) break;
      off += *r;
    }
    held_.erase(held_.begin(), held_.begin() + ptrdiff_t(off));
    if (held_.empty() && guest_fin_) up_.shutdown_write();
  }

  void bad_answer(const char* why) {
    owner_.counters_.inc(Counter::tls_connect_bad_response);
    MOAT_LOG_RATELIMITED(info, "connect: proxy %s: %s", proxy_.to_string().c_str(), why);
    answer(http_answer("502 Bad Gateway", "", std::string("moat: CONNECT to ") + authority(host_, literal_, port_) +
                                                   " failed: " + why + "\n"));
  }

  /// moat's own answer, then FIN; the proxy (if dialled) is reset.
  void answer(std::string text) {
    watch_.reset();
    if (up_.fd() >= 0) up_.abort();
    answer_ = std::move(text);
    answer_off_ = 0;
    held_.clear();
    state_ = State::answering;
    wake();
  }

  void fail(Errno e) {
    state_ = State::failed;
    watch_.reset();
    if (up_.fd() >= 0) up_.abort();
    error_ = e;
    wake();
  }

  /// Tells the TcpConn later (never from inside a TcpPeer call, tcp_peer_provider.h).
  void wake() {
    wake_ = owner_.loop_.schedule_after(Duration::zero(), [this] {
      if (state_ == State::failed) {
        ref_.peer_error(error_);
        return;
      }
      ref_.peer_readable();
      ref_.peer_writable();
    });
  }

  ConnectTunnels& owner_;
  flows::DialPlan plan_;
  uint8_t next_target_ = 0;
  flows::TcpFlowRef ref_;
  uint64_t flow_id_;
  IpAddr guest_, proxy_;
  uint16_t guest_port_, proxy_port_;
  flows::TcpPath path_;
  State state_ = State::request;
  std::vector<std::byte> held_;     // the request head, then guest bytes not yet written
  std::vector<std::byte> scratch_;  // the proxy's answer head, peeked
  size_t head_len_ = 0;
  std::string host_;
  std::optional<IpAddr> literal_;
  uint16_t port_ = 0;
  bool enforce_sni_ = false, sni_pending_ = false, guest_fin_ = false;
  std::string answer_;
  size_t answer_off_ = 0;
  Errno error_{ECONNRESET};
  Session* session_ = nullptr;  // intercepted: owned by the Interceptor until detach()
  flows::HostSocketPeer up_;
  event::Watch watch_;  // after up_: deregistered before the fd closes
  event::TimerHandle wake_;
};

// ---- ConnectTunnels ---------------------------------------------------------------------

ConnectTunnels::ConnectTunnels(event::Loop& loop, Counters& counters, flows::Admission& admission,
                               obs::AuditLog* audit, ConnectConfig config)
    : loop_(loop), counters_(counters), admission_(admission), audit_(audit), cfg_(std::move(config)) {
  // Without SO_PEEK_OFF the proxy sockets skip in-flight bytes into this (peek_limit).
  if (!flows::kernel_has_tcp_peek_off()) discard_.resize(256 << 10);
  else discard_.resize(1);
}

ConnectTunnels::~ConnectTunnels() = default;

flows::TcpTake ConnectTunnels::on_syn(const flows::FlowInfo& f, flows::DialPlan&, flows::TcpFlowRef) {
  // Every egress TCP flow may carry a CONNECT (R-TLS-8: any port): its first flight is
  // classified. DNS (53) and DoT (853) are taken by their providers before this one.
  if (f.ingress || f.remote_port == 53 || f.remote_port == 853) return flows::TcpTake::pass();
  return flows::TcpTake::classify();
}

flows::TcpPeer* ConnectTunnels::on_first_flight(const flows::FlowInfo& f, flows::TcpFlowRef ref) {
  constexpr std::string_view kConnect = "CONNECT ";
  if (f.first_flight.size() < kConnect.size() || !http::starts_connect(f.first_flight)) return nullptr;
  peers_.push_back(std::make_unique<ConnectPeer>(*this, f, ref, ref.take_host_socket(), ref.dial_target()));
  return peers_.back().get();
}

void ConnectTunnels::on_closed(flows::TcpPeer& peer) {
  for (auto it = peers_.begin(); it != peers_.end(); ++it) {
    if (it->get() == &peer) {
      // Freed after this event: on_closed can run inside the peer's own call chain (its
      // TcpFlowRef call reached the engine, which swept the flow).
      (*it)->detach();
      dead_.splice(dead_.end(), peers_, it);
      if (!reaper_.pending()) reaper_ = loop_.schedule_after(Duration::zero(), [this] { dead_.clear(); });
      return;
    }
  }
}

}  // namespace moat::tls
