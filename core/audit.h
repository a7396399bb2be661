// The audit log: one key=value line per security event (authentication success and failure,
// lockout, admin action), appended to its own file (audit_log), easy to feed to fail2ban:
//   ts=2026-12-02T08:00:00.123Z event=auth_failed user=alice ip=192.0.2.7 mech=PLAIN tls=yes
// Reactors never write it: emit() queues the line (lock-free) and a writer thread appends it.
// If the queue is full the line is counted as dropped and the count is logged.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>

#include "core/mpmc_queue.h"

namespace ringmail {

class AuditLine {
 public:
  explicit AuditLine(std::string_view event);
  AuditLine& kv(std::string_view key, std::string_view value);
  AuditLine& kv(std::string_view key, uint64_t value);
  std::string take() { return std::move(line_) + "\n"; }

 private:
  std::string line_;
};

class AuditLog {
 public:
  AuditLog() = default;
  ~AuditLog() { stop(); }
  // Opens (creating, mode 0600) for appending and starts the writer.
  bool start(const std::string& path, std::string* error);
  void stop();
  // Any thread.
  void emit(AuditLine& line);
  // Appends one line directly (the admin CLI, which has no writer thread).
  static bool append_now(const std::string& path, AuditLine& line, std::string* error);

 private:
  void run();
  int fd_ = -1;
  std::thread thread_;
  MpmcQueue<std::string> queue_{1 << 14};
  std::atomic<uint32_t> pending_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace ringmail
