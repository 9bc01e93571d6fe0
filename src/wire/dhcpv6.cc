#include "wire/dhcpv6.h"

#include "wire/emit_sink.h"

namespace moat::wire {
namespace {

using detail::EmitSink;

// Option codes (RFC 8415 §21, RFC 3646 §3/§4).
constexpr uint16_t kOptClientId = 1, kOptServerId = 2, kOptIaNa = 3, kOptIaAddr = 5, kOptOro = 6,
                   kOptPreference = 7, kOptElapsedTime = 8, kOptStatusCode = 13, kOptRapidCommit = 14,
                   kOptDnsServers = 23, kOptDomainList = 24, kOptInfoRefreshTime = 32;
constexpr size_t kIaNaFixedLen = 12;    // IAID, T1, T2
constexpr size_t kIaAddrFixedLen = 24;  // address, preferred, valid

bool known_message(uint8_t t) noexcept {
  return t >= static_cast<uint8_t>(Dhcpv6Type::solicit) && t <= static_cast<uint8_t>(Dhcpv6Type::information_request);
}

/// Status Code value (RFC 8415 §21.13): a 2-byte code and UTF-8 text.
bool parse_status(Bytes v, std::optional<Dhcpv6Status>* status, std::string_view* message) noexcept {
  if (v.size() < 2) return false;
  *status = static_cast<Dhcpv6Status>(load_be16(v.data()));
  if (message) *message = std::string_view(reinterpret_cast<const char*>(v.data() + 2), v.size() - 2);
  return true;
}

bool valid_duid(Bytes v) noexcept { return !v.empty() && v.size() <= Dhcpv6Repr::kMaxDuidLen; }

/// The IA_NA value after IAID/T1/T2: keeps the first IA Address option.
bool parse_ia_na(Bytes value, Dhcpv6IaNa* ia) noexcept {
  if (value.size() < kIaNaFixedLen) return false;
  ByteReader rd(value);
  ia->iaid = rd.u32();
  ia->t1 = rd.u32();
  ia->t2 = rd.u32();
  for (size_t i = 0; !rd.empty(); ++i) {
    if (i == Dhcpv6Repr::kMaxOptions) return false;
    const uint16_t code = rd.u16();
    const uint16_t len = rd.u16();
    Bytes v = rd.bytes(len);
    if (!rd.ok()) return false;
    if (code == kOptStatusCode) {
      std::optional<Dhcpv6Status> st;
      if (!parse_status(v, &st, nullptr)) return false;
      if (!ia->status) ia->status = st;
      continue;
    }
    if (code != kOptIaAddr || ia->addr) continue;
    if (v.size() < kIaAddrFixedLen) return false;
    ByteReader a(v);
    Dhcpv6IaAddr addr;
    Bytes raw = a.bytes(16);
    for (size_t k = 0; k < 16; ++k) addr.addr.bytes[k] = load_u8(raw.data() + k);
    addr.preferred_lifetime = a.u32();
    addr.valid_lifetime = a.u32();
    ia->addr = addr;  // options inside the IA Address (a status) are not needed
  }
  return rd.ok();
}

/// Opens an option: writes the code and reserves the length; close_option() fills it.
struct OptionScope {
  EmitSink& s;
  size_t start;
  std::byte* len_field;
  OptionScope(EmitSink& sink, uint16_t code) noexcept : s(sink) {
    s.u16(code);
    len_field = s.reserve(2);
    start = s.size();
  }
  ~OptionScope() {
    const size_t n = s.size() - start;
    if (n > 0xffff) s.fail();
    if (len_field) store_be16(len_field, static_cast<uint16_t>(n));
  }
  OptionScope(const OptionScope&) = delete;
  OptionScope& operator=(const OptionScope&) = delete;
};

void put_status(EmitSink& s, Dhcpv6Status status, std::string_view message) noexcept {
  OptionScope o(s, kOptStatusCode);
  s.u16(static_cast<uint16_t>(status));
  s.bytes(as_bytes(message));
}

void put_addr(EmitSink& s, const Ipv6Addr& a) noexcept {
  s.bytes(Bytes(reinterpret_cast<const std::byte*>(a.bytes.data()), a.bytes.size()));
}

/// The one emit path; a counting sink gives len().
void write(const Dhcpv6Repr& r, EmitSink& s) noexcept {
  s.u8(static_cast<uint8_t>(r.type));
  s.u8(static_cast<uint8_t>(r.transaction_id >> 16));
  s.u16(static_cast<uint16_t>(r.transaction_id));
  if (r.server_id.size() > Dhcpv6Repr::kMaxDuidLen || r.client_id.size() > Dhcpv6Repr::kMaxDuidLen) s.fail();
  if (!r.server_id.empty()) {
    OptionScope o(s, kOptServerId);
    s.bytes(r.server_id);
  }
  if (!r.client_id.empty()) {
    OptionScope o(s, kOptClientId);
    s.bytes(r.client_id);
  }
  if (r.status) put_status(s, *r.status, r.status_message);
  if (r.preference) {
    OptionScope o(s, kOptPreference);
    s.u8(*r.preference);
  }
  if (r.rapid_commit) {
    OptionScope o(s, kOptRapidCommit);
  }
  if (r.ia_na) {
    OptionScope o(s, kOptIaNa);
    s.u32(r.ia_na->iaid);
    s.u32(r.ia_na->t1);
    s.u32(r.ia_na->t2);
    if (r.ia_na->addr) {
      OptionScope a(s, kOptIaAddr);
      put_addr(s, r.ia_na->addr->addr);
      s.u32(r.ia_na->addr->preferred_lifetime);
      s.u32(r.ia_na->addr->valid_lifetime);
    }
    if (r.ia_na->status) put_status(s, *r.ia_na->status, {});
  }
  if (!r.dns_servers.empty()) {
    OptionScope o(s, kOptDnsServers);
    for (const Ipv6Addr& a : r.dns_servers) put_addr(s, a);
  }
  if (!r.domain_list.empty()) {
    OptionScope o(s, kOptDomainList);
    for (const std::string& d : r.domain_list)
      if (!detail::put_domain_name(s, d)) s.fail();
  }
  if (r.information_refresh_time) {
    OptionScope o(s, kOptInfoRefreshTime);
    s.u32(*r.information_refresh_time);
  }
}

}  // namespace

Result<Dhcpv6Repr, ParseError> Dhcpv6Repr::parse(Bytes udp_payload) noexcept {
  if (udp_payload.size() < kHeaderLen) return unexpected(ParseError::truncated);
  ByteReader rd(udp_payload);
  Dhcpv6Repr r;
  const uint8_t type = rd.u8();
  if (!known_message(type)) return unexpected(ParseError::unsupported);
  r.type = static_cast<Dhcpv6Type>(type);
  r.transaction_id = uint32_t{rd.u8()} << 16;
  r.transaction_id |= rd.u16();
  bool seen_client = false, seen_server = false, seen_oro = false, seen_status = false;
  for (size_t i = 0; !rd.empty(); ++i) {
    if (i == kMaxOptions) return unexpected(ParseError::bad_option);
    const uint16_t code = rd.u16();
    const uint16_t len = rd.u16();
    Bytes v = rd.bytes(len);
    if (!rd.ok()) return unexpected(ParseError::bad_option);
    switch (code) {
      case kOptClientId:
        if (!valid_duid(v)) return unexpected(ParseError::bad_option);
        if (!seen_client) r.client_id = v;
        seen_client = true;
        break;
      case kOptServerId:
        if (!valid_duid(v)) return unexpected(ParseError::bad_option);
        if (!seen_server) r.server_id = v;
        seen_server = true;
        break;
      case kOptIaNa: {
        Dhcpv6IaNa ia;
        if (!parse_ia_na(v, &ia)) return unexpected(ParseError::bad_option);
        if (!r.ia_na) r.ia_na = ia;
        break;
      }
      case kOptOro:
        if (v.size() % 2 != 0) return unexpected(ParseError::bad_option);
        if (!seen_oro) r.option_request = v;
        seen_oro = true;
        break;
      case kOptPreference:
        if (v.size() != 1) return unexpected(ParseError::bad_option);
        if (!r.preference) r.preference = load_u8(v.data());
        break;
      case kOptElapsedTime:
        if (v.size() != 2) return unexpected(ParseError::bad_option);
        if (!r.elapsed_time) r.elapsed_time = load_be16(v.data());
        break;
      case kOptRapidCommit:
        if (!v.empty()) return unexpected(ParseError::bad_option);
        r.rapid_commit = true;
        break;
      case kOptStatusCode: {
        std::optional<Dhcpv6Status> st;
        std::string_view msg;
        if (!parse_status(v, &st, &msg)) return unexpected(ParseError::bad_option);
        if (!seen_status) {
          r.status = st;
          r.status_message = msg;
        }
        seen_status = true;
        break;
      }
      case kOptInfoRefreshTime:
        if (v.size() != 4) return unexpected(ParseError::bad_option);
        if (!r.information_refresh_time) r.information_refresh_time = load_be32(v.data());
        break;
      default:
        break;  // RFC 8415 §16: unknown options are ignored
    }
  }
  return r;
}

size_t Dhcpv6Repr::len() const noexcept {
  EmitSink counter;
  write(*this, counter);
  return counter.size();
}

bool Dhcpv6Repr::emit(MutBytes out) const noexcept {
  if (out.size() < len()) return false;
  EmitSink s(out);
  write(*this, s);
  return s.ok();
}

}  // namespace moat::wire
