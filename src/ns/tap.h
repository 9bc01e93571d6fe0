#pragma once
// TAP creation and the /proc/sys writes that go with it (R-ADDR-6).
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace moat::ns {

/// Creates TAP `name` in the current network namespace (/dev/net/tun, IFF_TAP|IFF_NO_PI,
/// plus IFF_VNET_HDR when asked; the kernel's default header size of 10 applies, change it
/// with TUNSETVNETHDRSZ). IFF_TUN_EXCL makes an existing interface of that name an error
/// (EBUSY) instead of attaching to it. The fd is O_NONBLOCK|O_CLOEXEC. The TAP is not
/// persistent: it disappears when the last fd to it is closed.
Result<UniqueFd> create_tap(std::string_view name, bool vnet_hdr = false);

/// Writes `value` to a /proc/sys file (e.g. /proc/sys/net/ipv6/conf/moat0/accept_ra).
Status write_sysctl(const std::string& path, std::string_view value);
/// Reads a /proc/sys file, without the trailing newline.
Result<std::string> read_sysctl(const std::string& path);

}  // namespace moat::ns
