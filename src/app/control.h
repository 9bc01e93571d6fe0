#pragma once
// The operator's ways into a running `moat run|attach|serve` (SPEC R-CTL-1..3, R-OBS-7,
// R-CLI-5 SIGHUP): the control socket (control::Server + control::Dispatcher) and the
// Prometheus endpoint (obs::MetricsServer), both on the gateway's loop, over one
// GatewayAssembly. The C ABI has its own control::Backend (capi/embedded.cc), which posts
// to its loop thread; this one runs on the loop thread itself, so every method touches
// gateway state directly.
//
// Lifecycle: open() before the privilege drop and the seccomp filter (binds the sockets),
// after the assembly is started; destroyed before the assembly stops (the sockets close,
// a filesystem control socket is unlinked). Everything runs on the loop thread.
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "app/assembly.h"
#include "control/dispatcher.h"
#include "control/server.h"
#include "obs/metrics_http.h"

namespace moat::app {

/// What a live policy change (policy.set, policy.reload) installs.
enum class PolicyText : uint8_t { toml, json, rules };

/// R-POL-12 policy.set: the new policy inputs from `text` over `current` (rules replace the
/// rules, a TOML/JSON document's [policy] replaces the policy; the DNS block list stays).
/// Error: the §5.2 line(s).
Result<policy::PolicyInputs, std::string> policy_inputs_from_text(const policy::PolicyInputs& current,
                                                                  std::string_view text, PolicyText fmt);
/// R-CTL-3 policy.reload: the [policy] of the config file `path` re-read over `current`:
/// the file's rules, profiles and defaults replace the file's part; the flags' part
/// (--rule, --profile, --default-*) and the compiled block list stay. Error: §5.2 line(s).
Result<policy::PolicyInputs, std::string> policy_inputs_from_file(const policy::PolicyInputs& current,
                                                                  const std::string& path);
/// Builds and installs `inputs` on the running gateway (a new Engine snapshot; flows already
/// open keep going) and records them in the live config. Logs the policy's lint warnings.
void install_policy(GatewayAssembly& gw, policy::PolicyInputs inputs);

/// The Prometheus text of a gateway (R-OBS-7): its counters plus live gauges.
std::string gateway_metrics(GatewayAssembly& gw);

class GatewayControl {
 public:
  /// `request_stop`: the `shutdown` method (R-CLI-5: as SIGTERM).
  /// Error: a §5.2 text (without "moat: error: ").
  static Result<std::unique_ptr<GatewayControl>, std::string> open(event::Loop& loop, GatewayAssembly& gw,
                                                                    std::function<void()> request_stop);
  ~GatewayControl();
  GatewayControl(const GatewayControl&) = delete;
  GatewayControl& operator=(const GatewayControl&) = delete;

  /// SIGHUP (R-CLI-5): policy.reload (when started with --config) plus audit.reopen; each
  /// failure is logged and leaves the old state; config_change is audited with by=sighup.
  void on_sighup();

  /// The control socket's address ("@moat/0/name" or a path), empty without one.
  [[nodiscard]] std::string control_address() const { return server_ ? server_->address() : std::string(); }
  /// A filesystem control socket's path (handed to the runas user, removed at exit).
  [[nodiscard]] std::string control_path() const { return server_ ? server_->path() : std::string(); }

  class Backend;
  class AuditEvents;

 private:
  GatewayControl();
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<AuditEvents> events_;  // before server_: the server unsubscribes first
  std::unique_ptr<control::Dispatcher> dispatcher_;
  std::unique_ptr<control::Server> server_;
  std::unique_ptr<obs::MetricsServer> metrics_;
};

}  // namespace moat::app
