#include "control/dispatcher.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>

#include "policy/explain.h"
#include "policy/rule.h"

namespace moat::control {

using Json = nlohmann::ordered_json;  // responses keep "id" first and results their order

std::string_view error_code_name(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::unknown_method: return "unknown_method";
    case ErrorCode::invalid_params: return "invalid_params";
    case ErrorCode::invalid_config: return "invalid_config";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::limit: return "limit";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

namespace {

/// Never throws: invalid UTF-8 in a string (a rule label, a message) is replaced.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

MethodError bad_params(std::string msg) { return MethodError{ErrorCode::invalid_params, std::move(msg)}; }

/// The typed views of `params` the methods need; each failure names the parameter.
class Params {
 public:
  explicit Params(const Json& p) : p_(p) {}
  [[nodiscard]] const Json* find(const char* key) const {
    if (!p_.is_object()) return nullptr;
    auto it = p_.find(key);
    return it == p_.end() ? nullptr : &*it;
  }
  Result<std::optional<std::string>, MethodError> opt_string(const char* key) const {
    const Json* v = find(key);
    if (!v || v->is_null()) return std::optional<std::string>{};
    if (!v->is_string()) return unexpected(bad_params(std::string("params.") + key + ": must be a string"));
    return std::optional<std::string>(v->get_ref<const std::string&>());
  }
  Result<std::string, MethodError> string(const char* key) const {
    auto s = opt_string(key);
    if (!s) return unexpected(s.error());
    if (!*s) return unexpected(bad_params(std::string("params.") + key + ": missing"));
    return std::move(**s);
  }
  Result<bool, MethodError> boolean(const char* key) const {
    const Json* v = find(key);
    if (!v || v->is_null()) return false;
    if (!v->is_boolean()) return unexpected(bad_params(std::string("params.") + key + ": must be true or false"));
    return v->get<bool>();
  }

 private:
  const Json& p_;
};

/// A publish/unpublish spec: a `-p` string, or the table form of §4 ({proto, bind,
/// host_port, guest_port}) rendered as one.
Result<std::string, MethodError> publish_spec(const Json& params) {
  Params p(params);
  const Json* spec = p.find("spec");
  if (!spec) return unexpected(bad_params("params.spec: missing (a string like \"8080:80/tcp\" or a table)"));
  if (spec->is_string()) return spec->get_ref<const std::string&>();
  if (!spec->is_object()) return unexpected(bad_params("params.spec: must be a string or a table"));
  auto field = [&](const char* k) -> const Json* {
    auto it = spec->find(k);
    return it == spec->end() ? nullptr : &*it;
  };
  for (auto it = spec->begin(); it != spec->end(); ++it)
    if (it.key() != "proto" && it.key() != "bind" && it.key() != "host_port" && it.key() != "guest_port")
      return unexpected(bad_params("params.spec." + it.key() + ": unknown key; use proto, bind, host_port, guest_port"));
  const Json* hp = field("host_port");
  const Json* gp = field("guest_port");
  if (!gp || !gp->is_number_unsigned()) return unexpected(bad_params("params.spec.guest_port: missing or not a port number"));
  if (hp && !hp->is_number_unsigned()) return unexpected(bad_params("params.spec.host_port: not a port number"));
  std::string s;
  if (const Json* b = field("bind")) {
    if (!b->is_string()) return unexpected(bad_params("params.spec.bind: must be a string"));
    const auto& bs = b->get_ref<const std::string&>();
    s += bs.find(':') != std::string::npos && bs.front() != '[' ? "[" + bs + "]" : bs;
    s += ':';
  }
  s += std::to_string(hp ? hp->get<uint64_t>() : 0) + ":" + std::to_string(gp->get<uint64_t>());
  if (const Json* pr = field("proto")) {
    if (!pr->is_string()) return unexpected(bad_params("params.spec.proto: must be \"tcp\" or \"udp\""));
    s += "/" + pr->get_ref<const std::string&>();
  }
  return s;
}

Json rule_json(const policy::Rule& r, size_t index) {
  Json j = Json::object();
  j["index"] = index;
  j["origin"] = std::string(policy::origin_name(r.origin));
  j["rule"] = r.text;
  if (!r.label.empty()) j["label"] = r.label;
  return j;
}

/// policy.explain's destination, in the syntax of `moat policy explain --dst` (R-CLI-8).
Result<policy::ExplainDst, MethodError> parse_dst(std::string_view v) {
  auto d = policy::parse_explain_dst(v);
  if (!d) {
    std::string m = "params.dst: \"" + std::string(v) + "\" " + d.error().what;
    if (!d.error().hint.empty()) m += "; " + d.error().hint;
    return unexpected(bad_params(m));
  }
  return *d;
}

class Call {
 public:
  Call(Backend& b, Session* session, const Json& params) : b_(b), session_(session), params_(params), p_(params) {}

  MethodResult<Json> run(const std::string& m) {
    if (m == "version") return no_params(m, [&]() -> MethodResult<Json> { return parse_backend_json(b_.version_json()); });
    if (m == "stats")
      return no_params(m, [&]() -> MethodResult<Json> {
        auto s = b_.stats_json();
        if (!s) return unexpected(s.error());
        return parse_backend_json(*s);
      });
    if (m == "publish") return publish();
    if (m == "unpublish") return unpublish();
    if (m == "policy.get") return no_params(m, [&] { return policy_get(); });
    if (m == "policy.set") return policy_set();
    if (m == "policy.explain") return policy_explain();
    if (m == "dns.pins") return dns_pins();
    if (m == "audit.reopen")
      return no_params(m, [&]() -> MethodResult<Json> {
        if (auto r = b_.audit_reopen(); !r) return unexpected(r.error());
        return Json{{"reopened", true}};
      });
    if (m == "shutdown")
      return no_params(m, [&]() -> MethodResult<Json> {
        if (auto r = b_.shutdown(); !r) return unexpected(r.error());
        return Json{{"stopped", true}};
      });
    if (m == "metrics")
      return no_params(m, [&]() -> MethodResult<Json> {
        auto t = b_.metrics_text();
        if (!t) return unexpected(t.error());
        return Json{{"format", "prometheus-text-0.0.4"}, {"text", std::move(*t)}};
      });
    if (m == "policy.reload") return policy_reload();
    if (m == "flows") return flows();
    if (m == "events.subscribe" && session_) return events_subscribe();
    // The other R-CTL-3 methods need pieces this build does not have (secrets, rate limits,
    // runtime pcap, event streaming).
    static constexpr std::string_view kNotInBuild[] = {
        "secrets.env", "secrets.rotate", "secrets.remove", "secrets.set_hosts", "rate.set",
        "pcap.start",  "pcap.stop",      "events.subscribe"};
    for (auto n : kNotInBuild)
      if (m == n) return unexpected(MethodError{ErrorCode::unknown_method, m + ": not supported by this build"});
    return unexpected(MethodError{ErrorCode::unknown_method, "\"" + m + "\" is not a method; see SPEC R-CTL-3"});
  }

 private:
  template <class F>
  MethodResult<Json> no_params(const std::string& m, F&& f) {
    if (params_.is_object() && !params_.empty()) {
      return unexpected(bad_params(m + " takes no params; got \"" + params_.begin().key() + "\""));
    }
    return f();
  }

  static MethodResult<Json> parse_backend_json(const std::string& s) {
    Json j = Json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return unexpected(MethodError{ErrorCode::internal, "the gateway produced invalid JSON (bug)"});
    return j;
  }

  MethodResult<void> only(std::initializer_list<std::string_view> keys) {
    if (!params_.is_object()) return {};
    for (auto it = params_.begin(); it != params_.end(); ++it) {
      bool known = false;
      for (auto k : keys) known = known || it.key() == k;
      if (!known) return unexpected(bad_params("params." + it.key() + ": unknown parameter"));
    }
    return {};
  }

  MethodResult<Json> publish() {
    if (auto r = only({"spec"}); !r) return unexpected(r.error());
    auto spec = publish_spec(params_);
    if (!spec) return unexpected(spec.error());
    auto r = b_.publish(*spec);
    if (!r) return unexpected(r.error());
    b_.config_change("publish " + *spec);
    return Json{{"listeners", *r}};
  }

  MethodResult<Json> unpublish() {
    if (auto r = only({"spec", "kill"}); !r) return unexpected(r.error());
    auto spec = publish_spec(params_);
    if (!spec) return unexpected(spec.error());
    auto kill = p_.boolean("kill");
    if (!kill) return unexpected(kill.error());
    if (*kill)
      return unexpected(bad_params("params.kill: resetting the established flows of a published port is not supported by "
                                   "this build; unpublish without kill (flows continue)"));
    auto r = b_.unpublish(*spec);
    if (!r) return unexpected(r.error());
    b_.config_change("unpublish " + *spec);
    return Json{{"closed", *r}};
  }

  /// R-CTL-3 dns.pins: live pins, optionally for one name and/or address, sorted, at most
  /// kMaxPins (then "truncated": true).
  MethodResult<Json> dns_pins() {
    static constexpr size_t kMaxPins = 10000;
    if (auto r = only({"name", "address"}); !r) return unexpected(r.error());
    auto name = p_.opt_string("name");
    if (!name) return unexpected(name.error());
    auto addr_text = p_.opt_string("address");
    if (!addr_text) return unexpected(addr_text.error());
    std::optional<std::string> want_name;
    if (*name) {
      auto n = policy::normalize_name(**name);
      if (!n) return unexpected(bad_params("params.name: \"" + **name + "\": " + n.error().what));
      want_name = *n;
    }
    std::optional<IpAddr> want_addr;
    if (*addr_text) {
      auto a = IpAddr::parse(**addr_text);
      if (!a) return unexpected(bad_params("params.address: \"" + **addr_text + "\" is not an IP address"));
      want_addr = policy::normalize(*a);
    }
    auto pins = b_.dns_pins();
    if (!pins) return unexpected(pins.error());
    std::erase_if(*pins, [&](const Backend::Pin& p) {
      return (want_name && p.name != *want_name) || (want_addr && !(policy::normalize(p.address) == *want_addr));
    });
    std::sort(pins->begin(), pins->end(), [](const Backend::Pin& a, const Backend::Pin& b) {
      return a.name != b.name ? a.name < b.name : a.address.to_string() < b.address.to_string();
    });
    const bool truncated = pins->size() > kMaxPins;
    if (truncated) pins->resize(kMaxPins);
    Json list = Json::array();
    for (const auto& p : *pins) {
      Json j = Json::object();
      j["name"] = p.name;
      j["address"] = p.address.to_string();
      j["expires_in_s"] = double(p.expires_in_ms) / 1000.0;
      list.push_back(std::move(j));
    }
    Json out = Json::object();
    out["pins"] = std::move(list);
    out["truncated"] = truncated;
    return out;
  }

  MethodResult<Json> policy_get() {
    auto e = b_.policy_engine();
    if (!e) return unexpected(e.error());
    const policy::Policy& p = (*e)->policy();
    Json rules = Json::array();
    for (size_t i = 0; i < p.rules.size(); ++i) rules.push_back(rule_json(p.rules[i], i));
    Json out = Json::object();
    out["rules"] = std::move(rules);
    out["default_egress"] = std::string(policy::action_name(p.default_egress));
    out["default_ingress"] = std::string(policy::action_name(p.default_ingress));
    out["profiles"] = p.profiles.to_string();
    out["sni_requires_pin"] = p.sni_requires_pin;
    out["floor"] = nullptr;  // no operator policy (R-MT-1) in this build
    Json warnings = Json::array();
    for (auto& w : (*e)->lint()) warnings.push_back(std::move(w));
    out["warnings"] = std::move(warnings);
    return out;
  }

  MethodResult<Json> policy_set() {
    if (auto r = only({"policy", "format", "revalidate"}); !r) return unexpected(r.error());
    auto reval = p_.boolean("revalidate");
    if (!reval) return unexpected(reval.error());
    if (*reval)
      return unexpected(bad_params("params.revalidate: resetting established flows is not supported by this build; omit it"));
    auto fmt_name = p_.opt_string("format");
    if (!fmt_name) return unexpected(fmt_name.error());
    const Json* pol = p_.find("policy");
    if (!pol) return unexpected(bad_params("params.policy: missing (rule strings, or a TOML/JSON policy document)"));
    std::string text;
    Backend::PolicyFormat fmt = Backend::PolicyFormat::rules;
    if (pol->is_object()) {
      // The [policy] table itself, as JSON.
      if (*fmt_name && **fmt_name != "json") return unexpected(bad_params("params.format: a table is JSON; omit format"));
      text = dump(Json{{"policy", *pol}});
      fmt = Backend::PolicyFormat::json;
    } else if (pol->is_array()) {
      if (*fmt_name && **fmt_name != "rules") return unexpected(bad_params("params.format: an array holds rule strings"));
      for (const auto& r : *pol) {
        if (!r.is_string()) return unexpected(bad_params("params.policy: every array item must be a rule string"));
        text += r.get_ref<const std::string&>();
        text += '\n';
      }
    } else if (pol->is_string()) {
      text = pol->get_ref<const std::string&>();
      const std::string f = fmt_name->value_or("rules");
      if (f == "toml") fmt = Backend::PolicyFormat::toml;
      else if (f == "json") fmt = Backend::PolicyFormat::json;
      else if (f != "rules") return unexpected(bad_params("params.format: \"" + f + "\" is not rules, toml or json"));
    } else {
      return unexpected(bad_params("params.policy: must be a string, an array of rule strings or a table"));
    }
    if (auto r = b_.policy_set(text, fmt); !r) return unexpected(r.error());
    b_.config_change("policy.set");
    auto e = b_.policy_engine();
    if (!e) return unexpected(e.error());
    return Json{{"rules", (*e)->policy().rules.size()}};
  }

  /// R-CTL-3 events.subscribe: `events` names audit events (R-OBS-3), default all.
  MethodResult<Json> events_subscribe() {
    if (auto r = only({"events"}); !r) return unexpected(r.error());
    std::vector<std::string> events;
    if (const Json* e = p_.find("events"); e && !e->is_null()) {
      if (!e->is_array() || e->size() > 64) return unexpected(bad_params("params.events: must be an array of event names"));
      for (const auto& n : *e) {
        if (!n.is_string()) return unexpected(bad_params("params.events: every item must be an event name"));
        const auto& s = n.get_ref<const std::string&>();
        if (s.empty() || s.size() > 32 || s.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos)
          return unexpected(bad_params("params.events: \"" + s + "\" is not an event name (e.g. flow_open)"));
        events.push_back(s);
      }
    }
    if (auto r = session_->subscribe_events(events); !r) return unexpected(r.error());
    return Json{{"subscribed", true}, {"events", events}};
  }

  MethodResult<Json> policy_reload() {
    if (auto r = only({"revalidate"}); !r) return unexpected(r.error());
    auto reval = p_.boolean("revalidate");
    if (!reval) return unexpected(reval.error());
    if (*reval)
      return unexpected(bad_params("params.revalidate: resetting established flows is not supported by this build; omit it"));
    auto r = b_.policy_reload();
    if (!r) return unexpected(r.error());
    b_.config_change("policy.reload " + *r);
    auto e = b_.policy_engine();
    if (!e) return unexpected(e.error());
    return Json{{"file", *r}, {"rules", (*e)->policy().rules.size()}};
  }

  /// R-CTL-3 flows: active flows, optionally of one protocol, to one destination (address
  /// or address:port) or for one name; sorted by id; at most `limit` (default and cap 10000).
  MethodResult<Json> flows() {
    static constexpr uint64_t kMaxFlows = 10000;
    if (auto r = only({"proto", "dst", "name", "limit"}); !r) return unexpected(r.error());
    auto proto = p_.opt_string("proto");
    if (!proto) return unexpected(proto.error());
    if (*proto && **proto != "tcp" && **proto != "udp" && **proto != "icmp")
      return unexpected(bad_params("params.proto: \"" + **proto + "\" is not tcp, udp or icmp"));
    auto dst = p_.opt_string("dst");
    if (!dst) return unexpected(dst.error());
    std::optional<IpAddr> dst_addr;
    std::optional<uint16_t> dst_port;
    if (*dst) {
      std::string_view d = **dst;
      std::string_view host = d;
      if (auto a = IpAddr::parse(d)) {
        dst_addr = policy::normalize(*a);
      } else {
        const size_t colon = d.rfind(':');
        if (colon == std::string_view::npos) return unexpected(bad_params("params.dst: \"" + **dst + "\" is not ADDR or ADDR:PORT"));
        host = d.substr(0, colon);
        if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
        auto ha = IpAddr::parse(host);
        unsigned port = 0;
        auto pr = d.substr(colon + 1);
        auto [ptr, ec] = std::from_chars(pr.data(), pr.data() + pr.size(), port);
        if (!ha || ec != std::errc() || ptr != pr.data() + pr.size() || pr.empty() || port > 65535)
          return unexpected(bad_params("params.dst: \"" + **dst + "\" is not ADDR or ADDR:PORT"));
        dst_addr = policy::normalize(*ha);
        dst_port = uint16_t(port);
      }
    }
    auto name = p_.opt_string("name");
    if (!name) return unexpected(name.error());
    std::optional<std::string> want_name;
    if (*name) {
      auto n = policy::normalize_name(**name);
      if (!n) return unexpected(bad_params("params.name: \"" + **name + "\": " + n.error().what));
      want_name = *n;
    }
    uint64_t limit = kMaxFlows;
    if (const Json* l = p_.find("limit"); l && !l->is_null()) {
      if (!l->is_number_unsigned() || l->get<uint64_t>() == 0 || l->get<uint64_t>() > kMaxFlows)
        return unexpected(bad_params("params.limit: must be 1-10000"));
      limit = l->get<uint64_t>();
    }
    auto all = b_.flows();
    if (!all) return unexpected(all.error());
    std::erase_if(*all, [&](const Backend::Flow& f) {
      return (*proto && f.proto != **proto) || (dst_addr && !(policy::normalize(f.remote) == *dst_addr)) ||
             (dst_port && f.remote_port != *dst_port) || (want_name && f.name != *want_name);
    });
    std::sort(all->begin(), all->end(), [](const Backend::Flow& a, const Backend::Flow& b) { return a.id < b.id; });
    const size_t total = all->size();
    if (all->size() > limit) all->resize(limit);
    Json list = Json::array();
    for (const auto& f : *all) {
      auto ep = [](const IpAddr& a, uint16_t port) {
        return a.is_v6 ? "[" + a.to_string() + "]:" + std::to_string(port) : a.to_string() + ":" + std::to_string(port);
      };
      Json j = Json::object();
      j["id"] = f.id;
      j["proto"] = f.proto;
      j["dir"] = f.ingress ? "ingress" : "egress";
      j["guest"] = ep(f.guest, f.guest_port);
      j["remote"] = ep(f.remote, f.remote_port);
      if (f.name.empty()) j["name"] = nullptr;
      else j["name"] = f.name;
      j["name_src"] = f.name_src;
      j["path"] = f.path;
      j["bytes_from_guest"] = f.bytes_from_guest;
      j["bytes_to_guest"] = f.bytes_to_guest;
      j["age_s"] = double(f.age_ms) / 1000.0;
      if (!f.state.empty()) j["state"] = f.state;
      list.push_back(std::move(j));
    }
    Json out = Json::object();
    out["flows"] = std::move(list);
    out["total"] = total;
    out["truncated"] = total > limit;
    return out;
  }

  MethodResult<Json> policy_explain() {
    if (auto r = only({"dst", "sni", "ip", "pin", "ingress", "src"}); !r) return unexpected(r.error());
    policy::ExplainInputs in;
    auto dst_text = p_.string("dst");
    if (!dst_text) return unexpected(dst_text.error());
    auto dst = parse_dst(*dst_text);
    if (!dst) return unexpected(dst.error());
    in.dst = std::move(*dst);
    auto sni = p_.opt_string("sni");
    auto ip_text = p_.opt_string("ip");
    auto src_text = p_.opt_string("src");
    auto ingress = p_.boolean("ingress");
    for (auto* r : {&sni, &ip_text, &src_text})
      if (!*r) return unexpected(r->error());
    if (!ingress) return unexpected(ingress.error());
    in.ingress = *ingress;
    auto addr = [&](const char* key, const std::optional<std::string>& t) -> MethodResult<std::optional<IpAddr>> {
      if (!t) return std::optional<IpAddr>{};
      auto a = IpAddr::parse(*t);
      if (!a) return unexpected(bad_params(std::string("params.") + key + ": \"" + *t + "\" is not an IP address"));
      return std::optional<IpAddr>(*a);
    };
    auto ip = addr("ip", *ip_text);
    if (!ip) return unexpected(ip.error());
    in.ip = *ip;
    auto src = addr("src", *src_text);
    if (!src) return unexpected(src.error());
    in.src = *src;
    if (*sni) {
      auto n = policy::normalize_name(**sni);
      if (!n) return unexpected(bad_params("params.sni: \"" + **sni + "\": " + n.error().what));
      in.sni = *n;
    }
    if (const Json* pl = p_.find("pin")) {
      if (!pl->is_array()) return unexpected(bad_params("params.pin: must be an array of \"NAME=IP\""));
      for (const auto& item : *pl) {
        if (!item.is_string()) return unexpected(bad_params("params.pin: every item must be \"NAME=IP\""));
        const auto& s = item.get_ref<const std::string&>();
        auto eq = s.find('=');
        if (eq == std::string::npos) return unexpected(bad_params("params.pin: \"" + s + "\" is not NAME=IP"));
        auto n = policy::normalize_name(std::string_view(s).substr(0, eq));
        auto a = IpAddr::parse(std::string_view(s).substr(eq + 1));
        if (!n || !a) return unexpected(bad_params("params.pin: \"" + s + "\" is not NAME=IP"));
        in.pins.emplace_back(*n, *a);
      }
    }
    in.rebind_protection = b_.rebind_protection();
    policy::StaticPins pins;
    auto rq = policy::make_explain_request(in, pins, [](std::string_view f) { return std::string(f); });
    if (!rq) {
      std::string m = "params." + rq.error().field + ": " + rq.error().what;
      if (!rq.error().hint.empty()) m += "; " + rq.error().hint;
      return unexpected(bad_params(m));
    }
    auto e = b_.policy_engine();
    if (!e) return unexpected(e.error());
    auto rep = policy::explain_report(**e, *rq, pins, &pins);
    Json out = Json::object();
    out["lines"] = rep.lines;
    out["allowed"] = rep.allowed;
    out["verdict"] = std::string(policy::action_name(rep.verdict.action));
    if (rep.verdict.rule) out["rule"] = *rep.verdict.rule;
    else out["rule"] = nullptr;
    return out;
  }

  Backend& b_;
  Session* session_;
  const Json& params_;
  Params p_;
};

MethodError not_in_build(std::string_view method) {
  return MethodError{ErrorCode::unknown_method, std::string(method) + ": not supported by this build"};
}

std::string error_response(const Json& id, ErrorCode code, std::string message) {
  constexpr std::string_view kPrefix = "moat: error: ";
  if (message.rfind(kPrefix, 0) == 0) message.erase(0, kPrefix.size());
  Json r = Json::object();
  r["id"] = id;
  r["error"] = Json{{"code", std::string(error_code_name(code))}, {"message", std::move(message)}};
  return dump(r);
}

}  // namespace

MethodResult<std::string> Backend::metrics_text() { return unexpected(not_in_build("metrics")); }
MethodResult<std::string> Backend::policy_reload() { return unexpected(not_in_build("policy.reload")); }
MethodResult<std::vector<Backend::Flow>> Backend::flows() { return unexpected(not_in_build("flows")); }

std::string Dispatcher::handle(std::string_view request, Session* session) {
  if (request.size() > kMaxRequest)
    return error_response(nullptr, ErrorCode::limit, "the request is larger than 1 MiB");
  Json req = Json::parse(request.begin(), request.end(), nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded()) return error_response(nullptr, ErrorCode::invalid_params, "the request is not valid JSON");
  if (!req.is_object())
    return error_response(nullptr, ErrorCode::invalid_params, "the request must be a JSON object {\"id\",\"method\",\"params\"}");
  Json id = nullptr;
  if (auto it = req.find("id"); it != req.end()) id = *it;
  for (auto it = req.begin(); it != req.end(); ++it)
    if (it.key() != "id" && it.key() != "method" && it.key() != "params")
      return error_response(id, ErrorCode::invalid_params, "\"" + it.key() + "\": unknown request member; use id, method, params");
  auto m = req.find("method");
  if (m == req.end() || !m->is_string()) return error_response(id, ErrorCode::invalid_params, "method: missing or not a string");
  static const Json kNoParams = Json::object();
  const Json* params = &kNoParams;
  if (auto p = req.find("params"); p != req.end() && !p->is_null()) {
    if (!p->is_object()) return error_response(id, ErrorCode::invalid_params, "params: must be an object");
    params = &*p;
  }
  Call call(backend_, session, *params);
  auto r = call.run(m->get_ref<const std::string&>());
  if (!r) return error_response(id, r.error().code, std::move(r.error().message));
  Json out = Json::object();
  out["id"] = id;
  out["result"] = std::move(*r);
  return dump(out);
}

}  // namespace moat::control
