#include "protocol/mutf7.h"

#include <cstdint>

namespace ringmail {
namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
static_assert(sizeof(kBase64Alphabet) == 64 + 1);

constexpr char32_t kCodePointMax = 0x10FFFF;
constexpr char32_t kSurrogateFirst = 0xD800;
constexpr char32_t kLowSurrogateFirst = 0xDC00;
constexpr char32_t kSurrogateLast = 0xDFFF;

bool is_printable_ascii(char32_t c) {
  return c >= 0x20 && c <= 0x7e;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

// Decodes the code point at s[*pos] and advances *pos past it. False on any malformation.
// REQUIRES: *pos < s.size().
bool next_code_point(std::string_view s, size_t* pos, char32_t* cp) {
  auto b0 = static_cast<unsigned char>(s[*pos]);
  if (b0 < 0x80) {
    *cp = b0;
    ++*pos;
    return true;
  }
  size_t len;
  char32_t min;
  char32_t v;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, v = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, v = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, v = b0 & 0x07;
  } else {
    return false;  // a continuation byte, or 0xF8-0xFF
  }
  if (s.size() - *pos < len) return false;
  for (size_t i = 1; i < len; i++) {
    auto b = static_cast<unsigned char>(s[*pos + i]);
    if ((b & 0xC0) != 0x80) return false;
    v = v << 6 | (b & 0x3F);
  }
  if (v < min || v > kCodePointMax || (v >= kSurrogateFirst && v <= kSurrogateLast)) return false;
  *cp = v;
  *pos += len;
  return true;
}

// REQUIRES: cp is a scalar value (<= U+10FFFF, not a surrogate).
void append_utf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | cp >> 6));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | cp >> 12));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | cp >> 18));
    out->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Writes UTF-16 units as one "&...-" run, opened on the first unit.
class RunWriter {
 public:
  explicit RunWriter(std::string* out) : out_(out) {}

  void add(char16_t unit) {
    if (!open_) out_->push_back('&');
    open_ = true;
    bits_ = (bits_ << 16 | unit) & 0x3FFFFF;  // Invariant: bit_count_ < 6 before, so <= 21 after
    bit_count_ += 16;
    while (bit_count_ >= 6) {
      bit_count_ -= 6;
      out_->push_back(kBase64Alphabet[bits_ >> bit_count_ & 0x3F]);
    }
  }

  // Pads the last character with zero bits and writes the "-".
  void close() {
    if (!open_) return;
    if (bit_count_ > 0) out_->push_back(kBase64Alphabet[bits_ << (6 - bit_count_) & 0x3F]);
    out_->push_back('-');
    open_ = false;
    bits_ = 0;
    bit_count_ = 0;
  }

 private:
  std::string* out_;
  bool open_ = false;
  uint32_t bits_ = 0;
  int bit_count_ = 0;
};

// Takes one decoded UTF-16 unit; *high holds a high surrogate awaiting its pair (0 if none).
bool add_unit(char16_t unit, char16_t* high, std::string* out) {
  bool is_low = unit >= kLowSurrogateFirst && unit <= kSurrogateLast;
  if (*high != 0) {
    if (!is_low) return false;
    char32_t cp =
        0x10000 + ((char32_t{*high} - kSurrogateFirst) << 10) + (unit - kLowSurrogateFirst);
    *high = 0;
    append_utf8(cp, out);
    return true;
  }
  if (is_low) return false;
  if (unit >= kSurrogateFirst && unit < kLowSurrogateFirst) {
    *high = unit;
    return true;
  }
  if (is_printable_ascii(unit)) return false;  // must have been written as itself
  append_utf8(unit, out);
  return true;
}

// Decodes the base64 after an "&" through its closing "-"; *pos starts on the first base64
// character and ends past the "-".
bool decode_run(std::string_view in, size_t* pos, std::string* out) {
  uint32_t bits = 0;
  int bit_count = 0;
  size_t units = 0;
  char16_t high = 0;
  while (true) {
    if (*pos == in.size()) return false;  // unterminated
    char c = in[(*pos)++];
    if (c == '-') break;
    int v = base64_value(c);
    if (v < 0) return false;
    bits = (bits << 6 | static_cast<uint32_t>(v)) & 0x3FFFFF;
    bit_count += 6;
    if (bit_count >= 16) {
      bit_count -= 16;
      units++;
      if (!add_unit(static_cast<char16_t>(bits >> bit_count), &high, out)) return false;
    }
  }
  // The encoder pads with fewer than 6 zero bits: 0, 2 or 4 bits are left over.
  if (units == 0 || bit_count >= 6 || (bits & ((1u << bit_count) - 1)) != 0) return false;
  return high == 0;
}

bool fail(std::string* out) {
  out->clear();
  return false;
}

}  // namespace

bool utf8_to_mutf7(std::string_view utf8, std::string* out) {
  out->clear();
  RunWriter run(out);
  size_t pos = 0;
  while (pos < utf8.size()) {
    char32_t cp;
    if (!next_code_point(utf8, &pos, &cp)) return fail(out);
    if (is_printable_ascii(cp)) {
      run.close();
      if (cp == '&') {
        out->append("&-");
      } else {
        out->push_back(static_cast<char>(cp));
      }
    } else if (cp < 0x10000) {
      run.add(static_cast<char16_t>(cp));
    } else {
      run.add(static_cast<char16_t>(kSurrogateFirst + ((cp - 0x10000) >> 10)));
      run.add(static_cast<char16_t>(kLowSurrogateFirst + ((cp - 0x10000) & 0x3FF)));
    }
  }
  run.close();
  return true;
}

bool mutf7_to_utf8(std::string_view mutf7, std::string* out) {
  out->clear();
  size_t pos = 0;
  bool after_run = false;  // the previous token was a "&...-" run
  while (pos < mutf7.size()) {
    char c = mutf7[pos++];
    if (!is_printable_ascii(static_cast<unsigned char>(c))) return fail(out);
    if (c != '&') {
      out->push_back(c);
      after_run = false;
    } else if (pos < mutf7.size() && mutf7[pos] == '-') {
      out->push_back('&');
      pos++;
      after_run = false;
    } else {
      if (after_run) return fail(out);  // one run would have done; not canonical
      if (!decode_run(mutf7, &pos, out)) return fail(out);
      after_run = true;
    }
  }
  return true;
}

bool valid_utf8(std::string_view s) {
  size_t pos = 0;
  char32_t cp;
  while (pos < s.size()) {
    if (!next_code_point(s, &pos, &cp)) return false;
  }
  return true;
}

}  // namespace ringmail
