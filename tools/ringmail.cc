// ringmail: the operator's command line. Users for now; fsck, compact and more come later.
//   ringmail user add NAME [--data-dir DIR] [--iterations N]   (password on standard input)
//   ringmail user passwd NAME [--data-dir DIR] [--iterations N]
//   ringmail user del NAME [--data-dir DIR]
//   ringmail user list [--data-dir DIR]
//   ringmail user import [--data-dir DIR] [--iterations N] [--create-mail]   ("name password" lines
//   on stdin) ringmail fsck [--data-dir DIR] [--user NAME] [--repair] ringmail compact [--data-dir
//   DIR] [--user NAME] ringmail index rebuild|stats [--data-dir DIR] [--user NAME]
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/audit.h"
#include "storage/fsck.h"
#include "storage/password_policy.h"
#include "storage/user_mail.h"
#include "storage/user_store.h"

namespace {

using ringmail::AppendFile;
using ringmail::Env;
using ringmail::ReadFile;
using ringmail::Status;
using ringmail::UserMail;
using ringmail::UserStore;

constexpr const char* kUsage =
    "usage: ringmail user add NAME [--data-dir DIR] [--iterations N]\n"
    "       ringmail user passwd NAME [--data-dir DIR] [--iterations N]\n"
    "       ringmail user del NAME [--data-dir DIR]\n"
    "       ringmail user unlock NAME [--data-dir DIR]  (ends a brute-force lockout now)\n"
    "       ringmail user app-password add|list|revoke NAME [LABEL] [--data-dir DIR]\n"
    "       ringmail user app-only NAME on|off [--data-dir DIR]  (IMAP takes app passwords only)\n"
    "       ringmail user list [--data-dir DIR]\n"
    "       ringmail user import [--data-dir DIR] [--iterations N] [--create-mail]  (\"NAME "
    "PASSWORD\" lines on "
    "stdin)\n"
    "       ringmail fsck [--data-dir DIR] [--user NAME] [--repair]\n"
    "       ringmail compact [--data-dir DIR] [--user NAME]\n"
    "       ringmail index rebuild|stats [--data-dir DIR] [--user NAME]\n"
    "fsck exits 0 when clean, 1 when it repaired everything it found, 2 when damage is left.\n"
    "The password is read from standard input (one line); on a terminal it is asked twice.\n"
    "It needs 10 characters or more, not the user name, not a common password\n"
    "(--allow-weak-password skips the check, e.g. when migrating accounts).\n"
    "The data directory defaults to ./var.\n";

int fail(const std::string& msg, int code = 1) {
  fprintf(stderr, "ringmail: %s\n", msg.c_str());
  return code;
}

int usage(const std::string& msg) {
  fprintf(stderr, "ringmail: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

bool read_line(std::string* out, bool echo_off) {
  termios saved{};
  bool tty = echo_off && tcgetattr(0, &saved) == 0;
  if (tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(0, TCSAFLUSH, &quiet);
  }
  bool ok = static_cast<bool>(std::getline(std::cin, *out));
  if (tty) {
    tcsetattr(0, TCSAFLUSH, &saved);
    fputc('\n', stderr);
  }
  if (!out->empty() && out->back() == '\r') out->pop_back();
  return ok;
}

bool read_password(std::string* password, std::string* error) {
  bool tty = isatty(0);
  if (tty) fputs("Password: ", stderr);
  if (!read_line(password, tty)) {
    *error = "no password on standard input";
    return false;
  }
  if (tty) {
    std::string again;
    fputs("Again: ", stderr);
    if (!read_line(&again, true) || again != *password) {
      *error = "the passwords differ";
      return false;
    }
  }
  if (password->empty()) {
    *error = "empty password";
    return false;
  }
  if (password->size() > UserStore::kPasswordBytesMax) {
    *error = "password longer than 1024 bytes";
    return false;
  }
  return true;
}

double seconds_since(const timespec& t0) {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
}

// The users a command works on: the one named, or all of them.
int users_to_visit(const UserStore& store, const std::string& only_user,
                   std::vector<std::string>* users) {
  if (!only_user.empty()) {
    if (!UserStore::valid_name(only_user)) return fail("invalid user name '" + only_user + "'", 2);
    users->push_back(only_user);
    return 0;
  }
  Status s = store.list(users);
  return s.is_ok() ? 0 : fail(s.message());
}

int run_fsck(const std::string& data_dir, const std::string& only_user, bool repair) {
  UserStore store(data_dir);
  std::vector<std::string> users;
  if (int rc = users_to_visit(store, only_user, &users); rc != 0) return rc;
  bool tty = isatty(2);
  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t total_bytes = 0, damage = 0, repairs = 0, messages = 0;
  double last_draw = -1;
  for (size_t i = 0; i < users.size(); i++) {
    const std::string& name = users[i];
    ringmail::FsckResult r;
    auto progress = [&](uint64_t bytes) {
      double now = seconds_since(t0);
      if (!tty || now - last_draw < 0.1) return;
      last_draw = now;
      fprintf(stderr, "\rfsck: user %zu of %zu, %.1f MB checked ", i + 1, users.size(),
              static_cast<double>(total_bytes + bytes) / 1e6);
    };
    Status s =
        ringmail::fsck_user(ringmail::Env::posix(), store.user_dir(name), repair, &r, progress);
    if (tty) fputs("\r\033[K", stderr);
    if (!s.is_ok()) {
      printf("%s: cannot check: %s\n", name.c_str(), s.message().c_str());
      damage++;
      continue;
    }
    total_bytes += r.segment_bytes;
    messages += r.messages;
    for (const std::string& d : r.damage) printf("%s: DAMAGE %s\n", name.c_str(), d.c_str());
    for (const std::string& n : r.repairs) printf("%s: repaired: %s\n", name.c_str(), n.c_str());
    for (const std::string& n : r.notes) printf("%s: note: %s\n", name.c_str(), n.c_str());
    damage += r.damage.size();
    repairs += r.repairs.size();
  }
  double secs = seconds_since(t0);
  printf(
      "fsck: %zu users, %llu messages, %.1f MB of segments checked in %.2f s (%.0f MB/s); "
      "%llu repaired, %llu damaged\n",
      users.size(), static_cast<unsigned long long>(messages),
      static_cast<double>(total_bytes) / 1e6, secs,
      secs > 0 ? static_cast<double>(total_bytes) / 1e6 / secs : 0.0,
      static_cast<unsigned long long>(repairs), static_cast<unsigned long long>(damage));
  if (damage > 0) return 2;
  return repairs > 0 ? 1 : 0;
}

// Takes the data directory's server lock for an offline command: the descriptor, or -1 (said on
// stderr) when ringmaild holds it.
int lock_offline(const std::string& data_dir) {
  std::string lock_path = data_dir + "/ringmaild.lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    fail("ringmaild is running on " + data_dir + " (or " + lock_path +
             " cannot be locked): stop it first",
         2);
    if (lock_fd >= 0) close(lock_fd);
    return -1;
  }
  return lock_fd;
}

// Offline compaction: the server must not be running on the data directory meanwhile.
int run_compact(const std::string& data_dir, const std::string& only_user) {
  int lock_fd = lock_offline(data_dir);
  if (lock_fd < 0) return 2;
  UserStore store(data_dir);
  std::vector<std::string> users;
  if (int rc = users_to_visit(store, only_user, &users); rc != 0) return rc;
  uint64_t segments = 0, freed = 0;
  int rc = 0;
  for (const std::string& name : users) {
    std::string dir = store.user_dir(name);
    if (!ringmail::Env::posix()->exists(dir + "/mailboxes")) continue;  // no mail yet
    std::unique_ptr<ringmail::UserMail> um;
    ringmail::UserMail::OpenReport report;
    ringmail::UserMail::CompactResult r;
    Status s = ringmail::UserMail::open(ringmail::Env::posix(), dir, &um, &report);
    if (s.is_ok()) s = um->compact(0.25, &r);
    if (!s.is_ok()) {
      printf("%s: cannot compact: %s\n", name.c_str(), s.message().c_str());
      rc = 1;
      continue;
    }
    for (const std::string& why : r.skipped) printf("%s: skipped %s\n", name.c_str(), why.c_str());
    if (r.segments_rewritten > 0) {
      printf("%s: %llu segments rewritten, %llu records moved, %.1f MB freed\n", name.c_str(),
             static_cast<unsigned long long>(r.segments_rewritten),
             static_cast<unsigned long long>(r.records_moved),
             static_cast<double>(r.bytes_freed) / 1e6);
    }
    segments += r.segments_rewritten;
    freed += r.bytes_freed;
  }
  printf("compact: %zu users, %llu segments rewritten, %.1f MB freed\n", users.size(),
         static_cast<unsigned long long>(segments), static_cast<double>(freed) / 1e6);
  close(lock_fd);
  return rc;
}

// The full-text index, offline: `rebuild` drops every mailbox's index and indexes all messages
// again; `stats` prints one JSON line per user.
int run_index(const std::string& data_dir, const std::string& only_user, const std::string& op) {
  int lock_fd = lock_offline(data_dir);
  if (lock_fd < 0) return 2;
  UserStore store(data_dir);
  std::vector<std::string> users;
  if (int rc = users_to_visit(store, only_user, &users); rc != 0) return rc;
  int rc = 0;
  for (const std::string& name : users) {
    std::string dir = store.user_dir(name);
    if (!ringmail::Env::posix()->exists(dir + "/mailboxes")) continue;  // no mail yet
    std::unique_ptr<ringmail::UserMail> um;
    ringmail::UserMail::OpenReport report;
    Status s = ringmail::UserMail::open(ringmail::Env::posix(), dir, &um, &report);
    if (s.is_ok()) {
      um->set_fts(true, 1000);
      s = um->load_all(UINT64_MAX);
    }
    auto start = std::chrono::steady_clock::now();
    if (s.is_ok() && op == "rebuild") s = um->fts_rebuild();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ringmail::FtsStats st;
    if (s.is_ok()) s = um->fts_stats(&st);
    if (!s.is_ok()) {
      printf("%s: cannot %s the index: %s\n", name.c_str(), op.c_str(), s.message().c_str());
      rc = 1;
      continue;
    }
    if (op == "rebuild") {
      printf(
          "%s: %llu messages, %.1f MB of text indexed in %.2f s (%.1f MB/s); index %.1f MB "
          "(%.1f%% of the text) in %u segments\n",
          name.c_str(), static_cast<unsigned long long>(st.docs),
          static_cast<double>(st.text_bytes) / 1e6, secs,
          secs > 0 ? static_cast<double>(st.text_bytes) / 1e6 / secs : 0.0,
          static_cast<double>(st.index_bytes) / 1e6,
          st.text_bytes > 0
              ? 100.0 * static_cast<double>(st.index_bytes) / static_cast<double>(st.text_bytes)
              : 0.0,
          st.segments);
    } else {
      printf(
          "{\"user\":\"%s\",\"docs\":%llu,\"text_bytes\":%llu,\"index_bytes\":%llu,"
          "\"segments\":%u}\n",
          name.c_str(), static_cast<unsigned long long>(st.docs),
          static_cast<unsigned long long>(st.text_bytes),
          static_cast<unsigned long long>(st.index_bytes), st.segments);
    }
  }
  close(lock_fd);
  return rc;
}

// Adds many users at once, hashing on every CPU: lines of "NAME PASSWORD" on standard input.
// Reports each line it cannot take and goes on; exit 0 only when every line was taken.
// Bulk provisioning writes each new user's mail without a sync per file: the import ends with
// one syncfs of the whole file system, which makes all of it durable at once (an interrupted
// import is run again; fsck --repair mends a half-written user).
class DeferredSyncEnv : public Env {
 public:
  explicit DeferredSyncEnv(Env* base) : base_(base) {}
  Status open_append(const std::string& path, bool create,
                     std::unique_ptr<AppendFile>* out) override {
    std::unique_ptr<AppendFile> f;
    Status s = base_->open_append(path, create, &f);
    if (s.is_ok()) *out = std::make_unique<File>(std::move(f));
    return s;
  }
  Status open_read(const std::string& path, std::unique_ptr<ReadFile>* out) override {
    return base_->open_read(path, out);
  }
  Status write_atomic(const std::string& path, std::string_view data, bool) override {
    return base_->write_atomic(path, data, false);
  }
  Status make_dirs(const std::string& path) override { return base_->make_dirs(path); }
  Status sync_dir(const std::string&) override { return Status::ok(); }
  Status list_dir(const std::string& path, std::vector<std::string>* names) override {
    return base_->list_dir(path, names);
  }
  Status remove(const std::string& path) override { return base_->remove(path); }
  Status remove_tree(const std::string& path) override { return base_->remove_tree(path); }
  Status sync_all(const std::string& path) override { return base_->sync_all(path); }
  Status rename(const std::string& from, const std::string& to) override {
    return base_->rename(from, to);
  }
  bool exists(const std::string& path) override { return base_->exists(path); }
  bool is_symlink(const std::string& path) override { return base_->is_symlink(path); }
  Status open_for_sync(const std::string& path, int* fd) override {
    return base_->open_for_sync(path, fd);
  }
  Status write_unsynced(const std::string& path, std::string_view data, int* fd) override {
    return base_->write_unsynced(path, data, fd);
  }

 private:
  class File : public AppendFile {
   public:
    explicit File(std::unique_ptr<AppendFile> f) : f_(std::move(f)) {}
    Status append(std::string_view data) override { return f_->append(data); }
    Status sync() override { return Status::ok(); }
    Status truncate(uint64_t size) override { return f_->truncate(size); }
    uint64_t size() const override { return f_->size(); }
    int fd() const override { return f_->fd(); }

   private:
    std::unique_ptr<AppendFile> f_;
  };
  Env* base_;
};

int run_import(UserStore& store, uint32_t iterations, bool create_mail) {
  std::vector<std::pair<std::string, std::string>> users;
  std::string line;
  int rc = 0;
  size_t line_no = 0;
  while (std::getline(std::cin, line)) {
    line_no++;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t sp = line.find(' ');
    if (line.empty()) continue;
    if (sp == std::string::npos || sp + 1 >= line.size() ||
        !UserStore::valid_name(line.substr(0, sp)) ||
        line.size() - sp - 1 > UserStore::kPasswordBytesMax) {
      fprintf(stderr, "ringmail: line %zu: expected NAME PASSWORD\n", line_no);
      rc = 2;
      continue;
    }
    users.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  store.set_deferred_sync(true);  // one syncfs at the end instead of three fsyncs per user
  DeferredSyncEnv deferred(Env::posix());
  std::atomic<size_t> next{0}, added{0}, failed{0};
  std::vector<std::thread> threads;
  unsigned n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned t = 0; t < n; t++) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < users.size(); i = next++) {
        Status s = store.add(users[i].first, users[i].second, iterations);
        explicit_bzero(users[i].second.data(), users[i].second.size());
        if (s.is_ok() && create_mail) {
          // The user's mail (INBOX and the special-use mailboxes) now, not at the first login,
          // which would otherwise pay for it with a sync per file.
          std::unique_ptr<UserMail> mail;
          UserMail::OpenReport report;
          s = UserMail::open(&deferred, store.user_dir(users[i].first), &mail, &report);
        }
        if (s.is_ok()) {
          added++;
        } else {
          failed++;
          fprintf(stderr, "ringmail: %s: %s\n", users[i].first.c_str(), s.message().c_str());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Status s = store.sync_all();
  if (!s.is_ok()) return fail(s.message());
  printf("imported %zu users, %zu failed\n", added.load(), failed.load());
  return failed > 0 ? 3 : rc;
}

int exit_for(const Status& s) {
  if (s.is_ok()) return 0;
  return fail(s.message(), s.code() == Status::Code::io_error ? 1 : 3);
}

// Admin actions go to the audit log beside the server's own lines (DATA/audit.log).
void audit_admin(const std::string& data_dir, const char* action, const std::string& name,
                 const std::string& label = "") {
  ringmail::AuditLine line("admin");
  line.kv("action", action).kv("user", name);
  if (!label.empty()) line.kv("app_password", label);
  line.kv("uid", static_cast<uint64_t>(getuid()));
  std::string error;
  if (!ringmail::AuditLog::append_now(data_dir + "/audit.log", line, &error))
    fprintf(stderr, "ringmail: warning: audit log: %s\n", error.c_str());
}

// Tells a running ringmaild about an admin change: "unlock NAME" (end a lockout) or "forget NAME"
// (a password changed: cached logins go). Through DATA/admin-requests and SIGUSR1. Returns the
// server's pid, 0 when none runs, -1 on error (printed).
long notify_server(const std::string& data_dir, const char* verb, const std::string& name) {
  std::string lock_path = data_dir + "/ringmaild.lock";
  int lock_fd = open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (lock_fd < 0 || flock(lock_fd, LOCK_SH | LOCK_NB) == 0) {
    if (lock_fd >= 0) close(lock_fd);
    return 0;
  }
  char buf[32] = {};
  ssize_t n = pread(lock_fd, buf, sizeof buf - 1, 0);
  close(lock_fd);
  long pid = n > 0 ? strtol(buf, nullptr, 10) : 0;
  if (pid <= 0) {
    fail("cannot read the server's pid from " + lock_path);
    return -1;
  }
  std::string req = data_dir + "/admin-requests";
  int fd = open(req.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  std::string line = std::string(verb) + " " + name + "\n";
  if (fd < 0 || write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    if (fd >= 0) close(fd);
    fail(req + ": " + strerror(errno));
    return -1;
  }
  close(fd);
  if (kill(static_cast<pid_t>(pid), SIGUSR1) != 0) {
    fail("cannot signal ringmaild (pid " + std::to_string(pid) + "): " + strerror(errno));
    return -1;
  }
  return pid;
}

// Lockouts live in the running server's memory: without a running server there is nothing to end.
int run_unlock(const std::string& data_dir, const std::string& name) {
  long pid = notify_server(data_dir, "unlock", name);
  if (pid < 0) return 1;
  if (pid == 0) {
    printf("no ringmaild is running on %s: lockouts end with the server\n", data_dir.c_str());
    return 0;
  }
  audit_admin(data_dir, "user_unlock", name);
  printf("unlock of %s sent to ringmaild (pid %ld)\n", name.c_str(), pid);
  return 0;
}

int run_app_password(UserStore& store, const std::string& data_dir,
                     const std::vector<std::string>& words) {
  // user app-password add|list|revoke NAME [LABEL]
  if (words.size() < 4) return usage("user app-password needs add|list|revoke and a NAME");
  const std::string& op = words[2];
  const std::string& name = words[3];
  if (op == "list") {
    if (words.size() != 4) return usage("user app-password list takes a NAME only");
    ringmail::UserRecord rec;
    Status s = store.load(name, &rec);
    if (!s.is_ok()) return exit_for(s);
    for (const ringmail::AppPassword& a : rec.app_passwords) {
      char when[32];
      time_t t = static_cast<time_t>(a.created);
      tm utc;
      gmtime_r(&t, &utc);
      strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
      printf("%s\tcreated %s\n", a.label.c_str(), when);
    }
    if (rec.app_only) printf("(this account accepts app passwords only)\n");
    return 0;
  }
  if (words.size() != 5) return usage("user app-password " + op + " needs NAME and LABEL");
  const std::string& label = words[4];
  if (!UserStore::valid_label(label))
    return fail("invalid label '" + label + "': use 1 to 64 of A-Z a-z 0-9 . _ -", 2);
  if (op == "add") {
    std::string password;
    Status s = store.add_app_password(name, label, &password);
    if (!s.is_ok()) return exit_for(s);
    printf("app password %s for %s (shown once; spaces and dashes are part of it):\n%s\n",
           label.c_str(), name.c_str(), password.c_str());
    audit_admin(data_dir, "app_password_add", name, label);
    return 0;
  }
  if (op == "revoke") {
    Status s = store.revoke_app_password(name, label);
    if (!s.is_ok()) return exit_for(s);
    printf("revoked app password %s of %s\n", label.c_str(), name.c_str());
    audit_admin(data_dir, "app_password_revoke", name, label);
    return notify_server(data_dir, "forget", name) < 0 ? 1 : 0;
  }
  return usage("user app-password: expected add, list or revoke");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string data_dir = "./var";
  uint32_t iterations = UserStore::kDefaultIterations;
  std::vector<std::string> words;
  std::string only_user;
  bool repair = false;
  bool weak_ok = false;
  bool create_mail = false;
  for (size_t i = 0; i < args.size(); i++) {
    if (args[i] == "--help" || args[i] == "-h") {
      fputs(kUsage, stdout);
      return 0;
    } else if (args[i] == "--data-dir" && i + 1 < args.size()) {
      data_dir = args[++i];
    } else if (args[i] == "--user" && i + 1 < args.size()) {
      only_user = args[++i];
    } else if (args[i] == "--repair") {
      repair = true;
    } else if (args[i] == "--allow-weak-password") {
      weak_ok = true;
    } else if (args[i] == "--create-mail") {
      create_mail = true;
    } else if (args[i] == "--iterations" && i + 1 < args.size()) {
      char* end = nullptr;
      unsigned long v = strtoul(args[++i].c_str(), &end, 10);
      if (*end != '\0' || v < UserStore::kMinIterations || v > (1ul << 30))
        return usage("--iterations must be a number from 4096 to 1073741824");
      iterations = static_cast<uint32_t>(v);
    } else if (args[i].rfind("--", 0) == 0) {
      return usage("unknown option " + args[i]);
    } else {
      words.push_back(args[i]);
    }
  }
  if (words.size() == 1 && words[0] == "fsck") return run_fsck(data_dir, only_user, repair);
  if (words.size() == 1 && words[0] == "compact") return run_compact(data_dir, only_user);
  if (words.size() == 2 && words[0] == "index" && (words[1] == "rebuild" || words[1] == "stats"))
    return run_index(data_dir, only_user, words[1]);
  if (words.size() < 2 || words[0] != "user") return usage("expected a command");
  UserStore store(data_dir);
  const std::string& cmd = words[1];
  if (cmd == "import") {
    if (words.size() != 2) return usage("user import takes no name");
    return run_import(store, iterations, create_mail);
  }
  if (cmd == "list") {
    if (words.size() != 2) return usage("user list takes no name");
    std::vector<std::string> names;
    Status s = store.list(&names);
    for (const std::string& n : names) printf("%s\n", n.c_str());
    return exit_for(s);
  }
  if (cmd == "app-password") return run_app_password(store, data_dir, words);
  if (cmd == "app-only") {
    if (words.size() != 4 || (words[3] != "on" && words[3] != "off"))
      return usage("user app-only needs NAME and on or off");
    Status s = store.set_app_only(words[2], words[3] == "on");
    if (!s.is_ok()) return exit_for(s);
    printf("%s: %s\n", words[2].c_str(),
           words[3] == "on" ? "IMAP accepts app passwords only" : "IMAP accepts the password too");
    audit_admin(data_dir, words[3] == "on" ? "app_only_on" : "app_only_off", words[2]);
    return notify_server(data_dir, "forget", words[2]) < 0 ? 1 : 0;
  }
  if (words.size() != 3) return usage("user " + cmd + " needs exactly one NAME");
  std::string name = words[2];
  if (!UserStore::valid_name(name))
    return fail("invalid user name '" + name +
                    "': use 1 to 64 of a-z 0-9 . _ - + @, not starting with . or -",
                2);
  if (cmd == "add" || cmd == "passwd") {
    std::string password, error;
    if (!read_password(&password, &error)) return fail(error, 2);
    if (!weak_ok && !ringmail::password_acceptable(password, name, &error)) {
      explicit_bzero(password.data(), password.size());
      return fail("refused: " + error, 2);
    }
    Status s = cmd == "add" ? store.add(name, password, iterations)
                            : store.set_password(name, password, iterations);
    explicit_bzero(password.data(), password.size());
    if (s.is_ok()) {
      printf("%s %s\n", cmd == "add" ? "added" : "password changed for", name.c_str());
      audit_admin(data_dir, cmd == "add" ? "user_add" : "user_passwd", name);
      if (cmd == "passwd" && notify_server(data_dir, "forget", name) < 0) return 1;
    }
    return exit_for(s);
  }
  if (cmd == "del") {
    Status s = store.remove(name);
    if (s.is_ok()) {
      printf("deleted %s\n", name.c_str());
      audit_admin(data_dir, "user_del", name);
      if (notify_server(data_dir, "forget", name) < 0) return 1;
    }
    return exit_for(s);
  }
  if (cmd == "unlock") return run_unlock(data_dir, name);
  return usage("unknown command user " + cmd);
}
