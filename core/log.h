// One line per event, key=value, to stderr:
//   ts=2026-11-22T03:10:00.123Z level=info event=listening proto=imap addr=127.0.0.1:1143
// Each line is formatted into a thread-local buffer and written with a single write(2), so lines
// from different threads never interleave.
#pragma once

#include <cstdint>
#include <string_view>

namespace ringmail {

enum class LogLevel : uint8_t { debug = 0, info = 1, warn = 2, error = 3 };

bool parse_log_level(std::string_view name, LogLevel* out);
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

// A log line under construction; written when it goes out of scope.
class LogLine {
 public:
  LogLine(LogLevel level, std::string_view event);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  // Values with spaces, quotes, '=' or control bytes are quoted and escaped.
  LogLine& kv(std::string_view key, std::string_view value);
  LogLine& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  LogLine& kv(std::string_view key, int64_t value);
  LogLine& kv(std::string_view key, uint64_t value);
  LogLine& kv(std::string_view key, int value) { return kv(key, static_cast<int64_t>(value)); }
  LogLine& kv(std::string_view key, unsigned value) {
    return kv(key, static_cast<uint64_t>(value));
  }
  LogLine& kv(std::string_view key, long long value) {
    return kv(key, static_cast<int64_t>(value));
  }
  LogLine& kv(std::string_view key, unsigned long long value) {
    return kv(key, static_cast<uint64_t>(value));
  }

 private:
  LogLine& kv_raw(std::string_view key, std::string_view text);
  void append(std::string_view s);
  bool enabled_;
};

}  // namespace ringmail

#define RM_LOG(level, event)                                \
  if (::ringmail::log_enabled(::ringmail::LogLevel::level)) \
  ::ringmail::LogLine(::ringmail::LogLevel::level, event)
