#include "config/loader.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace moat::config {
namespace {

std::vector<std::string> errors(std::string_view text, Format fmt = Format::toml, Config* out = nullptr) {
  Config c;
  auto r = load_config_text(text, fmt, "a.toml", out != nullptr ? *out : c);
  std::vector<std::string> v;
  if (!r)
    for (const auto& e : r.error()) v.push_back(e.format());
  return v;
}

std::string one_error(std::string_view text, Format fmt = Format::toml) {
  auto v = errors(text, fmt);
  EXPECT_EQ(v.size(), 1u) << ::testing::PrintToString(v);
  return v.empty() ? "" : v[0];
}

TEST(ConfigLoader, EmptyFileKeepsDefaults) {
  Config c;
  c.name = "keep";
  EXPECT_TRUE(errors("", Format::toml, &c).empty());
  EXPECT_EQ(c.name, "keep");
  EXPECT_TRUE(errors("{}", Format::json, &c).empty());
}

TEST(ConfigLoader, Schema) {
  EXPECT_TRUE(errors("schema = 1\n").empty());
  EXPECT_EQ(one_error("schema = 2\n"), "moat: error: a.toml:1:10: schema: unsupported schema 2 (this moat supports 1)");
  EXPECT_EQ(one_error("{\"schema\": 2}", Format::json),
            "moat: error: a.toml:1:12: schema: unsupported schema 2 (this moat supports 1)");
  EXPECT_EQ(one_error("schema = \"1\"\n"), "moat: error: a.toml:1:10: schema: expected an integer, got a string");
}

TEST(ConfigLoader, Hardening) {
  Config c;
  EXPECT_EQ(c.hardening.seccomp, HardeningConfig::Seccomp::on);
  EXPECT_EQ(c.hardening.runas, "nobody");
  EXPECT_TRUE(errors("[hardening]\nseccomp = \"log\"\nrunas = \"daemon:adm\"\n", Format::toml, &c).empty());
  EXPECT_EQ(c.hardening.seccomp, HardeningConfig::Seccomp::log);
  EXPECT_EQ(c.hardening.runas, "daemon:adm");
  EXPECT_TRUE(errors("{\"hardening\": {\"seccomp\": \"off\", \"runas\": \"65534\"}}", Format::json, &c).empty());
  EXPECT_EQ(c.hardening.seccomp, HardeningConfig::Seccomp::off);
  EXPECT_EQ(c.hardening.runas, "65534");
  EXPECT_NE(one_error("[hardening]\nseccomp = \"maybe\"\n").find("is not one of on, log, off"), std::string::npos);
  for (const char* bad : {"", ":g", "u:", "a:b:c", "we ird", "x\\ny"})
    EXPECT_NE(one_error(std::string("[hardening]\nrunas = \"") + bad + "\"\n").find("is not a user[:group]"),
              std::string::npos)
        << bad;
}

TEST(ConfigLoader, TomlSyntaxError) {
  auto e = one_error("[dns]\nrebind_protection true\n");
  EXPECT_EQ(e.rfind("moat: error: a.toml:2:", 0), 0u) << e;
}

// toml++ 3.3.0 has undefined behaviour on non-ASCII where it looks for whitespace
// (toml_reader.cc replaces that function; found by fuzz/config_loader). UBSan checks this.
TEST(ConfigLoader, TomlNonAscii) {
  Config c;
  EXPECT_TRUE(errors("# caf\u00e9\n[gateway] # \u00e9\nname = \"x\"\n[audit]\nfile = \"/tmp/caf\u00e9.jsonl\"\n",
                     Format::toml, &c)
                  .empty());
  EXPECT_EQ(c.audit.file, "/tmp/caf\u00e9.jsonl");
  for (const char* t : {"[dns]\nrebind_protection = true\u00b7\n", "a = 1\u00e9\n", "a\u00e9 = 1\n", "a =\u3000\u00e91\n",
                        "timeout = 34e\"\"\"\"\"\"\"\"9{\"\u0256\n"})
    EXPECT_EQ(one_error(t).rfind("moat: error: a.toml:", 0), 0u) << t;
}

TEST(ConfigLoader, JsonSyntaxErrorHasLineAndColumn) {
  auto e = one_error("{\n  \"dns\": {\n    \"timeout\": \"2s\",,\n  }\n}", Format::json);
  EXPECT_EQ(e.rfind("moat: error: a.toml:3:", 0), 0u) << e;
}

TEST(ConfigLoader, UnknownKeyWithSuggestion) {
  EXPECT_EQ(one_error("schema = 1\n[dns]\nrebind_protecton = true\n"),
            "moat: error: a.toml:3:1: dns.rebind_protecton: unknown key; did you mean \"rebind_protection\"?");
  EXPECT_EQ(one_error("{\"dns\": {\"rebind_protecton\": true}}", Format::json),
            "moat: error: a.toml:1:10: dns.rebind_protecton: unknown key; did you mean \"rebind_protection\"?");
  EXPECT_EQ(one_error("zzzzzzzz = 1\n"), "moat: error: a.toml:1:1: zzzzzzzz: unknown key");
}

TEST(ConfigLoader, DuplicateKeys) {
  auto t = one_error("[dns]\ntimeout = \"1s\"\ntimeout = \"2s\"\n");
  EXPECT_EQ(t.rfind("moat: error: a.toml:3:", 0), 0u) << t;
  EXPECT_EQ(one_error("{\"dns\": {\"timeout\": \"1s\",\n \"timeout\": \"2s\"}}", Format::json),
            "moat: error: a.toml:2:2: dns.timeout: duplicate key");
}

TEST(ConfigLoader, JsonDuplicateKeysNameTheFullPathAndDeepNestingIsRefused) {
  EXPECT_EQ(one_error("{\"policy\": {\"rules\": [\"allow@dns\", {\"action\": \"allow\", \"action\": \"deny\"}]}}",
                      Format::json),
            "moat: error: a.toml:1:56: policy.rules[1].action: duplicate key");
  std::string deep(100, '[');
  EXPECT_EQ(one_error("{\"x\": " + deep + std::string(100, ']') + "}", Format::json),
            "moat: error: a.toml:1:70: nesting deeper than 64 levels");
}

TEST(ConfigLoader, WrongTypes) {
  EXPECT_EQ(one_error("[dns]\nrebind_protection = \"yes\"\n"),
            "moat: error: a.toml:2:21: dns.rebind_protection: expected a boolean, got a string");
  EXPECT_EQ(one_error("[limits]\nmax_flows = 1.5\n"),
            "moat: error: a.toml:2:13: limits.max_flows: expected an integer, got a float");
  EXPECT_EQ(one_error("dns = 3\n"), "moat: error: a.toml:1:7: dns: expected a table, got an integer");
  EXPECT_EQ(one_error("{\"dns\": {\"block\": null}}", Format::json),
            "moat: error: a.toml:1:19: dns.block: expected an array, got null");
}

TEST(ConfigLoader, DurationsNeedUnits) {
  EXPECT_EQ(one_error("[tcp]\nconnect_timeout = \"30\"\n"),
            "moat: error: a.toml:2:19: tcp.connect_timeout: \"30\" needs a unit (e.g. \"30s\")");
  EXPECT_EQ(one_error("[tcp]\nconnect_timeout = 30\n"),
            "moat: error: a.toml:2:19: tcp.connect_timeout: \"30\" needs a unit (e.g. \"30s\")");
  EXPECT_EQ(one_error("[tcp]\nconnect_timeout = \"soon\"\n"),
            "moat: error: a.toml:2:19: tcp.connect_timeout: \"soon\" is not a duration; write e.g. \"30s\", "
            "\"500ms\", \"10m\" or \"2h\"");
  Config c;
  EXPECT_TRUE(errors("[tcp]\nconnect_timeout = \"45s\"\n", Format::toml, &c).empty());
  EXPECT_EQ(c.flows.connect_timeout, std::chrono::seconds(45));
}

TEST(ConfigLoader, Ranges) {
  EXPECT_EQ(one_error("[tcp]\nconnect_timeout = \"11m\"\n"),
            "moat: error: a.toml:2:19: tcp.connect_timeout: \"11m\" is out of range; expected 1s-10m");
  EXPECT_EQ(one_error("[policy]\nfirst_flight_timeout = \"10ms\"\n"),
            "moat: error: a.toml:2:24: policy.first_flight_timeout: \"10ms\" is out of range; expected 50ms-30s");
  EXPECT_EQ(one_error("[udp]\nmax_sessions = 20000\n"),
            "moat: error: a.toml:2:16: udp.max_sessions: 20000 is out of range; expected 1-16384");
  EXPECT_EQ(one_error("[limits]\nmax_flows = 0\n"),
            "moat: error: a.toml:2:13: limits.max_flows: 0 is out of range; expected 1-65536");
  EXPECT_EQ(one_error("[net.ipv6]\nprefix = 48\n"),
            "moat: error: a.toml:2:10: net.ipv6.prefix: 48 is out of range; expected 64");
}

TEST(ConfigLoader, ADottedKeyIsNotANestedOne) {
  EXPECT_EQ(one_error("\"net.mtu\" = 1500\n"), "moat: error: a.toml:1:1: net.mtu: unknown key");
  EXPECT_EQ(one_error("{\"net\": {\"ipv4.prefix\": 24}}", Format::json),
            "moat: error: a.toml:1:10: net.ipv4.prefix: unknown key");
}

TEST(ConfigLoader, UnsupportedKeysFailClosed) {
  EXPECT_EQ(one_error("[secrets]\non_violation = \"block\"\n"),
            "moat: error: a.toml:1:2: secrets: not supported by this moat build; secret injection is not implemented; "
            "remove the [secrets] table");
  EXPECT_EQ(one_error("[tcp]\nidle_timeout = \"2h\"\n"),
            "moat: error: a.toml:2:1: tcp.idle_timeout: not supported by this moat build; TCP timeouts other than "
            "connect_timeout are fixed in this build");
  EXPECT_EQ(one_error("[gateway]\ndeployment = \"multi-tenant\"\n"),
            "moat: error: a.toml:2:14: gateway.deployment: multi-tenant deployment is not supported by this moat build");
}

TEST(ConfigLoader, TlsTable) {
  Config c;
  auto r = load_config_text(
      "[tls]\nintercept = true\nports = [443, 8443]\nbypass = [\"Pinned.Example.\", \"*.bank.test\"]\n"
      "ca = \"ephemeral\"\nleaf_validity = \"12h\"\nleaf_cache = 50\nextra_ca = [\"corp.pem\"]\n"
      "host_ca = [{ hosts = [\"*.corp.example\", \"vault\"], file = \"/etc/corp.pem\" }]\n"
      "no_verify = [\"*\"]\nupstream_min_version = \"1.3\"\nblock_quic = false\nnon_tls = \"reject\"\n"
      "upstream_error = \"alert\"\nhandshake_timeout = \"3s\"\nkeylog_file = \"/tmp/k.log\"\n"
      "[run]\nca_trust = \"env\"\n",
      Format::toml, "/etc/moat/a.toml", c);
  ASSERT_TRUE(r) << r.error().front().format();
  EXPECT_TRUE(c.tls.intercept);
  EXPECT_TRUE(c.tls.intercept_set);
  EXPECT_EQ(c.tls.ports, (std::vector<uint16_t>{443, 8443}));
  EXPECT_EQ(c.tls.bypass, (std::vector<std::string>{"pinned.example", "*.bank.test"}));
  EXPECT_EQ(c.tls.ca, TlsConfig::CaMode::ephemeral);
  EXPECT_EQ(c.tls.leaf_validity, std::chrono::hours(12));
  EXPECT_EQ(c.tls.leaf_cache, 50u);
  EXPECT_EQ(c.tls.extra_ca, (std::vector<std::string>{"/etc/moat/corp.pem"}));
  ASSERT_EQ(c.tls.host_ca.size(), 1u);
  EXPECT_EQ(c.tls.host_ca[0].hosts, (std::vector<std::string>{"*.corp.example", "vault"}));
  EXPECT_EQ(c.tls.host_ca[0].file, "/etc/corp.pem");
  EXPECT_EQ(c.tls.no_verify, (std::vector<std::string>{"*"}));
  EXPECT_EQ(c.tls.upstream_min_version, TlsConfig::MinVersion::tls13);
  EXPECT_FALSE(c.tls.block_quic);
  EXPECT_EQ(c.tls.non_tls, TlsConfig::NonTls::reject);
  EXPECT_EQ(c.tls.upstream_error, TlsConfig::UpstreamError::alert);
  EXPECT_EQ(c.tls.handshake_timeout, std::chrono::seconds(3));
  EXPECT_EQ(c.tls.keylog_file, "/tmp/k.log");
  EXPECT_EQ(c.run.ca_trust, RunConfig::CaTrust::env);

  EXPECT_EQ(one_error("[tls]\nports = [70000]\n"), "moat: error: a.toml:2:10: tls.ports[0]: \"70000\" is not a port; expected 1-65535");
  EXPECT_EQ(one_error("[tls]\nno_verify = [\"a.*.b\"]\n"),
            "moat: error: a.toml:2:14: tls.no_verify[0]: \"a.*.b\" is not a host pattern; write NAME, *.SUFFIX or *");
  EXPECT_EQ(one_error("[tls]\nhost_ca = [{ hosts = [], file = \"x.pem\" }]\n"),
            "moat: error: a.toml:2:22: tls.host_ca[0].hosts: is empty; list at least one NAME, *.SUFFIX or *");
  EXPECT_EQ(one_error("[tls]\nhost_ca = [{ hosts = [\"a\"], file = \"x.pem\", mode = 1 }]\n"),
            "moat: error: a.toml:2:45: tls.host_ca[0].mode: unknown key; a tls.host_ca entry has `hosts` and `file`");
}

TEST(ConfigLoader, LimitsStopAtTheirHardCaps) {
  // R-LIM-1: each limit up to its cap, an error above it.
  EXPECT_EQ(one_error("[dns]\nmax_inflight = 4097\n"),
            "moat: error: a.toml:2:16: dns.max_inflight: 4097 is out of range; expected 1-4096");
  EXPECT_EQ(one_error("[dns]\nmax_pins = 1048577\n"),
            "moat: error: a.toml:2:12: dns.max_pins: 1048577 is out of range; expected 1-1048576");
  Config c;
  ASSERT_TRUE(load_config_text("[dns]\nmax_inflight = 4096\nmax_pins = 1048576\n", Format::toml, "a.toml", c));
  EXPECT_EQ(c.dns.max_inflight, 4096u);
  EXPECT_EQ(c.dns.max_pins, 1048576u);
}

TEST(ConfigLoader, ErrorsAreCollectedUpToTwenty) {
  std::string t = "[dns]\n";
  for (int i = 0; i < 30; ++i) t.append("k").append(std::to_string(i)).append("xxxxxxxxxx = 1\n");
  EXPECT_EQ(errors(t).size(), 20u);
  EXPECT_EQ(errors("[dns]\ntimeout = 1\ndeadline = 2\n[udp]\nmax_sessions = 0\n").size(), 3u);
}

TEST(ConfigLoader, ErrorLeavesConfigUnchanged) {
  Config c;
  auto r = load_config_text("[gateway]\nname = \"x\"\n[tcp]\nconnect_timeout = 5\n", Format::toml, "a.toml", c);
  EXPECT_FALSE(r);
  EXPECT_EQ(c.name, "");
}

TEST(ConfigLoader, RuleStringErrors) {
  EXPECT_EQ(one_error("[policy]\nrules = [\n  \"allow@dns\",\n  \"allow@10.1.2.0/8\",\n]\n"),
            "moat: error: a.toml:4:3: policy.rules[1]: 10.1.2.0/8 has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(one_error("[policy]\nrules = [\"allow@host:443\"]\n"),
            "moat: error: a.toml:2:10: policy.rules[0]: \"443\" is not a protocol; write \"allow@host:tcp:443\"");
  EXPECT_EQ(one_error("[policy]\nrules = [\"allow:ingress@any:icmp\"]\n"),
            "moat: error: a.toml:2:10: policy.rules[0]: ICMP rules must be egress");
  EXPECT_EQ(one_error("[policy]\nrules = [3]\n"),
            "moat: error: a.toml:2:10: policy.rules[0]: expected a rule string or table, got an integer");
}

TEST(ConfigLoader, RuleTablesBuildTheSameRules) {
  Config a, b;
  ASSERT_TRUE(errors("[policy]\nrules = [\"allow@10.20.0.0/16:tcp:5432+6000-6010\", \"deny:any@*.ads.example\","
                     " \"allow@[2001:db8::/32]:udp\", \"allow@group=metadata\", \"allow@any:icmp\"]\n",
                     Format::toml, &a)
                  .empty());
  ASSERT_TRUE(errors(R"([[policy.rules]]
action = "allow"
cidr = "10.20.0.0/16"
protocols = ["tcp"]
ports = [5432, "6000-6010"]
label = "ci-db"
[[policy.rules]]
action = "deny"
direction = "any"
suffix = "*.ads.example"
[[policy.rules]]
action = "allow"
cidr = "2001:db8::/32"
protocols = ["udp"]
[[policy.rules]]
action = "allow"
group = "metadata"
[[policy.rules]]
action = "allow"
any = true
protocols = ["icmp"]
)",
                     Format::toml, &b)
                  .empty());
  ASSERT_EQ(a.policy.inputs.config.size(), 5u);
  ASSERT_EQ(b.policy.inputs.config.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(a.policy.inputs.config[i].text, b.policy.inputs.config[i].text);
    EXPECT_EQ(b.policy.inputs.config[i].origin, policy::Origin::config);
  }
  EXPECT_EQ(b.policy.inputs.config[0].label, "ci-db");
  EXPECT_EQ(b.policy.inputs.config[0].text, "allow@10.20.0.0/16:tcp:5432+6000-6010");
}

TEST(ConfigLoader, RuleTableFieldErrors) {
  auto rt = [](std::string body) { return one_error("[[policy.rules]]\n" + body); };
  EXPECT_EQ(rt("cidr = \"10.0.0.0/8\"\n"),
            "moat: error: a.toml:1:1: policy.rules[0]: missing \"action\"; a rule table needs action = \"allow\" or "
            "\"deny\"");
  EXPECT_EQ(rt("action = \"allow\"\n"),
            "moat: error: a.toml:1:1: policy.rules[0]: missing a target; give one of target, cidr, domain, suffix, "
            "group, or any = true");
  EXPECT_EQ(rt("action = \"permit\"\nany = true\n"),
            "moat: error: a.toml:2:10: policy.rules[0].action: unknown action \"permit\"")
      << "the rule parser's own message";
  EXPECT_EQ(rt("action = \"allow\"\ncidr = \"10.1.2.0/8\"\n"),
            "moat: error: a.toml:3:8: policy.rules[0].cidr: 10.1.2.0/8 has host bits set; did you mean 10.0.0.0/8?");
  EXPECT_EQ(rt("action = \"allow\"\ncidr = \"10.0.0.0/8\"\ndomain = \"x.com\"\n"),
            "moat: error: a.toml:4:1: policy.rules[0].domain: \"cidr\" and \"domain\" cannot be combined; give exactly "
            "one target");
  EXPECT_EQ(rt("action = \"allow\"\ndomain = \"a b.com\"\n"),
            "moat: error: a.toml:3:10: policy.rules[0].domain: \"a b.com\": " +
                policy::normalize_name("a b.com").error().what +
                (policy::normalize_name("a b.com").error().hint.empty() ? "" : "; " + policy::normalize_name("a b.com").error().hint));
  EXPECT_EQ(rt("action = \"allow\"\nsuffix = \"com\"\n"),
            one_error("[[policy.rules]]\naction = \"allow\"\nsuffix = \"com\"\n"));
  EXPECT_EQ(rt("action = \"allow\"\ngroup = \"privat\"\n"),
            "moat: error: a.toml:3:9: policy.rules[0].group: unknown group \"privat\"; did you mean \"private\"?");
  EXPECT_EQ(rt("action = \"allow\"\nany = false\n"),
            "moat: error: a.toml:3:7: policy.rules[0].any: must be true; omit it, or give another target");
  EXPECT_EQ(rt("action = \"allow\"\nany = true\nprotocols = [\"tcpp\"]\n"),
            "moat: error: a.toml:4:13: policy.rules[0].protocols: unknown protocol \"tcpp\"; did you mean \"tcp\"?");
  EXPECT_EQ(rt("action = \"allow\"\nany = true\nprotocols = [\"tcp\"]\nports = [0]\n"),
            "moat: error: a.toml:5:10: policy.rules[0].ports[0]: 0 is not a port; ports are 1-65535");
  EXPECT_EQ(rt("action = \"allow\"\nany = true\nprotocols = [\"tcp\"]\nports = [\"90-80\"]\n"),
            "moat: error: a.toml:5:9: policy.rules[0].ports: port range \"90-80\" has low > high; write \"80-90\"");
  EXPECT_EQ(rt("action = \"allow\"\nany = true\nprotocols = [\"icmp\"]\nports = [80]\n"),
            "moat: error: a.toml:5:9: policy.rules[0].ports: ICMP rules take no ports");
  EXPECT_EQ(rt("action = \"allow\"\ndirection = \"ingress\"\nany = true\nprotocols = [\"icmp\"]\n"),
            "moat: error: a.toml:3:13: policy.rules[0].direction: ICMP rules must be egress");
  EXPECT_EQ(rt("action = \"allow\"\nany = true\nlable = \"x\"\n"),
            "moat: error: a.toml:4:1: policy.rules[0].lable: unknown key; did you mean \"label\"?");
  // A value cannot smuggle a second rule into the synthesized rule string.
  EXPECT_EQ(rt("action = \"allow\"\ndomain = \"a.com,allow@any\"\n").rfind("moat: error: a.toml:3:10: policy.rules[0].domain: ", 0), 0u);
}

TEST(ConfigLoader, ProfilesAndDefaults) {
  Config c;
  ASSERT_TRUE(errors("[policy]\nprofiles = []\ndefault_egress = \"deny\"\ndefault_ingress = \"allow\"\n"
                     "deny_response = \"drop\"\nsni_requires_pin = false\n",
                     Format::toml, &c)
                  .empty());
  ASSERT_TRUE(c.policy.inputs.config_profiles.has_value());
  EXPECT_TRUE(c.policy.inputs.config_profiles->empty());
  EXPECT_EQ(c.policy.inputs.config_default_egress, policy::Action::deny);
  EXPECT_EQ(c.policy.deny_response, DenyResponse::drop);
  EXPECT_FALSE(c.policy.inputs.sni_requires_pin);
  EXPECT_EQ(one_error("[policy]\nprofiles = [\"all\", \"public\"]\n"),
            "moat: error: a.toml:2:12: policy.profiles: \"all\" cannot be combined with \"public\"");
  EXPECT_EQ(one_error("[policy]\ndefault_egress = \"alow\"\n"),
            "moat: error: a.toml:2:18: policy.default_egress: \"alow\" is not one of allow, deny");
}

TEST(ConfigLoader, PublishStringsAndTables) {
  Config c;
  ASSERT_TRUE(errors("publish = [\"8080:80\", {proto = \"udp\", bind = \"::1\", host_port = 5353, guest_port = 53}]\n",
                     Format::toml, &c)
                  .empty());
  ASSERT_EQ(c.flows.publish.size(), 2u);
  EXPECT_EQ(c.flows.publish[0].host_port, 8080);
  EXPECT_EQ(c.flows.publish[1].proto, Proto::udp);
  EXPECT_EQ(c.flows.publish[1].bind, *IpAddr::parse("::1"));
  EXPECT_EQ(c.flows.publish[1].guest_port, 53);
  EXPECT_EQ(one_error("[[publish]]\nhost_port = 1\n"), "moat: error: a.toml:1:1: publish[0]: missing \"guest_port\"");
  EXPECT_EQ(one_error("[[publish]]\nhost_port = 1\nguest_port = 2\nsplice = true\n"),
            "moat: error: a.toml:4:1: publish[0].splice: not supported by this moat build; splice is not configurable "
            "in this build");
}

TEST(ConfigLoader, PathsAreRelativeToTheFile) {
  Config c;
  auto r = load_config_text("[audit]\nfile = \"audit.jsonl\"\n[pcap]\nfile = \"/tmp/x.pcap\"\n[dns]\nblock_files = "
                            "[\"ads.txt\"]\n",
                            Format::toml, "/etc/moat/a.toml", c);
  ASSERT_TRUE(r);
  EXPECT_EQ(c.audit.file, "/etc/moat/audit.jsonl");
  EXPECT_EQ(c.pcap_file, "/tmp/x.pcap");
  EXPECT_EQ(c.dns.block_files, std::vector<std::string>{"/etc/moat/ads.txt"});
}

TEST(ConfigLoader, DnsSection) {
  Config c;
  ASSERT_TRUE(errors(R"([dns]
upstreams = ["127.0.0.1:5353", "tcp://[::1]:53"]
timeout = "1s"
deadline = "3s"
rebind_protection = false
block = ["Ads.Example.", "*.tracker.example"]
hosts = { "db.internal" = ["10.0.0.5"], "one.internal" = "fd00::1" }
direct_queries = "deny"
)",
                     Format::toml, &c)
                  .empty());
  ASSERT_EQ(c.flows.dns_upstreams.size(), 2u);
  EXPECT_EQ(c.flows.dns_upstreams[0].port, 5353);
  EXPECT_TRUE(c.flows.dns_upstreams[1].tcp);
  EXPECT_EQ(c.dns.block, (std::vector<std::string>{"ads.example", "*.tracker.example"}));
  ASSERT_EQ(c.dns.hosts.size(), 2u);
  EXPECT_EQ(c.dns.hosts[0].first, "db.internal");
  EXPECT_EQ(c.dns.direct_queries, DirectQueries::deny);
  EXPECT_FALSE(c.dns.rebind_protection);
  EXPECT_EQ(one_error("[dns]\nupstreams = [\"ftp://1.2.3.4\"]\n").substr(0, 50),
            "moat: error: a.toml:2:14: dns.upstreams[0]: \"ftp:/");
}

// The same settings written as TOML and as JSON give the same Config.
TEST(ConfigLoader, TomlAndJsonAgree) {
  const char* toml = R"(schema = 1
[gateway]
name = "agent-7"
[net]
mtu = 1500
ifname = "eth1"
search_domains = ["corp.example"]
[net.ipv4]
address = "10.9.0.2"
prefix = 24
gateway = "10.9.0.1"
dhcp = false
[net.ipv6]
enable = "off"
[tcp]
connect_timeout = "5s"
[limits]
max_flows = 100
[icmp]
relay = false
[policy]
profiles = ["public", "host"]
rules = ["allow@*.github.com:tcp:443", { action = "deny", cidr = "10.0.0.0/8", label = "lan" }]
default_ingress = "deny"
[audit]
file = "-"
dns = "all"
[log]
level = "debug"
)";
  const char* json = R"({"schema": 1,
 "gateway": {"name": "agent-7"},
 "net": {"mtu": 1500, "ifname": "eth1", "search_domains": ["corp.example"],
         "ipv4": {"address": "10.9.0.2", "prefix": 24, "gateway": "10.9.0.1", "dhcp": false},
         "ipv6": {"enable": "off"}},
 "tcp": {"connect_timeout": "5s"},
 "limits": {"max_flows": 100},
 "icmp": {"relay": false},
 "policy": {"profiles": ["public", "host"],
            "rules": ["allow@*.github.com:tcp:443", {"action": "deny", "cidr": "10.0.0.0/8", "label": "lan"}],
            "default_ingress": "deny"},
 "audit": {"file": "-", "dns": "all"},
 "log": {"level": "debug"}
})";
  Config a, b;
  ASSERT_TRUE(errors(toml, Format::toml, &a).empty());
  ASSERT_TRUE(errors(json, Format::json, &b).empty()) << ::testing::PrintToString(errors(json, Format::json));
  EXPECT_EQ(a.name, "agent-7");
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.net.mtu, 1500u);
  EXPECT_EQ(a.net.mtu, b.net.mtu);
  EXPECT_EQ(a.net.ifname, b.net.ifname);
  EXPECT_EQ(a.net.search_domains, b.net.search_domains);
  EXPECT_EQ(a.net.ipv4_address, b.net.ipv4_address);
  EXPECT_EQ(a.net.ipv4_prefix, 24);
  EXPECT_EQ(a.net.ipv4_prefix, b.net.ipv4_prefix);
  EXPECT_EQ(a.net.ipv4_gateway, b.net.ipv4_gateway);
  EXPECT_EQ(a.net.dhcp4, b.net.dhcp4);
  EXPECT_EQ(a.net.ipv6_enable, FamilyMode::off);
  EXPECT_EQ(a.net.ipv6_enable, b.net.ipv6_enable);
  EXPECT_EQ(a.flows.connect_timeout, b.flows.connect_timeout);
  EXPECT_EQ(a.flows.max_flows, b.flows.max_flows);
  EXPECT_EQ(a.flows.icmp_relay, b.flows.icmp_relay);
  EXPECT_EQ(a.policy.inputs.config_profiles, b.policy.inputs.config_profiles);
  EXPECT_EQ(a.policy.inputs.config_default_ingress, b.policy.inputs.config_default_ingress);
  ASSERT_EQ(a.policy.inputs.config.size(), 2u);
  ASSERT_EQ(b.policy.inputs.config.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(a.policy.inputs.config[i].text, b.policy.inputs.config[i].text);
    EXPECT_EQ(a.policy.inputs.config[i].label, b.policy.inputs.config[i].label);
  }
  EXPECT_EQ(a.audit.file, b.audit.file);
  EXPECT_EQ(a.audit.dns, b.audit.dns);
  EXPECT_EQ(a.log_level, LogLevel::debug);
  EXPECT_EQ(a.log_level, b.log_level);
}

// --- bad input (issue 14) ------------------------------------------------------------

TEST(ConfigLoader, MtuZeroIsRefused) {
  // 0 used to mean "the transport's default"; the default is now only the absence of the key.
  EXPECT_EQ(one_error("[net]\nmtu = 0\n"), "moat: error: a.toml:2:7: net.mtu: 0 is out of range; expected 576-65520");
  EXPECT_EQ(one_error("{\"net\": {\"mtu\": 0}}", Format::json),
            "moat: error: a.toml:1:17: net.mtu: 0 is out of range; expected 576-65520");
  EXPECT_EQ(one_error("[net]\nmtu = -1500\n"),
            "moat: error: a.toml:2:7: net.mtu: -1500 is out of range; expected 576-65520");
}

TEST(ConfigLoader, HostnameMustBeADnsHostname) {
  Config c;
  EXPECT_TRUE(errors("[net]\nhostname = \"box-1.example\"\n", Format::toml, &c).empty());
  EXPECT_EQ(c.net.hostname, "box-1.example");
  EXPECT_EQ(one_error("[net]\nhostname = \"\"\n").rfind("moat: error: a.toml:2:12: net.hostname: empty hostname;", 0), 0u);
  EXPECT_EQ(one_error("[net]\nhostname = \"a\\nb\"\n").rfind(
                "moat: error: a.toml:2:12: net.hostname: \"a\\nb\" is not a valid hostname;", 0),
            0u);
  EXPECT_NE(one_error("[net]\nhostname = \"" + std::string(300, 'a') + "\"\n").find("is longer than 253 bytes"),
            std::string::npos);
  EXPECT_NE(one_error("[net]\nhostname = \"" + std::string(64, 'a') + ".b\"\n").find("label longer than 63"),
            std::string::npos);
  EXPECT_NE(one_error("[net]\nhostname = \"a_b\"\n").find("is not a valid hostname"), std::string::npos);
  EXPECT_NE(one_error("[net]\nhostname = \"-a\"\n").find("starts or ends with '-'"), std::string::npos);
  EXPECT_NE(one_error("[net]\nhostname = \"a..b\"\n").find("empty label"), std::string::npos);
}

TEST(ConfigLoader, LongAndMultiLineValuesAreQuotedBoundedOnOneLine) {
  const std::string big(100000, 'x');
  auto e = one_error("[gateway]\nname = \"" + big + "\"\n");
  EXPECT_LT(e.size(), 300u) << e.size();
  EXPECT_NE(e.find("\xe2\x80\xa6 (100000 bytes) is not a valid gateway name"), std::string::npos) << e;
  auto nl = one_error("[audit]\nevents = [\"flow_open\\nmoat: error: forged\"]\n");
  EXPECT_EQ(nl.find('\n'), std::string::npos) << nl;
  EXPECT_NE(nl.find("\"flow_open\\nmoat: error: forged\" is not an audit event"), std::string::npos) << nl;
  // An unknown key is the user's text too.
  auto k = one_error("[net]\n\"" + std::string(5000, 'k') + "\" = 1\n");
  EXPECT_LT(k.size(), 1200u);
}

TEST(ConfigLoader, JsonErrorsCarryNoExceptionInternals) {
  auto overflow = one_error("{\"net\": {\"mtu\": 1e999}}", Format::json);
  EXPECT_EQ(overflow.find("json.exception"), std::string::npos) << overflow;
  EXPECT_EQ(overflow, "moat: error: a.toml:1:22: number '1e999' is out of range");
  auto syntax = one_error("{\"net\": {\"mtu\": 1500,}}", Format::json);
  EXPECT_EQ(syntax, "moat: error: a.toml:1:22: while parsing object key - unexpected '}'; expected string literal");
  auto utf8 = one_error("{\"net\": {\"hostname\": \"a\xff\"}}", Format::json);
  EXPECT_EQ(utf8.find("json.exception"), std::string::npos) << utf8;
  EXPECT_NE(utf8.find("\\xff"), std::string::npos) << utf8;
  // An unterminated 100 KB string: nlohmann's "last read" is the whole token.
  auto open_str = one_error("{\"a\": \"" + std::string(100000, 'q'), Format::json);
  EXPECT_LT(open_str.size(), 300u) << open_str.size();
}

TEST(ConfigLoader, FileErrors) {
  Config c;
  auto r = load_config_file("/nonexistent/moat/a.toml", c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error()[0].format(), "moat: error: /nonexistent/moat/a.toml: cannot open: No such file or directory");
  EXPECT_EQ(format_for_path("x.json"), Format::json);
  EXPECT_EQ(format_for_path("x.toml"), Format::toml);
  EXPECT_EQ(format_for_path("json"), Format::toml);
}

}  // namespace
}  // namespace moat::config
