// The schema (config/settings.h): one description per setting, and the flag and the key of
// a setting refusing the same bad value with the same message body.
#include "config/settings.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "config/loader.h"

namespace moat::config {
namespace {

/// `key = value` as a TOML document (`a.b.c` → `[a.b]\nc = value`).
/// (Built by appends: chained `+` trips g++ 12's -Wrestrict false positive at -O3.)
std::string toml_for(std::string_view key, const std::string& value) {
  std::string out;
  auto dot = key.rfind('.');
  if (dot != std::string_view::npos) {
    out += '[';
    out += key.substr(0, dot);
    out += "]\n";
    key.remove_prefix(dot + 1);
  }
  out += key;
  out += " = ";
  out += value;
  out += '\n';
  return out;
}

/// The one error `value` for `key` produces in a file, or nullopt.
std::optional<UserError> key_error(std::string_view key, const std::string& value) {
  Config c;
  auto r = load_config_text(toml_for(key, value), Format::toml, "a.toml", c);
  if (r) return std::nullopt;
  EXPECT_EQ(r.error().size(), 1u) << key;
  return r.error().front();
}

/// Out-of-range values of a setting as the flag and the key write them.
struct Bad {
  std::string flag_text;
  std::string key_text;
};
std::vector<Bad> out_of_range(const Setting& s) {
  std::vector<Bad> v;
  if (s.type == ValueType::integer) {
    v.push_back({std::to_string(s.hi + 1), std::to_string(s.hi + 1)});
    if (s.lo - 1 != 0 || !s.zero_ok) v.push_back({std::to_string(s.lo - 1), std::to_string(s.lo - 1)});
  } else if (s.type == ValueType::size) {
    // A bare byte count in the file, the same digits as the flag; and one with a unit.
    v.push_back({std::to_string(s.hi + 1), std::to_string(s.hi + 1)});
    // Built by appends: g++ 12 -O3 -Wrestrict misfires on "x" + std::string (Release builds).
    std::string lo = std::to_string(s.lo - 1);
    lo += 'B';
    std::string quoted = "\"";
    quoted += lo;
    quoted += '"';
    v.push_back({lo, quoted});
  } else {
    std::string hi = std::to_string(s.hi + 1) + "ms";
    v.push_back({hi, "\"" + hi + "\""});
    if (s.lo > 0) {
      std::string lo = std::to_string(s.lo - 1) + "ms";
      v.push_back({lo, "\"" + lo + "\""});
    }
  }
  return v;
}

TEST(Settings, EveryKeyAndFlagIsDescribedOnce) {
  std::set<std::string_view> keys, flags;
  for (const auto& s : settings()) {
    EXPECT_FALSE(s.key.empty() && s.flag.empty()) << s.help;
    EXPECT_FALSE(s.help.empty()) << s.key << s.flag;
    if (!s.key.empty()) {
      EXPECT_TRUE(keys.insert(s.key).second) << "key twice: " << s.key;
    }
    if (!s.flag.empty()) {
      EXPECT_TRUE(flags.insert(s.flag).second) << "flag twice: " << s.flag;
    }
    if (!s.short_flag.empty()) {
      EXPECT_TRUE(flags.insert(s.short_flag).second) << s.short_flag;
    }
    // Each type has the setter it needs.
    switch (s.type) {
      case ValueType::boolean: EXPECT_NE(s.set_bool, nullptr) << s.key; break;
      case ValueType::integer:
      case ValueType::enumeration: EXPECT_NE(s.set_int, nullptr) << s.key << s.flag; break;
      case ValueType::duration: EXPECT_NE(s.set_duration, nullptr) << s.key; break;
      case ValueType::size: EXPECT_NE(s.set_int, nullptr) << s.key; break;
      case ValueType::list:
      case ValueType::path_list:
        EXPECT_NE(s.clear, nullptr) << s.key;
        EXPECT_NE(s.set_text, nullptr) << s.key;
        break;
      case ValueType::text:
      case ValueType::path: EXPECT_NE(s.set_text, nullptr) << s.key << s.flag; break;
      case ValueType::custom: EXPECT_TRUE(s.flag.empty() || s.set_text != nullptr) << s.key; break;
      case ValueType::unsupported: EXPECT_TRUE(s.flag.empty()) << s.key; break;
    }
    if (s.type == ValueType::integer || s.type == ValueType::duration || s.type == ValueType::size) {
      EXPECT_LE(s.lo, s.hi) << s.key;
    }
    if (!s.flag.empty() && s.value_name.empty()) {  // a switch stands for a value of its type
      EXPECT_FALSE(s.flag_value.empty() && s.type != ValueType::text) << s.flag;
    }
  }
}

TEST(Settings, FlagAndKeyRefuseTheSameOutOfRangeValueAlike) {
  size_t checked = 0;
  for (const auto& s : settings()) {
    if (s.type != ValueType::integer && s.type != ValueType::duration && s.type != ValueType::size) continue;
    if (s.key.empty()) continue;  // command-line only (--ready-fd): no file form to compare
    for (const auto& bad : out_of_range(s)) {
      auto file = key_error(s.key, bad.key_text);
      ASSERT_TRUE(file) << s.key << " accepted " << bad.key_text;
      EXPECT_EQ(file->where, "a.toml:2:" + std::to_string(s.key.substr(s.key.rfind('.') + 1).size() + 4) + ": " +
                                 std::string(s.key))
          << s.key;
      if (s.flag.empty()) continue;
      Config c;
      FlagState st;
      auto flag = apply_flag(s, c, bad.flag_text, st);
      ASSERT_TRUE(flag) << s.flag << " accepted " << bad.flag_text;
      EXPECT_EQ(flag->what, file->what) << s.flag << " vs " << s.key;
      EXPECT_EQ(flag->hint, file->hint) << s.flag << " vs " << s.key;
      EXPECT_EQ(flag->hint, range_text(s));
      ++checked;
    }
  }
  EXPECT_GE(checked, 10u);  // mtu, max-flows, connect/dns/first-flight timeouts, both ends
}

TEST(Settings, FlagAndKeyShareTheirOtherMessages) {
  struct Case {
    std::string_view key;
    std::string key_text, flag_text;
  };
  const Case cases[] = {
      {"net.ipv4.enable", "\"maybe\"", "maybe"},      {"log.level", "\"loud\"", "loud"},
      {"net.guest_mac", "\"zz\"", "zz"},              {"net.ipv4.gateway", "\"300.1.1.1\"", "300.1.1.1"},
      {"dns.timeout", "\"30\"", "30"},                {"dns.timeout", "\"soon\"", "soon"},
      {"gateway.name", "\"a b\"", "a b"},             {"net.ifname", "\"0123456789abcdef\"", "0123456789abcdef"},
      {"net.hostname", "\"a..b\"", "a..b"},         {"net.ipv6.dhcpv6", "\"sometimes\"", "sometimes"},
      {"policy.deny_response", "\"maybe\"", "maybe"}, {"audit.dns", "\"some\"", "some"},
      {"limits.memory_budget", "\"64Mib\"", "64Mib"},   {"limits.memory_budget", "\"-1\"", "-1"},
      {"limits.memory_budget", "\"1.5GiB\"", "1.5GiB"},
  };
  for (const auto& k : cases) {
    const Setting* s = setting_by_key(k.key);
    ASSERT_NE(s, nullptr) << k.key;
    ASSERT_FALSE(s->flag.empty()) << k.key;
    auto file = key_error(k.key, k.key_text);
    ASSERT_TRUE(file) << k.key;
    Config c;
    FlagState st;
    auto flag = apply_flag(*s, c, k.flag_text, st);
    ASSERT_TRUE(flag) << s->flag;
    EXPECT_EQ(flag->what, file->what) << k.key;
    EXPECT_EQ(flag->hint, file->hint) << k.key;
  }
}

TEST(Settings, FlagValuesLandWhereTheKeysDo) {
  Config flag, file;
  FlagState st;
  ASSERT_FALSE(apply_flag(*setting_by_flag("--mtu"), flag, "1500", st));
  ASSERT_FALSE(apply_flag(*setting_by_flag("--no-dhcp"), flag, "", st));
  ASSERT_FALSE(apply_flag(*setting_by_flag("--dns-timeout"), flag, "3s", st));
  ASSERT_FALSE(apply_flag(*setting_by_flag("--no-ipv6"), flag, "", st));
  ASSERT_TRUE(load_config_text("[net]\nmtu = 1500\n[net.ipv4]\ndhcp = false\n[net.ipv6]\nenable = \"off\"\n"
                               "[dns]\ntimeout = \"3s\"\n",
                               Format::toml, "a.toml", file));
  EXPECT_EQ(flag.net.mtu, file.net.mtu);
  EXPECT_EQ(flag.net.dhcp4, file.net.dhcp4);
  EXPECT_EQ(flag.net.ipv6_enable, file.net.ipv6_enable);
  EXPECT_EQ(flag.dns.timeout, file.dns.timeout);
}

TEST(Settings, ListFlagsAppendButDnsUpstreamReplaces) {
  Config c;
  ASSERT_TRUE(load_config_text("[dns]\nupstreams = [\"10.0.0.1\"]\nblock = [\"a.example\"]\n", Format::toml,
                               "a.toml", c));
  FlagState up, block;
  ASSERT_FALSE(apply_flag(*setting_by_flag("--dns-upstream"), c, "10.0.0.2", up));
  ASSERT_FALSE(apply_flag(*setting_by_flag("--dns-upstream"), c, "10.0.0.3", up));
  ASSERT_FALSE(apply_flag(*setting_by_flag("--dns-block"), c, "B.example", block));
  ASSERT_EQ(c.flows.dns_upstreams.size(), 2u);
  EXPECT_EQ(c.flows.dns_upstreams[0].addr.to_string(), "10.0.0.2");
  EXPECT_EQ(c.dns.block, (std::vector<std::string>{"a.example", "b.example"}));
}

TEST(Settings, SizesTakeBytesOrAUnit) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("4096B"), 4096u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("64KB"), 64000u);
  EXPECT_EQ(parse_size("1MB"), 1000000u);
  EXPECT_EQ(parse_size("256MiB"), uint64_t{256} << 20);
  EXPECT_EQ(parse_size("16GiB"), uint64_t{16} << 30);
  EXPECT_EQ(parse_size("2GB"), 2000000000u);
  for (const char* bad : {"", "MiB", "64 MiB", "64mib", "64M", "-1", "1.5GiB", "99999999999999999999GiB",
                          "4611686018427387905"})
    EXPECT_EQ(parse_size(bad), std::nullopt) << bad;
  EXPECT_EQ(format_size(uint64_t{256} << 20), "256MiB");
  EXPECT_EQ(format_size(1000), "1000B");

  Config flag, file;
  FlagState st;
  ASSERT_FALSE(apply_flag(*setting_by_flag("--memory-budget"), flag, "64MiB", st));
  ASSERT_TRUE(load_config_text("[limits]\nmemory_budget = \"64MiB\"\nflow_buffer = 65536\n", Format::toml, "a.toml",
                               file));
  EXPECT_EQ(flag.flows.memory_budget, uint64_t{64} << 20);
  EXPECT_EQ(file.flows.memory_budget, uint64_t{64} << 20);
  EXPECT_EQ(file.flows.flow_buffer, 65536u);
  EXPECT_EQ(Config{}.flows.memory_budget, uint64_t{256} << 20);
  // SPEC R-LIM-1: the hard cap is 16 GiB; above it is an error naming the range.
  auto e = apply_flag(*setting_by_flag("--memory-budget"), flag, "17GiB", st);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->what, "\"17GiB\" is out of range");
  EXPECT_EQ(e->hint, "expected 1MiB-16GiB");
  // A long value is not echoed in full.
  e = apply_flag(*setting_by_flag("--memory-budget"), flag, std::string(100000, 'x'), st);
  ASSERT_TRUE(e);
  EXPECT_LT(e->what.size(), 100u);
  EXPECT_EQ(help_text(*setting_by_flag("--memory-budget")),
            "user-space buffer budget: 75% slows, 90% refuses new flows, 100% drops (R-LIM-2) "
            "(default 256MiB; 1MiB-16GiB)");
}

TEST(Settings, HelpCarriesTheDefaultAndTheRange) {
  EXPECT_EQ(help_text(*setting_by_flag("--max-flows")), "TCP flow limit (R-LIM-1) (default 4096; 1-65536)");
  EXPECT_EQ(help_text(*setting_by_flag("--dns-timeout")),
            "per-attempt timeout for upstream DNS queries (default 2s; 100ms-30s)");
  EXPECT_EQ(help_text(*setting_by_flag("--no-dhcp")), "do not serve DHCPv4");
  EXPECT_EQ(format_duration(std::chrono::seconds(1800)), "30m");
  EXPECT_EQ(format_duration(std::chrono::milliseconds(1500)), "1500ms");
  EXPECT_EQ(format_duration(Duration::zero()), "0s");
}

}  // namespace
}  // namespace moat::config

namespace moat::config {
namespace {

TEST(Settings, DrainTimeoutFlagAndKey) {
  const Setting& s = *setting_by_flag("--drain-timeout");
  EXPECT_EQ(s.key, "run.drain_timeout");
  Config flag;
  FlagState st;
  EXPECT_EQ(flag.run.drain_timeout, std::chrono::seconds(5));  // SPEC §4.2 default
  ASSERT_FALSE(apply_flag(s, flag, "0", st));  // a bare 0 needs no unit: reset at once
  EXPECT_EQ(flag.run.drain_timeout, Duration::zero());
  ASSERT_FALSE(apply_flag(s, flag, "250ms", st));
  EXPECT_EQ(flag.run.drain_timeout, std::chrono::milliseconds(250));
  EXPECT_TRUE(apply_flag(s, flag, "7", st));  // other bare numbers still need a unit
  EXPECT_TRUE(apply_flag(s, flag, "11m", st));
  Config file;
  ASSERT_TRUE(load_config_text("[run]\ndrain_timeout = \"2s\"\n", Format::toml, "a.toml", file));
  EXPECT_EQ(file.run.drain_timeout, std::chrono::seconds(2));
  // The rest of [run] is still refused by name, not silently accepted.
  auto r = load_config_text("[run]\nuserns = \"always\"\n", Format::toml, "a.toml", file);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().front().format().find("run.userns"), std::string::npos) << r.error().front().format();
}

}  // namespace
}  // namespace moat::config

namespace moat::config {
namespace {

TEST(Settings, ControlAndMetricsRows) {
  Config flag, file;
  FlagState st;
  ASSERT_FALSE(apply_flag(*setting_by_flag("--no-control"), flag, "", st));
  ASSERT_FALSE(apply_flag(*setting_by_flag("--control"), flag, "/run/moat/a.sock", st));
  ASSERT_FALSE(apply_flag(*setting_by_flag("--metrics"), flag, "[::1]:9464", st));
  ASSERT_TRUE(load_config_text("[control]\nenable = false\nsocket = \"/run/moat/a.sock\"\n[metrics]\nlisten = \"[::1]:9464\"\n",
                               Format::toml, "/x/a.toml", file));
  EXPECT_FALSE(flag.control.enable);
  EXPECT_EQ(flag.control.enable, file.control.enable);
  EXPECT_EQ(flag.control.socket, file.control.socket);
  EXPECT_EQ(flag.control.metrics_listen, "[::1]:9464");
  EXPECT_EQ(flag.control.metrics_listen, file.control.metrics_listen);
  EXPECT_TRUE(Config{}.control.enable);
  for (const char* bad : {"9464", "localhost:9464", "::1:9464", "127.0.0.1:70000", "127.0.0.1:"}) {
    Config c;
    auto e = apply_flag(*setting_by_flag("--metrics"), c, bad, st);
    ASSERT_TRUE(e) << bad;
    auto k = key_error("metrics.listen", std::string("\"") + bad + "\"");
    ASSERT_TRUE(k) << bad;
    EXPECT_EQ(e->what, k->what);
  }
  Config c;
  EXPECT_TRUE(apply_flag(*setting_by_flag("--control"), c, "", st));
  EXPECT_TRUE(apply_flag(*setting_by_flag("--control"), c, "/" + std::string(200, 'a'), st));
}

}  // namespace
}  // namespace moat::config
