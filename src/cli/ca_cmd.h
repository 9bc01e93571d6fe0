#pragma once
// `moat ca init [--force] | show [--text] | path [--key]` (SPEC R-CLI-6, R-TLS-2).
#include <string>
#include <vector>

namespace moat::cli {

/// Runs `moat ca ARGS...`; returns the exit status: 0 on success, 2 for a usage error or a
/// bad, missing or unwritable CA (printed as §5.2 lines naming the file).
int cmd_ca(const std::vector<std::string>& args);

}  // namespace moat::cli
