#include "http/inspector.h"

namespace moat::http {

bool alpn_from_string(std::string_view alpn, Alpn* out) noexcept {
  if (alpn.empty()) {
    *out = Alpn::none;
  } else if (alpn == "h2") {
    *out = Alpn::h2;
  } else if (alpn == "http/1.1" || alpn == "http/1.0") {
    *out = Alpn::http1;
  } else {
    return false;
  }
  return true;
}

Inspector::Inspector(std::string_view expected_authority, Alpn alpn, Sink& sink, MemoryBudget* budget)
    : alpn_(alpn) {
  if (alpn == Alpn::h2) {
    h2_ = std::make_unique<H2Inspector>(expected_authority, sink, budget);
  } else {
    h1_ = std::make_unique<H1Inspector>(expected_authority, sink, budget);
  }
}

Inspector::~Inspector() = default;

Next Inspector::from_guest(Bytes bytes) { return h2_ ? h2_->from_guest(bytes) : h1_->from_guest(bytes); }
Next Inspector::from_upstream(Bytes bytes) { return h2_ ? h2_->from_upstream(bytes) : h1_->from_upstream(bytes); }
Next Inspector::upstream_eof() { return h2_ ? h2_->upstream_eof() : h1_->upstream_eof(); }
bool Inspector::closing() const noexcept { return h2_ ? h2_->closing() : h1_->closing(); }
size_t Inspector::held_bytes() const noexcept { return h2_ ? h2_->held_bytes() : h1_->held_bytes(); }

}  // namespace moat::http
