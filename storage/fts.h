// The full-text index of one mailbox (format in storage/FORMAT.md, "Full-text index"): trigrams
// of the folded search text (storage/search_text.h) with, for each, the UIDs of the messages
// whose text holds it. A query's trigrams narrow the messages to candidates, and SEARCH then
// verifies each candidate against the message itself, so the answer is exactly a scan's.
//
// The index covers the mailbox's messages up to covered_uid(); SEARCH scans the messages above
// it. Immutable segment files each cover a UID range (lo, hi], the ranges contiguous from 0;
// newer messages sit in an in-memory part until flush() writes it as a segment; segments of a
// similar size are merged four at a time, which also drops expunged messages. The index is
// derived data: a segment file that fails its checks is removed at open, and the messages it
// covered are indexed again.
//
// One thread (the user's owner core), like the rest of UserMail.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/env.h"

namespace ringmail {

struct FtsStats {
  uint64_t docs = 0;         // messages indexed, in segments and in memory
  uint64_t text_bytes = 0;   // folded text indexed
  uint64_t index_bytes = 0;  // segment files
  uint32_t segments = 0;
  uint32_t covered_uid = 0;
};

class FtsIndex {
 public:
  static constexpr const char* kDirName = "fts";  // under the mailbox's directory
  static constexpr size_t kMergeFanIn = 4;

  ~FtsIndex();

  // Opens the index in `mailbox_dir`/fts (created when missing). Segment files that are damaged,
  // of another UIDVALIDITY or not contiguous with the others are removed and named in *dropped.
  static Status open(Env* env, const std::string& mailbox_dir, uint32_t uidvalidity,
                     std::unique_ptr<FtsIndex>* out, std::vector<std::string>* dropped);
  // Checks every segment file of `mailbox_dir` without changing anything (fsck).
  static Status verify(Env* env, const std::string& mailbox_dir, uint32_t uidvalidity,
                       std::vector<std::string>* problems);

  uint32_t covered_uid() const { return covered_; }
  // Indexes message `uid` with its folded search text (MessageText::extract).
  // REQUIRES: uid > covered_uid(), and every message of the mailbox below uid is covered.
  void add(uint32_t uid, std::string_view text);
  uint32_t pending_docs() const { return mem_docs_; }
  // Bytes the in-memory part holds.
  uint64_t pending_bytes() const { return mem_.size() * sizeof(uint64_t); }
  // What the in-memory part holds on the heap (its capacity).
  uint64_t memory_bytes() const { return mem_.capacity() * sizeof(uint64_t); }
  // Writes the in-memory part as a segment file, then (unless merges run in the background)
  // merges while four neighbouring segments are of one size class. `live` says whether a UID is
  // still in the mailbox.
  Status flush(const std::function<bool(uint32_t)>& live);

  // Merges in the background (the server's mode): flush() only writes, and plan_merge() hands
  // out the merge due, if any, as a job that run_merge() runs on any thread (it reads only the
  // immutable input files and writes the output) and finish_merge() installs on this one. One
  // merge at a time. A job whose index is gone is simply dropped.
  struct MergeJob;
  void set_background_merges(bool on) { background_merges_ = on; }
  std::shared_ptr<MergeJob> plan_merge(const std::function<bool(uint32_t)>& live);
  static void run_merge(MergeJob* job);
  Status finish_merge(MergeJob* job);

  // Appends to *out, ascending, a superset of the covered UIDs whose text contains `needle`
  // (folded). False, with nothing appended, when the needle is shorter than a trigram: then
  // every covered message is a candidate.
  bool candidates(std::string_view needle, std::vector<uint32_t>* out) const;

  FtsStats stats() const;
  // Removes every segment and the in-memory part: nothing is covered any more.
  Status clear();

 private:
  struct Segment;
  FtsIndex(Env* env, std::string dir, uint32_t uidvalidity);
  static Status write_segment(Env* env, const std::string& dir, uint32_t uidvalidity, uint32_t lo,
                              uint32_t hi, uint32_t docs, uint64_t text_bytes,
                              const std::vector<uint32_t>& keys,
                              const std::function<void(uint32_t key, std::vector<uint32_t>*)>& uids,
                              std::shared_ptr<Segment>* out);

  Env* env_;
  std::string dir_;
  uint32_t uidvalidity_;
  uint32_t covered_ = 0;
  std::vector<std::shared_ptr<Segment>> segments_;  // by UID range
  bool background_merges_ = false;
  bool merging_ = false;
  // The in-memory part: UIDs in (mem_lo_, covered_].
  uint32_t mem_lo_ = 0;
  uint32_t mem_docs_ = 0;
  uint64_t mem_text_bytes_ = 0;
  // (trigram << 32 | UID) per trigram of each message; sorted up to mem_sorted_ (queries sort
  // the rest).
  void sort_memory() const;
  mutable std::vector<uint64_t> mem_;
  mutable size_t mem_sorted_ = 0;
};

}  // namespace ringmail
