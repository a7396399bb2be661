#include "storage/user_store.h"
#include "storage/password_policy.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>

#include "protocol/authenticator.h"
#include "storage/fault_env.h"
#include "tests/unit/temp_dir.h"

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
  std::string label;
  EXPECT_FALSE(cache.check("alice", "pw", 0, 0, &label));
  cache.remember("alice", "pw", 0, "");
  EXPECT_TRUE(cache.check("alice", "pw", 999, 0, &label));
  EXPECT_FALSE(cache.check("alice", "pw2", 999, 0, &label));
  EXPECT_FALSE(cache.check("alice", "pw", 1000, 0, &label));
  cache.remember("alice", "pw", 0, "");
  cache.forget("alice");
  EXPECT_FALSE(cache.check("alice", "pw", 1, 0, &label));
}

TEST(CredentialCache, KeepsTheAppPasswordLabelAndForgetsAllWhenTheEpochMoves) {
  CredentialCache cache(1000);
  std::string label;
  cache.remember("alice", "app-pw", 0, "phone");
  ASSERT_TRUE(cache.check("alice", "app-pw", 1, 0, &label));
  EXPECT_EQ(label, "phone");
  EXPECT_FALSE(cache.check("alice", "app-pw", 2, 1, &label));  // an admin changed credentials
  EXPECT_EQ(cache.size(), 0u);
}

TEST(UserStoreApp, AppPasswordsAreMadeCheckedListedAndRevoked) {
  TempDir dir;
  UserStore s(dir.path());
  ASSERT_TRUE(s.add("ann", "main-password-1", 4096).is_ok());
  std::string phone, laptop, error, label;
  ASSERT_TRUE(s.add_app_password("ann", "phone", &phone).is_ok());
  ASSERT_TRUE(s.add_app_password("ann", "laptop", &laptop).is_ok());
  EXPECT_EQ(phone.size(), 29u);  // 24 characters in groups of 4
  EXPECT_NE(phone, laptop);
  EXPECT_EQ(s.add_app_password("ann", "phone", &error).code(), Status::Code::already_exists);
  EXPECT_EQ(s.add_app_password("ann", "bad label", &error).code(), Status::Code::invalid);
  EXPECT_EQ(verify_login(s, "ann", phone, &error, &label), LoginResult::ok);
  EXPECT_EQ(label, "phone");
  label.clear();
  EXPECT_EQ(verify_login(s, "ann", "main-password-1", &error, &label), LoginResult::ok);
  EXPECT_EQ(label, "");
  // A new main password keeps the app passwords; app-only refuses the main one.
  ASSERT_TRUE(s.set_password("ann", "main-password-2", 4096).is_ok());
  EXPECT_EQ(verify_login(s, "ann", laptop, &error, &label), LoginResult::ok);
  ASSERT_TRUE(s.set_app_only("ann", true).is_ok());
  EXPECT_EQ(verify_login(s, "ann", "main-password-2", &error, &label),
            LoginResult::bad_credentials);
  EXPECT_EQ(verify_login(s, "ann", laptop, &error, &label), LoginResult::ok);
  ASSERT_TRUE(s.revoke_app_password("ann", "laptop").is_ok());
  EXPECT_EQ(verify_login(s, "ann", laptop, &error, &label), LoginResult::bad_credentials);
  EXPECT_EQ(s.revoke_app_password("ann", "laptop").code(), Status::Code::not_found);
  UserRecord rec;
  ASSERT_TRUE(s.load("ann", &rec).is_ok());
  ASSERT_EQ(rec.app_passwords.size(), 1u);
  EXPECT_EQ(rec.app_passwords[0].label, "phone");
  EXPECT_TRUE(rec.app_only);
}

TEST(PasswordPolicy, RefusesShortCommonAndNameBasedPasswords) {
  std::string why;
  EXPECT_FALSE(password_acceptable("short-pw", "ann", &why));
  EXPECT_EQ(why, "the password is too short: use at least 10 characters");
  EXPECT_FALSE(password_acceptable("Password123", "ann", &why));
  EXPECT_EQ(why, "the password is one of the most common ones: guessers try it first");
  EXPECT_FALSE(password_acceptable("my-name-is-Annabel", "annabel", &why));
  EXPECT_EQ(why, "the password contains the user name");
  EXPECT_FALSE(password_acceptable("zzzzzzzzzzzz", "ann", &why));
  EXPECT_TRUE(password_acceptable("correct horse battery", "ann", &why));
}

}  // namespace
}  // namespace ringmail
