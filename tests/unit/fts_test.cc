#include "storage/fts.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "storage/env.h"
#include "tests/unit/temp_dir.h"

namespace ringmail {
namespace {

// A small vocabulary with common and rare words, and non-ASCII text.
std::string random_text(std::mt19937& rng) {
  static const char* const kWords[] = {"the",    "meeting", "budget",  "über",     "straße",
                                       "ответ",  "日本語",  "invoice", "tomorrow", "zebra",
                                       "quartz", "a",       "of",      "xylophone"};
  std::string t;
  const size_t n = 5 + rng() % 40;
  for (size_t i = 0; i < n; i++) {
    size_t w = rng() % 14;
    if (w > 7 && rng() % 4 != 0) w = rng() % 8;  // the later words are rarer
    t += kWords[w];
    t += rng() % 5 == 0 ? "\n" : " ";
  }
  return t;
}

class FtsTest : public ::testing::Test {
 protected:
  std::unique_ptr<FtsIndex> open(std::vector<std::string>* dropped = nullptr) {
    std::vector<std::string> d;
    std::unique_ptr<FtsIndex> f;
    Status s = FtsIndex::open(Env::posix(), dir_.path(), 7, &f, dropped ? dropped : &d);
    EXPECT_TRUE(s.is_ok()) << s.message();
    return f;
  }
  // Every UID whose text contains `needle`: what a scan finds.
  std::vector<uint32_t> scan(std::string_view needle) {
    std::vector<uint32_t> out;
    for (const auto& [uid, text] : texts_)
      if (text.find(needle) != std::string::npos) out.push_back(uid);
    return out;
  }
  void expect_superset(const FtsIndex& f, std::string_view needle) {
    std::vector<uint32_t> c;
    ASSERT_TRUE(f.candidates(needle, &c)) << needle;
    ASSERT_TRUE(std::is_sorted(c.begin(), c.end()));
    for (uint32_t uid : scan(needle)) {
      if (uid > f.covered_uid()) continue;
      EXPECT_TRUE(std::binary_search(c.begin(), c.end(), uid)) << needle << " uid " << uid;
    }
  }
  bool live(uint32_t uid) const {
    return std::any_of(texts_.begin(), texts_.end(), [&](const auto& t) { return t.first == uid; });
  }

  TempDir dir_;
  std::vector<std::pair<uint32_t, std::string>> texts_;
};

TEST_F(FtsTest, CandidatesAreASupersetOfTheMatchesAcrossFlushesMergesAndReopen) {
  std::mt19937 rng(42);
  auto f = open();
  auto is_live = [this](uint32_t uid) { return live(uid); };
  uint32_t uid = 0;
  for (int i = 0; i < 300; i++) {
    uid += 1 + rng() % 3;  // UIDs with gaps, as after expunges
    texts_.emplace_back(uid, random_text(rng));
    f->add(uid, texts_.back().second);
    if (f->pending_docs() >= 7) {
      ASSERT_TRUE(f->flush(is_live).is_ok());
    }
  }
  const std::vector<std::string> needles = {"the",          "meeting", "eet",   "über",
                                            "ße ",          "ответ",   "日本",  "xylo",
                                            "zebra quartz", "nothing", "g\nth", "a o"};
  for (const auto& n : needles) expect_superset(*f, n);
  std::vector<uint32_t> c;
  EXPECT_FALSE(f->candidates("ab", &c));
  EXPECT_TRUE(c.empty());
  c.clear();
  ASSERT_TRUE(f->candidates("nothing", &c));
  EXPECT_TRUE(c.empty());
  FtsStats st = f->stats();
  EXPECT_EQ(st.docs, 300u);
  EXPECT_EQ(st.covered_uid, uid);
  EXPECT_LT(st.segments, 20u);  // merged: far fewer than 300 / 7

  // Expunge some, flush what is in memory (merges drop the expunged), reopen from disk.
  texts_.erase(
      std::remove_if(texts_.begin(), texts_.end(), [](const auto& t) { return t.first % 5 == 0; }),
      texts_.end());
  ASSERT_TRUE(f->flush(is_live).is_ok());
  const uint32_t covered = f->covered_uid();
  f.reset();
  f = open();
  EXPECT_EQ(f->covered_uid(), covered);
  EXPECT_EQ(f->stats().docs, 300u);  // counted as indexed, expunged ones included
  for (const auto& n : needles) expect_superset(*f, n);
}

TEST_F(FtsTest, ADamagedSegmentIsDroppedAndTheIndexCoversOnlyWhatPrecedesIt) {
  auto f = open();
  auto all = [](uint32_t) { return true; };
  f->add(1, "first message text");
  ASSERT_TRUE(f->flush(all).is_ok());
  f->add(2, "second message text");
  ASSERT_TRUE(f->flush(all).is_ok());
  f.reset();
  // Flip a byte in the second segment.
  const std::string path = dir_.path() + "/fts/00000001-00000002.fts";
  FILE* fp = fopen(path.c_str(), "r+b");
  ASSERT_NE(fp, nullptr);
  fseek(fp, 70, SEEK_SET);
  fputc(0x55, fp);
  fclose(fp);
  std::vector<std::string> dropped;
  f = open(&dropped);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_NE(dropped[0].find("checksum"), std::string::npos) << dropped[0];
  EXPECT_EQ(f->covered_uid(), 1u);
  std::vector<uint32_t> c;
  ASSERT_TRUE(f->candidates("message", &c));
  EXPECT_EQ(c, std::vector<uint32_t>{1});
}

TEST_F(FtsTest, AMergeCutShortLeavesItsInputsWhichTheNextOpenDrops) {
  auto f = open();
  auto all = [](uint32_t) { return true; };
  for (uint32_t u = 1; u <= 4; u++) {
    f->add(u, "text number " + std::to_string(u));
    ASSERT_TRUE(f->flush(all).is_ok());
  }
  EXPECT_EQ(f->stats().segments, 1u);  // four of one class merged
  f.reset();
  // The merged file and, as if the process died before removing them, two of its inputs.
  const std::string d = dir_.path() + "/fts/";
  {
    std::unique_ptr<ReadFile> merged;
    ASSERT_TRUE(Env::posix()->open_read(d + "00000000-00000004.fts", &merged).is_ok());
  }
  f = open();
  f->add(5, "text number 5");
  ASSERT_TRUE(f->flush(all).is_ok());
  f.reset();
  std::vector<std::string> dropped;
  f = open(&dropped);
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(f->covered_uid(), 5u);
  std::vector<uint32_t> c;
  ASSERT_TRUE(f->candidates("number", &c));
  EXPECT_EQ(c, (std::vector<uint32_t>{1, 2, 3, 4, 5}));
}

}  // namespace
}  // namespace ringmail
