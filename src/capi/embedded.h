#pragma once
// capi::EmbeddedGateway — one gateway on its own loop thread, its guest link being the
// in-process rings (transport::RingTransport). The gateway itself is an
// app::GatewayAssembly, the composition root `moat run/attach/serve` use too; this class
// adds only how frames arrive (rings or an attached fd) and the ABI's lifecycle. The C ABI
// (capi.cc) is a thin wrapper around it. See README.md.
//
// Lifecycle:
//   created   create(): config finished (app::finish_config), loop + assembly (counters,
//             outputs, Gateway) + rings built, published ports bound. No thread yet.
//             Frames may be pushed (they wait in the ring); control calls act directly
//             (no loop thread). attach_fd() may switch the guest link from the rings
//             to an fd (then pushes and pulls are refused).
//   running   start(): the Gateway registers its link with the loop (initial RAs), and the
//             loop thread runs Loop::run(). Loop state is touched only there; control calls
//             post a task and wait for it. If the link ends (an attached fd's EOF or error)
//             the loop ends on its own and on_terminate runs on the loop thread.
//   stopped   stop(): Loop::stop() + join; the assembly stops on the calling thread (the
//             Gateway resets open flows, then gateway_stop is audited). Pulls still drain the to-guest ring; pushes are refused.
//   destroyed ~EmbeddedGateway(): stop(), then everything is released.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app/app.h"
#include "app/assembly.h"
#include "base/counters.h"
#include "base/log.h"
#include "config/config.h"
#include "event/clock.h"
#include "event/loop.h"
#include "obs/audit_log.h"
#include "policy/engine.h"
#include "transport/ring.h"

namespace moat::capi {

struct EmbedOptions {
  transport::RingConfig ring;  ///< per direction
  transport::RingLinkConfig link;  ///< virtio-net header and guest offloads (R-TR-6)
  uint32_t mtu = 0;            ///< 0 = net.mtu, else kRingDefaultMtu
  /// Runs on the loop thread when the loop ends on its own (not through stop()).
  std::function<void(int reason)> on_terminate;
  /// Log lines of this gateway (level 0=error..4=trace) instead of stderr: the loop
  /// thread's, and those a control call logs on the calling thread. Null = stderr.
  std::function<void(int level, const char* line)> on_log;
  /// Audit events (JSON lines, R-OBS-3) in addition to audit.file; on the emitting thread.
  std::function<void(const std::string& line)> on_audit;
};

/// R-ADDR-1: the in-process ring's default link MTU.
inline constexpr uint32_t kRingDefaultMtu = 1500;

/// What a failed control call returns: a MOAT_E*-like kind and the §5.2 message.
struct CallError {
  enum class Kind { invalid, config, state, io, not_found, conflict } kind;
  std::string message;
};

class EmbeddedGateway {
  struct Private {
    explicit Private() = default;
  };

 public:
  /// Finishes `cfg` (app::finish_config: R-ADDR-2 for the active families, the DNS block
  /// list, net.impair), then builds everything. Errors are §5.2 lines (config kind) or a
  /// system failure (io kind); nothing is left behind.
  static Result<std::unique_ptr<EmbeddedGateway>, CallError> create(config::Config cfg, const EmbedOptions& opts);

  explicit EmbeddedGateway(Private) {}
  ~EmbeddedGateway();
  EmbeddedGateway(const EmbeddedGateway&) = delete;
  EmbeddedGateway& operator=(const EmbeddedGateway&) = delete;

  Result<void, CallError> start();
  /// Idempotent. Joins the loop thread.
  void stop();

  /// Before start() only: the guest link becomes `fd` (duplicated; the caller keeps its own)
  /// instead of the rings, with the transports of `moat serve --fd` (app::make_fd_link).
  /// `kind` must match what the fd is (app::detect_fd_type).
  Result<void, CallError> attach_fd(int fd, app::FdType kind);

  /// The rings' host side (push: single producer; pull: single consumer).
  transport::RingTransport& ring() noexcept { return *ring_; }
  /// False once stopped or when an fd replaced the rings.
  [[nodiscard]] bool accepting_frames() const noexcept {
    return !stopped_.load(std::memory_order_relaxed) && !fd_attached();
  }
  [[nodiscard]] bool fd_attached() const noexcept { return fd_attached_.load(std::memory_order_acquire); }

  /// Every counter as a JSON object (see moat.h).
  Result<std::string, CallError> stats_json();

  /// R-TLS-2/10: the interception CA as PEM, or nullptr when tls.intercept is off. The CA is
  /// resolved by create() and never changes, so any thread may read it at any time.
  [[nodiscard]] const std::string* ca_pem() const noexcept;

  /// R-PUB-6: binds a `-p` spec (R-PUB-1) on the loop thread; returns the new listeners as
  /// describe() lines ("tcp 127.0.0.1:8080 -> guest port 80"). Errors: config (syntax),
  /// conflict (host port already published), io (bind failed: the line names spec and errno),
  /// state (stopped).
  Result<std::vector<std::string>, CallError> publish(std::string_view spec);
  /// R-PUB-6: closes the listeners of an equal published spec; established TCP flows go on.
  /// Errors: config (syntax), not_found, state.
  Result<size_t, CallError> unpublish(std::string_view spec);

  enum class PolicyFormat { toml, json, rules };
  /// R-POL-12: validate, then swap on the loop thread. A failure leaves the old policy.
  Result<void, CallError> update_policy(std::string_view text, PolicyFormat fmt);

  /// The policy snapshot in force (state error once stopped).
  Result<std::shared_ptr<const policy::Engine>, CallError> policy_engine();
  [[nodiscard]] bool rebind_protection();
  /// Live DNS pins (R-DNS-6) as (name, address, ms until expiry).
  struct PinEntry {
    std::string name;
    IpAddr address;
    int64_t expires_in_ms;
  };
  Result<std::vector<PinEntry>, CallError> dns_pins();
  /// R-OBS-3 audit.reopen on the loop thread; not_found without an audit file.
  Result<void, CallError> audit_reopen();
  /// The `config_change` audit event (R-OBS-3): `what` changed, `by` "abi" or "control".
  void config_change(std::string_view what, std::string_view by);
  /// One control request (R-CTL-2/3, control::Dispatcher) -> one response line.
  std::string control(std::string_view request);

 private:
  /// Runs `fn` where loop state may be touched: posted to the loop thread (waiting for it)
  /// while it runs, directly otherwise. Caller holds ctl_mu_.
  Result<void, CallError> on_loop(const std::function<void()>& fn);
  std::string stats_json_on_loop();

  /// The assembly's Gateway; null once stopped. Caller holds ctl_mu_.
  app::Gateway* gateway() noexcept { return assembly_->gateway(); }

  std::mutex ctl_mu_;  // serialises control calls and state changes
  event::SystemClock clock_;
  std::unique_ptr<event::Loop> loop_;
  /// The gateway: config, counters, audit log, Gateway (stack + flows), published ports.
  /// Its counters outlive the Gateway, so stats still read after stop().
  std::unique_ptr<app::GatewayAssembly> assembly_;
  /// The rings outlive the Gateway (pulls still drain them after stop()), so the Gateway
  /// owns only a forwarding FrameTransport and the rings live here. After assembly_: they
  /// count into its counters.
  std::unique_ptr<transport::RingTransport> ring_;
  /// The Gateway's link: forwards to *ring_ or, after attach_fd(), to *fd_link_.
  class LinkSwitch;
  LinkSwitch* link_switch_ = nullptr;  // owned by the Gateway (maybe inside a PcapTap)
  std::unique_ptr<transport::FrameTransport> fd_link_;  // outlives the Gateway (stop() runs first)
  std::atomic<bool> fd_attached_{false};
  std::function<void(int)> on_terminate_;
  std::function<void(int, const char*)> on_log_;
  LogSink log_sink_;  // routes this thread's MOAT_LOG lines to on_log_ (fn null: stderr)
  std::thread thread_;
  bool started_ = false;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> loop_exited_{false};  // set by the loop thread as it ends
  bool stop_requested_ = false;  // loop thread only: set by the task stop() posts
  bool link_closed_ = false;     // loop thread only: the link reported EOF (not a failure)
};

}  // namespace moat::capi
