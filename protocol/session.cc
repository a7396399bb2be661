#include "protocol/session.h"

#include <string.h>

#include <algorithm>
#include <vector>

#include "core/log.h"

namespace ringmail {
namespace {

constexpr std::string_view kCapabilities = "IMAP4rev1 LITERAL+";
constexpr size_t kTagBytesMax = 64;
constexpr uint64_t kAuthenticatedLiteralBytesMax = 64 * 1024;  // until APPEND streams to the store

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
         });
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& ch : out)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
  return out;
}

// IMAP LIST wildcards: '*' matches anything, '%' anything but the hierarchy delimiter.
// can[j] says whether the pattern read so far matches the first j bytes of the name: time is
// pattern length x name length whatever the pattern, so no LIST can make a reactor backtrack
// exponentially (a naive recursive match of "%%%%...X" does).
bool wildcard_match(std::string_view pat, std::string_view name, bool fold) {
  const size_t n = name.size();
  std::vector<char> can(n + 1, 0);
  can[0] = 1;
  for (char p : pat) {
    if (p == '*') {
      for (size_t j = 1; j <= n; j++) can[j] = can[j] || can[j - 1];
    } else if (p == '%') {
      for (size_t j = 1; j <= n; j++) can[j] = can[j] || (can[j - 1] && name[j - 1] != '/');
    } else {
      if (fold && p >= 'a' && p <= 'z') p = static_cast<char>(p - 32);
      for (size_t j = n; j >= 1; j--) can[j] = can[j - 1] && name[j - 1] == p;
      can[0] = 0;
    }
  }
  return can[n];
}

void respond(Connection& c, std::string_view tag, std::string_view text) {
  std::string line;
  line.reserve(tag.size() + text.size() + 3);
  line.append(tag).append(" ").append(text).append("\r\n");
  c.write(line);
}

}  // namespace

std::unique_ptr<CoreLocal> ImapProtocol::make_core_local(Reactor& r) {
  return std::make_unique<ImapCore>(r.config());
}

void ImapProtocol::on_accept(Connection& c) {
  c.session = std::make_unique<ImapSession>();
  c.write("* OK [CAPABILITY " + std::string(kCapabilities) + "] ringmail ready\r\n");
}

ImapCore& ImapSession::core(Connection& c) const {
  return *static_cast<ImapCore*>(c.reactor->core_local());
}

CommandFramer::Limits ImapSession::limits(const Connection& c) const {
  const Config& cfg = c.reactor->config();
  uint64_t literal_max = state_ == State::not_authenticated
                             ? static_cast<uint64_t>(cfg.preauth_literal_bytes_max)
                             : kAuthenticatedLiteralBytesMax;
  return {static_cast<size_t>(cfg.line_bytes_max), literal_max};
}

size_t ImapSession::on_input(Connection& c, std::string_view input) {
  size_t consumed = 0;
  const size_t output_max = static_cast<size_t>(c.reactor->config().output_bytes_max);
  while (consumed < input.size()) {
    if (c.input_paused || c.closing || c.close_now || c.handoff_pending) break;
    if (c.out.bytes() > output_max) break;  // resumes when the client has read some output
    std::string_view rest = input.substr(consumed);
    switch (framer_.scan(rest, limits(c))) {
      case CommandFramer::Result::need_more: return consumed;
      case CommandFramer::Result::literal_wanted: {
        std::string refusal;
        if (literal_acceptable(c, rest.substr(0, framer_.frame_bytes()), &refusal)) {
          c.write("+ Ready for literal data\r\n");
          framer_.accept_literal();
        } else {
          c.write(refusal);
          consumed += framer_.frame_bytes();
          framer_.reset();
        }
        break;
      }
      case CommandFramer::Result::literal_too_big: {
        if (!framer_.literal_sync()) {
          // The client sends the bytes anyway; there is no way to skip them safely.
          c.write("* BYE [TOOBIG] Literal too large\r\n");
          c.close_after_flush();
          return input.size();
        }
        CommandReader r(rest);
        std::string_view tag;
        respond(c, r.tag(&tag) ? tag : "*", "NO [TOOBIG] Literal too large");
        consumed += framer_.frame_bytes();
        framer_.reset();
        break;
      }
      case CommandFramer::Result::line_too_long:
      case CommandFramer::Result::bad_literal:
        c.write("* BYE [TOOBIG] Command line too long or malformed\r\n");
        RM_LOG(info, "protocol_error")
            .kv("conn", c.id)
            .kv("peer", c.peer_text())
            .kv("reason", "line_too_long_or_bad_literal");
        c.close_after_flush();
        return input.size();
      case CommandFramer::Result::complete: {
        size_t n = framer_.frame_bytes();
        framer_.reset();
        execute(c, rest.substr(0, n));
        consumed += n;
        break;
      }
    }
  }
  return consumed;
}

bool ImapSession::literal_acceptable(Connection& c, std::string_view head,
                                     std::string* refusal) const {
  CommandReader r(head);
  std::string_view tag, cmd;
  if (!r.tag(&tag) || !r.sp() || !r.atom(&cmd)) {
    *refusal = "* BAD Syntax error before the literal\r\n";
    return false;
  }
  bool ok = state_ == State::not_authenticated ? iequals(cmd, "LOGIN")
                                               : (iequals(cmd, "LIST") || iequals(cmd, "NOOP"));
  if (!ok) *refusal = std::string(tag) + " BAD Literal not expected here\r\n";
  (void)c;
  return ok;
}

void ImapSession::execute(Connection& c, std::string_view frame) {
  CommandReader r(frame);
  std::string_view tag, cmd;
  if (!r.tag(&tag) || tag.size() > kTagBytesMax) {
    c.write("* BAD Missing or invalid tag\r\n");
    return;
  }
  if (!r.sp() || !r.atom(&cmd)) {
    respond(c, tag, "BAD Missing command");
    return;
  }
  if (iequals(cmd, "CAPABILITY") || iequals(cmd, "NOOP") || iequals(cmd, "LOGOUT")) {
    if (!r.at_end()) {
      respond(c, tag, "BAD Unexpected arguments");
      return;
    }
    if (iequals(cmd, "CAPABILITY")) {
      c.write("* CAPABILITY " + std::string(kCapabilities) + "\r\n");
      respond(c, tag, "OK CAPABILITY completed");
    } else if (iequals(cmd, "NOOP")) {
      respond(c, tag, "OK NOOP completed");
    } else {
      c.write("* BYE Logging out\r\n");
      respond(c, tag, "OK LOGOUT completed");
      state_ = State::logout;
      c.close_after_flush();
    }
    return;
  }
  if (iequals(cmd, "LOGIN")) return cmd_login(c, tag, r);
  if (iequals(cmd, "LIST")) return cmd_list(c, tag, r);
  respond(c, tag, "BAD Unknown command");
}

void ImapSession::cmd_login(Connection& c, std::string_view tag, CommandReader& r) {
  if (state_ != State::not_authenticated) {
    respond(c, tag, "BAD Already authenticated");
    return;
  }
  std::string user_scratch, pass_scratch;
  std::string_view user_arg, password;
  if (!r.sp() || !r.astring(&user_arg, &user_scratch) || !r.sp() ||
      !r.astring(&password, &pass_scratch) || !r.at_end()) {
    respond(c, tag, "BAD Expected: LOGIN user password");
    return;
  }
  std::string user = lowercase(user_arg);
  ImapCore& ic = core(c);
  if (user.size() <= UserStore::kNameBytesMax && password.size() <= UserStore::kPasswordBytesMax &&
      ic.credentials.check(user, password, c.reactor->now_ms())) {
    finish_login(c, std::string(tag), user, LoginResult::ok, "");
    return;
  }
  Sha256Digest mac = CredentialCache::mac(user, password);
  auto in_flight = ic.logins_in_flight.find(user);
  if (in_flight != ic.logins_in_flight.end() &&
      constant_time_equal(as_view(in_flight->second.mac), as_view(mac))) {
    in_flight->second.waiters.push_back(LoginWaiter{&c, this, std::string(tag)});
    c.reactor->hold(c);
    login_pending_ = true;
    c.input_paused = true;
    return;
  }
  bool leader = in_flight == ic.logins_in_flight.end();
  if (leader) ic.logins_in_flight.emplace(user, LoginInFlight{mac, this, {}});

  struct Job {
    std::string user, password, error;
    LoginResult result = LoginResult::error;
  };
  auto job = std::make_shared<Job>();
  job->user = user;
  job->password = std::string(password);
  const UserStore* store = &ic.store;
  bool too_long =
      user.size() > UserStore::kNameBytesMax || password.size() > UserStore::kPasswordBytesMax;
  Connection* conn = &c;
  auto work = [job, store, too_long] {
    // An over-long name or password cannot match, but costs the same hash as any other try.
    job->result = verify_login(*store, too_long ? std::string_view("") : job->user,
                               job->password.substr(0, UserStore::kPasswordBytesMax), &job->error);
  };
  auto done = [this, conn, job, leader, tag_copy = std::string(tag)](bool cancelled) {
    ImapCore& core_state = core(*conn);
    login_pending_ = false;
    login_job_ = nullptr;
    conn->input_paused = false;
    if (job->result == LoginResult::ok)
      core_state.credentials.remember(job->user, job->password, conn->reactor->now_ms());
    explicit_bzero(job->password.data(), job->password.size());
    if (!cancelled) finish_login(*conn, tag_copy, job->user, job->result, job->error);
    if (!leader) return;
    // The entry is ours unless on_closing() gave it up and another login took the name.
    auto it = core_state.logins_in_flight.find(job->user);
    if (it == core_state.logins_in_flight.end() || it->second.leader != this) return;
    auto node = core_state.logins_in_flight.extract(it);
    for (const LoginWaiter& w : node.mapped().waiters)
      w.session->finish_coalesced_login(*w.conn, w, job->user, job->result, job->error);
  };
  login_job_ = c.reactor->offload(c, std::move(work), std::move(done));
  login_leader_ = leader;
  login_user_ = user;
  login_pending_ = true;
  c.input_paused = true;
}

void ImapSession::on_closing(Connection& c) {
  if (!login_job_) return;
  if (login_leader_) {
    auto& in_flight = core(c).logins_in_flight;
    auto it = in_flight.find(login_user_);
    if (it == in_flight.end() || it->second.leader != this || !it->second.waiters.empty()) return;
    in_flight.erase(it);  // later logins of this name start their own hash
  }
  login_job_->abandoned.store(true, std::memory_order_release);
  RM_LOG(debug, "login_abandoned").kv("conn", c.id).kv("user", login_user_);
}

void ImapSession::finish_coalesced_login(Connection& c, const LoginWaiter& w,
                                         const std::string& user, LoginResult result,
                                         const std::string& error) {
  login_pending_ = false;
  c.input_paused = false;
  if (!c.closing && !c.close_now) finish_login(c, w.tag, user, result, error);
  c.reactor->release(c);
}

void ImapSession::finish_login(Connection& c, const std::string& tag, const std::string& user,
                               LoginResult result, const std::string& error) {
  Reactor& r = *c.reactor;
  if (result == LoginResult::error) {
    RM_LOG(error, "login_error").kv("user", user).kv("peer", c.peer_text()).kv("error", error);
    respond(c, tag, "NO [UNAVAILABLE] Temporary authentication failure");
    return;
  }
  if (result == LoginResult::bad_credentials) {
    RM_LOG(info, "login_failed").kv("user", user).kv("peer", c.peer_text()).kv("mech", "LOGIN");
    respond(c, tag, "NO [AUTHENTICATIONFAILED] Authentication failed");
    return;
  }
  state_ = State::authenticated;
  user_ = user;
  r.set_timeout_class(c, TimeoutClass::idle);
  respond(c, tag, "OK [CAPABILITY " + std::string(kCapabilities) + "] LOGIN completed");
  uint32_t owner = r.routing().owner(user);
  RM_LOG(info, "login")
      .kv("user", user)
      .kv("peer", c.peer_text())
      .kv("mech", "LOGIN")
      .kv("conn", c.id)
      .kv("core", r.index())
      .kv("owner", owner);
  if (owner != r.index()) r.handoff(c, owner);
}

void ImapSession::cmd_list(Connection& c, std::string_view tag, CommandReader& r) {
  if (state_ != State::authenticated) {
    respond(c, tag, "BAD Not authenticated");
    return;
  }
  std::string ref_scratch, pat_scratch;
  std::string_view reference, pattern;
  if (!r.sp() || r.peek('(') || !r.astring(&reference, &ref_scratch) || !r.sp() ||
      !r.list_mailbox(&pattern, &pat_scratch) || !r.at_end()) {
    respond(c, tag, "BAD Expected: LIST reference mailbox");
    return;
  }
  if (pattern.empty()) {
    c.write("* LIST (\\Noselect) \"/\" \"\"\r\n");
  } else {
    std::string full(reference);
    full.append(pattern);
    if (wildcard_match(full, "INBOX", true)) c.write("* LIST (\\HasNoChildren) \"/\" INBOX\r\n");
  }
  respond(c, tag, "OK LIST completed");
}

void ImapSession::on_adopted(Connection& c) {
  RM_LOG(debug, "adopted").kv("conn", c.id).kv("core", c.reactor->index()).kv("user", user_);
}

void ImapSession::on_timeout(Connection& c) {
  c.write(state_ == State::not_authenticated ? "* BYE Timed out waiting for authentication\r\n"
                                             : "* BYE Autologout; idle for too long\r\n");
}

void ImapSession::on_shutdown(Connection& c) {
  c.write("* BYE [UNAVAILABLE] Server shutting down\r\n");
}

}  // namespace ringmail
