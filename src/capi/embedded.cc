#include "capi/embedded.h"

#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <optional>

#include "base/log.h"
#include "app/control.h"
#include "config/loader.h"
#include "control/dispatcher.h"
#include "obs/audit_log.h"
#include "obs/json.h"
#include "policy/engine.h"
#include "policy/rule.h"
#include "tls/ca.h"
#include "transport/pcap.h"

namespace moat::capi {
namespace {

std::string join(const std::vector<config::UserError>& errs) {
  std::string s;
  for (const auto& e : errs) {
    if (!s.empty()) s += '\n';
    s += e.format();
  }
  return s;
}

/// Routes the calling thread's log lines to a gateway's log_cb for the scope's duration.
class LogScope {
 public:
  explicit LogScope(LogSink s) noexcept : active_(s.fn != nullptr) {
    if (active_) prev_ = set_thread_log_sink(s);
  }
  ~LogScope() {
    if (active_) set_thread_log_sink(prev_);
  }
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  bool active_;
  LogSink prev_;
};

CallError config_error(std::string msg) { return CallError{CallError::Kind::config, std::move(msg)}; }

}  // namespace

/// The Gateway owns its link; the rings must outlive it (pulls drain them after stop()),
/// so the Gateway gets this forwarder and EmbeddedGateway keeps the rings. attach_fd()
/// retargets it before start(), while nothing is registered with the loop yet.
class EmbeddedGateway::LinkSwitch final : public transport::FrameTransport {
 public:
  explicit LinkSwitch(transport::FrameTransport& inner) : inner_(&inner) {}
  void retarget(transport::FrameTransport& inner) noexcept { inner_ = &inner; }
  [[nodiscard]] int fd() const override { return inner_->fd(); }
  Result<size_t> receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) override {
    return inner_->receive(on_frame, max_frames);
  }
  bool send(Bytes frame) override { return inner_->send(frame); }
  Status flush() override { return inner_->flush(); }
  [[nodiscard]] bool has_pending_output() const override { return inner_->has_pending_output(); }
  [[nodiscard]] bool output_full() const override { return inner_->output_full(); }
  [[nodiscard]] transport::OffloadMask guest_offloads() const override { return inner_->guest_offloads(); }
  bool send_offloaded(Bytes frame, const transport::VnetHeader& h) override { return inner_->send_offloaded(frame, h); }

 private:
  transport::FrameTransport* inner_;
};

Result<std::unique_ptr<EmbeddedGateway>, CallError> EmbeddedGateway::create(config::Config cfg,
                                                                            const EmbedOptions& opts) {
  auto g = std::make_unique<EmbeddedGateway>(Private{});
  g->on_terminate_ = opts.on_terminate;
  if (opts.on_log) {
    g->on_log_ = opts.on_log;
    g->log_sink_.fn = [](void* ud, LogLevel level, const char* line) {
      static_cast<EmbeddedGateway*>(ud)->on_log_(int(level), line);
    };
    g->log_sink_.userdata = g.get();
  }
  std::optional<LogScope> log_scope;
  log_scope.emplace(g->log_sink_);  // finish_config() may warn (no DNS upstream): to log_cb
  if (opts.mtu) cfg.net.mtu = opts.mtu;
  app::FinishOptions fo;
  fo.default_mtu = kRingDefaultMtu;  // R-ADDR-1: 1500 on in-process rings
  fo.sources = app::key_sources();   // the C ABI has no flags
  fo.require_a_family = false;
  fo.own_process = false;  // library mode: no log level, no resource limit (docs/capi.md)
  auto plan = app::finish_config(std::move(cfg), fo);
  if (!plan) return unexpected(config_error(join(plan.error())));
  g->loop_ = std::make_unique<event::Loop>(g->clock_);
  g->assembly_ = std::make_unique<app::GatewayAssembly>(*g->loop_, std::move(plan).value());
  auto ring = transport::RingTransport::create(g->assembly_->counters(), opts.ring, opts.ring, opts.link);
  if (!ring) {
    if (ring.error() == Errno{EINVAL}) return unexpected(CallError{CallError::Kind::invalid, "moat: error: ring size out of range"});
    return unexpected(CallError{CallError::Kind::io, std::string("moat: error: cannot create the rings: ") +
                                                        ring.error().message()});
  }
  g->ring_ = std::move(ring).value();

  // §5.2: a failure after outputs were created removes them again (as `moat run` does).
  auto out = app::GatewayOutputs::open(g->assembly_->cfg(), /*with_pid_file=*/false, {.pid_file = "", .pcap = ""});
  if (!out) {
    std::string msg = out.error();
    if (msg.rfind("moat: error: ", 0) != 0) msg = "moat: error: " + msg;
    return unexpected(config_error(std::move(msg)));
  }
  auto sw = std::make_unique<LinkSwitch>(*g->ring_);
  g->link_switch_ = sw.get();
  app::AssemblyHooks hooks;
  hooks.audit_line_sink = opts.on_audit;  // R-OBS-3 audit_cb, with or without audit.file
  if (auto a = g->assembly_->assemble(std::move(sw), *out, hooks); !a) {
    std::string msg = a.error();
    if (msg.rfind("moat: error: ", 0) != 0) msg = "moat: error: " + msg;
    log_scope.reset();  // the sink points into g
    g.reset();          // closes the gateway, the capture and the audit sink first
    out->discard();
    return unexpected(config_error(std::move(msg)));
  }
  return g;
}

EmbeddedGateway::~EmbeddedGateway() { stop(); }

Result<void, CallError> EmbeddedGateway::attach_fd(int fd, app::FdType kind) {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (started_ || stopped_)
    return unexpected(CallError{CallError::Kind::state, "moat: error: attach_fd: only before moat_gateway_start()"});
  if (fd_attached())
    return unexpected(CallError{CallError::Kind::state, "moat: error: attach_fd: an fd is attached already"});
  const std::string where = "attach_fd " + std::to_string(fd);
  if (kind != app::FdType::tap && ring_->vnet_hdr_len() != 0)
    return unexpected(CallError{CallError::Kind::invalid,
                                "moat: error: " + where + ": a socket fd carries plain frames in this build (no "
                                "virtio-net header); create the gateway with opts.vnet_hdr_len 0"});
  auto detected = app::detect_fd_type(fd, where);
  if (!detected) return unexpected(CallError{CallError::Kind::invalid, "moat: error: " + detected.error()});
  auto name = [](app::FdType t) {
    return t == app::FdType::tap ? "MOAT_FD_TAP" : t == app::FdType::stream ? "MOAT_FD_STREAM" : "MOAT_FD_DGRAM";
  };
  if (*detected != kind)
    return unexpected(CallError{CallError::Kind::invalid, "moat: error: " + where + ": kind " + name(kind) +
                                                              " does not match the fd, which is a " + name(*detected)});
  UniqueFd own(::fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!own)
    return unexpected(CallError{CallError::Kind::io, "moat: error: " + where + ": cannot duplicate: " + Errno::last().message()});
  // A TAP opened with IFF_VNET_HDR keeps its own header size; opts.offloads (what the guest
  // accepts) are set on it with TUNSETOFFLOAD, as `serve --fd --offloads` does.
  const transport::OffloadMask m = ring_->guest_offloads();
  config::OffloadSpec spec{.automatic = false,
                           .csum = (m & transport::kOffloadCsum) != 0,
                           .tso4 = (m & transport::kOffloadTso4) != 0,
                           .tso6 = (m & transport::kOffloadTso6) != 0,
                           .uso = (m & transport::kOffloadUso) != 0};
  auto t = app::make_fd_link(std::move(own), kind, assembly_->counters(), where, spec);
  if (!t) return unexpected(CallError{CallError::Kind::io, "moat: error: " + t.error()});
  fd_link_ = std::move(t).value();
  link_switch_->retarget(*fd_link_);
  fd_attached_.store(true, std::memory_order_release);
  return {};
}

Result<void, CallError> EmbeddedGateway::start() {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (started_ || stopped_) return unexpected(CallError{CallError::Kind::state, "moat: error: start: the gateway was already started"});
  // The link is final now (rings or an attached fd): register it and bring the link up.
  if (auto st = assembly_->start([this](const Errno& e) {
        if (transport::is_link_gone(e)) {
          MOAT_LOG(info, "the guest link ended");
          link_closed_ = true;
        } else {
          MOAT_LOG(error, "the guest link failed: %s", e.message());
        }
        loop_->stop();
      });
      !st)
    return unexpected(CallError{CallError::Kind::io, std::string("moat: error: cannot start the gateway: ") +
                                                        st.error().message()});
  // Everything built so far happens-before the thread's first instruction (std::thread).
  thread_ = std::thread([this] {
    set_thread_log_sink(log_sink_);
    loop_->run();
    if (!stop_requested_ && on_terminate_) on_terminate_(link_closed_ ? 2 /* MOAT_TERM_LINK_CLOSED */ : 1 /* MOAT_TERM_LINK_FAILED */);
    loop_exited_.store(true, std::memory_order_release);
  });
  started_ = true;
  return {};
}

void EmbeddedGateway::stop() {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    loop_->post([this] {
      stop_requested_ = true;
      loop_->stop();
    });
    thread_.join();
  }
  // The loop thread is gone (or never ran): loop state is ours. R-CLI-5 semantics: the
  // Gateway's destructor resets open flows on both sides.
  if (assembly_) assembly_->stop("stop");  // audits gateway_stop after the flows' last events
  fd_link_.reset();  // an attached fd's peer sees the end now
}

Result<void, CallError> EmbeddedGateway::on_loop(const std::function<void()>& fn) {
  if (!thread_.joinable() || std::this_thread::get_id() == thread_.get_id()) {
    fn();
    return {};
  }
  // The loop never blocks (SPEC §2.1), so the task runs within one iteration. The only way
  // it does not run is a loop that ended on its own (link failure): then loop state is ours
  // and the call runs here. The task refers to this frame, so it is never abandoned while
  // it could still run.
  std::promise<void> done;
  auto ran = done.get_future();
  loop_->post([&] {
    fn();
    done.set_value();
  });
  while (ran.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (!loop_exited_.load(std::memory_order_acquire)) continue;
    if (ran.wait_for(std::chrono::seconds(0)) != std::future_status::ready) fn();
    break;
  }
  return {};
}

Result<std::string, CallError> EmbeddedGateway::stats_json() {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  std::string out;
  if (auto r = on_loop([&] { out = stats_json_on_loop(); }); !r) return unexpected(r.error());
  return out;
}

std::string EmbeddedGateway::stats_json_on_loop() {
  // The rings are how frames arrive here, so their fill levels are this front end's addition.
  return assembly_->stats_json([this](std::string& s) {
    auto ring_obj = [&](const char* name, const auto& r) {  // either direction's ring type
      s += '"';
      s += name;
      s += "\":{\"frames\":" + std::to_string(r.size()) + ",\"capacity_frames\":" + std::to_string(r.capacity_frames()) +
           ",\"capacity_bytes\":" + std::to_string(r.capacity_bytes()) + '}';
    };
    s += ",\"rings\":{";
    ring_obj("from_guest", ring_->from_guest_ring());
    s += ',';
    ring_obj("to_guest", ring_->to_guest_ring());
    s += '}';
  });
}

Result<void, CallError> EmbeddedGateway::update_policy(std::string_view text, PolicyFormat fmt) {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (!gateway()) return unexpected(CallError{CallError::Kind::state, "moat: error: policy update: the gateway is stopped"});
  // The same parsing as the control socket's policy.set (app/control.h).
  const app::PolicyText f = fmt == PolicyFormat::rules  ? app::PolicyText::rules
                            : fmt == PolicyFormat::json ? app::PolicyText::json
                                                        : app::PolicyText::toml;
  auto parsed = app::policy_inputs_from_text(assembly_->cfg().policy.inputs, text, f);
  if (!parsed) return unexpected(config_error(parsed.error()));
  policy::PolicyInputs inputs = std::move(*parsed);
  auto engine = std::make_shared<const policy::Engine>(policy::resolve_policy(inputs), app::host_addrs(assembly_->plan().flows.engines.destinations));
  if (auto r = on_loop([&] { gateway()->flows()->policy().replace(engine); }); !r) return unexpected(r.error());
  assembly_->cfg().policy.inputs = std::move(inputs);
  for (const auto& w : engine->lint()) MOAT_LOG(warn, "policy: %s", w.c_str());
  return {};
}

}  // namespace moat::capi

namespace moat::capi {

namespace {

Result<config::PublishSpec, CallError> parse_spec(std::string_view what, std::string_view spec) {
  auto p = config::parse_publish(spec);
  if (!p) return unexpected(config_error("moat: error: " + std::string(what) + " \"" + std::string(spec) + "\": " + p.error()));
  return std::move(p).value();
}

}  // namespace

Result<std::vector<std::string>, CallError> EmbeddedGateway::publish(std::string_view spec) {
  auto p = parse_spec("publish", spec);
  if (!p) return unexpected(p.error());
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (!gateway()) return unexpected(CallError{CallError::Kind::state, "moat: error: publish: the gateway is stopped"});
  Result<std::vector<std::string>, ports::Publisher::ChangeError> r = std::vector<std::string>{};
  if (auto l = on_loop([&] { r = gateway()->flows()->publisher().add(*p); }); !l) return unexpected(l.error());
  if (!r) {
    using K = ports::Publisher::ChangeError::Kind;
    auto kind = r.error().kind == K::conflict ? CallError::Kind::conflict : CallError::Kind::io;
    std::string msg = r.error().message;
    if (msg.rfind("moat: error: ", 0) != 0) msg = "moat: error: " + msg;
    return unexpected(CallError{kind, std::move(msg)});
  }
  for (const auto& d : *r) MOAT_LOG(info, "published %s", d.c_str());
  assembly_->cfg().flows.publish.push_back(*p);
  return std::move(r).value();
}

Result<size_t, CallError> EmbeddedGateway::unpublish(std::string_view spec) {
  auto p = parse_spec("unpublish", spec);
  if (!p) return unexpected(p.error());
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (!gateway()) return unexpected(CallError{CallError::Kind::state, "moat: error: unpublish: the gateway is stopped"});
  Result<size_t, ports::Publisher::ChangeError> r = size_t{0};
  if (auto l = on_loop([&] { r = gateway()->flows()->publisher().remove(*p); }); !l) return unexpected(l.error());
  if (!r) return unexpected(CallError{CallError::Kind::not_found, "moat: error: " + r.error().message});
  std::erase_if(assembly_->cfg().flows.publish, [&](const config::PublishSpec& x) {
    return config::same_binding(x, *p);
  });
  MOAT_LOG(info, "unpublished %s (%zu listener%s closed)", p->text.c_str(), *r, *r == 1 ? "" : "s");
  return *r;
}

}  // namespace moat::capi

namespace moat::capi {

Result<std::shared_ptr<const policy::Engine>, CallError> EmbeddedGateway::policy_engine() {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (!gateway()) return unexpected(CallError{CallError::Kind::state, "moat: error: policy: the gateway is stopped"});
  std::shared_ptr<const policy::Engine> e;
  if (auto r = on_loop([&] { e = gateway()->flows()->policy().snapshot(); }); !r) return unexpected(r.error());
  return e;
}

Result<std::vector<EmbeddedGateway::PinEntry>, CallError> EmbeddedGateway::dns_pins() {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (!gateway()) return unexpected(CallError{CallError::Kind::state, "moat: error: dns.pins: the gateway is stopped"});
  std::vector<PinEntry> out;
  if (auto r = on_loop([&] {
        const Instant now = loop_->now();
        gateway()->flows()->pin_set().for_each([&](std::string_view n, const IpAddr& a, Instant e) {
          out.push_back(PinEntry{std::string(n), a,
                                 std::chrono::duration_cast<std::chrono::milliseconds>(e - now).count()});
        });
      });
      !r)
    return unexpected(r.error());
  return out;
}

bool EmbeddedGateway::rebind_protection() {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  return assembly_->cfg().dns.rebind_protection;
}

Result<void, CallError> EmbeddedGateway::audit_reopen() {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  if (!assembly_->audit()) return unexpected(CallError{CallError::Kind::not_found, "moat: error: audit.reopen: no audit file is configured (audit.file)"});
  Result<void, std::string> r;  // audit_cb only: nothing to reopen
  if (auto l = on_loop([&] { r = assembly_->reopen_audit(); }); !l) return unexpected(l.error());
  if (!r) return unexpected(CallError{CallError::Kind::io, "moat: error: " + r.error()});
  return {};
}

void EmbeddedGateway::config_change(std::string_view what, std::string_view by) {
  std::lock_guard lock(ctl_mu_);
  LogScope log_scope(log_sink_);
  obs::AuditLog* audit = assembly_->audit();
  if (!audit) return;
  (void)on_loop([&] { audit->emit("config_change", [&](obs::JsonWriter& w) { w.str("what", what).str("by", by); }); });
}

namespace {

control::MethodError method_error(const CallError& e) {
  using C = control::ErrorCode;
  switch (e.kind) {
    case CallError::Kind::invalid: return {C::invalid_params, e.message};
    case CallError::Kind::config: return {C::invalid_config, e.message};
    case CallError::Kind::not_found: return {C::not_found, e.message};
    case CallError::Kind::conflict: return {C::conflict, e.message};
    case CallError::Kind::state:
    case CallError::Kind::io: return {C::internal, e.message};
  }
  return {C::internal, e.message};
}

/// The control methods of one embedded gateway (control::Backend over EmbeddedGateway).
class Backend final : public control::Backend {
 public:
  explicit Backend(EmbeddedGateway& g) : g_(g) {}
  std::string version_json() override {
    std::string s = "{\"moat\":\"" MOAT_VERSION_STRING "\",\"abi\":1";
    utsname u{};
    if (::uname(&u) == 0) {
      s += ",\"kernel\":";
      obs::append_json_string(s, u.release);
    }
    s += ",\"features\":{\"vnet_hdr\":[10,12],\"offloads\":[\"csum\",\"tso4\",\"tso6\",\"uso\"],\"tls\":false,\"secrets\":false}}";
    return s;
  }
  control::MethodResult<std::string> stats_json() override { return wrap(g_.stats_json()); }
  control::MethodResult<std::vector<std::string>> publish(const std::string& spec) override { return wrap(g_.publish(spec)); }
  control::MethodResult<size_t> unpublish(const std::string& spec) override { return wrap(g_.unpublish(spec)); }
  control::MethodResult<std::shared_ptr<const policy::Engine>> policy_engine() override { return wrap(g_.policy_engine()); }
  bool rebind_protection() override { return g_.rebind_protection(); }
  control::MethodResult<void> policy_set(const std::string& text, PolicyFormat fmt) override {
    auto f = fmt == PolicyFormat::toml   ? EmbeddedGateway::PolicyFormat::toml
             : fmt == PolicyFormat::json ? EmbeddedGateway::PolicyFormat::json
                                         : EmbeddedGateway::PolicyFormat::rules;
    return wrap(g_.update_policy(text, f));
  }
  control::MethodResult<void> audit_reopen() override { return wrap(g_.audit_reopen()); }
  control::MethodResult<std::vector<Pin>> dns_pins() override {
    auto r = g_.dns_pins();
    if (!r) return unexpected(method_error(r.error()));
    std::vector<Pin> out;
    out.reserve(r->size());
    for (auto& e : *r) out.push_back(Pin{std::move(e.name), e.address, e.expires_in_ms});
    return out;
  }
  control::MethodResult<void> shutdown() override {
    g_.stop();
    return {};
  }
  void config_change(std::string_view what) override { g_.config_change(what, "control"); }

 private:
  template <class T>
  static control::MethodResult<T> wrap(Result<T, CallError> r) {
    if (!r) return unexpected(method_error(r.error()));
    if constexpr (std::is_void_v<T>) return {};
    else return std::move(r).value();
  }
  EmbeddedGateway& g_;
};

}  // namespace

std::string EmbeddedGateway::control(std::string_view request) {
  Backend b(*this);
  return control::Dispatcher(b).handle(request);
}

}  // namespace moat::capi

namespace moat::capi {

const std::string* EmbeddedGateway::ca_pem() const noexcept {
  const tls::CertAuthority* ca = assembly_->ca();
  return ca ? &ca->pem() : nullptr;
}

}  // namespace moat::capi
