#include "dns/block_list.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/unique_fd.h"

namespace moat::dns {

namespace {

std::string quote(std::string_view s) { return std::string("\"").append(s).append("\""); }

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\r'; }

}  // namespace

Result<void, std::string> BlockList::insert(std::string_view entry) {
  const bool suffix = entry.starts_with("*.");
  auto n = policy::normalize_name(suffix ? entry.substr(2) : entry);
  if (!n) return unexpected(quote(entry) + " is not a valid name");
  if (size() >= kMaxEntries) return unexpected("more than 1000000 block-list entries");
  auto& set = suffix ? suffix_ : exact_;
  if (set.insert(*n).second) order_.push_back(suffix ? "*." + *n : *n);
  return {};
}

Result<void, std::string> BlockList::add(std::string_view entry) { return insert(entry); }

Result<void, BlockList::Error> BlockList::add_text(std::string_view text, std::string_view origin) {
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    // Split into whitespace-separated fields.
    std::vector<std::string_view> fields;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_space(line[i])) ++i;
      size_t start = i;
      while (i < line.size() && !is_space(line[i])) ++i;
      if (i > start) fields.push_back(line.substr(start, i - start));
    }
    if (fields.empty()) continue;
    // Hosts format: "ADDR name [alias...]" — the address is ignored.
    size_t first = 0;
    if (fields.size() >= 2 && IpAddr::parse(fields[0])) first = 1;
    else if (fields.size() >= 2) {
      // "ex ample.com": two words and no address — report the line as written.
      std::string_view whole = line;
      while (!whole.empty() && is_space(whole.front())) whole.remove_prefix(1);
      while (!whole.empty() && is_space(whole.back())) whole.remove_suffix(1);
      return unexpected(Error{std::string(origin) + ":" + std::to_string(line_no), quote(whole) + " is not a valid name"});
    }
    for (size_t f = first; f < fields.size(); ++f) {
      // Hosts files name the local host too; these are never worth blocking.
      if (first == 1 && (fields[f] == "localhost" || fields[f] == "localhost.localdomain" ||
                         fields[f] == "local" || fields[f] == "broadcasthost" || fields[f] == "0.0.0.0"))
        continue;
      auto r = insert(fields[f]);
      if (!r) return unexpected(Error{std::string(origin) + ":" + std::to_string(line_no), r.error()});
    }
  }
  return {};
}

Result<void, BlockList::Error> BlockList::add_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return unexpected(Error{path, std::string("cannot open: ") + std::strerror(errno)});
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return unexpected(Error{path, std::string("cannot read: ") + std::strerror(errno)});
  if (S_ISDIR(st.st_mode)) return unexpected(Error{path, "is a directory"});
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t k = ::read(fd.get(), buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return unexpected(Error{path, std::string("cannot read: ") + std::strerror(errno)});
    if (k == 0) break;
    if (text.size() + size_t(k) > kMaxFileBytes) return unexpected(Error{path, "larger than 64 MiB"});
    text.append(buf, size_t(k));
  }
  return add_text(text, path);
}

void BlockList::add_doh_names() {
  static constexpr std::string_view kNames[] = {
      "dns.google",      "cloudflare-dns.com", "mozilla.cloudflare-dns.com", "one.one.one.one",
      "dns.quad9.net",   "doh.opendns.com",    "dns.nextdns.io",             "dns.adguard-dns.com",
      "doh.cleanbrowsing.org", "use-application-dns.net"};
  for (auto n : kNames) (void)insert(n);  // valid constants; only the entry cap can refuse
}

bool BlockList::blocked(std::string_view name) const {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || size() == 0) return false;
  // Transparent lookup needs C++20 heterogeneous unordered lookup; a reused buffer is
  // simpler and the names are ≤ 255 octets.
  thread_local std::string key;
  key.assign(name);
  if (exact_.contains(key)) return true;
  if (suffix_.empty()) return false;
  size_t pos = 0;
  for (;;) {
    key.assign(name.substr(pos));
    if (suffix_.contains(key)) return true;
    size_t dot = name.find('.', pos);
    if (dot == std::string_view::npos) return false;
    pos = dot + 1;
  }
}

std::vector<policy::Rule> BlockList::rules() const {
  std::vector<policy::Rule> out;
  out.reserve(order_.size());
  for (const auto& e : order_) {
    policy::Rule r;
    r.action = policy::Action::deny;
    r.dir = policy::Direction::egress;
    const bool suffix = e.starts_with("*.");
    r.target.kind = suffix ? policy::Target::Kind::suffix : policy::Target::Kind::domain;
    r.target.name = suffix ? e.substr(2) : e;
    r.origin = policy::Origin::block;
    r.text = policy::rule_to_string(r);
    r.label = "block list";
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace moat::dns
