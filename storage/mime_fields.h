// Internal to the MIME parse (storage/mime_parser.cc), not part of ringmail's API: the structured
// header fields, Content-Type and Content-Disposition parameters (RFC 2231 continuations and
// charsets included) and RFC 5322 address lists, and what the parse shares with them.
#pragma once

#include <strings.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/mime_parser.h"

namespace ringmail {

// Character classes of RFC 2045 (tspecials) and RFC 5322 (specials). Octets >= 0x80 are accepted
// in tokens and atoms: 8-bit headers are common and are kept as written.
enum : uint8_t { kWsp = 1, kCtl = 2, kTspecial = 4, kSpecial = 8 };

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> c{};
  for (int i = 0; i < 32; i++) c[i] = kCtl;
  c[127] = kCtl;
  c[' '] = kWsp;
  c['\t'] = kWsp | kCtl;
  c['\r'] |= kWsp;
  c['\n'] |= kWsp;
  for (unsigned char s : std::string_view("()<>@,;:\\\"/[]?=")) c[s] |= kTspecial;
  for (unsigned char s : std::string_view("()<>[]:;@\\,.\"")) c[s] |= kSpecial;
  return c;
}
constexpr std::array<uint8_t, 256> kClasses = make_classes();

inline bool token_char(unsigned char c) {
  return (kClasses[c] & (kWsp | kCtl | kTspecial)) == 0;
}

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// A scanner over one header field's value (folds included): tokens, quoted strings, comments.
class FieldLexer {
 public:
  FieldLexer(const char* p, const char* e) : p_(p), e_(e) {}
  bool done() const { return p_ >= e_; }
  unsigned char peek() const { return static_cast<unsigned char>(*p_); }  // REQUIRES: !done()
  void next() { ++p_; }
  const char* pos() const { return p_; }
  const char* end() const { return e_; }
  void set_pos(const char* p) { p_ = p; }

  // Skips white space, folds and (nested) comments; true when anything was skipped. The
  // content of the last comment skipped goes to *comment when given.
  bool skip_cfws(std::string_view* comment = nullptr) {
    const char* start = p_;
    while (p_ < e_) {
      unsigned char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++p_;
      } else if (c == '(') {
        const char* body = ++p_;
        int depth = 1;
        while (p_ < e_ && depth > 0) {
          if (*p_ == '\\' && p_ + 1 < e_) {
            p_ += 2;
            continue;
          }
          depth += *p_ == '(' ? 1 : *p_ == ')' ? -1 : 0;
          ++p_;
        }
        if (comment) *comment = std::string_view(body, (depth == 0 ? p_ - 1 : p_) - body);
      } else {
        break;
      }
    }
    return p_ != start;
  }

  std::string_view run(bool (*accept)(unsigned char)) {
    const char* start = p_;
    while (p_ < e_ && accept(peek())) ++p_;
    return std::string_view(start, p_ - start);
  }

  // The raw content of a quoted string, escapes unresolved. REQUIRES: peek() == '"'.
  std::string_view quoted() {
    const char* start = ++p_;
    while (p_ < e_ && *p_ != '"') p_ += (*p_ == '\\' && p_ + 1 < e_) ? 2 : 1;
    std::string_view content(start, p_ - start);
    if (p_ < e_) ++p_;
    return content;
  }

  // Moves to the next octet in `stops` that is outside quoted strings and comments.
  void skip_to(std::string_view stops) {
    while (p_ < e_) {
      if (stops.find(static_cast<char>(peek())) != std::string_view::npos) return;
      if (peek() == '"') {
        quoted();
      } else if (!skip_cfws()) {
        ++p_;
      }
    }
  }

 private:
  const char* p_;
  const char* e_;
};

// Strings every parse may need; each is added to MimeInfo::text at most once per message.
enum MimeConst : uint8_t {
  kText,
  kPlain,
  kCharset,
  kUsAscii,
  k7bit,
  kMessage,
  kRfc822,
  kApplication,
  kOctetStream,
  kMissingMailbox,
  kMissingDomain,
  kEmpty,
  kConstCount
};
constexpr std::string_view kConstText[kConstCount] = {
    "text",   "plain",       "charset",      "us-ascii",        "7bit",           "message",
    "rfc822", "application", "octet-stream", "MISSING_MAILBOX", "MISSING_DOMAIN", ""};

// The strings of one message's parse, in MimeInfo::text.
// Invariant: info()->text.size() <= MimeParser::kTextBytesMax.
class MimeTextWriter {
 public:
  explicit MimeTextWriter(MimeInfo* info) : info_(info) {}
  MimeInfo* info() const { return info_; }

  // Appends bytes, as many as kTextBytesMax leaves room for; a NUL (which no IMAP string can
  // carry) becomes U+FFFD.
  void append(const char* p, size_t n);
  // Appends a quoted string's or comment's content: escapes resolved, folds dropped.
  void append_unescaped(std::string_view s);
  uint32_t mark() const { return static_cast<uint32_t>(info_->text.size()); }
  MimeString since(uint32_t start) const;
  MimeString add(std::string_view s) {
    uint32_t start = mark();
    append(s.data(), s.size());
    return since(start);
  }
  MimeString constant(MimeConst c) {
    if (consts_[c].is_nil()) consts_[c] = add(kConstText[c]);
    return consts_[c];
  }
  std::string_view view(MimeString s) const { return info_->str(s); }

 private:
  MimeInfo* info_;
  MimeString consts_[kConstCount];
};

// Appends to MimeInfo::params; false (and nothing added) past kParamsMax.
inline bool push_param(MimeInfo* info, const MimeParam& prm) {
  if (info->params.size() >= MimeParser::kParamsMax) return false;
  info->params.push_back(prm);
  return true;
}

// Buffers of the field parses, reused between messages (a part of MimeParser::Scratch).
struct MimeFieldScratch {
  struct Token {
    enum Kind : uint8_t { atom, quoted, dot };
    Kind kind;
    bool space_before;
    std::string_view text;  // quoted: the content, escapes unresolved
  };

  struct RawParam {
    std::string_view name;  // as written, in the message
    MimeString value;       // unquoted, in MimeInfo::text
    uint32_t base_length = 0;
    int section = -1;  // RFC 2231 "name*N"
    bool extended = false;
    bool rfc2231 = false;
    bool emits_group = false;  // the group's first member in header order: emits the joined value
    MimeString group_name;
    MimeString group_value;
  };

  std::vector<Token> tokens;
  std::vector<RawParam> raw_params;
  std::vector<uint32_t> order;
  std::string bytes;
  std::string value;
};

// `;` name=value pairs up to the end of the field, appended to MimeInfo::params with RFC 2231
// continuations joined. Malformed pieces are skipped up to the next ';': a parameter without '='
// is dropped, junk after a value is ignored.
MimeList parse_params(FieldLexer* lx, MimeTextWriter* text, MimeFieldScratch* scratch);

// An RFC 5322 address-list (From, To, ...), appended to MimeInfo::addresses as RFC 9051 address
// structures.
MimeList parse_address_list(FieldLexer lx, MimeTextWriter* text, MimeFieldScratch* scratch);

}  // namespace ringmail
