#pragma once
// GatePeer: the TcpPeer of a flow on the gate or inspect path (SPEC §2.3, R-TCP-4/5). It
// sits between TcpConn and the flow's HostSocketPeer.
//
// The upstream is any TcpPeer: the flow's HostSocketPeer, or a peer a TcpPeerProvider
// supplied when the first flight was allowed.
//
// Lifecycle:
//   holding      guest bytes are kept here (at most kMaxFirstFlight; writable() is what is
//                left, so the guest is offered at most 16 KiB) and a guest FIN is
//                remembered; upstream bytes pass straight through when there is an
//                upstream (gate path), and there is none yet on the inspect path.
//   released     release() wrote the held bytes to the upstream (and the remembered FIN);
//                from then on every call is forwarded: the flow is a plain fast-path flow.
// abort() reaches the upstream if there is one (SO_LINGER 0: it sees RST).
#include <vector>

#include "flows/tcp_peer.h"

namespace moat::flows {

class GatePeer final : public TcpPeer {
 public:
  static constexpr size_t kMaxHeld = 16 * 1024;  ///< R-TCP-4/5 first-flight bound

  /// Starts holding. `upstream` is null on the inspect path until attach_upstream().
  void start(TcpPeer* upstream) noexcept;
  void attach_upstream(TcpPeer* upstream) noexcept { up_ = upstream; }
  [[nodiscard]] bool holding() const noexcept { return holding_; }
  [[nodiscard]] Bytes held() const noexcept { return Bytes(held_.data(), held_.size()); }
  [[nodiscard]] bool guest_fin() const noexcept { return fin_; }
  /// Writes the held bytes to the upstream (which must be attached), then the FIN if one
  /// came, and stops holding. Errors are the upstream's.
  Status release();
  /// Frees the held bytes (flow slot reuse).
  void reset() noexcept;

  // ---- TcpPeer ----
  size_t readable() override { return up_ ? up_->readable() : 0; }
  [[nodiscard]] bool read_closed() const override { return up_ ? up_->read_closed() : false; }
  Result<size_t> peek(size_t offset, MutBytes out) override {
    if (!up_) return size_t{0};
    return up_->peek(offset, out);
  }
  [[nodiscard]] size_t peek_limit() const override { return up_ ? up_->peek_limit() : SIZE_MAX; }
  Status consume(size_t n) override {
    if (!up_) return {};
    return up_->consume(n);
  }
  size_t writable() override;
  Result<size_t> write(Bytes data) override;
  void shutdown_write() override;
  void abort() override;

 private:
  TcpPeer* up_ = nullptr;
  std::vector<std::byte> held_;
  bool holding_ = false, fin_ = false;
};

}  // namespace moat::flows
