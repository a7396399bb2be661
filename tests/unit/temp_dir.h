// A temporary directory for a test, removed with everything in it at the end.
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace ringmail {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ringmail-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The whole file, or "" when it cannot be read.
inline std::string read_file(const std::string& path) {
  std::string out;
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  fclose(f);
  return out;
}

}  // namespace ringmail
