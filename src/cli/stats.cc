// `moat stats` (R-CLI-9): finds a gateway's control socket, asks it `stats` (and `flows`,
// `metrics`), and prints a table, the JSON or the Prometheus text. See stats.h.
#include "cli/stats.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "base/file.h"
#include "base/unique_fd.h"
#include "cli/flags.h"
#include "config/config.h"
#include "transport/unix_socket.h"

namespace moat::cli {

using Json = nlohmann::ordered_json;
using config::UserError;

namespace {

/// The fields of one /proc/net/unix line we use.
struct UnixEntry {
  unsigned long inode = 0;
  bool listening = false;
  std::string_view path;
};

/// Parses "Num: RefCount Protocol Flags Type St Inode [Path]"; false for the header or a
/// line of another shape.
bool parse_unix_line(std::string_view line, UnixEntry* e) {
  std::string_view f[8];
  size_t n = 0, pos = 0;
  while (n < 7 && pos < line.size()) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    const size_t end = line.find(' ', pos);
    f[n++] = line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? line.size() : end;
  }
  if (n < 7 || f[0].empty() || f[0].back() != ':') return false;
  while (pos < line.size() && line[pos] == ' ') ++pos;
  e->path = line.substr(pos);
  unsigned long flags = 0, st = 0;
  if (std::from_chars(f[3].data(), f[3].data() + f[3].size(), flags, 16).ec != std::errc()) return false;
  if (std::from_chars(f[5].data(), f[5].data() + f[5].size(), st, 16).ec != std::errc()) return false;
  if (std::from_chars(f[6].data(), f[6].data() + f[6].size(), e->inode).ec != std::errc()) return false;
  e->listening = (flags & 0x10000) != 0 && st == 1;  // __SO_ACCEPTCON, SS_UNCONNECTED
  return true;
}

template <class F>
void for_each_entry(std::string_view text, F&& f) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    UnixEntry e;
    if (parse_unix_line(line, &e)) f(e);
  }
}

std::string read_proc_net_unix() {
  auto t = read_bounded_file("/proc/net/unix", size_t{64} << 20);
  return t ? std::move(*t) : std::string();
}

/// A connection to a gateway's control socket; one request at a time.
class ControlClient {
 public:
  static std::optional<ControlClient> connect(const std::string& address, std::string* error) {
    sockaddr_un sa{};
    auto len = transport::make_unix_addr(address, &sa);
    if (!len) {
      *error = address + ": " + len.error();
      return std::nullopt;
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), *len) != 0) {
      *error = address + ": cannot connect: " + std::strerror(errno);
      return std::nullopt;
    }
    ControlClient c;
    c.fd_ = std::move(fd);
    return c;
  }

  /// Sends one request and returns its result, or sets *error (the gateway's error message,
  /// or an I/O failure). Waits at most 10 s.
  std::optional<Json> call(std::string_view method, std::string* error) {
    const std::string req = R"({"id":)" + std::to_string(++id_) + R"(,"method":")" + std::string(method) + "\"}\n";
    if (::send(fd_.get(), req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
      *error = std::string("cannot send to the gateway: ") + std::strerror(errno);
      return std::nullopt;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    size_t nl;
    while ((nl = buf_.find('\n')) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        *error = "the gateway did not answer within 10 s";
        return std::nullopt;
      }
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) < 0 && errno != EINTR) {
        *error = std::string("poll: ") + std::strerror(errno);
        return std::nullopt;
      }
      char tmp[65536];
      const ssize_t n = ::recv(fd_.get(), tmp, sizeof tmp, MSG_DONTWAIT);
      if (n == 0) {
        *error = "the gateway closed the connection (refused, or it stopped)";
        return std::nullopt;
      }
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        *error = std::string("cannot read from the gateway: ") + std::strerror(errno);
        return std::nullopt;
      }
      buf_.append(tmp, size_t(n));
      if (buf_.size() > (size_t{64} << 20)) {
        *error = "the gateway's answer is larger than 64 MiB";
        return std::nullopt;
      }
    }
    Json r = Json::parse(std::string_view(buf_).substr(0, nl), nullptr, false);
    buf_.erase(0, nl + 1);
    if (r.is_discarded() || !r.is_object()) {
      *error = "the gateway's answer is not JSON";
      return std::nullopt;
    }
    if (auto e = r.find("error"); e != r.end()) {
      *error = e->value("message", std::string("error"));
      return std::nullopt;
    }
    return r.value("result", Json());
  }

 private:
  ControlClient() = default;
  UniqueFd fd_;
  std::string buf_;
  uint64_t id_ = 0;
};

uint64_t counter(const Json& stats, const char* name) {
  const Json& c = stats["counters"];
  auto it = c.find(name);
  return it != c.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

std::string bytes_text(uint64_t b) {
  char buf[32];
  if (b >= (uint64_t{1} << 30)) std::snprintf(buf, sizeof buf, "%.1f GiB", double(b) / double(1 << 30));
  else if (b >= (uint64_t{1} << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1 << 20));
  else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

/// R-OBS-6: the key counters, active flows and memory, one area per line.
std::string human_table(const Json& stats, const Json* flows) {
  std::string s;
  auto line = [&](const char* area, const std::string& text) {
    char head[32];
    std::snprintf(head, sizeof head, "%-10s", area);
    s += head;
    s += text;
    s += '\n';
  };
  auto u = [&](const char* n) { return std::to_string(counter(stats, n)); };
  line("gateway", stats.value("gateway", std::string("?")) + "   policy generation " +
                      std::to_string(stats.value("policy.generation", uint64_t{0})));
  line("link", "from guest " + u("link.from_guest.frames") + " frames " + bytes_text(counter(stats, "link.from_guest.bytes")) +
                   "   to guest " + u("link.to_guest.frames") + " frames " + bytes_text(counter(stats, "link.to_guest.bytes")));
  line("tcp", "active " + u("tcp.active") + "   opened " + u("tcp.opened") + "   ingress " + u("tcp.ingress_opened") +
                  "   refused " + u("tcp.refused") + "   reset by guest/upstream " + u("tcp.reset_by_guest") + "/" +
                  u("tcp.reset_by_upstream") + "   timeouts " + u("tcp.timeouts"));
  line("paths", "fast " + u("tcp.path.fast") + "   gate " + u("tcp.path.gate") + "   inspect " + u("tcp.path.inspect") +
                    "   rejected " + u("tcp.path.rejected"));
  line("udp", "sessions " + u("udp.sessions_active") + "   datagrams from/to guest " + u("udp.datagrams_from_guest") +
                  "/" + u("udp.datagrams_to_guest") + "   evicted " + u("udp.evicted"));
  line("icmp", "echo local " + u("icmp.echo_local") + "   relayed " + u("icmp.echo_relayed") + "   errors sent " +
                   u("icmp.errors_sent"));
  line("dns", "queries " + u("dns.queries") + "   denied " + u("dns.denied") + "   blocked " + u("dns.blocked") +
                  "   rebind blocked " + u("dns.rebind_blocked") + "   servfail " + u("dns.servfail") + "   pins " +
                  u("dns.pins_active"));
  line("policy", "allow " + u("policy.allow") + "   deny " + u("policy.deny"));
  static constexpr const char* kLevels[] = {"normal", "pressure", "refuse", "full"};
  const uint64_t level = counter(stats, "memory.level");
  line("memory", "used " + bytes_text(counter(stats, "memory.used")) + " of " + bytes_text(counter(stats, "memory.budget")) +
                     "   high water " + bytes_text(counter(stats, "memory.high_water")) + "   level " +
                     (level < 4 ? kLevels[level] : std::to_string(level).c_str()));
  std::string drops = std::to_string(stats.value("drop.total", uint64_t{0}));
  if (stats.contains("drops") && stats["drops"].is_object()) {
    std::vector<std::pair<uint64_t, std::string>> top;
    for (auto it = stats["drops"].begin(); it != stats["drops"].end(); ++it)
      if (it->is_number_unsigned() && it->get<uint64_t>() > 0) top.emplace_back(it->get<uint64_t>(), it.key());
    std::sort(top.rbegin(), top.rend());
    if (top.size() > 5) top.resize(5);
    if (!top.empty()) {
      drops += "  (";
      for (size_t i = 0; i < top.size(); ++i) drops += (i ? ", " : "") + top[i].second + " " + std::to_string(top[i].first);
      drops += ")";
    }
  }
  line("drops", drops);
  line("control", "requests " + u("control.requests") + "   refused " + u("control.refused") + "   audit dropped " +
                      u("audit.dropped"));
  if (flows) {
    const Json& list = (*flows)["flows"];
    s += "\nflows (" + std::to_string(flows->value("total", uint64_t{0})) + (flows->value("truncated", false) ? ", truncated" : "") + ")\n";
    char head[256];
    std::snprintf(head, sizeof head, "%-8s %-5s %-7s %-24s %-24s %-30s %-7s %10s %10s %8s %s\n", "id", "proto", "dir", "guest",
                  "remote", "name", "path", "from guest", "to guest", "age", "state");
    s += head;
    for (const auto& f : list) {
      std::string name = f["name"].is_string() ? f["name"].get<std::string>() : "-";
      if (f["name"].is_string()) name += " (" + f.value("name_src", std::string()) + ")";
      char row[512];
      std::snprintf(row, sizeof row, "%-8llu %-5s %-7s %-24s %-24s %-30s %-7s %10s %10s %7.1fs %s\n",
                    static_cast<unsigned long long>(f.value("id", uint64_t{0})), f.value("proto", std::string()).c_str(),
                    f.value("dir", std::string()).c_str(), f.value("guest", std::string()).c_str(),
                    f.value("remote", std::string()).c_str(), name.c_str(), f.value("path", std::string()).c_str(),
                    bytes_text(f.value("bytes_from_guest", uint64_t{0})).c_str(),
                    bytes_text(f.value("bytes_to_guest", uint64_t{0})).c_str(), f.value("age_s", 0.0),
                    f.value("state", std::string()).c_str());
      s += row;
    }
  }
  return s;
}

volatile sig_atomic_t g_interrupted = 0;

}  // namespace

std::vector<std::string> find_gateways(std::string_view proc_net_unix, uid_t uid) {
  const std::string prefix = "@moat/" + std::to_string(uid) + "/";
  std::vector<std::string> names;
  for_each_entry(proc_net_unix, [&](const UnixEntry& e) {
    if (e.listening && e.path.size() > prefix.size() && e.path.substr(0, prefix.size()) == prefix)
      names.emplace_back(e.path.substr(prefix.size()));
  });
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<unsigned long> socket_inodes(std::string_view proc_net_unix, std::string_view path) {
  std::vector<unsigned long> out;
  for_each_entry(proc_net_unix, [&](const UnixEntry& e) {
    if (e.listening && e.path == path) out.push_back(e.inode);
  });
  return out;
}

namespace {

/// --pid: the `@moat/…` listening socket among the process's descriptors.
std::optional<std::string> address_of_pid(pid_t pid, std::string* error) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    *error = "--pid " + std::to_string(pid) + ": cannot list its descriptors (" + std::strerror(errno) +
             "); is it running, and yours?";
    return std::nullopt;
  }
  std::vector<unsigned long> inodes;
  while (dirent* ent = ::readdir(d)) {
    char target[64];
    const std::string link = dir + "/" + ent->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long ino = 0;
    if (std::sscanf(target, "socket:[%lu]", &ino) == 1) inodes.push_back(ino);
  }
  ::closedir(d);
  const std::string text = read_proc_net_unix();
  std::vector<std::string> found;
  for_each_entry(text, [&](const UnixEntry& e) {
    if (e.listening && e.path.substr(0, 6) == "@moat/" && std::find(inodes.begin(), inodes.end(), e.inode) != inodes.end())
      found.emplace_back(e.path);
  });
  if (found.size() != 1) {
    *error = "--pid " + std::to_string(pid) + ": " +
             (found.empty() ? std::string("no moat control socket (@moat/...) among its descriptors; a gateway with "
                                          "--control PATH is reached with --control PATH")
                            : std::string("several control sockets"));
    return std::nullopt;
  }
  return found.front();
}

}  // namespace

int cmd_stats(const std::vector<std::string>& args) {
  constexpr int kFail = 1, kUsage = 2;
  std::string name, control_path;
  pid_t pid = 0;
  bool json = false, with_flows = false, prometheus = false;
  std::optional<Duration> watch;
  int selectors = 0;
  std::vector<Flag> flags;
  flags.push_back({"--name", "", "NAME", "the gateway named NAME (gateway.name / --name) of this user",
                   [&](std::string_view v) -> std::optional<UserError> {
                     ++selectors;
                     if (v.empty() || v.size() > 64 || v.find('/') != std::string_view::npos)
                       return UserError{"--name", quote_value(v) + " is not a gateway name", "1-64 of A-Z a-z 0-9 . _ -"};
                     name = v;
                     return std::nullopt;
                   }});
  flags.push_back({"--control", "", "PATH", "the gateway whose control socket is PATH (@name: abstract)",
                   [&](std::string_view v) -> std::optional<UserError> {
                     ++selectors;
                     if (v.empty()) return UserError{"--control", "empty path", ""};
                     control_path = v;
                     return std::nullopt;
                   }});
  flags.push_back({"--pid", "", "PID", "the gateway running as process PID",
                   [&](std::string_view v) -> std::optional<UserError> {
                     ++selectors;
                     unsigned p = 0;
                     auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
                     if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || p == 0 || p > 0x3fffffff)
                       return UserError{"--pid", quote_value(v) + " is not a process id", ""};
                     pid = pid_t(p);
                     return std::nullopt;
                   }});
  flags.push_back({"--json", "", "", "print the full counter object (with --flows: and the flow list) as JSON",
                   [&](std::string_view) -> std::optional<UserError> { json = true; return std::nullopt; }});
  flags.push_back({"--flows", "", "", "also list the active flows",
                   [&](std::string_view) -> std::optional<UserError> { with_flows = true; return std::nullopt; }});
  flags.push_back({"--prometheus", "", "", "print the Prometheus text exposition (what --metrics serves)",
                   [&](std::string_view) -> std::optional<UserError> { prometheus = true; return std::nullopt; }});
  flags.push_back({"--watch", "", "DURATION", "redraw every DURATION (e.g. 1s) until interrupted",
                   [&](std::string_view v) -> std::optional<UserError> {
                     auto d = config::parse_duration(v);
                     if (!d || *d < std::chrono::milliseconds(100) || *d > std::chrono::hours(1))
                       return UserError{"--watch", quote_value(v) + " is not a duration from 100ms to 1h", "e.g. 1s"};
                     watch = *d;
                     return std::nullopt;
                   }});
  auto r = parse_flags(flags, args, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help("moat stats [--name NAME | --control PATH | --pid PID] [--json] [--flows] "
                                  "[--prometheus] [--watch DURATION]",
                                  flags).c_str());
    return 0;
  }
  if (selectors > 1) r.errors.push_back({"stats", "give at most one of --name, --control, --pid", ""});
  if (prometheus && (json || with_flows)) r.errors.push_back({"--prometheus", "cannot be combined with --json or --flows", ""});
  if (!r.errors.empty()) {
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.format().c_str());
    return kUsage;
  }

  const uid_t uid = ::getuid();
  std::string address, error;
  if (!control_path.empty()) {
    address = control_path;
  } else if (!name.empty()) {
    address = "@moat/" + std::to_string(uid) + "/" + name;
  } else if (pid != 0) {
    auto a = address_of_pid(pid, &error);
    if (!a) {
      std::fprintf(stderr, "moat: error: %s\n", error.c_str());
      return kFail;
    }
    address = *a;
  } else {
    auto names = find_gateways(read_proc_net_unix(), uid);
    if (names.empty()) {
      std::fprintf(stderr, "moat: error: stats: no running gateway of uid %u (no @moat/%u/* control socket); "
                           "use --control PATH for one with a socket path\n", unsigned(uid), unsigned(uid));
      return kFail;
    }
    if (names.size() > 1) {
      std::fprintf(stderr, "moat: error: stats: %zu gateways of uid %u; choose one with --name:\n", names.size(), unsigned(uid));
      for (const auto& n : names) std::fprintf(stderr, "  %s\n", n.c_str());
      return kFail;
    }
    address = "@moat/" + std::to_string(uid) + "/" + names.front();
  }

  auto client = ControlClient::connect(address, &error);
  if (!client) {
    std::fprintf(stderr, "moat: error: stats: %s\n", error.c_str());
    return kFail;
  }
  if (watch) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_interrupted = 1; };
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
  }
  for (;;) {
    std::string out;
    if (prometheus) {
      auto m = client->call("metrics", &error);
      if (!m) break;
      out = m->value("text", std::string());
    } else {
      auto st = client->call("stats", &error);
      if (!st) break;
      std::optional<Json> fl;
      if (with_flows) {
        fl = client->call("flows", &error);
        if (!fl) break;
      }
      if (json) {
        Json j = *st;
        if (fl) j["flows"] = (*fl)["flows"];
        out = j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
      } else {
        out = human_table(*st, fl ? &*fl : nullptr);
      }
    }
    if (watch) std::fputs("\x1b[H\x1b[2J", stdout);  // home + clear: redraw in place
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    if (!watch) return 0;
    // Sleep in small steps so an interrupt ends the watch at once.
    const auto until = std::chrono::steady_clock::now() + *watch;
    while (!g_interrupted && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_interrupted) return 0;
  }
  std::fprintf(stderr, "moat: error: stats: %s: %s\n", address.c_str(), error.c_str());
  return kFail;
}

}  // namespace moat::cli
