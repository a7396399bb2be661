// IMAP SEARCH as a specification: each test shows messages, the criteria as a client sends them
// after "SEARCH ", and the sequence numbers that match (or the BAD / NO the command gets).
#include "protocol/imap_search.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace ringmail {
namespace {

// Messages are written with LF line ends for readability; they are stored with CRLF.
std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

constexpr int64_t k2024Jul01 = 1719792000;  // 2024-07-01T00:00:00Z
constexpr int64_t kDaySeconds = 86400;

struct StoredMessage {
  MessageRecord rec;
  std::string bytes;
  MimeInfo mime;
};

class SearchTest : public ::testing::Test {
 protected:
  // Adds a message; its UID is ten times its sequence number.
  StoredMessage& add(std::string_view lf_message) {
    StoredMessage& m = messages_.emplace_back();
    m.bytes = crlf(lf_message);
    EXPECT_TRUE(parse_mime(m.bytes, &m.mime).is_ok());
    m.rec.uid = static_cast<uint32_t>(messages_.size() * 10);
    m.rec.size = static_cast<uint32_t>(m.bytes.size());
    m.rec.modseq = messages_.size();
    m.rec.internal_date = k2024Jul01 + 12 * 3600;
    return m;
  }
  StoredMessage& add(std::string_view headers, std::string_view body) {
    return add(std::string(headers) + "\n" + std::string(body));
  }

  // The matching sequence numbers, space-separated; "BAD <text>", "NO BADCHARSET" or
  // "NO storage" when the command fails.
  std::string search(std::string_view criteria) {
    std::string line = std::string(criteria) + "\r\n";
    CommandReader r(line);
    std::string error;
    SearchParse parsed = parse_search(r, &command_, &error);
    if (parsed == SearchParse::bad) return "BAD " + error;
    if (parsed == SearchParse::bad_charset) return "NO BADCHARSET";
    EXPECT_TRUE(error.empty());
    SearchMailbox box;
    box.messages = static_cast<uint32_t>(messages_.size());
    box.uid_max = messages_.empty() ? 0 : messages_.back().rec.uid;
    box.keywords = &keywords_;
    box.saved_uids = &saved_uids_;
    box.tz_offset_minutes = tz_offset_minutes_;
    std::string out;
    for (size_t i = 0; i < messages_.size(); i++) {
      StoredMessage& m = messages_[i];
      SearchMessage msg;
      msg.seq = static_cast<uint32_t>(i + 1);
      msg.rec = &m.rec;
      msg.bytes = [this, &m](std::string_view* b) {
        bytes_calls_++;
        *b = m.bytes;
        return !fail_storage_;
      };
      msg.mime = [this, &m](const MimeInfo** info) {
        mime_calls_++;
        *info = &m.mime;
        return !fail_storage_;
      };
      bool matched = false;
      if (!search_matches(command_, box, msg, &matched)) return "NO storage";
      if (!matched) continue;
      if (!out.empty()) out += ' ';
      out += std::to_string(i + 1);
    }
    return out;
  }

  std::deque<StoredMessage> messages_;
  std::vector<std::string> keywords_;
  std::vector<uint32_t> saved_uids_;
  int tz_offset_minutes_ = 0;
  bool fail_storage_ = false;
  int bytes_calls_ = 0;
  int mime_calls_ = 0;
  SearchCommand command_;
};

// ---- Flags, keywords, sizes

TEST_F(SearchTest, SystemFlagsAndTheirNegations) {
  add("Subject: a\n", "x\n").rec.flags = kFlagSeen | kFlagAnswered;
  add("Subject: b\n", "x\n").rec.flags = kFlagFlagged | kFlagDeleted;
  add("Subject: c\n", "x\n").rec.flags = kFlagDraft;
  EXPECT_EQ(search("ALL"), "1 2 3");
  EXPECT_EQ(search("SEEN"), "1");
  EXPECT_EQ(search("UNSEEN"), "2 3");
  EXPECT_EQ(search("ANSWERED"), "1");
  EXPECT_EQ(search("UNANSWERED"), "2 3");
  EXPECT_EQ(search("FLAGGED"), "2");
  EXPECT_EQ(search("UNFLAGGED"), "1 3");
  EXPECT_EQ(search("DELETED"), "2");
  EXPECT_EQ(search("UNDELETED"), "1 3");
  EXPECT_EQ(search("DRAFT"), "3");
  EXPECT_EQ(search("UNDRAFT"), "1 2");
}

TEST_F(SearchTest, NothingIsRecentSoRecentAndNewMatchNothingAndOldMatchesAll) {
  add("Subject: a\n", "x\n");
  add("Subject: b\n", "x\n").rec.flags = kFlagSeen;
  EXPECT_EQ(search("RECENT"), "");
  EXPECT_EQ(search("NEW"), "");
  EXPECT_EQ(search("OLD"), "1 2");
  EXPECT_EQ(search("NOT RECENT"), "1 2");
}

TEST_F(SearchTest, KeywordsByNameCaseInsensitiveUnknownMatchesNothing) {
  keywords_ = {"$Forwarded", "Work"};
  add("Subject: a\n", "x\n").rec.keywords = 1;  // $Forwarded
  add("Subject: b\n", "x\n").rec.keywords = 2;  // Work
  add("Subject: c\n", "x\n");
  EXPECT_EQ(search("KEYWORD $Forwarded"), "1");
  EXPECT_EQ(search("KEYWORD work"), "2");
  EXPECT_EQ(search("UNKEYWORD Work"), "1 3");
  EXPECT_EQ(search("KEYWORD Unknown"), "");
  EXPECT_EQ(search("UNKEYWORD Unknown"), "1 2 3");
}

TEST_F(SearchTest, LargerAndSmallerCompareTheSizeStrictly) {
  add("Subject: a\n", "x\n").rec.size = 100;
  add("Subject: b\n", "x\n").rec.size = 200;
  EXPECT_EQ(search("LARGER 100"), "2");
  EXPECT_EQ(search("LARGER 99"), "1 2");
  EXPECT_EQ(search("SMALLER 200"), "1");
  EXPECT_EQ(search("SMALLER 201"), "1 2");
  EXPECT_EQ(search("LARGER 99999999999"), "");
  EXPECT_EQ(search("SMALLER 99999999999"), "1 2");
}

// ---- Dates

TEST_F(SearchTest, InternalDateKeysCompareTheUtcDayIgnoringTheTime) {
  add("Subject: a\n", "x\n").rec.internal_date = k2024Jul01;                    // 00:00:00
  add("Subject: b\n", "x\n").rec.internal_date = k2024Jul01 + kDaySeconds - 1;  // 23:59:59
  add("Subject: c\n", "x\n").rec.internal_date = k2024Jul01 + kDaySeconds;      // 2 Jul
  EXPECT_EQ(search("ON 1-Jul-2024"), "1 2");
  EXPECT_EQ(search("BEFORE 1-Jul-2024"), "");
  EXPECT_EQ(search("BEFORE 2-Jul-2024"), "1 2");
  EXPECT_EQ(search("SINCE 2-Jul-2024"), "3");
  EXPECT_EQ(search("SINCE 01-jul-2024"), "1 2 3");
  EXPECT_EQ(search("ON \"2-JUL-2024\""), "3");
}

TEST_F(SearchTest, InternalDateKeysUseTheConfiguredTimeZone) {
  add("Subject: a\n", "x\n").rec.internal_date = k2024Jul01 + kDaySeconds - 3600;  // 23:00Z
  tz_offset_minutes_ = 120;
  EXPECT_EQ(search("ON 2-Jul-2024"), "1");
  tz_offset_minutes_ = 0;
  EXPECT_EQ(search("ON 1-Jul-2024"), "1");
}

TEST_F(SearchTest, InternalDatesBeforeTheEpochAndLeapDays) {
  add("Subject: a\n", "x\n").rec.internal_date = -43200;     // 1969-12-31T12:00Z
  add("Subject: b\n", "x\n").rec.internal_date = 951825600;  // 2000-02-29T12:00Z
  EXPECT_EQ(search("ON 31-Dec-1969"), "1");
  EXPECT_EQ(search("ON 29-Feb-2000"), "2");
  EXPECT_EQ(search("BEFORE 1-Jan-1970"), "1");
}

TEST_F(SearchTest, SentKeysUseTheDayOfTheDateFieldInItsOwnZone) {
  add("Date: Mon, 1 Jul 2024 23:30:00 -0700\n", "x\n");   // 2 Jul in UTC
  add("Date: Tue, 02 Jul 2024 00:10:00 +1400\n", "x\n");  // 1 Jul in UTC
  add("Date: 3 Jul 24 10:00 PDT\n", "x\n");               // obsolete: two-digit year, no weekday
  add("Date: (Wednesday) Wed,3 Jul 2024 10:00:00 +0000 (UTC)\n", "x\n");
  add("Date: yesterday\n", "x\n");
  add("Subject: no date at all\n", "x\n");
  EXPECT_EQ(search("SENTON 1-Jul-2024"), "1");
  EXPECT_EQ(search("SENTON 2-Jul-2024"), "2");
  EXPECT_EQ(search("SENTON 3-Jul-2024"), "3 4");
  EXPECT_EQ(search("SENTBEFORE 2-Jul-2024"), "1");
  EXPECT_EQ(search("SENTSINCE 2-Jul-2024"), "2 3 4");
  // A message without a Date: that parses matches no SENT* key.
  EXPECT_EQ(search("NOT SENTSINCE 1-Jan-1900"), "5 6");
}

TEST_F(SearchTest, DatesThatAreNotDatesAreBad) {
  add("Subject: a\n", "x\n");
  EXPECT_EQ(search("ON 32-Jan-2024"), "BAD bad date");
  EXPECT_EQ(search("ON 29-Feb-2023"), "BAD bad date");
  EXPECT_EQ(search("ON 1-Foo-2024"), "BAD bad date");
  EXPECT_EQ(search("ON 1-Jan-24"), "BAD bad date");
  EXPECT_EQ(search("ON 2024-01-01"), "BAD bad date");
  EXPECT_EQ(search("SINCE"), "BAD missing date");
}

// ---- Header keys

TEST_F(SearchTest, AddressAndSubjectKeysAreSubstringsOfThatField) {
  add("From: Alice Example <alice@example.com>\nTo: bob@example.org\nCc: carol@example.net\n"
      "Bcc: dave@example.com\nSubject: Quarterly report\n",
      "body\n");
  add("From: bob@example.org\nTo: alice@example.com\nSubject: Re: lunch\n", "body\n");
  EXPECT_EQ(search("FROM alice"), "1");
  EXPECT_EQ(search("FROM \"Alice Example\""), "1");
  EXPECT_EQ(search("TO alice"), "2");
  EXPECT_EQ(search("CC carol"), "1");
  EXPECT_EQ(search("BCC dave"), "1");
  EXPECT_EQ(search("SUBJECT REPORT"), "1");
  EXPECT_EQ(search("subject lunch"), "2");
  EXPECT_EQ(search("FROM example"), "1 2");
  EXPECT_EQ(search("SUBJECT report FROM bob"), "");
}

TEST_F(SearchTest, HeaderWithAnEmptyStringMatchesMessagesThatHaveTheField) {
  add("Subject: a\nX-Spam: yes\n", "x\n");
  add("Subject: b\nx-spam:\n", "x\n");
  add("Subject: c\n", "x\n");
  EXPECT_EQ(search("HEADER X-Spam \"\""), "1 2");
  EXPECT_EQ(search("HEADER x-spam yes"), "1");
  EXPECT_EQ(search("SUBJECT \"\""), "1 2 3");
  EXPECT_EQ(search("CC \"\""), "");
}

TEST_F(SearchTest, HeaderSearchesEveryFieldOfThatNameUnfolded) {
  add("Received: from a.example\nReceived: from b.example\n  by mx.example\nSubject: x\n", "x\n");
  EXPECT_EQ(search("HEADER Received b.example"), "1");
  EXPECT_EQ(search("HEADER RECEIVED \"b.example  by mx\""), "1");
  EXPECT_EQ(search("HEADER Received \"from a.example by\""), "");
}

TEST_F(SearchTest, HeaderKeysDoNotReadTheBody) {
  add("Subject: hello\n", "Subject: world\n");
  EXPECT_EQ(search("SUBJECT world"), "");
  EXPECT_EQ(search("HEADER Subject hello"), "1");
}

TEST_F(SearchTest, EncodedWordsAreDecodedInHeaders) {
  add("Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=\n", "x\n");
  add("From: =?utf-8?B?0J/RgNC40LLQtdGCINC80LjRgA==?= <ivan@example.ru>\n", "x\n");
  add("Subject: =?UTF-8?Q?=C3?= =?UTF-8?Q?=A4pfel?=\n", "x\n");  // one character in two words
  add("Subject: =?UTF-8?Q?a?=  =?UTF-8?Q?b?= c =?bogus word?=\n", "x\n");
  add("Subject: =?koi8-r?B?0NLJ18XU?=\n", "x\n");
  EXPECT_EQ(search("SUBJECT \"grüße aus köln\""), "1");
  EXPECT_EQ(search("FROM \"привет мир\""), "2");
  EXPECT_EQ(search("FROM \"ПРИВЕТ\""), "2");
  EXPECT_EQ(search("SUBJECT \"äpfel\""), "3");
  EXPECT_EQ(search("SUBJECT \"ab c =?bogus word?=\""), "4");  // space between words dropped
  EXPECT_EQ(search("SUBJECT \"привет\""), "5");
  EXPECT_EQ(search("SUBJECT gr=C3"), "");
}

TEST_F(SearchTest, FoldedEncodedWordsJoin) {
  add("Subject: =?UTF-8?Q?Sch=C3=B6ne?=\n =?UTF-8?Q?_Gr=C3=BC=C3=9Fe?=\n", "x\n");
  EXPECT_EQ(search("SUBJECT \"schöne grüße\""), "1");
}

// ---- Body and text

TEST_F(SearchTest, BodyMatchesTheBodyNotTheHeader) {
  add("Subject: apples\n", "I like pears.\n");
  add("Subject: pears\n", "I like apples.\n");
  EXPECT_EQ(search("BODY pears"), "1");
  EXPECT_EQ(search("BODY \"LIKE APPLES\""), "2");
  EXPECT_EQ(search("TEXT pears"), "1 2");
  EXPECT_EQ(search("TEXT subject"), "1 2");  // field names are header text
}

TEST_F(SearchTest, QuotedPrintableBodiesAreDecodedSoftBreaksIncluded) {
  add("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
      "hel=\nlo w=C3=B6rld, =C3=84PFEL=20 \nsoft=  \nbreak =3D equal\n");
  EXPECT_EQ(search("BODY hello"), "1");
  EXPECT_EQ(search("BODY \"wörld\""), "1");
  EXPECT_EQ(search("BODY \"äpfel\""), "1");
  EXPECT_EQ(search("BODY softbreak"), "1");
  EXPECT_EQ(search("BODY \"= equal\""), "1");
  EXPECT_EQ(search("BODY =C3"), "");
}

TEST_F(SearchTest, Base64BodiesAreDecoded) {
  add("Content-Type: text/plain; charset=\"UTF-8\"\nContent-Transfer-Encoding: BASE64\n",
      "R3LDvMOfZSBhdXMgS8O2bG4sIMOEUEZFTA==\n");
  EXPECT_EQ(search("BODY \"grüße aus köln\""), "1");
  EXPECT_EQ(search("BODY \"äpfel\""), "1");
  EXPECT_EQ(search("BODY R3LDvMOf"), "");
}

TEST_F(SearchTest, BodiesInOtherCharsetsAreConvertedToUtf8) {
  add("Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n",
      "\xC4pfel und Birnen, 10 \x80\n");  // ISO-8859-1 read as Windows-1252: 0x80 is the euro
  add("Content-Type: text/plain; charset=koi8-r\n", "\xF0\xD2\xC9\xD7\xC5\xD4\n");
  add("Content-Type: text/plain; charset=x-no-such-charset\n", "plain ascii\n");
  add("Content-Type: text/plain; charset=utf-8\n", "bad \xC4 octet\n");
  EXPECT_EQ(search("BODY \"äpfel\""), "1");
  EXPECT_EQ(search("BODY \"10 €\""), "1");
  EXPECT_EQ(search("BODY \"привет\""), "2");
  EXPECT_EQ(search("BODY \"ASCII\""), "3");  // unknown charset: the raw bytes
  EXPECT_EQ(search("BODY \"bad \xC4 octet\""), "4");
}

TEST_F(SearchTest, IconvCharsetsStatefulOnesAndBrokenBytes) {
  add("Content-Type: text/plain; charset=ISO-2022-JP\n", "\x1b$BF|K\\8l$N%F%-%9%H\x1b(B end\n");
  // EUC-JP with an invalid pair in the middle: the octet is kept and the rest still converts.
  add("Content-Type: text/plain; charset=euc-jp\n",
      "\xc6\xfc\xcb\xdc\xa4"
      "abc\xb8\xec\n");
  add("Subject: =?ISO-2022-JP?B?GyRCRnxLXDhsJE4lRiUtJTklSBsoQg==?=\n", "x\n");
  EXPECT_EQ(search("BODY \"日本語のテキスト end\""), "1");
  EXPECT_EQ(search("BODY \"日本\""), "1 2");
  EXPECT_EQ(search("BODY \"abc語\""), "2");
  EXPECT_EQ(search("SUBJECT \"テキスト\""), "3");
}

TEST_F(SearchTest, EncodedWordCharsetsMayCarryALanguage) {
  add("Subject: =?UTF-8*en?Q?hello_w=C3=B6rld?=\n", "x\n");
  EXPECT_EQ(search("SUBJECT \"hello wörld\""), "1");
}

TEST_F(SearchTest, AMessageWithoutABody) {
  add("Subject: only a header\nFrom: a@example.com");
  EXPECT_EQ(search("FROM a@example.com"), "1");
  EXPECT_EQ(search("TEXT header"), "1");
  EXPECT_EQ(search("BODY header"), "");
}

TEST_F(SearchTest, CaseFoldingCoversLatinGreekAndCyrillic) {
  add("Subject: x\n", "Äpfel ÉCOLE Łódź ΣΟΦΊΑ ПРИВЕТ Ǆemal ẞtraße ＡＢＣ\n");
  EXPECT_EQ(search("BODY \"äpfel école łódź\""), "1");
  EXPECT_EQ(search("BODY \"ÄPFEL\""), "1");
  EXPECT_EQ(search("BODY \"σοφία\""), "1");
  EXPECT_EQ(search("BODY \"привет\""), "1");
  EXPECT_EQ(search("BODY \"ǆemal\""), "1");
  EXPECT_EQ(search("BODY \"ßtrasse\""), "");  // simple folding: ß is not ss
  EXPECT_EQ(search("BODY \"ßtraße\""), "1");
  EXPECT_EQ(search("BODY \"ａｂｃ\""), "1");
  EXPECT_EQ(search("BODY apfel"), "");  // no accent stripping
}

TEST_F(SearchTest, HtmlIsReadAsTheTextItShows) {
  add("Subject: html\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n",
      "<html><head><style>p { color: red }</style><script>var secret = 1;</script></head>"
      "<body><p>Fish &amp; chips</p><p>caf&#233; &#x263A;&nbsp;x</p><!-- hidden note -->"
      "<b>wor</b>d, a &lt; b &unknown; 3 < 4<br>next line</body></html>\n");
  EXPECT_EQ(search("BODY \"fish & chips\""), "1");
  EXPECT_EQ(search("BODY \"CAFÉ ☺ x\""), "1");
  EXPECT_EQ(search("BODY word"), "1");  // inline tags vanish
  EXPECT_EQ(search("BODY \"a < b &unknown; 3 < 4\""), "1");
  EXPECT_EQ(search("BODY \"next line\""), "1");
  EXPECT_EQ(search("BODY \"4 next\""), "");  // <br> ends a line: a line feed, not a space
  EXPECT_EQ(search("BODY color"), "");
  EXPECT_EQ(search("BODY secret"), "");
  EXPECT_EQ(search("BODY hidden"), "");
  EXPECT_EQ(search("BODY <p>"), "");
  EXPECT_EQ(search("BODY amp"), "");
  EXPECT_EQ(search("TEXT secret"), "");
}

TEST_F(SearchTest, BodyReadsTextPartsAndAttachedMessagesOnly) {
  add("Subject: multi\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n",
      R"(preamble words
--b
Content-Type: text/html; charset=utf-8

<p>Hello <b>HTML</b></p>
--b
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

dGhpcyBpcyBzZWNyZXQgYXR0YWNobWVudCB0ZXh0
--b
Content-Type: application/pdf

pdf words
--b
Content-Type: message/rfc822

From: inner@example.com
Subject: =?UTF-8?Q?Inner_s=C3=BCbject?=

inner body text
--b--
epilogue words
)");
  EXPECT_EQ(search("BODY \"hello html\""), "1");  // HTML is read as the text it shows
  EXPECT_EQ(search("BODY \"<b>\""), "");
  EXPECT_EQ(search("BODY \"inner body\""), "1");
  EXPECT_EQ(search("BODY \"inner sübject\""), "1");  // an attached message's header is body
  EXPECT_EQ(search("BODY secret"), "");
  EXPECT_EQ(search("BODY \"pdf words\""), "");
  EXPECT_EQ(search("BODY preamble"), "");
  EXPECT_EQ(search("BODY epilogue"), "");
  EXPECT_EQ(search("BODY octet-stream"), "");   // MIME headers are not body text...
  EXPECT_EQ(search("TEXT octet-stream"), "1");  // ...but TEXT reads them
  EXPECT_EQ(search("SUBJECT inner"), "");       // header keys read the message's own header
  EXPECT_EQ(search("BODY \"</p>from\""), "");   // no match across parts
}

TEST_F(SearchTest, EmptyBodyAndTextStringsMatchEverythingWithoutReading) {
  add("Subject: a\n", "x\n");
  EXPECT_EQ(search("BODY \"\""), "1");
  EXPECT_FALSE(search_needs_content(command_));
  EXPECT_EQ(search("TEXT \"\""), "1");
  EXPECT_EQ(bytes_calls_, 0);
}

TEST_F(SearchTest, StringsMayBeLiteralsOrQuotedWithEscapes) {
  add("Subject: say \"hi\" \\ bye\n", "x\n");
  EXPECT_EQ(search("SUBJECT \"say \\\"HI\\\" \\\\\""), "1");
  EXPECT_EQ(search("SUBJECT {6}\r\nsay \"h"), "1");
  EXPECT_EQ(search("SUBJECT {3}\r\nbye ALL"), "1");
}

// ---- Sets

TEST_F(SearchTest, SequenceSetsWithStarAndNumbersBeyondTheEnd) {
  for (int i = 0; i < 4; i++) add("Subject: m\n", "x\n");
  EXPECT_EQ(search("1:2"), "1 2");
  EXPECT_EQ(search("*"), "4");
  EXPECT_EQ(search("3:*"), "3 4");
  EXPECT_EQ(search("2,4"), "2 4");
  EXPECT_EQ(search("7"), "");
  EXPECT_EQ(search("9:*"), "4");  // 9:* is 4:9
  EXPECT_EQ(search("3:100"), "3 4");
  EXPECT_EQ(search("NOT 2:3"), "1 4");
}

TEST_F(SearchTest, UidSetsWithStar) {
  for (int i = 0; i < 4; i++) add("Subject: m\n", "x\n");  // UIDs 10 20 30 40
  EXPECT_EQ(search("UID 20:30"), "2 3");
  EXPECT_EQ(search("UID 2:3"), "");
  EXPECT_EQ(search("UID *"), "4");
  EXPECT_EQ(search("UID 35:*"), "4");
  EXPECT_EQ(search("UID 1:15,40"), "1 4");
  EXPECT_EQ(search("uid 100:*"), "4");
}

TEST_F(SearchTest, DollarIsTheSavedResultByUid) {
  for (int i = 0; i < 4; i++) add("Subject: m\n", "x\n");
  EXPECT_EQ(search("$"), "");
  saved_uids_ = {20, 40, 50};
  EXPECT_EQ(search("$"), "2 4");
  EXPECT_EQ(search("UID $"), "2 4");
  EXPECT_EQ(search("NOT $"), "1 3");
  EXPECT_EQ(search("$,1"), "BAD bad sequence set");
}

// ---- MODSEQ

TEST_F(SearchTest, ModseqMatchesMessagesChangedAtOrAfterIt) {
  add("Subject: a\n", "x\n").rec.modseq = 5;
  add("Subject: b\n", "x\n").rec.modseq = 9;
  EXPECT_EQ(search("MODSEQ 9"), "2");
  EXPECT_TRUE(command_.uses_modseq);
  EXPECT_EQ(search("MODSEQ 0"), "1 2");
  EXPECT_EQ(search("MODSEQ \"/flags/\\\\draft\" all 6"), "2");
  EXPECT_EQ(search("modseq \"/flags/$Work\" PRIV 5"), "1 2");
  EXPECT_EQ(search("OR SEEN (MODSEQ 6)"), "2");
  EXPECT_TRUE(command_.uses_modseq);
  EXPECT_EQ(search("SEEN"), "");
  EXPECT_FALSE(command_.uses_modseq);
  EXPECT_EQ(search("MODSEQ \"/other/x\" all 6"), "BAD bad MODSEQ entry name");
  EXPECT_EQ(search("MODSEQ \"/flags/x\" mine 6"), "BAD bad MODSEQ entry type");
  EXPECT_EQ(search("MODSEQ"), "BAD missing MODSEQ value");
  EXPECT_EQ(search("MODSEQ 9223372036854775808"), "BAD bad MODSEQ value");
}

// ---- Combinations

TEST_F(SearchTest, KeysAreAndedOrAndNotCombine) {
  add("Subject: a\n", "x\n").rec.flags = kFlagSeen;
  add("Subject: b\n", "x\n").rec.flags = kFlagFlagged;
  add("Subject: c\n", "x\n").rec.flags = kFlagSeen | kFlagFlagged;
  add("Subject: d\n", "x\n");
  EXPECT_EQ(search("SEEN FLAGGED"), "3");
  EXPECT_EQ(search("OR SEEN FLAGGED"), "1 2 3");
  EXPECT_EQ(search("NOT SEEN"), "2 4");
  EXPECT_EQ(search("NOT NOT SEEN"), "1 3");
  EXPECT_EQ(search("OR (SEEN NOT FLAGGED) (FLAGGED NOT SEEN)"), "1 2");
  EXPECT_EQ(search("OR OR SUBJECT a SUBJECT b SUBJECT d"), "1 2 4");
  EXPECT_EQ(search("NOT (OR SEEN FLAGGED)"), "4");
  EXPECT_EQ(search("((((SEEN))))"), "1 3");
  EXPECT_EQ(search("(SEEN) (FLAGGED)"), "3");
  EXPECT_EQ(search("OR OR 1 UID 40 SUBJECT \"c\""), "1 3 4");
}

TEST_F(SearchTest, NestingUpToTheLimitIsFine) {
  add("Subject: a\n", "x\n");
  std::string nested =
      std::string(kSearchDepthMax - 1, '(') + "ALL" + std::string(kSearchDepthMax - 1, ')');
  EXPECT_EQ(search(nested), "1");
  EXPECT_EQ(search("(" + nested + ")"), "BAD search keys too deeply nested");
}

TEST_F(SearchTest, DeepNestingIsBadNotACrash) {
  add("Subject: a\n", "x\n");
  EXPECT_EQ(search(std::string(10000, '(') + "ALL" + std::string(10000, ')')),
            "BAD search keys too deeply nested");
  std::string nots;
  for (int i = 0; i < 10000; i++) nots += "NOT ";
  EXPECT_EQ(search(nots + "ALL"), "BAD search keys too deeply nested");
  std::string ors;
  for (int i = 0; i < 10000; i++) ors += "OR ALL ";
  EXPECT_EQ(search(ors + "ALL"), "BAD search keys too deeply nested");
}

TEST_F(SearchTest, AtMostAThousandKeys) {
  add("Subject: a\n", "x\n");
  std::string keys = "ALL";
  for (uint32_t i = 1; i < kSearchKeysMax; i++) keys += " SEEN";
  EXPECT_EQ(search(keys), "");
  EXPECT_EQ(search(keys + " ALL"), "BAD too many search keys");
  EXPECT_EQ(search("(" + keys + ")"), "BAD too many search keys");  // the list is a key too
}

// ---- Syntax

TEST_F(SearchTest, BadSyntaxIsBad) {
  add("Subject: a\n", "x\n");
  EXPECT_EQ(search(""), "BAD search key expected");
  EXPECT_EQ(search("(ALL"), "BAD unbalanced parentheses");
  EXPECT_EQ(search("ALL)"), "BAD unbalanced parentheses");
  EXPECT_EQ(search("()"), "BAD search key expected");
  EXPECT_EQ(search("FOO"), "BAD unknown search key");
  EXPECT_EQ(search("ALLX"), "BAD unknown search key");
  EXPECT_EQ(search("ALL "), "BAD search key expected");
  EXPECT_EQ(search("ALL  SEEN"), "BAD search key expected");
  EXPECT_EQ(search("SUBJECT"), "BAD missing search string");
  EXPECT_EQ(search("SUBJECT \"open"), "BAD missing search string");
  EXPECT_EQ(search("HEADER Subject"), "BAD missing search string");
  EXPECT_EQ(search("HEADER"), "BAD missing header field name");
  EXPECT_EQ(search("OR SEEN"), "BAD OR needs two search keys");
  EXPECT_EQ(search("NOT"), "BAD NOT needs a search key");
  EXPECT_EQ(search("LARGER x"), "BAD missing number");
  EXPECT_EQ(search("KEYWORD \\Seen"), "BAD missing keyword");
  EXPECT_EQ(search("UID"), "BAD missing UID set");
  EXPECT_EQ(search("UID x"), "BAD bad sequence set");
  EXPECT_EQ(search("0"), "BAD bad sequence set");
  EXPECT_EQ(search("1:"), "BAD bad sequence set");
}

TEST_F(SearchTest, CharsetUtf8AndUsAsciiAreAcceptedOthersAreBadcharset) {
  add("Subject: Äpfel\n", "x\n");
  EXPECT_EQ(search("CHARSET UTF-8 SUBJECT \"äpfel\""), "1");
  EXPECT_EQ(search("charset \"us-ascii\" SUBJECT pfel"), "1");
  EXPECT_EQ(search("SUBJECT äpfel"), "BAD missing search string");  // 8-bit is no atom
  EXPECT_EQ(search("CHARSET ISO-8859-1 SUBJECT x"), "NO BADCHARSET");
  EXPECT_EQ(search("CHARSET"), "BAD CHARSET needs a charset name");
  EXPECT_EQ(search("CHARSET UTF-8"), "BAD CHARSET needs a charset name");
}

TEST_F(SearchTest, ReturnOptions) {
  add("Subject: a\n", "x\n");
  EXPECT_EQ(search("SEEN"), "");
  EXPECT_FALSE(command_.esearch);
  EXPECT_EQ(search("RETURN (MIN max COUNT) ALL"), "1");
  EXPECT_TRUE(command_.esearch);
  EXPECT_EQ(command_.returns, kReturnMin | kReturnMax | kReturnCount);
  EXPECT_EQ(search("RETURN () ALL"), "1");
  EXPECT_EQ(command_.returns, kReturnAll);
  EXPECT_EQ(search("RETURN (SAVE) CHARSET UTF-8 ALL"), "1");
  EXPECT_EQ(command_.returns, kReturnSave);
  EXPECT_EQ(search("RETURN (ALL SAVE) 1"), "1");
  EXPECT_EQ(command_.returns, kReturnAll | kReturnSave);
  EXPECT_EQ(search("RETURN (PARTIAL 1:5) ALL"), "BAD unknown RETURN option");
  EXPECT_EQ(search("RETURN (MIN ) ALL"), "BAD bad RETURN list");
  EXPECT_EQ(search("RETURN ALL"), "BAD RETURN needs a list of options");
  EXPECT_EQ(search("RETURN (MIN)"), "BAD RETURN needs search keys");
  EXPECT_FALSE(command_.esearch);  // a failed parse leaves an empty command
}

// ---- What is read, and storage errors

TEST_F(SearchTest, FlagSearchesReadNoMessageBytes) {
  add("Subject: a\n", "x\n").rec.flags = kFlagSeen;
  add("Subject: b\n", "x\n");
  EXPECT_EQ(search("OR SEEN UID 20 1:*"), "1 2");
  EXPECT_FALSE(search_needs_content(command_));
  EXPECT_EQ(bytes_calls_ + mime_calls_, 0);
}

TEST_F(SearchTest, HeaderSearchesReadBytesButNoMimeStructure) {
  add("Subject: a\n", "x\n");
  EXPECT_EQ(search("SUBJECT a SENTSINCE 1-Jan-2000"), "");
  EXPECT_TRUE(search_needs_content(command_));
  EXPECT_EQ(bytes_calls_, 1);
  EXPECT_EQ(mime_calls_, 0);
}

TEST_F(SearchTest, CheapKeysDecideFirstAndContentIsReadOnce) {
  add("Subject: a\n", "x\n");
  add("Subject: b\n", "x\n").rec.flags = kFlagSeen;
  EXPECT_EQ(search("BODY x SUBJECT b TEXT x SEEN"), "2");
  EXPECT_EQ(bytes_calls_, 1);  // message 1 fails SEEN before anything is read
  EXPECT_EQ(mime_calls_, 1);
}

TEST_F(SearchTest, StorageErrorsFailTheSearch) {
  add("Subject: a\n", "x\n");
  fail_storage_ = true;
  EXPECT_EQ(search("SEEN"), "");
  EXPECT_EQ(search("SUBJECT a"), "NO storage");
  EXPECT_EQ(search("NOT BODY x"), "NO storage");
  EXPECT_EQ(search("OR ALL BODY x"), "1");  // decided without reading
}

TEST_F(SearchTest, AMimeStructureOfOtherBytesIsAStorageError) {
  StoredMessage& m = add("Subject: a\n", "x\n");
  m.bytes += "more";
  EXPECT_EQ(search("SUBJECT a"), "1");
  EXPECT_EQ(search("BODY x"), "NO storage");
}

TEST_F(SearchTest, ACommandIsReusableAcrossMailboxes) {
  add("Subject: a\n", "x\n");
  add("Subject: b\n", "x\n");
  std::string line = "* UID * SUBJECT b\r\n";
  CommandReader r(line);
  SearchCommand cmd;
  std::string error;
  ASSERT_EQ(parse_search(r, &cmd, &error), SearchParse::ok);
  SearchMailbox box;
  box.messages = 2;
  box.uid_max = 20;
  bool matched = false;
  SearchMessage msg;
  msg.seq = 2;
  msg.rec = &messages_[1].rec;
  msg.bytes = [&](std::string_view* b) {
    *b = messages_[1].bytes;
    return true;
  };
  ASSERT_TRUE(search_matches(cmd, box, msg, &matched));
  EXPECT_TRUE(matched);
  box.messages = 3;  // a message arrived: "*" is now 3
  ASSERT_TRUE(search_matches(cmd, box, msg, &matched));
  EXPECT_FALSE(matched);
}

}  // namespace
}  // namespace ringmail
