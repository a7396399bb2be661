// libFuzzer target for what a client's bytes reach before any mail is touched: the input is one
// client byte stream. It goes through CommandFramer in pieces (resumption must not change where
// commands end), every complete command through CommandReader as ImapSession reads it
// (protocol/session*.cc), FETCH and SEARCH run against a small mailbox (built-in messages, the
// APPENDed ones and the input itself), and every message through the MIME parse, the MIME cache
// record and the ENVELOPE/BODYSTRUCTURE renderer. An input that starts "RMIM" 0x01 is also decoded
// as a MIME cache record (run_record).
//
// Built with -DRINGMAIL_FUZZ_MIME it is the MIME target instead (mime_fuzz; see the end).
//
// A finding is a sanitizer report, an RM_ASSERT of the code under test, or a FUZZ_CHECK here: an
// invariant the headers promise (named in its message).
#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/command_parser.h"
#include "protocol/imap_fetch.h"
#include "protocol/imap_search.h"
#include "protocol/mime_render.h"
#include "protocol/mutf7.h"
#include "protocol/sequence_set.h"
#include "storage/mime_cache.h"
#include "storage/mime_parser.h"

namespace ringmail {
namespace {

#define FUZZ_CHECK(expr, what)                                                                   \
  do {                                                                                           \
    if (!(expr)) {                                                                               \
      fprintf(stderr, "FUZZ_CHECK failed: %s (%s) at %s:%d\n", what, #expr, __FILE__, __LINE__); \
      abort();                                                                                   \
    }                                                                                            \
  } while (0)

// The server's limits (core/config.h defaults; kOtherLiteralBytesMax in protocol/session.cc).
constexpr CommandFramer::Limits kLimits{8192, 64 * 1024};
constexpr size_t kMessagesMax = 8;                // the fuzz mailbox, built-ins included
constexpr size_t kMimeInputBytesMax = 64 * 1024;  // the input is also parsed as a message if small
constexpr size_t kByteByByteMax = 512;         // inputs this small are also fed one byte at a time
constexpr uint64_t kFetchWorkMax = 16u << 20;  // items x message bytes: bounds one FETCH's output

const char kPlainMessage[] =
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    "From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    "Subject: afternoon meeting\r\n"
    "To: mooch@owatagu.siam.edu.example\r\n"
    "Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    "\r\n"
    "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";

const char kMultipartMessage[] =
    "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.example>\r\n"
    "To: \"Group\": a@b.example, c@d.example;, e@f.example\r\n"
    "Cc: undisclosed-recipients:;\r\n"
    "Subject: =?UTF-8?B?w6lsw6h2ZQ==?= report\r\n"
    "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    "Message-ID: <1234@local.machine.example>\r\n"
    "In-Reply-To: <1233@local.machine.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=E9 au lait=\r\n"
    " soft break\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Language: en, fr\r\n"
    "\r\n"
    "PGI+SGVsbG88L2I+\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "Content-Description: forwarded\r\n"
    "\r\n"
    "From: x@y.example\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "inner body\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream; name*0*=utf-8''r%C3%A9; name*1=sum.bin\r\n"
    "Content-Disposition: attachment; filename=\"r\\\"x.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    "\r\n"
    "AAECAwQ=\r\n"
    "--outer\r\n"
    "Content-Type: application/x-uue\r\n"
    "Content-Transfer-Encoding: x-uuencode\r\n"
    "\r\n"
    "begin 644 x\r\n"
    "--outer--\r\n"
    "epilogue\r\n";

// Charsets that SEARCH converts (iconv, Windows-1252) and letters it folds beyond ASCII.
const char kCharsetMessage[] =
    "From: =?KOI8-R?B?6dfBzg==?= <ivan@example.ru>\r\n"
    "To: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?= <taro@example.jp>\r\n"
    "Subject: =?UTF-8?Q?=CE=93=CE=B5=CE=B9=CE=AC_=F0=9F=98=80_=EF=BC=A1?=\r\n"
    "Date: 31 Dec 2023 23:59:60 -1200\r\n"
    "Content-Type: multipart/alternative; boundary=cs\r\n"
    "\r\n"
    "--cs\r\n"
    "Content-Type: text/plain; charset=koi8-r\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "\xf0\xd2\xc9\xd7\xc5\xd4, \xed\xe9\xf2 ?\r\n"
    "--cs\r\n"
    "Content-Type: text/plain; charset=\"utf-16le\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "qQOcA4gDkwORAyAAxQEgAAAeIAAh/yAAPdgA3g==\r\n"
    "--cs\r\n"
    "Content-Type: text/html; charset=windows-1252\r\n"
    "\r\n"
    "caf\xe9 \x80 \x93quoted\x94\r\n"
    "--cs\r\n"
    "Content-Type: text/plain; charset*=iso-2022-jp''\r\n"
    "\r\n"
    "\x1b$B%F%9%H\x1b(B\r\n"
    "--cs--\r\n";

struct Message {
  std::string bytes;
  MimeInfo mime;  // decoded from the MIME cache record, as FETCH reads it in the server
  MessageRecord rec;
};

struct FuzzSession {
  std::vector<Message> messages;  // the selected mailbox: sequence number = index + 1
  std::vector<std::string> keywords{"$Forwarded", "Junk", "NonJunk"};
  std::vector<uint32_t> saved_uids;  // SEARCHRES "$"
  uint32_t uid_next = 1;
  bool utf8 = false;  // ENABLE UTF8=ACCEPT / IMAP4rev2
  bool rev2 = false;
  bool idling = false;     // the next line is DONE
  bool sasl_wait = false;  // the next line is a SASL response
  std::string out;
};

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
    if (x != y) return false;
  }
  return true;
}

bool within(std::string_view inner, std::string_view outer) {
  return inner.empty() || (inner.data() >= outer.data() &&
                           inner.data() + inner.size() <= outer.data() + outer.size());
}

// ---- IMAP response syntax

// What a client needs to find the end of a response: outside strings, parentheses and brackets
// balance and no CR, LF or NUL appears; a quoted string holds 7-bit octets other than CR, LF and
// NUL, with "\" escaping only '"' and "\"; "{n}" CRLF is followed by n octets, none NUL unless it
// is a literal8 "~{n}". `s` is one response without its final CRLF.
bool well_formed(std::string_view s) {
  int parens = 0, brackets = 0;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"') {
      for (i++;; i++) {
        if (i >= s.size()) return false;
        const unsigned char q = static_cast<unsigned char>(s[i]);
        if (q == '"') break;
        if (q == 0 || q >= 0x80 || q == '\r' || q == '\n') return false;
        if (q == '\\' && (++i >= s.size() || (s[i] != '"' && s[i] != '\\'))) return false;
      }
      i++;
    } else if (c == '{' || (c == '~' && i + 1 < s.size() && s[i + 1] == '{')) {
      const bool binary = c == '~';
      i += binary ? 2 : 1;
      uint64_t n = 0;
      size_t digits = 0;
      for (; i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 19; i++, digits++)
        n = n * 10 + static_cast<uint64_t>(s[i] - '0');
      if (digits == 0 || s.substr(i, 3) != "}\r\n") return false;
      i += 3;
      if (n > s.size() - i) return false;
      if (!binary && s.substr(i, n).find('\0') != std::string_view::npos) return false;
      i += n;
    } else {
      if (c == 0 || c == '\r' || c == '\n') return false;
      if (c == '(') parens++;
      if (c == ')' && --parens < 0) return false;
      if (c == '[') brackets++;
      if (c == ']' && --brackets < 0) return false;
      i++;
    }
  }
  // "[" is an ATOM-CHAR (a keyword "[x" is legal), so an unclosed "[" is not an error; a "]"
  // without its "[" is.
  return parens == 0 && brackets >= 0;
}

// ---- MIME

void check_string(const MimeInfo& m, MimeString s) {
  FUZZ_CHECK(s.is_nil() || uint64_t{s.offset} + s.length <= m.text.size(),
             "a MimeString lies within MimeInfo::text");
}

void check_list(MimeList l, size_t size) {
  FUZZ_CHECK(uint64_t{l.first} + l.count <= size, "a MimeList lies within its vector");
}

// Every section path of up to three numbers 1..3 names nothing or slices within the message.
void check_sections(const MimeInfo& m) {
  uint32_t path[3];
  for (uint32_t code = 0; code < 3 + 9 + 27; code++) {
    const size_t len = code < 3 ? 1 : code < 12 ? 2 : 3;
    for (uint32_t k = 0, c = code - (len == 1 ? 0 : len == 2 ? 3 : 12); k < len; k++, c /= 3)
      path[k] = 1 + c % 3;
    MimeSection sec;
    if (!find_mime_section(m, std::span<const uint32_t>(path, len), &sec)) continue;
    FUZZ_CHECK(sec.part < m.parts.size(), "a section names a part");
    for (MimeSlice sl : {sec.mime, sec.body, sec.header, sec.text})
      FUZZ_CHECK(uint64_t{sl.offset} + sl.length <= m.message_bytes,
                 "a section lies within the message");
  }
}

// The shape mime_parser.h promises: pre-order tree, every part within its parent and the message,
// body_lines the LF count of the body (`lines_known`: a cache record's count is not checked
// against the bytes), strings and lists within their vectors.
void check_mime(const MimeInfo& m, std::string_view bytes, bool lines_known) {
  FUZZ_CHECK(m.message_bytes == bytes.size(), "message_bytes is the message size");
  FUZZ_CHECK(!m.parts.empty() && m.parts.size() <= MimeParser::kPartsMax, "part count");
  FUZZ_CHECK(m.parts[0].header_offset == 0 && m.parts[0].end_offset() == bytes.size(),
             "the root part spans the message");
  FUZZ_CHECK(m.parts[0].subtree_parts == m.parts.size(), "the root's subtree is every part");
  FUZZ_CHECK(!m.envelopes.empty(), "the message has an envelope");
  for (size_t i = 0; i < m.parts.size(); i++) {
    const MimePart& p = m.parts[i];
    FUZZ_CHECK(uint64_t{p.header_offset} + p.header_length + p.body_length <= bytes.size(),
               "a part lies within the message");
    FUZZ_CHECK(p.subtree_parts >= 1 && i + p.subtree_parts <= m.parts.size(), "subtree size");
    std::string_view body = bytes.substr(p.body_offset(), p.body_length);
    FUZZ_CHECK(!lines_known || p.body_lines == static_cast<uint32_t>(
                                                   std::count(body.begin(), body.end(), '\n')),
               "body_lines counts the LFs of the body");
    uint32_t child = static_cast<uint32_t>(i) + 1, covered = 1;
    for (uint32_t c = 0; c < p.child_count; c++) {
      FUZZ_CHECK(child < i + p.subtree_parts, "a child lies within its parent's subtree");
      const MimePart& k = m.parts[child];
      FUZZ_CHECK(k.header_offset >= p.body_offset() && k.end_offset() <= p.end_offset(),
                 "a child lies within its parent's body");
      covered += k.subtree_parts;
      child += k.subtree_parts;
    }
    FUZZ_CHECK(covered == p.subtree_parts, "the children cover the subtree");
    switch (p.kind) {
      case MimeKind::multipart: FUZZ_CHECK(p.child_count >= 1, "a multipart has a child"); break;
      case MimeKind::message:
        FUZZ_CHECK(p.child_count == 1 && p.envelope < m.envelopes.size(), "a message part");
        break;
      default: FUZZ_CHECK(p.child_count == 0, "a leaf has no children"); break;
    }
    for (MimeString s :
         {p.type, p.subtype, p.id, p.description, p.encoding, p.md5, p.disposition, p.location})
      check_string(m, s);
    FUZZ_CHECK(!p.type.is_nil() && !p.subtype.is_nil(), "a part has a type and subtype");
    check_list(p.params, m.params.size());
    check_list(p.disposition_params, m.params.size());
    check_list(p.language, m.params.size());
  }
  for (const MimeParam& prm : m.params) {
    check_string(m, prm.name);
    check_string(m, prm.value);
  }
  for (const MimeAddress& a : m.addresses)
    for (MimeString s : {a.name, a.adl, a.mailbox, a.host}) check_string(m, s);
  for (const MimeEnvelope& e : m.envelopes) {
    for (MimeString s : {e.date, e.subject, e.in_reply_to, e.message_id}) check_string(m, s);
    for (MimeList l : {e.from, e.sender, e.reply_to, e.to, e.cc, e.bcc})
      check_list(l, m.addresses.size());
  }
  check_sections(m);
}

struct Rendered {
  std::string envelope, body1, body2, structure1, structure2;
  bool operator==(const Rendered&) const = default;
};

Rendered render_all(const MimeInfo& m) {
  Rendered r{render_envelope(m), render_body(m, ImapRevision::rev1),
             render_body(m, ImapRevision::rev2), render_bodystructure(m, ImapRevision::rev1),
             render_bodystructure(m, ImapRevision::rev2)};
  for (const std::string* s : {&r.envelope, &r.body1, &r.body2, &r.structure1, &r.structure2})
    FUZZ_CHECK(well_formed(*s) && s->front() == '(' && s->back() == ')',
               "ENVELOPE/BODY/BODYSTRUCTURE is one well-formed parenthesised value");
  return r;
}

// Parses, checks and renders `bytes`; returns the MimeInfo decoded from its cache record, which
// must render exactly as the parse does (the server renders from the record).
MimeInfo parse_and_render(std::string_view bytes, MimeParser* parser) {
  MimeInfo parsed;
  Status s = parser ? parser->parse(bytes, &parsed) : parse_mime(bytes, &parsed);
  FUZZ_CHECK(s.is_ok(), "the MIME parse fails only past kMessageBytesMax");
  check_mime(parsed, bytes, true);
  Rendered from_parse = render_all(parsed);
  std::string record;
  encode_mime_cache(parsed, &record);
  MimeInfo decoded;
  s = decode_mime_cache(record, static_cast<uint32_t>(bytes.size()), &decoded);
  FUZZ_CHECK(s.is_ok(), "a record encoded from a parse decodes");
  check_mime(decoded, bytes, true);
  FUZZ_CHECK(render_all(decoded) == from_parse, "the cache record renders as the parse does");
  return decoded;
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603u;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211u;
  return h;
}

void add_message(FuzzSession* s, std::string_view bytes, MimeParser* parser) {
  if (s->messages.size() >= kMessagesMax || bytes.size() > kMimeInputBytesMax) return;
  Message& m = s->messages.emplace_back();
  m.bytes = std::string(bytes);
  m.mime = parse_and_render(m.bytes, parser);
  m.rec.uid = s->uid_next;
  s->uid_next += 1 + static_cast<uint32_t>(bytes.size() % 3);  // UIDs with gaps
  m.rec.flags = static_cast<uint32_t>(bytes.size() % 32);
  m.rec.keywords = bytes.size() % 8;  // bits 0..2: the three keywords
  m.rec.modseq = m.rec.uid * 3;
  m.rec.size = static_cast<uint32_t>(bytes.size());
  // Any int64: dates before 1970 and past year 9999 (clamped) too.
  m.rec.internal_date = static_cast<int64_t>(fnv1a(bytes)) >> (bytes.size() % 32);
}

// ---- sequence sets

void check_resolved(const std::vector<SeqRange>& v, uint32_t max) {
  for (size_t i = 0; i < v.size(); i++) {
    FUZZ_CHECK(v[i].lo >= 1 && v[i].lo <= v[i].hi && v[i].hi <= max,
               "a resolved range is in 1..max");
    FUZZ_CHECK(i == 0 || uint64_t{v[i - 1].hi} + 1 < v[i].lo,
               "resolved ranges are sorted, disjoint");
  }
}

bool same(const std::vector<SeqRange>& a, const std::vector<SeqRange>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](SeqRange x, SeqRange y) { return x.lo == y.lo && x.hi == y.hi; });
}

void check_sequence_set(std::string_view text, uint32_t messages) {
  SequenceSet set;
  if (!set.parse(text)) return;
  if (set.is_saved()) {
    FUZZ_CHECK(text == "$", "only \"$\" is the saved result");
    return;
  }
  FUZZ_CHECK(!set.ranges().empty() && set.ranges().size() <= SequenceSet::kRangesMax, "ranges");
  for (uint32_t max : {0u, 1u, messages, 1000u, UINT32_MAX}) {
    std::vector<SeqRange> resolved = set.resolve(max);
    check_resolved(resolved, max);
    if (max == 0) FUZZ_CHECK(resolved.empty(), "with max 0 nothing is named");
    for (SeqRange r : set.ranges()) {
      if (max == 0) break;
      uint32_t a = r.lo == SequenceSet::kStar ? max : r.lo;
      uint32_t b = r.hi == SequenceSet::kStar ? max : r.hi;
      if (a > b) std::swap(a, b);
      if (a > max) continue;
      FUZZ_CHECK(ranges_contain(resolved, a) && ranges_contain(resolved, std::min(b, max)),
                 "a written range is named, clipped to max");
    }
    std::string again;
    append_ranges(resolved, &again);
    SequenceSet round;
    FUZZ_CHECK(resolved.empty() || (round.parse(again) && same(round.resolve(max), resolved)),
               "append_ranges writes a set that parses back to the same ranges");
  }
}

// ---- command arguments, as protocol/session*.cc reads them

bool mailbox_name(CommandReader& r, const FuzzSession& s) {
  std::string scratch, decoded, wire;
  std::string_view raw;
  if (!r.astring(&raw, &scratch)) return false;
  if (s.utf8) return valid_utf8(raw);
  if (!mutf7_to_utf8(raw, &decoded)) return false;
  FUZZ_CHECK(valid_utf8(decoded), "modified UTF-7 decodes to valid UTF-8");
  FUZZ_CHECK(utf8_to_mutf7(decoded, &wire) && wire == raw,
             "only the canonical modified UTF-7 is accepted (one wire form per name)");
  return true;
}

bool paren_atoms(CommandReader& r, size_t max) {
  if (!r.ch('(')) return false;
  if (r.ch(')')) return true;
  for (size_t n = 0;; n++) {
    std::string_view a;
    if (!r.atom(&a) || n >= max) return false;
    if (r.ch(')')) return true;
    if (!r.sp()) return false;
  }
}

// ImapSession::read_flag_list.
bool flag_list(CommandReader& r, uint32_t* system, std::vector<std::string_view>* keywords) {
  static constexpr std::string_view kSystem[] = {"Seen", "Answered", "Flagged", "Deleted", "Draft"};
  bool paren = r.ch('('), first = true;
  for (;;) {
    if (paren && r.ch(')')) return true;
    if (!first && !r.sp()) return !paren;
    if (!first && !paren && (r.peek('\r') || r.peek('\n'))) return true;
    first = false;
    std::string_view word;
    bool is_system = r.ch('\\');
    if (!r.atom(&word)) return false;
    if (is_system) {
      const auto* f = std::find_if(std::begin(kSystem), std::end(kSystem),
                                   [&](std::string_view n) { return iequal(n, word); });
      if (f == std::end(kSystem)) return false;
      *system |= 1u << (f - std::begin(kSystem));
    } else {
      if (keywords->size() >= 100) return false;
      keywords->push_back(word);
    }
    if (!paren && !r.peek(' ')) return true;
  }
}

void cmd_select(CommandReader& r, FuzzSession& s) {
  if (!r.sp() || !mailbox_name(r, s)) return;
  if (!r.sp()) return;
  if (!r.ch('(')) return;
  std::string_view p;
  while (r.atom(&p)) {
    if (iequal(p, "QRESYNC")) {
      uint64_t v = 0, modseq = 0;
      if (!r.sp() || !r.ch('(') || !r.number(&v) || !r.sp() || !r.number(&modseq, INT64_MAX))
        return;
      if (r.sp() && !r.peek('(')) {
        std::string_view set;
        if (!r.sequence_set_text(&set)) return;
        check_sequence_set(set, s.uid_next - 1);
        if (r.sp() && !r.peek('(')) return;
      }
      if (r.ch('(')) {
        std::string_view a, b;
        if (!r.sequence_set_text(&a) || !r.sp() || !r.sequence_set_text(&b) || !r.ch(')')) return;
        check_sequence_set(a, s.uid_next - 1);
        check_sequence_set(b, s.uid_next - 1);
      }
      if (!r.ch(')')) return;
    } else if (!iequal(p, "CONDSTORE")) {
      return;
    }
    if (!r.sp()) break;
  }
  (void)r.ch(')');
}

void cmd_list(CommandReader& r, const FuzzSession& s, bool lsub) {
  if (!r.sp()) return;
  if (!lsub && r.peek('(') && (!paren_atoms(r, 10) || !r.sp())) return;
  std::string scratch, decoded;
  std::string_view ref;
  if (!r.astring(&ref, &scratch) || !r.sp()) return;
  auto pattern = [&] {
    std::string_view p;
    if (!r.list_mailbox(&p, &scratch)) return false;
    return s.utf8 ? valid_utf8(p) : mutf7_to_utf8(p, &decoded);
  };
  if (!lsub && r.ch('(')) {
    size_t n = 0;
    do {
      if (++n > 100 || !pattern()) return;
    } while (r.sp());
    if (!r.ch(')')) return;
  } else if (!pattern()) {
    return;
  }
  if (lsub || !r.sp()) return;
  std::string_view kw;
  if (!r.atom(&kw) || !iequal(kw, "RETURN") || !r.sp() || !r.ch('(')) return;
  for (bool first = true; !r.ch(')'); first = false) {
    std::string_view o;
    if ((!first && !r.sp()) || !r.atom(&o)) return;
    if (iequal(o, "STATUS") && (!r.sp() || !paren_atoms(r, 10))) return;
  }
}

void cmd_append(CommandReader& r, FuzzSession& s) {
  static MimeParser parser;  // reused, as the server reuses one: stale scratch must not matter
  if (!r.sp() || !mailbox_name(r, s)) return;
  std::vector<std::string_view> messages;
  while (r.sp()) {
    uint32_t system = 0;
    std::vector<std::string_view> keywords;
    std::string scratch;
    std::string_view date, word, message;
    if (r.peek('(') && (!flag_list(r, &system, &keywords) || !r.sp())) return;
    if (r.peek('"') && (!r.string(&date, &scratch) || !r.sp())) return;
    bool utf8_data = false;
    if (r.peek('U') || r.peek('u')) {
      if (!r.atom(&word) || !iequal(word, "UTF8") || !r.sp() || !r.ch('(')) return;
      utf8_data = true;
    }
    const bool binary = r.ch('~');
    if (!r.peek('{') || !(binary ? r.literal8(&message) : r.string(&message, &scratch))) return;
    FUZZ_CHECK(binary || message.find('\0') == std::string_view::npos,
               "a literal (not literal8) holds no NUL");
    if (utf8_data && !r.ch(')')) return;
    messages.push_back(message);
    if (messages.size() > 1000) return;
  }
  if (messages.empty() || !r.at_end()) return;
  for (std::string_view m : messages)
    if (!m.empty()) add_message(&s, m, &parser);
}

// The messages `set_text` names, as ImapSession::select_messages picks them.
std::vector<uint32_t> select(std::string_view set_text, bool uid, const FuzzSession& s) {
  std::vector<uint32_t> positions;
  SequenceSet set;
  if (!set.parse(set_text)) return positions;
  const auto& msgs = s.messages;
  if (set.is_saved() || uid) {
    std::vector<SeqRange> uids = set.resolve(msgs.empty() ? 0 : msgs.back().rec.uid);
    for (uint32_t p = 0; p < msgs.size(); p++) {
      uint32_t u = msgs[p].rec.uid;
      bool in = set.is_saved() ? std::binary_search(s.saved_uids.begin(), s.saved_uids.end(), u)
                               : ranges_contain(uids, u);
      if (in) positions.push_back(p);
    }
    return positions;
  }
  for (SeqRange r : set.resolve(static_cast<uint32_t>(msgs.size())))
    for (uint32_t n = r.lo; n <= r.hi; n++) positions.push_back(n - 1);
  return positions;
}

void check_fetch_spec(const FetchSpec& spec) {
  FUZZ_CHECK(!spec.items.empty() && spec.items.size() <= FetchSpec::kItemsMax, "items");
  size_t fields = 0;
  for (const FetchItem& it : spec.items) {
    FUZZ_CHECK(it.section.size() <= FetchSpec::kSectionPartsMax, "section part numbers");
    FUZZ_CHECK(!it.has_partial || it.partial_length > 0, "a partial length is above 0");
    for (uint32_t n : it.section) FUZZ_CHECK(n > 0, "section part numbers are nz-numbers");
    fields += it.fields.size();
  }
  FUZZ_CHECK(fields <= FetchSpec::kHeaderFieldsMax, "header field names");
  FUZZ_CHECK(!spec.vanished || spec.has_changed_since, "VANISHED needs CHANGEDSINCE");
}

// One message's FETCH response, given what `spec` says it needs (as continue_fetch does).
void fetch_one(const FetchSpec& spec, const Message& msg, uint32_t seq, bool uid, bool rev2,
               const std::vector<std::string>& keywords, std::string* out) {
  if (spec.items.size() * (msg.bytes.size() + 64) > kFetchWorkMax) return;
  FetchMessage m;
  m.seq = seq;
  m.rec = &msg.rec;
  m.keywords = &keywords;
  m.include_uid = uid;
  m.include_flags = spec.sets_seen;
  m.include_modseq = spec.has_changed_since;
  if (spec.needs_bytes) m.bytes = msg.bytes;
  if (spec.needs_mime) m.mime = &msg.mime;
  out->clear();
  if (append_fetch(spec, m, rev2 ? ImapRevision::rev2 : ImapRevision::rev1, out) !=
      FetchError::none) {
    FUZZ_CHECK(out->empty(), "a failed FETCH appends nothing");
    return;
  }
  std::string_view response = *out;
  FUZZ_CHECK(response.starts_with("* ") && response.ends_with(")\r\n"),
             "one untagged FETCH response");
  response.remove_suffix(2);
  FUZZ_CHECK(well_formed(response), "the FETCH response is well-formed");
}

void cmd_fetch(CommandReader& r, FuzzSession& s, bool uid) {
  std::string_view set_text;
  if (!r.sp() || !r.sequence_set_text(&set_text) || !r.sp()) return;
  check_sequence_set(set_text, static_cast<uint32_t>(s.messages.size()));
  FetchSpec spec;
  std::string error;
  if (!parse_fetch(r, &spec, &error)) {
    FUZZ_CHECK(!error.empty(), "a rejected FETCH says why");
    return;
  }
  FUZZ_CHECK(r.at_end(), "parse_fetch reads through the final CRLF");
  check_fetch_spec(spec);
  for (uint32_t pos : select(set_text, uid, s))
    fetch_one(spec, s.messages[pos], pos + 1, uid, s.rev2, s.keywords, &s.out);
}

void cmd_search(CommandReader& r, FuzzSession& s, bool uid) {
  if (!r.sp()) return;
  SearchCommand cmd;
  std::string error;
  SearchParse parsed = parse_search(r, &cmd, &error);
  if (parsed != SearchParse::ok) {
    FUZZ_CHECK(!error.empty(), "a rejected SEARCH says why");
    return;
  }
  FUZZ_CHECK(r.at_end(), "parse_search reads through the final CRLF");
  if (search_max_sequence_number(cmd) > s.messages.size()) return;  // BAD, as in the server
  SearchMailbox box;
  box.messages = static_cast<uint32_t>(s.messages.size());
  box.uid_max = s.messages.empty() ? 0 : s.messages.back().rec.uid;
  box.keywords = &s.keywords;
  box.saved_uids = &s.saved_uids;
  box.tz_offset_minutes = static_cast<int>(s.messages.size() * 90) - 600;
  const bool needs_content = search_needs_content(cmd);
  std::vector<int> first(s.messages.size(), -1);
  // Forward, then backward: the evaluation reuses buffers in `cmd`, and the order must not matter.
  for (int pass = 0; pass < 2; pass++) {
    for (size_t k = 0; k < s.messages.size(); k++) {
      size_t p = pass == 0 ? k : s.messages.size() - 1 - k;
      const Message& msg = s.messages[p];
      int bytes_calls = 0, mime_calls = 0;
      SearchMessage m;
      m.seq = static_cast<uint32_t>(p + 1);
      m.rec = &msg.rec;
      m.bytes = [&](std::string_view* out) {
        FUZZ_CHECK(needs_content, "a flag-only SEARCH does not read the message");
        FUZZ_CHECK(++bytes_calls == 1, "a message's bytes are read once per evaluation");
        *out = msg.bytes;
        return true;
      };
      m.mime = [&](const MimeInfo** out) {
        FUZZ_CHECK(needs_content, "a flag-only SEARCH does not read the structure");
        FUZZ_CHECK(++mime_calls == 1, "a message's structure is read once per evaluation");
        *out = &msg.mime;
        return true;
      };
      bool matched = false;
      FUZZ_CHECK(search_matches(cmd, box, m, &matched), "no accessor failed");
      if (pass == 0) first[p] = matched;
      FUZZ_CHECK(first[p] == static_cast<int>(matched), "the same answer in either order");
    }
  }
  std::vector<uint32_t> hits;
  for (size_t p = 0; p < s.messages.size(); p++)
    if (first[p] == 1) hits.push_back(uid ? s.messages[p].rec.uid : static_cast<uint32_t>(p + 1));
  std::string set;
  append_number_set(hits, &set);
  check_sequence_set(set, box.uid_max);
  if (cmd.returns & kReturnSave) {
    s.saved_uids.clear();
    for (size_t p = 0; p < s.messages.size(); p++)
      if (first[p] == 1) s.saved_uids.push_back(s.messages[p].rec.uid);
  }
}

void cmd_store(CommandReader& r, FuzzSession& s, bool uid) {
  std::string_view set_text, item;
  if (!r.sp() || !r.sequence_set_text(&set_text) || !r.sp()) return;
  check_sequence_set(set_text, static_cast<uint32_t>(s.messages.size()));
  if (r.ch('(')) {
    std::string_view mod;
    uint64_t since = 0;
    if (!r.atom(&mod) || !iequal(mod, "UNCHANGEDSINCE") || !r.sp() ||
        !r.number(&since, INT64_MAX) || !r.ch(')') || !r.sp())
      return;
  }
  if (!r.word(&item)) return;
  int mode = item.starts_with('+') ? 1 : item.starts_with('-') ? -1 : 0;
  if (mode != 0) item.remove_prefix(1);
  if (!iequal(item, "FLAGS") && !iequal(item, "FLAGS.SILENT")) return;
  uint32_t system = 0;
  std::vector<std::string_view> keywords;
  if (!r.sp() || !flag_list(r, &system, &keywords) || !r.at_end()) return;
  uint64_t bits = 0;
  for (std::string_view k : keywords) {
    auto it = std::find_if(s.keywords.begin(), s.keywords.end(),
                           [&](const std::string& n) { return iequal(n, k); });
    if (it == s.keywords.end()) {
      if (s.keywords.size() == 64) continue;
      it = s.keywords.emplace(s.keywords.end(), k);
    }
    bits |= uint64_t{1} << (it - s.keywords.begin());
  }
  for (uint32_t p : select(set_text, uid, s)) {
    MessageRecord& rec = s.messages[p].rec;
    rec.flags = mode == 0 ? system : mode > 0 ? (rec.flags | system) : (rec.flags & ~system);
    rec.keywords = mode == 0 ? bits : mode > 0 ? (rec.keywords | bits) : (rec.keywords & ~bits);
  }
}

void cmd_id(CommandReader& r) {
  std::string scratch;
  std::string_view v;
  if (!r.sp()) return;
  if (!r.ch('(')) {
    (void)r.atom(&v);
    return;
  }
  for (int fields = 0; !r.ch(')') && fields <= 60; fields++) {
    if (fields > 0 && !r.sp()) return;
    if (!r.string(&v, &scratch) && !r.atom(&v)) return;
  }
}

void cmd_other(CommandReader& r, std::string_view name, FuzzSession& s, bool uid) {
  std::string scratch;
  std::string_view a, b;
  if (iequal(name, "LOGIN")) {
    std::string scratch2;
    if (r.sp() && r.astring(&a, &scratch) && r.sp() && r.astring(&b, &scratch2)) (void)r.at_end();
  } else if (iequal(name, "AUTHENTICATE")) {
    if (!r.sp() || !r.atom(&a)) return;
    if (r.sp() && !r.word(&b)) return;
    if (r.at_end() && b.empty()) s.sasl_wait = true;
  } else if (iequal(name, "ENABLE")) {
    while (r.sp() && r.atom(&a)) {
      if (iequal(a, "UTF8=ACCEPT")) s.utf8 = true;
      if (iequal(a, "IMAP4rev2")) s.utf8 = s.rev2 = true;
    }
  } else if (iequal(name, "RENAME")) {
    if (r.sp() && mailbox_name(r, s) && r.sp()) (void)mailbox_name(r, s);
  } else if (iequal(name, "STATUS")) {
    if (r.sp() && mailbox_name(r, s) && r.sp()) (void)paren_atoms(r, 20);
  } else if (iequal(name, "COPY") || iequal(name, "MOVE")) {
    if (r.sp() && r.sequence_set_text(&a) && r.sp()) {
      check_sequence_set(a, static_cast<uint32_t>(s.messages.size()));
      (void)mailbox_name(r, s);
    }
  } else if (iequal(name, "EXPUNGE")) {
    if (uid && r.sp() && r.sequence_set_text(&a))
      check_sequence_set(a, static_cast<uint32_t>(s.messages.size()));
  } else if (iequal(name, "IDLE")) {
    s.idling = r.at_end();
  } else if (iequal(name, "CREATE") || iequal(name, "DELETE") || iequal(name, "SUBSCRIBE") ||
             iequal(name, "UNSUBSCRIBE")) {
    if (r.sp()) (void)mailbox_name(r, s);
  }
}

// Every CommandReader call at every position: whatever succeeds advances and yields a view into
// the frame (or the scratch of an unescaped quoted string).
void walk_tokens(std::string_view frame) {
  CommandReader r(frame);
  std::string scratch;
  for (int steps = 0; !r.at_end() && r.pos() < frame.size() && steps < 4096; steps++) {
    const size_t before = r.pos();
    std::string_view v;
    uint64_t n = 0;
    const int kind = steps % 8;
    bool ok = kind == 0   ? r.astring(&v, &scratch)
              : kind == 1 ? r.list_mailbox(&v, &scratch)
              : kind == 2 ? r.string(&v, &scratch)
              : kind == 3 ? r.number(&n, UINT64_MAX)
              : kind == 4 ? r.sequence_set_text(&v)
              : kind == 5 ? r.word(&v)
              : kind == 6 ? r.literal8(&v)
                          : r.tag(&v);
    if (ok) {
      FUZZ_CHECK(r.pos() > before, "a token that was read advances the reader");
      FUZZ_CHECK(within(v, frame) || within(v, scratch), "a token is a view of the frame");
      if (kind == 4) check_sequence_set(v, 10);
    }
    FUZZ_CHECK(r.pos() <= frame.size(), "the reader stays within the frame");
    if (r.pos() == before && r.pos() < frame.size()) (void)r.ch(frame[r.pos()]);
  }
}

// ImapSession::execute and dispatch, without the states: every command is tried in any state.
void execute(std::string_view frame, FuzzSession& s) {
  FUZZ_CHECK(!frame.empty() && frame.back() == '\n', "a complete frame ends in LF");
  walk_tokens(frame);
  if (s.idling || s.sasl_wait) {
    s.idling = s.sasl_wait = false;  // the line is DONE or a SASL response, not a command
    return;
  }
  CommandReader r(frame);
  std::string_view tag, name;
  if (!r.tag(&tag) || !r.sp() || !r.atom(&name)) return;
  FUZZ_CHECK(within(tag, frame) && within(name, frame), "tag and command are views of the frame");
  bool uid = false;
  if (iequal(name, "UID")) {
    if (!r.sp() || !r.atom(&name)) return;
    uid = true;
  }
  if (iequal(name, "FETCH")) return cmd_fetch(r, s, uid);
  if (iequal(name, "SEARCH")) return cmd_search(r, s, uid);
  if (iequal(name, "STORE")) return cmd_store(r, s, uid);
  if (iequal(name, "APPEND")) return cmd_append(r, s);
  if (iequal(name, "SELECT") || iequal(name, "EXAMINE")) return cmd_select(r, s);
  if (iequal(name, "LIST") || iequal(name, "LSUB")) return cmd_list(r, s, iequal(name, "LSUB"));
  if (iequal(name, "ID")) return cmd_id(r);
  cmd_other(r, name, s, uid);
}

// ---- framing

struct FrameEvent {
  CommandFramer::Result result;
  size_t offset;  // where the command starts in the stream
  size_t bytes;   // frame_bytes() (0 for the fatal results, where it is not specified)
  bool operator==(const FrameEvent&) const = default;
};

// Feeds `stream` as it arrives in pieces ending at `cuts` (ascending, the last = stream.size()),
// the way ImapSession::on_input does, accepting every synchronizing literal. Each piece is a fresh
// heap copy of what has arrived, so that reading past it is an ASan report. Calls `on_frame` for
// every complete command.
template <typename OnFrame>
std::vector<FrameEvent> frame_stream(std::string_view stream, std::span<const size_t> cuts,
                                     OnFrame&& on_frame) {
  std::vector<FrameEvent> events;
  CommandFramer framer;
  size_t consumed = 0;
  for (size_t received : cuts) {
    std::vector<char> arrived(stream.begin(), stream.begin() + received);
    for (;;) {
      std::string_view rest(arrived.data() + consumed, received - consumed);
      if (rest.empty()) break;
      const CommandFramer::Result res = framer.scan(rest, kLimits);
      const size_t n = framer.frame_bytes();
      FUZZ_CHECK(n <= rest.size(), "frame_bytes() <= the buffer");
      using R = CommandFramer::Result;
      if (res == R::need_more) {
        FUZZ_CHECK(n == rest.size(), "need_more: every byte that arrived is scanned");
        FUZZ_CHECK(framer.committed_bytes() >= n, "committed_bytes() counts what was scanned");
        break;
      }
      if (res == R::line_too_long || res == R::bad_literal) {
        events.push_back({res, consumed, 0});
        return events;  // the server closes the connection
      }
      FUZZ_CHECK(n > 0 && rest[n - 1] == '\n', "a frame or literal head ends in LF");
      FUZZ_CHECK(res != R::complete || framer.committed_bytes() == n,
                 "a complete command is all that is committed");
      events.push_back({res, consumed, n});
      if (res == R::literal_wanted || res == R::literal_too_big) {
        std::string_view line = rest.substr(0, n - 1);
        if (line.ends_with('\r')) line.remove_suffix(1);
        FUZZ_CHECK(line.ends_with('}'), "a literal announcement ends the line");
        FUZZ_CHECK(
            (res == R::literal_too_big) == (framer.literal_bytes() > kLimits.literal_bytes_max),
            "literal_too_big exactly when over the limit");
      }
      if (res == R::literal_wanted) {
        FUZZ_CHECK(framer.literal_sync(), "only a synchronizing literal is offered");
        framer.accept_literal();
      } else if (res == R::literal_too_big) {
        if (!framer.literal_sync()) return events;  // BYE: the bytes cannot be skipped
        consumed += n;  // NO [TOOBIG], and the next command starts after the announcement
        framer.reset();
      } else {
        on_frame(rest.substr(0, n));
        consumed += n;
        framer.reset();
      }
    }
  }
  return events;
}

const std::vector<Message>& builtin_messages() {
  static const std::vector<Message> kMessages = [] {
    FuzzSession s;
    add_message(&s, kPlainMessage, nullptr);
    add_message(&s, kMultipartMessage, nullptr);
    add_message(&s, kCharsetMessage, nullptr);
    return std::move(s.messages);
  }();
  return kMessages;
}

// ---- MIME cache records

// An input that starts like a MIME cache record is also decoded as one, its checksum appended
// here so that mutations reach the decoder, against a message of the size it names. A record is
// never trusted (storage/mime_cache.h): what decodes must be as safe to render and slice as a
// parse.
void run_record(std::string_view input) {
  static const FetchSpec kSpec = [] {
    const char kItems[] =
        "(BODY[] BODY[1] BODY[1.MIME] BODY[2.HEADER.FIELDS (From)] BODY[2.TEXT] BODY[1.2.1]<1.10> "
        "BINARY[1] BINARY.SIZE[2] RFC822.HEADER RFC822.TEXT ENVELOPE BODY BODYSTRUCTURE)\r\n";
    CommandReader r(kItems);
    FetchSpec spec;
    std::string error;
    FUZZ_CHECK(parse_fetch(r, &spec, &error), "the record FETCH parses");
    return spec;
  }();
  if (!input.starts_with(std::string_view("RMIM\x01", 5))) return;
  uint64_t size = 0;  // the size field: LEB128 after the version
  for (size_t i = 5, shift = 0; i < input.size() && i < 10; i++, shift += 7) {
    size |= uint64_t{static_cast<unsigned char>(input[i]) & 0x7fu} << shift;
    if ((input[i] & 0x80) == 0) break;
  }
  if (size > kMimeInputBytesMax) return;
  Message msg;
  msg.bytes.resize(size);
  for (size_t i = 0; i < size; i++) msg.bytes[i] = input[i % input.size()];
  std::string record(input);
  for (uint64_t sum = XXH3_64bits(input.data(), input.size()), k = 0; k < 8; k++, sum >>= 8)
    record.push_back(static_cast<char>(sum & 0xff));
  if (!decode_mime_cache(record, static_cast<uint32_t>(size), &msg.mime).is_ok()) return;
  check_mime(msg.mime, msg.bytes, false);
  const Rendered rendered = render_all(msg.mime);
  std::string again;
  encode_mime_cache(msg.mime, &again);
  MimeInfo round;
  FUZZ_CHECK(decode_mime_cache(again, static_cast<uint32_t>(size), &round).is_ok() &&
                 render_all(round) == rendered,
             "a decoded record encodes to a record that decodes to the same");
  msg.rec.size = static_cast<uint32_t>(size);
  const std::vector<std::string> keywords;
  std::string out;
  fetch_one(kSpec, msg, 1, true, true, keywords, &out);
}

void run_one(std::string_view input) {
  run_record(input);
  FuzzSession s;
  s.messages = builtin_messages();
  s.uid_next = s.messages.back().rec.uid + 1;
  add_message(&s, input, nullptr);

  // The commands run as the stream arrives in four pieces cut where the input's hash says.
  const uint64_t h = fnv1a(input);
  std::vector<size_t> cuts;
  for (int k = 0; k < 3; k++) cuts.push_back(input.empty() ? 0 : (h >> (k * 20)) % input.size());
  cuts.push_back(input.size());
  std::sort(cuts.begin(), cuts.end());
  std::vector<FrameEvent> chunked =
      frame_stream(input, cuts, [&](std::string_view frame) { execute(frame, s); });

  // Where commands end must not depend on how the bytes arrived.
  const size_t whole[] = {input.size()};
  auto ignore = [](std::string_view) {};
  FUZZ_CHECK(frame_stream(input, whole, ignore) == chunked, "framing is the same in one piece");
  if (input.size() <= kByteByByteMax) {
    std::vector<size_t> bytes(input.size());
    for (size_t i = 0; i < bytes.size(); i++) bytes[i] = i + 1;
    FUZZ_CHECK(frame_stream(input, bytes, ignore) == chunked, "framing is the same byte by byte");
  }
}

}  // namespace
}  // namespace ringmail

#ifdef RINGMAIL_FUZZ_MIME
// The MIME target (mime_fuzz): the whole input is one message, straight into the parse, the
// checks above, the renderer and the cache record round trip; no IMAP around it.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ringmail::MimeParser parser;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.size() <= ringmail::kMimeInputBytesMax)
    (void)ringmail::parse_and_render(bytes, &parser);
  return 0;
}
#else
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ringmail::run_one(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
#endif
