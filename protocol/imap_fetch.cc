#include "protocol/imap_fetch.h"

#include <strings.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "core/assert.h"

namespace ringmail {
namespace {

constexpr uint64_t kNumber64Max = INT64_MAX;  // RFC 9051 number64: 0 .. 2^63 - 1

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool next_is_digit(const CommandReader& r) {
  std::string_view rest = r.rest();
  return !rest.empty() && rest[0] >= '0' && rest[0] <= '9';
}

// nz-number / nz-number64: digits, the first not 0.
bool nz_number(CommandReader& r, uint64_t max, uint64_t* out) {
  return !r.peek('0') && r.number(out, max);
}

// ---- parsing

class FetchParser {
 public:
  FetchParser(CommandReader& r, FetchSpec* spec, std::string* error)
      : r_(r), spec_(spec), error_(error) {}

  bool parse() {
    std::string_view name;
    if (r_.ch('(')) {
      for (;;) {
        if (!r_.word(&name)) return fail("expected a fetch attribute");
        if (!att(name)) return false;
        if (r_.ch(')')) break;
        if (!r_.sp()) return fail("expected SP or ) after a fetch attribute");
      }
    } else {
      if (!r_.word(&name)) return fail("expected a fetch attribute or macro");
      if (iequals(name, "ALL") || iequals(name, "FAST") || iequals(name, "FULL")) {
        // ALL = (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE), FAST without ENVELOPE, FULL + BODY.
        for (FetchKind k : {FetchKind::flags, FetchKind::internaldate, FetchKind::rfc822_size,
                            FetchKind::envelope, FetchKind::body}) {
          if (k == FetchKind::envelope && iequals(name, "FAST")) break;
          if (k == FetchKind::body && !iequals(name, "FULL")) break;
          spec_->items.emplace_back().kind = k;
        }
      } else if (!att(name)) {
        return false;
      }
    }
    if (r_.sp() && !modifiers()) return false;
    if (!r_.at_end()) return fail("unexpected text after the fetch attributes");
    return true;
  }

 private:
  bool fail(const char* why) {
    *error_ = why;
    return false;
  }

  bool att(std::string_view name) {
    FetchItem item;
    if (iequals(name, "BODY") && !r_.peek('[')) {
      item.kind = FetchKind::body;
    } else if (iequals(name, "BODY") || iequals(name, "BODY.PEEK")) {
      item.kind = FetchKind::body_section;
      item.peek = name.size() > 4;
      if (!r_.ch('[')) return fail("BODY.PEEK needs a section");
      if (!section(false, &item) || !partial(&item)) return false;
    } else if (iequals(name, "BINARY") || iequals(name, "BINARY.PEEK") ||
               iequals(name, "BINARY.SIZE")) {
      item.kind = iequals(name, "BINARY.SIZE") ? FetchKind::binary_size : FetchKind::binary;
      item.peek = iequals(name, "BINARY.PEEK");
      if (!r_.ch('[')) return fail("BINARY needs a section");
      if (!section(true, &item)) return false;
      if (item.kind == FetchKind::binary && !partial(&item)) return false;
    } else {
      static constexpr std::pair<std::string_view, FetchKind> kPlain[] = {
          {"FLAGS", FetchKind::flags},
          {"INTERNALDATE", FetchKind::internaldate},
          {"RFC822.SIZE", FetchKind::rfc822_size},
          {"ENVELOPE", FetchKind::envelope},
          {"BODYSTRUCTURE", FetchKind::bodystructure},
          {"UID", FetchKind::uid},
          {"MODSEQ", FetchKind::modseq},
          {"RFC822", FetchKind::rfc822},
          {"RFC822.HEADER", FetchKind::rfc822_header},
          {"RFC822.TEXT", FetchKind::rfc822_text},
      };
      const auto* found = std::find_if(std::begin(kPlain), std::end(kPlain),
                                       [&](const auto& e) { return iequals(e.first, name); });
      if (found == std::end(kPlain)) return fail("unknown fetch attribute");
      item.kind = found->second;
    }
    if (r_.peek('[') || r_.peek('<')) return fail("unexpected [ or < after a fetch attribute");
    if (spec_->items.size() == FetchSpec::kItemsMax) return fail("too many fetch attributes");
    spec_->items.push_back(std::move(item));
    return true;
  }

  // section = "[" [section-spec] "]", section-binary = "[" [section-part] "]"; the "[" is read.
  bool section(bool binary, FetchItem* item) {
    bool dotted = false;  // part numbers and a "." : a section-text follows
    if (next_is_digit(r_)) {
      for (;;) {
        uint64_t n = 0;
        if (!nz_number(r_, UINT32_MAX, &n)) return fail("bad section part number");
        if (item->section.size() == FetchSpec::kSectionPartsMax)
          return fail("too many section part numbers");
        item->section.push_back(static_cast<uint32_t>(n));
        if (!r_.ch('.')) break;
        if (!next_is_digit(r_)) {
          dotted = true;
          break;
        }
      }
    }
    if (dotted || (item->section.empty() && !r_.peek(']'))) {
      if (binary) return fail("a BINARY section holds part numbers only");
      std::string_view text;
      if (!r_.word(&text)) return fail("bad section text");
      if (iequals(text, "HEADER")) {
        item->text = SectionText::header;
      } else if (iequals(text, "TEXT")) {
        item->text = SectionText::text;
      } else if (iequals(text, "MIME") && !item->section.empty()) {
        item->text = SectionText::mime;
      } else if (iequals(text, "HEADER.FIELDS") || iequals(text, "HEADER.FIELDS.NOT")) {
        item->text =
            text.size() == 13 ? SectionText::header_fields : SectionText::header_fields_not;
        if (!r_.sp()) return fail("HEADER.FIELDS needs a parenthesised list of field names");
        if (!header_list(item)) return false;
      } else {
        return fail("bad section text");
      }
    }
    if (!r_.ch(']')) return fail("expected ] after the section");
    return true;
  }

  // header-list = "(" header-fld-name *(SP header-fld-name) ")"; header-fld-name = astring.
  bool header_list(FetchItem* item) {
    if (!r_.ch('(')) return fail("HEADER.FIELDS needs a parenthesised list of field names");
    for (;;) {
      std::string_view name;
      if (!r_.astring(&name, &scratch_) || name.find('\0') != std::string_view::npos)
        return fail("bad header field name");
      if (fields_ == FetchSpec::kHeaderFieldsMax) return fail("too many header field names");
      fields_++;
      item->fields.emplace_back(name);
      if (r_.ch(')')) return true;
      if (!r_.sp()) return fail("expected SP or ) in the header field list");
    }
  }

  // partial = "<" number64 "." nz-number64 ">"
  bool partial(FetchItem* item) {
    if (!r_.ch('<')) return true;
    if (!r_.number(&item->partial_origin, kNumber64Max) || !r_.ch('.') ||
        !nz_number(r_, kNumber64Max, &item->partial_length) || !r_.ch('>'))
      return fail("bad partial: expected <origin.length> with a length above 0");
    item->has_partial = true;
    return true;
  }

  // fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"; the SP is read.
  bool modifiers() {
    if (!r_.ch('(')) return fail("expected ( before the fetch modifiers");
    for (;;) {
      std::string_view name;
      if (!r_.word(&name)) return fail("expected a fetch modifier");
      if (iequals(name, "CHANGEDSINCE")) {
        if (spec_->has_changed_since) return fail("CHANGEDSINCE given twice");
        if (!r_.sp() || !r_.number(&spec_->changed_since, kNumber64Max))
          return fail("CHANGEDSINCE needs a mod-sequence value");
        spec_->has_changed_since = true;
      } else if (iequals(name, "VANISHED")) {
        if (spec_->vanished) return fail("VANISHED given twice");
        spec_->vanished = true;
      } else {
        return fail("unknown fetch modifier");
      }
      if (r_.ch(')')) break;
      if (!r_.sp()) return fail("expected SP or ) between fetch modifiers");
    }
    // RFC 7162 section 3.2.6.
    if (spec_->vanished && !spec_->has_changed_since) return fail("VANISHED needs CHANGEDSINCE");
    return true;
  }

  CommandReader& r_;
  FetchSpec* spec_;
  std::string* error_;
  size_t fields_ = 0;  // header field names so far, in all lists
  std::string scratch_;
};

void derive_needs(FetchSpec* spec) {
  for (const FetchItem& it : spec->items) {
    switch (it.kind) {
      case FetchKind::flags: spec->has_flags = true; break;
      case FetchKind::uid: spec->has_uid = true; break;
      case FetchKind::modseq: spec->has_modseq = true; break;
      case FetchKind::internaldate:
      case FetchKind::rfc822_size: break;
      case FetchKind::envelope:
      case FetchKind::body:
      case FetchKind::bodystructure: spec->needs_mime = true; break;
      case FetchKind::body_section:
        spec->needs_bytes = true;
        // BODY[] is every byte: no structure needed.
        if (!it.section.empty() || it.text != SectionText::none) spec->needs_mime = true;
        if (!it.peek) spec->sets_seen = true;
        break;
      case FetchKind::binary:
      case FetchKind::binary_size:
        spec->needs_bytes = true;
        spec->needs_mime = true;
        if (it.kind == FetchKind::binary && !it.peek) spec->sets_seen = true;
        break;
      case FetchKind::rfc822:
        spec->needs_bytes = true;
        spec->sets_seen = true;
        break;
      case FetchKind::rfc822_header:
      case FetchKind::rfc822_text:
        spec->needs_bytes = true;
        spec->needs_mime = true;
        if (it.kind == FetchKind::rfc822_text) spec->sets_seen = true;
        break;
    }
  }
}

// ---- rendering helpers

void append_number(uint64_t v, std::string* out) {
  char buf[20];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, res.ptr);
}

// An astring as the client may have written it: atom if it is one, else quoted, else literal.
void append_astring(std::string_view s, std::string* out) {
  bool atom = !s.empty();
  bool quotable = true;
  for (unsigned char c : s) {
    // "[" is an ATOM-CHAR, but inside a section a client looking for the closing "]" would
    // be misled by it: such a name is quoted.
    if (!is_atom_char(c) || c == '[') atom = false;
    if (c == 0 || c >= 0x80 || c == '\r' || c == '\n') quotable = false;
  }
  if (atom) {
    out->append(s);
  } else if (quotable) {
    out->push_back('"');
    for (char c : s) {
      if (c == '"' || c == '\\') out->push_back('\\');
      out->push_back(c);
    }
    out->push_back('"');
  } else {
    out->push_back('{');
    append_number(s.size(), out);
    out->append("}\r\n");
    out->append(s);
  }
}

// "[1.2.HEADER.FIELDS (From Subject)]"
void append_section(const FetchItem& it, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < it.section.size(); i++) {
    if (i > 0) out->push_back('.');
    append_number(it.section[i], out);
  }
  if (it.text != SectionText::none) {
    if (!it.section.empty()) out->push_back('.');
    switch (it.text) {
      case SectionText::none: break;
      case SectionText::header: out->append("HEADER"); break;
      case SectionText::header_fields: out->append("HEADER.FIELDS"); break;
      case SectionText::header_fields_not: out->append("HEADER.FIELDS.NOT"); break;
      case SectionText::text: out->append("TEXT"); break;
      case SectionText::mime: out->append("MIME"); break;
    }
    if (it.text == SectionText::header_fields || it.text == SectionText::header_fields_not) {
      out->append(" (");
      for (size_t i = 0; i < it.fields.size(); i++) {
        if (i > 0) out->push_back(' ');
        append_astring(it.fields[i], out);
      }
      out->push_back(')');
    }
  }
  out->push_back(']');
  if (it.has_partial) {
    out->push_back('<');
    append_number(it.partial_origin, out);
    out->push_back('>');
  }
}

// The octets a partial fetch asks for: [begin, end) of the section's contents.
struct Window {
  uint64_t begin = 0;
  uint64_t end = UINT64_MAX;
};

Window window_of(const FetchItem& it) {
  if (!it.has_partial) return Window{};
  return Window{it.partial_origin, it.partial_origin + it.partial_length};  // each < 2^63
}

// Contents come from a producer: produce(sink) calls sink(piece) for each piece in order. This
// runs it and passes on what lies in `w`.
template <typename Produce, typename Sink>
void clip(const Produce& produce, Window w, Sink&& sink) {
  uint64_t pos = 0;
  produce([&](std::string_view piece) {
    const uint64_t start = pos;
    pos += piece.size();
    if (pos <= w.begin || start >= w.end) return;
    const uint64_t from = w.begin > start ? w.begin - start : 0;
    const uint64_t to = std::min<uint64_t>(piece.size(), w.end - start);
    sink(piece.substr(from, to - from));
  });
}

// Contents as nstring: "" when empty, else a literal (literal8 for BINARY contents with a NUL).
// Two runs of the producer, one to measure, one to write: no copy in between.
template <typename Produce>
void append_contents(const Produce& produce, Window w, bool binary, std::string* out) {
  uint64_t size = 0;
  bool nul = false;
  clip(produce, w, [&](std::string_view s) {
    size += s.size();
    if (!nul && !s.empty()) nul = memchr(s.data(), 0, s.size()) != nullptr;
  });
  if (size == 0) {
    out->append("\"\"");
    return;
  }
  if (binary && nul) out->push_back('~');
  out->push_back('{');
  append_number(size, out);
  out->append("}\r\n");
  const size_t start = out->size();
  out->reserve(start + size);
  clip(produce, w, [&](std::string_view s) { out->append(s); });
  RM_ASSERT(out->size() - start == size);
  if (nul && !binary) {
    // CHAR8 excludes NUL; Dovecot sends 0x80 in its place too.
    char* p = out->data() + start;
    char* end = out->data() + out->size();
    while ((p = static_cast<char*>(memchr(p, 0, end - p))) != nullptr) *p++ = '\x80';
  }
}

std::string_view slice(const FetchMessage& m, MimeSlice s) {
  RM_ASSERT_MSG(uint64_t{s.offset} + s.length <= m.bytes.size(),
                "MIME structure reaches beyond the message bytes");
  return m.bytes.substr(s.offset, s.length);
}

// True if the field that starts at `line` is one of `names` (case-insensitive).
bool field_listed(std::string_view line, const std::vector<std::string>& names) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view name = line.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  for (const std::string& n : names)
    if (iequals(n, name)) return true;
  return false;
}

// HEADER.FIELDS (keep_listed) or HEADER.FIELDS.NOT of `header`: the chosen fields, each with
// its continuation lines, as stored and in the message's order, then the blank line that ends
// the header. RFC 9051 section 6.4.5: the blank line is included "except in the case of a
// message that has no body and no blank line".
template <typename Sink>
void filter_header(std::string_view header, const std::vector<std::string>& names, bool keep_listed,
                   Sink&& sink) {
  bool keep = !keep_listed;  // continuation lines before any field belong to no listed field
  size_t pos = 0;
  while (pos < header.size()) {
    size_t nl = header.find('\n', pos);
    size_t end = nl == std::string_view::npos ? header.size() : nl + 1;
    std::string_view line = header.substr(pos, end - pos);
    pos = end;
    if (line == "\r\n" || line == "\n") {
      sink(line);
      return;
    }
    if (line[0] != ' ' && line[0] != '\t') keep = field_listed(line, names) == keep_listed;
    if (keep) sink(line);
  }
}

// ---- Content-Transfer-Encoding (BINARY)

enum class Cte : uint8_t { identity, base64, quoted_printable, unknown };

Cte cte_of(const MimeInfo& info, const MimePart& p) {
  if (p.kind == MimeKind::multipart || p.encoding.is_nil()) return Cte::identity;
  std::string_view e = info.str(p.encoding);
  if (iequals(e, "7bit") || iequals(e, "8bit") || iequals(e, "binary")) return Cte::identity;
  if (iequals(e, "base64")) return Cte::base64;
  if (iequals(e, "quoted-printable")) return Cte::quoted_printable;
  return Cte::unknown;
}

// Gathers decoded octets and hands them to the sink in chunks.
template <typename Sink>
class ChunkWriter {
 public:
  explicit ChunkWriter(Sink& sink) : sink_(sink) {}
  void put(char c) {
    buf_[n_++] = c;
    if (n_ == sizeof(buf_)) flush();
  }
  void flush() {
    if (n_ > 0) sink_(std::string_view(buf_, n_));
    n_ = 0;
  }

 private:
  Sink& sink_;
  char buf_[512];
  size_t n_ = 0;
};

constexpr uint8_t kNotBase64 = 0xff;
constexpr std::array<uint8_t, 256> kBase64Values = [] {
  std::array<uint8_t, 256> t{};
  t.fill(kNotBase64);
  for (int i = 0; i < 26; i++) {
    t['A' + i] = static_cast<uint8_t>(i);
    t['a' + i] = static_cast<uint8_t>(26 + i);
  }
  for (int i = 0; i < 10; i++) t['0' + i] = static_cast<uint8_t>(52 + i);
  t['+'] = 62;
  t['/'] = 63;
  return t;
}();

// Octets outside the alphabet (line ends, junk) are skipped. "=" padding ends a quantum: bits
// that make no whole octet are dropped there and at the end.
template <typename Sink>
void decode_base64(std::string_view in, Sink& sink) {
  ChunkWriter<Sink> w(sink);
  uint32_t bits = 0;
  int nbits = 0;
  for (unsigned char c : in) {
    const uint8_t v = kBase64Values[c];
    if (v == kNotBase64) {
      if (c == '=') nbits = 0;
      continue;
    }
    bits = ((bits << 6) | v) & 0xffffff;
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      w.put(static_cast<char>((bits >> nbits) & 0xff));
    }
  }
  w.flush();
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// RFC 2045 section 6.7. Lower-case hex is accepted; "=" that starts neither an escape nor a soft
// line break stays as written; blanks at the end of a line are transport padding and go.
template <typename Sink>
void decode_quoted_printable(std::string_view in, Sink& sink) {
  ChunkWriter<Sink> w(sink);
  const size_t n = in.size();
  auto line_end_at = [&](size_t j) {  // at j: the end of the input or a line end
    return j == n || in[j] == '\n' || (in[j] == '\r' && j + 1 < n && in[j + 1] == '\n');
  };
  size_t i = 0;
  while (i < n) {
    const char c = in[i];
    if (c == '=') {
      if (i + 2 < n && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
        w.put(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
        i += 3;
        continue;
      }
      size_t j = i + 1;
      while (j < n && (in[j] == ' ' || in[j] == '\t')) j++;
      if (line_end_at(j)) {  // soft line break: "=", padding, line end all go
        i = j == n ? n : (in[j] == '\n' ? j + 1 : j + 2);
        continue;
      }
      w.put('=');
      i++;
    } else if (c == ' ' || c == '\t') {
      size_t j = i;
      while (j < n && (in[j] == ' ' || in[j] == '\t')) j++;
      if (!line_end_at(j))
        for (size_t k = i; k < j; k++) w.put(in[k]);
      i = j;
    } else {
      w.put(c);
      i++;
    }
  }
  w.flush();
}

// What BINARY[section] decodes: the header is sent as stored (BINARY[] only), the body decoded.
struct BinarySource {
  std::string_view header;
  std::string_view body;
  Cte cte = Cte::identity;
};

// False when the section does not exist.
bool binary_source(const FetchItem& it, const FetchMessage& m, BinarySource* out) {
  MimeSection s;
  if (!find_mime_section(*m.mime, it.section, &s)) return false;
  out->cte = cte_of(*m.mime, m.mime->parts[s.part]);
  if (it.section.empty()) {
    out->header = slice(m, s.header);
    out->body = slice(m, s.text);
  } else {
    out->body = slice(m, s.body);
  }
  return true;
}

template <typename Sink>
void produce_binary(const BinarySource& src, Sink&& sink) {
  if (!src.header.empty()) sink(src.header);
  switch (src.cte) {
    case Cte::identity: sink(src.body); break;
    case Cte::base64: decode_base64(src.body, sink); break;
    case Cte::quoted_printable: decode_quoted_printable(src.body, sink); break;
    case Cte::unknown: RM_ASSERT_MSG(false, "BINARY of an unknown encoding"); break;
  }
}

// ---- items

void append_flags(const FetchMessage& m, std::string* out) {
  static constexpr std::pair<uint32_t, std::string_view> kSystem[] = {
      {kFlagSeen, "\\Seen"},       {kFlagAnswered, "\\Answered"}, {kFlagFlagged, "\\Flagged"},
      {kFlagDeleted, "\\Deleted"}, {kFlagDraft, "\\Draft"},
  };
  out->append("FLAGS (");
  const size_t start = out->size();
  for (const auto& [bit, name] : kSystem) {
    if ((m.rec->flags & bit) == 0) continue;
    if (out->size() != start) out->push_back(' ');
    out->append(name);
  }
  for (uint64_t k = m.rec->keywords; k != 0; k &= k - 1) {
    const size_t bit = static_cast<size_t>(std::countr_zero(k));
    RM_ASSERT_MSG(m.keywords != nullptr && bit < m.keywords->size(),
                  "a keyword bit without a name");
    if (out->size() != start) out->push_back(' ');
    out->append((*m.keywords)[bit]);
  }
  out->push_back(')');
}

void append_uid(const FetchMessage& m, std::string* out) {
  out->append("UID ");
  append_number(m.rec->uid, out);
}

void append_modseq(const FetchMessage& m, std::string* out) {
  out->append("MODSEQ (");
  append_number(m.rec->modseq, out);
  out->push_back(')');
}

void append_body_section(const FetchItem& it, const FetchMessage& m, std::string* out) {
  out->append("BODY");
  append_section(it, out);
  out->push_back(' ');
  const Window w = window_of(it);
  std::string_view text;  // stays empty when the section does not exist
  MimeSection s;
  if (it.section.empty() && it.text == SectionText::none) {
    text = m.bytes;
  } else if (find_mime_section(*m.mime, it.section, &s)) {
    switch (it.text) {
      case SectionText::none: text = slice(m, s.body); break;
      case SectionText::mime: text = slice(m, s.mime); break;
      case SectionText::header:
      case SectionText::header_fields:
      case SectionText::header_fields_not:
        if (s.is_message) text = slice(m, s.header);
        break;
      case SectionText::text:
        if (s.is_message) text = slice(m, s.text);
        break;
    }
  }
  if ((it.text == SectionText::header_fields || it.text == SectionText::header_fields_not) &&
      !text.empty()) {
    const bool keep_listed = it.text == SectionText::header_fields;
    append_contents([&](auto&& sink) { filter_header(text, it.fields, keep_listed, sink); }, w,
                    false, out);
    return;
  }
  append_contents([&](auto&& sink) { sink(text); }, w, false, out);
}

void append_binary(const FetchItem& it, const FetchMessage& m, std::string* out) {
  out->append(it.kind == FetchKind::binary_size ? "BINARY.SIZE" : "BINARY");
  append_section(it, out);
  out->push_back(' ');
  BinarySource src;
  const bool found = binary_source(it, m, &src);
  auto produce = [&](auto&& sink) {
    if (found) produce_binary(src, sink);
  };
  if (it.kind == FetchKind::binary) {
    append_contents(produce, window_of(it), true, out);
    return;
  }
  uint64_t size = 0;
  produce([&](std::string_view s) { size += s.size(); });
  append_number(size, out);
}

void append_item(const FetchItem& it, const FetchMessage& m, ImapRevision rev, std::string* out) {
  auto whole = [&](auto&& sink) { sink(m.bytes); };
  switch (it.kind) {
    case FetchKind::flags: append_flags(m, out); break;
    case FetchKind::internaldate:
      out->append("INTERNALDATE ");
      append_internal_date(m.rec->internal_date, out);
      break;
    case FetchKind::rfc822_size:
      out->append("RFC822.SIZE ");
      append_number(m.rec->size, out);
      break;
    case FetchKind::envelope:
      out->append("ENVELOPE ");
      append_envelope(*m.mime, out);
      break;
    case FetchKind::body:
      out->append("BODY ");
      append_body(*m.mime, rev, out);
      break;
    case FetchKind::bodystructure:
      out->append("BODYSTRUCTURE ");
      append_bodystructure(*m.mime, rev, out);
      break;
    case FetchKind::uid: append_uid(m, out); break;
    case FetchKind::modseq: append_modseq(m, out); break;
    case FetchKind::body_section: append_body_section(it, m, out); break;
    case FetchKind::binary:
    case FetchKind::binary_size: append_binary(it, m, out); break;
    case FetchKind::rfc822:
      out->append("RFC822 ");
      append_contents(whole, Window{}, false, out);
      break;
    case FetchKind::rfc822_header: {
      out->append("RFC822.HEADER ");
      const MimePart& p = m.mime->parts[0];
      std::string_view h = slice(m, MimeSlice{p.header_offset, p.header_length});
      append_contents([&](auto&& sink) { sink(h); }, Window{}, false, out);
      break;
    }
    case FetchKind::rfc822_text: {
      out->append("RFC822.TEXT ");
      const MimePart& p = m.mime->parts[0];
      std::string_view t = slice(m, MimeSlice{p.body_offset(), p.body_length});
      append_contents([&](auto&& sink) { sink(t); }, Window{}, false, out);
      break;
    }
  }
}

bool has_section(FetchKind k) {
  return k == FetchKind::body_section || k == FetchKind::binary || k == FetchKind::binary_size;
}

}  // namespace

bool parse_fetch(CommandReader& r, FetchSpec* out, std::string* error) {
  *out = FetchSpec();
  FetchParser parser(r, out, error);
  if (!parser.parse()) return false;
  derive_needs(out);
  return true;
}

FetchError append_fetch(const FetchSpec& spec, const FetchMessage& m, ImapRevision rev,
                        std::string* out) {
  RM_ASSERT(m.rec != nullptr);
  RM_ASSERT(!spec.needs_mime || (m.mime != nullptr && !m.mime->parts.empty()));
  RM_ASSERT_MSG(!spec.needs_mime || !spec.needs_bytes || m.mime->message_bytes == m.bytes.size(),
                "the MIME structure is not that of these bytes");
  // RFC 3516: an encoding the server cannot decode fails the command. Checked before anything is
  // written so that the caller can answer NO [UNKNOWN-CTE] instead.
  for (const FetchItem& it : spec.items) {
    if (it.kind != FetchKind::binary && it.kind != FetchKind::binary_size) continue;
    BinarySource src;
    if (binary_source(it, m, &src) && src.cte == Cte::unknown) return FetchError::unknown_cte;
  }

  out->append("* ");
  append_number(m.seq, out);
  out->append(" FETCH (");
  bool first = true;
  auto next = [&] {
    if (!first) out->push_back(' ');
    first = false;
  };
  if (m.include_uid && !spec.has_uid) {
    next();
    append_uid(m, out);
  }
  uint32_t sent = 0;  // a bit per FetchKind without a section already sent
  static_assert(static_cast<int>(FetchKind::rfc822_text) < 32);
  for (const FetchItem& it : spec.items) {
    if (!has_section(it.kind)) {
      const uint32_t bit = 1u << static_cast<int>(it.kind);
      if ((sent & bit) != 0) continue;
      sent |= bit;
    }
    next();
    append_item(it, m, rev, out);
  }
  if (m.include_flags && !spec.has_flags) {
    next();
    append_flags(m, out);
  }
  if (m.include_modseq && !spec.has_modseq) {
    next();
    append_modseq(m, out);
  }
  out->append(")\r\n");
  return FetchError::none;
}

void append_internal_date(int64_t unix_seconds, std::string* out) {
  constexpr int64_t kSecondsMin = -62167219200;  // 0000-01-01 00:00:00 UTC
  constexpr int64_t kSecondsMax = 253402300799;  // 9999-12-31 23:59:59 UTC
  constexpr int64_t kDaySeconds = 86400;
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const int64_t t = std::clamp(unix_seconds, kSecondsMin, kSecondsMax);
  int64_t days = t / kDaySeconds;
  int64_t secs = t % kDaySeconds;
  if (secs < 0) {
    secs += kDaySeconds;
    days--;
  }
  // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date
  // Algorithms"): eras of 400 years starting on 0000-03-01.
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  const int year = static_cast<int>(yoe + era * 400 + (month <= 2 ? 1 : 0));
  const int hh = static_cast<int>(secs / 3600);
  const int mm = static_cast<int>(secs / 60 % 60);
  const int ss = static_cast<int>(secs % 60);
  char buf[64];
  int n = snprintf(buf, sizeof(buf), "\"%2d-%s-%04d %02d:%02d:%02d +0000\"", day,
                   kMonths[month - 1], year, hh, mm, ss);
  RM_ASSERT(n == 28);
  out->append(buf, static_cast<size_t>(n));
}

}  // namespace ringmail
