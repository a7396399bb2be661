#include "protocol/imap_search.h"

#include <strings.h>

#include <algorithm>
#include <cstring>

#include "core/assert.h"
#include "protocol/sequence_set.h"
#include "storage/search_text.h"

namespace ringmail {
namespace {

// Buffers grow to the largest message searched; past this they are released after it.
constexpr size_t kBufferKeepBytes = 8u << 20;

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
  bool have_header_text = false, have_sent_day = false;
  size_t body_parts = 0;  // parts decoded into body_text (and part_headers)
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
  bool has_text = false;  // a TEXT key: the parts' MIME headers are read too
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

  SearchParse parse(SearchCommand* out, bool keys_only = false) {
    if (keys_only) return parse_keys();
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
    return parse_keys();
  }

  SearchParse parse_keys() {
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
    for (const Node& n : p_->nodes) p_->has_text = p_->has_text || n.op == Op::text;
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
      case Op::body: return body_contains(p_.strings[n.b]);
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

  // The body text is decoded part by part, as far as a key needs: BODY stops at the part
  // where its needle turns up (a match never spans two parts: each ends in a NUL).
  bool body_contains(std::string_view needle) {
    if (!load_mime()) return false;
    if (contains(s_.body_text, needle)) return true;
    while (s_.body_parts < s_.mime->parts.size()) {
      const size_t from = s_.body_text.size();
      decode_next_part();
      // A match could only start in the new text, or in an attached message's header before it.
      const size_t start = from >= needle.size() ? from - needle.size() + 1 : 0;
      if (contains(std::string_view(s_.body_text).substr(start), needle)) return true;
    }
    return false;
  }

  bool load_body_text() {
    if (!load_mime()) return false;
    while (s_.body_parts < s_.mime->parts.size()) decode_next_part();
    return true;
  }

  void decode_next_part() {
    message_part_text(s_.bytes, *s_.mime, s_.body_parts++, &s_.decoder, &s_.part_fields,
                      &s_.body_text, p_.has_text ? &s_.part_headers : nullptr);
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
  s->have_header_text = s->have_sent_day = false;
  s->body_parts = 0;
  s->body_text.clear();
  s->part_headers.clear();
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

static SearchParse parse_search_impl(CommandReader& r, SearchCommand* out, std::string* error,
                                     bool keys_only) {
  *out = SearchCommand();
  out->program = std::make_unique<SearchProgram>();
  error->clear();
  Parser parser(&r, out->program.get(), error);
  SearchParse result = parser.parse(out, keys_only);
  if (result != SearchParse::ok) {
    RM_ASSERT(!error->empty());
    *out = SearchCommand();
    return result;
  }
  out->uses_modseq = out->program->uses_modseq;
  return result;
}

SearchParse parse_search(CommandReader& r, SearchCommand* out, std::string* error) {
  return parse_search_impl(r, out, error, false);
}

SearchParse parse_search_keys(CommandReader& r, SearchCommand* out, std::string* error) {
  return parse_search_impl(r, out, error, true);
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

namespace {

// The candidates of node i, or false when it does not narrow.
bool node_candidates(const SearchProgram& p, uint32_t i, const IndexLookup& lookup,
                     std::vector<uint32_t>* out) {
  const Node& n = p.nodes[i];
  switch (n.op) {
    case Op::header:
    case Op::body:
    case Op::text: {
      out->clear();
      if (!lookup(p.strings[n.b], out)) return false;
      std::sort(out->begin(), out->end());
      out->erase(std::unique(out->begin(), out->end()), out->end());
      return true;
    }
    case Op::none: out->clear(); return true;
    case Op::and_:
    case Op::or_: {
      bool narrowed = false;
      std::vector<uint32_t> child, merged;
      for (uint32_t c = i + 1; c < i + n.size; c += p.nodes[c].size) {
        if (!node_candidates(p, c, lookup, &child)) {
          if (n.op == Op::or_) return false;
          continue;
        }
        if (!narrowed) {
          out->swap(child);
          narrowed = true;
          continue;
        }
        merged.clear();
        if (n.op == Op::and_)
          std::set_intersection(out->begin(), out->end(), child.begin(), child.end(),
                                std::back_inserter(merged));
        else
          std::set_union(out->begin(), out->end(), child.begin(), child.end(),
                         std::back_inserter(merged));
        out->swap(merged);
      }
      return narrowed;
    }
    default: return false;
  }
}

}  // namespace

bool search_index_candidates(const SearchCommand& cmd, const IndexLookup& lookup,
                             std::vector<uint32_t>* uids) {
  uids->clear();
  return node_candidates(*cmd.program, 0, lookup, uids);
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
