#include "cli/ca_cmd.h"

#include <cstdio>
#include <ctime>
#include <optional>

#include "cli/flags.h"
#include "config/config.h"
#include "tls/ca.h"

namespace moat::cli {
namespace {

constexpr int kOk = 0, kError = 2;
using config::UserError;
using Err = std::optional<UserError>;

int fail(const UserError& e) {
  std::fprintf(stderr, "%s\n", e.format().c_str());
  return kError;
}

std::string utc(std::time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

/// Parses the one switch a ca subcommand has; returns -1 to go on, else the exit status.
int parse_switch(const std::vector<std::string>& args, const char* usage, const char* name, const char* help,
                 bool* value) {
  std::vector<Flag> flags;
  if (name)
    flags.push_back({name, "", "", help, [value](std::string_view) -> Err {
                       *value = true;
                       return std::nullopt;
                     }});
  auto r = parse_flags(flags, args, /*stop_at_positional=*/false);
  if (r.help) {
    std::printf("%s", format_help(usage, flags).c_str());
    return kOk;
  }
  if (!r.errors.empty()) {
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.format().c_str());
    return kError;
  }
  return -1;
}

int cmd_init(const std::vector<std::string>& args) {
  bool force = false;
  if (int rc = parse_switch(args, "moat ca init [--force]\n  creates the persistent interception CA unless it exists",
                            "--force", "rename an existing pair to ca.crt.old / ca.key.old and create a new CA", &force);
      rc >= 0)
    return rc;
  auto paths = tls::persistent_ca_paths();
  if (!paths) return fail(paths.error());
  bool created = false;
  auto ca = tls::CertAuthority::init(*paths, force, &created);
  if (!ca) return fail(ca.error());
  // stdout is the path alone (scripts read it); whether this call made the CA goes to stderr.
  if (created) std::fprintf(stderr, "moat: created a new interception CA (SHA-256 %s)\n", (*ca)->sha256_fingerprint().c_str());
  std::printf("%s\n", paths->cert.c_str());
  return kOk;
}

int cmd_show(const std::vector<std::string>& args) {
  bool text = false;
  if (int rc = parse_switch(args, "moat ca show [--text]\n  prints the persistent CA certificate (PEM)", "--text",
                            "also print the subject, the SHA-256 fingerprint and the validity", &text);
      rc >= 0)
    return rc;
  auto paths = tls::persistent_ca_paths();
  if (!paths) return fail(paths.error());
  auto ca = tls::CertAuthority::load_existing(*paths);
  if (!ca) return fail(ca.error());
  const tls::CertAuthority& c = **ca;
  if (text) {
    std::printf("Subject:     %s\n", c.subject().c_str());
    std::printf("SHA-256:     %s\n", c.sha256_fingerprint().c_str());
    std::printf("Not before:  %s\n", utc(c.not_before()).c_str());
    std::printf("Not after:   %s\n", utc(c.not_after()).c_str());
    std::printf("File:        %s\n", c.cert_path().c_str());
  }
  std::fputs(c.pem().c_str(), stdout);
  return kOk;
}

int cmd_path(const std::vector<std::string>& args) {
  bool key = false;
  if (int rc = parse_switch(args, "moat ca path [--key]\n  prints where the persistent CA is (whether or not it exists)",
                            "--key", "print the key's path instead of the certificate's", &key);
      rc >= 0)
    return rc;
  auto paths = tls::persistent_ca_paths();
  if (!paths) return fail(paths.error());
  std::printf("%s\n", (key ? paths->key : paths->cert).c_str());
  return kOk;
}

}  // namespace

int cmd_ca(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fprintf(args.empty() ? stderr : stdout,
                 "Usage:\n"
                 "  moat ca init [--force]   create the persistent interception CA (prints its path)\n"
                 "  moat ca show [--text]    print the CA certificate; --text adds subject, fingerprint, validity\n"
                 "  moat ca path [--key]     print the certificate's (or the key's) path\n"
                 "The CA lives in $XDG_DATA_HOME/moat (default ~/.local/share/moat).\n");
    return args.empty() ? kError : kOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "init") return cmd_init(rest);
  if (args[0] == "show") return cmd_show(rest);
  if (args[0] == "path") return cmd_path(rest);
  std::fprintf(stderr, "moat: error: ca %s: unknown subcommand; use init, show or path\n", args[0].c_str());
  return kError;
}

}  // namespace moat::cli
