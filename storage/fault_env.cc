#include "storage/fault_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ringmail {

class FaultAppendFile : public AppendFile {
 public:
  FaultAppendFile(FaultEnv* env, std::string path, std::unique_ptr<AppendFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  Status append(std::string_view data) override {
    if (env_->disk_full_) return Status::no_space("write " + path_ + ": No space left on device");
    if (env_->short_write_bytes_ < data.size()) {
      uint64_t n = env_->short_write_bytes_;
      env_->short_write_bytes_ = UINT64_MAX;
      Status s = base_->append(data.substr(0, n));
      return s.is_ok() ? Status::io_error("write " + path_ + ": short write (injected)") : s;
    }
    return base_->append(data);
  }
  Status sync() override {
    if (env_->fail_syncs_) return Status::io_error("fdatasync " + path_ + ": I/O error (injected)");
    Status s = base_->sync();
    if (s.is_ok()) env_->files_[path_].synced = base_->size();
    return s;
  }
  Status truncate(uint64_t size) override {
    Status s = base_->truncate(size);
    FaultEnv::FileState& st = env_->files_[path_];
    if (st.synced > size) st.synced = size;
    return s;
  }
  uint64_t size() const override { return base_->size(); }
  int fd() const override { return base_->fd(); }

 private:
  FaultEnv* env_;
  std::string path_;
  std::unique_ptr<AppendFile> base_;
};

Status FaultEnv::open_append(const std::string& path, bool create,
                             std::unique_ptr<AppendFile>* out) {
  bool existed = base_->exists(path);
  std::unique_ptr<AppendFile> base;
  Status s = base_->open_append(path, create, &base);
  if (!s.is_ok()) return s;
  if (!files_.count(path)) {
    // A file from before the faults began counts as durable as it stands.
    files_[path] = FileState{existed ? base->size() : 0, existed};
  }
  *out = std::make_unique<FaultAppendFile>(this, path, std::move(base));
  return Status::ok();
}

Status FaultEnv::write_atomic(const std::string& path, std::string_view data, bool durable) {
  if (disk_full_) return Status::no_space("write " + path + ": No space left on device");
  if (fail_syncs_ && durable)
    return Status::io_error("fsync " + path + ".tmp: I/O error (injected)");
  Status s = base_->write_atomic(path, data, durable);
  if (s.is_ok()) files_[path] = durable ? FileState{data.size(), true} : FileState{0, false};
  return s;
}

Status FaultEnv::remove_tree(const std::string& path) {
  std::erase_if(files_, [&path](const auto& f) {
    return f.first.size() > path.size() && f.first.compare(0, path.size(), path) == 0 &&
           f.first[path.size()] == '/';
  });
  return base_->remove_tree(path);
}

Status FaultEnv::sync_all(const std::string& path) {
  if (fail_syncs_) return Status::io_error("syncfs " + path + ": I/O error (injected)");
  Status s = base_->sync_all(path);
  if (!s.is_ok()) return s;
  for (auto& [name, st] : files_) {
    struct stat info;
    if (stat(name.c_str(), &info) == 0) st.synced = static_cast<uint64_t>(info.st_size);
    st.entry_durable = true;
  }
  return s;
}

Status FaultEnv::sync_dir(const std::string& path) {
  if (fail_syncs_) return Status::io_error("fsync " + path + ": I/O error (injected)");
  Status s = base_->sync_dir(path);
  if (!s.is_ok()) return s;
  for (auto& [name, st] : files_)
    if (name.size() > path.size() && name.compare(0, path.size(), path) == 0 &&
        name[path.size()] == '/' && name.find('/', path.size() + 1) == std::string::npos)
      st.entry_durable = true;
  return s;
}

Status FaultEnv::remove(const std::string& path) {
  files_.erase(path);
  return base_->remove(path);
}

Status FaultEnv::rename(const std::string& from, const std::string& to) {
  Status s = base_->rename(from, to);
  if (!s.is_ok()) return s;
  auto it = files_.find(from);
  FileState st = it != files_.end() ? it->second : FileState{};
  if (it != files_.end()) files_.erase(it);
  st.entry_durable = false;  // until its directory is synced
  files_[to] = st;
  return s;
}

Status FaultEnv::crash() {
  for (auto& [path, st] : files_) {
    if (!st.entry_durable) {
      unlink(path.c_str());
      continue;
    }
    if (truncate(path.c_str(), static_cast<off_t>(st.synced)) != 0)
      return Status::io_error("crash: truncate " + path);
  }
  files_.clear();
  return Status::ok();
}

}  // namespace ringmail
