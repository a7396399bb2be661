// IndexNarrowing (protocol/imap_search.h): apart from the rest of SEARCH, which needs no store.
#include "core/log.h"
#include "protocol/imap_search.h"
#include "storage/fts.h"
#include "storage/user_mail.h"

namespace ringmail {

void IndexNarrowing::apply(const SearchCommand& cmd, UserMail& mail, uint32_t mailbox_id,
                           std::string_view user) {
  FtsIndex* fts = nullptr;
  if (!search_needs_content(cmd) || !mail.fts(mailbox_id, &fts).is_ok() || !fts) return;
  bool done = false;
  Status s = mail.fts_catch_up(mailbox_id, kStepBytes, &done);
  if (!s.is_ok()) RM_LOG(warn, "fts_failed").kv("user", user).kv("error", s.message());
  narrowed_ = search_index_candidates(
      cmd,
      [fts](std::string_view needle, std::vector<uint32_t>* out) {
        return fts->candidates(needle, out);
      },
      &candidates_);
  covered_ = fts->covered_uid();
}

bool IndexNarrowing::may_match(uint32_t uid) {
  if (!narrowed_ || uid > covered_) return true;
  while (next_ < candidates_.size() && candidates_[next_] < uid) next_++;
  return next_ < candidates_.size() && candidates_[next_] == uid;
}

}  // namespace ringmail
