#include "storage/mailbox_index.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "core/assert.h"
#include "storage/encoding.h"

namespace ringmail {
namespace {

constexpr char kIndexMagic[8] = {'R', 'M', 'I', 'D', 'X', 0, 0, 0};
constexpr char kLogMagic[8] = {'R', 'M', 'L', 'O', 'G', 0, 0, 0};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kIndexHeaderBytes = 64;
constexpr uint64_t kLogHeaderBytes = 24;
constexpr uint32_t kEntryMagic = 0x31474f4c;  // "LOG1"
constexpr uint64_t kEntryHeaderBytes = 16;

enum LogType : uint16_t {
  kLogAppend = 1,
  kLogFlags = 2,
  kLogExpunge = 3,
  kLogKeyword = 4,
  kLogRelocate = 5,
};

std::string log_header(uint32_t mailbox_id) {
  std::string h(kLogMagic, 8);
  put<uint32_t>(&h, kVersion);
  put<uint32_t>(&h, mailbox_id);
  put<uint64_t>(&h, XXH3_64bits(h.data(), h.size()));
  return h;
}

}  // namespace

Status MailboxIndex::create(Env* env, const std::string& dir, uint32_t mailbox_id,
                            uint32_t uidvalidity, bool durable) {
  if (env->exists(dir + "/index")) return Status::already_exists(dir + ": mailbox exists");
  Status s = env->make_dirs(dir);
  if (!s.is_ok()) return s;
  MailboxIndex idx(env, dir);
  idx.mailbox_id_ = mailbox_id;
  idx.uidvalidity_ = uidvalidity;
  // The log first: an index without its log is never seen by open().
  s = env->write_atomic(dir + "/log", log_header(mailbox_id), durable);
  if (s.is_ok()) s = idx.checkpoint(durable);
  if (s.is_ok() && durable) s = env->sync_dir(dir.substr(0, dir.rfind('/')));
  return s;
}

Status MailboxIndex::open(Env* env, const std::string& dir, uint32_t mailbox_id,
                          std::unique_ptr<MailboxIndex>* out, IndexOpenReport* report,
                          const BlobCheck& blob_ok, bool read_only) {
  *report = IndexOpenReport{};
  std::unique_ptr<MailboxIndex> idx(new MailboxIndex(env, dir));
  std::unique_ptr<ReadFile> snap;
  Status s = env->open_read(dir + "/index", &snap);
  if (!s.is_ok()) return s;
  std::string_view d = snap->data();
  if (d.size() < kIndexHeaderBytes || memcmp(d.data(), kIndexMagic, 8) != 0 ||
      load<uint64_t>(d.data() + 56) != XXH3_64bits(d.data(), 56))
    return Status::corrupt(dir + "/index: bad header");
  if (load<uint32_t>(d.data() + 8) != kVersion)
    return Status::corrupt(dir + "/index: unknown format version");
  idx->mailbox_id_ = load<uint32_t>(d.data() + 12);
  if (idx->mailbox_id_ != mailbox_id) return Status::corrupt(dir + "/index: another mailbox's");
  idx->uidvalidity_ = load<uint32_t>(d.data() + 16);
  idx->uidnext_ = load<uint32_t>(d.data() + 20);
  idx->highest_modseq_ = load<uint64_t>(d.data() + 24);
  idx->snapshot_seq_ = idx->log_seq_ = load<uint64_t>(d.data() + 32);
  uint64_t count = load<uint32_t>(d.data() + 40);
  if (load<uint32_t>(d.data() + 44) != sizeof(MessageRecord))
    return Status::corrupt(dir + "/index: unexpected record size");
  std::string_view body = d.substr(kIndexHeaderBytes);
  if (XXH3_64bits(body.data(), body.size()) != load<uint64_t>(d.data() + 48))
    return Status::corrupt(dir + "/index: records checksum mismatch");
  if (body.size() < count * sizeof(MessageRecord))
    return Status::corrupt(dir + "/index: shorter than its record count");
  idx->records_.resize(count);
  if (count > 0) memcpy(idx->records_.data(), body.data(), count * sizeof(MessageRecord));
  for (size_t i = 0; i < count; i++) {
    const MessageRecord& r = idx->records_[i];
    if (r.uid == 0 || r.uid >= idx->uidnext_ || (i > 0 && r.uid <= idx->records_[i - 1].uid) ||
        r.modseq > idx->highest_modseq_)
      return Status::corrupt(dir + "/index: record " + std::to_string(i) + " out of order");
  }
  // The keyword table follows the records: for each bit in order, u16 length then the name.
  std::string_view kw = body.substr(count * sizeof(MessageRecord));
  while (!kw.empty()) {
    if (kw.size() < 2 || load<uint16_t>(kw.data()) > kw.size() - 2 ||
        idx->keywords_.size() >= kKeywordsMax)
      return Status::corrupt(dir + "/index: bad keyword table");
    uint16_t n = load<uint16_t>(kw.data());
    idx->keywords_.emplace_back(kw.substr(2, n));
    kw.remove_prefix(2 + n);
  }

  std::unique_ptr<ReadFile> log_image;
  s = env->open_read(dir + "/log", &log_image);
  if (!s.is_ok()) return s;
  uint64_t valid = 0;
  s = idx->replay(log_image->data(), blob_ok, report, &valid);
  if (!s.is_ok()) return s;
  if (read_only) {
    report->log_torn_bytes = log_image->data().size() - valid;
    idx->failed_ = Status::invalid(dir + ": opened read-only");
    *out = std::move(idx);
    return Status::ok();
  }
  s = env->open_append(dir + "/log", false, &idx->log_);
  if (!s.is_ok()) return s;
  if (idx->log_->size() != valid) {
    report->log_torn_bytes = idx->log_->size() - valid;
    s = idx->log_->truncate(valid);
    if (s.is_ok()) s = idx->log_->sync();
    if (!s.is_ok()) return s;
  }
  *out = std::move(idx);
  return Status::ok();
}

Status MailboxIndex::rebuild(Env* env, const std::string& dir, uint32_t mailbox_id,
                             uint32_t uidvalidity, std::vector<MessageRecord> records,
                             std::vector<std::string> keywords) {
  Status s = env->make_dirs(dir);
  if (!s.is_ok()) return s;
  MailboxIndex idx(env, dir);
  idx.mailbox_id_ = mailbox_id;
  idx.uidvalidity_ = uidvalidity;
  idx.keywords_ = std::move(keywords);
  uint64_t modseq = 1;  // the first value a client may see is 1 (see highest_modseq())
  for (MessageRecord& r : records) {
    RM_ASSERT(idx.records_.empty() || r.uid > idx.records_.back().uid);
    r.modseq = ++modseq;
    idx.records_.push_back(r);
  }
  idx.highest_modseq_ = modseq;
  idx.uidnext_ = idx.records_.empty() ? 1 : idx.records_.back().uid + 1;
  s = idx.checkpoint();  // the snapshot, then a fresh log
  if (s.is_ok()) s = env->sync_dir(dir.substr(0, dir.rfind('/')));
  return s;
}

Status MailboxIndex::replay(std::string_view log, const BlobCheck& blob_ok, IndexOpenReport* report,
                            uint64_t* valid) {
  if (log.size() < kLogHeaderBytes || memcmp(log.data(), kLogMagic, 8) != 0 ||
      load<uint64_t>(log.data() + 16) != XXH3_64bits(log.data(), 16))
    return Status::corrupt(dir_ + "/log: bad header");
  if (load<uint32_t>(log.data() + 8) != kVersion || load<uint32_t>(log.data() + 12) != mailbox_id_)
    return Status::corrupt(dir_ + "/log: another version or mailbox");
  uint64_t pos = kLogHeaderBytes;
  uint64_t expect_seq = 0;  // 0: the first entry may have any sequence number
  while (pos < log.size()) {
    const char* p = log.data() + pos;
    if (log.size() - pos < kEntryHeaderBytes + 8 || load<uint32_t>(p) != kEntryMagic) {
      report->log_problem = "no entry at offset " + std::to_string(pos);
      break;
    }
    uint16_t type = load<uint16_t>(p + 4);
    uint16_t len = load<uint16_t>(p + 6);
    uint64_t seq = load<uint64_t>(p + 8);
    if (log.size() - pos < kEntryHeaderBytes + len + 8 ||
        XXH3_64bits(p, kEntryHeaderBytes + len) != load<uint64_t>(p + kEntryHeaderBytes + len)) {
      report->log_problem = "torn or damaged entry at offset " + std::to_string(pos);
      break;
    }
    if (expect_seq != 0 && seq != expect_seq) {
      report->log_problem = "sequence gap at offset " + std::to_string(pos);
      break;
    }
    if (seq > snapshot_seq_) {
      std::string_view payload(p + kEntryHeaderBytes, len);
      if (type == kLogAppend && blob_ok && payload.size() == sizeof(MessageRecord)) {
        MessageRecord rec;
        memcpy(&rec, payload.data(), sizeof rec);
        if (!blob_ok(rec)) {
          report->log_problem =
              "append at offset " + std::to_string(pos) + " names a message that is not on disk";
          break;
        }
      }
      if (!apply(type, payload)) {
        report->log_problem = "inapplicable entry at offset " + std::to_string(pos);
        break;
      }
      log_seq_ = seq;
      report->log_entries_replayed++;
    }
    expect_seq = seq + 1;
    pos += kEntryHeaderBytes + len + 8;
  }
  *valid = pos;
  return Status::ok();
}

int64_t MailboxIndex::find(uint32_t uid) const {
  auto it = std::lower_bound(records_.begin(), records_.end(), uid,
                             [](const MessageRecord& r, uint32_t u) { return r.uid < u; });
  return it != records_.end() && it->uid == uid ? it - records_.begin() : -1;
}

bool MailboxIndex::apply(uint16_t type, std::string_view payload) {
  switch (type) {
    case kLogAppend: {
      if (payload.size() != sizeof(MessageRecord)) return false;
      MessageRecord rec;
      memcpy(&rec, payload.data(), sizeof rec);
      if (rec.uid < uidnext_ || rec.modseq <= highest_modseq_) return false;
      records_.push_back(rec);
      uidnext_ = rec.uid + 1;
      highest_modseq_ = rec.modseq;
      return true;
    }
    case kLogFlags: {
      if (payload.size() != 24) return false;
      int64_t i = find(load<uint32_t>(payload.data()));
      uint64_t modseq = load<uint64_t>(payload.data() + 16);
      if (i < 0 || modseq <= highest_modseq_) return false;
      records_[i].flags = load<uint32_t>(payload.data() + 4);
      records_[i].keywords = load<uint64_t>(payload.data() + 8);
      records_[i].modseq = highest_modseq_ = modseq;
      return true;
    }
    case kLogExpunge: {
      if (payload.size() != 16) return false;
      int64_t i = find(load<uint32_t>(payload.data()));
      uint64_t modseq = load<uint64_t>(payload.data() + 8);
      if (i < 0 || modseq <= highest_modseq_) return false;
      records_.erase(records_.begin() + i);
      highest_modseq_ = modseq;
      return true;
    }
    case kLogRelocate: {
      if (payload.size() != 12) return false;
      int64_t i = find(load<uint32_t>(payload.data()));
      if (i < 0) return false;
      records_[i].blob.segment = load<uint32_t>(payload.data() + 4);
      records_[i].blob.offset = load<uint32_t>(payload.data() + 8);
      return true;
    }
    case kLogKeyword: {
      if (payload.empty() || static_cast<uint8_t>(payload[0]) != keywords_.size() ||
          keywords_.size() >= kKeywordsMax)
        return false;
      keywords_.emplace_back(payload.substr(1));
      return true;
    }
    default: return false;
  }
}

Status MailboxIndex::sync() {
  if (!failed_.is_ok()) return failed_;
  Status s = log_->sync();
  if (!s.is_ok())
    failed_ = Status::io_error(dir_ + ": stopped after a failed sync: " + s.message());
  return s;
}

void MailboxIndex::note_sync(int err) {
  if (err == 0 || !failed_.is_ok()) return;
  failed_ = Status::io_error(dir_ + ": stopped after a failed sync: " + std::string(strerror(err)));
}

Status MailboxIndex::write_log(uint16_t type, std::string_view payload) {
  RM_ASSERT(payload.size() <= UINT16_MAX);
  if (!failed_.is_ok()) return failed_;
  std::string e;
  e.reserve(kEntryHeaderBytes + payload.size() + 8);
  put<uint32_t>(&e, kEntryMagic);
  put<uint16_t>(&e, type);
  put<uint16_t>(&e, static_cast<uint16_t>(payload.size()));
  put<uint64_t>(&e, log_seq_ + 1);
  e.append(payload);
  put<uint64_t>(&e, XXH3_64bits(e.data(), e.size()));
  uint64_t start = log_->size();
  Status s = log_->append(e);
  if (!s.is_ok()) {
    (void)log_->truncate(start);  // a failed change leaves no trace
    return s;
  }
  bool applied = apply(type, payload);
  RM_ASSERT_MSG(applied, "a change the index just validated did not apply");
  log_seq_++;
  return Status::ok();
}

Status MailboxIndex::append(MessageRecord* rec) {
  if (uidnext_ == UINT32_MAX) return Status::invalid("UIDs exhausted");
  rec->uid = uidnext_;
  rec->modseq = next_modseq();
  rec->reserved = 0;
  return write_log(kLogAppend, std::string_view(reinterpret_cast<const char*>(rec), sizeof *rec));
}

Status MailboxIndex::set_flags(uint32_t uid, uint32_t flags, uint64_t keywords, uint64_t* modseq) {
  if (find(uid) < 0) return Status::not_found("no message with UID " + std::to_string(uid));
  std::string p;
  put<uint32_t>(&p, uid);
  put<uint32_t>(&p, flags & kSystemFlagsMask);
  put<uint64_t>(&p, keywords);
  put<uint64_t>(&p, next_modseq());
  Status s = write_log(kLogFlags, p);
  if (s.is_ok()) *modseq = highest_modseq_;
  return s;
}

Status MailboxIndex::relocate(uint32_t uid, BlobRef blob) {
  if (find(uid) < 0) return Status::not_found("no message with UID " + std::to_string(uid));
  std::string p;
  put<uint32_t>(&p, uid);
  put<uint32_t>(&p, blob.segment);
  put<uint32_t>(&p, blob.offset);
  return write_log(kLogRelocate, p);
}

Status MailboxIndex::expunge(uint32_t uid) {
  if (find(uid) < 0) return Status::not_found("no message with UID " + std::to_string(uid));
  std::string p;
  put<uint32_t>(&p, uid);
  put<uint32_t>(&p, 0);
  put<uint64_t>(&p, next_modseq());
  return write_log(kLogExpunge, p);
}

Status MailboxIndex::keyword_bit(const std::string& name, unsigned* bit) {
  for (size_t i = 0; i < keywords_.size(); i++) {
    if (keywords_[i] == name) {
      *bit = static_cast<unsigned>(i);
      return Status::ok();
    }
  }
  if (keywords_.size() >= kKeywordsMax) return Status::invalid("too many keywords in mailbox");
  if (name.empty() || name.size() > 255) return Status::invalid("bad keyword");
  std::string p(1, static_cast<char>(keywords_.size()));
  p.append(name);
  Status s = write_log(kLogKeyword, p);
  if (s.is_ok()) *bit = static_cast<unsigned>(keywords_.size() - 1);
  return s;
}

Status MailboxIndex::checkpoint(bool durable) {
  std::string body;
  body.reserve(records_.size() * sizeof(MessageRecord));
  body.append(reinterpret_cast<const char*>(records_.data()),
              records_.size() * sizeof(MessageRecord));
  for (const std::string& k : keywords_) {
    put<uint16_t>(&body, static_cast<uint16_t>(k.size()));
    body.append(k);
  }
  std::string snap(kIndexMagic, 8);
  put<uint32_t>(&snap, kVersion);
  put<uint32_t>(&snap, mailbox_id_);
  put<uint32_t>(&snap, uidvalidity_);
  put<uint32_t>(&snap, uidnext_);
  put<uint64_t>(&snap, highest_modseq_);
  put<uint64_t>(&snap, log_seq_);
  put<uint32_t>(&snap, static_cast<uint32_t>(records_.size()));
  put<uint32_t>(&snap, static_cast<uint32_t>(sizeof(MessageRecord)));
  put<uint64_t>(&snap, XXH3_64bits(body.data(), body.size()));
  put<uint64_t>(&snap, XXH3_64bits(snap.data(), snap.size()));
  RM_ASSERT(snap.size() == kIndexHeaderBytes);
  snap.append(body);
  // Snapshot first, then the fresh log: a crash in between leaves a log whose entries are all
  // at or below the snapshot's sequence number, and replay skips them.
  if (!failed_.is_ok()) return failed_;
  Status s = env_->write_atomic(dir_ + "/index", snap, durable);
  if (!s.is_ok()) return s;  // nothing changed: the old snapshot and log still hold
  snapshot_seq_ = log_seq_;
  log_.reset();
  s = env_->write_atomic(dir_ + "/log", log_header(mailbox_id_), durable);
  if (s.is_ok()) s = env_->open_append(dir_ + "/log", false, &log_);
  if (!s.is_ok())
    failed_ = Status::io_error(dir_ + ": stopped after a failed checkpoint: " + s.message());
  return s;
}

}  // namespace ringmail
