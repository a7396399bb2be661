// ringmail-bench: load generator for IMAP servers (ringmail, and any other for comparison).
//
// One thread, non-blocking sockets, edge-triggered epoll. Every connection is a small state
// machine (connect -> greeting -> LOGIN -> [SELECT] -> ready -> ...). The mode only decides which
// command a ready connection sends next; the driver owns connecting, response parsing and checking,
// timing, error accounting and reporting.
//
// Numbers are only meaningful when the server answered correctly, so every protocol deviation
// (a NO or BAD where OK was expected, a line that does not parse, a FETCH without the data asked
// for, an APPEND whose EXISTS never reached a client idling on the mailbox) is counted as an error
// by kind and makes the exit status 1: a fast server that answers wrongly must not look good.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace {

using i64 = int64_t;
using u64 = uint64_t;
using ull = unsigned long long;  // for printf

constexpr i64 kSec = 1'000'000'000;
constexpr i64 kMaxOpening = 256;          // connections between connect() and greeting at once
constexpr size_t kMaxLine = 1 << 20;      // a longer line means the server is broken
constexpr uint32_t kNoConn = UINT32_MAX;  // error() without a connection

const char kUsage[] = R"(Usage: ringmail-bench [options]

Load generator for IMAP servers. Drives many non-blocking connections from one
thread, logs them in, runs a workload and checks every answer.

Connection:
  --host ADDR          IPv4 literal of the server (default 127.0.0.1); must be
                       in 127.0.0.0/8 unless --allow-remote is given
  --port N             server port (default 1143)
  --allow-remote       permit --host/--source-ips outside 127.0.0.0/8
  --tls                implicit TLS (connect to the IMAPS port); the server's
                       certificate is not verified (a benchmark, not a client)
  --source-ips A,B,..  bind connections round-robin to these local IPv4
                       addresses (e.g. 127.0.0.1,127.0.0.2) so that more than
                       ~28,000 connections find local ports
  --connections C      active client connections (default 10)
  --users U            distinct users (default 1); connection i is user i % U
  --user-pattern PAT   user name; every %d becomes the user number 0..U-1
                       (default 'bench%d')
  --password PW        password of every user (default 'benchpass')
  --users-file FILE    lines 'NAME PASSWORD' (or 'NAME': --password); replaces
                       --users and --user-pattern

Workload:
  --mode MODE          noop    NOOP, --pipeline in flight per connection
                       login   connect, LOGIN, LOGOUT, again, cycling through
                               the users; LOGIN is what is measured
                       select  SELECT the mailbox, again and again
                       fetch   SELECT once, then FETCH <random message>
                               <--fetch ITEMS>
                       append  APPEND a message (--corpus, or built-in mail of
                               1-4 KB) to the mailbox
                       search  SELECT once, then SEARCH, rotating over the
                               --search keys
                       mix     the weighted mix of a mail client's commands
                               (see --mix), plus --watchers per user in IDLE
                       load    APPEND --messages to every user's mailbox
                               (pipelined LITERAL+), then stop; bounded by
                               --max-seconds, not --duration
                       idle    LOGIN, SELECT, IDLE on every connection; prints
                               'connected=C logged_in=N idling=N' (stdout,
                               flushed) once all idle, then holds them for
                               --hold-seconds or until the server closed them
                       (default noop)
  --pipeline D         commands in flight per connection (default 1; load 16;
                       mix always 1)
  --duration S         measured seconds after the warmup (default 10)
  --warmup S           seconds whose completions are not counted (default 1)
  --max-commands N     also stop after N measured commands (default 0 = off)
  --rate R             commands/s all active connections together may start
                       (default 0: as fast as the server answers)
  --mailbox NAME       the mailbox used (default INBOX)
  --corpus FILE        an mbox (mboxrd) file, e.g. from bench/corpus.py: the
                       messages APPEND and load send, in order, cycling
  --messages N         load: messages per user (default 100)
  --max-seconds S      load: stop after S seconds (default 3600)
  --search KEYS        search keys (repeatable); search and mix rotate through
                       them (default: UNSEEN; TEXT "meeting"; FROM "a")
  --fetch ITEMS        fetch mode's items (default BODY.PEEK[])
  --mix SPEC           'op=weight,...' replaces the default mix, which is
                       fetch_headers=20,fetch_body=15,fetch_flags=15,store=15,
                       noop=11,search=9,append=6,expunge=6,status=2,logout=1
  --watchers W         mix: connections per user idling in the mailbox besides
                       the active ones (default 1); each APPEND's EXISTS must
                       reach every watcher of its user within --push-timeout
  --push-timeout S     seconds (default 10)
  --hold-seconds S     idle: how long to hold the connections (default 10)
  --notify             idle: --notify-after S (default 2) seconds after all
                       idle, one extra connection per user APPENDs a message;
                       reports the time until each watcher got its EXISTS
  --notify-after S
  --logged-in-only     idle: hold connections logged in, without SELECT/IDLE
  --setup-timeout S    connecting, logging in and selecting all connections
                       must finish within S seconds (default 60)
  --seed N             random choices (default 1)

Output:
  --json               one JSON object instead of the table (idle mode still
                       prints its connected= line first)
  --progress           progress line to stderr every second (default: only
                       when stderr is a terminal)
  --help               show this text

Latencies are in microseconds from a log-bucketed histogram (<= 1.6% error),
from the command leaving this client to its tagged response.
Exit status: 0 ok; 1 if any error was counted (an unexpected NO/BAD, a line
that does not parse, data missing from a response, a missing EXISTS, an
unexpected close, connect failure, timeout); 2 bad usage; 130 interrupted.
)";

volatile sig_atomic_t g_interrupted = 0;

i64 now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return i64(ts.tv_sec) * kSec + ts.tv_nsec;
}

// ---------------------------------------------------------------- commands

enum class Op : uint8_t {
  Login,
  Select,
  Noop,
  Status,
  FetchFlags,
  FetchHeaders,
  FetchBody,
  Fetch,
  Store,
  Append,
  Expunge,
  Search,
  Logout,
  Idle,      // IDLE sent -> the server's continuation
  IdleDone,  // DONE sent -> IDLE's tagged OK
  FetchNew,  // a watcher fetches what its EXISTS announced
};
constexpr size_t kOps = size_t(Op::FetchNew) + 1;
constexpr const char* kOpName[kOps] = {"login",       "select",        "noop",       "status",
                                       "fetch_flags", "fetch_headers", "fetch_body", "fetch",
                                       "store",       "append",        "expunge",    "search",
                                       "logout",      "idle",          "idle_done",  "fetch_new"};

// The ops a mix may contain, and the default weights (documented in bench/README.md).
constexpr std::pair<Op, unsigned> kDefaultMix[] = {
    {Op::FetchHeaders, 20}, {Op::FetchBody, 15}, {Op::FetchFlags, 15}, {Op::Store, 15},
    {Op::Noop, 11},         {Op::Search, 9},     {Op::Append, 6},      {Op::Expunge, 6},
    {Op::Status, 2},        {Op::Logout, 1}};

bool mix_op(Op op) {
  return std::any_of(std::begin(kDefaultMix), std::end(kDefaultMix),
                     [op](const auto& p) { return p.first == op; });
}

enum class Mode : uint8_t { Noop, Login, Select, Fetch, Append, Search, Mix, Load, Idle };
struct ModeSpec {
  std::string_view name;
  Mode mode;
  bool reconnect;  // no setup phase; connections are reopened after they close
  bool select;     // SELECT the mailbox after LOGIN, before the connection is ready
};
constexpr ModeSpec kModes[] = {
    {"noop", Mode::Noop, false, false},     {"login", Mode::Login, true, false},
    {"select", Mode::Select, false, false}, {"fetch", Mode::Fetch, false, true},
    {"append", Mode::Append, false, false}, {"search", Mode::Search, false, true},
    {"mix", Mode::Mix, false, true},        {"load", Mode::Load, true, false},
    {"idle", Mode::Idle, false, true},
};

// ---------------------------------------------------------------- options

struct Options {
  std::string host = "127.0.0.1";
  in_addr host_addr{};
  int port = 1143;
  u64 connections = 10, users = 1, pipeline = 0, max_commands = 0, messages = 100, watchers = 1;
  u64 seed = 1;
  std::string user_pattern = "bench%d", password = "benchpass", mode = "noop";
  std::string users_file, mailbox = "INBOX", corpus, fetch_items = "BODY.PEEK[]", mix;
  std::vector<std::string> search;
  double duration = 10, warmup = 1, hold = 10, rate = 0, push_timeout = 10, notify_after = 2;
  double setup_timeout = 60, max_seconds = 3600;
  bool json = false, progress = false, allow_remote = false, notify = false, logged_in_only = false;
  bool tls = false;
  std::vector<in_addr> source_ips;
};

bool parse_u64(std::string_view s, u64 lo, u64 hi, u64& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && out >= lo && out <= hi;
}

bool parse_seconds(const std::string& s, double& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return !s.empty() && *end == '\0' && errno == 0 && std::isfinite(out) && out >= 0 && out <= 1e7;
}

bool is_loopback(in_addr a) {
  return (ntohl(a.s_addr) >> 24) == 127;
}

bool parse_ipv4(const std::string& s, bool allow_remote, in_addr& out) {
  const char* why = inet_pton(AF_INET, s.c_str(), &out) != 1 ? "is not an IPv4 literal"
                    : !allow_remote && !is_loopback(out)
                        ? "is not in 127.0.0.0/8 (use --allow-remote)"
                        : nullptr;
  if (why) std::fprintf(stderr, "ringmail-bench: '%s' %s\n", s.c_str(), why);
  return why == nullptr;
}

bool has_crlf(const std::string& s) {
  return s.find_first_of("\r\n") != std::string::npos;
}

// Returns the exit status to stop with, or -1 to go on.
int parse_args(int argc, char** argv, Options& o) {
  auto bad = [](const std::string& what) {
    std::fprintf(stderr, "ringmail-bench: %s (see --help)\n", what.c_str());
    return 2;
  };
  std::string host = o.host, sources;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], val;
    bool inline_val = false;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
      val = arg.substr(eq + 1);
      arg.resize(eq);
      inline_val = true;
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    bool* flag = arg == "--json"             ? &o.json
                 : arg == "--progress"       ? &o.progress
                 : arg == "--allow-remote"   ? &o.allow_remote
                 : arg == "--notify"         ? &o.notify
                 : arg == "--logged-in-only" ? &o.logged_in_only
                 : arg == "--tls"            ? &o.tls
                                             : nullptr;
    if (flag) {
      if (inline_val) return bad(arg + " takes no value");
      *flag = true;
      continue;
    }
    if (!inline_val) {
      if (i + 1 >= argc) return bad("missing value for " + arg);
      val = argv[++i];
    }
    bool ok = true;
    u64 n = 0;
    if (arg == "--host")
      host = val;
    else if (arg == "--port")
      ok = parse_u64(val, 1, 65535, n) && (o.port = int(n)) > 0;
    else if (arg == "--connections")
      ok = parse_u64(val, 1, 1'000'000, o.connections);
    else if (arg == "--users")
      ok = parse_u64(val, 1, 100'000'000, o.users);
    else if (arg == "--user-pattern")
      o.user_pattern = val;
    else if (arg == "--password")
      o.password = val;
    else if (arg == "--users-file")
      o.users_file = val;
    else if (arg == "--mode")
      o.mode = val;
    else if (arg == "--pipeline")
      ok = parse_u64(val, 1, 100'000, o.pipeline);
    else if (arg == "--duration")
      ok = parse_seconds(val, o.duration) && o.duration > 0;
    else if (arg == "--warmup")
      ok = parse_seconds(val, o.warmup);
    else if (arg == "--hold-seconds")
      ok = parse_seconds(val, o.hold);
    else if (arg == "--max-commands")
      ok = parse_u64(val, 0, UINT64_MAX, o.max_commands);
    else if (arg == "--source-ips")
      sources = val;
    else if (arg == "--rate")
      ok = parse_seconds(val, o.rate);
    else if (arg == "--mailbox")
      o.mailbox = val;
    else if (arg == "--corpus")
      o.corpus = val;
    else if (arg == "--messages")
      ok = parse_u64(val, 1, 1'000'000'000, o.messages);
    else if (arg == "--max-seconds")
      ok = parse_seconds(val, o.max_seconds) && o.max_seconds > 0;
    else if (arg == "--search")
      o.search.push_back(val);
    else if (arg == "--fetch")
      o.fetch_items = val;
    else if (arg == "--mix")
      o.mix = val;
    else if (arg == "--watchers")
      ok = parse_u64(val, 0, 1000, o.watchers);
    else if (arg == "--push-timeout")
      ok = parse_seconds(val, o.push_timeout) && o.push_timeout > 0;
    else if (arg == "--notify-after")
      ok = parse_seconds(val, o.notify_after);
    else if (arg == "--setup-timeout")
      ok = parse_seconds(val, o.setup_timeout) && o.setup_timeout > 0;
    else if (arg == "--seed")
      ok = parse_u64(val, 0, UINT64_MAX, o.seed);
    else
      return bad("unknown option " + arg);
    if (!ok) return bad("bad value '" + val + "' for " + arg);
  }
  if (!parse_ipv4(host, o.allow_remote, o.host_addr)) return 2;
  o.host = host;
  for (size_t start = 0; !sources.empty() && start <= sources.size();) {
    size_t comma = std::min(sources.find(',', start), sources.size());
    in_addr a;
    if (!parse_ipv4(sources.substr(start, comma - start), o.allow_remote, a)) return 2;
    o.source_ips.push_back(a);
    start = comma + 1;
  }
  if (o.search.empty()) o.search = {"UNSEEN", "TEXT \"meeting\"", "FROM \"a\""};
  // A command line cannot carry CR or LF; refuse rather than send a broken command.
  for (const std::string* s : {&o.user_pattern, &o.password, &o.mailbox, &o.fetch_items})
    if (has_crlf(*s)) return bad("options must not contain CR or LF");
  for (const std::string& s : o.search)
    if (has_crlf(s)) return bad("--search must not contain CR or LF");
  return -1;
}

// ---------------------------------------------------------------- histogram

// HDR-like histogram of nanosecond values: exact below 128, above that 64
// sub-buckets per power of two (relative error < 1/64). Fixed ~30 KB.
class Histogram {
 public:
  void record(u64 v) {
    ++counts_[index(v)];
    ++total_;
    sum_ += v;
    max_ = std::max(max_, v);
  }
  u64 total() const { return total_; }
  u64 max() const { return max_; }
  double mean() const { return total_ ? double(sum_) / double(total_) : 0; }
  // Smallest recorded bucket bound with at least q of all samples at or below it.
  u64 percentile(double q) const {
    if (total_ == 0) return 0;
    u64 want = std::max<u64>(1, u64(std::ceil(q * double(total_))));
    u64 seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i)
      if ((seen += counts_[i]) >= want) return std::min(upper(i), max_);
    return max_;
  }

 private:
  static constexpr int kSub = 6;  // 2^6 sub-buckets per power of two
  static constexpr size_t kLinear = size_t(2) << kSub;
  static constexpr size_t kBuckets = kLinear + (63 - kSub) * (size_t(1) << kSub);

  static size_t index(u64 v) {
    if (v < kLinear) return size_t(v);
    int msb = 63 - std::countl_zero(v);
    int shift = msb - kSub;
    return kLinear + size_t(msb - kSub - 1) * (1u << kSub) +
           size_t((v >> shift) - (u64(1) << kSub));
  }
  static u64 upper(size_t i) {
    if (i < kLinear) return i;
    size_t k = i - kLinear;
    int shift = int(k >> kSub) + 1;
    u64 mantissa = (k & ((1u << kSub) - 1)) + (u64(1) << kSub);
    return ((mantissa + 1) << shift) - 1;
  }

  std::array<u64, kBuckets> counts_{};
  u64 total_ = 0, sum_ = 0, max_ = 0;
};

// ---------------------------------------------------------------- errors

enum Err : int {
  kConnectRefused,
  kConnectNoAddr,
  kConnectFailed,
  kGreetingBad,
  kGreetingBye,
  kLoginNo,
  kLoginBad,
  kCommandNo,
  kCommandBad,
  kLogoutBad,
  kLogoutNoBye,
  kBareLf,
  kUnparseable,
  kUnexpectedTag,
  kUnexpectedContinuation,
  kLineTooLong,
  kClosedUnexpectedly,
  kClosedAfterBye,
  kIoError,
  kTimeout,
  kSetupTimeout,
  kSelectWithoutExists,
  kFetchWithoutData,
  kSearchWithoutResult,
  kStatusWithoutResult,
  kEmptyMailbox,
  kMissingExists,
  kTlsFailed,
  kErrCount
};
constexpr const char* kErrName[kErrCount] = {"connect_refused",
                                             "connect_addr_not_avail",
                                             "connect_failed",
                                             "greeting_bad",
                                             "greeting_bye",
                                             "login_no",
                                             "login_bad",
                                             "command_no",
                                             "command_bad",
                                             "logout_failed",
                                             "logout_without_bye",
                                             "bare_lf",
                                             "unparseable_line",
                                             "unexpected_tag",
                                             "unexpected_continuation",
                                             "line_too_long",
                                             "closed_unexpectedly",
                                             "closed_after_bye",
                                             "io_error",
                                             "phase_timeout",
                                             "setup_timeout",
                                             "select_without_exists",
                                             "fetch_without_data",
                                             "search_without_result",
                                             "status_without_result",
                                             "empty_mailbox",
                                             "missing_exists",
                                             "tls_failed"};

// ---------------------------------------------------------------- text helpers

std::string_view first_word(std::string_view s) {
  return s.substr(0, s.find(' '));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

// IMAP quoted string: only '"' and '\' need a backslash.
void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  out += '"';
}

// Does the line end in a literal announcement "{n}" (or "{n+}")? Then n bytes follow.
bool literal_suffix(std::string_view line, u64& n) {
  if (line.empty() || line.back() != '}') return false;
  line.remove_suffix(1);
  if (!line.empty() && line.back() == '+') line.remove_suffix(1);
  size_t open = line.rfind('{');
  if (open == std::string_view::npos || open + 1 == line.size()) return false;
  auto digits = line.substr(open + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  return ec == std::errc() && end == digits.data() + digits.size();
}

// Does a response tag "a<number>" name the command we sent with that number?
bool tag_matches(std::string_view tag, u64 want) {
  if (tag.size() < 2 || tag[0] != 'a') return false;
  u64 got = 0;
  auto [end, ec] = std::from_chars(tag.data() + 1, tag.data() + tag.size(), got);
  return ec == std::errc() && end == tag.data() + tag.size() && got == want;
}

// "<number> <word>..." of an untagged response: returns the word and sets n.
std::string_view numbered(std::string_view rest, u64& n) {
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
  if (ec != std::errc() || end == rest.data() || end == rest.data() + rest.size() || *end != ' ')
    return {};
  return first_word(rest.substr(size_t(end - rest.data()) + 1));
}

u64 splitmix(u64& s) {
  u64 z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// ---------------------------------------------------------------- messages and users

bool read_file(const std::string& path, std::string& out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0) return close(fd), false;
  out.resize(size_t(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n <= 0) return close(fd), false;
    got += size_t(n);
  }
  close(fd);
  return true;
}

// Appends line (without its end) to a message, ended by CRLF whatever the file used.
void append_crlf_line(std::string& msg, std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  msg.append(line).append("\r\n");
}

// An mboxrd file: "From " lines separate messages, ">From " (any number of '>') lost one '>'.
std::vector<std::string> parse_mbox(std::string_view text) {
  std::vector<std::string> out;
  std::string* cur = nullptr;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.starts_with("From ")) {
      cur = &out.emplace_back();
      continue;
    }
    if (!cur) continue;
    size_t gt = line.find_first_not_of('>');
    if (gt > 0 && gt != std::string_view::npos && line.substr(gt).starts_with("From "))
      line.remove_prefix(1);
    append_crlf_line(*cur, line);
  }
  // The writer ends every message with one more line end than the message had.
  for (std::string& m : out)
    if (m.size() >= 4 && m.ends_with("\r\n\r\n")) m.resize(m.size() - 2);
  std::erase_if(out, [](const std::string& m) { return m.empty(); });
  return out;
}

// Built-in mail when no corpus is given: 64 deterministic messages of 1-4 KB.
std::vector<std::string> builtin_messages(u64 seed) {
  static constexpr const char* kWords[] = {
      "meeting", "report",  "budget", "project", "schedule", "review",  "update", "draft",
      "invoice", "quarter", "team",   "release", "customer", "support", "server", "please",
      "thanks",  "monday",  "friday", "agenda",  "notes",    "design",  "test",   "deadline"};
  constexpr size_t kNWords = std::size(kWords);
  std::vector<std::string> out;
  u64 s = seed * 7919 + 1;
  for (int i = 0; i < 64; ++i) {
    std::string m;
    auto word = [&] { return kWords[splitmix(s) % kNWords]; };
    m += "From: Sender " + std::to_string(i % 17) + " <sender" + std::to_string(i % 17) +
         "@example.com>\r\n";
    m += "To: bench <bench@example.org>\r\n";
    m += std::string("Subject: ") + word() + " " + word() + " " + std::to_string(i) + "\r\n";
    m += "Date: Mon, 2 Nov 2026 10:" + std::to_string(10 + i % 50) + ":00 +0000\r\n";
    m +=
        "Message-ID: <bench" + std::to_string(i) + "." + std::to_string(seed) + "@example.com>\r\n";
    m += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
    size_t body = 1000 + splitmix(s) % 3000, line = 0;
    while (body > 0) {
      std::string w = word();
      m += w;
      line += w.size() + 1;
      body -= std::min(body, w.size() + 1);
      if (line > 70) {
        m += "\r\n";
        line = 0;
      } else {
        m += ' ';
      }
    }
    m += "\r\n";
    out.push_back(std::move(m));
  }
  return out;
}

struct User {
  std::string name, password;
};

std::vector<User> make_users(const Options& o, std::string& err) {
  std::vector<User> users;
  if (!o.users_file.empty()) {
    std::string text;
    if (!read_file(o.users_file, text)) return err = "cannot read " + o.users_file, users;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = std::min(text.find('\n', pos), text.size());
      std::string_view line(text.data() + pos, nl - pos);
      pos = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || line[0] == '#') continue;
      size_t sp = line.find(' ');
      users.push_back({std::string(line.substr(0, sp)), sp == std::string_view::npos
                                                            ? o.password
                                                            : std::string(line.substr(sp + 1))});
    }
    if (users.empty()) err = "no users in " + o.users_file;
    return users;
  }
  users.reserve(o.users);
  for (u64 u = 0; u < o.users; ++u) {
    std::string name;
    std::string_view pat = o.user_pattern;
    for (size_t i = 0; i < pat.size(); ++i) {
      if (pat[i] == '%' && i + 1 < pat.size() && pat[i + 1] == 'd')
        name += std::to_string(u), ++i;
      else
        name += pat[i];
    }
    users.push_back({std::move(name), o.password});
  }
  return users;
}

// ---------------------------------------------------------------- connections

enum class St : uint8_t { Closed, Connecting, Greeting, LoggingIn, Selecting, Ready, LoggingOut };
enum class Role : uint8_t {
  Active,    // runs the workload
  Watcher,   // sits in IDLE on the mailbox and must be told of every APPEND to it
  Notifier,  // idle --notify: logs in once, APPENDs one message, logs out
};
enum class IdleSt : uint8_t { None, Sent, Idling, DoneSent };

struct Pending {
  u64 tag;
  i64 sent_ns;      // 0 until the command has been handed to the kernel
  uint32_t expect;  // untagged FETCH responses the answer must carry at least
  Op op;
  bool literal;  // the FETCH must carry a literal (a body section)
};

struct Conn {
  int fd = -1;
  WOLFSSL* ssl = nullptr;  // --tls
  int tls_retry = 0;       // the length of a wolfSSL_write that must be repeated as it was
  uint32_t gen = 0;        // bumped on close so stale epoll events are ignored
  uint32_t user = 0;
  St st = St::Closed;
  Role role = Role::Active;
  IdleSt idle = IdleSt::None;
  bool bye_seen = false, logout_ok = false;
  bool in_continuation = false;  // the rest of a line that was interrupted by a literal
  bool literal_plus = false;     // the server announced LITERAL+
  bool rate_waiting = false, appended = false, expunge_next = false, handshaking = false;
  // What the untagged responses since the last tagged one carried.
  bool resp_exists = false, resp_search = false, resp_status = false, resp_nil_body = false;
  uint32_t resp_fetches = 0, resp_literals = 0;
  u64 literal_left = 0;  // literal payload bytes still to skip
  u64 next_tag = 0;
  u64 exists = 0;      // the mailbox's size as this session sees it
  u64 fetched_to = 0;  // watcher: messages it has fetched (or was shown at SELECT)
  u64 rng = 0, search_next = 0;
  i64 phase_ns = 0;    // when st last changed (stall detection)
  i64 push_since = 0;  // watcher: when an APPEND it must hear of was sent (0: none)
  const std::string* cont_payload = nullptr;  // a synchronizing literal waiting for "+"
  std::string in, out;
  size_t out_pos = 0;
  std::deque<Pending> inflight;  // responses arrive in order, so a FIFO suffices
};

struct OpStats {
  Histogram hist;
  u64 errors = 0;
};

struct Stats {
  u64 greeted = 0, logins = 0, bye_received = 0, expunge_issued = 0, appended_ok = 0;
  u64 bytes_sent = 0, bytes_received = 0;
  i64 first_bye_ns = 0, last_bye_ns = 0;
  u64 push_expected = 0, push_seen = 0, push_missing = 0;
  i64 first_notify_ns = 0, last_push_ns = 0;
  std::array<u64, kErrCount> errors{};
  u64 error_total() const { return std::accumulate(errors.begin(), errors.end(), u64(0)); }
};

// ---------------------------------------------------------------- the driver

class Bench {
 public:
  Bench(const Options& o, const ModeSpec& m, std::vector<User> users,
        std::vector<std::string> messages);
  int run();

 private:
  bool is(Mode m) const { return mode_.mode == m; }
  // lifecycle
  void start_pending_connects();
  void start_connect(uint32_t idx);
  void connect_failed(uint32_t idx, int err);
  void close_conn(uint32_t idx);
  void close_all();
  void set_state(Conn& c, St s);
  // I/O
  void poll_once(i64 deadline);
  void on_event(uint32_t idx, uint32_t events);
  void on_readable(uint32_t idx, uint32_t events);
  void on_eof(uint32_t idx);
  void flush(uint32_t idx);
  bool tls_handshake(uint32_t idx);
  ssize_t io_read(Conn& c, char* buf, size_t n);
  ssize_t io_write(Conn& c, const char* data, size_t n);
  Pending& send_cmd(Conn& c, std::string_view text, Op op);
  void pump(uint32_t idx);
  bool rate_allows(uint32_t idx);
  bool send_next(uint32_t idx);
  void send_mix(uint32_t idx);
  void send_append(uint32_t idx);
  void send_fetch(Conn& c, Op op, u64 lo, u64 hi, std::string_view items, bool literal);
  void send_idle(Conn& c);
  u64 random_message(Conn& c) { return 1 + splitmix(c.rng) % c.exists; }
  // protocol
  bool consume_input(uint32_t idx, i64 now);
  void handle_line(uint32_t idx, std::string_view line, i64 now);
  void handle_continuation(uint32_t idx, std::string_view line, i64 now);
  void handle_untagged(uint32_t idx, std::string_view rest, i64 now);
  void on_exists(uint32_t idx, u64 n, i64 now);
  void handle_tagged(uint32_t idx, const Pending& p, std::string_view resp, i64 now);
  bool check_answer(uint32_t idx, const Pending& p);
  void after_login(uint32_t idx);
  void send_login(uint32_t idx);
  void record(Op op, i64 now, i64 latency);
  void error(uint32_t idx, Err e, std::string_view detail);
  void fail(uint32_t idx, Err e, std::string_view detail) {
    error(idx, e, detail), close_conn(idx);
  }
  void expire_pushes(i64 now);
  // phases and output
  bool setup();
  bool setup_done() const;
  void measure();
  void hold();
  void drain_pushes();
  void tick(i64 now);
  void report() const;
  void report_json() const;
  u64 measured() const { return total_.total(); }

  const Options& opt_;
  const ModeSpec& mode_;
  std::vector<User> users_;
  std::vector<std::string> messages_;
  std::vector<std::pair<Op, unsigned>> mix_;  // cumulative weights
  unsigned mix_total_ = 0;
  bool fetch_literal_ = false;
  u64 pipeline_ = 1;
  std::vector<Conn> conns_;
  std::vector<std::vector<uint32_t>> watchers_;  // per user
  std::vector<uint32_t> watcher_list_, notifiers_;
  std::vector<u64> remaining_;  // load: messages still to send, per user
  u64 load_cursor_ = 0, next_message_ = 0;
  std::deque<uint32_t> queue_;      // connections waiting to be (re)opened
  std::deque<uint32_t> rate_wait_;  // connections waiting for --rate
  int ep_ = -1;
  WOLFSSL_CTX* tls_ctx_ = nullptr;
  i64 n_open_ = 0, n_opening_ = 0, n_ready_ = 0, n_idling_ = 0, n_watchers_open_ = 0;
  u64 next_source_ = 0, next_user_ = 0;
  bool running_ = false, stopping_ = false, notified_ = false;
  Stats stats_;
  std::vector<OpStats> ops_ = std::vector<OpStats>(kOps);
  Histogram total_, push_hist_;
  u64 completed_ = 0, progress_mark_ = 0;
  i64 start_ns_ = 0, setup_ns_ = 0, warm_end_ = 0, end_ = 0, stop_ns_ = 0, held_ns_ = 0;
  i64 next_tick_ = 0, next_send_ns_ = 0, send_interval_ns_ = 0, phase_timeout_ = 60 * kSec;
  bool progress_ = false, setup_ok_ = true;
};

Bench::Bench(const Options& o, const ModeSpec& m, std::vector<User> users,
             std::vector<std::string> messages)
    : opt_(o), mode_(m), users_(std::move(users)), messages_(std::move(messages)) {
  u64 nusers = users_.size();
  pipeline_ = is(Mode::Mix) ? 1 : opt_.pipeline ? opt_.pipeline : is(Mode::Load) ? 16 : 1;
  bool watchers = is(Mode::Mix) || (is(Mode::Idle) && !opt_.logged_in_only);
  u64 nwatch = is(Mode::Mix) ? opt_.watchers * nusers : 0;
  u64 nnotify = is(Mode::Idle) && opt_.notify && watchers ? nusers : 0;
  conns_.resize(opt_.connections + nwatch + nnotify);
  watchers_.resize(watchers ? nusers : 0);
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    Conn& c = conns_[i];
    c.rng = opt_.seed * 0x100000001b3ULL + i;
    c.search_next = i;
    if (i < opt_.connections) {
      c.user = uint32_t(i % nusers);
      c.role = is(Mode::Idle) && watchers ? Role::Watcher : Role::Active;
    } else if (i < opt_.connections + nwatch) {
      c.user = uint32_t((i - opt_.connections) % nusers);
      c.role = Role::Watcher;
    } else {
      c.user = uint32_t(i - opt_.connections - nwatch);
      c.role = Role::Notifier;
      notifiers_.push_back(i);
      continue;  // opened when it is time to notify
    }
    if (c.role == Role::Watcher) watchers_[c.user].push_back(i), watcher_list_.push_back(i);
    queue_.push_back(i);
  }
  if (is(Mode::Load)) remaining_.assign(nusers, opt_.messages);
  std::string_view items = opt_.fetch_items;
  fetch_literal_ = items.find('[') != std::string_view::npos || icontains(items, "RFC822 ") ||
                   icontains(items, "RFC822)") || iequals(items, "RFC822") ||
                   icontains(items, "RFC822.HEADER") || icontains(items, "RFC822.TEXT");
  if (opt_.rate > 0) send_interval_ns_ = std::max<i64>(1, i64(double(kSec) / opt_.rate));
  phase_timeout_ = std::max<i64>(60 * kSec, i64(opt_.setup_timeout * kSec));
}

void Bench::error(uint32_t idx, Err e, std::string_view detail) {
  // The first occurrence of each kind is shown so a failing run can be diagnosed.
  if (stats_.errors[e]++ == 0) {
    std::string where = idx == kNoConn ? "" : " (connection " + std::to_string(idx) + ")";
    std::fprintf(stderr, "ringmail-bench: error %s%s: %.*s\n", kErrName[e], where.c_str(),
                 int(std::min<size_t>(detail.size(), 200)), detail.data());
  }
  if (e == kConnectNoAddr && stats_.errors[e] == 1 && opt_.source_ips.empty())
    std::fprintf(stderr,
                 "ringmail-bench: out of local ports; try --source-ips 127.0.0.1,127.0.0.2,...\n");
}

void Bench::set_state(Conn& c, St s) {
  auto opening = [](St x) { return x == St::Connecting || x == St::Greeting; };
  n_opening_ += int(opening(s)) - int(opening(c.st));
  n_ready_ += int(s == St::Ready) - int(c.st == St::Ready);
  c.st = s;
  c.phase_ns = now_ns();
}

void Bench::start_pending_connects() {
  // Only look at what was queued on entry: a connect that fails at once and
  // requeues itself (login mode) must not spin here.
  for (size_t budget = queue_.size(); budget > 0 && n_opening_ < kMaxOpening; --budget) {
    uint32_t idx = queue_.front();
    queue_.pop_front();
    start_connect(idx);
  }
}

void Bench::start_connect(uint32_t idx) {
  Conn& c = conns_[idx];
  if (is(Mode::Login)) {
    c.user = uint32_t(next_user_++ % users_.size());
  } else if (is(Mode::Load)) {
    // The next user with messages still to send; none left: this connection is done.
    u64 n = users_.size(), k = 0;
    while (k < n && remaining_[(load_cursor_ + k) % n] == 0) ++k;
    if (k == n) return;
    c.user = uint32_t((load_cursor_ + k) % n);
    load_cursor_ = (load_cursor_ + k + 1) % n;
  }
  Conn fresh;  // fresh session state; identity and the random stream survive
  fresh.gen = c.gen, fresh.user = c.user, fresh.role = c.role, fresh.rng = c.rng;
  fresh.search_next = c.search_next, fresh.appended = c.appended;
  c = std::move(fresh);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return connect_failed(idx, errno);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
             sizeof one);  // small commands must not wait for Nagle
  if (!opt_.source_ips.empty()) {
    // Defer the port choice to connect() so only the full 4-tuple must be unique.
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{AF_INET, 0, opt_.source_ips[next_source_++ % opt_.source_ips.size()], {}};
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) < 0) {
      int e = errno;
      close(fd);
      return connect_failed(idx, e);
    }
  }
  sockaddr_in dst{AF_INET, htons(uint16_t(opt_.port)), opt_.host_addr, {}};
  int r = connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = (u64(c.gen) << 32) | idx;
  if ((r < 0 && errno != EINPROGRESS) || epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int e = errno;
    close(fd);
    return connect_failed(idx, e);
  }
  c.fd = fd;
  ++n_open_;
  if (c.role == Role::Watcher) ++n_watchers_open_;
  set_state(c, r == 0 ? St::Greeting : St::Connecting);
}

void Bench::connect_failed(uint32_t idx, int err) {
  Err kind = err == ECONNREFUSED    ? kConnectRefused
             : err == EADDRNOTAVAIL ? kConnectNoAddr
                                    : kConnectFailed;
  error(idx, kind, std::strerror(err));
  if (conns_[idx].fd >= 0)
    close_conn(idx);
  else if (mode_.reconnect && running_ && !stopping_)
    queue_.push_back(idx);
}

void Bench::close_conn(uint32_t idx) {
  Conn& c = conns_[idx];
  if (c.fd < 0) return;
  // The input buffer is left alone: the parser may still hold a view into it.
  if (c.ssl) wolfSSL_free(c.ssl), c.ssl = nullptr;
  close(c.fd);
  c.fd = -1;
  ++c.gen;
  if (c.idle == IdleSt::Idling) --n_idling_;
  c.idle = IdleSt::None;
  if (c.role == Role::Watcher) --n_watchers_open_;
  set_state(c, St::Closed);
  --n_open_;
  // login and load reopen every connection; the mix reopens after its own LOGOUT.
  bool again = mode_.reconnect || (is(Mode::Mix) && c.logout_ok && c.role == Role::Active);
  if (again && running_ && !stopping_) queue_.push_back(idx);
}

void Bench::close_all() {
  stopping_ = true;
  queue_.clear();
  for (uint32_t i = 0; i < conns_.size(); ++i) close_conn(i);
}

void Bench::poll_once(i64 deadline) {
  start_pending_connects();  // before waiting: they are what produces the events
  i64 until = std::min(deadline, next_tick_);
  if (!rate_wait_.empty()) until = std::min(until, next_send_ns_);
  i64 wait = std::max<i64>(0, until - now_ns());
  timespec ts{time_t(wait / kSec), long(wait % kSec)};
  epoll_event evs[512];
  int n = epoll_pwait2(ep_, evs, 512, &ts, nullptr);
  for (int i = 0; i < n; ++i) {
    uint32_t idx = uint32_t(evs[i].data.u64);
    // An event can outlive its socket within one batch; the generation tells.
    if (conns_[idx].fd >= 0 && conns_[idx].gen == uint32_t(evs[i].data.u64 >> 32))
      on_event(idx, evs[i].events);
  }
  i64 now = now_ns();
  // Connections that waited for --rate, in the order they started waiting.
  while (!rate_wait_.empty() && now >= next_send_ns_) {
    uint32_t idx = rate_wait_.front();
    rate_wait_.pop_front();
    conns_[idx].rate_waiting = false;
    pump(idx);
    flush(idx);
  }
  if (now >= next_tick_) tick(now);
}

void Bench::on_event(uint32_t idx, uint32_t events) {
  Conn& c = conns_[idx];
  if (c.st == St::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) return connect_failed(idx, err);
    if (!(events & (EPOLLOUT | EPOLLIN))) return;
    set_state(c, St::Greeting);
  }
  // The handshake's last read may have taken the greeting into wolfSSL's buffer: read then too.
  bool handshake_done = false;
  if (tls_ctx_ && (!c.ssl || c.handshaking)) {
    if (!tls_handshake(idx)) return;
    handshake_done = true;
  }
  if (handshake_done || (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
    on_readable(idx, events);
  if (c.fd >= 0 && (events & EPOLLOUT)) flush(idx);
}

// --tls: starts or continues the handshake; true once it is done (and the connection open).
bool Bench::tls_handshake(uint32_t idx) {
  Conn& c = conns_[idx];
  if (!c.ssl) {
    c.ssl = wolfSSL_new(tls_ctx_);
    if (!c.ssl || wolfSSL_set_fd(c.ssl, c.fd) != WOLFSSL_SUCCESS)
      return fail(idx, kTlsFailed, "wolfSSL_new/set_fd failed"), false;
    c.handshaking = true;
  }
  if (!c.handshaking) return true;
  int r = wolfSSL_connect(c.ssl);
  if (r == WOLFSSL_SUCCESS) {
    c.handshaking = false;
    return true;
  }
  int e = wolfSSL_get_error(c.ssl, r);
  if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) return false;
  char why[WOLFSSL_MAX_ERROR_SZ];
  fail(idx, kTlsFailed, std::string("handshake: ") + wolfSSL_ERR_error_string(e, why));
  return false;
}

ssize_t Bench::io_read(Conn& c, char* buf, size_t n) {
  if (!c.ssl) return read(c.fd, buf, n);
  int r = wolfSSL_read(c.ssl, buf, int(std::min<size_t>(n, INT32_MAX)));
  if (r > 0) return r;
  int e = wolfSSL_get_error(c.ssl, r);
  if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) return errno = EAGAIN, -1;
  if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E) return 0;
  return errno = ECONNRESET, -1;
}

ssize_t Bench::io_write(Conn& c, const char* data, size_t n) {
  if (!c.ssl) return send(c.fd, data, n, MSG_NOSIGNAL);
  // After WANT_WRITE wolfSSL must be called again with the same length.
  int len = c.tls_retry ? c.tls_retry : int(std::min<size_t>(n, 16384));
  int r = wolfSSL_write(c.ssl, data, len);
  if (r > 0) return c.tls_retry = 0, r;
  int e = wolfSSL_get_error(c.ssl, r);
  if (e == WOLFSSL_ERROR_WANT_WRITE || e == WOLFSSL_ERROR_WANT_READ)
    return c.tls_retry = len, errno = EAGAIN, -1;
  return errno = EPIPE, -1;
}

void Bench::on_readable(uint32_t idx, uint32_t events) {
  static char buf[64 * 1024];
  Conn& c = conns_[idx];
  for (;;) {
    ssize_t n = io_read(c, buf, sizeof buf);
    if (n > 0) {
      stats_.bytes_received += u64(n);
      c.in.append(buf, size_t(n));
      if (!consume_input(idx, now_ns())) return;
      // Edge-triggered: a short read drained the socket, and anything arriving
      // later raises a new edge. A pending hangup must still be read to EOF.
      // (Under TLS a read returns one record: read until wolfSSL wants more.)
      if (!c.ssl && size_t(n) < sizeof buf && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) break;
      continue;
    }
    if (n == 0 || errno == ECONNRESET) return on_eof(idx);
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno != EINTR) return fail(idx, kIoError, std::strerror(errno));
  }
  pump(idx);
  flush(idx);
}

void Bench::on_eof(uint32_t idx) {
  const Conn& c = conns_[idx];
  // Idle mode waits for the server's shutdown BYE, but only logged-in connections should get one.
  bool expected = (c.st == St::LoggingOut && c.logout_ok) ||
                  (is(Mode::Idle) && c.bye_seen && c.st == St::Ready);
  if (!expected) {
    static const char* const kState[] = {"closed", "connecting", "greeting", "login",
                                         "select", "ready",      "logout"};
    error(idx, c.bye_seen ? kClosedAfterBye : kClosedUnexpectedly,
          std::string("server closed the connection in state ") + kState[int(c.st)]);
  }
  close_conn(idx);
}

Pending& Bench::send_cmd(Conn& c, std::string_view text, Op op) {
  char num[24];
  char* end = std::to_chars(num, num + sizeof num, ++c.next_tag).ptr;
  c.out.append("a").append(num, end).append(" ").append(text).append("\r\n");
  return c.inflight.emplace_back(Pending{c.next_tag, 0, 0, op, false});
}

void Bench::flush(uint32_t idx) {
  Conn& c = conns_[idx];
  if (c.fd < 0 || c.out_pos == c.out.size() || c.handshaking) return;
  // Stamp commands when they leave, so time spent queued in this client before
  // the write is not charged to the server.
  i64 now = now_ns();
  for (auto it = c.inflight.rbegin(); it != c.inflight.rend() && it->sent_ns == 0; ++it)
    it->sent_ns = now;
  while (c.out_pos < c.out.size()) {
    ssize_t n = io_write(c, c.out.data() + c.out_pos, c.out.size() - c.out_pos);
    if (n > 0) {
      c.out_pos += size_t(n);
      stats_.bytes_sent += u64(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;  // the next EPOLLOUT edge calls flush again
    } else if (errno == EPIPE || errno == ECONNRESET) {
      return on_eof(idx);  // classify like a close seen on the read side
    } else if (errno != EINTR) {
      return fail(idx, kIoError, std::strerror(errno));
    }
  }
  c.out.clear();
  c.out_pos = 0;
}

// ---------------------------------------------------------------- what to send next

void Bench::pump(uint32_t idx) {
  Conn& c = conns_[idx];
  if (c.fd < 0 || c.st != St::Ready) return;
  switch (c.role) {
    case Role::Watcher:
      if (!c.inflight.empty() || c.idle != IdleSt::None || stopping_) return;
      if (is(Mode::Mix) && running_ && c.exists > c.fetched_to) {
        // What the EXISTS announced, as a client shows a new message in its list.
        u64 lo = c.fetched_to + 1;
        c.fetched_to = c.exists;
        return send_fetch(c, Op::FetchNew, lo, c.exists, "(UID FLAGS ENVELOPE)", false);
      }
      return send_idle(c);
    case Role::Notifier:
      if (!running_ || stopping_ || !c.inflight.empty()) return;
      if (!c.appended) return c.appended = true, send_append(idx);
      send_cmd(c, "LOGOUT", Op::Logout);
      return set_state(c, St::LoggingOut);
    case Role::Active:
      while (running_ && !stopping_ && c.fd >= 0 && c.st == St::Ready &&
             c.inflight.size() < pipeline_ && !c.cont_payload && rate_allows(idx))
        if (!send_next(idx)) break;
      return;
  }
}

// --rate: one command may start every 1/R seconds, over all active connections.
bool Bench::rate_allows(uint32_t idx) {
  if (send_interval_ns_ == 0) return true;
  Conn& c = conns_[idx];
  i64 now = now_ns();
  if (now < next_send_ns_) {
    if (!c.rate_waiting) c.rate_waiting = true, rate_wait_.push_back(idx);
    return false;
  }
  next_send_ns_ = std::max(next_send_ns_, now - kSec / 100) + send_interval_ns_;
  return true;
}

bool Bench::send_next(uint32_t idx) {
  Conn& c = conns_[idx];
  switch (mode_.mode) {
    case Mode::Noop: send_cmd(c, "NOOP", Op::Noop); return true;
    case Mode::Login:  // the measured operation is LOGIN itself; once it is done, leave
      send_cmd(c, "LOGOUT", Op::Logout);
      set_state(c, St::LoggingOut);
      return true;
    case Mode::Select: {
      std::string cmd = "SELECT ";
      append_quoted(cmd, opt_.mailbox);
      send_cmd(c, cmd, Op::Select);
      set_state(c, St::Selecting);
      return true;
    }
    case Mode::Fetch: {
      u64 n = random_message(c);
      send_fetch(c, Op::Fetch, n, n, opt_.fetch_items, fetch_literal_);
      return true;
    }
    case Mode::Append: send_append(idx); return true;
    case Mode::Search:
      send_cmd(c, "SEARCH " + opt_.search[c.search_next++ % opt_.search.size()], Op::Search);
      return true;
    case Mode::Mix: send_mix(idx); return true;
    case Mode::Load:
      if (remaining_[c.user] > 0) return send_append(idx), true;
      if (!c.inflight.empty()) return false;  // wait for the last answers
      send_cmd(c, "LOGOUT", Op::Logout);      // this user is done; the slot takes the next
      set_state(c, St::LoggingOut);
      return true;
    case Mode::Idle: return false;
  }
  return false;
}

void Bench::send_mix(uint32_t idx) {
  Conn& c = conns_[idx];
  if (c.expunge_next) {
    c.expunge_next = false;
    send_cmd(c, "EXPUNGE", Op::Expunge);
    return;
  }
  unsigned r = unsigned(splitmix(c.rng) % mix_total_);
  Op op = std::upper_bound(mix_.begin(), mix_.end(), r, [](unsigned v, const auto& p) {
            return v < p.second;
          })->first;
  bool empty = c.exists == 0;
  if (empty && (op == Op::FetchFlags || op == Op::FetchHeaders || op == Op::FetchBody ||
                op == Op::Store || op == Op::Expunge))
    op = Op::Noop;
  switch (op) {
    case Op::Noop: send_cmd(c, "NOOP", op); return;
    case Op::Status: {
      std::string cmd = "STATUS ";
      append_quoted(cmd, opt_.mailbox);
      send_cmd(c, cmd + " (MESSAGES UNSEEN UIDNEXT)", op);
      return;
    }
    case Op::FetchFlags:  // a client's resync of the newest 50
      return send_fetch(c, op, c.exists > 50 ? c.exists - 49 : 1, c.exists, "(UID FLAGS)", false);
    case Op::FetchHeaders: {  // a screenful of the message list
      u64 lo = random_message(c), hi = std::min(c.exists, lo + 19);
      return send_fetch(c, op, lo, hi, "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)", false);
    }
    case Op::FetchBody: {
      u64 n = random_message(c);
      return send_fetch(c, op, n, n, "BODY.PEEK[]", true);
    }
    case Op::Store:
    case Op::Expunge: {
      bool del = op == Op::Expunge;
      std::string cmd = "STORE " + std::to_string(random_message(c));
      cmd += del                   ? " +FLAGS.SILENT (\\Deleted)"
             : splitmix(c.rng) & 1 ? " +FLAGS (\\Seen)"
                                   : " -FLAGS (\\Seen)";
      send_cmd(c, cmd, Op::Store);
      c.expunge_next = del;  // the EXPUNGE follows once the flag is set
      return;
    }
    case Op::Append: return send_append(idx);
    case Op::Search:
      send_cmd(c, "SEARCH " + opt_.search[c.search_next++ % opt_.search.size()], op);
      return;
    case Op::Logout: send_cmd(c, "LOGOUT", op); return set_state(c, St::LoggingOut);
    default: send_cmd(c, "NOOP", Op::Noop); return;
  }
}

void Bench::send_fetch(Conn& c, Op op, u64 lo, u64 hi, std::string_view items, bool literal) {
  std::string cmd = "FETCH " + std::to_string(lo);
  if (hi != lo) cmd += ":" + std::to_string(hi);
  cmd.append(" ").append(items);
  Pending& p = send_cmd(c, cmd, op);
  p.expect = uint32_t(hi - lo + 1);
  p.literal = literal;
}

void Bench::send_idle(Conn& c) {
  send_cmd(c, "IDLE", Op::Idle);
  c.idle = IdleSt::Sent;
}

void Bench::send_append(uint32_t idx) {
  Conn& c = conns_[idx];
  u64 k;
  if (is(Mode::Load)) {  // each user gets the corpus from its own offset, in order
    u64 sent = opt_.messages - remaining_[c.user]--;
    k = (u64(c.user) * opt_.messages + sent) % messages_.size();
  } else {
    k = next_message_++ % messages_.size();
  }
  const std::string& msg = messages_[k];
  std::string cmd = "APPEND ";
  append_quoted(cmd, opt_.mailbox);
  cmd += " {" + std::to_string(msg.size()) + (c.literal_plus ? "+}" : "}");
  if (c.literal_plus) {
    cmd.append("\r\n").append(msg);
    send_cmd(c, cmd, Op::Append);
  } else {
    send_cmd(c, cmd, Op::Append);
    c.cont_payload = &msg;  // sent when the server's "+" arrives
  }
  // Every watcher of this user idling now must hear of the new message.
  if (watchers_.empty()) return;
  i64 now = now_ns();
  if (stats_.first_notify_ns == 0) stats_.first_notify_ns = now;
  for (uint32_t w : watchers_[c.user]) {
    Conn& wc = conns_[w];
    if (wc.fd >= 0 && wc.idle == IdleSt::Idling && wc.push_since == 0) {
      wc.push_since = now;
      ++stats_.push_expected;
    }
  }
}

// ---------------------------------------------------------------- responses

// Splits buffered input into lines and hands them on; skips literal payloads.
// Returns false once the connection has been closed.
bool Bench::consume_input(uint32_t idx, i64 now) {
  Conn& c = conns_[idx];
  std::string_view in = c.in;
  size_t pos = 0;
  while (pos < in.size()) {
    if (c.literal_left > 0) {
      size_t take = size_t(std::min<u64>(c.literal_left, in.size() - pos));
      pos += take;
      c.literal_left -= take;
      continue;
    }
    size_t nl = in.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (in.size() - pos > kMaxLine)
        return fail(idx, kLineTooLong, "no line end within 1 MiB"), false;
      break;
    }
    std::string_view line = in.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    else
      error(idx, kBareLf, line);
    bool continuation = c.in_continuation;
    c.in_continuation = literal_suffix(line, c.literal_left);
    if (c.in_continuation)
      ++c.resp_literals;
    else
      c.literal_left = 0;
    if (!continuation) {
      handle_line(idx, line, now);
      if (c.fd < 0) return false;
    }
  }
  c.in.erase(0, pos);
  return true;
}

void Bench::handle_line(uint32_t idx, std::string_view line, i64 now) {
  if (line.starts_with("* ")) return handle_untagged(idx, line.substr(2), now);
  if (line.starts_with("+")) return handle_continuation(idx, line, now);
  Conn& c = conns_[idx];
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0) return fail(idx, kUnparseable, line);
  if (c.inflight.empty() || !tag_matches(line.substr(0, sp), c.inflight.front().tag))
    return fail(idx, kUnexpectedTag, line);
  Pending p = c.inflight.front();
  c.inflight.pop_front();
  handle_tagged(idx, p, line.substr(sp + 1), now);
}

void Bench::handle_continuation(uint32_t idx, std::string_view line, i64 now) {
  Conn& c = conns_[idx];
  if (c.inflight.empty()) return fail(idx, kUnexpectedContinuation, line);
  if (c.cont_payload) {  // a synchronizing literal may follow now
    c.out.append(*c.cont_payload).append("\r\n");
    c.cont_payload = nullptr;
    return;
  }
  if (c.idle != IdleSt::Sent) return fail(idx, kUnexpectedContinuation, line);
  c.idle = IdleSt::Idling;
  ++n_idling_;
  record(Op::Idle, now, now - c.inflight.front().sent_ns);
}

void Bench::handle_untagged(uint32_t idx, std::string_view rest, i64 now) {
  Conn& c = conns_[idx];
  std::string_view word = first_word(rest);
  if (c.st == St::Greeting) {
    if (!iequals(word, "OK"))
      return fail(idx, iequals(word, "BYE") ? kGreetingBye : kGreetingBad, rest);
    ++stats_.greeted;
    c.literal_plus = icontains(rest, " LITERAL+");
    return send_login(idx);
  }
  if (iequals(word, "BYE")) {
    c.bye_seen = true;
    if (c.st != St::LoggingOut) {  // the BYE that answers LOGOUT is not news
      if (stats_.bye_received++ == 0) stats_.first_bye_ns = now;
      stats_.last_bye_ns = now;
    }
    return;
  }
  if (iequals(word, "CAPABILITY") || (iequals(word, "OK") && icontains(rest, "[CAPABILITY ")))
    c.literal_plus = icontains(rest, " LITERAL+");
  else if (iequals(word, "SEARCH") || iequals(word, "ESEARCH"))
    c.resp_search = true;
  else if (iequals(word, "STATUS"))
    c.resp_status = true;
  u64 n = 0;
  std::string_view what = numbered(rest, n);
  if (iequals(what, "EXISTS")) return on_exists(idx, n, now);
  if (iequals(what, "EXPUNGE")) {
    if (c.exists > 0) --c.exists;
    c.fetched_to = std::min(c.fetched_to, c.exists);
  } else if (iequals(what, "FETCH")) {
    ++c.resp_fetches;
    // A body section as NIL: how some servers (Dovecot) answer for a message another session
    // expunged (RFC 2180 section 4.1.3).
    if (icontains(rest, "] NIL")) c.resp_nil_body = true;
  }
}

void Bench::on_exists(uint32_t idx, u64 n, i64 now) {
  Conn& c = conns_[idx];
  bool grew = n > c.exists;
  c.exists = n;
  c.resp_exists = true;
  if (c.role != Role::Watcher || !grew) return;
  if (c.push_since != 0) {
    if (running_) push_hist_.record(u64(std::max<i64>(0, now - c.push_since)));
    ++stats_.push_seen;
    stats_.last_push_ns = now;
    c.push_since = 0;
  }
  if (is(Mode::Mix) && c.idle == IdleSt::Idling) {  // leave IDLE to fetch what arrived
    c.out.append("DONE\r\n");
    c.idle = IdleSt::DoneSent;
    --n_idling_;
    c.inflight.front().op = Op::IdleDone;
    c.inflight.front().sent_ns = 0;  // stamped when DONE leaves
  }
}

// Does an OK answer carry what the command asked for?
bool Bench::check_answer(uint32_t idx, const Pending& p) {
  Conn& c = conns_[idx];
  switch (p.op) {
    case Op::Select:
      if (!c.resp_exists)
        return error(idx, kSelectWithoutExists, "SELECT OK without EXISTS"), false;
      return true;
    case Op::Fetch:
    case Op::FetchBody:
    case Op::FetchFlags:
    case Op::FetchHeaders:
    case Op::FetchNew:
      if (p.literal && c.resp_literals == 0 && c.resp_nil_body && c.resp_fetches >= p.expect) {
        ++stats_.expunge_issued;  // expunged by another client: allowed, not an error
        return true;
      }
      if (c.resp_fetches < p.expect || (p.literal && c.resp_literals == 0)) {
        std::string d = "FETCH OK with " + std::to_string(c.resp_fetches) + " of " +
                        std::to_string(p.expect) + " messages" +
                        (p.literal && c.resp_literals == 0 ? " and no literal" : "");
        return error(idx, kFetchWithoutData, d), false;
      }
      return true;
    case Op::Search:
      if (!c.resp_search)
        return error(idx, kSearchWithoutResult, "SEARCH OK without SEARCH"), false;
      return true;
    case Op::Status:
      if (!c.resp_status)
        return error(idx, kStatusWithoutResult, "STATUS OK without STATUS"), false;
      return true;
    default: return true;
  }
}

// resp is the tagged response after the tag: "OK ...", "NO ..." or "BAD ...".
void Bench::handle_tagged(uint32_t idx, const Pending& p, std::string_view resp, i64 now) {
  Conn& c = conns_[idx];
  std::string_view status = first_word(resp);
  bool ok = iequals(status, "OK"), no = iequals(status, "NO");
  bool answered_ok = ok && check_answer(idx, p);
  c.resp_exists = c.resp_search = c.resp_status = c.resp_nil_body = false;
  c.resp_fetches = c.resp_literals = 0;
  if (!ok && !no && !iequals(status, "BAD")) return fail(idx, kUnparseable, resp);
  if (ok && !answered_ok) ++ops_[size_t(p.op)].errors;
  if (!ok) {
    bool issued = no && icontains(resp, "[EXPUNGEISSUED]");
    if (issued) {
      ++stats_.expunge_issued;  // another session expunged it: allowed, not an error
    } else {
      ++ops_[size_t(p.op)].errors;
      Err e = p.op == Op::Login    ? (no ? kLoginNo : kLoginBad)
              : p.op == Op::Logout ? kLogoutBad
              : no                 ? kCommandNo
                                   : kCommandBad;
      error(idx, e, std::string(kOpName[size_t(p.op)]) + ": " + std::string(resp));
    }
    // Without a session or a mailbox there is nothing this connection can go on with.
    if (p.op == Op::Login || p.op == Op::Logout || (p.op == Op::Select && c.st == St::Selecting))
      return close_conn(idx);
    if (p.op == Op::Store) c.expunge_next = false;
    if (p.op == Op::IdleDone || p.op == Op::Idle) c.idle = IdleSt::None;
    if (p.op == Op::Append && c.role == Role::Notifier) c.appended = true;
    return;
  }
  switch (p.op) {
    case Op::Login:
      ++stats_.logins;
      record(p.op, now, now - p.sent_ns);
      return after_login(idx);
    case Op::Logout:
      c.logout_ok = true;  // now the server closes the connection
      if (!c.bye_seen) error(idx, kLogoutNoBye, "tagged OK to LOGOUT without * BYE");
      if (is(Mode::Mix)) record(p.op, now, now - p.sent_ns);
      return;
    case Op::Select:
      record(p.op, now, now - p.sent_ns);
      c.fetched_to = c.exists;
      if (c.st == St::Selecting) set_state(c, St::Ready);
      if (is(Mode::Fetch) && c.exists == 0)
        return fail(idx, kEmptyMailbox, "fetch mode needs messages in the mailbox");
      return;
    case Op::IdleDone:
      c.idle = IdleSt::None;
      record(p.op, now, now - p.sent_ns);
      return;
    case Op::Append:
      ++stats_.appended_ok;
      record(p.op, now, now - p.sent_ns);
      return;
    default: record(p.op, now, now - p.sent_ns); return;
  }
}

void Bench::after_login(uint32_t idx) {
  Conn& c = conns_[idx];
  bool select = mode_.select && c.role != Role::Notifier && !opt_.logged_in_only;
  if (!select) return set_state(c, St::Ready);
  std::string cmd = "SELECT ";
  append_quoted(cmd, opt_.mailbox);
  send_cmd(c, cmd, Op::Select);
  set_state(c, St::Selecting);
}

void Bench::send_login(uint32_t idx) {
  Conn& c = conns_[idx];
  const User& u = users_[c.user];
  std::string cmd = "LOGIN ";
  append_quoted(cmd, u.name);
  append_quoted(cmd += ' ', u.password);
  set_state(c, St::LoggingIn);
  send_cmd(c, cmd, Op::Login);
}

void Bench::record(Op op, i64 now, i64 latency) {
  ++completed_;
  if (!running_ || stopping_ || now < warm_end_ || now >= end_) return;
  u64 ns = u64(std::max<i64>(latency, 0));
  ops_[size_t(op)].hist.record(ns);
  total_.record(ns);
  if (total_.total() == opt_.max_commands) {
    stopping_ = true;
    stop_ns_ = now;
  }
}

// A watcher that has not heard of an APPEND within --push-timeout never will.
void Bench::expire_pushes(i64 now) {
  i64 limit = i64(opt_.push_timeout * kSec);
  for (uint32_t w : watcher_list_) {
    Conn& c = conns_[w];
    if (c.push_since != 0 && now - c.push_since > limit) {
      error(w, kMissingExists, "no EXISTS within --push-timeout of an APPEND by another client");
      ++stats_.push_missing;
      c.push_since = 0;
    }
  }
}

// Once a second: progress line, missing pushes, and connections stuck in a phase.
void Bench::tick(i64 now) {
  next_tick_ = now + kSec;
  expire_pushes(now);
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    const Conn& c = conns_[i];
    if (c.fd >= 0 && c.st != St::Ready && now - c.phase_ns > phase_timeout_)
      fail(i, kTimeout, "no progress while connecting, logging in, selecting or logging out");
  }
  if (!progress_) return;
  std::fprintf(stderr,
               "[%6.1fs] %s: %llu done/s  open=%lld ready=%lld idling=%lld pushes=%llu/%llu "
               "errors=%llu\n",
               double(now - start_ns_) / kSec,
               !running_        ? "setup"
               : is(Mode::Idle) ? "hold"
               : stopping_      ? "drain"
                                : "run",
               ull(completed_ - progress_mark_), (long long)n_open_, (long long)n_ready_,
               (long long)n_idling_, ull(stats_.push_seen), ull(stats_.push_expected),
               ull(stats_.error_total()));
  progress_mark_ = completed_;
}

// ---------------------------------------------------------------- phases

bool Bench::setup_done() const {
  return queue_.empty() && n_open_ == n_ready_ && n_idling_ == n_watchers_open_;
}

// Connect, log in (and select, and idle) every connection before measuring.
bool Bench::setup() {
  i64 deadline = start_ns_ + i64(opt_.setup_timeout * kSec);
  while (!setup_done()) {
    if (g_interrupted) return false;
    if (now_ns() >= deadline) {
      error(kNoConn, kSetupTimeout, "connecting and logging in all connections took too long");
      return false;
    }
    poll_once(deadline);
  }
  return n_open_ > 0;
}

void Bench::measure() {
  running_ = true;
  i64 start = now_ns();
  warm_end_ = start + (is(Mode::Load) ? 0 : i64(opt_.warmup * kSec));
  end_ =
      is(Mode::Load) ? start + i64(opt_.max_seconds * kSec) : warm_end_ + i64(opt_.duration * kSec);
  for (uint32_t i = 0; i < conns_.size(); ++i) pump(i), flush(i);
  while (!stopping_ && !g_interrupted) {
    start_pending_connects();  // load: a slot with no user left to fill is dropped here
    i64 now = now_ns();
    if (now >= end_ || (n_open_ == 0 && queue_.empty())) {
      stop_ns_ = std::min(now, end_);
      break;
    }
    poll_once(end_);
  }
  if (!stopping_ && g_interrupted) stop_ns_ = std::min(now_ns(), end_);
  stopping_ = true;
  drain_pushes();
  close_all();
}

// After the run: APPENDs already sent must still reach their watchers (or time out).
void Bench::drain_pushes() {
  i64 deadline = now_ns() + i64(opt_.push_timeout * kSec) + kSec;
  auto pending = [this] { return stats_.push_expected - stats_.push_seen - stats_.push_missing; };
  while (pending() > 0 && !g_interrupted && now_ns() < deadline) poll_once(deadline);
}

void Bench::hold() {
  std::printf("connected=%llu logged_in=%llu idling=%lld\n", ull(stats_.greeted),
              ull(stats_.logins), (long long)n_idling_);
  std::fflush(stdout);
  running_ = true;
  i64 start = now_ns(), end = start + i64(opt_.hold * kSec);
  i64 notify_at = start + i64(opt_.notify_after * kSec);
  warm_end_ = start;
  end_ = INT64_MAX;
  u64 watchers = u64(n_watchers_open_);
  for (;;) {
    i64 now = now_ns();
    if (g_interrupted || now >= end) break;
    if (!notifiers_.empty() && !notified_ && now >= notify_at) {
      notified_ = true;
      for (uint32_t i : notifiers_) queue_.push_back(i);
    }
    if (notified_ && stats_.push_seen + stats_.push_missing >= watchers && n_open_ == n_idling_)
      break;  // every watcher heard (or timed out) and every notifier is gone
    if (notifiers_.empty() && n_open_ == 0) break;  // the server closed them all
    poll_once(notified_ || notifiers_.empty() ? end : std::min(end, notify_at));
  }
  held_ns_ = now_ns() - start;
  stopping_ = true;
  drain_pushes();
  close_all();
}

int Bench::run() {
  if (is(Mode::Mix)) {
    if (opt_.mix.empty()) {
      for (auto [op, w] : kDefaultMix) mix_total_ += w, mix_.emplace_back(op, mix_total_);
    } else {
      std::string_view spec = opt_.mix;
      while (!spec.empty()) {
        std::string_view item = spec.substr(0, spec.find(','));
        spec.remove_prefix(std::min(spec.size(), item.size() + 1));
        size_t eq = item.find('=');
        u64 w = 0;
        const char* const* name =
            std::find_if(std::begin(kOpName), std::end(kOpName),
                         [&](const char* n) { return item.substr(0, eq) == n; });
        if (eq == std::string_view::npos || name == std::end(kOpName) ||
            !mix_op(Op(name - std::begin(kOpName))) ||
            !parse_u64(item.substr(eq + 1), 0, 1'000'000, w)) {
          std::fprintf(stderr, "ringmail-bench: bad --mix item '%.*s' (see --help)\n",
                       int(item.size()), item.data());
          return 2;
        }
        if (w > 0)
          mix_total_ += unsigned(w), mix_.emplace_back(Op(name - std::begin(kOpName)), mix_total_);
      }
      if (mix_total_ == 0) return std::fputs("ringmail-bench: --mix has no weight\n", stderr), 2;
    }
  }
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) return std::perror("ringmail-bench: epoll_create1"), 1;
  if (opt_.tls) {
    wolfSSL_Init();
    tls_ctx_ = wolfSSL_CTX_new(wolfTLS_client_method());
    if (!tls_ctx_) return std::fputs("ringmail-bench: wolfSSL_CTX_new failed\n", stderr), 1;
    wolfSSL_CTX_set_verify(tls_ctx_, WOLFSSL_VERIFY_NONE, nullptr);
  }
  progress_ = opt_.progress || isatty(STDERR_FILENO);
  start_ns_ = now_ns();
  next_tick_ = start_ns_ + kSec;
  if (mode_.reconnect) {
    measure();  // connecting is part of what is measured; the warmup covers the ramp
  } else {
    setup_ok_ = setup();
    setup_ns_ = now_ns() - start_ns_;
    if (!setup_ok_)
      close_all();
    else if (is(Mode::Idle))
      hold();
    else
      measure();
  }
  if (opt_.json)
    report_json();
  else
    report();
  std::fflush(stdout);  // keep the table before the error summary on a shared terminal
  u64 errors = stats_.error_total();
  if (errors > 0) {
    std::fprintf(stderr, "ringmail-bench: %llu ERRORS:", ull(errors));
    for (int e = 0; e < kErrCount; ++e)
      if (stats_.errors[e]) std::fprintf(stderr, " %s=%llu", kErrName[e], ull(stats_.errors[e]));
    std::fprintf(stderr, "\n");
  }
  return errors > 0 ? 1 : g_interrupted ? 130 : 0;
}

// ---------------------------------------------------------------- reports

double secs(i64 ns) {
  return double(ns) / kSec;
}
double usecs(u64 ns) {
  return double(ns) / 1000.0;
}

void Bench::report() const {
  bool idle = is(Mode::Idle);
  double dur = secs(std::max<i64>(0, stop_ns_ - warm_end_));
  std::printf("ringmail-bench  mode=%.*s  server=%s:%d%s\n", int(mode_.name.size()),
              mode_.name.data(), opt_.host.c_str(), opt_.port,
              g_interrupted ? "  (INTERRUPTED)" : "");
  u64 watchers = watcher_list_.size();
  std::printf(
      "  %-16s %llu active%s%s, %zu users: %llu greeted, %llu logins ok\n", "connections",
      ull(opt_.connections - (idle ? watchers : 0)),
      watchers ? (" + " + std::to_string(watchers) + " watching").c_str() : "",
      notifiers_.empty() ? "" : (" + " + std::to_string(notifiers_.size()) + " notifying").c_str(),
      users_.size(), ull(stats_.greeted), ull(stats_.logins));
  if (!mode_.reconnect)
    std::printf("  %-16s %.3f s (connect + login%s of all connections)%s\n", "setup",
                secs(setup_ns_), mode_.select ? " + select" : "", setup_ok_ ? "" : "  FAILED");
  if (idle) {
    std::printf("  %-16s %.3f s\n", "held", secs(held_ns_));
  } else {
    std::printf("  %-16s %.3f s (after %.3f s warmup), pipeline %llu%s\n", "duration", dur,
                is(Mode::Load) ? 0.0 : opt_.warmup, ull(pipeline_),
                opt_.rate > 0 ? (", rate " + std::to_string(u64(opt_.rate)) + "/s").c_str() : "");
  }
  std::printf("\n  %-14s %10s %11s %10s %10s %10s %10s %7s\n", "command", "count", "per s",
              "p50 us", "p99 us", "p99.9 us", "max us", "errors");
  auto row = [&](const char* name, const Histogram& h, u64 errors) {
    std::printf("  %-14s %10llu %11.1f %10.1f %10.1f %10.1f %10.1f %7llu\n", name, ull(h.total()),
                dur > 0 ? double(h.total()) / dur : 0.0, usecs(h.percentile(0.5)),
                usecs(h.percentile(0.99)), usecs(h.percentile(0.999)), usecs(h.max()), ull(errors));
  };
  u64 op_errors = 0;
  for (size_t i = 0; i < kOps; ++i) {
    op_errors += ops_[i].errors;
    if (ops_[i].hist.total() || ops_[i].errors) row(kOpName[i], ops_[i].hist, ops_[i].errors);
  }
  row("total", total_, op_errors);
  std::printf("\n  %-16s sent %llu  received %llu\n", "bytes", ull(stats_.bytes_sent),
              ull(stats_.bytes_received));
  if (is(Mode::Load))
    std::printf("  %-16s %llu (%.1f/s)\n", "appended", ull(stats_.appended_ok),
                dur > 0 ? double(stats_.appended_ok) / dur : 0.0);
  if (stats_.push_expected) {
    std::printf(
        "  %-16s %llu expected, %llu seen, %llu missing; p50 %.2f ms  p99 %.2f ms  "
        "max %.2f ms; last %.3f s after the first APPEND\n",
        "push (EXISTS)", ull(stats_.push_expected), ull(stats_.push_seen), ull(stats_.push_missing),
        usecs(push_hist_.percentile(0.5)) / 1000, usecs(push_hist_.percentile(0.99)) / 1000,
        usecs(push_hist_.max()) / 1000,
        stats_.last_push_ns ? secs(stats_.last_push_ns - stats_.first_notify_ns) : 0.0);
  }
  if (stats_.expunge_issued) {
    std::printf(
        "  %-16s %llu (NO [EXPUNGEISSUED] or a NIL body: the message was expunged by "
        "another client; not an error)\n",
        "expunge_issued", ull(stats_.expunge_issued));
  }
  if (idle || stats_.bye_received)
    std::printf("  %-16s %llu (first to last %.3f s)\n", "bye_received", ull(stats_.bye_received),
                secs(stats_.last_bye_ns - stats_.first_bye_ns));
  u64 errors = stats_.error_total();
  if (errors == 0) return (void)std::printf("  %-16s 0\n", "errors");
  std::printf(
      "  %-16s %llu   <<< ERRORS: the server misbehaved or the run failed; numbers are not valid\n",
      "ERRORS", ull(errors));
  for (int e = 0; e < kErrCount; ++e)
    if (stats_.errors[e]) std::printf("    %-22s %llu\n", kErrName[e], ull(stats_.errors[e]));
}

// In microseconds; the totals' keys have no unit suffix (latency_us names it), the ops' do.
void print_latency_json(const Histogram& h, const char* unit) {
  std::printf("\"p50%s\":%.3f,\"p99%s\":%.3f,\"p99_9%s\":%.3f,\"max%s\":%.3f,\"mean%s\":%.3f", unit,
              usecs(h.percentile(0.5)), unit, usecs(h.percentile(0.99)), unit,
              usecs(h.percentile(0.999)), unit, usecs(h.max()), unit, h.mean() / 1000.0);
}

void Bench::report_json() const {
  bool idle = is(Mode::Idle);
  double dur = idle ? 0 : secs(std::max<i64>(0, stop_ns_ - warm_end_));
  auto per_s = [dur](u64 n) { return dur > 0 ? double(n) / dur : 0.0; };
  std::printf(
      "{\"mode\":\"%.*s\",\"host\":\"%s\",\"port\":%d,\"connections\":%llu,\"watchers\":%zu,"
      "\"users\":%zu,\"pipeline\":%llu,\"rate\":%.3f,",
      int(mode_.name.size()), mode_.name.data(), opt_.host.c_str(), opt_.port,
      ull(opt_.connections), watcher_list_.size(), users_.size(), ull(pipeline_), opt_.rate);
  std::printf(
      "\"greeted\":%llu,\"logged_in\":%llu,\"setup_s\":%.6f,\"setup_ok\":%s,\"warmup_s\":%.6f,",
      ull(stats_.greeted), ull(stats_.logins), secs(setup_ns_), setup_ok_ ? "true" : "false",
      is(Mode::Load) ? 0.0 : opt_.warmup);
  std::printf("\"duration_s\":%.6f,\"held_s\":%.6f,\"commands\":%llu,\"commands_per_s\":%.3f,", dur,
              secs(held_ns_), ull(measured()), per_s(measured()));
  std::printf("\"latency_us\":{");
  print_latency_json(total_, "");
  std::printf("},\"ops\":{");
  const char* sep = "";
  for (size_t i = 0; i < kOps; ++i) {
    const OpStats& s = ops_[i];
    if (!s.hist.total() && !s.errors) continue;
    std::printf("%s\"%s\":{\"count\":%llu,\"per_s\":%.3f,\"errors\":%llu,", sep, kOpName[i],
                ull(s.hist.total()), per_s(s.hist.total()), ull(s.errors));
    print_latency_json(s.hist, "_us");
    std::printf("}");
    sep = ",";
  }
  std::printf(
      "},\"push\":{\"expected\":%llu,\"seen\":%llu,\"missing\":%llu,\"p50_ms\":%.3f,"
      "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"last_after_first_append_s\":%.6f},",
      ull(stats_.push_expected), ull(stats_.push_seen), ull(stats_.push_missing),
      usecs(push_hist_.percentile(0.5)) / 1000, usecs(push_hist_.percentile(0.99)) / 1000,
      usecs(push_hist_.max()) / 1000,
      stats_.last_push_ns ? secs(stats_.last_push_ns - stats_.first_notify_ns) : 0.0);
  std::printf("\"messages_appended\":%llu,\"messages_per_s\":%.3f,\"expunge_issued\":%llu,",
              ull(stats_.appended_ok), per_s(stats_.appended_ok), ull(stats_.expunge_issued));
  std::printf(
      "\"bytes_sent\":%llu,\"bytes_received\":%llu,\"bye_received\":%llu,\"bye_spread_s\":%.6f,",
      ull(stats_.bytes_sent), ull(stats_.bytes_received), ull(stats_.bye_received),
      secs(stats_.last_bye_ns - stats_.first_bye_ns));
  std::printf("\"interrupted\":%s,\"errors_total\":%llu,\"errors\":{",
              g_interrupted ? "true" : "false", ull(stats_.error_total()));
  sep = "";
  for (int e = 0; e < kErrCount; ++e)
    if (stats_.errors[e])
      std::printf("%s\"%s\":%llu", sep, kErrName[e], ull(stats_.errors[e])), sep = ",";
  std::printf("}}\n");
}

void on_signal(int) {
  g_interrupted = 1;
}

// Many connections need many descriptors; take all the kernel allows us.
void raise_fd_limit(u64 connections) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != RLIM_INFINITY && connections + 16 > rl.rlim_cur) {
    std::fprintf(
        stderr,
        "ringmail-bench: warning: %llu connections but only %llu file descriptors allowed\n",
        ull(connections), ull(rl.rlim_cur));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (int rc = parse_args(argc, argv, opt); rc >= 0) return rc;
  const ModeSpec* mode = nullptr;
  for (const ModeSpec& m : kModes)
    if (m.name == opt.mode) mode = &m;
  if (!mode) {
    std::fprintf(stderr,
                 "ringmail-bench: unknown mode '%s' (noop, login, select, fetch, append, search, "
                 "mix, load, idle)\n",
                 opt.mode.c_str());
    return 2;
  }
  std::string err;
  std::vector<User> users = make_users(opt, err);
  if (!err.empty()) return std::fprintf(stderr, "ringmail-bench: %s\n", err.c_str()), 2;
  for (const User& u : users)
    if (u.name.empty() || has_crlf(u.name) || has_crlf(u.password))
      return std::fputs("ringmail-bench: a user name is empty or contains CR/LF\n", stderr), 2;
  std::vector<std::string> messages;
  if (!opt.corpus.empty()) {
    std::string text;
    if (!read_file(opt.corpus, text))
      return std::fprintf(stderr, "ringmail-bench: cannot read %s\n", opt.corpus.c_str()), 2;
    messages = parse_mbox(text);
    if (messages.empty())
      return std::fprintf(stderr, "ringmail-bench: no messages in %s\n", opt.corpus.c_str()), 2;
  } else {
    messages = builtin_messages(opt.seed);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);  // epoll_wait returns EINTR; the loops then wind down and report
  signal(SIGTERM, on_signal);
  u64 extra = (opt.mode == "mix"                  ? opt.watchers
               : opt.mode == "idle" && opt.notify ? 1
                                                  : 0) *
              users.size();
  raise_fd_limit(opt.connections + extra);
  auto bench = std::make_unique<Bench>(opt, *mode, std::move(users), std::move(messages));
  return bench->run();
}
