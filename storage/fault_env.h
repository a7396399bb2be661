// An Env that injects the faults the store must survive: a failing sync, a short write, a full
// disk, and a crash that loses everything not yet synced. Used by the unit and crash tests.
#pragma once

#include <map>
#include <string>

#include "storage/env.h"

namespace ringmail {

class FaultEnv : public Env {
 public:
  explicit FaultEnv(Env* base) : base_(base) {}

  // Every sync fails (and syncs nothing) while on.
  void set_fail_syncs(bool on) { fail_syncs_ = on; }
  // The next append writes only its first `bytes` bytes, then fails as an I/O error.
  void short_write_next(uint64_t bytes) { short_write_bytes_ = bytes; }
  // Appends fail with "no space" (writing nothing) while on.
  void set_disk_full(bool on) { disk_full_ = on; }
  // A power loss: every file is cut back to its synced size, and a file whose directory entry
  // was never synced disappears. Files must be closed (their AppendFiles destroyed) first.
  Status crash();

  Status open_append(const std::string& path, bool create,
                     std::unique_ptr<AppendFile>* out) override;
  Status open_read(const std::string& path, std::unique_ptr<ReadFile>* out) override {
    return base_->open_read(path, out);
  }
  Status open_read_growing(const std::string& path, uint64_t room,
                           std::unique_ptr<ReadFile>* out) override {
    return base_->open_read_growing(path, room, out);
  }
  Status write_atomic(const std::string& path, std::string_view data, bool durable) override;
  Status make_dirs(const std::string& path) override { return base_->make_dirs(path); }
  Status sync_dir(const std::string& path) override;
  Status list_dir(const std::string& path, std::vector<std::string>* names) override {
    return base_->list_dir(path, names);
  }
  Status remove(const std::string& path) override;
  Status remove_tree(const std::string& path) override;
  Status sync_all(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;
  bool exists(const std::string& path) override { return base_->exists(path); }
  bool is_symlink(const std::string& path) override { return base_->is_symlink(path); }
  // Syncs through these descriptors happen outside the Env: a simulated crash does not model
  // them (the store's deferred-metadata mode is the server's, tested on the real binary).
  Status open_for_sync(const std::string& path, int* fd) override {
    return base_->open_for_sync(path, fd);
  }
  Status write_unsynced(const std::string& path, std::string_view data, int* fd) override {
    if (disk_full_) return Status::no_space("write " + path + ": No space left on device");
    return base_->write_unsynced(path, data, fd);
  }

 private:
  friend class FaultAppendFile;
  struct FileState {
    uint64_t synced = 0;
    bool entry_durable = false;
  };

  Env* base_;
  bool fail_syncs_ = false;
  bool disk_full_ = false;
  uint64_t short_write_bytes_ = UINT64_MAX;
  std::map<std::string, FileState> files_;
};

}  // namespace ringmail
