// A bounded single-producer single-consumer ring: the cross-core mailbox between one pair of
// reactors. Lock-free; push fails when full instead of waiting, so a producer never blocks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/assert.h"

namespace ringmail {

template <typename T>
class SpscRing {
 public:
  // REQUIRES: capacity is a power of two.
  explicit SpscRing(size_t capacity) : mask_(capacity - 1), slots_(new T[capacity]) {
    RM_ASSERT(capacity >= 2 && (capacity & (capacity - 1)) == 0);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer side only.
  bool push(T value) {
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ > mask_) return false;
    }
    slots_[tail & mask_] = std::move(value);
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Consumer side only.
  bool pop(T* out) {
    uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return false;
    }
    *out = std::move(slots_[head & mask_]);
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  // Either side; exact only when the other side is quiet.
  bool empty() const {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
  }

 private:
  const uint64_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(64) std::atomic<uint64_t> head_{0};  // next slot to pop; written by the consumer
  uint64_t tail_cache_ = 0;                    // consumer's last view of tail_
  alignas(64) std::atomic<uint64_t> tail_{0};  // next slot to push; written by the producer
  uint64_t head_cache_ = 0;                    // producer's last view of head_
};

}  // namespace ringmail
