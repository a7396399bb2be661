#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "core/assert.h"

namespace ringmail {
namespace {

std::atomic<LogLevel> g_level{LogLevel::info};

constexpr size_t kLineBytesMax = 2048;  // longer lines are cut and end in "..."
thread_local char t_line[kLineBytesMax];
thread_local size_t t_len = 0;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "?";
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) return true;
  return false;
}

}  // namespace

void assert_fail(const char* expr, const char* file, int line, const char* msg) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "level=error event=assertion_failed expr=\"%s\" at=%s:%d%s%s\n",
                   expr, file, line, msg ? " why=" : "", msg ? msg : "");
  if (n > 0) (void)!write(2, buf, static_cast<size_t>(n) < sizeof buf ? n : sizeof buf - 1);
  abort();
}

bool parse_log_level(std::string_view name, LogLevel* out) {
  for (LogLevel l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (name == level_name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void set_log_level(LogLevel level) {
  g_level.store(level, std::memory_order_relaxed);
}

bool log_enabled(LogLevel level) {
  return level >= g_level.load(std::memory_order_relaxed);
}

LogLine::LogLine(LogLevel level, std::string_view event) : enabled_(log_enabled(level)) {
  t_len = 0;
  if (!enabled_) return;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc;
  gmtime_r(&ts.tv_sec, &utc);
  char head[64];
  int n = snprintf(head, sizeof head,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=", utc.tm_year + 1900,
                   utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                   ts.tv_nsec / 1000000, level_name(level));
  append(std::string_view(head, static_cast<size_t>(n)));
  append(event);
}

LogLine::~LogLine() {
  if (!enabled_) return;
  if (t_len >= kLineBytesMax - 1) {
    t_len = kLineBytesMax - 4;
    append("...");
  }
  t_line[t_len++] = '\n';
  (void)!write(2, t_line, t_len);
}

void LogLine::append(std::string_view s) {
  size_t room = kLineBytesMax - 1 - t_len;
  size_t n = s.size() < room ? s.size() : room;
  for (size_t i = 0; i < n; i++) t_line[t_len + i] = s[i];
  t_len += n;
}

LogLine& LogLine::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  append(" ");
  append(key);
  append("=");
  if (!needs_quotes(value)) {
    append(value);
    return *this;
  }
  append("\"");
  for (unsigned char c : value) {
    char esc[5];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = static_cast<char>(c);
      append(std::string_view(esc, 2));
    } else if (c < ' ' || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\x%02x", c);
      append(std::string_view(esc, 4));
    } else {
      esc[0] = static_cast<char>(c);
      append(std::string_view(esc, 1));
    }
  }
  append("\"");
  return *this;
}

// Numbers never need quoting, so they skip the string path.
LogLine& LogLine::kv(std::string_view key, int64_t value) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%lld", static_cast<long long>(value));
  return kv_raw(key, std::string_view(buf, static_cast<size_t>(n)));
}

LogLine& LogLine::kv(std::string_view key, uint64_t value) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(value));
  return kv_raw(key, std::string_view(buf, static_cast<size_t>(n)));
}

LogLine& LogLine::kv_raw(std::string_view key, std::string_view text) {
  if (!enabled_) return *this;
  append(" ");
  append(key);
  append("=");
  append(text);
  return *this;
}

}  // namespace ringmail
