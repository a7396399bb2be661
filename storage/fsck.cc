#include "storage/fsck.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <set>

#include "storage/fts.h"
#include "storage/mailbox_index.h"
#include "storage/mime_cache.h"
#include "storage/segment.h"
#include "storage/user_mail.h"

namespace ringmail {
namespace {

// The intact records of one segment, in file order.
struct SegmentRecords {
  std::vector<uint32_t> offsets;
  std::vector<RecordHeader> headers;
  bool last = false;

  const RecordHeader* at(uint32_t offset) const {
    auto it = std::lower_bound(offsets.begin(), offsets.end(), offset);
    if (it == offsets.end() || *it != offset) return nullptr;
    return &headers[static_cast<size_t>(it - offsets.begin())];
  }
};

class UserCheck {
 public:
  UserCheck(Env* env, std::string dir, FsckResult* r, const std::function<void(uint64_t)>& progress)
      : env_(env), dir_(std::move(dir)), r_(r), progress_(progress) {}

  Status check_segments() {
    std::vector<std::string> names;
    Status s = env_->list_dir(dir_ + "/seg", &names);
    if (s.code() == Status::Code::not_found) return Status::ok();
    if (!s.is_ok()) return s;
    std::vector<uint32_t> ids;
    for (const std::string& n : names) {
      unsigned id = 0;
      if (n.size() == 12 && n.substr(8) == ".seg" && sscanf(n.c_str(), "%8x", &id) == 1 && id > 0)
        ids.push_back(id);
      else if (n.find(".tmp") == std::string::npos)
        r_->notes.push_back("seg/" + n + ": not a segment file");
    }
    std::sort(ids.begin(), ids.end());
    for (uint32_t id : ids) {
      std::unique_ptr<ReadFile> f;
      s = env_->open_read(dir_ + "/seg/" + segment_file_name(id), &f);
      if (!s.is_ok()) return s;
      SegmentRecords& recs = segments_[id];
      recs.last = id == ids.back();
      SegmentScan scan;
      s = scan_segment(
          f->data(), id,
          [&](uint32_t off, const RecordHeader& h, const RecordPayload& p) {
            recs.offsets.push_back(off);
            recs.headers.push_back(h);
            // The checksum held, so a cache record that does not decode is a bug to report.
            Status c = decode_mime_cache(p.cache, static_cast<uint32_t>(h.length), &mime_);
            if (!c.is_ok()) {
              r_->damage.push_back("seg/" + segment_file_name(id) + " offset " +
                                   std::to_string(off) + ": " + c.message());
            }
          },
          &scan);
      r_->segments++;
      r_->segment_bytes += f->data().size();
      if (recs.last) {
        last_segment_ = id;
        last_segment_end_ = scan.torn_bytes > 0 ? scan.valid_bytes : f->data().size();
      }
      if (progress_) progress_(r_->segment_bytes);
      if (!s.is_ok()) {
        r_->damage.push_back(s.message());
        continue;
      }
      r_->records += scan.records;
      if (scan.damaged_bytes > 0) {
        r_->damage.push_back("seg/" + segment_file_name(id) + ": damaged after offset " +
                             std::to_string(scan.valid_bytes) + " (" + scan.problem + "); " +
                             std::to_string(scan.records) + " intact records");
        continue;
      }
      if (scan.torn_bytes == 0) continue;
      std::string what = "seg/" + segment_file_name(id) + ": " + std::to_string(scan.torn_bytes) +
                         " bytes after offset " + std::to_string(scan.valid_bytes) + " (" +
                         scan.problem + ")";
      // The segment being written may end in a torn record from a crash; nothing past it was
      // ever acknowledged. In a sealed segment it is damage.
      if (recs.last) {
        r_->notes.push_back(what + ": a torn tail, cut at the next open");
        torn_tail_ = true;
      } else {
        r_->damage.push_back(what + ": unreadable");
      }
    }
    return Status::ok();
  }

  // The replay rule of UserMail::index: an append whose bytes lie past the end of what the last
  // segment holds never reached the disk, so it was never acknowledged.
  bool blob_reached_disk(const MessageRecord& rec) const {
    if (segments_.empty() || rec.blob.segment > last_segment_) return false;
    return rec.blob.segment < last_segment_ ||
           rec.blob.offset + kRecordHeaderBytes + rec.size <= last_segment_end_;
  }

  bool blob_ok(const MessageRecord& rec) const {
    auto it = segments_.find(rec.blob.segment);
    if (it == segments_.end()) return false;
    const RecordHeader* h = it->second.at(rec.blob.offset);
    return h && h->length == rec.size;
  }

  Status check_list() {
    std::string path = dir_ + "/mailboxes";
    if (!env_->exists(path)) {
      if (!segments_.empty()) r_->damage.push_back("mailboxes: missing while mail exists");
      list_missing_ = true;
      return Status::ok();
    }
    std::unique_ptr<ReadFile> f;
    Status s = env_->open_read(path, &f);
    if (!s.is_ok()) return s;
    uint32_t next_id, last_uv;
    s = UserMail::parse_list(f->data(), path, &list_, &next_id, &last_uv);
    if (!s.is_ok()) {
      r_->damage.push_back(s.message());
      list_damaged_ = true;
    }
    return Status::ok();
  }

  void check_mailboxes() {
    std::set<uint32_t> named;
    for (const UserMail::Mailbox& m : list_) {
      named.insert(m.id);
      check_mailbox(m.id, m.name);
    }
    std::vector<std::string> dirs;
    if (!env_->list_dir(dir_ + "/mbox", &dirs).is_ok()) return;
    for (const std::string& d : dirs) {
      unsigned id = 0;
      if (d.size() != 8 || sscanf(d.c_str(), "%8x", &id) != 1 || named.count(id)) continue;
      if (!list_damaged_ && !list_missing_)
        r_->notes.push_back("mbox/" + d + ": a mailbox directory no name refers to");
      orphans_.push_back(id);
    }
  }

  void check_mailbox(uint32_t id, const std::string& name) {
    std::string dir = dir_ + "/mbox/" + UserMail::mailbox_dir_name(id);
    std::unique_ptr<MailboxIndex> idx;
    IndexOpenReport rep;
    Status s = MailboxIndex::open(
        env_, dir, id, &idx, &rep, [this](const MessageRecord& m) { return blob_reached_disk(m); },
        true);
    r_->mailboxes++;
    if (!s.is_ok()) {
      r_->damage.push_back("mailbox " + name + ": " + s.message());
      damaged_indexes_.push_back(id);
      return;
    }
    if (rep.log_torn_bytes > 0) {
      r_->notes.push_back("mailbox " + name + ": log ends in " +
                          std::to_string(rep.log_torn_bytes) + " bytes never acknowledged (" +
                          rep.log_problem + "), cut at the next open");
      torn_tail_ = true;
    }
    // The full-text index is derived data: a damaged segment is removed by --repair (or by the
    // server when it opens the index) and its messages indexed again; SEARCH scans meanwhile.
    std::vector<std::string> fts_problems;
    s = FtsIndex::verify(env_, dir, idx->uidvalidity(), &fts_problems);
    if (!s.is_ok()) fts_problems.push_back(s.message());
    for (const std::string& p : fts_problems)
      r_->damage.push_back("mailbox " + name + " full-text index: " + p);
    if (!fts_problems.empty()) damaged_fts_.push_back(dir + "/" + FtsIndex::kDirName);
    for (const MessageRecord& m : idx->records()) {
      r_->messages++;
      r_->message_bytes += m.size;
      if (!blob_ok(m)) {
        r_->damage.push_back("mailbox " + name + " UID " + std::to_string(m.uid) +
                             ": its message bytes are missing or damaged (seg " +
                             segment_file_name(m.blob.segment) + " offset " +
                             std::to_string(m.blob.offset) + ")");
      }
    }
  }

  // Rebuilds a damaged index from the records first stored in that mailbox (flags are lost;
  // messages expunged since come back: never delete mail).
  Status rebuild_index(uint32_t id) {
    std::map<uint32_t, MessageRecord> by_uid;
    for (const auto& [seg, recs] : segments_) {
      for (size_t i = 0; i < recs.offsets.size(); i++) {
        const RecordHeader& h = recs.headers[i];
        if (h.mailbox != id || h.uid == 0) continue;
        MessageRecord m;
        m.uid = h.uid;
        m.blob = {seg, recs.offsets[i]};
        m.size = static_cast<uint32_t>(h.length);
        m.internal_date = h.internal_date;
        by_uid[h.uid] = m;
      }
    }
    std::vector<MessageRecord> records;
    records.reserve(by_uid.size());
    for (auto& [uid, m] : by_uid) records.push_back(m);
    std::string dir = dir_ + "/mbox/" + UserMail::mailbox_dir_name(id);
    Status s = MailboxIndex::rebuild(env_, dir, id, static_cast<uint32_t>(time(nullptr)),
                                     std::move(records), {});
    if (s.is_ok()) {
      r_->repairs.push_back("mailbox " + UserMail::mailbox_dir_name(id) + ": index rebuilt from " +
                            std::to_string(by_uid.size()) + " messages in the segments");
    }
    return s;
  }

  // Writes a new mailbox list naming every mailbox directory: names that were lost become
  // Recovered/<id>. The lowest id is the INBOX (it is created first).
  Status rebuild_list() {
    std::vector<std::string> dirs;
    (void)env_->list_dir(dir_ + "/mbox", &dirs);
    std::vector<uint32_t> ids;
    for (const std::string& d : dirs) {
      unsigned id = 0;
      if (d.size() == 8 && sscanf(d.c_str(), "%8x", &id) == 1 && id > 0) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    std::vector<UserMail::Mailbox> list;
    for (size_t i = 0; i < ids.size(); i++) {
      std::string name = i == 0 ? "INBOX" : "Recovered/" + UserMail::mailbox_dir_name(ids[i]);
      list.push_back(UserMail::Mailbox{ids[i], name, "", true});
    }
    Status s = env_->write_atomic(dir_ + "/mailboxes",
                                  UserMail::format_list(list, ids.empty() ? 1 : ids.back() + 1,
                                                        static_cast<uint32_t>(time(nullptr))));
    if (s.is_ok()) {
      r_->repairs.push_back("mailboxes: list rebuilt naming " + std::to_string(ids.size()) +
                            " mailboxes");
    }
    return s;
  }

  // Names the orphaned mailbox directories that hold messages; drops empty ones.
  Status adopt_orphans() {
    if (orphans_.empty() || list_damaged_ || list_missing_) return Status::ok();
    std::unique_ptr<ReadFile> f;
    Status s = env_->open_read(dir_ + "/mailboxes", &f);
    std::vector<UserMail::Mailbox> list;
    uint32_t next_id = 0, last_uv = 0;
    if (s.is_ok())
      s = UserMail::parse_list(f->data(), dir_ + "/mailboxes", &list, &next_id, &last_uv);
    if (!s.is_ok()) return s;
    for (uint32_t id : orphans_) {
      std::string name = UserMail::mailbox_dir_name(id);
      std::string dir = dir_ + "/mbox/" + name;
      std::unique_ptr<MailboxIndex> idx;
      IndexOpenReport irep;
      if (!env_->exists(dir + "/index")) {
        // No index: nothing in it can name a message (a removal or a creation cut short).
        (void)env_->remove_tree(dir);
        r_->repairs.push_back("mbox/" + name + ": leftover without an index removed");
        continue;
      }
      if (MailboxIndex::open(env_, dir, id, &idx, &irep, nullptr, true).is_ok() &&
          idx->records().empty()) {
        (void)env_->remove_tree(dir);
        r_->repairs.push_back("mbox/" + name + ": empty leftover removed");
        continue;
      }
      list.push_back(UserMail::Mailbox{id, "Recovered/" + name, "", true});
      next_id = std::max(next_id, id + 1);
      r_->repairs.push_back("mbox/" + name + ": named Recovered/" + name);
    }
    return env_->write_atomic(dir_ + "/mailboxes", UserMail::format_list(list, next_id, last_uv));
  }

  Status repair() {
    Status s;
    for (uint32_t id : damaged_indexes_) {
      s = rebuild_index(id);
      if (!s.is_ok()) return s;
    }
    if (list_damaged_ || (list_missing_ && !segments_.empty())) {
      s = rebuild_list();
      if (!s.is_ok()) return s;
    }
    s = adopt_orphans();
    if (!s.is_ok()) return s;
    for (const std::string& d : damaged_fts_) {
      s = env_->remove_tree(d);
      if (!s.is_ok()) return s;
      r_->repairs.push_back(d.substr(dir_.size() + 1) + ": removed (indexed again when searched)");
    }
    if (torn_tail_) {
      // A normal open cuts torn tails of the segment and the logs.
      std::unique_ptr<UserMail> um;
      UserMail::OpenReport rep;
      s = UserMail::open(env_, dir_, &um, &rep);
      if (!s.is_ok()) return s;
      r_->repairs.push_back("torn tails cut");
    }
    return Status::ok();
  }

 private:
  Env* env_;
  std::string dir_;
  FsckResult* r_;
  std::function<void(uint64_t)> progress_;
  std::map<uint32_t, SegmentRecords> segments_;
  std::vector<UserMail::Mailbox> list_;
  std::vector<uint32_t> damaged_indexes_;
  std::vector<std::string> damaged_fts_;  // full-text index directories
  std::vector<uint32_t> orphans_;
  bool list_damaged_ = false;
  bool list_missing_ = false;
  bool torn_tail_ = false;
  MimeInfo mime_;  // reused by every cache check
  uint32_t last_segment_ = 0;
  uint64_t last_segment_end_ = 0;
};

Status check_once(UserCheck* check) {
  Status s = check->check_segments();
  if (s.is_ok()) s = check->check_list();
  if (s.is_ok()) check->check_mailboxes();
  return s;
}

}  // namespace

Status fsck_user(Env* env, const std::string& user_dir, bool repair, FsckResult* result,
                 const std::function<void(uint64_t)>& progress) {
  *result = FsckResult{};
  UserCheck check(env, user_dir, result, progress);
  Status s = check_once(&check);
  if (!s.is_ok() || !repair || (result->damage.empty() && result->notes.empty())) return s;
  s = check.repair();
  if (!s.is_ok()) return s;
  // Check again: what is still wrong after the repair is the damage left.
  FsckResult after;
  UserCheck again(env, user_dir, &after, nullptr);
  s = check_once(&again);
  if (!s.is_ok()) return s;
  after.repairs = std::move(result->repairs);
  after.segment_bytes += result->segment_bytes;
  *result = std::move(after);
  return Status::ok();
}

}  // namespace ringmail
