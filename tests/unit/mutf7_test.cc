#include "protocol/mutf7.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace ringmail {
namespace {

std::string to_mutf7(std::string_view utf8) {
  std::string out;
  EXPECT_TRUE(utf8_to_mutf7(utf8, &out)) << utf8;
  return out;
}

std::string to_utf8(std::string_view mutf7) {
  std::string out;
  EXPECT_TRUE(mutf7_to_utf8(mutf7, &out)) << mutf7;
  return out;
}

bool decodes(std::string_view mutf7) {
  std::string out = "stale";
  bool ok = mutf7_to_utf8(mutf7, &out);
  if (!ok) {
    EXPECT_EQ(out, "");  // a failed decode leaves nothing half-written
  }
  return ok;
}

TEST(Mutf7, EncodesRfc3501Example) {
  EXPECT_EQ(to_mutf7("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
}

TEST(Mutf7, DecodesRfc3501Example) {
  EXPECT_EQ(to_utf8("~peter/mail/&U,BTFw-/&ZeVnLIqe-"), "~peter/mail/台北/日本語");
}

TEST(Mutf7, AmpersandIsAmpersandDash) {
  EXPECT_EQ(to_mutf7("&"), "&-");
  EXPECT_EQ(to_utf8("&-"), "&");
  EXPECT_EQ(to_mutf7("Tom & Jerry"), "Tom &- Jerry");
  EXPECT_EQ(to_utf8("Tom &- Jerry"), "Tom & Jerry");
}

TEST(Mutf7, PrintableAsciiAndEmptyPassThrough) {
  std::string ascii;
  for (char c = 0x20; c <= 0x7e; c++)
    if (c != '&') ascii.push_back(c);
  EXPECT_EQ(to_mutf7(ascii), ascii);
  EXPECT_EQ(to_utf8(ascii), ascii);
  EXPECT_EQ(to_mutf7(""), "");
  EXPECT_EQ(to_utf8(""), "");
}

TEST(Mutf7, ControlCharactersAreEncoded) {
  EXPECT_EQ(to_mutf7("a\tb"), "a&AAk-b");
  EXPECT_EQ(to_mutf7(std::string_view("\0", 1)), "&AAA-");
  EXPECT_EQ(to_mutf7("\x7f"), "&AH8-");
  EXPECT_EQ(to_utf8("a&AAk-b"), "a\tb");
  EXPECT_EQ(to_utf8("&AAA-"), std::string("\0", 1));
}

TEST(Mutf7, NonBmpCharacterIsASurrogatePairInOneRun) {
  EXPECT_EQ(to_mutf7("😀"), "&2D3eAA-");  // U+1F600 = D83D DE00
  EXPECT_EQ(to_utf8("&2D3eAA-"), "😀");
  EXPECT_EQ(to_mutf7("x😀é"), "x&2D3eAADp-");
  EXPECT_EQ(to_utf8("x&2D3eAADp-"), "x😀é");
  EXPECT_EQ(to_mutf7("\xF4\x8F\xBF\xBF"), "&2,,f,w-");  // U+10FFFF = DBFF DFFF
  EXPECT_EQ(to_utf8("&2,,f,w-"), "\xF4\x8F\xBF\xBF");
}

TEST(Mutf7, AdjacentNonAsciiCharactersShareOneRun) {
  EXPECT_EQ(to_mutf7("áá"), "&AOEA4Q-");
  EXPECT_EQ(to_mutf7("&á"), "&-&AOE-");
  EXPECT_EQ(to_utf8("&-&AOE-"), "&á");
  EXPECT_EQ(to_mutf7("á&"), "&AOE-&-");
  EXPECT_EQ(to_utf8("&AOE-&-"), "á&");
}

TEST(Mutf7, EncoderRejectsInvalidUtf8) {
  std::string out = "stale";
  for (std::string_view bad : {
           "\x80",              // stray continuation byte
           "\xC0\xAF",          // overlong "/"
           "\xE0\x80\xAF",      // overlong "/"
           "\xF0\x82\x82\xAC",  // overlong U+20AC
           "\xED\xA0\x80",      // U+D800, a surrogate
           "\xED\xBF\xBF",      // U+DFFF, a surrogate
           "\xF4\x90\x80\x80",  // U+110000
           "\xF5\x80\x80\x80",  // lead byte past U+10FFFF
           "\xFF",              //
           "\xE6\x97",          // truncated
           "ok\xE6\x97\xA5\xE6",
           "\xE6\x41\xA5",  // continuation byte missing
       }) {
    EXPECT_FALSE(utf8_to_mutf7(bad, &out)) << testing::PrintToString(bad);
    EXPECT_EQ(out, "");
  }
}

TEST(Mutf7, DecoderRejectsBytesOutsidePrintableAscii) {
  EXPECT_FALSE(decodes("a\tb"));
  EXPECT_FALSE(decodes("\x7f"));
  EXPECT_FALSE(decodes("台北"));  // raw UTF-8 is not modified UTF-7
  EXPECT_FALSE(decodes(std::string_view("\0", 1)));
}

TEST(Mutf7, DecoderRejectsBadBase64Characters) {
  EXPECT_FALSE(decodes("&AO!-"));
  EXPECT_FALSE(decodes("&U/BTFw-"));  // "/" is standard base64, "," is modified
  EXPECT_FALSE(decodes("&AOE=-"));    // no padding
  EXPECT_FALSE(decodes("&AO E-"));
}

TEST(Mutf7, DecoderRejectsNonZeroLeftoverBits) {
  EXPECT_FALSE(decodes("&AOF-"));     // U+00E1 then bits 01
  EXPECT_FALSE(decodes("&AOEA4R-"));  // two units then bits 0001
}

TEST(Mutf7, DecoderRejectsASpareBase64Character) {
  EXPECT_FALSE(decodes("&AOEA-"));     // 24 bits: one unit and 8 spare
  EXPECT_FALSE(decodes("&AOEA4QA-"));  // 42 bits: two units and 10 spare
  EXPECT_FALSE(decodes("&AA-"));       // 12 bits: no unit at all
  EXPECT_FALSE(decodes("&A-"));
}

TEST(Mutf7, DecoderRejectsEncodedPrintableAscii) {
  EXPECT_FALSE(decodes("&AGE-"));     // "a"
  EXPECT_FALSE(decodes("&ACY-"));     // "&" must be "&-"
  EXPECT_FALSE(decodes("&ACA-"));     // " "
  EXPECT_FALSE(decodes("&AH4-"));     // "~"
  EXPECT_FALSE(decodes("&AOEAYQ-"));  // "áa": the "a" hides inside a run
  EXPECT_TRUE(decodes("&AB8-"));      // U+001F is not printable, so encoded is right
  EXPECT_TRUE(decodes("&AH8-"));      // U+007F likewise
}

TEST(Mutf7, DecoderRejectsUnterminatedRuns) {
  EXPECT_FALSE(decodes("&"));
  EXPECT_FALSE(decodes("abc&"));
  EXPECT_FALSE(decodes("&AOE"));
  EXPECT_FALSE(decodes("~peter/&U,BTFw"));
}

TEST(Mutf7, DecoderRejectsAmpersandWithoutARun) {
  EXPECT_FALSE(decodes("&&-"));
  EXPECT_FALSE(decodes("&/-"));
  EXPECT_FALSE(decodes("& -"));
}

TEST(Mutf7, DecoderRejectsUnpairedSurrogates) {
  EXPECT_FALSE(decodes("&2D0-"));        // high D83D alone
  EXPECT_FALSE(decodes("&3gA-"));        // low DE00 alone
  EXPECT_FALSE(decodes("&2D0AIA-"));     // high then U+0020
  EXPECT_FALSE(decodes("&2D0A4Q-"));     // high then U+00E1
  EXPECT_FALSE(decodes("&3gDYPQ-"));     // low then high: reversed
  EXPECT_FALSE(decodes("&2D3YPQ-"));     // high then high
  EXPECT_FALSE(decodes("&2D0-&3gA-"));   // a pair split across two runs
  EXPECT_FALSE(decodes("&2D0-x&3gA-"));  // a pair split by ASCII
}

TEST(Mutf7, DecoderRejectsAdjacentRuns) {
  EXPECT_FALSE(decodes("&AOE-&AOE-"));  // canonical form is "&AOEA4Q-"
  EXPECT_TRUE(decodes("&AOEA4Q-"));
  EXPECT_TRUE(decodes("&AOE-x&AOE-"));
  EXPECT_TRUE(decodes("&AOE-&-&AOE-"));  // "&-" between them is a literal "&"
}

// Appends code point `cp` as UTF-8; independent of the code under test.
void append_utf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t random_scalar(std::mt19937* rng) {
  // Mostly ASCII (with "&", "-" and controls), so runs start and stop often.
  switch (std::uniform_int_distribution<int>(0, 5)(*rng)) {
    case 0: return std::uniform_int_distribution<char32_t>(0x00, 0x7F)(*rng);
    case 1: return std::uniform_int_distribution<int>(0, 1)(*rng) ? U'&' : U'-';
    case 2: return std::uniform_int_distribution<char32_t>(0x20, 0x7E)(*rng);
    case 3: return std::uniform_int_distribution<char32_t>(0x80, 0x7FF)(*rng);
    case 4: {
      char32_t cp = std::uniform_int_distribution<char32_t>(0x800, 0xFFFF - 0x800)(*rng);
      return cp >= 0xD800 ? cp + 0x800 : cp;  // skip surrogates
    }
    default: return std::uniform_int_distribution<char32_t>(0x10000, 0x10FFFF)(*rng);
  }
}

TEST(Mutf7, RandomValidUtf8RoundTrips) {
  std::mt19937 rng(20240601);
  constexpr int kCasesMax = 5000;
  for (int i = 0; i < kCasesMax; i++) {
    std::string utf8;
    int length = std::uniform_int_distribution<int>(0, 24)(rng);
    for (int j = 0; j < length; j++) append_utf8(random_scalar(&rng), &utf8);
    ASSERT_TRUE(valid_utf8(utf8));

    std::string mutf7;
    ASSERT_TRUE(utf8_to_mutf7(utf8, &mutf7));
    for (char c : mutf7) ASSERT_TRUE(c >= 0x20 && c <= 0x7e) << mutf7;
    std::string back;
    ASSERT_TRUE(mutf7_to_utf8(mutf7, &back)) << mutf7;
    ASSERT_EQ(back, utf8) << mutf7;
  }
}

// Canonical form: whatever the decoder accepts, the encoder writes back byte for byte, so no
// mailbox has two wire names.
TEST(Mutf7, EveryAcceptedInputIsTheEncodersOutput) {
  constexpr std::string_view kAlphabet = "&-aAOE4Q2D3egw,+/";
  std::mt19937 rng(7);
  constexpr int kCasesMax = 200000;
  int accepted = 0;
  for (int i = 0; i < kCasesMax; i++) {
    std::string mutf7;
    int length = std::uniform_int_distribution<int>(1, 12)(rng);
    for (int j = 0; j < length; j++)
      mutf7.push_back(
          kAlphabet[std::uniform_int_distribution<size_t>(0, kAlphabet.size() - 1)(rng)]);
    std::string utf8;
    if (!mutf7_to_utf8(mutf7, &utf8)) continue;
    accepted++;
    ASSERT_TRUE(valid_utf8(utf8)) << mutf7;
    std::string again;
    ASSERT_TRUE(utf8_to_mutf7(utf8, &again)) << mutf7;
    ASSERT_EQ(again, mutf7);
  }
  EXPECT_GT(accepted, 1000);  // the property was exercised, not vacuously true
}

TEST(ValidUtf8, AcceptsShortestFormsUpToU10ffff) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8("\xC2\x80"));          // U+0080
  EXPECT_TRUE(valid_utf8("\xE0\xA0\x80"));      // U+0800
  EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(valid_utf8("\xEE\x80\x80"));      // U+E000
  EXPECT_TRUE(valid_utf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
}

TEST(ValidUtf8, RejectsOverlongsSurrogatesAndOutOfRange) {
  EXPECT_FALSE(valid_utf8("\xC1\xBF"));          // overlong U+007F
  EXPECT_FALSE(valid_utf8("\xE0\x9F\xBF"));      // overlong U+07FF
  EXPECT_FALSE(valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong U+FFFF
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // U+D800
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(valid_utf8("\xF8\x88\x80\x80\x80"));
  EXPECT_FALSE(valid_utf8("\xBF"));
  EXPECT_FALSE(valid_utf8("\xC2"));
  EXPECT_FALSE(valid_utf8("a\xC2z"));
}

}  // namespace
}  // namespace ringmail
