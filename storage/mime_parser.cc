#include "storage/mime_parser.h"

#include <algorithm>
#include <cstring>

#include "core/assert.h"
#include "storage/mime_fields.h"

namespace ringmail {
namespace {

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

struct EntityContext {
  bool message_header = false;  // an RFC 5322 header: fills envelopes[envelope]
  uint32_t envelope = 0;
  bool digest_child = false;  // default type message/rfc822 (RFC 2046 section 5.1.5)
};

}  // namespace

struct MimeParser::Scratch {
  std::vector<MimeString> boundaries;  // of the enclosing multiparts, innermost last
  MimeFieldScratch fields;
};

namespace {

class ParseRun {
 public:
  ParseRun(std::string_view message, MimeInfo* out, MimeParser::Scratch* scratch)
      : m_(message.data()),
        n_(static_cast<uint32_t>(message.size())),
        out_(out),
        s_(scratch),
        text_(out) {
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

  // Unfolded (every CR LF and LF dropped: in a field they only ever come before white space),
  // leading white space skipped, trailing kept.
  MimeString unfolded(const FieldRange& r) {
    const char* p = m_ + r.begin;
    const char* e = m_ + r.end;
    while (p < e && (kClasses[static_cast<unsigned char>(*p)] & kWsp)) p++;
    uint32_t start = text_.mark();
    while (p < e) {
      const char* nl = static_cast<const char*>(memchr(p, '\n', e - p));
      const char* stop = nl ? nl : e;
      const char* last = (nl && stop > p && stop[-1] == '\r') ? stop - 1 : stop;
      text_.append(p, last - p);
      p = nl ? nl + 1 : e;
    }
    return text_.since(start);
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
      p.type = text_.constant(kApplication);
      p.subtype = text_.constant(kOctetStream);
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
    EntityContext child_ctx{.digest_child =
                                iequals(text_.view(out_->parts[idx].subtype), "digest")};
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
    std::string_view cte = text_.view(out_->parts[idx].encoding);
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
    p.type = text_.constant(kText);
    p.subtype = text_.constant(kPlain);
    p.encoding = text_.constant(k7bit);
    p.params = MimeList{static_cast<uint32_t>(out_->params.size()), 0};
    if (push_param(out_, MimeParam{text_.constant(kCharset), text_.constant(kUsAscii)}))
      p.params.count = 1;
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
      p.type = text_.constant(digest_child ? kMessage : kText);
      p.subtype = text_.constant(digest_child ? kRfc822 : kPlain);
      p.params = MimeList{static_cast<uint32_t>(out_->params.size()), 0};
    }
    std::string_view type = text_.view(p.type);
    std::string_view subtype = text_.view(p.subtype);
    if (iequals(type, "multipart")) {
      p.kind = MimeKind::multipart;
    } else if (iequals(type, "message") &&
               (iequals(subtype, "rfc822") || iequals(subtype, "global"))) {
      p.kind = MimeKind::message;
    } else if (iequals(type, "text")) {
      p.kind = MimeKind::text;
      // RFC 2046 section 4.1.2: the charset defaults to US-ASCII; say so, as Dovecot does.
      if (param_value(p.params, "charset").is_nil() &&
          push_param(out_, MimeParam{text_.constant(kCharset), text_.constant(kUsAscii)}))
        p.params.count++;
    } else {
      p.kind = MimeKind::basic;
    }

    if (f[kContentTransferEncoding].present) {
      FieldLexer lx = lexer(f[kContentTransferEncoding]);
      lx.skip_cfws();
      std::string_view cte = lx.run(token_char);
      if (!cte.empty()) p.encoding = text_.add(cte);
    }
    if (p.encoding.is_nil()) p.encoding = text_.constant(k7bit);
    if (f[kContentId].present) p.id = unfolded(f[kContentId]);
    if (f[kContentDescription].present) p.description = unfolded(f[kContentDescription]);
    if (f[kContentLocation].present) p.location = unfolded(f[kContentLocation]);
    if (f[kContentMd5].present) p.md5 = unfolded(f[kContentMd5]);
    if (f[kContentDisposition].present) {
      FieldLexer lx = lexer(f[kContentDisposition]);
      lx.skip_cfws();
      std::string_view type_token = lx.run(token_char);
      if (!type_token.empty()) {
        p.disposition = text_.add(type_token);
        p.disposition_params = parse_params(&lx, &text_, &s_->fields);
      }
    }
    if (f[kContentLanguage].present) {
      FieldLexer lx = lexer(f[kContentLanguage]);
      p.language.first = static_cast<uint32_t>(out_->params.size());
      for (;;) {
        lx.skip_cfws();
        if (lx.done()) break;
        std::string_view tag = lx.run(token_char);
        if (tag.empty()) {
          lx.next();  // ',' or junk
          continue;
        }
        if (push_param(out_, MimeParam{MimeString{}, text_.add(tag)})) p.language.count++;
      }
    }
  }

  FieldLexer lexer(const FieldRange& r) const { return FieldLexer(m_ + r.begin, m_ + r.end); }

  bool parse_content_type(const FieldRange& r, MimePart* p) {
    FieldLexer lx = lexer(r);
    lx.skip_cfws();
    std::string_view type = lx.run(token_char);
    lx.skip_cfws();
    if (type.empty() || lx.done() || lx.peek() != '/') return false;
    lx.next();
    lx.skip_cfws();
    std::string_view subtype = lx.run(token_char);
    if (subtype.empty()) return false;
    p->type = text_.add(type);
    p->subtype = text_.add(subtype);
    p->params = parse_params(&lx, &text_, &s_->fields);
    return true;
  }

  MimeString param_value(MimeList list, std::string_view name) const {
    for (uint32_t i = list.first; i < list.first + list.count; i++) {
      const MimeParam& prm = out_->params[i];
      if (iequals(text_.view(prm.name), name)) return prm.value;
    }
    return MimeString{};
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
    return parse_address_list(lexer(r), &text_, &s_->fields);
  }

  const char* m_;
  uint32_t n_;
  MimeInfo* out_;
  MimeParser::Scratch* s_;
  MimeTextWriter text_;
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
