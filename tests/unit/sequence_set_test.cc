#include "protocol/sequence_set.h"

#include <gtest/gtest.h>

#include <string>

namespace ringmail {
namespace {

std::string resolved(std::string_view text, uint32_t max) {
  SequenceSet s;
  if (!s.parse(text)) return "invalid";
  std::string out;
  append_ranges(s.resolve(max), &out);
  return out;
}

TEST(SequenceSet, ParsesAndResolves) {
  EXPECT_EQ(resolved("1", 5), "1");
  EXPECT_EQ(resolved("1:3,5", 5), "1:3,5");
  EXPECT_EQ(resolved("3:1", 5), "1:3");
  EXPECT_EQ(resolved("*", 5), "5");
  EXPECT_EQ(resolved("4:*", 5), "4:5");
  EXPECT_EQ(resolved("*:4", 5), "4:5");
  EXPECT_EQ(resolved("2,1,3,7:9", 20), "1:3,7:9");
  EXPECT_EQ(resolved("1:3,2:6", 20), "1:6");
  // A UID range past the end still names the last message ("*" is the largest in use).
  EXPECT_EQ(resolved("9:*", 5), "5");
  EXPECT_EQ(resolved("9:12", 5), "");
  EXPECT_EQ(resolved("1:*", 0), "");
}

TEST(SequenceSet, RejectsBadSyntax) {
  for (const char* bad :
       {"", "0", "1:0", "a", "1,", ",1", "1::2", "1:2:3", "4294967296", "$1", "1 2"})
    EXPECT_EQ(resolved(bad, 10), "invalid") << bad;
}

TEST(SequenceSet, SavedResult) {
  SequenceSet s;
  ASSERT_TRUE(s.parse("$"));
  EXPECT_TRUE(s.is_saved());
}

TEST(SequenceSet, BoundsTheNumberOfRanges) {
  std::string many;
  for (size_t i = 0; i < SequenceSet::kRangesMax + 1; i++) many += std::to_string(2 * i + 1) + ",";
  many.pop_back();
  SequenceSet s;
  EXPECT_FALSE(s.parse(many));
}

TEST(SequenceSet, ContainsAndNumberSets) {
  std::vector<SeqRange> r = {{1, 3}, {7, 9}};
  EXPECT_TRUE(ranges_contain(r, 1));
  EXPECT_TRUE(ranges_contain(r, 8));
  EXPECT_FALSE(ranges_contain(r, 4));
  EXPECT_FALSE(ranges_contain(r, 10));
  std::string out;
  append_number_set({1, 2, 3, 5, 7, 8}, &out);
  EXPECT_EQ(out, "1:3,5,7:8");
}

}  // namespace
}  // namespace ringmail
