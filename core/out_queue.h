// A connection's pending output: a chain of heap blocks, sent with one gathering sendmsg at a
// time. An empty queue holds no memory, so an idle connection costs nothing here.
//
// Invariant: bytes already handed to an in-flight send are never moved or rewritten; appends
// only write past them, and consume() frees blocks only once the kernel has taken their bytes.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ringmail {

class OutQueue {
 public:
  OutQueue() = default;
  ~OutQueue();
  OutQueue(const OutQueue&) = delete;
  OutQueue& operator=(const OutQueue&) = delete;

  void append(std::string_view data);
  bool empty() const { return bytes_ == 0; }
  size_t bytes() const { return bytes_; }

  // Points up to `max` iovecs at the queued bytes, oldest first; returns how many it filled.
  int fill(iovec* iov, int max) const;
  // The kernel took the first `n` queued bytes.
  void consume(size_t n);
  void clear();

 private:
  struct Block {
    Block* next;
    uint32_t start;  // first unsent byte
    uint32_t end;    // one past the last written byte
    uint32_t cap;
    char* data() { return reinterpret_cast<char*>(this + 1); }  // the bytes follow the header
  };
  static constexpr uint32_t kBlockBytes = 4096 - sizeof(Block);

  Block* head_ = nullptr;
  Block* tail_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace ringmail
