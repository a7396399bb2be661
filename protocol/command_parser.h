// The IMAP command parser, in two steps:
//  - CommandFramer finds where one command ends: its lines and the literals between them. It is
//    resumable: it keeps how far it scanned, so bytes arriving one at a time cost O(n) in all.
//    It enforces the line and literal limits as it scans and stops at a synchronizing literal
//    so the session can decide whether to invite it ("+") or refuse it.
//  - CommandReader reads the tokens of one complete command. Tokens are views into the command's
//    bytes (zero-copy); only a quoted string with escapes is copied, into caller-given scratch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ringmail {

class CommandFramer {
 public:
  struct Limits {
    size_t line_bytes_max;
    uint64_t literal_bytes_max;
  };
  enum class Result {
    need_more,        // no complete command yet
    complete,         // frame_bytes() is the whole command, final CRLF included
    literal_wanted,   // a synchronizing literal was announced: call accept_literal() or refuse it
    line_too_long,    // a line passed line_bytes_max: the stream cannot be resynchronized
    literal_too_big,  // announced literal over literal_bytes_max; frame_bytes() ends its line
    bad_literal,      // "{...}" that is not a valid literal length
  };

  // `buf` starts at the first byte of the command and grows between calls.
  Result scan(std::string_view buf, const Limits& limits);
  void accept_literal();
  void reset() { *this = CommandFramer(); }

  size_t frame_bytes() const { return pos_; }
  uint64_t literal_bytes() const { return literal_size_; }
  bool literal_sync() const { return literal_sync_; }
  // The bytes of the command being framed: scanned so far plus the rest of a literal being read.
  uint64_t committed_bytes() const { return pos_ + literal_left_; }
  // Inside a literal whose bytes are still arriving: how many are missing, and where its first
  // byte is in the buffer (so a caller may take its bytes elsewhere: a spooled APPEND).
  uint64_t literal_left() const { return literal_left_; }
  size_t literal_start() const { return pos_ - static_cast<size_t>(literal_size_ - literal_left_); }

 private:
  size_t pos_ = 0;         // everything before pos_ is scanned
  size_t line_start_ = 0;  // first byte of the line being scanned
  uint64_t literal_left_ = 0;
  uint64_t literal_size_ = 0;
  bool literal_sync_ = false;
  bool awaiting_accept_ = false;
};

// A literal whose bytes are not in the command's text (a large APPEND spooled to a file): the
// text holds its "{n}" CRLF and then goes straight on; `at` is where its bytes would begin.
struct ExternalLiteral {
  size_t at;
  std::string_view data;
};

class CommandReader {
 public:
  explicit CommandReader(std::string_view frame, const ExternalLiteral* external = nullptr,
                         size_t external_count = 0)
      : s_(frame), external_(external), external_count_(external_count) {}

  bool tag(std::string_view* out);
  bool atom(std::string_view* out);
  bool sp();
  // astring = atom / quoted / literal. `scratch` holds the unescaped text of a quoted string.
  bool astring(std::string_view* out, std::string* scratch);
  // list-mailbox: like astring, but atoms may also hold the wildcards % and *.
  bool list_mailbox(std::string_view* out, std::string* scratch);
  // The literal after a "~" (RFC 3516 literal8): any octets, NUL included.
  bool literal8(std::string_view* out);
  // string = quoted / literal (no atom).
  bool string(std::string_view* out, std::string* scratch);
  // A number (RFC 9051 number / number64): digits only, at most `max`.
  bool number(uint64_t* out, uint64_t max = UINT32_MAX);
  // A run of sequence-set characters (digits, ':', ',', '*', '$'); the caller parses it.
  bool sequence_set_text(std::string_view* out);
  // Consumes `c` if it is next.
  bool ch(char c) {
    if (!peek(c)) return false;
    pos_++;
    return true;
  }
  // Any run of bytes other than SP, parentheses, brackets and CRLF (e.g. a fetch att name).
  bool word(std::string_view* out);
  bool peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  std::string_view rest() const { return s_.substr(pos_); }
  // At the final CRLF (a bare LF is tolerated).
  bool at_end() const;
  size_t pos() const { return pos_; }

 private:
  bool quoted(std::string_view* out, std::string* scratch);
  // A literal's contents; NUL is refused unless `allow_nul` (literal8).
  bool literal(std::string_view* out, bool allow_nul = false);
  bool chars(std::string_view* out, bool (*ok)(unsigned char));

  std::string_view s_;
  const ExternalLiteral* external_;
  size_t external_count_;
  size_t pos_ = 0;
};

// True if `c` may appear in an atom (RFC 9051 ATOM-CHAR).
bool is_atom_char(unsigned char c);

}  // namespace ringmail
