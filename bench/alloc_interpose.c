// alloc_interpose.so: counts heap allocations of a process it is LD_PRELOADed into, for
// bench/alloc.sh (R-HARD: "no allocation on the data path in steady state, proven").
//
// Every malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and valloc call
// (operator new ends in malloc) adds 1 to a counter and its size to a byte counter. The two
// counters live in a file mapping: $MOAT_ALLOC_COUNT_FILE (created by the script, 16 bytes),
// so they survive however the process ends (SIGKILL included) and the script can read them
// while it runs. Without the variable nothing is counted. free() is not interposed.
//
// Built by bench/alloc.sh with `cc -O2 -shared -fPIC`; glibc only (uses __libc_* entry
// points, so no dlsym recursion).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);
extern void* __libc_valloc(size_t);

static volatile uint64_t* counters;  // [0] calls, [1] bytes; null until the constructor ran

__attribute__((constructor)) static void alloc_interpose_init(void) {
  const char* path = getenv("MOAT_ALLOC_COUNT_FILE");
  if (path == NULL || *path == '\0') return;
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  void* p = mmap(NULL, 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p != MAP_FAILED) counters = (volatile uint64_t*)p;
}

static inline void count(size_t n) {
  if (counters == NULL) return;
  __atomic_fetch_add(&counters[0], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&counters[1], n, __ATOMIC_RELAXED);
}

void* malloc(size_t n) {
  count(n);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  count(a * b);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  count(n);
  return __libc_realloc(p, n);
}
void* memalign(size_t al, size_t n) {
  count(n);
  return __libc_memalign(al, n);
}
void* aligned_alloc(size_t al, size_t n) {
  count(n);
  return __libc_memalign(al, n);
}
int posix_memalign(void** out, size_t al, size_t n) {
  count(n);
  void* p = __libc_memalign(al, n);
  if (p == NULL) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void* valloc(size_t n) {
  count(n);
  return __libc_valloc(n);
}
