// Fuzz target: control::Dispatcher::handle() on arbitrary request bytes (R-CTL-2), every
// method including the control socket's flows/metrics/policy.reload. The
// input comes from the embedder or a control-socket peer, not the guest, but the parser
// must still never crash, throw or answer with anything but one JSON object line holding
// the request's id and exactly one of result/error.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "control/dispatcher.h"
#include "policy/profiles.h"
#include "policy/rule.h"

namespace {

using namespace moat;

/// Answers every method with a fixed, valid result (or a fixed error for audit.reopen).
struct Backend final : control::Backend {
  std::shared_ptr<const policy::Engine> engine;
  Backend() {
    policy::PolicyInputs in;
    auto r = policy::parse_rules("allow@*.github.com:tcp:443,deny@10.0.0.0/8", policy::Origin::cli);
    if (r) in.cli = std::move(*r);
    engine = std::make_shared<const policy::Engine>(policy::resolve_policy(in), policy::HostAddrs{});
  }
  std::string version_json() override { return R"({"moat":"fuzz","abi":1})"; }
  control::MethodResult<std::string> stats_json() override { return std::string(R"({"counters":{}})"); }
  control::MethodResult<std::vector<std::string>> publish(const std::string& s) override {
    return std::vector<std::string>{s};
  }
  control::MethodResult<size_t> unpublish(const std::string&) override { return size_t{1}; }
  control::MethodResult<std::shared_ptr<const policy::Engine>> policy_engine() override { return engine; }
  bool rebind_protection() override { return true; }
  control::MethodResult<void> policy_set(const std::string&, PolicyFormat) override { return {}; }
  control::MethodResult<std::vector<Pin>> dns_pins() override {
    return std::vector<Pin>{{"a.example", Ipv4Addr::from_octets(1, 2, 3, 4), 1000}};
  }
  control::MethodResult<void> audit_reopen() override {
    return moat::unexpected(control::MethodError{control::ErrorCode::not_found, "no audit file"});
  }
  control::MethodResult<void> shutdown() override { return {}; }
  void config_change(std::string_view) override {}
  // The control socket's extra methods (app/control.cc): metrics, policy.reload, flows with
  // its filters, sort and limit.
  control::MethodResult<std::string> metrics_text() override { return std::string("# HELP a b\n# TYPE a gauge\na 1\n"); }
  control::MethodResult<std::string> policy_reload() override { return std::string("/etc/moat/moat.toml"); }
  control::MethodResult<std::vector<Flow>> flows() override {
    std::vector<Flow> v(3);
    for (size_t i = 0; i < v.size(); ++i) {
      v[i].id = 3 - i;
      v[i].proto = i == 2 ? "udp" : "tcp";
      v[i].guest = Ipv4Addr::from_octets(100, 96, 0, 2);
      v[i].remote = i == 1 ? IpAddr(Ipv4Addr::from_octets(1, 2, 3, 4)) : IpAddr(Ipv6Addr{});
      v[i].remote_port = uint16_t(443 + i);
      v[i].name = i == 0 ? "a.example" : "";
      v[i].name_src = i == 0 ? "sni" : "none";
      v[i].path = "fast";
      v[i].age_ms = int64_t(i) * 1000;
    }
    return v;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Backend backend;
  control::Dispatcher d(backend);
  const std::string out = d.handle(std::string_view(reinterpret_cast<const char*>(data), size));
  if (out.empty() || out.find('\n') != std::string::npos) __builtin_trap();
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("id")) __builtin_trap();
  if (j.contains("result") == j.contains("error")) __builtin_trap();
  return 0;
}
