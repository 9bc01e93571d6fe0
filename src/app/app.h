#pragma once
// Wiring of one gateway per process: the loop, the guest link (TAP, optionally recorded by
// PcapTap), the stack's gateway services, signals, the ready file and the sandbox child.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/flow_manager.h"
#include "config/config.h"
#include "obs/audit_log.h"
#include "stack/interface.h"

namespace moat::app {

/// Address families active on the link after R-ADDR-3 `auto` resolution.
struct Families {
  bool ipv4 = true;
  bool ipv6 = true;
};

/// R-ADDR-3: `auto` means the host has a route for the family, probed by connect()ing a UDP
/// socket to 192.0.2.1:53 / [2001:db8::1]:53 (no packet is sent).
Families resolve_families(const config::NetConfig& net);

/// The stack's slice of the config for these families; `mtu` 0 in the config means the TAP
/// default (65520), so other transports set it first (R-ADDR-1).
stack::LinkConfig link_config(const config::Config& c, const Families& f);
/// The flow engines' slice of the config (R-ADDR-5 mapping, DNS upstreams, limits, policy).
FlowsSetup flows_setup(const config::Config& c, const Families& f);
/// R-DNS-7/12: reads dns.block, dns.block_files and dns.block_doh into cfg.dns.block_list and
/// puts the compiled deny rules into cfg.policy.inputs.block (before every policy rule).
/// Returns every §5.2 error (bad name: `FILE:LINE`; unreadable or too large: `FILE`); on
/// error nothing is changed. Call before any side effect.
std::vector<config::UserError> compile_dns_block(config::Config& cfg);

/// The gateway's name in audit lines and stats: config `name`, else moat-PID.
std::string gateway_name(const config::Config& c);
/// The audit log's options from the config's audit section (file, events, DNS events).
obs::AuditOptions audit_options(const config::Config& c);

/// Validates an --impair spec; the error text (without the flag) when it is bad.
std::optional<std::string> check_impair(std::string_view spec);

struct RunOptions {
  config::Config cfg;
  Families families;
  std::vector<std::string> argv;
};

struct AttachOptions {
  config::Config cfg;
  Families families;
  std::string netns_path;
  pid_t pid = 0;
  bool configure = true;
};

/// `moat serve`: which guest link (R-CLI-4, R-TR-3/4/5).
enum class ServeKind { qemu, unixgram, fd };
enum class FdType { detect, tap, stream, dgram };

struct ServeOptions {
  config::Config cfg;
  Families families;
  ServeKind kind = ServeKind::qemu;
  std::string path;  ///< --qemu / --unixgram PATH (`@name` = abstract)
  int fd = -1;       ///< --fd N
  FdType fd_type = FdType::detect;
  bool once = false;               ///< transport.once: exit at the first disconnect
  unsigned socket_mode = 0600;     ///< transport.socket_mode
};

/// R-TR-5: what an inherited fd is (a connected stream or datagram/seqpacket socket, or a
/// TAP with IFF_NO_PI). Errors are §5.2 texts starting with `where` (e.g. "--fd 3").
Result<FdType, std::string> detect_fd_type(int fd, const std::string& where);
/// The guest link over an fd of a known type (serve --fd, the C ABI's moat_gateway_attach_fd):
/// QEMU stream framing, or one frame per read/write (TAP, datagram). Takes `fd`. A TAP
/// opened with IFF_VNET_HDR keeps its header (TUNGETVNETHDRSZ: 10 or 12) and `offloads`
/// is what the peer accepts in frames moat sends (R-TR-6); the default is none.
Result<std::unique_ptr<transport::FrameTransport>, std::string> make_fd_link(
    UniqueFd fd, FdType type, Counters& counters, const std::string& where,
    const config::OffloadSpec& offloads = config::OffloadSpec{.automatic = false});

/// `moat run`: returns the process exit status of §5.1 (child's status, 125, 126, 127).
int run_sandbox(const RunOptions& o);
/// `moat attach`: 0 when stopped by a signal or when the namespace goes away, 1 on runtime failure,
/// 2 on a setup error caused by user input (a bad --netns, an existing interface).
int attach(const AttachOptions& o);
/// `moat serve`: no namespace; the gateway and flows run on the host, the guest link is a
/// socket or an inherited fd. 0 when stopped by a signal, when --once or an inherited fd
/// reaches its end; 1 on runtime failure; 2 on a setup error caused by user input.
int serve(const ServeOptions& o);

}  // namespace moat::app
