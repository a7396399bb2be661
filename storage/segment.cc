#include "storage/segment.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <cstring>
#include <ctime>
#include <string>

#include "core/assert.h"
#include "storage/encoding.h"

namespace ringmail {
namespace {

constexpr char kSegmentMagic[8] = {'R', 'M', 'S', 'E', 'G', 0, 0, 0};
constexpr uint32_t kSegmentVersion = 1;
constexpr uint32_t kRecordMagic = 0x3147534d;  // "MSG1"

uint64_t padded(uint64_t n) {
  return (n + 7) & ~uint64_t{7};
}

uint64_t record_checksum(const char* header, const RecordPayload& p) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, header, 32);
  XXH3_64bits_update(&st, p.body.data(), p.body.size());
  XXH3_64bits_update(&st, p.cache.data(), p.cache.size());
  return XXH3_64bits_digest(&st);
}

std::string segment_header(uint32_t id) {
  char h[kSegmentHeaderBytes] = {};
  memcpy(h, kSegmentMagic, 8);
  store<uint32_t>(h + 8, kSegmentVersion);
  store<uint32_t>(h + 12, id);
  store<int64_t>(h + 16, static_cast<int64_t>(time(nullptr)));
  store<uint64_t>(h + 24, XXH3_64bits(h, 24));
  return std::string(h, sizeof h);
}

}  // namespace

std::string segment_file_name(uint32_t id) {
  char name[16];
  snprintf(name, sizeof name, "%08x.seg", id);
  return name;
}

Status read_record(std::string_view file, uint32_t offset, bool verify, RecordHeader* header,
                   RecordPayload* payload) {
  if (offset < kSegmentHeaderBytes || offset % 8 != 0 || offset > file.size() ||
      file.size() - offset < kRecordHeaderBytes)
    return Status::corrupt("record offset " + std::to_string(offset) + " out of bounds");
  const char* p = file.data() + offset;
  if (load<uint32_t>(p) != kRecordMagic)
    return Status::corrupt("no record at offset " + std::to_string(offset));
  header->mailbox = load<uint32_t>(p + 4);
  header->uid = load<uint32_t>(p + 8);
  header->internal_date = load<int64_t>(p + 16);
  header->cache_length = load<uint32_t>(p + 12);
  header->length = load<uint64_t>(p + 24);
  uint64_t room = file.size() - offset - kRecordHeaderBytes;
  if (header->length > room || header->cache_length > room - header->length)
    return Status::corrupt("record at offset " + std::to_string(offset) + " runs past the end");
  payload->body = file.substr(offset + kRecordHeaderBytes, header->length);
  payload->cache = file.substr(offset + kRecordHeaderBytes + header->length, header->cache_length);
  if (verify && record_checksum(p, *payload) != load<uint64_t>(p + 32))
    return Status::corrupt("checksum mismatch in record at offset " + std::to_string(offset));
  return Status::ok();
}

Status scan_segment(
    std::string_view file, uint32_t id,
    const std::function<void(uint32_t, const RecordHeader&, const RecordPayload&)>& fn,
    SegmentScan* out) {
  *out = SegmentScan{};
  if (file.size() < kSegmentHeaderBytes || memcmp(file.data(), kSegmentMagic, 8) != 0 ||
      load<uint64_t>(file.data() + 24) != XXH3_64bits(file.data(), 24))
    return Status::corrupt("segment " + segment_file_name(id) + ": bad file header");
  if (load<uint32_t>(file.data() + 8) != kSegmentVersion)
    return Status::corrupt("segment " + segment_file_name(id) + ": unknown format version");
  if (load<uint32_t>(file.data() + 12) != id)
    return Status::corrupt("segment " + segment_file_name(id) + ": header names another id");
  uint64_t pos = kSegmentHeaderBytes;
  bool damaged = false;
  while (pos < file.size()) {
    RecordHeader h;
    RecordPayload body;
    Status s = pos <= UINT32_MAX ? read_record(file, static_cast<uint32_t>(pos), true, &h, &body)
                                 : Status::corrupt("segment larger than 4 GiB");
    uint64_t end = s.is_ok() ? pos + padded(kRecordHeaderBytes + h.length + h.cache_length) : 0;
    if (s.is_ok() && end > file.size())
      s = Status::corrupt("record at offset " + std::to_string(pos) + " lacks its padding");
    if (s.is_ok()) {
      if (fn) fn(static_cast<uint32_t>(pos), h, body);
      out->records++;
      pos = end;
      continue;
    }
    if (!damaged) {
      out->valid_bytes = pos;
      out->problem = s.message();
      damaged = true;
    }
    // A torn tail is where a crash cut the last write: nothing intact follows it. Anything else
    // is damage in the middle; the intact records after it are still found (records start at
    // 8-byte boundaries with a magic and carry a checksum).
    uint64_t next = pos + 8;
    while (next + kRecordHeaderBytes <= file.size() &&
           (load<uint32_t>(file.data() + next) != kRecordMagic ||
            !read_record(file, static_cast<uint32_t>(next), true, &h, &body).is_ok()))
      next += 8;
    if (next + kRecordHeaderBytes > file.size()) break;
    out->damaged_bytes += next - pos;
    pos = next;
  }
  if (!damaged) out->valid_bytes = file.size();
  out->torn_bytes = out->damaged_bytes == 0 ? file.size() - out->valid_bytes : 0;
  if (out->damaged_bytes > 0) out->damaged_bytes = file.size() - out->valid_bytes;
  return Status::ok();
}

Status SegmentWriter::open(Env* env, const std::string& dir, uint32_t id,
                           std::unique_ptr<SegmentWriter>* out, SegmentScan* scan) {
  std::string path = dir + "/" + segment_file_name(id);
  *scan = SegmentScan{};
  if (!env->exists(path)) {
    Status s = env->write_atomic(path, segment_header(id));
    if (!s.is_ok()) return s;
    scan->valid_bytes = kSegmentHeaderBytes;
  } else {
    std::unique_ptr<ReadFile> image;
    Status s = env->open_read(path, &image);
    if (!s.is_ok()) return s;
    s = scan_segment(image->data(), id, nullptr, scan);
    if (!s.is_ok()) return s;
  }
  if (scan->damaged_bytes > 0) {
    return Status::corrupt("segment " + segment_file_name(id) + ": damaged after offset " +
                           std::to_string(scan->valid_bytes) + "; not appending to it");
  }
  std::unique_ptr<AppendFile> file;
  Status s = env->open_append(path, false, &file);
  if (!s.is_ok()) return s;
  if (file->size() != scan->valid_bytes) {
    s = file->truncate(scan->valid_bytes);
    if (s.is_ok()) s = file->sync();
    if (!s.is_ok()) return s;
  }
  out->reset(new SegmentWriter(id, std::move(file)));
  return Status::ok();
}

Status SegmentWriter::sync() {
  if (!failed_.is_ok()) return failed_;
  Status s = file_->sync();
  if (!s.is_ok()) {
    failed_ =
        Status::io_error(segment_file_name(id_) + ": stopped after a failed sync: " + s.message());
  }
  return s;
}

void SegmentWriter::note_sync(int err) {
  if (err == 0 || !failed_.is_ok()) return;
  failed_ = Status::io_error(segment_file_name(id_) +
                             ": stopped after a failed sync: " + std::string(strerror(err)));
}

Status SegmentWriter::append(uint32_t mailbox, uint32_t uid, int64_t internal_date,
                             std::string_view body, std::string_view cache, BlobRef* ref) {
  if (!failed_.is_ok()) return failed_;
  uint64_t start = file_->size();
  RM_ASSERT(start % 8 == 0);
  if (start > UINT32_MAX) return Status::invalid("segment is full");
  if (cache.size() > UINT32_MAX) return Status::invalid("MIME cache record too large");
  char h[kRecordHeaderBytes] = {};
  store<uint32_t>(h, kRecordMagic);
  store<uint32_t>(h + 4, mailbox);
  store<uint32_t>(h + 8, uid);
  store<uint32_t>(h + 12, static_cast<uint32_t>(cache.size()));
  store<int64_t>(h + 16, internal_date);
  store<uint64_t>(h + 24, body.size());
  store<uint64_t>(h + 32, record_checksum(h, RecordPayload{body, cache}));
  static const char kZeros[8] = {};
  uint64_t used = kRecordHeaderBytes + body.size() + cache.size();
  uint64_t pad = padded(used) - used;
  Status s = file_->append(std::string_view(h, sizeof h));
  if (s.is_ok()) s = file_->append(body);
  if (s.is_ok() && !cache.empty()) s = file_->append(cache);
  if (s.is_ok() && pad > 0) s = file_->append(std::string_view(kZeros, pad));
  if (!s.is_ok()) {
    (void)file_->truncate(start);  // best effort; a torn tail is also cut at the next open
    return s;
  }
  ref->segment = id_;
  ref->offset = static_cast<uint32_t>(start);
  return Status::ok();
}

}  // namespace ringmail
