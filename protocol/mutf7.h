// IMAP modified UTF-7 mailbox names (RFC 3501 section 5.1.3). Printable US-ASCII (0x20-0x7e)
// stands for itself, except "&", written "&-"; every other character, control characters
// included, is UTF-16BE in base64 with "," for "/" and no padding, between "&" and "-".
// IMAP4rev2 and UTF8=ACCEPT clients (RFC 9051, RFC 6855) send names as UTF-8 instead; check those
// with valid_utf8().
//
// Only the canonical encoding is accepted, so each name has one wire form: the decoder rejects
// anything the encoder would not produce, including two adjacent runs ("&AOE-&AOE-" for "áá" is
// rejected; "&AOEA4Q-" is the one spelling). Control characters (U+0000 included) pass through
// both ways; whether they may appear in a mailbox name is the caller's policy.
#pragma once

#include <string>
#include <string_view>

namespace ringmail {

// UTF-8 -> modified UTF-7. *out is replaced. False if `utf8` is not valid UTF-8 (then *out is
// empty).
bool utf8_to_mutf7(std::string_view utf8, std::string* out);

// Modified UTF-7 -> UTF-8. *out is replaced. False (and *out empty) on: a byte outside 0x20-0x7e,
// an unterminated "&...", "&" followed by neither "-" nor a base64 character, a character outside
// the modified base64 alphabet, a whole spare base64 character or non-zero padding bits at the
// end of a run, a run holding a printable US-ASCII character, an unpaired surrogate (a pair may
// not straddle two runs), or a run directly after another run.
bool mutf7_to_utf8(std::string_view mutf7, std::string* out);

// True when `s` is valid UTF-8: shortest forms only, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s);

}  // namespace ringmail
