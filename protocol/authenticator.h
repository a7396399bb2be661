// Password checks for LOGIN (and later SASL). The slow part, PBKDF2, runs on the helper pool
// (verify_login); a per-core cache of recent successes (CredentialCache) makes later logins of
// the same user with the same password cost microseconds (DESIGN.md section 5).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/crypto.h"
#include "storage/user_store.h"

namespace ringmail {

enum class LoginResult { ok, bad_credentials, error };

// Blocking: reads the user's record and runs PBKDF2. Helper threads only. An unknown user costs
// the same work as a known one, so timing does not tell whether a name exists.
// An app password matches first (its label goes to *app_label); an account set to app passwords
// only refuses its main password (after the same hash, so timing tells nothing).
LoginResult verify_login(const UserStore& store, std::string_view user, std::string_view password,
                         std::string* error, std::string* app_label = nullptr);

// Remembers successful (user, password) pairs as a keyed MAC under a per-process secret, so the
// cache never holds a password. Failures are never remembered.
class CredentialCache {
 public:
  static constexpr size_t kEntriesMax = 65536;

  explicit CredentialCache(uint64_t ttl_ms) : ttl_ms_(ttl_ms) {}
  // `epoch` is the server's credentials epoch: when an admin changed any password (passwd,
  // del, app-password revoke), it moved on and every cached login is forgotten.
  bool check(std::string_view user, std::string_view password, uint64_t now_ms, uint64_t epoch,
             std::string* app_label);
  void remember(std::string_view user, std::string_view password, uint64_t now_ms,
                const std::string& app_label);
  void forget(std::string_view user) { entries_.erase(std::string(user)); }
  size_t size() const { return entries_.size(); }
  // HMAC-SHA256 of user and password under the per-process secret.
  static Sha256Digest mac(std::string_view user, std::string_view password);

 private:
  struct Entry {
    Sha256Digest mac;
    uint64_t expires_ms;
    std::string app_label;
  };
  uint64_t ttl_ms_;
  uint64_t epoch_ = 0;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace ringmail
