// Failed-authentication counters shared by every core, without a lock: a fixed table of slots,
// each a 64-bit key tag and a 64-bit word (failures, time of the last one), updated with
// compare-and-swap. Keys are "u:NAME" (a user, existing or not) and "i:ADDRESS" (a client IPv4
// address, or the /64 of an IPv6 one). A key's count restarts once `window_s` passed since its
// last failure; a full neighbourhood of slots takes over the stalest one.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace ringmail {

class AuthGuard {
 public:
  static constexpr size_t kSlots = 1 << 16;
  static constexpr size_t kProbe = 8;

  explicit AuthGuard(uint64_t window_s) : window_s_(window_s), slots_(new Slot[kSlots]) {}

  // Counts a failure; returns the failures of `key` within the window, this one included.
  uint32_t fail(std::string_view key, uint64_t now_s);
  // Failures of `key` within the window.
  uint32_t failures(std::string_view key, uint64_t now_s) const;
  // Forgets `key` (a successful login of a user; `ringmail user unlock`).
  void reset(std::string_view key);

  // The key of a client address: IPv4 whole, IPv6 by its /64.
  static std::string ip_key(const void* sockaddr_in6_peer);
  static uint64_t ip_hash(const void* sockaddr_in6_peer) {
    return tag_of(ip_key(sockaddr_in6_peer));
  }

 private:
  struct Slot {
    std::atomic<uint64_t> tag{0};
    std::atomic<uint64_t> word{0};  // failures << 32 | seconds of the last failure
  };
  static uint64_t tag_of(std::string_view key);
  bool live(uint64_t word, uint64_t now_s) const {
    return word != 0 && now_s - (word & 0xffffffffu) < window_s_;
  }

  uint64_t window_s_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace ringmail
