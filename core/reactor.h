// One reactor per core: a pinned thread with its own io_uring, its own listening socket
// (SO_REUSEPORT), its own connections and its own users. Reactors share nothing but the routing
// table; connections move between them through bounded single-producer rings.
//
// One flush point per tick: after the completions of a wait are handled, queued output is sent
// (one gathering sendmsg per connection), handoffs are pushed and the target reactors woken once.
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/audit.h"
#include "core/auth_guard.h"
#include "core/config.h"
#include "core/connection.h"
#include "core/helper_pool.h"
#include "core/mpmc_queue.h"
#include "core/routing_table.h"
#include "core/spsc_ring.h"

namespace ringmail {

class Reactor;
class Server;

// Per-core state of the protocol (caches and the like), built on the reactor's own thread.
class CoreLocal {
 public:
  virtual ~CoreLocal() = default;
};

// What the runtime asks of the protocol.
class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual std::unique_ptr<CoreLocal> make_core_local(Reactor& r) = 0;
  // A new connection: attach a Session and write the greeting.
  virtual void on_accept(Connection& c) = 0;
  // The flush point of a tick, before output is sent: the moment to start a group commit.
  virtual void on_flush(Reactor& /*r*/) {}
};

// An io_uring operation the protocol starts itself (an fsync of the store). Its completion
// comes on the reactor's thread.
class alignas(16) IoOp {
 public:
  virtual ~IoOp() = default;
  virtual void on_complete(int res) = 0;
};

struct RuntimeShared {
  const Config* config = nullptr;
  Protocol* protocol = nullptr;
  RoutingTable* routing = nullptr;
  HelperPool* helpers = nullptr;
  std::vector<Reactor*> reactors;
  std::atomic<bool> stopping{false};
  std::atomic<int64_t> handoffs_in_flight{0};
  bool have_msg_ring = false;
  // The TLS context new connections use; replaced on SIGHUP (contexts live until shutdown).
  std::atomic<WOLFSSL_CTX*> tls_ctx{nullptr};
  AuthGuard* auth_guard = nullptr;
  // Moves on when an admin changed credentials (`ringmail user passwd|del|app-password ...`):
  // every core's cache of recent logins is then dropped.
  std::atomic<uint64_t> credentials_epoch{0};
  // Connections per client address (hashed into slots; see Connection::ip_slot).
  static constexpr size_t kIpSlots = 1 << 16;
  std::unique_ptr<std::atomic<uint32_t>[]> ip_connections {
    new std::atomic<uint32_t>[ kIpSlots ]()
  };
  AuditLog* audit = nullptr;
};

class Reactor {
 public:
  static constexpr size_t kHandoffRingEntries = 1024;

  // `listen_tls_fd` (or -1): the implicit-TLS port (IMAPS).
  Reactor(uint32_t index, RuntimeShared* shared, int listen_fd, int listen_tls_fd = -1);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Sets up the ring on the calling thread. On failure returns false with a one-line reason.
  bool init(std::string* error);
  // Runs until shutdown completes. REQUIRES: init() succeeded on this thread.
  void run();

  uint32_t index() const { return index_; }
  const Config& config() const { return *shared_->config; }
  RoutingTable& routing() { return *shared_->routing; }
  CoreLocal* core_local() { return local_.get(); }
  WOLFSSL_CTX* tls_context() const { return shared_->tls_ctx.load(std::memory_order_acquire); }
  AuthGuard& auth_guard() { return *shared_->auth_guard; }
  uint64_t credentials_epoch() const {
    return shared_->credentials_epoch.load(std::memory_order_acquire);
  }
  AuditLog& audit() { return *shared_->audit; }
  bool stopping() const { return shared_->stopping.load(std::memory_order_acquire); }
  uint64_t now_ms() const { return now_ms_; }
  size_t connections() const { return connections_; }

  // Runs `work` on the helper pool, then `done` here. The connection stays allocated until `done`
  // has run; done(cancelled=true) means it closed meanwhile. A session that paused its input for
  // the job clears c.input_paused in `done`; pending input is then processed. When the pool is
  // full the job waits here, in order, for room.
  // The job returned may be abandoned (HelperJob::abandoned) until its `done` has run.
  HelperJob* offload(Connection& c, std::function<void()> work, std::function<void(bool)> done);
  // Runs `work` on the helper pool, then `done` here; for work that belongs to no connection
  // (compacting an idle user's store). Shutdown waits for it.
  void run_on_helper(std::function<void()> work, std::function<void()> done);
  // Keeps `c` allocated while something outside the runtime waits on it (a login coalesced with
  // another one's job); release() then processes pending input and settles it, like a job's end.
  void hold(Connection& c);
  void release(Connection& c);
  // Moves `c` to reactor `target` once its in-flight operations end. Returns false (and leaves
  // the connection here) when the server is stopping.
  bool handoff(Connection& c, uint32_t target);
  void set_timeout_class(Connection& c, TimeoutClass tc);
  // Queues an fdatasync of `fd` (submitted at the end of this tick); op->on_complete gets its
  // result. The file is resolved at submission: closing the descriptor afterwards is safe.
  void submit_fdatasync(int fd, IoOp* op);
  // The same with a full fsync (a directory, or a file whose size and name matter).
  void submit_fsync(int fd, IoOp* op);
  // Completes `op` after `ts` (which must stay valid until then) with -ETIME.
  void submit_timeout(__kernel_timespec* ts, IoOp* op);
  // Queues a write of `bytes` at `offset` of `fd`; `data` must stay valid until op->on_complete.
  void submit_write(int fd, const void* data, uint32_t bytes, uint64_t offset, IoOp* op);
  // In-flight IoOps; shutdown waits for them.
  size_t io_ops_in_flight() const { return io_ops_in_flight_; }

  // Called by Connection::write and by helper threads.
  void mark_dirty(Connection& c);
  // Calls c.session->on_resume(c) on the next turn of the loop, after this turn's completions,
  // without waiting for any: long work is done in slices with everything else in between.
  void resume_soon(Connection& c);
  void complete_helper_job(HelperJob* job);  // any thread
  void wake();                               // any thread

 private:
  friend class Server;
  enum Tag : uint64_t {
    kTagAccept = 1,
    kTagRecv = 2,
    kTagSend = 3,
    kTagTick = 4,
    kTagWake = 5,
    kTagXcore = 6,
    kTagIgnore = 7,
    kTagMsgRing = 8,  // our MSG_RING to another reactor failed; the pointer is that reactor
    kTagOp = 9,       // an IoOp
    kTagAcceptTls = 10,
  };
  static_assert(alignof(Connection) >= 16, "completion tags live in the low 4 pointer bits");
  static uint64_t pack(const void* p, Tag t) { return reinterpret_cast<uintptr_t>(p) | t; }

  io_uring_sqe* sqe();
  void arm_accept();
  void arm_recv(Connection& c);
  void arm_wake();
  void arm_tick();
  void cancel(uint64_t user_data);
  void on_cqe(const io_uring_cqe* cqe);
  void on_accept(int res, bool more, bool tls);
  // Ciphertext arrived on a TLS connection: handshake, then plaintext to the session.
  void tls_input(Connection& c, std::string_view wire);
  // Plaintext input for the session (from the socket or from TLS).
  void deliver_input(Connection& c, std::string_view data);
  void on_recv(Connection& c, const io_uring_cqe* cqe);
  void on_send(Connection& c, int res);
  void on_tick();
  void process_input(Connection& c);
  size_t input_limit(const Connection& c) const;
  void touch(Connection& c);
  void flush();
  void run_resumes();
  void send(Connection& c);
  // Decides what a connection needs next (arm recv, close, move on); may free it.
  void settle(Connection& c);
  void settle_close(Connection& c);
  void settle_handoff(Connection& c);
  bool push_handoff(Connection& c);
  void adopt(Connection* c);
  void drain_incoming();
  void drain_helper_completions();
  bool submit_job(HelperJob* job);
  void begin_shutdown();
  void shutdown_idle_sessions();
  bool shutdown_complete() const;
  void close_listener();
  void list_add(Connection& c);
  void list_remove(Connection& c);
  void release_buffer(uint16_t bid);
  void free_connection(Connection* c);

  struct TimerList {
    Connection* head = nullptr;
    Connection* tail = nullptr;
  };

  const uint32_t index_;
  RuntimeShared* const shared_;
  int listen_fd_;
  int listen_tls_fd_;
  bool accept_tls_armed_ = false;
  io_uring ring_{};
  bool ring_ready_ = false;
  int wake_fd_ = -1;
  uint64_t wake_buf_ = 0;
  __kernel_timespec tick_ts_{};
  uint64_t now_ms_ = 0;
  uint64_t next_conn_id_ = 0;
  size_t connections_ = 0;
  size_t connections_max_ = 0;
  size_t io_ops_in_flight_ = 0;
  size_t tasks_in_flight_ = 0;            // run_on_helper() work not yet done
  size_t jobs_in_flight_ = 0;             // offloaded, not yet completed here; bounds helper_done_
  std::deque<HelperJob*> jobs_deferred_;  // waiting for room in the pool
  bool accept_armed_ = false;
  bool shutting_down_ = false;
  uint64_t shutdown_deadline_ms_ = 0;

  // Provided-buffer ring for multishot recv.
  static constexpr uint32_t kRecvBuffers = 512;
  static constexpr uint32_t kRecvBufferBytes = 4096;
  io_uring_buf_ring* buf_ring_ = nullptr;
  char* buf_base_ = nullptr;

  TimerList lists_[3];  // preauth, idle, none (closing or waiting for handoff)
  std::vector<Connection*> dirty_;
  std::vector<Connection*> resume_, resume_batch_;  // resume_soon(); each holds an op in flight
  std::vector<Connection*> handoff_waiting_;        // ops drained, the target's ring was full
  std::vector<bool> wake_target_;
  std::vector<std::unique_ptr<SpscRing<Connection*>>> incoming_;  // [source core]
  MpmcQueue<HelperJob*> helper_done_{HelperPool::kJobsMax};
  std::unique_ptr<CoreLocal> local_;

  struct SendOp {
    msghdr msg;
    iovec iov[16];
    OutQueue* queue;  // the connection's plaintext, or its TLS ciphertext
  };
  std::vector<std::unique_ptr<SendOp>> send_ops_free_;
};

}  // namespace ringmail
