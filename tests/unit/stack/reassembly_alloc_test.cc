// STYLE.md: adding fragments never allocates; all storage is reserved at construction.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "stack/reassembly.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<size_t> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  std::abort();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void* operator new[](size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  std::abort();
}
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

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

  g_counting = true;
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
  g_counting = false;
  EXPECT_EQ(g_allocations.load(), 0u);
  EXPECT_GT(completed, 300u);
  EXPECT_GT(counters.get(Counter::frag_timeout) + counters.get(Counter::frag_evicted), 0u);
}

}  // namespace
}  // namespace moat::stack
