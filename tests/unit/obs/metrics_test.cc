// The Prometheus text (R-OBS-7) and the /metrics HTTP request parser: the exposition has a
// HELP and TYPE line before every sample, counters end in _total, levels are gauges, label
// values are escaped; the parser accepts strict HTTP/1.x heads only and is bounded.
#include "obs/metrics.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>

#include "obs/metrics_http.h"

namespace moat::obs {
namespace {

TEST(Metrics, Names) {
  EXPECT_EQ(metric_name("link.from_guest.frames"), "link_from_guest_frames");
  EXPECT_EQ(metric_name("a-b c"), "a_b_c");
  EXPECT_EQ(metric_name("not_for_us"), "not_for_gateway");  // promtool: "us" reads as a unit
  EXPECT_EQ(metric_name("user_usage"), "user_usage");
  EXPECT_TRUE(is_gauge(Counter::tcp_active));
  EXPECT_TRUE(is_gauge(Counter::memory_used));
  EXPECT_FALSE(is_gauge(Counter::tcp_opened));
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Metrics, EveryCounterOnceWithHelpAndType) {
  Counters c;
  c.inc(Counter::tcp_opened, 7);
  c.set(Counter::memory_budget, 1 << 20);
  c.drop(DropReason::runt);
  const Gauge extra[] = {{"moat_policy_generation", "policy replacements", 3}, {"moat_ratio", "a ratio", 0.25}};
  const std::string text = prometheus_text("box\"1", c, extra);
  EXPECT_NE(text.find("moat_tcp_opened_total{gateway=\"box\\\"1\"} 7\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE moat_memory_budget_bytes gauge\nmoat_memory_budget_bytes{gateway=\"box\\\"1\"} 1048576\n"),
            std::string::npos);
  EXPECT_NE(text.find("moat_drop_runt_total{gateway=\"box\\\"1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moat_drop_all_total{gateway=\"box\\\"1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moat_policy_generation{gateway=\"box\\\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("moat_ratio{gateway=\"box\\\"1\"} 0.25\n"), std::string::npos);
  // Line by line: HELP, TYPE, one sample of that family; names valid and unique.
  std::istringstream in(text);
  std::string help, type, sample;
  std::set<std::string> names;
  const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  size_t families = 0;
  while (std::getline(in, help)) {
    ASSERT_TRUE(std::getline(in, type));
    ASSERT_TRUE(std::getline(in, sample));
    ASSERT_EQ(help.rfind("# HELP ", 0), 0u) << help;
    const std::string name = help.substr(7, help.find(' ', 7) - 7);
    EXPECT_TRUE(std::regex_match(name, name_re)) << name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
    ASSERT_TRUE(type == "# TYPE " + name + " counter" || type == "# TYPE " + name + " gauge") << type;
    const bool counter = type.back() == 'r';
    EXPECT_EQ(counter, name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
    EXPECT_EQ(sample.rfind(name + "{gateway=", 0), 0u) << sample;
    ++families;
  }
  EXPECT_EQ(families, kCounterCount + kDropReasonCount + 1 + 2);
}

TEST(MetricsHttp, ParsesStrictRequestHeads) {
  auto r = parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
  ASSERT_EQ(r.status, HttpRequest::Status::complete);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/metrics");
  r = parse_http_request("GET /metrics?x=1 HTTP/1.0\n\n");  // bare LF, a query
  ASSERT_EQ(r.status, HttpRequest::Status::complete);
  EXPECT_EQ(r.path, "/metrics");
  EXPECT_EQ(r.target, "/metrics?x=1");
  EXPECT_EQ(r.minor_version, 0);
  EXPECT_EQ(parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n").status, HttpRequest::Status::incomplete);
  EXPECT_EQ(parse_http_request("GET /metr").status, HttpRequest::Status::incomplete);
  for (const char* bad : {"GET  /metrics HTTP/1.1\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
                          "G(T /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", "GET /m\x01 HTTP/1.1\r\n\r\n", "HELLO\r\n\r\n",
                          "GET /metrics HTTP/1.1\r\nX: a\x01\r\n\r\n"}) {
    EXPECT_EQ(parse_http_request(bad).status, HttpRequest::Status::bad) << bad;
  }
  const std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(kMaxRequestHead, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse_http_request(huge).status, HttpRequest::Status::too_large);
  EXPECT_EQ(parse_http_request(std::string(kMaxRequestHead, 'G')).status, HttpRequest::Status::too_large);
}

TEST(MetricsHttp, Responses) {
  auto resp = [](std::string_view req) { return http_response(parse_http_request(req), "m 1\n"); };
  EXPECT_EQ(resp("GET /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
            "Connection: close\r\n\r\nm 1\n");
  const std::string head = resp("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body
  EXPECT_EQ(resp("GET / HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404 ", 0), 0u);
  const std::string post = resp("POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 ", 0), 0u);
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
  EXPECT_EQ(resp("junk\r\n\r\n").rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_EQ(resp(std::string(kMaxRequestHead + 1, 'x')).rfind("HTTP/1.1 431 ", 0), 0u);
}

TEST(MetricsHttp, ListenAddr) {
  auto a = parse_listen_addr("127.0.0.1:9464");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port, 9464);
  a = parse_listen_addr("[::1]:0");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->addr.is_v6);
  for (const char* bad : {"", "9464", ":9464", "localhost:9464", "::1:9464", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:x"})
    EXPECT_FALSE(parse_listen_addr(bad)) << bad;
}

}  // namespace
}  // namespace moat::obs
