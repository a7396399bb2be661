// FETCH: what a client asks for (RFC 9051 section 6.4.5; RFC 3501 for the rev1 RFC822 items;
// RFC 3516 BINARY; RFC 7162 MODSEQ and the CHANGEDSINCE / VANISHED modifiers) and one message's
// untagged FETCH response (RFC 9051 section 7.5.2).
//
// Sections are slices of the stored bytes found through the MIME parse (find_mime_section);
// nothing is parsed again at FETCH time but the header lines of HEADER.FIELDS[.NOT] and the
// Content-Transfer-Encoding that BINARY removes.
//
// Choices where the RFCs leave room (Dovecot 2.3 answers the same way):
//  - A section that does not exist (a part number beyond the message, HEADER or TEXT of a part
//    that is not message/rfc822 or message/global) is the empty string "", as is a partial
//    fetch whose origin lies at or beyond the end. Non-empty contents are always literals.
//  - BINARY of a multipart section gives its bytes as stored (RFC 2045 allows a multipart no
//    encoding but 7bit, 8bit or binary); inner parts are not decoded. BINARY[] of a message that
//    is not multipart is its header as stored followed by its decoded body.
//  - Base64 is decoded leniently (bytes outside the alphabet are skipped, "=" ends a quantum),
//    and so is quoted-printable (a malformed "=" escape stays as written; trailing blanks go, RFC
//    2045 section 6.7 rule 3). Only an unknown encoding fails: NO [UNKNOWN-CTE].
//  - A partial BINARY answer names its origin, BINARY[1]<0>, like BODY[1]<0>: RFC 9051's prose
//    says so (its ABNF omits it).
//  - IMAP literals may not hold NUL (CHAR8): a NUL in a BODY[...] / RFC822* answer is sent as
//    0x80. BINARY sends the bytes as they are, in a literal8 (~{n}) when there is a NUL.
//  - HEADER.FIELDS[.NOT] names are echoed in the response as the client wrote them (case kept).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/command_parser.h"
#include "protocol/mime_render.h"
#include "storage/mailbox_index.h"
#include "storage/mime_parser.h"

namespace ringmail {

enum class FetchKind : uint8_t {
  flags,
  internaldate,
  rfc822_size,
  envelope,
  body,  // BODY without a section: BODYSTRUCTURE without extension data
  bodystructure,
  uid,
  modseq,
  body_section,   // BODY[...] / BODY.PEEK[...]
  binary,         // BINARY[...] / BINARY.PEEK[...]
  binary_size,    // BINARY.SIZE[...]
  rfc822,         // = BODY[], named RFC822
  rfc822_header,  // = BODY.PEEK[HEADER], named RFC822.HEADER
  rfc822_text,    // = BODY[TEXT], named RFC822.TEXT
};

// What follows the part numbers of a section: BODY[1.2.HEADER] has section {1, 2} and HEADER.
enum class SectionText : uint8_t { none, header, header_fields, header_fields_not, text, mime };

struct FetchItem {
  FetchKind kind = FetchKind::flags;
  bool peek = false;              // BODY.PEEK / BINARY.PEEK: \Seen is not set
  std::vector<uint32_t> section;  // part numbers: {1, 2} is 1.2; empty = the whole message
  SectionText text = SectionText::none;
  std::vector<std::string> fields;  // HEADER.FIELDS[.NOT] names, as the client wrote them
  bool has_partial = false;         // <origin.length>
  uint64_t partial_origin = 0;
  uint64_t partial_length = 0;  // > 0 when has_partial
};

struct FetchSpec {
  static constexpr size_t kItemsMax = 1000;
  static constexpr size_t kHeaderFieldsMax = 1000;  // names in all HEADER.FIELDS lists together
  static constexpr size_t kSectionPartsMax = MimeParser::kDepthMax;  // numbers in one section

  std::vector<FetchItem> items;  // in the order of the request, macros expanded
  bool needs_mime = false;       // ENVELOPE/BODY/BODYSTRUCTURE/sections need the MIME structure
  bool needs_bytes = false;      // some item needs the raw bytes
  bool sets_seen = false;  // a non-PEEK BODY[...] / BINARY[...] / RFC822 / RFC822.TEXT: the caller
                           // sets \Seen
  bool has_flags = false;  // FLAGS was asked for
  bool has_uid = false;
  bool has_modseq = false;
  bool has_changed_since = false;  // CHANGEDSINCE was given (RFC 7162 allows 0)
  uint64_t changed_since = 0;      // its value, 0 when not given
  bool vanished = false;  // VANISHED modifier (RFC 7162 QRESYNC); always with CHANGEDSINCE. The
                          // caller checks that this is UID FETCH and QRESYNC is enabled.
};

// Parses what follows "FETCH seqset SP" through the final CRLF: a macro (ALL, FAST, FULL), one
// att, or a parenthesised list of atts, then optionally SP "(" modifiers ")" (CHANGEDSINCE n,
// VANISHED). Case-insensitive. False with *error set (text for a BAD response) on bad syntax,
// more than FetchSpec::kItemsMax items, kHeaderFieldsMax header field names or
// kSectionPartsMax part numbers in a section. The RFC822 items are accepted in both revisions.
bool parse_fetch(CommandReader& r, FetchSpec* out, std::string* error);

struct FetchMessage {
  uint32_t seq = 0;
  const MessageRecord* rec = nullptr;  // uid, flags, keywords bits, modseq, size, internal_date
                                       // (unix seconds, UTC)
  const std::vector<std::string>* keywords = nullptr;  // keyword names by bit
  std::string_view bytes;                              // the raw message (valid if needs_bytes)
  const MimeInfo* mime = nullptr;                      // valid if needs_mime; parsed from bytes
  bool include_flags = false;   // add FLAGS even if not asked (the caller set \Seen)
  bool include_uid = false;     // UID FETCH: UID is always returned
  bool include_modseq = false;  // CONDSTORE enabled and CHANGEDSINCE/...: MODSEQ is returned
};

enum class FetchError {
  none,
  unknown_cte,      // BINARY on a part with an encoding we cannot decode: NO [UNKNOWN-CTE]
  no_such_section,  // not returned: a missing section is "" (see above); kept for the caller
};

// Appends "* <seq> FETCH (...)\r\n": the items in the order asked, after an implied UID
// (include_uid) and before an implied FLAGS and MODSEQ (include_flags, include_modseq); an item
// without a section is sent once however often it was asked. On an error nothing is appended.
// REQUIRES: m.rec set; m.mime set if spec.needs_mime, m.bytes if spec.needs_bytes; every keyword
// bit of m.rec named in *m.keywords.
FetchError append_fetch(const FetchSpec& spec, const FetchMessage& m, ImapRevision rev,
                        std::string* out);

// Appends an internal date as IMAP date-time, quotes included: "dd-Mon-yyyy hh:mm:ss +0000"
// (day space-padded). Times outside the years 0000..9999 are clamped into them.
void append_internal_date(int64_t unix_seconds, std::string* out);

}  // namespace ringmail
