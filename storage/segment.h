// Segments: append-only files of self-describing, checksummed message records, shared by all of a
// user's mailboxes (format in storage/FORMAT.md). A segment is sealed at kSegmentBytesMax.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "storage/env.h"

namespace ringmail {

constexpr uint64_t kSegmentBytesMax = 64ull << 20;
constexpr uint64_t kSegmentHeaderBytes = 32;
constexpr uint64_t kRecordHeaderBytes = 40;

// Where a message's bytes live: the record at `offset` in segment `segment`.
struct BlobRef {
  uint32_t segment = 0;
  uint32_t offset = 0;
};

struct RecordHeader {
  uint32_t mailbox = 0;
  uint32_t uid = 0;
  int64_t internal_date = 0;
  uint64_t length = 0;
  uint32_t cache_length = 0;  // the MIME cache record after the body (storage/mime_cache.h)
};

// The bytes of a record after its header: the message, then its MIME cache record.
struct RecordPayload {
  std::string_view body;
  std::string_view cache;
};

std::string segment_file_name(uint32_t id);  // "0000002a.seg"

// What a scan of a segment's bytes found.
struct SegmentScan {
  uint64_t valid_bytes = 0;    // header plus the intact records before any problem
  uint64_t records = 0;        // intact records, including any found after damage
  uint64_t torn_bytes = 0;     // a torn tail after the prefix: no intact record follows
  uint64_t damaged_bytes = 0;  // damage with intact records after it: from the prefix's end
  std::string problem;         // the first problem, empty when there is none
};

// Walks the records of a segment image, calling `fn` for each intact one (may be null), also
// those after a damaged stretch. Fails only when the file header itself is wrong.
Status scan_segment(
    std::string_view file, uint32_t id,
    const std::function<void(uint32_t offset, const RecordHeader&, const RecordPayload&)>& fn,
    SegmentScan* out);

// Reads the record at `offset` of a segment image, checking its bounds and magic; with
// `verify`, its checksum too.
Status read_record(std::string_view file, uint32_t offset, bool verify, RecordHeader* header,
                   RecordPayload* payload);

// The segment being filled.
class SegmentWriter {
 public:
  // Opens segment `id` in `dir`, creating it (with its header, synced) if missing, and cuts a
  // torn tail off an existing one; `scan` says what was found. A segment damaged in the middle
  // is left as it is (Status::corrupt): the caller starts a new segment instead.
  static Status open(Env* env, const std::string& dir, uint32_t id,
                     std::unique_ptr<SegmentWriter>* out, SegmentScan* scan);

  // Appends a record. Not durable until sync(). On failure the segment is cut back to where it
  // was, so a failed append leaves no trace.
  Status append(uint32_t mailbox, uint32_t uid, int64_t internal_date, std::string_view body,
                std::string_view cache, BlobRef* ref);
  // After one failure it fails for good (see MailboxIndex::sync).
  Status sync();
  // For a sync made by the caller's own I/O (the server's io_uring): the file to fdatasync, and
  // the result to record (errno or 0), latched like sync()'s.
  int sync_fd() const { return file_->fd(); }
  Status failed() const { return failed_; }
  void note_sync(int err);
  uint32_t id() const { return id_; }
  uint64_t size() const { return file_->size(); }

 private:
  SegmentWriter(uint32_t id, std::unique_ptr<AppendFile> file) : id_(id), file_(std::move(file)) {}
  uint32_t id_;
  std::unique_ptr<AppendFile> file_;
  Status failed_;
};

}  // namespace ringmail
