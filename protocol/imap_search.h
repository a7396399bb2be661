// IMAP SEARCH: the criteria of RFC 9051 / RFC 3501 section 6.4.4, parsed once into a program and
// evaluated message by message. With RFC 4731 ESEARCH return options (MIN MAX ALL COUNT SAVE),
// RFC 5182 SEARCHRES ("$" and SAVE) and the RFC 7162 CONDSTORE MODSEQ key.
//
// String keys match as case-insensitive substrings of the decoded text: header fields unfolded
// and RFC 2047 encoded words decoded; bodies of text/* parts with their Content-Transfer-Encoding
// undone and their charset converted to UTF-8. Both sides are case-folded: ASCII, Latin-1,
// Latin Extended-A, the regular pairs of Latin Extended-B and Latin Extended Additional, Greek,
// Cyrillic and fullwidth Latin letters, one code point to one (simple folding: "ß" stays "ß").
// There is no Unicode normalization (a precomposed "é" does not match "e" + U+0301).
//
// Which text each key reads:
//  - HEADER name s (and FROM TO CC BCC SUBJECT, which are HEADER of that field): the values of
//    every field of that name in the message's own header. An empty s matches any message that
//    has the field.
//  - BODY s: the decoded text/* parts, and the headers of attached messages (message/rfc822
//    bodies are the outer message's body). Other parts (images, application/*) are not read.
//    A text/html part is read as the text it shows (storage/search_text.h): no tags, no
//    script or style, character references decoded.
//  - TEXT s: BODY, the message header (field names included) and the MIME headers of its parts.
//  - SENTBEFORE/SENTON/SENTSINCE: the calendar day written in the Date: field (RFC 5322, obsolete
//    forms included), in the field's own time zone. A message without a Date: field that parses
//    matches none of them (so NOT SENTON d matches it).
//  - BEFORE/ON/SINCE: the internal date's day in UTC shifted by SearchMailbox::tz_offset_minutes.
//  - This server keeps no \Recent: RECENT and NEW match nothing, OLD matches everything.
//  - KEYWORD k matches no message when k is no keyword of the mailbox, UNKEYWORD k then all.
//    Keyword names compare case-insensitively (ASCII).
//  - MODSEQ [entry-name entry-type] n: the message's MODSEQ >= n. The entry is checked for syntax
//    and otherwise ignored: a message has one MODSEQ for all its metadata.
//  - "$" and "UID $": the messages whose UIDs are in SearchMailbox::saved_uids.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/command_parser.h"
#include "storage/mailbox_index.h"
#include "storage/mime_parser.h"

namespace ringmail {

class UserMail;

// One message as SEARCH sees it. The accessors are lazy: bytes() and mime() are only called when
// a key needs them; they return false on a storage error (the caller then answers NO).
// REQUIRES: rec is set. A MIME structure whose size is not that of the bytes is a storage error.
struct SearchMessage {
  uint32_t seq = 0;
  const MessageRecord* rec = nullptr;
  std::function<bool(std::string_view*)> bytes;  // the whole raw RFC 5322 message
  std::function<bool(const MimeInfo**)> mime;    // its MIME structure (storage/mime_parser.h)
};

struct SearchMailbox {
  uint32_t messages = 0;                               // highest sequence number
  uint32_t uid_max = 0;                                // highest UID in the mailbox
  const std::vector<std::string>* keywords = nullptr;  // keyword names by bit
  const std::vector<uint32_t>* saved_uids = nullptr;   // SEARCHRES "$" (sorted UIDs)
  int tz_offset_minutes = 0;                           // for the internal-date keys
};

enum SearchReturn : uint8_t {
  kReturnMin = 1,
  kReturnMax = 2,
  kReturnAll = 4,
  kReturnCount = 8,
  kReturnSave = 16,
};

struct SearchProgram;  // the parsed keys and the evaluation's reusable buffers (imap_search.cc)

struct SearchCommand {
  SearchCommand();
  ~SearchCommand();
  SearchCommand(SearchCommand&&) noexcept;
  SearchCommand& operator=(SearchCommand&&) noexcept;

  bool esearch = false;      // RETURN (...) was given; "RETURN ()" means ALL
  uint8_t returns = 0;       // SearchReturn bits. Only kReturnSave: no ESEARCH reply (RFC 5182)
  bool uses_modseq = false;  // a MODSEQ key appears: the reply carries (MODSEQ n) (RFC 7162)
  std::unique_ptr<SearchProgram> program;
};

enum class SearchParse { ok, bad, bad_charset };

// Limits on one command; past them the command is BAD.
constexpr uint32_t kSearchDepthMax = 100;  // nesting of parentheses, NOT and OR
constexpr uint32_t kSearchKeysMax = 1000;  // search keys in all, nested ones included

// Parses what follows "SEARCH " (or "UID SEARCH "):
//   [RETURN (opts) SP] [CHARSET astring SP] key *(SP key)
// and the final CRLF. On failure *error is a short text for the BAD or NO. CHARSET UTF-8 and
// US-ASCII are accepted (case-insensitive); any other is bad_charset, which the caller answers
// with NO [BADCHARSET (UTF-8 US-ASCII)].
SearchParse parse_search(CommandReader& r, SearchCommand* out, std::string* error);

// Parses only the search keys and the final CRLF (no RETURN, no CHARSET): SORT and THREAD
// (RFC 5256) read their charset themselves and then call this. Same errors as parse_search.
SearchParse parse_search_keys(CommandReader& r, SearchCommand* out, std::string* error);

// Evaluates the program for one message into *matched. False when an accessor of `msg` failed
// (a storage error: *matched is then unspecified).
// The evaluation reuses buffers in `cmd`: one command is evaluated by one thread at a time.
// REQUIRES: parse_search(..., &cmd, ...) returned ok.
bool search_matches(const SearchCommand& cmd, const SearchMailbox& box, const SearchMessage& msg,
                    bool* matched);

// The largest message sequence number written in the program's (non-UID) sequence sets, "*"
// not counted: a number beyond the mailbox's messages makes the command BAD (RFC 9051 section 9).
uint32_t search_max_sequence_number(const SearchCommand& cmd);

// Narrowing by a full-text index. `lookup(needle, out)` appends, ascending, a superset of the
// indexed messages' UIDs whose text contains the folded `needle`, or returns false when it cannot
// narrow (a needle shorter than a trigram). Returns true and a sorted set in *uids when every
// indexed message the command can match is in it; false when any may match. Only what the index
// covers may be skipped: the caller still evaluates every message it does not cover.
using IndexLookup = std::function<bool(std::string_view needle, std::vector<uint32_t>* out)>;
bool search_index_candidates(const SearchCommand& cmd, const IndexLookup& lookup,
                             std::vector<uint32_t>* uids);

// The full-text index of a mailbox applied to one command: it first indexes a bounded step of
// what it does not cover yet, then narrows the covered messages to the candidates of the
// command's text keys. Messages it does not cover may always match (they are scanned).
class IndexNarrowing {
 public:
  // What one command may index of what the index does not cover yet, at most.
  static constexpr uint64_t kStepBytes = 32u << 20;

  void apply(const SearchCommand& cmd, UserMail& mail, uint32_t mailbox_id, std::string_view user);
  // Whether the message with `uid` may match. REQUIRES: ascending UIDs from call to call.
  bool may_match(uint32_t uid);

 private:
  bool narrowed_ = false;
  uint32_t covered_ = 0;
  std::vector<uint32_t> candidates_;
  size_t next_ = 0;
};

// Whether any key reads the message bytes or MIME structure (a flag-only search needs neither).
bool search_needs_content(const SearchCommand& cmd);

}  // namespace ringmail
