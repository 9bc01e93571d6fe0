#include "app/control.h"

#include <sys/utsname.h>
#include <unistd.h>

#include "base/log.h"
#include "config/loader.h"
#include "config/net_specs.h"
#include "obs/json.h"
#include "obs/metrics.h"
#include "policy/rule.h"

namespace moat::app {
namespace {

std::string join_errors(const std::vector<config::UserError>& errs) {
  std::string s;
  for (const auto& e : errs) {
    if (!s.empty()) s += '\n';
    s += e.format();
  }
  return s;
}

control::MethodError err(control::ErrorCode code, std::string msg) { return control::MethodError{code, std::move(msg)}; }

}  // namespace

Result<policy::PolicyInputs, std::string> policy_inputs_from_text(const policy::PolicyInputs& current,
                                                                  std::string_view text, PolicyText fmt) {
  policy::PolicyInputs inputs = current;
  if (fmt == PolicyText::rules) {
    // Rule strings replace the rules; profiles, defaults and the block list stay.
    auto parsed = policy::parse_rules_text(text, policy::Origin::cli, 1);
    if (!parsed) {
      const auto& e = parsed.error().front();
      return unexpected(policy::format_rule_error("rule #" + std::to_string(e.rule_number), e.error));
    }
    inputs.cli = std::move(*parsed);
    inputs.config.clear();
    return inputs;
  }
  // The document's [policy] replaces the policy; the DNS block list is not part of it.
  config::Config doc;
  auto f = fmt == PolicyText::json ? config::Format::json : config::Format::toml;
  if (auto r = config::load_config_text(text, f, "policy", doc); !r) return unexpected(join_errors(r.error()));
  auto block = std::move(inputs.block);
  inputs = std::move(doc.policy.inputs);
  inputs.block = std::move(block);
  return inputs;
}

Result<policy::PolicyInputs, std::string> policy_inputs_from_file(const policy::PolicyInputs& current,
                                                                  const std::string& path) {
  config::Config fresh;
  if (auto r = config::load_config_file(path, fresh); !r) return unexpected(join_errors(r.error()));
  policy::PolicyInputs inputs = current;
  const policy::PolicyInputs& file = fresh.policy.inputs;
  inputs.config = file.config;
  inputs.config_profiles = file.config_profiles;
  inputs.config_default_egress = file.config_default_egress;
  inputs.config_default_ingress = file.config_default_ingress;
  inputs.sni_requires_pin = file.sni_requires_pin;
  return inputs;
}

void install_policy(GatewayAssembly& gw, policy::PolicyInputs inputs) {
  auto engine = std::make_shared<const policy::Engine>(policy::resolve_policy(inputs),
                                                       host_addrs(gw.plan().flows.engines.destinations));
  if (Gateway* g = gw.gateway()) g->flows()->policy().replace(engine);
  gw.cfg().policy.inputs = std::move(inputs);
  for (const auto& w : engine->lint()) MOAT_LOG(warn, "policy: %s", w.c_str());
}

std::string gateway_metrics(GatewayAssembly& gw) {
  std::vector<obs::Gauge> gauges;
  double tcp_flows = 0, pending = 0, generation = 0, dns_inflight = 0;
  if (Gateway* g = gw.gateway()) {
    FlowManager* fm = g->flows();
    tcp_flows = double(fm->tcp().active_flows());
    pending = double(fm->tcp().pending_connects());
    generation = double(fm->policy().generation());
    dns_inflight = double(fm->dns().inflight());
  }
  gauges.push_back({"moat_tcp_flows", "TCP flows in the flow table now (every state)", tcp_flows});
  gauges.push_back({"moat_tcp_pending_connects", "TCP flows waiting for their upstream connect now", pending});
  gauges.push_back({"moat_dns_inflight", "DNS queries forwarded and not yet answered", dns_inflight});
  gauges.push_back({"moat_policy_generation", "live policy replacements so far (policy.set, policy.reload, SIGHUP)",
                    generation});
  return obs::prometheus_text(gateway_name(gw.cfg()), gw.counters(), gauges);
}

/// control::Backend on the loop thread of a CLI gateway.
class GatewayControl::Backend final : public control::Backend {
 public:
  Backend(event::Loop& loop, GatewayAssembly& gw, std::function<void()> request_stop)
      : loop_(loop), gw_(gw), request_stop_(std::move(request_stop)) {}

  std::string version_json() override {
    std::string s = "{\"moat\":\"" MOAT_VERSION_STRING "\",\"abi\":1";
    utsname u{};
    if (::uname(&u) == 0) {
      s += ",\"kernel\":";
      obs::append_json_string(s, u.release);
    }
    s += ",\"gateway\":";
    obs::append_json_string(s, gateway_name(gw_.cfg()));
    s += ",\"pid\":" + std::to_string(::getpid());
    s += ",\"features\":{\"vnet_hdr\":[10,12],\"offloads\":[\"csum\",\"tso4\",\"tso6\",\"uso\"],\"tls\":false,"
         "\"secrets\":false,\"metrics\":true}}";
    return s;
  }
  control::MethodResult<std::string> stats_json() override { return gw_.stats_json(); }
  control::MethodResult<std::string> metrics_text() override { return gateway_metrics(gw_); }

  control::MethodResult<std::vector<std::string>> publish(const std::string& spec) override {
    auto p = config::parse_publish(spec);
    if (!p) return unexpected(err(control::ErrorCode::invalid_config, "publish \"" + spec + "\": " + p.error()));
    Gateway* g = gw_.gateway();
    if (!g) return unexpected(err(control::ErrorCode::internal, "publish: the gateway is stopped"));
    auto r = g->flows()->publisher().add(*p);
    if (!r) {
      using K = ports::Publisher::ChangeError::Kind;
      return unexpected(err(r.error().kind == K::conflict ? control::ErrorCode::conflict : control::ErrorCode::internal,
                            r.error().message));
    }
    for (const auto& d : *r) MOAT_LOG(info, "published %s (control)", d.c_str());
    gw_.cfg().flows.publish.push_back(*p);
    return std::move(r).value();
  }

  control::MethodResult<size_t> unpublish(const std::string& spec) override {
    auto p = config::parse_publish(spec);
    if (!p) return unexpected(err(control::ErrorCode::invalid_config, "unpublish \"" + spec + "\": " + p.error()));
    Gateway* g = gw_.gateway();
    if (!g) return unexpected(err(control::ErrorCode::internal, "unpublish: the gateway is stopped"));
    auto r = g->flows()->publisher().remove(*p);
    if (!r) return unexpected(err(control::ErrorCode::not_found, r.error().message));
    std::erase_if(gw_.cfg().flows.publish, [&](const config::PublishSpec& x) { return config::same_binding(x, *p); });
    MOAT_LOG(info, "unpublished %s (%zu listener%s closed; control)", p->text.c_str(), *r, *r == 1 ? "" : "s");
    return *r;
  }

  control::MethodResult<std::shared_ptr<const policy::Engine>> policy_engine() override {
    Gateway* g = gw_.gateway();
    if (!g) return unexpected(err(control::ErrorCode::internal, "policy: the gateway is stopped"));
    return g->flows()->policy().snapshot();
  }
  bool rebind_protection() override { return gw_.cfg().dns.rebind_protection; }

  control::MethodResult<void> policy_set(const std::string& text, PolicyFormat fmt) override {
    if (!gw_.gateway()) return unexpected(err(control::ErrorCode::internal, "policy.set: the gateway is stopped"));
    const PolicyText f = fmt == PolicyFormat::toml ? PolicyText::toml
                         : fmt == PolicyFormat::json ? PolicyText::json
                                                     : PolicyText::rules;
    auto in = policy_inputs_from_text(gw_.cfg().policy.inputs, text, f);
    if (!in) return unexpected(err(control::ErrorCode::invalid_config, in.error()));
    install_policy(gw_, std::move(*in));
    return {};
  }

  control::MethodResult<std::string> policy_reload() override {
    const std::string& path = gw_.cfg().control.reload_file;
    if (path.empty())
      return unexpected(err(control::ErrorCode::not_found,
                            "policy.reload: this gateway was started without --config; use policy.set"));
    if (!gw_.gateway()) return unexpected(err(control::ErrorCode::internal, "policy.reload: the gateway is stopped"));
    auto in = policy_inputs_from_file(gw_.cfg().policy.inputs, path);
    if (!in) return unexpected(err(control::ErrorCode::invalid_config, in.error()));
    install_policy(gw_, std::move(*in));
    MOAT_LOG(info, "policy reloaded from %s", path.c_str());
    return path;
  }

  control::MethodResult<std::vector<Pin>> dns_pins() override {
    Gateway* g = gw_.gateway();
    if (!g) return unexpected(err(control::ErrorCode::internal, "dns.pins: the gateway is stopped"));
    std::vector<Pin> out;
    const Instant now = loop_.now();
    g->flows()->pin_set().for_each([&](std::string_view n, const IpAddr& a, Instant e) {
      out.push_back(Pin{std::string(n), a, std::chrono::duration_cast<std::chrono::milliseconds>(e - now).count()});
    });
    return out;
  }

  control::MethodResult<std::vector<Flow>> flows() override {
    Gateway* g = gw_.gateway();
    if (!g) return unexpected(err(control::ErrorCode::internal, "flows: the gateway is stopped"));
    std::vector<Flow> out;
    const Instant now = loop_.now();
    g->flows()->tcp().for_each_flow([&](const flows::TcpEngine::FlowSnapshot& s) {
      Flow f;
      f.id = s.info.id;
      f.proto = "tcp";
      f.ingress = s.info.ingress;
      f.guest = s.info.guest;
      f.remote = s.info.remote;
      f.guest_port = s.info.guest_port;
      f.remote_port = s.info.remote_port;
      f.name = std::string(s.info.name);
      const std::string_view src = flows::name_src_name(s.info.name_src);
      f.name_src = src.empty() ? "none" : std::string(src);
      f.path = std::string(flows::tcp_path_name(s.info.path));
      f.bytes_from_guest = s.bytes_from_guest;
      f.bytes_to_guest = s.bytes_to_guest;
      f.age_ms = s.started == Instant{} ? 0
                                        : std::chrono::duration_cast<std::chrono::milliseconds>(now - s.started).count();
      f.state = s.state;
      out.push_back(std::move(f));
    });
    return out;
  }

  control::MethodResult<void> audit_reopen() override {
    if (!gw_.audit() || gw_.cfg().audit.file.empty())
      return unexpected(err(control::ErrorCode::not_found, "audit.reopen: no audit file is configured (audit.file)"));
    if (auto r = gw_.reopen_audit(); !r) return unexpected(err(control::ErrorCode::internal, r.error()));
    return {};
  }

  control::MethodResult<void> shutdown() override {
    MOAT_LOG(info, "stopping: shutdown requested on the control socket");
    if (request_stop_) request_stop_();
    return {};
  }

  void config_change(std::string_view what) override { audit_change(what, by_); }

  void audit_change(std::string_view what, std::string_view by) {
    if (obs::AuditLog* a = gw_.audit()) a->emit("config_change", [&](obs::JsonWriter& w) { w.str("what", what).str("by", by); });
  }

 private:
  event::Loop& loop_;
  GatewayAssembly& gw_;
  std::function<void()> request_stop_;
  std::string by_ = "control";
};

/// events.subscribe over the gateway's audit log (R-OBS-3 sink "events.subscribe").
class GatewayControl::AuditEvents final : public control::EventSource {
 public:
  explicit AuditEvents(obs::AuditLog& log) : log_(log) {}
  uint64_t subscribe(Sink sink) override { return log_.observe(std::move(sink)); }
  void unsubscribe(uint64_t id) noexcept override { log_.unobserve(id); }

 private:
  obs::AuditLog& log_;
};

Result<std::unique_ptr<GatewayControl>, std::string> GatewayControl::open(event::Loop& loop, GatewayAssembly& gw,
                                                                          std::function<void()> request_stop) {
  std::unique_ptr<GatewayControl> c(new GatewayControl());
  c->backend_ = std::make_unique<Backend>(loop, gw, std::move(request_stop));
  c->dispatcher_ = std::make_unique<control::Dispatcher>(*c->backend_);
  const config::ControlConfig& cc = gw.cfg().control;
  if (cc.enable) {
    control::ServerOptions so;
    // R-CTL-1: the uid that started moat (real uid, read before any privilege drop).
    so.owner_uid = ::getuid();
    so.address = cc.socket.empty() ? control::default_socket_address(so.owner_uid, gateway_name(gw.cfg())) : cc.socket;
    if (obs::AuditLog* log = gw.audit()) {
      c->events_ = std::make_unique<AuditEvents>(*log);
      so.events = c->events_.get();
    }
    const bool by_name = cc.socket.empty();
    auto s = control::Server::create(loop, *c->dispatcher_, gw.counters(), std::move(so));
    if (!s) {
      std::string msg = "control socket " + s.error();
      if (by_name && s.error().find("in use") != std::string::npos)
        msg += "; another gateway of this user is named " + gateway_name(gw.cfg()) + ": give this one another --name";
      return unexpected(msg);
    }
    c->server_ = std::move(s).value();
    MOAT_LOG(info, "control socket %s", c->server_->address().c_str());
  }
  if (!cc.metrics_listen.empty()) {
    auto a = obs::parse_listen_addr(cc.metrics_listen);
    if (!a) return unexpected("--metrics " + cc.metrics_listen + ": " + a.error());
    auto m = obs::MetricsServer::create(loop, *a, gw.counters(), [&gw] { return gateway_metrics(gw); });
    if (!m) return unexpected("--metrics " + m.error());
    c->metrics_ = std::move(m).value();
    const bool loopback = a->addr.is_v6 ? a->addr.v6.is_loopback() : a->addr.v4.is_loopback();
    if (!loopback)
      MOAT_LOG(warn, "--metrics %s is not a loopback address: anyone who reaches it reads this gateway's counters",
               cc.metrics_listen.c_str());
    MOAT_LOG(info, "metrics on http://%s/metrics", cc.metrics_listen.c_str());
  }
  return c;
}

GatewayControl::GatewayControl() = default;
GatewayControl::~GatewayControl() = default;

void GatewayControl::on_sighup() {
  // R-CLI-5: SIGHUP = policy.reload + audit.reopen.
  if (!backend_) return;
  auto& b = *backend_;
  if (auto r = b.policy_reload(); r) {
    b.audit_change("policy.reload " + *r, "sighup");
  } else if (r.error().code != control::ErrorCode::not_found) {
    MOAT_LOG(warn, "SIGHUP: policy.reload failed; keeping the old policy: %s", r.error().message.c_str());
  }
  if (auto r = b.audit_reopen(); r) {
    b.audit_change("audit.reopen", "sighup");
  } else if (r.error().code != control::ErrorCode::not_found) {
    MOAT_LOG(warn, "SIGHUP: %s; keeping the old audit file", r.error().message.c_str());
  }
}

}  // namespace moat::app
