#pragma once
// Invariant checks (Envoy): MOAT_ASSERT is debug-only, MOAT_CHECK is fatal always.
// Never use either on values that come from the guest or the host.
#include <cstdio>
#include <cstdlib>

#define MOAT_CHECK(cond)                                                             \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "moat: fatal: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#ifdef NDEBUG
#define MOAT_ASSERT(cond) ((void)0)
#else
#define MOAT_ASSERT(cond) MOAT_CHECK(cond)
#endif
