#include "http/nghttp2_mem.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace moat::http {

namespace {
// Each block carries its size in front, aligned for any type.
constexpr size_t kHeader = alignof(std::max_align_t);
}  // namespace

Nghttp2Mem::Nghttp2Mem(MemoryBudget* budget, uint64_t cap) noexcept
    : charge_(budget), cap_(cap), mem_{this, &do_malloc, &do_free, &do_calloc, &do_realloc} {}

bool Nghttp2Mem::grow(uint64_t n) noexcept {
  if (n > cap_ || used_ > cap_ - n) return false;
  if (!charge_.try_resize(used_ + n)) return false;
  used_ += n;
  return true;
}

void* Nghttp2Mem::do_malloc(size_t size, void* self) {
  auto* m = static_cast<Nghttp2Mem*>(self);
  if (size > SIZE_MAX - kHeader || !m->grow(size + kHeader)) return nullptr;
  auto* p = static_cast<unsigned char*>(std::malloc(size + kHeader));
  if (p == nullptr) {
    m->used_ -= size + kHeader;
    m->charge_.resize(m->used_);
    return nullptr;
  }
  std::memcpy(p, &size, sizeof size);
  return p + kHeader;
}

void Nghttp2Mem::do_free(void* ptr, void* self) {
  if (ptr == nullptr) return;
  auto* m = static_cast<Nghttp2Mem*>(self);
  auto* p = static_cast<unsigned char*>(ptr) - kHeader;
  size_t size;
  std::memcpy(&size, p, sizeof size);
  m->used_ -= size + kHeader;
  m->charge_.resize(m->used_);
  std::free(p);
}

void* Nghttp2Mem::do_calloc(size_t n, size_t size, void* self) {
  if (size != 0 && n > SIZE_MAX / size) return nullptr;
  void* p = do_malloc(n * size, self);
  if (p != nullptr) std::memset(p, 0, n * size);
  return p;
}

void* Nghttp2Mem::do_realloc(void* ptr, size_t size, void* self) {
  if (ptr == nullptr) return do_malloc(size, self);
  if (size == 0) {
    do_free(ptr, self);
    return nullptr;
  }
  size_t old;
  std::memcpy(&old, static_cast<unsigned char*>(ptr) - kHeader, sizeof old);
  void* p = do_malloc(size, self);
  if (p == nullptr) return nullptr;
  std::memcpy(p, ptr, old < size ? old : size);
  do_free(ptr, self);
  return p;
}

}  // namespace moat::http
