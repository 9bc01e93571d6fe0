#pragma once
// Internal to moat_ns: the one-message protocol between a namespace helper (the attach
// helper, the run child) and moat over a SOCK_SEQPACKET socketpair. The helper sends
// either the TAP fd (SCM_RIGHTS, tag 'F') or a one-line error message (tag 'E').
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace moat::ns::detail {

/// Helper side. Errors are ignored by callers (the helper exits either way and the
/// parent then sees EOF).
/// `extra_fd` (optional, -1 = none) travels in the same message, after `fd`.
bool send_fd(int sock, int fd, int extra_fd = -1) noexcept;
bool send_error(int sock, std::string_view message) noexcept;

/// Parent side: waits up to `timeout` for the reply. `what` names the helper in messages.
/// `extra`, when given, receives the second fd of the message (invalid if there was none).
Result<UniqueFd, std::string> recv_fd(int sock, std::chrono::milliseconds timeout, std::string_view what,
                                      UniqueFd* extra = nullptr);

/// Reaps `pid`, waiting at most `timeout`; then SIGKILLs and reaps it. Returns the raw
/// wait status, or nullopt if it could not be reaped (ECHILD).
std::optional<int> reap_bounded(pid_t pid, std::chrono::milliseconds timeout) noexcept;

}  // namespace moat::ns::detail
