// The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) over the keys the user store keeps
// (StoredKey, ServerKey, salt, iterations): no password and no slow hash at login time.
// Channel binding (-PLUS) is not offered; a client that asks for it is refused.
#pragma once

#include <string>
#include <string_view>

#include "storage/user_store.h"

namespace ringmail {

// PLAIN (RFC 4616): authzid NUL authcid NUL passwd. False when there are not two NULs.
bool sasl_plain_parse(std::string_view msg, std::string_view* authz, std::string_view* authc,
                      std::string_view* password);

class ScramServer {
 public:
  enum class Result { ok, failed, malformed };

  // The client-first-message (decoded). False with *error for a malformed one or one that asks
  // for channel binding or another identity; the exchange then ends with BAD/NO.
  bool client_first(std::string_view msg, std::string* error);
  // The user named in client-first (saslname decoded, lower-cased as LOGIN does).
  const std::string& user() const { return user_; }
  // The server-first-message, for `rec` (the user's, or decoy_record() for a name that does
  // not exist: the exchange looks the same and fails at the proof). `server_nonce` is printable.
  std::string server_first(const UserRecord& rec, std::string_view server_nonce);
  // Checks the client-final-message; on ok, *server_final is the server-final-message.
  Result client_final(std::string_view msg, std::string* server_final, std::string* error);

  // A record that matches no password, with a salt derived from the name under a process
  // secret: the same name always gets the same salt, so probing cannot tell it is made up.
  static UserRecord decoy_record(std::string_view user);

 private:
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string client_nonce_;
  std::string user_;
  std::string server_first_;
  std::string nonce_;
  UserRecord rec_;
  bool have_record_ = false;
};

}  // namespace ringmail
