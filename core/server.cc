#include "core/server.h"

#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstring>
#include <latch>
#include <thread>

#include "core/assert.h"
#include "core/listener.h"
#include "core/log.h"

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
                {IORING_OP_CLOSE, "CLOSE"}};
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

  std::vector<int> listen_fds;
  std::string bound;
  if (!open_listeners(config.imap_address, threads, &listen_fds, &bound, &error)) {
    fprintf(stderr, "ringmaild: %s\n", error.c_str());
    return 1;
  }

  // Signals are taken by this thread alone, with sigwait; the reactors inherit the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);  // past a file size limit a write fails with EFBIG: a full disk

  RoutingTable routing(static_cast<uint32_t>(threads), kRoutingSlots);
  HelperPool helpers(static_cast<unsigned>(config.helper_threads));
  RuntimeShared shared;
  shared.config = &config;
  shared.protocol = &protocol;
  shared.routing = &routing;
  shared.helpers = &helpers;
  shared.have_msg_ring = have_msg_ring;
  std::vector<std::unique_ptr<Reactor>> reactors;
  for (size_t i = 0; i < threads; i++) {
    reactors.push_back(std::make_unique<Reactor>(static_cast<uint32_t>(i), &shared, listen_fds[i]));
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
    int sig = 0;
    sigwait(&stop_signals, &sig);
    RM_LOG(info, "shutdown").kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    shared.stopping.store(true, std::memory_order_seq_cst);
    for (auto& r : reactors) r->wake();
  }
  for (std::thread& t : workers) t.join();
  helpers.stop();
  reactors.clear();
  if (exit_code == 0) RM_LOG(info, "stopped");
  return exit_code;
}

}  // namespace ringmail
