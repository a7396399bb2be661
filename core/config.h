// ringmaild's settings: a JSON file (--config FILE) read with simdjson, then command-line flags
// that override it. Every setting is also a flag: key "data_dir" is --data-dir. Units come last in
// the names. An unknown key, a wrong type or a bad value is an error naming the source, the key and
// what is wrong.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmail {

struct ListenAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // as given, e.g. "127.0.0.1:1143" or "[::1]:1143"
};

// Parses "HOST:PORT" (IPv4 literal, "[IPv6]", or "localhost"); port 0 picks an ephemeral one.
bool parse_listen_address(std::string_view text, ListenAddress* out);

struct Config {
  std::string data_dir = "./var";
  std::string imap_listen = "127.0.0.1:1143";
  std::string imaps_listen = "127.0.0.1:1993";  // implicit TLS; "" turns it off
  // PEM files. Neither given: a self-signed certificate made on first start in DATA/tls/.
  std::string tls_cert;
  std::string tls_key;
  // TLS 1.3 suites, then TLS 1.2 ones with forward secrecy and AEAD only.
  std::string tls_ciphers =
      "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
      "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
      "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
  std::string tls_min_version = "1.2";
  // LOGIN and AUTHENTICATE on a connection without TLS (loopback tests, a TLS proxy in front).
  int64_t allow_plaintext_auth = 0;
  // AUTHENTICATE LOGIN, a legacy mechanism some old clients need; 0 turns it off.
  int64_t sasl_login = 1;
  // Connections from one address (IPv6: one /64), counted across all cores; beyond it the new
  // one gets * BYE [UNAVAILABLE]. Sessions of one user (they all live on its core); beyond it
  // the login gets NO [LIMIT].
  int64_t connections_per_ip_max = 500;
  int64_t connections_per_user_max = 50;
  // Bytes a client may send before it has authenticated (slowloris, pre-auth floods).
  int64_t preauth_bytes_max = 65536;
  // Started as root: the account ringmaild runs as once its ports are bound ("" keeps root).
  // The data directory must belong to it.
  std::string user;
  // Security events, one key=value line each; "" is DATA/audit.log.
  std::string audit_log;
  // Brute-force defence, counted across all cores: after auth_delay_after failures of a user or
  // an address, each further failure is answered after a growing delay (250 ms doubling, at most
  // auth_delay_max_ms); at auth_lockout_failures of a user (auth_lockout_ip_failures of an
  // address, IPv6 by /64) within auth_lockout_s of each other, authentication is refused until
  // auth_lockout_s passed since the last failure (or `ringmail user unlock`).
  int64_t auth_lockout_failures = 10;
  int64_t auth_lockout_ip_failures = 100;
  int64_t auth_lockout_s = 900;
  int64_t auth_delay_after = 3;
  int64_t auth_delay_max_ms = 4000;
  int64_t threads = 0;  // 0: one per CPU the process may run on
  std::string log_level = "info";
  int64_t preauth_timeout_s = 60;
  int64_t idle_timeout_s = 30 * 60;  // RFC 9051 section 5.4: at least 30 minutes
  int64_t shutdown_timeout_ms = 1500;
  int64_t connections_max = 200000;
  int64_t line_bytes_max = 8192;  // RFC 9051 section 4: at least 8192 octets
  int64_t preauth_literal_bytes_max = 1024;
  int64_t pending_input_bytes_max =
      65536;                           // unread input held per connection before reading pauses
  int64_t output_bytes_max = 1 << 20;  // queued output before input processing pauses
  int64_t auth_cache_ttl_s = 300;
  int64_t helper_threads = 2;
  int64_t message_bytes_max = 64 << 20;
  // All large commands (APPEND literals) being read on one core together, in bytes.
  int64_t literal_bytes_core_max = 1LL << 30;  // APPENDLIMIT: the largest message APPEND accepts
  // A user's mail stays open this long after its last session ends (a reconnect is then cheap),
  // and at most this many such users per core; beyond either, its files are closed.
  int64_t open_user_idle_s = 60;
  int64_t open_users_max = 256;
  // Once a user's last session ends and at least this many bytes of its messages were expunged,
  // its segments are compacted on the helper pool (only segments at least a quarter garbage are
  // rewritten).
  int64_t compact_released_bytes_min = 1 << 20;
  // The full-text index (storage/fts.h): 1 indexes messages as they are stored and answers
  // SEARCH's text keys from it (then verifies the candidates); 0 scans every message.
  int64_t fts_index = 1;
  // Messages a mailbox's index keeps in memory before writing them as an index segment.
  int64_t fts_batch_docs = 1000;
  int64_t segment_bytes_max = 64 << 20;  // a segment file is sealed at this size
  // How a reactor wakes another after handing it a connection: "auto" (IORING_OP_MSG_RING where
  // the kernel has it, else the target's eventfd), "msg_ring" or "eventfd".
  std::string cross_core_wake = "auto";

  // Loads FILE over the defaults. On error returns false and sets *error to one line.
  bool load_file(const std::string& path, std::string* error);
  // Sets one setting from text (a flag's value). `source` names it in errors ("flag --threads").
  bool set(std::string_view key, std::string_view value, std::string_view source,
           std::string* error);
  // Cross-setting checks and derived values, after everything is loaded.
  bool finish(std::string* error);

  ListenAddress imap_address;   // filled by finish()
  ListenAddress imaps_address;  // ... when imaps_listen is set
};

}  // namespace ringmail
