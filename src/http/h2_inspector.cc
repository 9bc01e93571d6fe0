#include "http/h2_inspector.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"
#include "http/authority.h"

namespace moat::http {

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// RFC 9113 §6 frame types and flags.
constexpr uint8_t kData = 0x0, kHeaders = 0x1, kPriority = 0x2, kRstStream = 0x3, kSettings = 0x4,
                  kPushPromise = 0x5, kPing = 0x6, kGoaway = 0x7, kWindowUpdate = 0x8, kContinuation = 0x9;
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriorityFlag = 0x20;
constexpr uint16_t kSettingsHeaderTableSize = 0x1, kSettingsInitialWindowSize = 0x4;

// Header-block frames per block (a CONTINUATION flood of empty frames is refused).
constexpr uint32_t kMaxBlockFrames = 128;
// libnghttp2's allocations for one connection: the inflater and its ≤ kMaxHpackTable table.
constexpr uint64_t kNghttp2Cap = 1 << 20;

uint32_t be24(const unsigned char* p) { return uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2]; }
uint32_t be32(const unsigned char* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

Bytes bytes_of(std::string_view s) { return as_bytes(s); }

bool has_upper_or_bad(std::string_view name) {
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') return true;
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return true;
  }
  return false;
}

bool bad_value(std::string_view v) {
  return v.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos;
}

}  // namespace

template <class F>
void H2Inspector::SettingsReader::feed(std::string_view bytes, F&& on_setting) {
  for (char c : bytes) {
    entry[have++] = static_cast<unsigned char>(c);
    if (have == 6) {
      on_setting(uint16_t(entry[0] << 8 | entry[1]), be32(entry.data() + 2));
      have = 0;
    }
  }
}

H2Inspector::H2Inspector(std::string_view expected, Sink& sink, MemoryBudget* budget)
    : expected_(expected), matcher_(expected), sink_(sink), charge_(budget), mem_(budget, kNghttp2Cap) {
  if (nghttp2_hd_inflate_new2(&inflater_, mem_.get()) != 0) {
    inflater_ = nullptr;  // out of budget: the first header block closes the connection
  }
}

H2Inspector::~H2Inspector() {
  if (inflater_ != nullptr) nghttp2_hd_inflate_del(inflater_);
}

Next H2Inspector::from_guest(Bytes in) {
  if (closing_) return Next::close;
  process_guest(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()));
  update_charge();
  return closing_ ? Next::close : Next::relay;
}

void H2Inspector::gflush(size_t upto) {
  if (upto > gstart_) sink_.to_upstream(bytes_of(gin_.substr(gstart_, upto - gstart_)));
  gstart_ = upto;
}

void H2Inspector::process_guest(std::string_view in) {
  gin_ = in;
  gstart_ = 0;
  const size_t n = in.size();
  size_t i = 0;
  while (i < n && guest_ != Guest::closed) {
    switch (guest_) {
      case Guest::preface: {
        while (i < n && preface_have_ < kPreface.size()) {
          if (in[i] != kPreface[preface_have_]) {
            gflush(i);
            protocol_error("bad connection preface", H2Error::protocol_error);
            break;
          }
          ++i;
          ++preface_have_;
        }
        if (guest_ == Guest::preface && preface_have_ == kPreface.size()) guest_ = Guest::frame_header;
        break;
      }
      case Guest::frame_header: {
        bool in_run;
        size_t hdr_start = i;
        if (ghdr_have_ == 0 && n - i >= 9) {
          std::memcpy(ghdr_.data(), in.data() + i, 9);
          i += 9;
          in_run = true;
        } else {
          if (ghdr_have_ == 0) gflush(i);
          const size_t m = std::min(9 - ghdr_have_, n - i);
          std::memcpy(ghdr_.data() + ghdr_have_, in.data() + i, m);
          ghdr_have_ += m;
          i += m;
          gstart_ = i;
          if (ghdr_have_ < 9) break;
          in_run = false;
        }
        ghdr_have_ = 0;
        const auto* p = reinterpret_cast<const unsigned char*>(ghdr_.data());
        FrameHeader h;
        h.length = be24(p);
        h.type = p[3];
        h.flags = p[4];
        h.stream = be32(p + 5) & 0x7fffffffu;
        const bool hold = h.type == kHeaders || h.type == kContinuation;
        if (hold || !in_run) gflush(hdr_start);
        if (!guest_frame_header(h)) {
          gflush(hdr_start);
          gstart_ = n;
          break;
        }
        if (hold) {
          block_frame_off_ = block_raw_.size();
          block_raw_.append(ghdr_.data(), 9);
          gstart_ = i;
        } else if (!in_run) {
          sink_.to_upstream(bytes_of(std::string_view(ghdr_.data(), 9)));
          gstart_ = i;
        }
        gframe_ = h;
        gleft_ = h.length;
        small_have_ = 0;
        guest_ = hold ? Guest::payload_hold : Guest::payload_pass;
        if (gleft_ == 0) {
          if (hold) guest_block_frame_done();
          else guest_pass_done();
        }
        break;
      }
      case Guest::payload_pass: {
        const size_t m = std::min<size_t>(gleft_, n - i);
        const std::string_view part = in.substr(i, m);
        if (gframe_.type == kData) {
          auto it = streams_.find(gframe_.stream);
          const bool opaque = it != streams_.end() && it->second.opaque;
          sink_.scan(bytes_of(part), opaque ? Payload::h2_opaque : Payload::h2_data, gframe_.stream);
        } else if (gframe_.type == kSettings) {
          guest_settings_.feed(part, [this](uint16_t id, uint32_t value) {
            if (id == kSettingsInitialWindowSize) guest_initial_window_ = value;
          });
        } else if (gframe_.type == kWindowUpdate) {
          for (char c : part) {
            if (small_have_ < small_.size()) small_[small_have_++] = static_cast<unsigned char>(c);
          }
        }
        i += m;
        gleft_ -= uint32_t(m);
        if (gleft_ == 0) guest_pass_done();
        break;
      }
      case Guest::payload_hold: {
        const size_t m = std::min<size_t>(gleft_, n - i);
        block_raw_.append(in.substr(i, m));
        i += m;
        gstart_ = i;
        gleft_ -= uint32_t(m);
        if (gleft_ == 0) guest_block_frame_done();
        break;
      }
      case Guest::closed:
        break;
    }
  }
  if (guest_ != Guest::closed) gflush(n);
  gin_ = {};
}

bool H2Inspector::guest_frame_header(const FrameHeader& h) {
  if (in_block_ && (h.type != kContinuation || h.stream != block_stream_)) {
    protocol_error("frame inside a header block", H2Error::protocol_error);
    return false;
  }
  switch (h.type) {
    case kData:
      if (h.stream == 0 || h.stream > last_stream_) {
        protocol_error("DATA on an idle stream", H2Error::protocol_error);
        return false;
      }
      break;
    case kHeaders:
      if (h.stream == 0 || (h.stream & 1) == 0) {
        protocol_error("HEADERS on an invalid stream", H2Error::protocol_error);
        return false;
      }
      if (h.length > kMaxHeaderBlock) {
        sink_.on_event(Event{EventKind::limit, {}, {}, {}, h.stream, "header block too large"});
        stream_answer(h.stream, 400, malformed_body("header block too large"), H2Error::protocol_error);
        return false;
      }
      in_block_ = true;
      block_stream_ = h.stream;
      block_frames_ = 1;
      block_end_stream_ = (h.flags & kEndStream) != 0;
      break;
    case kContinuation:
      if (!in_block_) {
        protocol_error("CONTINUATION without HEADERS", H2Error::protocol_error);
        return false;
      }
      if (++block_frames_ > kMaxBlockFrames || block_raw_.size() + 9 + h.length > kMaxHeaderBlock + 9 * kMaxBlockFrames) {
        sink_.on_event(Event{EventKind::limit, {}, {}, {}, block_stream_, "header block too large"});
        stream_answer(block_stream_, 400, malformed_body("header block too large"), H2Error::protocol_error);
        return false;
      }
      break;
    case kPriority:
      if (h.stream == 0) return protocol_error("PRIORITY on stream 0", H2Error::protocol_error), false;
      if (h.length != 5) return protocol_error("PRIORITY length", H2Error::frame_size_error), false;
      break;
    case kRstStream:
      if (h.stream == 0 || h.stream > last_stream_) {
        return protocol_error("RST_STREAM on an idle stream", H2Error::protocol_error), false;
      }
      if (h.length != 4) return protocol_error("RST_STREAM length", H2Error::frame_size_error), false;
      break;
    case kSettings:
      if (h.stream != 0) return protocol_error("SETTINGS on a stream", H2Error::protocol_error), false;
      if ((h.flags & kAck) ? h.length != 0 : h.length % 6 != 0) {
        return protocol_error("SETTINGS length", H2Error::frame_size_error), false;
      }
      guest_settings_.have = 0;
      break;
    case kPushPromise:
      return protocol_error("PUSH_PROMISE from a client", H2Error::protocol_error), false;
    case kPing:
      if (h.stream != 0) return protocol_error("PING on a stream", H2Error::protocol_error), false;
      if (h.length != 8) return protocol_error("PING length", H2Error::frame_size_error), false;
      break;
    case kGoaway:
      if (h.stream != 0) return protocol_error("GOAWAY on a stream", H2Error::protocol_error), false;
      if (h.length < 8) return protocol_error("GOAWAY length", H2Error::frame_size_error), false;
      break;
    case kWindowUpdate:
      if (h.length != 4) return protocol_error("WINDOW_UPDATE length", H2Error::frame_size_error), false;
      break;
    default:
      break;  // unknown frame types are ignored by the upstream (RFC 9113 §4.1); passed through
  }
  return true;
}

void H2Inspector::guest_pass_done() {
  guest_ = Guest::frame_header;
  const FrameHeader& h = gframe_;
  switch (h.type) {
    case kData:
      if (h.flags & kEndStream) end_stream(h.stream, true);
      break;
    case kRstStream:
      streams_.erase(h.stream);
      break;
    case kSettings:
      if ((h.flags & kAck) && pending_tables_n_ > 0) {
        // The guest acknowledged the oldest upstream SETTINGS: from now on the upstream's
        // decoder uses its table size, and so does the mirror.
        const int64_t size = pending_tables_[0];
        std::move(pending_tables_.begin() + 1, pending_tables_.begin() + pending_tables_n_, pending_tables_.begin());
        --pending_tables_n_;
        if (size >= 0 && inflater_ != nullptr) {
          table_size_ = uint32_t(std::min<int64_t>(size, kMaxHpackTable));
          if (nghttp2_hd_inflate_change_table_size(inflater_, table_size_) != 0) {
            protocol_error("HPACK table size", H2Error::internal_error, EventKind::limit);
          }
        }
      }
      break;
    case kWindowUpdate:
      if (h.stream == 0 && small_have_ == 4) conn_window_ += be32(small_.data()) & 0x7fffffffu;
      break;
    default:
      break;
  }
}

void H2Inspector::guest_block_frame_done() {
  guest_ = Guest::frame_header;
  const FrameHeader& h = gframe_;
  std::string_view payload = std::string_view(block_raw_).substr(block_frame_off_ + 9);
  if (h.type == kHeaders) {
    size_t pad = 0;
    if (h.flags & kPadded) {
      if (payload.empty()) return protocol_error("HEADERS padding", H2Error::protocol_error);
      pad = static_cast<unsigned char>(payload[0]);
      payload.remove_prefix(1);
    }
    if (h.flags & kPriorityFlag) {
      if (payload.size() < 5) return protocol_error("HEADERS priority", H2Error::frame_size_error);
      payload.remove_prefix(5);
    }
    if (pad > payload.size()) return protocol_error("HEADERS padding", H2Error::protocol_error);
    payload.remove_suffix(pad);
    trailer_block_ = false;
    if (auto it = streams_.find(h.stream); it != streams_.end() && !it->second.guest_ended) trailer_block_ = true;
  }
  const bool end = (h.flags & kEndHeaders) != 0;
  if (!inflate(payload, end)) return;
  if (end) finish_block();
}

bool H2Inspector::inflate(std::string_view fragment, bool final) {
  if (inflater_ == nullptr) {
    protocol_error("HPACK memory", H2Error::internal_error, EventKind::limit);
    return false;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(fragment.data());
  size_t left = fragment.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t rv = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, p, left, final ? 1 : 0);
    if (rv < 0) {
      if (rv == NGHTTP2_ERR_NOMEM) {
        protocol_error("HPACK memory", H2Error::internal_error, EventKind::limit);
      } else {
        protocol_error("HPACK decoding failed", H2Error::compression_error, EventKind::compression_error);
      }
      return false;
    }
    p += rv;
    left -= size_t(rv);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      if (!on_field(std::string_view(reinterpret_cast<const char*>(nv.name), nv.namelen),
                    std::string_view(reinterpret_cast<const char*>(nv.value), nv.valuelen))) {
        // Header limits and malformed fields: the stream is answered 400, the connection
        // closes (the inflater is left mid-block; nothing is decoded after this).
        sink_.on_event(Event{field_error_kind_, {}, method_, path_, block_stream_, field_error_});
        stream_answer(block_stream_, 400, malformed_body(field_error_), H2Error::protocol_error);
        return false;
      }
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater_);
      return true;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) {
      if (final) {
        protocol_error("truncated header block", H2Error::compression_error, EventKind::compression_error);
        return false;
      }
      return true;
    }
  }
}

bool H2Inspector::on_field(std::string_view name, std::string_view value) {
  auto bad = [this](const char* why, EventKind kind = EventKind::malformed) {
    field_error_ = why;
    field_error_kind_ = kind;
    return false;
  };
  if (++field_count_ > kMaxFields) return bad("too many header fields", EventKind::limit);
  field_bytes_ += name.size() + value.size();
  if (field_bytes_ > kMaxHeaderBlock) return bad("header block too large", EventKind::limit);
  if (name.empty() || bad_value(value)) return bad("malformed header field");
  if (name.front() == ':') {
    // RFC 9113 §8.3: pseudo-headers first, each once, only the defined ones, none in trailers.
    if (saw_regular_ || trailer_block_) return bad("misplaced pseudo-header");
    auto take = [&](bool* seen, std::string* into) {
      if (*seen) return bad("duplicate pseudo-header");
      *seen = true;
      into->assign(value);
      return true;
    };
    if (name == ":method") return take(&saw_method_, &method_);
    if (name == ":scheme") return take(&saw_scheme_, &scheme_);
    if (name == ":path") return take(&saw_path_, &path_);
    if (name == ":authority") return take(&saw_authority_, &authority_);
    if (name == ":protocol") return take(&saw_protocol_, &protocol_);
    return bad("unknown pseudo-header");
  }
  saw_regular_ = true;
  if (has_upper_or_bad(name)) return bad("malformed header name");
  // RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2.
  if (name == "connection" || name == "keep-alive" || name == "proxy-connection" || name == "transfer-encoding" ||
      name == "upgrade") {
    return bad("connection-specific header field");
  }
  if (name == "te" && value != "trailers") return bad("TE other than trailers");
  if (name == "host") {
    if (saw_host_) return bad("duplicate Host");
    saw_host_ = true;
    host_.assign(value);
  }
  return true;
}

void H2Inspector::finish_block() {
  const uint32_t id = block_stream_;
  in_block_ = false;
  auto forward = [this]() {
    sink_.to_upstream(bytes_of(block_raw_));
    reset_block();
  };
  if (trailer_block_) {
    if (!block_end_stream_) return protocol_error("trailers without END_STREAM", H2Error::protocol_error);
    forward();
    end_stream(id, true);
    return;
  }
  if (id <= last_stream_) {
    // A HEADERS on a closed stream: the upstream answers it (STREAM_CLOSED); decoded here
    // only to keep the HPACK mirror in step.
    forward();
    return;
  }
  last_stream_ = id;
  // RFC 9113 §8.3.1 and RFC 8441 §4: the request's pseudo-headers.
  const bool connect = saw_method_ && method_ == "CONNECT";
  const char* why = nullptr;
  if (!saw_method_) {
    why = "missing :method";
  } else if (connect && !saw_protocol_) {
    if (saw_scheme_ || saw_path_ || !saw_authority_) why = "malformed CONNECT";
  } else if (saw_protocol_ && !connect) {
    why = ":protocol without CONNECT";
  } else if (!saw_scheme_ || !saw_path_ || path_.empty()) {
    why = "missing :scheme or :path";
  }
  if (why == nullptr && !saw_authority_ && !saw_host_) why = "missing :authority and Host";
  if (why != nullptr) {
    sink_.on_event(Event{EventKind::malformed, {}, method_, path_, id, why});
    stream_answer(id, 400, malformed_body(why), H2Error::protocol_error);
    return;
  }
  for (const std::string* a : {&authority_, &host_}) {
    if ((a == &authority_ && !saw_authority_) || (a == &host_ && !saw_host_)) continue;
    switch (matcher_.check(*a)) {
      case AuthorityCheck::invalid:
        sink_.on_event(Event{EventKind::malformed, {}, method_, path_, id, "invalid :authority"});
        stream_answer(id, 400, malformed_body("invalid :authority"), H2Error::protocol_error);
        return;
      case AuthorityCheck::mismatch: {
        const std::string_view claimed = authority_host(*a);
        sink_.on_event(Event{EventKind::authority_mismatch, claimed, method_, path_, id, "authority mismatch"});
        stream_answer(id, 421, misdirected_body(expected_, claimed), H2Error::no_error);
        return;
      }
      case AuthorityCheck::match:
        break;
    }
  }
  if (streams_.size() >= kMaxH2Streams) {
    protocol_error("too many concurrent streams", H2Error::protocol_error, EventKind::limit);
    return;
  }
  Stream s;
  s.opaque = connect;
  streams_.emplace(id, s);
  last_forwarded_ = id;
  if (connect) {
    sink_.on_event(Event{EventKind::upgraded, expected_, method_, path_, id, saw_protocol_ ? "extended CONNECT" : "CONNECT"});
  }
  const bool end = block_end_stream_;
  forward();
  if (end) end_stream(id, true);
}

void H2Inspector::reset_block() {
  block_raw_.clear();
  if (block_raw_.capacity() > 4096) std::string().swap(block_raw_);
  block_frame_off_ = 0;
  block_frames_ = 0;
  method_.clear(), scheme_.clear(), path_.clear(), authority_.clear(), host_.clear(), protocol_.clear();
  saw_method_ = saw_scheme_ = saw_path_ = saw_authority_ = saw_protocol_ = false;
  saw_host_ = saw_regular_ = trailer_block_ = false;
  field_count_ = field_bytes_ = 0;
  field_error_ = nullptr;
}

void H2Inspector::end_stream(uint32_t id, bool guest_side) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  (guest_side ? it->second.guest_ended : it->second.upstream_ended) = true;
  if (it->second.guest_ended && it->second.upstream_ended) streams_.erase(it);
}

void H2Inspector::protocol_error(const char* reason, H2Error code, EventKind kind) {
  sink_.on_event(Event{kind, {}, {}, {}, 0, reason});
  answer_.clear();
  h2_goaway(&answer_, last_forwarded_, code, std::string("moat: ") + reason);
  guest_ = Guest::closed;
  reset_block();
  answer_queued_ = true;
  try_emit();
}

void H2Inspector::stream_answer(uint32_t stream, int status, std::string body, H2Error goaway) {
  answer_.clear();
  // The body is sent only if the guest's windows have room for it (RFC 9113 §6.9); the
  // status alone says enough otherwise.
  if (int64_t(body.size()) > std::min(conn_window_, guest_initial_window_)) body.clear();
  h2_response(&answer_, stream, status, body);
  h2_goaway(&answer_, last_forwarded_, goaway);
  guest_ = Guest::closed;
  reset_block();
  answer_queued_ = true;
  try_emit();
}

void H2Inspector::try_emit() {
  if (!answer_queued_ || !upstream_at_boundary()) return;
  if (!up_preface_seen_) {
    // A client must see the server's SETTINGS first (RFC 9113 §3.4). The upstream has not
    // sent its own yet, so moat's answer starts with an empty one; the connection closes
    // right after, so the upstream never sees the guest's ACK of it.
    std::string settings;
    h2_frame_header(&settings, 0, kSettings, 0, 0);
    answer_.insert(0, settings);
    up_preface_seen_ = true;
  }
  sink_.to_guest(bytes_of(answer_));
  answer_queued_ = false;
  closing_ = true;
}

Next H2Inspector::from_upstream(Bytes bytes) {
  if (closing_) return Next::close;
  const std::string_view in(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const size_t n = in.size();
  size_t i = 0, start = 0;
  auto flush = [&](size_t upto) {
    if (upto > start) sink_.to_guest(bytes_of(in.substr(start, upto - start)));
    start = upto;
  };
  while (i < n) {
    if (answer_queued_ && upstream_at_boundary()) break;
    if (up_hdr_have_ < 9 && up_left_ == 0) {
      const size_t m = std::min(9 - up_hdr_have_, n - i);
      std::memcpy(up_hdr_.data() + up_hdr_have_, in.data() + i, m);
      up_hdr_have_ += m;
      i += m;
      if (up_hdr_have_ == 9) upstream_frame_header();
      continue;
    }
    const size_t m = std::min<size_t>(up_left_, n - i);
    if (up_frame_.type == kSettings && !(up_frame_.flags & kAck)) {
      up_settings_.feed(in.substr(i, m), [this](uint16_t id, uint32_t value) {
        if (id == kSettingsHeaderTableSize) {
          up_settings_has_table_ = true;
          up_settings_table_ = value;
        }
      });
    }
    i += m;
    up_left_ -= uint32_t(m);
    if (up_left_ == 0) upstream_frame_done();
  }
  if (answer_queued_ && upstream_at_boundary()) {
    flush(i);
    try_emit();
    return Next::close;
  }
  flush(n);
  return Next::relay;
}

void H2Inspector::upstream_frame_header() {
  const unsigned char* p = up_hdr_.data();
  up_frame_.length = be24(p);
  up_frame_.type = p[3];
  up_frame_.flags = p[4];
  up_frame_.stream = be32(p + 5) & 0x7fffffffu;
  up_left_ = up_frame_.length;
  up_hdr_have_ = 0;
  up_preface_seen_ = true;
  switch (up_frame_.type) {
    case kData:
      conn_window_ -= up_frame_.length;
      break;
    case kHeaders:
    case kPushPromise:
      if (!(up_frame_.flags & kEndHeaders)) up_in_block_ = true;
      up_block_end_stream_ = up_frame_.type == kHeaders && (up_frame_.flags & kEndStream);
      break;
    case kContinuation:
      if (up_frame_.flags & kEndHeaders) up_in_block_ = false;
      break;
    case kSettings:
      up_settings_.have = 0;
      up_settings_has_table_ = false;
      break;
    default:
      break;
  }
  if (up_left_ == 0) upstream_frame_done();
}

void H2Inspector::upstream_frame_done() {
  const FrameHeader& h = up_frame_;
  switch (h.type) {
    case kData:
      if (h.flags & kEndStream) end_stream(h.stream, false);
      break;
    case kHeaders:
    case kContinuation:
      if (!up_in_block_ && up_block_end_stream_) {
        end_stream(h.stream, false);
        up_block_end_stream_ = false;
      }
      break;
    case kRstStream:
      streams_.erase(h.stream);
      break;
    case kSettings:
      if (!(h.flags & kAck)) {
        const int64_t v = up_settings_has_table_ ? int64_t(up_settings_table_) : -1;
        if (pending_tables_n_ < pending_tables_.size()) {
          pending_tables_[pending_tables_n_++] = v;
        } else if (v >= 0) {
          pending_tables_[pending_tables_.size() - 1] = v;  // an upstream that never waits: keep the newest
        }
      }
      break;
    default:
      break;
  }
}

Next H2Inspector::upstream_eof() {
  if (closing_) return Next::close;
  if (answer_queued_) {
    up_hdr_have_ = up_left_ = 0;  // whatever the upstream left unfinished is gone
    up_in_block_ = false;
    try_emit();
  }
  return closing_ ? Next::close : Next::relay;
}

void H2Inspector::update_charge() {
  const size_t bytes = block_raw_.capacity() + streams_.size() * 32 + method_.capacity() + path_.capacity() +
                       authority_.capacity() + host_.capacity() + scheme_.capacity() + protocol_.capacity();
  if (!charge_.try_resize(bytes) && !closing_ && guest_ != Guest::closed) {
    protocol_error("memory budget", H2Error::enhance_your_calm, EventKind::limit);
  }
}

}  // namespace moat::http
