#include "storage/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ringmail {
namespace {

Status errno_status(const std::string& what) {
  std::string msg = what + ": " + strerror(errno);
  if (errno == ENOENT) return Status::not_found(msg);
  // EFBIG (a file size limit, RLIMIT_FSIZE) is the same for the store: no room to write.
  return errno == ENOSPC || errno == EDQUOT || errno == EFBIG ? Status::no_space(msg)
                                                              : Status::io_error(msg);
}

class PosixAppendFile : public AppendFile {
 public:
  PosixAppendFile(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~PosixAppendFile() override { close(fd_); }

  Status append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = pwrite(fd_, data.data(), data.size(), static_cast<off_t>(size_));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return errno_status("write " + path_);
      size_ += static_cast<uint64_t>(n);
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::ok();
  }
  Status sync() override {
    return fdatasync(fd_) == 0 ? Status::ok() : errno_status("fdatasync " + path_);
  }
  Status truncate(uint64_t size) override {
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) return errno_status("truncate " + path_);
    size_ = size;
    return Status::ok();
  }
  uint64_t size() const override { return size_; }
  int fd() const override { return fd_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

class MappedReadFile : public ReadFile {
 public:
  // `capacity` bytes are mapped, of which the first `size` are in the file.
  MappedReadFile(void* base, size_t size, size_t capacity)
      : base_(base), size_(size), capacity_(capacity) {}
  ~MappedReadFile() override {
    if (capacity_ > 0) munmap(base_, capacity_);
  }
  std::string_view data() const override { return {static_cast<const char*>(base_), size_}; }
  bool extend(uint64_t size) override {
    if (size > capacity_) return false;
    size_ = std::max(size_, static_cast<size_t>(size));
    return true;
  }

 private:
  void* base_;
  size_t size_;
  size_t capacity_;
};

// Opens `path` and learns its size; on failure nothing stays open.
Status open_with_size(const std::string& path, int flags, int* fd, uint64_t* size) {
  *fd = open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (*fd < 0) return errno_status("open " + path);
  struct stat st;
  if (fstat(*fd, &st) != 0) {
    Status s = errno_status("stat " + path);
    close(*fd);
    return s;
  }
  *size = static_cast<uint64_t>(st.st_size);
  return Status::ok();
}

class PosixEnv : public Env {
 public:
  Status open_append(const std::string& path, bool create,
                     std::unique_ptr<AppendFile>* out) override {
    int fd = -1;
    uint64_t size = 0;
    Status s = open_with_size(path, O_WRONLY | (create ? O_CREAT : 0), &fd, &size);
    if (!s.is_ok()) return s;
    *out = std::make_unique<PosixAppendFile>(fd, path, size);
    return Status::ok();
  }

  Status open_read(const std::string& path, std::unique_ptr<ReadFile>* out) override {
    return open_read_growing(path, 0, out);
  }

  // Maps `room` bytes (at least the file): a shared mapping beyond the end of the file becomes
  // readable as the file grows, so the active segment is mapped once, not once per append.
  Status open_read_growing(const std::string& path, uint64_t room,
                           std::unique_ptr<ReadFile>* out) override {
    int fd = -1;
    uint64_t file_size = 0;
    Status s = open_with_size(path, O_RDONLY, &fd, &file_size);
    if (!s.is_ok()) return s;
    size_t size = static_cast<size_t>(file_size);
    size_t capacity = static_cast<size_t>(std::max(file_size, room));
    void* base = nullptr;
    if (capacity > 0) {
      base = mmap(nullptr, capacity, PROT_READ, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED) {
        s = errno_status("mmap " + path);
        close(fd);
        return s;
      }
    }
    close(fd);  // the mapping keeps the file
    *out = std::make_unique<MappedReadFile>(base, size, capacity);
    return Status::ok();
  }

  Status write_atomic(const std::string& path, std::string_view data, bool durable) override {
    std::string tmp = path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return errno_status("open " + tmp);
    PosixAppendFile f(fd, tmp, 0);
    Status s = f.append(data);
    if (s.is_ok() && durable) s = f.sync();
    if (!s.is_ok()) return s;
    if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_status("rename " + tmp);
    return durable ? sync_dir(path.substr(0, path.rfind('/'))) : Status::ok();
  }

  Status make_dirs(const std::string& path) override {
    for (size_t pos = 1; pos <= path.size(); pos++) {
      if (pos != path.size() && path[pos] != '/') continue;
      std::string part = path.substr(0, pos);
      if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) return errno_status("mkdir " + part);
    }
    return Status::ok();
  }

  Status sync_dir(const std::string& path) override {
    int fd = open(path.empty() ? "/" : path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status("open " + path);
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? Status::ok() : errno_status("fsync " + path);
  }

  Status list_dir(const std::string& path, std::vector<std::string>* names) override {
    DIR* d = opendir(path.c_str());
    if (!d) return errno_status("opendir " + path);
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names->push_back(n);
    }
    closedir(d);
    std::sort(names->begin(), names->end());
    return Status::ok();
  }

  bool is_symlink(const std::string& path) override {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
  }

  Status open_for_sync(const std::string& path, int* fd) override {
    *fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    return *fd >= 0 ? Status::ok() : errno_status("open " + path);
  }

  Status write_unsynced(const std::string& path, std::string_view data, int* fd) override {
    *fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0) return errno_status("open " + path);
    PosixAppendFile f(dup(*fd), path, 0);
    Status s = f.append(data);
    if (!s.is_ok()) {
      close(*fd);
      *fd = -1;
    }
    return s;
  }

  Status remove(const std::string& path) override {
    return unlink(path.c_str()) == 0 ? Status::ok() : errno_status("unlink " + path);
  }

  Status remove_tree(const std::string& path) override {
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) return errno == ENOENT ? Status::ok() : errno_status(path);
    if (S_ISDIR(st.st_mode)) {
      std::vector<std::string> names;
      Status s = list_dir(path, &names);
      for (size_t i = 0; s.is_ok() && i < names.size(); i++) s = remove_tree(path + "/" + names[i]);
      if (!s.is_ok()) return s;
      return rmdir(path.c_str()) == 0 ? Status::ok() : errno_status("rmdir " + path);
    }
    return remove(path);
  }

  Status sync_all(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status("open " + path);
    int rc = syncfs(fd);
    close(fd);
    return rc == 0 ? Status::ok() : errno_status("syncfs " + path);
  }

  Status rename(const std::string& from, const std::string& to) override {
    return ::rename(from.c_str(), to.c_str()) == 0 ? Status::ok() : errno_status("rename " + from);
  }

  bool exists(const std::string& path) override {
    struct stat st;
    return lstat(path.c_str(), &st) == 0;
  }
};

}  // namespace

Env* Env::posix() {
  static PosixEnv env;
  return &env;
}

}  // namespace ringmail
