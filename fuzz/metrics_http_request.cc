// Fuzz target: obs::parse_http_request() and http_response() — the request head of the
// --metrics endpoint (R-OBS-7), whose peer is whoever reaches the listen address. Never a
// crash; a complete head stays complete when bytes follow it (a body is ignored); every
// response is one well-formed HTTP/1.1 head whose Content-Length matches its body (none
// for HEAD).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "obs/metrics_http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moat::obs;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const HttpRequest r = parse_http_request(in, 1024);
  if (r.status == HttpRequest::Status::complete) {
    if (r.method.empty() || r.path.empty() || r.path.front() != '/') __builtin_trap();
    if (r.path.size() > r.target.size()) __builtin_trap();
    // Views point into the input.
    if (r.method.data() < in.data() || r.target.data() + r.target.size() > in.data() + in.size()) __builtin_trap();
    // A complete head stays complete with more bytes after it (a body is ignored).
    std::string more(in);
    more += "trailing body";
    if (parse_http_request(more, 1024 + 13).status != HttpRequest::Status::complete) __builtin_trap();
  }
  const std::string resp = http_response(r, "m 1\n");
  const size_t end = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) __builtin_trap();
  const size_t cl = resp.find("Content-Length: ");
  if (cl == std::string::npos || cl > end) __builtin_trap();
  const size_t len = std::stoul(resp.substr(cl + 16, resp.find("\r\n", cl) - cl - 16));
  const size_t body = resp.size() - end - 4;
  const bool head = r.status == HttpRequest::Status::complete && r.method == "HEAD";
  if (head ? body != 0 : body != len) __builtin_trap();
  (void)parse_listen_addr(in.substr(0, 64));
  return 0;
}
