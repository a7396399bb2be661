// The text of a message as SEARCH reads it (RFC 9051 section 6.4.4): header fields unfolded and
// RFC 2047 encoded words decoded; bodies of text/* parts with their Content-Transfer-Encoding
// undone and their charset converted to UTF-8 (glibc iconv beyond UTF-8, ASCII and Latin-1);
// text/html bodies reduced to the text they show; everything case-folded. Both the scanning
// SEARCH (protocol/imap_search.cc) and the full-text index (storage/fts.h) take their text from
// here, so an indexed answer and a scan agree.
//
// Case folding: ASCII, Latin-1, Latin Extended-A, the regular pairs of Latin Extended-B and Latin
// Extended Additional, Greek, Cyrillic and fullwidth Latin letters, one code point to one (simple
// folding: "ß" stays "ß"). No Unicode normalization.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/mime_parser.h"

namespace ringmail {

// Appends the case fold of `in` (never longer than `in`). Octets that are not valid UTF-8 are
// copied as they are.
void fold_append(std::string_view in, std::string* out);

struct HeaderField {
  std::string_view name;
  std::string_view value;  // after the colon, folds included
  bool folded = false;     // value_offset/value_length hold its decoded fold (caller's use)
  size_t value_offset = 0;
  size_t value_length = 0;
};

// The fields of the header that starts `text`, up to its blank line or the end. A line that is
// neither a field nor a continuation is skipped, as the MIME parse does.
void split_header(std::string_view text, std::vector<HeaderField>* out);

// Decoding with buffers (and iconv converters) reused from message to message. One thread.
class TextDecoder {
 public:
  TextDecoder();
  ~TextDecoder();
  TextDecoder(TextDecoder&&) noexcept;
  TextDecoder& operator=(TextDecoder&&) noexcept;

  // Appends the fold of a header field value: unfolded, encoded words decoded (anywhere in the
  // value, as mail readers do, not only where RFC 2047 allows them), UTF-8.
  void header_value(std::string_view raw, std::string* out);
  // The same without case folding: what a display or a SORT key shows.
  void display_value(std::string_view raw, std::string* out);
  // Appends "name: value" LF for each field, folded.
  void header_text(const std::vector<HeaderField>& fields, std::string* out);
  // Appends the fold of a text body, its transfer encoding undone and converted to UTF-8; an
  // HTML body (`html`) reduced to its text first: tags and comments removed (a line feed for
  // those that break a line: p, br, div, li, tr, td, th, h1-h6, ul, ol, table, hr, pre,
  // blockquote, dt, dd, title), script and style contents dropped, the character references
  // &amp; &lt; &gt; &quot; &apos; &nbsp; (a space), &#N; and &#xH; decoded.
  void body(std::string_view raw, std::string_view cte, std::string_view charset, bool html,
            std::string* out);
  // Releases buffers grown past what is worth keeping.
  void trim();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The charset parameter of a part ("us-ascii" without one).
std::string_view mime_charset(const MimeInfo& m, const MimePart& part);

// What BODY reads into *body_text: the decoded text/* parts, each followed by a NUL (no match
// spans two parts), and the headers of attached messages. The MIME headers of the parts, which
// TEXT reads besides, go to *part_headers (not made when it is null: BODY alone needs none).
// Both are replaced.
// REQUIRES: `m` is the structure of `bytes`.
void message_body_text(std::string_view bytes, const MimeInfo& m, TextDecoder* decoder,
                       std::vector<HeaderField>* part_fields, std::string* body_text,
                       std::string* part_headers);

// The same for part `i` alone, appended: message_body_text is this for every part in order.
void message_part_text(std::string_view bytes, const MimeInfo& m, size_t i, TextDecoder* decoder,
                       std::vector<HeaderField>* part_fields, std::string* body_text,
                       std::string* part_headers);

// All the text any SEARCH string key reads, in one string: the folded message header, NUL, the
// parts' MIME headers, NUL, the body text. Every string a key can match is a substring of it,
// which is what the full-text index needs.
class MessageText {
 public:
  // REQUIRES: `mime` is the structure of `bytes`. Replaces *out.
  void extract(std::string_view bytes, const MimeInfo& mime, std::string* out);

 private:
  TextDecoder decoder_;
  std::vector<HeaderField> fields_;
  std::vector<HeaderField> part_fields_;
  std::string body_;
  std::string part_headers_;
};

}  // namespace ringmail
