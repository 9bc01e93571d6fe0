#include "cli/flags.h"

#include <algorithm>

namespace moat::cli {


namespace {

const Flag* find_flag(const std::vector<Flag>& flags, std::string_view name) {
  for (const Flag& f : flags)
    if (f.name == name || (!f.short_name.empty() && f.short_name == name)) return &f;
  return nullptr;
}

std::string suggestion(const std::vector<Flag>& flags, std::string_view name) {
  const Flag* best = nullptr;
  size_t best_d = 3;
  for (const Flag& f : flags) {
    size_t d = edit_distance(name, f.name);
    if (d < best_d) {
      best_d = d;
      best = &f;
    }
  }
  return best ? "did you mean " + best->name + "?" : "";
}

}  // namespace

ParseResult parse_flags(const std::vector<Flag>& flags, const std::vector<std::string>& args,
                        bool stop_at_positional) {
  ParseResult r;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      r.positional.assign(args.begin() + long(i) + 1, args.end());
      break;
    }
    if (a == "--help" || a == "-h") {
      r.help = true;
      continue;
    }
    if (a.size() < 2 || a[0] != '-') {
      if (stop_at_positional) {
        r.positional.assign(args.begin() + long(i), args.end());
        break;
      }
      r.errors.push_back({quote_value(a), "unexpected argument", ""});
      continue;
    }
    std::string name = a;
    std::optional<std::string> value;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    const Flag* f = find_flag(flags, name);
    if (!f) {
      // The name is the user's text too: bounded and escaped like any quoted value.
      r.errors.push_back({escape_control(name, kQuotedValueMax), "unknown option", suggestion(flags, name)});
      continue;
    }
    if (f->value_name.empty()) {
      if (value) {
        r.errors.push_back({f->name, "takes no value", ""});
        continue;
      }
      value = "";
    } else if (!value) {
      if (i + 1 >= args.size()) {
        r.errors.push_back({f->name, "missing value", "expected " + f->name + " " + f->value_name});
        continue;
      }
      value = args[++i];
    }
    if (auto err = f->apply(*value)) r.errors.push_back(std::move(*err));
    if (r.errors.size() >= 20) break;
  }
  return r;
}

std::vector<std::string> prescan_flag(const std::vector<Flag>& flags, const std::vector<std::string>& args,
                                      std::string_view name, bool stop_at_positional) {
  std::vector<std::string> out;
  const Flag* target = find_flag(flags, name);
  if (target == nullptr) return out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') {
      if (stop_at_positional) break;
      continue;
    }
    std::string n = a;
    std::optional<std::string> value;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      n = a.substr(0, eq);
      value = a.substr(eq + 1);
    }
    const Flag* f = find_flag(flags, n);
    if (f == nullptr || f->value_name.empty()) continue;
    if (!value) {
      if (i + 1 >= args.size()) break;
      value = args[++i];
    }
    if (f == target) out.push_back(*value);
  }
  return out;
}

namespace {
HelpCapture* g_capture = nullptr;
}  // namespace

void set_help_capture(HelpCapture* c) { g_capture = c; }

std::string format_help(std::string_view usage, const std::vector<Flag>& flags) {
  if (g_capture != nullptr) {
    g_capture->pages.emplace_back(std::string(usage), flags);
    return {};
  }
  std::string s = "Usage: " + std::string(usage) + "\n";
  std::vector<std::string> groups;
  for (const Flag& f : flags)
    if (std::find(groups.begin(), groups.end(), f.group) == groups.end()) groups.push_back(f.group);
  for (const auto& g : groups) {
    s += "\n" + (g.empty() ? std::string("Options") : g) + ":\n";
    for (const Flag& f : flags) {
      if (f.group != g) continue;
      std::string left = "  " + (f.short_name.empty() ? "" : f.short_name + ", ") + f.name;
      if (!f.value_name.empty()) left += " " + f.value_name;
      if (left.size() < 32) left.resize(32, ' ');
      else left += "  ";
      s += left + f.help + "\n";
    }
  }
  return s;
}

config::UserError flag_error(std::string_view flag, config::Problem p) {
  return {p.where.empty() ? std::string(flag) : std::move(p.where), std::move(p.what), std::move(p.hint)};
}

std::vector<Flag> setting_flags(config::Config& cfg, const std::function<bool(const config::Setting&)>& want) {
  std::vector<Flag> out;
  for (const config::Setting& s : config::settings()) {
    if (s.flag.empty() || (want && !want(s))) continue;
    out.push_back({std::string(s.flag), std::string(s.short_flag), std::string(s.value_name), config::help_text(s),
                   [&cfg, &s, st = config::FlagState{}](std::string_view v) mutable -> std::optional<config::UserError> {
                     auto e = config::apply_flag(s, cfg, v, st);
                     if (e) return flag_error(s.flag, std::move(*e));
                     return std::nullopt;
                   },
                   std::string(config::group_name(s.group))});
  }
  return out;
}

}  // namespace moat::cli
