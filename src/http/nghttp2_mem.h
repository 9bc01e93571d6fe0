#pragma once
// An nghttp2_mem allocator that accounts every byte libnghttp2 allocates for one connection
// (HPACK tables and buffers, the error responder's session) against a MemoryCharge and a
// hard per-connection cap. Refusal makes nghttp2 return NGHTTP2_ERR_NOMEM, which the callers
// treat as a limit: the connection is closed, nothing crashes.
#include <nghttp2/nghttp2.h>

#include <cstdint>

#include "base/memory_budget.h"

namespace moat::http {

class Nghttp2Mem {
 public:
  /// `budget` may be null (not accounted); `cap` bytes at most, whatever the budget says.
  Nghttp2Mem(MemoryBudget* budget, uint64_t cap) noexcept;
  Nghttp2Mem(const Nghttp2Mem&) = delete;
  Nghttp2Mem& operator=(const Nghttp2Mem&) = delete;

  /// Valid as long as this object; pass to nghttp2_*_new2/new3.
  nghttp2_mem* get() noexcept { return &mem_; }
  [[nodiscard]] uint64_t used() const noexcept { return used_; }

 private:
  static void* do_malloc(size_t size, void* self);
  static void do_free(void* ptr, void* self);
  static void* do_calloc(size_t n, size_t size, void* self);
  static void* do_realloc(void* ptr, size_t size, void* self);
  bool grow(uint64_t n) noexcept;

  MemoryCharge charge_;
  uint64_t cap_;
  uint64_t used_ = 0;
  nghttp2_mem mem_;
};

}  // namespace moat::http
