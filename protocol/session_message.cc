// Message commands: APPEND (MULTIAPPEND), FETCH, STORE, COPY, MOVE, EXPUNGE, SEARCH (ESEARCH,
// SEARCHRES), IDLE, and the reporting of changes made by other sessions.
#include <algorithm>
#include <ctime>

#include "core/log.h"
#include "protocol/imap_fetch.h"
#include "protocol/imap_search.h"
#include "protocol/imap_text.h"
#include "protocol/sequence_set.h"
#include "protocol/session.h"

namespace ringmail {
namespace {

constexpr size_t kOutputChunkBytes = 256 * 1024;
constexpr size_t kFlagsMax = 100;

const struct {
  const char* name;
  uint32_t bit;
} kSystemFlags[] = {{"\\Seen", kFlagSeen},
                    {"\\Answered", kFlagAnswered},
                    {"\\Flagged", kFlagFlagged},
                    {"\\Deleted", kFlagDeleted},
                    {"\\Draft", kFlagDraft}};

int month_index(std::string_view m) {
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; i++)
    if (iequals(m, kMonths[i])) return i;
  return -1;
}

// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
bool parse_date_time(std::string_view s, int64_t* out) {
  if (s.size() != 26 && s.size() != 25) return false;
  if (s.size() == 25) {
    // A one-digit day without the leading space is common enough to accept.
    static thread_local std::string padded;
    padded = " ";
    padded.append(s);
    s = padded;
  }
  auto digits = [&](size_t pos, size_t n, int* v) {
    *v = 0;
    for (size_t i = pos; i < pos + n; i++) {
      if (s[i] == ' ' && i == pos) continue;
      if (s[i] < '0' || s[i] > '9') return false;
      *v = *v * 10 + (s[i] - '0');
    }
    return true;
  };
  int day, year, hh, mm, ss, zone;
  if (!digits(0, 2, &day) || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' ||
      s[17] != ':' || s[20] != ' ' || (s[21] != '+' && s[21] != '-'))
    return false;
  int month = month_index(s.substr(3, 3));
  if (month < 0 || !digits(7, 4, &year) || !digits(12, 2, &hh) || !digits(15, 2, &mm) ||
      !digits(18, 2, &ss) || !digits(22, 4, &zone))
    return false;
  if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1900) return false;
  tm t{};
  t.tm_year = year - 1900;
  t.tm_mon = month;
  t.tm_mday = day;
  t.tm_hour = hh;
  t.tm_min = mm;
  t.tm_sec = ss;
  int64_t secs = timegm(&t);
  tm check{};
  time_t as_time = static_cast<time_t>(secs);
  if (gmtime_r(&as_time, &check) == nullptr || check.tm_mday != day) return false;  // 31-Feb
  int64_t offset = (zone / 100) * 3600 + (zone % 100) * 60;
  *out = s[21] == '+' ? secs - offset : secs + offset;
  return true;
}

}  // namespace

MailboxIndex* ImapSession::selected_index() {
  MailboxIndex* idx = nullptr;
  if (!open_ || selected_ == 0) return nullptr;
  bool exists = false;
  for (const UserMail::Mailbox& m : open_->mail->mailboxes()) exists |= m.id == selected_;
  if (!exists || !open_->mail->index(selected_, &idx).is_ok()) return nullptr;
  return idx;
}

bool ImapSession::read_flag_list(CommandReader& r, Flags* flags, std::string* error) {
  bool paren = r.ch('(');
  bool first = true;
  while (true) {
    if (paren && r.ch(')')) break;
    if (!first && !r.sp()) {
      if (!paren) break;
      *error = "BAD Malformed flag list";
      return false;
    }
    if (!first && !paren && (r.peek('\r') || r.peek('\n'))) break;
    first = false;
    std::string_view word;
    bool system = r.ch('\\');
    if (!r.atom(&word)) {
      *error = "BAD Malformed flag";
      return false;
    }
    if (system) {
      bool known = false;
      for (const auto& f : kSystemFlags) {
        if (iequals(word, f.name + 1)) {
          flags->system |= f.bit;
          known = true;
        }
      }
      if (!known) {
        *error = iequals(word, "Recent") ? "BAD \\Recent cannot be set"
                                         : "BAD Unknown system flag \\" + std::string(word);
        return false;
      }
    } else {
      if (flags->keywords.size() >= kFlagsMax) {
        *error = "BAD Too many flags";
        return false;
      }
      flags->keywords.emplace_back(word);
    }
    if (!paren) {
      if (!r.peek(' ')) break;
    }
  }
  return true;
}

bool ImapSession::resolve_flags(const Flags& f, MailboxIndex* idx, uint32_t* system,
                                uint64_t* keywords, std::string* error) {
  *system = f.system;
  *keywords = 0;
  for (const std::string& k : f.keywords) {
    unsigned bit;
    Status s = idx->keyword_bit(k, &bit);
    if (!s.is_ok()) {
      *error = "NO [LIMIT] Too many keywords in this mailbox";
      return false;
    }
    *keywords |= uint64_t{1} << bit;
  }
  return true;
}

void ImapSession::append_flags(uint32_t system, uint64_t keywords, const MailboxIndex& idx,
                               std::string* out) const {
  out->push_back('(');
  bool first = true;
  for (const auto& f : kSystemFlags) {
    if (!(system & f.bit)) continue;
    if (!first) out->push_back(' ');
    first = false;
    out->append(f.name);
  }
  for (size_t b = 0; b < idx.keywords().size() && b < 64; b++) {
    if (!(keywords & (uint64_t{1} << b))) continue;
    if (!first) out->push_back(' ');
    first = false;
    out->append(idx.keywords()[b]);
  }
  out->push_back(')');
}

bool ImapSession::select_messages(Connection& c, std::string_view tag, std::string_view text,
                                  bool uid, std::vector<uint32_t>* positions) {
  SequenceSet set;
  if (!set.parse(text)) {
    respond(c, tag, "BAD Invalid sequence set");
    return false;
  }
  positions->clear();
  if (set.is_saved()) {
    for (uint32_t u : saved_uids_) {
      auto it = std::lower_bound(uids_.begin(), uids_.end(), u);
      if (it != uids_.end() && *it == u)
        positions->push_back(static_cast<uint32_t>(it - uids_.begin()));
    }
    return true;
  }
  if (uid) {
    uint32_t max = uids_.empty() ? 0 : uids_.back();
    for (SeqRange range : set.resolve(max)) {
      auto lo = std::lower_bound(uids_.begin(), uids_.end(), range.lo);
      auto hi = std::upper_bound(lo, uids_.end(), range.hi);
      for (auto it = lo; it != hi; ++it)
        positions->push_back(static_cast<uint32_t>(it - uids_.begin()));
    }
    return true;
  }
  const uint32_t max = static_cast<uint32_t>(uids_.size());
  for (SeqRange range : set.ranges()) {
    if ((range.lo != SequenceSet::kStar && range.lo > max) ||
        (range.hi != SequenceSet::kStar && range.hi > max)) {
      respond(c, tag, "BAD Invalid message sequence number");
      return false;
    }
  }
  for (SeqRange range : set.resolve(max))
    for (uint32_t n = range.lo; n <= range.hi; n++) positions->push_back(n - 1);
  return true;
}

// ---- Reporting changes ----------------------------------------------------------------------

void ImapSession::report_expunges(Connection& c, const std::vector<uint32_t>& positions_desc) {
  if (positions_desc.empty()) return;
  std::string out;
  if (qresync_) {
    std::vector<uint32_t> gone;
    gone.reserve(positions_desc.size());
    for (uint32_t p : positions_desc) gone.push_back(uids_[p]);
    std::sort(gone.begin(), gone.end());
    out.append("* VANISHED ");
    append_number_set(gone, &out);
    out.append("\r\n");
  } else {
    for (uint32_t p : positions_desc)
      out.append("* ").append(std::to_string(p + 1)).append(" EXPUNGE\r\n");
  }
  for (uint32_t p : positions_desc) uids_.erase(uids_.begin() + p);
  c.write(out);
}

void ImapSession::report_updates(Connection& c, bool expunges_allowed) {
  if (state_ != State::selected) return;
  MailboxIndex* idx = selected_index();
  if (!idx) {
    c.write("* BYE [UNAVAILABLE] The selected mailbox was deleted\r\n");
    deselect();
    state_ = State::authenticated;
    c.close_after_flush();
    return;
  }
  const auto& recs = idx->records();
  uint32_t last_known = uids_.empty() ? 0 : uids_.back();
  auto known_end = std::upper_bound(recs.begin(), recs.end(), last_known,
                                    [](uint32_t u, const MessageRecord& r) { return u < r.uid; });
  size_t still_here = static_cast<size_t>(known_end - recs.begin());
  if (expunges_allowed && still_here != uids_.size()) {
    std::vector<uint32_t> gone;  // positions, descending
    for (size_t p = uids_.size(); p-- > 0;)
      if (idx->find(uids_[p]) < 0) gone.push_back(static_cast<uint32_t>(p));
    report_expunges(c, gone);
  }
  std::string out;
  if (known_end != recs.end()) {
    for (auto it = known_end; it != recs.end(); ++it) uids_.push_back(it->uid);
    out.append("* ").append(std::to_string(uids_.size())).append(" EXISTS\r\n");
  }
  uint64_t highest = idx->highest_modseq();
  if (highest > known_modseq_) {
    // Skip the scan when every change since the last report was this session's own.
    uint64_t own = 0;
    for (uint64_t m : own_modseqs_) own += m > known_modseq_ && m <= highest;
    if (own != highest - known_modseq_) {
      for (const MessageRecord& rec : recs) {
        if (rec.modseq <= known_modseq_ || rec.uid > last_known || own_modseqs_.count(rec.modseq))
          continue;
        auto it = std::lower_bound(uids_.begin(), uids_.end(), rec.uid);
        if (it == uids_.end() || *it != rec.uid) continue;
        out.append("* ").append(std::to_string(it - uids_.begin() + 1)).append(" FETCH (");
        if (condstore_ || qresync_) out.append("UID ").append(std::to_string(rec.uid)).append(" ");
        out.append("FLAGS ");
        append_flags(rec.flags, rec.keywords, *idx, &out);
        if (condstore_) out.append(" MODSEQ (").append(std::to_string(rec.modseq)).append(")");
        out.append(")\r\n");
      }
    }
    known_modseq_ = highest;
    own_modseqs_.clear();
  }
  changes_pending_ = false;
  if (!out.empty()) c.write(out);
}

void ImapSession::on_mailbox_changed(Connection& c, const std::vector<uint32_t>& mailboxes) {
  if (state_ != State::selected) return;
  if (std::find(mailboxes.begin(), mailboxes.end(), selected_) == mailboxes.end()) return;
  changes_pending_ = true;
  if (idling_ && !c.closing && !c.close_now) {
    report_updates(c, true);
    c.reactor->mark_dirty(c);
  }
}

// ---- IDLE -----------------------------------------------------------------------------------

void ImapSession::cmd_idle(Connection& c, std::string_view tag, CommandReader& r) {
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  idling_ = true;
  idle_tag_ = std::string(tag);
  c.write("+ idling\r\n");
  if (state_ == State::selected) report_updates(c, true);
}

void ImapSession::idle_input(Connection& c, std::string_view line) {
  idling_ = false;
  std::string tag = std::move(idle_tag_);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (!iequals(line, "DONE")) return respond(c, tag, "BAD Expected DONE");
  respond_ok(c, tag, "IDLE terminated");
}

// ---- APPEND ---------------------------------------------------------------------------------

void ImapSession::cmd_append(Connection& c, std::string_view tag, CommandReader& r) {
  std::string name, error;
  if (!r.sp() || !read_mailbox_name(r, &name, &error))
    return respond(c, tag,
                   error.empty() ? "BAD Expected: APPEND mailbox [flags] [date] literal" : error);
  struct Item {
    Flags flags;
    int64_t date = 0;
    std::string_view message;
  };
  std::vector<Item> items;
  // MULTIAPPEND (RFC 3502): one or more [flags] [date] literal.
  while (r.sp()) {
    Item item;
    item.date = time(nullptr);
    if (r.peek('(')) {
      if (!read_flag_list(r, &item.flags, &error)) return respond(c, tag, error);
      if (!r.sp()) return respond(c, tag, "BAD Expected a literal");
    }
    if (r.peek('"')) {
      std::string scratch;
      std::string_view d;
      if (!r.string(&d, &scratch) || !parse_date_time(d, &item.date))
        return respond(c, tag, "BAD Invalid date-time");
      if (!r.sp()) return respond(c, tag, "BAD Expected a literal");
    }
    // literal, literal8 (~{n}: RFC 3516 BINARY, IMAP4rev2) or UTF8 (literal8) (RFC 6855).
    bool utf8_data = false;
    if (r.peek('U') || r.peek('u')) {
      std::string_view word;
      if (!r.atom(&word) || !iequals(word, "UTF8") || !r.sp() || !r.ch('('))
        return respond(c, tag, "BAD Expected a literal");
      utf8_data = true;
    }
    bool binary = r.ch('~');
    if (!r.peek('{')) return respond(c, tag, "BAD Expected a literal");
    std::string scratch;
    if (binary ? !r.literal8(&item.message) : !r.string(&item.message, &scratch))
      return respond(c, tag,
                     binary ? "BAD Malformed literal8"
                            : "BAD Malformed literal (a message with NUL needs literal8, ~{n})");
    if (utf8_data && !r.ch(')')) return respond(c, tag, "BAD Expected ) after UTF8 data");
    items.push_back(std::move(item));
    if (items.size() > 1000) return respond(c, tag, "BAD Too many messages in one APPEND");
  }
  if (items.empty() || !r.at_end())
    return respond(c, tag, "BAD Expected: APPEND mailbox [flags] [date] literal");
  UserMail& mail = *open_->mail;
  const UserMail::Mailbox* m = mail.find(name);
  if (!m) return respond(c, tag, "NO [TRYCREATE] No such mailbox");
  uint32_t id = m->id;
  MailboxIndex* idx;
  Status s = mail.index(id, &idx);
  if (!s.is_ok()) return respond(c, tag, storage_failure(s, "APPEND failed"));
  for (const Item& item : items) {
    if (item.message.size() > appendlimit_)
      return respond(c, tag, "NO [TOOBIG] Message larger than APPENDLIMIT");
    if (item.message.empty()) return respond(c, tag, "NO [CANNOT] Empty message");
  }
  std::vector<uint32_t> uids;
  for (const Item& item : items) {
    uint32_t system;
    uint64_t keywords;
    if (!resolve_flags(item.flags, idx, &system, &keywords, &error)) {
      s = Status::invalid("too many keywords");
    } else {
      MessageRecord rec;
      s = mail.append(id, item.message, item.date, system, keywords, &rec);
      if (s.is_ok()) uids.push_back(rec.uid);
    }
    if (!s.is_ok()) {
      // All or nothing (RFC 3502): the ones already stored go again.
      for (uint32_t u : uids) (void)mail.expunge(id, u);
      if (!uids.empty()) core(c).changed(open_, id);
      RM_LOG(warn, "append_failed").kv("user", user_).kv("error", s.message());
      if (!error.empty()) return respond(c, tag, error);
      return respond(c, tag, storage_failure(s, "APPEND failed"));
    }
  }
  core(c).changed(open_, id);
  std::string text = "OK [APPENDUID " + std::to_string(idx->uidvalidity()) + " ";
  append_number_set(uids, &text);
  text += "] APPEND completed";
  respond_durable(c, tag, std::move(text));
}

// ---- FETCH ----------------------------------------------------------------------------------

void ImapSession::cmd_fetch(Connection& c, std::string_view tag, CommandReader& r, bool uid) {
  std::string& buf = core(c).out;  // per-core scratch
  std::string_view set_text;
  if (!r.sp() || !r.sequence_set_text(&set_text) || !r.sp())
    return respond(c, tag, "BAD Expected: FETCH sequence-set items");
  auto run = std::make_unique<FetchRun>();
  std::string error;
  if (!parse_fetch(r, &run->spec, &error)) return respond(c, tag, "BAD " + error);
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments after FETCH items");
  const FetchSpec& spec = run->spec;
  if (spec.vanished && (!uid || !qresync_ || !spec.has_changed_since))
    return respond(c, tag, "BAD VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE");
  if (spec.has_changed_since || spec.has_modseq) condstore_ = true;  // RFC 7162 3.1: enables it
  if (!select_messages(c, tag, set_text, uid, &run->positions)) return;
  MailboxIndex* idx = selected_index();
  if (!idx) return respond(c, tag, "NO [NONEXISTENT] The mailbox is gone");
  run->tag = std::string(tag);
  run->uid = uid;
  buf.clear();
  if (spec.vanished) {
    SequenceSet set;
    set.parse(set_text);
    std::vector<uint32_t> gone;
    for (SeqRange range : set.resolve(idx->uidnext() > 1 ? idx->uidnext() - 1 : 0))
      for (uint32_t u = range.lo; u <= range.hi && gone.size() < 1000000; u++)
        if (idx->find(u) < 0) gone.push_back(u);
    if (!gone.empty()) {
      buf.append("* VANISHED (EARLIER) ");
      append_number_set(gone, &buf);
      buf.append("\r\n");
    }
    c.write(buf);
    buf.clear();
  }
  fetch_run_ = std::move(run);
  continue_fetch(c);
}

void ImapSession::on_writable(Connection& c) {
  if (!fetch_run_ || c.closing || c.close_now) return;
  if (c.output_bytes() > static_cast<size_t>(c.reactor->config().output_bytes_max) / 2) return;
  continue_fetch(c);
}

// Writes FETCH responses until the connection's output holds output_bytes_max; the rest follows
// as the client reads (on_writable), so FETCH 1:* BODY[] of a huge mailbox needs no more memory
// than one message. Other commands wait meanwhile (input paused).
void ImapSession::continue_fetch(Connection& c) {
  std::string& buf = core(c).out;  // per-core scratch
  MimeInfo& mime = core(c).mime;
  FetchRun& run = *fetch_run_;
  const FetchSpec& spec = run.spec;
  const size_t output_max = static_cast<size_t>(c.reactor->config().output_bytes_max);
  auto stop = [&](const std::string& text) {
    c.write(buf);
    buf.clear();
    std::string tag = std::move(run.tag);
    fetch_run_.reset();
    c.input_paused = false;
    respond(c, tag, text);
  };
  MailboxIndex* idx = selected_index();
  if (!idx) return stop("NO [NONEXISTENT] The mailbox is gone");
  UserMail& mail = *open_->mail;
  const bool set_seen = spec.sets_seen && !read_only_;
  buf.clear();
  for (; run.next < run.positions.size(); run.next++) {
    if (c.out.bytes() + buf.size() >= output_max) {
      c.write(buf);
      buf.clear();
      c.input_paused = true;  // resumed by on_writable()
      return;
    }
    uint32_t pos = run.positions[run.next];
    if (pos >= uids_.size()) continue;
    int64_t i = idx->find(uids_[pos]);
    if (i < 0) {  // expunged by another session, not yet reported
      run.expunged = true;
      continue;
    }
    MessageRecord rec = idx->records()[static_cast<size_t>(i)];
    if (spec.has_changed_since && rec.modseq <= spec.changed_since) continue;
    FetchMessage m;
    m.seq = pos + 1;
    m.include_uid = run.uid;
    if (set_seen && !(rec.flags & kFlagSeen)) {
      uint64_t modseq;
      Status s = idx->set_flags(rec.uid, rec.flags | kFlagSeen, rec.keywords, &modseq);
      if (!s.is_ok()) return stop(storage_failure(s, "FETCH failed"));
      rec.flags |= kFlagSeen;
      rec.modseq = modseq;
      own_modseqs_.insert(modseq);
      m.include_flags = !spec.has_flags;
      run.changed = true;
    }
    m.include_modseq = condstore_ && (spec.has_changed_since || m.include_flags);
    if (condstore_ && m.include_flags) m.include_uid = true;  // RFC 7162 section 3.1
    m.rec = &rec;
    m.keywords = &idx->keywords();
    if (spec.needs_bytes) {
      Status s = mail.read(rec, false, &m.bytes);
      if (!s.is_ok()) {
        RM_LOG(error, "read_failed").kv("user", user_).kv("uid", rec.uid).kv("error", s.message());
        return stop("NO [SERVERBUG] A message could not be read");
      }
    }
    if (spec.needs_mime) {
      Status s = mail.read_mime(rec, &mime);
      if (!s.is_ok()) return stop("NO [SERVERBUG] A message's structure could not be read");
      m.mime = &mime;
    }
    FetchError e = append_fetch(spec, m, revision(), &buf);
    if (e != FetchError::none) run.error = e;
    if (buf.size() >= kOutputChunkBytes) {
      c.write(buf);
      buf.clear();
    }
  }
  c.write(buf);
  buf.clear();
  std::string text = "OK FETCH completed";
  if (run.error == FetchError::unknown_cte) {
    text = "NO [UNKNOWN-CTE] A part has a transfer encoding that cannot be decoded";
  } else if (run.expunged && !run.uid) {
    // RFC 2180 section 4.1.4 and RFC 5530: the client learns that what it asked for by sequence
    // number is partly gone (it sees the EXPUNGE at its next command). A UID FETCH names UIDs,
    // of which any may be gone, so it stays OK.
    text = "NO [EXPUNGEISSUED] Some of the requested messages were expunged by another session";
  }
  std::string tag = std::move(run.tag);
  bool uid = run.uid;
  bool changed = run.changed;
  fetch_run_.reset();
  c.input_paused = false;
  if (changed) {
    mail.mark_dirty(selected_);
    core(c).changed(open_, selected_);
    durable_expunges_ = uid;
    return respond_durable(c, tag, std::move(text));
  }
  if (text.rfind("OK ", 0) == 0) return respond_ok(c, tag, "FETCH completed", uid);
  respond(c, tag, text);
}

// ---- STORE ----------------------------------------------------------------------------------

void ImapSession::cmd_store(Connection& c, std::string_view tag, CommandReader& r, bool uid) {
  std::string& buf = core(c).out;  // per-core scratch
  std::string_view set_text, item;
  if (!r.sp() || !r.sequence_set_text(&set_text) || !r.sp())
    return respond(c, tag, "BAD Expected: STORE sequence-set item flags");
  uint64_t unchanged_since = UINT64_MAX;
  if (r.ch('(')) {
    std::string_view mod;
    if (!r.atom(&mod) || !iequals(mod, "UNCHANGEDSINCE") || !r.sp() ||
        !r.number(&unchanged_since, INT64_MAX) || !r.ch(')') || !r.sp())
      return respond(c, tag, "BAD Malformed STORE modifier");
    condstore_ = true;
  }
  if (!r.word(&item)) return respond(c, tag, "BAD Expected FLAGS, +FLAGS or -FLAGS");
  int mode = 0;  // 0 replace, 1 add, -1 remove
  std::string_view base = item;
  if (!base.empty() && (base[0] == '+' || base[0] == '-')) {
    mode = base[0] == '+' ? 1 : -1;
    base.remove_prefix(1);
  }
  bool silent = false;
  if (iequals(base, "FLAGS.SILENT")) {
    silent = true;
  } else if (!iequals(base, "FLAGS")) {
    return respond(c, tag, "BAD Expected FLAGS, +FLAGS or -FLAGS");
  }
  Flags flags;
  std::string error;
  if (!r.sp() || !read_flag_list(r, &flags, &error))
    return respond(c, tag, error.empty() ? "BAD Expected flags" : error);
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  if (read_only_) return respond(c, tag, "NO [READ-ONLY] The mailbox is read-only");
  std::vector<uint32_t> positions;
  if (!select_messages(c, tag, set_text, uid, &positions)) return;
  MailboxIndex* idx = selected_index();
  if (!idx) return respond(c, tag, "NO [NONEXISTENT] The mailbox is gone");
  uint32_t system;
  uint64_t keywords;
  if (!resolve_flags(flags, idx, &system, &keywords, &error)) return respond(c, tag, error);
  bool changed = false;
  std::vector<uint32_t> modified;  // UNCHANGEDSINCE failed (RFC 7162 MODIFIED)
  buf.clear();
  for (uint32_t pos : positions) {
    int64_t i = idx->find(uids_[pos]);
    if (i < 0) continue;
    MessageRecord rec = idx->records()[static_cast<size_t>(i)];
    if (rec.modseq > unchanged_since) {
      modified.push_back(uid ? rec.uid : pos + 1);
      continue;
    }
    uint32_t nf = mode == 0 ? system : mode > 0 ? (rec.flags | system) : (rec.flags & ~system);
    uint64_t nk = mode == 0  ? keywords
                  : mode > 0 ? (rec.keywords | keywords)
                             : (rec.keywords & ~keywords);
    if (nf != rec.flags || nk != rec.keywords) {
      uint64_t modseq;
      Status s = idx->set_flags(rec.uid, nf, nk, &modseq);
      if (!s.is_ok()) return respond(c, tag, storage_failure(s, "STORE failed"));
      own_modseqs_.insert(modseq);
      rec.flags = nf;
      rec.keywords = nk;
      rec.modseq = modseq;
      changed = true;
    } else if (unchanged_since != UINT64_MAX) {
      // RFC 7162 section 3.2: a no-op conditional store still reports the message.
    } else if (silent) {
      continue;
    }
    if (silent && !(unchanged_since != UINT64_MAX && condstore_)) continue;
    buf.append("* ").append(std::to_string(pos + 1)).append(" FETCH (");
    // RFC 7162 section 3.1: once CONDSTORE is on, STORE's FETCH responses carry UID and MODSEQ.
    if (uid || condstore_) buf.append("UID ").append(std::to_string(rec.uid)).append(" ");
    if (!silent) {
      buf.append("FLAGS ");
      append_flags(rec.flags, rec.keywords, *idx, &buf);
    }
    if (condstore_) {
      buf.append(silent ? "" : " ")
          .append("MODSEQ (")
          .append(std::to_string(rec.modseq))
          .append(")");
    }
    buf.append(")\r\n");
    if (buf.size() >= kOutputChunkBytes) {
      c.write(buf);
      buf.clear();
    }
  }
  c.write(buf);
  buf.clear();
  std::string text = "OK STORE completed";
  if (!modified.empty()) {
    std::sort(modified.begin(), modified.end());
    text = "OK [MODIFIED ";
    append_number_set(modified, &text);
    text += "] Conditional STORE failed";
  }
  if (changed) {
    open_->mail->mark_dirty(selected_);
    core(c).changed(open_, selected_);
    durable_expunges_ = uid;
    return respond_durable(c, tag, std::move(text));
  }
  respond_ok(c, tag, std::string_view(text).substr(3), uid);
}

// ---- COPY, MOVE -----------------------------------------------------------------------------

void ImapSession::cmd_copy(Connection& c, std::string_view tag, CommandReader& r, bool uid,
                           bool move) {
  std::string_view set_text;
  std::string name, error;
  if (!r.sp() || !r.sequence_set_text(&set_text) || !r.sp() ||
      !read_mailbox_name(r, &name, &error) || !r.at_end())
    return respond(c, tag, error.empty() ? "BAD Expected: COPY sequence-set mailbox" : error);
  if (move && read_only_) return respond(c, tag, "NO [READ-ONLY] The mailbox is read-only");
  std::vector<uint32_t> positions;
  if (!select_messages(c, tag, set_text, uid, &positions)) return;
  UserMail& mail = *open_->mail;
  const UserMail::Mailbox* dest = mail.find(name);
  if (!dest) return respond(c, tag, "NO [TRYCREATE] No such mailbox");
  uint32_t dest_id = dest->id;
  MailboxIndex* src = selected_index();
  MailboxIndex* dst;
  if (!src) return respond(c, tag, "NO [NONEXISTENT] The mailbox is gone");
  Status s = mail.index(dest_id, &dst);
  if (!s.is_ok()) return respond(c, tag, storage_failure(s, "COPY failed"));
  std::vector<uint32_t> src_uids, dst_uids, moved_positions;
  for (uint32_t pos : positions) {
    int64_t i = src->find(uids_[pos]);
    if (i < 0) continue;
    MessageRecord rec = src->records()[static_cast<size_t>(i)];
    uint64_t keywords = 0;
    for (size_t b = 0; b < src->keywords().size() && b < 64; b++) {
      if (!(rec.keywords & (uint64_t{1} << b))) continue;
      unsigned bit;
      if (dst->keyword_bit(src->keywords()[b], &bit).is_ok()) keywords |= uint64_t{1} << bit;
    }
    MessageRecord out;
    s = mail.copy(rec, dest_id, rec.flags, keywords, &out);
    if (!s.is_ok()) {
      for (uint32_t u : dst_uids) (void)mail.expunge(dest_id, u);
      if (!dst_uids.empty()) core(c).changed(open_, dest_id);
      return respond(c, tag, storage_failure(s, move ? "MOVE failed" : "COPY failed"));
    }
    src_uids.push_back(rec.uid);
    dst_uids.push_back(out.uid);
    moved_positions.push_back(pos);
  }
  if (src_uids.empty()) {
    return respond_ok(
        c, tag, move ? "MOVE completed (nothing to move)" : "COPY completed (nothing to copy)",
        uid);
  }
  // UIDs ascend with positions, so both lists are in the same order (RFC 4315 COPYUID).
  std::string copyuid = "[COPYUID " + std::to_string(dst->uidvalidity()) + " ";
  append_number_set(src_uids, &copyuid);
  copyuid += " ";
  append_number_set(dst_uids, &copyuid);
  copyuid += "]";
  core(c).changed(open_, dest_id);
  if (!move) return respond_durable(c, tag, "OK " + copyuid + " COPY completed");
  for (uint32_t u : src_uids) {
    s = mail.expunge(selected_, u);
    if (!s.is_ok()) return respond(c, tag, storage_failure(s, "MOVE failed"));
    own_modseqs_.insert(src->highest_modseq());
  }
  c.write("* OK " + copyuid + " Moved\r\n");
  std::reverse(moved_positions.begin(), moved_positions.end());
  report_expunges(c, moved_positions);
  core(c).changed(open_, selected_);
  respond_durable(c, tag, "OK MOVE completed");
}

// ---- EXPUNGE --------------------------------------------------------------------------------

void ImapSession::cmd_expunge(Connection& c, std::string_view tag, CommandReader& r, bool uid) {
  std::vector<uint32_t> chosen_uids;  // UID EXPUNGE: only these
  if (uid) {
    std::string_view set_text;
    if (!r.sp() || !r.sequence_set_text(&set_text))
      return respond(c, tag, "BAD Expected: UID EXPUNGE uid-set");
    std::vector<uint32_t> positions;
    if (!select_messages(c, tag, set_text, true, &positions)) return;
    chosen_uids.reserve(positions.size());
    for (uint32_t p : positions) chosen_uids.push_back(uids_[p]);
  }
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  if (read_only_) return respond(c, tag, "NO [READ-ONLY] The mailbox is read-only");
  MailboxIndex* idx = selected_index();
  if (!idx) return respond(c, tag, "NO [NONEXISTENT] The mailbox is gone");
  // Other sessions' expunges first, so that the positions below are the client's.
  report_updates(c, true);
  std::vector<uint32_t> gone;  // positions
  for (uint32_t p = 0; p < uids_.size(); p++) {
    uint32_t u = uids_[p];
    if (uid && !std::binary_search(chosen_uids.begin(), chosen_uids.end(), u)) continue;
    int64_t i = idx->find(u);
    if (i < 0 || !(idx->records()[static_cast<size_t>(i)].flags & kFlagDeleted)) continue;
    Status s = open_->mail->expunge(selected_, u);
    if (!s.is_ok()) {
      // What was expunged so far is reported and made durable with the failure.
      std::reverse(gone.begin(), gone.end());
      report_expunges(c, gone);
      if (!gone.empty()) core(c).changed(open_, selected_);
      return respond(c, tag, storage_failure(s, "EXPUNGE failed"));
    }
    own_modseqs_.insert(idx->highest_modseq());
    gone.push_back(p);
  }
  std::reverse(gone.begin(), gone.end());
  report_expunges(c, gone);
  if (gone.empty()) return respond_ok(c, tag, "EXPUNGE completed");
  core(c).changed(open_, selected_);
  respond_durable(c, tag, "OK EXPUNGE completed");
}

// ---- SEARCH ---------------------------------------------------------------------------------

bool ImapSession::search_ready(Connection& c, std::string_view tag, SearchParse parsed,
                               const std::string& error, const SearchCommand& cmd,
                               MailboxIndex** idx) {
  switch (parsed) {
    case SearchParse::ok: break;
    case SearchParse::bad_charset:
      respond(c, tag, "NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
      return false;
    case SearchParse::bad: respond(c, tag, "BAD " + error); return false;
  }
  *idx = selected_index();
  if (!*idx) {
    respond(c, tag, "NO [NONEXISTENT] The mailbox is gone");
    return false;
  }
  if (search_max_sequence_number(cmd) > uids_.size()) {
    respond(c, tag, "BAD Invalid message sequence number");
    return false;
  }
  if (cmd.uses_modseq) condstore_ = true;
  return true;
}

void ImapSession::cmd_search(Connection& c, std::string_view tag, CommandReader& r, bool uid) {
  if (!r.sp()) return respond(c, tag, "BAD Expected search criteria");
  auto run = std::make_unique<SearchRun>();
  std::string error;
  const SearchParse parsed = parse_search(r, &run->cmd, &error);
  MailboxIndex* idx = nullptr;
  if (!search_ready(c, tag, parsed, error, run->cmd, &idx)) return;
  run->box.messages = static_cast<uint32_t>(uids_.size());
  run->box.uid_max = uids_.empty() ? 0 : uids_.back();
  run->box.saved_uids = &saved_uids_;
  run->index.apply(run->cmd, *open_->mail, selected_, open_->name);
  run->tag = std::string(tag);
  run->uid = uid;
  search_run_ = std::move(run);
  c.input_paused = true;  // until the last slice has answered
  continue_search(c);
}

void ImapSession::on_resume(Connection& c) {
  if (search_run_) continue_search(c);
}

namespace {
constexpr int64_t kSearchSliceNs = 1'000'000;  // 1 ms of evaluation, then the others' turn
int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

void ImapSession::continue_search(Connection& c) {
  SearchRun& run = *search_run_;
  auto stop = [&](const std::string& text) {
    std::string tag = std::move(run.tag);
    search_run_.reset();
    c.input_paused = false;
    respond(c, tag, text);
  };
  // Looked up again every slice: another session may have deleted the mailbox meanwhile.
  MailboxIndex* idx = selected_index();
  if (!idx) return stop("NO [NONEXISTENT] The mailbox is gone");
  run.box.keywords = &idx->keywords();
  MimeInfo& mime = core(c).mime;
  UserMail& mail = *open_->mail;
  const int64_t until = monotonic_ns() + kSearchSliceNs;
  uint32_t evaluated = 0;
  // Both the view and the records are in UID order: one walk instead of a lookup per message.
  const std::vector<MessageRecord>& records = idx->records();
  size_t r = 0;
  if (run.next < uids_.size()) {
    r = static_cast<size_t>(
        std::lower_bound(records.begin(), records.end(), uids_[run.next],
                         [](const MessageRecord& m, uint32_t uid) { return m.uid < uid; }) -
        records.begin());
  }
  for (; run.next < uids_.size(); run.next++) {
    const uint32_t p = run.next;
    if (!run.index.may_match(uids_[p])) continue;
    while (r < records.size() && records[r].uid < uids_[p]) r++;
    if (r == records.size() || records[r].uid != uids_[p]) continue;  // expunged meanwhile
    if (++evaluated % 16 == 0 && monotonic_ns() >= until) {
      c.reactor->resume_soon(c);  // this message first, next turn
      return;
    }
    const MessageRecord& rec = records[r];
    SearchMessage m;
    m.seq = p + 1;
    m.rec = &rec;
    // One pointer captured, so neither std::function allocates (a flag search never calls them).
    struct Access {
      UserMail& mail;
      const MessageRecord& rec;
      MimeInfo& mime;
      Status& status;
    } access{mail, rec, mime, run.read_status};
    m.bytes = [a = &access](std::string_view* out) {
      Status s = a->mail.read(a->rec, false, out);
      if (!s.is_ok()) a->status = s;
      return s.is_ok();
    };
    m.mime = [a = &access](const MimeInfo** out) {
      Status s = a->mail.read_mime(a->rec, &a->mime);
      if (!s.is_ok()) a->status = s;
      *out = &a->mime;
      return s.is_ok();
    };
    bool matched = false;
    if (!search_matches(run.cmd, run.box, m, &matched))
      return stop(storage_failure(run.read_status, "SEARCH failed"));
    if (!matched) continue;
    run.hits.push_back(run.uid ? rec.uid : p + 1);
    run.hit_uids.push_back(rec.uid);
    run.max_modseq = std::max(run.max_modseq, rec.modseq);
  }
  std::unique_ptr<SearchRun> done = std::move(search_run_);
  c.input_paused = false;
  finish_search(c, *done);
}

void ImapSession::finish_search(Connection& c, SearchRun& run) {
  const SearchCommand& cmd = run.cmd;
  const std::vector<uint32_t>& hits = run.hits;
  const std::vector<uint32_t>& hit_uids = run.hit_uids;
  const uint64_t max_modseq = run.max_modseq;
  const std::string_view tag = run.tag;
  const bool uid = run.uid;
  std::string out;
  const bool esearch = cmd.esearch || rev2_;
  uint8_t returns = cmd.returns;
  if (cmd.esearch && returns == 0) returns = kReturnAll;
  if (!cmd.esearch) returns = kReturnAll;
  if (returns & kReturnSave) {
    if ((returns & (kReturnMin | kReturnMax)) && !(returns & (kReturnAll | kReturnCount))) {
      saved_uids_.clear();
      if (!hit_uids.empty()) {
        if (returns & kReturnMin) saved_uids_.push_back(hit_uids.front());
        if ((returns & kReturnMax) && hit_uids.back() != hit_uids.front())
          saved_uids_.push_back(hit_uids.back());
      }
    } else {
      saved_uids_ = hit_uids;
    }
  }
  if (esearch) {
    if (returns != kReturnSave) {
      out.append("* ESEARCH (TAG \"").append(tag).append("\")");
      if (uid) out.append(" UID");
      if (!hits.empty()) {
        if (returns & kReturnMin) out.append(" MIN ").append(std::to_string(hits.front()));
        if (returns & kReturnMax) out.append(" MAX ").append(std::to_string(hits.back()));
        if (returns & kReturnAll) {
          out.append(" ALL ");
          append_number_set(hits, &out);
        }
      }
      if (returns & kReturnCount) out.append(" COUNT ").append(std::to_string(hits.size()));
      if (cmd.uses_modseq && !hits.empty())
        out.append(" MODSEQ ").append(std::to_string(max_modseq));
      out.append("\r\n");
    }
  } else {
    out.append("* SEARCH");
    for (uint32_t h : hits) out.append(" ").append(std::to_string(h));
    if (cmd.uses_modseq && !hits.empty())
      out.append(" (MODSEQ ").append(std::to_string(max_modseq)).append(")");
    out.append("\r\n");
  }
  c.write(out);
  respond_ok(c, tag, "SEARCH completed", uid);
}

}  // namespace ringmail
