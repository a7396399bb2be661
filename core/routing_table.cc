#include "core/routing_table.h"

#include <sys/mman.h>
#include <xxhash.h>

#include "core/assert.h"

namespace ringmail {
namespace {
constexpr uint64_t kCoreMask = 0xffff;
}  // namespace

RoutingTable::RoutingTable(uint32_t cores, uint32_t slots)
    : cores_(cores),
      mask_(slots - 1),
      slots_(nullptr),
      users_per_core_(new std::atomic<uint64_t>[cores]) {
  RM_ASSERT(cores >= 1 && cores <= kCoreMask);
  RM_ASSERT(slots >= kProbesMax && (slots & (slots - 1)) == 0);
  void* mem = mmap(nullptr, sizeof(uint64_t) * slots, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  RM_ASSERT_MSG(mem != MAP_FAILED, "cannot map the routing table");
  slots_ = static_cast<uint64_t*>(mem);
  for (uint32_t i = 0; i < cores; i++) users_per_core_[i].store(0, std::memory_order_relaxed);
}

RoutingTable::~RoutingTable() {
  munmap(slots_, sizeof(uint64_t) * (mask_ + 1));
}

// Invariant: a key is never 0 (0 marks an empty slot) and its low 16 bits are 0.
uint64_t RoutingTable::key_of(std::string_view user) {
  uint64_t key = XXH3_64bits(user.data(), user.size()) & ~kCoreMask;
  return key == 0 ? (1ull << 16) : key;
}

uint32_t RoutingTable::least_loaded() const {
  uint32_t best = 0;
  uint64_t best_users = users_per_core_[0].load(std::memory_order_relaxed);
  for (uint32_t c = 1; c < cores_; c++) {
    uint64_t n = users_per_core_[c].load(std::memory_order_relaxed);
    if (n < best_users) {
      best = c;
      best_users = n;
    }
  }
  return best;
}

std::optional<uint32_t> RoutingTable::find(std::string_view user) const {
  uint64_t key = key_of(user);
  for (uint32_t i = 0; i < kProbesMax; i++) {
    uint64_t v = slot(((key >> 16) + i) & mask_).load(std::memory_order_acquire);
    if (v == 0) return std::nullopt;
    if ((v & ~kCoreMask) == key) return static_cast<uint32_t>(v & kCoreMask);
  }
  return std::nullopt;
}

uint32_t RoutingTable::owner(std::string_view user) {
  uint64_t key = key_of(user);
  for (uint32_t i = 0; i < kProbesMax; i++) {
    std::atomic_ref<uint64_t> s = slot(((key >> 16) + i) & mask_);
    uint64_t v = s.load(std::memory_order_acquire);
    while (v == 0) {
      uint32_t core = least_loaded();
      if (s.compare_exchange_strong(v, key | core, std::memory_order_acq_rel)) {
        users_per_core_[core].fetch_add(1, std::memory_order_relaxed);
        return core;
      }
      // Lost the race: v now holds the winner's entry, which may be for this very user.
    }
    if ((v & ~kCoreMask) == key) return static_cast<uint32_t>(v & kCoreMask);
  }
  // The neighbourhood is full: fall back to a placement every core computes alike.
  return static_cast<uint32_t>((key >> 16) % cores_);
}

uint64_t RoutingTable::users_on(uint32_t core) const {
  RM_ASSERT(core < cores_);
  return users_per_core_[core].load(std::memory_order_relaxed);
}

}  // namespace ringmail
