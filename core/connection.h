// A client connection as the runtime sees it. It belongs to exactly one reactor at a time; after a
// handoff the new reactor alone touches it. The protocol's state rides along in `session`.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/out_queue.h"
#include "core/tls.h"

namespace ringmail {

class Reactor;
struct Connection;

// The protocol's side of a connection (an IMAP session). Every call comes on the thread of the
// reactor that currently owns the connection.
class Session {
 public:
  virtual ~Session() = default;
  // Input arrived. Returns how many bytes of `input` were consumed; the rest is kept and offered
  // again, followed by any new bytes, on the next call.
  virtual size_t on_input(Connection& c, std::string_view input) = 0;
  // The connection just arrived on this reactor through a handoff.
  virtual void on_adopted(Connection& c) = 0;
  // The connection's timeout expired: say goodbye (the runtime closes after the flush).
  virtual void on_timeout(Connection& c) = 0;
  // The server is stopping and no command is in flight: say goodbye.
  virtual void on_shutdown(Connection& c) = 0;
  // A command is in flight (e.g. waiting for the helper pool); shutdown waits for it.
  virtual bool busy() const = 0;
  // Output was sent: a session writing a long answer in parts may write the next one.
  virtual void on_writable(Connection& /*c*/) {}
  // The reactor's next turn after Reactor::resume_soon: a command that works in time slices
  // (so the other connections of this core are served in between) does its next slice.
  virtual void on_resume(Connection& /*c*/) {}
  // Input the session has agreed to take beyond pending_input_bytes_max (a literal it accepted).
  virtual size_t input_reserve() const { return 0; }
  // The connection started to close (called once): work done only for it can be given up.
  virtual void on_closing(Connection& /*c*/) {}
};

enum class TimeoutClass : uint8_t { preauth = 0, idle = 1, none = 2 };

struct alignas(16) Connection {
  Reactor* reactor = nullptr;  // the owner; changes only through a handoff
  int fd = -1;
  uint32_t accepted_core = 0;
  uint64_t id = 0;

  // io_uring operations and helper jobs that point at this object; it is freed only at zero.
  uint16_t ops_in_flight = 0;
  bool recv_armed = false;
  bool send_in_flight = false;
  bool closing = false;       // no more input is processed; close once output is flushed
  bool peer_closed = false;   // the client sent FIN: answer what it sent, then close
  bool close_now = false;     // discard output and close
  bool input_paused = false;  // the session waits for a job: keep input unprocessed
  bool handoff_pending = false;
  bool read_stopped = false;  // too much unprocessed input: recv not re-armed until it drains
  bool shutdown_done = false;
  bool dirty = false;           // in the reactor's flush list
  bool resume_pending = false;  // in the reactor's resume list (Reactor::resume_soon)
  bool cancel_sent = false;     // a cancel for the armed recv is on its way
  bool send_cancel_sent = false;
  bool closing_notified = false;   // Session::on_closing has been called
  bool tls_shutdown_sent = false;  // close_notify queued
  TimeoutClass timeout_class = TimeoutClass::preauth;
  uint32_t handoff_target = 0;
  uint32_t ip_slot = UINT32_MAX;  // counted in RuntimeShared::ip_connections

  // Timer list hooks; the owner reactor keeps one list per timeout class, oldest first.
  Connection* prev = nullptr;
  Connection* next = nullptr;
  uint64_t deadline_ms = 0;

  void* send_op = nullptr;  // the in-flight sendmsg's header and iovecs

  sockaddr_in6 peer{};             // IPv4 peers as v4-mapped addresses
  std::string input;               // unprocessed input; empty (no heap) for an idle connection
  OutQueue out;                    // plaintext; under TLS encrypted into tls->wire_out when sent
  std::unique_ptr<TlsStream> tls;  // implicit TLS, or after STARTTLS
  std::unique_ptr<Session> session;

  // Output not yet sent, in clear or encrypted (what backpressure counts).
  size_t output_bytes() const { return out.bytes() + (tls ? tls->wire_out.bytes() : 0); }
  // Something can be sent now (a TLS connection's plaintext waits for the handshake).
  bool sendable() const {
    if (!tls) return !out.empty();
    return !tls->wire_out.empty() || (!out.empty() && (tls->plain_first > 0 || tls->established()));
  }
  // STARTTLS: what is queued now (the OK) goes in clear, everything after through `ctx`.
  bool start_tls(WOLFSSL_CTX* ctx);

  // Queues bytes for the client; sent at the end of this reactor tick.
  void write(std::string_view data);
  // Marks the connection to close once everything queued is sent.
  void close_after_flush() { closing = true; }
  std::string peer_text() const;
};

}  // namespace ringmail
