// fsck for one user's mail: verifies every segment checksum, the mailbox list, every index and
// every cross-reference from an index record to the message bytes it names. With `repair` it
// rebuilds what it can from what is intact (never deleting mail) and checks again.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "storage/env.h"

namespace ringmail {

struct FsckResult {
  uint64_t segments = 0;
  uint64_t segment_bytes = 0;  // bytes read and checksummed
  uint64_t records = 0;        // message records in the segments
  uint64_t mailboxes = 0;
  uint64_t messages = 0;             // index records (a copied message counts once per mailbox)
  uint64_t message_bytes = 0;        // the quota usage this makes
  std::vector<std::string> damage;   // found and not (yet) repaired
  std::vector<std::string> notes;    // harmless leftovers of crashes (torn tails, ...)
  std::vector<std::string> repairs;  // what --repair did
};

// `progress` (may be null) is called with the bytes checked so far.
Status fsck_user(Env* env, const std::string& user_dir, bool repair, FsckResult* result,
                 const std::function<void(uint64_t bytes)>& progress = nullptr);

}  // namespace ringmail
