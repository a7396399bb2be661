#include "storage/fsck.h"

#include <gtest/gtest.h>

#include "storage/user_mail.h"
#include "tests/unit/temp_dir.h"

namespace ringmail {
namespace {

class FsckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::unique_ptr<UserMail> um;
    UserMail::OpenReport report;
    ASSERT_TRUE(UserMail::open(Env::posix(), dir_.path(), &um, &report).is_ok());
    inbox_ = um->find("INBOX")->id;
    for (int i = 0; i < 5; i++) {
      MessageRecord r;
      ASSERT_TRUE(um->append(inbox_, "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n", 0,
                             kFlagSeen, 0, &r)
                      .is_ok());
      records_.push_back(r);
    }
    MessageRecord copy;
    ASSERT_TRUE(um->copy(records_[0], um->find("Archive")->id, 0, 0, &copy).is_ok());
    ASSERT_TRUE(um->sync().is_ok());
    MailboxIndex* idx;
    ASSERT_TRUE(um->index(inbox_, &idx).is_ok());
    ASSERT_TRUE(idx->checkpoint().is_ok());  // INBOX's records in its snapshot, not its log
  }
  FsckResult fsck(bool repair) {
    FsckResult r;
    Status s = fsck_user(Env::posix(), dir_.path(), repair, &r);
    EXPECT_TRUE(s.is_ok()) << s.message();
    return r;
  }
  void flip(const std::string& file, uint64_t offset) {
    std::string image = read_file(file);
    ASSERT_LT(offset, image.size());
    image[offset] ^= 0x40;
    FILE* f = fopen(file.c_str(), "wb");
    fwrite(image.data(), 1, image.size(), f);
    fclose(f);
  }
  std::string box_dir(uint32_t id) {
    return dir_.path() + "/mbox/" + UserMail::mailbox_dir_name(id);
  }
  TempDir dir_;
  uint32_t inbox_ = 0;
  std::vector<MessageRecord> records_;
};

TEST_F(FsckTest, ACleanStoreIsClean) {
  FsckResult r = fsck(false);
  EXPECT_TRUE(r.damage.empty());
  EXPECT_TRUE(r.notes.empty());
  EXPECT_EQ(r.segments, 1u);
  EXPECT_EQ(r.records, 5u);
  EXPECT_EQ(r.mailboxes, 6u);
  EXPECT_EQ(r.messages, 6u);  // the copy counts in its mailbox
}

TEST_F(FsckTest, ADamagedMessageIsReportedAndCannotBeRepaired) {
  flip(dir_.path() + "/seg/00000001.seg", records_[2].blob.offset + 45);
  FsckResult r = fsck(false);
  ASSERT_EQ(r.damage.size(), 2u);
  EXPECT_EQ(
      r.damage[0].rfind(
          "seg/00000001.seg: damaged after offset " + std::to_string(records_[2].blob.offset), 0),
      0u);
  EXPECT_EQ(r.damage[1].rfind("mailbox INBOX UID 3: its message bytes are missing or damaged", 0),
            0u);
  FsckResult again = fsck(true);
  EXPECT_EQ(again.damage.size(), 2u);  // bytes cannot be made up: the damage is left, reported
}

TEST_F(FsckTest, ADamagedIndexIsRebuiltFromTheSegments) {
  flip(box_dir(inbox_) + "/index", 64 + 3);
  FsckResult r = fsck(false);
  ASSERT_EQ(r.damage.size(), 1u);
  EXPECT_EQ(r.damage[0], "mailbox INBOX: " + box_dir(inbox_) + "/index: records checksum mismatch");
  FsckResult repaired = fsck(true);
  EXPECT_TRUE(repaired.damage.empty());
  ASSERT_EQ(repaired.repairs.size(), 1u);
  EXPECT_EQ(repaired.repairs[0], "mailbox " + UserMail::mailbox_dir_name(inbox_) +
                                     ": index rebuilt from 5 messages in the segments");
  std::unique_ptr<UserMail> um;
  UserMail::OpenReport report;
  ASSERT_TRUE(UserMail::open(Env::posix(), dir_.path(), &um, &report).is_ok());
  MailboxIndex* idx;
  ASSERT_TRUE(um->index(inbox_, &idx).is_ok());
  ASSERT_EQ(idx->records().size(), 5u);
  EXPECT_EQ(idx->records()[4].uid, 5u);
  std::string_view bytes;
  ASSERT_TRUE(um->read(idx->records()[4], true, &bytes).is_ok());
  EXPECT_EQ(bytes, "Subject: 4\r\n\r\nbody\r\n");
  EXPECT_TRUE(fsck(false).damage.empty());
}

TEST_F(FsckTest, ALostMailboxListIsRebuiltWithoutLosingMail) {
  ASSERT_TRUE(Env::posix()->remove(dir_.path() + "/mailboxes").is_ok());
  FsckResult r = fsck(false);
  ASSERT_EQ(r.damage.size(), 1u);
  EXPECT_EQ(r.damage[0], "mailboxes: missing while mail exists");
  FsckResult repaired = fsck(true);
  EXPECT_TRUE(repaired.damage.empty());
  EXPECT_EQ(repaired.mailboxes, 6u);
  EXPECT_EQ(repaired.messages, 6u);
  std::unique_ptr<UserMail> um;
  UserMail::OpenReport report;
  ASSERT_TRUE(UserMail::open(Env::posix(), dir_.path(), &um, &report).is_ok());
  EXPECT_NE(um->find("INBOX"), nullptr);
  EXPECT_NE(um->find("Recovered/00000006"), nullptr);  // Archive's name is lost, not its mail
}

TEST_F(FsckTest, ATornTailIsANoteAndRepairCutsIt) {
  {
    FILE* f = fopen((dir_.path() + "/seg/00000001.seg").c_str(), "ab");
    fwrite("MSG1partial", 1, 11, f);
    fclose(f);
  }
  FsckResult r = fsck(false);
  EXPECT_TRUE(r.damage.empty());
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("a torn tail, cut at the next open"), std::string::npos);
  FsckResult repaired = fsck(true);
  EXPECT_TRUE(repaired.notes.empty());
  EXPECT_EQ(repaired.repairs, std::vector<std::string>{"torn tails cut"});
}

}  // namespace
}  // namespace ringmail
