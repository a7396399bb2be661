#include "protocol/authenticator.h"

namespace ringmail {

LoginResult verify_login(const UserStore& store, std::string_view user, std::string_view password,
                         std::string* error, std::string* app_label) {
  UserRecord rec;
  Status s = store.load(user, &rec);
  if (s.code() == Status::Code::not_found) {
    static const UserRecord kDummy =
        make_user_record("nobody", "not a password", UserStore::kDefaultIterations);
    (void)verify_password(kDummy, password);
    return LoginResult::bad_credentials;
  }
  if (!s.is_ok()) {
    *error = s.message();
    return LoginResult::error;
  }
  std::string label = match_app_password(rec, password);
  if (!label.empty()) {
    if (app_label) *app_label = label;
    return LoginResult::ok;
  }
  bool main_ok = verify_password(rec, password);
  return main_ok && !rec.app_only ? LoginResult::ok : LoginResult::bad_credentials;
}

Sha256Digest CredentialCache::mac(std::string_view user, std::string_view password) {
  std::string msg;
  msg.reserve(user.size() + 1 + password.size());
  msg.append(user).push_back('\0');
  msg.append(password);
  return hmac_sha256(process_secret(), msg);
}

bool CredentialCache::check(std::string_view user, std::string_view password, uint64_t now_ms,
                            uint64_t epoch, std::string* app_label) {
  if (epoch != epoch_) {
    entries_.clear();
    epoch_ = epoch;
  }
  if (ttl_ms_ == 0) return false;
  auto it = entries_.find(std::string(user));
  if (it == entries_.end() || it->second.expires_ms <= now_ms) return false;
  Sha256Digest m = mac(user, password);
  if (!constant_time_equal(as_view(m), as_view(it->second.mac))) return false;
  *app_label = it->second.app_label;
  return true;
}

void CredentialCache::remember(std::string_view user, std::string_view password, uint64_t now_ms,
                               const std::string& app_label) {
  if (ttl_ms_ == 0) return;
  if (entries_.size() >= kEntriesMax) {
    std::erase_if(entries_, [now_ms](const auto& e) { return e.second.expires_ms <= now_ms; });
    if (entries_.size() >= kEntriesMax) entries_.clear();
  }
  entries_[std::string(user)] = Entry{mac(user, password), now_ms + ttl_ms_, app_label};
}

}  // namespace ringmail
