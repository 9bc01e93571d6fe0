// QEMU stream framing fuzz target (SPEC R-TR-1/R-TR-3): arbitrary bytes from the "VM" over a
// connected stream socket into QemuStreamTransport::receive(), written in up to three chunks
// (split points from the first two input bytes) so reassembly across reads is exercised, then
// end of stream. Every delivered frame must be 14-65550 bytes and lie inside the input; the link
// must end with kLinkGone (the inherited-fd mode ends at EOF or a framing error). Seeds:
// fuzz/corpus/qemu_stream (an ARP request, two frames, a runt, zero/oversize prefixes, a cut frame).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "transport/qemu_stream.h"

namespace {

using namespace moat;

void drain(transport::FrameTransport& link, size_t* delivered_bytes, bool* gone) {
  for (int i = 0; i < 64 && !*gone; ++i) {
    auto r = link.receive(
        [&](Bytes f) {
          if (f.size() < transport::kMinFrameLen || f.size() > transport::kMaxFrameLen) std::abort();
          *delivered_bytes += f.size() + 4;
        },
        transport::kMaxFramesPerWakeup);
    if (!r) {
      if (!transport::is_link_gone(r.error())) std::abort();
      *gone = true;
      return;
    }
    if (*r == 0) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 200000) return 0;  // stays within the socket buffer: every write completes at once
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  int big = 1 << 20;
  ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  ::setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  Counters counters;
  auto t = transport::QemuStreamTransport::from_connected_fd(UniqueFd(sv[0]), counters);
  if (!t) {
    ::close(sv[1]);
    return 0;
  }
  size_t cut1 = size ? data[0] % (size + 1) : 0;
  size_t cut2 = size > 1 ? cut1 + data[1] * 64 % (size - cut1 + 1) : size;
  const size_t cuts[] = {0, cut1, cut2, size};
  size_t delivered = 0;
  bool gone = false;
  for (int i = 0; i < 3 && !gone; ++i) {
    size_t len = cuts[i + 1] - cuts[i];
    if (len && ::write(sv[1], data + cuts[i], len) != ssize_t(len)) break;
    drain(**t, &delivered, &gone);
  }
  ::close(sv[1]);
  drain(**t, &delivered, &gone);
  if (!gone) std::abort();  // end of stream must end an inherited connection
  if (delivered > size) std::abort();
  return 0;
}
