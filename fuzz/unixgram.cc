// Unixgram framing fuzz target (SPEC R-TR-4): datagrams from three senders — two bound
// (abstract) sockets and one unbound — into UnixgramTransport::receive(), checked against a
// model of its peer rules: the first datagram from a bound sender makes it the peer, a 4-byte
// `VFKT` from a bound sender rebinds the peer, every other sender is dropped, runts and
// oversize datagrams are dropped, and only frames of 14-65550 bytes from the current peer are
// delivered, byte for byte. A frame sent back must reach the current peer and nobody else.
//
// Input: records of [sender byte][length: 2 bytes, big-endian, times 2 when the sender
// byte's bit 2 is set, so oversize datagrams are reachable][payload, cut at the input's end].
// Seeds: fuzz/corpus/unixgram.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "transport/frame_transport.h"
#include "transport/unix_socket.h"
#include "transport/unixgram.h"

namespace {

using namespace moat;

/// A datagram socket bound to a fresh abstract name (bound = true), or unbound.
int sender(bool bound, const std::string& name) {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || !bound) return fd;
  sockaddr_un sa{};
  auto len = transport::make_unix_addr(name, &sa);
  if (!len || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), *len) != 0) {
    ::close(fd);
    return -1;
  }
  int big = 1 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  return fd;
}

/// Bytes waiting on `fd` (one datagram), or -1.
ssize_t pending(int fd, std::vector<std::byte>& buf) {
  return ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 400000) return 0;
  static unsigned run = 0;
  ++run;
  const std::string base = "@moat-fuzz-ug-" + std::to_string(::getpid()) + "-" + std::to_string(run);
  auto bound = transport::bind_unix(base, SOCK_DGRAM, 0600);
  if (!bound) return 0;
  sockaddr_un moat_addr{};
  const socklen_t moat_len = *transport::make_unix_addr(base, &moat_addr);
  Counters counters;
  auto link = transport::UnixgramTransport::create(std::move(*bound), counters);
  if (!link) return 0;
  const std::array<int, 3> fds = {sender(true, base + "-a"), sender(true, base + "-b"), sender(false, {})};
  if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0) {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
    return 0;
  }

  int peer = -1;  // the model: index of the sender moat answers to
  std::vector<std::byte> back(transport::kMaxFrameLen + 16);
  size_t pos = 0;
  for (int rec = 0; rec < 64 && pos + 3 <= size; ++rec) {
    const uint8_t sel = data[pos];
    size_t len = (size_t(data[pos + 1]) << 8 | data[pos + 2]) * ((sel & 4) ? 2 : 1);
    pos += 3;
    if (len > size - pos) len = size - pos;
    const int who = sel % 3;
    const uint8_t* payload = data + pos;
    pos += len;
    if (::sendto(fds[size_t(who)], payload, len, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&moat_addr),
                 moat_len) != ssize_t(len))
      continue;  // the kernel refused it (buffer full): not delivered, nothing to model

    // The model's expectation for this datagram.
    const bool handshake = len == 4 && std::memcmp(payload, "VFKT", 4) == 0;
    bool expect = false;
    if (who != 2) {
      if (handshake) {
        peer = who;
      } else if (peer < 0 || peer == who) {
        peer = who;
        expect = len >= transport::kMinFrameLen && len <= transport::kMaxFrameLen;
      }
    }
    size_t delivered = 0;
    auto r = (*link)->receive(
        [&](Bytes f) {
          if (f.size() != len || std::memcmp(f.data(), payload, len) != 0) std::abort();
          ++delivered;
        },
        transport::kMaxFramesPerWakeup);
    if (!r) std::abort();  // a datagram socket never ends by itself
    if (delivered != (expect ? 1u : 0u)) std::abort();

    // A frame back reaches the model's peer only.
    if (peer >= 0 && len >= transport::kMinFrameLen && len <= 2000) {
      if (!(*link)->send(Bytes(reinterpret_cast<const std::byte*>(payload), len))) continue;  // buffer full: dropped
      for (int i = 0; i < 2; ++i) {
        const ssize_t got = pending(fds[size_t(i)], back);
        if (i == peer ? got != ssize_t(len) : got >= 0) std::abort();
      }
    }
  }
  for (int fd : fds) ::close(fd);
  return 0;
}
