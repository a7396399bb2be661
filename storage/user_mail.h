// One user's mail: the mailbox list, the segments and every mailbox's index, plus the user's
// quota usage (format in storage/FORMAT.md). Owned by the user's core: no locks, one thread.
//
// Changes are written at once and made durable by sync(), which syncs the segment before the
// indexes that point into it; the caller acknowledges a change only after sync() returned ok.
// Many changes between two syncs share them: group commit.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "storage/env.h"
#include "storage/fts.h"
#include "storage/mailbox_index.h"
#include "storage/mime_parser.h"
#include "storage/search_text.h"
#include "storage/segment.h"

namespace ringmail {

class UserMail {
 public:
  static constexpr size_t kMailboxesMax = 10000;
  static constexpr size_t kMailboxNameBytesMax = 1024;
  static constexpr char kDelimiter = '/';
  // A mailbox's in-memory full-text index part is written out at this size at the latest.
  static constexpr uint64_t kFtsPendingBytesMax = 16u << 20;

  struct Mailbox {
    uint32_t id = 0;
    std::string name;         // UTF-8; "INBOX" exactly for the inbox
    std::string special_use;  // "\\Sent", "\\Drafts", ... or empty
    bool subscribed = false;
  };
  struct Usage {
    uint64_t bytes = 0;
    uint64_t messages = 0;
  };
  // What opening found and repaired, for logs and fsck.
  struct OpenReport {
    uint64_t segment_torn_bytes = 0;
    std::string segment_damage;  // the last segment is damaged mid-way: a new one was started
    bool created = false;        // a new user: INBOX and the special-use mailboxes were made
  };

  // Opens the mail of the user whose directory is `user_dir`; a user without mail yet gets INBOX,
  // Sent, Drafts, Trash, Junk and Archive.
  static Status open(Env* env, const std::string& user_dir, std::unique_ptr<UserMail>* out,
                     OpenReport* report);

  // Parses the mailbox list file (FORMAT.md); `path` names it in errors.
  static Status parse_list(std::string_view json, const std::string& path,
                           std::vector<Mailbox>* mailboxes, uint32_t* next_id,
                           uint32_t* last_uidvalidity);
  static std::string format_list(const std::vector<Mailbox>& mailboxes, uint32_t next_id,
                                 uint32_t last_uidvalidity);
  static std::string mailbox_dir_name(uint32_t id);  // "0000002a"
  const std::string& dir() const { return dir_; }

  // 1 to 1024 bytes of UTF-8 without NUL, CR or LF, no empty hierarchy level.
  static bool valid_name(std::string_view name);
  // "inbox" and "Inbox/x" become "INBOX" and "INBOX/x": INBOX is case-insensitive.
  static std::string canonical_name(std::string_view name);

  const std::vector<Mailbox>& mailboxes() const { return mailboxes_; }
  const Mailbox* find(std::string_view name) const;
  Status create_mailbox(std::string_view name, std::string_view special_use, uint32_t* id);
  // Deletes one mailbox and its messages (its children stay, as RFC 9051 says).
  Status delete_mailbox(std::string_view name);
  // Renames a mailbox and all below it. Renaming INBOX moves its messages to a new mailbox and
  // leaves INBOX empty (RFC 9051 section 6.3.6).
  Status rename_mailbox(std::string_view from, std::string_view to);
  Status set_subscribed(std::string_view name, bool on);

  // Opens every mailbox's index (so usage() is exact and later calls to index() touch no file),
  // folding into a new snapshot every log longer than `checkpoint_log_bytes`.
  Status load_all(uint64_t checkpoint_log_bytes);
  // The index of a mailbox, opened on first use and kept while this object lives.
  Status index(uint32_t mailbox_id, MailboxIndex** out);

  // Stores a new message in a mailbox, with its MIME parse (the cache record FETCH uses); *out
  // is its index record.
  Status append(uint32_t mailbox_id, std::string_view message, int64_t internal_date,
                uint32_t flags, uint64_t keywords, MessageRecord* out);
  // Adds a reference to `src`'s bytes to another mailbox (no bytes are copied).
  Status copy(const MessageRecord& src, uint32_t to_mailbox, uint32_t flags, uint64_t keywords,
              MessageRecord* out);
  Status expunge(uint32_t mailbox_id, uint32_t uid);
  // Notes that an index changed outside append/copy/expunge (flags), for sync().
  void mark_dirty(uint32_t mailbox_id) { dirty_indexes_.insert(mailbox_id); }
  // The message's bytes, from the mapped segment (checksum checked when `verify`). The view
  // stays valid as long as this object lives.
  Status read(const MessageRecord& rec, bool verify, std::string_view* message);
  // The message's MIME structure, from the cache record stored with it.
  Status read_mime(const MessageRecord& rec, MimeInfo* out);
  // Makes every change so far durable: the segment first, then the changed indexes.
  Status sync();
  // Group commit through the caller's own I/O (the server fsyncs with io_uring, off its
  // thread): begin_sync() names the files that hold every change made so far; the caller
  // fdatasyncs them all (in any order: an index entry whose message bytes did not reach the disk
  // is dropped at open, see FORMAT.md) and reports the first error (errno, or 0) to
  // finish_sync(). Changes made in between belong to the next round. The files stay open until
  // finish_sync(). A round that fails latches: nothing is acknowledged again.
  //
  // With deferred metadata (the server's mode), changes to the mailbox list (CREATE, DELETE,
  // RENAME, SUBSCRIBE) join the round too instead of fsyncing where they are made: the list is
  // written to a temporary file and a new mailbox's files and directories are named in
  // `dir_fds` (fsync) beside `fds` (fdatasync). Then, when finish_sync() sets `list_stage`,
  // a second stage follows: the temporary list has been renamed over the list, the caller
  // fsyncs `dir_fds` again (now the user's directory) and calls finish_list_stage(). Only then
  // are a deleted mailbox's files removed.
  struct SyncRound {
    std::vector<int> fds;
    std::vector<int> dir_fds;
    uint32_t segment = UINT32_MAX;  // the segment synced, or UINT32_MAX
    std::vector<uint32_t> mailboxes;
    std::vector<int> owned;          // descriptors opened for this round, closed at its end
    bool list = false;               // the list is in this round (written to mailboxes.tmp)
    bool list_stage = false;         // the second stage is due
    std::vector<uint32_t> removals;  // mailboxes whose files go once the list is durable
  };
  void set_deferred_metadata(bool on) { deferred_metadata_ = on; }
  bool needs_sync() const {
    return segment_dirty_ || !dirty_indexes_.empty() || list_dirty_ || !new_mailboxes_.empty();
  }
  Status begin_sync(SyncRound* round);
  Status finish_sync(SyncRound& round, int err);
  Status finish_list_stage(SyncRound& round, int err);

  // The full-text index (storage/fts.h). When on, a message is indexed as it is stored if its
  // mailbox's index covers every message before it; the rest is indexed by fts_catch_up().
  // The in-memory part of a mailbox's index is written as a segment every `batch_docs`
  // messages and by fts_flush().
  // With `background_merges`, index merges are left to fts_plan_merge() (the server runs them
  // on its helper pool); otherwise they run when a segment is written.
  void set_fts(bool on, uint32_t batch_docs, bool background_merges = false) {
    fts_enabled_ = on;
    fts_batch_docs_ = batch_docs > 0 ? batch_docs : 1;
    fts_background_merges_ = background_merges;
  }
  bool fts_enabled() const { return fts_enabled_; }
  // The mailbox's index, opened on first use; nullptr (and ok) when the index is off.
  Status fts(uint32_t mailbox_id, FtsIndex** out);
  // Indexes messages the mailbox's index does not cover yet, in UID order, until `budget_bytes`
  // of messages were read; *done when it covers them all.
  Status fts_catch_up(uint32_t mailbox_id, uint64_t budget_bytes, bool* done);
  // Writes every mailbox's in-memory index part as a segment.
  Status fts_flush();
  // Heap bytes held by the in-memory parts of this user's indexes (ImapCore keeps their sum on
  // a core within a budget by flushing the largest).
  uint64_t fts_memory_bytes() const;
  // A merge due in an open mailbox's index: run job with FtsIndex::run_merge on any thread,
  // then fts_finish_merge() here. False when none is due.
  struct FtsMerge {
    uint32_t mailbox_id = 0;
    const FtsIndex* index = nullptr;
    std::shared_ptr<FtsIndex::MergeJob> job;
  };
  bool fts_plan_merge(FtsMerge* out);
  Status fts_finish_merge(FtsMerge& m);
  // Messages indexed, bytes of text and of index, over every mailbox (opens them all).
  Status fts_stats(FtsStats* out);
  // Drops every mailbox's index and indexes all messages again.
  Status fts_rebuild();

  Usage usage() const { return usage_; }
  // Bytes of messages expunged or deleted since this object was opened or last compacted: when
  // non-zero, compact() may have something to reclaim.
  uint64_t released_bytes() const { return released_bytes_; }

  struct CompactResult {
    uint64_t segments_rewritten = 0;
    uint64_t records_moved = 0;
    uint64_t bytes_freed = 0;
    std::vector<std::string> skipped;  // segments left alone, and why
  };
  // Rewrites every sealed segment in which at least `garbage_min` of the bytes belong to no
  // message any more: its live records are copied to the active segment, the indexes are
  // pointed at the copies and made durable, and only then is the old segment deleted. A crash at
  // any step loses nothing: every index always names bytes that exist.
  Status compact(double garbage_min, CompactResult* result);

  // Segments are sealed at this size (tests use small ones).
  void set_segment_bytes_max(uint64_t bytes) { segment_bytes_max_ = bytes; }

 private:
  UserMail(Env* env, std::string dir) : env_(env), dir_(std::move(dir)) {}
  Status load_list(bool* missing);
  Status save_list();
  Status sync_metadata();  // deferred metadata made durable here and now
  void remove_mailbox_files(uint32_t id);
  static void close_round(SyncRound& round);
  Status open_segments(OpenReport* report);
  Status roll_segment();
  Status map_record(BlobRef blob, uint64_t size, bool verify, RecordHeader* header,
                    RecordPayload* payload);
  std::string mailbox_dir(uint32_t id) const;
  Mailbox* find_mutable(std::string_view name);
  uint32_t next_uidvalidity();

  Env* env_;
  std::string dir_;
  std::vector<Mailbox> mailboxes_;
  uint32_t next_id_ = 1;
  uint32_t last_uidvalidity_ = 0;
  std::map<uint32_t, std::unique_ptr<MailboxIndex>> indexes_;
  std::unique_ptr<SegmentWriter> writer_;
  uint64_t writer_valid_bytes_ = 0;  // the active segment's recovered prefix at open
  std::map<uint32_t, std::unique_ptr<ReadFile>> readers_;
  std::vector<std::unique_ptr<ReadFile>> retired_readers_;  // smaller maps of a grown segment
  bool segment_dirty_ = false;
  std::set<uint32_t> dirty_indexes_;
  std::set<uint32_t> syncing_indexes_;  // in a round between begin_sync() and finish_sync()
  std::vector<std::unique_ptr<MailboxIndex>> retired_indexes_;  // deleted while syncing
  Usage usage_;
  uint64_t released_bytes_ = 0;
  uint64_t segment_bytes_max_ = kSegmentBytesMax;
  Status fts_add(uint32_t mailbox_id, FtsIndex* f, const MessageRecord& rec,
                 std::string_view message, const MimeInfo& mime);
  bool fts_enabled_ = false;
  bool fts_background_merges_ = false;
  uint32_t fts_batch_docs_ = 1000;
  std::map<uint32_t, std::unique_ptr<FtsIndex>> fts_;
  MessageText text_extract_;
  std::string text_;
  MimeInfo fts_mime_;
  MimeParser parser_;  // reused: no allocation per message once warm
  MimeInfo mime_;
  std::string cache_;
  bool deferred_metadata_ = false;
  bool list_dirty_ = false;              // the list changed since it was last written
  std::vector<uint32_t> new_mailboxes_;  // created, files not yet synced
  std::vector<uint32_t> removals_;       // deleted, files still there
};

}  // namespace ringmail
