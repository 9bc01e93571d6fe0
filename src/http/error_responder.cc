#include "http/error_responder.h"

#include <algorithm>
#include <cstring>

#include "http/local_response.h"

namespace moat::http {

namespace {
// The reason comes from OpenSSL or the socket layer; one printable line, bounded.
std::string printable_line(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out.push_back((c >= 0x20 && c < 0x7f) ? c : ' ');
  return out;
}
}  // namespace

ErrorResponder::ErrorResponder(Alpn alpn, std::string_view upstream, std::string_view reason, Sink& sink,
                               MemoryBudget* budget)
    : alpn_(alpn), sink_(sink), mem_(budget, 1 << 20) {
  body_ = "moat: upstream " + printable_line(upstream, 300) + " " + printable_line(reason, 1000) + "\n";
  if (alpn_ != Alpn::h2) return;
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return;
  nghttp2_session_callbacks_set_send_callback(cbs, &send_cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &frame_recv_cb);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) == 0) {
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
  }
  if (nghttp2_session_server_new3(&session_, cbs, this, opt, mem_.get()) != 0) session_ = nullptr;
  if (opt != nullptr) nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
}

ErrorResponder::~ErrorResponder() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

Next ErrorResponder::from_guest(Bytes bytes) {
  if (closing_) return Next::close;
  if (alpn_ == Alpn::h2) return h2(bytes);
  return h1(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

Next ErrorResponder::h1(std::string_view in) {
  // Any complete head (or one that cannot be: too long) is answered; the answer is the same
  // whatever the request says, so the head is not parsed beyond its end.
  bool end = false;
  for (char c : in) {
    if (c == '\r') {
      head_match_ = head_match_ == 2 ? 3 : 1;
    } else if (c == '\n' && (head_match_ == 1 || head_match_ == 3)) {
      end = ++head_match_ == 4;
    } else {
      head_match_ = 0;
    }
    ++head_bytes_;
    if (end) break;
  }
  if (!end && head_bytes_ <= kMaxHeaderBlock) return Next::relay;
  const std::string answer = h1_response(502, body_);
  sink_.to_guest(as_bytes(answer));
  ++answered_;
  closing_ = true;
  return Next::close;
}

Next ErrorResponder::h2(Bytes in) {
  if (session_ == nullptr) {
    closing_ = true;
    return Next::close;
  }
  if (!started_) {
    started_ = true;
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 1);
  }
  const ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()), in.size());
  if (rv < 0) {
    sink_.on_event(Event{EventKind::malformed, {}, {}, {}, 0, nghttp2_strerror(int(rv))});
  }
  if (answered_ > 0 && !goaway_sent_) {
    // Every stream that arrived in this read has its answer queued: no more are accepted.
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, last_answered_, NGHTTP2_NO_ERROR, nullptr, 0);
    goaway_sent_ = true;
  }
  if (nghttp2_session_send(session_) != 0 || rv < 0) closing_ = true;
  if (goaway_sent_ && nghttp2_session_want_write(session_) == 0) closing_ = true;
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) closing_ = true;
  return closing_ ? Next::close : Next::relay;
}

ssize_t ErrorResponder::send_cb(nghttp2_session*, const uint8_t* data, size_t length, int, void* self) {
  static_cast<ErrorResponder*>(self)->sink_.to_guest(Bytes(reinterpret_cast<const std::byte*>(data), length));
  return ssize_t(length);
}

int ErrorResponder::frame_recv_cb(nghttp2_session* session, const nghttp2_frame* frame, void* self) {
  auto* r = static_cast<ErrorResponder*>(self);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST || r->goaway_sent_) return 0;
  const std::string length = std::to_string(r->body_.size());
  auto nv = [](const char* name, std::string_view value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const nghttp2_nv fields[] = {nv(":status", "502"), nv("content-type", "text/plain"), nv("content-length", length)};
  nghttp2_data_provider provider{};
  provider.read_callback = &read_cb;
  provider.source.ptr = nullptr;
  if (nghttp2_submit_response(session, frame->hd.stream_id, fields, 3, &provider) == 0) {
    ++r->answered_;
    r->last_answered_ = std::max(r->last_answered_, frame->hd.stream_id);
  }
  return 0;
}

ssize_t ErrorResponder::read_cb(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                                uint32_t* flags, nghttp2_data_source*, void* self) {
  auto* r = static_cast<ErrorResponder*>(self);
  // One body per stream; nghttp2 asks again only if the first call did not set EOF.
  const size_t n = std::min(length, r->body_.size());
  std::memcpy(buf, r->body_.data(), n);
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  (void)session, (void)stream_id;
  return ssize_t(n);
}

}  // namespace moat::http
