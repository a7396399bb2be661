#include "storage/user_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>

#include "protocol/authenticator.h"
#include "storage/fault_env.h"

namespace ringmail {
namespace {

class UserStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ringmail-users-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)!system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(UserStoreTest, AddLoadVerifyDelete) {
  UserStore s(dir_);
  EXPECT_TRUE(s.empty());
  ASSERT_TRUE(s.add("alice", "correct horse", 4096).is_ok());
  EXPECT_FALSE(s.empty());
  EXPECT_EQ(s.add("alice", "other", 4096).code(), Status::Code::already_exists);
  UserRecord rec;
  ASSERT_TRUE(s.load("alice", &rec).is_ok());
  EXPECT_EQ(rec.iterations, 4096u);
  EXPECT_EQ(rec.salt.size(), 16u);
  EXPECT_TRUE(verify_password(rec, "correct horse"));
  EXPECT_FALSE(verify_password(rec, "correct horse "));
  std::vector<std::string> names;
  ASSERT_TRUE(s.add("bob", "x", 4096).is_ok());
  ASSERT_TRUE(s.list(&names).is_ok());
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "bob"}));
  ASSERT_TRUE(s.remove("alice").is_ok());
  EXPECT_EQ(s.load("alice", &rec).code(), Status::Code::not_found);
  EXPECT_EQ(s.remove("alice").code(), Status::Code::not_found);
}

TEST_F(UserStoreTest, RecordsArePrivateAndShardedByName) {
  UserStore s(dir_);
  ASSERT_TRUE(s.add("carol", "pw", 4096).is_ok());
  std::string dir = s.user_dir("carol");
  EXPECT_EQ(dir.substr(0, dir_.size() + 7), dir_ + "/users/");
  EXPECT_EQ(dir.size(), dir_.size() + 7 + 3 + 5);  // "xx/" shard, then the name
  struct stat st;
  ASSERT_EQ(stat((dir + "/auth").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(UserStoreTest, NamesThatCouldEscapeAreRefused) {
  for (const char* bad : {"", ".", "..", "../x", "a/b", "Alice", "-x", ".hidden", "a b", "a\nb"})
    EXPECT_FALSE(UserStore::valid_name(bad)) << bad;
  for (const char* good : {"alice", "a.b", "a+b@example.org", "x_1-2"})
    EXPECT_TRUE(UserStore::valid_name(good)) << good;
  UserStore s(dir_);
  EXPECT_EQ(s.add("../evil", "pw", 4096).code(), Status::Code::invalid);
}

TEST_F(UserStoreTest, ACorruptRecordIsReportedNotTrusted) {
  UserStore s(dir_);
  ASSERT_TRUE(s.add("dave", "pw", 4096).is_ok());
  std::ofstream(s.user_dir("dave") + "/auth") << "{\"format\":1,\"name\":\"dave\"}";
  UserRecord rec;
  EXPECT_EQ(s.load("dave", &rec).code(), Status::Code::corrupt);
  std::string error;
  EXPECT_EQ(verify_login(s, "dave", "pw", &error), LoginResult::error);
  EXPECT_NE(error.find("missing or mistyped field"), std::string::npos);
}

TEST_F(UserStoreTest, VerifyLoginTellsOkFromBadCredentials) {
  UserStore s(dir_);
  ASSERT_TRUE(s.add("erin", "s3cret", 4096).is_ok());
  std::string error;
  EXPECT_EQ(verify_login(s, "erin", "s3cret", &error), LoginResult::ok);
  EXPECT_EQ(verify_login(s, "erin", "wrong", &error), LoginResult::bad_credentials);
  EXPECT_EQ(verify_login(s, "nobody", "s3cret", &error), LoginResult::bad_credentials);
}

TEST_F(UserStoreTest, AFullDiskOrAFailingSyncAddsNoUserAndKeepsTheOldPassword) {
  FaultEnv env(Env::posix());
  UserStore s(dir_, &env);
  ASSERT_TRUE(s.add("frank", "old", 4096).is_ok());
  env.set_disk_full(true);
  EXPECT_EQ(s.add("gina", "pw", 4096).code(), Status::Code::no_space);
  EXPECT_EQ(s.set_password("frank", "new", 4096).code(), Status::Code::no_space);
  env.set_disk_full(false);
  env.set_fail_syncs(true);
  EXPECT_EQ(s.set_password("frank", "new", 4096).code(), Status::Code::io_error);
  env.set_fail_syncs(false);
  UserRecord rec;
  EXPECT_EQ(s.load("gina", &rec).code(), Status::Code::not_found);
  ASSERT_TRUE(s.load("frank", &rec).is_ok());
  EXPECT_TRUE(verify_password(rec, "old"));
}

TEST_F(UserStoreTest, ABulkImportIsDurableOnlyAfterSyncAll) {
  FaultEnv env(Env::posix());
  UserStore s(dir_, &env);
  s.set_deferred_sync(true);
  ASSERT_TRUE(s.add("hal", "pw", 4096).is_ok());
  ASSERT_TRUE(env.crash().is_ok());  // before sync_all: as if never added
  UserRecord rec;
  EXPECT_EQ(s.load("hal", &rec).code(), Status::Code::not_found);
  ASSERT_TRUE(s.add("hal", "pw", 4096).is_ok());
  ASSERT_TRUE(s.sync_all().is_ok());
  ASSERT_TRUE(env.crash().is_ok());
  ASSERT_TRUE(s.load("hal", &rec).is_ok());
  EXPECT_TRUE(verify_password(rec, "pw"));
}

TEST(CredentialCache, RemembersSuccessesUntilTheyExpire) {
  CredentialCache cache(1000);
  EXPECT_FALSE(cache.check("alice", "pw", 0));
  cache.remember("alice", "pw", 0);
  EXPECT_TRUE(cache.check("alice", "pw", 999));
  EXPECT_FALSE(cache.check("alice", "pw2", 999));
  EXPECT_FALSE(cache.check("alice", "pw", 1000));
  cache.remember("alice", "pw", 0);
  cache.forget("alice");
  EXPECT_FALSE(cache.check("alice", "pw", 1));
}

}  // namespace
}  // namespace ringmail
