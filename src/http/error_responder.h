#pragma once
// The R-TLS-5 `tls.upstream_error = http` answer: the upstream could not be reached or
// verified, the guest handshake completed anyway, and every request the guest sends gets
//   502 Bad Gateway, text/plain: "moat: upstream <host:port> <reason>\n"
// HTTP/1: the first complete request head is answered (Connection: close), then close.
// HTTP/2: an nghttp2 server session (SETTINGS, flow control and HPACK by the library)
// answers each request stream as its HEADERS arrive, then GOAWAY(NO_ERROR) naming the last
// stream answered; the connection closes once that is written.
#include <nghttp2/nghttp2.h>

#include <string>
#include <string_view>

#include "base/memory_budget.h"
#include "http/http.h"
#include "http/nghttp2_mem.h"

namespace moat::http {

class ErrorResponder {
 public:
  /// `upstream`: "host:port" as the guest asked for it; `reason`: e.g. "failed TLS
  /// verification: certificate has expired". Only `sink.to_guest()` and `on_event()` are used.
  ErrorResponder(Alpn alpn, std::string_view upstream, std::string_view reason, Sink& sink,
                 MemoryBudget* budget = nullptr);
  ~ErrorResponder();
  ErrorResponder(const ErrorResponder&) = delete;
  ErrorResponder& operator=(const ErrorResponder&) = delete;

  Next from_guest(Bytes bytes);
  [[nodiscard]] bool closing() const noexcept { return closing_; }
  [[nodiscard]] const std::string& body() const noexcept { return body_; }
  /// Requests answered so far.
  [[nodiscard]] uint32_t answered() const noexcept { return answered_; }

 private:
  Next h1(std::string_view in);
  Next h2(Bytes in);
  static ssize_t send_cb(nghttp2_session*, const uint8_t* data, size_t length, int, void* self);
  static int frame_recv_cb(nghttp2_session* session, const nghttp2_frame* frame, void* self);
  static ssize_t read_cb(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                         nghttp2_data_source*, void* self);

  Alpn alpn_;
  Sink& sink_;
  std::string body_;
  size_t head_bytes_ = 0;  // HTTP/1: bytes of the request head so far
  uint8_t head_match_ = 0;
  Nghttp2Mem mem_;
  nghttp2_session* session_ = nullptr;
  bool started_ = false, goaway_sent_ = false, closing_ = false;
  uint32_t answered_ = 0;
  int32_t last_answered_ = 0;
};

}  // namespace moat::http
