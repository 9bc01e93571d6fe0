#pragma once
// HTTP/2 inspection of one intercepted connection (SPEC R-TLS-6; RFC 9113, RFC 7541).
//
// Frames pass through unchanged. Only header blocks are held: a HEADERS frame and its
// CONTINUATIONs are kept (raw, ≤ kMaxHeaderBlock) until END_HEADERS, decoded with an
// nghttp2 HPACK inflater that mirrors the upstream's decoder (same bytes in, same dynamic
// table), checked, then forwarded as they came. Every other frame streams through: its
// 9-byte header is read and checked, its payload is not copied (DATA goes to the scan hook,
// as h2_opaque on CONNECT / extended-CONNECT streams, RFC 8441).
//
// Checks: connection preface; frame layout per type (stream 0 or not, fixed lengths,
// padding); CONTINUATION sequencing; client stream ids odd and increasing; at most
// kMaxH2Streams open streams; header block ≤ kMaxHeaderBlock compressed and decoded, ≤
// kMaxFields fields; request pseudo-headers (RFC 9113 §8.3.1, RFC 8441 §4), lowercase names,
// no connection-specific fields; :authority (or Host) equal to the expected authority.
//   frame/stream violations → GOAWAY(PROTOCOL_ERROR or FRAME_SIZE_ERROR), close;
//   HPACK failure           → GOAWAY(COMPRESSION_ERROR), close;
//   malformed request/limit → 400 on that stream, GOAWAY(PROTOCOL_ERROR), close;
//   authority mismatch      → 421 on that stream, GOAWAY(NO_ERROR), close.
// The stream refused is never forwarded; GOAWAY names the last stream that was.
//
// Upstream side: frames pass through; their headers are followed to (a) find frame
// boundaries outside header-block sequences, where moat's own frames can be spliced in,
// (b) read SETTINGS_HEADER_TABLE_SIZE, applied to the inflater when the guest ACKs that
// SETTINGS (the moment the upstream's decoder applies it; capped at kMaxHpackTable),
// (c) follow stream ends/resets for the concurrency count and the connection window (a
// local answer carries its body only if the guest's window has room for it).
//
// Rewriting (secret injection, next issue): a rewritten block is re-encoded with an
// nghttp2_hd_deflater toward the upstream. A fresh deflater is consistent with any state of
// the upstream's decoder (it references only entries it inserted, and those are the newest
// in the decoder's table), so pass-through can switch to re-encoding at any block boundary;
// from then on every block is re-encoded, with the deflater's table ≤ the upstream's
// SETTINGS_HEADER_TABLE_SIZE (tracked here). See README.md.
#include <nghttp2/nghttp2.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/memory_budget.h"
#include "http/authority.h"
#include "http/http.h"
#include "http/local_response.h"
#include "http/nghttp2_mem.h"

namespace moat::http {

class H2Inspector {
 public:
  H2Inspector(std::string_view expected, Sink& sink, MemoryBudget* budget);
  ~H2Inspector();
  H2Inspector(const H2Inspector&) = delete;
  H2Inspector& operator=(const H2Inspector&) = delete;

  Next from_guest(Bytes in);
  Next from_upstream(Bytes in);
  Next upstream_eof();

  [[nodiscard]] bool closing() const noexcept { return closing_; }
  [[nodiscard]] size_t held_bytes() const noexcept { return block_raw_.size() + field_bytes_; }
  [[nodiscard]] size_t open_streams() const noexcept { return streams_.size(); }
  /// The upstream's HPACK table size currently applied to the guest-side inflater.
  [[nodiscard]] uint32_t hpack_table_size() const noexcept { return table_size_; }
  /// Bytes libnghttp2 holds for this connection (the inflater).
  [[nodiscard]] uint64_t nghttp2_bytes() const noexcept { return mem_.used(); }

 private:
  enum class Guest : uint8_t { preface, frame_header, payload_pass, payload_hold, closed };
  struct Stream {
    bool guest_ended = false, upstream_ended = false, opaque = false;
  };
  struct FrameHeader {
    uint32_t length = 0, stream = 0;
    uint8_t type = 0, flags = 0;
  };
  // Streams SETTINGS payloads 6 bytes at a time without holding the frame.
  struct SettingsReader {
    std::array<unsigned char, 6> entry{};
    uint8_t have = 0;
    template <class F>
    void feed(std::string_view bytes, F&& on_setting);
  };

  void process_guest(std::string_view in);
  void gflush(size_t upto);
  // Returns false when the frame was refused (the connection is closing).
  bool guest_frame_header(const FrameHeader& h);
  void guest_pass_done();
  void guest_block_frame_done();
  bool inflate(std::string_view fragment, bool final);
  bool on_field(std::string_view name, std::string_view value);
  void finish_block();
  void reset_block();

  void protocol_error(const char* reason, H2Error code, EventKind kind = EventKind::malformed);
  void stream_answer(uint32_t stream, int status, std::string body, H2Error goaway);
  void try_emit();
  bool upstream_at_boundary() const noexcept {
    return up_hdr_have_ == 0 && up_left_ == 0 && !up_in_block_;
  }
  void upstream_frame_header();
  void upstream_frame_done();
  void end_stream(uint32_t id, bool guest_side);
  void update_charge();

  std::string expected_;
  AuthorityMatcher matcher_;
  Sink& sink_;
  MemoryCharge charge_;
  Nghttp2Mem mem_;
  nghttp2_hd_inflater* inflater_ = nullptr;

  // Guest side.
  Guest guest_ = Guest::preface;
  std::string_view gin_;  // the input of the current from_guest() call
  size_t gstart_ = 0;     // start of the pending pass-through run in gin_
  size_t preface_have_ = 0;
  std::array<char, 9> ghdr_{};
  size_t ghdr_have_ = 0;
  FrameHeader gframe_;
  uint32_t gleft_ = 0;                  // payload bytes of gframe_ still to come
  std::array<unsigned char, 4> small_{};  // WINDOW_UPDATE payload
  uint32_t small_have_ = 0;
  SettingsReader guest_settings_;
  std::string block_raw_;               // held HEADERS + CONTINUATION frames, raw
  size_t block_frame_off_ = 0;          // where the current frame starts in block_raw_
  uint32_t block_stream_ = 0, block_frames_ = 0;
  bool block_end_stream_ = false;
  bool in_block_ = false;
  // Fields of the block being decoded.
  std::string method_, scheme_, path_, authority_, host_, protocol_;
  bool saw_method_ = false, saw_scheme_ = false, saw_path_ = false, saw_authority_ = false, saw_protocol_ = false;
  bool saw_host_ = false, saw_regular_ = false, trailer_block_ = false;
  size_t field_count_ = 0, field_bytes_ = 0;
  const char* field_error_ = nullptr;
  EventKind field_error_kind_ = EventKind::malformed;

  uint32_t last_stream_ = 0;       // highest client stream id seen
  uint32_t last_forwarded_ = 0;    // highest stream whose request went upstream
  std::unordered_map<uint32_t, Stream> streams_;
  int64_t conn_window_ = 65535;    // the guest's connection receive window, as the upstream uses it
  int64_t guest_initial_window_ = 65535;

  // Upstream side.
  std::array<unsigned char, 9> up_hdr_{};
  size_t up_hdr_have_ = 0;
  FrameHeader up_frame_;
  uint32_t up_left_ = 0;
  bool up_in_block_ = false, up_block_end_stream_ = false;
  bool up_preface_seen_ = false;  // the upstream's first frame (its SETTINGS) has passed
  SettingsReader up_settings_;
  bool up_settings_has_table_ = false;
  uint32_t up_settings_table_ = 0;
  std::array<int64_t, 16> pending_tables_{};  // per unacknowledged upstream SETTINGS: size or -1
  size_t pending_tables_n_ = 0;
  uint32_t table_size_ = 4096;

  std::string answer_;
  bool answer_queued_ = false;
  bool closing_ = false;
};

}  // namespace moat::http
