#include "storage/user_mail.h"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <utility>

#include <errno.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/log.h"
#include "storage/mime_cache.h"

namespace ringmail {
namespace {

constexpr int kListFormat = 1;

const struct {
  const char* name;
  const char* special_use;
} kDefaultMailboxes[] = {{"INBOX", ""},        {"Sent", "\\Sent"}, {"Drafts", "\\Drafts"},
                         {"Trash", "\\Trash"}, {"Junk", "\\Junk"}, {"Archive", "\\Archive"}};

void json_string(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      out->append(esc);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

bool starts_with_inbox(std::string_view name) {
  if (name.size() < 5 || strncasecmp(name.data(), "INBOX", 5) != 0) return false;
  return name.size() == 5 || name[5] == UserMail::kDelimiter;
}

}  // namespace

bool UserMail::valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMailboxNameBytesMax) return false;
  if (name.front() == kDelimiter || name.back() == kDelimiter) return false;
  if (name.find("//") != std::string_view::npos) return false;
  for (char c : name)
    if (c == '\0' || c == '\r' || c == '\n') return false;
  return true;
}

std::string UserMail::canonical_name(std::string_view name) {
  std::string out(name);
  if (starts_with_inbox(name)) memcpy(out.data(), "INBOX", 5);
  return out;
}

std::string UserMail::mailbox_dir_name(uint32_t id) {
  char name[16];
  snprintf(name, sizeof name, "%08x", id);
  return name;
}

std::string UserMail::mailbox_dir(uint32_t id) const {
  return dir_ + "/mbox/" + mailbox_dir_name(id);
}

UserMail::Mailbox* UserMail::find_mutable(std::string_view name) {
  std::string canon = canonical_name(name);
  for (Mailbox& m : mailboxes_)
    if (m.name == canon) return &m;
  return nullptr;
}

const UserMail::Mailbox* UserMail::find(std::string_view name) const {
  return const_cast<UserMail*>(this)->find_mutable(name);
}

uint32_t UserMail::next_uidvalidity() {
  auto now = static_cast<uint32_t>(time(nullptr));
  last_uidvalidity_ = now > last_uidvalidity_ ? now : last_uidvalidity_ + 1;
  return last_uidvalidity_;
}

Status UserMail::open(Env* env, const std::string& user_dir, std::unique_ptr<UserMail>* out,
                      OpenReport* report) {
  *report = OpenReport{};
  std::unique_ptr<UserMail> um(new UserMail(env, user_dir));
  for (const std::string& d : {user_dir, user_dir + "/seg", user_dir + "/mbox"})
    if (env->is_symlink(d)) return Status::corrupt(d + " is a symbolic link: refused");
  Status s = env->make_dirs(user_dir + "/seg");
  if (s.is_ok()) s = env->make_dirs(user_dir + "/mbox");
  if (!s.is_ok()) return s;
  bool missing = false;
  s = um->load_list(&missing);
  if (!s.is_ok()) return s;
  // A mailbox directory the list does not name (a CREATE cut short by a crash before the list
  // naming it was durable) keeps its id: ids are never reused, so a new mailbox never meets a
  // leftover.
  std::vector<std::string> dirs;
  s = env->list_dir(user_dir + "/mbox", &dirs);
  if (!s.is_ok()) return s;
  for (const std::string& n : dirs) {
    unsigned id = 0;
    if (n.size() == 8 && sscanf(n.c_str(), "%8x", &id) == 1 && id >= um->next_id_)
      um->next_id_ = id + 1;
  }
  s = um->open_segments(report);
  if (!s.is_ok()) return s;
  if (missing) {
    report->created = true;
    for (const auto& d : kDefaultMailboxes) {
      uint32_t id;
      s = um->create_mailbox(d.name, d.special_use, &id);
      if (!s.is_ok()) return s;
      um->find_mutable(d.name)->subscribed = true;
    }
    s = um->save_list();
    if (!s.is_ok()) return s;
  }
  // Quota usage is exact: counted from every index at open, then kept up to date.
  for (const Mailbox& m : std::vector<Mailbox>(um->mailboxes_)) {
    MailboxIndex* idx;
    s = um->index(m.id, &idx);
    if (!s.is_ok()) return s;
  }
  *out = std::move(um);
  return Status::ok();
}

Status UserMail::load_list(bool* missing) {
  std::string path = dir_ + "/mailboxes";
  *missing = !env_->exists(path);
  if (*missing) return Status::ok();
  std::unique_ptr<ReadFile> f;
  Status s = env_->open_read(path, &f);
  if (!s.is_ok()) return s;
  return parse_list(f->data(), path, &mailboxes_, &next_id_, &last_uidvalidity_);
}

Status UserMail::parse_list(std::string_view json, const std::string& path,
                            std::vector<Mailbox>* mailboxes, uint32_t* next_id_out,
                            uint32_t* last_uidvalidity) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root))
    return Status::corrupt(path + ": not valid JSON");
  int64_t format = 0, next_id = 0, last_uv = 0;
  simdjson::dom::array list;
  if (root["format"].get_int64().get(format) || format != kListFormat ||
      root["next_id"].get_int64().get(next_id) ||
      root["last_uidvalidity"].get_int64().get(last_uv) ||
      root["mailboxes"].get_array().get(list) || next_id < 1 || next_id > UINT32_MAX ||
      last_uv < 0 || last_uv > UINT32_MAX)
    return Status::corrupt(path + ": missing or mistyped field");
  *next_id_out = static_cast<uint32_t>(next_id);
  *last_uidvalidity = static_cast<uint32_t>(last_uv);
  mailboxes->clear();
  for (simdjson::dom::element e : list) {
    Mailbox m;
    int64_t id = 0;
    std::string_view name, special;
    bool subscribed = false;
    if (e["id"].get_int64().get(id) || e["name"].get_string().get(name) ||
        e["special_use"].get_string().get(special) || e["subscribed"].get_bool().get(subscribed) ||
        id < 1 || id >= next_id || !valid_name(name))
      return Status::corrupt(path + ": bad mailbox entry");
    m.id = static_cast<uint32_t>(id);
    m.name = std::string(name);
    m.special_use = std::string(special);
    m.subscribed = subscribed;
    mailboxes->push_back(std::move(m));
  }
  return Status::ok();
}

std::string UserMail::format_list(const std::vector<Mailbox>& mailboxes, uint32_t next_id,
                                  uint32_t last_uidvalidity) {
  std::string j = "{\"format\":" + std::to_string(kListFormat) +
                  ",\"next_id\":" + std::to_string(next_id) +
                  ",\"last_uidvalidity\":" + std::to_string(last_uidvalidity) + ",\"mailboxes\":[";
  for (size_t i = 0; i < mailboxes.size(); i++) {
    const Mailbox& m = mailboxes[i];
    if (i) j += ",";
    j += "\n{\"id\":" + std::to_string(m.id) + ",\"name\":";
    json_string(&j, m.name);
    j += ",\"special_use\":";
    json_string(&j, m.special_use);
    j += m.subscribed ? ",\"subscribed\":true}" : ",\"subscribed\":false}";
  }
  j += "]}\n";
  return j;
}

Status UserMail::save_list() {
  if (deferred_metadata_) {
    list_dirty_ = true;  // written and synced by the next round
    return Status::ok();
  }
  return env_->write_atomic(dir_ + "/mailboxes",
                            format_list(mailboxes_, next_id_, last_uidvalidity_));
}

Status UserMail::open_segments(OpenReport* report) {
  std::vector<std::string> names;
  Status s = env_->list_dir(dir_ + "/seg", &names);
  if (!s.is_ok()) return s;
  uint32_t active = 1;
  for (const std::string& n : names) {
    unsigned id = 0;
    if (n.size() == 12 && n.substr(8) == ".seg" && sscanf(n.c_str(), "%8x", &id) == 1 && id > 0)
      active = std::max<uint32_t>(active, id);
  }
  SegmentScan scan;
  s = SegmentWriter::open(env_, dir_ + "/seg", active, &writer_, &scan);
  if (s.code() == Status::Code::corrupt && scan.damaged_bytes > 0) {
    // Damage in the middle of the last segment: leave it for fsck, write a new one.
    report->segment_damage = s.message();
    s = SegmentWriter::open(env_, dir_ + "/seg", active + 1, &writer_, &scan);
  }
  if (!s.is_ok()) return s;
  report->segment_torn_bytes = scan.torn_bytes;
  writer_valid_bytes_ = writer_->size();
  return Status::ok();
}

Status UserMail::roll_segment() {
  // Sealed segments are durable as a whole: the blob check at open trusts them.
  Status s = writer_->sync();
  if (!s.is_ok()) return s;
  uint32_t next = writer_->id() + 1;
  readers_.erase(writer_->id());  // remapped at its final size on the next read
  SegmentScan scan;
  std::unique_ptr<SegmentWriter> w;
  s = SegmentWriter::open(env_, dir_ + "/seg", next, &w, &scan);
  if (!s.is_ok()) return s;
  writer_ = std::move(w);
  writer_valid_bytes_ = writer_->size();
  segment_dirty_ = false;
  return Status::ok();
}

Status UserMail::create_mailbox(std::string_view name, std::string_view special_use, uint32_t* id) {
  std::string canon = canonical_name(name);
  if (!valid_name(canon)) return Status::invalid("invalid mailbox name");
  if (find(canon)) return Status::already_exists("mailbox exists");
  if (mailboxes_.size() >= kMailboxesMax) return Status::invalid("too many mailboxes");
  // The index first, then the list that names it: a crash in between leaves an unnamed index
  // directory (fsck reports it), never a name without an index.
  uint32_t new_id = next_id_++;
  Status s = MailboxIndex::create(env_, mailbox_dir(new_id), new_id, next_uidvalidity(),
                                  !deferred_metadata_);
  if (!s.is_ok()) return s;
  if (deferred_metadata_) new_mailboxes_.push_back(new_id);
  mailboxes_.push_back(Mailbox{new_id, canon, std::string(special_use), false});
  s = save_list();
  if (!s.is_ok()) {
    mailboxes_.pop_back();
    return s;
  }
  *id = new_id;
  return Status::ok();
}

Status UserMail::delete_mailbox(std::string_view name) {
  Mailbox* m = find_mutable(name);
  if (!m) return Status::not_found("no such mailbox");
  if (m->name == "INBOX") return Status::invalid("INBOX cannot be deleted");
  uint32_t id = m->id;
  MailboxIndex* idx;
  Status s = index(id, &idx);
  if (!s.is_ok()) return s;
  Usage gone;
  for (const MessageRecord& r : idx->records()) {
    gone.bytes += r.size;
    gone.messages++;
  }
  std::vector<Mailbox> before = mailboxes_;
  mailboxes_.erase(mailboxes_.begin() + (m - mailboxes_.data()));
  s = save_list();
  if (!s.is_ok()) {
    mailboxes_ = before;
    return s;
  }
  auto it = indexes_.find(id);
  if (syncing_indexes_.count(id)) retired_indexes_.push_back(std::move(it->second));  // fd in use
  indexes_.erase(it);
  dirty_indexes_.erase(id);
  fts_.erase(id);
  usage_.bytes -= gone.bytes;
  usage_.messages -= gone.messages;
  released_bytes_ += gone.bytes;
  if (deferred_metadata_) {
    removals_.push_back(id);  // once the list without it is durable
    return Status::ok();
  }
  remove_mailbox_files(id);
  return Status::ok();
}

// The name is gone durably; the files are garbage now (fsck and compaction clean up leftovers).
void UserMail::remove_mailbox_files(uint32_t id) {
  std::string d = mailbox_dir(id);
  (void)env_->remove_tree(d);
}

Status UserMail::rename_mailbox(std::string_view from, std::string_view to) {
  std::string src = canonical_name(from), dst = canonical_name(to);
  if (!valid_name(dst)) return Status::invalid("invalid mailbox name");
  if (!find(src)) return Status::not_found("no such mailbox");
  if (find(dst)) return Status::already_exists("mailbox exists");
  if (dst.size() > src.size() && dst.compare(0, src.size(), src) == 0 &&
      dst[src.size()] == kDelimiter)
    return Status::invalid("cannot move a mailbox below itself");
  if (src == "INBOX") {
    uint32_t new_id;
    Status s = create_mailbox(dst, "", &new_id);
    if (!s.is_ok()) return s;
    MailboxIndex* inbox;
    s = index(find(src)->id, &inbox);
    if (!s.is_ok()) return s;
    std::vector<MessageRecord> moving = inbox->records();
    for (const MessageRecord& r : moving) {
      MessageRecord copied;
      s = copy(r, new_id, r.flags, 0, &copied);
      if (s.is_ok()) s = expunge(inbox->mailbox_id(), r.uid);
      if (!s.is_ok()) return s;
    }
    return Status::ok();
  }
  std::vector<Mailbox> before = mailboxes_;
  for (Mailbox& m : mailboxes_) {
    if (m.name == src) {
      m.name = dst;
    } else if (m.name.size() > src.size() && m.name.compare(0, src.size(), src) == 0 &&
               m.name[src.size()] == kDelimiter) {
      m.name = dst + m.name.substr(src.size());
      if (!valid_name(m.name)) {
        mailboxes_ = before;
        return Status::invalid("a child's new name would be too long");
      }
    }
  }
  Status s = save_list();
  if (!s.is_ok()) mailboxes_ = before;
  return s;
}

Status UserMail::set_subscribed(std::string_view name, bool on) {
  Mailbox* m = find_mutable(name);
  if (!m) return Status::not_found("no such mailbox");
  bool before = m->subscribed;
  m->subscribed = on;
  Status s = save_list();
  if (!s.is_ok()) m->subscribed = before;
  return s;
}

Status UserMail::load_all(uint64_t checkpoint_log_bytes) {
  for (const Mailbox& m : mailboxes_) {
    MailboxIndex* idx;
    Status s = index(m.id, &idx);
    if (!s.is_ok()) return s;
    if (idx->log_bytes() > checkpoint_log_bytes) {
      s = idx->checkpoint();
      if (!s.is_ok()) return s;
    }
  }
  return Status::ok();
}

Status UserMail::index(uint32_t mailbox_id, MailboxIndex** out) {
  auto it = indexes_.find(mailbox_id);
  if (it != indexes_.end()) {
    *out = it->second.get();
    return Status::ok();
  }
  // An append whose message bytes did not reach the disk before a crash names a place past the
  // active segment's recovered end (or a segment that does not exist): it was never acknowledged.
  uint32_t active = writer_->id();
  uint64_t valid = writer_valid_bytes_;
  auto blob_ok = [active, valid](const MessageRecord& r) {
    if (r.blob.segment > active) return false;
    return r.blob.segment < active || r.blob.offset + kRecordHeaderBytes + r.size <= valid;
  };
  if (env_->is_symlink(mailbox_dir(mailbox_id)))
    return Status::corrupt(mailbox_dir(mailbox_id) + " is a symbolic link: refused");
  std::unique_ptr<MailboxIndex> idx;
  IndexOpenReport report;
  Status s = MailboxIndex::open(env_, mailbox_dir(mailbox_id), mailbox_id, &idx, &report, blob_ok);
  if (!s.is_ok()) return s;
  for (const MessageRecord& r : idx->records()) {
    usage_.bytes += r.size;
    usage_.messages++;
  }
  *out = idx.get();
  indexes_[mailbox_id] = std::move(idx);
  return Status::ok();
}

Status UserMail::append(uint32_t mailbox_id, std::string_view message, int64_t internal_date,
                        uint32_t flags, uint64_t keywords, MessageRecord* out) {
  if (message.size() > UINT32_MAX) return Status::invalid("message too large");
  MailboxIndex* idx;
  Status s = index(mailbox_id, &idx);
  if (!s.is_ok()) return s;
  if (writer_->size() >= segment_bytes_max_) {
    s = roll_segment();
    if (!s.is_ok()) return s;
  }
  MessageRecord rec;
  rec.flags = flags & kSystemFlagsMask;
  rec.keywords = keywords;
  rec.size = static_cast<uint32_t>(message.size());
  rec.internal_date = internal_date;
  uint32_t uid = idx->uidnext();
  s = parser_.parse(message, &mime_);
  if (!s.is_ok()) return s;
  cache_.clear();
  encode_mime_cache(mime_, &cache_);
  s = writer_->append(mailbox_id, uid, internal_date, message, cache_, &rec.blob);
  if (!s.is_ok()) return s;
  segment_dirty_ = true;
  s = idx->append(&rec);  // on failure the record above is unreferenced garbage, nothing more
  if (!s.is_ok()) return s;
  RM_ASSERT(rec.uid == uid);
  dirty_indexes_.insert(mailbox_id);
  usage_.bytes += rec.size;
  usage_.messages++;
  *out = rec;
  if (fts_enabled_) {
    // Indexed now when the index covers everything before it; otherwise fts_catch_up() will.
    // A failure here costs only speed: SEARCH scans what the index does not cover.
    FtsIndex* f = nullptr;
    const auto& recs = idx->records();
    if (fts(mailbox_id, &f).is_ok() && f &&
        (recs.size() < 2 || recs[recs.size() - 2].uid <= f->covered_uid())) {
      Status fs = fts_add(mailbox_id, f, rec, message, mime_);
      if (!fs.is_ok()) RM_LOG(warn, "fts_failed").kv("dir", dir_).kv("error", fs.message());
    }
  }
  return Status::ok();
}

Status UserMail::fts(uint32_t mailbox_id, FtsIndex** out) {
  *out = nullptr;
  if (!fts_enabled_) return Status::ok();
  auto it = fts_.find(mailbox_id);
  if (it != fts_.end()) {
    *out = it->second.get();
    return Status::ok();
  }
  MailboxIndex* idx;
  Status s = index(mailbox_id, &idx);
  if (!s.is_ok()) return s;
  std::unique_ptr<FtsIndex> f;
  std::vector<std::string> dropped;
  s = FtsIndex::open(env_, mailbox_dir(mailbox_id), idx->uidvalidity(), &f, &dropped);
  for (const std::string& d : dropped) RM_LOG(warn, "fts_segment_dropped").kv("problem", d);
  if (!s.is_ok()) return s;
  f->set_background_merges(fts_background_merges_);
  *out = f.get();
  fts_[mailbox_id] = std::move(f);
  return Status::ok();
}

bool UserMail::fts_plan_merge(FtsMerge* out) {
  for (auto& [id, f] : fts_) {
    MailboxIndex* idx;
    if (!index(id, &idx).is_ok()) continue;
    auto job = f->plan_merge([idx](uint32_t uid) { return idx->find(uid) >= 0; });
    if (!job) continue;
    *out = FtsMerge{id, f.get(), std::move(job)};
    return true;
  }
  return false;
}

Status UserMail::fts_finish_merge(FtsMerge& m) {
  auto it = fts_.find(m.mailbox_id);
  if (it == fts_.end() || it->second.get() != m.index) return Status::ok();  // the index is gone
  return it->second->finish_merge(m.job.get());
}

Status UserMail::fts_add(uint32_t mailbox_id, FtsIndex* f, const MessageRecord& rec,
                         std::string_view message, const MimeInfo& mime) {
  text_extract_.extract(message, mime, &text_);
  f->add(rec.uid, text_);
  if (text_.capacity() > (256u << 10)) std::string().swap(text_);  // see search_text.cc
  if (f->pending_docs() < fts_batch_docs_ && f->pending_bytes() < kFtsPendingBytesMax)
    return Status::ok();
  MailboxIndex* idx;
  Status s = index(mailbox_id, &idx);
  if (!s.is_ok()) return s;
  return f->flush([idx](uint32_t uid) { return idx->find(uid) >= 0; });
}

Status UserMail::fts_catch_up(uint32_t mailbox_id, uint64_t budget_bytes, bool* done) {
  *done = true;
  FtsIndex* f;
  Status s = fts(mailbox_id, &f);
  if (!s.is_ok() || !f) return s;
  MailboxIndex* idx;
  s = index(mailbox_id, &idx);
  if (!s.is_ok()) return s;
  const auto& recs = idx->records();
  auto it = std::upper_bound(recs.begin(), recs.end(), f->covered_uid(),
                             [](uint32_t u, const MessageRecord& r) { return u < r.uid; });
  uint64_t used = 0;
  for (; it != recs.end(); ++it) {
    if (used >= budget_bytes) {
      *done = false;
      return Status::ok();
    }
    const MessageRecord rec = *it;  // fts_add may flush, which does not change the records
    std::string_view bytes;
    s = read(rec, false, &bytes);
    if (s.is_ok()) s = read_mime(rec, &fts_mime_);
    if (!s.is_ok()) return s;
    if (fts_mime_.message_bytes != bytes.size())
      return Status::corrupt("MIME structure does not match the message");
    used += bytes.size();
    s = fts_add(mailbox_id, f, rec, bytes, fts_mime_);
    if (!s.is_ok()) return s;
  }
  return Status::ok();
}

Status UserMail::fts_flush() {
  for (auto& [id, f] : fts_) {
    if (f->pending_docs() == 0) continue;
    MailboxIndex* idx;
    Status s = index(id, &idx);
    if (!s.is_ok()) return s;
    s = f->flush([idx](uint32_t uid) { return idx->find(uid) >= 0; });
    if (!s.is_ok()) return s;
  }
  return Status::ok();
}

uint64_t UserMail::fts_memory_bytes() const {
  uint64_t bytes = 0;
  for (const auto& [id, f] : fts_) bytes += f->memory_bytes();
  return bytes;
}

Status UserMail::fts_stats(FtsStats* out) {
  *out = FtsStats();
  for (const Mailbox& m : mailboxes_) {
    FtsIndex* f;
    Status s = fts(m.id, &f);
    if (!s.is_ok()) return s;
    if (!f) continue;
    FtsStats st = f->stats();
    out->docs += st.docs;
    out->text_bytes += st.text_bytes;
    out->index_bytes += st.index_bytes;
    out->segments += st.segments;
  }
  return Status::ok();
}

Status UserMail::fts_rebuild() {
  const std::vector<Mailbox> boxes = mailboxes_;
  for (const Mailbox& m : boxes) {
    FtsIndex* f;
    Status s = fts(m.id, &f);
    if (!s.is_ok()) return s;
    if (!f) continue;
    s = f->clear();
    if (!s.is_ok()) return s;
    bool done = false;
    s = fts_catch_up(m.id, UINT64_MAX, &done);
    if (!s.is_ok()) return s;
  }
  return fts_flush();
}

Status UserMail::copy(const MessageRecord& src, uint32_t to_mailbox, uint32_t flags,
                      uint64_t keywords, MessageRecord* out) {
  MailboxIndex* idx;
  Status s = index(to_mailbox, &idx);
  if (!s.is_ok()) return s;
  MessageRecord rec = src;
  rec.flags = flags & kSystemFlagsMask;
  rec.keywords = keywords;
  s = idx->append(&rec);
  if (!s.is_ok()) return s;
  dirty_indexes_.insert(to_mailbox);
  usage_.bytes += rec.size;
  usage_.messages++;
  *out = rec;
  return Status::ok();
}

Status UserMail::expunge(uint32_t mailbox_id, uint32_t uid) {
  MailboxIndex* idx;
  Status s = index(mailbox_id, &idx);
  if (!s.is_ok()) return s;
  int64_t i = idx->find(uid);
  if (i < 0) return Status::not_found("no message with UID " + std::to_string(uid));
  uint32_t size = idx->records()[static_cast<size_t>(i)].size;
  s = idx->expunge(uid);
  if (!s.is_ok()) return s;
  dirty_indexes_.insert(mailbox_id);
  usage_.bytes -= size;
  usage_.messages--;
  released_bytes_ += size;
  return Status::ok();
}

Status UserMail::map_record(BlobRef blob, uint64_t size, bool verify, RecordHeader* header,
                            RecordPayload* payload) {
  auto it = readers_.find(blob.segment);
  uint64_t end = uint64_t{blob.offset} + kRecordHeaderBytes + size;
  const bool active = writer_ && blob.segment == writer_->id();
  // The active segment grew since it was mapped: its mapping has room for what was written.
  if (it != readers_.end() && it->second->data().size() < end && active)
    it->second->extend(writer_->size());
  if (it == readers_.end() || it->second->data().size() < end) {
    // First read of this segment, or the active one grew past its mapping's room: map it (again).
    // The active one with room for a full segment and one largest message, so that this
    // happens once per segment, not once per message stored and read.
    std::unique_ptr<ReadFile> f;
    const std::string path = dir_ + "/seg/" + segment_file_name(blob.segment);
    Status s = active ? env_->open_read_growing(path, 2 * segment_bytes_max_, &f)
                      : env_->open_read(path, &f);
    if (!s.is_ok()) return s;
    // Views handed out from the old mapping stay valid: it is retired, not unmapped.
    if (it != readers_.end()) retired_readers_.push_back(std::move(it->second));
    it = readers_.insert_or_assign(blob.segment, std::move(f)).first;
  }
  Status s = read_record(it->second->data(), blob.offset, verify, header, payload);
  if (!s.is_ok()) return s;
  if (header->length != size) return Status::corrupt("message size differs from its index record");
  return Status::ok();
}

Status UserMail::read(const MessageRecord& rec, bool verify, std::string_view* message) {
  RecordHeader h;
  RecordPayload p;
  Status s = map_record(rec.blob, rec.size, verify, &h, &p);
  if (s.is_ok()) *message = p.body;
  return s;
}

Status UserMail::read_mime(const MessageRecord& rec, MimeInfo* out) {
  RecordHeader h;
  RecordPayload p;
  Status s = map_record(rec.blob, rec.size, false, &h, &p);
  if (!s.is_ok()) return s;
  return decode_mime_cache(p.cache, rec.size, out);
}

Status UserMail::compact(double garbage_min, CompactResult* result) {
  *result = CompactResult{};
  released_bytes_ = 0;
  Status s = sync();
  if (!s.is_ok()) return s;
  // Every live reference, per segment: (offset -> size).
  std::map<uint32_t, std::map<uint32_t, uint32_t>> live;
  for (const Mailbox& m : mailboxes_) {
    MailboxIndex* idx;
    s = index(m.id, &idx);
    if (!s.is_ok()) return s;
    for (const MessageRecord& r : idx->records()) live[r.blob.segment][r.blob.offset] = r.size;
  }
  std::vector<std::string> names;
  s = env_->list_dir(dir_ + "/seg", &names);
  if (!s.is_ok()) return s;
  std::vector<uint32_t> victims;
  std::map<uint32_t, uint64_t> garbage;
  for (const std::string& n : names) {
    unsigned id = 0;
    if (n.size() != 12 || n.substr(8) != ".seg" || sscanf(n.c_str(), "%8x", &id) != 1 ||
        id >= writer_->id())
      continue;  // only sealed segments
    std::unique_ptr<ReadFile> f;
    s = env_->open_read(dir_ + "/seg/" + n, &f);
    if (!s.is_ok()) return s;
    uint64_t live_bytes = kSegmentHeaderBytes;
    for (const auto& [off, size] : live[id]) {
      RecordHeader h;
      RecordPayload p;
      if (read_record(f->data(), off, false, &h, &p).is_ok())
        live_bytes += (kRecordHeaderBytes + h.length + h.cache_length + 7) & ~7ull;
    }
    uint64_t total = f->data().size();
    if (total > live_bytes && static_cast<double>(total - live_bytes) >= garbage_min * total) {
      victims.push_back(id);
      garbage[id] = total - live_bytes;
    }
  }
  // Copy the live records of the victims; a damaged one keeps its whole segment alive.
  std::map<std::pair<uint32_t, uint32_t>, BlobRef> moved;
  for (uint32_t id : std::vector<uint32_t>(victims)) {
    std::map<std::pair<uint32_t, uint32_t>, BlobRef> from_this;
    for (const auto& [off, size] : live[id]) {
      RecordHeader h;
      RecordPayload bytes;
      s = map_record({id, off}, size, true, &h, &bytes);
      if (!s.is_ok()) {
        result->skipped.push_back(segment_file_name(id) + ": " + s.message());
        victims.erase(std::find(victims.begin(), victims.end(), id));
        from_this.clear();
        break;
      }
      if (writer_->size() >= segment_bytes_max_) {
        s = roll_segment();
        if (!s.is_ok()) return s;
      }
      BlobRef to;
      s = writer_->append(h.mailbox, h.uid, h.internal_date, bytes.body, bytes.cache, &to);
      if (!s.is_ok()) return s;
      segment_dirty_ = true;
      from_this[{id, off}] = to;
    }
    moved.insert(from_this.begin(), from_this.end());
    result->records_moved += from_this.size();
  }
  if (victims.empty()) return Status::ok();
  s = sync();  // the copies are durable before any index names them
  if (!s.is_ok()) return s;
  for (auto& [id, idx] : indexes_) {
    bool changed = false;
    for (const MessageRecord& r : std::vector<MessageRecord>(idx->records())) {
      auto it = moved.find({r.blob.segment, r.blob.offset});
      if (it == moved.end()) continue;
      s = idx->relocate(r.uid, it->second);
      if (!s.is_ok()) return s;
      changed = true;
    }
    if (changed) {
      s = idx->checkpoint();  // durable, and the log stays short
      if (!s.is_ok()) return s;
    }
  }
  // Every index now names the copies, durably: the old segments can go.
  for (uint32_t id : victims) {
    auto r = readers_.find(id);
    if (r != readers_.end()) {
      retired_readers_.push_back(std::move(r->second));
      readers_.erase(r);
    }
    s = env_->remove(dir_ + "/seg/" + segment_file_name(id));
    if (!s.is_ok()) return s;
    result->segments_rewritten++;
    result->bytes_freed += garbage[id];
  }
  return env_->sync_dir(dir_ + "/seg");
}

Status UserMail::begin_sync(SyncRound* round) {
  *round = SyncRound{};
  if (segment_dirty_) {
    if (!writer_->failed().is_ok()) return writer_->failed();
    round->fds.push_back(writer_->sync_fd());
    round->segment = writer_->id();
    segment_dirty_ = false;
  }
  for (uint32_t id : dirty_indexes_) {
    auto idx = indexes_.find(id);
    if (idx == indexes_.end()) continue;  // deleted meanwhile
    if (!idx->second->failed().is_ok()) return idx->second->failed();
    round->fds.push_back(idx->second->sync_fd());
    round->mailboxes.push_back(id);
    syncing_indexes_.insert(id);
  }
  dirty_indexes_.clear();
  if (!new_mailboxes_.empty() || list_dirty_) {
    // A new mailbox: its two files, its directory, and the directory that names it.
    auto add = [&](const std::string& path, std::vector<int>* to) {
      int fd;
      Status s = env_->open_for_sync(path, &fd);
      if (!s.is_ok()) return s;
      round->owned.push_back(fd);
      to->push_back(fd);
      return Status::ok();
    };
    Status s;
    for (uint32_t id : new_mailboxes_) {
      std::string d = mailbox_dir(id);
      if (s.is_ok()) s = add(d + "/log", &round->fds);
      if (s.is_ok()) s = add(d + "/index", &round->fds);
      if (s.is_ok()) s = add(d, &round->dir_fds);
    }
    if (s.is_ok() && !new_mailboxes_.empty()) s = add(dir_ + "/mbox", &round->dir_fds);
    new_mailboxes_.clear();
    if (s.is_ok() && list_dirty_) {
      int fd;
      s = env_->write_unsynced(dir_ + "/mailboxes.tmp",
                               format_list(mailboxes_, next_id_, last_uidvalidity_), &fd);
      if (s.is_ok()) {
        round->owned.push_back(fd);
        round->fds.push_back(fd);
        round->list = true;
        round->removals.swap(removals_);
        list_dirty_ = false;
      }
    }
    if (!s.is_ok()) {
      close_round(*round);
      return s;
    }
  }
  return Status::ok();
}

Status UserMail::finish_sync(SyncRound& round, int err) {
  Status result;
  if (round.segment != UINT32_MAX && round.segment == writer_->id()) {
    writer_->note_sync(err);
    if (!writer_->failed().is_ok()) result = writer_->failed();
  } else if (round.segment != UINT32_MAX && err != 0) {
    result = Status::io_error("segment sync failed: " + std::string(strerror(err)));
  }
  for (uint32_t id : round.mailboxes) {
    syncing_indexes_.erase(id);
    auto idx = indexes_.find(id);
    if (idx == indexes_.end()) continue;
    idx->second->note_sync(err);
    if (result.is_ok() && !idx->second->failed().is_ok()) result = idx->second->failed();
  }
  if (err != 0 && result.is_ok()) result = Status::io_error(strerror(err));
  if (syncing_indexes_.empty()) retired_indexes_.clear();
  if (result.is_ok() && round.list) {
    // Every file the new list names is durable: it may replace the old one.
    close_round(round);
    result = env_->rename(dir_ + "/mailboxes.tmp", dir_ + "/mailboxes");
    int fd;
    if (result.is_ok()) result = env_->open_for_sync(dir_, &fd);
    if (result.is_ok()) {
      round.owned.push_back(fd);
      round.dir_fds.push_back(fd);
      round.list_stage = true;
    }
    return result;
  }
  close_round(round);
  return result;
}

Status UserMail::finish_list_stage(SyncRound& round, int err) {
  close_round(round);
  round.list_stage = false;
  if (err != 0) return Status::io_error("fsync " + dir_ + ": " + strerror(err));
  for (uint32_t id : round.removals) remove_mailbox_files(id);
  round.removals.clear();
  return Status::ok();
}

void UserMail::close_round(SyncRound& round) {
  for (int fd : round.owned) close(fd);
  round.owned.clear();
  round.fds.clear();
  round.dir_fds.clear();
}

Status UserMail::sync_metadata() {
  for (uint32_t id : new_mailboxes_) {
    std::string d = mailbox_dir(id);
    for (const char* f : {"/log", "/index"}) {
      int fd;
      Status s = env_->open_for_sync(d + f, &fd);
      if (!s.is_ok()) return s;
      int rc = fdatasync(fd);
      close(fd);
      if (rc != 0) return Status::io_error("fdatasync " + d + f + ": " + strerror(errno));
    }
    Status s = env_->sync_dir(d);
    if (!s.is_ok()) return s;
  }
  if (!new_mailboxes_.empty()) {
    Status s = env_->sync_dir(dir_ + "/mbox");
    if (!s.is_ok()) return s;
    new_mailboxes_.clear();
  }
  if (list_dirty_) {
    Status s = env_->write_atomic(dir_ + "/mailboxes",
                                  format_list(mailboxes_, next_id_, last_uidvalidity_));
    if (!s.is_ok()) return s;
    list_dirty_ = false;
  }
  for (uint32_t id : removals_) remove_mailbox_files(id);
  removals_.clear();
  return Status::ok();
}

Status UserMail::sync() {
  Status ms = sync_metadata();
  if (!ms.is_ok()) return ms;
  if (segment_dirty_) {
    Status s = writer_->sync();
    if (!s.is_ok()) return s;
    segment_dirty_ = false;
  }
  for (auto it = dirty_indexes_.begin(); it != dirty_indexes_.end();) {
    auto idx = indexes_.find(*it);
    if (idx != indexes_.end()) {
      Status s = idx->second->sync();
      if (!s.is_ok()) return s;
    }
    it = dirty_indexes_.erase(it);
  }
  return Status::ok();
}

}  // namespace ringmail
