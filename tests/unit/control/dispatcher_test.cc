// control::Dispatcher (R-CTL-2/3) against a recording Backend: the request/response shape,
// every error code path the dispatcher owns, parameter validation, config_change on
// mutating methods, and policy.get / policy.explain rendered from a real policy::Engine.
#include "control/dispatcher.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "policy/profiles.h"
#include "policy/rule.h"

namespace moat::control {
namespace {

using Json = nlohmann::json;

struct FakeBackend final : Backend {
  std::vector<std::string> calls;
  std::vector<std::string> changes;
  std::optional<MethodError> fail_next;
  std::shared_ptr<const policy::Engine> engine;
  std::string last_policy;
  PolicyFormat last_format = PolicyFormat::rules;

  FakeBackend() { set_rules("allow@*.github.com:tcp:443"); }
  void set_rules(std::string_view rules) {
    policy::PolicyInputs in;
    in.cli = policy::parse_rules(rules, policy::Origin::cli).value();
    engine = std::make_shared<const policy::Engine>(policy::resolve_policy(in), policy::HostAddrs{});
  }
  template <class T>
  MethodResult<T> maybe_fail(T value) {
    if (fail_next) {
      auto e = *fail_next;
      fail_next.reset();
      return unexpected(e);
    }
    return value;
  }
  std::string version_json() override { return R"({"moat":"test","abi":1})"; }
  MethodResult<std::string> stats_json() override {
    calls.push_back("stats");
    return maybe_fail(std::string(R"({"counters":{"a":1}})"));
  }
  MethodResult<std::vector<std::string>> publish(const std::string& spec) override {
    calls.push_back("publish " + spec);
    return maybe_fail(std::vector<std::string>{"tcp 127.0.0.1:8080 -> guest port 80"});
  }
  MethodResult<size_t> unpublish(const std::string& spec) override {
    calls.push_back("unpublish " + spec);
    return maybe_fail(size_t{1});
  }
  MethodResult<std::shared_ptr<const policy::Engine>> policy_engine() override { return engine; }
  bool rebind_protection() override { return true; }
  MethodResult<void> policy_set(const std::string& text, PolicyFormat fmt) override {
    calls.push_back("policy.set");
    last_policy = text;
    last_format = fmt;
    if (fail_next) {
      auto e = *fail_next;
      fail_next.reset();
      return unexpected(e);
    }
    if (fmt == PolicyFormat::rules) {
      std::string joined = text;  // newline-separated, as moat_policy_update takes them
      std::replace(joined.begin(), joined.end(), '\n', ',');
      while (!joined.empty() && joined.back() == ',') joined.pop_back();
      set_rules(joined);
    }
    return {};
  }
  MethodResult<std::vector<Pin>> dns_pins() override {
    return std::vector<Pin>{{"b.example", Ipv4Addr::from_octets(1, 2, 3, 4), 1500},
                            {"a.example", Ipv4Addr::from_octets(5, 6, 7, 8), 299000},
                            {"a.example", Ipv4Addr::from_octets(1, 2, 3, 4), 1000}};
  }
  MethodResult<void> audit_reopen() override {
    calls.push_back("audit.reopen");
    return unexpected(MethodError{ErrorCode::not_found, "moat: error: audit.reopen: no audit file is configured"});
  }
  MethodResult<void> shutdown() override {
    calls.push_back("shutdown");
    return {};
  }
  void config_change(std::string_view what) override { changes.emplace_back(what); }
};

struct DispatcherTest : ::testing::Test {
  FakeBackend b;
  Dispatcher d{b};
  Json call(std::string_view req) {
    std::string out = d.handle(req);
    EXPECT_EQ(out.find('\n'), std::string::npos) << "one line";
    Json j = Json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  }
  std::string error_code(std::string_view req) {
    Json j = call(req);
    if (!j.contains("error")) return "(no error: " + j.dump() + ")";
    return j["error"]["code"].get<std::string>();
  }
};

TEST_F(DispatcherTest, ResultEchoesTheId) {
  Json r = call(R"({"id":7,"method":"version"})");
  EXPECT_EQ(r["id"], 7);
  EXPECT_EQ(r["result"]["abi"], 1);
  r = call(R"({"id":"abc","method":"stats","params":{}})");
  EXPECT_EQ(r["id"], "abc");
  EXPECT_EQ(r["result"]["counters"]["a"], 1);
  r = call(R"({"method":"version"})");
  EXPECT_TRUE(r["id"].is_null());
}

TEST_F(DispatcherTest, MalformedRequestsAreInvalidParams) {
  for (const char* req : {"", "{", "[1,2]", "42", R"({"id":1})", R"({"id":1,"method":5})",
                          R"({"id":1,"method":"stats","params":[1]})", R"({"id":1,"method":"stats","extra":1})"}) {
    SCOPED_TRACE(req);
    Json r = call(req);
    ASSERT_TRUE(r.contains("error"));
    EXPECT_EQ(r["error"]["code"], "invalid_params");
    EXPECT_FALSE(r["error"]["message"].get<std::string>().empty());
  }
  EXPECT_EQ(call(R"({"id":3,"method":5})")["id"], 3);  // the id is known: echoed in the error
  EXPECT_EQ(error_code(R"({"id":1,"method":"stats","params":{"x":1}})"), "invalid_params");
  EXPECT_TRUE(b.calls.empty());
}

TEST_F(DispatcherTest, OversizeRequestIsLimit) {
  std::string big = R"({"id":1,"method":"version","params":{"pad":")" + std::string(Dispatcher::kMaxRequest, 'x') + "\"}}";
  EXPECT_EQ(error_code(big), "limit");
}

TEST_F(DispatcherTest, UnknownAndUnsupportedMethods) {
  Json r = call(R"({"id":1,"method":"frobnicate"})");
  EXPECT_EQ(r["error"]["code"], "unknown_method");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("frobnicate"), std::string::npos);
  for (const char* m : {"flows", "secrets.rotate", "rate.set", "pcap.start", "events.subscribe", "policy.reload"}) {
    r = call(std::string(R"({"id":1,"method":")") + m + "\"}");
    EXPECT_EQ(r["error"]["code"], "unknown_method") << m;
    EXPECT_NE(r["error"]["message"].get<std::string>().find("not supported by this build"), std::string::npos) << m;
  }
}

TEST_F(DispatcherTest, PublishStringAndTableFormsAndConfigChange) {
  Json r = call(R"({"id":1,"method":"publish","params":{"spec":"8080:80"}})");
  EXPECT_EQ(r["result"]["listeners"][0], "tcp 127.0.0.1:8080 -> guest port 80");
  r = call(R"({"id":2,"method":"publish","params":{"spec":{"proto":"udp","bind":"::1","host_port":5353,"guest_port":53}}})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  ASSERT_EQ(b.calls.size(), 2u);
  EXPECT_EQ(b.calls[0], "publish 8080:80");
  EXPECT_EQ(b.calls[1], "publish [::1]:5353:53/udp");
  EXPECT_EQ(b.changes, (std::vector<std::string>{"publish 8080:80", "publish [::1]:5353:53/udp"}));

  EXPECT_EQ(error_code(R"({"id":1,"method":"publish"})"), "invalid_params");
  EXPECT_EQ(error_code(R"({"id":1,"method":"publish","params":{"spec":5}})"), "invalid_params");
  EXPECT_EQ(error_code(R"({"id":1,"method":"publish","params":{"spec":{"host_port":1}}})"), "invalid_params");
  EXPECT_EQ(error_code(R"({"id":1,"method":"publish","params":{"spec":{"guest_port":1,"color":"red"}}})"), "invalid_params");

  // Backend errors keep their code; the "moat: error: " prefix is not repeated.
  b.fail_next = MethodError{ErrorCode::conflict, "moat: error: publish \"8080:80\": host port 8080 is already published"};
  r = call(R"({"id":9,"method":"publish","params":{"spec":"8080:80"}})");
  EXPECT_EQ(r["id"], 9);
  EXPECT_EQ(r["error"]["code"], "conflict");
  EXPECT_EQ(r["error"]["message"], "publish \"8080:80\": host port 8080 is already published");
  EXPECT_EQ(b.changes.size(), 2u);  // no config_change for a failure
}

TEST_F(DispatcherTest, UnpublishKillAndNotFound) {
  EXPECT_EQ(call(R"({"id":1,"method":"unpublish","params":{"spec":"8080:80"}})")["result"]["closed"], 1);
  EXPECT_EQ(b.changes.back(), "unpublish 8080:80");
  Json r = call(R"({"id":1,"method":"unpublish","params":{"spec":"8080:80","kill":true}})");
  EXPECT_EQ(r["error"]["code"], "invalid_params");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("kill"), std::string::npos);
  EXPECT_EQ(error_code(R"({"id":1,"method":"unpublish","params":{"spec":"8080:80","kill":"yes"}})"), "invalid_params");
  b.fail_next = MethodError{ErrorCode::not_found, "unpublish \"1:2\": no such published port"};
  EXPECT_EQ(error_code(R"({"id":1,"method":"unpublish","params":{"spec":"1:2"}})"), "not_found");
}

TEST_F(DispatcherTest, PolicyGetRendersTheNormalisedRulesWithOrigins) {
  Json r = call(R"({"id":1,"method":"policy.get"})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  const Json& p = r["result"];
  ASSERT_GE(p["rules"].size(), 1u);
  EXPECT_EQ(p["rules"][0]["origin"], "cli");
  EXPECT_EQ(p["rules"][0]["rule"], "allow@*.github.com:tcp:443");
  EXPECT_EQ(p["rules"][0]["index"], 0);
  EXPECT_EQ(p["default_egress"], "deny");
  EXPECT_EQ(p["default_ingress"], "allow");
  EXPECT_EQ(p["profiles"], "public");
  EXPECT_TRUE(p["floor"].is_null());
  EXPECT_TRUE(p["warnings"].is_array());
}

TEST_F(DispatcherTest, PolicySetFormats) {
  Json r = call(R"({"id":1,"method":"policy.set","params":{"policy":"deny@10.0.0.0/8"}})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_EQ(b.last_format, Backend::PolicyFormat::rules);
  EXPECT_EQ(call(R"({"id":1,"method":"policy.get"})")["result"]["rules"][0]["rule"], "deny@10.0.0.0/8");
  EXPECT_EQ(b.changes.back(), "policy.set");

  call(R"({"id":1,"method":"policy.set","params":{"policy":["allow@1.2.3.4","deny@5.6.7.8"]}})");
  EXPECT_EQ(b.last_policy, "allow@1.2.3.4\ndeny@5.6.7.8\n");
  call(R"({"id":1,"method":"policy.set","params":{"policy":{"rules":["allow@1.2.3.4"]}}})");
  EXPECT_EQ(b.last_format, Backend::PolicyFormat::json);
  EXPECT_EQ(Json::parse(b.last_policy)["policy"]["rules"][0], "allow@1.2.3.4");
  call(R"({"id":1,"method":"policy.set","params":{"policy":"[policy]\nrules = []\n","format":"toml"}})");
  EXPECT_EQ(b.last_format, Backend::PolicyFormat::toml);

  EXPECT_EQ(error_code(R"({"id":1,"method":"policy.set","params":{}})"), "invalid_params");
  EXPECT_EQ(error_code(R"({"id":1,"method":"policy.set","params":{"policy":"x","format":"yaml"}})"), "invalid_params");
  EXPECT_EQ(error_code(R"({"id":1,"method":"policy.set","params":{"policy":[1]}})"), "invalid_params");
  EXPECT_EQ(error_code(R"({"id":1,"method":"policy.set","params":{"policy":"x","revalidate":true}})"), "invalid_params");
  b.fail_next = MethodError{ErrorCode::invalid_config, "moat: error: rule #1 \"alow@x\" col 1: unknown action"};
  Json e = call(R"({"id":1,"method":"policy.set","params":{"policy":"alow@x"}})");
  EXPECT_EQ(e["error"]["code"], "invalid_config");
  EXPECT_EQ(e["error"]["message"], "rule #1 \"alow@x\" col 1: unknown action");
}

TEST_F(DispatcherTest, PolicyExplainIsTheCliReport) {
  Json r = call(R"({"id":1,"method":"policy.explain","params":{"dst":"api.github.com:443","ip":"140.82.112.3"}})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_TRUE(r["result"]["allowed"].get<bool>());
  EXPECT_EQ(r["result"]["verdict"], "allow");
  EXPECT_EQ(r["result"]["rule"], 0);
  const auto& lines = r["result"]["lines"];
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0].get<std::string>().rfind("query", 0), 0u) << lines.dump();
  EXPECT_NE(lines[0].get<std::string>().find("group=public"), std::string::npos) << lines.dump();

  r = call(R"({"id":1,"method":"policy.explain","params":{"dst":"10.1.2.3:22"}})");
  EXPECT_FALSE(r["result"]["allowed"].get<bool>());
  EXPECT_TRUE(r["result"]["rule"].is_null());  // the default decided
  r = call(R"({"id":1,"method":"policy.explain","params":{"dst":"[2001:db8::1]:443/udp"}})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  r = call(R"({"id":1,"method":"policy.explain","params":{"dst":":80","ingress":true,"src":"192.0.2.7"}})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  EXPECT_TRUE(r["result"]["allowed"].get<bool>());  // default ingress allow

  for (const char* bad : {R"({})", R"({"dst":"host"})", R"({"dst":"h:99999"})", R"({"dst":"2001:db8::1:443"})",
                          R"({"dst":"1.2.3.4:80","ip":"1.2.3.5"})", R"({"dst":":80","ingress":true})",
                          R"({"dst":"a.b:80","pin":["nonsense"]})", R"({"dst":"1.2.3.4/icmp","src":"1.1.1.1"})",
                          R"({"dst":"1.2.3.4:80","sni":"a..b"})"}) {
    EXPECT_EQ(error_code(std::string(R"({"id":1,"method":"policy.explain","params":)") + bad + "}"), "invalid_params") << bad;
  }
}

TEST_F(DispatcherTest, DnsPinsSortedAndFiltered) {
  Json r = call(R"({"id":1,"method":"dns.pins"})");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  const auto& p = r["result"]["pins"];
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0]["name"], "a.example");
  EXPECT_EQ(p[0]["address"], "1.2.3.4");
  EXPECT_EQ(p[0]["expires_in_s"], 1.0);
  EXPECT_EQ(p[2]["name"], "b.example");
  EXPECT_FALSE(r["result"]["truncated"].get<bool>());
  EXPECT_EQ(call(R"({"id":1,"method":"dns.pins","params":{"name":"A.Example."}})")["result"]["pins"].size(), 2u);
  EXPECT_EQ(call(R"({"id":1,"method":"dns.pins","params":{"address":"::ffff:1.2.3.4"}})")["result"]["pins"].size(), 2u);
  EXPECT_EQ(call(R"({"id":1,"method":"dns.pins","params":{"name":"a.example","address":"5.6.7.8"}})")["result"]["pins"].size(),
            1u);
  EXPECT_EQ(error_code(R"({"id":1,"method":"dns.pins","params":{"address":"nope"}})"), "invalid_params");
  EXPECT_EQ(error_code(R"({"id":1,"method":"dns.pins","params":{"name":"a..b"}})"), "invalid_params");
}

TEST_F(DispatcherTest, AuditReopenAndShutdown) {
  Json r = call(R"({"id":1,"method":"audit.reopen"})");
  EXPECT_EQ(r["error"]["code"], "not_found");
  EXPECT_EQ(call(R"({"id":2,"method":"shutdown"})")["result"]["stopped"], true);
  EXPECT_EQ(b.calls, (std::vector<std::string>{"audit.reopen", "shutdown"}));
  EXPECT_EQ(error_code(R"({"id":2,"method":"shutdown","params":{"now":true}})"), "invalid_params");
}


/// The methods only the control socket's backend has (flows, metrics, policy.reload).
struct LiveBackend final : Backend {
  FakeBackend inner;
  std::vector<std::string> changes;
  bool reload_fails = false;
  std::string version_json() override { return inner.version_json(); }
  MethodResult<std::string> stats_json() override { return inner.stats_json(); }
  MethodResult<std::vector<std::string>> publish(const std::string& s) override { return inner.publish(s); }
  MethodResult<size_t> unpublish(const std::string& s) override { return inner.unpublish(s); }
  MethodResult<std::shared_ptr<const policy::Engine>> policy_engine() override { return inner.policy_engine(); }
  bool rebind_protection() override { return true; }
  MethodResult<void> policy_set(const std::string& t, PolicyFormat f) override { return inner.policy_set(t, f); }
  MethodResult<std::vector<Pin>> dns_pins() override { return inner.dns_pins(); }
  MethodResult<void> audit_reopen() override { return inner.audit_reopen(); }
  MethodResult<void> shutdown() override { return {}; }
  void config_change(std::string_view what) override { changes.emplace_back(what); }
  MethodResult<std::string> metrics_text() override { return std::string("# HELP x y\n# TYPE x gauge\nx 1\n"); }
  MethodResult<std::string> policy_reload() override {
    if (reload_fails) return unexpected(MethodError{ErrorCode::invalid_config, "cfg.toml:1:1: bad"});
    return std::string("/etc/moat/cfg.toml");
  }
  MethodResult<std::vector<Flow>> flows() override {
    std::vector<Flow> v;
    for (uint64_t i = 0; i < 30; ++i) {
      Flow f;
      f.id = 100 - i;  // unsorted on purpose
      f.proto = "tcp";
      f.guest = Ipv4Addr::from_octets(100, 96, 0, 2);
      f.guest_port = uint16_t(40000 + i);
      f.remote = i % 2 ? IpAddr(Ipv4Addr::from_octets(44, 1, 1, 1)) : IpAddr(*Ipv6Addr::parse("2001:db8::1"));
      f.remote_port = i % 3 ? 443 : 80;
      f.name = i % 5 ? "" : "api.example.com";
      f.name_src = f.name.empty() ? "none" : "sni";
      f.path = "fast";
      f.bytes_from_guest = i;
      f.age_ms = 1500;
      v.push_back(f);
    }
    return v;
  }
};

struct LiveDispatcherTest : ::testing::Test {
  LiveBackend b;
  Dispatcher d{b};
  Json call(std::string_view req) {
    Json j = Json::parse(d.handle(req), nullptr, false);
    EXPECT_FALSE(j.is_discarded());
    return j;
  }
};

TEST_F(LiveDispatcherTest, FlowsAreSortedFilteredAndBounded) {
  Json r = call(R"({"id":1,"method":"flows"})")["result"];
  ASSERT_EQ(r["flows"].size(), 30u);
  EXPECT_EQ(r["total"], 30);
  EXPECT_EQ(r["truncated"], false);
  EXPECT_EQ(r["flows"][0]["id"], 71);
  EXPECT_EQ(r["flows"][0]["guest"], "100.96.0.2:40029");
  EXPECT_EQ(r["flows"][0]["remote"], "44.1.1.1:443");
  EXPECT_EQ(r["flows"][0]["dir"], "egress");
  EXPECT_EQ(r["flows"][0]["age_s"], 1.5);
  EXPECT_TRUE(r["flows"][0]["name"].is_null());
  r = call(R"({"id":1,"method":"flows","params":{"dst":"[2001:db8::1]:80"}})")["result"];
  ASSERT_FALSE(r["flows"].empty());
  for (const auto& f : r["flows"]) EXPECT_EQ(f["remote"], "[2001:db8::1]:80");
  r = call(R"({"id":1,"method":"flows","params":{"dst":"44.1.1.1"}})")["result"];
  EXPECT_EQ(r["total"], 15);
  r = call(R"({"id":1,"method":"flows","params":{"name":"API.example.com.","proto":"tcp"}})")["result"];
  EXPECT_EQ(r["total"], 6);
  for (const auto& f : r["flows"]) EXPECT_EQ(f["name_src"], "sni");
  r = call(R"({"id":1,"method":"flows","params":{"proto":"udp"}})")["result"];
  EXPECT_EQ(r["total"], 0);
  r = call(R"({"id":1,"method":"flows","params":{"limit":5}})")["result"];
  EXPECT_EQ(r["flows"].size(), 5u);
  EXPECT_EQ(r["total"], 30);
  EXPECT_EQ(r["truncated"], true);
  for (const char* bad : {R"({"limit":0})", R"({"limit":10001})", R"({"limit":"5"})", R"({"proto":"sctp"})",
                          R"({"dst":"nowhere"})", R"({"dst":"1.2.3.4:99999"})", R"({"name":"a b"})", R"({"x":1})"}) {
    SCOPED_TRACE(bad);
    Json e = call(std::string(R"({"id":1,"method":"flows","params":)") + bad + "}");
    ASSERT_TRUE(e.contains("error"));
    EXPECT_EQ(e["error"]["code"], "invalid_params");
  }
}

TEST_F(LiveDispatcherTest, MetricsAndReload) {
  Json r = call(R"({"id":1,"method":"metrics"})")["result"];
  EXPECT_EQ(r["format"], "prometheus-text-0.0.4");
  EXPECT_EQ(r["text"], "# HELP x y\n# TYPE x gauge\nx 1\n");
  EXPECT_EQ(call(R"({"id":1,"method":"metrics","params":{"a":1}})")["error"]["code"], "invalid_params");
  r = call(R"({"id":2,"method":"policy.reload"})")["result"];
  EXPECT_EQ(r["file"], "/etc/moat/cfg.toml");
  ASSERT_EQ(b.changes.size(), 1u);
  EXPECT_EQ(b.changes[0], "policy.reload /etc/moat/cfg.toml");
  EXPECT_EQ(call(R"({"id":3,"method":"policy.reload","params":{"revalidate":true}})")["error"]["code"], "invalid_params");
  b.reload_fails = true;
  EXPECT_EQ(call(R"({"id":4,"method":"policy.reload"})")["error"]["code"], "invalid_config");
  EXPECT_EQ(b.changes.size(), 1u);  // no config_change for a failed reload
}
}  // namespace
}  // namespace moat::control
