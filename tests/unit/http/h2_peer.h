#pragma once
// Real nghttp2 sessions (client = the guest, server = the upstream) for the h2 tests: they
// produce the frames the inspector sees and decode what it lets through.
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace moat::http::testing {

struct H2Message {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool closed = false;
  uint32_t close_error = 0;
  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return {};
  }
};

class H2Peer {
 public:
  explicit H2Peer(bool server, std::vector<nghttp2_settings_entry> settings = {}, uint32_t peer_max_streams = 100) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, [](nghttp2_session*, const uint8_t* d, size_t n, int, void* u) {
      static_cast<H2Peer*>(u)->out.append(reinterpret_cast<const char*>(d), n);
      return ssize_t(n);
    });
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value,
                size_t valuelen, uint8_t, void* u) {
          static_cast<H2Peer*>(u)->messages[f->hd.stream_id].headers.emplace_back(
              std::string(reinterpret_cast<const char*>(name), namelen),
              std::string(reinterpret_cast<const char*>(value), valuelen));
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t stream, const uint8_t* d, size_t n, void* u) {
          static_cast<H2Peer*>(u)->messages[stream].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      auto* self = static_cast<H2Peer*>(u);
      if (f->hd.type == NGHTTP2_GOAWAY) {
        self->goaway_error = int64_t(f->goaway.error_code);
        self->goaway_last = f->goaway.last_stream_id;
      }
      return 0;
    });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t stream, uint32_t error, void* u) {
          auto& m = static_cast<H2Peer*>(u)->messages[stream];
          m.closed = true;
          m.close_error = error;
          return 0;
        });
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    nghttp2_option_set_peer_max_concurrent_streams(opt, peer_max_streams);
    nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);  // so oversized blocks can be sent
    if (server) {
      nghttp2_session_server_new2(&session, cbs, this, opt);
    } else {
      nghttp2_session_client_new2(&session, cbs, this, opt);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
    flush();
  }
  ~H2Peer() { nghttp2_session_del(session); }
  H2Peer(const H2Peer&) = delete;
  H2Peer& operator=(const H2Peer&) = delete;

  static nghttp2_nv nv(const std::string& name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  }
  using Fields = std::vector<std::pair<std::string, std::string>>;
  static Fields get(const std::string& authority, const std::string& path = "/") {
    return {{":method", "GET"}, {":scheme", "https"}, {":authority", authority}, {":path", path}};
  }

  /// Client: a request; `body` (if any) sent as DATA. Returns the stream id.
  int32_t request(const Fields& fields, const std::string* body = nullptr, bool end_stream = true) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : fields) nva.push_back(nv(n, v));
    int32_t id;
    if (body == nullptr && !end_stream) {
      id = nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, -1, nullptr, nva.data(), nva.size(), nullptr);
    } else if (body == nullptr) {
      id = nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), nullptr, nullptr);
    } else {
      nghttp2_data_provider p{};
      p.source.ptr = const_cast<std::string*>(body);
      p.read_callback = &read_body;
      id = nghttp2_submit_request(session, nullptr, nva.data(), nva.size(), &p, this);
    }
    flush();
    return id;
  }

  /// Server: answers `stream` with `status` and a short body.
  void respond(int32_t stream, const std::string& status, const std::string* body = nullptr) {
    static const std::string kStatus = ":status";  // nv() does not copy: keep the name alive
    std::vector<nghttp2_nv> nva{nv(kStatus, status)};
    nghttp2_data_provider p{};
    p.source.ptr = const_cast<std::string*>(body);
    p.read_callback = &read_body;
    nghttp2_submit_response(session, stream, nva.data(), nva.size(), body ? &p : nullptr);
    flush();
  }

  /// Feeds bytes from the other side; returns nghttp2's result (< 0: it rejected them).
  ssize_t recv(const std::string& bytes) {
    const ssize_t rv = nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    flush();
    return rv;
  }
  void flush() { nghttp2_session_send(session); }
  std::string take() { return std::exchange(out, std::string()); }

  nghttp2_session* session = nullptr;
  std::string out;
  std::map<int32_t, H2Message> messages;
  int64_t goaway_error = -1;
  int32_t goaway_last = -1;

 private:
  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source* source, void* user) {
    auto* self = static_cast<H2Peer*>(user);
    auto* body = static_cast<const std::string*>(source->ptr);
    size_t& off = self->body_off_[body];
    const size_t n = std::min(length, body->size() - off);
    std::memcpy(buf, body->data() + off, n);
    off += n;
    if (off == body->size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      self->body_off_.erase(body);
    }
    return ssize_t(n);
  }
  std::map<const std::string*, size_t> body_off_;
};

}  // namespace moat::http::testing
