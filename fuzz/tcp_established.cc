// libFuzzer: an established TcpConn on an in-process StreamPeer, fed a sequence of guest
// segments and app/timer events decoded from the input. Must never crash, hang or trip a
// sanitizer, whatever the guest sends.
//
// Input: byte 0 picks the family; then records of
//   op (1) | flags (1) | seq delta (2, signed, from rcv_nxt) | ack delta (2, signed, from
//   snd_nxt) | window (2) | len (1) | len payload bytes
// where op % 8: 0-4 guest segment, 5 app writes `len` bytes, 6 app reads / timer advance
// by len x 7 ms, 7 flush (len % 17 == 0: app EOF, len == 255: app abort).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "flows/stream_peer.h"
#include "flows/tcp_conn.h"
#include "unit/flows/tcp_test_support.h"

using namespace moat;
using namespace moat::flows;
namespace tf = wire::tcp_flags;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  test::FakeGuestIo io;
  io.capture = false;
  io.mtu_value = 1500;
  StreamPeer peer(8192);
  TcpParams params;
  params.max_window = 8192;
  params.own_mss = 1460;
  const bool v6 = data[0] & 1;
  FlowKey key;
  if (v6) {
    key.guest = *Ipv6Addr::parse("fd42::2");
    key.remote = *Ipv6Addr::parse("2001:db8::1");
  } else {
    key.guest = Ipv4Addr::from_octets(100, 96, 0, 2);
    key.remote = Ipv4Addr::from_octets(1, 2, 3, 4);
  }
  key.guest_port = 40000;
  key.remote_port = 443;
  Instant now{std::chrono::hours(1)};
  // A small reordering pool (two chunks) so the fuzzer also reaches exhaustion.
  OooPool pool(2 * OooPool::kChunkSize);
  TcpConn conn;
  conn.set_ooo_pool(&pool);
  wire::TcpRepr syn;
  syn.src_port = 40000;
  syn.dst_port = 443;
  syn.seq = wire::SeqNum{1000};
  syn.flags = tf::syn;
  syn.window = 65535;
  syn.mss = 536;
  if (data[0] & 2) syn.window_scale = uint8_t(data[0] >> 4);
  conn.open_passive(key, syn, wire::SeqNum{0xfffff000u}, params, io, peer, now);
  conn.on_peer_connected(now);
  wire::SeqNum rcv_nxt{1001}, snd_nxt{0xfffff001u};
  {
    wire::TcpRepr ack;
    ack.src_port = 40000;
    ack.dst_port = 443;
    ack.seq = rcv_nxt;
    ack.ack = snd_nxt;
    ack.flags = tf::ack;
    ack.window = 65535;
    conn.on_segment(ack, {}, now);
  }
  std::vector<std::byte> scratch(256);
  size_t pos = 1;
  while (pos + 9 <= size && !conn.finished()) {
    const uint8_t op = data[pos], flags = data[pos + 1];
    const int16_t dseq = int16_t(uint16_t(data[pos + 2] << 8 | data[pos + 3]));
    const int16_t dack = int16_t(uint16_t(data[pos + 4] << 8 | data[pos + 5]));
    const uint16_t window = uint16_t(data[pos + 6] << 8 | data[pos + 7]);
    size_t len = data[pos + 8];
    pos += 9;
    if (len > size - pos) len = size - pos;
    const Bytes payload(reinterpret_cast<const std::byte*>(data + pos), len);
    pos += len;
    switch (op % 8) {
      case 5:
        peer.app_write(payload);
        conn.on_peer_readable(now);
        break;
      case 6:
        peer.app_read(MutBytes(scratch));
        conn.on_peer_writable(now);
        now += std::chrono::milliseconds(7 * len);
        conn.on_timer(now);
        break;
      case 7:
        if (len == 255) peer.app_abort();
        else if (len % 17 == 0) peer.app_shutdown_write();
        conn.on_peer_readable(now);
        conn.flush(now);
        break;
      default: {
        wire::TcpRepr r;
        r.src_port = 40000;
        r.dst_port = 443;
        r.seq = conn.rcv_nxt() + uint32_t(int32_t(dseq));
        r.ack = conn.snd_nxt() + uint32_t(int32_t(dack));
        r.flags = flags;
        r.window = window;
        conn.on_segment(r, payload, now);
        break;
      }
    }
    if (auto d = conn.next_deadline(); d && *d <= now) conn.on_timer(now);
  }
  return 0;
}
