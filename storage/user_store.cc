#include "storage/user_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/assert.h"

namespace ringmail {
namespace {

constexpr int kRecordFormat = 1;
constexpr size_t kSaltBytes = 16;
constexpr size_t kRecordBytesMax = 4096;

std::string errno_text(const std::string& what) {
  return what + ": " + strerror(errno);
}

// mkdir -p for the directories below the data dir, each 0700.
Status make_dirs(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); pos++) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string part = path.substr(0, pos);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::io_error(errno_text(part));
  }
  return Status::ok();
}

Status fsync_dir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::io_error(errno_text(dir));
  int rc = fsync(fd);
  close(fd);
  return rc == 0 ? Status::ok() : Status::io_error(errno_text("fsync " + dir));
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::io_error(errno_text("write " + path));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

Status remove_tree(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (!d) return errno == ENOENT ? Status::ok() : Status::io_error(errno_text(path));
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string child = path + "/" + name;
    struct stat st;
    if (lstat(child.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      Status s = remove_tree(child);
      if (!s.is_ok()) {
        closedir(d);
        return s;
      }
    } else if (unlink(child.c_str()) != 0) {
      closedir(d);
      return Status::io_error(errno_text(child));
    }
  }
  closedir(d);
  return rmdir(path.c_str()) == 0 ? Status::ok() : Status::io_error(errno_text(path));
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
  Status s = make_dirs(dir);
  if (!s.is_ok()) return s;
  std::string json = "{\"format\":" + std::to_string(kRecordFormat) + ",\"name\":\"" + rec.name +
                     "\",\"scram_sha256\":{\"iterations\":" + std::to_string(rec.iterations) +
                     ",\"salt\":\"" + base64_encode(rec.salt) + "\",\"stored_key\":\"" +
                     base64_encode(as_view(rec.stored_key)) + "\",\"server_key\":\"" +
                     base64_encode(as_view(rec.server_key)) + "\"}}\n";
  // Write a new file, make it durable, then rename it over the old one: a crash leaves either
  // the old record or the new one, never a torn one.
  std::string tmp = dir + "/auth.tmp";
  std::string path = dir + "/auth";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::io_error(errno_text(tmp));
  s = write_all(fd, json, tmp);
  if (s.is_ok() && !deferred_sync_ && fsync(fd) != 0) {
    s = Status::io_error(errno_text("fsync " + tmp));
  }
  close(fd);
  if (!s.is_ok()) return s;
  if (rename(tmp.c_str(), path.c_str()) != 0) return Status::io_error(errno_text("rename " + tmp));
  return deferred_sync_ ? Status::ok() : fsync_dir(dir);
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
  return deferred_sync_ ? Status::ok() : fsync_dir(dir.substr(0, dir.rfind('/')));
}

Status UserStore::set_password(std::string_view name, std::string_view password,
                               uint32_t iterations) {
  UserRecord existing;
  Status s = load(name, &existing);
  if (!s.is_ok()) return s;
  return write_record(make_user_record(name, password, iterations));
}

Status UserStore::remove(std::string_view name) {
  if (!valid_name(name)) return Status::invalid("invalid user name");
  std::string dir = user_dir(name);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return Status::not_found("no user " + std::string(name));
  Status s = remove_tree(dir);
  if (!s.is_ok()) return s;
  return fsync_dir(dir.substr(0, dir.rfind('/')));
}

Status UserStore::load(std::string_view name, UserRecord* out) const {
  if (!valid_name(name)) return Status::not_found("no such user");
  std::string path = user_dir(name) + "/auth";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return errno == ENOENT || errno == ENOTDIR ? Status::not_found("no user " + std::string(name))
                                               : Status::io_error(errno_text(path));
  }
  char buf[kRecordBytesMax];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n < 0) return Status::io_error(errno_text(path));
  if (static_cast<size_t>(n) == sizeof buf) return Status::corrupt(path + ": record too large");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(buf, static_cast<size_t>(n)).get(root))
    return Status::corrupt(path + ": not valid JSON");
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
  return Status::ok();
}

Status UserStore::sync_all() const {
  int fd = open(data_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::io_error(errno_text(data_dir_));
  int rc = syncfs(fd);
  close(fd);
  return rc == 0 ? Status::ok() : Status::io_error(errno_text("syncfs " + data_dir_));
}

bool UserStore::empty() const {
  std::string root = data_dir_ + "/users";
  DIR* d = opendir(root.c_str());
  if (!d) return true;
  bool found = false;
  while (!found) {
    dirent* shard = readdir(d);
    if (!shard) break;
    if (shard->d_name[0] == '.') continue;
    DIR* sd = opendir((root + "/" + shard->d_name).c_str());
    if (!sd) continue;
    while (dirent* e = readdir(sd)) {
      if (valid_name(e->d_name)) {
        found = true;
        break;
      }
    }
    closedir(sd);
  }
  closedir(d);
  return !found;
}

Status UserStore::list(std::vector<std::string>* names) const {
  std::string root = data_dir_ + "/users";
  DIR* d = opendir(root.c_str());
  if (!d) return errno == ENOENT ? Status::ok() : Status::io_error(errno_text(root));
  while (dirent* shard = readdir(d)) {
    if (shard->d_name[0] == '.') continue;
    std::string shard_dir = root + "/" + shard->d_name;
    DIR* sd = opendir(shard_dir.c_str());
    if (!sd) continue;
    while (dirent* e = readdir(sd)) {
      std::string n = e->d_name;
      if (n != "." && n != ".." && valid_name(n)) names->push_back(n);
    }
    closedir(sd);
  }
  closedir(d);
  std::sort(names->begin(), names->end());
  return Status::ok();
}

}  // namespace ringmail
