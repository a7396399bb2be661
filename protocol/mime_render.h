// ENVELOPE, BODY and BODYSTRUCTURE as IMAP response text, from a parse (storage/mime_parser.h)
// or a cached record (storage/mime_cache.h), exactly per RFC 9051 section 7.5.2 and its grammar
// (RFC 3501's is the same for these but for message/global, see ImapRevision).
//
// Strings are NIL when absent, "quoted" (with \" and \\ escapes) when every octet is 7-bit and
// neither CR nor LF, and a literal {n}\r\n... otherwise.
//
// Each append_* measures its output first, then writes it: *out grows at most once.
#pragma once

#include <cstdint>
#include <string>

#include "storage/mime_parser.h"

namespace ringmail {

// IMAP4rev2 (RFC 9051) shows a message/global part like message/rfc822, with envelope, body and
// line count; IMAP4rev1 (RFC 3501) knows only message/rfc822 and shows message/global as a basic
// part.
enum class ImapRevision : uint8_t { rev1, rev2 };

// The message's ENVELOPE value, e.g. ("date" "subject" (("Name" NIL "box" "host")) ... NIL "<id>").
void append_envelope(const MimeInfo& info, std::string* out);
// The BODY value: BODYSTRUCTURE without extension data.
void append_body(const MimeInfo& info, ImapRevision rev, std::string* out);
// The BODYSTRUCTURE value, with extension data (md5/params, disposition, language, location).
void append_bodystructure(const MimeInfo& info, ImapRevision rev, std::string* out);

std::string render_envelope(const MimeInfo& info);
std::string render_body(const MimeInfo& info, ImapRevision rev = ImapRevision::rev2);
std::string render_bodystructure(const MimeInfo& info, ImapRevision rev = ImapRevision::rev2);

}  // namespace ringmail
