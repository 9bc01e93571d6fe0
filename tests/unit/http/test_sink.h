#pragma once
// A Sink that records everything the inspector asks for, for the http tests.
#include <string>
#include <string_view>
#include <vector>

#include "http/http.h"

namespace moat::http::testing {

struct RecordedEvent {
  EventKind kind;
  std::string host, method, path, reason;
  uint32_t stream_id;
};

class RecordingSink : public Sink {
 public:
  void to_upstream(Bytes b) override {
    upstream.append(reinterpret_cast<const char*>(b.data()), b.size());
    ++upstream_calls;
  }
  void to_guest(Bytes b) override { guest.append(reinterpret_cast<const char*>(b.data()), b.size()); }
  void on_event(const Event& e) override {
    events.push_back(RecordedEvent{e.kind, std::string(e.host), std::string(e.method), std::string(e.path),
                                   std::string(e.reason), e.stream_id});
  }
  void scan(Bytes b, Payload kind, uint32_t stream_id) override {
    scanned.append(reinterpret_cast<const char*>(b.data()), b.size());
    last_scan_kind = kind;
    last_scan_stream = stream_id;
  }

  /// The last event, or a placeholder ("<no event>", kind 255) when there was none.
  RecordedEvent last_event() const {
    return events.empty() ? RecordedEvent{EventKind(255), "", "", "", "<no event>", 0} : events.back();
  }

  std::string upstream, guest, scanned;
  size_t upstream_calls = 0;
  std::vector<RecordedEvent> events;
  Payload last_scan_kind = Payload::h1_body;
  uint32_t last_scan_stream = 0;
};

inline Bytes b(std::string_view s) { return as_bytes(s); }

}  // namespace moat::http::testing
