// SORT and THREAD (RFC 5256, RFC 5957) as a specification: base subjects, sent dates and Message
// IDs as the keys see them; messages, the criteria a client sends, and the order or the threads
// the server answers; the BAD and NO the commands get.
#include "protocol/imap_sort.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace ringmail {
namespace {

// ---- Base subject (RFC 5256 section 2.1)

std::string base(std::string_view subject) {
  std::string out;
  base_subject(subject, &out);
  return out;
}
bool is_reply(std::string_view subject) {
  std::string out;
  return base_subject(subject, &out);
}

TEST(BaseSubject, ReplyAndForwardPrefixesGoInAnyCaseAndNumber) {
  EXPECT_EQ(base("Re: hello"), "hello");
  EXPECT_EQ(base("RE: Re: re: hello"), "hello");
  EXPECT_EQ(base("Fwd: hello"), "hello");
  EXPECT_EQ(base("FW: hello"), "hello");
  EXPECT_EQ(base("fw:hello"), "hello");
  EXPECT_EQ(base("Re:Fwd:  Fw: hello"), "hello");
  EXPECT_EQ(base("Re [2]: hello"), "hello");  // subj-refwd may hold a blob before its colon
  EXPECT_EQ(base("Re[2]: hello"), "hello");
  EXPECT_EQ(base("Re : hello"), "hello");
  EXPECT_TRUE(is_reply("Re: hello"));
  EXPECT_TRUE(is_reply("fwd: hello"));
}

TEST(BaseSubject, WordsThatOnlyStartLikeAPrefixStay) {
  EXPECT_EQ(base("Ref: hello"), "Ref: hello");
  EXPECT_EQ(base("Reply: hello"), "Reply: hello");
  EXPECT_EQ(base("Fwdx: hello"), "Fwdx: hello");
  EXPECT_EQ(base("Re hello"), "Re hello");
  EXPECT_EQ(base("hello Re: world"), "hello Re: world");
  EXPECT_FALSE(is_reply("Ref: hello"));
}

TEST(BaseSubject, BlobsGoUnlessNothingWouldRemain) {
  EXPECT_EQ(base("[list] hello"), "hello");
  EXPECT_EQ(base("[list] Re: hello"), "hello");
  EXPECT_EQ(base("Re: [list] hello"), "hello");
  EXPECT_EQ(base("[a][b] Re: [c] Fwd: [d] hello"), "hello");
  EXPECT_EQ(base("[only a blob]"), "[only a blob]");
  EXPECT_EQ(base("Re: [only a blob]"), "[only a blob]");
  EXPECT_EQ(base("[a] [b]"), "[b]");
  EXPECT_EQ(base("[unclosed hello"), "[unclosed hello");
  EXPECT_EQ(base("[a [b] hello"), "[a [b] hello");  // '[' is no BLOBCHAR
  EXPECT_FALSE(is_reply("[list] hello"));
  EXPECT_TRUE(is_reply("[list] Re: hello"));
}

TEST(BaseSubject, FwdTrailersGoFromTheEnd) {
  EXPECT_EQ(base("hello (fwd)"), "hello");
  EXPECT_EQ(base("hello (FWD) (fwd)"), "hello");
  EXPECT_EQ(base("hello(fwd)"), "hello");
  EXPECT_EQ(base("hello (fwd) world"), "hello (fwd) world");
  EXPECT_TRUE(is_reply("hello (fwd)"));
}

TEST(BaseSubject, FwdWrapperGoesAndExtractionStartsOver) {
  EXPECT_EQ(base("[fwd: hello]"), "hello");
  EXPECT_EQ(base("[Fwd: Re: hello]"), "hello");
  EXPECT_EQ(base("Re: [fwd: hello (fwd)]"), "hello");
  EXPECT_EQ(base("[fwd: [fwd: hello]]"), "hello");
  EXPECT_EQ(base("[fwd: hello] more"), "more");  // not a wrapper: a blob before a subject
  EXPECT_EQ(base("[fwd:]"), "");
  EXPECT_TRUE(is_reply("[fwd: hello]"));
}

TEST(BaseSubject, WhiteSpaceIsCollapsedAndTrimmed) {
  EXPECT_EQ(base("  Re:\t hello  \t world   "), "hello world");
  EXPECT_EQ(base("hello\r\n world"), "hello world");
  EXPECT_EQ(base(""), "");
  EXPECT_EQ(base("   "), "");
  EXPECT_EQ(base("Re:"), "");
  EXPECT_EQ(base("Re: Re: "), "");
}

TEST(BaseSubject, HostileSubjectsTakeLinearTime) {
  // Quadratic extraction would take hours on these.
  std::string blobs;
  for (int i = 0; i < 200000; i++) blobs += "[x]";
  EXPECT_EQ(base(blobs + " hello"), "hello");
  EXPECT_EQ(base(blobs), "[x]");
  std::string leaders;
  for (int i = 0; i < 200000; i++) leaders += "Re: [x] ";
  EXPECT_EQ(base(leaders + "hello"), "hello");
  std::string wrapped;
  for (int i = 0; i < 100000; i++) wrapped += "[fwd:";
  wrapped += "x" + std::string(100000, ']');
  EXPECT_EQ(base(wrapped), "x");
}

// ---- Sent dates

int64_t sent(std::string_view field) {
  int64_t t = 0;
  return parse_sent_date(field, &t) ? t : -999;
}

constexpr int64_t k2024Jan01At9Utc = 1704099600;

TEST(SentDate, ConvertedToUtcFromNumericAndNamedZones) {
  EXPECT_EQ(sent("Mon, 1 Jan 2024 09:00:00 +0000"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 10:00:00 +0100"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Sun, 31 Dec 2023 23:00:00 -1000"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 01 Jan 2024 14:30:00 +0530"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 04:00:00 EST"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 01:00:00 PST"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 09:00:00 GMT"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 09:00:00 UT"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 09:00:00 Z"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 09:00:00 X"), k2024Jan01At9Utc);  // military: no information
  EXPECT_EQ(sent("Mon, 1 Jan 2024 09:00:59 +0000 (UTC)"), k2024Jan01At9Utc + 59);
  EXPECT_EQ(sent("Mon, 1 Jan 2024 09:00:60 +0000"), k2024Jan01At9Utc + 60);  // leap second
}

TEST(SentDate, ObsoleteFormsAreRead) {
  EXPECT_EQ(sent("1 Jan 2024 09:00:00 +0000"), k2024Jan01At9Utc);  // no day of week
  EXPECT_EQ(sent("1 Jan 2024 09:00 +0000"), k2024Jan01At9Utc);     // no seconds
  EXPECT_EQ(sent("1 Jan 24 09:00 +0000"), k2024Jan01At9Utc);       // two-digit year
  EXPECT_EQ(sent("1 Jan 124 09:00 +0000"), k2024Jan01At9Utc);      // three-digit year
  EXPECT_EQ(sent("1 Jan 99 09:00 +0000"), 915181200);              // 1999
  EXPECT_EQ(sent("1 Jan 2024 09:00:00"), k2024Jan01At9Utc);        // no zone: UTC
  EXPECT_EQ(sent("Monday, 1 January 2024 9:0:0 +0000"), k2024Jan01At9Utc);
  EXPECT_EQ(sent(" (c) Mon (c) , 1 (c) Jan (c) 2024 09 : 00 : 00 (c) +0000"), k2024Jan01At9Utc);
  EXPECT_EQ(sent("Mon 1 Jan 2024 09:00:00 +0000"), k2024Jan01At9Utc);  // no comma
  EXPECT_EQ(sent("Thu, 29 Feb 2024 00:00:00 +0000"), 1709164800);
  EXPECT_EQ(sent("31 Dec 1969 23:59:59 +0000"), -1);
}

TEST(SentDate, WhatIsNoDateTimeFails) {
  for (std::string_view bad :
       {"", "yesterday", "Mon, 1 Jan 2024", "1 Jan 2024 09 +0000", "29 Feb 2023 09:00 +0000",
        "31 Apr 2024 09:00 +0000", "0 Jan 2024 09:00 +0000", "1 Foo 2024 09:00 +0000",
        "1 Jan 2024 24:00 +0000", "1 Jan 2024 09:60 +0000", "1 Jan 2024 09:00:61 +0000",
        "1 Jan 2024 09:00 +01", "1 Jan 2024 09:00 +0160", "1 Jan 20245 09:00 +0000",
        "Xyz, 1 Jan 2024 09:00 +0000", "123 Jan 2024 09:00 +0000"}) {
    EXPECT_EQ(sent(bad), -999) << bad;
  }
}

// ---- Message IDs

std::string ids(std::string_view field, size_t max = 100) {
  std::vector<std::string> out;
  parse_message_ids(field, max, &out);
  std::string joined;
  for (const std::string& id : out) joined += (joined.empty() ? "" : " ") + id;
  return joined;
}

TEST(MessageIds, TheValidIdsInOrderWithoutBracketsOrFolds) {
  EXPECT_EQ(ids("<a@b> <c@d>\r\n\t<e@f>"), "a@b c@d e@f");
  EXPECT_EQ(ids("<a@b><c@d>"), "a@b c@d");
  EXPECT_EQ(ids("<a@\r\n b>"), "a@b");
  EXPECT_EQ(ids("<no-at> <@x> <x@> <ok@x>"), "ok@x");
  EXPECT_EQ(ids("junk <junk <a@b> more"), "a@b");
  EXPECT_EQ(ids("<a@b"), "");
  EXPECT_EQ(ids(""), "");
  EXPECT_EQ(ids("<A@B> <a@b>"), "A@B a@b");  // case kept: IDs compare case-sensitively
}

TEST(MessageIds, CommentsAndQuotedStringsBetweenIdsAreSkipped) {
  EXPECT_EQ(ids("<a@b> (message from Foo <foo@bar> (nested <x@y>)) <c@d>"), "a@b c@d");
  EXPECT_EQ(ids("Your message of \"Mon, 1 Jan <q@r>\" <a@b>"), "a@b");
}

TEST(MessageIds, OnlyTheLastOnesUpToTheLimitAndNoneTooLong) {
  EXPECT_EQ(ids("<1@x> <2@x> <3@x> <4@x>", 2), "3@x 4@x");
  EXPECT_EQ(ids("<" + std::string(kMessageIdBytesMax - 2, 'a') + "@b> <c@d>"),
            std::string(kMessageIdBytesMax - 2, 'a') + "@b c@d");
  EXPECT_EQ(ids("<" + std::string(kMessageIdBytesMax - 1, 'a') + "@b> <c@d>"), "c@d");
}

// ---- The commands

// The criteria as a client sends them after "SORT " or "THREAD ": "ok", "BAD <text>" or
// "NO BADCHARSET".
std::string parse(std::string_view line, bool thread = false) {
  std::string text = std::string(line) + "\r\n";
  CommandReader r(text);
  std::string error;
  SortCommand sort;
  ThreadCommand threads;
  const SearchParse p = thread ? parse_thread(r, &threads, &error) : parse_sort(r, &sort, &error);
  if (p == SearchParse::bad) return "BAD " + error;
  if (p == SearchParse::bad_charset) return "NO BADCHARSET";
  return "ok";
}

TEST(SortParse, CriteriaAreAParenthesizedListWithReverse) {
  std::string text =
      "(REVERSE date subject Reverse SIZE arrival CC FROM TO DISPLAYFROM "
      "displayto) UTF-8 ALL\r\n";
  CommandReader r(text);
  SortCommand cmd;
  std::string error;
  ASSERT_EQ(parse_sort(r, &cmd, &error), SearchParse::ok) << error;
  ASSERT_EQ(cmd.criteria.size(), 9u);
  EXPECT_EQ(cmd.criteria[0].key, SortKey::date);
  EXPECT_TRUE(cmd.criteria[0].reverse);
  EXPECT_EQ(cmd.criteria[1].key, SortKey::subject);
  EXPECT_FALSE(cmd.criteria[1].reverse);
  EXPECT_EQ(cmd.criteria[2].key, SortKey::size);
  EXPECT_TRUE(cmd.criteria[2].reverse);
  EXPECT_EQ(cmd.criteria[3].key, SortKey::arrival);
  EXPECT_EQ(cmd.criteria[7].key, SortKey::display_from);
  EXPECT_EQ(cmd.criteria[8].key, SortKey::display_to);
  EXPECT_EQ(sort_texts_needed(cmd.criteria), (1u << kTextSubject) | (1u << kTextCc) |
                                                 (1u << kTextFrom) | (1u << kTextTo) |
                                                 (1u << kTextDisplayFrom) | (1u << kTextDisplayTo));
}

TEST(SortParse, CharsetAndSearchKeysFollow) {
  EXPECT_EQ(parse("(DATE) UTF-8 ALL"), "ok");
  EXPECT_EQ(parse("(DATE) us-ascii SUBJECT hello SEEN"), "ok");
  EXPECT_EQ(parse("(DATE) \"UTF-8\" OR 1:3 UID 5"), "ok");
  EXPECT_EQ(parse("(DATE) KOI8-R ALL"), "NO BADCHARSET");
  EXPECT_EQ(parse("(DATE) ISO-8859-1 SUBJECT x"), "NO BADCHARSET");
}

TEST(SortParse, MalformedCommandsAreBad) {
  EXPECT_EQ(parse("DATE UTF-8 ALL"), "BAD expected a parenthesized list of sort criteria");
  EXPECT_EQ(parse("() UTF-8 ALL"), "BAD expected a sort criterion");
  EXPECT_EQ(parse("(DATE FOO) UTF-8 ALL"), "BAD unknown sort criterion");
  EXPECT_EQ(parse("(REVERSE) UTF-8 ALL"), "BAD REVERSE needs a sort criterion");
  EXPECT_EQ(parse("(REVERSE REVERSE DATE) UTF-8 ALL"), "BAD unknown sort criterion");
  EXPECT_EQ(parse("(DATE UTF-8 ALL"), "BAD unknown sort criterion");
  EXPECT_EQ(parse("(DATE  SIZE) UTF-8 ALL"), "BAD expected a sort criterion");
  EXPECT_EQ(parse("(DATE)UTF-8 ALL"), "BAD expected a charset");
  EXPECT_EQ(parse("(DATE)"), "BAD expected a charset");
  EXPECT_EQ(parse("(DATE) UTF-8"), "BAD expected search criteria after the charset");
  EXPECT_EQ(parse("(DATE) UTF-8 "), "BAD search key expected");
  EXPECT_EQ(parse("(DATE) UTF-8 NOSUCHKEY"), "BAD unknown search key");
  std::string many = "(";
  for (size_t i = 0; i <= kSortCriteriaMax; i++) many += i == 0 ? "DATE" : " DATE";
  EXPECT_EQ(parse(many + ") UTF-8 ALL"), "BAD too many sort criteria");
}

TEST(ThreadParse, AlgorithmCharsetAndSearchKeys) {
  EXPECT_EQ(parse("ORDEREDSUBJECT UTF-8 ALL", true), "ok");
  EXPECT_EQ(parse("references US-ASCII SINCE 1-Jan-2024", true), "ok");
  EXPECT_EQ(parse("REFS UTF-8 ALL", true), "BAD unknown threading algorithm");
  EXPECT_EQ(parse("(REFERENCES) UTF-8 ALL", true), "BAD expected a threading algorithm");
  EXPECT_EQ(parse("REFERENCES BIG5 ALL", true), "NO BADCHARSET");
  EXPECT_EQ(parse("REFERENCES UTF-8", true), "BAD expected search criteria after the charset");
}

// ---- SORT and THREAD over messages

// Messages are written with LF line ends for readability; they are stored with CRLF.
std::string crlf(std::string_view lf) {
  std::string out;
  for (char c : lf) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

constexpr int64_t kDay = 86400;
constexpr int64_t k2024Jan01 = 1704067200;

class SortTest : public ::testing::Test {
 protected:
  struct Stored {
    MessageRecord rec;
    std::string bytes;
    MimeInfo mime;
  };

  // Adds a message (its header; the body is "x"). Its UID is ten times its sequence number; its
  // internal date is that many days into 2024 unless `internal_day` says which day; its size is
  // `size` or that of its bytes.
  void add(std::string_view lf_header, int internal_day = 0, uint32_t size = 0) {
    Stored& m = messages_.emplace_back();
    m.bytes = crlf(std::string(lf_header) + "\nx\n");
    ASSERT_TRUE(parse_mime(m.bytes, &m.mime).is_ok());
    const auto seq = static_cast<uint32_t>(messages_.size());
    m.rec.uid = seq * 10;
    m.rec.size = size != 0 ? size : static_cast<uint32_t>(m.bytes.size());
    m.rec.internal_date = k2024Jan01 + (internal_day != 0 ? internal_day : seq) * kDay;
  }

  std::vector<SortMessage> keys(uint32_t texts) {
    std::vector<SortMessage> out;
    for (size_t i = 0; i < messages_.size(); i++)
      reader_.read(messages_[i].rec, static_cast<uint32_t>(i + 1), messages_[i].mime, texts,
                   &out.emplace_back());
    return out;
  }

  // The sequence numbers (or UIDs) in the order "SORT <criteria> UTF-8 ALL" gives them.
  std::string sort(std::string_view criteria, bool uid = false) {
    std::string line = std::string(criteria) + " UTF-8 ALL\r\n";
    CommandReader r(line);
    SortCommand cmd;
    std::string error;
    if (parse_sort(r, &cmd, &error) != SearchParse::ok) return "BAD " + error;
    const std::vector<SortMessage> msgs = keys(sort_texts_needed(cmd.criteria));
    std::vector<uint32_t> order;
    sort_messages(cmd.criteria, msgs, &order);
    std::string out;
    for (uint32_t i : order)
      out += (out.empty() ? "" : " ") + std::to_string(uid ? msgs[i].uid : msgs[i].seq);
    return out;
  }

  // What follows "* THREAD " for THREAD=REFERENCES or ORDEREDSUBJECT over all the messages.
  std::string thread(ThreadAlgorithm algorithm, bool uid = false) {
    const std::vector<SortMessage> msgs = keys(kThreadTextsNeeded);
    std::string out;
    if (algorithm == ThreadAlgorithm::ordered_subject) {
      thread_ordered_subject(msgs, uid, &out);
      return out;
    }
    ReferenceThreads threads;
    std::vector<HeaderField> fields;
    for (const Stored& m : messages_) {
      split_header(m.bytes, &fields);
      std::string_view references;
      for (const HeaderField& f : fields)
        if (f.name == "References" && references.empty()) references = f.value;
      const MimeEnvelope& env = m.mime.envelopes[0];
      auto str = [&](MimeString s) { return s.is_nil() ? std::string_view() : m.mime.str(s); };
      threads.add(str(env.message_id), references, str(env.in_reply_to));
    }
    threads.finish(msgs, uid, &out);
    return out;
  }
  std::string references(bool uid = false) { return thread(ThreadAlgorithm::references, uid); }
  std::string ordered_subject() { return thread(ThreadAlgorithm::ordered_subject); }

  // A message of a thread: its Message-ID <id@x>, its References (IDs without "@x") and its
  // Date: `day` days into January 2024.
  void add_thread_message(std::string_view id, std::string_view refs, std::string_view subject,
                          int day) {
    std::string h = "Message-ID: <" + std::string(id) + "@x>\n";
    if (!refs.empty()) {
      h += "References:";
      size_t i = 0;
      while (i < refs.size()) {
        size_t j = refs.find(' ', i);
        if (j == std::string_view::npos) j = refs.size();
        h += " <" + std::string(refs.substr(i, j - i)) + "@x>";
        i = j + 1;
      }
      h += "\n";
    }
    h += "Subject: " + std::string(subject) + "\n";
    h += "Date: " + std::to_string(day) + " Jan 2024 12:00:00 +0000\n";
    add(h);
  }

  std::deque<Stored> messages_;
  SortKeyReader reader_;
};

// Four messages whose keys disagree with one another.
class SortKeysTest : public SortTest {
 protected:
  void SetUp() override {
    add("From: \"Zed\" <alice@example.com>\n"
        "To: bob@example.org\n"
        "Subject: Re: banana\n"
        "Date: Fri, 5 Jan 2024 10:00:00 +0000\n",
        5, 300);
    add("From: =?utf-8?q?=C3=89mile?= <zoe@example.com>\n"
        "To: \"Anna\" <carl@example.org>\n"
        "Cc: dave@example.org\n"
        "Subject: apple\n"
        "Date: Fri, 5 Jan 2024 12:00:00 +0300\n",  // 09:00 UTC
        3, 100);
    add("From: bob@example.com\n"
        "To: ann@example.org\n"
        "Subject: =?iso-8859-1?q?=C9clair?=\n",  // no Date: the internal date, Jan 2
        1, 200);
    add("From: alice <Mallory@example.com>\n"
        "Cc: Carol@example.org, dave@example.org\n"
        "Subject: [list] Banana (fwd)\n"
        "Date: 5 Jan 2024 05:00:00 EST\n",  // 10:00 UTC, as the first
        4, 100);
  }
};

TEST_F(SortKeysTest, SubjectIsTheCaseFoldedBaseSubject) {
  // apple, banana (1), banana (4), éclair: equal keys go by sequence number.
  EXPECT_EQ(sort("(SUBJECT)"), "2 1 4 3");
  EXPECT_EQ(sort("(REVERSE SUBJECT)"), "3 1 4 2");
}

TEST_F(SortKeysTest, DateIsTheSentDateInUtcElseTheInternalDate) {
  EXPECT_EQ(sort("(DATE)"), "3 2 1 4");
  EXPECT_EQ(sort("(REVERSE DATE)"), "1 4 2 3");
}

TEST_F(SortKeysTest, ArrivalIsTheInternalDateAndSizeTheOctets) {
  EXPECT_EQ(sort("(ARRIVAL)"), "3 2 4 1");
  EXPECT_EQ(sort("(SIZE)"), "2 4 3 1");
  EXPECT_EQ(sort("(REVERSE SIZE)"), "1 3 2 4");
}

TEST_F(SortKeysTest, AddressesSortByTheFirstMailboxCaseInsensitively) {
  // alice, bob, mallory, zoe.
  EXPECT_EQ(sort("(FROM)"), "1 3 4 2");
  // None (4), ann, bob, carl.
  EXPECT_EQ(sort("(TO)"), "4 3 1 2");
  // None (1, 3), carol (the first of two), dave.
  EXPECT_EQ(sort("(CC)"), "1 3 4 2");
}

TEST_F(SortKeysTest, DisplayKeysAreTheDecodedNameElseTheAddress) {
  // alice, bob@example.com, zed, émile (decoded from RFC 2047; é sorts after ASCII).
  EXPECT_EQ(sort("(DISPLAYFROM)"), "4 3 1 2");
  // None, ann@example.org, anna, bob@example.org ('@' sorts before 'a').
  EXPECT_EQ(sort("(DISPLAYTO)"), "4 3 2 1");
}

TEST_F(SortKeysTest, LaterCriteriaBreakTiesAndReverseTurnsOnlyItsOwn) {
  EXPECT_EQ(sort("(SIZE REVERSE ARRIVAL)"), "4 2 3 1");
  EXPECT_EQ(sort("(SUBJECT REVERSE ARRIVAL)"), "2 1 4 3");
  EXPECT_EQ(sort("(REVERSE SUBJECT REVERSE ARRIVAL)"), "3 1 4 2");
  EXPECT_EQ(sort("(DATE SIZE)"), "3 2 4 1");
  EXPECT_EQ(sort("(SUBJECT)", true), "20 10 40 30");
}

TEST_F(SortTest, AMessageWithoutHeaderSortsFirstOnEveryTextKey) {
  add("Subject: b\nFrom: b@x\nTo: b@x\nCc: b@x\n");
  add("X-Nothing: here\n");
  for (const char* key : {"(SUBJECT)", "(FROM)", "(TO)", "(CC)", "(DISPLAYFROM)", "(DISPLAYTO)"})
    EXPECT_EQ(sort(key), "2 1") << key;
}

TEST_F(SortTest, AGroupSortsByItsNameAndEmptyDisplayNamesFallBackToTheAddress) {
  add("To: \"\" <zz@x>\n");
  add("To: Friends: a@x, b@x;\n");
  add("To: undisclosed-recipients:;\n");
  EXPECT_EQ(sort("(TO)"), "2 3 1");         // friends, undisclosed-recipients, zz
  EXPECT_EQ(sort("(DISPLAYTO)"), "2 3 1");  // Friends, undisclosed-recipients, zz@x
}

TEST_F(SortTest, LongKeysAreCutAtACharacterBoundary) {
  std::string e_acute = "\xC3\xA9";
  add("Subject: a" + std::string(kSortKeyBytesMax - 2, 'x') + e_acute + "z\n");
  add("Subject: a" + std::string(kSortKeyBytesMax - 2, 'x') + e_acute + "a\n");
  std::vector<SortMessage> msgs = keys(1u << kTextSubject);
  EXPECT_EQ(msgs[0].key(kTextSubject).size(), kSortKeyBytesMax - 1);
  EXPECT_EQ(sort("(SUBJECT)"), "1 2");  // equal once cut: by sequence number
}

// ---- THREAD=ORDEREDSUBJECT

TEST_F(SortTest, OrderedSubjectGroupsByBaseSubjectUnderTheEarliestMessage) {
  add_thread_message("1", "", "b", 3);
  add_thread_message("2", "", "Re: a", 1);
  add_thread_message("3", "", "a", 2);
  add_thread_message("4", "", "Re: b", 4);
  add_thread_message("5", "", "B", 5);
  add_thread_message("6", "", "c", 6);
  // Thread a from Jan 1: 2 then its child 3; thread b: 1 with children 4 and 5; thread c.
  EXPECT_EQ(ordered_subject(), "(2 3)(1 (4)(5))(6)");
}

TEST_F(SortTest, OrderedSubjectOrdersWithinAThreadByDateThenSequence) {
  add_thread_message("1", "", "s", 9);
  add_thread_message("2", "", "s", 3);
  add_thread_message("3", "", "s", 3);
  add_thread_message("4", "", "t", 1);
  EXPECT_EQ(ordered_subject(), "(4)(2 (3)(1))");
}

TEST_F(SortTest, ThreadsOfNothingAreEmpty) {
  EXPECT_EQ(ordered_subject(), "");
  EXPECT_EQ(references(), "");
}

// ---- THREAD=REFERENCES

TEST_F(SortTest, ReferencesBuildsTheTreeOfReplies) {
  add_thread_message("1", "", "t", 1);
  add_thread_message("2", "1", "Re: t", 2);
  add_thread_message("3", "1 2", "Re: t", 3);
  add_thread_message("4", "1", "Re: t", 4);
  add_thread_message("5", "1 4", "Re: t", 5);
  add_thread_message("6", "1 4 5", "Re: t", 6);
  add_thread_message("7", "", "other", 7);
  EXPECT_EQ(references(), "(1 (2 3)(4 5 6))(7)");
  EXPECT_EQ(references(true), "(10 (20 30)(40 50 60))(70)");
}

TEST_F(SortTest, ReferencesSortsSiblingsAndThreadsBySentDate) {
  add_thread_message("1", "", "t", 2);
  add_thread_message("2", "1", "Re: t", 9);
  add_thread_message("3", "1", "Re: t", 5);
  add_thread_message("4", "1", "Re: t", 5);  // the same date: by sequence number
  add_thread_message("5", "", "early", 1);
  EXPECT_EQ(references(), "(5)(1 (3)(4)(2))");
}

TEST_F(SortTest, ReferencesOutOfOrderArrivalGivesTheSameTree) {
  add_thread_message("3", "1 2", "Re: t", 3);
  add_thread_message("2", "1", "Re: t", 2);
  add_thread_message("1", "", "t", 1);
  EXPECT_EQ(references(), "(3 2 1)");
}

TEST_F(SortTest, InReplyToServesWhenThereAreNoReferences) {
  add("Message-ID: <a@x>\nSubject: one\nDate: 1 Jan 2024 00:00 +0000\n");
  add("Message-ID: <b@x>\nIn-Reply-To: <a@x> (from Someone <s@x>)\nSubject: two\n"
      "Date: 2 Jan 2024 00:00 +0000\n");
  // References without a valid ID count as none: In-Reply-To again.
  add("Message-ID: <c@x>\nReferences: no ids here\nIn-Reply-To: <b@x>\nSubject: three\n"
      "Date: 3 Jan 2024 00:00 +0000\n");
  EXPECT_EQ(references(), "(1 2 3)");
}

TEST_F(SortTest, MissingParentsBecomeDummiesThatArePruned) {
  add("Message-ID: <a@x>\nIn-Reply-To: <gone@x>\nSubject: s1\nDate: 1 Jan 2024 00:00 +0000\n");
  add("Message-ID: <b@x>\nReferences: <gone@x>\nSubject: s2\nDate: 2 Jan 2024 00:00 +0000\n");
  add("Message-ID: <c@x>\nIn-Reply-To: <b@x>\nSubject: Re: s2\nDate: 3 Jan 2024 00:00 +0000\n");
  add("Message-ID: <d@x>\nReferences: <lost@x>\nSubject: s3\nDate: 4 Jan 2024 00:00 +0000\n");
  add("Message-ID: <e@x>\nReferences: <d@x> <lost2@x> <lost3@x>\nSubject: Re: s3\n"
      "Date: 5 Jan 2024 00:00 +0000\n");
  // <gone> has two children: at the top it stays, as a thread of its own. <lost> has one: its
  // child takes its place. <lost2> and <lost3> in the middle of a thread give way to 5.
  EXPECT_EQ(references(), "((1)(2 3))(4 5)");
}

TEST_F(SortTest, SameSubjectsAtTheTopAreMerged) {
  add_thread_message("1", "", "hello", 1);
  add_thread_message("2", "", "Re: hello", 2);  // a reply that lost its References
  add_thread_message("3", "", "Hello", 3);      // neither a reply: a dummy holds both
  add_thread_message("4", "", "other", 4);
  EXPECT_EQ(references(), "((1 2)(3))(4)");
}

TEST_F(SortTest, AnOriginalPrefersToHeadTheThreadOverAReply) {
  add_thread_message("1", "", "Re: x", 1);
  add_thread_message("2", "", "x", 2);
  EXPECT_EQ(references(), "(2 1)");
}

TEST_F(SortTest, ThreadsUnderADummyMergeWithTheirSubject) {
  add_thread_message("1", "gone", "s", 1);
  add_thread_message("2", "gone", "Re: s", 2);
  add_thread_message("3", "", "Re: s", 3);   // joins the dummy's thread
  add_thread_message("4", "gone2", "s", 4);  // another dummy thread of subject s ...
  add_thread_message("5", "gone2", "s", 5);  // ... whose children join the first dummy's
  add_thread_message("6", "", "", 6);        // an empty subject is never merged
  add_thread_message("7", "", "Re: ", 7);
  EXPECT_EQ(references(), "((1)(2)(3)(4)(5))(6)(7)");
}

TEST_F(SortTest, ReferenceLoopsAreNotLinked) {
  add_thread_message("a", "b", "p", 1);
  add_thread_message("b", "a", "q", 2);  // would be the child of its own child
  add_thread_message("c", "d e d", "r", 3);
  add_thread_message("s", "s", "t", 4);  // refers to itself
  EXPECT_EQ(references(), "(2 1)(3)(4)");
}

TEST_F(SortTest, DuplicateMessageIdsGetIdsOfTheirOwn) {
  add_thread_message("d", "", "one", 1);
  add_thread_message("d", "", "two", 2);
  add_thread_message("e", "d", "Re: one", 3);  // the first with the ID is the parent
  EXPECT_EQ(references(), "(1 3)(2)");
}

TEST_F(SortTest, TheLastReferenceIsTheParentWhateverEarlierOnesSaid) {
  add_thread_message("x", "a b m", "Re: p", 2);
  add_thread_message("m", "c", "p", 1);  // m was under b; its own References say c
  EXPECT_EQ(references(), "(2 1)");
}

TEST_F(SortTest, DeepThreadsNeedNoRecursion) {
  constexpr int kDepth = 20000;
  std::string expected = "(";
  for (int i = 1; i <= kDepth; i++) {
    std::string h = "Message-ID: <" + std::to_string(i) + "@x>\nSubject: deep\n";
    if (i > 1) h += "In-Reply-To: <" + std::to_string(i - 1) + "@x>\n";
    add(h, 1);
    expected += (i > 1 ? " " : "") + std::to_string(i);
  }
  EXPECT_EQ(references(), expected + ")");
  EXPECT_EQ(ordered_subject().substr(0, 12), "(1 (2)(3)(4)");
}

TEST_F(SortTest, HugeReferencesFieldsKeepTheirNewestIds) {
  std::string refs;
  for (int i = 0; i < 100000; i++) refs += " <r" + std::to_string(i) + "@x>";
  add("Message-ID: <m@x>\nReferences:" + refs + "\nSubject: one\nDate: 1 Jan 2024 00:00 +0000\n");
  add("Message-ID: <r5@x>\nSubject: two\nDate: 2 Jan 2024 00:00 +0000\n");
  add("Message-ID: <r99998@x>\nSubject: three\nDate: 3 Jan 2024 00:00 +0000\n");
  // The parent of 1 is r99999, whose parent is r99998: message 3. r5 is too old to be read.
  EXPECT_EQ(references(), "(2)(3 1)");
}

}  // namespace
}  // namespace ringmail
