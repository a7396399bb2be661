// FETCH as a specification: each test shows a stored message, the FETCH arguments a client
// sends, and the exact untagged response it gets back (or why the arguments are refused).
#include "protocol/imap_fetch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail {
namespace {

using namespace std::string_literals;

// Messages and responses are written with LF line ends for readability; the wire has CRLF.
std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

// ---- parsing

bool parse(std::string_view args, FetchSpec* spec, std::string* error) {
  std::string frame = std::string(args) + "\r\n";
  CommandReader r(frame);
  return parse_fetch(r, spec, error);
}

FetchSpec parse_ok(std::string_view args) {
  FetchSpec spec;
  std::string error;
  EXPECT_TRUE(parse(args, &spec, &error)) << args << ": " << error;
  return spec;
}

std::vector<FetchKind> kinds(const FetchSpec& spec) {
  std::vector<FetchKind> out;
  for (const FetchItem& it : spec.items) out.push_back(it.kind);
  return out;
}

TEST(FetchParse, MacrosExpand) {
  using K = FetchKind;
  EXPECT_EQ(kinds(parse_ok("FAST")), (std::vector<K>{K::flags, K::internaldate, K::rfc822_size}));
  EXPECT_EQ(kinds(parse_ok("all")),
            (std::vector<K>{K::flags, K::internaldate, K::rfc822_size, K::envelope}));
  EXPECT_EQ(kinds(parse_ok("Full")),
            (std::vector<K>{K::flags, K::internaldate, K::rfc822_size, K::envelope, K::body}));
}

TEST(FetchParse, OneAttOrAListInOrder) {
  using K = FetchKind;
  EXPECT_EQ(kinds(parse_ok("uid")), (std::vector<K>{K::uid}));
  EXPECT_EQ(kinds(parse_ok("(RFC822.SIZE uid Flags BODYSTRUCTURE body envelope INTERNALDATE "
                           "MODSEQ RFC822 RFC822.HEADER RFC822.TEXT BODY[] BINARY[1] "
                           "BINARY.SIZE[1])")),
            (std::vector<K>{K::rfc822_size, K::uid, K::flags, K::bodystructure, K::body,
                            K::envelope, K::internaldate, K::modseq, K::rfc822, K::rfc822_header,
                            K::rfc822_text, K::body_section, K::binary, K::binary_size}));
}

TEST(FetchParse, SectionsAndPartials) {
  FetchSpec s = parse_ok(
      "(body.peek[1.2.header.fields.not (\"X-A\" {3}\r\nX-b Date)]<5.10> BODY[3.MIME] "
      "BODY[TEXT]<0.1> BINARY.PEEK[4.1]<9223372036854775807.9223372036854775807>)");
  ASSERT_EQ(s.items.size(), 4u);
  const FetchItem& a = s.items[0];
  EXPECT_EQ(a.kind, FetchKind::body_section);
  EXPECT_TRUE(a.peek);
  EXPECT_EQ(a.section, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(a.text, SectionText::header_fields_not);
  EXPECT_EQ(a.fields, (std::vector<std::string>{"X-A", "X-b", "Date"}));
  EXPECT_TRUE(a.has_partial);
  EXPECT_EQ(a.partial_origin, 5u);
  EXPECT_EQ(a.partial_length, 10u);
  EXPECT_EQ(s.items[1].section, (std::vector<uint32_t>{3}));
  EXPECT_EQ(s.items[1].text, SectionText::mime);
  EXPECT_FALSE(s.items[1].peek);
  EXPECT_FALSE(s.items[1].has_partial);
  EXPECT_TRUE(s.items[2].section.empty());
  EXPECT_EQ(s.items[2].text, SectionText::text);
  EXPECT_EQ(s.items[3].kind, FetchKind::binary);
  EXPECT_TRUE(s.items[3].peek);
  EXPECT_EQ(s.items[3].partial_origin, 9223372036854775807u);
  EXPECT_EQ(parse_ok("BODY[4294967295]").items[0].section, (std::vector<uint32_t>{4294967295u}));
}

TEST(FetchParse, WhatTheCallerMustProvideAndDo) {
  struct Case {
    const char* args;
    bool mime, bytes, seen;
  };
  for (const Case& c : {
           Case{"(FLAGS UID MODSEQ INTERNALDATE RFC822.SIZE)", false, false, false},
           Case{"ENVELOPE", true, false, false},
           Case{"BODY", true, false, false},
           Case{"BODYSTRUCTURE", true, false, false},
           Case{"BODY[]", false, true, true},
           Case{"BODY.PEEK[]", false, true, false},
           Case{"BODY.PEEK[HEADER]", true, true, false},
           Case{"BODY[1]", true, true, true},
           Case{"RFC822", false, true, true},
           Case{"RFC822.HEADER", true, true, false},
           Case{"RFC822.TEXT", true, true, true},
           Case{"BINARY[1]", true, true, true},
           Case{"BINARY.PEEK[1]", true, true, false},
           Case{"BINARY.SIZE[1]", true, true, false},
       }) {
    FetchSpec s = parse_ok(c.args);
    EXPECT_EQ(s.needs_mime, c.mime) << c.args;
    EXPECT_EQ(s.needs_bytes, c.bytes) << c.args;
    EXPECT_EQ(s.sets_seen, c.seen) << c.args;
  }
  FetchSpec s = parse_ok("(FLAGS UID MODSEQ)");
  EXPECT_TRUE(s.has_flags && s.has_uid && s.has_modseq);
  s = parse_ok("ALL");
  EXPECT_TRUE(s.has_flags);
  EXPECT_FALSE(s.has_uid || s.has_modseq);
}

TEST(FetchParse, Modifiers) {
  FetchSpec s = parse_ok("(FLAGS) (CHANGEDSINCE 12345)");
  EXPECT_TRUE(s.has_changed_since);
  EXPECT_EQ(s.changed_since, 12345u);
  EXPECT_FALSE(s.vanished);
  s = parse_ok("FLAGS (changedsince 0 vanished)");  // RFC 7162 allows a zero mod-sequence here
  EXPECT_TRUE(s.has_changed_since);
  EXPECT_EQ(s.changed_since, 0u);
  EXPECT_TRUE(s.vanished);
  s = parse_ok("FAST (VANISHED CHANGEDSINCE 9223372036854775807)");
  EXPECT_EQ(s.changed_since, 9223372036854775807u);
  s = parse_ok("FLAGS");
  EXPECT_FALSE(s.has_changed_since || s.vanished);
}

TEST(FetchParse, BadSyntaxIsRefused) {
  for (const char* args : {
           "",
           "()",
           "(FLAGS",
           "FLAGS)",
           "(FLAGS  UID)",
           "( FLAGS)",
           "FLAGS UID",
           "(FLAGS ALL)",
           "BOGUS",
           "(FLAGS BOGUS)",
           "RFC822.BOGUS",
           "FLAGS[]",
           "UID<0.1>",
           "BODY<0.1>",
           "BODY.PEEK",
           "BINARY",
           "BINARY.SIZE",
           "BODY[",
           "BODY[1",
           "BODY[]]",
           "BODY[[]",
           "BODY[0]",
           "BODY[1.0]",
           "BODY[01]",
           "BODY[1.]",
           "BODY[.1]",
           "BODY[1..2]",
           "BODY[4294967296]",
           "BODY[MIME]",
           "BODY[HEADER.1]",
           "BODY[BOGUS]",
           "BODY[1.BOGUS]",
           "BODY[HEADER ]",
           "BODY[HEADER.FIELDS]",
           "BODY[HEADER.FIELDS ]",
           "BODY[HEADER.FIELDS ()]",
           "BODY[HEADER.FIELDS FROM]",
           "BODY[HEADER.FIELDS (FROM]",
           "BODY[HEADER.FIELDS (FROM)",
           "BODY[HEADER.FIELDS(FROM)]",
           "BODY[HEADER.FIELDS (FROM  TO)]",
           "BODY[HEADER.FIELDS.NOT]",
           "BODY[TEXT (FROM)]",
           "BODY[]<>",
           "BODY[]<5>",
           "BODY[]<0.0>",
           "BODY[]<1.00>",
           "BODY[]<a.1>",
           "BODY[]<1.b>",
           "BODY[]<-1.2>",
           "BODY[]<1.2",
           "BODY[]<1.2><1.2>",
           "BODY[]<9223372036854775808.1>",
           "BODY[]<1.9223372036854775808>",
           "BINARY[HEADER]",
           "BINARY[1.TEXT]",
           "BINARY[1.MIME]",
           "BINARY[]<0.0>",
           "BINARY.SIZE[1]<0.1>",
           "FLAGS (",
           "FLAGS ()",
           "FLAGS (CHANGEDSINCE)",
           "FLAGS (CHANGEDSINCE x)",
           "FLAGS (CHANGEDSINCE 9223372036854775808)",
           "FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)",
           "FLAGS (VANISHED)",
           "FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)",
           "FLAGS (BOGUS)",
           "FLAGS (CHANGEDSINCE 1",
           "FLAGS (CHANGEDSINCE 1) x",
           "FLAGS x",
       }) {
    FetchSpec spec;
    std::string error;
    EXPECT_FALSE(parse(args, &spec, &error)) << args;
    EXPECT_FALSE(error.empty()) << args;
  }
}

TEST(FetchParse, Limits) {
  std::string items = "(UID";
  for (size_t i = 1; i < FetchSpec::kItemsMax; i++) items += " UID";
  EXPECT_EQ(parse_ok(items + ")").items.size(), FetchSpec::kItemsMax);
  FetchSpec spec;
  std::string error;
  EXPECT_FALSE(parse(items + " UID)", &spec, &error));
  EXPECT_EQ(error, "too many fetch attributes");

  std::string names = "X1";
  for (size_t i = 2; i <= 600; i++) names += " X" + std::to_string(i);
  EXPECT_EQ(parse_ok("BODY[HEADER.FIELDS (" + names + ")]").items[0].fields.size(), 600u);
  // The bound counts the names of every list in the command.
  std::string more = "Y1";
  for (size_t i = 2; i <= 401; i++) more += " Y" + std::to_string(i);
  EXPECT_FALSE(parse("(BODY[HEADER.FIELDS (" + names + ")] BODY[HEADER.FIELDS.NOT (" + more + ")])",
                     &spec, &error));
  EXPECT_EQ(error, "too many header field names");

  std::string path = "1";
  for (size_t i = 1; i < FetchSpec::kSectionPartsMax; i++) path += ".1";
  EXPECT_EQ(parse_ok("BODY[" + path + "]").items[0].section.size(), FetchSpec::kSectionPartsMax);
  EXPECT_FALSE(parse("BODY[" + path + ".1]", &spec, &error));
  EXPECT_EQ(error, "too many section part numbers");
}

// ---- rendering

struct Stored {
  std::string bytes;
  MimeInfo mime;
  MessageRecord rec;
  std::vector<std::string> keywords{"$Forwarded", "Junk", "Work"};
};

Stored store(std::string bytes) {
  Stored s;
  s.bytes = std::move(bytes);
  Status st = parse_mime(s.bytes, &s.mime);
  EXPECT_TRUE(st.is_ok()) << st.message();
  s.rec.uid = 42;
  s.rec.flags = kFlagSeen | kFlagFlagged;
  s.rec.keywords = (1u << 0) | (1u << 2);
  s.rec.modseq = 7;
  s.rec.size = static_cast<uint32_t>(s.bytes.size());
  s.rec.internal_date = 760686745;  // 1994-02-08 05:52:25 UTC
  return s;
}

FetchMessage message(const Stored& s) {
  FetchMessage m;
  m.seq = 3;
  m.rec = &s.rec;
  m.keywords = &s.keywords;
  m.bytes = s.bytes;
  m.mime = &s.mime;
  return m;
}

std::string fetch_with(std::string_view args, const FetchMessage& m,
                       ImapRevision rev = ImapRevision::rev2) {
  FetchSpec spec = parse_ok(args);
  std::string out = "previous output;";
  EXPECT_EQ(append_fetch(spec, m, rev, &out), FetchError::none) << args;
  EXPECT_EQ(out.substr(0, 16), "previous output;");
  return out.substr(16);
}

std::string fetch(const Stored& s, std::string_view args) {
  return fetch_with(args, message(s));
}

const std::string kSimple = crlf(
    "From: Alice <alice@example.com>\n"
    "To: bob@example.org\n"
    "Subject: Hello\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    "Message-ID: <1@example.com>\n"
    "X-Long: first\n"
    " second\n"
    "\n"
    "Hi Bob,\n"
    "bye.\n");
const std::string kSimpleHeader = kSimple.substr(0, 163);
const std::string kSimpleText = crlf("Hi Bob,\nbye.\n");

TEST(FetchRender, SimpleMessageItems) {
  Stored s = store(kSimple);
  ASSERT_EQ(kSimple.size(), 178u);
  ASSERT_EQ(kSimpleHeader + kSimpleText, kSimple);
  EXPECT_EQ(fetch(s, "FLAGS"), "* 3 FETCH (FLAGS (\\Seen \\Flagged $Forwarded Work))\r\n");
  EXPECT_EQ(fetch(s, "INTERNALDATE"),
            "* 3 FETCH (INTERNALDATE \" 8-Feb-1994 05:52:25 +0000\")\r\n");
  EXPECT_EQ(fetch(s, "RFC822.SIZE"), "* 3 FETCH (RFC822.SIZE 178)\r\n");
  EXPECT_EQ(fetch(s, "UID"), "* 3 FETCH (UID 42)\r\n");
  EXPECT_EQ(fetch(s, "MODSEQ"), "* 3 FETCH (MODSEQ (7))\r\n");
  EXPECT_EQ(fetch(s, "ENVELOPE"),
            "* 3 FETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\" "
            "((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" "
            "\"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((NIL NIL \"bob\" "
            "\"example.org\")) NIL NIL NIL \"<1@example.com>\"))\r\n");
  EXPECT_EQ(fetch(s, "BODY"),
            "* 3 FETCH (BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 "
            "2))\r\n");
  EXPECT_EQ(fetch(s, "BODYSTRUCTURE"),
            "* 3 FETCH (BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
            "\"7bit\" 15 2 NIL NIL NIL NIL))\r\n");
  EXPECT_EQ(fetch(s, "BODY[]"), "* 3 FETCH (BODY[] {178}\r\n" + kSimple + ")\r\n");
  EXPECT_EQ(fetch(s, "BODY.PEEK[]"), "* 3 FETCH (BODY[] {178}\r\n" + kSimple + ")\r\n");
  EXPECT_EQ(fetch(s, "BODY[HEADER]"),
            "* 3 FETCH (BODY[HEADER] {163}\r\n" + kSimpleHeader + ")\r\n");
  EXPECT_EQ(fetch(s, "BODY[TEXT]"), "* 3 FETCH (BODY[TEXT] {15}\r\n" + kSimpleText + ")\r\n");
  EXPECT_EQ(fetch(s, "RFC822"), "* 3 FETCH (RFC822 {178}\r\n" + kSimple + ")\r\n");
  EXPECT_EQ(fetch(s, "RFC822.HEADER"),
            "* 3 FETCH (RFC822.HEADER {163}\r\n" + kSimpleHeader + ")\r\n");
  EXPECT_EQ(fetch(s, "RFC822.TEXT"), "* 3 FETCH (RFC822.TEXT {15}\r\n" + kSimpleText + ")\r\n");
}

TEST(FetchRender, PartOneOfASinglePartMessageIsItsBody) {
  Stored s = store(kSimple);
  EXPECT_EQ(fetch(s, "BODY[1]"), "* 3 FETCH (BODY[1] {15}\r\n" + kSimpleText + ")\r\n");
  // Its MIME header is the message header (as in Dovecot).
  EXPECT_EQ(fetch(s, "BODY[1.MIME]"),
            "* 3 FETCH (BODY[1.MIME] {163}\r\n" + kSimpleHeader + ")\r\n");
  EXPECT_EQ(fetch(s, "BINARY[1]"), "* 3 FETCH (BINARY[1] {15}\r\n" + kSimpleText + ")\r\n");
  EXPECT_EQ(fetch(s, "BINARY.SIZE[1]"), "* 3 FETCH (BINARY.SIZE[1] 15)\r\n");
}

TEST(FetchRender, MissingSectionsAreEmptyStrings) {
  Stored s = store(kSimple);
  EXPECT_EQ(fetch(s,
                  "(BODY[2] BODY[1.1] BODY[1.HEADER] BODY[1.TEXT] BODY[2.MIME] BINARY[2] "
                  "BINARY.SIZE[2] BODY[1.HEADER.FIELDS (From)])"),
            "* 3 FETCH (BODY[2] \"\" BODY[1.1] \"\" BODY[1.HEADER] \"\" BODY[1.TEXT] \"\" "
            "BODY[2.MIME] \"\" BINARY[2] \"\" BINARY.SIZE[2] 0 BODY[1.HEADER.FIELDS (From)] "
            "\"\")\r\n");
}

TEST(FetchRender, HeaderFields) {
  Stored s = store(kSimple);
  // Matched without regard to case, in the message's order (not the list's), ending with the
  // blank line; the names come back as written.
  EXPECT_EQ(fetch(s, "BODY.PEEK[HEADER.FIELDS (SUBJECT from)]"),
            crlf("* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT from)] {51}\n"
                 "From: Alice <alice@example.com>\n"
                 "Subject: Hello\n"
                 "\n"
                 ")\n"));
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS.NOT (From Subject X-Long)]"),
            crlf("* 3 FETCH (BODY[HEADER.FIELDS.NOT (From Subject X-Long)] {90}\n"
                 "To: bob@example.org\n"
                 "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
                 "Message-ID: <1@example.com>\n"
                 "\n"
                 ")\n"));
  // A folded field comes with its continuation lines.
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (x-long)]"),
            crlf("* 3 FETCH (BODY[HEADER.FIELDS (x-long)] {26}\nX-Long: first\n second\n\n)\n"));
  // No field matches: only the blank line.
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (Nope)]"),
            "* 3 FETCH (BODY[HEADER.FIELDS (Nope)] {2}\r\n\r\n)\r\n");
  // Names that are not atoms are echoed quoted, or as literals.
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (\"To\" \"a b\" \"q\\\"\" {2}\r\n\r\n)]"),
            crlf("* 3 FETCH (BODY[HEADER.FIELDS (To \"a b\" \"q\\\"\" {2}\n\n)] {23}\n"
                 "To: bob@example.org\n"
                 "\n"
                 ")\n"));
  // A prefix of a name is not the name.
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (X-Lon Subj)]"),
            "* 3 FETCH (BODY[HEADER.FIELDS (X-Lon Subj)] {2}\r\n\r\n)\r\n");
}

TEST(FetchRender, HeaderFieldsOfOddHeaders) {
  // White space before the colon (RFC 5322 obsolete syntax), a line without a colon, and no
  // blank line: the header runs to the end of the message, and no blank line is added
  // (RFC 9051 section 6.4.5).
  Stored s = store(crlf("Subject : odd\nnot a field\nTo: x@y\n "));
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (subject to)]"),
            crlf("* 3 FETCH (BODY[HEADER.FIELDS (subject to)] {25}\n"
                 "Subject : odd\nTo: x@y\n )\n"));
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS.NOT (subject to)]"),
            crlf("* 3 FETCH (BODY[HEADER.FIELDS.NOT (subject to)] {13}\nnot a field\n)\n"));
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (From)]"),
            "* 3 FETCH (BODY[HEADER.FIELDS (From)] \"\")\r\n");
  // A blank line of a bare LF is sent as stored.
  Stored lf = store("A: 1\nB: 2\n\nbody");
  EXPECT_EQ(fetch(lf, "BODY[HEADER.FIELDS (b)]"),
            "* 3 FETCH (BODY[HEADER.FIELDS (b)] {6}\r\nB: 2\n\n)\r\n");
}

TEST(FetchRender, Partials) {
  Stored s = store(kSimple);
  EXPECT_EQ(fetch(s, "BODY[]<0.10>"), "* 3 FETCH (BODY[]<0> {10}\r\nFrom: Alic)\r\n");
  // Clipped at the end; the response names the origin only.
  EXPECT_EQ(fetch(s, "BODY[]<172.100>"), "* 3 FETCH (BODY[]<172> {6}\r\nbye.\r\n)\r\n");
  EXPECT_EQ(fetch(s, "BODY[]<0.4000>"), "* 3 FETCH (BODY[]<0> {178}\r\n" + kSimple + ")\r\n");
  // Starting at or beyond the end: the empty string.
  EXPECT_EQ(fetch(s, "BODY[]<178.10>"), "* 3 FETCH (BODY[]<178> \"\")\r\n");
  EXPECT_EQ(fetch(s, "BODY[]<9223372036854775807.9223372036854775807>"),
            "* 3 FETCH (BODY[]<9223372036854775807> \"\")\r\n");
  EXPECT_EQ(fetch(s, "BODY.PEEK[TEXT]<4.3>"), "* 3 FETCH (BODY[TEXT]<4> {3}\r\nob,)\r\n");
  // Of a filtered header: the window is over the filtered text.
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (Subject)]<9.100>"),
            "* 3 FETCH (BODY[HEADER.FIELDS (Subject)]<9> {9}\r\nHello\r\n\r\n)\r\n");
}

TEST(FetchRender, Macros) {
  Stored s = store(kSimple);
  const std::string flags = "FLAGS (\\Seen \\Flagged $Forwarded Work)";
  const std::string date = "INTERNALDATE \" 8-Feb-1994 05:52:25 +0000\"";
  const std::string envelope =
      "ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800\" \"Hello\" "
      "((\"Alice\" NIL \"alice\" \"example.com\")) ((\"Alice\" NIL \"alice\" "
      "\"example.com\")) ((\"Alice\" NIL \"alice\" \"example.com\")) ((NIL NIL \"bob\" "
      "\"example.org\")) NIL NIL NIL \"<1@example.com>\")";
  const std::string body =
      "BODY (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 2)";
  EXPECT_EQ(fetch(s, "FAST"), "* 3 FETCH (" + flags + " " + date + " RFC822.SIZE 178)\r\n");
  EXPECT_EQ(fetch(s, "ALL"),
            "* 3 FETCH (" + flags + " " + date + " RFC822.SIZE 178 " + envelope + ")\r\n");
  EXPECT_EQ(fetch(s, "FULL"), "* 3 FETCH (" + flags + " " + date + " RFC822.SIZE 178 " + envelope +
                                  " " + body + ")\r\n");
}

TEST(FetchRender, OrderDuplicatesAndImpliedItems) {
  Stored s = store(kSimple);
  EXPECT_EQ(fetch(s, "(RFC822.SIZE UID)"), "* 3 FETCH (RFC822.SIZE 178 UID 42)\r\n");
  EXPECT_EQ(fetch(s, "(UID FLAGS UID flags)"),
            "* 3 FETCH (UID 42 FLAGS (\\Seen \\Flagged $Forwarded Work))\r\n");
  // A section asked twice is sent twice.
  EXPECT_EQ(fetch(s, "(BODY[1]<0.2> BODY[1]<0.2>)"),
            "* 3 FETCH (BODY[1]<0> {2}\r\nHi BODY[1]<0> {2}\r\nHi)\r\n");

  FetchMessage m = message(s);
  m.include_uid = true;  // UID FETCH
  m.include_flags = true;
  m.include_modseq = true;
  EXPECT_EQ(fetch_with("BODY[TEXT]<0.2>", m),
            "* 3 FETCH (UID 42 BODY[TEXT]<0> {2}\r\nHi FLAGS (\\Seen \\Flagged $Forwarded Work) "
            "MODSEQ (7))\r\n");
  // Asked for as well: where asked, once.
  EXPECT_EQ(fetch_with("(MODSEQ FLAGS UID)", m),
            "* 3 FETCH (MODSEQ (7) FLAGS (\\Seen \\Flagged $Forwarded Work) UID 42)\r\n");
}

TEST(FetchRender, FlagsListings) {
  Stored s = store(kSimple);
  s.rec.flags = 0;
  s.rec.keywords = 0;
  EXPECT_EQ(fetch(s, "FLAGS"), "* 3 FETCH (FLAGS ())\r\n");
  s.rec.flags = kFlagSeen | kFlagAnswered | kFlagFlagged | kFlagDeleted | kFlagDraft;
  EXPECT_EQ(fetch(s, "FLAGS"),
            "* 3 FETCH (FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft))\r\n");
  s.rec.flags = 0;
  s.rec.keywords = 1u << 1;
  EXPECT_EQ(fetch(s, "FLAGS"), "* 3 FETCH (FLAGS (Junk))\r\n");
}

const std::string kAttachments = crlf(
    "From: a@example.com\n"
    "Subject: files\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"XX\"\n"
    "\n"
    "preamble\n"
    "--XX\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "See attached.\n"
    "--XX\n"
    "Content-Type: application/octet-stream; name=\"hello.txt\"\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "SGVsbG8s\n"
    "IHdvcmxkIQ==\n"
    "--XX\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: BASE64\n"
    "\n"
    "AAECAwQFBgcICQ==\n"
    "--XX--\n");

TEST(FetchRender, MultipartMixedWithBase64Attachments) {
  Stored s = store(kAttachments);
  EXPECT_EQ(fetch(s, "BODYSTRUCTURE"),
            "* 3 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL "
            "\"7bit\" 13 0 NIL NIL NIL NIL)(\"application\" \"octet-stream\" (\"name\" "
            "\"hello.txt\") NIL NIL \"base64\" 22 NIL NIL NIL NIL)(\"application\" "
            "\"octet-stream\" NIL NIL NIL \"BASE64\" 16 NIL NIL NIL NIL) \"mixed\" (\"boundary\" "
            "\"XX\") NIL NIL NIL))\r\n");
  EXPECT_EQ(fetch(s, "BODY[1]"), "* 3 FETCH (BODY[1] {13}\r\nSee attached.)\r\n");
  EXPECT_EQ(fetch(s, "BODY[2]"), "* 3 FETCH (BODY[2] {22}\r\nSGVsbG8s\r\nIHdvcmxkIQ==)\r\n");
  EXPECT_EQ(fetch(s, "BODY[2.MIME]"),
            crlf("* 3 FETCH (BODY[2.MIME] {95}\n"
                 "Content-Type: application/octet-stream; name=\"hello.txt\"\n"
                 "Content-Transfer-Encoding: base64\n"
                 "\n"
                 ")\n"));
  // Decoded; the encoding's name is matched without regard to case.
  EXPECT_EQ(fetch(s, "BINARY[2]"), "* 3 FETCH (BINARY[2] {13}\r\nHello, world!)\r\n");
  EXPECT_EQ(fetch(s, "BINARY.SIZE[2]"), "* 3 FETCH (BINARY.SIZE[2] 13)\r\n");
  EXPECT_EQ(fetch(s, "BINARY.PEEK[2]<7.100>"), "* 3 FETCH (BINARY[2]<7> {6}\r\nworld!)\r\n");
  // NUL in the decoded octets: a literal8.
  EXPECT_EQ(fetch(s, "BINARY[3]"), "* 3 FETCH (BINARY[3] ~{10}\r\n\0\1\2\3\4\5\6\7\x08\x09)\r\n"s);
  EXPECT_EQ(fetch(s, "BINARY[3]<1.3>"), "* 3 FETCH (BINARY[3]<1> {3}\r\n\1\2\3)\r\n");
  EXPECT_EQ(fetch(s, "BINARY.SIZE[3]"), "* 3 FETCH (BINARY.SIZE[3] 10)\r\n");
  // Identity encodings pass through; a multipart is sent as stored.
  EXPECT_EQ(fetch(s, "BINARY[1]"), "* 3 FETCH (BINARY[1] {13}\r\nSee attached.)\r\n");
  EXPECT_EQ(fetch(s, "BINARY[]"), "* 3 FETCH (BINARY[] {" + std::to_string(kAttachments.size()) +
                                      "}\r\n" + kAttachments + ")\r\n");
  EXPECT_EQ(fetch(s, "BINARY.SIZE[]"),
            "* 3 FETCH (BINARY.SIZE[] " + std::to_string(kAttachments.size()) + ")\r\n");
}

const std::string kForward = crlf(
    "From: outer@example.com\n"
    "Subject: fwd\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"B1\"\n"
    "\n"
    "--B1\n"
    "Content-Type: text/plain\n"
    "\n"
    "see below\n"
    "--B1\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: inner@example.com\n"
    "Subject: inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "inner body\n"
    "--B1--\n");

TEST(FetchRender, NestedMessage) {
  Stored s = store(kForward);
  const std::string inner_header =
      crlf("From: inner@example.com\nSubject: inner\nContent-Type: text/plain\n\n");
  EXPECT_EQ(fetch(s, "BODY[2.TEXT]"), "* 3 FETCH (BODY[2.TEXT] {10}\r\ninner body)\r\n");
  EXPECT_EQ(fetch(s, "BODY[2.1]"), "* 3 FETCH (BODY[2.1] {10}\r\ninner body)\r\n");
  EXPECT_EQ(fetch(s, "BODY[2.HEADER]"),
            "* 3 FETCH (BODY[2.HEADER] {69}\r\n" + inner_header + ")\r\n");
  EXPECT_EQ(fetch(s, "BODY[2]"), "* 3 FETCH (BODY[2] {79}\r\n" + inner_header + "inner body)\r\n");
  EXPECT_EQ(fetch(s, "BODY[2.MIME]"),
            "* 3 FETCH (BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n)\r\n");
  EXPECT_EQ(fetch(s, "BODY[2.HEADER.FIELDS (SUBJECT)]"),
            "* 3 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: inner\r\n\r\n)\r\n");
  EXPECT_EQ(fetch(s, "BODY[2.HEADER.FIELDS.NOT (SUBJECT)]"),
            crlf("* 3 FETCH (BODY[2.HEADER.FIELDS.NOT (SUBJECT)] {53}\n"
                 "From: inner@example.com\nContent-Type: text/plain\n\n)\n"));
  EXPECT_EQ(fetch(s, "BODY[HEADER.FIELDS (SUBJECT)]"),
            "* 3 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: fwd\r\n\r\n)\r\n");
  EXPECT_EQ(fetch(s, "BODY[1.MIME]"),
            "* 3 FETCH (BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n)\r\n");
  // Part 1 is not a message: it has no HEADER or TEXT. The inner message has one part.
  EXPECT_EQ(fetch(s, "(BODY[1.TEXT] BODY[1.HEADER] BODY[2.2] BODY[2.1.1] BODY[3])"),
            "* 3 FETCH (BODY[1.TEXT] \"\" BODY[1.HEADER] \"\" BODY[2.2] \"\" BODY[2.1.1] \"\" "
            "BODY[3] \"\")\r\n");
  EXPECT_EQ(fetch(s, "BODYSTRUCTURE"),
            "* 3 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
            "\"7bit\" 9 0 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 79 (NIL "
            "\"inner\" ((NIL NIL \"inner\" \"example.com\")) ((NIL NIL \"inner\" "
            "\"example.com\")) ((NIL NIL \"inner\" \"example.com\")) NIL NIL NIL NIL NIL) "
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL "
            "NIL) 4 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"B1\") NIL NIL NIL))\r\n");
}

const std::string kAlternative = crlf(
    "From: x@example.com\n"
    "Subject: alt\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"OUT\"\n"
    "\n"
    "--OUT\n"
    "Content-Type: multipart/alternative; boundary=\"IN\"\n"
    "\n"
    "--IN\n"
    "Content-Type: text/plain\n"
    "\n"
    "plain\n"
    "--IN\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>html</p>\n"
    "--IN--\n"
    "--OUT\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "caf=C3=A9 =\n"
    "ok  \n"
    "--OUT--\n");

TEST(FetchRender, AlternativeInsideMixed) {
  Stored s = store(kAlternative);
  EXPECT_EQ(fetch(s, "BODY[1.2]"), "* 3 FETCH (BODY[1.2] {11}\r\n<p>html</p>)\r\n");
  EXPECT_EQ(fetch(s, "BODY[1.1]"), "* 3 FETCH (BODY[1.1] {5}\r\nplain)\r\n");
  EXPECT_EQ(fetch(s, "BODY[1.2.MIME]"),
            "* 3 FETCH (BODY[1.2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n)\r\n");
  // The close delimiter's own line end ends the nested multipart (see mime_parser_test.cc).
  const std::string alternative = crlf(
      "--IN\nContent-Type: text/plain\n\nplain\n--IN\nContent-Type: text/html\n\n<p>html</p>\n"
      "--IN--\n");
  EXPECT_EQ(fetch(s, "BODY[1]"), "* 3 FETCH (BODY[1] {" + std::to_string(alternative.size()) +
                                     "}\r\n" + alternative + ")\r\n");
  EXPECT_EQ(fetch(s, "BODY[1.MIME]"),
            crlf("* 3 FETCH (BODY[1.MIME] {54}\n"
                 "Content-Type: multipart/alternative; boundary=\"IN\"\n\n)\n"));
  // Quoted-printable: an escape, a soft line break, trailing blanks dropped.
  EXPECT_EQ(fetch(s, "BODY[2]"), "* 3 FETCH (BODY[2] {17}\r\ncaf=C3=A9 =\r\nok  )\r\n");
  EXPECT_EQ(fetch(s, "BINARY[2]"), "* 3 FETCH (BINARY[2] {8}\r\ncaf\xC3\xA9 ok)\r\n");
  EXPECT_EQ(fetch(s, "BINARY.SIZE[2]"), "* 3 FETCH (BINARY.SIZE[2] 8)\r\n");
  EXPECT_EQ(fetch(s, "BODY"),
            "* 3 FETCH (BODY (((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 "
            "0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 0) "
            "\"alternative\")(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL "
            "\"quoted-printable\" 17 1) \"mixed\"))\r\n");
}

TEST(FetchRender, DecodingIsLenient) {
  // Quoted-printable: lower-case hex is decoded; "=" that is no escape stays; blanks before a
  // line end go, the line end stays.
  Stored qp = store(crlf("Content-Transfer-Encoding: Quoted-Printable\n\na=3db=3D=ZZ=\nc \t\nd=4"));
  EXPECT_EQ(fetch(qp, "BINARY[1]"), "* 3 FETCH (BINARY[1] {13}\r\na=b==ZZc\r\nd=4)\r\n");
  EXPECT_EQ(fetch(qp, "BINARY.SIZE[1]"), "* 3 FETCH (BINARY.SIZE[1] 13)\r\n");
  // Base64: junk and line ends skipped, leftover bits dropped.
  Stored b64 = store(crlf("Content-Transfer-Encoding: base64\n\nQU JD\n*RA==\nQ"));
  EXPECT_EQ(fetch(b64, "BINARY[1]"), "* 3 FETCH (BINARY[1] {4}\r\nABCD)\r\n");
  // BINARY[] of a message that is not multipart: the header as stored, then the decoded body.
  EXPECT_EQ(fetch(b64, "BINARY[]"),
            "* 3 FETCH (BINARY[] {41}\r\nContent-Transfer-Encoding: base64\r\n\r\nABCD)\r\n");
}

TEST(FetchRender, UnknownEncodingFailsTheFetch) {
  Stored s =
      store(crlf("Subject: uu\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: "
                 "x-uuencode\n\nbegin 644 a\nend\n"));
  for (const char* args :
       {"BINARY[1]", "BINARY[]", "BINARY.SIZE[1]", "(UID BINARY.PEEK[1]<0.1>)"}) {
    FetchSpec spec = parse_ok(args);
    std::string out = "before";
    EXPECT_EQ(append_fetch(spec, message(s), ImapRevision::rev2, &out), FetchError::unknown_cte)
        << args;
    EXPECT_EQ(out, "before") << args;  // nothing written
  }
  // The raw octets and a section that does not exist are still fine.
  EXPECT_EQ(fetch(s, "(BODY[1] BINARY[2])"),
            "* 3 FETCH (BODY[1] {18}\r\nbegin 644 a\r\nend\r\n BINARY[2] \"\")\r\n");
}

TEST(FetchRender, NulIsNotSentInALiteral) {
  Stored s = store("Subject: n\r\n\r\na\0b\0"s);
  EXPECT_EQ(fetch(s, "BODY[TEXT]"),
            "* 3 FETCH (BODY[TEXT] {4}\r\na\x80"
            "b\x80)\r\n");
  EXPECT_EQ(fetch(s, "BINARY[1]"), "* 3 FETCH (BINARY[1] ~{4}\r\na\0b\0)\r\n"s);
  EXPECT_EQ(fetch(s, "BINARY[1]<0.1>"), "* 3 FETCH (BINARY[1]<0> {1}\r\na)\r\n");
}

TEST(FetchRender, RevisionChoosesHowMessageGlobalIsShown) {
  Stored s = store(crlf("Content-Type: message/global\n\nSubject: g\n\nhi\n"));
  EXPECT_EQ(fetch_with("BODY", message(s), ImapRevision::rev1),
            "* 3 FETCH (BODY (\"message\" \"global\" NIL NIL NIL \"7bit\" 18))\r\n");
  EXPECT_EQ(fetch_with("BODY", message(s), ImapRevision::rev2),
            "* 3 FETCH (BODY (\"message\" \"global\" NIL NIL NIL \"7bit\" 18 (NIL \"g\" NIL NIL "
            "NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
            "\"7bit\" 4 1) 3))\r\n");
}

TEST(FetchRender, OnlyWhatTheSpecNeedsIsRead) {
  // FLAGS UID and BODY[] need neither the MIME structure nor, for the first, the bytes.
  Stored s = store(kSimple);
  FetchMessage m;
  m.seq = 1;
  m.rec = &s.rec;
  m.keywords = &s.keywords;
  EXPECT_EQ(fetch_with("(UID RFC822.SIZE INTERNALDATE)", m),
            "* 1 FETCH (UID 42 RFC822.SIZE 178 INTERNALDATE \" 8-Feb-1994 05:52:25 +0000\")\r\n");
  m.bytes = s.bytes;
  EXPECT_EQ(fetch_with("RFC822", m), "* 1 FETCH (RFC822 {178}\r\n" + kSimple + ")\r\n");
}

TEST(InternalDate, Format) {
  auto date = [](int64_t t) {
    std::string s;
    append_internal_date(t, &s);
    return s;
  };
  EXPECT_EQ(date(0), "\" 1-Jan-1970 00:00:00 +0000\"");
  EXPECT_EQ(date(760686745), "\" 8-Feb-1994 05:52:25 +0000\"");
  EXPECT_EQ(date(951782400), "\"29-Feb-2000 00:00:00 +0000\"");
  EXPECT_EQ(date(1700000000), "\"14-Nov-2023 22:13:20 +0000\"");
  EXPECT_EQ(date(-1), "\"31-Dec-1969 23:59:59 +0000\"");
  EXPECT_EQ(date(-2208988800), "\" 1-Jan-1900 00:00:00 +0000\"");
  EXPECT_EQ(date(INT64_MIN), "\" 1-Jan-0000 00:00:00 +0000\"");
  EXPECT_EQ(date(INT64_MAX), "\"31-Dec-9999 23:59:59 +0000\"");
}

}  // namespace
}  // namespace ringmail
