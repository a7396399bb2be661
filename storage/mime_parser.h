// The MIME parse that runs once, when a message is stored. It produces everything IMAP FETCH needs
// so that FETCH never parses a message again: the tree of parts with the byte ranges of every
// header and body (BODY[1.2], BODY[1.2.MIME], BODY[2.HEADER], BODY[2.TEXT] and partial fetches are
// slices of the stored bytes), and the decoded fields that ENVELOPE and BODYSTRUCTURE show
// (storage/mime_render.h writes them, storage/mime_cache.h stores them).
//
// The parse never fails on bad input: a broken message gets a best-effort structure, as real
// servers give it. Only the limits cut the tree: a multipart or message part whose parts would
// nest deeper than kDepthMax levels becomes an opaque application/octet-stream leaf, and the
// kPartsMax-th part holds the rest of the message.
//
// One forward pass over the bytes: memchr from line to line where delimiters may appear, a
// vectorized LF count where none can; no allocation per byte; a MimeParser reused for many
// messages does not allocate once its buffers have grown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ringmail {

// A string the parse produced, kept in MimeInfo::text. NIL (the IMAP NIL: the field is absent)
// is distinct from the empty string (present but empty).
struct MimeString {
  static constexpr uint32_t kNil = UINT32_MAX;
  uint32_t offset = kNil;
  uint32_t length = 0;
  bool is_nil() const { return offset == kNil; }
};

// A run of entries in one of MimeInfo's vectors. count 0 renders as NIL.
struct MimeList {
  uint32_t first = 0;
  uint32_t count = 0;
};

// A MIME parameter after RFC 2231 decoding. Content-Language values are kept as params with a
// NIL name.
struct MimeParam {
  MimeString name;
  MimeString value;
};

// RFC 9051 address structure. A group start has host NIL and the group name in mailbox; a group
// end has mailbox and host NIL.
struct MimeAddress {
  MimeString name;
  MimeString adl;
  MimeString mailbox;
  MimeString host;
};

struct MimeEnvelope {
  MimeString date;
  MimeString subject;
  MimeList from;  // runs in MimeInfo::addresses
  MimeList sender;
  MimeList reply_to;
  MimeList to;
  MimeList cc;
  MimeList bcc;
  MimeString in_reply_to;
  MimeString message_id;
};

// What the part's BODYSTRUCTURE looks like: which type-specific fields follow the basic ones.
enum class MimeKind : uint8_t {
  basic = 0,      // body-type-basic
  text = 1,       // text/*: adds the line count
  message = 2,    // message/rfc822 or message/global: adds envelope, body, line count
  multipart = 3,  // multipart/*: children, then the subtype
};

// Invariant: the body follows the header directly (body offset = header_offset + header_length).
struct MimePart {
  // Byte ranges within the message. The header includes the blank line that ends it; for the
  // message itself (and an encapsulated message's root) it is the RFC 5322 header. A line end
  // just before a delimiter line belongs to the delimiter (RFC 2046), not to the part.
  uint32_t header_offset = 0;
  uint32_t header_length = 0;
  uint32_t body_length = 0;  // octets as stored: the "size" of BODYSTRUCTURE
  uint32_t body_lines = 0;   // LF octets in the body
  // Tree, in pre-order: the first child is at index + 1, the next sibling at
  // index + subtree_parts. A message part has one child: the encapsulated message's root.
  uint32_t subtree_parts = 1;
  uint32_t child_count = 0;
  uint32_t envelope = 0;  // message parts: the encapsulated message's index in envelopes
  MimeKind kind = MimeKind::text;
  MimeString type;  // as written (case kept); defaults are lower case
  MimeString subtype;
  MimeList params;  // in MimeInfo::params
  MimeString id;
  MimeString description;
  MimeString encoding;
  MimeString md5;
  MimeString disposition;  // NIL: no usable Content-Disposition
  MimeList disposition_params;
  MimeList language;  // in MimeInfo::params, names NIL
  MimeString location;

  uint32_t body_offset() const { return header_offset + header_length; }
  uint32_t end_offset() const { return body_offset() + body_length; }
};

struct MimeInfo {
  uint32_t message_bytes = 0;
  std::vector<MimePart> parts;          // pre-order; parts[0] is the message itself
  std::vector<MimeEnvelope> envelopes;  // [0] is the message's; then one per message part
  std::vector<MimeParam> params;
  std::vector<MimeAddress> addresses;
  std::string text;  // the bytes of every MimeString

  // REQUIRES: !s.is_nil() and s lies within text.
  std::string_view str(MimeString s) const { return {text.data() + s.offset, s.length}; }
  void clear();
};

class MimeParser {
 public:
  static constexpr uint32_t kDepthMax = 100;    // levels of parts, the message's own included
  static constexpr uint32_t kPartsMax = 10000;  // the last part holds the rest of the message
  // Offsets are 32-bit; this is far above any sensible APPENDLIMIT.
  static constexpr uint32_t kMessageBytesMax = 1u << 30;
  // Bounds on what one message can make the parse hold, whatever its size. Only hostile input
  // comes near them; then strings are cut and further entries dropped, rather than memory
  // running out. (Derived strings can outgrow their source: a NUL becomes 3 octets, an RFC 2231
  // value re-encoded from ISO-8859-1 up to 6 per octet.)
  static constexpr size_t kTextBytesMax = 64u << 20;  // all strings of a message (MimeInfo::text)
  static constexpr size_t kParamBytesMax = 1u << 20;  // one joined RFC 2231 value, decoded
  static constexpr size_t kFieldParamsMax = 1000;     // parameters of one Content-Type/-Disposition
  static constexpr size_t kParamsMax = 100000;        // parameters and languages of a message
  static constexpr size_t kAddressesMax = 100000;     // addresses of a message
  static constexpr size_t kWordsMax = 1000;           // words of one display name or local part

  MimeParser();
  ~MimeParser();
  MimeParser(const MimeParser&) = delete;
  MimeParser& operator=(const MimeParser&) = delete;

  // Replaces *out with the structure of `message`. Fails (Status::invalid) only when the message
  // is larger than kMessageBytesMax; any bytes at all are otherwise a message.
  Status parse(std::string_view message, MimeInfo* out);

  struct Scratch;  // buffers reused between messages

 private:
  std::unique_ptr<Scratch> scratch_;
};

// One-off parse with a fresh MimeParser.
Status parse_mime(std::string_view message, MimeInfo* out);

struct MimeSlice {
  uint32_t offset = 0;
  uint32_t length = 0;
};

// The byte ranges a BODY[section] fetch serves, all relative to the message start.
struct MimeSection {
  uint32_t part = 0;        // index in MimeInfo::parts
  MimeSlice mime;           // BODY[s.MIME]: the part's own MIME header
  MimeSlice body;           // BODY[s]
  bool is_message = false;  // message/rfc822 part, or the whole message: header and text are set
  MimeSlice header;         // BODY[s.HEADER], BODY[s.HEADER.FIELDS ...]
  MimeSlice text;           // BODY[s.TEXT]
};

// Resolves a section path as RFC 9051 section 6.4.5 numbers parts: {1, 2} is BODY[1.2]. The empty
// path is the whole message (body = every byte; mime is empty, BODY[MIME] does not exist). Part 1
// of a message that is not multipart is its body; a message/rfc822 part N's own parts are N.1,
// N.2 ... (N.1 is its body when the encapsulated message is not multipart). False when the path
// names no part.
bool find_mime_section(const MimeInfo& info, std::span<const uint32_t> path, MimeSection* out);

}  // namespace ringmail
