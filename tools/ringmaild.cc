// ringmaild: the IMAP server. Settings come from --config FILE (JSON) and flags that override it;
// with neither it runs on its embedded default (data in ./var, IMAP on 127.0.0.1:1143).
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "protocol/session.h"
#include "storage/user_store.h"

namespace {

constexpr const char* kUsage =
    "usage: ringmaild [--config FILE] [--SETTING VALUE ...]\n"
    "  --config FILE            JSON settings (see README.md, 'Configuration')\n"
    "  --data-dir DIR           where mail and users live (default ./var)\n"
    "  --imap-listen HOST:PORT  IMAP address (default 127.0.0.1:1143; port 0 = any free port)\n"
    "  --threads N              reactor threads (default: one per CPU)\n"
    "  --log-level LEVEL        debug, info, warn or error\n"
    "Every setting of the config file is also a flag: key idle_timeout_s is --idle-timeout-s.\n";

int usage_error(const std::string& msg) {
  fprintf(stderr, "ringmaild: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

std::string key_of_flag(std::string_view flag) {
  std::string key(flag.substr(2));
  for (char& c : key)
    if (c == '-') c = '_';
  return key;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ringmail;
  Config config;
  std::string error;
  // The config file first, whatever its place on the line, so that flags override it.
  for (int i = 1; i < argc; i++) {
    if (std::string_view(argv[i]) == "--config") {
      if (i + 1 >= argc) return usage_error("--config needs a file");
      if (!config.load_file(argv[i + 1], &error)) {
        fprintf(stderr, "ringmaild: %s\n", error.c_str());
        return 2;
      }
    }
  }
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--config") {
      i++;
      continue;
    }
    if (arg.substr(0, 2) != "--") return usage_error("unexpected argument " + std::string(arg));
    if (i + 1 >= argc) return usage_error(std::string(arg) + " needs a value");
    if (!config.set(key_of_flag(arg), argv[++i], "flag " + std::string(arg), &error)) {
      fprintf(stderr, "ringmaild: %s\n", error.c_str());
      return 2;
    }
  }
  if (!config.finish(&error)) {
    fprintf(stderr, "ringmaild: %s\n", error.c_str());
    return 2;
  }
  LogLevel level = LogLevel::info;
  parse_log_level(config.log_level, &level);
  set_log_level(level);

  // The data directory: created private, and locked so two servers never share one store.
  bool created = mkdir(config.data_dir.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) {
    fprintf(stderr, "ringmaild: data_dir %s: cannot create: %s\n", config.data_dir.c_str(),
            strerror(errno));
    return 1;
  }
  if (!config.user.empty()) {
    // ringmaild binds its ports as root, then runs as `user` (run_server drops to it): the data
    // directory must be that account's.
    passwd* pw = getpwnam(config.user.c_str());
    if (!pw) {
      fprintf(stderr, "ringmaild: user %s: no such account\n", config.user.c_str());
      return 1;
    }
    if (geteuid() != 0 && geteuid() != pw->pw_uid) {
      fprintf(stderr, "ringmaild: user %s: changing to it needs root\n", config.user.c_str());
      return 1;
    }
    struct stat st;
    if (created && chown(config.data_dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      fprintf(stderr, "ringmaild: data_dir %s: chown: %s\n", config.data_dir.c_str(),
              strerror(errno));
      return 1;
    }
    if (stat(config.data_dir.c_str(), &st) != 0 || st.st_uid != pw->pw_uid) {
      fprintf(stderr,
              "ringmaild: data_dir %s belongs to uid %u, but ringmaild runs as %s (uid %u): "
              "chown -R %s %s\n",
              config.data_dir.c_str(), static_cast<unsigned>(st.st_uid), config.user.c_str(),
              static_cast<unsigned>(pw->pw_uid), config.user.c_str(), config.data_dir.c_str());
      return 1;
    }
  }
  std::string lock_path = config.data_dir + "/ringmaild.lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    fprintf(stderr, "ringmaild: data_dir %s: cannot open %s: %s\n", config.data_dir.c_str(),
            lock_path.c_str(), strerror(errno));
    return 1;
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    fprintf(stderr, "ringmaild: data_dir %s is in use by another ringmaild\n",
            config.data_dir.c_str());
    return 1;
  }
  // The lock file names the server, so `ringmail user unlock` can signal it.
  if (ftruncate(lock_fd, 0) == 0) dprintf(lock_fd, "%d\n", static_cast<int>(getpid()));

  RM_LOG(info, "start")
      .kv("version", "0.1.0")
      .kv("data_dir", config.data_dir)
      .kv("imap_listen", config.imap_listen);
  if (UserStore(config.data_dir).empty()) {
    RM_LOG(info, "no_users")
        .kv("hint",
            "add one: echo PASSWORD | build/ringmail user add NAME "
            "--data-dir " +
                config.data_dir);
  }
  ImapProtocol protocol;
  int rc = run_server(config, protocol);
  close(lock_fd);
  return rc;
}
