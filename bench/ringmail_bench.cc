// ringmail-bench: load generator for the ringmail IMAP server.
//
// One thread, non-blocking sockets, edge-triggered epoll. Every connection is a
// small state machine (connect -> greeting -> LOGIN -> ready -> ...). A "mode"
// only decides which command a logged-in connection sends next; the driver owns
// connecting, response parsing, timing, error accounting and reporting. To add a
// mode, write a NextFn and add a row to kModes.
//
// Numbers are only meaningful when the server answered correctly, so every
// protocol deviation is counted as an error by kind and makes the exit status 1.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace {

using i64 = int64_t;
using u64 = uint64_t;
using ull = unsigned long long;  // for printf

constexpr i64 kSec = 1'000'000'000;
constexpr i64 kPhaseTimeout = 60 * kSec;  // connect/login (and logout) must finish within this
constexpr i64 kMaxOpening = 256;          // connections between connect() and greeting at once
constexpr size_t kMaxLine = 1 << 20;      // a longer line means the server is broken
constexpr uint32_t kNoConn = UINT32_MAX;  // error() without a connection

const char kUsage[] = R"(Usage: ringmail-bench [options]

Load generator for the ringmail IMAP server. Drives many non-blocking
connections from one thread, logs them in and measures the server.

Connection:
  --host ADDR          IPv4 literal of the server (default 127.0.0.1); must be
                       in 127.0.0.0/8 unless --allow-remote is given
  --port N             server port (default 1143)
  --allow-remote       permit --host/--source-ips outside 127.0.0.0/8
  --source-ips A,B,..  bind connections round-robin to these local IPv4
                       addresses (e.g. 127.0.0.1,127.0.0.2) when connects fail
                       with EADDRNOTAVAIL because local ports ran out
  --connections C      concurrent connections (default 10)
  --users U            distinct users (default 1)
  --user-pattern PAT   user name; every %d becomes the user number 0..U-1
                       (default 'bench%d'); connection i uses user i % U,
                       login mode cycles through the users
  --password PW        password of every user (default 'benchpass')

Workload:
  --mode MODE          noop   each connection keeps --pipeline NOOPs in
                              flight; latency is send -> tagged OK
                       login  each connection loops connect, greeting, LOGIN,
                              LOGOUT; latency is that of LOGIN
                       idle   log in all connections, print
                              'connected=C logged_in=N' (stdout, flushed), then
                              hold them for --hold-seconds or until the server
                              has closed them all; counts server BYEs
                       (default noop)
  --pipeline D         commands in flight per connection (default 1)
  --duration S         measured seconds after the warmup (default 10)
  --warmup S           seconds whose completions are not counted (default 1)
  --max-commands N     also stop after N measured commands (default 0 = off)
  --hold-seconds S     idle mode: how long to hold the connections (default 10)

Output:
  --json               print one JSON object instead of the table (idle mode
                       still prints its connected= line first)
  --progress           progress line to stderr every second (default: only
                       when stderr is a terminal)
  --help               show this text

noop and idle first connect and log in every connection; that must finish
within 60 s. Latencies are in microseconds from a log-bucketed histogram
(<= 1.6% error).
Exit status: 0 ok; 1 if any error was counted (NO/BAD, malformed line,
unexpected close, connect failure, timeout); 2 bad usage; 130 interrupted.
)";

volatile sig_atomic_t g_interrupted = 0;

i64 now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return i64(ts.tv_sec) * kSec + ts.tv_nsec;
}

// ---------------------------------------------------------------- options

struct Options {
  std::string host = "127.0.0.1";
  in_addr host_addr{};
  int port = 1143;
  u64 connections = 10, users = 1, pipeline = 1, max_commands = 0;
  std::string user_pattern = "bench%d", password = "benchpass", mode = "noop";
  double duration = 10, warmup = 1, hold = 10;
  bool json = false, progress = false, allow_remote = false;
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
    if (arg == "--json" || arg == "--progress" || arg == "--allow-remote") {
      if (inline_val) return bad(arg + " takes no value");
      (arg == "--json" ? o.json : arg == "--progress" ? o.progress : o.allow_remote) = true;
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
      ok = parse_u64(val, 1, 1'000'000'000, o.users);
    else if (arg == "--user-pattern")
      o.user_pattern = val;
    else if (arg == "--password")
      o.password = val;
    else if (arg == "--mode")
      o.mode = val;
    else if (arg == "--pipeline")
      ok = parse_u64(val, 1, 1'000'000, o.pipeline);
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
  // A quoted string cannot carry CR or LF; refuse rather than send a broken command.
  for (const std::string* s : {&o.user_pattern, &o.password})
    if (s->find_first_of("\r\n") != std::string::npos)
      return bad("user/password must not contain CR or LF");
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
  kLineTooLong,
  kClosedUnexpectedly,
  kClosedAfterBye,
  kIoError,
  kTimeout,
  kSetupTimeout,
  kErrCount
};
constexpr const char* kErrName[kErrCount] = {"connect_refused",    "connect_addr_not_avail",
                                             "connect_failed",     "greeting_bad",
                                             "greeting_bye",       "login_no",
                                             "login_bad",          "command_no",
                                             "command_bad",        "logout_failed",
                                             "logout_without_bye", "bare_lf",
                                             "unparseable_line",   "unexpected_tag",
                                             "line_too_long",      "closed_unexpectedly",
                                             "closed_after_bye",   "io_error",
                                             "phase_timeout",      "setup_timeout"};

// ---------------------------------------------------------------- connections and modes

enum class St : uint8_t { Closed, Connecting, Greeting, LoggingIn, Ready, LoggingOut };
enum class Kind : uint8_t { Login, Logout, Measured };

struct Pending {
  u64 tag;
  i64 sent_ns;  // 0 until the command has been handed to the kernel
  Kind kind;
};

struct Conn {
  int fd = -1;
  uint32_t gen = 0;  // bumped on close so stale epoll events are ignored
  St st = St::Closed;
  bool bye_seen = false, logout_ok = false;
  bool in_continuation = false;  // the rest of a line that was interrupted by a literal
  u64 literal_left = 0;          // literal payload bytes still to skip
  u64 next_tag = 0;
  i64 phase_ns = 0;  // when st last changed (stall detection)
  std::string in, out;
  size_t out_pos = 0;
  std::deque<Pending> inflight;  // responses arrive in order, so a FIFO suffices
};

// What a logged-in connection sends next, or nothing to stay quiet for now.
struct Next {
  std::string_view text;
  Kind kind;
};
using NextFn = std::optional<Next> (*)(const Conn&);

std::optional<Next> next_noop(const Conn&) {
  return Next{"NOOP", Kind::Measured};
}
// The measured operation of login mode is LOGIN itself; once it is done, leave.
std::optional<Next> next_login(const Conn&) {
  return Next{"LOGOUT", Kind::Logout};
}
std::optional<Next> next_idle(const Conn&) {
  return std::nullopt;
}

struct ModeSpec {
  std::string_view name;
  NextFn next;
  bool measure_login;  // LOGIN round trips are the measured samples
  bool reconnect;      // no setup phase; reopen each connection after it closes
  bool hold;           // idle: hold connections, a server BYE + close is expected
};
constexpr ModeSpec kModes[] = {
    {"noop", next_noop, false, false, false},
    {"login", next_login, true, true, false},
    {"idle", next_idle, false, false, true},
};

std::string_view first_word(std::string_view s) {
  return s.substr(0, s.find(' '));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
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

// ---------------------------------------------------------------- the driver

struct Stats {
  u64 greeted = 0, logins = 0, bye_received = 0;
  u64 bytes_sent = 0, bytes_received = 0;
  i64 first_bye_ns = 0, last_bye_ns = 0;
  std::array<u64, kErrCount> errors{};
  u64 error_total() const { return std::accumulate(errors.begin(), errors.end(), u64(0)); }
};

class Bench {
 public:
  Bench(const Options& o, const ModeSpec& m) : opt_(o), mode_(m), conns_(o.connections) {}
  int run();

 private:
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
  void send_cmd(Conn& c, std::string_view text, Kind kind);
  void pump(uint32_t idx);
  // protocol
  bool consume_input(uint32_t idx, i64 now);
  void handle_line(uint32_t idx, std::string_view line, i64 now);
  void handle_untagged(uint32_t idx, std::string_view rest, i64 now);
  void handle_tagged(uint32_t idx, const Pending& p, std::string_view resp, i64 now);
  void send_login(uint32_t idx);
  void count_completion(i64 now, i64 latency);
  void error(uint32_t idx, Err e, std::string_view detail);
  void fail(uint32_t idx, Err e, std::string_view detail) {
    error(idx, e, detail), close_conn(idx);
  }
  // phases and output
  bool setup();
  void measure();
  void hold();
  void tick(i64 now);
  void report() const;
  void report_json() const;

  const Options& opt_;
  const ModeSpec& mode_;
  std::vector<Conn> conns_;
  std::deque<uint32_t> queue_;  // connections waiting to be (re)opened
  int ep_ = -1;
  i64 n_open_ = 0, n_opening_ = 0, n_ready_ = 0;
  u64 next_source_ = 0, next_user_ = 0;
  bool running_ = false, stopping_ = false;
  Stats stats_;
  Histogram hist_;
  u64 completed_ = 0, progress_mark_ = 0;
  i64 start_ns_ = 0, setup_ns_ = 0, warm_end_ = 0, end_ = 0, stop_ns_ = 0, held_ns_ = 0;
  i64 next_tick_ = 0;
  bool progress_ = false, setup_ok_ = true;
};

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
  uint32_t gen = c.gen;
  c = Conn{};  // fresh session state; the generation must survive
  c.gen = gen;
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
  close(c.fd);
  c.fd = -1;
  ++c.gen;
  set_state(c, St::Closed);
  --n_open_;
  if (mode_.reconnect && running_ && !stopping_) queue_.push_back(idx);
}

void Bench::close_all() {
  stopping_ = true;
  queue_.clear();
  for (uint32_t i = 0; i < conns_.size(); ++i) close_conn(i);
}

void Bench::poll_once(i64 deadline) {
  start_pending_connects();  // before waiting: they are what produces the events
  i64 wait = std::min(deadline, next_tick_) - now_ns();
  int ms = wait <= 0 ? 0 : int(std::min<i64>((wait + 999'999) / 1'000'000, 1000));
  epoll_event evs[512];
  int n = epoll_wait(ep_, evs, 512, ms);
  for (int i = 0; i < n; ++i) {
    uint32_t idx = uint32_t(evs[i].data.u64);
    // An event can outlive its socket within one batch; the generation tells.
    if (conns_[idx].fd >= 0 && conns_[idx].gen == uint32_t(evs[i].data.u64 >> 32))
      on_event(idx, evs[i].events);
  }
  if (i64 now = now_ns(); now >= next_tick_) tick(now);
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
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(idx, events);
  if (c.fd >= 0 && (events & EPOLLOUT)) flush(idx);
}

void Bench::on_readable(uint32_t idx, uint32_t events) {
  static char buf[64 * 1024];
  Conn& c = conns_[idx];
  for (;;) {
    ssize_t n = read(c.fd, buf, sizeof buf);
    if (n > 0) {
      stats_.bytes_received += u64(n);
      c.in.append(buf, size_t(n));
      if (!consume_input(idx, now_ns())) return;
      // Edge-triggered: a short read drained the socket, and anything arriving
      // later raises a new edge. A pending hangup must still be read to EOF.
      if (size_t(n) < sizeof buf && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) break;
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
  bool expected =
      (c.st == St::LoggingOut && c.logout_ok) || (mode_.hold && c.bye_seen && c.st == St::Ready);
  if (!expected) {
    static const char* const kState[] = {"closed", "connecting", "greeting",
                                         "login",  "ready",      "logout"};
    error(idx, c.bye_seen ? kClosedAfterBye : kClosedUnexpectedly,
          std::string("server closed the connection in state ") + kState[int(c.st)]);
  }
  close_conn(idx);
}

void Bench::send_cmd(Conn& c, std::string_view text, Kind kind) {
  char num[24];
  char* end = std::to_chars(num, num + sizeof num, ++c.next_tag).ptr;
  c.out.append("a").append(num, end).append(" ").append(text).append("\r\n");
  c.inflight.push_back({c.next_tag, 0, kind});
}

void Bench::flush(uint32_t idx) {
  Conn& c = conns_[idx];
  if (c.fd < 0 || c.out_pos == c.out.size()) return;
  // Stamp commands when they leave, so time spent queued in this client before
  // the write is not charged to the server.
  i64 now = now_ns();
  for (auto it = c.inflight.rbegin(); it != c.inflight.rend() && it->sent_ns == 0; ++it)
    it->sent_ns = now;
  while (c.out_pos < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
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

void Bench::pump(uint32_t idx) {
  Conn& c = conns_[idx];
  while (running_ && !stopping_ && c.st == St::Ready && c.inflight.size() < opt_.pipeline) {
    std::optional<Next> next = mode_.next(c);
    if (!next) break;
    send_cmd(c, next->text, next->kind);
    if (next->kind == Kind::Logout) set_state(c, St::LoggingOut);
  }
}

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
    if (!c.in_continuation) c.literal_left = 0;
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
  Conn& c = conns_[idx];
  size_t sp = line.find(' ');
  if (line.starts_with("+") || sp == std::string_view::npos || sp == 0)
    return fail(idx, kUnparseable, line);
  if (c.inflight.empty() || !tag_matches(line.substr(0, sp), c.inflight.front().tag))
    return fail(idx, kUnexpectedTag, line);
  Pending p = c.inflight.front();
  c.inflight.pop_front();
  handle_tagged(idx, p, line.substr(sp + 1), now);
}

void Bench::handle_untagged(uint32_t idx, std::string_view rest, i64 now) {
  Conn& c = conns_[idx];
  std::string_view word = first_word(rest);
  if (c.st == St::Greeting) {
    if (!iequals(word, "OK"))
      return fail(idx, iequals(word, "BYE") ? kGreetingBye : kGreetingBad, rest);
    ++stats_.greeted;
    return send_login(idx);
  }
  if (iequals(word, "BYE")) {
    c.bye_seen = true;
    if (c.st != St::LoggingOut) {  // the BYE that answers LOGOUT is not news
      if (stats_.bye_received++ == 0) stats_.first_bye_ns = now;
      stats_.last_bye_ns = now;
    }
  }
  // Other untagged data (CAPABILITY, EXISTS, ...) is not needed by these modes.
}

// resp is the tagged response after the tag: "OK ...", "NO ..." or "BAD ...".
void Bench::handle_tagged(uint32_t idx, const Pending& p, std::string_view resp, i64 now) {
  Conn& c = conns_[idx];
  std::string_view status = first_word(resp);
  bool ok = iequals(status, "OK"), no = iequals(status, "NO");
  if (!ok && !no && !iequals(status, "BAD")) return fail(idx, kUnparseable, resp);
  switch (p.kind) {
    case Kind::Login:
      if (!ok) return fail(idx, no ? kLoginNo : kLoginBad, resp);
      ++stats_.logins;
      set_state(c, St::Ready);
      if (mode_.measure_login) count_completion(now, now - p.sent_ns);
      return;
    case Kind::Logout:
      if (!ok) return fail(idx, kLogoutBad, resp);
      c.logout_ok = true;  // now the server closes the connection
      if (!c.bye_seen) error(idx, kLogoutNoBye, "tagged OK to LOGOUT without * BYE");
      return;
    case Kind::Measured:
      if (ok)
        count_completion(now, now - p.sent_ns);
      else
        error(idx, no ? kCommandNo : kCommandBad, resp);
      return;
  }
}

void Bench::send_login(uint32_t idx) {
  Conn& c = conns_[idx];
  u64 user = (mode_.reconnect ? next_user_++ : idx) % opt_.users;
  std::string name;
  std::string_view pat = opt_.user_pattern;
  for (size_t i = 0; i < pat.size(); ++i) {
    if (pat[i] == '%' && i + 1 < pat.size() && pat[i + 1] == 'd')
      name += std::to_string(user), ++i;
    else
      name += pat[i];
  }
  std::string cmd = "LOGIN ";
  append_quoted(cmd, name);
  append_quoted(cmd += ' ', opt_.password);
  set_state(c, St::LoggingIn);
  send_cmd(c, cmd, Kind::Login);
}

void Bench::count_completion(i64 now, i64 latency) {
  ++completed_;
  if (!running_ || stopping_ || now < warm_end_ || now >= end_) return;
  hist_.record(u64(std::max<i64>(latency, 0)));
  if (hist_.total() == opt_.max_commands) {
    stopping_ = true;
    stop_ns_ = now;
  }
}

// Once a second: progress line, and close connections stuck in a phase.
void Bench::tick(i64 now) {
  next_tick_ = now + kSec;
  for (uint32_t i = 0; i < conns_.size(); ++i) {
    const Conn& c = conns_[i];
    if (c.fd >= 0 && c.st != St::Ready && now - c.phase_ns > kPhaseTimeout)
      fail(i, kTimeout, "no progress for 60 s while connecting, logging in or out");
  }
  if (!progress_) return;
  std::fprintf(stderr, "[%6.1fs] %s: %llu done/s  open=%lld logged_in=%lld bye=%llu errors=%llu\n",
               double(now - start_ns_) / kSec,
               !running_    ? "setup"
               : mode_.hold ? "hold"
                            : "run",
               ull(completed_ - progress_mark_), (long long)n_open_, (long long)n_ready_,
               ull(stats_.bye_received), ull(stats_.error_total()));
  progress_mark_ = completed_;
}

// Connect and log in every connection before measuring (noop, idle).
bool Bench::setup() {
  i64 deadline = start_ns_ + kPhaseTimeout;
  while (!queue_.empty() || n_open_ != n_ready_) {
    if (g_interrupted) return false;
    if (now_ns() >= deadline) {
      error(kNoConn, kSetupTimeout, "connecting and logging in all connections took over 60 s");
      return false;
    }
    poll_once(deadline);
  }
  return true;
}

void Bench::measure() {
  running_ = true;
  warm_end_ = now_ns() + i64(opt_.warmup * kSec);
  end_ = warm_end_ + i64(opt_.duration * kSec);
  for (uint32_t i = 0; i < conns_.size(); ++i) pump(i), flush(i);
  while (!stopping_ && !g_interrupted) {
    i64 now = now_ns();
    if (now >= end_ || (n_open_ == 0 && queue_.empty())) {
      stop_ns_ = std::min(now, end_);
      break;
    }
    poll_once(end_);
  }
  if (!stopping_ && g_interrupted) stop_ns_ = std::min(now_ns(), end_);
  close_all();
}

void Bench::hold() {
  std::printf("connected=%llu logged_in=%llu\n", ull(stats_.greeted), ull(stats_.logins));
  std::fflush(stdout);
  running_ = true;
  i64 start = now_ns(), end = start + i64(opt_.hold * kSec);
  while (!g_interrupted && n_open_ > 0 && now_ns() < end) poll_once(end);
  held_ns_ = now_ns() - start;
  close_all();
}

int Bench::run() {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) return std::perror("ringmail-bench: epoll_create1"), 1;
  progress_ = opt_.progress || isatty(STDERR_FILENO);
  start_ns_ = now_ns();
  next_tick_ = start_ns_ + kSec;
  for (uint32_t i = 0; i < conns_.size(); ++i) queue_.push_back(i);
  if (mode_.reconnect) {
    measure();  // connecting is part of what is measured; the warmup covers the ramp
  } else {
    setup_ok_ = setup();
    setup_ns_ = now_ns() - start_ns_;
    if (!setup_ok_)
      close_all();
    else if (mode_.hold)
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
  bool idle = mode_.hold;
  double dur = secs(std::max<i64>(0, stop_ns_ - warm_end_));
  const char* what = mode_.measure_login ? "logins" : "commands";
  std::printf("ringmail-bench  mode=%.*s  server=%s:%d%s\n", int(mode_.name.size()),
              mode_.name.data(), opt_.host.c_str(), opt_.port,
              g_interrupted ? "  (INTERRUPTED)" : "");
  std::printf("  %-16s %llu requested, %llu greeted, %llu logins ok\n", "connections",
              ull(opt_.connections), ull(stats_.greeted), ull(stats_.logins));
  if (!mode_.reconnect)
    std::printf("  %-16s %.3f s (connect + login of all connections)%s\n", "setup", secs(setup_ns_),
                setup_ok_ ? "" : "  FAILED");
  if (idle) {
    std::printf("  %-16s %.3f s\n", "held", secs(held_ns_));
  } else {
    std::printf("  %-16s %llu\n", "pipeline", ull(opt_.pipeline));
    std::printf("  %-16s %.3f s (after %.3f s warmup)\n", "duration", dur, opt_.warmup);
    std::printf("  %-16s %llu\n", what, ull(hist_.total()));
    std::printf("  %-16s %.1f\n", (std::string(what) + "/s").c_str(),
                dur > 0 ? double(hist_.total()) / dur : 0.0);
    std::printf("  %-16s p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f)\n", "latency us",
                usecs(hist_.percentile(0.5)), usecs(hist_.percentile(0.99)),
                usecs(hist_.percentile(0.999)), usecs(hist_.max()), hist_.mean() / 1000.0);
  }
  std::printf("  %-16s sent %llu  received %llu\n", "bytes", ull(stats_.bytes_sent),
              ull(stats_.bytes_received));
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

void Bench::report_json() const {
  double dur = mode_.hold ? 0 : secs(std::max<i64>(0, stop_ns_ - warm_end_));
  std::printf(
      "{\"mode\":\"%.*s\",\"host\":\"%s\",\"port\":%d,\"connections\":%llu,\"pipeline\":%llu,",
      int(mode_.name.size()), mode_.name.data(), opt_.host.c_str(), opt_.port,
      ull(opt_.connections), ull(opt_.pipeline));
  std::printf(
      "\"greeted\":%llu,\"logged_in\":%llu,\"setup_s\":%.6f,\"setup_ok\":%s,\"warmup_s\":%.6f,",
      ull(stats_.greeted), ull(stats_.logins), secs(setup_ns_), setup_ok_ ? "true" : "false",
      opt_.warmup);
  std::printf("\"duration_s\":%.6f,\"held_s\":%.6f,\"commands\":%llu,\"commands_per_s\":%.3f,", dur,
              secs(held_ns_), ull(hist_.total()), dur > 0 ? double(hist_.total()) / dur : 0.0);
  std::printf(
      "\"latency_us\":{\"p50\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,\"max\":%.3f,\"mean\":%.3f},",
      usecs(hist_.percentile(0.5)), usecs(hist_.percentile(0.99)), usecs(hist_.percentile(0.999)),
      usecs(hist_.max()), hist_.mean() / 1000.0);
  std::printf(
      "\"bytes_sent\":%llu,\"bytes_received\":%llu,\"bye_received\":%llu,\"bye_spread_s\":%.6f,",
      ull(stats_.bytes_sent), ull(stats_.bytes_received), ull(stats_.bye_received),
      secs(stats_.last_bye_ns - stats_.first_bye_ns));
  std::printf("\"interrupted\":%s,\"errors_total\":%llu,\"errors\":{",
              g_interrupted ? "true" : "false", ull(stats_.error_total()));
  const char* sep = "";
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
    std::fprintf(stderr, "ringmail-bench: unknown mode '%s' (noop, login, idle)\n",
                 opt.mode.c_str());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, on_signal);  // epoll_wait returns EINTR; the loops then wind down and report
  signal(SIGTERM, on_signal);
  raise_fd_limit(opt.connections);
  Bench bench(opt, *mode);
  return bench.run();
}
