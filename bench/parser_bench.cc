// Micro-benchmarks of the command parser (Google Benchmark): bytes per second through the framer
// and the reader, for the shapes of input that matter (pipelined small commands, literals).
#include <benchmark/benchmark.h>

#include <string>

#include "protocol/command_parser.h"

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

}  // namespace
}  // namespace ringmail

BENCHMARK_MAIN();
