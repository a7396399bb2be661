// The MIME parse, its IMAP rendering and its cache record, as specifications: each test shows a
// message and the exact ENVELOPE, BODY and BODYSTRUCTURE a client gets, and the bytes that
// BODY[section] serves.
//
// Expected values were checked against Dovecot 2.3.19 (Debian 12's dovecot-imapd: APPEND the
// message, FETCH the items). Where ringmail answers differently on purpose, a comment says what
// Dovecot answers and why ringmail does not.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "protocol/mime_render.h"
#include "storage/mime_cache.h"
#include "storage/mime_parser.h"

namespace ringmail {
namespace {

// The corpus is written with LF line ends for readability; messages are stored with CRLF.
std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

std::string_view cut(std::string_view message, MimeSlice s) {
  return message.substr(s.offset, s.length);
}

// What every parse must satisfy, whatever the input: the tree's shape, and every range within
// the message and within its parent.
void expect_well_formed(const MimeInfo& info) {
  ASSERT_FALSE(info.parts.empty());
  EXPECT_EQ(info.parts[0].header_offset, 0u);
  EXPECT_EQ(info.parts[0].end_offset(), info.message_bytes);
  EXPECT_EQ(info.parts[0].subtree_parts, info.parts.size());
  EXPECT_LE(info.parts.size(), MimeParser::kPartsMax);
  size_t message_parts = 0;
  for (uint32_t i = 0; i < info.parts.size(); i++) {
    const MimePart& p = info.parts[i];
    EXPECT_LE(p.end_offset(), info.message_bytes) << "part " << i;
    EXPECT_LE(p.body_lines, p.body_length) << "part " << i;
    message_parts += p.kind == MimeKind::message;
    if (p.kind == MimeKind::multipart) {
      EXPECT_GE(p.child_count, 1u) << "part " << i;
    }
    if (p.kind == MimeKind::message) {
      EXPECT_EQ(p.child_count, 1u) << "part " << i;
    }
    uint32_t child = i + 1;
    uint32_t previous_end = p.body_offset();
    for (uint32_t c = 0; c < p.child_count; c++) {
      ASSERT_LT(child, info.parts.size());
      const MimePart& k = info.parts[child];
      EXPECT_GE(k.header_offset, previous_end) << "part " << child;
      EXPECT_LE(k.end_offset(), p.end_offset()) << "part " << child;
      if (p.kind == MimeKind::message) {
        EXPECT_EQ(k.header_offset, p.body_offset());
      }
      previous_end = k.end_offset();
      child += k.subtree_parts;
    }
    EXPECT_EQ(child, i + p.subtree_parts) << "part " << i;
  }
  EXPECT_EQ(info.envelopes.size(), 1 + message_parts);
}

// The cache record gives back what the parse gave: the same renders and the same ranges, and
// it encodes again to the same bytes.
void expect_cache_round_trip(const MimeInfo& info) {
  std::string record;
  encode_mime_cache(info, &record);
  MimeInfo back;
  Status s = decode_mime_cache(record, info.message_bytes, &back);
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_EQ(render_envelope(back), render_envelope(info));
  EXPECT_EQ(render_bodystructure(back), render_bodystructure(info));
  EXPECT_EQ(render_body(back, ImapRevision::rev1), render_body(info, ImapRevision::rev1));
  ASSERT_EQ(back.parts.size(), info.parts.size());
  for (size_t i = 0; i < info.parts.size(); i++) {
    EXPECT_EQ(back.parts[i].header_offset, info.parts[i].header_offset);
    EXPECT_EQ(back.parts[i].header_length, info.parts[i].header_length);
    EXPECT_EQ(back.parts[i].body_length, info.parts[i].body_length);
    EXPECT_EQ(back.parts[i].subtree_parts, info.parts[i].subtree_parts);
  }
  std::string again;
  encode_mime_cache(back, &again);
  EXPECT_EQ(again, record);
}

struct Fetched {
  MimeInfo info;
  std::string envelope;
  std::string body;
  std::string bodystructure;
};

Fetched fetch(std::string_view message, ImapRevision rev = ImapRevision::rev2) {
  Fetched f;
  Status s = parse_mime(message, &f.info);
  EXPECT_TRUE(s.is_ok()) << s.message();
  expect_well_formed(f.info);
  expect_cache_round_trip(f.info);
  f.envelope = render_envelope(f.info);
  f.body = render_body(f.info, rev);
  f.bodystructure = render_bodystructure(f.info, rev);
  return f;
}

MimeSection section(const MimeInfo& info, std::initializer_list<uint32_t> path) {
  MimeSection s;
  std::vector<uint32_t> v(path);
  EXPECT_TRUE(find_mime_section(info, v, &s));
  return s;
}

bool has_section(const MimeInfo& info, std::initializer_list<uint32_t> path) {
  MimeSection s;
  std::vector<uint32_t> v(path);
  return find_mime_section(info, v, &s);
}

constexpr std::string_view kPlainAscii = R"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit")";

// ---- single-part messages

TEST(MimeParse, SimpleTextMessage) {
  const std::string m = crlf("From: a@b.c\nSubject: hi\n\nhello\n");
  Fetched f = fetch(m);
  EXPECT_EQ(f.envelope,
            R"((NIL "hi" ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) )"
            R"(NIL NIL NIL NIL NIL))");
  EXPECT_EQ(f.body, R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1))");
  EXPECT_EQ(f.bodystructure,
            R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL))");
  ASSERT_EQ(f.info.parts.size(), 1u);
  EXPECT_EQ(f.info.parts[0].header_offset, 0u);
  EXPECT_EQ(f.info.parts[0].header_length, 28u);
  EXPECT_EQ(f.info.parts[0].body_offset(), 28u);
  EXPECT_EQ(f.info.parts[0].body_length, 7u);

  MimeSection whole = section(f.info, {});  // BODY[], BODY[HEADER], BODY[TEXT]
  EXPECT_EQ(cut(m, whole.body), m);
  EXPECT_TRUE(whole.is_message);
  EXPECT_EQ(cut(m, whole.header), "From: a@b.c\r\nSubject: hi\r\n\r\n");
  EXPECT_EQ(cut(m, whole.text), "hello\r\n");
  MimeSection one = section(f.info, {1});  // a message that is not multipart: part 1 is its body
  EXPECT_EQ(cut(m, one.body), "hello\r\n");
  EXPECT_EQ(cut(m, one.mime), "From: a@b.c\r\nSubject: hi\r\n\r\n");
  EXPECT_FALSE(one.is_message);
}

TEST(MimeParse, NoContentTypeIsTextPlainUsAscii) {
  Fetched f = fetch(crlf("Subject: x\n\nbody\n"));
  EXPECT_EQ(f.bodystructure, std::string("(") + std::string(kPlainAscii) + " 6 1 NIL NIL NIL NIL)");
}

TEST(MimeParse, UnparseableContentTypeIsTextPlainUsAscii) {
  // RFC 2045 section 5.2: a syntactically invalid Content-Type means text/plain; charset=us-ascii.
  // Dovecot keeps the pieces it could read instead: ("text" "" ("charset" "us-ascii") ...) for
  // "text", and ("" "" NIL ...) for "/plain; charset=utf-8" and "; charset=utf-8".
  for (const char* ct :
       {"text", "/plain; charset=utf-8", "; charset=utf-8", "text/", "\"text\"/plain"}) {
    Fetched f = fetch(crlf(std::string("Content-Type: ") + ct + "\n\nbody\n"));
    EXPECT_EQ(f.body, std::string("(") + std::string(kPlainAscii) + " 6 1)") << ct;
  }
}

TEST(MimeParse, TypesParametersAndFieldsKeepTheirCase) {
  const std::string m = crlf(
      "From: a@b.c\n"
      "Content-Type: TEXT/Plain; CharSet=\"UTF-8\"; Format=Flowed\n"
      "Content-Transfer-Encoding: QUOTED-Printable\n"
      "Content-ID: <X@Y>\n"
      "Content-Description: =?utf-8?q?d=C3=A9?=\n"
      "Content-Disposition: INLINE; FileName=a.txt\n"
      "Content-Language: en, DE\n"
      "Content-Location: http://x/\n"
      "  y\n"
      "Content-MD5: abc==\n"
      "\n"
      "hello\n"
      "world");
  Fetched f = fetch(m);
  EXPECT_EQ(f.body, R"(("TEXT" "Plain" ("CharSet" "UTF-8" "Format" "Flowed") "<X@Y>" )"
                    R"("=?utf-8?q?d=C3=A9?=" "QUOTED-Printable" 12 1))");
  EXPECT_EQ(f.bodystructure,
            R"(("TEXT" "Plain" ("CharSet" "UTF-8" "Format" "Flowed") "<X@Y>" )"
            R"("=?utf-8?q?d=C3=A9?=" "QUOTED-Printable" 12 1 "abc==" ("INLINE" ("FileName" )"
            R"("a.txt")) ("en" "DE") "http://x/  y"))");
}

TEST(MimeParse, ExtensionFieldsEmptyOrMissing) {
  // Present but empty description and location are "" (as Dovecot). A Content-ID folded onto
  // its next line loses the leading white space; Dovecot keeps it ("  <id@x>"). The comment
  // after the encoding is not part of it.
  Fetched a = fetch(
      crlf("Content-Type: text/plain\nContent-ID:\n  <id@x>\nContent-Transfer-Encoding: 8BIT (c)\n"
           "Content-Language: en (English)\nContent-Description:\nContent-Location:\n\nx"));
  EXPECT_EQ(a.bodystructure,
            R"(("text" "plain" ("charset" "us-ascii") "<id@x>" "" "8BIT" 1 0 NIL NIL ("en") ""))");
  // An empty encoding is 7bit, an empty language list NIL, a parameter with an empty value "".
  Fetched b =
      fetch(crlf("Content-Type: text/plain\nContent-Transfer-Encoding:\n"
                 "Content-Disposition: attachment; filename=\nContent-Language: ,\n\nx"));
  EXPECT_EQ(b.bodystructure, R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL )"
                             R"(("attachment" ("filename" "")) NIL NIL))");
  // An empty Content-Disposition is NIL: body-fld-dsp has no empty form. Dovecot sends ("" NIL).
  Fetched c = fetch(crlf("Content-Type: application/octet-stream\nContent-Disposition: \n\nx"));
  EXPECT_EQ(c.bodystructure,
            R"(("application" "octet-stream" NIL NIL NIL "7bit" 1 NIL NIL NIL NIL))");
  // A disposition without parameters has NIL for them.
  Fetched d = fetch(crlf("Content-Type: application/x\nContent-Disposition: ATTACHMENT;\n\nx"));
  EXPECT_EQ(d.bodystructure,
            R"(("application" "x" NIL NIL NIL "7bit" 1 NIL ("ATTACHMENT" NIL) NIL NIL))");
}

TEST(MimeParse, CommentsAndBrokenParametersAreSkipped) {
  // Same as Dovecot: comments anywhere, a parameter without '=' dropped, junk after a value.
  EXPECT_EQ(
      fetch(crlf("Content-Type: text/plain (c) ; charset = \"iso-8859-1\" (c2)\n\nbody\n")).body,
      R"(("text" "plain" ("charset" "iso-8859-1") NIL NIL "7bit" 6 1))");
  EXPECT_EQ(fetch(crlf("Content-Type: text/plain; charset\n\nbody\n")).body,
            R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1))");
  EXPECT_EQ(fetch(crlf("Content-Type: image/png; name=a\"b\n\nbody\n")).body,
            R"(("image" "png" ("name" "a") NIL NIL "7bit" 6))");
  // An empty parameter does not hide the next one: Dovecot drops name here, answering
  // ("x" "" "charset" "us-ascii").
  EXPECT_EQ(fetch(crlf("Content-Type: text/plain;; name=\"a b\";x=\n\nbody\n")).body,
            R"(("text" "plain" ("name" "a b" "x" "" "charset" "us-ascii") NIL NIL "7bit" 6 1))");
  // Unquoted values often hold '/', '=' or '?' (boundary=----=_Part_1): they run to white space
  // or ';'. Dovecot cuts them at the first such octet ("a", and a boundary of "----" that then
  // splits the message in the wrong places).
  EXPECT_EQ(
      fetch(crlf("Content-Type: application/x; name=a/b?c=d; other=x y; q=\"a\"b; ok=1\n\nx")).body,
      R"(("application" "x" ("name" "a/b?c=d" "other" "x" "q" "a" "ok" "1") NIL NIL "7bit" 1))");
  const std::string m = crlf(
      "Content-Type: multipart/mixed; boundary=----=_Part_1/x?y\n\n------=_Part_1/x?y\n\nA\n"
      "------=_Part_1/x?y--\n");
  EXPECT_EQ(fetch(m).body, std::string("((") + std::string(kPlainAscii) + R"( 1 0) "mixed"))");
}

TEST(MimeParse, TextWithoutCharsetSaysUsAscii) {
  // RFC 2046 section 4.1.2: the default charset; Dovecot adds it after the other parameters too.
  EXPECT_EQ(fetch(crlf("Content-Type: text/html; format=flowed\n\nx\n")).body,
            R"(("text" "html" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 3 1))");
  EXPECT_EQ(fetch(crlf("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
                       "\nAAAA\n"))
                .body,
            R"(("application" "octet-stream" NIL NIL NIL "base64" 6))");
}

// ---- envelope

TEST(MimeEnvelope, FoldedFieldsAreUnfolded) {
  // RFC 5322 section 2.2.3: unfolding removes each CRLF that precedes white space, and only that.
  // Dovecot also turns "a<CRLF><TAB>b   <CRLF> c" into "a b c" (and sends it as a literal).
  const std::string m = crlf(
      "Date: Mon, 1 Jan 2024\n  10:00:00 +0000\nSubject: a\n\tb   \n c\n"
      "From: \"Doe,\n John\" <j@d.e>\nMessage-ID: <a@b>  \n\nx");
  EXPECT_EQ(
      fetch(m).envelope,
      "(\"Mon, 1 Jan 2024  10:00:00 +0000\" \"a\tb    c\" ((\"Doe, John\" NIL \"j\" \"d.e\")) "
      "((\"Doe, John\" NIL \"j\" \"d.e\")) ((\"Doe, John\" NIL \"j\" \"d.e\")) NIL NIL NIL NIL "
      "\"<a@b>  \")");
}

TEST(MimeEnvelope, EncodedWordsAndCommentsAreLeftAsWritten) {
  const std::string m = crlf(
      "Subject: =?utf-8?B?w6lsw6h2ZQ==?= =?utf-8?q?_plus?=\nMessage-ID: <a@b>\n"
      "In-Reply-To: <x@y> (comment)\n <z@w>\nDate: Tue, 2 Jan 2024 10:00:00 +0100 (CET)\n"
      "Sender: =?utf-8?q?J=C3=B6rg?= <j@x.y>\n\nx");
  EXPECT_EQ(
      fetch(m).envelope,
      R"x(("Tue, 2 Jan 2024 10:00:00 +0100 (CET)" "=?utf-8?B?w6lsw6h2ZQ==?= =?utf-8?q?_plus?=" )x"
      R"(NIL (("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x.y")) NIL NIL NIL NIL "<x@y> (comment) <z@w>" )"
      R"("<a@b>"))");
}

TEST(MimeEnvelope, AbsentFieldsAreNilPresentButEmptyAreEmpty) {
  // RFC 9051 section 7.5.2; an empty From, Sender or Reply-To is NIL, and Sender and Reply-To
  // then take the From. Dovecot keeps all but one leading space of "Message-ID:   " ("  ").
  const std::string m = crlf(
      "Date: \nSubject:\nFrom: \nSender: \nReply-To:\nTo: a@b.c\nIn-Reply-To:\nMessage-ID:   "
      "\n\nx");
  EXPECT_EQ(fetch(m).envelope, R"(("" "" NIL NIL NIL ((NIL NIL "a" "b.c")) NIL NIL "" ""))");
  EXPECT_EQ(fetch(crlf("X: y\n\nx")).envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
}

TEST(MimeEnvelope, SeveralFromAddressesAndSenderDefaults) {
  const std::string m =
      crlf("From: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\n\nx");
  const std::string from =
      R"((("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org")("Who?" NIL "one" "y.test")))";
  EXPECT_EQ(fetch(m).envelope,
            "(NIL NIL " + from + " " + from + " " + from + " NIL NIL NIL NIL NIL)");
}

TEST(MimeEnvelope, ARepeatedFieldCountsOnce) {
  // RFC 5322 allows one From and one Subject; the first is taken, as for Content-Type. Dovecot
  // joins the two From lists and takes the last Subject ("two").
  const std::string m = crlf("From: a@b.c\nFrom: d@e.f\nSubject: one\nSubject: two\n\nbody\n");
  EXPECT_EQ(
      fetch(m).envelope,
      R"((NIL "one" ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) NIL NIL )"
      R"(NIL NIL NIL))");
  EXPECT_EQ(fetch(crlf("Content-Type: image/gif\nContent-Type: text/html\n\nbody\n")).body,
            R"(("image" "gif" NIL NIL NIL "7bit" 6))");
}

TEST(MimeEnvelope, GroupsAndEmptyGroups) {
  // RFC 9051: a group starts with (NIL NIL "name" NIL) and ends with (NIL NIL NIL NIL).
  const std::string m = crlf(
      "To: undisclosed-recipients:;\nCc: Team: a@b.c, B <b@c.d>;, after@x.y\n"
      "Bcc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\n\nx");
  EXPECT_EQ(
      fetch(m).envelope,
      R"((NIL NIL NIL NIL NIL ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) )"
      R"(((NIL NIL "Team" NIL)(NIL NIL "a" "b.c")("B" NIL "b" "c.d")(NIL NIL NIL NIL)(NIL NIL )"
      R"("after" "x.y")) ((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" )"
      R"("where.test")("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)) NIL NIL))");
  // A group without its ';' still ends. An empty member is no address: Dovecot adds
  // (NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN") for the empty element of "g: a@b,;".
  const std::string n = crlf("To: Undisclosed:\nCc: g: a@b,;\nBcc: Group: ;\n\nx");
  EXPECT_EQ(
      fetch(n).envelope,
      R"((NIL NIL NIL NIL NIL ((NIL NIL "Undisclosed" NIL)(NIL NIL NIL NIL)) ((NIL NIL "g" NIL)()"
      R"(NIL NIL "a" "b")(NIL NIL NIL NIL)) ((NIL NIL "Group" NIL)(NIL NIL NIL NIL)) NIL NIL))");
}

TEST(MimeEnvelope, AddressesWithoutHostOrMailbox) {
  // A host or mailbox is never NIL in an address (that would read as a group marker): the
  // placeholders are Dovecot's.
  const std::string m = crlf("To: nohost, @nomailbox, <>, \"quoted local\"@d.e, x y <z>\n\nx");
  EXPECT_EQ(
      fetch(m).envelope,
      R"((NIL NIL NIL NIL NIL ((NIL NIL "nohost" "MISSING_DOMAIN")(NIL NIL "MISSING_MAILBOX" )"
      R"("nomailbox")(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")(NIL NIL "quoted local" "d.e"))"
      R"(("x y" NIL "z" "MISSING_DOMAIN")) NIL NIL NIL NIL))");
}

TEST(MimeEnvelope, DisplayNamesCommentsAndRoutes) {
  // As in Dovecot: quotes come off names and local parts; white space between words becomes one
  // space; comments name an address only when it has no display name and no angle brackets, and
  // then the last one counts; a route goes to adl.
  const std::string m = crlf(
      "From: John Q. Public <j@x>, (Only Comment) <c@x>, <a@b> (After), a (one) @ (two) b . c "
      "(three)\n"
      "To: \"A\" B \"C\" <x@y>, A.B <x@y>, a b   c <x@y>, \"\" <a@b>, x@y (c1) (c2)\n"
      "Cc: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>, <@r1,@r2:route@d.e>\n"
      "\nx");
  const std::string from =
      R"((("John Q. Public" NIL "j" "x")(NIL NIL "c" "x")(NIL NIL "a" "b")("three" NIL "a" "b.c")))";
  EXPECT_EQ(
      fetch(m).envelope,
      "(NIL NIL " + from + " " + from + " " + from +
          R"( (("A B C" NIL "x" "y")("A.B" NIL "x" "y")("a b c" NIL "x" "y")(NIL NIL "a" "b"))"
          R"(("c2" NIL "x" "y")) (("Pete" NIL "pete" "silly.test")(NIL "@r1,@r2" "route" )"
          R"("d.e")) NIL NIL NIL))");
}

TEST(MimeEnvelope, QuotesAndBackslashesAreEscapedNotLiterals) {
  // Both forms are valid IMAP; the quoted one is shorter. Dovecot sends names holding '"' or '\'
  // as literals: {9}CRLF Q "x" \ y.
  const std::string m =
      crlf("From: \"Q \\\"x\\\" \\\\ y\" <q@d.e>, \"Giant; \\\"Big\\\" Box\" <s@e>\n\nx");
  const std::string from = R"((("Q \"x\" \\ y" NIL "q" "d.e")("Giant; \"Big\" Box" NIL "s" "e")))";
  EXPECT_EQ(fetch(m).envelope,
            "(NIL NIL " + from + " " + from + " " + from + " NIL NIL NIL NIL NIL)");
}

TEST(MimeEnvelope, BrokenAddressesKeepWhatCanBeRead) {
  // Junk up to the next ',' is skipped, empty elements are no addresses, a domain ends where
  // white space separates two atoms ("a@b.c d@e.f" is a@b.c). Dovecot gives up on the whole
  // Reply-To list here, answering one (NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN").
  const std::string m = crlf(
      "From: foo@bar, \nReply-To: [broken, foo@[1.2.3.4], a.b.@x..y ,,\nCc: a@b.c d@e.f\n"
      "To: a@b\n   continuation\n\nx");
  EXPECT_EQ(
      fetch(m).envelope,
      R"((NIL NIL ((NIL NIL "foo" "bar")) ((NIL NIL "foo" "bar")) ((NIL NIL "foo" "[1.2.3.4]"))"
      R"((NIL NIL "a.b." "x..y")) ((NIL NIL "a" "b")) ((NIL NIL "a" "b.c")) NIL NIL NIL))");
}

TEST(MimeEnvelope, EightBitHeaderBytesAreSentAsLiterals) {
  // Same as Dovecot: raw bytes, never reinterpreted, in a literal since IMAP4rev1 quoted strings
  // are 7-bit.
  const std::string m = crlf(
      "Subject: caf\xe9 latin1\nFrom: J\xc3\xb6rg <j@x.y>\n"
      "Content-Type: text/plain; charset=utf-8; name=\"\xc3\xa9.txt\"\n"
      "Content-Description: d\xc3\xa9\n\nx");
  Fetched f = fetch(m);
  const std::string from = "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.y\"))";
  EXPECT_EQ(f.envelope, "(NIL {11}\r\ncaf\xe9 latin1 " + from + " " + from + " " + from +
                            " NIL NIL NIL NIL NIL)");
  EXPECT_EQ(f.body,
            "(\"text\" \"plain\" (\"charset\" \"utf-8\" \"name\" {6}\r\n\xc3\xa9.txt) NIL {3}\r\n"
            "d\xc3\xa9 \"7bit\" 1 0)");
}

TEST(MimeEnvelope, NulInAHeaderBecomesTheReplacementCharacter) {
  // No IMAP string can carry NUL. Same as Dovecot.
  const std::string m = std::string("Subject: nul\0here\r\n\r\nx", 23);
  EXPECT_EQ(fetch(m).envelope, "(NIL {10}\r\nnul\xef\xbf\xbdhere NIL NIL NIL NIL NIL NIL NIL NIL)");
}

TEST(MimeEnvelope, LinesThatAreNotFieldsAreSkipped) {
  // As Dovecot: the header goes on after a line without a colon; a continuation line with no
  // field before it is ignored; white space before the colon is allowed (obsolete syntax).
  EXPECT_EQ(
      fetch(crlf("From: x@y\nthis is not a header\nSubject: after\n\nbody\n")).envelope,
      R"((NIL "after" ((NIL NIL "x" "y")) ((NIL NIL "x" "y")) ((NIL NIL "x" "y")) NIL NIL NIL )"
      R"(NIL NIL))");
  EXPECT_EQ(
      fetch(crlf(" leading: ws\nSubject : s\nFrom:a@b\n\nx")).envelope,
      R"((NIL "s" ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) NIL NIL NIL NIL )"
      R"(NIL))");
}

// ---- multipart structure and sections

TEST(MimeParse, NestedMultipartMixedWithAlternative) {
  const std::string m = crlf(
      "Content-Type: multipart/mixed; boundary=\"a\"\n"
      "\n"
      "--a\n"
      "Content-Type: multipart/alternative; boundary=b\n"
      "\n"
      "--b\n"
      "\n"
      "plain\n"
      "--b\n"
      "Content-Type: text/html\n"
      "\n"
      "<p>html</p>\n"
      "--b--\n"
      "--a\n"
      "Content-Type: image/png; name=x.png\n"
      "Content-Disposition: attachment; filename=x.png\n"
      "Content-Transfer-Encoding: base64\n"
      "\n"
      "iVBO\n"
      "--a--\n");
  Fetched f = fetch(m);
  EXPECT_EQ(f.body,
            R"(((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0)("text" "html" )"
            R"(("charset" "us-ascii") NIL NIL "7bit" 11 0) "alternative")("image" "png" ("name" )"
            R"("x.png") NIL NIL "base64" 4) "mixed"))");
  EXPECT_EQ(
      f.bodystructure,
      R"(((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)("text" )"
      R"("html" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL) "alternative" )"
      R"(("boundary" "b") NIL NIL NIL)("image" "png" ("name" "x.png") NIL NIL "base64" 4 NIL )"
      R"(("attachment" ("filename" "x.png")) NIL NIL) "mixed" ("boundary" "a") NIL NIL NIL))");
  // The CRLF before a delimiter belongs to the delimiter (RFC 2046 section 5.1.1).
  EXPECT_EQ(cut(m, section(f.info, {1, 1}).body), "plain");
  EXPECT_EQ(cut(m, section(f.info, {1, 1}).mime), "\r\n");
  EXPECT_EQ(cut(m, section(f.info, {1, 2}).body), "<p>html</p>");
  EXPECT_EQ(cut(m, section(f.info, {1, 2}).mime), "Content-Type: text/html\r\n\r\n");
  EXPECT_EQ(cut(m, section(f.info, {1}).mime),
            "Content-Type: multipart/alternative; boundary=b\r\n\r\n");
  // The close delimiter's own CRLF ends the nested multipart: the next delimiter has none.
  EXPECT_EQ(cut(m, section(f.info, {1}).body),
            "--b\r\n\r\nplain\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b--\r\n");
  EXPECT_EQ(cut(m, section(f.info, {2}).body), "iVBO");
  MimeSection png = section(f.info, {2});
  EXPECT_EQ(png.mime.offset, 174u);  // just after "--a\r\n"
  EXPECT_EQ(png.mime.length, 123u);
  EXPECT_EQ(png.body.offset, 297u);
  EXPECT_EQ(png.body.length, 4u);
  EXPECT_FALSE(has_section(f.info, {3}));
  EXPECT_FALSE(has_section(f.info, {2, 1}));
  EXPECT_FALSE(has_section(f.info, {1, 3}));
  EXPECT_FALSE(has_section(f.info, {0}));
}

TEST(MimeParse, MessageRfc822AttachmentWithItsOwnMultipart) {
  const std::string m = crlf(
      "Content-Type: multipart/mixed; boundary=m\n"
      "\n"
      "--m\n"
      "Content-Type: message/rfc822\n"
      "\n"
      "From: in@x\n"
      "Subject: inner\n"
      "Content-Type: multipart/alternative; boundary=n\n"
      "\n"
      "--n\n"
      "\n"
      "i1\n"
      "--n\n"
      "Content-Type: text/html\n"
      "\n"
      "i2\n"
      "--n--\n"
      "--m--\n");
  Fetched f = fetch(m);
  // The CRLF after "--n--" ended that delimiter line, so the message part runs through it (133
  // octets, 12 lines), as in Dovecot.
  EXPECT_EQ(
      f.bodystructure,
      R"((("message" "rfc822" NIL NIL NIL "7bit" 133 (NIL "inner" ((NIL NIL "in" "x")) ((NIL )"
      R"(NIL "in" "x")) ((NIL NIL "in" "x")) NIL NIL NIL NIL NIL) (("text" "plain" ("charset" )"
      R"("us-ascii") NIL NIL "7bit" 2 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") )"
      R"(NIL NIL "7bit" 2 0 NIL NIL NIL NIL) "alternative" ("boundary" "n") NIL NIL NIL) 12 NIL )"
      R"(NIL NIL NIL) "mixed" ("boundary" "m") NIL NIL NIL))");
  MimeSection one = section(f.info, {1});
  EXPECT_TRUE(one.is_message);
  EXPECT_EQ(cut(m, one.mime), "Content-Type: message/rfc822\r\n\r\n");
  EXPECT_EQ(cut(m, one.body).substr(0, 12), "From: in@x\r\n");
  EXPECT_EQ(cut(m, one.body).substr(one.body.length - 7), "--n--\r\n");
  EXPECT_EQ(
      cut(m, one.header),  // BODY[1.HEADER]
      "From: in@x\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=n\r\n\r\n");
  EXPECT_EQ(cut(m, one.text),  // BODY[1.TEXT]
            "--n\r\n\r\ni1\r\n--n\r\nContent-Type: text/html\r\n\r\ni2\r\n--n--\r\n");
  EXPECT_EQ(cut(m, section(f.info, {1, 1}).body), "i1");
  EXPECT_EQ(cut(m, section(f.info, {1, 2}).body), "i2");
  EXPECT_EQ(cut(m, section(f.info, {1, 2}).mime), "Content-Type: text/html\r\n\r\n");
  EXPECT_FALSE(has_section(f.info, {1, 3}));
}

TEST(MimeParse, EncapsulatedMessageThatIsNotMultipart) {
  // A message/rfc822 part N whose message is not multipart: N.1 is that message's body.
  const std::string m = crlf(
      "Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: message/rfc822\n\n"
      "Subject: inner plain\n\nbody\n--m--\n");
  Fetched f = fetch(m);
  EXPECT_EQ(
      f.body,
      R"((("message" "rfc822" NIL NIL NIL "7bit" 28 (NIL "inner plain" NIL NIL NIL NIL NIL NIL )"
      R"(NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0) 2) "mixed"))");
  EXPECT_EQ(cut(m, section(f.info, {1}).body), "Subject: inner plain\r\n\r\nbody");
  EXPECT_EQ(cut(m, section(f.info, {1}).header), "Subject: inner plain\r\n\r\n");
  EXPECT_EQ(cut(m, section(f.info, {1}).text), "body");
  EXPECT_EQ(cut(m, section(f.info, {1, 1}).body), "body");
  EXPECT_FALSE(has_section(f.info, {1, 2}));

  // The same at the top level: part 1 is the whole encapsulated message, 1.1 its body.
  const std::string top = crlf("Content-Type: message/rfc822\n\nSubject: top-level inner\n\nhi\n");
  Fetched t = fetch(top);
  EXPECT_EQ(
      t.body,
      R"(("message" "rfc822" NIL NIL NIL "7bit" 32 (NIL "top-level inner" NIL NIL NIL NIL NIL )"
      R"(NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1) 3))");
  EXPECT_EQ(cut(top, section(t.info, {1}).body), "Subject: top-level inner\r\n\r\nhi\r\n");
  EXPECT_EQ(cut(top, section(t.info, {1}).header), "Subject: top-level inner\r\n\r\n");
  EXPECT_EQ(cut(top, section(t.info, {1, 1}).body), "hi\r\n");
}

TEST(MimeParse, EncodedMessageRfc822IsNotParsed) {
  // RFC 2046 forbids encoding a message/rfc822; one that is encoded cannot be parsed in place.
  // Same as Dovecot: an empty envelope and an empty body.
  Fetched f =
      fetch(crlf("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
                 "U3ViamVjdDogeA0KDQp4DQo=\n"));
  EXPECT_EQ(
      f.body,
      R"(("message" "rfc822" NIL NIL NIL "base64" 26 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) )"
      R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) 1))");
}

TEST(MimeParse, MessageGlobalIsAMessageInImap4rev2Only) {
  // RFC 9051's media-message includes GLOBAL; RFC 3501's does not, and Dovecot (an IMAP4rev1
  // server) shows it as a basic part.
  const std::string m = crlf("Content-Type: message/global\n\nSubject: g\n\nhi\n");
  EXPECT_EQ(fetch(m, ImapRevision::rev1).bodystructure,
            R"(("message" "global" NIL NIL NIL "7bit" 18 NIL NIL NIL NIL))");
  EXPECT_EQ(
      fetch(m, ImapRevision::rev2).body,
      R"(("message" "global" NIL NIL NIL "7bit" 18 (NIL "g" NIL NIL NIL NIL NIL NIL NIL NIL) )"
      R"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 1) 3))");
}

TEST(MimeParse, DigestPartsDefaultToMessageRfc822) {
  // RFC 2046 section 5.1.5. Same as Dovecot.
  const std::string m = crlf(
      "Content-Type: multipart/digest; boundary=d\n\n--d\n\nFrom: x@y\nSubject: one\n\nbody one\n"
      "--d\nContent-Type: text/plain\n\nplain\n--d--\n");
  EXPECT_EQ(
      fetch(m).body,
      R"((("message" "rfc822" NIL NIL NIL "7bit" 35 (NIL "one" ((NIL NIL "x" "y")) ((NIL NIL )"
      R"("x" "y")) ((NIL NIL "x" "y")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" )"
      R"("us-ascii") NIL NIL "7bit" 8 0) 3)("text" "plain" ("charset" "us-ascii") NIL NIL )"
      R"("7bit" 5 0) "digest"))");
}

TEST(MimeParse, LineCountsCountLineFeedsAndDelimitersNeedALineStart) {
  // Same as Dovecot: lines are LF octets in the body; "--XX" inside a line is text.
  const std::string m = crlf(
      "From: a@b.c\nContent-Type: multipart/mixed; boundary=XX\n\npre\n--XX\n\nhello\n--XX\n\n"
      "hello\n\n--XX\n\nno newline--XX\n--XX--\nepilogue\n");
  Fetched f = fetch(m);
  EXPECT_EQ(f.body, std::string("((") + std::string(kPlainAscii) + " 5 0)(" +
                        std::string(kPlainAscii) + " 7 1)(" + std::string(kPlainAscii) +
                        R"( 14 0) "mixed"))");
  EXPECT_EQ(cut(m, section(f.info, {3}).body), "no newline--XX");
  EXPECT_EQ(cut(m, section(f.info, {}).text).substr(0, 5), "pre\r\n");  // preamble in TEXT
}

TEST(MimeParse, BoundariesMatchAsLinePrefixes) {
  // RFC 2046: "it is sufficient that the boundary appear in its entirety following the CRLF";
  // white space after a delimiter is padding. Same as Dovecot.
  const std::string m =
      crlf("Content-Type: multipart/mixed; boundary=m\n\n--mXYZ\n\none\n--m \n\ntwo\n--m--  \n");
  Fetched f = fetch(m);
  EXPECT_EQ(f.body, std::string("((") + std::string(kPlainAscii) + " 3 0)(" +
                        std::string(kPlainAscii) + R"( 3 0) "mixed"))");
}

TEST(MimeParse, MissingFinalDelimiterEndsAtTheEndOfTheMessage) {
  const std::string m =
      crlf("Content-Type: multipart/mixed; boundary=m\n\n--m\n\none\n--m\n\ntwo, no end\n");
  Fetched f = fetch(m);
  EXPECT_EQ(f.body, std::string("((") + std::string(kPlainAscii) + " 3 0)(" +
                        std::string(kPlainAscii) + R"( 13 1) "mixed"))");
  EXPECT_EQ(cut(m, section(f.info, {2}).body), "two, no end\r\n");
}

TEST(MimeParse, AMultipartWithoutPartsGetsAnEmptyTextPart) {
  // BODYSTRUCTURE needs at least one part; Dovecot adds the same empty one.
  EXPECT_EQ(fetch(crlf("Content-Type: multipart/mixed; boundary=m\n\nno boundaries at all\n")).body,
            std::string("((") + std::string(kPlainAscii) + R"( 0 0) "mixed"))");
  EXPECT_EQ(fetch(crlf("Content-Type: multipart/alternative; boundary=m\n\n--m--\n")).body,
            std::string("((") + std::string(kPlainAscii) + R"( 0 0) "alternative"))");
  Fetched f = fetch(crlf("Content-Type: multipart/mixed\n\n--m\n\nx\n--m--\n"));  // no boundary
  EXPECT_EQ(f.bodystructure, std::string("((") + std::string(kPlainAscii) +
                                 R"( 0 0 NIL NIL NIL NIL) "mixed" NIL NIL NIL NIL))");
}

TEST(MimeParse, Rfc2231ContinuationsAreJoined) {
  // Same as Dovecot, but parameters stay in the order they came (Dovecot moves joined ones last).
  Fetched f =
      fetch(crlf("Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC%20rates.txt\n"
                 "Content-Disposition: attachment; filename*0=\"long\"; filename*1=\"name.txt\"; "
                 "size=123\n\nx"));
  EXPECT_EQ(
      f.bodystructure,
      R"(("application" "octet-stream" ("name*" "utf-8''%E2%82%AC%20rates.txt") NIL NIL "7bit" )"
      R"(1 NIL ("attachment" ("filename" "longname.txt" "size" "123")) NIL NIL))");
  // Sections are ordered by number; a missing one leaves no hole. Dovecot sends x*0 and x*2 as
  // they are.
  EXPECT_EQ(fetch(crlf("Content-Type: application/octet-stream; name*1=\"second\"; "
                       "name*0=\"first-\"; x*0=\"a\"; x*2=\"c\"\n\nx"))
                .body,
            R"(("application" "octet-stream" ("name" "first-second" "x" "ac") NIL NIL "7bit" 1))");
}

TEST(MimeParse, Rfc2231ExtendedValuesAreDecodedAndReencoded) {
  // RFC 9051 section 7.5.2: "foo*0*", "foo*1*" ... are decoded, converted to UTF-8, joined and
  // returned as "foo*". ringmail returns the joined value in RFC 2231 form (charset'lang'%XX),
  // which is what clients decode: ISO-8859-1 becomes UTF-8, other charsets keep their label and
  // bytes, and every octet that is not an attribute-char is %-encoded, so an unencoded section
  // ("isn't it!") joins correctly. Dovecot leaves the charset and the unencoded section as they
  // are: "iso-8859-1''f%FCr.txt", "...%20isn't it!".
  Fetched f = fetch(
      crlf("Content-Type: application/x-stuff;\n title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
           " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n title*2=\"isn't it!\"\n\nx"));
  EXPECT_EQ(f.body,
            R"(("application" "x-stuff" ("title*" "us-ascii'en'This%20is%20even%20more%20%2A%2A%2A)"
            R"(fun%2A%2A%2A%20isn%27t%20it!") NIL NIL "7bit" 1))");
  EXPECT_EQ(
      fetch(crlf("Content-Type: application/octet-stream; name*=iso-8859-1'de'f%FCr.txt\n"
                 "Content-Disposition: attachment; filename*0*=iso-8859-1''f%FC; "
                 "filename*1=\"r.txt\"\n\nx"))
          .bodystructure,
      R"(("application" "octet-stream" ("name*" "utf-8'de'f%C3%BCr.txt") NIL NIL "7bit" 1 NIL )"
      R"(("attachment" ("filename*" "utf-8''f%C3%BCr.txt")) NIL NIL))");
  // Sections split inside a UTF-8 sequence join back (same as Dovecot). A stray '%' stands for
  // itself, and a plain parameter of the same name stays beside the extended one; Dovecot
  // answers ("name" "p" "NAME*" "UTF-8''a%2") to the second message.
  EXPECT_EQ(fetch(crlf("Content-Type: application/octet-stream; name*0*=utf-8''%E2%82; "
                       "name*1*=%AC\n\nx"))
                .body,
            R"(("application" "octet-stream" ("name*" "utf-8''%E2%82%AC") NIL NIL "7bit" 1))");
  EXPECT_EQ(
      fetch(crlf("Content-Type: application/octet-stream; NAME*=UTF-8''a%2; name=\"p\"\n\nx")).body,
      R"(("application" "octet-stream" ("NAME*" "UTF-8''a%252" "name" "p") NIL NIL "7bit" 1))");
  // charset* is not charset: text still says us-ascii (as Dovecot).
  EXPECT_EQ(
      fetch(crlf("Content-Type: text/plain; charset*=us-ascii'en'utf-8\n\nx")).body,
      R"(("text" "plain" ("charset*" "us-ascii'en'utf-8" "charset" "us-ascii") NIL NIL "7bit" )"
      R"(1 0))");
}

// ---- line ends, empty and truncated messages

TEST(MimeParse, BareLfMessagesCountOctetsAsStored) {
  // BODY[1] serves the stored octets, so the size counts them: "l1\nl2" is 5. Dovecot counts
  // as if every LF were CRLF (6), and RFC822.SIZE likewise.
  const std::string m =
      "From: x@y\nSubject: lf\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\nl1\nl2\n--q--\n";
  Fetched f = fetch(m);
  EXPECT_EQ(f.body, std::string("((") + std::string(kPlainAscii) + R"( 5 1) "mixed"))");
  EXPECT_EQ(cut(m, section(f.info, {1}).body), "l1\nl2");
  EXPECT_EQ(cut(m, section(f.info, {}).header),
            "From: x@y\nSubject: lf\nContent-Type: multipart/mixed; boundary=q\n\n");
}

TEST(MimeParse, EmptyBodiesAndHeadersWithoutABlankLine) {
  Fetched a = fetch(crlf("From: x@y\n\n"));
  EXPECT_EQ(a.body, std::string("(") + std::string(kPlainAscii) + " 0 0)");
  // No blank line: everything is header, and the body is empty (same as Dovecot).
  const std::string b = crlf("From: x@y\nSubject: no body");
  Fetched fb = fetch(b);
  EXPECT_EQ(fb.body, std::string("(") + std::string(kPlainAscii) + " 0 0)");
  EXPECT_EQ(cut(b, section(fb.info, {}).header), b);
  EXPECT_EQ(section(fb.info, {}).text.offset, b.size());
  // Zero octets are a message too (Dovecot refuses to APPEND one).
  Fetched c = fetch("");
  EXPECT_EQ(c.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
  EXPECT_EQ(c.body, std::string("(") + std::string(kPlainAscii) + " 0 0)");
}

TEST(MimeParse, DelimiterRightAfterAHeaderEndsAnEmptyPart) {
  // A part whose header runs into a delimiter, with or without its blank line: its body is
  // empty, and the line end before the delimiter belongs to the delimiter, so every part stays
  // within its parent (fetch() checks that). BODY and every section here are the same as
  // Dovecot's.
  const std::string m = crlf(
      "Content-Type: multipart/mixed; boundary=outer\n\n--outer\n"
      "Content-Type: multipart/mixed; boundary=m\n\n--m\n--outer\n"
      "Content-Type: message/rfc822\n\n--outer\n"
      "Content-Type: text/plain\n--outer\n"
      "Content-Type: text/plain\n\n--outer--\n");
  Fetched f = fetch(m);
  EXPECT_EQ(
      f.body,
      R"(((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed")("message" )"
      R"("rfc822" NIL NIL NIL "7bit" 0 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" )"
      R"("plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) 0)("text" "plain" ("charset" )"
      R"("us-ascii") NIL NIL "7bit" 0 0)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" )"
      R"(0 0) "mixed"))");
  EXPECT_EQ(cut(m, section(f.info, {3}).mime), "Content-Type: text/plain");
  EXPECT_EQ(cut(m, section(f.info, {4}).mime), "Content-Type: text/plain\r\n");
}

// ---- limits

std::string nested_multiparts(int depth) {
  std::string s;
  char b[16];
  for (int i = 0; i < depth; i++) {
    snprintf(b, sizeof b, "b%03d", i);
    s += std::string("Content-Type: multipart/mixed; boundary=\"") + b + "\"\n\n--" + b + "\n";
  }
  s += "Content-Type: text/plain\n\nleaf\n";
  for (int i = depth - 1; i >= 0; i--) {
    snprintf(b, sizeof b, "b%03d", i);
    s += std::string("--") + b + "--\n";
  }
  return crlf(s);
}

TEST(MimeLimits, NestingDeeperThanTheLimitBecomesAnOpaquePart) {
  // 99 nested multiparts and their leaf: 100 levels, all kept.
  Fetched ok = fetch(nested_multiparts(99));
  EXPECT_EQ(ok.info.parts.size(), 100u);
  EXPECT_EQ(ok.info.parts.back().kind, MimeKind::text);
  // One more: the 100th multipart would put its leaf at level 101, so it is kept whole as
  // application/octet-stream with its parameters. Same as Dovecot.
  for (int depth : {100, 101}) {
    Fetched f = fetch(nested_multiparts(depth));
    EXPECT_EQ(f.info.parts.size(), 100u);
    EXPECT_EQ(f.info.parts.back().kind, MimeKind::basic);
    const std::string opaque =
        R"(("application" "octet-stream" ("boundary" "b099") NIL NIL "7bit" )" +
        std::to_string(depth == 100 ? 50 : 118) + ")";
    EXPECT_EQ(f.body.substr(99, opaque.size()), opaque);
  }
  // Encapsulated messages count as levels too: 99 message/rfc822, then an opaque part.
  std::string s;
  for (int i = 0; i < 120; i++)
    s += "Subject: m" + std::to_string(i) + "\nContent-Type: message/rfc822\n\n";
  s += "Subject: last\n\nleaf\n";
  Fetched m = fetch(crlf(s));
  EXPECT_EQ(m.info.parts.size(), 100u);
  EXPECT_EQ(m.info.envelopes.size(), 100u);
  EXPECT_EQ(m.info.parts[98].kind, MimeKind::message);
  EXPECT_EQ(m.info.parts[99].kind, MimeKind::basic);
  EXPECT_NE(m.bodystructure.find(R"( ("application" "octet-stream" NIL NIL NIL "7bit" 963 NIL NIL )"
                                 R"(NIL NIL) )"),
            std::string::npos);
}

TEST(MimeLimits, TheLastPartTheLimitAllowsHoldsTheRest) {
  // 10,010 parts in a multipart: the message and 9,999 of them are kept; the last one runs to
  // the end of the message, delimiters and all (178 octets, 35 lines). Same as Dovecot.
  std::string s = "Content-Type: multipart/mixed; boundary=x\n\n";
  for (int i = 0; i < 10010; i++) s += "--x\n\np" + std::to_string(i) + "\n";
  s += "--x--\n";
  const std::string m = crlf(s);
  Fetched f = fetch(m);
  EXPECT_EQ(f.info.parts.size(), MimeParser::kPartsMax);
  EXPECT_EQ(f.info.parts[0].child_count, MimeParser::kPartsMax - 1);
  const MimePart& last = f.info.parts.back();
  EXPECT_EQ(last.body_length, 178u);
  EXPECT_EQ(last.body_lines, 35u);
  EXPECT_EQ(last.end_offset(), m.size());
  EXPECT_EQ(cut(m, section(f.info, {9999}).body).substr(0, 12), "p9998\r\n--x\r\n");
  EXPECT_FALSE(has_section(f.info, {10000}));
}

TEST(MimeLimits, AMessageOverTheSizeLimitIsRefused) {
  static const char kByte = 'x';
  MimeInfo info;
  // The parse refuses before reading a byte.
  std::string_view huge(&kByte, static_cast<size_t>(MimeParser::kMessageBytesMax) + 1);
  EXPECT_EQ(parse_mime(huge, &info).code(), Status::Code::invalid);
}

TEST(MimeLimits, HostileHeadersAreCutNotFatal) {
  // Past kFieldParamsMax parameters a field's others are dropped.
  std::string many = "Content-Type: application/x";
  for (int i = 0; i < 1500; i++) many += "; p" + std::to_string(i) + "=v";
  Fetched a = fetch(crlf(many + "\n\nx"));
  EXPECT_EQ(a.info.parts[0].params.count, MimeParser::kFieldParamsMax);
  // A joined RFC 2231 value keeps kParamBytesMax decoded octets.
  MimeInfo b;
  ASSERT_TRUE(parse_mime("Content-Type: application/x; name*=utf-8''" + std::string(3 << 20, 'A') +
                             "\r\n\r\nx",
                         &b)
                  .is_ok());
  ASSERT_EQ(b.parts[0].params.count, 1u);
  EXPECT_EQ(b.str(b.params[b.parts[0].params.first].value).size(),
            std::string("utf-8''").size() + MimeParser::kParamBytesMax);
  // A display name keeps kWordsMax words.
  std::string words;
  for (int i = 0; i < 1500; i++) words += "w ";
  MimeInfo c;
  ASSERT_TRUE(parse_mime("From: " + words + "<a@b>\r\n\r\n", &c).is_ok());
  EXPECT_EQ(c.str(c.addresses[0].name).size(), MimeParser::kWordsMax * 2 - 1);
  // Past kAddressesMax addresses the others are dropped, and an open group still ends.
  std::string list = "To: g:";
  for (size_t i = 0; i < MimeParser::kAddressesMax + 10; i++) list += "a@b,";
  MimeInfo d;
  ASSERT_TRUE(parse_mime(list + ";\r\n\r\n", &d).is_ok());
  ASSERT_EQ(d.addresses.size(), MimeParser::kAddressesMax);
  EXPECT_TRUE(d.addresses.back().mailbox.is_nil() && d.addresses.back().host.is_nil());
  // All strings of a message together stop at kTextBytesMax.
  MimeInfo e;
  std::string big = "Subject: " + std::string(MimeParser::kTextBytesMax + 10, 'x') + "\r\n\r\nx";
  ASSERT_TRUE(parse_mime(big, &e).is_ok());
  EXPECT_EQ(e.text.size(), MimeParser::kTextBytesMax);
  EXPECT_EQ(e.envelopes[0].subject.length, MimeParser::kTextBytesMax);
}

// ---- robustness

// Damaged copies of corpus messages: whatever the bytes, the tree is well-formed and survives
// the cache.
TEST(MimeParse, DamagedMessagesStillGetAWellFormedTree) {
  const std::vector<std::string> corpus = {
      crlf("Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/alternative;"
           " boundary=b\n\n--b\n\nplain\n--b\nContent-Type: message/rfc822\n\nFrom: x@y\n"
           "Content-Type: multipart/digest; boundary=c\n\n--c\n\nSubject: s\n\nq\n--c--\n--b--\n"
           "--a\nContent-Type: text/plain; name*0*=utf-8''%E2; name*1=x\n\nz\n--a--\n"),
      crlf("From: \"a\" <b@c>, g: d@e, (x) f@g;\nTo: <@r:h@i>\nSubject: =?x?q?y?=\n\nbody\n"),
  };
  const char kInserts[][8] = {"\r\n", "\n", "--a", "--b--", ":", "\"", "(", "<", ";", "\0"};
  MimeParser parser;
  uint64_t rng = 42;
  auto next = [&rng](uint64_t bound) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (rng >> 33) % bound;
  };
  for (int round = 0; round < 3000; round++) {
    std::string m = corpus[next(corpus.size())];
    for (int k = 0, edits = 1 + static_cast<int>(next(4)); k < edits; k++) {
      size_t at = next(m.size() + 1);
      switch (next(3)) {
        case 0: m.erase(at, next(8)); break;
        case 1: m.insert(at, kInserts[next(std::size(kInserts))]); break;
        case 2: m.resize(at); break;
      }
    }
    MimeInfo info;
    ASSERT_TRUE(parser.parse(m, &info).is_ok());
    expect_well_formed(info);
    expect_cache_round_trip(info);
    render_body(info);
    if (testing::Test::HasFailure()) {
      ADD_FAILURE() << "message: " << testing::PrintToString(m);
      return;
    }
  }
}

TEST(MimeParse, AParserReusedForManyMessagesGivesWhatAFreshOneGives) {
  MimeParser parser;
  for (const std::string& m :
       {nested_multiparts(3), crlf("From: a@b\n\nx"),
        crlf("Content-Type: text/plain; a*0=x; a*1=y\n\n"), nested_multiparts(1)}) {
    MimeInfo reused, fresh;
    ASSERT_TRUE(parser.parse(m, &reused).is_ok());
    ASSERT_TRUE(parse_mime(m, &fresh).is_ok());
    EXPECT_EQ(render_bodystructure(reused), render_bodystructure(fresh));
    EXPECT_EQ(render_envelope(reused), render_envelope(fresh));
  }
}

// ---- cache record

std::string record_of(std::string_view message, MimeInfo* info) {
  EXPECT_TRUE(parse_mime(message, info).is_ok());
  std::string record;
  encode_mime_cache(*info, &record);
  return record;
}

// Recomputes the checksum, so a test can hand the decoder a record that is wrong inside.
void reseal(std::string* record) {
  record->resize(record->size() - 8);
  uint64_t sum = XXH3_64bits(record->data(), record->size());
  for (int i = 0; i < 8; i++) record->push_back(static_cast<char>(sum >> (8 * i)));
}

TEST(MimeCache, LayoutOfASmallRecord) {
  // storage/FORMAT.md, "MIME cache record".
  const std::string m = "Subject: s\r\n\r\nx";
  MimeInfo info;
  std::string record = record_of(m, &info);
  const std::string expected_body = std::string(
      "RMIM\x01"                  // magic, version
      "\x0f\x01"                  // message size 15, one part
      "\x00\x04s"                 // date NIL, subject "s"
      "\x00\x00\x00\x00\x00\x00"  // from ... bcc: empty lists
      "\x00\x00"                  // in-reply-to, message-id NIL
      "\x01"                      // kind text
      "\x00\x0e\x01\x00"          // header at 0, 14 octets; body 1 octet, 0 lines
      "\x03\x05"                  // "text" "plain" (dictionary 1, 2)
      "\x01\x09\x0b"              // one parameter: "charset" "us-ascii" (dictionary 4, 5)
      "\x00\x00\x13\x00"          // id, description NIL; "7bit" (dictionary 9); md5 NIL
      "\x00\x00\x00",             // disposition NIL, no language, location NIL
      35);
  ASSERT_EQ(record.size(), expected_body.size() + 8);
  EXPECT_EQ(record.substr(0, expected_body.size()), expected_body);
  uint64_t sum = XXH3_64bits(expected_body.data(), expected_body.size());
  for (int i = 0; i < 8; i++)
    EXPECT_EQ(static_cast<uint8_t>(record[expected_body.size() + i]),
              static_cast<uint8_t>(sum >> (8 * i)));
}

TEST(MimeCache, EveryFlippedBitIsRejected) {
  MimeInfo info;
  const std::string m = nested_multiparts(2);
  const std::string record = record_of(m, &info);
  MimeInfo out;
  for (size_t i = 0; i < record.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = record;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      EXPECT_EQ(decode_mime_cache(bad, info.message_bytes, &out).code(), Status::Code::corrupt)
          << "byte " << i << " bit " << bit;
    }
  }
}

TEST(MimeCache, EveryTruncationIsRejected) {
  MimeInfo info;
  const std::string record = record_of(nested_multiparts(2), &info);
  MimeInfo out;
  for (size_t n = 0; n < record.size(); n++) {
    EXPECT_EQ(decode_mime_cache(record.substr(0, n), info.message_bytes, &out).code(),
              Status::Code::corrupt)
        << n;
    std::string resealed = record.substr(0, n) + std::string(8, '\0');
    if (n >= 5 && n < record.size() - 8) {  // a cut inside the record, with a checksum that fits
      reseal(&resealed);
      EXPECT_EQ(decode_mime_cache(resealed, info.message_bytes, &out).code(), Status::Code::corrupt)
          << n;
    }
  }
  ASSERT_TRUE(decode_mime_cache(record, info.message_bytes, &out).is_ok());
}

TEST(MimeCache, ARecordForAnotherMessageSizeIsRejected) {
  MimeInfo info;
  const std::string record = record_of(crlf("From: a@b\n\nx"), &info);
  MimeInfo out;
  EXPECT_EQ(decode_mime_cache(record, info.message_bytes + 1, &out).code(), Status::Code::corrupt);
  EXPECT_EQ(decode_mime_cache(record, info.message_bytes - 1, &out).code(), Status::Code::corrupt);
}

// Records with a correct checksum but wrong contents, as a bug or a hand edit could make them.
TEST(MimeCache, ACorrectChecksumDoesNotMakeARecordTrusted) {
  const std::string m =
      crlf("Content-Type: multipart/mixed; boundary=m\n\n--m\n\none\n--m\n\ntwo\n--m--\n");
  auto decode_after = [&](auto&& change) {
    MimeInfo info;
    EXPECT_TRUE(parse_mime(m, &info).is_ok());
    change(&info);
    std::string record;
    encode_mime_cache(info, &record);
    MimeInfo out;
    Status s = decode_mime_cache(record, static_cast<uint32_t>(m.size()), &out);
    EXPECT_EQ(s.code(), Status::Code::corrupt);
    return s.message();
  };
  EXPECT_NE(decode_after([](MimeInfo* i) { i->parts[2].body_length = 1000; }).find("past the end"),
            std::string::npos);
  EXPECT_NE(
      decode_after([](MimeInfo* i) { i->parts[2].header_offset = 40; }).find("outside its parent"),
      std::string::npos);
  EXPECT_NE(
      decode_after([](MimeInfo* i) { i->parts[1].header_offset += 10; }).find("outside its parent"),
      std::string::npos);
  EXPECT_NE(decode_after([](MimeInfo* i) { i->parts[0].body_length -= 1; }).find("root"),
            std::string::npos);
  EXPECT_NE(decode_after([](MimeInfo* i) { i->parts[1].kind = MimeKind::basic; }).find("kind"),
            std::string::npos);
  EXPECT_NE(decode_after([](MimeInfo* i) { i->parts[0].child_count = 3; }).find("tree ends early"),
            std::string::npos);
  EXPECT_NE(decode_after([](MimeInfo* i) { i->parts[0].child_count = 1; }).find("outside the tree"),
            std::string::npos);
  EXPECT_NE(decode_after([](MimeInfo* i) { i->parts[1].body_lines = 100; }).find("lines"),
            std::string::npos);
  EXPECT_NE(decode_after([](MimeInfo* i) { i->parts[1].encoding = MimeString{}; }).find("NIL"),
            std::string::npos);
  EXPECT_NE(decode_after([](MimeInfo* i) {
              i->text += std::string("a\0b", 3);
              i->parts[1].description = MimeString{static_cast<uint32_t>(i->text.size() - 3), 3};
            }).find("NUL"),
            std::string::npos);

  MimeInfo info;
  std::string record = record_of(m, &info);
  MimeInfo out;
  std::string versioned = record;
  versioned[4] = 2;
  reseal(&versioned);
  EXPECT_NE(decode_mime_cache(versioned, info.message_bytes, &out).message().find("version 2"),
            std::string::npos);
  std::string longer = record.substr(0, record.size() - 8) + "x" + std::string(8, '\0');
  reseal(&longer);
  EXPECT_NE(decode_mime_cache(longer, info.message_bytes, &out).message().find("trailing"),
            std::string::npos);
}

TEST(MimeCache, NestingPastTheLimitIsRejected) {
  // A hand-made chain of 101 multiparts, each the only part of the one before.
  MimeInfo info;
  ASSERT_TRUE(parse_mime(nested_multiparts(99), &info).is_ok());
  MimePart leaf = info.parts.back();
  MimePart extra = info.parts[98];  // a multipart
  extra.header_offset = leaf.header_offset;
  extra.header_length = 0;
  extra.body_length = leaf.end_offset() - leaf.header_offset;
  info.parts.insert(info.parts.end() - 1, extra);
  for (size_t i = 0; i + 1 < info.parts.size(); i++)
    info.parts[i].subtree_parts = info.parts.size() - i;
  std::string record;
  encode_mime_cache(info, &record);
  MimeInfo out;
  Status s = decode_mime_cache(record, info.message_bytes, &out);
  EXPECT_EQ(s.code(), Status::Code::corrupt);
  EXPECT_NE(s.message().find("too deep"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace ringmail
