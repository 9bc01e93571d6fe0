#include "http/pump.h"

namespace moat::http {

namespace {
Bytes bytes_of(const std::string& s) { return as_bytes(s); }
}  // namespace

Pump::Pump(MemoryBudget* budget, EventFn on_event, ScanFn scan)
    : on_event_(std::move(on_event)), scan_(std::move(scan)), charge_(budget) {}

Pump::~Pump() = default;

std::unique_ptr<Pump> Pump::inspect(std::string_view expected_authority, Alpn alpn, MemoryBudget* budget,
                                    EventFn on_event, ScanFn scan) {
  std::unique_ptr<Pump> p(new Pump(budget, std::move(on_event), std::move(scan)));
  Sink& sink = *p;
  p->inspector_ = std::make_unique<Inspector>(expected_authority, alpn, sink, budget);
  return p;
}

std::unique_ptr<Pump> Pump::error_responder(Alpn alpn, std::string_view upstream, std::string_view reason,
                                            MemoryBudget* budget, EventFn on_event) {
  std::unique_ptr<Pump> p(new Pump(budget, std::move(on_event), {}));
  Sink& sink = *p;
  p->responder_ = std::make_unique<ErrorResponder>(alpn, upstream, reason, sink, budget);
  return p;
}

bool Pump::drain(std::string* pending, Writer w) {
  while (!pending->empty()) {
    const size_t n = w(bytes_of(*pending));
    if (n == 0) return false;
    pending->erase(0, n);
  }
  if (pending->capacity() > 16384) std::string().swap(*pending);
  return true;
}

size_t Pump::from_guest(Bytes in, Writer to_upstream, Writer to_guest) {
  drain(&pending_guest_, to_guest);
  if (!drain(&pending_upstream_, to_upstream)) return 0;
  if (closing()) return in.size();  // nothing more is relayed: read and drop
  up_ = &to_upstream;
  guest_ = &to_guest;
  if (inspector_) {
    (void)inspector_->from_guest(in);
  } else {
    responder_done_ = responder_->from_guest(in) == Next::close;
  }
  up_ = guest_ = nullptr;
  charge_.resize(pending_upstream_.capacity() + pending_guest_.capacity());
  return in.size();
}

size_t Pump::from_upstream(Bytes in, Writer to_guest) {
  if (!drain(&pending_guest_, to_guest)) return 0;
  if (closing() || !inspector_) return in.size();
  guest_ = &to_guest;
  (void)inspector_->from_upstream(in);
  guest_ = nullptr;
  charge_.resize(pending_upstream_.capacity() + pending_guest_.capacity());
  return in.size();
}

void Pump::upstream_eof(Writer to_guest) {
  if (!inspector_) return;
  guest_ = &to_guest;
  (void)inspector_->upstream_eof();
  guest_ = nullptr;
  drain(&pending_guest_, to_guest);
  charge_.resize(pending_upstream_.capacity() + pending_guest_.capacity());
}

bool Pump::closing() const noexcept { return inspector_ ? inspector_->closing() : responder_done_; }

bool Pump::wants_close() const noexcept { return closing() && pending_guest_.empty(); }

void Pump::to_upstream(Bytes bytes) {
  // Output for a direction keeps its order: once something waits, the rest waits behind it.
  if (pending_upstream_.empty() && up_ != nullptr) {
    const size_t n = (*up_)(bytes);
    bytes = bytes.subspan(n);
  }
  pending_upstream_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void Pump::to_guest(Bytes bytes) {
  if (pending_guest_.empty() && guest_ != nullptr) {
    const size_t n = (*guest_)(bytes);
    bytes = bytes.subspan(n);
  }
  pending_guest_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void Pump::on_event(const Event& event) {
  if (on_event_) on_event_(event);
}

void Pump::scan(Bytes bytes, Payload kind, uint32_t stream_id) {
  if (scan_) scan_(bytes, kind, stream_id);
}

}  // namespace moat::http
