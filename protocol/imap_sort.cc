#include "protocol/imap_sort.h"

#include <strings.h>

#include <algorithm>
#include <numeric>

#include "core/assert.h"

namespace ringmail {
namespace {

constexpr uint32_t kNone = UINT32_MAX;
constexpr size_t kNpos = std::string_view::npos;

bool equals_nocase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}
// `prefix` (ASCII letters and punctuation) is at s[i], in any case.
bool at_nocase(std::string_view s, size_t i, std::string_view prefix) {
  return i <= s.size() && s.size() - i >= prefix.size() &&
         strncasecmp(s.data() + i, prefix.data(), prefix.size()) == 0;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// ---- The commands

SearchParse bad(std::string* error, const char* why) {
  *error = why;
  return SearchParse::bad;
}

// SP charset SP search-keys CRLF.
SearchParse parse_charset_and_keys(CommandReader& r, SearchCommand* search, std::string* error) {
  std::string scratch;
  std::string_view charset;
  if (!r.sp() || !r.astring(&charset, &scratch)) return bad(error, "expected a charset");
  if (!r.sp()) return bad(error, "expected search criteria after the charset");
  if (!equals_nocase(charset, "UTF-8") && !equals_nocase(charset, "US-ASCII")) {
    *error = "unsupported charset";
    return SearchParse::bad_charset;
  }
  return parse_search_keys(r, search, error);
}

constexpr struct {
  std::string_view name;
  SortKey key;
} kSortKeys[] = {
    {"ARRIVAL", SortKey::arrival},
    {"CC", SortKey::cc},
    {"DATE", SortKey::date},
    {"FROM", SortKey::from},
    {"SIZE", SortKey::size},
    {"SUBJECT", SortKey::subject},
    {"TO", SortKey::to},
    {"DISPLAYFROM", SortKey::display_from},
    {"DISPLAYTO", SortKey::display_to},
};

// The text key a criterion compares; kTextCount for the numeric ones.
SortText text_of(SortKey key) {
  switch (key) {
    case SortKey::cc: return kTextCc;
    case SortKey::from: return kTextFrom;
    case SortKey::subject: return kTextSubject;
    case SortKey::to: return kTextTo;
    case SortKey::display_from: return kTextDisplayFrom;
    case SortKey::display_to: return kTextDisplayTo;
    case SortKey::arrival:
    case SortKey::date:
    case SortKey::size: return kTextCount;
  }
  RM_ASSERT_MSG(false, "unknown sort key");
}

// ---- Dates

// Days since 1970-01-01 of a proleptic Gregorian date (the era arithmetic of H. Hinnant's
// days_from_civil).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int days_in_month(int64_t y, int m) {
  static constexpr int kMonthDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kMonthDays[m - 1];
}

// Past white space, line breaks and (nested) comments.
size_t skip_cfws(std::string_view s, size_t i) {
  size_t depth = 0;
  for (; i < s.size(); i++) {
    const char c = s[i];
    if (c == '\\' && depth > 0) {
      i++;
    } else if (c == '(') {
      depth++;
    } else if (c == ')' && depth > 0) {
      depth--;
    } else if (depth == 0 && !is_space(c)) {
      break;
    }
  }
  return i;
}

std::string_view read_alpha(std::string_view s, size_t* i) {
  const size_t start = *i;
  while (*i < s.size() && is_alpha(s[*i])) ++*i;
  return s.substr(start, *i - start);
}

// Between min and max digits into *v.
bool read_digits(std::string_view s, size_t* i, size_t min, size_t max, int* v) {
  const size_t start = *i;
  *v = 0;
  while (*i < s.size() && is_digit(s[*i]) && *i - start < max) *v = *v * 10 + (s[(*i)++] - '0');
  return *i - start >= min && (*i == s.size() || !is_digit(s[*i]));
}

// A name's first three letters; 1-based index in `names`, or 0.
int name_index(std::string_view w, const std::string_view (&names)[7]) {
  if (w.size() < 3) return 0;
  for (int k = 0; k < 7; k++)
    if (equals_nocase(w.substr(0, 3), names[k])) return k + 1;
  return 0;
}

int month_number(std::string_view w) {
  static constexpr std::string_view kMonths[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                   "jul", "aug", "sep", "oct", "nov", "dec"};
  if (w.size() < 3) return 0;
  for (int m = 0; m < 12; m++)
    if (equals_nocase(w.substr(0, 3), kMonths[m])) return m + 1;
  return 0;
}

// RFC 822's zone names, in minutes east of UTC. Military letters and unknown names are 0:
// RFC 5322 section 4.3 says to read them as "-0000" (no information).
int named_zone_minutes(std::string_view z) {
  static constexpr struct {
    std::string_view name;
    int hours;
  } kZones[] = {{"EST", -5}, {"EDT", -4}, {"CST", -6}, {"CDT", -5},
                {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
  for (const auto& zone : kZones)
    if (equals_nocase(z, zone.name)) return zone.hours * 60;
  return 0;
}

// ---- Base subject (RFC 5256 section 2.1)

// After the subj-blob ("[" *BLOBCHAR "]" *WSP) at s[i], or kNpos.
size_t blob_end(std::string_view s, size_t i) {
  if (i >= s.size() || s[i] != '[') return kNpos;
  size_t j = i + 1;
  while (j < s.size() && s[j] != ']') {
    if (s[j] == '[') return kNpos;
    j++;
  }
  if (j == s.size()) return kNpos;
  for (j++; j < s.size() && s[j] == ' ';) j++;
  return j;
}

// After the subj-refwd (("re" / ("fw" ["d"])) *WSP [subj-blob] ":") at s[i], or kNpos.
size_t refwd_end(std::string_view s, size_t i) {
  size_t j;
  if (at_nocase(s, i, "re")) {
    j = i + 2;
  } else if (at_nocase(s, i, "fw")) {
    j = i + 2;
    if (j < s.size() && (s[j] == 'd' || s[j] == 'D')) j++;
  } else {
    return kNpos;
  }
  while (j < s.size() && s[j] == ' ') j++;
  if (size_t k = blob_end(s, j); k != kNpos) j = k;
  return j < s.size() && s[j] == ':' ? j + 1 : kNpos;
}

// ---- Message IDs

// Past the comment or quoted string that starts at s[i] (at the end if it does not close).
size_t skip_comment(std::string_view s, size_t i) {
  size_t depth = 0;
  for (; i < s.size(); i++) {
    if (s[i] == '\\') {
      i++;
    } else if (s[i] == '(') {
      depth++;
    } else if (s[i] == ')' && --depth == 0) {
      return i + 1;
    }
  }
  return s.size();
}
size_t skip_quoted(std::string_view s, size_t i) {
  for (i++; i < s.size(); i++) {
    if (s[i] == '\\') {
      i++;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

// Whether the text between "<" and ">" is a valid ID (see parse_message_ids).
bool valid_message_id(std::string_view inner) {
  size_t length = 0;
  size_t at = kNpos;
  for (char c : inner) {
    if (is_space(c)) continue;
    if (c == '@' && at == kNpos) at = length;
    length++;
  }
  return length <= kMessageIdBytesMax && at != kNpos && at > 0 && at + 1 < length;
}

// Calls f(inner) for each valid ID of the field, in order; stops when f returns false.
template <typename F>
void for_each_message_id(std::string_view s, F&& f) {
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '(') {
      i = skip_comment(s, i);
    } else if (c == '"') {
      i = skip_quoted(s, i);
    } else if (c != '<') {
      i++;
    } else {
      size_t j = i + 1;
      while (j < s.size() && s[j] != '>' && s[j] != '<') j++;
      if (j == s.size()) return;
      if (s[j] == '<') {  // "<junk <id>": the inner one
        i = j;
        continue;
      }
      std::string_view inner = s.substr(i + 1, j - i - 1);
      if (valid_message_id(inner) && !f(inner)) return;
      i = j + 1;
    }
  }
}

void append_message_id(std::string_view inner, std::vector<std::string>* out) {
  std::string& id = out->emplace_back();
  for (char c : inner)
    if (!is_space(c)) id.push_back(c);
}

// The field's first valid ID, if any, appended to *out.
void first_message_id(std::string_view field, std::vector<std::string>* out) {
  for_each_message_id(field, [out](std::string_view inner) {
    append_message_id(inner, out);
    return false;
  });
}

// ---- Threads

// A forest of messages and dummies. Children are singly linked lists, so a dummy's children are
// spliced into its parent's list in O(1).
struct Forest {
  std::vector<uint32_t> message;  // index into the messages; kNone for a dummy
  std::vector<uint32_t> first, last, next;
  std::vector<uint32_t> rep;  // the message a node sorts by: itself, or a dummy's first child's

  explicit Forest(std::vector<uint32_t> messages)
      : message(std::move(messages)),
        first(message.size(), kNone),
        last(message.size(), kNone),
        next(message.size(), kNone),
        rep(message.size(), kNone) {}

  bool dummy(uint32_t n) const { return message[n] == kNone; }
  uint32_t add_dummy() {
    for (std::vector<uint32_t>* v : {&message, &first, &last, &next, &rep}) v->push_back(kNone);
    return static_cast<uint32_t>(message.size() - 1);
  }
  void append(uint32_t parent, uint32_t child) {
    next[child] = kNone;
    if (last[parent] == kNone) {
      first[parent] = child;
    } else {
      next[last[parent]] = child;
    }
    last[parent] = child;
  }
  // Moves the children of `from` to the end of those of `to`.
  void splice(uint32_t to, uint32_t from) {
    if (first[from] == kNone) return;
    if (last[to] == kNone) {
      first[to] = first[from];
    } else {
      next[last[to]] = first[from];
    }
    last[to] = last[from];
    first[from] = last[from] = kNone;
  }
};

// Every node under `roots`, each after all of its descendants. No recursion.
void children_first(const Forest& f, const std::vector<uint32_t>& roots,
                    std::vector<uint32_t>* order) {
  order->clear();
  std::vector<uint32_t> stack(roots.begin(), roots.end());
  while (!stack.empty()) {
    const uint32_t n = stack.back();
    stack.pop_back();
    order->push_back(n);
    for (uint32_t c = f.first[n]; c != kNone; c = f.next[c]) stack.push_back(c);
  }
  std::reverse(order->begin(), order->end());
}

// Step 3: dummies give way to their children, except that a dummy at the top with more than one
// child stays (its children would otherwise become separate threads).
void prune(Forest* f, std::vector<uint32_t>* roots) {
  std::vector<uint32_t> order;
  children_first(*f, *roots, &order);
  for (uint32_t n : order) {
    uint32_t c = f->first[n];
    f->first[n] = f->last[n] = kNone;
    while (c != kNone) {
      const uint32_t next = f->next[c];
      if (f->dummy(c)) {
        f->splice(n, c);  // c's own children are pruned already
      } else {
        f->append(n, c);
      }
      c = next;
    }
  }
  std::vector<uint32_t> kept;
  for (uint32_t r : *roots) {
    if (!f->dummy(r)) {
      kept.push_back(r);
    } else if (f->first[r] != kNone) {
      kept.push_back(f->next[f->first[r]] == kNone ? f->first[r] : r);
    }
  }
  *roots = std::move(kept);
}

// Steps 4 and 6: every set of siblings by sent date, then sequence number; a dummy sorts as its
// first child (after its own children are sorted).
void sort_forest(Forest* f, std::vector<uint32_t>* roots, const std::vector<SortMessage>& msgs) {
  auto before = [&](uint32_t a, uint32_t b) {
    const SortMessage& x = msgs[f->rep[a]];
    const SortMessage& y = msgs[f->rep[b]];
    return x.sent != y.sent ? x.sent < y.sent : x.seq < y.seq;
  };
  std::vector<uint32_t> order;
  std::vector<uint32_t> kids;
  children_first(*f, *roots, &order);
  for (uint32_t n : order) {
    kids.clear();
    for (uint32_t c = f->first[n]; c != kNone; c = f->next[c]) kids.push_back(c);
    std::sort(kids.begin(), kids.end(), before);
    f->first[n] = f->last[n] = kNone;
    for (uint32_t k : kids) f->append(n, k);
    f->rep[n] = !f->dummy(n) ? f->message[n] : kids.empty() ? kNone : f->rep[kids[0]];
    RM_ASSERT_MSG(f->rep[n] != kNone, "a dummy without children survived pruning");
  }
  std::sort(roots->begin(), roots->end(), before);
}

// Step 5: threads at the top with the same base subject are merged.
void group_subjects(Forest* f, std::vector<uint32_t>* roots, const std::vector<SortMessage>& msgs) {
  auto subject = [&](uint32_t n) { return msgs[f->rep[n]].key(kTextSubject); };
  auto reply = [&](uint32_t n) { return !f->dummy(n) && msgs[f->message[n]].reply; };
  std::unordered_map<std::string_view, size_t> table;  // thread subject -> index in *roots
  for (size_t i = 0; i < roots->size(); i++) {
    const uint32_t cur = (*roots)[i];
    const std::string_view s = subject(cur);
    if (s.empty()) continue;
    auto [it, inserted] = table.emplace(s, i);
    if (inserted) continue;
    const uint32_t t = (*roots)[it->second];
    if (!f->dummy(t) && (f->dummy(cur) || (reply(t) && !reply(cur)))) it->second = i;
  }
  for (size_t i = 0; i < roots->size(); i++) {
    const uint32_t cur = (*roots)[i];
    const std::string_view s = subject(cur);
    if (s.empty()) continue;
    const auto it = table.find(s);
    RM_ASSERT(it != table.end());
    const size_t slot = it->second;
    if (slot == i) continue;
    const uint32_t t = (*roots)[slot];
    if (f->dummy(t) && f->dummy(cur)) {
      f->splice(t, cur);
    } else if (f->dummy(t) || (reply(cur) && !reply(t))) {
      f->append(t, cur);
    } else {
      // The table prefers dummies, so a dummy here has a dummy in the table.
      RM_ASSERT(!f->dummy(cur));
      const uint32_t d = f->add_dummy();
      f->rep[d] = f->rep[t];  // same thread subject, so the loop skips it at its slot
      f->append(d, t);
      f->append(d, cur);
      (*roots)[slot] = d;
    }
    (*roots)[i] = kNone;
  }
  roots->erase(std::remove(roots->begin(), roots->end(), kNone), roots->end());
}

void append_number(const SortMessage& m, bool uid, std::string* out) {
  out->append(std::to_string(uid ? m.uid : m.seq));
}

// thread-list per root (RFC 5256 section 4): a message's only child follows it after a space,
// two or more children are each parenthesized. No recursion.
void render(const Forest& f, const std::vector<uint32_t>& roots,
            const std::vector<SortMessage>& msgs, bool uid, std::string* out) {
  struct Item {
    uint32_t node;
    bool written;  // something precedes it in its list: it needs a space
    char text;     // not 0: just write this
  };
  std::vector<Item> stack;
  std::vector<uint32_t> kids;
  for (uint32_t r : roots) {
    out->push_back('(');
    stack.push_back({r, false, 0});
    while (!stack.empty()) {
      const Item item = stack.back();
      stack.pop_back();
      if (item.text != 0) {
        out->push_back(item.text);
        continue;
      }
      bool written = item.written;
      if (!f.dummy(item.node)) {
        if (written) out->push_back(' ');
        append_number(msgs[f.message[item.node]], uid, out);
        written = true;
      }
      uint32_t c = f.first[item.node];
      if (c == kNone) continue;
      if (f.next[c] == kNone) {
        stack.push_back({c, written, 0});
        continue;
      }
      if (written) out->push_back(' ');
      kids.clear();
      for (; c != kNone; c = f.next[c]) kids.push_back(c);
      for (auto k = kids.rbegin(); k != kids.rend(); ++k) {
        stack.push_back({kNone, false, ')'});
        stack.push_back({*k, false, 0});
        stack.push_back({kNone, false, '('});
      }
    }
    out->push_back(')');
  }
}

// Appends the case fold of at most kSortKeyBytesMax octets of `s`, cut at a character boundary.
void append_key(std::string_view s, std::string* out) {
  size_t cut = std::min(s.size(), kSortKeyBytesMax);
  while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;
  fold_append(s.substr(0, cut), out);
}

}  // namespace

SearchParse parse_sort(CommandReader& r, SortCommand* out, std::string* error) {
  *out = SortCommand();
  error->clear();
  if (!r.ch('(')) return bad(error, "expected a parenthesized list of sort criteria");
  do {
    SortCriterion criterion;
    std::string_view word;
    if (!r.atom(&word)) return bad(error, "expected a sort criterion");
    if (equals_nocase(word, "REVERSE")) {
      criterion.reverse = true;
      if (!r.sp() || !r.atom(&word)) return bad(error, "REVERSE needs a sort criterion");
    }
    const auto* def = std::find_if(std::begin(kSortKeys), std::end(kSortKeys),
                                   [&](const auto& k) { return equals_nocase(word, k.name); });
    if (def == std::end(kSortKeys)) return bad(error, "unknown sort criterion");
    if (out->criteria.size() == kSortCriteriaMax) return bad(error, "too many sort criteria");
    criterion.key = def->key;
    out->criteria.push_back(criterion);
  } while (r.sp());
  if (!r.ch(')')) return bad(error, "expected ) after the sort criteria");
  return parse_charset_and_keys(r, &out->search, error);
}

SearchParse parse_thread(CommandReader& r, ThreadCommand* out, std::string* error) {
  *out = ThreadCommand();
  error->clear();
  std::string_view name;
  if (!r.atom(&name)) return bad(error, "expected a threading algorithm");
  if (equals_nocase(name, "ORDEREDSUBJECT")) {
    out->algorithm = ThreadAlgorithm::ordered_subject;
  } else if (equals_nocase(name, "REFERENCES")) {
    out->algorithm = ThreadAlgorithm::references;
  } else {
    return bad(error, "unknown threading algorithm");
  }
  return parse_charset_and_keys(r, &out->search, error);
}

uint32_t sort_texts_needed(const std::vector<SortCriterion>& criteria) {
  uint32_t bits = 0;
  for (const SortCriterion& c : criteria)
    if (SortText t = text_of(c.key); t != kTextCount) bits |= 1u << t;
  return bits;
}

bool parse_sent_date(std::string_view s, int64_t* utc_seconds) {
  static constexpr std::string_view kDays[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  size_t i = skip_cfws(s, 0);
  if (i < s.size() && is_alpha(s[i])) {
    if (name_index(read_alpha(s, &i), kDays) == 0) return false;
    i = skip_cfws(s, i);
    if (i < s.size() && s[i] == ',') i = skip_cfws(s, i + 1);
  }
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (!read_digits(s, &i, 1, 2, &day)) return false;
  i = skip_cfws(s, i);
  const int month = month_number(read_alpha(s, &i));
  if (month == 0) return false;
  i = skip_cfws(s, i);
  const size_t year_start = i;
  if (!read_digits(s, &i, 2, 4, &year)) return false;
  if (i - year_start == 2) year += year < 50 ? 2000 : 1900;
  if (i - year_start == 3) year += 1900;
  i = skip_cfws(s, i);
  if (!read_digits(s, &i, 1, 2, &hour)) return false;
  i = skip_cfws(s, i);
  if (i >= s.size() || s[i] != ':') return false;
  i = skip_cfws(s, i + 1);
  if (!read_digits(s, &i, 1, 2, &minute)) return false;
  i = skip_cfws(s, i);
  if (i < s.size() && s[i] == ':') {
    i = skip_cfws(s, i + 1);
    if (!read_digits(s, &i, 1, 2, &second)) return false;
    i = skip_cfws(s, i);
  }
  int zone_minutes = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const bool west = s[i] == '-';
    int zone = 0;
    i++;
    if (!read_digits(s, &i, 4, 4, &zone) || zone % 100 > 59) return false;
    zone_minutes = (zone / 100) * 60 + zone % 100;
    if (west) zone_minutes = -zone_minutes;
  } else if (i < s.size() && is_alpha(s[i])) {
    zone_minutes = named_zone_minutes(read_alpha(s, &i));
  }
  if (day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60)
    return false;
  *utc_seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                 int64_t{zone_minutes} * 60;
  return true;
}

bool base_subject(std::string_view subject, std::string* out) {
  // (1) The decoding is the caller's; tabs and line breaks become spaces, runs of them one.
  out->clear();
  for (char c : subject) {
    const char d = is_space(c) ? ' ' : c;
    if (d == ' ' && !out->empty() && out->back() == ' ') continue;
    out->push_back(d);
  }
  const std::string_view all = *out;
  size_t b = 0;
  size_t e = all.size();
  bool reply = false;
  for (;;) {
    // (2) subj-trailer: "(fwd)" and white space, from the end.
    for (;;) {
      if (e > b && all[e - 1] == ' ') {
        e--;
      } else if (e - b >= 5 && at_nocase(all, e - 5, "(fwd)")) {
        e -= 5;
        reply = true;
      } else {
        break;
      }
    }
    const std::string_view s = all.substr(0, e);
    // (3) to (5). A run of blobs after which no subj-refwd follows stays so while (4) takes its
    // blobs one by one: remembering where it ends keeps this linear.
    size_t no_refwd_at = kNpos;
    for (bool changed = true; changed;) {
      changed = false;
      for (;;) {  // (3) subj-leader: (*subj-blob subj-refwd) / WSP
        if (b < e && s[b] == ' ') {
          b++;
          changed = true;
          continue;
        }
        if (no_refwd_at != kNpos && b <= no_refwd_at) break;
        size_t j = b;
        for (size_t k = blob_end(s, j); k != kNpos; k = blob_end(s, j)) j = k;
        const size_t k = refwd_end(s, j);
        if (k == kNpos) {
          no_refwd_at = j;
          break;
        }
        b = k;
        reply = true;
        changed = true;
      }
      // (4) a leading subj-blob, if a subj-base remains after it.
      if (size_t k = blob_end(s, b); k != kNpos && k < e) {
        b = k;
        changed = true;
      }
    }
    // (6) subj-fwd-hdr and subj-fwd-trl around it: take them off and start again from (2).
    if (e - b >= 6 && at_nocase(s, b, "[fwd:") && s[e - 1] == ']') {
      b += 5;
      e -= 1;
      reply = true;
      continue;
    }
    break;
  }
  out->erase(e);
  out->erase(0, b);
  return reply;
}

void parse_message_ids(std::string_view field, size_t ids_max, std::vector<std::string>* out) {
  size_t count = 0;
  for_each_message_id(field, [&count](std::string_view) {
    count++;
    return true;
  });
  size_t skip = count > ids_max ? count - ids_max : 0;
  for_each_message_id(field, [&](std::string_view inner) {
    if (skip > 0) {
      skip--;
    } else {
      append_message_id(inner, out);
    }
    return true;
  });
}

void SortKeyReader::read(const MessageRecord& rec, uint32_t seq, const MimeInfo& mime,
                         uint32_t texts, SortMessage* out) {
  out->seq = seq;
  out->uid = rec.uid;
  out->size = rec.size;
  out->reply = false;
  out->arrival = rec.internal_date;
  out->sent = rec.internal_date;
  out->text.clear();
  const MimeEnvelope* env = mime.envelopes.empty() ? nullptr : &mime.envelopes[0];
  if (env != nullptr && !env->date.is_nil()) {
    int64_t sent = 0;
    if (parse_sent_date(mime.str(env->date), &sent)) out->sent = sent;
  }
  for (uint32_t k = 0; k < kTextCount; k++) {
    if (env != nullptr && (texts & (1u << k)) != 0) {
      switch (static_cast<SortText>(k)) {
        case kTextSubject:
          if (!env->subject.is_nil()) {
            decoded_.clear();
            decoder_.display_value(mime.str(env->subject), &decoded_);
            out->reply = base_subject(decoded_, &base_);
            append_key(base_, &out->text);
          }
          break;
        case kTextFrom: append_address(mime, env->from, false, &out->text); break;
        case kTextTo: append_address(mime, env->to, false, &out->text); break;
        case kTextCc: append_address(mime, env->cc, false, &out->text); break;
        case kTextDisplayFrom: append_address(mime, env->from, true, &out->text); break;
        case kTextDisplayTo: append_address(mime, env->to, true, &out->text); break;
        case kTextCount: break;
      }
    }
    out->text_end[k] = static_cast<uint32_t>(out->text.size());
  }
}

void SortKeyReader::append_address(const MimeInfo& mime, MimeList list, bool display,
                                   std::string* out) {
  if (list.count == 0) return;
  RM_ASSERT(list.first < mime.addresses.size());
  const MimeAddress& a = mime.addresses[list.first];
  if (display && !a.name.is_nil()) {
    decoded_.clear();
    decoder_.display_value(mime.str(a.name), &decoded_);
    if (!decoded_.empty()) return append_key(decoded_, out);
  }
  if (a.mailbox.is_nil()) return;
  if (!display || a.host.is_nil()) return append_key(mime.str(a.mailbox), out);
  decoded_.assign(mime.str(a.mailbox)).append("@").append(mime.str(a.host));
  append_key(decoded_, out);
}

void sort_messages(const std::vector<SortCriterion>& criteria,
                   const std::vector<SortMessage>& messages, std::vector<uint32_t>* order) {
  auto compare = [](const SortMessage& a, const SortMessage& b, SortKey key) -> int {
    switch (key) {
      case SortKey::arrival: return a.arrival < b.arrival ? -1 : a.arrival > b.arrival;
      case SortKey::date: return a.sent < b.sent ? -1 : a.sent > b.sent;
      case SortKey::size: return a.size < b.size ? -1 : a.size > b.size;
      default: {
        const SortText t = text_of(key);
        return a.key(t).compare(b.key(t));
      }
    }
  };
  order->resize(messages.size());
  std::iota(order->begin(), order->end(), 0u);
  std::sort(order->begin(), order->end(), [&](uint32_t x, uint32_t y) {
    const SortMessage& a = messages[x];
    const SortMessage& b = messages[y];
    for (const SortCriterion& c : criteria) {
      const int d = compare(a, b, c.key);
      if (d != 0) return c.reverse ? d > 0 : d < 0;
    }
    return a.seq < b.seq;
  });
}

void thread_ordered_subject(const std::vector<SortMessage>& messages, bool uid, std::string* out) {
  auto subject = [&](uint32_t i) { return messages[i].key(kTextSubject); };
  auto by_date = [&](uint32_t x, uint32_t y) {
    const SortMessage& a = messages[x];
    const SortMessage& b = messages[y];
    return a.sent != b.sent ? a.sent < b.sent : a.seq < b.seq;
  };
  std::vector<uint32_t> order(messages.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
    const int d = subject(x).compare(subject(y));
    return d != 0 ? d < 0 : by_date(x, y);
  });
  // Threads as [begin, end) in `order`: one per base subject, by the date of its first message.
  std::vector<std::pair<size_t, size_t>> threads;
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && subject(order[j]) == subject(order[i])) j++;
    threads.emplace_back(i, j);
    i = j;
  }
  std::sort(threads.begin(), threads.end(),
            [&](const auto& x, const auto& y) { return by_date(order[x.first], order[y.first]); });
  for (const auto& [begin, end] : threads) {
    out->push_back('(');
    append_number(messages[order[begin]], uid, out);
    if (end - begin == 2) {
      out->push_back(' ');
      append_number(messages[order[begin + 1]], uid, out);
    } else if (end - begin > 2) {
      out->push_back(' ');
      for (size_t k = begin + 1; k < end; k++) {
        out->push_back('(');
        append_number(messages[order[k]], uid, out);
        out->push_back(')');
      }
    }
    out->push_back(')');
  }
}

// ---- ReferenceThreads

uint32_t ReferenceThreads::new_node(uint32_t message) {
  RM_ASSERT(parent_.size() < kNone - 1);
  parent_.push_back(kNone);
  message_.push_back(message);
  children_.push_back(0);
  return static_cast<uint32_t>(parent_.size() - 1);
}

// The node of an ID that a message refers to: a dummy until a message with the ID comes.
uint32_t ReferenceThreads::node_for(const std::string& id) {
  if (auto it = ids_.find(id); it != ids_.end()) return it->second;
  const uint32_t n = new_node(kNone);
  ids_.emplace(id, n);
  return n;
}

// Whether making `parent` the parent of `child` would close a loop: `parent` is `child` or one
// of its descendants. Also true when this message's walking budget is spent. Most children are
// new and childless, which needs no walk.
bool ReferenceThreads::would_loop(uint32_t parent, uint32_t child) {
  if (parent == child) return true;
  if (children_[child] == 0) return false;
  for (uint32_t n = parent; n != kNone; n = parent_[n]) {
    if (n == child || walk_steps_left_ == 0) return true;
    walk_steps_left_--;
  }
  return false;
}

void ReferenceThreads::link(uint32_t parent, uint32_t child) {
  RM_ASSERT(parent_[child] == kNone);
  parent_[child] = parent;
  children_[parent]++;
}

void ReferenceThreads::add(std::string_view message_id, std::string_view references,
                           std::string_view in_reply_to) {
  const uint32_t m = messages_++;
  id_budget_bytes_ += kThreadIdBytesPerMessage;
  walk_steps_left_ = kThreadWalkStepsMax;
  // The message's own node: the dummy that stood for its ID, or a new one. A duplicate ID, or
  // none, gets a node no reference can reach.
  uint32_t self = kNone;
  refs_.clear();
  first_message_id(message_id, &refs_);
  if (!refs_.empty()) {
    auto it = ids_.find(refs_[0]);
    if (it == ids_.end()) {
      self = new_node(m);
      ids_.emplace(std::move(refs_[0]), self);
    } else if (message_[it->second] == kNone) {
      self = it->second;
      message_[self] = m;
    }
  }
  if (self == kNone) self = new_node(m);
  refs_.clear();
  parse_message_ids(references, kThreadReferencesMax, &refs_);
  if (refs_.empty()) first_message_id(in_reply_to, &refs_);
  // The newest references matter most (the last is the parent): the ID budget goes to them
  // first, and the older ones it cannot pay for are dropped as a truncated References would be.
  size_t first = refs_.size();
  for (; first > 0; first--) {
    const std::string& id = refs_[first - 1];
    if (ids_.count(id) != 0) continue;
    const uint64_t cost = id.size() + kThreadIdCostBytes;
    if (cost > id_budget_bytes_) break;
    id_budget_bytes_ -= cost;
  }
  // (1A) Each reference the parent of the next, unless that one has a parent already.
  uint32_t prev = kNone;
  for (size_t k = first; k < refs_.size(); k++) {
    const uint32_t n = node_for(refs_[k]);
    if (prev != kNone && parent_[n] == kNone && !would_loop(prev, n)) link(prev, n);
    prev = n;
  }
  // (1B) The last reference is the message's parent, whatever it had before.
  if (parent_[self] != kNone) {
    children_[parent_[self]]--;
    parent_[self] = kNone;
  }
  if (prev != kNone && !would_loop(prev, self)) link(prev, self);
}

void ReferenceThreads::finish(const std::vector<SortMessage>& messages, bool uid,
                              std::string* out) {
  RM_ASSERT(messages.size() == messages_);
  std::unordered_map<std::string, uint32_t>().swap(ids_);  // step 1 is over
  std::vector<std::string>().swap(refs_);
  Forest f(std::move(message_));
  std::vector<uint32_t> roots;
  // (2) The messages without a parent are the top.
  for (uint32_t n = 0; n < parent_.size(); n++) {
    if (parent_[n] == kNone) {
      roots.push_back(n);
    } else {
      f.append(parent_[n], n);
    }
  }
  std::vector<uint32_t>().swap(parent_);
  std::vector<uint32_t>().swap(children_);
  prune(&f, &roots);                     // (3)
  sort_forest(&f, &roots, messages);     // (4)
  group_subjects(&f, &roots, messages);  // (5)
  sort_forest(&f, &roots, messages);     // (6)
  render(f, roots, messages, uid, out);
  *this = ReferenceThreads();
}

}  // namespace ringmail
