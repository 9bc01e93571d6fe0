// Deterministic getrandom(2) for the in-process harness (see sim_rng.h). moat seeds its
// keyed hashes and TCP initial sequence numbers from getrandom() (flows/flow_table.h
// SipKey::random, stack/interface.cc); a run that must give byte-identical pcaps for the
// same seed needs those to repeat too. Defining the symbol in the test binary makes the
// static libraries' calls bind here instead of to libc (the executable's definition comes
// first in symbol resolution); nothing in src/ changes. Never link this into moat itself.
#include <sys/random.h>
#include <sys/types.h>

#include <cstring>

#include "support/sim_rng.h"

namespace {
moat::test::SimRng g_rng{0x6d6f6174};
uint64_t g_calls = 0;
}  // namespace

namespace moat::test {
void set_getrandom_seed(uint64_t seed) noexcept { g_rng = SimRng(seed); }
uint64_t getrandom_calls() noexcept { return g_calls; }
}  // namespace moat::test

extern "C" ssize_t getrandom(void* buf, size_t len, unsigned int /*flags*/) {
  ++g_calls;
  auto* out = static_cast<unsigned char*>(buf);
  size_t done = 0;
  while (done < len) {
    const uint64_t v = g_rng.next();
    const size_t n = len - done < sizeof v ? len - done : sizeof v;
    std::memcpy(out + done, &v, n);
    done += n;
  }
  return static_cast<ssize_t>(len);
}
