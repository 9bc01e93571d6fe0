#include "wire/dhcpv4.h"

#include <algorithm>
#include <array>
#include <optional>

#include "wire/emit_sink.h"

namespace moat::wire {
namespace {

using detail::EmitSink;

// RFC 2131 §2, Figure 1.
constexpr size_t kOpOff = 0, kHtypeOff = 1, kHlenOff = 2, kXidOff = 4, kSecsOff = 8, kFlagsOff = 10,
                 kCiaddrOff = 12, kYiaddrOff = 16, kSiaddrOff = 20, kGiaddrOff = 24, kChaddrOff = 28,
                 kSnameOff = 44, kFileOff = 108, kCookieOff = 236, kOptionsOff = 240;
constexpr size_t kChaddrLen = 16, kSnameLen = 64, kFileLen = 128;
constexpr uint8_t kOpRequest = 1, kOpReply = 2, kHtypeEthernet = 1, kHlenEthernet = 6;
constexpr uint16_t kFlagBroadcast = 0x8000;
constexpr uint32_t kMagicCookie = 0x63825363;  // 99.130.83.99 (RFC 2131 §3)

// Option codes (RFC 2132 unless noted).
constexpr uint8_t kOptPad = 0, kOptSubnetMask = 1, kOptRouter = 3, kOptDns = 6, kOptHostname = 12,
                  kOptDomainName = 15, kOptMtu = 26, kOptBroadcast = 28, kOptRequestedIp = 50,
                  kOptLeaseTime = 51, kOptOverload = 52, kOptMessageType = 53, kOptServerId = 54,
                  kOptParamRequest = 55, kOptMessage = 56, kOptMaxSize = 57, kOptRenewal = 58,
                  kOptRebinding = 59, kOptClientId = 61, kOptSearch = 119 /* RFC 3397 */,
                  kOptClasslessRoutes = 121 /* RFC 3442 */, kOptEnd = 255;
// Option 52 values (RFC 2132 §9.3).
constexpr uint8_t kOverloadFile = 1, kOverloadSname = 2;

/// Each step of an area walk consumes at least one byte of a UDP payload (< 64 KiB), so
/// this bound is never reached by a well-formed walk; it keeps the loop visibly finite.
constexpr size_t kMaxAreaSteps = 65536;
constexpr size_t kMaxChunk = 255;  // one option's value (RFC 3396 §4 for longer ones)

Ipv4Addr load_addr(const std::byte* p) noexcept { return Ipv4Addr{load_be32(p)}; }
std::string_view as_text(Bytes b) noexcept {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

/// State shared by the walks of the options, file and sname areas.
struct Walk {
  Dhcpv4Repr& r;
  std::array<bool, 256> seen{};  // first instance wins
  uint8_t overload = 0;
  uint8_t message_type = 0;
};

/// Required value length of the fixed-size options moat interprets, 0 for the others.
size_t fixed_len(uint8_t code) noexcept {
  switch (code) {
    case kOptOverload:
    case kOptMessageType: return 1;
    case kOptMtu:
    case kOptMaxSize: return 2;
    case kOptSubnetMask:
    case kOptBroadcast:
    case kOptRequestedIp:
    case kOptServerId:
    case kOptLeaseTime:
    case kOptRenewal:
    case kOptRebinding: return 4;
    default: return 0;
  }
}

/// RFC 3442 §2: descriptors of (width, significant destination octets, router). Returns
/// false if malformed; *default_route gets the router of the first 0/0 descriptor.
bool walk_classless_routes(Bytes v, std::optional<Ipv4Addr>* default_route) noexcept {
  if (v.size() < 5) return false;  // the shortest descriptor is 0/0 plus a router
  ByteReader rd(v);
  // A descriptor is at least 5 bytes of a value of at most 255, so at most 51 of them.
  for (size_t i = 0; i < kMaxChunk && !rd.empty(); ++i) {
    const uint8_t width = rd.u8();
    if (width > 32) return false;
    rd.skip((width + 7u) / 8u);
    const uint32_t gateway = rd.u32();
    if (!rd.ok()) return false;
    if (width == 0 && !*default_route) *default_route = Ipv4Addr{gateway};
  }
  return rd.ok() && rd.empty();
}

/// Checks and records one option. False means bad_option.
bool take_option(Walk& w, uint8_t code, Bytes v, bool in_overload_area) noexcept {
  const size_t need = fixed_len(code);
  if (need != 0 && v.size() != need) return false;
  const std::byte* p = v.data();
  Dhcpv4Repr& r = w.r;
  const bool first = !w.seen[code];
  w.seen[code] = true;
  switch (code) {
    case kOptOverload: {
      // RFC 2131 §4.1: option 52 belongs in the options field; one inside file/sname
      // would make an area claim itself (or its sibling) again.
      const uint8_t value = load_u8(p);
      if (in_overload_area || value < 1 || value > 3) return false;
      if (first) w.overload = value;
      return true;
    }
    case kOptMessageType:
      if (first) w.message_type = load_u8(p);
      return true;
    case kOptRouter:
      if (v.empty() || v.size() % 4 != 0) return false;  // RFC 2132 §3.5: n * 4, n >= 1
      if (first) r.router = load_addr(p);
      return true;
    case kOptClasslessRoutes: {
      std::optional<Ipv4Addr> def;
      if (!walk_classless_routes(v, &def)) return false;
      if (first) r.classless_default_route = def;
      return true;
    }
    default: break;
  }
  if (!first) return true;
  switch (code) {
    case kOptSubnetMask: r.subnet_mask = load_addr(p); break;
    case kOptBroadcast: r.broadcast_addr = load_addr(p); break;
    case kOptRequestedIp: r.requested_ip = load_addr(p); break;
    case kOptServerId: r.server_id = load_addr(p); break;
    case kOptLeaseTime: r.lease_time = load_be32(p); break;
    case kOptRenewal: r.renewal_time = load_be32(p); break;
    case kOptRebinding: r.rebinding_time = load_be32(p); break;
    case kOptMtu: r.interface_mtu = load_be16(p); break;
    case kOptMaxSize: r.max_message_size = load_be16(p); break;
    case kOptParamRequest: r.parameter_request_list = v; break;
    case kOptClientId: r.client_id = v; break;
    case kOptHostname: r.hostname = as_text(v); break;
    case kOptDomainName: r.domain_name = as_text(v); break;
    case kOptMessage: r.message = as_text(v); break;
    default: break;  // 6 and 119 need storage parse does not have; others are not used
  }
  return true;
}

/// Walks one option area (RFC 2132 §2: PAD, END, code-length-value). The area must end
/// with END; what follows END is padding.
bool walk_area(Walk& w, Bytes area, bool in_overload_area) noexcept {
  ByteReader rd(area);
  size_t options = 0;
  for (size_t step = 0; step < kMaxAreaSteps; ++step) {
    if (rd.empty()) return false;  // no END
    const uint8_t code = rd.u8();
    if (code == kOptPad) continue;
    if (code == kOptEnd) return true;
    if (++options > Dhcpv4Repr::kMaxOptionsPerArea) return false;
    const size_t n = rd.u8();
    const Bytes v = rd.bytes(n);
    if (!rd.ok()) return false;  // runs past the end of the area
    if (!take_option(w, code, v, in_overload_area)) return false;
  }
  return false;
}

/// An option writer that splits values over 255 bytes into consecutive instances of the
/// same option (RFC 3396 §5), so long search lists and server lists stay encodable.
class OptionWriter {
 public:
  explicit OptionWriter(EmitSink& s) noexcept : s_(s) {}
  void begin(uint8_t code) noexcept {
    code_ = code;
    open();
  }
  void bytes(Bytes b) noexcept {
    // Each pass consumes min(b.size(), 255) bytes or opens a new instance.
    while (!b.empty()) {
      if (chunk_ == kMaxChunk) {
        close();
        open();
      }
      const size_t k = std::min(b.size(), kMaxChunk - chunk_);
      s_.bytes(b.first(k));
      chunk_ += k;
      b = b.subspan(k);
    }
  }
  void u8(uint8_t v) noexcept {
    const std::byte b{v};
    bytes(Bytes(&b, 1));
  }
  void u32(uint32_t v) noexcept {
    std::array<std::byte, 4> b;
    store_be32(b.data(), v);
    bytes(b);
  }
  void end() noexcept { close(); }

  void put(uint8_t code, Bytes v) noexcept {
    begin(code);
    bytes(v);
    end();
  }
  void put_u8(uint8_t code, uint8_t v) noexcept {
    begin(code);
    u8(v);
    end();
  }
  void put_u16(uint8_t code, uint16_t v) noexcept {
    std::array<std::byte, 2> b;
    store_be16(b.data(), v);
    put(code, b);
  }
  void put_u32(uint8_t code, uint32_t v) noexcept {
    begin(code);
    u32(v);
    end();
  }

 private:
  void open() noexcept {
    s_.u8(code_);
    len_ = s_.reserve(1);
    chunk_ = 0;
  }
  void close() noexcept {
    if (len_) store_u8(len_, uint8_t(chunk_));
  }

  EmitSink& s_;
  uint8_t code_ = 0;
  std::byte* len_ = nullptr;
  size_t chunk_ = 0;
};

void put_message(EmitSink& s, const Dhcpv4Repr& r) noexcept {
  s.u8(r.op);
  s.u8(kHtypeEthernet);
  s.u8(kHlenEthernet);
  s.u8(0);  // hops
  s.u32(r.xid);
  s.u16(r.secs);
  s.u16(r.broadcast ? kFlagBroadcast : 0);
  s.u32(r.ciaddr.value);
  s.u32(r.yiaddr.value);
  s.u32(r.siaddr.value);
  s.u32(r.giaddr.value);
  s.bytes(std::as_bytes(std::span(r.chaddr.bytes)));
  s.zeros(kChaddrLen - r.chaddr.bytes.size());
  s.zeros(kSnameLen + kFileLen);
  s.u32(kMagicCookie);

  OptionWriter o(s);
  if (r.message_type) o.put_u8(kOptMessageType, static_cast<uint8_t>(*r.message_type));
  if (r.server_id) o.put_u32(kOptServerId, r.server_id->value);
  if (r.lease_time) o.put_u32(kOptLeaseTime, *r.lease_time);
  if (r.renewal_time) o.put_u32(kOptRenewal, *r.renewal_time);
  if (r.rebinding_time) o.put_u32(kOptRebinding, *r.rebinding_time);
  if (r.subnet_mask) o.put_u32(kOptSubnetMask, r.subnet_mask->value);
  if (r.broadcast_addr) o.put_u32(kOptBroadcast, r.broadcast_addr->value);
  if (r.router) o.put_u32(kOptRouter, r.router->value);
  if (!r.dns_servers.empty()) {
    o.begin(kOptDns);
    for (const Ipv4Addr& a : r.dns_servers) o.u32(a.value);
    o.end();
  }
  if (r.interface_mtu) o.put_u16(kOptMtu, *r.interface_mtu);
  if (!r.hostname.empty()) o.put(kOptHostname, as_bytes(r.hostname));
  if (!r.domain_name.empty()) o.put(kOptDomainName, as_bytes(r.domain_name));
  if (!r.search_domains.empty()) {
    // RFC 3397 §2: the names concatenated in DNS encoding (compression is optional).
    o.begin(kOptSearch);
    for (const std::string& name : r.search_domains) {
      if (!detail::put_domain_name(o, name)) s.fail();
    }
    o.end();
  }
  if (r.classless_default_route) {
    // RFC 3442 §2: width 0, no destination octets, then the router.
    o.begin(kOptClasslessRoutes);
    o.u8(0);
    o.u32(r.classless_default_route->value);
    o.end();
  }
  if (!r.message.empty()) o.put(kOptMessage, as_bytes(r.message));
  if (r.requested_ip) o.put_u32(kOptRequestedIp, r.requested_ip->value);
  if (r.max_message_size) o.put_u16(kOptMaxSize, *r.max_message_size);
  if (!r.parameter_request_list.empty()) o.put(kOptParamRequest, r.parameter_request_list);
  if (!r.client_id.empty()) o.put(kOptClientId, r.client_id);
  s.u8(kOptEnd);
  if (s.size() < Dhcpv4Repr::kBootpMinLen) s.zeros(Dhcpv4Repr::kBootpMinLen - s.size());
}

}  // namespace

Result<Dhcpv4Repr, ParseError> Dhcpv4Repr::parse(Bytes udp_payload) noexcept {
  if (udp_payload.size() < kMinLen) return unexpected(ParseError::truncated);
  const std::byte* p = udp_payload.data();
  const uint8_t op = load_u8(p + kOpOff);
  if ((op != kOpRequest && op != kOpReply) || load_u8(p + kHtypeOff) != kHtypeEthernet ||
      load_u8(p + kHlenOff) != kHlenEthernet || load_be32(p + kCookieOff) != kMagicCookie) {
    return unexpected(ParseError::bad_version);
  }
  Dhcpv4Repr r;
  r.op = op;
  r.xid = load_be32(p + kXidOff);
  r.secs = load_be16(p + kSecsOff);
  r.broadcast = (load_be16(p + kFlagsOff) & kFlagBroadcast) != 0;
  r.ciaddr = load_addr(p + kCiaddrOff);
  r.yiaddr = load_addr(p + kYiaddrOff);
  r.siaddr = load_addr(p + kSiaddrOff);
  r.giaddr = load_addr(p + kGiaddrOff);
  for (size_t i = 0; i < r.chaddr.bytes.size(); ++i) r.chaddr.bytes[i] = load_u8(p + kChaddrOff + i);

  Walk w{r};
  if (!walk_area(w, udp_payload.subspan(kOptionsOff), false)) return unexpected(ParseError::bad_option);
  // RFC 2131 §4.1: with overload, "file" is read before "sname". Each is walked at most
  // once and may not overload again, so the walk cannot loop.
  if ((w.overload & kOverloadFile) && !walk_area(w, udp_payload.subspan(kFileOff, kFileLen), true)) {
    return unexpected(ParseError::bad_option);
  }
  if ((w.overload & kOverloadSname) && !walk_area(w, udp_payload.subspan(kSnameOff, kSnameLen), true)) {
    return unexpected(ParseError::bad_option);
  }
  // RFC 2131 §3: every DHCP message carries option 53; without it this is plain BOOTP.
  if (!w.seen[kOptMessageType]) return unexpected(ParseError::bad_option);
  if (w.message_type < static_cast<uint8_t>(DhcpMessageType::discover) ||
      w.message_type > static_cast<uint8_t>(DhcpMessageType::inform)) {
    return unexpected(ParseError::unsupported);
  }
  r.message_type = static_cast<DhcpMessageType>(w.message_type);
  return r;
}

size_t Dhcpv4Repr::len() const noexcept {
  EmitSink count;
  put_message(count, *this);
  return count.size();
}

bool Dhcpv4Repr::emit(MutBytes out) const noexcept {
  EmitSink count;
  put_message(count, *this);
  const size_t n = count.size();
  if (!count.ok() || out.size() < n) return false;
  EmitSink w(out.first(n));
  put_message(w, *this);
  return w.ok();  // always true: the counting pass sized the buffer
}

}  // namespace moat::wire
