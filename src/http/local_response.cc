#include "http/local_response.h"

#include <nghttp2/nghttp2.h>

#include <array>

#include "base/check.h"

namespace moat::http {

namespace {

constexpr uint8_t kData = 0x0, kHeaders = 0x1, kGoaway = 0x7;
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4;

nghttp2_nv nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NO_INDEX};
}

void put_be32(std::string* out, uint32_t v) {
  out->push_back(char(v >> 24));
  out->push_back(char(v >> 16));
  out->push_back(char(v >> 8));
  out->push_back(char(v));
}

}  // namespace

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 421: return "Misdirected Request";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    default: return "Error";
  }
}

std::string h1_response(int status, std::string_view body, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out += reason_phrase(status);
  out += "\r\nContent-Type: text/plain\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n";
  out += body;
  return out;
}

void h2_frame_header(std::string* out, uint32_t length, uint8_t type, uint8_t flags, uint32_t stream_id) {
  out->push_back(char(length >> 16));
  out->push_back(char(length >> 8));
  out->push_back(char(length));
  out->push_back(char(type));
  out->push_back(char(flags));
  put_be32(out, stream_id & 0x7fffffffu);
}

void h2_response(std::string* out, uint32_t stream_id, int status, std::string_view body) {
  const std::string code = std::to_string(status);
  const std::string length = std::to_string(body.size());
  std::array<nghttp2_nv, 3> fields = {nv(":status", code), nv("content-type", "text/plain"),
                                      nv("content-length", length)};
  nghttp2_hd_deflater* deflater = nullptr;
  // The default table size (4096) so no dynamic table size update is emitted; no field is
  // indexed, so the table stays empty.
  MOAT_CHECK(nghttp2_hd_deflate_new(&deflater, 4096) == 0);
  std::array<uint8_t, 256> block{};
  const ssize_t n = nghttp2_hd_deflate_hd(deflater, block.data(), block.size(), fields.data(), fields.size());
  nghttp2_hd_deflate_del(deflater);
  MOAT_CHECK(n > 0);
  h2_frame_header(out, uint32_t(n), kHeaders, uint8_t(kEndHeaders | (body.empty() ? kEndStream : 0)), stream_id);
  out->append(reinterpret_cast<const char*>(block.data()), size_t(n));
  if (!body.empty()) {
    MOAT_CHECK(body.size() <= 16384);
    h2_frame_header(out, uint32_t(body.size()), kData, kEndStream, stream_id);
    out->append(body);
  }
}

void h2_goaway(std::string* out, uint32_t last_stream_id, H2Error error, std::string_view debug) {
  h2_frame_header(out, uint32_t(8 + debug.size()), kGoaway, 0, 0);
  put_be32(out, last_stream_id & 0x7fffffffu);
  put_be32(out, uint32_t(error));
  out->append(debug);
}

std::string misdirected_body(std::string_view expected, std::string_view claimed) {
  std::string s = "moat: misdirected request: this connection is for ";
  s += expected;
  s += ", the request is for ";
  // The claim is the guest's (validated authority characters); keep the body one short line.
  s += claimed.substr(0, 255);
  s += "\n";
  return s;
}

std::string malformed_body(std::string_view reason) {
  std::string s = "moat: malformed HTTP request: ";
  s += reason;
  s += "\n";
  return s;
}

}  // namespace moat::http
