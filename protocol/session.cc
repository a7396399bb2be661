#include "protocol/session.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "core/crypto.h"
#include "core/log.h"
#include "protocol/imap_text.h"

namespace ringmail {
namespace {

constexpr size_t kTagBytesMax = 64;
// Literals of commands other than APPEND (a SEARCH string, a mailbox name) stay small, so a
// flood of them cannot hold much memory (the SEARCH-literal exhaustion of CVE-2024-34055).
constexpr uint64_t kOtherLiteralBytesMax = 64 * 1024;
// APPEND literals from this size on are spooled to a file as they arrive (AppendSpool).
constexpr uint64_t kSpoolLiteralMin = 256 * 1024;
constexpr size_t kSpoolChunkBytes = 256 * 1024;

bool command_is(std::string_view head, std::string_view cmd) {
  CommandReader r(head);
  std::string_view tag, name;
  if (!r.tag(&tag) || !r.sp() || !r.atom(&name)) return false;
  if (iequals(name, "UID")) {
    if (!r.sp() || !r.atom(&name)) return false;
  }
  return iequals(name, cmd);
}

}  // namespace

std::unique_ptr<CoreLocal> ImapProtocol::make_core_local(Reactor& r) {
  return std::make_unique<ImapCore>(r, r.config());
}

void ImapProtocol::on_accept(Connection& c) {
  auto s = std::make_unique<ImapSession>();
  c.write("* OK [CAPABILITY " + s->capabilities_text(c) + "] ringmail ready\r\n");
  c.session = std::move(s);
}

void ImapProtocol::on_flush(Reactor& r) {
  static_cast<ImapCore*>(r.core_local())->flush();
}

std::string ImapSession::capabilities_text(const Connection& c) const {
  std::string caps = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR";
  if (state_ == State::not_authenticated) {
    if (!c.tls && c.reactor->tls_context()) caps += " STARTTLS";
    if (!auth_allowed(c))
      caps += " LOGINDISABLED";
    else
      caps += c.reactor->config().sasl_login != 0 ? " AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN"
                                                  : " AUTH=SCRAM-SHA-256 AUTH=PLAIN";
    caps += " ID ENABLE";
    return caps;
  }
  caps +=
      " ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE LIST-EXTENDED "
      "LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES "
      "STATUS=SIZE CONDSTORE QRESYNC UTF8=ACCEPT MULTIAPPEND BINARY";
  caps += " APPENDLIMIT=" + std::to_string(appendlimit_);
  return caps;
}

ImapCore& ImapSession::core(Connection& c) const {
  return *static_cast<ImapCore*>(c.reactor->core_local());
}

CommandFramer::Limits ImapSession::limits(const Connection& c) const {
  const Config& cfg = c.reactor->config();
  uint64_t literal_max = state_ == State::not_authenticated
                             ? static_cast<uint64_t>(cfg.preauth_literal_bytes_max)
                             : static_cast<uint64_t>(cfg.message_bytes_max);
  return {static_cast<size_t>(cfg.line_bytes_max), literal_max};
}

size_t ImapSession::framer_limits_line(const Connection& c) {
  return static_cast<size_t>(c.reactor->config().line_bytes_max);
}

// Large commands (APPEND literals) draw on a per-core budget (literal_bytes_core_max), so
// many clients uploading at once cannot take all memory: each connection's own bound is
// APPENDLIMIT, this bounds their sum. Small commands never count.
bool ImapSession::reserve_input(Connection& c, uint64_t bytes) {
  if (bytes <= kOtherLiteralBytesMax) bytes = 0;
  uint64_t& used = core(c).literal_bytes;
  if (bytes > input_reserved_) {
    const auto max = static_cast<uint64_t>(c.reactor->config().literal_bytes_core_max);
    if (used + (bytes - input_reserved_) > max) return false;
  }
  used = used - input_reserved_ + bytes;
  input_reserved_ = bytes;
  return true;
}

size_t ImapSession::input_reserve() const {
  return static_cast<size_t>(framer_.committed_bytes());
}

size_t ImapSession::on_input(Connection& c, std::string_view input) {
  size_t consumed = on_input_commands(c, input);
  if (state_ == State::not_authenticated) preauth_bytes_ += consumed;
  return consumed;
}

size_t ImapSession::on_input_commands(Connection& c, std::string_view input) {
  size_t consumed = 0;
  const uint64_t preauth_max = static_cast<uint64_t>(c.reactor->config().preauth_bytes_max);
  const size_t output_max = static_cast<size_t>(c.reactor->config().output_bytes_max);
  while (consumed < input.size()) {
    if (c.input_paused || c.closing || c.close_now || c.handoff_pending) break;
    if (c.output_bytes() > output_max) break;  // resumes when the client has read some output
    if (state_ == State::not_authenticated && preauth_bytes_ + consumed >= preauth_max) {
      // Before login a client may send only so much (slowloris, pre-auth floods).
      c.write("* BYE [LIMIT] Too much input before authentication\r\n");
      RM_LOG(info, "protocol_error").kv("peer", c.peer_text()).kv("reason", "preauth_bytes_max");
      c.close_after_flush();
      return input.size();
    }
    std::string_view rest = input.substr(consumed);
    if (spool_ && spool_->left > 0) {
      consumed += spool_take(c, rest);
      continue;
    }
    // In a spooled APPEND, `rest` goes on from the end of the last spooled literal: the command
    // so far is spool_->head, and its bytes so far are `before`.
    const bool spooling = spool_ != nullptr;
    const uint64_t before = spooling ? spool_->head.size() + spool_->file_bytes : 0;
    const uint64_t held = spooling ? spool_->head.size() + kSpoolChunkBytes : 0;
    switch (framer_.scan(rest, limits(c))) {
      case CommandFramer::Result::need_more: {
        if (spool_wanted(c, rest)) {
          size_t n = spool_begin(c, rest);
          if (n > 0) {
            consumed += n;
            break;
          }
        }
        if (!spooling &&
            framer_.committed_bytes() > kOtherLiteralBytesMax + framer_limits_line(c) &&
            !command_is(rest, "APPEND")) {
          c.write("* BYE [TOOBIG] Literal too large for this command\r\n");
          c.close_after_flush();
          return input.size();
        }
        if (before + framer_.committed_bytes() > appendlimit_ + framer_limits_line(c)) {
          // MULTIAPPEND: all the messages of one command together stay within APPENDLIMIT.
          c.write("* BYE [TOOBIG] Command too large\r\n");
          c.close_after_flush();
          return input.size();
        }
        if (!reserve_input(c, held + framer_.committed_bytes())) {
          // A non-synchronizing literal cannot be refused: its bytes are on their way.
          c.write("* BYE [LIMIT] Too much upload in progress on this server; try again later\r\n");
          c.close_after_flush();
          return input.size();
        }
        return consumed;
      }
      case CommandFramer::Result::literal_wanted: {
        std::string refusal;
        std::string_view head = spooling ? std::string_view(spool_->head) : rest;
        const uint64_t literal = framer_.literal_bytes();
        // A literal that will be spooled needs no memory beyond the spool's chunk.
        const bool to_spool = literal >= kSpoolLiteralMin && open_ && open_->mail &&
                              (spooling || command_is(rest, "APPEND"));
        bool room = reserve_input(
            c, held + framer_.frame_bytes() + (to_spool ? kSpoolChunkBytes : literal));
        CommandReader tr(head);
        std::string_view t;
        std::string tag(tr.tag(&t) ? t : "*");
        if (!room) {
          refusal =
              tag + " NO [LIMIT] Too much upload in progress on this server; try again later\r\n";
        } else if (before + framer_.frame_bytes() + literal >
                   appendlimit_ + framer_limits_line(c)) {
          room = false;
          refusal = tag + " NO [TOOBIG] Messages larger than APPENDLIMIT together\r\n";
        }
        if (room && literal_acceptable(c, spooling ? head : rest.substr(0, framer_.frame_bytes()),
                                       &refusal)) {
          c.write("+ Ready for literal data\r\n");
          framer_.accept_literal();
        } else {
          c.write(refusal);
          consumed += framer_.frame_bytes();
          framer_.reset();
          reserve_input(c, 0);
          spool_.reset();  // the command ends here
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
        CommandReader r(spooling ? std::string_view(spool_->head) : rest);
        std::string_view tag;
        respond(c, r.tag(&tag) ? tag : "*", "NO [TOOBIG] Literal too large");
        consumed += framer_.frame_bytes();
        framer_.reset();
        reserve_input(c, 0);
        spool_.reset();
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
        reserve_input(c, 0);
        if (spooling)
          spool_execute(c, rest.substr(0, n));
        else
          execute(c, rest.substr(0, n));
        consumed += n;
        if (starttls_discard_) {
          // Bytes after STARTTLS came in clear: none of them may count as a command (the
          // command-injection attack on STARTTLS).
          starttls_discard_ = false;
          return input.size();
        }
        break;
      }
    }
  }
  return consumed;
}

// ---- Spooled APPEND -------------------------------------------------------------------------

class ImapSession::AppendSpool::WriteOp : public IoOp {
 public:
  WriteOp(ImapSession* s, Connection* c) : s_(s), c_(c) {}
  void on_complete(int res) override { s_->spool_written(*c_, res); }

 private:
  ImapSession* s_;
  Connection* c_;
};

ImapSession::AppendSpool::~AppendSpool() {
  if (fd >= 0) close(fd);
}

// The framer stopped inside a literal that is large, of an APPEND, of a user whose mail is open.
bool ImapSession::spool_wanted(Connection& c, std::string_view rest) const {
  (void)c;
  if (framer_.literal_left() == 0 || framer_.literal_bytes() < kSpoolLiteralMin) return false;
  if ((state_ != State::authenticated && state_ != State::selected) || !open_ || !open_->mail)
    return false;
  return spool_ != nullptr || command_is(rest, "APPEND");
}

// Moves the command text before the literal into the spool's head and starts taking the
// literal's bytes. Returns the bytes of `rest` taken, 0 when no spool file could be made (the
// literal is then held in memory as before).
size_t ImapSession::spool_begin(Connection& c, std::string_view rest) {
  if (!spool_) {
    // Unnamed (O_TMPFILE): nothing to clean up after a crash. In the user's directory: same
    // file system and the same disk accounting as the message will have.
    int fd = open(open_->mail->dir().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      RM_LOG(warn, "append_spool_failed").kv("user", user_).kv("errno", errno);
      return 0;
    }
    spool_ = std::make_unique<AppendSpool>();
    spool_->fd = fd;
    spool_->chunk.reserve(kSpoolChunkBytes);
  }
  AppendSpool& sp = *spool_;
  size_t start = framer_.literal_start();
  sp.head.append(rest.substr(0, start));
  sp.literals.push_back({sp.head.size(), sp.file_bytes, framer_.literal_bytes()});
  sp.left = framer_.literal_bytes();
  framer_.reset();
  if (!reserve_input(c, sp.head.size() + kSpoolChunkBytes)) {
    c.write("* BYE [LIMIT] Too much upload in progress on this server; try again later\r\n");
    c.close_after_flush();
  }
  return start;
}

// Takes bytes of the literal being spooled; writes a chunk once it is full or the literal ends.
size_t ImapSession::spool_take(Connection& c, std::string_view input) {
  AppendSpool& sp = *spool_;
  size_t take = static_cast<size_t>(std::min<uint64_t>(sp.left, input.size()));
  size_t room = kSpoolChunkBytes - sp.chunk.size();
  if (take > room) take = room;
  sp.chunk.append(input.data(), take);
  sp.left -= take;
  if (sp.chunk.size() == kSpoolChunkBytes || sp.left == 0) spool_write(c);
  return take;
}

// One write at a time through the ring; input waits meanwhile, so TCP pushes back on the client
// and the spool holds one chunk of memory.
void ImapSession::spool_write(Connection& c) {
  AppendSpool& sp = *spool_;
  if (sp.error != 0) {  // the APPEND has failed: the rest of its bytes are only read
    sp.file_bytes += sp.chunk.size();
    sp.chunk.clear();
    return;
  }
  if (!sp.op) sp.op = std::make_unique<AppendSpool::WriteOp>(this, &c);
  sp.writing = true;
  c.input_paused = true;
  c.reactor->hold(c);
  c.reactor->submit_write(sp.fd, sp.chunk.data(), static_cast<uint32_t>(sp.chunk.size()),
                          sp.file_bytes, sp.op.get());
}

void ImapSession::spool_written(Connection& c, int res) {
  AppendSpool& sp = *spool_;
  sp.writing = false;
  if (res < 0) {
    sp.error = -res;
  } else if (static_cast<size_t>(res) != sp.chunk.size()) {
    sp.error = ENOSPC;  // a short write to a regular file: the disk or the file size limit
  }
  if (sp.error != 0) RM_LOG(warn, "append_spool_failed").kv("user", user_).kv("errno", sp.error);
  sp.file_bytes += sp.chunk.size();
  sp.chunk.clear();
  c.input_paused = false;
  c.reactor->release(c);  // takes the input that waited
}

// The spooled APPEND is complete: `tail` is its text after the last spooled literal.
void ImapSession::spool_execute(Connection& c, std::string_view tail) {
  std::unique_ptr<AppendSpool> sp = std::move(spool_);
  sp->head.append(tail);
  CommandReader tr(sp->head);
  std::string_view tag;
  if (!tr.tag(&tag)) tag = "*";
  if (sp->error != 0) {
    bool full = sp->error == ENOSPC || sp->error == EFBIG || sp->error == EDQUOT;
    std::string why = strerror(sp->error);
    return respond(
        c, tag,
        storage_failure(full ? Status::no_space(why) : Status::io_error(why), "APPEND failed"));
  }
  void* map = mmap(nullptr, sp->file_bytes, PROT_READ, MAP_SHARED, sp->fd, 0);
  if (map == MAP_FAILED)
    return respond(c, tag, storage_failure(Status::io_error(strerror(errno)), "APPEND failed"));
  const char* base = static_cast<const char*>(map);
  std::vector<ExternalLiteral> external;
  external.reserve(sp->literals.size());
  for (const AppendSpool::Literal& l : sp->literals)
    external.push_back({l.at, std::string_view(base + l.offset, l.bytes)});
  execute(c, sp->head, external.data(), external.size());  // the store copies what it keeps
  munmap(map, sp->file_bytes);
}

bool ImapSession::literal_acceptable(Connection& c, std::string_view head,
                                     std::string* refusal) const {
  CommandReader r(head);
  std::string_view tag, cmd;
  if (!r.tag(&tag) || !r.sp() || !r.atom(&cmd)) {
    *refusal = "* BAD Syntax error before the literal\r\n";
    return false;
  }
  if (sasl_wait_ || idling_) {
    *refusal = "* BAD Literal not expected here\r\n";
    return false;
  }
  if (state_ == State::not_authenticated) {
    if ((iequals(cmd, "LOGIN") || iequals(cmd, "AUTHENTICATE")) && !auth_allowed(c)) {
      *refusal = std::string(tag) + " NO [PRIVACYREQUIRED] Authentication needs TLS\r\n";
      return false;
    }
    if (iequals(cmd, "LOGIN") || iequals(cmd, "AUTHENTICATE")) return true;
    *refusal = std::string(tag) + " BAD Literal not expected here\r\n";
    return false;
  }
  if (framer_.literal_bytes() > kOtherLiteralBytesMax && !command_is(head, "APPEND")) {
    *refusal = std::string(tag) + " NO [TOOBIG] Literal too large for this command\r\n";
    return false;
  }
  if (iequals(cmd, "APPEND") && framer_.literal_bytes() > appendlimit_) {
    *refusal = std::string(tag) + " NO [TOOBIG] Message larger than APPENDLIMIT\r\n";
    return false;
  }
  // "+" only for a command that can still succeed (RFC 9051 section 7.5).
  static const char* const kWithStrings[] = {
      "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
      "LIST",   "LSUB",    "STATUS", "APPEND", "ENABLE", "ID"};
  static const char* const kSelectedOnly[] = {"FETCH",  "STORE", "COPY",   "MOVE",
                                              "SEARCH", "SORT",  "THREAD", "UID"};
  bool known = false;
  for (const char* k : kWithStrings) known |= iequals(cmd, k);
  bool selected_only = false;
  for (const char* k : kSelectedOnly) selected_only |= iequals(cmd, k);
  if (!known && !(selected_only && state_ == State::selected)) {
    *refusal = std::string(tag) + (selected_only ? " BAD No mailbox selected\r\n"
                                                 : " BAD Literal not expected here\r\n");
    return false;
  }
  if (iequals(cmd, "APPEND") && open_ && open_->mail && r.sp() && !r.peek('{')) {
    std::string name, error;
    if (read_mailbox_name(r, &name, &error) && !open_->mail->find(name)) {
      *refusal = std::string(tag) + " NO [TRYCREATE] No such mailbox\r\n";
      return false;
    }
  }
  return true;
}

void ImapSession::execute(Connection& c, std::string_view frame, const ExternalLiteral* external,
                          size_t external_count) {
  if (sasl_wait_) return sasl_response(c, frame);
  if (idling_) return idle_input(c, frame);
  CommandReader r(frame, external, external_count);
  std::string_view tag, cmd;
  if (!r.tag(&tag) || tag.size() > kTagBytesMax) {
    c.write("* BAD Missing or invalid tag\r\n");
    return;
  }
  if (!r.sp() || !r.atom(&cmd)) {
    respond(c, tag, "BAD Missing command");
    return;
  }
  dispatch(c, tag, cmd, r);
}

void ImapSession::dispatch(Connection& c, std::string_view tag, std::string_view cmd,
                           CommandReader& r) {
  // Any state.
  if (iequals(cmd, "CAPABILITY") || iequals(cmd, "NOOP") || iequals(cmd, "LOGOUT") ||
      iequals(cmd, "CHECK")) {
    if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
    if (iequals(cmd, "CAPABILITY")) {
      c.write("* CAPABILITY " + capabilities_text(c) + "\r\n");
      return respond(c, tag, "OK CAPABILITY completed");
    }
    if (iequals(cmd, "LOGOUT")) {
      c.write("* BYE Logging out\r\n");
      respond(c, tag, "OK LOGOUT completed");
      state_ = State::logout;
      c.close_after_flush();
      return;
    }
    if (iequals(cmd, "CHECK") && state_ != State::selected)
      return respond(c, tag, "BAD No mailbox selected");
    return respond_ok(c, tag, iequals(cmd, "NOOP") ? "NOOP completed" : "CHECK completed");
  }
  if (iequals(cmd, "ID")) return cmd_id(c, tag, r);
  if (state_ == State::not_authenticated) {
    if (iequals(cmd, "LOGIN")) return cmd_login(c, tag, r);
    if (iequals(cmd, "AUTHENTICATE")) return cmd_authenticate(c, tag, r);
    if (iequals(cmd, "ENABLE")) return respond(c, tag, "BAD Log in first");
    if (iequals(cmd, "STARTTLS")) return cmd_starttls(c, tag, r);
    static const char* const kAfterLogin[] = {
        "SELECT",      "EXAMINE", "LIST",    "LSUB",  "CREATE",    "DELETE", "RENAME", "SUBSCRIBE",
        "UNSUBSCRIBE", "STATUS",  "APPEND",  "IDLE",  "NAMESPACE", "FETCH",  "STORE",  "COPY",
        "MOVE",        "SEARCH",  "EXPUNGE", "CLOSE", "UNSELECT",  "UID",    "SORT",   "THREAD"};
    for (const char* k : kAfterLogin)
      if (iequals(cmd, k)) return respond(c, tag, "BAD Not authenticated");
    return respond(c, tag, "BAD Unknown command");
  }
  if (iequals(cmd, "LOGIN") || iequals(cmd, "AUTHENTICATE"))
    return respond(c, tag, "BAD Already authenticated");
  if (iequals(cmd, "STARTTLS")) return respond(c, tag, "BAD STARTTLS is only allowed before login");
  // Authenticated and selected.
  if (iequals(cmd, "ENABLE")) return cmd_enable(c, tag, r);
  if (iequals(cmd, "SELECT")) return cmd_select(c, tag, r, false);
  if (iequals(cmd, "EXAMINE")) return cmd_select(c, tag, r, true);
  if (iequals(cmd, "LIST")) return cmd_list(c, tag, r, false);
  if (iequals(cmd, "LSUB")) return cmd_list(c, tag, r, true);
  if (iequals(cmd, "CREATE")) return cmd_create(c, tag, r);
  if (iequals(cmd, "DELETE")) return cmd_delete(c, tag, r);
  if (iequals(cmd, "RENAME")) return cmd_rename(c, tag, r);
  if (iequals(cmd, "SUBSCRIBE")) return cmd_subscribe(c, tag, r, true);
  if (iequals(cmd, "UNSUBSCRIBE")) return cmd_subscribe(c, tag, r, false);
  if (iequals(cmd, "STATUS")) return cmd_status(c, tag, r);
  if (iequals(cmd, "APPEND")) return cmd_append(c, tag, r);
  if (iequals(cmd, "IDLE")) return cmd_idle(c, tag, r);
  if (iequals(cmd, "NAMESPACE")) {
    if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
    c.write("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    return respond_ok(c, tag, "NAMESPACE completed");
  }
  bool is_message_command = iequals(cmd, "FETCH") || iequals(cmd, "STORE") ||
                            iequals(cmd, "COPY") || iequals(cmd, "MOVE") ||
                            iequals(cmd, "SEARCH") || iequals(cmd, "EXPUNGE") ||
                            iequals(cmd, "CLOSE") || iequals(cmd, "UNSELECT") ||
                            iequals(cmd, "UID") || iequals(cmd, "SORT") || iequals(cmd, "THREAD");
  if (!is_message_command) return respond(c, tag, "BAD Unknown command");
  if (state_ != State::selected) return respond(c, tag, "BAD No mailbox selected");
  if (iequals(cmd, "CLOSE")) return cmd_close(c, tag, r, true);
  if (iequals(cmd, "UNSELECT")) return cmd_close(c, tag, r, false);
  bool uid = false;
  if (iequals(cmd, "UID")) {
    if (!r.sp() || !r.atom(&cmd)) return respond(c, tag, "BAD Expected a command after UID");
    uid = true;
  }
  if (iequals(cmd, "FETCH")) return cmd_fetch(c, tag, r, uid);
  if (iequals(cmd, "STORE")) return cmd_store(c, tag, r, uid);
  if (iequals(cmd, "COPY")) return cmd_copy(c, tag, r, uid, false);
  if (iequals(cmd, "MOVE")) return cmd_copy(c, tag, r, uid, true);
  if (iequals(cmd, "SEARCH")) return cmd_search(c, tag, r, uid);
  if (iequals(cmd, "SORT")) return cmd_sort(c, tag, r, uid);
  if (iequals(cmd, "THREAD")) return cmd_thread(c, tag, r, uid);
  if (iequals(cmd, "EXPUNGE")) return cmd_expunge(c, tag, r, uid);
  respond(c, tag, "BAD Unknown UID command");
}

void ImapSession::respond_ok(Connection& c, std::string_view tag, std::string_view text,
                             bool expunges_allowed) {
  if (state_ == State::selected) report_updates(c, expunges_allowed);
  std::string line = "OK ";
  line.append(text);
  respond(c, tag, line);
}

void ImapSession::respond_durable(Connection& c, std::string_view tag, std::string text) {
  durable_tag_ = std::string(tag);
  durable_text_ = std::move(text);
  durable_pending_ = true;
  core(c).wait_durable(c, this, open_);
}

void ImapSession::on_durable(Connection& c, const Status& s) {
  if (!durable_pending_) return;
  durable_pending_ = false;
  if (c.closing || c.close_now) return;
  if (!s.is_ok()) {
    respond(c, durable_tag_,
            "NO [SERVERBUG] The change could not be made durable: " + one_line(s.message()));
    return;
  }
  if (durable_text_.rfind("OK ", 0) == 0 && state_ == State::selected)
    report_updates(c, durable_expunges_);
  durable_expunges_ = true;
  respond(c, durable_tag_, durable_text_);
  c.reactor->mark_dirty(c);
}

void ImapSession::cmd_id(Connection& c, std::string_view tag, CommandReader& r) {
  // RFC 2971: the client's parameters are read and ignored; ours are name and version.
  if (!r.sp()) return respond(c, tag, "BAD Expected: ID (params) or ID NIL");
  std::string_view word;
  if (r.peek('(')) {
    r.ch('(');
    int fields = 0;
    while (!r.ch(')')) {
      std::string scratch;
      std::string_view v;
      if (fields > 0 && !r.sp()) return respond(c, tag, "BAD Malformed ID parameter list");
      if (!r.string(&v, &scratch)) {
        if (!r.atom(&v) || !iequals(v, "NIL")) return respond(c, tag, "BAD Malformed ID value");
      }
      if (++fields > 60) return respond(c, tag, "BAD Too many ID fields");
    }
  } else if (!r.atom(&word) || !iequals(word, "NIL")) {
    return respond(c, tag, "BAD Expected: ID (params) or ID NIL");
  }
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  c.write("* ID (\"name\" \"ringmail\" \"version\" \"0.2\")\r\n");
  respond(c, tag, "OK ID completed");
}

void ImapSession::cmd_enable(Connection& c, std::string_view tag, CommandReader& r) {
  std::string enabled;
  int n = 0;
  while (r.sp()) {
    std::string_view cap;
    if (!r.atom(&cap)) return respond(c, tag, "BAD Expected capability names");
    n++;
    auto add = [&](bool* flag, const char* name) {
      if (*flag) return;
      *flag = true;
      enabled.append(" ").append(name);
    };
    if (iequals(cap, "CONDSTORE")) {
      add(&condstore_, "CONDSTORE");
    } else if (iequals(cap, "QRESYNC")) {
      add(&qresync_, "QRESYNC");
      condstore_ = true;
    } else if (iequals(cap, "IMAP4rev2")) {
      add(&rev2_, "IMAP4rev2");
      utf8_ = true;
    } else if (iequals(cap, "UTF8=ACCEPT")) {
      add(&utf8_, "UTF8=ACCEPT");
    }
  }
  if (n == 0 || !r.at_end()) return respond(c, tag, "BAD Expected: ENABLE capability...");
  c.write("* ENABLED" + enabled + "\r\n");
  respond(c, tag, "OK ENABLE completed");
}

// ---- Authentication -------------------------------------------------------------------------

bool ImapSession::auth_allowed(const Connection& c) const {
  return c.tls != nullptr || c.reactor->config().allow_plaintext_auth != 0;
}

// RFC 9051 section 6.2.1. What the client sent after the command line was sent in clear before
// the negotiation: it is discarded (on_input), never taken as commands under TLS.
void ImapSession::cmd_starttls(Connection& c, std::string_view tag, CommandReader& r) {
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  if (c.tls) return respond(c, tag, "BAD TLS is already active");
  WOLFSSL_CTX* ctx = c.reactor->tls_context();
  if (!ctx) return respond(c, tag, "NO [UNAVAILABLE] TLS is not configured");
  respond(c, tag, "OK Begin TLS negotiation now");
  if (!c.start_tls(ctx)) {
    RM_LOG(error, "tls_session_failed").kv("conn", c.id).kv("peer", c.peer_text());
    c.close_after_flush();
    return;
  }
  starttls_discard_ = true;
}

void ImapSession::cmd_login(Connection& c, std::string_view tag, CommandReader& r) {
  if (!auth_allowed(c))
    return respond(c, tag,
                   "NO [PRIVACYREQUIRED] LOGIN needs TLS: use STARTTLS or the IMAPS port first");
  std::string user_scratch, pass_scratch;
  std::string_view user_arg, password;
  if (!r.sp() || !r.astring(&user_arg, &user_scratch) || !r.sp() ||
      !r.astring(&password, &pass_scratch) || !r.at_end()) {
    respond(c, tag, "BAD Expected: LOGIN user password");
    return;
  }
  start_login(c, tag, user_arg, password, "LOGIN");
}

void ImapSession::cmd_authenticate(Connection& c, std::string_view tag, CommandReader& r) {
  if (!auth_allowed(c))
    return respond(c, tag,
                   "NO [PRIVACYREQUIRED] AUTHENTICATE needs TLS: use STARTTLS or the IMAPS port "
                   "first");
  std::string_view mech, initial;
  if (!r.sp() || !r.atom(&mech)) return respond(c, tag, "BAD Expected: AUTHENTICATE mechanism");
  SaslState::Step step;
  if (iequals(mech, "PLAIN")) {
    step = SaslState::Step::plain;
  } else if (iequals(mech, "SCRAM-SHA-256")) {
    step = SaslState::Step::scram_first;
  } else if (iequals(mech, "LOGIN") && c.reactor->config().sasl_login != 0) {
    step = SaslState::Step::login_user;
  } else {
    return respond(c, tag, "NO [CANNOT] Unsupported authentication mechanism");
  }
  if (r.sp()) {
    // SASL-IR (RFC 4959): the initial response on the command line; "=" is an empty one.
    if (!r.word(&initial)) return respond(c, tag, "BAD Malformed initial response");
  }
  if (!r.at_end()) return respond(c, tag, "BAD Unexpected arguments");
  sasl_ = std::make_unique<SaslState>();
  sasl_->step = step;
  sasl_tag_ = std::string(tag);
  if (initial.empty()) {
    // LOGIN (draft-murchison-sasl-login) prompts for the name; the others start empty.
    sasl_continue(c, step == SaslState::Step::login_user ? "Username:" : "");
    return;
  }
  sasl_response(c, std::string(initial) + "\r\n");
}

void ImapSession::sasl_continue(Connection& c, std::string_view challenge) {
  sasl_wait_ = true;
  c.write("+ " + base64_encode(challenge) + "\r\n");
}

void ImapSession::sasl_response(Connection& c, std::string_view line) {
  sasl_wait_ = false;
  std::string tag = sasl_tag_;
  std::unique_ptr<SaslState> st = std::move(sasl_);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line == "*") return respond(c, tag, "BAD Authentication cancelled");
  std::string decoded;
  if (line != "=" && !base64_decode(line, &decoded))
    return respond(c, tag, "BAD Invalid base64 in the SASL response");
  if (!st) st = std::make_unique<SaslState>();
  switch (st->step) {
    case SaslState::Step::plain: break;
    case SaslState::Step::login_user:
      if (decoded.empty() || decoded.size() > UserStore::kNameBytesMax)
        return respond(c, tag, "BAD Malformed user name");
      st->login_user = std::move(decoded);
      st->step = SaslState::Step::login_password;
      sasl_ = std::move(st);
      return sasl_continue(c, "Password:");
    case SaslState::Step::login_password: {
      mech_ = "SASL-LOGIN";
      start_login(c, tag, st->login_user, decoded, "SASL-LOGIN");
      explicit_bzero(decoded.data(), decoded.size());
      return;
    }
    case SaslState::Step::scram_first: {
      std::string error;
      if (!st->scram.client_first(decoded, &error)) return respond(c, tag, "NO [CANNOT] " + error);
      mech_ = "SCRAM-SHA-256";
      if (!auth_gate(c, tag, st->scram.user())) return;
      sasl_ = std::move(st);
      return scram_first(c, tag, decoded);
    }
    case SaslState::Step::scram_final: {
      std::string server_final, error;
      mech_ = "SCRAM-SHA-256";
      ScramServer::Result res = st->scram.client_final(decoded, &server_final, &error);
      if (res == ScramServer::Result::malformed) return respond(c, tag, "BAD " + error);
      if (res == ScramServer::Result::failed)
        return finish_login(c, tag, st->scram.user(), LoginResult::bad_credentials, "");
      st->step = SaslState::Step::scram_ack;
      sasl_ = std::move(st);
      return sasl_continue(c, server_final);
    }
    case SaslState::Step::scram_ack:
      if (!decoded.empty()) return respond(c, tag, "BAD Expected an empty response");
      mech_ = "SCRAM-SHA-256";
      return finish_login(c, tag, st->scram.user(), LoginResult::ok, "");
  }
  std::string_view authz, authc, pass;
  if (!sasl_plain_parse(decoded, &authz, &authc, &pass)) {
    explicit_bzero(decoded.data(), decoded.size());
    return respond(c, tag, "BAD Malformed PLAIN response");
  }
  if (!authz.empty() && !iequals(authz, authc)) {
    explicit_bzero(decoded.data(), decoded.size());
    return respond(c, tag, "NO [AUTHORIZATIONFAILED] No authorization as another user");
  }
  start_login(c, tag, authc, pass, "PLAIN");
  explicit_bzero(decoded.data(), decoded.size());
}

// SCRAM's server-first needs the user's salt and iterations: the record is read on the helper
// pool (a file read), or a decoy made for a name that does not exist.
void ImapSession::scram_first(Connection& c, const std::string& tag, std::string_view msg) {
  (void)msg;
  struct Job {
    std::string user;
    UserRecord rec;
    bool error = false;
  };
  auto job = std::make_shared<Job>();
  job->user = sasl_->scram.user();
  const UserStore* store = &core(c).store;
  Connection* conn = &c;
  auto work = [job, store] {
    Status s = UserStore::valid_name(job->user) ? store->load(job->user, &job->rec)
                                                : Status::not_found("invalid name");
    if (s.code() == Status::Code::not_found || s.code() == Status::Code::invalid)
      job->rec = ScramServer::decoy_record(job->user);
    else if (!s.is_ok())
      job->error = true;
  };
  auto done = [this, conn, job, tag](bool cancelled) {
    login_pending_ = false;
    login_job_ = nullptr;
    conn->input_paused = false;
    if (cancelled || !sasl_) return;
    if (job->error) {
      sasl_.reset();
      return respond(*conn, tag, "NO [UNAVAILABLE] Temporary authentication failure");
    }
    std::string nonce(18, '\0');
    random_bytes(nonce.data(), nonce.size());
    std::string first = sasl_->scram.server_first(job->rec, base64_encode(nonce));
    sasl_->step = SaslState::Step::scram_final;
    sasl_continue(*conn, first);
  };
  login_job_ = c.reactor->offload(c, std::move(work), std::move(done));
  login_leader_ = false;
  login_pending_ = true;
  c.input_paused = true;
}

class ImapSession::DelayOp : public IoOp {
 public:
  void on_complete(int /*res*/) override {
    ImapSession* s = session;
    Connection& c = *conn;
    s->login_pending_ = false;
    c.input_paused = false;
    if (!c.closing && !c.close_now) respond(c, tag, text);
    c.reactor->release(c);
  }
  __kernel_timespec ts{};
  ImapSession* session = nullptr;
  Connection* conn = nullptr;
  std::string tag, text;
};

ImapSession::~ImapSession() = default;

void ImapSession::respond_later(Connection& c, const std::string& tag, std::string text,
                                uint64_t delay_ms) {
  if (!delay_) delay_ = std::make_unique<DelayOp>();
  delay_->ts.tv_sec = static_cast<int64_t>(delay_ms / 1000);
  delay_->ts.tv_nsec = static_cast<int64_t>(delay_ms % 1000) * 1000000;
  delay_->session = this;
  delay_->conn = &c;
  delay_->tag = tag;
  delay_->text = std::move(text);
  login_pending_ = true;
  c.input_paused = true;
  c.reactor->hold(c);
  c.reactor->submit_timeout(&delay_->ts, delay_.get());
}

void ImapSession::audit_auth(Connection& c, const char* event, const std::string& user,
                             uint32_t failures) {
  AuditLine a(event);
  a.kv("user", user).kv("ip", c.peer_text()).kv("mech", mech_).kv("tls", c.tls ? "yes" : "no");
  if (!app_label_.empty()) a.kv("app_password", app_label_);
  if (failures > 0) a.kv("failures", failures);
  c.reactor->audit().emit(a);
}

bool ImapSession::auth_gate(Connection& c, std::string_view tag, const std::string& user) {
  const Config& cfg = c.reactor->config();
  uint64_t now_s = c.reactor->now_ms() / 1000;
  AuthGuard& g = c.reactor->auth_guard();
  uint32_t uf = g.failures("u:" + user, now_s);
  uint32_t ipf = g.failures(AuthGuard::ip_key(&c.peer), now_s);
  if (uf < static_cast<uint64_t>(cfg.auth_lockout_failures) &&
      ipf < static_cast<uint64_t>(cfg.auth_lockout_ip_failures)) {
    // Counted when it fails, not here: a client opening ten connections at once with the right
    // password must not lock itself out while the hashes run. So guesses already in flight at
    // the threshold may each still be counted (at most one per connection).
    return true;
  }
  audit_auth(c, "auth_refused_locked", user, std::max(uf, ipf));
  RM_LOG(info, "login_refused").kv("user", user).kv("peer", c.peer_text()).kv("reason", "locked");
  // Answered as late as the slowest failure: a locked-out guesser gets few tries per second
  // (and the audit log few lines), and a locked name looks like any other.
  respond_later(c, std::string(tag),
                "NO [UNAVAILABLE] Too many failed authentications; try again later",
                static_cast<uint64_t>(cfg.auth_delay_max_ms));
  return false;
}

void ImapSession::start_login(Connection& c, std::string_view tag, std::string_view user_arg,
                              std::string_view password, const char* mech) {
  std::string user = lowercase(user_arg);
  mech_ = mech;
  if (!auth_gate(c, tag, user)) return;
  ImapCore& ic = core(c);
  if (user.size() <= UserStore::kNameBytesMax && password.size() <= UserStore::kPasswordBytesMax &&
      ic.credentials.check(user, password, c.reactor->now_ms(), c.reactor->credentials_epoch(),
                           &app_label_)) {
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
    std::string user, password, error, app_label;
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
                               job->password.substr(0, UserStore::kPasswordBytesMax), &job->error,
                               &job->app_label);
  };
  auto done = [this, conn, job, leader, tag_copy = std::string(tag)](bool cancelled) {
    ImapCore& core_state = core(*conn);
    login_pending_ = false;
    login_job_ = nullptr;
    conn->input_paused = false;
    if (job->result == LoginResult::ok)
      core_state.credentials.remember(job->user, job->password, conn->reactor->now_ms(),
                                      job->app_label);
    explicit_bzero(job->password.data(), job->password.size());
    app_label_ = job->app_label;
    if (!cancelled) finish_login(*conn, tag_copy, job->user, job->result, job->error);
    if (!leader) return;
    // The entry is ours unless on_closing() gave it up and another login took the name.
    auto it = core_state.logins_in_flight.find(job->user);
    if (it == core_state.logins_in_flight.end() || it->second.leader != this) return;
    auto node = core_state.logins_in_flight.extract(it);
    for (const LoginWaiter& w : node.mapped().waiters)
      w.session->finish_coalesced_login(*w.conn, w, job->user, job->result, job->error,
                                        job->app_label);
  };
  login_job_ = c.reactor->offload(c, std::move(work), std::move(done));
  login_leader_ = leader;
  login_user_ = user;
  login_pending_ = true;
  c.input_paused = true;
}

void ImapSession::on_closing(Connection& c) {
  reserve_input(c, 0);
  if (open_) {
    core(c).detach(c, this, open_);
    open_ = nullptr;
  }
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
                                         const std::string& error, const std::string& app_label) {
  login_pending_ = false;
  c.input_paused = false;
  app_label_ = app_label;
  if (!c.closing && !c.close_now) finish_login(c, w.tag, user, result, error);
  c.reactor->release(c);
}

void ImapSession::finish_login(Connection& c, const std::string& tag, const std::string& user,
                               LoginResult result, const std::string& error) {
  Reactor& r = *c.reactor;
  if (result == LoginResult::error) {
    RM_LOG(error, "login_error").kv("user", user).kv("peer", c.peer_text()).kv("error", error);
    audit_auth(c, "auth_error", user);
    respond(c, tag, "NO [UNAVAILABLE] Temporary authentication failure");
    return;
  }
  if (result == LoginResult::bad_credentials) {
    // Counted for the name (whether it exists or not) and for the address, on every core.
    const Config& cfg = r.config();
    uint64_t now_s = r.now_ms() / 1000;
    uint32_t uf = r.auth_guard().fail("u:" + user, now_s);
    uint32_t ipf = r.auth_guard().fail(AuthGuard::ip_key(&c.peer), now_s);
    RM_LOG(info, "login_failed")
        .kv("user", user)
        .kv("peer", c.peer_text())
        .kv("mech", mech_)
        .kv("failures", std::max(uf, ipf));
    audit_auth(c, "auth_failed", user, uf);
    if (uf == static_cast<uint64_t>(cfg.auth_lockout_failures)) {
      audit_auth(c, "lockout_user", user, uf);
      RM_LOG(warn, "lockout").kv("user", user).kv("failures", uf);
    }
    if (ipf == static_cast<uint64_t>(cfg.auth_lockout_ip_failures)) {
      audit_auth(c, "lockout_ip", user, ipf);
      RM_LOG(warn, "lockout").kv("ip", c.peer_text()).kv("failures", ipf);
    }
    uint32_t n = std::max(uf, ipf);
    const std::string text = "NO [AUTHENTICATIONFAILED] Authentication failed";
    if (n <= static_cast<uint64_t>(cfg.auth_delay_after) || cfg.auth_delay_max_ms == 0)
      return respond(c, tag, text);
    uint64_t steps = std::min<uint64_t>(n - static_cast<uint64_t>(cfg.auth_delay_after) - 1, 20);
    uint64_t delay =
        std::min<uint64_t>(uint64_t{250} << steps, static_cast<uint64_t>(cfg.auth_delay_max_ms));
    return respond_later(c, tag, text, delay);
  }
  r.auth_guard().reset("u:" + user);
  audit_auth(c, "auth_ok", user);
  std::string().swap(app_label_);
  user_ = user;
  pending_tag_ = tag;
  uint32_t owner = r.routing().owner(user);
  RM_LOG(info, "login")
      .kv("user", user)
      .kv("peer", c.peer_text())
      .kv("mech", mech_)
      .kv("conn", c.id)
      .kv("core", r.index())
      .kv("owner", owner);
  // The tagged OK follows once the mail is open on the owner core (on_mail_ready).
  mail_pending_ = true;
  if (owner != r.index()) {
    if (r.handoff(c, owner)) return;  // continues in on_adopted()
    mail_pending_ = false;
    respond(c, tag, "NO [UNAVAILABLE] Server shutting down");
    return;
  }
  core(c).attach(c, this, user_);
}

void ImapSession::on_adopted(Connection& c) {
  RM_LOG(debug, "adopted").kv("conn", c.id).kv("core", c.reactor->index()).kv("user", user_);
  if (mail_pending_) core(c).attach(c, this, user_);
}

void ImapSession::on_mail_ready(Connection& c, OpenUser* user, const Status& s) {
  mail_pending_ = false;
  std::string tag = std::move(pending_tag_);
  if (!s.is_ok()) {
    core(c).detach(c, this, user);
    respond(c, tag, "NO [UNAVAILABLE] Your mail cannot be opened now; try again later");
    return;
  }
  if (user->sessions.size() > static_cast<uint64_t>(c.reactor->config().connections_per_user_max)) {
    core(c).detach(c, this, user);
    RM_LOG(warn, "login_refused").kv("user", user_).kv("reason", "connections_per_user_max");
    respond(c, tag, "NO [LIMIT] Too many connections for this user; close some and try again");
    return;
  }
  open_ = user;
  state_ = State::authenticated;
  appendlimit_ = static_cast<uint64_t>(c.reactor->config().message_bytes_max);
  c.reactor->set_timeout_class(c, TimeoutClass::idle);
  respond(c, tag,
          "OK [CAPABILITY " + capabilities_text(c) + "] " +
              (strcmp(mech_, "LOGIN") == 0 ? "LOGIN" : "AUTHENTICATE") + " completed");
  c.reactor->mark_dirty(c);
}

void ImapSession::on_timeout(Connection& c) {
  c.write(state_ == State::not_authenticated ? "* BYE Timed out waiting for authentication\r\n"
                                             : "* BYE Autologout; idle for too long\r\n");
}

void ImapSession::on_shutdown(Connection& c) {
  c.write("* BYE [UNAVAILABLE] Server shutting down\r\n");
}

}  // namespace ringmail
