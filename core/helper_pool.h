// A small pool of threads for work that cannot be made asynchronous (a deliberately slow password
// hash, a file read on the login path), so no reactor thread ever blocks on it. A job runs its
// work on a helper thread and then goes back to the reactor it came from, which runs the job's
// completion on its own thread.
#pragma once

#include <atomic>
#include <functional>
#include <semaphore>
#include <thread>
#include <vector>

#include "core/mpmc_queue.h"

namespace ringmail {

class Reactor;

struct HelperJob {
  Reactor* origin = nullptr;   // the reactor that runs `done`
  std::function<void()> work;  // runs on a helper thread; must not touch reactor state
  std::function<void(bool cancelled)> done;  // runs on `origin`'s thread
  // Set by the origin when nobody needs the result any more (the client left): the pool then
  // skips `work`; `done` still runs.
  std::atomic<bool> abandoned{false};
};

class HelperPool {
 public:
  static constexpr size_t kJobsMax = 1024;  // queued and running jobs, all reactors together

  explicit HelperPool(unsigned threads);
  ~HelperPool();
  HelperPool(const HelperPool&) = delete;
  HelperPool& operator=(const HelperPool&) = delete;

  // Never blocks. False when kJobsMax jobs are already queued: the caller answers "busy".
  bool submit(HelperJob* job);
  // Runs the queued jobs to their end and joins the threads.
  void stop();

 private:
  void run();

  MpmcQueue<HelperJob*> queue_{kJobsMax};
  std::counting_semaphore<> ready_{0};
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
};

}  // namespace ringmail
