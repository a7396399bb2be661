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

struct UserRecord {
  std::string name;
  uint32_t iterations = 0;
  std::string salt;
  Sha256Digest stored_key{};
  Sha256Digest server_key{};
};

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

  explicit UserStore(std::string data_dir, Env* env = Env::posix())
      : data_dir_(std::move(data_dir)), env_(env) {}

  // Lowercase ASCII letters, digits and . _ - + @; 1 to 64 bytes; not starting with '.' or '-'.
  static bool valid_name(std::string_view name);
  // The directory holding everything of one user.
  std::string user_dir(std::string_view name) const;

  Status add(std::string_view name, std::string_view password, uint32_t iterations);
  Status set_password(std::string_view name, std::string_view password, uint32_t iterations);
  Status remove(std::string_view name);
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
