#pragma once
// The command-line front ends of the composition root (assembly.h): `moat run`, `attach`
// and `serve` bring their guest link (a TAP in a namespace, a serve socket or an inherited
// fd), the loop, signals, the ready file and the sandbox child; the gateway itself is a
// GatewayAssembly, as in the C ABI.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "app/assembly.h"
#include "config/config.h"
#include "transport/frame_transport.h"

namespace moat::app {

struct RunOptions {
  config::Config cfg;  ///< as the file and flags set it; finish_config() turns it into `plan`
  GatewayPlan plan;
  std::vector<std::string> argv;
};

struct AttachOptions {
  config::Config cfg;  ///< as the file and flags set it; finish_config() turns it into `plan`
  GatewayPlan plan;
  std::string netns_path;
  pid_t pid = 0;
  bool configure = true;
};

/// `moat serve`: which guest link (R-CLI-4, R-TR-3/4/5).
enum class ServeKind { qemu, unixgram, fd };
enum class FdType { detect, tap, stream, dgram };

struct ServeOptions {
  config::Config cfg;  ///< as the file and flags set it; finish_config() turns it into `plan`
  GatewayPlan plan;
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
