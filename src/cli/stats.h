#pragma once
// `moat stats` (SPEC R-CLI-9, R-OBS-6/7): a client of a running gateway's control socket.
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace moat::cli {

/// `moat stats [--name NAME | --control PATH | --pid PID] [--json] [--flows] [--watch DUR]
/// [--prometheus]`. 0 on success, 1 when no gateway answers (none, several, gone), 2 usage.
int cmd_stats(const std::vector<std::string>& args);

/// The abstract control sockets `@moat/<uid>/<name>` of `uid` listed in a /proc/net/unix
/// text, as gateway names (sorted, unique). Only listening sockets count (flag __SO_ACCEPTCON,
/// state unconnected), so a client's connected socket is not mistaken for a gateway.
std::vector<std::string> find_gateways(std::string_view proc_net_unix, uid_t uid);

/// The inodes of the sockets in a /proc/net/unix text whose path is `path` (listening).
std::vector<unsigned long> socket_inodes(std::string_view proc_net_unix, std::string_view path);

}  // namespace moat::cli
