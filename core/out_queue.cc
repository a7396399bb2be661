#include "core/out_queue.h"

#include <cstdlib>
#include <cstring>

#include "core/assert.h"

namespace ringmail {

OutQueue::~OutQueue() {
  clear();
}

void OutQueue::clear() {
  while (head_) {
    Block* next = head_->next;
    free(head_);
    head_ = next;
  }
  tail_ = nullptr;
  bytes_ = 0;
}

void OutQueue::append(std::string_view data) {
  while (!data.empty()) {
    if (!tail_ || tail_->end == tail_->cap) {
      uint32_t cap = data.size() > kBlockBytes ? static_cast<uint32_t>(data.size()) : kBlockBytes;
      RM_ASSERT(data.size() < (1u << 31));
      auto* b = static_cast<Block*>(malloc(sizeof(Block) + cap));
      RM_ASSERT_MSG(b != nullptr, "out of memory");
      b->next = nullptr;
      b->start = b->end = 0;
      b->cap = cap;
      if (tail_)
        tail_->next = b;
      else
        head_ = b;
      tail_ = b;
    }
    size_t n = tail_->cap - tail_->end;
    if (n > data.size()) n = data.size();
    memcpy(tail_->data() + tail_->end, data.data(), n);
    tail_->end += static_cast<uint32_t>(n);
    bytes_ += n;
    data.remove_prefix(n);
  }
}

int OutQueue::fill(iovec* iov, int max) const {
  int n = 0;
  for (Block* b = head_; b && n < max; b = b->next) {
    if (b->end == b->start) continue;
    iov[n].iov_base = b->data() + b->start;
    iov[n].iov_len = b->end - b->start;
    n++;
  }
  return n;
}

void OutQueue::consume(size_t n) {
  RM_ASSERT(n <= bytes_);
  bytes_ -= n;
  while (n > 0) {
    RM_ASSERT(head_ != nullptr);
    size_t in_head = head_->end - head_->start;
    if (n < in_head) {
      head_->start += static_cast<uint32_t>(n);
      return;
    }
    n -= in_head;
    Block* next = head_->next;
    free(head_);
    head_ = next;
    if (!head_) tail_ = nullptr;
  }
  // Drop a fully sent head block too, so an idle connection keeps no memory.
  if (head_ && head_->start == head_->end && head_ == tail_) {
    free(head_);
    head_ = tail_ = nullptr;
  }
}

}  // namespace ringmail
