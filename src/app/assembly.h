#pragma once
// The composition root: the one place a whole gateway is derived from a Config and put
// together, used by `moat run`, `moat attach`, `moat serve` (app.cc) and the C ABI
// (capi/embedded.cc). Those front ends differ only in how frames arrive (a TAP in a
// namespace, a serve socket or fd, the ABI's rings or attached fd) and in their lifecycle
// (signals vs ABI calls). See README.md.
//
//   finish_config()   Config -> GatewayPlan: families (R-ADDR-3), defaults, R-ADDR-2,
//                     the compiled DNS block list (R-DNS-7/12), the impairment, fd-limit
//                     scaling (R-LIM-3, CLI only), LinkConfig and FlowsSetup. Errors are
//                     §5.2 lines; nothing outside the process is touched.
//   GatewayOutputs    the files a gateway writes (pid file, pcap, audit sink), opened before
//                     any other side effect and removed again when setup fails (§5.2).
//   GatewayAssembly   owns one gateway on a caller's Loop: counters, pcap decorator,
//                     impairment, audit log, app::Gateway (stack + FlowManager), published
//                     ports.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app/flow_manager.h"
#include "app/gateway.h"
#include "base/counters.h"
#include "base/log.h"
#include "base/memory_budget.h"
#include "config/config.h"
#include "event/loop.h"
#include "obs/audit_log.h"
#include "stack/interface.h"
#include "tls/ca.h"
#include "tls/interceptor.h"
#include "tls/leaf.h"
#include "transport/frame_transport.h"
#include "transport/impair.h"
#include "transport/pcap.h"

namespace moat::tls {
class CertAuthority;
}

namespace moat::app {

/// R-ADDR-1: the link MTU of a TAP or serve link when net.mtu is 0.
inline constexpr uint32_t kTapDefaultMtu = 65520;

/// Address families active on the link after R-ADDR-3 `auto` resolution.
struct Families {
  bool ipv4 = true;
  bool ipv6 = true;
};

/// R-ADDR-3: `auto` means the host has a route for the family, probed by connect()ing a UDP
/// socket to 192.0.2.1:53 / [2001:db8::1]:53 (no packet is sent).
Families resolve_families(const config::NetConfig& net);

/// The stack's slice of the config for these families (net.mtu 0 = kTapDefaultMtu).
stack::LinkConfig link_config(const config::Config& c, const Families& f);
/// The flow engines' slice of the config (R-ADDR-5 mapping, DNS upstreams from the config or
/// resolv.conf (R-DNS-4), limits, policy). audit_log stays null: the assembly sets it.
FlowsSetup flows_setup(const config::Config& c, const Families& f);
/// R-DNS-7/12: reads dns.block, dns.block_files and dns.block_doh into cfg.dns.block_list and
/// puts the compiled deny rules into cfg.policy.inputs.block (before every policy rule).
/// Returns every §5.2 error (bad name: `FILE:LINE`; unreadable or too large: `FILE`); on
/// error nothing is changed.
std::vector<config::UserError> compile_dns_block(config::Config& cfg);

/// The `host` group of R-POL-4 for a config's addresses and these families: what the data
/// path uses (FlowsSetup::policy) and what `moat policy check/explain` evaluate against.
policy::HostAddrs host_addrs(const config::NetConfig& n, const Families& f);

/// The gateway's name in audit lines and stats: config `name`, else moat-PID.
std::string gateway_name(const config::Config& c);
/// The audit log's options from the config's audit section (file, events, DNS events).
obs::AuditOptions audit_options(const config::Config& c);
/// Validates an --impair spec; the error text (without the flag) when it is bad.
std::optional<std::string> check_impair(std::string_view spec);

/// R-ADDR-2 error sources naming the config keys (the C ABI has no flags).
config::NetSources key_sources();

/// What differs between the front ends when a config is finished.
struct FinishOptions {
  /// net.ifname when the config leaves it empty (run: eth0, attach/serve: moat0, ABI: none).
  std::string default_ifname;
  /// R-ADDR-1: net.mtu when the config leaves it 0 (TAP and serve links 65520, the ABI's rings 1500).
  uint32_t default_mtu = kTapDefaultMtu;
  /// Where R-ADDR-2 errors point: flags, or config keys (file values, the ABI).
  config::NetSources sources;
  /// Fail when neither family is active, naming `families_source` (flag or key). The ABI
  /// has never refused that (an embedder may build a gateway on a host without routes and
  /// give it addresses later): false keeps its contract.
  bool require_a_family = true;
  std::string families_source = "--ipv4-enable";
  std::string families_fix = "--ipv4-enable on";
  /// The CLI owns its process: the log level is applied and RLIMIT_NOFILE raised, the flow
  /// limits scaled to it (R-LIM-3). Library mode changes no resource limit (docs/capi.md).
  bool own_process = false;
};

/// Everything a gateway needs that is derived from its Config, computed once.
struct GatewayPlan {
  config::Config cfg;  ///< finished: ifname and mtu filled, block list compiled, limits scaled
  Families families;
  stack::LinkConfig link;
  FlowsSetup flows;
  std::optional<transport::ImpairSpec> impair;  ///< net.impair, parsed
  /// The interception CA (R-TLS-2) when tls.intercept is on: resolved by finish_config()
  /// (user-supplied, ephemeral, or the persistent CA, created on first use) during setup,
  /// before the privilege drop; null otherwise. Immutable: the leaf cache, `moat run`'s
  /// guest trust (R-TLS-10) and moat_ca_pem() share it.
  std::shared_ptr<const tls::CertAuthority> ca;
};

/// The one "finish config" step. `earlier` are errors the caller found already (flags); they
/// come first, and while there are any the block files are not read. At most 20 errors.
Result<GatewayPlan, std::vector<config::UserError>> finish_config(config::Config cfg, const FinishOptions& o,
                                                                  std::vector<config::UserError> earlier = {});

/// How GatewayOutputs names the settings in its errors (empty: the path alone, as the ABI
/// has always said).
struct OutputNames {
  std::string pid_file = "--pid-file";
  std::string pcap = "--pcap";
};

/// Writes moat's PID to `path` atomically (temporary file + rename): the pid and ready files.
bool write_pid_file(const std::string& path);

/// The --pid-file of this process, removed when the owner goes away (every return of
/// run/attach/serve, clean or not), but only while it still holds our pid: a later moat
/// may have been started with the same path and written its own.
class PidFile {
 public:
  PidFile() = default;
  explicit PidFile(std::string path) : path_(std::move(path)) {}
  PidFile(PidFile&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  PidFile& operator=(PidFile&& o) noexcept {
    if (this != &o) {
      remove();
      path_ = std::exchange(o.path_, {});
    }
    return *this;
  }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;
  ~PidFile() { remove(); }

  /// Unlinks the file if it holds this process's pid; afterwards owns nothing.
  void remove() noexcept;

 private:
  std::string path_;
};

/// The files a gateway writes, opened before anything else so that a bad path is a setup
/// error with nothing left behind (§5.2): the pid file (`with_pid_file`, the CLI), the pcap
/// capture (R-OBS-5) and the audit sink (R-OBS-3). The assembly takes the open handles;
/// discard() removes every file this run created (also after the handles moved on); the pid
/// file is removed in any case when the GatewayOutputs is destroyed (PidFile).
class GatewayOutputs {
 public:
  /// Error: one §5.2 text without "moat: error: ".
  static Result<GatewayOutputs, std::string> open(const config::Config& c, bool with_pid_file,
                                                  const OutputNames& names = {});
  GatewayOutputs() = default;

  /// Undo on a setup failure: closes what is still held here and unlinks what was created.
  void discard();

  std::optional<transport::PcapWriter> pcap;
  UniqueFd audit;  ///< the audit sink, if audit.file is set

 private:
  std::vector<std::string> created_;
  PidFile pid_file_;
};

/// What the front end adds to an assembly.
struct AssemblyHooks {
  /// Audit events (JSON lines) in addition to audit.file (the ABI's audit_cb); with it the
  /// audit log exists even without a file.
  std::function<void(const std::string& line)> audit_line_sink;
};

/// One whole gateway on the caller's Loop.
///
/// Lifecycle:
///   constructed  owns the plan and the Counters, so the front end can build its guest link
///                (transports count into them). Nothing else exists.
///   assembled    assemble(link): pcap decorator, impairment, audit log (gateway_start),
///                Gateway (stack + FlowManager), published ports bound. Nothing is
///                registered with the loop yet (the ABI may still retarget its link).
///   started      start(): the Gateway watches its link and brings it up (first RAs).
///   stopped      stop(reason): the Gateway is destroyed (R-CLI-5: open flows reset, capture
///                flushed), gateway_stop is audited and the audit log closed. The counters
///                stay readable until the assembly is destroyed (which also stops).
class GatewayAssembly {
 public:
  explicit GatewayAssembly(event::Loop& loop, GatewayPlan plan);
  ~GatewayAssembly();
  GatewayAssembly(const GatewayAssembly&) = delete;
  GatewayAssembly& operator=(const GatewayAssembly&) = delete;

  /// Builds the gateway over `link`, taking the open pcap writer and audit sink from `out`.
  /// Error: one §5.2 text without "moat: error: " (a bad impairment, a publish failure).
  Result<void, std::string> assemble(std::unique_ptr<transport::FrameTransport> link, GatewayOutputs& out,
                                     const AssemblyHooks& hooks = {});
  /// Registers the Gateway with the loop. `on_link_gone` runs on the loop when the link ends
  /// or fails.
  Status start(std::function<void(const Errno&)> on_link_gone);
  /// Idempotent; `reason` goes into the gateway_stop audit event.
  void stop(std::string_view reason);

  [[nodiscard]] const GatewayPlan& plan() const noexcept { return plan_; }
  /// The live config: runtime changes (policy, published ports) are recorded here.
  config::Config& cfg() noexcept { return plan_.cfg; }
  Counters& counters() noexcept { return counters_; }
  const Counters& counters() const noexcept { return counters_; }
  /// The gateway's memory budget (R-LIM-2): gauges memory.* in the counters.
  MemoryBudget& budget() noexcept { return budget_; }
  /// Null before assemble() and after stop().
  Gateway* gateway() noexcept { return gateway_.get(); }
  const Gateway* gateway() const noexcept { return gateway_.get(); }
  /// Null without audit.file and audit hook, and after stop().
  obs::AuditLog* audit() noexcept { return audit_.get(); }
  /// The interception CA (R-TLS-2) when tls.intercept is on, else null: the one
  /// finish_config() resolved into plan().ca, which `moat run` gives the guest (R-TLS-10)
  /// and moat_ca_pem() returns. The leaf cache must sign with this CA: a second
  /// CertAuthority::from_config() would, for an ephemeral CA, make a different one.
  [[nodiscard]] const tls::CertAuthority* ca() const noexcept { return plan_.ca.get(); }
  /// The TLS interceptor (R-TLS-4) when tls.intercept is on, after assemble(); else null.
  tls::Interceptor* tls_interceptor() noexcept { return tls_.get(); }

  /// R-OBS-3 audit.reopen (SIGHUP, control): nothing to do without an audit log.
  Result<void, std::string> reopen_audit();
  /// Flushes the capture and logs every counter at `level` (SIGUSR1, exit).
  void log_stats(LogLevel level);
  /// Every counter as a JSON object (moat.h stats): gateway, counters, drops, drop.total,
  /// policy.generation while running; `extra` appends further members (",\"k\":v").
  std::string stats_json(const std::function<void(std::string&)>& extra = {});

 private:
  Result<void, std::string> assemble_tls();

  event::Loop& loop_;
  GatewayPlan plan_;
  Counters counters_;
  MemoryBudget budget_;                   // R-LIM-2; before audit_ and gateway_, which charge it
  MemoryCharge fixed_charge_;             // the audit and pcap write buffers, allocated once
  std::unique_ptr<obs::AuditLog> audit_;  // before gateway_: outlives the flows that emit
  // TLS interception (R-TLS): before gateway_, because the TCP engine hands the
  // interceptor's sessions back (on_closed) while the gateway's flows are torn down.
  std::shared_ptr<const tls::CertAuthority> ca_;  // plan_.ca
  std::unique_ptr<tls::LeafCache> leaves_;
  std::unique_ptr<tls::Interceptor> tls_;
  std::unique_ptr<Gateway> gateway_;
  bool stopped_ = false;
};

}  // namespace moat::app
