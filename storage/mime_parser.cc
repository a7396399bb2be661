#include "storage/mime_parser.h"

#include <strings.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "core/assert.h"

namespace ringmail {
namespace {

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

bool token_char(unsigned char c) {
  return (kClasses[c] & (kWsp | kCtl | kTspecial)) == 0;
}
bool atom_char(unsigned char c) {
  return (kClasses[c] & (kWsp | kCtl | kSpecial)) == 0;
}
// Unquoted parameter values: senders often leave '/', '=' or '?' unquoted (boundary=----=_Part),
// so a value runs to white space, ';', a quote or a comment rather than to the first tspecial.
bool loose_value_char(unsigned char c) {
  return (kClasses[c] & (kWsp | kCtl)) == 0 && c != ';' && c != '"' && c != '(';
}
// RFC 2231 attribute-char: what may stand unencoded in an extended value.
bool attribute_char(unsigned char c) {
  return c > 0x20 && c < 0x7f && (kClasses[c] & kTspecial) == 0 && c != '*' && c != '\'' &&
         c != '%';
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Counts LF octets in [p, e). The fixed-size inner loop with an 8-bit sum (at most 128) is what
// GCC turns into SIMD compares at -O2: about 15 GB/s, where a SWAR popcount loop gives 2.
uint32_t count_lf(const char* p, const char* e) {
  constexpr int kBlock = 128;
  uint64_t n = 0;
  for (; e - p >= kBlock; p += kBlock) {
    uint8_t block = 0;
    for (int i = 0; i < kBlock; i++) block += p[i] == '\n';
    n += block;
  }
  for (; p < e; p++) n += *p == '\n';
  return static_cast<uint32_t>(n);
}

constexpr size_t kTextBytesMax = MimeParser::kTextBytesMax;
constexpr size_t kParamBytesMax = MimeParser::kParamBytesMax;
constexpr size_t kFieldParamsMax = MimeParser::kFieldParamsMax;
constexpr size_t kParamsMax = MimeParser::kParamsMax;
constexpr size_t kAddressesMax = MimeParser::kAddressesMax;
constexpr size_t kWordsMax = MimeParser::kWordsMax;
static_assert(kTextBytesMax < MimeString::kNil, "offsets into MimeInfo::text must fit");

// Header fields the parse keeps. Envelope fields only count in a message header.
enum Field : uint8_t {
  kContentType,
  kContentTransferEncoding,
  kContentId,
  kContentDescription,
  kContentDisposition,
  kContentLanguage,
  kContentLocation,
  kContentMd5,
  kDate,
  kSubject,
  kFrom,
  kSender,
  kReplyTo,
  kTo,
  kCc,
  kBcc,
  kInReplyTo,
  kMessageId,
  kFieldCount
};
constexpr Field kLastMimeField = kContentMd5;

constexpr std::string_view kFieldNames[kFieldCount] = {
    // Content-*
    "content-type", "content-transfer-encoding", "content-id", "content-description",
    "content-disposition", "content-language", "content-location", "content-md5",
    // envelope
    "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to",
    "message-id"};

int field_id(std::string_view name) {
  for (int i = 0; i < kFieldCount; i++)
    if (iequals(name, kFieldNames[i])) return i;
  return -1;
}

// Strings every parse may need; each is added to MimeInfo::text at most once per message.
enum Const : uint8_t {
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

// A scanner over one header field's value (folds included): tokens, quoted strings, comments.
class Lexer {
 public:
  Lexer(const char* p, const char* e) : p_(p), e_(e) {}
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

struct Cursor {
  uint32_t pos = 0;
  uint32_t lfs = 0;              // LF octets before pos
  bool after_delimiter = false;  // pos starts the line after a delimiter line
};

// Where a scan stopped: at a delimiter line of an enclosing multipart (level indexes the boundary
// stack), or at the end of the message (level -1).
//
// Every range that runs into the stop ends at `end`, whatever its nesting, so a part always lies
// within its parent. `end` is before the line end that precedes the delimiter line, which
// belongs to the delimiter (RFC 2046 section 5.1.1), unless that line end already ended the
// previous delimiter line ("--inner--" CRLF "--outer"): then `end` is the delimiter line itself.
// A range that starts after `end` is empty.
struct Stop {
  Cursor end;
  int level = -1;
  bool close = false;  // "--boundary--"
  Cursor after;        // the first line after the delimiter line
};

struct FieldRange {
  uint32_t begin = 0;  // just after the colon
  uint32_t end = 0;    // before the line end of the field's last line
  bool present = false;
};

struct Header {
  FieldRange fields[kFieldCount];
  Cursor end;  // after the blank line, or where a delimiter line stopped it, or at the end
};

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

struct EntityContext {
  bool message_header = false;  // an RFC 5322 header: fills envelopes[envelope]
  uint32_t envelope = 0;
  bool digest_child = false;  // default type message/rfc822 (RFC 2046 section 5.1.5)
};

}  // namespace

struct MimeParser::Scratch {
  std::vector<MimeString> boundaries;  // of the enclosing multiparts, innermost last
  std::vector<Token> tokens;
  std::vector<RawParam> raw_params;
  std::vector<uint32_t> order;
  std::string bytes;
  std::string value;
};

namespace {

class ParseRun {
 public:
  ParseRun(std::string_view message, MimeInfo* out, MimeParser::Scratch* scratch)
      : m_(message.data()), n_(static_cast<uint32_t>(message.size())), out_(out), s_(scratch) {
    s_->boundaries.clear();
  }

  void run() {
    out_->envelopes.emplace_back();
    Stop stop = parse_entity(Cursor{}, 0, EntityContext{.message_header = true});
    RM_ASSERT(stop.level < 0);
    RM_ASSERT(out_->parts[0].end_offset() == n_);
  }

 private:
  // ---- strings in MimeInfo::text

  // Appends bytes, as many as kTextBytesMax leaves room for; a NUL (which no IMAP string can
  // carry) becomes U+FFFD.
  // Invariant: out_->text.size() <= kTextBytesMax.
  void append(const char* p, size_t n) {
    std::string& t = out_->text;
    for (;;) {
      n = std::min(n, kTextBytesMax - t.size());
      const char* nul = static_cast<const char*>(memchr(p, 0, n));
      if (!nul) break;
      t.append(p, nul - p);
      t.append("\xef\xbf\xbd", std::min<size_t>(3, kTextBytesMax - t.size()));
      n -= nul - p + 1;
      p = nul + 1;
    }
    t.append(p, n);
  }
  uint32_t mark() const { return static_cast<uint32_t>(out_->text.size()); }
  MimeString since(uint32_t start) const {
    RM_ASSERT(out_->text.size() <= kTextBytesMax);
    return MimeString{start, static_cast<uint32_t>(out_->text.size() - start)};
  }
  MimeString add(std::string_view s) {
    uint32_t start = mark();
    append(s.data(), s.size());
    return since(start);
  }
  MimeString constant(Const c) {
    if (consts_[c].is_nil()) consts_[c] = add(kConstText[c]);
    return consts_[c];
  }
  std::string_view view(MimeString s) const { return out_->str(s); }

  // Unfolded (every CR LF and LF dropped: in a field they only ever come before white space),
  // leading white space skipped, trailing kept.
  MimeString unfolded(const FieldRange& r) {
    const char* p = m_ + r.begin;
    const char* e = m_ + r.end;
    while (p < e && (kClasses[static_cast<unsigned char>(*p)] & kWsp)) p++;
    uint32_t start = mark();
    while (p < e) {
      const char* nl = static_cast<const char*>(memchr(p, '\n', e - p));
      const char* stop = nl ? nl : e;
      const char* last = (nl && stop > p && stop[-1] == '\r') ? stop - 1 : stop;
      append(p, last - p);
      p = nl ? nl + 1 : e;
    }
    return since(start);
  }

  // Appends a quoted string's or comment's content: escapes resolved, folds dropped.
  void append_unescaped(std::string_view s) {
    for (size_t i = 0; i < s.size(); i++) {
      char c = s[i];
      if (c == '\\' && i + 1 < s.size()) c = s[++i];
      if (c == '\r' || c == '\n') continue;
      append(&c, 1);
    }
  }

  // ---- the tree

  Stop parse_entity(Cursor at, uint32_t depth, const EntityContext& ctx) {
    const uint32_t idx = static_cast<uint32_t>(out_->parts.size());
    out_->parts.emplace_back();
    // The last part the limit allows holds the rest of the message, boundaries and all.
    const bool last = out_->parts.size() >= MimeParser::kPartsMax;
    Header h;
    scan_header(at, !last && !s_->boundaries.empty(), ctx.message_header, &h);
    out_->parts[idx].header_offset = at.pos;
    out_->parts[idx].header_length = h.end.pos - at.pos;
    if (ctx.message_header) fill_envelope(h, ctx.envelope);
    fill_mime_fields(h, idx, ctx.digest_child);

    MimeKind kind = out_->parts[idx].kind;
    if ((kind == MimeKind::multipart || kind == MimeKind::message) &&
        (last || depth + 1 >= MimeParser::kDepthMax)) {
      MimePart& p = out_->parts[idx];
      p.kind = kind = MimeKind::basic;
      p.type = constant(kApplication);
      p.subtype = constant(kOctetStream);
    }
    const Cursor body = h.end;
    Stop stop;
    if (last) {
      stop = end_stop(body);
    } else if (kind == MimeKind::multipart) {
      stop = parse_multipart(idx, body, depth);
    } else if (kind == MimeKind::message) {
      stop = parse_message(idx, body, depth);
    } else {
      stop = scan_body(body);
    }
    MimePart& p = out_->parts[idx];
    p.body_length = range_end(stop, body) - body.pos;
    p.body_lines = body.pos < stop.end.pos ? stop.end.lfs - body.lfs : 0;
    p.subtree_parts = static_cast<uint32_t>(out_->parts.size()) - idx;
    return stop;
  }

  Stop parse_multipart(uint32_t idx, Cursor body, uint32_t depth) {
    MimeString boundary = param_value(out_->parts[idx].params, "boundary");
    EntityContext child_ctx{.digest_child = iequals(view(out_->parts[idx].subtype), "digest")};
    uint32_t children = 0;
    Stop stop;
    if (boundary.is_nil() || boundary.length == 0) {
      stop = scan_body(body);
    } else {
      s_->boundaries.push_back(boundary);
      const int level = static_cast<int>(s_->boundaries.size()) - 1;
      stop = scan_body(body);  // the preamble
      while (stop.level == level && !stop.close) {
        stop = parse_entity(stop.after, depth + 1, child_ctx);
        children++;
      }
      s_->boundaries.pop_back();
      if (stop.level == level) stop = scan_body(stop.after);  // the epilogue
    }
    // BODYSTRUCTURE needs at least one child: a multipart without any gets an empty text part,
    // as Dovecot does.
    if (children == 0) {
      add_placeholder(range_end(stop, body));
      children = 1;
    }
    out_->parts[idx].child_count = children;
    return stop;
  }

  Stop parse_message(uint32_t idx, Cursor body, uint32_t depth) {
    const uint32_t env = static_cast<uint32_t>(out_->envelopes.size());
    out_->envelopes.emplace_back();
    out_->parts[idx].envelope = env;
    out_->parts[idx].child_count = 1;
    std::string_view cte = view(out_->parts[idx].encoding);
    if (!iequals(cte, "7bit") && !iequals(cte, "8bit") && !iequals(cte, "binary")) {
      // An encoded message (RFC 2046 forbids it) cannot be parsed in place: it gets an empty
      // envelope and an empty body, as in Dovecot.
      Stop stop = scan_body(body);
      add_placeholder(body.pos);
      return stop;
    }
    return parse_entity(body, depth + 1, EntityContext{.message_header = true, .envelope = env});
  }

  // Invariant: there is room. Only a multipart or message part that is not the last part the
  // limit allows gets here, and it has no child yet, so the slot after it is free.
  void add_placeholder(uint32_t at) {
    RM_ASSERT(out_->parts.size() < MimeParser::kPartsMax);
    MimePart p;
    p.header_offset = at;
    p.kind = MimeKind::text;
    p.type = constant(kText);
    p.subtype = constant(kPlain);
    p.encoding = constant(k7bit);
    p.params = MimeList{static_cast<uint32_t>(out_->params.size()), 0};
    if (push_param(MimeParam{constant(kCharset), constant(kUsAscii)})) p.params.count = 1;
    out_->parts.push_back(p);
  }

  // ---- scanning

  // The boundary stack level whose delimiter line starts at pos, or -1.
  int delimiter_level(uint32_t pos) const {
    if (n_ - pos < 2 || m_[pos] != '-' || m_[pos + 1] != '-') return -1;
    // Innermost first: RFC 2046 boundaries match as prefixes of the line, and an inner boundary
    // may extend an outer one.
    for (int level = static_cast<int>(s_->boundaries.size()) - 1; level >= 0; level--) {
      MimeString b = s_->boundaries[level];
      if (n_ - pos - 2 >= b.length &&
          memcmp(m_ + pos + 2, out_->text.data() + b.offset, b.length) == 0)
        return level;
    }
    return -1;
  }

  Stop delimiter_stop(uint32_t line, uint32_t lfs, int level, bool bare) const {
    Stop s;
    s.level = level;
    s.end = Cursor{line, lfs};
    if (!bare && line > 0)
      s.end = Cursor{line >= 2 && m_[line - 2] == '\r' ? line - 2 : line - 1, lfs - 1};
    uint32_t q = line + 2 + s_->boundaries[level].length;
    s.close = n_ - q >= 2 && m_[q] == '-' && m_[q + 1] == '-';
    const char* nl = static_cast<const char*>(memchr(m_ + q, '\n', n_ - q));
    s.after =
        nl ? Cursor{static_cast<uint32_t>(nl - m_) + 1, lfs + 1, true} : Cursor{n_, lfs, true};
    return s;
  }

  Stop end_stop(Cursor from) const {
    return stop_at_end(from.lfs + count_lf(m_ + from.pos, m_ + n_));
  }
  Stop stop_at_end(uint32_t lfs) const {
    Stop s;
    s.end = Cursor{n_, lfs};
    return s;
  }

  // Scans lines from `at` (a line start) to the next delimiter line of an enclosing multipart.
  Stop scan_body(Cursor at) const {
    if (s_->boundaries.empty()) return end_stop(at);
    uint32_t pos = at.pos;
    uint32_t lfs = at.lfs;
    for (;;) {
      int level = delimiter_level(pos);
      if (level >= 0) return delimiter_stop(pos, lfs, level, pos == at.pos && at.after_delimiter);
      const char* nl = static_cast<const char*>(memchr(m_ + pos, '\n', n_ - pos));
      if (!nl) return stop_at_end(lfs);
      lfs++;
      pos = static_cast<uint32_t>(nl - m_) + 1;
    }
  }

  static uint32_t range_end(const Stop& s, Cursor start) { return std::max(start.pos, s.end.pos); }

  void scan_header(Cursor at, bool check_delimiters, bool message_header, Header* h) const {
    uint32_t pos = at.pos;
    uint32_t lfs = at.lfs;
    FieldRange* current = nullptr;  // the field a continuation line extends
    h->end = at;
    while (pos < n_) {
      if (check_delimiters && delimiter_level(pos) >= 0) {
        // The header ends where the body that runs into this delimiter would: see Stop.
        if (pos > at.pos) h->end = delimiter_stop(pos, lfs, delimiter_level(pos), false).end;
        return;
      }
      const char* nl = static_cast<const char*>(memchr(m_ + pos, '\n', n_ - pos));
      uint32_t line_end = nl ? static_cast<uint32_t>(nl - m_) : n_;
      uint32_t next = nl ? line_end + 1 : n_;
      uint32_t content_end = line_end > pos && m_[line_end - 1] == '\r' ? line_end - 1 : line_end;
      if (content_end == pos) {
        // The blank line is part of the header, unless a delimiter line follows: then its line
        // end is the delimiter's.
        h->end = check_delimiters && next < n_ && delimiter_level(next) >= 0
                     ? Cursor{pos, lfs}
                     : Cursor{next, lfs + (nl ? 1u : 0u)};
        return;
      }
      if (m_[pos] == ' ' || m_[pos] == '\t') {
        if (current) current->end = content_end;
      } else {
        current = nullptr;
        const char* colon = static_cast<const char*>(memchr(m_ + pos, ':', content_end - pos));
        if (colon) {
          std::string_view name(m_ + pos, colon - (m_ + pos));
          while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
            name.remove_suffix(1);
          int id = field_id(name);
          // The first occurrence counts (RFC 5322 allows one of each of these).
          if (id >= 0 && (message_header || id <= kLastMimeField) && !h->fields[id].present) {
            uint32_t begin = static_cast<uint32_t>(colon - m_) + 1;
            h->fields[id] = FieldRange{begin, content_end, true};
            current = &h->fields[id];
          }
        }
        // A line without a colon is not a field; like Dovecot, skip it and go on.
      }
      pos = next;
      lfs += nl ? 1 : 0;
    }
    h->end = Cursor{pos, lfs};
  }

  // ---- MIME fields

  void fill_mime_fields(const Header& h, uint32_t idx, bool digest_child) {
    MimePart& p = out_->parts[idx];
    const FieldRange* f = h.fields;
    if (!f[kContentType].present || !parse_content_type(f[kContentType], &p)) {
      // RFC 2045 section 5.2: missing or unparseable means text/plain; charset=us-ascii.
      p.type = constant(digest_child ? kMessage : kText);
      p.subtype = constant(digest_child ? kRfc822 : kPlain);
      p.params = MimeList{static_cast<uint32_t>(out_->params.size()), 0};
    }
    std::string_view type = view(p.type);
    std::string_view subtype = view(p.subtype);
    if (iequals(type, "multipart")) {
      p.kind = MimeKind::multipart;
    } else if (iequals(type, "message") &&
               (iequals(subtype, "rfc822") || iequals(subtype, "global"))) {
      p.kind = MimeKind::message;
    } else if (iequals(type, "text")) {
      p.kind = MimeKind::text;
      // RFC 2046 section 4.1.2: the charset defaults to US-ASCII; say so, as Dovecot does.
      if (param_value(p.params, "charset").is_nil() &&
          push_param(MimeParam{constant(kCharset), constant(kUsAscii)}))
        p.params.count++;
    } else {
      p.kind = MimeKind::basic;
    }

    if (f[kContentTransferEncoding].present) {
      Lexer lx = lexer(f[kContentTransferEncoding]);
      lx.skip_cfws();
      std::string_view cte = lx.run(token_char);
      if (!cte.empty()) p.encoding = add(cte);
    }
    if (p.encoding.is_nil()) p.encoding = constant(k7bit);
    if (f[kContentId].present) p.id = unfolded(f[kContentId]);
    if (f[kContentDescription].present) p.description = unfolded(f[kContentDescription]);
    if (f[kContentLocation].present) p.location = unfolded(f[kContentLocation]);
    if (f[kContentMd5].present) p.md5 = unfolded(f[kContentMd5]);
    if (f[kContentDisposition].present) {
      Lexer lx = lexer(f[kContentDisposition]);
      lx.skip_cfws();
      std::string_view type_token = lx.run(token_char);
      if (!type_token.empty()) {
        p.disposition = add(type_token);
        p.disposition_params = parse_params(&lx);
      }
    }
    if (f[kContentLanguage].present) {
      Lexer lx = lexer(f[kContentLanguage]);
      p.language.first = static_cast<uint32_t>(out_->params.size());
      for (;;) {
        lx.skip_cfws();
        if (lx.done()) break;
        std::string_view tag = lx.run(token_char);
        if (tag.empty()) {
          lx.next();  // ',' or junk
          continue;
        }
        if (push_param(MimeParam{MimeString{}, add(tag)})) p.language.count++;
      }
    }
  }

  Lexer lexer(const FieldRange& r) const { return Lexer(m_ + r.begin, m_ + r.end); }

  bool parse_content_type(const FieldRange& r, MimePart* p) {
    Lexer lx = lexer(r);
    lx.skip_cfws();
    std::string_view type = lx.run(token_char);
    lx.skip_cfws();
    if (type.empty() || lx.done() || lx.peek() != '/') return false;
    lx.next();
    lx.skip_cfws();
    std::string_view subtype = lx.run(token_char);
    if (subtype.empty()) return false;
    p->type = add(type);
    p->subtype = add(subtype);
    p->params = parse_params(&lx);
    return true;
  }

  bool push_param(const MimeParam& prm) {
    if (out_->params.size() >= kParamsMax) return false;
    out_->params.push_back(prm);
    return true;
  }

  MimeString param_value(MimeList list, std::string_view name) const {
    for (uint32_t i = list.first; i < list.first + list.count; i++) {
      const MimeParam& prm = out_->params[i];
      if (iequals(view(prm.name), name)) return prm.value;
    }
    return MimeString{};
  }

  // `;` name=value pairs up to the end of the field. Malformed pieces are skipped up to the next
  // ';': a parameter without '=' is dropped, junk after a value is ignored.
  MimeList parse_params(Lexer* lx) {
    std::vector<RawParam>& raw = s_->raw_params;
    raw.clear();
    for (;;) {
      lx->skip_cfws();
      if (lx->done()) break;
      if (lx->peek() != ';') {
        lx->skip_to(";");
        continue;
      }
      lx->next();
      lx->skip_cfws();
      std::string_view name = lx->run(token_char);
      if (name.empty()) continue;
      lx->skip_cfws();
      if (lx->done() || lx->peek() != '=') continue;
      lx->next();
      lx->skip_cfws();
      RawParam rp;
      rp.name = name;
      if (!lx->done() && lx->peek() == '"') {
        uint32_t start = mark();
        append_unescaped(lx->quoted());
        rp.value = since(start);
      } else {
        rp.value = add(lx->run(loose_value_char));
      }
      if (raw.size() < kFieldParamsMax) raw.push_back(rp);
    }
    return emit_params();
  }

  // RFC 2231: "name*" is an extended value (charset'language'%XX), "name*N" and "name*N*" are
  // continuations. Returns false for a plain name.
  static bool classify_rfc2231(RawParam* rp) {
    std::string_view n = rp->name;
    if (n.empty() || n.find('*') == std::string_view::npos) return false;
    if (n.back() == '*') {
      rp->extended = true;
      n.remove_suffix(1);
    }
    size_t star = n.rfind('*');
    if (star != std::string_view::npos) {
      std::string_view digits = n.substr(star + 1);
      if (digits.empty() || digits.size() > 4 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        rp->extended = false;
        return false;
      }
      rp->section = 0;
      for (char c : digits) rp->section = rp->section * 10 + (c - '0');
      n = n.substr(0, star);
    } else if (!rp->extended) {
      return false;
    }
    if (n.empty()) {
      rp->extended = false;
      rp->section = -1;
      return false;
    }
    rp->base_length = static_cast<uint32_t>(n.size());
    rp->rfc2231 = true;
    return true;
  }

  MimeList emit_params() {
    std::vector<RawParam>& raw = s_->raw_params;
    bool any_rfc2231 = false;
    for (RawParam& rp : raw) any_rfc2231 |= classify_rfc2231(&rp);
    if (any_rfc2231) join_rfc2231();
    MimeList list{static_cast<uint32_t>(out_->params.size()), 0};
    for (const RawParam& rp : raw) {
      if (rp.rfc2231 && !rp.emits_group) continue;
      if (push_param(rp.rfc2231 ? MimeParam{rp.group_name, rp.group_value}
                                : MimeParam{add(rp.name), rp.value}))
        list.count++;
    }
    return list;
  }

  // Groups continuations by name (case-insensitively), orders them by section number (gaps are
  // closed, a repeated section counts once) and joins them. A group with any extended section
  // becomes "name*" = charset'language'value, percent-encoded; ISO-8859-1 is converted to UTF-8
  // (RFC 9051 section 7.5.2), other charsets keep their label and bytes.
  void join_rfc2231() {
    std::vector<RawParam>& raw = s_->raw_params;
    std::vector<uint32_t>& order = s_->order;
    order.clear();
    for (uint32_t i = 0; i < raw.size(); i++)
      if (raw[i].rfc2231) order.push_back(i);
    auto base = [&](uint32_t i) { return raw[i].name.substr(0, raw[i].base_length); };
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      std::string_view x = base(a), y = base(b);
      int c = strncasecmp(x.data(), y.data(), std::min(x.size(), y.size()));
      if (c != 0) return c < 0;
      if (x.size() != y.size()) return x.size() < y.size();
      return std::max(raw[a].section, 0) < std::max(raw[b].section, 0);
    });
    for (size_t g = 0; g < order.size();) {
      size_t end = g + 1;
      while (end < order.size() && iequals(base(order[g]), base(order[end]))) end++;
      join_group(g, end);
      g = end;
    }
  }

  void join_group(size_t g, size_t end) {
    std::vector<RawParam>& raw = s_->raw_params;
    const std::vector<uint32_t>& order = s_->order;
    bool extended = false;
    uint32_t head = order[g];
    for (size_t i = g; i < end; i++) {
      extended |= raw[order[i]].extended;
      head = std::min(head, order[i]);
    }
    std::string& bytes = s_->bytes;
    std::string& value = s_->value;
    bytes.clear();
    value.clear();
    std::string charset, language;
    int previous = -2;
    for (size_t i = g; i < end; i++) {
      const RawParam& rp = raw[order[i]];
      int section = std::max(rp.section, 0);
      if (section == previous) continue;
      previous = section;
      std::string_view v = view(rp.value);
      if (i == g && rp.extended) {
        size_t a1 = v.find('\'');
        size_t a2 = a1 == std::string_view::npos ? a1 : v.find('\'', a1 + 1);
        if (a2 != std::string_view::npos) {
          charset.assign(v.substr(0, a1));
          language.assign(v.substr(a1 + 1, a2 - a1 - 1));
          v.remove_prefix(a2 + 1);
        }
      }
      if (rp.extended) {
        percent_decode(v, &bytes);
      } else {
        bytes.append(v.substr(0, kParamBytesMax - bytes.size()));
      }
    }
    if (extended) {
      if (iequals(charset, "iso-8859-1") || iequals(charset, "latin1")) {
        charset = "utf-8";
        latin1_to_utf8(&bytes);
      }
      value = charset + "'" + language + "'";
      static constexpr char kHex[] = "0123456789ABCDEF";
      for (unsigned char c : bytes) {
        if (attribute_char(c)) {
          value.push_back(static_cast<char>(c));
        } else {
          value.push_back('%');
          value.push_back(kHex[c >> 4]);
          value.push_back(kHex[c & 15]);
        }
      }
    } else {
      value.swap(bytes);
    }
    RawParam& h = raw[head];
    h.emits_group = true;
    uint32_t start = mark();
    append(raw[order[g]].name.data(), raw[order[g]].base_length);
    if (extended) append("*", 1);
    h.group_name = since(start);
    h.group_value = add(value);
  }

  static void percent_decode(std::string_view v, std::string* out) {
    auto hex = [](char c) {
      return c >= '0' && c <= '9'   ? c - '0'
             : c >= 'a' && c <= 'f' ? c - 'a' + 10
             : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                    : -1;
    };
    for (size_t i = 0; i < v.size() && out->size() < kParamBytesMax; i++) {
      if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
        out->push_back(static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2])));
        i += 2;
      } else {
        out->push_back(v[i]);  // a stray '%' stands for itself
      }
    }
  }

  static void latin1_to_utf8(std::string* s) {
    std::string out;
    out.reserve(s->size() * 2);
    for (unsigned char c : *s) {
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else {
        out.push_back(static_cast<char>(0xc0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
      }
    }
    s->swap(out);
  }

  // ---- envelope

  void fill_envelope(const Header& h, uint32_t env) {
    const FieldRange* f = h.fields;
    MimeEnvelope e;
    if (f[kDate].present) e.date = unfolded(f[kDate]);
    if (f[kSubject].present) e.subject = unfolded(f[kSubject]);
    if (f[kFrom].present) e.from = address_list(f[kFrom]);
    if (f[kSender].present) e.sender = address_list(f[kSender]);
    if (f[kReplyTo].present) e.reply_to = address_list(f[kReplyTo]);
    if (f[kTo].present) e.to = address_list(f[kTo]);
    if (f[kCc].present) e.cc = address_list(f[kCc]);
    if (f[kBcc].present) e.bcc = address_list(f[kBcc]);
    if (f[kInReplyTo].present) e.in_reply_to = unfolded(f[kInReplyTo]);
    if (f[kMessageId].present) e.message_id = unfolded(f[kMessageId]);
    // RFC 9051 section 7.5.2: an absent or empty Sender or Reply-To is the From.
    if (e.sender.count == 0) e.sender = e.from;
    if (e.reply_to.count == 0) e.reply_to = e.from;
    out_->envelopes[env] = e;
  }

  MimeList address_list(const FieldRange& r) {
    MimeList list{static_cast<uint32_t>(out_->addresses.size()), 0};
    Lexer lx = lexer(r);
    for (;;) {
      lx.skip_cfws();
      if (lx.done()) break;
      if (lx.peek() == ',' || lx.peek() == ';') {  // empty elements (RFC 5322 obs-addr-list)
        lx.next();
        continue;
      }
      address(&lx, false);
    }
    list.count = static_cast<uint32_t>(out_->addresses.size()) - list.first;
    return list;
  }

  // Words and dots up to the next special: a display name or a local-part.
  void read_words(Lexer* lx, std::string_view* comment) {
    std::vector<Token>& t = s_->tokens;
    t.clear();
    for (;;) {
      bool space = lx->skip_cfws(comment) && !t.empty();
      if (lx->done()) break;
      unsigned char c = lx->peek();
      Token token{Token::atom, space, {}};
      if (c == '"') {
        token = Token{Token::quoted, space, lx->quoted()};
      } else if (c == '.') {
        lx->next();
        token = Token{Token::dot, space, "."};
      } else if (atom_char(c)) {
        token.text = lx->run(atom_char);
      } else {
        break;
      }
      if (t.size() < kWordsMax) t.push_back(token);
    }
  }

  // The words as a display name (one space where the message had white space or comments) or
  // as a local-part (no spaces); quotes removed, as Dovecot does. NIL when empty.
  MimeString join_words(bool spaces) {
    uint32_t start = mark();
    for (const Token& t : s_->tokens) {
      if (spaces && t.space_before) append(" ", 1);
      if (t.kind == Token::quoted) {
        append_unescaped(t.text);
      } else {
        append(t.text.data(), t.text.size());
      }
    }
    if (mark() == start) return MimeString{};
    return since(start);
  }

  MimeString comment_text(std::string_view comment) {
    if (comment.data() == nullptr) return MimeString{};
    uint32_t start = mark();
    append_unescaped(comment);
    return mark() == start ? MimeString{} : since(start);
  }

  // Past kAddressesMax addresses are dropped; while a group is open one slot stays free for its
  // end marker, so groups stay balanced.
  void push_address(MimeString name, MimeString adl, MimeString mailbox, MimeString host) {
    if (out_->addresses.size() + (group_open_ ? 1 : 0) >= kAddressesMax) return;
    out_->addresses.push_back(MimeAddress{name, adl, mailbox, host});
  }

  // One mailbox or group; whatever follows it up to the next ',' (or ';') is skipped.
  void address(Lexer* lx, bool in_group) {
    std::string_view comment;
    read_words(lx, &comment);
    unsigned char c = lx->done() ? 0 : lx->peek();
    if (c == ':' && !in_group) {
      // A group: (NIL NIL "name" NIL) members (NIL NIL NIL NIL). The name is never NIL, which
      // would make the start look like an end.
      MimeString name = join_words(true);
      const bool markers = out_->addresses.size() + 2 <= kAddressesMax;
      if (markers) {
        push_address(MimeString{}, MimeString{}, name.is_nil() ? constant(kEmpty) : name,
                     MimeString{});
        group_open_ = true;
      }
      lx->next();
      for (;;) {
        lx->skip_cfws();
        if (lx->done()) break;
        if (lx->peek() == ';') {
          lx->next();
          break;
        }
        if (lx->peek() == ',') {
          lx->next();
          continue;
        }
        address(lx, true);
      }
      if (markers) {
        group_open_ = false;
        push_address(MimeString{}, MimeString{}, MimeString{}, MimeString{});
      }
      return;
    }
    if (c == '<') {
      MimeString name = join_words(true);
      lx->next();
      angle_address(lx, name);
    } else if (c == '@') {
      MimeString mailbox = join_words(false);
      lx->next();
      MimeString host = domain(lx, &comment);
      lx->skip_cfws(&comment);
      // "user@host (Name)": the last comment is the name.
      push_address(comment_text(comment), MimeString{}, or_const(mailbox, kMissingMailbox),
                   or_const(host, kMissingDomain));
    } else if (!s_->tokens.empty()) {
      // A local name without a host (RFC 822 allowed them).
      push_address(MimeString{}, MimeString{}, join_words(false), constant(kMissingDomain));
    }
    lx->skip_cfws();
    if (!lx->done() && lx->peek() != ',' && lx->peek() != ';') lx->skip_to(",;");
  }

  MimeString or_const(MimeString s, Const c) { return s.is_nil() ? constant(c) : s; }

  // After '<': [route ":"] local-part "@" domain ">".
  void angle_address(Lexer* lx, MimeString name) {
    MimeString adl;
    lx->skip_cfws();
    if (!lx->done() && lx->peek() == '@') {
      // RFC 5322 obs-route "@a,@b:": only a route when a ':' comes before the '>'.
      const char* at = lx->pos();
      uint32_t start = mark();
      for (;;) {
        lx->skip_cfws();
        if (lx->done() || lx->peek() == '>' || lx->peek() == ':') break;
        append(lx->pos(), 1);
        lx->next();
      }
      if (!lx->done() && lx->peek() == ':') {
        adl = since(start);
        lx->next();
      } else {
        out_->text.resize(start);
        lx->set_pos(at);
      }
    }
    std::string_view ignored;
    read_words(lx, &ignored);
    MimeString mailbox = join_words(false);
    MimeString host;
    if (!lx->done() && lx->peek() == '@') {
      lx->next();
      host = domain(lx, &ignored);
    }
    lx->skip_cfws();
    if (!lx->done() && lx->peek() == '>') lx->next();
    push_address(name, adl, or_const(mailbox, kMissingMailbox), or_const(host, kMissingDomain));
  }

  // dot-atom or domain-literal, white space and comments dropped. An atom must start the domain
  // or follow a dot: in "a@b.c d@e.f" the domain is "b.c".
  MimeString domain(Lexer* lx, std::string_view* comment) {
    uint32_t start = mark();
    bool want_atom = true;
    for (;;) {
      lx->skip_cfws(comment);
      if (lx->done()) break;
      unsigned char c = lx->peek();
      if (c != '.' && !want_atom) break;
      want_atom = c == '.';
      if (c == '[') {
        const char* p = lx->pos();
        while (p < lx->end() && *p != ']') {
          if (!(kClasses[static_cast<unsigned char>(*p)] & kWsp)) append(p, 1);
          p++;
        }
        if (p < lx->end()) append(p++, 1);
        lx->set_pos(p);
      } else if (c == '.') {
        append(".", 1);
        lx->next();
      } else if (atom_char(c)) {
        std::string_view a = lx->run(atom_char);
        append(a.data(), a.size());
      } else {
        break;
      }
    }
    return mark() == start ? MimeString{} : since(start);
  }

  const char* m_;
  uint32_t n_;
  MimeInfo* out_;
  MimeParser::Scratch* s_;
  MimeString consts_[kConstCount];
  bool group_open_ = false;
};

// The k-th (1-based) child of part `parent`, or UINT32_MAX.
uint32_t nth_child(const MimeInfo& info, uint32_t parent, uint32_t k) {
  if (k == 0 || k > info.parts[parent].child_count) return UINT32_MAX;
  uint32_t i = parent + 1;
  for (uint32_t c = 1; c < k; c++) i += info.parts[i].subtree_parts;
  return i;
}

MimeSlice header_of(const MimePart& p) {
  return MimeSlice{p.header_offset, p.header_length};
}
MimeSlice body_of(const MimePart& p) {
  return MimeSlice{p.body_offset(), p.body_length};
}

}  // namespace

void MimeInfo::clear() {
  message_bytes = 0;
  parts.clear();
  envelopes.clear();
  params.clear();
  addresses.clear();
  text.clear();
}

MimeParser::MimeParser() : scratch_(std::make_unique<Scratch>()) {}
MimeParser::~MimeParser() = default;

Status MimeParser::parse(std::string_view message, MimeInfo* out) {
  if (message.size() > kMessageBytesMax)
    return Status::invalid("message of " + std::to_string(message.size()) +
                           " bytes is over the MIME parse limit");
  out->clear();
  out->message_bytes = static_cast<uint32_t>(message.size());
  ParseRun(message, out, scratch_.get()).run();
  return Status::ok();
}

Status parse_mime(std::string_view message, MimeInfo* out) {
  MimeParser parser;
  return parser.parse(message, out);
}

bool find_mime_section(const MimeInfo& info, std::span<const uint32_t> path, MimeSection* out) {
  if (info.parts.empty()) return false;
  MimeSection s;
  if (path.empty()) {
    s.body = MimeSlice{0, info.message_bytes};
    s.is_message = true;
    s.header = header_of(info.parts[0]);
    s.text = body_of(info.parts[0]);
    *out = s;
    return true;
  }
  // `node` is a message root (its parts are its children, or itself when it is not multipart)
  // or a multipart (its parts are its children).
  uint32_t node = 0;
  bool node_is_message = true;
  uint32_t part = 0;
  for (uint32_t k : path) {
    if (node == UINT32_MAX) return false;  // a leaf has no parts
    if (node_is_message && info.parts[node].kind != MimeKind::multipart) {
      if (k != 1) return false;
      part = node;
    } else {
      part = nth_child(info, node, k);
      if (part == UINT32_MAX) return false;
    }
    MimeKind kind = info.parts[part].kind;
    node = kind == MimeKind::message ? part + 1 : kind == MimeKind::multipart ? part : UINT32_MAX;
    node_is_message = kind == MimeKind::message;
  }
  const MimePart& p = info.parts[part];
  s.part = part;
  s.mime = header_of(p);
  s.body = body_of(p);
  if (p.kind == MimeKind::message) {
    s.is_message = true;
    s.header = header_of(info.parts[part + 1]);
    s.text = body_of(info.parts[part + 1]);
  }
  *out = s;
  return true;
}

}  // namespace ringmail
