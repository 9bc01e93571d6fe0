#pragma once
// http::Pump — the inspector (or the 502 responder) behind a write interface that may take
// fewer bytes than offered, as the TLS session's plaintext sinks do (a full ring: "0 now,
// call again"). The inspector itself hands out every byte synchronously (Sink); the pump
// keeps what a writer did not take and returns how much input it consumed, so the caller's
// back-pressure works unchanged:
//   from_guest()    takes nothing while guest→upstream output is still waiting;
//   from_upstream() takes nothing while upstream→guest output is still waiting.
// What waits is at most one call's output (one input plus a held header block or a local
// answer), charged to the budget.
//
// For src/tls's PlainFilter seam:
//   size_t from_guest(Bytes in, PlainSink& up, PlainSink& guest) override {
//     return pump_.from_guest(in, [&](Bytes b) { return up.write(b); }, [&](Bytes b) { return guest.write(b); });
//   }
//   size_t from_upstream(Bytes in, PlainSink& guest) override {
//     return pump_.from_upstream(in, [&](Bytes b) { return guest.write(b); });
//   }
//   bool wants_close() const override { return pump_.wants_close(); }
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/function_ref.h"
#include "base/memory_budget.h"
#include "http/error_responder.h"
#include "http/inspector.h"

namespace moat::http {

class Pump final : private Sink {
 public:
  /// Takes at most b.size() bytes; returns how many.
  using Writer = FunctionRef<size_t(Bytes)>;
  using EventFn = std::function<void(const Event&)>;
  using ScanFn = std::function<void(Bytes, Payload, uint32_t)>;

  /// An inspector for an intercepted connection (see Inspector).
  static std::unique_ptr<Pump> inspect(std::string_view expected_authority, Alpn alpn, MemoryBudget* budget,
                                       EventFn on_event, ScanFn scan = {});
  /// The tls.upstream_error = http answer (see ErrorResponder).
  static std::unique_ptr<Pump> error_responder(Alpn alpn, std::string_view upstream, std::string_view reason,
                                               MemoryBudget* budget, EventFn on_event = {});
  ~Pump() override;

  /// Guest plaintext; returns how many bytes of `in` were consumed.
  size_t from_guest(Bytes in, Writer to_upstream, Writer to_guest);
  /// Upstream plaintext; returns how many bytes of `in` were consumed.
  size_t from_upstream(Bytes in, Writer to_guest);
  /// The upstream ended its side.
  void upstream_eof(Writer to_guest);
  /// The inspector is done and everything it wrote for the guest has been taken: close.
  [[nodiscard]] bool wants_close() const noexcept;
  /// Output not yet taken by the writers.
  [[nodiscard]] size_t pending_bytes() const noexcept { return pending_upstream_.size() + pending_guest_.size(); }

 private:
  Pump(MemoryBudget* budget, EventFn on_event, ScanFn scan);
  void to_upstream(Bytes bytes) override;
  void to_guest(Bytes bytes) override;
  void on_event(const Event& event) override;
  void scan(Bytes bytes, Payload kind, uint32_t stream_id) override;
  static bool drain(std::string* pending, Writer w);
  bool closing() const noexcept;

  std::unique_ptr<Inspector> inspector_;
  std::unique_ptr<ErrorResponder> responder_;
  EventFn on_event_;
  ScanFn scan_;
  MemoryCharge charge_;
  std::string pending_upstream_, pending_guest_;
  const Writer* up_ = nullptr;     // the writers of the call in progress
  const Writer* guest_ = nullptr;
  bool responder_done_ = false;
};

}  // namespace moat::http
