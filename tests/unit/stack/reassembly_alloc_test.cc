// STYLE.md: adding fragments never allocates; all storage is reserved at construction.
#include <gtest/gtest.h>

#include <vector>

#include "support/alloc_counter.h"

#include "stack/reassembly.h"

// The default operator new[] calls operator new, which support/alloc_counter.cc counts.

namespace moat::stack {
namespace {

TEST(ReassemblyAlloc, FragmentsDoNotAllocate) {
  Counters counters;
  Reassembler r(ReassemblyConfig{}, counters);
  std::vector<std::byte> data(4000, std::byte{0x5a});
  wire::Ipv4Repr ip;
  ip.src = Ipv4Addr::from_octets(100, 96, 0, 2);
  ip.dst = Ipv4Addr::from_octets(192, 0, 2, 1);
  ip.protocol = wire::kProtoUdp;
  const Instant t0{std::chrono::hours(1)};

  moat::test::start_counting_allocations();
  size_t completed = 0;
  for (uint16_t id = 0; id < 500; ++id) {  // > max_datagrams: eviction and timeouts included
    ip.ident = id;
    for (uint16_t off = 0; off < 4000; off += 1000) {
      ip.frag_offset = off;
      ip.more_fragments = off + 1000 < 4000;
      if (id % 3 == 0 && off == 1000) continue;  // leave some incomplete
      if (r.add_v4(ip, Bytes(data.data() + off, 1000), t0 + std::chrono::milliseconds(id * 50))) ++completed;
    }
    r.expire(t0 + std::chrono::milliseconds(id * 50));
  }
  const size_t allocations = moat::test::stop_counting_allocations();
  EXPECT_EQ(allocations, 0u);
  EXPECT_GT(completed, 300u);
  EXPECT_GT(counters.get(Counter::frag_timeout) + counters.get(Counter::frag_evicted), 0u);
}

}  // namespace
}  // namespace moat::stack
