#include "dns/message.h"

#include <gtest/gtest.h>

#include "unit/dns/dns_builder.h"

namespace moat::dns {
namespace {

using test::Msg;
using test::query;

TEST(DnsQuery, ParsesHeaderQuestionAndEdns) {
  auto m = query(0xbeef, "WWW.Example.COM", kTypeAaaa, 1232);
  auto q = parse_query(m.bytes());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->header.id, 0xbeef);
  EXPECT_TRUE(q->header.rd());
  EXPECT_EQ(q->question.name.text, "www.example.com");
  EXPECT_EQ(q->question.name.wire_len, 17);
  EXPECT_EQ(q->question.name.wire[1], 'W');  // original case kept for the echo
  EXPECT_EQ(q->question.qtype, kTypeAaaa);
  EXPECT_TRUE(q->has_opt);
  EXPECT_EQ(q->udp_limit(), 1232u);
}

TEST(DnsQuery, UdpLimitClamped) {
  EXPECT_EQ(parse_query(query(1, "a.b", 1).bytes())->udp_limit(), 512u);
  EXPECT_EQ(parse_query(query(1, "a.b", 1, 100).bytes())->udp_limit(), 512u);
  EXPECT_EQ(parse_query(query(1, "a.b", 1, 65000).bytes())->udp_limit(), 4096u);
}

TEST(DnsQuery, Validation) {
  // Too short, or a response: garbage (dropped).
  Msg shortm;
  shortm.u16(1).u16(0);
  EXPECT_EQ(parse_query(shortm.bytes()).error().error, QueryError::garbage);
  Msg resp;
  resp.header(1, 0x8000, 1, 0, 0, 0).question("a.b", 1);
  EXPECT_EQ(parse_query(resp.bytes()).error().error, QueryError::garbage);
  // Two questions: FORMERR without a question echo.
  Msg two;
  two.header(7, 0, 2, 0, 0, 0).question("a.b", 1).question("c.d", 1);
  auto e = parse_query(two.bytes());
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().error, QueryError::formerr);
  EXPECT_FALSE(e.error().question_ok);
  // No question.
  Msg none;
  none.header(7, 0, 0, 0, 0, 0);
  EXPECT_EQ(parse_query(none.bytes()).error().error, QueryError::formerr);
  // Opcode STATUS: NOTIMP with the question.
  Msg status;
  status.header(8, 0x1000, 1, 0, 0, 0).question("a.b", 1);
  auto n = parse_query(status.bytes());
  EXPECT_EQ(n.error().error, QueryError::notimp);
  EXPECT_TRUE(n.error().question_ok);
  // A truncated question.
  auto cut = query(9, "abc.def", 1);
  cut.b.resize(cut.b.size() - 3);
  EXPECT_EQ(parse_query(cut.bytes()).error().error, QueryError::formerr);
  // Two OPT records: FORMERR (RFC 6891 §6.1.1).
  Msg opts;
  opts.header(9, 0, 1, 0, 0, 2).question("a.b", 1).opt(512).opt(512);
  EXPECT_EQ(parse_query(opts.bytes()).error().error, QueryError::formerr);
}

TEST(DnsName, CompressionAndBounds) {
  // Answer whose owner is a pointer to the question name.
  Msg r;
  r.header(1, 0x8180, 1, 1, 0, 0).question("x.example.com", 1).ptr(12).a(60, 1, 2, 3, 4);
  auto p = parse_response(r.bytes());
  ASSERT_TRUE(p);
  ASSERT_EQ(p->records.size(), 1u);
  EXPECT_EQ(p->records[0].owner, "x.example.com");
  EXPECT_EQ(p->records[0].addr, IpAddr(Ipv4Addr::from_octets(1, 2, 3, 4)));
}

TEST(DnsName, PointerLoopsRejected) {
  // A pointer to itself.
  Msg self;
  self.header(1, 0x8180, 1, 0, 0, 0).ptr(12).u16(1).u16(1);
  EXPECT_FALSE(parse_response(self.bytes()));
  // Two pointers pointing at each other (the second points forward): rejected.
  Msg fwd;
  fwd.header(1, 0x8180, 1, 1, 0, 0).question("a.b", 1);
  const uint16_t at = uint16_t(fwd.b.size());
  fwd.ptr(uint16_t(at + 2)).ptr(at).u16(1).u16(1).u32(1).u16(4).u32(0);
  EXPECT_FALSE(parse_response(fwd.bytes()));
  // A label pointing past the end.
  Msg past;
  past.header(1, 0x8180, 1, 0, 0, 0).u8(40).u8('a');
  EXPECT_FALSE(parse_response(past.bytes()));
}

TEST(DnsName, LengthLimit) {
  // 4 labels of 63 = 4*64+1 = 257 > 255: rejected; 3 labels + 61 = 255: accepted.
  std::string l63(63, 'a');
  Msg big;
  big.header(1, 0, 1, 0, 0, 0).question(l63 + "." + l63 + "." + l63 + "." + l63, 1);
  EXPECT_EQ(parse_query(big.bytes()).error().error, QueryError::formerr);
  Msg ok;
  ok.header(1, 0, 1, 0, 0, 0).question(l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b'), 1);
  auto q = parse_query(ok.bytes());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->question.name.wire_len, 255);
}

TEST(DnsName, OddBytesEscaped) {
  Msg m;
  m.header(1, 0, 1, 0, 0, 0).u8(3).u8('a').u8('.').u8(0x01).u8(3).u8('c').u8('o').u8('m').u8(0).u16(1).u16(1);
  auto q = parse_query(m.bytes());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->question.name.text, "a\\046\\001.com");
}

TEST(DnsResponse, RecordsCnameAndSkippedTypes) {
  Msg r;
  r.header(5, 0x8180, 1, 3, 0, 1).question("alias.test", 1);
  // alias.test CNAME www.test (target compressed into the message)
  r.ptr(12).u16(kTypeCname).u16(1).u32(300).u16(6).u8(3).u8('w').u8('w').u8('w').ptr(18);
  // a TXT record (skipped)
  r.ptr(12).u16(16).u16(1).u32(300).u16(2).u8(1).u8('x');
  // www.test A
  r.name("www.test").a(30, 93, 184, 216, 34);
  r.opt(1232);
  auto p = parse_response(r.bytes());
  ASSERT_TRUE(p);
  ASSERT_EQ(p->records.size(), 2u);
  EXPECT_EQ(p->records[0].type, kTypeCname);
  EXPECT_EQ(p->records[0].target, "www.test");
  EXPECT_EQ(p->records[1].owner, "www.test");
  EXPECT_EQ(p->records[1].ttl, 30u);
  EXPECT_TRUE(p->has_opt);
  EXPECT_EQ(p->opt_len, 11u);
}

TEST(DnsResponse, BadRdataLengths) {
  Msg r;
  r.header(5, 0x8180, 1, 1, 0, 0).question("a.test", 1).ptr(12).u16(1).u16(1).u32(1).u16(5).u32(0).u8(0);
  EXPECT_FALSE(parse_response(r.bytes()));
  Msg over;
  over.header(5, 0x8180, 1, 1, 0, 0).question("a.test", 1).ptr(12).u16(1).u16(1).u32(1).u16(40).u32(0);
  EXPECT_FALSE(parse_response(over.bytes()));
}

TEST(DnsBuild, NxdomainEchoesIdOpcodeRdQuestion) {
  auto q = parse_query(query(0x1234, "Blocked.Example", kTypeA, 4096).bytes());
  ASSERT_TRUE(q);
  auto out = build_empty(q->header, &q->question, q->has_opt, Rcode::nxdomain);
  auto r = parse_response(out);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header.id, 0x1234);
  EXPECT_EQ(r->header.rcode(), Rcode::nxdomain);
  EXPECT_TRUE(r->header.rd());
  EXPECT_TRUE(r->header.flags & flag::ra);
  EXPECT_FALSE(r->header.flags & flag::aa);
  EXPECT_EQ(r->header.opcode(), 0);
  EXPECT_TRUE(same_question(r->question, q->question));
  EXPECT_EQ(r->question.name.wire[1], 'B');
  EXPECT_TRUE(r->has_opt);
}

TEST(DnsBuild, LocalAnswer) {
  auto q = parse_query(query(9, "host.moat.internal", kTypeA).bytes());
  std::vector<IpAddr> addrs{IpAddr(Ipv4Addr::from_octets(100, 96, 0, 1)), IpAddr(*Ipv6Addr::parse("fd00::1"))};
  auto out = build_local(*q, addrs);
  auto r = parse_response(out);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->header.flags & flag::aa);
  ASSERT_EQ(r->records.size(), 1u);
  EXPECT_EQ(r->records[0].addr, addrs[0]);
  EXPECT_EQ(r->records[0].ttl, kLocalTtl);
  EXPECT_EQ(r->records[0].owner, "host.moat.internal");
  auto q6 = parse_query(query(9, "host.moat.internal", kTypeAaaa).bytes());
  auto r6 = parse_response(build_local(*q6, addrs));
  ASSERT_EQ(r6->records.size(), 1u);
  EXPECT_EQ(r6->records[0].addr, addrs[1]);
  auto qmx = parse_query(query(9, "host.moat.internal", 15).bytes());
  auto rmx = parse_response(build_local(*qmx, addrs));
  EXPECT_EQ(rmx->records.size(), 0u);  // NODATA
  EXPECT_EQ(rmx->header.rcode(), Rcode::noerror);
}

TEST(DnsTruncate, AtEveryLimit) {
  // An answer with 40 A records (~ 700 bytes), with and without the guest's OPT.
  for (bool guest_opt : {false, true}) {
    Msg r;
    r.header(77, 0x8180, 1, 40, 0, 1).question("big.test", 1);
    for (int i = 0; i < 40; ++i) r.ptr(12).a(60, 10, 0, 0, uint8_t(i));
    r.opt(4096);
    const size_t full = r.b.size();
    const size_t minimal = 12 + 10 + 4 + (guest_opt ? 11 : 0);
    for (size_t limit = 0; limit <= full + 1; ++limit) {
      std::vector<std::byte> a = r.b;
      const bool cut = truncate_to(a, limit, guest_opt);
      if (limit >= full) {
        EXPECT_FALSE(cut);
        EXPECT_EQ(a.size(), full);
        continue;
      }
      ASSERT_TRUE(cut) << limit;
      ASSERT_EQ(a.size(), minimal) << limit;
      auto p = parse_response(a);
      ASSERT_TRUE(p);
      EXPECT_TRUE(p->header.tc());
      EXPECT_EQ(p->header.id, 77);
      EXPECT_EQ(p->header.ancount, 0);
      EXPECT_EQ(p->has_opt, guest_opt);
      EXPECT_EQ(p->question.name.text, "big.test");
    }
  }
}

TEST(DnsTruncate, KeepsRcode) {
  Msg r;
  r.header(1, 0x8183, 1, 0, 0, 0).question("x.test", 1);
  for (int i = 0; i < 600; ++i) r.u8(0);  // junk past the counted sections
  std::vector<std::byte> a = r.b;
  ASSERT_TRUE(truncate_to(a, 512, false));
  EXPECT_EQ(Header::parse(a)->rcode(), Rcode::nxdomain);
}

}  // namespace
}  // namespace moat::dns
