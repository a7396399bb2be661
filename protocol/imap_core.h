// Per-core protocol state: the credentials cache, coalesced logins, and the users whose mail is
// open on this core, with their sessions and the group commit of their changes.
//
// A user's mail (UserMail) is opened on the helper pool (opening reads and may repair files) the
// first time one of its sessions logs in on its owner core, and closed a while after its last
// session leaves (open_user_idle_s, open_users_max): a user without sessions costs nothing.
//
// Group commit: a command that changes mail writes its change at once (page cache) and parks its
// tagged response with wait_durable(). At the tick's flush point every user with changes starts
// one round: an fdatasync through io_uring of each file that changed, all in flight together.
// When the round completes, the parked responses are released (or answered NO if the disk
// failed) and the other sessions of the user that have a changed mailbox selected are told.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/reactor.h"
#include "protocol/authenticator.h"
#include "storage/user_mail.h"
#include "storage/user_store.h"

namespace ringmail {

class ImapSession;

struct SessionRef {
  Connection* conn = nullptr;
  ImapSession* session = nullptr;
};

// A LOGIN waiting for the result of an identical one (same user, same password) whose hash is
// already being computed on this core: a storm of reconnects costs one hash per user.
struct LoginWaiter {
  Connection* conn;
  ImapSession* session;
  std::string tag;
};
struct LoginInFlight {
  Sha256Digest mac;
  ImapSession* leader = nullptr;  // whose job computes the result
  std::vector<LoginWaiter> waiters;
};

class ImapCore;

struct OpenUser {
  class SyncOp : public IoOp {
   public:
    void on_complete(int res) override;
    OpenUser* user = nullptr;
    ImapCore* core = nullptr;
  };

  std::string name;
  std::unique_ptr<UserMail> mail;
  Status failed;  // opening failed, or a sync did: no change is acknowledged again
  bool loading = false;
  bool compacting = false;   // `mail` is on the helper pool: nothing here may touch it
  bool fts_merging = false;  // a merge of one of its full-text indexes is on the helper pool
  std::vector<SessionRef> load_waiters;
  std::vector<SessionRef> sessions;
  uint64_t idle_since_ms = 0;  // when the last session left
  bool in_idle_list = false;

  // Group commit.
  bool sync_queued = false;  // in ImapCore::sync_queue_
  bool sync_in_flight = false;
  std::vector<SessionRef> waiting_next;     // for the next round
  std::vector<SessionRef> waiting_current;  // for the round in flight
  std::vector<uint32_t> changed_next;       // mailboxes changed since the round in flight began
  std::vector<uint32_t> changed_current;
  UserMail::SyncRound round;
  int round_pending = 0;
  int round_error = 0;
  SyncOp op;
};

class ImapCore : public CoreLocal {
 public:
  ImapCore(Reactor& r, const Config& config)
      : store(config.data_dir),
        credentials(static_cast<uint64_t>(config.auth_cache_ttl_s) * 1000),
        reactor_(r) {}
  ~ImapCore() override;

  UserStore store;
  CredentialCache credentials;
  std::unordered_map<std::string, LoginInFlight> logins_in_flight;  // by user name
  // Scratch of the session running a command (one at a time per core): no per-session copy.
  MimeInfo mime;
  std::string out;
  uint64_t literal_bytes = 0;  // large commands being read on this core (literal_bytes_core_max)

  // Attaches a logged-in session to its user's mail, opening it if needed. When it is ready,
  // session->on_mail_ready(conn, user) is called (at once if it is open already; *after* this
  // returns otherwise, with the connection held and its input paused meanwhile).
  void attach(Connection& c, ImapSession* s, const std::string& user);
  void detach(Connection& c, ImapSession* s, OpenUser* user);

  // The command of `s` made changes to `user`'s mail: its tagged response waits for the next
  // round; session->on_durable(conn, status) releases it. `mailbox` (0: none) changed and its
  // other watchers are told once the change is durable.
  void wait_durable(Connection& c, ImapSession* s, OpenUser* user);
  void changed(OpenUser* user, uint32_t mailbox);

  // Flush point: starts the rounds, closes mail idle for too long.
  void flush();

  size_t open_users() const { return users_.size(); }

 private:
  void loaded(OpenUser* u, std::unique_ptr<UserMail> mail, const Status& s);
  void start_round(OpenUser* u);
  void submit_round(OpenUser* u);
  void finish_round(OpenUser* u);
  void notify(OpenUser* u, const std::vector<uint32_t>& mailboxes);
  void close_idle();
  bool evictable(const OpenUser* u) const;
  void start_compaction(OpenUser* u);
  void start_fts_merge();
  // The in-memory parts of all open users' full-text indexes on this core stay within
  // kFtsMemoryBytesMax: beyond it, the user holding the most writes its parts out.
  void bound_fts_memory();
  static constexpr uint64_t kFtsMemoryBytesMax = 16u << 20;

  Reactor& reactor_;
  std::unordered_map<std::string, std::unique_ptr<OpenUser>> users_;
  std::vector<OpenUser*> sync_queue_;
  std::deque<OpenUser*> idle_;  // users without sessions, oldest first
  uint64_t last_compaction_scan_ms_ = 0;
  bool compaction_running_ = false;  // one at a time per core
  uint64_t last_fts_merge_scan_ms_ = 0;
  bool fts_merge_running_ = false;  // one at a time per core
  friend struct OpenUser;
};

}  // namespace ringmail
