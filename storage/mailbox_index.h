// A mailbox's message records: a snapshot file plus a log of changes since it (format in
// storage/FORMAT.md). Every change gets the next MODSEQ. Changes are written to the log at once
// and become durable at sync(); the caller acknowledges them only after that.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/env.h"
#include "storage/segment.h"

namespace ringmail {

enum SystemFlag : uint32_t {
  kFlagSeen = 1u << 0,
  kFlagAnswered = 1u << 1,
  kFlagFlagged = 1u << 2,
  kFlagDeleted = 1u << 3,
  kFlagDraft = 1u << 4,
};
constexpr uint32_t kSystemFlagsMask = 0x1f;

struct MessageRecord {
  uint32_t uid = 0;
  uint32_t flags = 0;
  uint64_t keywords = 0;
  uint64_t modseq = 0;
  BlobRef blob;
  uint32_t size = 0;
  uint32_t reserved = 0;
  int64_t internal_date = 0;
};
static_assert(sizeof(MessageRecord) == 48, "the index record layout of FORMAT.md");

// What opening found and repaired.
struct IndexOpenReport {
  uint64_t log_entries_replayed = 0;
  uint64_t log_torn_bytes = 0;  // a torn tail cut off the log
  std::string log_problem;      // why replay stopped early, if it did
};

class MailboxIndex {
 public:
  static constexpr size_t kKeywordsMax = 64;

  // Creates an empty mailbox in `dir` (which must not hold one). Without `durable`, nothing is
  // synced: the caller makes the files and directories durable (UserMail's deferred metadata).
  static Status create(Env* env, const std::string& dir, uint32_t mailbox_id, uint32_t uidvalidity,
                       bool durable = true);
  // Opens the mailbox in `dir`: reads the snapshot and replays the log, cutting a torn tail.
  // `blob_ok`, when given, vets each replayed append: an append whose message bytes did not
  // reach the disk (see FORMAT.md, "Order of writes") ends the replay there.
  // With `read_only` nothing is written (a torn tail is reported, not cut) and no change may
  // be made: fsck uses it.
  using BlobCheck = std::function<bool(const MessageRecord&)>;
  static Status open(Env* env, const std::string& dir, uint32_t mailbox_id,
                     std::unique_ptr<MailboxIndex>* out, IndexOpenReport* report,
                     const BlobCheck& blob_ok = nullptr, bool read_only = false);
  // Replaces whatever is in `dir` with a mailbox holding `records` (in UID order) and nothing
  // else: fsck --repair rebuilds a damaged index this way.
  static Status rebuild(Env* env, const std::string& dir, uint32_t mailbox_id, uint32_t uidvalidity,
                        std::vector<MessageRecord> records, std::vector<std::string> keywords);

  uint32_t mailbox_id() const { return mailbox_id_; }
  uint32_t uidvalidity() const { return uidvalidity_; }
  uint32_t uidnext() const { return uidnext_; }
  // At least 1, even for a mailbox that never changed: RFC 7162 mod-sequence values start at 1
  // (a client may send the value back in SELECT ... QRESYNC), so the first change gets 2.
  uint64_t highest_modseq() const { return highest_modseq_ > 0 ? highest_modseq_ : 1; }
  // In UID order; sequence number n is records()[n - 1].
  const std::vector<MessageRecord>& records() const { return records_; }
  const std::vector<std::string>& keywords() const { return keywords_; }
  // The index of the record with `uid`, or -1.
  int64_t find(uint32_t uid) const;

  // Adds a message with the next UID; fills in rec->uid and rec->modseq.
  Status append(MessageRecord* rec);
  // Sets a message's flags and keywords; returns its new MODSEQ in *modseq.
  Status set_flags(uint32_t uid, uint32_t flags, uint64_t keywords, uint64_t* modseq);
  Status expunge(uint32_t uid);
  // Points a message at a copy of its bytes elsewhere (compaction). Not a change a client sees:
  // it takes no MODSEQ.
  Status relocate(uint32_t uid, BlobRef blob);
  // The bit of keyword `name`, defining it if new. False when all 64 are taken.
  Status keyword_bit(const std::string& name, unsigned* bit);
  // Makes every change so far durable. After one failure it fails for good: the kernel may have
  // dropped the unsynced pages, so nothing written since can ever be acknowledged.
  Status sync();
  // The same, by the caller's own I/O: the file to fdatasync and the result (errno or 0).
  int sync_fd() const { return log_->fd(); }
  Status failed() const { return failed_; }
  void note_sync(int err);
  // Folds the log into a new snapshot and starts an empty log.
  Status checkpoint(bool durable = true);
  uint64_t log_bytes() const { return log_->size(); }

 private:
  MailboxIndex(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  Status write_log(uint16_t type, std::string_view payload);
  uint64_t next_modseq() const { return (highest_modseq_ > 0 ? highest_modseq_ : 1) + 1; }
  Status replay(std::string_view log, const BlobCheck& blob_ok, IndexOpenReport* report,
                uint64_t* valid_bytes);
  bool apply(uint16_t type, std::string_view payload);

  Env* env_;
  std::string dir_;
  uint32_t mailbox_id_ = 0;
  uint32_t uidvalidity_ = 0;
  uint32_t uidnext_ = 1;
  uint64_t highest_modseq_ = 0;
  uint64_t snapshot_seq_ = 0;  // last log sequence number folded into the snapshot
  uint64_t log_seq_ = 0;       // last sequence number written to the log
  std::vector<MessageRecord> records_;
  std::vector<std::string> keywords_;
  std::unique_ptr<AppendFile> log_;
  Status failed_;  // latched by a failed sync or checkpoint
};

}  // namespace ringmail
