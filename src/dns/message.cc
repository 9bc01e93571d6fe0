#include "dns/message.h"

#include <algorithm>

namespace moat::dns {

namespace {

constexpr uint16_t kEdnsPayload = 1232;  // what moat advertises in the OPT records it builds

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

void append_label_text(std::string& text, const uint8_t* p, size_t n) {
  if (!text.empty()) text.push_back('.');
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = p[i];
    if (c > 0x20 && c < 0x7f && c != '.' && c != '\\') {
      text.push_back(lower(char(c)));
    } else {
      char esc[5] = {'\\', char('0' + c / 100), char('0' + (c / 10) % 10), char('0' + c % 10), 0};
      text.append(esc, 4);
    }
  }
}

void put_header(ByteWriter& w, const Header& h) {
  w.u16(h.id);
  w.u16(h.flags);
  w.u16(h.qdcount);
  w.u16(h.ancount);
  w.u16(h.nscount);
  w.u16(h.arcount);
}

void put_question(ByteWriter& w, const Question& q) {
  w.bytes(q.name.wire_bytes());
  w.u16(q.qtype);
  w.u16(q.qclass);
}

void put_opt(ByteWriter& w) {
  w.u8(0);  // root owner
  w.u16(kTypeOpt);
  w.u16(kEdnsPayload);
  w.u32(0);  // extended rcode, version 0, flags
  w.u16(0);  // no options
}

constexpr size_t kOptLen = 11;

// Skips one resource record's name, fixed part and rdata; false on any bound.
bool skip_rr(ByteReader& r, Bytes msg, uint16_t* type_out = nullptr) {
  Name n;
  if (!read_name(r, msg, &n)) return false;
  const uint16_t type = r.u16();
  r.skip(6);  // class, ttl
  const uint16_t rdlen = r.u16();
  r.skip(rdlen);
  if (type_out) *type_out = type;
  return r.ok();
}

}  // namespace

std::optional<Header> Header::parse(Bytes msg) noexcept {
  if (msg.size() < kHeaderLen) return std::nullopt;
  ByteReader r(msg);
  Header h;
  h.id = r.u16();
  h.flags = r.u16();
  h.qdcount = r.u16();
  h.ancount = r.u16();
  h.nscount = r.u16();
  h.arcount = r.u16();
  return h;
}

bool read_name(ByteReader& r, Bytes msg, Name* out) {
  out->wire_len = 0;
  out->text.clear();
  // `pos` walks the labels; the caller's reader only advances over the in-place part
  // (up to and including the first pointer or the root label).
  size_t pos = r.pos();
  size_t label_floor = pos;  // a pointer must point strictly before the label it replaces
  bool jumped = false;
  int hops = 0;
  const auto* base = reinterpret_cast<const uint8_t*>(msg.data());
  for (;;) {
    if (pos >= msg.size()) break;
    const uint8_t len = base[pos];
    if ((len & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size()) break;
      const size_t target = (size_t(len & 0x3f) << 8) | base[pos + 1];
      if (!jumped) r.skip(pos + 2 - r.pos());
      jumped = true;
      if (target >= label_floor || ++hops > kMaxPointerHops) break;
      pos = label_floor = target;
      continue;
    }
    if ((len & 0xc0) != 0) break;  // 0x40/0x80: extended label types (RFC 6891 §5) unsupported
    if (size_t(out->wire_len) + 1 + len > kMaxNameWire) break;
    if (len > msg.size() - pos - 1) break;
    out->wire[out->wire_len++] = len;
    if (len == 0) {
      if (!jumped) r.skip(pos + 1 - r.pos());
      return r.ok();
    }
    std::copy_n(base + pos + 1, len, out->wire.data() + out->wire_len);
    out->wire_len = uint8_t(out->wire_len + len);
    append_label_text(out->text, base + pos + 1, len);
    pos += 1 + size_t(len);
    if (!jumped) label_floor = pos;
  }
  r.fail();
  return false;
}

size_t Query::udp_limit() const noexcept {
  if (!has_opt) return 512;
  return std::clamp<size_t>(udp_size, 512, 4096);
}

Result<Query, QueryFailure> parse_query(Bytes msg) {
  QueryFailure fail;
  auto h = Header::parse(msg);
  if (!h || h->qr()) return unexpected(fail);  // garbage; a response is never answered
  fail.header = *h;
  fail.error = QueryError::formerr;
  ByteReader r(msg);
  r.skip(kHeaderLen);
  if (h->qdcount >= 1) {
    fail.question_ok = read_name(r, msg, &fail.question.name);
    fail.question.qtype = r.u16();
    fail.question.qclass = r.u16();
    fail.question_ok = fail.question_ok && r.ok();
  }
  if (h->opcode() != 0) {
    fail.error = QueryError::notimp;
    if (h->qdcount != 1) fail.question_ok = false;
    return unexpected(fail);
  }
  if (h->qdcount != 1 || !fail.question_ok) {
    fail.question_ok = fail.question_ok && h->qdcount == 1;
    return unexpected(fail);
  }
  Query q;
  q.header = *h;
  q.question = fail.question;
  // Answer and authority sections are unusual in a query but legal; skip them.
  for (uint32_t i = 0; i < uint32_t(h->ancount) + h->nscount; ++i)
    if (!skip_rr(r, msg)) return unexpected(fail);
  for (uint16_t i = 0; i < h->arcount; ++i) {
    const size_t start = r.pos();
    uint16_t type = 0;
    if (!skip_rr(r, msg, &type)) return unexpected(fail);
    if (type == kTypeOpt) {
      if (q.has_opt) return unexpected(fail);  // RFC 6891 §6.1.1: more than one OPT is FORMERR
      ByteReader o(msg);
      o.skip(start);
      Name root;
      read_name(o, msg, &root);
      o.skip(2);
      q.has_opt = true;
      q.udp_size = o.u16();
      fail.has_opt = true;
    }
  }
  return q;
}

std::optional<Response> parse_response(Bytes msg) {
  auto h = Header::parse(msg);
  if (!h || !h->qr() || h->qdcount != 1) return std::nullopt;
  Response resp;
  resp.header = *h;
  ByteReader r(msg);
  r.skip(kHeaderLen);
  if (!read_name(r, msg, &resp.question.name)) return std::nullopt;
  resp.question.qtype = r.u16();
  resp.question.qclass = r.u16();
  if (!r.ok()) return std::nullopt;
  if (h->ancount > kMaxRecords) return std::nullopt;
  Name owner;
  for (uint16_t i = 0; i < h->ancount; ++i) {
    if (!read_name(r, msg, &owner)) return std::nullopt;
    const uint16_t type = r.u16();
    const uint16_t cls = r.u16();
    const uint32_t ttl = r.u32();
    const uint16_t rdlen = r.u16();
    if (!r.ok() || rdlen > r.remaining()) return std::nullopt;
    const size_t rd_start = r.pos();
    Record rec;
    rec.type = type;
    rec.ttl = ttl;
    if (cls == kClassIn && type == kTypeA) {
      if (rdlen != 4) return std::nullopt;
      rec.addr = IpAddr(Ipv4Addr{r.u32()});
    } else if (cls == kClassIn && type == kTypeAaaa) {
      if (rdlen != 16) return std::nullopt;
      Ipv6Addr a;
      Bytes b = r.bytes(16);
      std::memcpy(a.bytes.data(), b.data(), 16);
      rec.addr = IpAddr(a);
    } else if (cls == kClassIn && type == kTypeCname) {
      Name target;
      if (!read_name(r, msg, &target) || r.pos() != rd_start + rdlen) return std::nullopt;
      rec.target = std::move(target.text);
    } else {
      r.skip(rdlen);
      continue;
    }
    rec.owner = owner.text;
    resp.records.push_back(std::move(rec));
  }
  for (uint16_t i = 0; i < h->nscount; ++i)
    if (!skip_rr(r, msg)) return std::nullopt;
  for (uint16_t i = 0; i < h->arcount; ++i) {
    const size_t start = r.pos();
    uint16_t type = 0;
    if (!skip_rr(r, msg, &type)) return std::nullopt;
    if (type == kTypeOpt && !resp.has_opt) {
      resp.has_opt = true;
      resp.opt_offset = start;
      resp.opt_len = r.pos() - start;
    }
  }
  return resp;
}

bool same_question(const Question& a, const Question& b) noexcept {
  if (a.qtype != b.qtype || a.qclass != b.qclass || a.name.wire_len != b.name.wire_len) return false;
  for (size_t i = 0; i < a.name.wire_len; ++i)
    if (lower(char(a.name.wire[i])) != lower(char(b.name.wire[i]))) return false;
  return true;
}

std::vector<std::byte> build_empty(const Header& qh, const Question* question, bool has_opt, Rcode rcode, bool aa) {
  std::vector<std::byte> out(kHeaderLen + (question ? question->name.wire_len + 4 : 0) + (has_opt ? kOptLen : 0));
  ByteWriter w(out);
  Header h;
  h.id = qh.id;
  h.flags = uint16_t(flag::qr | (qh.flags & 0x7800) | (qh.flags & flag::rd) | flag::ra | (aa ? flag::aa : 0) |
                     uint16_t(rcode));
  h.qdcount = question ? 1 : 0;
  h.arcount = has_opt ? 1 : 0;
  put_header(w, h);
  if (question) put_question(w, *question);
  if (has_opt) put_opt(w);
  return out;
}

std::vector<std::byte> build_local(const Query& q, const std::vector<IpAddr>& addrs) {
  const bool want_v6 = q.question.qtype == kTypeAaaa;
  const bool want_any = q.question.qclass == kClassIn && (want_v6 || q.question.qtype == kTypeA);
  uint16_t n = 0;
  size_t rr_len = 0;
  if (want_any) {
    for (const auto& a : addrs) {
      if (a.is_v6 != want_v6) continue;
      ++n;
      rr_len += 12 + (want_v6 ? 16 : 4);
    }
  }
  std::vector<std::byte> out(kHeaderLen + q.question.name.wire_len + 4 + rr_len + (q.has_opt ? kOptLen : 0));
  ByteWriter w(out);
  Header h;
  h.id = q.header.id;
  h.flags = uint16_t(flag::qr | flag::aa | flag::ra | (q.header.flags & flag::rd));
  h.qdcount = 1;
  h.ancount = n;
  h.arcount = q.has_opt ? 1 : 0;
  put_header(w, h);
  put_question(w, q.question);
  if (want_any) {
    for (const auto& a : addrs) {
      if (a.is_v6 != want_v6) continue;
      w.u16(0xc000 | kHeaderLen);  // pointer to the question name
      w.u16(q.question.qtype);
      w.u16(kClassIn);
      w.u32(kLocalTtl);
      if (want_v6) {
        w.u16(16);
        w.bytes(Bytes(reinterpret_cast<const std::byte*>(a.v6.bytes.data()), 16));
      } else {
        w.u16(4);
        w.u32(a.v4.value);
      }
    }
  }
  if (q.has_opt) put_opt(w);
  return out;
}

bool truncate_to(std::vector<std::byte>& answer, size_t limit, bool guest_opt) {
  if (answer.size() <= limit) return false;
  auto h = Header::parse(answer);
  if (!h) return false;
  std::optional<Response> resp = parse_response(answer);
  Header th;
  th.id = h->id;
  th.flags = uint16_t(h->flags | flag::tc);
  std::vector<std::byte> out;
  out.reserve(kHeaderLen + kMaxNameWire + 4 + 64);
  out.resize(kHeaderLen);
  if (resp) {
    th.qdcount = 1;
    Bytes qn = resp->question.name.wire_bytes();
    out.insert(out.end(), qn.begin(), qn.end());
    std::byte tail[4];
    store_be16(tail, resp->question.qtype);
    store_be16(tail + 2, resp->question.qclass);
    out.insert(out.end(), tail, tail + 4);
  }
  if (guest_opt) {
    th.arcount = 1;
    if (resp && resp->has_opt && out.size() + resp->opt_len <= limit) {
      out.insert(out.end(), answer.begin() + ptrdiff_t(resp->opt_offset),
                 answer.begin() + ptrdiff_t(resp->opt_offset + resp->opt_len));
    } else {
      const size_t at = out.size();
      out.resize(at + kOptLen);
      ByteWriter w(MutBytes(out.data() + at, kOptLen));
      put_opt(w);
    }
  }
  ByteWriter w(MutBytes(out.data(), kHeaderLen));
  put_header(w, th);
  answer = std::move(out);
  return true;
}

void set_id(std::vector<std::byte>& msg, uint16_t id) noexcept {
  if (msg.size() >= 2) store_be16(msg.data(), id);
}

}  // namespace moat::dns
