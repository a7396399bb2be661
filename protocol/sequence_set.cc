#include "protocol/sequence_set.h"

#include <algorithm>
#include <string>

namespace ringmail {
namespace {

bool parse_number(std::string_view s, size_t* pos, uint32_t* out) {
  if (*pos < s.size() && s[*pos] == '*') {
    (*pos)++;
    *out = SequenceSet::kStar;
    return true;
  }
  uint64_t v = 0;
  size_t start = *pos;
  while (*pos < s.size() && s[*pos] >= '0' && s[*pos] <= '9') {
    v = v * 10 + static_cast<uint64_t>(s[*pos] - '0');
    if (v > UINT32_MAX) return false;
    (*pos)++;
  }
  if (*pos == start || v == 0) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

bool SequenceSet::parse(std::string_view text) {
  ranges_.clear();
  saved_ = false;
  if (text == "$") {
    saved_ = true;
    return true;
  }
  size_t pos = 0;
  while (true) {
    if (ranges_.size() >= kRangesMax) return false;
    SeqRange r;
    if (!parse_number(text, &pos, &r.lo)) return false;
    r.hi = r.lo;
    if (pos < text.size() && text[pos] == ':') {
      pos++;
      if (!parse_number(text, &pos, &r.hi)) return false;
    }
    ranges_.push_back(r);
    if (pos == text.size()) return true;
    if (text[pos] != ',') return false;
    pos++;
  }
}

std::vector<SeqRange> SequenceSet::resolve(uint32_t max) const {
  std::vector<SeqRange> out;
  if (max == 0) return out;
  out.reserve(ranges_.size());
  for (SeqRange r : ranges_) {
    uint32_t a = r.lo == kStar ? max : r.lo;
    uint32_t b = r.hi == kStar ? max : r.hi;
    if (a > b) std::swap(a, b);
    if (a > max) continue;
    out.push_back({a, std::min(b, max)});
  }
  normalize_ranges(&out);
  return out;
}

void normalize_ranges(std::vector<SeqRange>* ranges) {
  auto& v = *ranges;
  std::sort(v.begin(), v.end(), [](SeqRange a, SeqRange b) { return a.lo < b.lo; });
  size_t w = 0;
  for (size_t i = 0; i < v.size(); i++) {
    if (w > 0 && uint64_t{v[i].lo} <= uint64_t{v[w - 1].hi} + 1) {
      v[w - 1].hi = std::max(v[w - 1].hi, v[i].hi);
    } else {
      v[w++] = v[i];
    }
  }
  v.resize(w);
}

bool ranges_contain(const std::vector<SeqRange>& ranges, uint32_t n) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), n,
                             [](uint32_t x, SeqRange r) { return x < r.lo; });
  if (it == ranges.begin()) return false;
  --it;
  return n >= it->lo && n <= it->hi;
}

void append_ranges(const std::vector<SeqRange>& ranges, std::string* out) {
  bool first = true;
  for (SeqRange r : ranges) {
    if (!first) out->push_back(',');
    first = false;
    out->append(std::to_string(r.lo));
    if (r.hi != r.lo) {
      out->push_back(':');
      out->append(std::to_string(r.hi));
    }
  }
}

void append_number_set(const std::vector<uint32_t>& numbers, std::string* out) {
  std::vector<SeqRange> ranges;
  for (uint32_t n : numbers) {
    if (!ranges.empty() && ranges.back().hi + 1 == n)
      ranges.back().hi = n;
    else
      ranges.push_back({n, n});
  }
  append_ranges(ranges, out);
}

}  // namespace ringmail
