#include "core/auth_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <xxhash.h>

namespace ringmail {

uint64_t AuthGuard::tag_of(std::string_view key) {
  uint64_t t = XXH3_64bits(key.data(), key.size());
  return t == 0 ? 1 : t;
}

uint32_t AuthGuard::fail(std::string_view key, uint64_t now_s) {
  const uint64_t tag = tag_of(key);
  const uint64_t now = now_s & 0xffffffffu;
  Slot* victim = nullptr;
  uint64_t victim_age = 0;
  for (size_t i = 0; i < kProbe; i++) {
    Slot& s = slots_[(tag + i) & (kSlots - 1)];
    uint64_t t = s.tag.load(std::memory_order_acquire);
    if (t == tag) {
      uint64_t w = s.word.load(std::memory_order_relaxed);
      for (;;) {
        uint64_t count = live(w, now) ? (w >> 32) + 1 : 1;
        if (count > 0xffffffffu) count = 0xffffffffu;
        if (s.word.compare_exchange_weak(w, count << 32 | now, std::memory_order_acq_rel))
          return static_cast<uint32_t>(count);
      }
    }
    uint64_t w = s.word.load(std::memory_order_relaxed);
    uint64_t age = w == 0 ? UINT64_MAX : now - (w & 0xffffffffu);
    if (t == 0 || !live(w, now)) age = UINT64_MAX;  // free or expired: best
    if (!victim || age > victim_age) {
      victim = &s;
      victim_age = age;
    }
  }
  // Not found: take the freest slot of the neighbourhood (racing claims may double-count a
  // little; a count is a bound to act on, not a ledger).
  victim->tag.store(tag, std::memory_order_release);
  victim->word.store(uint64_t{1} << 32 | now, std::memory_order_release);
  return 1;
}

uint32_t AuthGuard::failures(std::string_view key, uint64_t now_s) const {
  const uint64_t tag = tag_of(key);
  const uint64_t now = now_s & 0xffffffffu;
  for (size_t i = 0; i < kProbe; i++) {
    const Slot& s = slots_[(tag + i) & (kSlots - 1)];
    if (s.tag.load(std::memory_order_acquire) != tag) continue;
    uint64_t w = s.word.load(std::memory_order_acquire);
    return live(w, now) ? static_cast<uint32_t>(w >> 32) : 0;
  }
  return 0;
}

void AuthGuard::reset(std::string_view key) {
  const uint64_t tag = tag_of(key);
  for (size_t i = 0; i < kProbe; i++) {
    Slot& s = slots_[(tag + i) & (kSlots - 1)];
    if (s.tag.load(std::memory_order_acquire) == tag) s.word.store(0, std::memory_order_release);
  }
}

std::string AuthGuard::ip_key(const void* peer) {
  const auto* p = static_cast<const sockaddr_in6*>(peer);
  char buf[INET6_ADDRSTRLEN];
  if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr)) {
    inet_ntop(AF_INET, &p->sin6_addr.s6_addr[12], buf, sizeof buf);
    return std::string("i:") + buf;
  }
  in6_addr prefix = p->sin6_addr;
  for (int i = 8; i < 16; i++) prefix.s6_addr[i] = 0;
  inet_ntop(AF_INET6, &prefix, buf, sizeof buf);
  return std::string("i:") + buf + "/64";
}

}  // namespace ringmail
