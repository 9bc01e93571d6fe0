#include "sniff/tls_client_hello.h"

#include <array>
#include <cstring>
#include <string_view>

#include "policy/rule.h"

namespace moat::tls {

namespace {

using sniff::Kind;
using sniff::Result;

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr uint16_t kExtServerName = 0;
constexpr uint8_t kNameTypeHostName = 0;
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecord = 16384 + 256;  // RFC 8446 §5.1 plaintext limit, some slack

Result no_name() { return Result{Kind::no_name, {}}; }

// The body of a complete ClientHello (after the 4-byte handshake header).
Result parse_body(Bytes body) {
  ByteReader r(body);
  r.skip(2);   // legacy_version
  r.skip(32);  // random
  const uint8_t sid_len = r.u8();
  if (sid_len > 32) return no_name();
  r.skip(sid_len);
  const uint16_t cs_len = r.u16();
  if (cs_len < 2 || cs_len % 2 != 0) return no_name();
  r.skip(cs_len);
  const uint8_t comp_len = r.u8();
  if (comp_len < 1) return no_name();
  r.skip(comp_len);
  if (!r.ok()) return no_name();
  if (r.empty()) return no_name();  // no extensions at all
  const uint16_t ext_total = r.u16();
  Bytes exts = r.bytes(ext_total);
  if (!r.ok()) return no_name();
  ByteReader e(exts);
  while (e.ok() && !e.empty()) {
    const uint16_t type = e.u16();
    const uint16_t len = e.u16();
    Bytes data = e.bytes(len);
    if (!e.ok()) return no_name();
    if (type != kExtServerName) continue;
    ByteReader s(data);
    const uint16_t list_len = s.u16();
    Bytes list = s.bytes(list_len);
    if (!s.ok()) return no_name();
    ByteReader l(list);
    while (l.ok() && !l.empty()) {
      const uint8_t name_type = l.u8();
      const uint16_t name_len = l.u16();
      Bytes name = l.bytes(name_len);
      if (!l.ok()) return no_name();
      if (name_type != kNameTypeHostName) continue;
      // R-POL-3 validation; an IP literal (RFC 6066 forbids it) or garbage is "no name".
      auto n = policy::normalize_name(std::string_view(reinterpret_cast<const char*>(name.data()), name.size()));
      if (!n) return no_name();
      return Result{Kind::name, std::move(*n)};
    }
    return no_name();
  }
  return no_name();
}

}  // namespace

sniff::Result parse_client_hello(Bytes in) {
  if (in.empty()) return Result{};
  if (load_u8(in.data()) != kContentHandshake) return Result{Kind::other, {}};
  if (in.size() >= 2 && load_u8(in.data() + 1) != 3) return Result{Kind::other, {}};
  if (in.size() >= 3) {
    const uint8_t minor = load_u8(in.data() + 2);
    if (minor < 1 || minor > 4) return Result{Kind::other, {}};
  }
  // Reassemble the handshake stream from the records' fragments.
  std::array<std::byte, sniff::kMaxFirstFlight> hs;
  size_t hs_len = 0;
  size_t pos = 0;
  while (true) {
    // Is the ClientHello complete in what we have?
    if (hs_len >= 4) {
      if (load_u8(hs.data()) != kHandshakeClientHello) return no_name();
      const size_t msg_len = (size_t(load_u8(hs.data() + 1)) << 16) | (size_t(load_u8(hs.data() + 2)) << 8) |
                             size_t(load_u8(hs.data() + 3));
      if (msg_len > hs.size() - 4) return no_name();  // bounded (R-TCP-6: 16 KiB)
      if (hs_len >= 4 + msg_len) return parse_body(Bytes(hs.data() + 4, msg_len));
    }
    if (in.size() - pos < kRecordHeader) {  // need the next record header
      return in.size() >= sniff::kMaxFirstFlight ? no_name() : Result{};
    }
    const std::byte* h = in.data() + pos;
    if (load_u8(h) != kContentHandshake || load_u8(h + 1) != 3) return no_name();
    const size_t rec_len = load_be16(h + 3);
    if (rec_len == 0 || rec_len > kMaxRecord) return no_name();
    const size_t avail = std::min(rec_len, in.size() - pos - kRecordHeader);
    const size_t take = std::min(avail, hs.size() - hs_len);
    std::memcpy(hs.data() + hs_len, h + kRecordHeader, take);
    hs_len += take;
    if (avail < rec_len) {
      // The record is still arriving: a complete hello inside it is parsed next call,
      // unless what we have already holds it.
      if (hs_len >= 4) {
        const size_t msg_len = (size_t(load_u8(hs.data() + 1)) << 16) | (size_t(load_u8(hs.data() + 2)) << 8) |
                               size_t(load_u8(hs.data() + 3));
        if (load_u8(hs.data()) != kHandshakeClientHello || msg_len > hs.size() - 4) return no_name();
        if (hs_len >= 4 + msg_len) return parse_body(Bytes(hs.data() + 4, msg_len));
      }
      if (in.size() >= sniff::kMaxFirstFlight) return no_name();
      return Result{};
    }
    pos += kRecordHeader + rec_len;
    if (hs_len == hs.size()) return no_name();
  }
}

}  // namespace moat::tls
