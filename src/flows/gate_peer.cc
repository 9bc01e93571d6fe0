#include "flows/gate_peer.h"

#include <algorithm>

#include "flows/admission.h"

namespace moat::flows {

std::string_view tcp_path_name(TcpPath p) noexcept {
  switch (p) {
    case TcpPath::fast: return "fast";
    case TcpPath::gate: return "gate";
    case TcpPath::inspect: return "inspect";
    case TcpPath::reject: return "reject";
  }
  return "?";
}

std::string_view name_src_name(NameSrc s) noexcept {
  switch (s) {
    case NameSrc::none: return "";
    case NameSrc::sni: return "sni";
    case NameSrc::host: return "host";
    case NameSrc::connect: return "connect";
    case NameSrc::mismatch: return "host";
  }
  return "";
}

void GatePeer::start(TcpPeer* upstream) noexcept {
  up_ = upstream;
  held_.clear();
  held_.reserve(kMaxHeld);
  holding_ = true;
  fin_ = false;
}

void GatePeer::reset() noexcept {
  up_ = nullptr;
  std::vector<std::byte>().swap(held_);
  holding_ = fin_ = false;
}

size_t GatePeer::writable() {
  if (holding_) return fin_ ? 0 : kMaxHeld - held_.size();
  return up_ ? up_->writable() : 0;
}

Result<size_t> GatePeer::write(Bytes data) {
  if (!holding_) {
    if (!up_) return size_t{0};
    return up_->write(data);
  }
  const size_t n = std::min(data.size(), kMaxHeld - held_.size());
  held_.insert(held_.end(), data.begin(), data.begin() + ptrdiff_t(n));
  return n;
}

void GatePeer::shutdown_write() {
  if (holding_) {
    fin_ = true;
    return;
  }
  if (up_) up_->shutdown_write();
}

void GatePeer::abort() {
  holding_ = false;
  if (up_) up_->abort();
}

Status GatePeer::release() {
  holding_ = false;
  size_t off = 0;
  // The upstream's ring (flow_buffer >= 16 KiB) takes what the socket does not.
  while (up_ && off < held_.size()) {
    auto r = up_->write(Bytes(held_.data() + off, held_.size() - off));
    if (!r) return unexpected(r.error());
    if (*r == 0) break;
    off += *r;
  }
  std::vector<std::byte>().swap(held_);
  if (fin_ && up_) up_->shutdown_write();
  return {};
}

}  // namespace moat::flows
