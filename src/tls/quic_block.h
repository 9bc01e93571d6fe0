#pragma once
// QuicBlocker: R-TLS-7. While interception is on and tls.block_quic holds (the default),
// UDP to a port in tls.ports is refused with ICMP port unreachable, so clients (browsers,
// curl --http3, Go's quic-go) fall back to TCP, where TLS can be intercepted. Under
// policy.deny_response = drop the datagram is dropped silently. Counted tls.quic_blocked.
//
// It is a flows::PacketHook registered after the published-port replies and DNS (R-UDP-1
// step 4): a reply on a published UDP mapping from a guest port that happens to be in
// tls.ports is not QUIC toward the internet and passes.
#include <cstdint>
#include <vector>

#include "base/counters.h"
#include "flows/dispatch.h"
#include "flows/guest_io.h"

namespace moat::tls {

struct QuicBlockConfig {
  std::vector<uint16_t> ports{443};  ///< tls.ports
  bool deny_silently = false;        ///< policy.deny_response = drop: no ICMP
};

class QuicBlocker final : private flows::PacketHook {
 public:
  QuicBlocker(Counters& counters, flows::GuestIo& io, QuicBlockConfig config);
  QuicBlocker(const QuicBlocker&) = delete;
  QuicBlocker& operator=(const QuicBlocker&) = delete;

  /// Registers the UDP hook with `d` (call it only when blocking is on).
  void attach(flows::Dispatch& d);

 private:
  bool on_guest_packet(const flows::GuestPacket& p) override;

  Counters& counters_;
  flows::GuestIo& io_;
  QuicBlockConfig cfg_;
};

}  // namespace moat::tls
