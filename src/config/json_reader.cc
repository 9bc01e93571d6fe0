// JSON → doc::Value through nlohmann's SAX parser (Debian's nlohmann-json3-dev). The SAX
// interface does not throw; it reports positions only for syntax errors, so the input runs
// through a counting iterator and each key/value position is recovered from the number of
// bytes the lexer had consumed when the callback fired (§5.2 needs LINE:COL).
#include <nlohmann/json.hpp>

#include <cctype>
#include <iterator>
#include <unordered_set>

#include "config/doc.h"

namespace moat::config::doc {
namespace {

/// Deeper documents are refused: the tree is freed recursively and no key of the schema
/// nests more than a few levels.
constexpr size_t kMaxDepth = 64;

/// A char iterator that records how far the parser has read.
class CountingIter {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIter() = default;
  CountingIter(const char* p, const char* base, size_t* consumed) : p_(p), base_(base), consumed_(consumed) {}
  reference operator*() const { return *p_; }
  CountingIter& operator++() {
    ++p_;
    if (consumed_ != nullptr && size_t(p_ - base_) > *consumed_) *consumed_ = size_t(p_ - base_);
    return *this;
  }
  CountingIter operator++(int) {
    CountingIter t = *this;
    ++*this;
    return t;
  }
  bool operator==(const CountingIter& o) const { return p_ == o.p_; }
  bool operator!=(const CountingIter& o) const { return p_ != o.p_; }

 private:
  const char* p_ = nullptr;
  const char* base_ = nullptr;
  size_t* consumed_ = nullptr;
};

/// nlohmann's exception text as a §5.2 message body. Its what() starts with the exception
/// type ("[json.exception.parse_error.101] parse error at line 1, column 5: syntax error
/// while parsing value - ...") and ends with the token it read, which is the user's text:
/// the type and the position are dropped (the position is ours, LINE:COL), the token is
/// escaped and the whole is bounded, since an unterminated string's "last read" is the
/// rest of the file.
std::string json_error_text(std::string_view msg) {
  if (!msg.empty() && msg.front() == '[') {
    const size_t end = msg.find("] ");
    if (end != std::string_view::npos) msg.remove_prefix(end + 2);
  }
  if (msg.rfind("parse error", 0) == 0) {
    const size_t colon = msg.find(": ");
    if (colon != std::string_view::npos) msg.remove_prefix(colon + 2);
  }
  if (msg.rfind("syntax error ", 0) == 0) msg.remove_prefix(13);
  std::string_view body = msg;
  std::string prefix, suffix;
  if (constexpr std::string_view kOverflow = "number overflow parsing "; msg.rfind(kOverflow, 0) == 0) {
    body = msg.substr(kOverflow.size());
    prefix = "number ";
    suffix = " is out of range";
  }
  constexpr size_t kMax = 160;
  std::string out = prefix;
  for (char ch : body.substr(0, kMax)) {
    auto c = static_cast<unsigned char>(ch);
    // Bytes >= 0x80 too: they come from the user's token (invalid UTF-8 is a common
    // reason to be here) and may be cut mid-sequence.
    if (c < 0x20 || c >= 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  if (body.size() > kMax) out += "\xe2\x80\xa6";  // "…"
  return out + suffix;
}

Pos pos_at(std::string_view text, size_t off) {
  Pos p{1, 1};
  for (size_t i = 0; i < off && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.col = 1;
    } else {
      ++p.col;
    }
  }
  return p;
}

class Builder {
 public:
  Builder(std::string_view text, std::string_view origin, std::vector<UserError>* errs)
      : text_(text), origin_(origin), errs_(errs) {}

  size_t consumed = 0;
  Value root;
  bool have_root = false;

  // --- nlohmann SAX interface -------------------------------------------------------
  bool null() { return add(scalar(Value::Kind::null, literal_start())); }
  bool boolean(bool b) {
    Value v = scalar(Value::Kind::boolean, literal_start());
    v.boolean = b;
    return add(std::move(v));
  }
  bool number_integer(int64_t i) {
    Value v = scalar(Value::Kind::integer, number_start());
    v.integer = i;
    return add(std::move(v));
  }
  bool number_unsigned(uint64_t u) {
    Value v = scalar(Value::Kind::integer, number_start());
    if (u > uint64_t(INT64_MAX)) {
      v.integer = INT64_MAX;
      v.out_of_range = true;
    } else {
      v.integer = int64_t(u);
    }
    return add(std::move(v));
  }
  bool number_float(double d, const std::string&) {
    Value v = scalar(Value::Kind::floating, number_start());
    v.floating = d;
    return add(std::move(v));
  }
  bool string(std::string& s) {
    Value v = scalar(Value::Kind::string, string_start());
    v.str = std::move(s);
    return add(std::move(v));
  }
  bool binary(nlohmann::json::binary_t&) { return false; }  // never produced for JSON text
  bool start_object(size_t) { return open(Value::Kind::table); }
  bool end_object() { return close(); }
  bool start_array(size_t) { return open(Value::Kind::array); }
  bool end_array() { return close(); }
  bool key(std::string& k) {
    key_ = std::move(k);
    key_pos_ = pos_at(text_, string_start());
    return true;
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& ex) {
    set_error_pos();
    errs_->push_back({where(origin_, last_pos_), json_error_text(ex.what()), ""});
    return false;
  }

  /// Where nlohmann reported the failure: the last byte it read.
  void set_error_pos() { last_pos_ = pos_at(text_, consumed == 0 ? 0 : consumed - 1); }

 private:
  Value scalar(Value::Kind k, size_t start) {
    Value v;
    v.kind = k;
    v.pos = pos_at(text_, start);
    return v;
  }
  // Literals (true/false/null) are read exactly; the lexer has just passed their end.
  size_t literal_start() const {
    size_t p = consumed;
    while (p > 0 && std::isalpha(static_cast<unsigned char>(text_[p - 1])) != 0) --p;
    return p;
  }
  // Numbers are read one byte past their end (the lexer's lookahead).
  size_t number_start() const {
    auto is_num = [](char c) { return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'; };
    size_t p = consumed;
    if (p > 0 && p <= text_.size() && !is_num(text_[p - 1])) --p;
    while (p > 0 && is_num(text_[p - 1])) --p;
    return p;
  }
  // Strings end at the closing quote; walk back to the opening one, skipping escaped quotes.
  size_t string_start() const {
    if (consumed < 2 || consumed > text_.size()) return 0;
    size_t p = consumed - 1;  // the closing quote
    while (p > 0) {
      --p;
      if (text_[p] != '"') continue;
      size_t bs = 0;
      while (p >= bs + 1 && text_[p - bs - 1] == '\\') ++bs;
      if (bs % 2 == 0) return p;
    }
    return 0;
  }

  bool open(Value::Kind k) {
    if (stack_.size() >= kMaxDepth) {
      errs_->push_back({where(origin_, pos_at(text_, consumed == 0 ? 0 : consumed - 1)),
                        "nesting deeper than " + std::to_string(kMaxDepth) + " levels", ""});
      return false;
    }
    Value v = scalar(k, consumed == 0 ? 0 : consumed - 1);
    std::string path = child_path();
    Value* slot = insert(std::move(v));
    if (slot == nullptr) return false;
    stack_.push_back(slot);
    keys_.emplace_back();
    paths_.push_back(std::move(path));
    return true;
  }
  bool close() {
    if (!stack_.empty()) stack_.pop_back();
    if (!keys_.empty()) keys_.pop_back();
    if (!paths_.empty()) paths_.pop_back();
    return true;
  }
  /// The key path of the value about to be inserted (`dns.hosts`, `policy.rules[2]`).
  std::string child_path() const {
    if (stack_.empty()) return "";
    if (stack_.back()->kind == Value::Kind::array) return paths_.back() + "[" + std::to_string(stack_.back()->items.size()) + "]";
    return paths_.back().empty() ? key_ : paths_.back() + "." + key_;
  }
  bool add(Value v) { return insert(std::move(v)) != nullptr; }

  Value* insert(Value v) {
    if (stack_.empty()) {
      if (v.kind != Value::Kind::table) {
        errs_->push_back({where(origin_, v.pos), "the document must be a JSON object", ""});
        return nullptr;
      }
      root = std::move(v);
      have_root = true;
      return &root;
    }
    Value* top = stack_.back();
    if (top->kind == Value::Kind::array) {
      top->items.push_back(std::move(v));
      return &top->items.back();
    }
    if (!keys_.back().insert(key_).second) {  // JSON allows duplicates; §4.1 does not
      errs_->push_back({where(origin_, key_pos_) + ": " + child_path(), "duplicate key", ""});
      if (errs_->size() >= 20) return nullptr;
    }
    top->members.push_back(Member{key_, key_pos_, std::move(v)});
    return &top->members.back().value;
  }

  std::string_view text_;
  std::string_view origin_;
  std::vector<UserError>* errs_;
  std::vector<Value*> stack_;
  std::vector<std::unordered_set<std::string>> keys_;  ///< keys seen in each open object
  std::vector<std::string> paths_;                     ///< key path of each open container
  std::string key_;
  Pos key_pos_;
  Pos last_pos_;
};

}  // namespace

bool read_json(std::string_view text, std::string_view origin, Value* out, std::vector<UserError>* errs) {
  size_t before = errs->size();
  Builder b(text, origin, errs);
  CountingIter first(text.data(), text.data(), &b.consumed);
  CountingIter last(text.data() + text.size(), text.data(), nullptr);
  bool ok = nlohmann::json::sax_parse(first, last, &b, nlohmann::json::input_format_t::json, /*strict=*/true);
  if (!ok || errs->size() != before || !b.have_root) {
    if (errs->size() == before) errs->push_back({std::string(origin), "not a JSON object", ""});
    return false;
  }
  *out = std::move(b.root);
  return true;
}

}  // namespace moat::config::doc
