#pragma once
// DNS messages (RFC 1035 §4, RFC 6891 EDNS): the parts moat reads from guest queries and
// upstream answers, and the answers it builds itself. Parsing uses a sticky ByteReader and
// never trusts a count or a pointer: names are at most 255 octets, compression pointers
// must point strictly backwards (so they cannot loop) and at most kMaxPointerHops are
// followed. Nothing here logs, allocates per byte or keeps state.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/addr.h"
#include "base/bytes.h"
#include "base/result.h"

namespace moat::dns {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kClassIn = 1;
inline constexpr size_t kHeaderLen = 12;
inline constexpr size_t kMaxNameWire = 255;  ///< RFC 1035 §3.1
inline constexpr int kMaxPointerHops = 64;
inline constexpr uint32_t kLocalTtl = 60;  ///< R-DNS-3 step 4

enum class Rcode : uint8_t { noerror = 0, formerr = 1, servfail = 2, nxdomain = 3, notimp = 4, refused = 5 };

/// Header flag bits (RFC 1035 §4.1.1) in the 16-bit flags word.
namespace flag {
inline constexpr uint16_t qr = 0x8000;
inline constexpr uint16_t aa = 0x0400;
inline constexpr uint16_t tc = 0x0200;
inline constexpr uint16_t rd = 0x0100;
inline constexpr uint16_t ra = 0x0080;
}  // namespace flag

struct Header {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  [[nodiscard]] bool qr() const noexcept { return (flags & flag::qr) != 0; }
  [[nodiscard]] uint8_t opcode() const noexcept { return uint8_t((flags >> 11) & 0xf); }
  [[nodiscard]] bool tc() const noexcept { return (flags & flag::tc) != 0; }
  [[nodiscard]] bool rd() const noexcept { return (flags & flag::rd) != 0; }
  [[nodiscard]] Rcode rcode() const noexcept { return Rcode(flags & 0xf); }
  static std::optional<Header> parse(Bytes msg) noexcept;
};

/// A name as it appeared: `wire` is the uncompressed wire form with the original case
/// (echoed back so 0x20-randomising stubs are happy), `text` is the lowercase dotted form
/// without the trailing dot ("" for the root). Label bytes that are not printable ASCII,
/// or are '.' or '\\', are written as "\\DDD", so such a name can never pass R-POL-3.
struct Name {
  std::array<uint8_t, kMaxNameWire> wire{};
  uint8_t wire_len = 0;
  std::string text;
  [[nodiscard]] Bytes wire_bytes() const noexcept { return Bytes(reinterpret_cast<const std::byte*>(wire.data()), wire_len); }
};

/// Reads a possibly compressed name at the reader's position (which ends after it).
/// `msg` is the whole message, for pointers. False (and the reader failed) on any bound.
bool read_name(ByteReader& r, Bytes msg, Name* out);

struct Question {
  Name name;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

/// What moat needs from a guest query (R-DNS-2).
struct Query {
  Header header;
  Question question;
  bool has_opt = false;
  uint16_t udp_size = 512;  ///< the guest's EDNS payload size, as sent (clamped by udp_limit())
  /// R-DNS-5: EDNS size clamped to 512-4096, or 512 without OPT.
  [[nodiscard]] size_t udp_limit() const noexcept;
};

/// How a guest query failed validation (R-DNS-2).
enum class QueryError : uint8_t {
  garbage,  ///< not even a header (or a response): drop, count drop.dns_malformed
  formerr,  ///< answer FORMERR (header parsed; question echoed when `question_ok`)
  notimp,   ///< opcode other than QUERY: answer NOTIMP
};
struct QueryFailure {
  QueryError error = QueryError::garbage;
  Header header;
  bool question_ok = false;
  Question question;  ///< valid when question_ok
  bool has_opt = false;
};

/// R-DNS-2 validation: QR=0, opcode QUERY, exactly one question with a parseable name,
/// no trailing garbage inside the counted sections. The OPT record is looked for in the
/// additional section (other additional records are skipped).
Result<Query, QueryFailure> parse_query(Bytes msg);

/// One answer-section record moat cares about. Other types are skipped (kept out of `records`).
struct Record {
  std::string owner;   ///< lowercase text
  uint16_t type = 0;   ///< kTypeA, kTypeAaaa or kTypeCname
  uint32_t ttl = 0;
  IpAddr addr;         ///< A/AAAA
  std::string target;  ///< CNAME, lowercase text
};

/// An upstream answer (header, the question, A/AAAA/CNAME answers, the OPT record's bytes).
struct Response {
  Header header;
  Question question;
  std::vector<Record> records;  ///< answer section, A/AAAA/CNAME of class IN only
  bool has_opt = false;
  size_t opt_offset = 0, opt_len = 0;  ///< the OPT RR's bytes within the message
};

inline constexpr size_t kMaxRecords = 512;  ///< more answer records than this: malformed

/// Parses an upstream answer; nullopt if it is malformed or not a response with one question.
std::optional<Response> parse_response(Bytes msg);

/// True when both are the same question (name compared case-insensitively, type, class).
bool same_question(const Question& a, const Question& b) noexcept;

// ---- Builders (each returns a whole message) --------------------------------------------

/// An answer with no records and `rcode` (NXDOMAIN, NODATA = noerror, SERVFAIL, FORMERR,
/// NOTIMP): ID, opcode and RD echoed, QR=1, RA=1, `aa` as given; the question echoed when
/// `question` is set; an OPT record (payload 1232) when the guest sent one.
std::vector<std::byte> build_empty(const Header& query_header, const Question* question, bool has_opt, Rcode rcode,
                                   bool aa = false);
/// A local authoritative answer (AA=1, TTL kLocalTtl) with one record per address of the
/// query's type (addresses of the other family are left out; none left → NODATA).
std::vector<std::byte> build_local(const Query& q, const std::vector<IpAddr>& addrs);
/// R-DNS-5: if `answer` is larger than `limit`, replace it by the header, the question and
/// (when `guest_opt`) an OPT record, with TC=1 and the answer's rcode. Returns true when cut.
bool truncate_to(std::vector<std::byte>& answer, size_t limit, bool guest_opt);

/// Overwrites the message ID (first two bytes); no-op on a message shorter than 2 bytes.
void set_id(std::vector<std::byte>& msg, uint16_t id) noexcept;

}  // namespace moat::dns
