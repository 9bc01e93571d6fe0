#pragma once
// control::Dispatcher — the control protocol of SPEC R-CTL-2/3 without its transport: one
// request line in, one response line out. The C ABI's moat_control() uses it today; the
// control socket (R-CTL-1) only has to add the socket, peer checks and line framing.
//
//   request   {"id":N,"method":M,"params":{...}}          (id: any JSON value, echoed back)
//   response  {"id":N,"result":...}  or  {"id":N,"error":{"code":C,"message":S}}
//   codes     unknown_method invalid_params invalid_config not_found conflict limit internal
//
// The dispatcher owns the protocol: JSON parsing, method lookup, parameter validation and
// the rendering of results (policy.get's normalised rules, policy.explain's report from the
// same policy::explain_report `moat policy explain` prints). A Backend owns the gateway: it
// runs each call where gateway state may be touched and serialises calls. Mutating methods
// (publish, unpublish, policy.set) report config_change to the backend after success,
// which writes the audit event (R-OBS-3, R-CTL-3).
//
// Thread-safety: a Dispatcher has no state of its own beyond the Backend reference; handle()
// may run on any thread the Backend accepts calls from.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/addr.h"
#include "base/result.h"
#include "policy/engine.h"

namespace moat::control {

/// R-CTL-2 error codes.
enum class ErrorCode : uint8_t { unknown_method, invalid_params, invalid_config, not_found, conflict, limit, internal };
std::string_view error_code_name(ErrorCode c) noexcept;

struct MethodError {
  ErrorCode code = ErrorCode::internal;
  std::string message;  ///< one line; a leading "moat: error: " is removed in the response
};
template <class T>
using MethodResult = Result<T, MethodError>;

/// One gateway's side of the control methods. Every call may block briefly (it runs the work
/// on the gateway's loop and waits); none is called on the loop thread by the dispatcher.
class Backend {
 public:
  virtual ~Backend() = default;
  /// `version`: a JSON object (moat and ABI versions, kernel features).
  virtual std::string version_json() = 0;
  /// `stats`: the counter object of R-OBS-1 as JSON.
  virtual MethodResult<std::string> stats_json() = 0;
  /// `publish`: binds a `-p` spec; returns the new listeners ("tcp 127.0.0.1:8080 -> guest port 80").
  virtual MethodResult<std::vector<std::string>> publish(const std::string& spec) = 0;
  /// `unpublish`: closes the listeners of an equal spec; returns how many.
  virtual MethodResult<size_t> unpublish(const std::string& spec) = 0;
  /// The policy snapshot in force (policy.get, policy.explain).
  virtual MethodResult<std::shared_ptr<const policy::Engine>> policy_engine() = 0;
  /// dns.rebind_protection, for policy.explain.
  virtual bool rebind_protection() = 0;
  enum class PolicyFormat { toml, json, rules };
  /// `policy.set` (R-POL-12): validate, then swap; a failure leaves the old policy.
  virtual MethodResult<void> policy_set(const std::string& text, PolicyFormat fmt) = 0;
  /// One live DNS pin (R-DNS-6) for `dns.pins`.
  struct Pin {
    std::string name;
    IpAddr address;
    int64_t expires_in_ms = 0;
  };
  /// `dns.pins`: every live pin of the gateway.
  virtual MethodResult<std::vector<Pin>> dns_pins() = 0;
  /// `audit.reopen` (R-OBS-3). not_found when no audit file is configured.
  virtual MethodResult<void> audit_reopen() = 0;
  /// `shutdown` (R-CLI-5): stop gracefully. The response is produced after it returns.
  virtual MethodResult<void> shutdown() = 0;
  /// A mutating method succeeded: emit the `config_change` audit event (what = method + detail).
  virtual void config_change(std::string_view what) = 0;

  // Methods a backend may lack (the C ABI's has none of them): the default answers
  // unknown_method "<method>: not supported by this build".

  /// `metrics`: the Prometheus text exposition (R-OBS-7) of the gateway, as GET /metrics
  /// serves it (moat stats --prometheus).
  virtual MethodResult<std::string> metrics_text();
  /// `policy.reload` (R-POL-12): re-read the start-up config file's [policy]; returns the
  /// file's path. A failure leaves the old policy.
  virtual MethodResult<std::string> policy_reload();
  /// One active flow for `flows`.
  struct Flow {
    uint64_t id = 0;          ///< the audit flow id
    std::string proto;        ///< tcp, udp, icmp
    bool ingress = false;     ///< a published port's flow
    IpAddr guest, remote;
    uint16_t guest_port = 0, remote_port = 0;
    std::string name;         ///< empty when none
    std::string name_src;     ///< sni, host, pin, connect, query, none
    std::string path;         ///< fast, gate, inspect
    uint64_t bytes_from_guest = 0, bytes_to_guest = 0;
    int64_t age_ms = 0;
    std::string state;        ///< e.g. the TCP state
  };
  /// `flows`: every active flow (the dispatcher filters, sorts and bounds).
  virtual MethodResult<std::vector<Flow>> flows();
};

/// The connection a request arrived on (the control socket's), for the methods that change
/// the connection itself.
class Session {
 public:
  virtual ~Session() = default;
  /// `events.subscribe`: from now on audit event lines (those named in `events`; every one
  /// when empty) are streamed on this connection, one JSON object per line.
  virtual MethodResult<void> subscribe_events(std::vector<std::string> events) = 0;
};

class Dispatcher {
 public:
  explicit Dispatcher(Backend& backend) : backend_(backend) {}
  /// One request (a JSON object, at most kMaxRequest bytes) -> one response line, without a
  /// trailing newline. Never fails: every problem becomes an error response. `session` is
  /// the connection (null for the C ABI, which has no events.subscribe).
  std::string handle(std::string_view request, Session* session = nullptr);

  /// R-CTL-1: requests are at most 1 MiB.
  static constexpr size_t kMaxRequest = size_t{1} << 20;

 private:
  Backend& backend_;
};

}  // namespace moat::control
