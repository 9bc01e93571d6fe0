#pragma once
// Wiring of one gateway per process: the loop, the guest link (TAP, optionally recorded by
// PcapTap), the stack's gateway services, signals, the ready file and the sandbox child.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace moat::app {

/// Address families active on the link after R-ADDR-3 `auto` resolution.
struct Families {
  bool ipv4 = true;
  bool ipv6 = true;
};

/// R-ADDR-3: `auto` means the host has a route for the family, probed by connect()ing a UDP
/// socket to 192.0.2.1:53 / [2001:db8::1]:53 (no packet is sent).
Families resolve_families(const config::NetConfig& net);

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

/// `moat run`: returns the process exit status of §5.1 (child's status, 125, 126, 127).
int run_sandbox(const RunOptions& o);
/// `moat attach`: 0 when stopped by a signal or when the namespace goes away, 1 on runtime failure,
/// 2 on a setup error caused by user input (a bad --netns, an existing interface).
int attach(const AttachOptions& o);

}  // namespace moat::app
