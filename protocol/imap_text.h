// Small text helpers of the IMAP protocol: case-insensitive comparison, response lines, strings
// in their shortest valid IMAP form, mailbox wildcards.
#pragma once

#include <string>
#include <string_view>

#include "core/connection.h"
#include "core/status.h"

namespace ringmail {

bool iequals(std::string_view a, std::string_view b);
std::string lowercase(std::string_view s);
// `text` with CR, LF and other control characters replaced by spaces (for response texts).
std::string one_line(std::string_view text);
// "NO [CODE] what: why" for a storage failure, with the RFC 5530 code that fits. A full disk
// is [OVERQUOTA]: nothing was stored, nothing stored was harmed, and storing more cannot work now.
std::string storage_failure(const Status& s, std::string_view what);
// Writes "tag text\r\n".
void respond(Connection& c, std::string_view tag, std::string_view text);
// An IMAP string: "quoted" when it can be, a literal otherwise.
void append_string(std::string_view s, std::string* out);
// An astring: an atom when it can be, else as append_string().
void append_astring(std::string_view s, std::string* out);
// IMAP LIST wildcards: '*' matches anything, '%' anything but the delimiter '/'. With `fold`,
// the pattern's letters match case-insensitively where the name is upper-case (for INBOX).
// Time is pattern length x name length, whatever the pattern.
bool wildcard_match(std::string_view pattern, std::string_view name);

}  // namespace ringmail
