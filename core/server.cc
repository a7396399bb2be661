#include "core/server.h"

#include <grp.h>
#include <liburing.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstring>
#include <latch>
#include <thread>

#include "core/assert.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/tls.h"

namespace ringmail {
namespace {

constexpr uint32_t kRoutingSlots = 1u << 20;

bool kernel_at_least(int major, int minor) {
  utsname u;
  if (uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

void raise_fd_limit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; i++)
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

// Runs the process as `user` from here on (ports are bound; the key is read). Files made as root
// before (the lock file, a self-signed pair) are given to it first.
bool drop_privileges(const Config& config, const TlsSettings* self_signed, std::string* error) {
  if (config.user.empty()) return true;
  passwd* pw = getpwnam(config.user.c_str());
  if (!pw) {
    *error = "user " + config.user + ": no such account";
    return false;
  }
  if (geteuid() == pw->pw_uid) return true;
  for (const std::string& f : {config.data_dir + "/ringmaild.lock", config.data_dir + "/tls",
                               self_signed ? self_signed->cert_file : std::string(),
                               self_signed ? self_signed->key_file : std::string()}) {
    if (!f.empty() && chown(f.c_str(), pw->pw_uid, pw->pw_gid) != 0 && errno != ENOENT) {
      *error = "chown " + f + ": " + strerror(errno);
      return false;
    }
  }
  if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0 ||
      setuid(0) == 0) {
    *error = "cannot become " + config.user + ": " + strerror(errno);
    return false;
  }
  RM_LOG(info, "privileges_dropped").kv("user", config.user).kv("uid", pw->pw_uid);
  return true;
}

// The TLS settings in effect: the configured files, or the self-signed pair in DATA/tls/ (made on
// first start).
bool tls_settings(const Config& config, TlsSettings* s, std::string* error) {
  s->ciphers = config.tls_ciphers;
  s->min_version = config.tls_min_version;
  if (!config.tls_cert.empty()) {
    s->cert_file = config.tls_cert;
    s->key_file = config.tls_key;
    return true;
  }
  std::string dir = config.data_dir + "/tls";
  for (const std::string& d : {config.data_dir, dir}) {
    if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
      *error = "cannot create " + d + ": " + strerror(errno);
      return false;
    }
  }
  s->cert_file = dir + "/self-signed-cert.pem";
  s->key_file = dir + "/self-signed-key.pem";
  bool created = false;
  if (!tls_ensure_self_signed(s->cert_file, s->key_file, &created, error)) return false;
  if (created)
    RM_LOG(warn, "tls_self_signed_created").kv("cert", s->cert_file).kv("key", s->key_file);
  return true;
}

WOLFSSL_CTX* load_tls(const Config& config, std::string* error) {
  TlsSettings s;
  if (!tls_settings(config, &s, error)) return nullptr;
  std::string fingerprint;
  WOLFSSL_CTX* ctx = tls_make_context(s, &fingerprint, error);
  if (ctx) {
    RM_LOG(info, "tls_ready")
        .kv("cert", s.cert_file)
        .kv("sha256", fingerprint)
        .kv("min_version", s.min_version);
  }
  return ctx;
}

// The admin CLI appends "unlock NAME" (`ringmail user unlock`) or "forget NAME" (a password
// changed or revoked) to DATA/admin-requests and sends SIGUSR1. The file is taken whole (renamed
// first, so a request arriving meanwhile waits for its own signal).
void process_admin_requests(const Config& config, AuthGuard& guard, AuditLog& audit,
                            std::atomic<uint64_t>* credentials_epoch) {
  std::string path = config.data_dir + "/admin-requests";
  std::string taken = path + ".taken";
  if (rename(path.c_str(), taken.c_str()) != 0) return;
  FILE* f = fopen(taken.c_str(), "r");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f)) {
      std::string req(line);
      while (!req.empty() && (req.back() == '\n' || req.back() == '\r')) req.pop_back();
      size_t sp = req.find(' ');
      if (sp == std::string::npos) continue;
      std::string verb = req.substr(0, sp), name = req.substr(sp + 1);
      if (verb == "unlock") {
        guard.reset("u:" + name);
        AuditLine a("unlock");
        a.kv("user", name).kv("by", "admin");
        audit.emit(a);
        RM_LOG(info, "user_unlocked").kv("user", name);
      } else if (verb == "forget") {
        // Every core drops its cached logins at its next login check.
        credentials_epoch->fetch_add(1, std::memory_order_acq_rel);
        RM_LOG(info, "credentials_changed").kv("user", name);
      }
    }
    fclose(f);
  }
  unlink(taken.c_str());
}

}  // namespace

bool check_io_uring(std::string* error, bool* have_msg_ring) {
  io_uring ring;
  int rc = io_uring_queue_init(4, &ring, 0);
  if (rc < 0) {
    if (rc == -ENOSYS || rc == -EPERM || rc == -EACCES) {
      *error = std::string("io_uring is unavailable here (") + strerror(-rc) +
               "): it may be disabled by the kernel.io_uring_disabled sysctl or blocked by a "
               "seccomp profile; ringmaild needs it";
    } else {
      *error = std::string("io_uring_queue_init failed: ") + strerror(-rc);
    }
    return false;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  const struct {
    int op;
    const char* name;
  } needed[] = {{IORING_OP_ACCEPT, "ACCEPT"},   {IORING_OP_RECV, "RECV"},
                {IORING_OP_SENDMSG, "SENDMSG"}, {IORING_OP_TIMEOUT, "TIMEOUT"},
                {IORING_OP_READ, "READ"},       {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
                {IORING_OP_CLOSE, "CLOSE"},     {IORING_OP_WRITE, "WRITE"},
                {IORING_OP_FSYNC, "FSYNC"}};
  bool ok = probe != nullptr;
  if (!probe) *error = "io_uring cannot report its features (kernel too old; needs Linux 6.0+)";
  for (const auto& n : needed) {
    if (ok && !io_uring_opcode_supported(probe, n.op)) {
      *error = std::string("io_uring lacks IORING_OP_") + n.name + " (needs Linux 6.0+)";
      ok = false;
    }
  }
  *have_msg_ring = probe && io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
  if (probe) io_uring_free_probe(probe);
  io_uring_queue_exit(&ring);
  if (ok && !kernel_at_least(6, 0)) {
    *error = "kernel too old: ringmaild needs Linux 6.0+ (multishot recv with provided buffers)";
    ok = false;
  }
  return ok;
}

int run_server(const Config& config, Protocol& protocol) {
  std::string error;
  bool have_msg_ring = false;
  if (!check_io_uring(&error, &have_msg_ring)) {
    RM_LOG(error, "start_failed").kv("reason", error);
    fprintf(stderr, "ringmaild: %s\n", error.c_str());
    return 1;
  }
  if (config.cross_core_wake == "msg_ring" && !have_msg_ring) {
    fprintf(stderr, "ringmaild: cross_core_wake: this kernel has no IORING_OP_MSG_RING (5.18+)\n");
    return 1;
  }
  if (config.cross_core_wake == "eventfd") have_msg_ring = false;
  raise_fd_limit();
  std::vector<int> cpus = allowed_cpus();
  size_t threads = config.threads > 0 ? static_cast<size_t>(config.threads) : cpus.size();

  tls_init();
  std::vector<WOLFSSL_CTX*> tls_contexts;  // the current one last; freed after the reactors
  if (WOLFSSL_CTX* ctx = load_tls(config, &error)) {
    tls_contexts.push_back(ctx);
  } else {
    RM_LOG(error, "start_failed").kv("reason", error);
    fprintf(stderr, "ringmaild: TLS: %s\n", error.c_str());
    tls_cleanup();
    return 1;
  }

  std::vector<int> listen_fds, tls_fds;
  std::string bound, tls_bound;
  // A start that fails from here on says why and gives back what it took.
  auto fail_start = [&] {
    fprintf(stderr, "ringmaild: %s\n", error.c_str());
    for (int fd : listen_fds) close(fd);
    for (int fd : tls_fds) close(fd);
    for (WOLFSSL_CTX* ctx : tls_contexts) tls_free_context(ctx);
    tls_cleanup();
    return 1;
  };
  if (!open_listeners(config.imap_address, threads, &listen_fds, &bound, &error) ||
      (!config.imaps_listen.empty() &&
       !open_listeners(config.imaps_address, threads, &tls_fds, &tls_bound, &error))) {
    return fail_start();
  }

  {
    TlsSettings self_signed;
    bool own_pair = config.tls_cert.empty() && tls_settings(config, &self_signed, &error);
    if (!drop_privileges(config, own_pair ? &self_signed : nullptr, &error)) {
      return fail_start();
    }
  }

  // Signals are taken by this thread alone, with sigwait; the reactors inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);   // reloads the TLS certificate and key
  sigaddset(&stop_signals, SIGUSR1);  // `ringmail user unlock` left a request
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);  // past a file size limit a write fails with EFBIG: a full disk

  AuditLog audit;
  std::string audit_path =
      config.audit_log.empty() ? config.data_dir + "/audit.log" : config.audit_log;
  if (!audit.start(audit_path, &error)) {
    return fail_start();
  }
  AuthGuard guard(static_cast<uint64_t>(config.auth_lockout_s));
  RoutingTable routing(static_cast<uint32_t>(threads), kRoutingSlots);
  HelperPool helpers(static_cast<unsigned>(config.helper_threads));
  RuntimeShared shared;
  shared.config = &config;
  shared.protocol = &protocol;
  shared.routing = &routing;
  shared.helpers = &helpers;
  shared.have_msg_ring = have_msg_ring;
  shared.tls_ctx.store(tls_contexts.back(), std::memory_order_release);
  shared.auth_guard = &guard;
  shared.audit = &audit;
  std::vector<std::unique_ptr<Reactor>> reactors;
  for (size_t i = 0; i < threads; i++) {
    reactors.push_back(std::make_unique<Reactor>(static_cast<uint32_t>(i), &shared, listen_fds[i],
                                                 tls_fds.empty() ? -1 : tls_fds[i]));
    shared.reactors.push_back(reactors.back().get());
  }

  std::latch ready(static_cast<ptrdiff_t>(threads));
  std::latch go(1);
  std::vector<std::string> init_errors(threads);
  std::atomic<bool> init_failed{false};
  std::vector<std::thread> workers;
  for (size_t i = 0; i < threads; i++) {
    workers.emplace_back([&, i] {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpus[i % cpus.size()], &set);
      pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      std::string name = "rm-core-" + std::to_string(i);
      pthread_setname_np(pthread_self(), name.c_str());
      if (!reactors[i]->init(&init_errors[i])) init_failed = true;
      ready.count_down();
      go.wait();
      if (!init_failed) reactors[i]->run();
      tls_thread_exit();
    });
  }
  ready.wait();
  go.count_down();
  int exit_code = 0;
  if (init_failed) {
    for (const std::string& e : init_errors) {
      if (!e.empty()) {
        fprintf(stderr, "ringmaild: cannot start a reactor: %s\n", e.c_str());
        break;
      }
    }
    exit_code = 1;
  } else {
    RM_LOG(info, "listening")
        .kv("proto", "imap")
        .kv("addr", bound)
        .kv("threads", threads)
        .kv("cross_core_wake", have_msg_ring ? "msg_ring" : "eventfd");
    if (!tls_bound.empty()) RM_LOG(info, "listening").kv("proto", "imaps").kv("addr", tls_bound);
    int sig = 0;
    for (;;) {
      sigwait(&stop_signals, &sig);
      if (sig == SIGUSR1) {
        process_admin_requests(config, guard, audit, &shared.credentials_epoch);
        continue;
      }
      if (sig != SIGHUP) break;
      // New connections get the new context; established ones keep theirs.
      if (WOLFSSL_CTX* ctx = load_tls(config, &error)) {
        tls_contexts.push_back(ctx);
        shared.tls_ctx.store(ctx, std::memory_order_release);
        RM_LOG(info, "tls_reloaded");
      } else {
        RM_LOG(error, "tls_reload_failed")
            .kv("reason", error)
            .kv("kept", "the previous certificate");
      }
    }
    RM_LOG(info, "shutdown").kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    shared.stopping.store(true, std::memory_order_seq_cst);
    for (auto& r : reactors) r->wake();
  }
  for (std::thread& t : workers) t.join();
  helpers.stop();
  reactors.clear();
  audit.stop();
  for (WOLFSSL_CTX* ctx : tls_contexts) tls_free_context(ctx);
  tls_cleanup();
  if (exit_code == 0) RM_LOG(info, "stopped");
  return exit_code;
}

}  // namespace ringmail
