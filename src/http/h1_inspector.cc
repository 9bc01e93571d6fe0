#include "http/h1_inspector.h"

#include <algorithm>
#include <cstring>

#include "http/authority.h"
#include "http/local_response.h"

namespace moat::http {

namespace {

Bytes bytes_of(std::string_view s) { return as_bytes(s); }

// Frees a buffer that grew past a few KiB once it is empty again, so an idle connection
// keeps no 64 KiB head buffer charged.
void shrink(std::string* s) {
  if (s->empty() && s->capacity() > 4096) std::string().swap(*s);
}

bool is_digits(std::string_view s) {
  return !s.empty() && s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "gzip, chunked" → chunked is the final coding (RFC 9112 §6.3 rule 4).
bool final_coding_is_chunked(std::string_view te) {
  const size_t comma = te.rfind(',');
  std::string_view last = comma == std::string_view::npos ? te : te.substr(comma + 1);
  while (!last.empty() && (last.front() == ' ' || last.front() == '\t')) last.remove_prefix(1);
  return iequals(last, "chunked");
}

}  // namespace

H1Inspector::H1Inspector(std::string_view expected, Sink& sink, MemoryBudget* budget)
    : expected_(expected), matcher_(expected), sink_(sink), charge_(budget) {}

Next H1Inspector::from_guest(Bytes in) {
  if (closing_) return Next::close;
  process_guest(std::string_view(reinterpret_cast<const char*>(in.data()), in.size()));
  update_charge();
  return closing_ ? Next::close : Next::relay;
}

void H1Inspector::process_guest(std::string_view in) {
  const size_t n = in.size();
  size_t i = 0, start = 0;  // [start, i) is a pending pass-through run of `in`
  auto flush = [&](size_t upto) {
    if (upto > start) sink_.to_upstream(bytes_of(in.substr(start, upto - start)));
    start = upto;
  };
  while (i < n && !closing_ && guest_ != Guest::closed) {
    switch (guest_) {
      case Guest::head: {
        // RFC 9112 §2.2: empty lines before a request line are ignored (not forwarded).
        while (head_.empty() && i < n && leading_crlf_ < 4) {
          const char c = in[i];
          if (leading_crlf_ % 2 == 0 && c != '\r') break;
          if (leading_crlf_ % 2 == 1 && c != '\n') {
            flush(i);
            fail(400, "bare CR", EventKind::malformed, false);
            break;
          }
          flush(i);
          start = ++i;
          ++leading_crlf_;
        }
        if (guest_ != Guest::head || i >= n) break;
        if (leading_crlf_ % 2 == 1) {  // "\r\n\r" then more: a malformed start
          flush(i);
          fail(400, "bare CR", EventKind::malformed, false);
          break;
        }
        // Find "\r\n\r\n", refusing a bare CR or LF on the way (RFC 9112 §2.2: no smuggling
        // through line-ending disagreements). head_match_ counts the matched prefix.
        // The method is checked as it arrives, so a guest speaking something else than HTTP/1
        // is answered at its first bytes rather than after 64 KiB.
        size_t k = i;
        bool end = false, bad = false, bad_method = false;
        for (; k < n && method_len_ != kPastMethod; ++k) {
          const char c = in[k];
          if (c == ' ' && method_len_ > 0) {
            method_len_ = kPastMethod;
          } else if (!is_tchar(c) || ++method_len_ > kMaxMethod) {
            bad = bad_method = true;
            break;
          }
        }
        while (!bad && k < n) {
          const char c = in[k];
          if (head_match_ == 1 || head_match_ == 3) {
            if (c != '\n') {
              bad = true;
              break;
            }
            if (++head_match_ == 4) {
              end = true;
              break;
            }
            ++k;
          } else if (c == '\r') {
            head_match_ = head_match_ == 2 ? 3 : 1;
            ++k;
          } else if (c == '\n') {
            bad = true;
          } else {
            // Line content: jump to its CR (or a bare LF, refused above on the next turn).
            head_match_ = 0;
            const char* base = in.data();
            const void* lf = std::memchr(base + k, '\n', n - k);
            const size_t j = lf ? size_t(static_cast<const char*>(lf) - base) : n;
            const void* cr = std::memchr(base + k, '\r', j - k);
            k = cr ? size_t(static_cast<const char*>(cr) - base) : j;
          }
        }
        const size_t held = head_.size() + (k - i) + (end ? 1 : 0);
        if (bad || held > kMaxHeaderBlock) {
          flush(i);
          head_match_ = 0;
          fail(400, bad_method ? "malformed method" : bad ? "bare CR or LF" : "header block too large",
               bad ? EventKind::malformed : EventKind::limit, false);
          break;
        }
        if (!end) {
          flush(i);
          head_.append(in.substr(i));
          i = start = n;
          break;
        }
        head_match_ = 0;
        method_len_ = 0;
        const size_t head_end = k + 1;
        if (head_.empty()) {
          flush(i);  // everything before this head; the head joins the next run if accepted
          if (!handle_head(in.substr(i, head_end - i))) break;
        } else {
          head_.append(in.substr(i, head_end - i));
          start = head_end;
          if (!handle_head(head_)) break;
          sink_.to_upstream(bytes_of(head_));
          head_.clear();
          shrink(&head_);
        }
        i = head_end;
        break;
      }
      case Guest::body_length: {
        const size_t m = size_t(std::min<uint64_t>(body_left_, n - i));
        sink_.scan(bytes_of(in.substr(i, m)), Payload::h1_body, 0);
        i += m;
        body_left_ -= m;
        if (body_left_ == 0) request_done();
        break;
      }
      case Guest::body_chunked: {
        size_t used = 0;
        const auto st = request_chunks_.feed(in.substr(i), &used, [&](std::string_view data) {
          sink_.scan(bytes_of(data), Payload::h1_body, 0);
        });
        if (st == ChunkedDecoder::Status::error) {
          flush(i);
          fail(400, request_chunks_.error(), EventKind::malformed, true);
          break;
        }
        i += used;
        if (st == ChunkedDecoder::Status::done) request_done();
        break;
      }
      case Guest::await_switch: {
        flush(i);
        if (held_.size() + (n - i) > kMaxHeaderBlock) {
          fail(400, "too much data before the upgrade answer", EventKind::limit, false);
          break;
        }
        held_.append(in.substr(i));
        i = start = n;
        break;
      }
      case Guest::opaque:
        sink_.scan(bytes_of(in.substr(i)), Payload::h1_opaque, 0);
        i = n;
        break;
      case Guest::closed:
        break;
    }
  }
  if (closing_ || guest_ == Guest::closed) return;  // the rest is discarded
  flush(n);
}

bool H1Inspector::handle_head(std::string_view head) {
  RequestHead h;
  if (const char* why = parse_request_head(head, &h)) {
    fail(400, why, std::string_view(why) == "too many header fields" ? EventKind::limit : EventKind::malformed, false);
    return false;
  }
  auto mismatch = [&](std::string_view claimed) {
    sink_.on_event(Event{EventKind::authority_mismatch, claimed, h.method, h.target, 0, "authority mismatch"});
    queue_answer(h1_response(421, misdirected_body(expected_, claimed)), false);
  };
  switch (matcher_.check(h.host)) {
    case AuthorityCheck::invalid:
      fail(400, "invalid Host", EventKind::malformed, false, &h);
      return false;
    case AuthorityCheck::mismatch:
      mismatch(authority_host(h.host));
      return false;
    case AuthorityCheck::match:
      break;
  }
  std::string_view target_authority;
  if (h.connect) {
    target_authority = h.target;  // authority-form (RFC 9112 §3.2.3)
  } else if (h.target == "*") {
    if (h.method != "OPTIONS") {
      fail(400, "asterisk-form target", EventKind::malformed, false, &h);
      return false;
    }
  } else if (h.target.front() != '/') {
    target_authority = absolute_form_authority(h.target);
    if (target_authority.empty()) {
      fail(400, "malformed request target", EventKind::malformed, false, &h);
      return false;
    }
  }
  if (!target_authority.empty()) {
    switch (matcher_.check(target_authority)) {
      case AuthorityCheck::invalid:
        fail(400, "malformed request target", EventKind::malformed, false, &h);
        return false;
      case AuthorityCheck::mismatch:
        mismatch(authority_host(target_authority));
        return false;
      case AuthorityCheck::match:
        break;
    }
  }
  if (pending_.size() >= kMaxPipelined) {
    fail(400, "too many pipelined requests", EventKind::limit, false, &h);
    return false;
  }
  uint8_t flags = 0;
  if (h.method == "HEAD") flags |= kHead;
  if (h.connect) flags |= kConnect;
  // An h2c upgrade over TLS is not one (RFC 9113 §3.1 removed it; RFC 7540 §3.3 forbade it
  // on TLS): a 101 to it is unfollowable framing, and HTTP/2 bytes after it get a 400. So
  // an upstream that wrongly switches cannot carry unchecked h2 requests.
  else if (h.upgrade && !h.upgrade_h2c) flags |= kUpgrade;
  pending_.push_back(flags);
  switch (h.body) {
    case BodyKind::none:
      request_done();
      break;
    case BodyKind::length:
      body_left_ = h.content_length;
      guest_ = Guest::body_length;
      break;
    case BodyKind::chunked:
      request_chunks_.reset();
      guest_ = Guest::body_chunked;
      break;
  }
  return true;
}

void H1Inspector::request_done() {
  leading_crlf_ = 0;
  const bool switching = !pending_.empty() && (pending_.back() & (kUpgrade | kConnect)) != 0;
  guest_ = switching ? Guest::await_switch : Guest::head;
  if (switching && upstream_ == Upstream::lost) {
    // The 101 could not be recognised: nothing safe to do but close.
    closing_ = true;
  }
}

void H1Inspector::fail(int status, const char* reason, EventKind kind, bool partially_forwarded, const RequestHead* h) {
  sink_.on_event(Event{kind, {}, h ? h->method : std::string_view(), h ? h->target : std::string_view(), 0, reason});
  queue_answer(h1_response(status, malformed_body(reason)), partially_forwarded);
}

void H1Inspector::queue_answer(std::string answer, bool partially_forwarded) {
  guest_ = Guest::closed;
  head_.clear();
  held_.clear();
  if (upstream_ == Upstream::lost) {
    closing_ = true;  // no response boundary to put the answer at
    return;
  }
  answer_ = std::move(answer);
  answer_queued_ = true;
  answer_after_ = pending_.size() - (partially_forwarded && !pending_.empty() ? 1 : 0);
  if (answer_after_ == 0) {
    const bool at_boundary = upstream_ == Upstream::status_line && line_.empty();
    if (at_boundary) {
      emit_answer();
    } else {
      closing_ = true;  // the partial request's own response has begun
    }
  }
}

void H1Inspector::emit_answer() {
  sink_.to_guest(bytes_of(answer_));
  answer_queued_ = false;
  closing_ = true;
}

void H1Inspector::lose_upstream_framing() {
  upstream_ = Upstream::lost;
  line_.clear();
  sink_.on_event(Event{EventKind::upstream_framing, {}, {}, {}, 0, "upstream response framing not followed"});
  if (answer_queued_ || guest_ == Guest::await_switch) closing_ = true;
}

Next H1Inspector::from_upstream(Bytes bytes) {
  if (closing_) return Next::close;
  const std::string_view in(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (upstream_ == Upstream::opaque || upstream_ == Upstream::lost || upstream_ == Upstream::body_eof) {
    sink_.to_guest(bytes);
    return Next::relay;
  }
  const size_t n = in.size();
  size_t i = 0, start = 0;
  auto flush = [&](size_t upto) {
    if (upto > start) sink_.to_guest(bytes_of(in.substr(start, upto - start)));
    start = upto;
  };
  auto complete = [&]() {
    flush(i);
    if (response_done()) emit_answer();
  };
  while (i < n && !closing_) {
    switch (upstream_) {
      case Upstream::status_line:
      case Upstream::headers: {
        const size_t j = in.find('\n', i);
        const size_t piece = (j == std::string_view::npos ? n : j) - i;
        if (line_.size() + piece > kMaxResponseLine) {
          lose_upstream_framing();
          break;
        }
        if (j == std::string_view::npos) {
          line_.append(in.substr(i));
          i = n;
          break;
        }
        std::string_view line = in.substr(i, piece);
        if (!line_.empty()) {
          line_.append(line);
          line = line_;
        }
        i = j + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        completed_ = false;
        upstream_line(line);
        line_.clear();
        shrink(&line_);
        if (completed_) complete();
        break;
      }
      case Upstream::body_length: {
        const size_t m = size_t(std::min<uint64_t>(resp_left_, n - i));
        i += m;
        resp_left_ -= m;
        if (resp_left_ == 0) {
          upstream_ = Upstream::status_line;
          complete();
        }
        break;
      }
      case Upstream::body_chunked: {
        size_t used = 0;
        const auto st = response_chunks_.feed(in.substr(i), &used, [](std::string_view) {});
        if (st == ChunkedDecoder::Status::error) {
          lose_upstream_framing();
          break;
        }
        i += used;
        if (st == ChunkedDecoder::Status::done) {
          upstream_ = Upstream::status_line;
          complete();
        }
        break;
      }
      case Upstream::body_eof:
      case Upstream::opaque:
      case Upstream::lost:
        i = n;
        break;
    }
  }
  if (!closing_) flush(n);
  update_charge();
  return closing_ ? Next::close : Next::relay;
}

void H1Inspector::upstream_line(std::string_view line) {
  if (upstream_ == Upstream::status_line) {
    int status = 0;
    if (pending_.empty() || !parse_status_line(line, &status)) {
      lose_upstream_framing();
      return;
    }
    status_ = status;
    resp_te_ = resp_cl_ = resp_chunked_ = false;
    resp_left_ = 0;
    upstream_ = Upstream::headers;
    return;
  }
  if (!line.empty()) {
    std::string_view name, value;
    if (!split_field_line(line, &name, &value)) {
      lose_upstream_framing();
      return;
    }
    if (iequals(name, "content-length")) {
      if (!is_digits(value)) {
        lose_upstream_framing();
        return;
      }
      uint64_t v = 0;
      for (char c : value) v = v * 10 + uint64_t(c - '0');
      if (resp_cl_ && v != resp_left_) {
        lose_upstream_framing();
        return;
      }
      resp_cl_ = true;
      resp_left_ = v;
    } else if (iequals(name, "transfer-encoding")) {
      resp_te_ = true;
      resp_chunked_ = final_coding_is_chunked(value);
    }
    return;
  }
  response_head_done();
}

void H1Inspector::response_head_done() {
  const uint8_t front = pending_.front();
  if (status_ == 101) {
    if ((front & kUpgrade) == 0) {
      lose_upstream_framing();
      return;
    }
    pending_.pop_front();
    switch_to_opaque();
    return;
  }
  if (status_ < 200) {  // 1xx interim (RFC 9110 §15.2): the final response follows
    upstream_ = Upstream::status_line;
    return;
  }
  if ((front & kConnect) && status_ < 300) {
    pending_.pop_front();
    switch_to_opaque();
    return;
  }
  // RFC 9112 §6.3 message body length, in its order.
  if ((front & kHead) || status_ == 204 || status_ == 304) {
    upstream_ = Upstream::status_line;
    completed_ = true;
  } else if (resp_te_) {
    if (resp_chunked_) {
      response_chunks_.reset();
      upstream_ = Upstream::body_chunked;
    } else {
      upstream_ = Upstream::body_eof;
    }
  } else if (resp_cl_) {
    upstream_ = resp_left_ == 0 ? Upstream::status_line : Upstream::body_length;
    completed_ = resp_left_ == 0;
  } else {
    upstream_ = Upstream::body_eof;  // read until close: no later response can follow
  }
}

bool H1Inspector::response_done() {
  if (pending_.empty()) return false;
  pending_.pop_front();
  if (answer_queued_) {
    if (answer_after_ > 0) --answer_after_;
    return answer_after_ == 0;
  }
  if (guest_ == Guest::await_switch && pending_.empty()) {
    // The Upgrade/CONNECT request got a final non-switching answer: the held bytes are
    // the next requests.
    std::string held = std::move(held_);
    held_.clear();
    guest_ = Guest::head;
    process_guest(held);
  }
  return false;
}

void H1Inspector::switch_to_opaque() {
  upstream_ = Upstream::opaque;
  pending_.clear();
  sink_.on_event(Event{EventKind::upgraded, expected_, {}, {}, 0, status_ == 101 ? "101" : "CONNECT"});
  if (guest_ == Guest::await_switch) {
    guest_ = Guest::opaque;
    if (!held_.empty()) {
      sink_.scan(bytes_of(held_), Payload::h1_opaque, 0);
      sink_.to_upstream(bytes_of(held_));
    }
    held_.clear();
    shrink(&held_);
  }
}

Next H1Inspector::upstream_eof() {
  if (closing_) return Next::close;
  if (answer_queued_) {
    emit_answer();
    return Next::close;
  }
  if (guest_ == Guest::await_switch) closing_ = true;
  return closing_ ? Next::close : Next::relay;
}

void H1Inspector::update_charge() {
  const size_t bytes = head_.capacity() + held_.capacity() + line_.capacity() + pending_.size();
  if (!charge_.try_resize(bytes)) {
    if (!closing_) sink_.on_event(Event{EventKind::limit, {}, {}, {}, 0, "memory budget"});
    closing_ = true;
  }
}

}  // namespace moat::http
