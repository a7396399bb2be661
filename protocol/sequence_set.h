// IMAP sequence sets ("1:3,7,20:*") for message sequence numbers and UIDs (RFC 9051 section 9,
// sequence-set). "*" is the largest number in use; "$" (RFC 5182 SEARCHRES) names the saved
// result of the last SEARCH ... RETURN (SAVE).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ringmail {

struct SeqRange {
  uint32_t lo = 0;
  uint32_t hi = 0;
};

class SequenceSet {
 public:
  static constexpr uint32_t kStar = 0;  // "*" as written; resolve() replaces it
  static constexpr size_t kRangesMax = 100000;

  // Parses the whole of `text`. False on bad syntax, a zero, or more than kRangesMax ranges.
  bool parse(std::string_view text);
  bool is_saved() const { return saved_; }  // "$"
  const std::vector<SeqRange>& ranges() const { return ranges_; }

  // The numbers named, with "*" = `max`, as sorted, disjoint ranges. A range beyond `max` is
  // clipped (RFC 9051: "4:*" with 3 messages is "3:4", i.e. 3). With max = 0 nothing is named.
  std::vector<SeqRange> resolve(uint32_t max) const;

 private:
  std::vector<SeqRange> ranges_;
  bool saved_ = false;
};

// True if `n` lies in the sorted, disjoint `ranges` (binary search).
bool ranges_contain(const std::vector<SeqRange>& ranges, uint32_t n);
// Sorts and merges overlapping or adjacent ranges.
void normalize_ranges(std::vector<SeqRange>* ranges);
// "1:3,7" from sorted, disjoint ranges (empty string for none).
void append_ranges(const std::vector<SeqRange>& ranges, std::string* out);
// The same from a sorted list of numbers, compressing runs.
void append_number_set(const std::vector<uint32_t>& numbers, std::string* out);

}  // namespace ringmail
