#include "storage/mime_fields.h"

#include <algorithm>
#include <cstring>

#include "core/assert.h"

namespace ringmail {
namespace {

constexpr size_t kTextBytesMax = MimeParser::kTextBytesMax;
constexpr size_t kParamBytesMax = MimeParser::kParamBytesMax;
constexpr size_t kFieldParamsMax = MimeParser::kFieldParamsMax;
constexpr size_t kAddressesMax = MimeParser::kAddressesMax;
constexpr size_t kWordsMax = MimeParser::kWordsMax;
static_assert(kTextBytesMax < MimeString::kNil, "offsets into MimeInfo::text must fit");

using RawParam = MimeFieldScratch::RawParam;
using Token = MimeFieldScratch::Token;

bool atom_char(unsigned char c) {
  return (kClasses[c] & (kWsp | kCtl | kSpecial)) == 0;
}
// Unquoted parameter values: senders often leave '/', '=' or '?' unquoted (boundary=----=_Part),
// so a value runs to white space, ';', a quote or a comment rather than to the first tspecial.
bool loose_value_char(unsigned char c) {
  return (kClasses[c] & (kWsp | kCtl)) == 0 && c != ';' && c != '"' && c != '(';
}
// RFC 2231 attribute-char: what may stand unencoded in an extended value.
bool attribute_char(unsigned char c) {
  return c > 0x20 && c < 0x7f && (kClasses[c] & kTspecial) == 0 && c != '*' && c != '\'' &&
         c != '%';
}

class ParamParser {
 public:
  ParamParser(MimeTextWriter* text, MimeFieldScratch* scratch)
      : text_(text), out_(text->info()), s_(scratch) {}

  MimeList parse(FieldLexer* lx) {
    std::vector<RawParam>& raw = s_->raw_params;
    raw.clear();
    for (;;) {
      lx->skip_cfws();
      if (lx->done()) break;
      if (lx->peek() != ';') {
        lx->skip_to(";");
        continue;
      }
      lx->next();
      lx->skip_cfws();
      std::string_view name = lx->run(token_char);
      if (name.empty()) continue;
      lx->skip_cfws();
      if (lx->done() || lx->peek() != '=') continue;
      lx->next();
      lx->skip_cfws();
      RawParam rp;
      rp.name = name;
      if (!lx->done() && lx->peek() == '"') {
        uint32_t start = text_->mark();
        text_->append_unescaped(lx->quoted());
        rp.value = text_->since(start);
      } else {
        rp.value = text_->add(lx->run(loose_value_char));
      }
      if (raw.size() < kFieldParamsMax) raw.push_back(rp);
    }
    return emit_params();
  }

 private:
  // RFC 2231: "name*" is an extended value (charset'language'%XX), "name*N" and "name*N*" are
  // continuations. Returns false for a plain name.
  static bool classify_rfc2231(RawParam* rp) {
    std::string_view n = rp->name;
    if (n.empty() || n.find('*') == std::string_view::npos) return false;
    if (n.back() == '*') {
      rp->extended = true;
      n.remove_suffix(1);
    }
    size_t star = n.rfind('*');
    if (star != std::string_view::npos) {
      std::string_view digits = n.substr(star + 1);
      if (digits.empty() || digits.size() > 4 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        rp->extended = false;
        return false;
      }
      rp->section = 0;
      for (char c : digits) rp->section = rp->section * 10 + (c - '0');
      n = n.substr(0, star);
    } else if (!rp->extended) {
      return false;
    }
    if (n.empty()) {
      rp->extended = false;
      rp->section = -1;
      return false;
    }
    rp->base_length = static_cast<uint32_t>(n.size());
    rp->rfc2231 = true;
    return true;
  }

  MimeList emit_params() {
    std::vector<RawParam>& raw = s_->raw_params;
    bool any_rfc2231 = false;
    for (RawParam& rp : raw) any_rfc2231 |= classify_rfc2231(&rp);
    if (any_rfc2231) join_rfc2231();
    MimeList list{static_cast<uint32_t>(out_->params.size()), 0};
    for (const RawParam& rp : raw) {
      if (rp.rfc2231 && !rp.emits_group) continue;
      if (push_param(out_, rp.rfc2231 ? MimeParam{rp.group_name, rp.group_value}
                                      : MimeParam{text_->add(rp.name), rp.value}))
        list.count++;
    }
    return list;
  }

  // Groups continuations by name (case-insensitively), orders them by section number (gaps are
  // closed, a repeated section counts once) and joins them. A group with any extended section
  // becomes "name*" = charset'language'value, percent-encoded; ISO-8859-1 is converted to UTF-8
  // (RFC 9051 section 7.5.2), other charsets keep their label and bytes.
  void join_rfc2231() {
    std::vector<RawParam>& raw = s_->raw_params;
    std::vector<uint32_t>& order = s_->order;
    order.clear();
    for (uint32_t i = 0; i < raw.size(); i++)
      if (raw[i].rfc2231) order.push_back(i);
    auto base = [&](uint32_t i) { return raw[i].name.substr(0, raw[i].base_length); };
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      std::string_view x = base(a), y = base(b);
      int c = strncasecmp(x.data(), y.data(), std::min(x.size(), y.size()));
      if (c != 0) return c < 0;
      if (x.size() != y.size()) return x.size() < y.size();
      return std::max(raw[a].section, 0) < std::max(raw[b].section, 0);
    });
    for (size_t g = 0; g < order.size();) {
      size_t end = g + 1;
      while (end < order.size() && iequals(base(order[g]), base(order[end]))) end++;
      join_group(g, end);
      g = end;
    }
  }

  void join_group(size_t g, size_t end) {
    std::vector<RawParam>& raw = s_->raw_params;
    const std::vector<uint32_t>& order = s_->order;
    bool extended = false;
    uint32_t head = order[g];
    for (size_t i = g; i < end; i++) {
      extended |= raw[order[i]].extended;
      head = std::min(head, order[i]);
    }
    std::string& bytes = s_->bytes;
    std::string& value = s_->value;
    bytes.clear();
    value.clear();
    std::string charset, language;
    int previous = -2;
    for (size_t i = g; i < end; i++) {
      const RawParam& rp = raw[order[i]];
      int section = std::max(rp.section, 0);
      if (section == previous) continue;
      previous = section;
      std::string_view v = text_->view(rp.value);
      if (i == g && rp.extended) {
        size_t a1 = v.find('\'');
        size_t a2 = a1 == std::string_view::npos ? a1 : v.find('\'', a1 + 1);
        if (a2 != std::string_view::npos) {
          charset.assign(v.substr(0, a1));
          language.assign(v.substr(a1 + 1, a2 - a1 - 1));
          v.remove_prefix(a2 + 1);
        }
      }
      if (rp.extended) {
        percent_decode(v, &bytes);
      } else {
        bytes.append(v.substr(0, kParamBytesMax - bytes.size()));
      }
    }
    if (extended) {
      if (iequals(charset, "iso-8859-1") || iequals(charset, "latin1")) {
        charset = "utf-8";
        latin1_to_utf8(&bytes);
      }
      value = charset + "'" + language + "'";
      static constexpr char kHex[] = "0123456789ABCDEF";
      for (unsigned char c : bytes) {
        if (attribute_char(c)) {
          value.push_back(static_cast<char>(c));
        } else {
          value.push_back('%');
          value.push_back(kHex[c >> 4]);
          value.push_back(kHex[c & 15]);
        }
      }
    } else {
      value.swap(bytes);
    }
    RawParam& h = raw[head];
    h.emits_group = true;
    uint32_t start = text_->mark();
    text_->append(raw[order[g]].name.data(), raw[order[g]].base_length);
    if (extended) text_->append("*", 1);
    h.group_name = text_->since(start);
    h.group_value = text_->add(value);
  }

  static void percent_decode(std::string_view v, std::string* out) {
    auto hex = [](char c) {
      return c >= '0' && c <= '9'   ? c - '0'
             : c >= 'a' && c <= 'f' ? c - 'a' + 10
             : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                    : -1;
    };
    for (size_t i = 0; i < v.size() && out->size() < kParamBytesMax; i++) {
      if (v[i] == '%' && i + 2 < v.size() && hex(v[i + 1]) >= 0 && hex(v[i + 2]) >= 0) {
        out->push_back(static_cast<char>(hex(v[i + 1]) * 16 + hex(v[i + 2])));
        i += 2;
      } else {
        out->push_back(v[i]);  // a stray '%' stands for itself
      }
    }
  }

  static void latin1_to_utf8(std::string* s) {
    std::string out;
    out.reserve(s->size() * 2);
    for (unsigned char c : *s) {
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else {
        out.push_back(static_cast<char>(0xc0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
      }
    }
    s->swap(out);
  }

  MimeTextWriter* text_;
  MimeInfo* out_;
  MimeFieldScratch* s_;
};

class AddressParser {
 public:
  AddressParser(MimeTextWriter* text, MimeFieldScratch* scratch)
      : text_(text), out_(text->info()), s_(scratch) {}

  MimeList parse(FieldLexer lx) {
    MimeList list{static_cast<uint32_t>(out_->addresses.size()), 0};
    for (;;) {
      lx.skip_cfws();
      if (lx.done()) break;
      if (lx.peek() == ',' || lx.peek() == ';') {  // empty elements (RFC 5322 obs-addr-list)
        lx.next();
        continue;
      }
      address(&lx, false);
    }
    list.count = static_cast<uint32_t>(out_->addresses.size()) - list.first;
    return list;
  }

 private:
  // Words and dots up to the next special: a display name or a local-part.
  void read_words(FieldLexer* lx, std::string_view* comment) {
    std::vector<Token>& t = s_->tokens;
    t.clear();
    for (;;) {
      bool space = lx->skip_cfws(comment) && !t.empty();
      if (lx->done()) break;
      unsigned char c = lx->peek();
      Token token{Token::atom, space, {}};
      if (c == '"') {
        token = Token{Token::quoted, space, lx->quoted()};
      } else if (c == '.') {
        lx->next();
        token = Token{Token::dot, space, "."};
      } else if (atom_char(c)) {
        token.text = lx->run(atom_char);
      } else {
        break;
      }
      if (t.size() < kWordsMax) t.push_back(token);
    }
  }

  // The words as a display name (one space where the message had white space or comments) or
  // as a local-part (no spaces); quotes removed, as Dovecot does. NIL when empty.
  MimeString join_words(bool spaces) {
    uint32_t start = text_->mark();
    for (const Token& t : s_->tokens) {
      if (spaces && t.space_before) text_->append(" ", 1);
      if (t.kind == Token::quoted) {
        text_->append_unescaped(t.text);
      } else {
        text_->append(t.text.data(), t.text.size());
      }
    }
    if (text_->mark() == start) return MimeString{};
    return text_->since(start);
  }

  MimeString comment_text(std::string_view comment) {
    if (comment.data() == nullptr) return MimeString{};
    uint32_t start = text_->mark();
    text_->append_unescaped(comment);
    return text_->mark() == start ? MimeString{} : text_->since(start);
  }

  // Past kAddressesMax addresses are dropped; while a group is open one slot stays free for its
  // end marker, so groups stay balanced.
  void push_address(MimeString name, MimeString adl, MimeString mailbox, MimeString host) {
    if (out_->addresses.size() + (group_open_ ? 1 : 0) >= kAddressesMax) return;
    out_->addresses.push_back(MimeAddress{name, adl, mailbox, host});
  }

  // One mailbox or group; whatever follows it up to the next ',' (or ';') is skipped.
  void address(FieldLexer* lx, bool in_group) {
    std::string_view comment;
    read_words(lx, &comment);
    unsigned char c = lx->done() ? 0 : lx->peek();
    if (c == ':' && !in_group) {
      // A group: (NIL NIL "name" NIL) members (NIL NIL NIL NIL). The name is never NIL, which
      // would make the start look like an end.
      MimeString name = join_words(true);
      const bool markers = out_->addresses.size() + 2 <= kAddressesMax;
      if (markers) {
        push_address(MimeString{}, MimeString{}, name.is_nil() ? text_->constant(kEmpty) : name,
                     MimeString{});
        group_open_ = true;
      }
      lx->next();
      for (;;) {
        lx->skip_cfws();
        if (lx->done()) break;
        if (lx->peek() == ';') {
          lx->next();
          break;
        }
        if (lx->peek() == ',') {
          lx->next();
          continue;
        }
        address(lx, true);
      }
      if (markers) {
        group_open_ = false;
        push_address(MimeString{}, MimeString{}, MimeString{}, MimeString{});
      }
      return;
    }
    if (c == '<') {
      MimeString name = join_words(true);
      lx->next();
      angle_address(lx, name);
    } else if (c == '@') {
      MimeString mailbox = join_words(false);
      lx->next();
      MimeString host = domain(lx, &comment);
      lx->skip_cfws(&comment);
      // "user@host (Name)": the last comment is the name.
      push_address(comment_text(comment), MimeString{}, or_const(mailbox, kMissingMailbox),
                   or_const(host, kMissingDomain));
    } else if (!s_->tokens.empty()) {
      // A local name without a host (RFC 822 allowed them).
      push_address(MimeString{}, MimeString{}, join_words(false), text_->constant(kMissingDomain));
    }
    lx->skip_cfws();
    if (!lx->done() && lx->peek() != ',' && lx->peek() != ';') lx->skip_to(",;");
  }

  MimeString or_const(MimeString s, MimeConst c) { return s.is_nil() ? text_->constant(c) : s; }

  // After '<': [route ":"] local-part "@" domain ">".
  void angle_address(FieldLexer* lx, MimeString name) {
    MimeString adl;
    lx->skip_cfws();
    if (!lx->done() && lx->peek() == '@') {
      // RFC 5322 obs-route "@a,@b:": only a route when a ':' comes before the '>'.
      const char* at = lx->pos();
      uint32_t start = text_->mark();
      for (;;) {
        lx->skip_cfws();
        if (lx->done() || lx->peek() == '>' || lx->peek() == ':') break;
        text_->append(lx->pos(), 1);
        lx->next();
      }
      if (!lx->done() && lx->peek() == ':') {
        adl = text_->since(start);
        lx->next();
      } else {
        out_->text.resize(start);
        lx->set_pos(at);
      }
    }
    std::string_view ignored;
    read_words(lx, &ignored);
    MimeString mailbox = join_words(false);
    MimeString host;
    if (!lx->done() && lx->peek() == '@') {
      lx->next();
      host = domain(lx, &ignored);
    }
    lx->skip_cfws();
    if (!lx->done() && lx->peek() == '>') lx->next();
    push_address(name, adl, or_const(mailbox, kMissingMailbox), or_const(host, kMissingDomain));
  }

  // dot-atom or domain-literal, white space and comments dropped. An atom must start the domain
  // or follow a dot: in "a@b.c d@e.f" the domain is "b.c".
  MimeString domain(FieldLexer* lx, std::string_view* comment) {
    uint32_t start = text_->mark();
    bool want_atom = true;
    for (;;) {
      lx->skip_cfws(comment);
      if (lx->done()) break;
      unsigned char c = lx->peek();
      if (c != '.' && !want_atom) break;
      want_atom = c == '.';
      if (c == '[') {
        const char* p = lx->pos();
        while (p < lx->end() && *p != ']') {
          if (!(kClasses[static_cast<unsigned char>(*p)] & kWsp)) text_->append(p, 1);
          p++;
        }
        if (p < lx->end()) text_->append(p++, 1);
        lx->set_pos(p);
      } else if (c == '.') {
        text_->append(".", 1);
        lx->next();
      } else if (atom_char(c)) {
        std::string_view a = lx->run(atom_char);
        text_->append(a.data(), a.size());
      } else {
        break;
      }
    }
    return text_->mark() == start ? MimeString{} : text_->since(start);
  }

  MimeTextWriter* text_;
  MimeInfo* out_;
  MimeFieldScratch* s_;
  bool group_open_ = false;
};

}  // namespace

// ---- strings in MimeInfo::text

void MimeTextWriter::append(const char* p, size_t n) {
  std::string& t = info_->text;
  for (;;) {
    n = std::min(n, kTextBytesMax - t.size());
    const char* nul = static_cast<const char*>(memchr(p, 0, n));
    if (!nul) break;
    t.append(p, nul - p);
    t.append("\xef\xbf\xbd", std::min<size_t>(3, kTextBytesMax - t.size()));
    n -= nul - p + 1;
    p = nul + 1;
  }
  t.append(p, n);
}

void MimeTextWriter::append_unescaped(std::string_view s) {
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) c = s[++i];
    if (c == '\r' || c == '\n') continue;
    append(&c, 1);
  }
}

MimeString MimeTextWriter::since(uint32_t start) const {
  RM_ASSERT(info_->text.size() <= kTextBytesMax);
  return MimeString{start, static_cast<uint32_t>(info_->text.size() - start)};
}

MimeList parse_params(FieldLexer* lx, MimeTextWriter* text, MimeFieldScratch* scratch) {
  return ParamParser(text, scratch).parse(lx);
}

MimeList parse_address_list(FieldLexer lx, MimeTextWriter* text, MimeFieldScratch* scratch) {
  return AddressParser(text, scratch).parse(lx);
}

}  // namespace ringmail
