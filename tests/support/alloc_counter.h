#pragma once
// Counts global operator new calls between start and stop (STYLE.md: steady state does
// zero allocations). The replacement operator new lives in alloc_counter.cc, a separate
// translation unit, so g++ never inlines the malloc/free pair into a new/delete site
// (-Wmismatched-new-delete).
#include <cstddef>

namespace moat::test {
void start_counting_allocations() noexcept;
/// Stops counting and returns the allocations seen since start_counting_allocations().
size_t stop_counting_allocations() noexcept;
}  // namespace moat::test
