// Storage benchmarks (Google Benchmark), on the real file system under $TMPDIR (default /tmp):
//   durable APPEND of 4 KiB messages with group commit (1, 10 and 100 writers per sync),
//   opening a 1,000,000-message mailbox, reading the flags of all its messages,
//   fsck throughput over a user's segments, MIME parse (and cache record encode) throughput.
// Run: build/storage_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <random>
#include <string>

#include "storage/fsck.h"
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

}  // namespace
}  // namespace ringmail

BENCHMARK_MAIN();
