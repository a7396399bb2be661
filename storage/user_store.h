// The user database: one small record per user, in the user's own directory
// (DATA/users/<shard>/<name>/auth; see storage/FORMAT.md). The record keeps the SCRAM-SHA-256
// keys derived with PBKDF2 (RFC 7677), never the password: LOGIN checks a password against the
// StoredKey, and SCRAM can later use the same record.
//
// Every call does blocking file I/O: call it from the admin CLI or a helper thread, never from a
// reactor thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/crypto.h"
#include "core/status.h"
#include "storage/env.h"

namespace ringmail {

// An app password: a long random password made by the server for one client (a phone, a desktop
// client), individually revocable. Being random and long, it is stored as a salted SHA-256 (a
// slow hash adds nothing against guessing 100 random bits, and would cost every login).
struct AppPassword {
  std::string label;
  std::string salt;
  Sha256Digest hash{};
  int64_t created = 0;  // unix seconds
};

struct UserRecord {
  std::string name;
  uint32_t iterations = 0;
  std::string salt;
  Sha256Digest stored_key{};
  Sha256Digest server_key{};
  bool app_only = false;  // IMAP accepts only app passwords
  std::vector<AppPassword> app_passwords;
};

// The label of the app password `password` matches, or "" (constant time per entry).
std::string match_app_password(const UserRecord& rec, std::string_view password);

// Derives a record's keys from a password.
UserRecord make_user_record(std::string_view name, std::string_view password, uint32_t iterations);
// True when `password` matches the record (constant time in the comparison).
bool verify_password(const UserRecord& rec, std::string_view password);

class UserStore {
 public:
  static constexpr uint32_t kDefaultIterations = 100000;
  static constexpr uint32_t kMinIterations = 4096;  // RFC 7677 section 4
  static constexpr size_t kNameBytesMax = 64;
  static constexpr size_t kPasswordBytesMax = 1024;
  static constexpr size_t kAppPasswordsMax = 32;

  explicit UserStore(std::string data_dir, Env* env = Env::posix())
      : data_dir_(std::move(data_dir)), env_(env) {}

  // Lowercase ASCII letters, digits and . _ - + @; 1 to 64 bytes; not starting with '.' or '-'.
  static bool valid_name(std::string_view name);
  // The directory holding everything of one user.
  std::string user_dir(std::string_view name) const;

  Status add(std::string_view name, std::string_view password, uint32_t iterations);
  Status set_password(std::string_view name, std::string_view password, uint32_t iterations);
  Status remove(std::string_view name);
  // App passwords. `label`: 1 to 64 of A-Z a-z 0-9 . _ -; unique per user. add() makes the
  // password (24 characters, about 120 random bits) and returns it: it is shown once.
  static bool valid_label(std::string_view label);
  Status add_app_password(std::string_view name, std::string_view label, std::string* password);
  Status revoke_app_password(std::string_view name, std::string_view label);
  Status set_app_only(std::string_view name, bool on);
  Status load(std::string_view name, UserRecord* out) const;
  Status list(std::vector<std::string>* names) const;
  // Bulk changes (ringmail user import): with deferred sync the per-file fsyncs are skipped, and
  // sync_all() makes everything durable at once at the end (syncfs). Nothing is reported done
  // before sync_all() succeeded.
  void set_deferred_sync(bool on) { deferred_sync_ = on; }
  Status sync_all() const;
  // True when there is no user at all; stops at the first one found.
  bool empty() const;

 private:
  Status write_record(const UserRecord& rec) const;
  std::string data_dir_;
  Env* env_;
  bool deferred_sync_ = false;
};

}  // namespace ringmail
