#include "protocol/imap_search.h"

#include <iconv.h>
#include <strings.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/assert.h"
#include "protocol/sequence_set.h"

namespace ringmail {
namespace {

// Decode buffers grow to the largest message searched; past this they are released after it.
constexpr size_t kBufferKeepBytes = 8u << 20;
constexpr size_t kCharsetNameBytesMax = 64;
constexpr size_t kIconvOpenMax = 8;  // converters kept open, by charset name

bool equals_nocase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

bool contains(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (hay.size() < needle.size()) return false;
  // glibc memmem is the two-way algorithm: linear in the worst case, whatever the client sends.
  return memmem(hay.data(), hay.size(), needle.data(), needle.size()) != nullptr;
}

// ---- Case folding (UTF-8)

// The code point starting p[0..n), its length in *len; -1 for an octet that starts no valid
// sequence (overlong forms, surrogates and values past U+10FFFF are invalid).
int32_t decode_utf8(const unsigned char* p, size_t n, size_t* len) {
  unsigned char c = p[0];
  size_t need;
  int32_t cp, min;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
    cp = c & 0x1F;
    min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    cp = c & 0x0F;
    min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    cp = c & 0x07;
    min = 0x10000;
  } else {
    return -1;
  }
  if (n < need) return -1;
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *len = need;
  return cp;
}

size_t utf8_length(char32_t c) {
  return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}

char* encode_utf8(char32_t c, char* w) {
  if (c < 0x80) {
    *w++ = static_cast<char>(c);
  } else if (c < 0x800) {
    *w++ = static_cast<char>(0xC0 | (c >> 6));
    *w++ = static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    *w++ = static_cast<char>(0xE0 | (c >> 12));
    *w++ = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    *w++ = static_cast<char>(0x80 | (c & 0x3F));
  } else {
    *w++ = static_cast<char>(0xF0 | (c >> 18));
    *w++ = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    *w++ = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    *w++ = static_cast<char>(0x80 | (c & 0x3F));
  }
  return w;
}

void append_code_point(char32_t c, std::string* out) {
  char buf[4];
  out->append(buf, encode_utf8(c, buf) - buf);
}

// Upper case to lower case in a run [first, last] where the upper-case letter of each pair has
// the parity `upper_odd`.
bool pair_fold(char32_t c, char32_t first, char32_t last, bool upper_odd, char32_t* out) {
  if (c < first || c > last) return false;
  *out = ((c & 1) != 0) == upper_odd ? c + 1 : c;
  return true;
}

// Simple case folding for the scripts the header comment names; any other code point is its own
// fold. Never maps to a longer UTF-8 encoding (fold_append relies on it).
char32_t fold_code_point(char32_t c) {
  char32_t f;
  if (c < 0x100) {
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 0x20;
    return c == 0xB5 ? 0x3BC : c;  // micro sign: Greek mu
  }
  if (c < 0x250) {
    switch (c) {
      case 0x130: return 'i';  // I with dot: Turkish, but "i" is what a searcher means
      case 0x131:
      case 0x138:
      case 0x149: return c;
      case 0x178: return 0xFF;
      case 0x17F: return 's';
      case 0x1C4:
      case 0x1C5: return 0x1C6;
      case 0x1C7:
      case 0x1C8: return 0x1C9;
      case 0x1CA:
      case 0x1CB: return 0x1CC;
      case 0x1F1:
      case 0x1F2: return 0x1F3;
      case 0x1F4: return 0x1F5;
    }
    if (pair_fold(c, 0x100, 0x177, false, &f) && !(c >= 0x139 && c <= 0x148)) return f;
    if (pair_fold(c, 0x139, 0x148, true, &f) || pair_fold(c, 0x179, 0x17E, true, &f) ||
        pair_fold(c, 0x1CD, 0x1DC, true, &f) || pair_fold(c, 0x1DE, 0x1EF, false, &f) ||
        pair_fold(c, 0x1F8, 0x21F, false, &f) || pair_fold(c, 0x222, 0x233, false, &f) ||
        pair_fold(c, 0x246, 0x24F, false, &f))
      return f;
    return c;
  }
  if (c >= 0x370 && c < 0x400) {
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) return c + 32;
    if (c == 0x3C2) return 0x3C3;  // final sigma
    if (pair_fold(c, 0x3D8, 0x3EF, false, &f)) return f;
    return c;
  }
  if (c >= 0x400 && c < 0x530) {
    if (c < 0x410) return c + 80;
    if (c < 0x430) return c + 32;
    if (c == 0x4C0) return 0x4CF;
    if (pair_fold(c, 0x460, 0x481, false, &f) || pair_fold(c, 0x48A, 0x4BF, false, &f) ||
        pair_fold(c, 0x4C1, 0x4CE, true, &f) || pair_fold(c, 0x4D0, 0x52F, false, &f))
      return f;
    return c;
  }
  if (c >= 0x1E00 && c < 0x1F00) {
    if (c == 0x1E9E) return 0xDF;  // capital sharp s
    if (pair_fold(c, 0x1E00, 0x1E95, false, &f) || pair_fold(c, 0x1EA0, 0x1EFF, false, &f))
      return f;
    return c;
  }
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;  // fullwidth Latin
  return c;
}

// Appends the case fold of `in`. Octets that are not valid UTF-8 are copied as they are.
void fold_append(std::string_view in, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  const size_t base = out->size();
  out->resize(base + n);  // a fold is never longer than its source
  char* w = out->data() + base;
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      *w++ = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 0x20 : c);
      i++;
      continue;
    }
    size_t len = 1;
    int32_t cp = decode_utf8(p + i, n - i, &len);
    if (cp < 0) {
      *w++ = static_cast<char>(c);
      i++;
      continue;
    }
    char32_t f = fold_code_point(static_cast<char32_t>(cp));
    RM_ASSERT(utf8_length(f) <= len);
    w = encode_utf8(f, w);
    i += len;
  }
  out->resize(w - out->data());
}

// ---- Content-Transfer-Encodings (RFC 2045) and RFC 2047 Q

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Tolerant: octets outside the alphabet are skipped; "=" ends a group (bits left over are
// dropped), so concatenated encodings decode too.
void decode_base64(std::string_view in, std::string* out) {
  uint32_t bits = 0;
  int nbits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z')
      v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z')
      v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9')
      v = ch - '0' + 52;
    else if (ch == '+')
      v = 62;
    else if (ch == '/')
      v = 63;
    else {
      if (ch == '=') bits = 0, nbits = 0;
      continue;
    }
    bits = (bits << 6) | static_cast<uint32_t>(v);
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      out->push_back(static_cast<char>((bits >> nbits) & 0xFF));
    }
  }
}

// Quoted-printable; `q` selects RFC 2047 "Q" (where "_" is a space). A soft line break ("=",
// optional transport padding, line end) disappears; a "=" that starts nothing valid is kept.
void decode_qp(std::string_view in, bool q, std::string* out) {
  const size_t n = in.size();
  for (size_t i = 0; i < n;) {
    size_t run = in.find_first_of(q ? "=_" : "=", i);
    if (run == std::string_view::npos) run = n;
    out->append(in.data() + i, run - i);  // plain text in bulk
    i = run;
    if (i == n) break;
    if (in[i] == '_') {
      out->push_back(' ');
      i++;
    } else if (i + 2 < n && hex_value(in[i + 1]) >= 0 && hex_value(in[i + 2]) >= 0) {
      out->push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
      i += 3;
    } else {
      size_t j = i + 1;
      while (j < n && is_wsp(in[j])) j++;
      if (j < n && in[j] == '\r') j++;
      if (j < n && in[j] == '\n') {
        i = j + 1;  // a soft line break
      } else {
        out->push_back('=');
        i++;
      }
    }
  }
}

// ---- Charsets

// Windows-1252 0x80-0x9F; ISO-8859-1 is read as Windows-1252 too (as browsers do: the labels
// are mixed up in practice, and the C1 controls it would mean instead never occur in text).
constexpr char16_t kCp1252High[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

const iconv_t kNoIconv = reinterpret_cast<iconv_t>(-1);

// Converts text to UTF-8 by charset label. UTF-8, US-ASCII, ISO-8859-1 and Windows-1252 are done
// here; other labels go to glibc iconv. An unknown label, or octets invalid in the charset, are
// copied as they are: a search then still finds ASCII text in them.
class Charsets {
 public:
  Charsets() = default;
  Charsets(const Charsets&) = delete;
  Charsets& operator=(const Charsets&) = delete;
  ~Charsets() {
    for (Entry& e : open_)
      if (e.cd != kNoIconv) iconv_close(e.cd);
  }

  // True when text in `label` is already what append_utf8 would give (UTF-8 or unknown).
  bool passes_through(std::string_view label) { return kind(label, nullptr) == Kind::utf8; }

  void append_utf8(std::string_view in, std::string_view label, std::string* out) {
    iconv_t cd = kNoIconv;
    switch (kind(label, &cd)) {
      case Kind::utf8: out->append(in); return;
      case Kind::cp1252:
        for (char ch : in) {
          auto c = static_cast<unsigned char>(ch);
          if (c < 0x80)
            out->push_back(ch);
          else
            append_code_point(c < 0xA0 ? kCp1252High[c - 0x80] : c, out);
        }
        return;
      case Kind::iconv: append_iconv(cd, in, out); return;
    }
  }

 private:
  enum class Kind : uint8_t { utf8, cp1252, iconv };
  struct Entry {
    std::string label;
    iconv_t cd;
  };

  Kind kind(std::string_view label, iconv_t* cd) {
    label = label.substr(0, label.find('*'));  // RFC 2231 language suffix
    for (std::string_view l : {"utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968", ""})
      if (equals_nocase(label, l)) return Kind::utf8;
    for (std::string_view l :
         {"iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1", "windows-1252", "cp1252"})
      if (equals_nocase(label, l)) return Kind::cp1252;
    if (label.size() > kCharsetNameBytesMax) return Kind::utf8;
    for (Entry& e : open_) {
      if (!equals_nocase(e.label, label)) continue;
      if (cd) *cd = e.cd;
      return e.cd == kNoIconv ? Kind::utf8 : Kind::iconv;
    }
    if (open_.size() >= kIconvOpenMax) {
      if (open_.front().cd != kNoIconv) iconv_close(open_.front().cd);
      open_.erase(open_.begin());
    }
    std::string name(label);
    iconv_t c = iconv_open("UTF-8", name.c_str());
    open_.push_back(Entry{std::move(name), c});  // a failure is kept too: it is not retried
    if (cd) *cd = c;
    return c == kNoIconv ? Kind::utf8 : Kind::iconv;
  }

  static void append_iconv(iconv_t cd, std::string_view in, std::string* out) {
    iconv(cd, nullptr, nullptr, nullptr, nullptr);
    char* src = const_cast<char*>(in.data());
    size_t src_left = in.size();
    size_t used = out->size();
    bool flushing = false;  // all input taken: writing the final shift sequence
    for (;;) {
      size_t want = used + src_left * 4 + 16;
      if (out->size() < want) out->resize(want);
      char* dst = out->data() + used;
      size_t dst_left = out->size() - used;
      size_t r = flushing ? iconv(cd, nullptr, nullptr, &dst, &dst_left)
                          : iconv(cd, &src, &src_left, &dst, &dst_left);
      used = static_cast<size_t>(dst - out->data());
      if (r != static_cast<size_t>(-1)) {
        if (flushing) break;
        flushing = true;
        continue;
      }
      if (errno == E2BIG) {
        out->resize(out->size() * 2);
        continue;
      }
      if (flushing || src_left == 0) break;
      if (used == out->size()) out->resize(used + 16);
      (*out)[used++] = *src++;  // EILSEQ or EINVAL: keep the octet, go on after it
      src_left--;
    }
    out->resize(used);
  }

  std::vector<Entry> open_;
};

// ---- Header fields (RFC 5322) and encoded words (RFC 2047)

struct HeaderField {
  std::string_view name;
  std::string_view value;  // after the colon, folds included
  bool folded = false;     // value_offset/value_length hold its decoded fold
  size_t value_offset = 0;
  size_t value_length = 0;
};

// The fields of the header that starts `text`, up to its blank line or the end. A line that is
// neither a field nor a continuation is skipped, as the MIME parse does.
void split_header(std::string_view text, std::vector<HeaderField>* out) {
  out->clear();
  size_t value_begin = 0;
  bool in_field = false;
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    size_t next = nl == std::string_view::npos ? text.size() : nl + 1;
    size_t end = nl == std::string_view::npos ? text.size() : nl;
    if (end > pos && text[end - 1] == '\r') end--;
    if (end == pos) break;  // the blank line
    if (is_wsp(text[pos])) {
      if (in_field) out->back().value = text.substr(value_begin, end - value_begin);
    } else {
      size_t colon = text.find(':', pos);
      in_field = colon < end;
      if (in_field) {
        std::string_view name = text.substr(pos, colon - pos);
        while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
        value_begin = colon + 1;
        out->push_back(HeaderField{name, text.substr(value_begin, end - value_begin)});
      }
    }
    pos = next;
  }
}

struct EncodedWord {
  std::string_view charset;
  bool q = false;
  std::string_view text;
  size_t end = 0;
};

// "=?charset?B|Q?text?=" at s[i]. Scans only to the next "?" or white space, so trying every
// "=?" of a value stays linear.
bool parse_encoded_word(std::string_view s, size_t i, EncodedWord* w) {
  if (s.substr(i, 2) != "=?") return false;
  size_t p = i + 2;
  size_t q1 = p;
  while (q1 < s.size() && s[q1] != '?' && !is_wsp(s[q1])) q1++;
  if (q1 == p || q1 - p > kCharsetNameBytesMax || q1 + 2 >= s.size() || s[q1] != '?' ||
      s[q1 + 2] != '?')
    return false;
  char e = s[q1 + 1];
  if (e != 'B' && e != 'b' && e != 'Q' && e != 'q') return false;
  size_t t = q1 + 3;
  size_t close = t;
  while (close < s.size() && s[close] != '?' && !is_wsp(s[close])) close++;
  if (close + 1 >= s.size() || s[close] != '?' || s[close + 1] != '=') return false;
  *w = EncodedWord{s.substr(p, q1 - p), e == 'Q' || e == 'q', s.substr(t, close - t), close + 2};
  return true;
}

// The text decoding a search needs, with buffers reused from message to message.
class TextDecoder {
 public:
  // Appends the fold of a header field value: unfolded, encoded words decoded (anywhere in the
  // value, as mail readers do, not only where RFC 2047 allows them), UTF-8.
  void header_value(std::string_view raw, std::string* out) {
    converted_.clear();
    decode_words(raw, &converted_);
    fold_append(converted_, out);
  }

  // Appends "name: value" LF for each field, folded.
  void header_text(const std::vector<HeaderField>& fields, std::string* out) {
    for (const HeaderField& f : fields) {
      fold_append(f.name, out);
      out->append(": ");
      header_value(f.value, out);
      out->push_back('\n');
    }
  }

  // Appends the fold of a text body, its transfer encoding undone and converted to UTF-8.
  void body(std::string_view raw, std::string_view cte, std::string_view charset,
            std::string* out) {
    std::string_view data = raw;
    if (equals_nocase(cte, "base64") || equals_nocase(cte, "quoted-printable")) {
      decoded_.clear();
      if (equals_nocase(cte, "base64"))
        decode_base64(raw, &decoded_);
      else
        decode_qp(raw, false, &decoded_);
      data = decoded_;
    }
    if (charsets_.passes_through(charset)) {
      fold_append(data, out);
      return;
    }
    converted_.clear();
    charsets_.append_utf8(data, charset, &converted_);
    fold_append(converted_, out);
  }

  void trim() {
    for (std::string* s : {&unfolded_, &pending_, &decoded_, &converted_})
      if (s->capacity() > kBufferKeepBytes) std::string().swap(*s);
  }

 private:
  // White space between two encoded words disappears; adjacent words in one charset are
  // converted together, so a character split across them survives.
  void decode_words(std::string_view raw, std::string* out) {
    unfolded_.clear();
    for (char c : raw)
      if (c != '\r' && c != '\n') unfolded_.push_back(c);
    const std::string_view u = unfolded_;
    pending_.clear();
    std::string_view pending_charset;
    auto flush = [&] {
      if (!pending_.empty()) charsets_.append_utf8(pending_, pending_charset, out);
      pending_.clear();
    };
    bool after_word = false;
    EncodedWord w;
    for (size_t i = 0; i < u.size();) {
      if (u[i] == '=' && parse_encoded_word(u, i, &w)) {
        if (!after_word || !equals_nocase(w.charset, pending_charset)) flush();
        pending_charset = w.charset;
        if (w.q)
          decode_qp(w.text, true, &pending_);
        else
          decode_base64(w.text, &pending_);
        after_word = true;
        i = w.end;
        continue;
      }
      if (after_word && is_wsp(u[i])) {
        size_t j = i;
        while (j < u.size() && is_wsp(u[j])) j++;
        if (parse_encoded_word(u, j, &w)) {
          i = j;
          continue;
        }
      }
      flush();
      after_word = false;
      out->push_back(u[i++]);
    }
    flush();
  }

  Charsets charsets_;
  std::string unfolded_;
  std::string pending_;  // decoded octets of encoded words not yet converted
  std::string decoded_;
  std::string converted_;
};

// ---- Dates

// A calendar day as a number that orders like the day.
int64_t day_number(int64_t y, int m, int d) {
  return y * 512 + m * 32 + d;
}

int days_in_month(int64_t y, int m) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// 1-12 for a month name (its first three letters, any case), else 0.
int month_number(std::string_view w) {
  static constexpr std::string_view kMonths[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                   "jul", "aug", "sep", "oct", "nov", "dec"};
  if (w.size() < 3) return 0;
  for (int m = 0; m < 12; m++)
    if (equals_nocase(w.substr(0, 3), kMonths[m])) return m + 1;
  return 0;
}

// Reads a run of digits into *v; returns how many (a value of more than 9 digits is not kept).
size_t read_digits(std::string_view s, size_t* i, int* v) {
  size_t start = *i;
  *v = 0;
  for (; *i < s.size() && is_digit(s[*i]); ++*i)
    if (*i - start < 9) *v = *v * 10 + (s[*i] - '0');
  return *i - start;
}

std::string_view read_alpha(std::string_view s, size_t* i) {
  size_t start = *i;
  while (*i < s.size() && is_alpha(s[*i])) ++*i;
  return s.substr(start, *i - start);
}

// IMAP date-text "1-Feb-1994".
bool parse_imap_date(std::string_view s, int64_t* day) {
  size_t i = 0;
  int d = 0, y = 0;
  size_t nd = read_digits(s, &i, &d);
  if (nd < 1 || nd > 2 || i >= s.size() || s[i++] != '-') return false;
  std::string_view mw = read_alpha(s, &i);
  int m = mw.size() == 3 ? month_number(mw) : 0;
  if (m == 0 || i >= s.size() || s[i++] != '-') return false;
  if (read_digits(s, &i, &y) != 4 || i != s.size()) return false;
  if (d < 1 || d > days_in_month(y, m)) return false;
  *day = day_number(y, m, d);
  return true;
}

size_t skip_cfws(std::string_view s, size_t i) {
  int depth = 0;
  for (; i < s.size(); i++) {
    char c = s[i];
    if (c == '\\' && depth > 0) {
      i++;
    } else if (c == '(') {
      depth++;
    } else if (c == ')' && depth > 0) {
      depth--;
    } else if (depth == 0 && !is_wsp(c) && c != '\r' && c != '\n') {
      break;
    }
  }
  return i;
}

// The day of an RFC 5322 date-time: [day-of-week ","] day month year, obsolete forms (two- and
// three-digit years, comments, no comma) included. The time and zone are not read.
bool parse_date_field(std::string_view s, int64_t* day) {
  size_t i = skip_cfws(s, 0);
  if (i < s.size() && is_alpha(s[i])) {
    static constexpr std::string_view kDays[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    std::string_view w = read_alpha(s, &i);
    if (w.size() < 3 || std::none_of(kDays, kDays + 7, [&](std::string_view d) {
          return equals_nocase(w.substr(0, 3), d);
        }))
      return false;
    i = skip_cfws(s, i);
    if (i < s.size() && s[i] == ',') i = skip_cfws(s, i + 1);
  }
  int d = 0, y = 0;
  size_t nd = read_digits(s, &i, &d);
  if (nd < 1 || nd > 2) return false;
  i = skip_cfws(s, i);
  int m = month_number(read_alpha(s, &i));
  if (m == 0) return false;
  i = skip_cfws(s, i);
  size_t ny = read_digits(s, &i, &y);
  if (ny < 2 || ny > 4) return false;
  if (ny == 2) y += y < 50 ? 2000 : 1900;
  if (ny == 3) y += 1900;
  if (d < 1 || d > days_in_month(y, m)) return false;
  *day = day_number(y, m, d);
  return true;
}

// The calendar day of a Unix time (H. Hinnant's civil_from_days).
int64_t day_of_time(int64_t t) {
  int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<uint32_t>(z - era * 146097);
  const uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const uint32_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return day_number(static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d);
}

// ---- The program

enum class Op : uint8_t {
  all,
  none,
  flag_set,  // value: SystemFlag mask
  flag_clear,
  keyword,  // a: keyword index
  unkeyword,
  larger,  // value: octets
  smaller,
  before,  // value: day_number
  on,
  since,
  sent_before,
  sent_on,
  sent_since,
  header,  // a: field-name string, b: needle string
  body,    // b: needle string
  text,
  seq,  // a: set index
  uid,
  saved,   // "$"
  modseq,  // value: MODSEQ
  not_,
  or_,
  and_,
};

// Nodes are in pre-order: a node's first child is next to it, its next sibling `size` after it.
struct Node {
  Op op = Op::all;
  bool content = false;  // the subtree reads the message bytes
  uint32_t size = 1;     // nodes in the subtree, this one included
  uint32_t a = 0;
  uint32_t b = 0;
  uint64_t value = 0;
};

// What an evaluation holds: the program bound to a mailbox, and the message being looked at.
struct SearchState {
  bool bound = false;
  uint32_t messages = 0;
  uint32_t uid_max = 0;
  const std::vector<std::string>* keywords = nullptr;
  size_t keyword_count = 0;
  std::vector<std::vector<SeqRange>> ranges;  // by set
  std::vector<uint64_t> keyword_masks;        // by keyword key

  bool failed = false;  // an accessor failed
  bool have_bytes = false, have_mime = false, have_fields = false;
  bool have_header_text = false, have_body_text = false, have_sent_day = false;
  std::string_view bytes;
  const MimeInfo* mime = nullptr;
  std::vector<HeaderField> fields;  // of the message header
  std::string values;               // folded field values, by HeaderField::value_offset
  std::string header_text;          // TEXT: the message header
  std::string part_headers;         // TEXT: MIME headers of the parts
  std::string body_text;            // BODY and TEXT: NUL between parts
  int64_t sent_day = -1;            // -1: no Date: that parses
  std::vector<HeaderField> part_fields;
  TextDecoder decoder;
};

}  // namespace

struct SearchProgram {
  std::vector<Node> nodes;  // nodes[0]: the AND of the top-level keys
  std::vector<std::string> strings;
  std::vector<SequenceSet> sets;
  std::vector<bool> set_is_uid;
  std::vector<uint32_t> keywords;  // string index of each KEYWORD/UNKEYWORD name
  bool needs_content = false;
  bool uses_modseq = false;
  SearchState state;  // reused by each search_matches
};

namespace {

enum class Arg : uint8_t {
  none,
  string,
  header,
  date,
  number,
  keyword,
  uid_set,
  key,
  two_keys,
  modseq
};

struct KeyDef {
  std::string_view name;
  Op op;
  Arg arg;
  uint64_t value = 0;
  std::string_view field = {};
};

constexpr KeyDef kKeys[] = {
    {"ALL", Op::all, Arg::none},
    {"ANSWERED", Op::flag_set, Arg::none, kFlagAnswered},
    {"BCC", Op::header, Arg::string, 0, "bcc"},
    {"BEFORE", Op::before, Arg::date},
    {"BODY", Op::body, Arg::string},
    {"CC", Op::header, Arg::string, 0, "cc"},
    {"DELETED", Op::flag_set, Arg::none, kFlagDeleted},
    {"DRAFT", Op::flag_set, Arg::none, kFlagDraft},
    {"FLAGGED", Op::flag_set, Arg::none, kFlagFlagged},
    {"FROM", Op::header, Arg::string, 0, "from"},
    {"HEADER", Op::header, Arg::header},
    {"KEYWORD", Op::keyword, Arg::keyword},
    {"LARGER", Op::larger, Arg::number},
    {"MODSEQ", Op::modseq, Arg::modseq},
    {"NEW", Op::none, Arg::none},  // RECENT UNSEEN, and nothing is recent
    {"NOT", Op::not_, Arg::key},
    {"OLD", Op::all, Arg::none},
    {"ON", Op::on, Arg::date},
    {"OR", Op::or_, Arg::two_keys},
    {"RECENT", Op::none, Arg::none},
    {"SEEN", Op::flag_set, Arg::none, kFlagSeen},
    {"SENTBEFORE", Op::sent_before, Arg::date},
    {"SENTON", Op::sent_on, Arg::date},
    {"SENTSINCE", Op::sent_since, Arg::date},
    {"SINCE", Op::since, Arg::date},
    {"SMALLER", Op::smaller, Arg::number},
    {"SUBJECT", Op::header, Arg::string, 0, "subject"},
    {"TEXT", Op::text, Arg::string},
    {"TO", Op::header, Arg::string, 0, "to"},
    {"UID", Op::uid, Arg::uid_set},
    {"UNANSWERED", Op::flag_clear, Arg::none, kFlagAnswered},
    {"UNDELETED", Op::flag_clear, Arg::none, kFlagDeleted},
    {"UNDRAFT", Op::flag_clear, Arg::none, kFlagDraft},
    {"UNFLAGGED", Op::flag_clear, Arg::none, kFlagFlagged},
    {"UNKEYWORD", Op::unkeyword, Arg::keyword},
    {"UNSEEN", Op::flag_clear, Arg::none, kFlagSeen},
};

bool reads_content(Op op) {
  switch (op) {
    case Op::header:
    case Op::body:
    case Op::text:
    case Op::sent_before:
    case Op::sent_on:
    case Op::sent_since: return true;
    default: return false;
  }
}

class Parser {
 public:
  Parser(CommandReader* r, SearchProgram* p, std::string* error) : r_(r), p_(p), error_(error) {}

  SearchParse parse(SearchCommand* out) {
    if (!return_options(out)) return SearchParse::bad;
    CommandReader save = *r_;
    std::string_view word;
    if (r_->atom(&word) && equals_nocase(word, "CHARSET")) {
      std::string_view charset;
      if (!r_->sp() || !r_->astring(&charset, &scratch_) || !r_->sp()) {
        fail("CHARSET needs a charset name");
        return SearchParse::bad;
      }
      if (!equals_nocase(charset, "UTF-8") && !equals_nocase(charset, "US-ASCII")) {
        *error_ = "unsupported charset";
        return SearchParse::bad_charset;
      }
    } else {
      *r_ = save;
    }
    uint32_t root = begin(Op::and_);
    for (;;) {
      if (!key(1)) return SearchParse::bad;
      if (r_->at_end()) break;
      if (!r_->sp()) {
        fail(r_->peek(')') ? "unbalanced parentheses" : "expected SP or end of line");
        return SearchParse::bad;
      }
    }
    end(root);
    p_->needs_content = p_->nodes[0].content;
    return SearchParse::ok;
  }

 private:
  bool fail(const char* why) {
    if (error_->empty()) *error_ = why;
    return false;
  }

  bool return_options(SearchCommand* out) {
    CommandReader save = *r_;
    std::string_view word;
    if (!r_->atom(&word) || !equals_nocase(word, "RETURN")) {
      *r_ = save;
      return true;
    }
    if (!r_->sp() || !r_->ch('(')) return fail("RETURN needs a list of options");
    out->esearch = true;
    while (!r_->ch(')')) {
      if (out->returns != 0 && !r_->sp()) return fail("bad RETURN list");
      std::string_view opt;
      if (!r_->atom(&opt)) return fail("bad RETURN list");
      uint8_t bit = equals_nocase(opt, "MIN")     ? kReturnMin
                    : equals_nocase(opt, "MAX")   ? kReturnMax
                    : equals_nocase(opt, "ALL")   ? kReturnAll
                    : equals_nocase(opt, "COUNT") ? kReturnCount
                    : equals_nocase(opt, "SAVE")  ? kReturnSave
                                                  : 0;
      if (bit == 0) return fail("unknown RETURN option");
      out->returns |= bit;
    }
    if (out->returns == 0) out->returns = kReturnAll;
    if (!r_->sp()) return fail("RETURN needs search keys");
    return true;
  }

  uint32_t begin(Op op) {
    p_->nodes.push_back(Node{.op = op, .content = reads_content(op)});
    return static_cast<uint32_t>(p_->nodes.size() - 1);
  }
  void end(uint32_t i) {
    Node& n = p_->nodes[i];
    n.size = static_cast<uint32_t>(p_->nodes.size()) - i;
    for (uint32_t c = i + 1; c < i + n.size; c += p_->nodes[c].size)
      n.content = n.content || p_->nodes[c].content;
  }
  uint32_t add_string(std::string_view s) {
    p_->strings.emplace_back(s);
    return static_cast<uint32_t>(p_->strings.size() - 1);
  }

  bool key(uint32_t depth) {
    if (depth > kSearchDepthMax) return fail("search keys too deeply nested");
    if (++keys_ > kSearchKeysMax) return fail("too many search keys");
    if (r_->ch('(')) {
      uint32_t i = begin(Op::and_);
      do {
        if (!key(depth + 1)) return false;
      } while (r_->sp());
      if (!r_->ch(')')) return fail("unbalanced parentheses");
      end(i);
      return true;
    }
    std::string_view rest = r_->rest();
    if (!rest.empty() && (is_digit(rest[0]) || rest[0] == '*' || rest[0] == '$'))
      return set_key(Op::seq);
    std::string_view name;
    if (!r_->atom(&name)) return fail("search key expected");
    for (const KeyDef& def : kKeys)
      if (equals_nocase(name, def.name)) return key_with_args(def, depth);
    return fail("unknown search key");
  }

  bool set_key(Op op) {
    std::string_view text;
    SequenceSet set;
    if (!r_->sequence_set_text(&text) || !set.parse(text)) return fail("bad sequence set");
    if (set.is_saved()) {
      end(begin(Op::saved));
      return true;
    }
    uint32_t i = begin(op);
    p_->nodes[i].a = static_cast<uint32_t>(p_->sets.size());
    p_->sets.push_back(std::move(set));
    p_->set_is_uid.push_back(op == Op::uid);
    end(i);
    return true;
  }

  // SP astring, case-folded.
  bool needle(uint32_t* index) {
    std::string_view s;
    if (!r_->sp() || !r_->astring(&s, &scratch_)) return fail("missing search string");
    std::string folded;
    fold_append(s, &folded);
    *index = add_string(folded);
    return true;
  }

  bool date(uint64_t* value) {
    std::string_view s;
    if (!r_->sp()) return fail("missing date");
    bool ok = r_->peek('"') ? r_->string(&s, &scratch_) : r_->atom(&s);
    int64_t day = 0;
    if (!ok || !parse_imap_date(s, &day) || day < 0) return fail("bad date");
    *value = static_cast<uint64_t>(day);
    return true;
  }

  // MODSEQ [entry-name SP entry-type-req SP] mod-sequence-valzer (RFC 7162 section 3.1.5).
  bool modseq(uint64_t* value) {
    if (!r_->sp()) return fail("missing MODSEQ value");
    if (r_->peek('"') || r_->peek('{')) {
      std::string_view entry, type;
      if (!r_->string(&entry, &scratch_) || entry.size() <= 7 ||
          !equals_nocase(entry.substr(0, 7), "/flags/"))
        return fail("bad MODSEQ entry name");
      if (!r_->sp() || !r_->atom(&type) ||
          !(equals_nocase(type, "priv") || equals_nocase(type, "shared") ||
            equals_nocase(type, "all")) ||
          !r_->sp())
        return fail("bad MODSEQ entry type");
    }
    if (!r_->number(value, INT64_MAX)) return fail("bad MODSEQ value");
    return true;
  }

  bool key_with_args(const KeyDef& def, uint32_t depth) {
    uint32_t i = begin(def.op);
    p_->nodes[i].value = def.value;
    switch (def.arg) {
      case Arg::none: break;
      case Arg::string:
        if (!needle(&p_->nodes[i].b)) return false;
        if (def.op == Op::header) {
          p_->nodes[i].a = add_string(def.field);
        } else if (p_->strings[p_->nodes[i].b].empty()) {
          p_->nodes[i] = Node{.op = Op::all};  // BODY "" and TEXT "": every message
        }
        break;
      case Arg::header: {
        std::string_view field;
        if (!r_->sp() || !r_->astring(&field, &scratch_)) return fail("missing header field name");
        p_->nodes[i].a = add_string(field);
        if (!needle(&p_->nodes[i].b)) return false;
        break;
      }
      case Arg::date:
        if (!date(&p_->nodes[i].value)) return false;
        break;
      case Arg::number:
        if (!r_->sp() || !r_->number(&p_->nodes[i].value, UINT64_MAX))
          return fail("missing number");
        break;
      case Arg::keyword: {
        std::string_view kw;
        if (!r_->sp() || !r_->atom(&kw)) return fail("missing keyword");
        p_->nodes[i].a = static_cast<uint32_t>(p_->keywords.size());
        p_->keywords.push_back(add_string(kw));
        break;
      }
      case Arg::uid_set:
        p_->nodes.pop_back();  // set_key adds the node
        if (!r_->sp()) return fail("missing UID set");
        return set_key(Op::uid);
      case Arg::key:
        if (!r_->sp() || !key(depth + 1)) return fail("NOT needs a search key");
        break;
      case Arg::two_keys:
        if (!r_->sp() || !key(depth + 1) || !r_->sp() || !key(depth + 1))
          return fail("OR needs two search keys");
        break;
      case Arg::modseq:
        if (!modseq(&p_->nodes[i].value)) return false;
        p_->uses_modseq = true;
        break;
    }
    end(i);
    return true;
  }

  CommandReader* r_;
  SearchProgram* p_;
  std::string* error_;
  std::string scratch_;
  uint32_t keys_ = 0;
};

// One message's evaluation.
class Evaluator {
 public:
  Evaluator(const SearchProgram& p, SearchState* s, const SearchMailbox& box,
            const SearchMessage& msg)
      : p_(p), s_(*s), box_(box), msg_(msg), rec_(*msg.rec) {}

  bool eval(uint32_t i) {
    const Node& n = p_.nodes[i];
    switch (n.op) {
      case Op::all: return true;
      case Op::none: return false;
      case Op::flag_set: return (rec_.flags & n.value) != 0;
      case Op::flag_clear: return (rec_.flags & n.value) == 0;
      case Op::keyword: return (rec_.keywords & s_.keyword_masks[n.a]) != 0;
      case Op::unkeyword: return (rec_.keywords & s_.keyword_masks[n.a]) == 0;
      case Op::larger: return rec_.size > n.value;
      case Op::smaller: return rec_.size < n.value;
      case Op::before: return internal_day() < static_cast<int64_t>(n.value);
      case Op::on: return internal_day() == static_cast<int64_t>(n.value);
      case Op::since: return internal_day() >= static_cast<int64_t>(n.value);
      case Op::sent_before: return load_sent_day() && s_.sent_day < static_cast<int64_t>(n.value);
      case Op::sent_on: return load_sent_day() && s_.sent_day == static_cast<int64_t>(n.value);
      case Op::sent_since: return load_sent_day() && s_.sent_day >= static_cast<int64_t>(n.value);
      case Op::header: return header_contains(p_.strings[n.a], p_.strings[n.b]);
      case Op::body: return load_body_text() && contains(s_.body_text, p_.strings[n.b]);
      case Op::text: return text_contains(p_.strings[n.b]);
      case Op::seq: return ranges_contain(s_.ranges[n.a], msg_.seq);
      case Op::uid: return ranges_contain(s_.ranges[n.a], rec_.uid);
      case Op::saved:
        return box_.saved_uids &&
               std::binary_search(box_.saved_uids->begin(), box_.saved_uids->end(), rec_.uid);
      case Op::modseq: return rec_.modseq >= n.value;
      case Op::not_: return !eval(i + 1);
      case Op::or_:
      case Op::and_: {
        // Keys that need no message bytes first: they often decide without reading any.
        const bool decisive = n.op == Op::or_;
        for (int content = 0; content <= (n.content ? 1 : 0); content++) {
          for (uint32_t c = i + 1; c < i + n.size; c += p_.nodes[c].size) {
            if (p_.nodes[c].content != (content == 1)) continue;
            if (eval(c) == decisive) return decisive;
            if (s_.failed) return false;
          }
        }
        return !decisive;
      }
    }
    RM_ASSERT_MSG(false, "unknown search op");
  }

 private:
  int64_t internal_day() const {
    int64_t t = rec_.internal_date;
    int64_t shifted;
    if (__builtin_add_overflow(t, int64_t{box_.tz_offset_minutes} * 60, &shifted)) shifted = t;
    return day_of_time(shifted);
  }

  bool load_bytes() {
    if (s_.have_bytes) return true;
    RM_ASSERT(msg_.bytes);
    if (!msg_.bytes(&s_.bytes)) return s_.failed = true, false;
    s_.have_bytes = true;
    return true;
  }

  bool load_mime() {
    if (s_.have_mime) return true;
    RM_ASSERT(msg_.mime);
    if (!load_bytes() || !msg_.mime(&s_.mime)) return s_.failed = true, false;
    // A structure of other bytes would slice out of range: storage handed back mismatched data.
    if (s_.mime == nullptr || s_.mime->parts.empty() || s_.mime->message_bytes != s_.bytes.size())
      return s_.failed = true, false;
    s_.have_mime = true;
    return true;
  }

  bool load_fields() {
    if (s_.have_fields) return true;
    if (!load_bytes()) return false;
    split_header(s_.bytes, &s_.fields);
    s_.values.clear();
    s_.have_fields = true;
    return true;
  }

  bool header_contains(std::string_view field, std::string_view needle) {
    if (!load_fields()) return false;
    for (HeaderField& f : s_.fields) {
      if (!equals_nocase(f.name, field)) continue;
      if (needle.empty()) return true;
      if (!f.folded) {
        f.value_offset = s_.values.size();
        s_.decoder.header_value(f.value, &s_.values);
        f.value_length = s_.values.size() - f.value_offset;
        f.folded = true;
      }
      if (contains(std::string_view(s_.values).substr(f.value_offset, f.value_length), needle))
        return true;
    }
    return false;
  }

  bool load_sent_day() {
    if (s_.have_sent_day) return s_.sent_day >= 0;
    if (!load_fields()) return false;
    s_.sent_day = -1;
    for (const HeaderField& f : s_.fields) {
      if (!equals_nocase(f.name, "date")) continue;
      int64_t day = 0;
      if (parse_date_field(f.value, &day) && day >= 0) s_.sent_day = day;
      break;
    }
    s_.have_sent_day = true;
    return s_.sent_day >= 0;
  }

  bool load_body_text() {
    if (s_.have_body_text) return true;
    if (!load_mime()) return false;
    const MimeInfo& m = *s_.mime;
    s_.body_text.clear();
    s_.part_headers.clear();
    for (size_t i = 0; i < m.parts.size(); i++) {
      const MimePart& part = m.parts[i];
      RM_ASSERT(part.end_offset() <= s_.bytes.size());
      if (i > 0) {
        // The header of an attached message is body text of this one; a MIME header is not.
        bool attached = m.parts[i - 1].kind == MimeKind::message;
        split_header(s_.bytes.substr(part.header_offset, part.header_length), &s_.part_fields);
        s_.decoder.header_text(s_.part_fields, attached ? &s_.body_text : &s_.part_headers);
      }
      if (part.kind != MimeKind::text) continue;
      std::string_view cte = part.encoding.is_nil() ? "" : m.str(part.encoding);
      s_.decoder.body(s_.bytes.substr(part.body_offset(), part.body_length), cte, charset(m, part),
                      &s_.body_text);
      s_.body_text.push_back('\0');  // no match across parts
    }
    s_.have_body_text = true;
    return true;
  }

  static std::string_view charset(const MimeInfo& m, const MimePart& part) {
    for (uint32_t k = 0; k < part.params.count; k++) {
      const MimeParam& prm = m.params[part.params.first + k];
      if (!prm.name.is_nil() && !prm.value.is_nil() && equals_nocase(m.str(prm.name), "charset"))
        return m.str(prm.value);
    }
    return "us-ascii";
  }

  bool text_contains(std::string_view needle) {
    if (!load_fields()) return false;
    if (!s_.have_header_text) {
      s_.header_text.clear();
      s_.decoder.header_text(s_.fields, &s_.header_text);
      s_.have_header_text = true;
    }
    if (contains(s_.header_text, needle)) return true;
    if (!load_body_text()) return false;
    return contains(s_.part_headers, needle) || contains(s_.body_text, needle);
  }

  const SearchProgram& p_;
  SearchState& s_;
  const SearchMailbox& box_;
  const SearchMessage& msg_;
  const MessageRecord& rec_;
};

// Resolves the sets and keywords against the mailbox, unless they already are.
void bind_mailbox(const SearchProgram& p, SearchState* s, const SearchMailbox& box) {
  size_t keyword_count = box.keywords ? std::min(box.keywords->size(), size_t{64}) : 0;
  if (s->bound && s->messages == box.messages && s->uid_max == box.uid_max &&
      s->keywords == box.keywords && s->keyword_count == keyword_count)
    return;
  s->ranges.resize(p.sets.size());
  for (size_t i = 0; i < p.sets.size(); i++)
    s->ranges[i] = p.sets[i].resolve(p.set_is_uid[i] ? box.uid_max : box.messages);
  s->keyword_masks.assign(p.keywords.size(), 0);
  for (size_t k = 0; k < p.keywords.size(); k++)
    for (size_t bit = 0; bit < keyword_count; bit++)
      if (equals_nocase((*box.keywords)[bit], p.strings[p.keywords[k]]))
        s->keyword_masks[k] |= uint64_t{1} << bit;
  s->bound = true;
  s->messages = box.messages;
  s->uid_max = box.uid_max;
  s->keywords = box.keywords;
  s->keyword_count = keyword_count;
}

void start_message(SearchState* s) {
  s->failed = false;
  s->have_bytes = s->have_mime = s->have_fields = false;
  s->have_header_text = s->have_body_text = s->have_sent_day = false;
  s->bytes = {};
  s->mime = nullptr;
  for (std::string* b : {&s->values, &s->header_text, &s->part_headers, &s->body_text})
    if (b->capacity() > kBufferKeepBytes) std::string().swap(*b);
  s->decoder.trim();
}

}  // namespace

SearchCommand::SearchCommand() = default;
SearchCommand::~SearchCommand() = default;
SearchCommand::SearchCommand(SearchCommand&&) noexcept = default;
SearchCommand& SearchCommand::operator=(SearchCommand&&) noexcept = default;

SearchParse parse_search(CommandReader& r, SearchCommand* out, std::string* error) {
  *out = SearchCommand();
  out->program = std::make_unique<SearchProgram>();
  error->clear();
  Parser parser(&r, out->program.get(), error);
  SearchParse result = parser.parse(out);
  if (result != SearchParse::ok) {
    RM_ASSERT(!error->empty());
    *out = SearchCommand();
    return result;
  }
  out->uses_modseq = out->program->uses_modseq;
  return result;
}

bool search_matches(const SearchCommand& cmd, const SearchMailbox& box, const SearchMessage& msg,
                    bool* matched) {
  RM_ASSERT(cmd.program != nullptr);
  RM_ASSERT(msg.rec != nullptr);
  SearchProgram& p = *cmd.program;
  bind_mailbox(p, &p.state, box);
  start_message(&p.state);
  *matched = Evaluator(p, &p.state, box, msg).eval(0);
  return !p.state.failed;
}

bool search_needs_content(const SearchCommand& cmd) {
  return cmd.program != nullptr && cmd.program->needs_content;
}

uint32_t search_max_sequence_number(const SearchCommand& cmd) {
  uint32_t max = 0;
  const SearchProgram& p = *cmd.program;
  for (size_t i = 0; i < p.sets.size(); i++) {
    if (p.set_is_uid[i]) continue;
    for (SeqRange r : p.sets[i].ranges()) max = std::max({max, r.lo, r.hi});
  }
  return max;
}

}  // namespace ringmail
