#include "cli/docgen.h"

#include <algorithm>
#include <map>

#include "config/settings.h"

namespace moat::cli {

namespace {

std::string type_name(const config::Setting& s) {
  using VT = config::ValueType;
  switch (s.type) {
    case VT::boolean: return "boolean";
    case VT::integer: return "integer";
    case VT::duration: return "duration";
    case VT::size: return "size";
    case VT::enumeration: {
      std::string c(s.choices);
      std::replace(c.begin(), c.end(), ',', '|');
      return "\"" + c + "\"";
    }
    case VT::text: return "string";
    case VT::path: return "path";
    case VT::list: return "array of strings";
    case VT::path_list: return "array of paths";
    case VT::custom: return "see below";
    case VT::unsupported: return "";
  }
  return "";
}

/// ".TH" date: the build's, not the reader's; fixed so the page is reproducible.
constexpr const char* kDate = "2026-12-07";

}  // namespace

std::string troff_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

std::string man_moat(const HelpCapture& subs, const std::string& version) {
  std::string m;
  m += ".TH MOAT 1 \"" + std::string(kDate) + "\" \"moat " + version + "\" \"User Commands\"\n";
  m += ".SH NAME\nmoat \\- a user\\-space network gateway for sandboxes and microVMs\n";
  m += ".SH SYNOPSIS\n";
  for (const auto& [usage, flags] : subs.pages) m += ".br\n" + troff_escape(usage) + "\n";
  m += ".SH DESCRIPTION\n"
       "A sandbox (a process in its own network namespace, a container, a microVM) gets one virtual NIC, "
       "and every frame it sends ends at\n.BR moat .\n"
       "moat answers ARP, NDP, DHCP and DNS as the gateway, terminates the guest's TCP, UDP and ICMP and "
       "re\\-creates each flow on ordinary host sockets, but only after its egress policy allows it. It can "
       "intercept TLS with its own CA, publish host ports into the guest, and records what happened "
       "(counters, an audit log, pcap).\n"
       ".PP\nEvery option below is also a key of the configuration file given with\n.BR \\-\\-config ;\n"
       "see\n.BR moat.toml (5).\nCommand\\-line values override the file.\n";
  m += ".SH COMMANDS\n";
  for (const auto& [usage, flags] : subs.pages) {
    m.append(".SS \"").append(troff_escape(usage)).append("\"\n");
    std::vector<std::string> groups;
    for (const Flag& f : flags)
      if (std::find(groups.begin(), groups.end(), f.group) == groups.end()) groups.push_back(f.group);
    for (const auto& g : groups) {
      m += ".PP\n.I " + troff_escape(g.empty() ? "Options" : g) + "\n";
      for (const Flag& f : flags) {
        if (f.group != g) continue;
        m += ".TP\n.B ";
        if (!f.short_name.empty()) m += troff_escape(f.short_name) + ", ";
        m += troff_escape(f.name);
        if (!f.value_name.empty()) m.append(" \\fI").append(troff_escape(f.value_name)).append("\\fR");
        m.append("\n").append(troff_escape(f.help)).append("\n");
      }
    }
  }
  m += ".SH EXIT STATUS\n"
       ".TP\n.B 0\nsuccess (attach/serve: stopped by SIGTERM/SIGINT or the namespace went away)\n"
       ".TP\n.B 1\na policy check found errors\n"
       ".TP\n.B 2\nbad usage or configuration (attach, serve, policy)\n"
       ".TP\n.B 125\nrun: moat itself failed (configuration, setup, or the gateway died)\n"
       ".TP\n.B 126, 127\nrun: the command cannot be executed or is not found\n"
       ".PP\nOtherwise\n.B moat run\nexits with its command's status (128 + the signal if it was killed).\n";
  m += ".SH SIGNALS\n"
       "SIGTERM and SIGINT stop attach and serve; run forwards SIGTERM and SIGHUP to its command. SIGHUP "
       "reopens the audit log. SIGUSR1 logs every counter.\n";
  m += ".SH ENVIRONMENT\n"
       ".TP\n.B SSLKEYLOGFILE\nthe TLS key log when tls.keylog_file is not set\n"
       ".TP\n.B XDG_DATA_HOME\nwhere the persistent interception CA lives ($XDG_DATA_HOME/moat, else "
       "~/.local/share/moat)\n";
  m += ".SH SEE ALSO\n.BR moat.toml (5),\n.BR ip\\-netns (8),\n.BR pasta (1)\n";
  return m;
}

std::string man_moat_toml(const std::string& version) {
  std::string m;
  m += ".TH MOAT.TOML 5 \"" + std::string(kDate) + "\" \"moat " + version + "\" \"File Formats\"\n";
  m += ".SH NAME\nmoat.toml \\- the configuration file of moat\n";
  m += ".SH DESCRIPTION\n"
       "A TOML (or, with a .json name, JSON) file given to\n.BR moat\nwith\n.BR \\-\\-config .\n"
       "Each key below sets what the named command\\-line flag sets; a flag given as well wins. "
       "Unknown keys are errors (with a suggestion), and every error names FILE:LINE:COL and the key.\n"
       ".PP\nValues: durations are strings with a unit (\"500ms\", \"30s\", \"10m\", \"2h\"); sizes are a byte "
       "count or a string with B, KB, KiB, MB, MiB, GB or GiB; host patterns are a name, \"*.suffix\" (the "
       "suffix and every name under it) or \"*\". Relative paths are relative to the file's directory, and "
       "\"~\" is $HOME.\n"
       ".PP\nThe file starts with\n.B schema = 1\n(optional).\n";
  // Keys by their table (the part before the last dot), in schema order.
  std::vector<std::string> tables;
  std::map<std::string, std::vector<const config::Setting*>> by_table;
  for (const config::Setting& s : config::settings()) {
    if (s.key.empty() || s.type == config::ValueType::unsupported || s.key == "schema") continue;
    const size_t dot = s.key.rfind('.');
    const std::string table = dot == std::string_view::npos ? std::string("top level") : std::string(s.key.substr(0, dot));
    if (!by_table.count(table)) tables.push_back(table);
    by_table[table].push_back(&s);
  }
  m += ".SH KEYS\n";
  for (const auto& t : tables) {
    m.append(".SS ").append(t == "top level" ? std::string("Top level") : std::string("[").append(troff_escape(t)).append("]"));
    m += "\n";
    for (const config::Setting* s : by_table[t]) {
      m += ".TP\n.B " + troff_escape(s->key) + "\n";
      std::string line = troff_escape(s->help);
      std::string extra = type_name(*s);
      if (!s->def.empty()) extra += (extra.empty() ? "" : "; ") + std::string("default ") + std::string(s->def);
      using VT = config::ValueType;
      if (s->type == VT::integer || s->type == VT::duration || s->type == VT::size) {
        std::string r = config::range_text(*s);
        const std::string_view pre = "expected ";
        if (r.rfind(pre, 0) == 0) r = r.substr(pre.size());
        extra += "; " + r + (s->unit.empty() ? "" : " " + std::string(s->unit));
      }
      if (!s->flag.empty()) extra += "; flag " + std::string(s->flag);
      m += line + "\n.br\n(" + troff_escape(extra) + ")\n";
    }
  }
  m += ".SH REFUSED KEYS\nThese keys and tables are recognised and refused by this build, with the reason:\n";
  for (const config::Setting& s : config::settings()) {
    if (s.key.empty() || s.type != config::ValueType::unsupported) continue;
    m += ".TP\n.B " + troff_escape(s.key) + "\n" + troff_escape(s.help) + "\n";
  }
  m += ".SH EXAMPLE\n.nf\nschema = 1\n[net]\nmtu = 1500\n[dns]\nblock = [\"*.ads.example\"]\n"
       "[policy]\nrules = [\"allow@api.example.com:tcp:443\", \"deny@private\"]\n[tls]\nintercept = true\n"
       "bypass = [\"*.bank.example\"]\n.fi\n";
  m += ".SH SEE ALSO\n.BR moat (1)\n";
  return m;
}

}  // namespace moat::cli
