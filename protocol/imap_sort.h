// IMAP SORT and THREAD (RFC 5256), with the DISPLAYFROM and DISPLAYTO criteria of RFC 5957:
// the commands' arguments, each message's sort keys, the order and the threads. No session state:
// the session (protocol/session_sort.cc) picks the messages with SEARCH and feeds them here.
//
// Keys, as RFC 5256 section 2 and RFC 5957 section 3 define them:
//  - SUBJECT: the base subject (section 2.1) of the decoded Subject: field.
//  - FROM, TO, CC: the addr-mailbox of the first address of the field.
//  - DISPLAYFROM, DISPLAYTO: the decoded addr-name of the first address; if that is NIL or
//    empty, addr-mailbox@addr-host; if the host is NIL (a group's start), the addr-mailbox.
//  - DATE: the Date: field converted to UTC; the internal date when there is none that parses.
//  - ARRIVAL: the internal date. SIZE: the message's octets.
// "The first address" is the first address structure of the field, as IMAP ENVELOPE shows it:
// for a group that is its start marker, whose addr-mailbox is the group's name. A missing field
// or address is the empty string, which sorts first. Text keys compare as octets of their case
// fold (storage/search_text.h fold_append: simple folding, no normalization), which stands in for
// i;unicode-casemap. Equal keys fall back to the sequence number, ascending (REVERSE only turns
// its own key).
//
// THREAD=ORDEREDSUBJECT puts the messages with an empty base subject in one thread, as it does
// for any other subject; THREAD=REFERENCES never merges threads by an empty subject (section 3,
// step 5).
//
// Limits, which only hostile mail reaches:
//  - A text key keeps its first kSortKeyBytesMax octets (cut at a character boundary): longer
//    keys that agree on those octets sort as equal, and THREAD takes them for one subject.
//  - THREAD=REFERENCES reads the last kThreadReferencesMax Message IDs of a References field;
//    IDs longer than kMessageIdBytesMax octets are not valid. The table of IDs grows by at most
//    kThreadIdBytesPerMessage (octets plus kThreadIdCostBytes per ID) for each message, unused
//    budget carrying over; a message whose new IDs cost more keeps its newest references and
//    loses the older ones, as if its References had been truncated. The search for loops that
//    a parent link needs walks at most kThreadWalkStepsMax steps per message; past that a link
//    is refused as if it made a loop. Nothing recurses: thread depth is bounded only by the
//    messages.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/command_parser.h"
#include "protocol/imap_search.h"
#include "storage/mailbox_index.h"
#include "storage/mime_parser.h"
#include "storage/search_text.h"

namespace ringmail {

enum class SortKey : uint8_t {
  arrival,
  cc,
  date,
  from,
  size,
  subject,
  to,
  display_from,
  display_to,
};

struct SortCriterion {
  SortKey key = SortKey::arrival;
  bool reverse = false;
};

enum class ThreadAlgorithm : uint8_t { ordered_subject, references };

constexpr size_t kSortCriteriaMax = 32;  // criteria in one SORT; more is BAD
constexpr size_t kSortKeyBytesMax = 1024;
constexpr size_t kThreadReferencesMax = 1000;
constexpr size_t kMessageIdBytesMax = 998;  // RFC 5322's line length
constexpr size_t kThreadIdBytesPerMessage = 8192;
constexpr size_t kThreadIdCostBytes = 64;  // what an ID costs the budget besides its octets
constexpr uint32_t kThreadWalkStepsMax = 100000;

struct SortCommand {
  std::vector<SortCriterion> criteria;
  SearchCommand search;
};

struct ThreadCommand {
  ThreadAlgorithm algorithm = ThreadAlgorithm::ordered_subject;
  SearchCommand search;
};

// Parse what follows "SORT " (or "UID SORT "):
//   "(" [REVERSE SP] key *(SP [REVERSE SP] key) ")" SP charset SP search-key *(SP search-key)
// and what follows "THREAD ":  algorithm SP charset SP search-key *(SP search-key)
// each with the final CRLF. Names are case-insensitive. The charset (an astring) must be UTF-8 or
// US-ASCII, else the result is bad_charset (the caller answers NO [BADCHARSET (UTF-8 US-ASCII)]).
// On failure *error is a short text for the BAD or NO.
SearchParse parse_sort(CommandReader& r, SortCommand* out, std::string* error);
SearchParse parse_thread(CommandReader& r, ThreadCommand* out, std::string* error);

// The text keys of a message, in the order SortMessage::text holds them.
enum SortText : uint8_t {
  kTextSubject,
  kTextFrom,
  kTextTo,
  kTextCc,
  kTextDisplayFrom,
  kTextDisplayTo,
  kTextCount,
};

// Bits (1 << SortText) of the text keys that `criteria` compare.
uint32_t sort_texts_needed(const std::vector<SortCriterion>& criteria);
// Both threading algorithms read the subject.
constexpr uint32_t kThreadTextsNeeded = 1u << kTextSubject;

// One message as SORT and THREAD see it.
struct SortMessage {
  uint32_t seq = 0;
  uint32_t uid = 0;
  uint32_t size = 0;
  bool reply = false;   // the subject marks a reply or forward (RFC 5256 section 2.1)
  int64_t arrival = 0;  // the internal date, Unix seconds
  int64_t sent = 0;     // the Date: field in UTC, else the internal date
  // The text keys one after the other, case-folded; a key not read is empty.
  std::string text;
  std::array<uint32_t, kTextCount> text_end = {};

  std::string_view key(SortText k) const {
    uint32_t begin = k == 0 ? 0 : text_end[k - 1];
    return std::string_view(text).substr(begin, text_end[k] - begin);
  }
};

// Reads sort keys, with a decoder reused from message to message. One thread.
class SortKeyReader {
 public:
  // Replaces *out with the keys of the message: `texts` (bits of SortText) says which text keys
  // to read, and `reply` is set only when the subject is read. The envelope is mime.envelopes[0]
  // (none: every text key empty, the sent date the internal date).
  void read(const MessageRecord& rec, uint32_t seq, const MimeInfo& mime, uint32_t texts,
            SortMessage* out);

 private:
  void append_address(const MimeInfo& mime, MimeList list, bool display, std::string* out);

  TextDecoder decoder_;
  std::string decoded_;
  std::string base_;
};

// RFC 5256 section 2.1, steps 1 to 6, on a subject already decoded to UTF-8 (the rest of step 1:
// tabs and line breaks become spaces, runs of spaces one space). Replaces *out with the base
// subject, not case-folded. Returns whether the extraction removed a subj-refwd, a "(fwd)"
// trailer or a subj-fwd-hdr and subj-fwd-trl: whether the message is a reply or forward.
// Time and memory are linear in the subject's length.
// REQUIRES: `subject` does not view *out.
bool base_subject(std::string_view subject, std::string* out);

// An RFC 5322 date-time (obsolete forms included: no day of week, two- or three-digit years,
// seconds left out, comments, the named zones of RFC 822, a zone left out meaning UTC) into Unix
// seconds in UTC. False when it does not parse or names no valid day or time.
bool parse_sent_date(std::string_view field, int64_t* utc_seconds);

// Appends to *out the valid Message IDs of a field (References, In-Reply-To, Message-ID) in the
// order written, at most `ids_max` (the last ones): the text between "<" and ">" with white
// space removed, when it holds an "@" with text on both sides and is at most kMessageIdBytesMax
// octets. Comments and quoted strings between IDs are skipped.
void parse_message_ids(std::string_view field, size_t ids_max, std::vector<std::string>* out);

// SORT: *order gets the indexes of `messages`, sorted.
void sort_messages(const std::vector<SortCriterion>& criteria,
                   const std::vector<SortMessage>& messages, std::vector<uint32_t>* order);

// THREAD=ORDEREDSUBJECT (RFC 5256 section 3): appends the thread lists ("(1 2)(3 (4)(5))", empty
// when there are no messages), with UIDs when `uid`, else sequence numbers.
void thread_ordered_subject(const std::vector<SortMessage>& messages, bool uid, std::string* out);

// THREAD=REFERENCES (RFC 5256 section 3). Step 1 runs as messages are added, so their References
// need not all be kept; finish() runs steps 2 to 6.
class ReferenceThreads {
 public:
  // Adds the next message, in sequence order (the first Message ID of a kind wins, duplicates
  // get IDs of their own). The fields' raw values; empty when absent.
  void add(std::string_view message_id, std::string_view references, std::string_view in_reply_to);
  // Appends the thread lists as thread_ordered_subject() does. messages[i] is the i-th message
  // added (its subject, reply, sent date and numbers are read).
  // The object is then as new. REQUIRES: messages.size() equals the number of messages added.
  void finish(const std::vector<SortMessage>& messages, bool uid, std::string* out);

 private:
  uint32_t new_node(uint32_t message);
  uint32_t node_for(const std::string& id);
  bool would_loop(uint32_t parent, uint32_t child);
  void link(uint32_t parent, uint32_t child);

  // By node. Invariant: parent_ links form no loop; children_[n] counts the nodes whose parent
  // is n.
  std::vector<uint32_t> parent_;   // UINT32_MAX at the top
  std::vector<uint32_t> message_;  // the message's index; UINT32_MAX for a dummy
  std::vector<uint32_t> children_;
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<std::string> refs_;  // scratch
  uint32_t messages_ = 0;
  uint64_t id_budget_bytes_ = 0;
  uint32_t walk_steps_left_ = 0;
};

}  // namespace ringmail
