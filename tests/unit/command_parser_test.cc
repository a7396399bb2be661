#include "protocol/command_parser.h"

#include <gtest/gtest.h>

namespace ringmail {
namespace {

using R = CommandFramer::Result;
const CommandFramer::Limits kLimits{100, 50};

TEST(CommandFramer, FindsOneCompleteLine) {
  CommandFramer f;
  EXPECT_EQ(f.scan("a1 NOOP\r\na2 NOOP\r\n", kLimits), R::complete);
  EXPECT_EQ(f.frame_bytes(), 9u);
}

TEST(CommandFramer, ResumesAcrossByteByByteArrival) {
  std::string cmd = "a1 LOGIN {4+}\r\nuser \"pw\"\r\n";
  CommandFramer f;
  for (size_t n = 1; n < cmd.size(); n++)
    ASSERT_EQ(f.scan(cmd.substr(0, n), kLimits), R::need_more) << n;
  EXPECT_EQ(f.scan(cmd, kLimits), R::complete);
  EXPECT_EQ(f.frame_bytes(), cmd.size());
}

TEST(CommandFramer, StopsAtASynchronizingLiteralUntilAccepted) {
  std::string head = "a1 LOGIN {4}\r\n";
  CommandFramer f;
  EXPECT_EQ(f.scan(head, kLimits), R::literal_wanted);
  EXPECT_EQ(f.literal_bytes(), 4u);
  EXPECT_TRUE(f.literal_sync());
  EXPECT_EQ(f.frame_bytes(), head.size());
  EXPECT_EQ(f.scan(head, kLimits), R::need_more);  // waits for the answer, asks only once
  f.accept_literal();
  EXPECT_EQ(f.scan(head + "us", kLimits), R::need_more);
  EXPECT_EQ(f.scan(head + "user {2}\r\n", kLimits), R::literal_wanted);
  f.accept_literal();
  EXPECT_EQ(f.scan(head + "user {2}\r\npw\r\n", kLimits), R::complete);
}

TEST(CommandFramer, EnforcesTheLimits) {
  CommandFramer f;
  EXPECT_EQ(f.scan(std::string(101, 'a'), kLimits), R::line_too_long);
  f.reset();
  EXPECT_EQ(f.scan("a1 LOGIN {51}\r\n", kLimits), R::literal_too_big);
  EXPECT_EQ(f.frame_bytes(), 15u);
  f.reset();
  EXPECT_EQ(f.scan("a1 LOGIN {51+}\r\n", kLimits), R::literal_too_big);
  EXPECT_FALSE(f.literal_sync());
  f.reset();
  EXPECT_EQ(f.scan("a1 LOGIN {99999999999999999999}\r\n", kLimits), R::bad_literal);
  f.reset();
  EXPECT_EQ(f.scan("a1 LOGIN {1x}\r\n", kLimits), R::bad_literal);
}

TEST(CommandFramer, TellsWhereAnArrivingLiteralStarts) {
  std::string head = "a1 APPEND INBOX {20+}\r\n";
  CommandFramer f;
  EXPECT_EQ(f.scan(head + "abc", kLimits), R::need_more);
  EXPECT_EQ(f.literal_left(), 17u);
  EXPECT_EQ(f.literal_start(), head.size());
  EXPECT_EQ(f.committed_bytes(), head.size() + 20);
}

TEST(CommandReader, ReadsExternalLiteralsInPlace) {
  // The text holds the literals' announcements only; their bytes are elsewhere.
  std::string text = "a1 APPEND INBOX {5}\r\n {3+}\r\n\r\n";
  std::string first = "hello", second = std::string("x\0y", 3);
  ExternalLiteral ext[] = {{text.find('}') + 3, first}, {text.rfind('}') + 3, second}};
  CommandReader r(text, ext, 2);
  std::string_view tag, cmd, box, m1, m2;
  std::string scratch;
  ASSERT_TRUE(r.tag(&tag) && r.sp() && r.atom(&cmd) && r.sp() && r.astring(&box, &scratch));
  ASSERT_TRUE(r.sp() && r.string(&m1, &scratch));
  EXPECT_EQ(m1.data(), first.data());  // the caller's bytes, not a copy
  ASSERT_TRUE(r.sp());
  EXPECT_FALSE(CommandReader(r.rest(), nullptr, 0).literal8(&m2));  // not in the text
  EXPECT_FALSE(CommandReader(text.substr(0, 0)).literal8(&m2));
  CommandReader nul(text, ext, 2);
  ASSERT_TRUE(nul.tag(&tag) && nul.sp() && nul.atom(&cmd) && nul.sp() &&
              nul.astring(&box, &scratch) && nul.sp() && nul.string(&m1, &scratch) && nul.sp());
  EXPECT_FALSE(nul.string(&m2, &scratch));  // NUL needs literal8
  ASSERT_TRUE(r.literal8(&m2));
  EXPECT_EQ(m2, second);
  EXPECT_TRUE(r.at_end());
  // A size that disagrees with the external bytes is malformed.
  std::string wrong = "a1 {4}\r\n\r\n";
  ExternalLiteral bad[] = {{wrong.find('}') + 3, first}};
  CommandReader w(wrong, bad, 1);
  ASSERT_TRUE(w.tag(&tag) && w.sp());
  EXPECT_FALSE(w.string(&m1, &scratch));
}

TEST(CommandReader, ReadsTagAtomsQuotedStringsAndLiterals) {
  std::string scratch1, scratch2;
  CommandReader r("a1 LOGIN \"fr\\\"ed\" {5}\r\np a s\r\n");
  std::string_view tag, cmd, user, pass;
  ASSERT_TRUE(r.tag(&tag));
  EXPECT_EQ(tag, "a1");
  ASSERT_TRUE(r.sp());
  ASSERT_TRUE(r.atom(&cmd));
  EXPECT_EQ(cmd, "LOGIN");
  ASSERT_TRUE(r.sp());
  ASSERT_TRUE(r.astring(&user, &scratch1));
  EXPECT_EQ(user, "fr\"ed");
  ASSERT_TRUE(r.sp());
  ASSERT_TRUE(r.astring(&pass, &scratch2));
  EXPECT_EQ(pass, "p a s");
  EXPECT_TRUE(r.at_end());
}

TEST(CommandReader, ZeroCopyWhenNothingIsEscaped) {
  std::string frame = "a1 LOGIN \"fred\" secret\r\n";
  CommandReader r(frame);
  std::string scratch;
  std::string_view tag, cmd, user;
  r.tag(&tag);
  r.sp();
  r.atom(&cmd);
  r.sp();
  ASSERT_TRUE(r.astring(&user, &scratch));
  EXPECT_EQ(user.data(), frame.data() + 10);  // a view into the frame, not a copy
  EXPECT_TRUE(scratch.empty());
}

TEST(CommandReader, RejectsMalformedStrings) {
  std::string scratch;
  std::string_view v;
  CommandReader unterminated("\"abc\r\n");
  EXPECT_FALSE(unterminated.astring(&v, &scratch));
  CommandReader bad_escape("\"a\\bc\"\r\n");
  EXPECT_FALSE(bad_escape.astring(&v, &scratch));
  CommandReader plus_tag("+a NOOP\r\n");
  EXPECT_FALSE(plus_tag.tag(&v));
  CommandReader wildcard("INBOX/%\r\n");
  EXPECT_TRUE(wildcard.list_mailbox(&v, &scratch));
  EXPECT_EQ(v, "INBOX/%");
}

}  // namespace
}  // namespace ringmail
