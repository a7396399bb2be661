// Mailbox commands: LIST (with LIST-EXTENDED, LIST-STATUS, SPECIAL-USE), LSUB, CREATE, DELETE,
// RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS, SELECT, EXAMINE, CLOSE, UNSELECT.
#include <algorithm>
#include <set>

#include "protocol/imap_text.h"
#include "protocol/mutf7.h"
#include "protocol/sequence_set.h"
#include "protocol/session.h"

namespace ringmail {
namespace {

constexpr size_t kPatternsMax = 100;

bool read_paren_atoms(CommandReader& r, std::vector<std::string_view>* out, size_t max) {
  if (!r.ch('(')) return false;
  if (r.ch(')')) return true;
  while (true) {
    std::string_view a;
    if (!r.atom(&a) || out->size() >= max) return false;
    out->push_back(a);
    if (r.ch(')')) return true;
    if (!r.sp()) return false;
  }
}

// "a/b" and "a/b/c" are below "a"; "ab" is not.
bool is_below(std::string_view name, std::string_view parent) {
  return name.size() > parent.size() && name.substr(0, parent.size()) == parent &&
         name[parent.size()] == UserMail::kDelimiter;
}

std::string parent_of(std::string_view name) {
  size_t slash = name.rfind(UserMail::kDelimiter);
  return slash == std::string_view::npos ? std::string() : std::string(name.substr(0, slash));
}

}  // namespace

bool ImapSession::read_mailbox_name(CommandReader& r, std::string* name, std::string* error) const {
  std::string scratch;
  std::string_view raw;
  if (!r.astring(&raw, &scratch)) {
    *error = "BAD Expected a mailbox name";
    return false;
  }
  std::string decoded;
  if (utf8_) {
    if (!valid_utf8(raw)) {
      *error = "BAD Mailbox name is not valid UTF-8";
      return false;
    }
    decoded = std::string(raw);
  } else if (!mutf7_to_utf8(raw, &decoded)) {
    *error = "BAD Mailbox name is not valid modified UTF-7";
    return false;
  }
  while (decoded.size() > 1 && decoded.back() == UserMail::kDelimiter) decoded.pop_back();
  *name = UserMail::canonical_name(decoded);
  return true;
}

void ImapSession::append_mailbox_name(std::string_view name, std::string* out) const {
  std::string wire;
  if (utf8_ || !utf8_to_mutf7(name, &wire)) wire = std::string(name);
  bool atom = !wire.empty() && !iequals(wire, "NIL");
  for (unsigned char ch : wire) {
    if (!is_atom_char(ch) || ch == '%' || ch == '*') atom = false;
  }
  if (atom) {
    out->append(wire);
    return;
  }
  bool quotable = true;
  for (unsigned char ch : wire)
    if (ch < 0x20 || (ch >= 0x80 && !utf8_)) quotable = false;
  if (!quotable) {
    out->append("{").append(std::to_string(wire.size())).append("}\r\n").append(wire);
    return;
  }
  out->push_back('"');
  for (char ch : wire) {
    if (ch == '"' || ch == '\\') out->push_back('\\');
    out->push_back(ch);
  }
  out->push_back('"');
}

void ImapSession::cmd_list(Connection& c, std::string_view tag, CommandReader& r, bool lsub) {
  std::string& buf = core(c).out;  // per-core scratch
  // LIST [SP "(" selection options ")"] SP reference SP (pattern / "(" patterns ")")
  //      [SP RETURN SP "(" return options ")"]          (RFC 5258, RFC 5819, RFC 6154)
  bool sel_subscribed = lsub, sel_special = false, recursive = false;
  bool ret_subscribed = false, ret_children = true, ret_special = true;
  std::vector<std::string> status_items;
  bool extended = false;
  if (!r.sp()) return respond(c, tag, "BAD Expected: LIST reference mailbox");
  if (!lsub && r.peek('(')) {
    std::vector<std::string_view> opts;
    if (!read_paren_atoms(r, &opts, 10) || !r.sp())
      return respond(c, tag, "BAD Malformed LIST selection options");
    extended = true;
    for (std::string_view o : opts) {
      if (iequals(o, "SUBSCRIBED")) {
        sel_subscribed = true;
        ret_subscribed = true;
      } else if (iequals(o, "SPECIAL-USE")) {
        sel_special = true;
      } else if (iequals(o, "RECURSIVEMATCH")) {
        recursive = true;
      } else if (!iequals(o, "REMOTE")) {
        return respond(c, tag, "BAD Unknown LIST selection option");
      }
    }
    if (recursive && !sel_subscribed && !sel_special)
      return respond(c, tag, "BAD RECURSIVEMATCH needs another selection option");
  }
  std::string ref_scratch;
  std::string_view ref_raw;
  if (!r.astring(&ref_raw, &ref_scratch) || !r.sp())
    return respond(c, tag, "BAD Expected: LIST reference mailbox");
  std::vector<std::string> patterns;
  auto read_pattern = [&]() {
    std::string scratch;
    std::string_view p;
    if (!r.list_mailbox(&p, &scratch)) return false;
    std::string decoded;
    if (utf8_) {
      if (!valid_utf8(p)) return false;
      decoded = std::string(p);
    } else if (!mutf7_to_utf8(p, &decoded)) {
      return false;
    }
    patterns.push_back(std::move(decoded));
    return true;
  };
  if (!lsub && r.ch('(')) {
    extended = true;
    do {
      if (patterns.size() >= kPatternsMax || !read_pattern())
        return respond(c, tag, "BAD Malformed LIST pattern list");
    } while (r.sp());
    if (!r.ch(')')) return respond(c, tag, "BAD Malformed LIST pattern list");
  } else if (!read_pattern()) {
    return respond(c, tag, "BAD Expected: LIST reference mailbox");
  }
  if (!lsub && r.sp()) {
    std::string_view kw;
    if (!r.atom(&kw) || !iequals(kw, "RETURN") || !r.sp() || !r.ch('('))
      return respond(c, tag, "BAD Expected: RETURN (options)");
    extended = true;
    bool first = true;
    while (!r.ch(')')) {
      if (!first && !r.sp()) return respond(c, tag, "BAD Malformed RETURN options");
      first = false;
      std::string_view o;
      if (!r.atom(&o)) return respond(c, tag, "BAD Malformed RETURN options");
      if (iequals(o, "SUBSCRIBED")) {
        ret_subscribed = true;
      } else if (iequals(o, "CHILDREN")) {
        ret_children = true;
      } else if (iequals(o, "SPECIAL-USE")) {
        ret_special = true;
      } else if (iequals(o, "STATUS")) {
        std::vector<std::string_view> items;
        if (!r.sp() || !read_paren_atoms(r, &items, 10))
          return respond(c, tag, "BAD Expected: STATUS (items)");
        static const char* const kStatusItems[] = {"MESSAGES", "UIDNEXT",       "UIDVALIDITY",
                                                   "UNSEEN",   "DELETED",       "SIZE",
                                                   "RECENT",   "HIGHESTMODSEQ", "APPENDLIMIT"};
        for (std::string_view i : items) {
          bool known = false;
          for (const char* k : kStatusItems) known |= iequals(i, k);
          if (!known) return respond(c, tag, "BAD Unknown STATUS item");
          status_items.emplace_back(i);
        }
      } else {
        return respond(c, tag, "BAD Unknown RETURN option");
      }
    }
  }
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  std::string ref(ref_raw);
  if (!utf8_) {
    std::string d;
    if (!mutf7_to_utf8(ref_raw, &d)) return respond(c, tag, "BAD Malformed reference");
    ref = d;
  }

  const char* verb = lsub ? "LSUB" : "LIST";
  buf.clear();
  if (patterns.size() == 1 && patterns[0].empty()) {
    // The hierarchy delimiter and root (RFC 9051 section 6.3.9).
    buf.append("* ").append(verb).append(" (\\Noselect) \"/\" \"\"\r\n");
    c.write(buf);
    return respond_ok(c, tag, std::string(verb) + " completed");
  }
  UserMail& mail = *open_->mail;
  // Every mailbox and every implied parent of one (shown \NonExistent / \Noselect).
  std::set<std::string> existing, names;
  for (const UserMail::Mailbox& m : mail.mailboxes()) {
    existing.insert(m.name);
    names.insert(m.name);
    for (std::string p = parent_of(m.name); !p.empty(); p = parent_of(p)) names.insert(p);
  }
  auto has_children = [&](const std::string& n) {
    auto lo = names.lower_bound(n + "/");
    return lo != names.end() && is_below(*lo, n);
  };
  std::vector<std::string> full_patterns;
  for (const std::string& p : patterns) {
    std::string full = ref + p;
    full = UserMail::canonical_name(full);
    full_patterns.push_back(std::move(full));
  }
  auto matches = [&](const std::string& n) {
    for (const std::string& p : full_patterns)
      if (wildcard_match(p, n)) return true;
    return false;
  };
  // INBOX and its children first, then the rest in name order.
  std::vector<std::string> ordered(names.begin(), names.end());
  std::stable_partition(ordered.begin(), ordered.end(), [](const std::string& n) {
    return n == "INBOX" || n.rfind("INBOX/", 0) == 0;
  });
  for (const std::string& n : ordered) {
    const UserMail::Mailbox* m = mail.find(n);
    bool exists = m != nullptr;
    bool subscribed = m && m->subscribed;
    bool special = m && !m->special_use.empty();
    bool child_match = false;  // RECURSIVEMATCH: a child satisfies the selection
    if (!matches(n)) continue;
    if (lsub && !subscribed) {
      // RFC 3501 section 6.3.9: a parent that is not subscribed, of a subscribed mailbox the
      // pattern does not reach ("%"), is shown \Noselect.
      bool shown = false;
      for (const UserMail::Mailbox& k : mail.mailboxes()) {
        if (k.subscribed && is_below(k.name, n) && !matches(k.name)) {
          shown = true;
          break;
        }
      }
      if (!shown) continue;
      buf.append("* LSUB (\\Noselect) \"/\" ");
      append_mailbox_name(n, &buf);
      buf.append("\r\n");
      continue;
    }
    bool selected = true;
    if (sel_subscribed && !subscribed) selected = false;
    if (sel_special && !special) selected = false;
    if (!selected && recursive) {
      for (const UserMail::Mailbox& k : mail.mailboxes()) {
        if (is_below(k.name, n) && (!sel_subscribed || k.subscribed) &&
            (!sel_special || !k.special_use.empty())) {
          child_match = true;
          break;
        }
      }
    }
    if (!selected && !child_match) continue;
    std::string attrs;
    auto add = [&](std::string_view a) {
      if (!attrs.empty()) attrs.push_back(' ');
      attrs.append(a);
    };
    if (!exists) add(!lsub && (rev2_ || extended) ? "\\NonExistent" : "\\Noselect");
    if (ret_children && !lsub) add(has_children(n) ? "\\HasChildren" : "\\HasNoChildren");
    if (ret_subscribed && subscribed) add("\\Subscribed");
    if (ret_special && special && !lsub) add(m->special_use);
    buf.append("* ").append(verb).append(" (").append(attrs).append(") \"/\" ");
    append_mailbox_name(n, &buf);
    if (child_match) buf.append(" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
    buf.append("\r\n");
    if (!status_items.empty() && exists) {
      std::string st;
      if (append_status(*m, status_items, &st)) buf.append(st);
    }
  }
  c.write(buf);
  respond_ok(c, tag, std::string(verb) + " completed");
}

bool ImapSession::append_status(const UserMail::Mailbox& m, const std::vector<std::string>& items,
                                std::string* out) {
  MailboxIndex* idx;
  if (!open_->mail->index(m.id, &idx).is_ok()) return false;
  out->append("* STATUS ");
  append_mailbox_name(m.name, out);
  out->append(" (");
  bool first = true;
  for (const std::string& item : items) {
    if (!first) out->push_back(' ');
    first = false;
    uint64_t value = 0;
    const auto& recs = idx->records();
    std::string name = item;
    for (char& ch : name) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
    if (name == "MESSAGES") {
      value = recs.size();
    } else if (name == "UIDNEXT") {
      value = idx->uidnext();
    } else if (name == "UIDVALIDITY") {
      value = idx->uidvalidity();
    } else if (name == "UNSEEN") {
      for (const MessageRecord& rec : recs) value += (rec.flags & kFlagSeen) == 0;
    } else if (name == "DELETED") {
      for (const MessageRecord& rec : recs) value += (rec.flags & kFlagDeleted) != 0;
    } else if (name == "SIZE") {
      for (const MessageRecord& rec : recs) value += rec.size;
    } else if (name == "RECENT") {
      value = 0;
    } else if (name == "HIGHESTMODSEQ") {
      value = idx->highest_modseq();
    } else if (name == "APPENDLIMIT") {
      value = appendlimit_;
    } else {
      return false;
    }
    out->append(name).push_back(' ');
    out->append(std::to_string(value));
  }
  out->append(")\r\n");
  return true;
}

void ImapSession::cmd_status(Connection& c, std::string_view tag, CommandReader& r) {
  std::string& buf = core(c).out;  // per-core scratch
  std::string name, error;
  if (!r.sp() || !read_mailbox_name(r, &name, &error))
    return respond(c, tag, error.empty() ? "BAD Expected: STATUS mailbox (items)" : error);
  std::vector<std::string_view> raw;
  if (!r.sp() || !read_paren_atoms(r, &raw, 20) || raw.empty() || !r.at_end())
    return respond(c, tag, "BAD Expected: STATUS mailbox (items)");
  std::vector<std::string> items(raw.begin(), raw.end());
  const UserMail::Mailbox* m = open_->mail->find(name);
  if (!m) return respond(c, tag, "NO [NONEXISTENT] No such mailbox");
  buf.clear();
  if (!append_status(*m, items, &buf)) return respond(c, tag, "BAD Unknown STATUS item");
  c.write(buf);
  respond_ok(c, tag, "STATUS completed");
}

void ImapSession::cmd_create(Connection& c, std::string_view tag, CommandReader& r) {
  std::string name, error;
  if (!r.sp() || !read_mailbox_name(r, &name, &error))
    return respond(c, tag, error.empty() ? "BAD Expected: CREATE mailbox" : error);
  if (r.sp()) {
    // RFC 4466 create parameters (USE for CREATE-SPECIAL-USE): not offered.
    return respond(c, tag, "BAD CREATE parameters are not supported");
  }
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  if (!UserMail::valid_name(name)) return respond(c, tag, "NO [CANNOT] Invalid mailbox name");
  UserMail& mail = *open_->mail;
  if (mail.find(name)) return respond(c, tag, "NO [ALREADYEXISTS] Mailbox already exists");
  // Superior names are created as needed (RFC 9051 section 6.3.4).
  std::vector<std::string> chain;
  for (std::string p = parent_of(name); !p.empty(); p = parent_of(p))
    if (!mail.find(p)) chain.push_back(p);
  chain.insert(chain.begin(), name);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    uint32_t id;
    Status s = mail.create_mailbox(*it, "", &id);
    // Superiors created so far stay (like any CREATE of them would): answered once durable.
    if (!s.is_ok()) return respond_durable(c, tag, storage_failure(s, "CREATE failed"));
  }
  respond_durable(c, tag, "OK CREATE completed");
}

void ImapSession::cmd_delete(Connection& c, std::string_view tag, CommandReader& r) {
  std::string name, error;
  if (!r.sp() || !read_mailbox_name(r, &name, &error) || !r.at_end())
    return respond(c, tag, error.empty() ? "BAD Expected: DELETE mailbox" : error);
  if (name == "INBOX") return respond(c, tag, "NO [CANNOT] INBOX cannot be deleted");
  const UserMail::Mailbox* m = open_->mail->find(name);
  if (!m) return respond(c, tag, "NO [NONEXISTENT] No such mailbox");
  uint32_t id = m->id;
  Status s = open_->mail->delete_mailbox(name);
  if (!s.is_ok()) return respond(c, tag, storage_failure(s, "DELETE failed"));
  if (state_ == State::selected && selected_ == id) {
    deselect();
    state_ = State::authenticated;
  }
  core(c).changed(open_, id);
  respond_durable(c, tag, "OK DELETE completed");
}

void ImapSession::cmd_rename(Connection& c, std::string_view tag, CommandReader& r) {
  std::string from, to, error;
  if (!r.sp() || !read_mailbox_name(r, &from, &error) || !r.sp() ||
      !read_mailbox_name(r, &to, &error) || !r.at_end())
    return respond(c, tag, error.empty() ? "BAD Expected: RENAME from to" : error);
  UserMail& mail = *open_->mail;
  if (!mail.find(from)) return respond(c, tag, "NO [NONEXISTENT] No such mailbox");
  if (mail.find(to)) return respond(c, tag, "NO [ALREADYEXISTS] Target mailbox exists");
  if (!UserMail::valid_name(to)) return respond(c, tag, "NO [CANNOT] Invalid mailbox name");
  if (is_below(to, from)) return respond(c, tag, "NO [CANNOT] Cannot move a mailbox into itself");
  std::vector<std::string> chain;
  for (std::string p = parent_of(to); !p.empty(); p = parent_of(p))
    if (!mail.find(p) && p != from) chain.push_back(p);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    uint32_t id;
    Status s = mail.create_mailbox(*it, "", &id);
    if (!s.is_ok()) return respond_durable(c, tag, storage_failure(s, "RENAME failed"));
  }
  uint32_t inbox_id = mail.find("INBOX")->id;
  Status s = mail.rename_mailbox(from, to);
  if (!s.is_ok()) return respond_durable(c, tag, storage_failure(s, "RENAME failed"));
  if (from == "INBOX") core(c).changed(open_, inbox_id);  // its messages moved out
  respond_durable(c, tag, "OK RENAME completed");
}

void ImapSession::cmd_subscribe(Connection& c, std::string_view tag, CommandReader& r, bool on) {
  std::string name, error;
  if (!r.sp() || !read_mailbox_name(r, &name, &error) || !r.at_end())
    return respond(c, tag, error.empty() ? "BAD Expected a mailbox name" : error);
  if (!open_->mail->find(name)) {
    if (!on) return respond_ok(c, tag, "UNSUBSCRIBE completed");
    return respond(c, tag, "NO [NONEXISTENT] No such mailbox");
  }
  Status s = open_->mail->set_subscribed(name, on);
  if (!s.is_ok()) return respond(c, tag, storage_failure(s, "SUBSCRIBE failed"));
  respond_durable(c, tag, on ? "OK SUBSCRIBE completed" : "OK UNSUBSCRIBE completed");
}

// ---- SELECT ---------------------------------------------------------------------------------

void ImapSession::deselect() {
  selected_ = 0;
  uids_.clear();
  uids_.shrink_to_fit();
  own_modseqs_.clear();
  saved_uids_.clear();
  known_modseq_ = 0;
  changes_pending_ = false;
}

void ImapSession::cmd_select(Connection& c, std::string_view tag, CommandReader& r,
                             bool read_only) {
  std::string& buf = core(c).out;  // per-core scratch
  std::string name, error;
  if (!r.sp() || !read_mailbox_name(r, &name, &error))
    return respond(c, tag, error.empty() ? "BAD Expected: SELECT mailbox" : error);
  bool want_condstore = false;
  bool qresync = false;
  uint32_t q_uidvalidity = 0;
  uint64_t q_modseq = 0;
  SequenceSet q_known;
  bool have_known = false;
  if (r.sp()) {
    // RFC 7162 select parameters: (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids
    // [(seq-match)]])).
    if (!r.ch('(')) return respond(c, tag, "BAD Malformed SELECT parameters");
    std::string_view p;
    while (r.atom(&p)) {
      if (iequals(p, "CONDSTORE")) {
        want_condstore = true;
      } else if (iequals(p, "QRESYNC")) {
        if (!qresync_) return respond(c, tag, "BAD QRESYNC is not enabled");
        uint64_t v = 0;
        if (!r.sp() || !r.ch('(') || !r.number(&v) || v == 0 || !r.sp() ||
            !r.number(&q_modseq, INT64_MAX) || q_modseq == 0)
          return respond(c, tag, "BAD Malformed QRESYNC parameter");
        q_uidvalidity = static_cast<uint32_t>(v);
        if (r.sp() && !r.peek('(')) {
          std::string_view set;
          if (!r.sequence_set_text(&set) || !q_known.parse(set) || q_known.is_saved())
            return respond(c, tag, "BAD Malformed known UIDs");
          have_known = true;
          if (r.sp() && !r.peek('(')) return respond(c, tag, "BAD Malformed QRESYNC parameter");
        }
        if (r.ch('(')) {
          // seq-match-data: accepted and not needed (the full VANISHED set is sent).
          std::string_view a, b;
          if (!r.sequence_set_text(&a) || !r.sp() || !r.sequence_set_text(&b) || !r.ch(')'))
            return respond(c, tag, "BAD Malformed sequence match data");
        }
        if (!r.ch(')')) return respond(c, tag, "BAD Malformed QRESYNC parameter");
        qresync = true;
      } else {
        return respond(c, tag, "BAD Unknown SELECT parameter");
      }
      if (!r.sp()) break;
    }
    if (!r.ch(')')) return respond(c, tag, "BAD Malformed SELECT parameters");
  }
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  bool was_selected = state_ == State::selected;
  if (was_selected) {
    deselect();
    state_ = State::authenticated;
    if (rev2_ || qresync_) c.write("* OK [CLOSED] Previous mailbox closed\r\n");
  }
  const UserMail::Mailbox* m = open_->mail->find(name);
  if (!m) return respond(c, tag, "NO [NONEXISTENT] No such mailbox");
  MailboxIndex* idx;
  Status s = open_->mail->index(m->id, &idx);
  if (!s.is_ok()) return respond(c, tag, "NO [SERVERBUG] Mailbox cannot be opened");
  if (want_condstore) condstore_ = true;
  selected_ = m->id;
  read_only_ = read_only;
  state_ = State::selected;
  uids_.reserve(idx->records().size());
  uint32_t unseen = 0;
  for (const MessageRecord& rec : idx->records()) {
    uids_.push_back(rec.uid);
    if (unseen == 0 && !(rec.flags & kFlagSeen)) unseen = static_cast<uint32_t>(uids_.size());
  }
  known_modseq_ = idx->highest_modseq();

  buf.clear();
  std::string flags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
  for (const std::string& k : idx->keywords()) flags.append(" ").append(k);
  buf.append("* FLAGS (").append(flags).append(")\r\n");
  buf.append("* OK [PERMANENTFLAGS (").append(read_only ? "" : flags);
  // "\*": new keywords may be created, until the mailbox's 64 are taken.
  if (!read_only && idx->keywords().size() < MailboxIndex::kKeywordsMax) buf.append(" \\*");
  buf.append(")] Flags permitted\r\n");
  buf.append("* ").append(std::to_string(uids_.size())).append(" EXISTS\r\n");
  if (!rev2_) {
    buf.append("* 0 RECENT\r\n");
    if (unseen)
      buf.append("* OK [UNSEEN ").append(std::to_string(unseen)).append("] First unseen\r\n");
  }
  buf.append("* OK [UIDVALIDITY ")
      .append(std::to_string(idx->uidvalidity()))
      .append("] UIDs valid\r\n");
  buf.append("* OK [UIDNEXT ")
      .append(std::to_string(idx->uidnext()))
      .append("] Predicted next UID\r\n");
  buf.append("* OK [HIGHESTMODSEQ ")
      .append(std::to_string(idx->highest_modseq()))
      .append("] Highest\r\n");
  if (rev2_) {
    // RFC 9051 section 6.3.2: the LIST response's attributes are those LIST would show.
    bool children = false;
    for (const UserMail::Mailbox& k : open_->mail->mailboxes())
      children |= is_below(k.name, m->name);
    buf.append("* LIST (").append(children ? "\\HasChildren" : "\\HasNoChildren");
    if (!m->special_use.empty()) buf.append(" ").append(m->special_use);
    buf.append(") \"/\" ");
    append_mailbox_name(m->name, &buf);
    buf.append("\r\n");
  }
  if (qresync && q_uidvalidity == idx->uidvalidity()) {
    // No record of expunged UIDs is kept: every UID the client may know (known-uids, or all
    // below UIDNEXT) that is not here is reported vanished. RFC 7162 allows the superset.
    std::vector<SeqRange> known =
        have_known ? q_known.resolve(idx->uidnext() - 1) : std::vector<SeqRange>{};
    if (!have_known && idx->uidnext() > 1) known.push_back({1, idx->uidnext() - 1});
    std::vector<SeqRange> gone;
    const auto& recs = idx->records();
    size_t i = 0;
    for (SeqRange k : known) {
      uint32_t next = k.lo;
      while (i < recs.size() && recs[i].uid < k.lo) i++;
      while (next <= k.hi) {
        if (i < recs.size() && recs[i].uid <= k.hi) {
          if (recs[i].uid > next) gone.push_back({next, recs[i].uid - 1});
          next = recs[i].uid + 1;
          i++;
        } else {
          gone.push_back({next, k.hi});
          break;
        }
      }
    }
    if (!gone.empty()) {
      buf.append("* VANISHED (EARLIER) ");
      append_ranges(gone, &buf);
      buf.append("\r\n");
    }
    for (size_t n = 0; n < recs.size(); n++) {
      if (recs[n].modseq <= q_modseq) continue;
      buf.append("* ").append(std::to_string(n + 1)).append(" FETCH (UID ");
      buf.append(std::to_string(recs[n].uid)).append(" FLAGS ");
      append_flags(recs[n].flags, recs[n].keywords, *idx, &buf);
      buf.append(" MODSEQ (").append(std::to_string(recs[n].modseq)).append("))\r\n");
    }
  }
  c.write(buf);
  respond(c, tag,
          std::string(read_only ? "OK [READ-ONLY] " : "OK [READ-WRITE] ") +
              (read_only ? "EXAMINE completed" : "SELECT completed"));
}

void ImapSession::cmd_close(Connection& c, std::string_view tag, CommandReader& r, bool expunge) {
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  bool changed = false;
  if (expunge && !read_only_) {
    // CLOSE expunges \Deleted messages silently (RFC 9051 section 6.4.1).
    MailboxIndex* idx = selected_index();
    if (idx) {
      std::vector<uint32_t> doomed;
      for (const MessageRecord& rec : idx->records())
        if ((rec.flags & kFlagDeleted) && std::binary_search(uids_.begin(), uids_.end(), rec.uid))
          doomed.push_back(rec.uid);
      for (uint32_t uid : doomed) {
        Status s = open_->mail->expunge(selected_, uid);
        if (!s.is_ok()) return respond(c, tag, storage_failure(s, "CLOSE failed"));
        changed = true;
      }
    }
  }
  uint32_t id = selected_;
  deselect();
  state_ = State::authenticated;
  if (changed) {
    core(c).changed(open_, id);
    return respond_durable(c, tag, expunge ? "OK CLOSE completed" : "OK UNSELECT completed");
  }
  respond(c, tag, expunge ? "OK CLOSE completed" : "OK UNSELECT completed");
}

}  // namespace ringmail
