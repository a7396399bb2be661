// Micro-benchmarks of the command parser (Google Benchmark): bytes per second through the framer
// and the reader, for the shapes of input that matter (pipelined small commands, literals).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "protocol/command_parser.h"
#include "protocol/imap_fetch.h"
#include "protocol/imap_search.h"
#include "protocol/sequence_set.h"

namespace ringmail {
namespace {

const CommandFramer::Limits kLimits{8192, 1 << 20};

// A receive buffer full of pipelined NOOPs, framed one command at a time.
void bm_frame_pipelined_noops(benchmark::State& state) {
  std::string buf;
  for (int i = 0; i < 1000; i++) buf += "a" + std::to_string(i) + " NOOP\r\n";
  for (auto _ : state) {
    size_t pos = 0;
    CommandFramer f;
    while (pos < buf.size()) {
      f.scan(std::string_view(buf).substr(pos), kLimits);
      pos += f.frame_bytes();
      f.reset();
    }
    benchmark::DoNotOptimize(pos);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(bm_frame_pipelined_noops);

// A LOGIN with quoted strings, framed and read into its arguments.
void bm_frame_and_read_login(benchmark::State& state) {
  const std::string cmd =
      "a001 LOGIN \"someone@example.org\" \"a rather long \\\"password\\\"\"\r\n";
  std::string s1, s2;
  for (auto _ : state) {
    CommandFramer f;
    f.scan(cmd, kLimits);
    CommandReader r(std::string_view(cmd).substr(0, f.frame_bytes()));
    std::string_view tag, name, user, pass;
    r.tag(&tag);
    r.sp();
    r.atom(&name);
    r.sp();
    r.astring(&user, &s1);
    r.sp();
    r.astring(&pass, &s2);
    benchmark::DoNotOptimize(pass);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * cmd.size()));
}
BENCHMARK(bm_frame_and_read_login);

// A command carrying a 64 KiB non-synchronizing literal: the framer skips it without scanning.
void bm_frame_large_literal(benchmark::State& state) {
  std::string cmd = "a1 X {65536+}\r\n" + std::string(65536, 'x') + "\r\n";
  for (auto _ : state) {
    CommandFramer f;
    benchmark::DoNotOptimize(f.scan(cmd, kLimits));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * cmd.size()));
}
BENCHMARK(bm_frame_large_literal);

// Realistic client traffic: what a desktop client sends over a session (resync with CONDSTORE,
// header fetches, flag changes, searches, IDLE), framed, tokenized and parsed down to the FETCH
// items, search programs and sequence sets the session executes. Bytes per second of input.
void bm_realistic_client_traffic(benchmark::State& state) {
  const std::vector<std::string> session = {
      "a1 CAPABILITY\r\n",
      "a2 ID (\"name\" \"Thunderbird\" \"version\" \"115.3\")\r\n",
      "a3 SELECT INBOX (CONDSTORE)\r\n",
      "a4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
      std::string("a5 UID FETCH 41100:41190 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From "
                  "To Cc Bcc ") +
          "Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
          "Content-Type Reply-To)])\r\n",
      "a6 UID FETCH 41187 (UID RFC822.SIZE BODY.PEEK[])\r\n",
      "a7 UID STORE 41187 +FLAGS (\\Seen)\r\n",
      "a8 UID STORE 41001,41005:41010,41100 +FLAGS.SILENT (\\Deleted $Junk)\r\n",
      std::string("a9 UID SEARCH RETURN (ALL) CHARSET UTF-8 OR (FROM \"alice\") ") +
          "(SUBJECT \"report\") SINCE 1-Oct-2026 NOT DELETED\r\n",
      "a10 UID EXPUNGE 41001,41005:41010\r\n",
      "a11 IDLE\r\n",
      "DONE\r\n",
      "a12 NOOP\r\n",
      "a13 UID FETCH 41191:* (UID FLAGS MODSEQ BODYSTRUCTURE ENVELOPE INTERNALDATE)\r\n",
      "a14 UID MOVE 41002 Archive\r\n",
      "a15 STATUS \"Sent Items\" (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ)\r\n",
  };
  std::string buf;
  for (int i = 0; i < 50; i++)
    for (const std::string& c : session) buf += c;
  size_t commands = 0;
  std::string scratch;
  for (auto _ : state) {
    size_t pos = 0;
    CommandFramer f;
    while (pos < buf.size()) {
      f.scan(std::string_view(buf).substr(pos), kLimits);
      std::string_view frame = std::string_view(buf).substr(pos, f.frame_bytes());
      pos += f.frame_bytes();
      f.reset();
      commands++;
      CommandReader r(frame);
      std::string_view tag, cmd, set;
      if (!r.tag(&tag) || !r.sp() || !r.atom(&cmd)) continue;
      if (cmd == "UID" && (!r.sp() || !r.atom(&cmd))) continue;
      if (!r.sp()) continue;
      if (cmd == "FETCH" || cmd == "STORE" || cmd == "EXPUNGE" || cmd == "MOVE") {
        SequenceSet seq;
        if (!r.sequence_set_text(&set) || !seq.parse(set)) continue;
        benchmark::DoNotOptimize(seq.resolve(50000));
        if (cmd == "FETCH" && r.sp()) {
          FetchSpec spec;
          benchmark::DoNotOptimize(parse_fetch(r, &spec, &scratch));
        }
      } else if (cmd == "SEARCH") {
        SearchCommand search;
        benchmark::DoNotOptimize(parse_search(r, &search, &scratch));
      } else {
        std::string_view arg;
        benchmark::DoNotOptimize(r.astring(&arg, &scratch));
      }
    }
    benchmark::DoNotOptimize(pos);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buf.size()));
  state.SetItemsProcessed(static_cast<int64_t>(commands));
}
BENCHMARK(bm_realistic_client_traffic);

}  // namespace
}  // namespace ringmail

BENCHMARK_MAIN();
