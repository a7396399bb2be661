// SORT and THREAD (RFC 5256): the messages SEARCH selects, ordered or threaded by
// protocol/imap_sort.h. Keys come from each message's cached MIME structure; only
// THREAD=REFERENCES reads the message bytes (for the References field, which ENVELOPE lacks).
#include <algorithm>

#include "core/log.h"
#include "protocol/imap_search.h"
#include "protocol/imap_sort.h"
#include "protocol/imap_text.h"
#include "protocol/session.h"
#include "storage/search_text.h"

namespace ringmail {

// What SORT and THREAD read of the selected mailbox.
struct SortScan {
  UserMail* mail = nullptr;
  std::string_view user;  // for the log
  uint32_t mailbox_id = 0;
  const MailboxIndex* idx = nullptr;
  const std::vector<uint32_t>* uids = nullptr;        // sequence number n is (*uids)[n - 1]
  const std::vector<uint32_t>* saved_uids = nullptr;  // SEARCHRES "$"
  MimeInfo* mime = nullptr;                           // the core's scratch
  uint32_t texts = 0;                                 // SortText bits to read
  ReferenceThreads* threads = nullptr;                // THREAD=REFERENCES: gets each match's IDs
};

namespace {

std::string_view field_or_empty(const MimeInfo& mime, MimeString s) {
  return s.is_nil() ? std::string_view() : mime.str(s);
}

// Runs the search over the session's view and appends the keys of each message it matches to
// *out, in sequence order (at most one per message of the mailbox). False on a storage error,
// which *failure then describes.
bool scan_matches(const SortScan& scan, const SearchCommand& search, std::vector<SortMessage>* out,
                  uint64_t* max_modseq, Status* failure) {
  UserMail& mail = *scan.mail;
  const std::vector<uint32_t>& uids = *scan.uids;
  SearchMailbox box;
  box.messages = static_cast<uint32_t>(uids.size());
  box.uid_max = uids.empty() ? 0 : uids.back();
  box.keywords = &scan.idx->keywords();
  box.saved_uids = scan.saved_uids;
  IndexNarrowing index;
  index.apply(search, mail, scan.mailbox_id, scan.user);
  SortKeyReader keys;
  std::vector<HeaderField> fields;
  // What the search may already have read, by UID (0 is no UID): not read twice.
  uint32_t mime_uid = 0;
  uint32_t bytes_uid = 0;
  std::string_view bytes;
  for (uint32_t p = 0; p < uids.size(); p++) {
    if (!index.may_match(uids[p])) continue;
    const int64_t i = scan.idx->find(uids[p]);
    if (i < 0) continue;
    const MessageRecord& rec = scan.idx->records()[static_cast<size_t>(i)];
    SearchMessage m;
    m.seq = p + 1;
    m.rec = &rec;
    m.bytes = [&](std::string_view* b) {
      Status s = mail.read(rec, false, b);
      if (!s.is_ok()) return *failure = s, false;
      bytes = *b;
      bytes_uid = rec.uid;
      return true;
    };
    m.mime = [&](const MimeInfo** info) {
      *info = scan.mime;
      mime_uid = 0;
      Status s = mail.read_mime(rec, scan.mime);
      if (!s.is_ok()) return *failure = s, false;
      mime_uid = rec.uid;
      return true;
    };
    bool matched = false;
    if (!search_matches(search, box, m, &matched)) return false;
    if (!matched) continue;
    const MimeInfo* info = scan.mime;
    if (mime_uid != rec.uid && !m.mime(&info)) return false;
    keys.read(rec, p + 1, *info, scan.texts, &out->emplace_back());
    *max_modseq = std::max(*max_modseq, rec.modseq);
    if (scan.threads == nullptr) continue;
    std::string_view b;
    if (bytes_uid != rec.uid && !m.bytes(&b)) return false;
    split_header(bytes, &fields);
    std::string_view references;
    for (const HeaderField& f : fields) {
      if (iequals(f.name, "references")) {
        references = f.value;
        break;
      }
    }
    if (info->envelopes.empty()) {
      scan.threads->add({}, references, {});
    } else {
      const MimeEnvelope& env = info->envelopes[0];
      scan.threads->add(field_or_empty(*info, env.message_id), references,
                        field_or_empty(*info, env.in_reply_to));
    }
  }
  return true;
}

}  // namespace

void ImapSession::cmd_sort(Connection& c, std::string_view tag, CommandReader& r, bool uid) {
  if (!r.sp()) return respond(c, tag, "BAD Expected sort criteria");
  SortCommand cmd;
  std::string error;
  const SearchParse parsed = parse_sort(r, &cmd, &error);
  MailboxIndex* idx = nullptr;
  if (!search_ready(c, tag, parsed, error, cmd.search, &idx)) return;
  std::vector<SortMessage> messages;
  uint64_t max_modseq = 0;
  Status failure;
  if (!scan_matches(sort_scan(c, idx, sort_texts_needed(cmd.criteria), nullptr), cmd.search,
                    &messages, &max_modseq, &failure))
    return respond(c, tag, storage_failure(failure, "SORT failed"));
  std::vector<uint32_t> order;
  sort_messages(cmd.criteria, messages, &order);
  std::string out = "* SORT";
  for (uint32_t k : order)
    out.append(" ").append(std::to_string(uid ? messages[k].uid : messages[k].seq));
  // RFC 7162 section 3.1.5: with a MODSEQ search key, the highest mod-sequence of the matches.
  if (cmd.search.uses_modseq && !messages.empty())
    out.append(" (MODSEQ ").append(std::to_string(max_modseq)).append(")");
  out.append("\r\n");
  c.write(out);
  respond_ok(c, tag, "SORT completed", uid);
}

void ImapSession::cmd_thread(Connection& c, std::string_view tag, CommandReader& r, bool uid) {
  if (!r.sp()) return respond(c, tag, "BAD Expected a threading algorithm");
  ThreadCommand cmd;
  std::string error;
  const SearchParse parsed = parse_thread(r, &cmd, &error);
  MailboxIndex* idx = nullptr;
  if (!search_ready(c, tag, parsed, error, cmd.search, &idx)) return;
  ReferenceThreads threads;
  const bool references = cmd.algorithm == ThreadAlgorithm::references;
  std::vector<SortMessage> messages;
  uint64_t max_modseq = 0;
  Status failure;
  if (!scan_matches(sort_scan(c, idx, kThreadTextsNeeded, references ? &threads : nullptr),
                    cmd.search, &messages, &max_modseq, &failure))
    return respond(c, tag, storage_failure(failure, "THREAD failed"));
  std::string list;
  if (references) {
    threads.finish(messages, uid, &list);
  } else {
    thread_ordered_subject(messages, uid, &list);
  }
  std::string out = "* THREAD";
  if (!list.empty()) out.append(" ").append(list);
  out.append("\r\n");
  c.write(out);
  respond_ok(c, tag, "THREAD completed", uid);
}

SortScan ImapSession::sort_scan(Connection& c, const MailboxIndex* idx, uint32_t texts,
                                ReferenceThreads* threads) {
  SortScan scan;
  scan.mail = open_->mail.get();
  scan.user = open_->name;
  scan.mailbox_id = selected_;
  scan.idx = idx;
  scan.uids = &uids_;
  scan.saved_uids = &saved_uids_;
  scan.mime = &core(c).mime;
  scan.texts = texts;
  scan.threads = threads;
  return scan;
}

}  // namespace ringmail
