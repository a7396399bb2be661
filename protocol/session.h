// The IMAP session state machine: one per connection, on the reactor that owns the connection.
// Commands run to completion on that thread; a change to mail answers only once it is durable
// (ImapCore's group commit), and sessions of one user see each other's changes at the moments
// RFC 9051 allows.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/reactor.h"
#include "protocol/authenticator.h"
#include "protocol/command_parser.h"
#include "protocol/imap_core.h"
#include "protocol/imap_fetch.h"
#include "protocol/imap_search.h"
#include "protocol/mime_render.h"
#include "protocol/scram.h"
#include "storage/user_store.h"

namespace ringmail {

struct SortScan;  // protocol/session_sort.cc
class ReferenceThreads;

class ImapProtocol : public Protocol {
 public:
  std::unique_ptr<CoreLocal> make_core_local(Reactor& r) override;
  void on_accept(Connection& c) override;
  void on_flush(Reactor& r) override;
};

class ImapSession : public Session {
 public:
  enum class State : uint8_t { not_authenticated, authenticated, selected, logout };

  std::string capabilities_text(const Connection& c) const;
  size_t on_input(Connection& c, std::string_view input) override;
  void on_adopted(Connection& c) override;
  void on_timeout(Connection& c) override;
  void on_shutdown(Connection& c) override;
  bool busy() const override {
    return login_pending_ || durable_pending_ || mail_pending_ || fetch_run_ != nullptr ||
           search_run_ != nullptr;
  }
  ~ImapSession() override;
  void on_writable(Connection& c) override;
  size_t input_reserve() const override;
  // A client that leaves during its LOGIN's hash: nobody else waits for it, so it is skipped.
  void on_closing(Connection& c) override;
  void on_resume(Connection& c) override;
  // The login this session waited on (see LoginWaiter) has its result.
  void finish_coalesced_login(Connection& c, const LoginWaiter& w, const std::string& user,
                              LoginResult result, const std::string& error,
                              const std::string& app_label);

  // From ImapCore: the user's mail is open (or could not be opened: `s`).
  void on_mail_ready(Connection& c, OpenUser* user, const Status& s);
  // From ImapCore: the changes of the last command are durable (or not: `s`).
  void on_durable(Connection& c, const Status& s);
  // From ImapCore: another session changed these mailboxes (durably).
  void on_mailbox_changed(Connection& c, const std::vector<uint32_t>& mailboxes);

 private:
  struct Flags {
    uint32_t system = 0;
    std::vector<std::string> keywords;
  };

  size_t on_input_commands(Connection& c, std::string_view input);
  void execute(Connection& c, std::string_view frame, const ExternalLiteral* external = nullptr,
               size_t external_count = 0);
  // Large APPEND literals go to a spool file as they arrive (session.cc).
  bool spool_wanted(Connection& c, std::string_view rest) const;
  size_t spool_begin(Connection& c, std::string_view rest);
  size_t spool_take(Connection& c, std::string_view input);
  void spool_write(Connection& c);
  void spool_written(Connection& c, int res);
  void spool_execute(Connection& c, std::string_view tail);
  void dispatch(Connection& c, std::string_view tag, std::string_view cmd, CommandReader& r);
  bool literal_acceptable(Connection& c, std::string_view head, std::string* refusal) const;
  CommandFramer::Limits limits(const Connection& c) const;
  static size_t framer_limits_line(const Connection& c);
  bool reserve_input(Connection& c, uint64_t bytes);
  ImapCore& core(Connection& c) const;
  ImapRevision revision() const { return rev2_ ? ImapRevision::rev2 : ImapRevision::rev1; }

  // Authentication (session.cc).
  bool auth_allowed(const Connection& c) const;  // TLS is on, or plaintext auth is allowed
  void cmd_starttls(Connection& c, std::string_view tag, CommandReader& r);
  void cmd_login(Connection& c, std::string_view tag, CommandReader& r);
  void cmd_authenticate(Connection& c, std::string_view tag, CommandReader& r);
  void sasl_response(Connection& c, std::string_view line);
  void sasl_continue(Connection& c, std::string_view challenge);  // "+ base64" and wait
  void scram_first(Connection& c, const std::string& tag, std::string_view msg);
  void start_login(Connection& c, std::string_view tag, std::string_view user,
                   std::string_view password, const char* mech);
  void finish_login(Connection& c, const std::string& tag, const std::string& user,
                    LoginResult result, const std::string& error);
  void cmd_enable(Connection& c, std::string_view tag, CommandReader& r);
  // Brute-force defence: false (answered NO [UNAVAILABLE]) while `user` or the client's address
  // is locked out.
  bool auth_gate(Connection& c, std::string_view tag, const std::string& user);
  void audit_auth(Connection& c, const char* event, const std::string& user, uint32_t failures = 0);
  // Answers `text` after `delay_ms` (a failed login past auth_delay_after).
  void respond_later(Connection& c, const std::string& tag, std::string text, uint64_t delay_ms);
  void cmd_id(Connection& c, std::string_view tag, CommandReader& r);

  // Mailboxes (session_mailbox.cc).
  bool read_mailbox_name(CommandReader& r, std::string* name, std::string* error) const;
  void append_mailbox_name(std::string_view name, std::string* out) const;
  void cmd_list(Connection& c, std::string_view tag, CommandReader& r, bool lsub);
  void cmd_create(Connection& c, std::string_view tag, CommandReader& r);
  void cmd_delete(Connection& c, std::string_view tag, CommandReader& r);
  void cmd_rename(Connection& c, std::string_view tag, CommandReader& r);
  void cmd_subscribe(Connection& c, std::string_view tag, CommandReader& r, bool on);
  void cmd_status(Connection& c, std::string_view tag, CommandReader& r);
  bool append_status(const UserMail::Mailbox& m, const std::vector<std::string>& items,
                     std::string* out);
  void cmd_select(Connection& c, std::string_view tag, CommandReader& r, bool read_only);
  void cmd_close(Connection& c, std::string_view tag, CommandReader& r, bool expunge);
  void deselect();

  // Messages (session_message.cc).
  void cmd_append(Connection& c, std::string_view tag, CommandReader& r);
  void cmd_fetch(Connection& c, std::string_view tag, CommandReader& r, bool uid);
  void continue_fetch(Connection& c);
  void cmd_store(Connection& c, std::string_view tag, CommandReader& r, bool uid);
  void cmd_copy(Connection& c, std::string_view tag, CommandReader& r, bool uid, bool move);
  void cmd_expunge(Connection& c, std::string_view tag, CommandReader& r, bool uid);
  void cmd_search(Connection& c, std::string_view tag, CommandReader& r, bool uid);
  // Answers a SEARCH, SORT or THREAD parse that failed, or a command the selected mailbox
  // cannot take; true (and *idx) when the command can run.
  bool search_ready(Connection& c, std::string_view tag, SearchParse parsed,
                    const std::string& error, const SearchCommand& cmd, MailboxIndex** idx);
  // RFC 5256 SORT and THREAD (protocol/session_sort.cc).
  void cmd_sort(Connection& c, std::string_view tag, CommandReader& r, bool uid);
  void cmd_thread(Connection& c, std::string_view tag, CommandReader& r, bool uid);
  SortScan sort_scan(Connection& c, const MailboxIndex* idx, uint32_t texts,
                     ReferenceThreads* threads);
  void cmd_idle(Connection& c, std::string_view tag, CommandReader& r);
  void idle_input(Connection& c, std::string_view line);
  bool read_flag_list(CommandReader& r, Flags* flags, std::string* error);
  bool resolve_flags(const Flags& f, MailboxIndex* idx, uint32_t* system, uint64_t* keywords,
                     std::string* error);
  void append_flags(uint32_t system, uint64_t keywords, const MailboxIndex& idx,
                    std::string* out) const;
  // The messages a sequence set names in this session's view, as indexes into uids_.
  // False (with a BAD already written) when a sequence number is out of range.
  bool select_messages(Connection& c, std::string_view tag, std::string_view set_text, bool uid,
                       std::vector<uint32_t>* positions);
  MailboxIndex* selected_index();
  // Tells the client what changed in the selected mailbox since it last heard: EXISTS always,
  // flag changes always, expunges only when `expunges_allowed`.
  void report_updates(Connection& c, bool expunges_allowed);
  void report_expunges(Connection& c, const std::vector<uint32_t>& positions_desc);
  // Answers a command that changed mail once the change is durable.
  void respond_durable(Connection& c, std::string_view tag, std::string text);
  void respond_ok(Connection& c, std::string_view tag, std::string_view text,
                  bool expunges_allowed = true);

  CommandFramer framer_;
  State state_ = State::not_authenticated;
  bool login_pending_ = false;
  HelperJob* login_job_ = nullptr;  // this session's own hash job, until its `done` runs
  bool login_leader_ = false;       // ... registered in ImapCore::logins_in_flight
  std::string login_user_;
  std::string user_;
  std::string pending_tag_;  // LOGIN/AUTHENTICATE answered once the mail is open
  bool mail_pending_ = false;
  const char* mech_ = "LOGIN";
  std::string app_label_;  // the app password the last login used, for the audit log
  uint64_t appendlimit_ = 0;
  uint64_t input_reserved_ = 0;
  uint64_t preauth_bytes_ = 0;  // input taken before authentication (preauth_bytes_max)  // of
                                // ImapCore::literal_bytes, for the command being read
  OpenUser* open_ = nullptr;

  bool starttls_discard_ = false;  // STARTTLS answered: the rest of the input is dropped
  bool sasl_wait_ = false;         // AUTHENTICATE waits for the client's next response line
  std::string sasl_tag_;
  // A multi-step AUTHENTICATE (LOGIN, SCRAM-SHA-256): where it is, and what it keeps.
  struct SaslState {
    enum class Step : uint8_t {
      plain,
      login_user,
      login_password,
      scram_first,
      scram_final,
      scram_ack
    };
    Step step = Step::plain;
    std::string login_user;
    ScramServer scram;
  };
  std::unique_ptr<SaslState> sasl_;
  class DelayOp;
  std::unique_ptr<DelayOp> delay_;

  bool durable_pending_ = false;  // the tagged response below waits for the group commit
  std::string durable_tag_;
  std::string durable_text_;
  bool durable_expunges_ = true;  // the parked response may report expunges (not for FETCH...)

  bool rev2_ = false;  // ENABLE IMAP4rev2
  bool utf8_ = false;  // ENABLE UTF8=ACCEPT (or IMAP4rev2): mailbox names in UTF-8
  bool condstore_ = false;
  bool qresync_ = false;

  // The selected mailbox as this client knows it.
  uint32_t selected_ = 0;
  bool read_only_ = false;
  std::vector<uint32_t> uids_;                // sequence number n is uids_[n - 1]
  uint64_t known_modseq_ = 0;                 // flag changes up to here are reported
  std::unordered_set<uint64_t> own_modseqs_;  // changes this session reported itself
  bool changes_pending_ = false;
  std::vector<uint32_t> saved_uids_;  // SEARCHRES

  bool idling_ = false;
  std::string idle_tag_;

  // A FETCH whose responses are written as the client reads them (continue_fetch()).
  struct FetchRun {
    FetchSpec spec;
    std::vector<uint32_t> positions;
    size_t next = 0;
    std::string tag;
    bool uid = false;
    bool changed = false;   // \Seen was set
    bool expunged = false;  // a message in the set was expunged by another session
    FetchError error = FetchError::none;
  };
  std::unique_ptr<FetchRun> fetch_run_;

  // A SEARCH evaluated in slices of kSearchSliceNs (continue_search), so that one user's search
  // of a large mailbox never holds up the other connections of its core for longer than that.
  // Input is paused meanwhile; the session's view (uids_) cannot change while it runs, since
  // updates are only reported at command boundaries and to IDLE.
  struct SearchRun {
    SearchCommand cmd;
    SearchMailbox box;
    IndexNarrowing index;
    std::string tag;
    bool uid = false;
    uint32_t next = 0;           // position in uids_
    std::vector<uint32_t> hits;  // UIDs or sequence numbers
    std::vector<uint32_t> hit_uids;
    uint64_t max_modseq = 0;
    Status read_status;
  };
  std::unique_ptr<SearchRun> search_run_;
  void continue_search(Connection& c);
  void finish_search(Connection& c, SearchRun& run);

  // An APPEND whose large literals are spooled to an unnamed file in the user's directory, so
  // a message of tens of megabytes never sits whole in memory. The command's text (without
  // those literals' bytes) collects in `head`; at the end the literals are read back from a
  // mapping of the file.
  struct AppendSpool {
    int fd = -1;
    std::string head;
    struct Literal {
      size_t at;        // in head (ExternalLiteral::at)
      uint64_t offset;  // in the file
      uint64_t bytes;
    };
    std::vector<Literal> literals;
    uint64_t file_bytes = 0;  // written, in flight, or in `chunk`
    uint64_t left = 0;        // bytes of the current literal still to come
    std::string chunk;        // received, not yet written
    bool writing = false;
    int error = 0;  // errno of a failed write: the APPEND fails, the stream stays in step
    class WriteOp;
    std::unique_ptr<WriteOp> op;
    ~AppendSpool();
  };
  std::unique_ptr<AppendSpool> spool_;
};

}  // namespace ringmail
