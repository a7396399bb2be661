// The IMAP session state machine on top of the runtime. This first cut serves the greeting,
// CAPABILITY, NOOP, LOGOUT, LOGIN and a LIST of INBOX; the full command set arrives with the
// protocol issue.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/reactor.h"
#include "protocol/authenticator.h"
#include "protocol/command_parser.h"
#include "storage/user_store.h"

namespace ringmail {

class ImapSession;

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

// Per-core protocol state.
struct ImapCore : CoreLocal {
  ImapCore(const Config& config)
      : store(config.data_dir),
        credentials(static_cast<uint64_t>(config.auth_cache_ttl_s) * 1000) {}
  UserStore store;
  CredentialCache credentials;
  std::unordered_map<std::string, LoginInFlight> logins_in_flight;  // by user name
};

class ImapProtocol : public Protocol {
 public:
  std::unique_ptr<CoreLocal> make_core_local(Reactor& r) override;
  void on_accept(Connection& c) override;
};

class ImapSession : public Session {
 public:
  enum class State : uint8_t { not_authenticated, authenticated, logout };

  size_t on_input(Connection& c, std::string_view input) override;
  void on_adopted(Connection& c) override;
  void on_timeout(Connection& c) override;
  void on_shutdown(Connection& c) override;
  bool busy() const override { return login_pending_; }
  // A client that leaves during its LOGIN's hash: nobody else waits for it, so it is skipped.
  void on_closing(Connection& c) override;
  // The login this session waited on (see LoginWaiter) has its result.
  void finish_coalesced_login(Connection& c, const LoginWaiter& w, const std::string& user,
                              LoginResult result, const std::string& error);

 private:
  // Returns false when processing must stop after this command (a pause or a close).
  void execute(Connection& c, std::string_view frame);
  bool literal_acceptable(Connection& c, std::string_view head, std::string* refusal) const;
  void cmd_login(Connection& c, std::string_view tag, CommandReader& r);
  void cmd_list(Connection& c, std::string_view tag, CommandReader& r);
  void finish_login(Connection& c, const std::string& tag, const std::string& user,
                    LoginResult result, const std::string& error);
  CommandFramer::Limits limits(const Connection& c) const;
  ImapCore& core(Connection& c) const;

  CommandFramer framer_;
  State state_ = State::not_authenticated;
  bool login_pending_ = false;
  HelperJob* login_job_ = nullptr;  // this session's own hash job, until its `done` runs
  bool login_leader_ = false;       // ... registered in ImapCore::logins_in_flight
  std::string login_user_;
  std::string user_;
};

}  // namespace ringmail
