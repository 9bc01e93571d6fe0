#include "obs/metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "base/log.h"

namespace moat::obs {
namespace {

/// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

/// Visible ASCII (no controls, no space, no DEL, no 8-bit): what an origin-form target holds.
bool is_target(std::string_view s) noexcept {
  if (s.empty() || s.front() != '/') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

/// Splits `in` at the next LF; the line excludes LF and one preceding CR.
bool next_line(std::string_view& in, std::string_view& line) {
  const size_t nl = in.find('\n');
  if (nl == std::string_view::npos) return false;
  line = in.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  in.remove_prefix(nl + 1);
  return true;
}

}  // namespace

HttpRequest parse_http_request(std::string_view in, size_t max_head) {
  HttpRequest r;
  // Find the end of the head: an empty line. Only the first max_head bytes count.
  std::string_view rest = in.substr(0, std::min(in.size(), max_head));
  std::string_view line;
  if (!next_line(rest, line)) {
    r.status = in.size() >= max_head ? HttpRequest::Status::too_large : HttpRequest::Status::incomplete;
    return r;
  }
  // Request line: method SP target SP HTTP/1.x
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
    r.status = HttpRequest::Status::bad;
    return r;
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method) || !is_target(target) || version.size() != 8 || version.substr(0, 7) != "HTTP/1." ||
      (version[7] != '0' && version[7] != '1')) {
    r.status = HttpRequest::Status::bad;
    return r;
  }
  // Header fields until the empty line.
  for (;;) {
    if (!next_line(rest, line)) {
      r.status = in.size() >= max_head ? HttpRequest::Status::too_large : HttpRequest::Status::incomplete;
      return r;
    }
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      r.status = HttpRequest::Status::bad;  // also obsolete line folding (leading whitespace)
      return r;
    }
    for (char c : line.substr(colon + 1))
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        r.status = HttpRequest::Status::bad;
        return r;
      }
  }
  r.status = HttpRequest::Status::complete;
  r.method = method;
  r.target = target;
  r.path = target.substr(0, target.find('?'));
  r.minor_version = version[7] - '0';
  return r;
}

std::string http_response(const HttpRequest& r, const std::string& metrics_text) {
  auto reply = [](std::string_view status, std::string_view extra_headers, std::string_view ctype,
                  std::string_view body, bool head_only) {
    std::string s = "HTTP/1.1 ";
    s += status;
    s += "\r\nContent-Type: ";
    s += ctype;
    s += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
    s += extra_headers;
    s += "\r\n";
    if (!head_only) s += body;
    return s;
  };
  constexpr std::string_view kText = "text/plain; charset=utf-8";
  switch (r.status) {
    case HttpRequest::Status::complete:
      break;
    case HttpRequest::Status::too_large:
      return reply("431 Request Header Fields Too Large", "", kText, "request head too large\n", false);
    case HttpRequest::Status::incomplete:
    case HttpRequest::Status::bad:
      return reply("400 Bad Request", "", kText, "bad request\n", false);
  }
  const bool head = r.method == "HEAD";
  if (r.method != "GET" && !head)
    return reply("405 Method Not Allowed", "Allow: GET, HEAD\r\n", kText, "only GET /metrics\n", false);
  if (r.path != "/metrics") return reply("404 Not Found", "", kText, "not found; try /metrics\n", head);
  return reply("200 OK", "", "text/plain; version=0.0.4; charset=utf-8", metrics_text, head);
}

Result<ListenAddr, std::string> parse_listen_addr(std::string_view s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return unexpected(std::string("expected ADDR:PORT (e.g. 127.0.0.1:9464)"));
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  auto a = IpAddr::parse(host);
  if (!a) return unexpected(std::string("expected ADDR:PORT with an IP address (e.g. 127.0.0.1:9464 or [::1]:9464)"));
  if (a->is_v6 && !bracketed) return unexpected(std::string("write an IPv6 address in brackets: [ADDR]:PORT"));
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p > 65535)
    return unexpected(std::string("the port must be 0-65535"));
  return ListenAddr{*a, uint16_t(p)};
}

struct MetricsServer::Client {
  UniqueFd fd;  // before watch: the Watch goes first
  event::Watch watch;
  event::TimerHandle timeout;
  std::string in;
  std::string out;
  size_t out_pos = 0;
  bool responded = false;
};

Result<std::unique_ptr<MetricsServer>, std::string> MetricsServer::create(event::Loop& loop, const ListenAddr& addr,
                                                                          Counters& counters, TextFn text) {
  // Appends, not "[" + std::string: g++ 12 -O3 reports a false -Wrestrict on the latter.
  std::string where = addr.addr.is_v6 ? std::string("[").append(addr.addr.to_string()).append("]") : addr.addr.to_string();
  where.append(":").append(std::to_string(addr.port));
  std::unique_ptr<MetricsServer> s(new MetricsServer(loop, counters, std::move(text)));
  const int family = addr.addr.is_v6 ? AF_INET6 : AF_INET;
  s->listen_fd_ = UniqueFd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s->listen_fd_) return unexpected(where + ": cannot create a socket: " + std::strerror(errno));
  const int one = 1;
  (void)::setsockopt(s->listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (addr.addr.is_v6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(addr.port);
    std::memcpy(&sa->sin6_addr, addr.addr.v6.bytes.data(), 16);
    len = sizeof *sa;
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(addr.port);
    sa->sin_addr.s_addr = htonl(addr.addr.v4.value);
    len = sizeof *sa;
  }
  if (::bind(s->listen_fd_.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0)
    return unexpected(where + ": cannot bind: " + std::strerror(errno));
  if (::listen(s->listen_fd_.get(), 16) != 0) return unexpected(where + ": cannot listen: " + std::strerror(errno));
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  if (::getsockname(s->listen_fd_.get(), reinterpret_cast<sockaddr*>(&bound), &blen) == 0)
    s->port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  auto w = loop.watch(s->listen_fd_.get(), EPOLLIN, [srv = s.get()](uint32_t) { srv->on_accept(); });
  if (!w) return unexpected(where + ": cannot watch: " + w.error().message());
  s->listen_watch_ = std::move(w).value();
  return s;
}

MetricsServer::MetricsServer(event::Loop& loop, Counters& counters, TextFn text)
    : loop_(loop), counters_(counters), text_(std::move(text)) {}

MetricsServer::~MetricsServer() {
  for (auto& c : clients_) {
    c->watch.reset();
    c->timeout = {};
  }
  clients_.clear();
  listen_watch_.reset();
}

void MetricsServer::on_accept() {
  for (int i = 0; i < 16; ++i) {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;
    if (clients_.size() >= kMaxClients) {
      counters_.inc(Counter::metrics_bad_requests);
      continue;  // closed at once
    }
    auto c = std::make_unique<Client>();
    c->fd = std::move(fd);
    Client* cp = c.get();
    auto w = loop_.watch(cp->fd.get(), EPOLLIN | EPOLLRDHUP, [this, cp](uint32_t ev) { on_client_io(*cp, ev); });
    if (!w) continue;
    cp->watch = std::move(w).value();
    cp->timeout = loop_.schedule_after(kIdleTimeout, [this, cp] { close_client(*cp); });
    clients_.push_back(std::move(c));
  }
}

void MetricsServer::close_client(Client& c) {
  auto it = std::find_if(clients_.begin(), clients_.end(), [&](const auto& p) { return p.get() == &c; });
  if (it == clients_.end()) return;
  (*it)->watch.reset();
  (*it)->timeout = {};
  clients_.erase(it);
}

void MetricsServer::on_client_io(Client& c, uint32_t events) {
  if (!c.responded) {
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
      char buf[4096];
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return close_client(c);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        return close_client(c);
      }
      c.in.append(buf, size_t(n));
      const HttpRequest r = parse_http_request(c.in);
      if (r.status == HttpRequest::Status::incomplete) return;
      if (r.status == HttpRequest::Status::complete && r.path == "/metrics" && (r.method == "GET" || r.method == "HEAD"))
        counters_.inc(Counter::metrics_requests);
      else
        counters_.inc(Counter::metrics_bad_requests);
      const bool want_text = r.status == HttpRequest::Status::complete && r.path == "/metrics" && r.method == "GET";
      c.out = http_response(r, want_text ? text_() : std::string());
      c.responded = true;
      std::string().swap(c.in);
    } else {
      return;
    }
  }
  while (c.out_pos < c.out.size()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        (void)c.watch.modify(EPOLLOUT);
        return;
      }
      if (errno == EINTR) continue;
      return close_client(c);
    }
    c.out_pos += size_t(n);
  }
  // Written: close (Connection: close); the peer reads to EOF.
  (void)::shutdown(c.fd.get(), SHUT_WR);
  close_client(c);
}

}  // namespace moat::obs
