#include "core/helper_pool.h"

#include <pthread.h>

#include <string>

#include "core/reactor.h"

namespace ringmail {

HelperPool::HelperPool(unsigned threads) {
  for (unsigned i = 0; i < threads; i++) {
    threads_.emplace_back([this] { run(); });
    std::string name = "rm-helper-" + std::to_string(i);
    pthread_setname_np(threads_.back().native_handle(), name.c_str());
  }
}

HelperPool::~HelperPool() {
  stop();
}

bool HelperPool::submit(HelperJob* job) {
  if (stopping_.load(std::memory_order_acquire) || !queue_.push(job)) return false;
  ready_.release();
  return true;
}

void HelperPool::stop() {
  if (stopping_.exchange(true)) return;
  for (size_t i = 0; i < threads_.size(); i++) ready_.release();
  for (std::thread& t : threads_) t.join();
}

void HelperPool::run() {
  for (;;) {
    ready_.acquire();
    HelperJob* job = nullptr;
    if (!queue_.pop(&job)) {
      if (stopping_.load(std::memory_order_acquire)) return;
      continue;
    }
    if (!job->abandoned.load(std::memory_order_acquire)) job->work();
    job->origin->complete_helper_job(job);
  }
}

}  // namespace ringmail
