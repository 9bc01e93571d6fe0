#pragma once
// HTTP/1.x inspection of one intercepted connection (SPEC R-TLS-6, R-SEC-4 framing).
//
// Guest side, state by state:
//   head          request-head bytes are held (≤ kMaxHeaderBlock) until "\r\n\r\n"; when the
//                 whole head is inside one input span it is parsed in place (no copy). A valid
//                 head whose Host (and absolute-form or CONNECT target) names the expected
//                 authority is forwarded; otherwise 421 (mismatch) or 400 (malformed).
//   body_length   Content-Length bytes pass straight through (and to the scan hook).
//   body_chunked  chunked framing is followed byte by byte; bytes pass straight through.
//   await_switch  the request carried Upgrade (or was CONNECT): later guest bytes are held
//                 (≤ kMaxHeaderBlock) until its response decides: 101 (or CONNECT 2xx) makes
//                 the connection opaque, any other final status resumes parsing them.
//   opaque        every byte passes through (and to the scan hook as h1_opaque).
//   closed        a local answer is queued or sent; guest bytes are discarded.
// Upstream side: responses pass through unchanged while their framing is followed (status
// line, 1xx interim, HEAD/204/304, Content-Length, chunked, read-until-close) so that
//   * a local answer (421/400) goes to the guest only after the responses to every request
//     forwarded before it, at a response boundary (pipelining keeps its order), and
//   * a 101 is recognised as the answer to the Upgrade request, not bytes of a body.
// Upstream framing that cannot be followed closes the connection if it matters (an answer
// or a switch is pending), and otherwise turns the tracking off.
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "base/memory_budget.h"
#include "http/h1_parse.h"
#include "http/authority.h"
#include "http/http.h"

namespace moat::http {

class H1Inspector {
 public:
  /// `expected`: the SNI, or the destination address. `budget` may be null.
  H1Inspector(std::string_view expected, Sink& sink, MemoryBudget* budget);
  H1Inspector(const H1Inspector&) = delete;
  H1Inspector& operator=(const H1Inspector&) = delete;

  Next from_guest(Bytes in);
  Next from_upstream(Bytes in);
  /// The upstream closed (or half-closed) its side: a queued local answer goes out now.
  Next upstream_eof();

  [[nodiscard]] bool closing() const noexcept { return closing_; }
  [[nodiscard]] bool opaque() const noexcept { return guest_ == Guest::opaque; }
  /// Bytes held for incomplete heads, lines and pre-switch data (all bounded).
  [[nodiscard]] size_t held_bytes() const noexcept { return head_.size() + held_.size() + line_.size(); }
  /// Requests forwarded whose responses have not ended.
  [[nodiscard]] size_t outstanding() const noexcept { return pending_.size(); }

 private:
  enum class Guest : uint8_t { head, body_length, body_chunked, await_switch, opaque, closed };
  enum class Upstream : uint8_t { status_line, headers, body_length, body_chunked, body_eof, opaque, lost };
  enum PendingFlags : uint8_t { kHead = 1, kUpgrade = 2, kConnect = 4 };

  void process_guest(std::string_view in);
  // Returns false if the head was refused (an answer is queued).
  bool handle_head(std::string_view head);
  void request_done();
  // Queues a 400 (status) and reports `reason`; `h` (when the head parsed) names the request.
  void fail(int status, const char* reason, EventKind kind, bool partially_forwarded, const RequestHead* h = nullptr);
  void queue_answer(std::string answer, bool partially_forwarded);
  void emit_answer();
  void lose_upstream_framing();
  void upstream_line(std::string_view line);
  void response_head_done();
  // Called at the offset where a response ended; true if the connection is now closing.
  bool response_done();
  void switch_to_opaque();
  void update_charge();

  std::string expected_;
  AuthorityMatcher matcher_;
  Sink& sink_;
  MemoryCharge charge_;

  Guest guest_ = Guest::head;
  std::string head_;        // incomplete request head
  uint32_t leading_crlf_ = 0;
  uint8_t head_match_ = 0;  // how much of "\r\n\r\n" the head's last bytes match
  static constexpr uint32_t kPastMethod = ~0u, kMaxMethod = 32;
  uint32_t method_len_ = 0;  // method bytes seen in the head so far, kPastMethod after its SP
  uint64_t body_left_ = 0;
  ChunkedDecoder request_chunks_;
  std::string held_;        // guest bytes after an Upgrade/CONNECT request, until its answer

  std::deque<uint8_t> pending_;  // PendingFlags of forwarded requests, oldest first
  std::string answer_;           // queued local answer
  bool answer_queued_ = false;
  size_t answer_after_ = 0;      // responses still to relay before the answer
  bool closing_ = false;

  Upstream upstream_ = Upstream::status_line;
  std::string line_;             // incomplete response line
  int status_ = 0;
  bool completed_ = false;  // the last line ended a response (no body)
  bool resp_chunked_ = false, resp_te_ = false, resp_cl_ = false;
  uint64_t resp_left_ = 0;
  ChunkedDecoder response_chunks_;
};

}  // namespace moat::http
