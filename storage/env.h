// The one small interface through which the store touches files, so tests can inject faults
// (storage/fault_env.h): a failing sync, a short write, a full disk, a crash that drops
// everything not yet synced. Every call here may block: the server makes them where blocking is
// allowed, or hands the blocking ones (sync) to io_uring.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ringmail {

// A file opened for appending, e.g. the segment being filled or a mailbox's log.
class AppendFile {
 public:
  virtual ~AppendFile() = default;
  // Appends all of `data` or fails; on failure the file may hold a prefix of it.
  virtual Status append(std::string_view data) = 0;
  // Makes everything appended so far durable (fdatasync).
  virtual Status sync() = 0;
  // Cuts the file to `size` bytes (dropping a torn tail).
  virtual Status truncate(uint64_t size) = 0;
  virtual uint64_t size() const = 0;
  virtual int fd() const = 0;
};

// A read-only view of a whole file (memory-mapped where the Env can).
class ReadFile {
 public:
  virtual ~ReadFile() = default;
  virtual std::string_view data() const = 0;
  // A file opened with room to grow (Env::open_read_growing): data() covers `size` bytes from
  // now on. False when the mapping has no room for that many; data() is then unchanged.
  // REQUIRES: the file holds at least `size` bytes.
  virtual bool extend(uint64_t /*size*/) { return false; }
};

class Env {
 public:
  virtual ~Env() = default;
  // The real file system.
  static Env* posix();

  // Opens (creating when `create`) a file for appending; positioned at its end.
  virtual Status open_append(const std::string& path, bool create,
                             std::unique_ptr<AppendFile>* out) = 0;
  virtual Status open_read(const std::string& path, std::unique_ptr<ReadFile>* out) = 0;
  // The same for a file that is still being appended to (the active segment): the view can
  // later be extended (ReadFile::extend) up to `room` bytes without mapping the file again.
  virtual Status open_read_growing(const std::string& path, uint64_t /*room*/,
                                   std::unique_ptr<ReadFile>* out) {
    return open_read(path, out);
  }
  // Writes a whole file crash-safely: a temporary, fsync, rename over `path`, fsync the
  // directory. Afterwards `path` holds the old contents or the new ones, never a mix. Without
  // `durable` the two fsyncs are left out: a bulk change makes everything durable at once at its
  // end with sync_all().
  virtual Status write_atomic(const std::string& path, std::string_view data,
                              bool durable = true) = 0;
  virtual Status make_dirs(const std::string& path) = 0;  // mode 0700
  virtual Status sync_dir(const std::string& path) = 0;
  virtual Status list_dir(const std::string& path, std::vector<std::string>* names) = 0;
  virtual Status remove(const std::string& path) = 0;
  // Removes a directory and everything below it (symlinks are removed, never followed).
  virtual Status remove_tree(const std::string& path) = 0;
  // Makes everything written to the file system holding `path` durable (syncfs).
  virtual Status sync_all(const std::string& path) = 0;
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual bool exists(const std::string& path) = 0;
  // True when `path` itself is a symbolic link (not followed). The store refuses a planted link
  // in a user's tree: it could lead one user's login into another user's mail.
  virtual bool is_symlink(const std::string& path) = 0;
  // For syncs submitted elsewhere (io_uring): a descriptor of a file or directory, opened for
  // reading; and a whole file written (created or truncated), not synced, its descriptor kept.
  // The caller closes both.
  virtual Status open_for_sync(const std::string& path, int* fd) = 0;
  virtual Status write_unsynced(const std::string& path, std::string_view data, int* fd) = 0;
};

}  // namespace ringmail
