#include "storage/mailbox_index.h"

#include <gtest/gtest.h>

#include <fstream>

#include "storage/fault_env.h"
#include "tests/unit/temp_dir.h"

namespace ringmail {
namespace {

class MailboxIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    box_ = dir_.path() + "/mbox/00000001";
    ASSERT_TRUE(MailboxIndex::create(&env_, box_, 1, 1234).is_ok());
  }
  std::unique_ptr<MailboxIndex> open(IndexOpenReport* report = nullptr) {
    IndexOpenReport r;
    std::unique_ptr<MailboxIndex> idx;
    Status s = MailboxIndex::open(&env_, box_, 1, &idx, report ? report : &r);
    EXPECT_TRUE(s.is_ok()) << s.message();
    return idx;
  }
  static MessageRecord message(uint32_t size) {
    MessageRecord r;
    r.size = size;
    r.blob = {1, 32};
    r.internal_date = 1700000000;
    return r;
  }
  TempDir dir_;
  FaultEnv env_{Env::posix()};
  std::string box_;
};

TEST_F(MailboxIndexTest, ANewMailboxIsEmpty) {
  auto idx = open();
  EXPECT_EQ(idx->uidvalidity(), 1234u);
  EXPECT_EQ(idx->uidnext(), 1u);
  // RFC 7162: a mod-sequence value is at least 1, also for a mailbox that never changed.
  EXPECT_EQ(idx->highest_modseq(), 1u);
  EXPECT_TRUE(idx->records().empty());
  EXPECT_EQ(MailboxIndex::create(&env_, box_, 1, 1).code(), Status::Code::already_exists);
}

TEST_F(MailboxIndexTest, ChangesGetUidsAndModseqsAndSurviveReopen) {
  {
    auto idx = open();
    MessageRecord a = message(100), b = message(200), c = message(300);
    ASSERT_TRUE(idx->append(&a).is_ok());
    ASSERT_TRUE(idx->append(&b).is_ok());
    ASSERT_TRUE(idx->append(&c).is_ok());
    EXPECT_EQ(a.uid, 1u);
    EXPECT_EQ(c.uid, 3u);
    EXPECT_EQ(a.modseq, 2u);  // the first change comes after the empty mailbox's 1
    EXPECT_EQ(c.modseq, 4u);
    unsigned bit = 99;
    ASSERT_TRUE(idx->keyword_bit("$Forwarded", &bit).is_ok());
    EXPECT_EQ(bit, 0u);
    uint64_t modseq = 0;
    ASSERT_TRUE(idx->set_flags(2, kFlagSeen | kFlagFlagged, 1, &modseq).is_ok());
    EXPECT_EQ(modseq, 5u);  // the keyword definition took no MODSEQ: 3 appends, then this
    ASSERT_TRUE(idx->expunge(1).is_ok());
    EXPECT_EQ(idx->set_flags(1, 0, 0, &modseq).code(), Status::Code::not_found);
    ASSERT_TRUE(idx->sync().is_ok());
  }
  IndexOpenReport report;
  auto idx = open(&report);
  EXPECT_EQ(report.log_entries_replayed, 6u);
  EXPECT_EQ(report.log_torn_bytes, 0u);
  ASSERT_EQ(idx->records().size(), 2u);
  EXPECT_EQ(idx->records()[0].uid, 2u);
  EXPECT_EQ(idx->records()[0].flags, kFlagSeen | kFlagFlagged);
  EXPECT_EQ(idx->records()[0].keywords, 1u);
  EXPECT_EQ(idx->records()[0].modseq, 5u);
  EXPECT_EQ(idx->records()[0].size, 200u);
  EXPECT_EQ(idx->records()[1].uid, 3u);
  EXPECT_EQ(idx->uidnext(), 4u);
  EXPECT_EQ(idx->highest_modseq(), 6u);  // the expunge
  EXPECT_EQ(idx->keywords(), std::vector<std::string>{"$Forwarded"});
  EXPECT_EQ(idx->find(3), 1);
  EXPECT_EQ(idx->find(1), -1);
}

TEST_F(MailboxIndexTest, ACheckpointFoldsTheLogAndKeepsEverything) {
  {
    auto idx = open();
    for (int i = 0; i < 10; i++) {
      MessageRecord m = message(static_cast<uint32_t>(i));
      ASSERT_TRUE(idx->append(&m).is_ok());
    }
    unsigned bit;
    ASSERT_TRUE(idx->keyword_bit("work", &bit).is_ok());
    ASSERT_TRUE(idx->expunge(4).is_ok());
    ASSERT_TRUE(idx->checkpoint().is_ok());
    EXPECT_EQ(idx->log_bytes(), 24u);  // just the header
    uint64_t modseq;
    ASSERT_TRUE(idx->set_flags(5, kFlagDeleted, 0, &modseq).is_ok());
    ASSERT_TRUE(idx->sync().is_ok());
  }
  IndexOpenReport report;
  auto idx = open(&report);
  EXPECT_EQ(report.log_entries_replayed, 1u);
  EXPECT_EQ(idx->records().size(), 9u);
  EXPECT_EQ(idx->records()[3].uid, 5u);
  EXPECT_EQ(idx->records()[3].flags, kFlagDeleted);
  EXPECT_EQ(idx->keywords(), std::vector<std::string>{"work"});
  EXPECT_EQ(idx->uidnext(), 11u);
  EXPECT_EQ(idx->highest_modseq(), 13u);
}

// Every cut of the log after the last synced entry: reopening keeps the synced changes only.
TEST_F(MailboxIndexTest, ATornLogTailIsCutAtEveryPossibleLength) {
  uint64_t synced, full;
  {
    auto idx = open();
    MessageRecord a = message(1);
    ASSERT_TRUE(idx->append(&a).is_ok());
    ASSERT_TRUE(idx->sync().is_ok());
    synced = idx->log_bytes();
    MessageRecord b = message(2);
    ASSERT_TRUE(idx->append(&b).is_ok());
    full = idx->log_bytes();
  }
  std::string image = read_file(box_ + "/log");
  for (uint64_t cut = synced; cut < full; cut++) {
    {
      std::ofstream f(box_ + "/log", std::ios::binary | std::ios::trunc);
      f.write(image.data(), static_cast<std::streamsize>(cut));
    }
    IndexOpenReport report;
    auto idx = open(&report);
    ASSERT_EQ(idx->records().size(), 1u) << cut;
    EXPECT_EQ(report.log_torn_bytes, cut - synced) << cut;
    EXPECT_EQ(idx->log_bytes(), synced) << cut;
  }
}

TEST_F(MailboxIndexTest, ACorruptSnapshotIsRefusedNotGuessedAt) {
  {
    auto idx = open();
    MessageRecord a = message(1);
    ASSERT_TRUE(idx->append(&a).is_ok());
    ASSERT_TRUE(idx->checkpoint().is_ok());
  }
  std::fstream f(box_ + "/index", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(64 + 32);  // the first record's size field
  f.put('\x7f');
  f.close();
  std::unique_ptr<MailboxIndex> idx;
  IndexOpenReport report;
  Status s = MailboxIndex::open(&env_, box_, 1, &idx, &report);
  EXPECT_EQ(s.code(), Status::Code::corrupt);
  EXPECT_EQ(s.message(), box_ + "/index: records checksum mismatch");
}

TEST_F(MailboxIndexTest, ACrashLosesOnlyWhatWasNotSynced) {
  {
    auto idx = open();
    MessageRecord a = message(1), b = message(2);
    ASSERT_TRUE(idx->append(&a).is_ok());
    ASSERT_TRUE(idx->sync().is_ok());
    ASSERT_TRUE(idx->append(&b).is_ok());  // never synced
  }
  ASSERT_TRUE(env_.crash().is_ok());
  auto idx = open();
  ASSERT_EQ(idx->records().size(), 1u);
  EXPECT_EQ(idx->uidnext(), 2u);
  MessageRecord c = message(3);
  ASSERT_TRUE(idx->append(&c).is_ok());
  EXPECT_EQ(c.uid, 2u);  // the lost UID was never acknowledged, so it may be given again
}

TEST_F(MailboxIndexTest, AFailedSyncStopsAcknowledgingForGood) {
  auto idx = open();
  MessageRecord a = message(1);
  ASSERT_TRUE(idx->append(&a).is_ok());
  env_.set_fail_syncs(true);
  EXPECT_FALSE(idx->sync().is_ok());
  env_.set_fail_syncs(false);
  EXPECT_FALSE(idx->sync().is_ok());
  MessageRecord b = message(2);
  Status s = idx->append(&b);
  EXPECT_EQ(s.code(), Status::Code::io_error);
  EXPECT_NE(s.message().find("stopped after a failed sync"), std::string::npos);
}

TEST_F(MailboxIndexTest, AFullDiskRefusesTheChangeAndHarmsNothing) {
  auto idx = open();
  MessageRecord a = message(1);
  ASSERT_TRUE(idx->append(&a).is_ok());
  env_.set_disk_full(true);
  MessageRecord b = message(2);
  EXPECT_EQ(idx->append(&b).code(), Status::Code::no_space);
  EXPECT_EQ(idx->records().size(), 1u);
  EXPECT_EQ(idx->uidnext(), 2u);
  env_.set_disk_full(false);
  ASSERT_TRUE(idx->append(&b).is_ok());
  ASSERT_TRUE(idx->sync().is_ok());
  idx.reset();
  auto again = open();
  ASSERT_EQ(again->records().size(), 2u);
  EXPECT_EQ(again->records()[1].uid, 2u);
}

TEST_F(MailboxIndexTest, KeywordsAreLimitedTo64) {
  auto idx = open();
  unsigned bit;
  for (int i = 0; i < 64; i++) ASSERT_TRUE(idx->keyword_bit("k" + std::to_string(i), &bit).is_ok());
  EXPECT_EQ(bit, 63u);
  EXPECT_EQ(idx->keyword_bit("one-too-many", &bit).code(), Status::Code::invalid);
  ASSERT_TRUE(idx->keyword_bit("k5", &bit).is_ok());
  EXPECT_EQ(bit, 5u);
}

}  // namespace
}  // namespace ringmail
