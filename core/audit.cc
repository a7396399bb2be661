#include "core/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

namespace ringmail {
namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  return false;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

AuditLine::AuditLine(std::string_view event) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[40];
  snprintf(buf, sizeof buf, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", t.tm_year + 1900,
           t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000);
  line_ = buf;
  kv("event", event);
}

AuditLine& AuditLine::kv(std::string_view key, std::string_view value) {
  line_ += ' ';
  line_.append(key);
  line_ += '=';
  if (!needs_quotes(value)) {
    line_.append(value);
    return *this;
  }
  line_ += '"';
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      line_ += '\\';
      line_ += static_cast<char>(c);
    } else if (c < ' ' || c == 0x7f) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\x%02x", c);
      line_ += esc;
    } else {
      line_ += static_cast<char>(c);
    }
  }
  line_ += '"';
  return *this;
}

AuditLine& AuditLine::kv(std::string_view key, uint64_t value) {
  return kv(key, std::string_view(std::to_string(value)));
}

bool AuditLog::start(const std::string& path, std::string* error) {
  fd_ = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) {
    *error = "audit_log " + path + ": " + strerror(errno);
    return false;
  }
  thread_ = std::thread([this] { run(); });
  return true;
}

void AuditLog::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  pending_.fetch_add(1, std::memory_order_release);
  pending_.notify_one();
  thread_.join();
  close(fd_);
  fd_ = -1;
}

void AuditLog::emit(AuditLine& line) {
  if (fd_ < 0) return;
  if (!queue_.push(line.take())) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  pending_.fetch_add(1, std::memory_order_release);
  pending_.notify_one();
}

void AuditLog::run() {
  std::string batch;
  uint64_t reported_drops = 0;
  for (;;) {
    pending_.wait(0, std::memory_order_acquire);
    pending_.store(0, std::memory_order_release);
    // Read before draining: stop() comes after every producer has finished.
    bool stop = stopping_.load(std::memory_order_acquire);
    std::string line;
    batch.clear();
    while (queue_.pop(&line)) batch += line;
    if (!batch.empty() && !write_all(fd_, batch))
      RM_LOG(error, "audit_write_failed").kv("error", strerror(errno));
    uint64_t dropped = dropped_.load(std::memory_order_relaxed);
    if (dropped != reported_drops) {
      RM_LOG(error, "audit_lines_dropped").kv("total", dropped);
      reported_drops = dropped;
    }
    if (stop) return;
  }
}

bool AuditLog::append_now(const std::string& path, AuditLine& line, std::string* error) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    *error = path + ": " + strerror(errno);
    return false;
  }
  bool ok = write_all(fd, line.take());
  if (!ok) *error = path + ": " + strerror(errno);
  close(fd);
  return ok;
}

}  // namespace ringmail
