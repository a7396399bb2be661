// The user-to-core routing table: the only structure the reactors share. A user's owner core is
// chosen once, on the user's first login, as the core owning the fewest users; every later login
// on any core finds the same answer. Lock-free: a slot is one 64-bit word, claimed with one CAS.
//
// A slot holds the top 48 bits of the user name's XXH3 hash and a 16-bit core number. Two users
// whose hashes collide in 48 bits share an owner core, which is harmless: the table decides
// placement, never identity.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace ringmail {

class RoutingTable {
 public:
  // REQUIRES: 1 <= cores <= 65535; slots is a power of two.
  RoutingTable(uint32_t cores, uint32_t slots);
  ~RoutingTable();
  RoutingTable(const RoutingTable&) = delete;
  RoutingTable& operator=(const RoutingTable&) = delete;

  // The owner core of `user`, assigning the least loaded core on first sight.
  uint32_t owner(std::string_view user);
  // The owner core if the user was assigned one.
  std::optional<uint32_t> find(std::string_view user) const;
  // Users assigned to `core` so far.
  uint64_t users_on(uint32_t core) const;
  uint32_t cores() const { return cores_; }

  static constexpr uint32_t kProbesMax = 64;

 private:
  uint32_t least_loaded() const;
  static uint64_t key_of(std::string_view user);

  std::atomic_ref<uint64_t> slot(uint64_t i) const { return std::atomic_ref<uint64_t>(slots_[i]); }

  const uint32_t cores_;
  const uint64_t mask_;
  // Zero pages from mmap: a table sized for millions of users costs memory only where used.
  uint64_t* slots_;
  std::unique_ptr<std::atomic<uint64_t>[]> users_per_core_;
};

}  // namespace ringmail
