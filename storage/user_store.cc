#include "storage/user_store.h"

#include <simdjson.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/assert.h"

namespace ringmail {
namespace {

constexpr int kRecordFormat = 1;
constexpr size_t kSaltBytes = 16;
constexpr size_t kRecordBytesMax = 64 * 1024;

Sha256Digest app_hash(std::string_view salt, std::string_view password) {
  std::string m(salt);
  m.append(password);
  Sha256Digest d = sha256(m);
  explicit_bzero(m.data(), m.size());
  return d;
}

}  // namespace

UserRecord make_user_record(std::string_view name, std::string_view password, uint32_t iterations) {
  UserRecord rec;
  rec.name = std::string(name);
  rec.iterations = iterations;
  rec.salt.resize(kSaltBytes);
  random_bytes(rec.salt.data(), rec.salt.size());
  Sha256Digest salted = pbkdf2_sha256(password, rec.salt, iterations);
  Sha256Digest client_key = hmac_sha256(as_view(salted), "Client Key");
  rec.stored_key = sha256(as_view(client_key));
  rec.server_key = hmac_sha256(as_view(salted), "Server Key");
  return rec;
}

bool verify_password(const UserRecord& rec, std::string_view password) {
  Sha256Digest salted = pbkdf2_sha256(password, rec.salt, rec.iterations);
  Sha256Digest client_key = hmac_sha256(as_view(salted), "Client Key");
  Sha256Digest stored = sha256(as_view(client_key));
  return constant_time_equal(as_view(stored), as_view(rec.stored_key));
}

std::string match_app_password(const UserRecord& rec, std::string_view password) {
  std::string label;
  for (const AppPassword& a : rec.app_passwords) {
    Sha256Digest h = app_hash(a.salt, password);
    if (constant_time_equal(as_view(h), as_view(a.hash)) && label.empty()) label = a.label;
  }
  return label;
}

bool UserStore::valid_label(std::string_view label) {
  if (label.empty() || label.size() > 64) return false;
  return std::all_of(label.begin(), label.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

Status UserStore::add_app_password(std::string_view name, std::string_view label,
                                   std::string* password) {
  if (!valid_label(label)) return Status::invalid("invalid label");
  UserRecord rec;
  Status s = load(name, &rec);
  if (!s.is_ok()) return s;
  for (const AppPassword& a : rec.app_passwords)
    if (a.label == label)
      return Status::already_exists("app password " + std::string(label) + " exists");
  if (rec.app_passwords.size() >= kAppPasswordsMax)
    return Status::invalid("at most " + std::to_string(kAppPasswordsMax) + " app passwords");
  // 24 characters from 32 (no 0/O, 1/l/I): 120 bits, in groups of 4 for reading aloud.
  static const char kAlphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
  unsigned char raw[24];
  random_bytes(raw, sizeof raw);
  password->clear();
  for (size_t i = 0; i < sizeof raw; i++) {
    if (i > 0 && i % 4 == 0) password->push_back('-');
    password->push_back(kAlphabet[raw[i] & 31]);
  }
  AppPassword a;
  a.label = std::string(label);
  a.salt.resize(kSaltBytes);
  random_bytes(a.salt.data(), a.salt.size());
  a.hash = app_hash(a.salt, *password);
  a.created = static_cast<int64_t>(time(nullptr));
  rec.app_passwords.push_back(std::move(a));
  return write_record(rec);
}

Status UserStore::revoke_app_password(std::string_view name, std::string_view label) {
  UserRecord rec;
  Status s = load(name, &rec);
  if (!s.is_ok()) return s;
  auto it = std::find_if(rec.app_passwords.begin(), rec.app_passwords.end(),
                         [&](const AppPassword& a) { return a.label == label; });
  if (it == rec.app_passwords.end())
    return Status::not_found("no app password " + std::string(label));
  rec.app_passwords.erase(it);
  return write_record(rec);
}

Status UserStore::set_app_only(std::string_view name, bool on) {
  UserRecord rec;
  Status s = load(name, &rec);
  if (!s.is_ok()) return s;
  rec.app_only = on;
  return write_record(rec);
}

bool UserStore::valid_name(std::string_view name) {
  if (name.empty() || name.size() > kNameBytesMax || name[0] == '.' || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '+' || c == '@';
  });
}

// Sharded by a hash of the name so that no directory ever holds a million entries.
std::string UserStore::user_dir(std::string_view name) const {
  RM_ASSERT(valid_name(name));
  char shard[3];
  snprintf(shard, sizeof shard, "%02x",
           static_cast<unsigned>(XXH3_64bits(name.data(), name.size()) & 0xff));
  return data_dir_ + "/users/" + shard + "/" + std::string(name);
}

Status UserStore::write_record(const UserRecord& rec) const {
  std::string dir = user_dir(rec.name);
  Status s = env_->make_dirs(dir);
  if (!s.is_ok()) return s;
  std::string json = "{\"format\":" + std::to_string(kRecordFormat) + ",\"name\":\"" + rec.name +
                     "\",\"scram_sha256\":{\"iterations\":" + std::to_string(rec.iterations) +
                     ",\"salt\":\"" + base64_encode(rec.salt) + "\",\"stored_key\":\"" +
                     base64_encode(as_view(rec.stored_key)) + "\",\"server_key\":\"" +
                     base64_encode(as_view(rec.server_key)) + "\"}";
  if (rec.app_only) json += ",\"app_only\":true";
  if (!rec.app_passwords.empty()) {
    json += ",\"app_passwords\":[";
    for (size_t i = 0; i < rec.app_passwords.size(); i++) {
      const AppPassword& a = rec.app_passwords[i];
      json += (i ? ",{\"label\":\"" : "{\"label\":\"") + a.label + "\",\"salt\":\"" +
              base64_encode(a.salt) + "\",\"sha256\":\"" + base64_encode(as_view(a.hash)) +
              "\",\"created\":" + std::to_string(a.created) + "}";
    }
    json += "]";
  }
  json += "}\n";
  // A crash leaves either the old record or the new one, never a torn one.
  return env_->write_atomic(dir + "/auth", json, !deferred_sync_);
}

Status UserStore::add(std::string_view name, std::string_view password, uint32_t iterations) {
  if (!valid_name(name)) return Status::invalid("invalid user name");
  UserRecord existing;
  Status s = load(name, &existing);
  if (s.is_ok()) return Status::already_exists("user " + std::string(name) + " already exists");
  if (s.code() != Status::Code::not_found) return s;
  s = write_record(make_user_record(name, password, iterations));
  if (!s.is_ok()) return s;
  // The new user's directory entry itself must survive a crash too.
  std::string dir = user_dir(name);
  return deferred_sync_ ? Status::ok() : env_->sync_dir(dir.substr(0, dir.rfind('/')));
}

Status UserStore::set_password(std::string_view name, std::string_view password,
                               uint32_t iterations) {
  UserRecord existing;
  Status s = load(name, &existing);
  if (!s.is_ok()) return s;
  UserRecord rec = make_user_record(name, password, iterations);
  rec.app_only = existing.app_only;  // a new password leaves the app passwords as they are
  rec.app_passwords = std::move(existing.app_passwords);
  return write_record(rec);
}

Status UserStore::remove(std::string_view name) {
  if (!valid_name(name)) return Status::invalid("invalid user name");
  std::string dir = user_dir(name);
  if (!env_->exists(dir)) return Status::not_found("no user " + std::string(name));
  Status s = env_->remove_tree(dir);
  if (!s.is_ok()) return s;
  return env_->sync_dir(dir.substr(0, dir.rfind('/')));
}

Status UserStore::load(std::string_view name, UserRecord* out) const {
  if (!valid_name(name)) return Status::not_found("no such user");
  std::string dir = user_dir(name);
  for (const std::string& d : {data_dir_ + "/users", dir.substr(0, dir.rfind('/')), dir})
    if (env_->is_symlink(d)) return Status::corrupt(d + " is a symbolic link: refused");
  std::string path = dir + "/auth";
  std::unique_ptr<ReadFile> f;
  Status rs = env_->open_read(path, &f);
  if (rs.code() == Status::Code::not_found)
    return Status::not_found("no user " + std::string(name));
  if (!rs.is_ok()) return rs;
  if (f->data().size() > kRecordBytesMax) return Status::corrupt(path + ": record too large");
  // simdjson wants padding past the end: parse a copy.
  std::string buf(f->data());
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(buf).get(root)) return Status::corrupt(path + ": not valid JSON");
  int64_t format = 0;
  std::string_view rec_name, salt, stored, server;
  int64_t iterations = 0;
  if (root["format"].get_int64().get(format) || format != kRecordFormat ||
      root["name"].get_string().get(rec_name) ||
      root["scram_sha256"]["iterations"].get_int64().get(iterations) ||
      root["scram_sha256"]["salt"].get_string().get(salt) ||
      root["scram_sha256"]["stored_key"].get_string().get(stored) ||
      root["scram_sha256"]["server_key"].get_string().get(server))
    return Status::corrupt(path + ": missing or mistyped field");
  if (rec_name != name || iterations < 1 || iterations > (1 << 30))
    return Status::corrupt(path + ": name or iteration count does not fit");
  std::string stored_raw, server_raw;
  out->name = std::string(name);
  out->iterations = static_cast<uint32_t>(iterations);
  if (!base64_decode(salt, &out->salt) || !base64_decode(stored, &stored_raw) ||
      !base64_decode(server, &server_raw) || stored_raw.size() != 32 || server_raw.size() != 32)
    return Status::corrupt(path + ": bad key encoding");
  memcpy(out->stored_key.data(), stored_raw.data(), 32);
  memcpy(out->server_key.data(), server_raw.data(), 32);
  bool app_only = false;
  out->app_only = !root["app_only"].get_bool().get(app_only) && app_only;
  out->app_passwords.clear();
  simdjson::dom::array apps;
  if (!root["app_passwords"].get_array().get(apps)) {
    for (simdjson::dom::element e : apps) {
      std::string_view label, asalt, hash;
      int64_t created = 0;
      std::string hash_raw;
      AppPassword a;
      if (e["label"].get_string().get(label) || e["salt"].get_string().get(asalt) ||
          e["sha256"].get_string().get(hash) || e["created"].get_int64().get(created) ||
          !base64_decode(asalt, &a.salt) || !base64_decode(hash, &hash_raw) ||
          hash_raw.size() != 32 || !valid_label(label))
        return Status::corrupt(path + ": bad app password entry");
      a.label = std::string(label);
      memcpy(a.hash.data(), hash_raw.data(), 32);
      a.created = created;
      out->app_passwords.push_back(std::move(a));
    }
  }
  return Status::ok();
}

Status UserStore::sync_all() const {
  return env_->sync_all(data_dir_);
}

bool UserStore::empty() const {
  std::vector<std::string> shards;
  if (!env_->list_dir(data_dir_ + "/users", &shards).is_ok()) return true;
  for (const std::string& shard : shards) {
    std::vector<std::string> names;
    if (!env_->list_dir(data_dir_ + "/users/" + shard, &names).is_ok()) continue;
    for (const std::string& n : names)
      if (valid_name(n)) return false;
  }
  return true;
}

Status UserStore::list(std::vector<std::string>* names) const {
  std::vector<std::string> shards;
  Status s = env_->list_dir(data_dir_ + "/users", &shards);
  if (s.code() == Status::Code::not_found) return Status::ok();
  if (!s.is_ok()) return s;
  for (const std::string& shard : shards) {
    std::vector<std::string> in_shard;
    if (!env_->list_dir(data_dir_ + "/users/" + shard, &in_shard).is_ok()) continue;
    for (const std::string& n : in_shard)
      if (valid_name(n)) names->push_back(n);
  }
  std::sort(names->begin(), names->end());
  return Status::ok();
}

}  // namespace ringmail
