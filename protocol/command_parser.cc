#include "protocol/command_parser.h"

#include <cstring>

#include "core/assert.h"

namespace ringmail {
namespace {

constexpr int kLiteralDigitsMax = 19;  // fits in uint64_t

// Parses "{123}" or "{123+}" that ends `line` (CRLF already stripped). Returns false when the
// line does not end in a literal announcement; sets *bad when it looks like one but is broken.
bool literal_announcement(std::string_view line, uint64_t* size, bool* sync, bool* bad) {
  *bad = false;
  if (line.empty() || line.back() != '}') return false;
  size_t open = line.rfind('{');
  if (open == std::string_view::npos) return false;
  std::string_view inner = line.substr(open + 1, line.size() - open - 2);
  *sync = true;
  if (!inner.empty() && inner.back() == '+') {
    *sync = false;
    inner.remove_suffix(1);
  }
  if (inner.empty() || inner.size() > kLiteralDigitsMax) {
    *bad = true;
    return true;
  }
  uint64_t v = 0;
  for (char c : inner) {
    if (c < '0' || c > '9') {
      *bad = true;
      return true;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *size = v;
  return true;
}

bool astring_char(unsigned char c) {
  return is_atom_char(c) || c == ']';
}
bool tag_char(unsigned char c) {
  return astring_char(c) && c != '+';
}
bool list_char(unsigned char c) {
  return astring_char(c) || c == '%' || c == '*';
}

}  // namespace

bool is_atom_char(unsigned char c) {
  if (c <= 0x1f || c == 0x7f || c >= 0x80) return false;
  switch (c) {
    case '(':
    case ')':
    case '{':
    case ' ':
    case '%':
    case '*':
    case '"':
    case '\\':
    case ']': return false;
    default: return true;
  }
}

CommandFramer::Result CommandFramer::scan(std::string_view buf, const Limits& limits) {
  RM_ASSERT(pos_ <= buf.size());
  if (awaiting_accept_) return Result::need_more;  // the caller has not answered the last one
  for (;;) {
    if (literal_left_ > 0) {
      uint64_t avail = buf.size() - pos_;
      uint64_t take = literal_left_ < avail ? literal_left_ : avail;
      pos_ += take;
      literal_left_ -= take;
      if (literal_left_ > 0) return Result::need_more;
      line_start_ = pos_;
    }
    size_t nl = buf.find('\n', pos_);
    if (nl == std::string_view::npos) {
      pos_ = buf.size();
      return pos_ - line_start_ > limits.line_bytes_max ? Result::line_too_long : Result::need_more;
    }
    if (nl + 1 - line_start_ > limits.line_bytes_max) return Result::line_too_long;
    std::string_view line = buf.substr(line_start_, nl - line_start_);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = nl + 1;
    uint64_t size = 0;
    bool sync = false, bad = false;
    if (!literal_announcement(line, &size, &sync, &bad)) return Result::complete;
    if (bad) return Result::bad_literal;
    literal_size_ = size;
    literal_sync_ = sync;
    if (size > limits.literal_bytes_max) return Result::literal_too_big;
    if (sync) {
      awaiting_accept_ = true;
      return Result::literal_wanted;
    }
    literal_left_ = size;
    line_start_ = pos_;
    if (size == 0) continue;
  }
}

void CommandFramer::accept_literal() {
  RM_ASSERT(awaiting_accept_);
  awaiting_accept_ = false;
  literal_left_ = literal_size_;
  line_start_ = pos_;
}

bool CommandReader::chars(std::string_view* out, bool (*ok)(unsigned char)) {
  size_t start = pos_;
  while (pos_ < s_.size() && ok(static_cast<unsigned char>(s_[pos_]))) pos_++;
  *out = s_.substr(start, pos_ - start);
  return pos_ > start;
}

bool CommandReader::tag(std::string_view* out) {
  return chars(out, tag_char);
}
bool CommandReader::atom(std::string_view* out) {
  return chars(out, is_atom_char);
}

bool CommandReader::sp() {
  if (!peek(' ')) return false;
  pos_++;
  return true;
}

bool CommandReader::at_end() const {
  std::string_view rest = s_.substr(pos_);
  return rest == "\r\n" || rest == "\n";
}

bool CommandReader::quoted(std::string_view* out, std::string* scratch) {
  RM_ASSERT(peek('"'));
  size_t start = ++pos_;
  bool escaped = false;
  for (; pos_ < s_.size(); pos_++) {
    char c = s_[pos_];
    if (c == '\r' || c == '\n' || c == '\0') return false;
    if (c == '"') break;
    if (c == '\\') {
      escaped = true;
      if (++pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\\')) return false;
    }
  }
  if (pos_ >= s_.size()) return false;
  std::string_view raw = s_.substr(start, pos_ - start);
  pos_++;  // the closing quote
  if (!escaped) {
    *out = raw;
    return true;
  }
  scratch->clear();
  for (size_t i = 0; i < raw.size(); i++) {
    if (raw[i] == '\\') i++;
    scratch->push_back(raw[i]);
  }
  *out = *scratch;
  return true;
}

// The framer already proved that the announced bytes are present.
bool CommandReader::literal(std::string_view* out, bool allow_nul) {
  RM_ASSERT(peek('{'));
  size_t close = s_.find('}', pos_);
  if (close == std::string_view::npos) return false;
  uint64_t size = 0;
  size_t i = pos_ + 1;
  for (; i < close && s_[i] >= '0' && s_[i] <= '9'; i++)
    size = size * 10 + static_cast<uint64_t>(s_[i] - '0');
  if (i == pos_ + 1 || (i < close && !(s_[i] == '+' && i + 1 == close))) return false;
  size_t data = close + 1;
  if (s_.substr(data, 2) == "\r\n")
    data += 2;
  else if (s_.substr(data, 1) == "\n")
    data += 1;
  else
    return false;
  for (size_t k = 0; k < external_count_; k++) {
    const ExternalLiteral& e = external_[k];
    if (e.at != data) continue;
    if (e.data.size() != size) return false;
    if (!allow_nul && memchr(e.data.data(), 0, size) != nullptr) return false;
    *out = e.data;
    pos_ = data;
    return true;
  }
  if (size > s_.size() - data) return false;
  if (!allow_nul && memchr(s_.data() + data, 0, size) != nullptr) return false;  // CHAR8
  *out = s_.substr(data, size);
  pos_ = data + size;
  return true;
}

bool CommandReader::astring(std::string_view* out, std::string* scratch) {
  if (peek('"')) return quoted(out, scratch);
  if (peek('{')) return literal(out);
  return chars(out, astring_char);
}

bool CommandReader::list_mailbox(std::string_view* out, std::string* scratch) {
  if (peek('"')) return quoted(out, scratch);
  if (peek('{')) return literal(out);
  return chars(out, list_char);
}

bool CommandReader::string(std::string_view* out, std::string* scratch) {
  if (peek('"')) return quoted(out, scratch);
  if (peek('{')) return literal(out);
  return false;
}

bool CommandReader::literal8(std::string_view* out) {
  return peek('{') && literal(out, true);
}

bool CommandReader::number(uint64_t* out, uint64_t max) {
  size_t start = pos_;
  uint64_t v = 0;
  while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
    uint64_t d = static_cast<uint64_t>(s_[pos_] - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
    pos_++;
  }
  if (pos_ == start) return false;
  *out = v;
  return true;
}

bool CommandReader::sequence_set_text(std::string_view* out) {
  return chars(out, [](unsigned char c) {
    return (c >= '0' && c <= '9') || c == ':' || c == ',' || c == '*' || c == '$';
  });
}

bool CommandReader::word(std::string_view* out) {
  return chars(out, [](unsigned char c) {
    return c != ' ' && c != '(' && c != ')' && c != '[' && c != ']' && c != '\r' && c != '\n' &&
           c != '\0' && c != '<';
  });
}

}  // namespace ringmail
