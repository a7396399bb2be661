// Storage benchmarks (Google Benchmark), on the real file system under $TMPDIR (default /tmp):
//   durable APPEND of 4 KiB messages with group commit (1, 10 and 100 writers per sync),
//   opening a 1,000,000-message mailbox, reading the flags of all its messages,
//   fsck throughput over a user's segments, MIME parse (and cache record encode) throughput,
//   full-text index: indexing throughput and candidate lookups in a 20,000-message index.
// Run: build/storage_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "storage/fsck.h"
#include "storage/fts.h"
#include "storage/mailbox_index.h"
#include "storage/mime_cache.h"
#include "storage/mime_parser.h"
#include "storage/user_mail.h"

namespace ringmail {
namespace {

std::string temp_dir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/ringmail-bench-XXXXXX";
  return mkdtemp(tmpl.data());
}

std::string message_of(size_t bytes, uint64_t seed) {
  std::string m =
      "From: bench@example.org\r\nSubject: message " + std::to_string(seed) + "\r\n\r\n";
  std::mt19937_64 rng(seed);
  while (m.size() < bytes) m.push_back(static_cast<char>(' ' + rng() % 90));
  return m;
}

// Each iteration: `writers` APPENDs of 4 KiB, then one sync() that makes all of them durable,
// as a reactor tick with that many concurrent APPENDs would.
void bm_durable_append_4k(benchmark::State& state) {
  const int writers = static_cast<int>(state.range(0));
  std::string dir = temp_dir();
  std::unique_ptr<UserMail> um;
  UserMail::OpenReport report;
  if (!UserMail::open(Env::posix(), dir, &um, &report).is_ok()) state.SkipWithError("open");
  uint32_t inbox = um->find("INBOX")->id;
  std::string msg = message_of(4096, 1);
  for (auto _ : state) {
    for (int w = 0; w < writers; w++) {
      MessageRecord rec;
      if (!um->append(inbox, msg, 1700000000, 0, 0, &rec).is_ok()) state.SkipWithError("append");
    }
    if (!um->sync().is_ok()) state.SkipWithError("sync");
  }
  state.SetItemsProcessed(state.iterations() * writers);
  state.SetBytesProcessed(state.iterations() * writers * static_cast<int64_t>(msg.size()));
  um.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(bm_durable_append_4k)->Arg(1)->Arg(10)->Arg(100)->UseRealTime()->MinTime(2.0);

// A mailbox of one million messages, checkpointed, shared by the benchmarks below.
struct BigMailbox {
  static constexpr uint32_t kMessages = 1000000;
  BigMailbox() {
    dir = temp_dir() + "/mbox";
    MailboxIndex::create(Env::posix(), dir, 1, 1);
    std::unique_ptr<MailboxIndex> idx;
    IndexOpenReport report;
    MailboxIndex::open(Env::posix(), dir, 1, &idx, &report);
    for (uint32_t i = 0; i < kMessages; i++) {
      MessageRecord r;
      r.blob = {1, 32};
      r.size = 4096;
      r.flags = i % 3 == 0 ? uint32_t{kFlagSeen} : 0u;
      idx->append(&r);
    }
    idx->checkpoint();
  }
  ~BigMailbox() { std::filesystem::remove_all(dir.substr(0, dir.rfind('/'))); }
  std::string dir;
};

BigMailbox& big_mailbox() {
  static BigMailbox box;
  return box;
}

void bm_open_1m_message_mailbox(benchmark::State& state) {
  BigMailbox& box = big_mailbox();
  for (auto _ : state) {
    std::unique_ptr<MailboxIndex> idx;
    IndexOpenReport report;
    if (!MailboxIndex::open(Env::posix(), box.dir, 1, &idx, &report).is_ok())
      state.SkipWithError("open");
    benchmark::DoNotOptimize(idx->records().size());
  }
  state.SetItemsProcessed(state.iterations() * BigMailbox::kMessages);
}
BENCHMARK(bm_open_1m_message_mailbox)->Unit(benchmark::kMillisecond)->UseRealTime();

void bm_read_flags_of_1m_messages(benchmark::State& state) {
  BigMailbox& box = big_mailbox();
  std::unique_ptr<MailboxIndex> idx;
  IndexOpenReport report;
  if (!MailboxIndex::open(Env::posix(), box.dir, 1, &idx, &report).is_ok())
    state.SkipWithError("open");
  for (auto _ : state) {
    uint64_t seen = 0;
    for (const MessageRecord& r : idx->records()) seen += (r.flags & kFlagSeen) != 0;
    benchmark::DoNotOptimize(seen);
  }
  state.SetItemsProcessed(state.iterations() * BigMailbox::kMessages);
}
BENCHMARK(bm_read_flags_of_1m_messages)->Unit(benchmark::kMillisecond);

// fsck of a user with 256 MiB of mail in messages of 2 to 64 KiB.
void bm_fsck(benchmark::State& state) {
  std::string dir = temp_dir();
  {
    std::unique_ptr<UserMail> um;
    UserMail::OpenReport report;
    UserMail::open(Env::posix(), dir, &um, &report);
    uint32_t inbox = um->find("INBOX")->id;
    std::mt19937_64 rng(7);
    for (uint64_t bytes = 0, i = 0; bytes < (256u << 20); i++) {
      std::string m = message_of(2048 + rng() % 63488, i);
      MessageRecord rec;
      um->append(inbox, m, 0, 0, 0, &rec);
      bytes += m.size();
    }
    um->sync();
  }
  uint64_t bytes = 0;
  for (auto _ : state) {
    FsckResult r;
    if (!fsck_user(Env::posix(), dir, false, &r).is_ok() || !r.damage.empty())
      state.SkipWithError("fsck");
    bytes = r.segment_bytes;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
  std::filesystem::remove_all(dir);
}
BENCHMARK(bm_fsck)->Unit(benchmark::kMillisecond)->UseRealTime();

// A typical message of today: headers, text and HTML alternatives, a base64 attachment (~30 KB).
std::string multipart_message() {
  std::string m =
      "Return-Path: <alice@example.org>\r\nReceived: from mx.example.org by mail.example.net; "
      "Sun, 22 Nov 2026 03:00:00 +0000\r\nFrom: Alice Example <alice@example.org>\r\n"
      "To: Bob <bob@example.net>, carol@example.net\r\nCc: team: dave@example.net;\r\n"
      "Subject: =?UTF-8?Q?Quarterly_r=C3=A9sum=C3=A9?=\r\nDate: Sun, 22 Nov 2026 03:00:00 +0000\r\n"
      "Message-ID: <1234@example.org>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n"
      "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\n"
      "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
      "\r\n\r\n";
  for (int i = 0; i < 60; i++) m += "Some text of the message, line " + std::to_string(i) + ".\r\n";
  m += "--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>";
  for (int i = 0; i < 60; i++)
    m += "<p>Some text of the message, line " + std::to_string(i) + ".</p>\r\n";
  m += "</body></html>\r\n--inner--\r\n--outer\r\nContent-Type: application/pdf; "
       "name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n"
       "Content-Transfer-Encoding: base64\r\n\r\n";
  for (int i = 0; i < 300; i++)
    m += "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURlY29kZT4+\r\n";
  m += "--outer--\r\n";
  return m;
}

void bm_mime_parse_and_encode(benchmark::State& state) {
  std::string m = multipart_message();
  MimeParser parser;
  MimeInfo info;
  std::string cache;
  for (auto _ : state) {
    if (!parser.parse(m, &info).is_ok()) state.SkipWithError("parse");
    cache.clear();
    encode_mime_cache(info, &cache);
    benchmark::DoNotOptimize(cache.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(m.size()));
  state.counters["message_bytes"] = static_cast<double>(m.size());
  state.counters["cache_bytes"] = static_cast<double>(cache.size());
}
BENCHMARK(bm_mime_parse_and_encode);

// ---- full-text index

// Folded text as MessageText would give it: words of a generated vocabulary drawn with a
// Zipf-like skew (log-uniform rank), and two planted words: kFtsCommonWord in about a third of
// the documents, kFtsRareWord in about one in a thousand.
constexpr std::string_view kFtsCommonWord = "meeting";
constexpr std::string_view kFtsRareWord = "xylophone";

class FtsTextGenerator {
 public:
  static constexpr size_t kVocabulary = 20000;

  explicit FtsTextGenerator(uint64_t seed) : rng_(seed) {
    std::mt19937_64 vocab_rng(12345);  // one vocabulary whatever the seed
    words_.reserve(kVocabulary);
    for (size_t i = 0; i < kVocabulary; i++) {
      std::string w;
      const size_t len = 2 + vocab_rng() % 9;
      for (size_t j = 0; j < len; j++) w.push_back(static_cast<char>('a' + vocab_rng() % 26));
      words_.push_back(std::move(w));
    }
  }

  // About 1.5 KB of text: a subject line, then 150 to 350 words.
  std::string document() {
    std::string t = "subject: " + word() + " " + word() + "\n";
    const size_t n = 150 + rng_() % 200;
    const bool common = rng_() % 3 == 0, rare = rng_() % 1000 == 0;
    const size_t common_at = common ? rng_() % n : n, rare_at = rare ? rng_() % n : n;
    for (size_t i = 0; i < n; i++) {
      t += i == common_at ? std::string(kFtsCommonWord)
           : i == rare_at ? std::string(kFtsRareWord)
                          : word();
      t += rng_() % 12 == 0 ? '\n' : ' ';
    }
    return t;
  }

 private:
  const std::string& word() {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    const auto rank = static_cast<size_t>(std::exp(u * std::log(double(kVocabulary)))) - 1;
    return words_[std::min(rank, kVocabulary - 1)];
  }

  std::mt19937_64 rng_;
  std::vector<std::string> words_;
};

// An index of 20,000 documents written as the server writes it (a segment per 1,000 messages,
// fts_batch_docs' default, merged four of a size at a time), then opened again from its files:
// every lookup reads mapped segments, nothing is in memory.
struct FtsCorpus {
  static constexpr uint32_t kDocs = 20000;
  static constexpr uint32_t kBatchDocs = 1000;

  FtsCorpus() {
    root = temp_dir();
    FtsTextGenerator gen(1);
    std::unique_ptr<FtsIndex> f;
    std::vector<std::string> dropped;
    ok = FtsIndex::open(Env::posix(), root, 1, &f, &dropped).is_ok();
    auto all = [](uint32_t) { return true; };
    for (uint32_t uid = 1; ok && uid <= kDocs; uid++) {
      const std::string text = gen.document();
      common_docs += text.find(kFtsCommonWord) != std::string::npos;
      rare_docs += text.find(kFtsRareWord) != std::string::npos;
      f->add(uid, text);
      if (f->pending_docs() >= kBatchDocs) ok = f->flush(all).is_ok();
    }
    ok = ok && f->flush(all).is_ok();
    f.reset();
    ok = ok && FtsIndex::open(Env::posix(), root, 1, &index, &dropped).is_ok() && dropped.empty() &&
         index->covered_uid() == kDocs && index->pending_docs() == 0;
  }
  ~FtsCorpus() {
    index.reset();
    std::filesystem::remove_all(root);
  }

  std::string root;
  std::unique_ptr<FtsIndex> index;
  bool ok = false;
  uint32_t common_docs = 0, rare_docs = 0;  // documents that really hold the word
};

FtsCorpus& fts_corpus() {
  static FtsCorpus corpus;
  return corpus;
}

// One candidates() call per iteration: the trigrams of `word`, looked up and intersected in
// every segment.
void bm_fts_lookup(benchmark::State& state, std::string_view word) {
  FtsCorpus& corpus = fts_corpus();
  if (!corpus.ok) return state.SkipWithError("building the index failed");
  std::vector<uint32_t> out;
  for (auto _ : state) {
    out.clear();
    if (!corpus.index->candidates(word, &out)) state.SkipWithError("needle too short");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  const FtsStats st = corpus.index->stats();
  const uint32_t holding = word == kFtsCommonWord ? corpus.common_docs : corpus.rare_docs;
  state.SetLabel("'" + std::string(word) + "': " + std::to_string(out.size()) + " candidates, " +
                 std::to_string(holding) + " of " + std::to_string(st.docs) + " docs hold it, " +
                 std::to_string(st.segments) + " segments");
  state.counters["candidates"] = static_cast<double>(out.size());
  state.counters["index_bytes"] = static_cast<double>(st.index_bytes);
}
BENCHMARK_CAPTURE(bm_fts_lookup, common, kFtsCommonWord)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(bm_fts_lookup, rare, kFtsRareWord)->Unit(benchmark::kMicrosecond);

// Each iteration indexes a batch of 1,000 documents. Arg 0: add() alone (the in-memory part,
// dropped untimed after each batch). Arg 1: add() and flush(), which writes the batch as a
// segment and runs the merges due, as the server does (there on a helper thread) - one growing
// index, so later iterations pay for larger merges, as a growing mailbox does.
void bm_fts_index(benchmark::State& state) {
  const bool flush = state.range(0) != 0;
  constexpr uint32_t kBatchDocs = 1000;
  FtsTextGenerator gen(2);
  std::vector<std::string> docs;
  int64_t batch_bytes = 0;
  for (uint32_t i = 0; i < kBatchDocs; i++) {
    docs.push_back(gen.document());
    batch_bytes += static_cast<int64_t>(docs.back().size());
  }
  const std::string root = temp_dir();
  std::unique_ptr<FtsIndex> f;
  std::vector<std::string> dropped;
  if (!FtsIndex::open(Env::posix(), root, 1, &f, &dropped).is_ok())
    return state.SkipWithError("open");
  auto all = [](uint32_t) { return true; };
  uint32_t uid = 0;
  for (auto _ : state) {
    for (const std::string& d : docs) f->add(++uid, d);
    if (flush) {
      if (!f->flush(all).is_ok()) state.SkipWithError("flush");
    } else {
      state.PauseTiming();
      if (!f->clear().is_ok()) state.SkipWithError("clear");
      uid = 0;
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatchDocs);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * batch_bytes);
  const FtsStats st = f->stats();
  state.SetLabel(flush ? "add+flush+merge, " + std::to_string(st.docs) + " docs in " +
                             std::to_string(st.segments) + " segments"
                       : "add only");
  if (flush)
    state.counters["index_bytes_per_text_byte"] =
        st.text_bytes ? static_cast<double>(st.index_bytes) / static_cast<double>(st.text_bytes)
                      : 0;
  f.reset();
  std::filesystem::remove_all(root);
}
BENCHMARK(bm_fts_index)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace ringmail

BENCHMARK_MAIN();
