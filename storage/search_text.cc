#include "storage/search_text.h"

#include <iconv.h>
#include <strings.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/assert.h"

namespace ringmail {
namespace {

// Decode buffers grow to the largest message read; past this they are released after it.
// Scratch kept between messages. Every open user's full-text indexing has its own (UserMail):
// what one large message grew is given back, or 50 users kept 200 MB between them.
constexpr size_t kBufferKeepBytes = 256u << 10;
constexpr size_t kCharsetNameBytesMax = 64;
constexpr size_t kIconvOpenMax = 8;  // converters kept open, by charset name

bool equals_nocase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}
bool is_wsp(char c) {
  return c == ' ' || c == '\t';
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

}  // namespace

void fold_append(std::string_view in, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  const size_t base = out->size();
  out->resize(base + n);  // a fold is never longer than its source
  char* w = out->data() + base;
  constexpr uint64_t kOnes = 0x0101010101010101;
  constexpr uint64_t kHigh = 0x8080808080808080;
  for (size_t i = 0; i < n;) {
    // Eight ASCII octets at a time: each of A-Z gets 0x20 added (SWAR: per-byte compares by
    // carries into the high bit, which no ASCII octet has set).
    while (i + 8 <= n) {
      uint64_t x;
      memcpy(&x, p + i, 8);
      if ((x & kHigh) != 0) break;
      const uint64_t ge_a = x + (0x80 - 'A') * kOnes;  // high bit set where byte >= 'A'
      const uint64_t gt_z = x + (0x7F - 'Z') * kOnes;  // high bit set where byte > 'Z'
      x |= ((ge_a & ~gt_z) & kHigh) >> 2;
      memcpy(w, &x, 8);
      w += 8;
      i += 8;
    }
    if (i == n) break;
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

namespace {

// ---- Content-Transfer-Encodings (RFC 2045) and RFC 2047 Q

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Tolerant: octets outside the alphabet are skipped; "=" ends a group (bits left over are
// dropped), so concatenated encodings decode too.
// The value of each base64 letter; 64 for "=", 65 for anything else.
constexpr std::array<uint8_t, 256> kBase64Values = [] {
  std::array<uint8_t, 256> t{};
  t.fill(65);
  const char* letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (uint8_t i = 0; i < 64; i++) t[static_cast<unsigned char>(letters[i])] = i;
  t['='] = 64;
  return t;
}();

void decode_base64(std::string_view in, std::string* out) {
  const size_t base = out->size();
  out->resize(base + in.size() / 4 * 3 + 3);  // at most this; cut to what was written below
  char* w = out->data() + base;
  uint32_t bits = 0;
  int nbits = 0;
  for (char ch : in) {
    const uint8_t v = kBase64Values[static_cast<unsigned char>(ch)];
    if (v >= 64) {
      if (v == 64) bits = 0, nbits = 0;
      continue;
    }
    bits = (bits << 6) | v;
    nbits += 6;
    if (nbits >= 8) {
      nbits -= 8;
      *w++ = static_cast<char>((bits >> nbits) & 0xFF);
    }
  }
  out->resize(static_cast<size_t>(w - out->data()));
}

// Quoted-printable; `q` selects RFC 2047 "Q" (where "_" is a space). A soft line break ("=",
// optional transport padding, line end) disappears; a "=" that starts nothing valid is kept.
void decode_qp(std::string_view in, bool q, std::string* out) {
  const size_t n = in.size();
  for (size_t i = 0; i < n;) {
    size_t run = i;
    if (q) {
      while (run < n && in[run] != '=' && in[run] != '_') run++;
    } else {
      run = in.find('=', i);
      if (run == std::string_view::npos) run = n;
    }
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

}  // namespace

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

namespace {

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

bool starts_nocase(std::string_view s, size_t i, std::string_view prefix) {
  return s.size() - i >= prefix.size() && equals_nocase(s.substr(i, prefix.size()), prefix);
}

// Tags that end a line of text: each becomes a line feed, every other tag nothing (so
// "<b>wor</b>d" reads "word").
bool breaks_line(std::string_view name) {
  static constexpr std::string_view kBlock[] = {
      "p",  "br", "div", "li", "tr",    "td", "th",  "h1",         "h2", "h3", "h4",
      "h5", "h6", "ul",  "ol", "table", "hr", "pre", "blockquote", "dt", "dd", "title"};
  for (std::string_view b : kBlock)
    if (equals_nocase(name, b)) return true;
  return false;
}

// Appends what an HTML document (UTF-8) shows as text: tags and comments removed (a line feed
// for the tags breaks_line() names), the contents of script and style elements dropped, and
// the character references &amp; &lt; &gt; &quot; &apos; &nbsp; (a space) and &#N; &#xH;
// decoded. A "<" that opens no tag (not followed by a letter, "/" or "!", or by no ">") and an
// unknown reference stay as they are.
void html_to_text(std::string_view in, std::string* out) {
  const size_t n = in.size();
  for (size_t i = 0; i < n;) {
    // (find_first_of with two characters calls memchr once per input byte: a loop is faster.)
    size_t stop = i;
    while (stop < n && in[stop] != '<' && in[stop] != '&') stop++;
    out->append(in.data() + i, stop - i);
    i = stop;
    if (i == n) break;
    if (in[i] == '<') {
      const char next = i + 1 < n ? in[i + 1] : ' ';
      if (!((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || next == '/' ||
            next == '!')) {
        out->push_back('<');  // "3 < 4": not a tag
        i++;
        continue;
      }
      if (starts_nocase(in, i, "<!--")) {
        size_t end = in.find("-->", i + 4);
        i = end == std::string_view::npos ? n : end + 3;
        continue;
      }
      const size_t close = in.find('>', i + 1);
      if (close == std::string_view::npos) {
        out->append(in.substr(i));
        break;
      }
      const bool end_tag_here = i + 1 < close && in[i + 1] == '/';
      const bool self_closing = in[close - 1] == '/';
      size_t k = end_tag_here ? i + 2 : i + 1;
      size_t name_end = k;
      while (name_end < close && ((in[name_end] >= 'a' && in[name_end] <= 'z') ||
                                  (in[name_end] >= 'A' && in[name_end] <= 'Z') ||
                                  (in[name_end] >= '0' && in[name_end] <= '9')))
        name_end++;
      const std::string_view name = in.substr(k, name_end - k);
      i = close + 1;
      if (breaks_line(name)) out->push_back('\n');
      if (!end_tag_here && !self_closing &&
          (equals_nocase(name, "script") || equals_nocase(name, "style"))) {
        // Skip to the element's end tag.
        const std::string end_tag = std::string("</") + std::string(name);
        size_t e = i;
        while (e < n && !starts_nocase(in, e, end_tag)) {
          e = in.find('<', e + 1);
          if (e == std::string_view::npos) e = n;
        }
        const size_t gt = e < n ? in.find('>', e) : std::string_view::npos;
        i = gt == std::string_view::npos ? n : gt + 1;
      }
      continue;
    }
    // A character reference.
    const size_t semi = in.find(';', i + 1);
    if (semi == std::string_view::npos || semi - i > 10) {
      out->push_back('&');
      i++;
      continue;
    }
    const std::string_view ref = in.substr(i + 1, semi - i - 1);
    int64_t cp = -1;
    if (ref == "amp")
      cp = '&';
    else if (ref == "lt")
      cp = '<';
    else if (ref == "gt")
      cp = '>';
    else if (ref == "quot")
      cp = '"';
    else if (ref == "apos")
      cp = '\'';
    else if (ref == "nbsp")
      cp = ' ';
    else if (ref.size() >= 2 && ref[0] == '#') {
      const bool hex = ref[1] == 'x' || ref[1] == 'X';
      int64_t v = 0;
      size_t d = hex ? 2 : 1;
      for (; d < ref.size() && v <= 0x10FFFF; d++) {
        const int x =
            hex ? hex_value(ref[d]) : (ref[d] >= '0' && ref[d] <= '9' ? ref[d] - '0' : -1);
        if (x < 0) break;
        v = v * (hex ? 16 : 10) + x;
      }
      if (d == ref.size() && d > (hex ? 2u : 1u) && v > 0 && v <= 0x10FFFF &&
          !(v >= 0xD800 && v <= 0xDFFF))
        cp = v;
    }
    if (cp < 0) {
      out->push_back('&');
      i++;
      continue;
    }
    append_code_point(static_cast<char32_t>(cp), out);
    i = semi + 1;
  }
}

}  // namespace

struct TextDecoder::Impl {
  // Appends the fold of a header field value: unfolded, encoded words decoded (anywhere in the
  // value, as mail readers do, not only where RFC 2047 allows them), UTF-8.
  void header_value(std::string_view raw, std::string* out) {
    converted_.clear();
    decode_words(raw, &converted_);
    fold_append(converted_, out);
  }

  void display_value(std::string_view raw, std::string* out) { decode_words(raw, out); }

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
  void body(std::string_view raw, std::string_view cte, std::string_view charset, bool html,
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
    if (!charsets_.passes_through(charset)) {
      converted_.clear();
      charsets_.append_utf8(data, charset, &converted_);
      data = converted_;
    }
    if (html) {
      text_.clear();
      html_to_text(data, &text_);
      data = text_;
    }
    fold_append(data, out);
  }

  void trim() {
    for (std::string* s : {&unfolded_, &pending_, &decoded_, &converted_, &text_})
      if (s->capacity() > kBufferKeepBytes) std::string().swap(*s);
  }

  // White space between two encoded words disappears; adjacent words in one charset are
  // converted together, so a character split across them survives.
  void decode_words(std::string_view raw, std::string* out) {
    unfolded_.clear();
    for (size_t i = 0; i < raw.size();) {  // line ends out, in runs
      size_t j = i;
      while (j < raw.size() && raw[j] != '\r' && raw[j] != '\n') j++;
      unfolded_.append(raw.data() + i, j - i);
      i = j + 1;
    }
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
  std::string text_;  // an HTML body reduced to text
};

TextDecoder::TextDecoder() : impl_(std::make_unique<Impl>()) {}
TextDecoder::~TextDecoder() = default;
TextDecoder::TextDecoder(TextDecoder&&) noexcept = default;
TextDecoder& TextDecoder::operator=(TextDecoder&&) noexcept = default;

void TextDecoder::header_value(std::string_view raw, std::string* out) {
  impl_->header_value(raw, out);
}
void TextDecoder::display_value(std::string_view raw, std::string* out) {
  impl_->display_value(raw, out);
}
void TextDecoder::header_text(const std::vector<HeaderField>& fields, std::string* out) {
  impl_->header_text(fields, out);
}
void TextDecoder::body(std::string_view raw, std::string_view cte, std::string_view charset,
                       bool html, std::string* out) {
  impl_->body(raw, cte, charset, html, out);
}
void TextDecoder::trim() {
  impl_->trim();
}

std::string_view mime_charset(const MimeInfo& m, const MimePart& part) {
  for (uint32_t k = 0; k < part.params.count; k++) {
    const MimeParam& prm = m.params[part.params.first + k];
    if (!prm.name.is_nil() && !prm.value.is_nil() && equals_nocase(m.str(prm.name), "charset"))
      return m.str(prm.value);
  }
  return "us-ascii";
}

void message_part_text(std::string_view bytes, const MimeInfo& m, size_t i, TextDecoder* decoder,
                       std::vector<HeaderField>* part_fields, std::string* body_text,
                       std::string* part_headers) {
  const MimePart& part = m.parts[i];
  RM_ASSERT(part.end_offset() <= bytes.size());
  // The header of an attached message is body text of this one; a MIME header is not.
  const bool attached = i > 0 && m.parts[i - 1].kind == MimeKind::message;
  if (i > 0 && (attached || part_headers != nullptr)) {
    split_header(bytes.substr(part.header_offset, part.header_length), part_fields);
    decoder->header_text(*part_fields, attached ? body_text : part_headers);
  }
  if (part.kind != MimeKind::text) return;
  std::string_view cte = part.encoding.is_nil() ? "" : m.str(part.encoding);
  const bool html = !part.subtype.is_nil() && equals_nocase(m.str(part.subtype), "html");
  decoder->body(bytes.substr(part.body_offset(), part.body_length), cte, mime_charset(m, part),
                html, body_text);
  body_text->push_back('\0');  // no match across parts
}

void message_body_text(std::string_view bytes, const MimeInfo& m, TextDecoder* decoder,
                       std::vector<HeaderField>* part_fields, std::string* body_text,
                       std::string* part_headers) {
  body_text->clear();
  if (part_headers != nullptr) part_headers->clear();
  for (size_t i = 0; i < m.parts.size(); i++)
    message_part_text(bytes, m, i, decoder, part_fields, body_text, part_headers);
}

void MessageText::extract(std::string_view bytes, const MimeInfo& mime, std::string* out) {
  split_header(bytes, &fields_);
  out->clear();
  decoder_.header_text(fields_, out);
  message_body_text(bytes, mime, &decoder_, &part_fields_, &body_, &part_headers_);
  out->push_back('\0');
  out->append(part_headers_);
  out->push_back('\0');
  out->append(body_);
  for (std::string* s : {&body_, &part_headers_})
    if (s->capacity() > kBufferKeepBytes) std::string().swap(*s);
  decoder_.trim();
}

}  // namespace ringmail
