#include "core/reactor.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "core/assert.h"
#include "core/log.h"

namespace ringmail {
namespace {

constexpr uint64_t kTagMask = 15;
constexpr unsigned kSqEntries = 2048;
constexpr unsigned kCqEntries = 16384;
constexpr int64_t kTickMs = 1000;
constexpr int64_t kShutdownTickMs = 10;
constexpr uint16_t kRecvBufferGroup = 0;

uint64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace

void Connection::write(std::string_view data) {
  if (close_now) return;
  out.append(data);
  reactor->mark_dirty(*this);
}

std::string Connection::peer_text() const {
  char buf[INET6_ADDRSTRLEN];
  if (IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr)) {
    inet_ntop(AF_INET, &peer.sin6_addr.s6_addr[12], buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, &peer.sin6_addr, buf, sizeof buf);
  }
  return buf;
}

bool Connection::start_tls(WOLFSSL_CTX* ctx) {
  auto t = std::make_unique<TlsStream>(ctx);
  if (!t->valid()) return false;
  t->plain_first = out.bytes();
  tls = std::move(t);
  return true;
}

Reactor::Reactor(uint32_t index, RuntimeShared* shared, int listen_fd, int listen_tls_fd)
    : index_(index), shared_(shared), listen_fd_(listen_fd), listen_tls_fd_(listen_tls_fd) {}

Reactor::~Reactor() {
  HelperJob* job = nullptr;
  while (helper_done_.pop(&job)) delete job;  // their connections are gone with the reactor
  for (auto& ring : incoming_) {
    Connection* c = nullptr;
    while (ring && ring->pop(&c)) {
      close(c->fd);
      delete c;
    }
  }
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (buf_base_) munmap(buf_base_, size_t{kRecvBuffers} * kRecvBufferBytes);
  free(buf_ring_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (listen_fd_ >= 0) close(listen_fd_);
  if (listen_tls_fd_ >= 0) close(listen_tls_fd_);
}

bool Reactor::init(std::string* error) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    *error = std::string("eventfd: ") + strerror(errno);
    return false;
  }
  // SINGLE_ISSUER and DEFER_TASKRUN (6.1+) let completions run only when this thread asks for
  // them; older kernels get the plain ring.
  const unsigned flag_sets[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
          IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_CQSIZE,
  };
  int rc = -EINVAL;
  for (unsigned flags : flag_sets) {
    io_uring_params p{};
    p.flags = flags;
    p.cq_entries = kCqEntries;
    rc = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    if (rc != -EINVAL) break;
  }
  if (rc < 0) {
    *error = std::string("io_uring_queue_init: ") + strerror(-rc);
    return false;
  }
  ring_ready_ = true;

  // Provided buffers for multishot recv: an idle connection holds none.
  size_t ring_bytes = sizeof(io_uring_buf) * kRecvBuffers;
  void* mem = nullptr;
  if (posix_memalign(&mem, 4096, ring_bytes) != 0) {
    *error = "cannot allocate the provided-buffer ring";
    return false;
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(buf_ring_);
  reg.ring_entries = kRecvBuffers;
  reg.bgid = kRecvBufferGroup;
  rc = io_uring_register_buf_ring(&ring_, &reg, 0);
  if (rc < 0) {
    *error = std::string("io_uring_register_buf_ring (needs Linux 5.19+): ") + strerror(-rc);
    return false;
  }
  void* bufs = mmap(nullptr, size_t{kRecvBuffers} * kRecvBufferBytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (bufs == MAP_FAILED) {
    *error = std::string("mmap receive buffers: ") + strerror(errno);
    return false;
  }
  buf_base_ = static_cast<char*>(bufs);
  for (uint32_t i = 0; i < kRecvBuffers; i++) {
    io_uring_buf_ring_add(buf_ring_, buf_base_ + size_t{i} * kRecvBufferBytes, kRecvBufferBytes,
                          static_cast<unsigned short>(i), io_uring_buf_ring_mask(kRecvBuffers),
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, kRecvBuffers);

  size_t cores = shared_->reactors.size();
  incoming_.resize(cores);
  for (size_t s = 0; s < cores; s++)
    if (s != index_) incoming_[s] = std::make_unique<SpscRing<Connection*>>(kHandoffRingEntries);
  wake_target_.assign(cores, false);
  connections_max_ = static_cast<size_t>(config().connections_max) / cores + 1;
  local_ = shared_->protocol->make_core_local(*this);
  return true;
}

io_uring_sqe* Reactor::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

void Reactor::run() {
  now_ms_ = monotonic_ms();
  arm_accept();
  arm_wake();
  arm_tick();
  for (;;) {
    // Work waiting to resume must not wait for a completion, but must still see those that are
    // ready: with DEFER_TASKRUN they are only posted when we enter the kernel for events.
    int rc = resume_.empty() ? io_uring_submit_and_wait(&ring_, 1)
                             : io_uring_submit_and_get_events(&ring_);
    RM_ASSERT_MSG(rc >= 0 || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY || rc == -ETIME,
                  "io_uring_submit_and_wait failed");
    now_ms_ = monotonic_ms();
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      on_cqe(cqe);
      seen++;
    }
    io_uring_cq_advance(&ring_, seen);
    drain_helper_completions();
    drain_incoming();
    run_resumes();
    if (!shutting_down_ && stopping()) begin_shutdown();
    flush();
    if (shutting_down_ && (shutdown_complete() || now_ms_ >= shutdown_deadline_ms_)) break;
  }
  if (connections_ > 0) {
    RM_LOG(warn, "shutdown_forced").kv("core", index_).kv("connections", connections_);
  }
  // Stop the kernel first: nothing may still point into what is freed below.
  io_uring_queue_exit(&ring_);
  ring_ready_ = false;
  for (TimerList& l : lists_)
    while (l.head) free_connection(l.head);
  for (HelperJob* job : jobs_deferred_) delete job;
  jobs_deferred_.clear();
  for (Connection* c : handoff_waiting_) {
    connections_++;  // free_connection() expects it listed and counted
    c->timeout_class = TimeoutClass::none;
    list_add(*c);
    free_connection(c);
  }
  handoff_waiting_.clear();
}

void Reactor::on_cqe(const io_uring_cqe* cqe) {
  uint64_t data = cqe->user_data;
  void* ptr = reinterpret_cast<void*>(data & ~kTagMask);
  switch (static_cast<Tag>(data & kTagMask)) {
    case kTagAccept: on_accept(cqe->res, cqe->flags & IORING_CQE_F_MORE, false); break;
    case kTagAcceptTls: on_accept(cqe->res, cqe->flags & IORING_CQE_F_MORE, true); break;
    case kTagRecv: on_recv(*static_cast<Connection*>(ptr), cqe); break;
    case kTagSend: on_send(*static_cast<Connection*>(ptr), cqe->res); break;
    case kTagTick:
      on_tick();
      arm_tick();
      break;
    case kTagWake: arm_wake(); break;
    case kTagXcore: break;  // the rings are drained after every batch of completions
    case kTagMsgRing:
      // The message did not reach the other ring (its CQ overflowed?): fall back to its eventfd.
      static_cast<Reactor*>(ptr)->wake();
      break;
    case kTagIgnore: break;
    case kTagOp:
      io_ops_in_flight_--;
      static_cast<IoOp*>(ptr)->on_complete(cqe->res);
      break;
    default: RM_ASSERT_MSG(false, "unknown completion tag");
  }
}

void Reactor::arm_accept() {
  if (listen_fd_ >= 0 && !accept_armed_) {
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, pack(this, kTagAccept));
    accept_armed_ = true;
  }
  if (listen_tls_fd_ >= 0 && !accept_tls_armed_) {
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, listen_tls_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, pack(this, kTagAcceptTls));
    accept_tls_armed_ = true;
  }
}

void Reactor::arm_wake() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, wake_fd_, &wake_buf_, sizeof wake_buf_, 0);
  io_uring_sqe_set_data64(s, pack(nullptr, kTagWake));
}

void Reactor::arm_tick() {
  int64_t ms = shutting_down_ ? kShutdownTickMs : kTickMs;
  tick_ts_.tv_sec = ms / 1000;
  tick_ts_.tv_nsec = (ms % 1000) * 1000000;
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(s, pack(nullptr, kTagTick));
}

void Reactor::arm_recv(Connection& c) {
  RM_ASSERT(!c.recv_armed && c.reactor == this);
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kRecvBufferGroup;
  io_uring_sqe_set_data64(s, pack(&c, kTagRecv));
  c.recv_armed = true;
  c.cancel_sent = false;
  c.ops_in_flight++;
}

void Reactor::cancel(uint64_t user_data) {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, user_data, 0);
  io_uring_sqe_set_data64(s, pack(nullptr, kTagIgnore));
  s->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void Reactor::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);  // EAGAIN only when the counter is saturated
}

void Reactor::release_buffer(uint16_t bid) {
  RM_ASSERT(bid < kRecvBuffers);
  io_uring_buf_ring_add(buf_ring_, buf_base_ + size_t{bid} * kRecvBufferBytes, kRecvBufferBytes,
                        bid, io_uring_buf_ring_mask(kRecvBuffers), 0);
  io_uring_buf_ring_advance(buf_ring_, 1);
}

// ---- Accepting ------------------------------------------------------------------------------

void Reactor::on_accept(int res, bool more, bool tls) {
  if (!more) (tls ? accept_tls_armed_ : accept_armed_) = false;
  if (res < 0) {
    if (res != -ECANCELED)
      RM_LOG(warn, "accept_failed").kv("core", index_).kv("error", strerror(-res));
  } else if (shutting_down_) {
    close(res);
  } else if (connections_ >= connections_max_) {
    static const char kBye[] = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
    (void)!::send(res, kBye, sizeof kBye - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(res);
    RM_LOG(warn, "connection_refused").kv("core", index_).kv("reason", "connections_max");
  } else {
    int one = 1;
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* c = new Connection();
    c->reactor = this;
    c->fd = res;
    c->accepted_core = index_;
    c->id = (uint64_t{index_} << 48) | ++next_conn_id_;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(res, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET6) {
        c->peer = *reinterpret_cast<sockaddr_in6*>(&ss);
      } else {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
        c->peer.sin6_family = AF_INET6;
        c->peer.sin6_port = v4->sin_port;
        c->peer.sin6_addr.s6_addr[10] = 0xff;
        c->peer.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&c->peer.sin6_addr.s6_addr[12], &v4->sin_addr, 4);
      }
    }
    // Connections per address, across all cores.
    uint32_t slot = static_cast<uint32_t>(AuthGuard::ip_hash(&c->peer) % RuntimeShared::kIpSlots);
    uint32_t from_ip = shared_->ip_connections[slot].fetch_add(1, std::memory_order_acq_rel) + 1;
    c->ip_slot = slot;
    if (from_ip > static_cast<uint64_t>(config().connections_per_ip_max)) {
      static const char kBye[] = "* BYE [UNAVAILABLE] Too many connections from your address\r\n";
      if (!tls) (void)!::send(res, kBye, sizeof kBye - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
      RM_LOG(warn, "connection_refused")
          .kv("peer", c->peer_text())
          .kv("reason", "connections_per_ip_max");
      shared_->ip_connections[slot].fetch_sub(1, std::memory_order_acq_rel);
      close(res);
      delete c;
      if ((!accept_armed_ || !accept_tls_armed_) && !shutting_down_) arm_accept();
      return;
    }
    if (tls) {
      WOLFSSL_CTX* ctx = shared_->tls_ctx.load(std::memory_order_acquire);
      if (ctx) c->tls = std::make_unique<TlsStream>(ctx);
      if (!c->tls || !c->tls->valid()) {
        RM_LOG(error, "tls_session_failed").kv("core", index_).kv("peer", c->peer_text());
        shared_->ip_connections[slot].fetch_sub(1, std::memory_order_acq_rel);
        close(res);
        delete c;
        if (!accept_tls_armed_ && !shutting_down_) arm_accept();
        return;
      }
    }
    connections_++;
    c->timeout_class = TimeoutClass::preauth;
    list_add(*c);
    RM_LOG(debug, "accept")
        .kv("core", index_)
        .kv("conn", c->id)
        .kv("peer", c->peer_text())
        .kv("tls", tls ? "yes" : "no");
    shared_->protocol->on_accept(*c);
    settle(*c);
  }
  if ((!accept_armed_ || !accept_tls_armed_) && !shutting_down_) arm_accept();
}

void Reactor::close_listener() {
  for (int* fd : {&listen_fd_, &listen_tls_fd_}) {
    if (*fd < 0) continue;
    bool tls = fd == &listen_tls_fd_;
    if (tls ? accept_tls_armed_ : accept_armed_)
      cancel(pack(this, tls ? kTagAcceptTls : kTagAccept));
    // The cancel holds its own reference to the file; closing our descriptor now stops the port
    // from taking new connections once every reactor has done the same.
    io_uring_sqe* s = sqe();
    io_uring_prep_close(s, *fd);
    io_uring_sqe_set_data64(s, pack(nullptr, kTagIgnore));
    s->flags |= IOSQE_CQE_SKIP_SUCCESS;
    *fd = -1;
  }
}

// ---- Input ----------------------------------------------------------------------------------

void Reactor::on_recv(Connection& c, const io_uring_cqe* cqe) {
  bool more = cqe->flags & IORING_CQE_F_MORE;
  if (!more) {
    c.recv_armed = false;
    c.ops_in_flight--;
  }
  int res = cqe->res;
  if (cqe->flags & IORING_CQE_F_BUFFER) {
    auto bid = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (res > 0 && !c.closing && !c.close_now) {
      std::string_view data(buf_base_ + size_t{bid} * kRecvBufferBytes, static_cast<size_t>(res));
      touch(c);
      if (c.tls)
        tls_input(c, data);
      else
        deliver_input(c, data);
    }
    release_buffer(bid);
  }
  if (res == 0) {
    c.peer_closed = true;  // answer what it sent (settle() closes once that is done)
  } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
    c.close_now = true;
  }
  if (c.input.size() > input_limit(c) && !c.read_stopped) {
    // The session is not keeping up (or waits for a job): stop reading and let TCP push back.
    c.read_stopped = true;
    if (c.recv_armed && !c.cancel_sent) {
      cancel(pack(&c, kTagRecv));
      c.cancel_sent = true;
    }
  }
  settle(c);
}

void Reactor::deliver_input(Connection& c, std::string_view data) {
  if (c.input.empty() && !c.input_paused && !c.handoff_pending &&
      c.output_bytes() <= static_cast<size_t>(config().output_bytes_max)) {
    // The common case: whole commands straight from the buffer, no copy.
    size_t used = c.session->on_input(c, data);
    RM_ASSERT(used <= data.size());
    if (used < data.size()) c.input.assign(data.substr(used));
  } else {
    c.input.append(data);
    process_input(c);
  }
}

void Reactor::tls_input(Connection& c, std::string_view wire) {
  TlsStream& t = *c.tls;
  t.feed(wire);
  if (!t.established()) {
    int rc = t.handshake();
    if (!t.wire_out.empty()) mark_dirty(c);
    if (rc < 0) {
      RM_LOG(info, "tls_handshake_failed")
          .kv("core", index_)
          .kv("conn", c.id)
          .kv("peer", c.peer_text())
          .kv("error", t.error());
      c.close_now = true;
      return;
    }
    if (rc == 0) return;
    RM_LOG(debug, "tls_established")
        .kv("conn", c.id)
        .kv("version", t.version())
        .kv("cipher", t.cipher());
    if (!c.out.empty()) mark_dirty(c);  // the greeting waited for the handshake
  }
  char buf[16384];
  for (;;) {
    int n = t.read(buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (t.peer_closed()) {
        c.peer_closed = true;
      } else {
        RM_LOG(info, "tls_error").kv("conn", c.id).kv("peer", c.peer_text()).kv("error", t.error());
        c.close_now = true;
      }
      break;
    }
    deliver_input(c, std::string_view(buf, static_cast<size_t>(n)));
    // STARTTLS cannot come over TLS, and a session that closed takes nothing more.
    if (c.close_now || c.closing || !c.tls) break;
  }
  if (c.tls && !c.tls->wire_out.empty()) mark_dirty(c);  // alerts, session tickets, key updates
}

size_t Reactor::input_limit(const Connection& c) const {
  size_t base = static_cast<size_t>(config().pending_input_bytes_max);
  return c.session ? base + c.session->input_reserve() : base;
}

void Reactor::process_input(Connection& c) {
  if (c.input.empty() || c.input_paused || c.handoff_pending || c.closing || c.close_now) return;
  if (c.output_bytes() > static_cast<size_t>(config().output_bytes_max)) return;
  size_t used = c.session->on_input(c, c.input);
  RM_ASSERT(used <= c.input.size());
  c.input.erase(0, used);
  if (c.input.empty()) std::string().swap(c.input);  // an idle connection holds no buffer
  // Reading resumes below the limit. (Not only below half of it: what is left may be the start
  // of a command whose literal the session reserved room for, which cannot shrink until more of
  // it arrives; waiting for half the limit stalled pipelined APPENDs of 150-250 KB for good.)
  if (c.read_stopped && c.input.size() < input_limit(c)) c.read_stopped = false;
}

// ---- Output ---------------------------------------------------------------------------------

void Reactor::resume_soon(Connection& c) {
  RM_ASSERT(c.reactor == this);
  if (c.resume_pending) return;
  c.resume_pending = true;
  c.ops_in_flight++;  // not freed while listed
  resume_.push_back(&c);
}

void Reactor::run_resumes() {
  if (resume_.empty()) return;
  resume_batch_.swap(resume_);  // what resumes now may ask to resume again next turn
  for (Connection* c : resume_batch_) {
    c->resume_pending = false;
    c->ops_in_flight--;
    if (c->session && !c->close_now && !c->closing) c->session->on_resume(*c);
    if (c->sendable()) mark_dirty(*c);
    process_input(*c);  // the input the slices held back
    settle(*c);
  }
  resume_batch_.clear();
}

void Reactor::mark_dirty(Connection& c) {
  RM_ASSERT(c.reactor == this);
  if (c.dirty) return;
  c.dirty = true;
  dirty_.push_back(&c);
}

void Reactor::send(Connection& c) {
  RM_ASSERT(!c.send_in_flight && c.sendable());
  OutQueue* q = &c.out;
  if (c.tls && c.tls->plain_first == 0) {
    // Encrypt what the session queued (only once the handshake is done), send the ciphertext.
    if (c.tls->established() && !c.out.empty()) {
      iovec iov[16];
      while (!c.out.empty()) {
        int n = c.out.fill(iov, 16);
        size_t taken = 0;
        bool ok = true;
        for (int i = 0; i < n && ok; i++) {
          ok = c.tls->write(std::string_view(static_cast<char*>(iov[i].iov_base), iov[i].iov_len));
          taken += iov[i].iov_len;
        }
        c.out.consume(taken);
        if (!ok) {
          RM_LOG(info, "tls_error").kv("conn", c.id).kv("error", c.tls->error());
          c.close_now = true;
          return;
        }
      }
    }
    q = &c.tls->wire_out;
    if (q->empty()) return;
  }
  SendOp* op;
  if (send_ops_free_.empty()) {
    op = new SendOp();
  } else {
    op = send_ops_free_.back().release();
    send_ops_free_.pop_back();
  }
  memset(&op->msg, 0, sizeof op->msg);
  op->msg.msg_iov = op->iov;
  op->msg.msg_iovlen = static_cast<size_t>(q->fill(op->iov, 16));
  op->queue = q;
  io_uring_sqe* s = sqe();
  io_uring_prep_sendmsg(s, c.fd, &op->msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, pack(&c, kTagSend));
  c.send_op = op;
  c.send_in_flight = true;
  c.ops_in_flight++;
}

void Reactor::on_send(Connection& c, int res) {
  c.send_in_flight = false;
  c.send_cancel_sent = false;
  c.ops_in_flight--;
  auto* op = static_cast<SendOp*>(c.send_op);
  c.send_op = nullptr;
  OutQueue* q = op->queue;
  if (send_ops_free_.size() < 64)
    send_ops_free_.emplace_back(op);
  else
    delete op;
  if (res > 0) {
    q->consume(static_cast<size_t>(res));
    if (q == &c.out && c.tls && c.tls->plain_first > 0)
      c.tls->plain_first -= std::min(c.tls->plain_first, static_cast<size_t>(res));
  } else if (res != -EAGAIN && res != -EINTR) {
    c.close_now = true;  // the peer is gone (EPIPE, ECONNRESET) or we cancelled it
  }
  if (c.session && !c.close_now && !c.closing) c.session->on_writable(c);
  if (c.sendable()) mark_dirty(c);
  process_input(c);  // output may have been what held input back
  settle(c);
}

void Reactor::submit_fdatasync(int fd, IoOp* op) {
  io_uring_sqe* s = sqe();
  io_uring_prep_fsync(s, fd, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(s, pack(op, kTagOp));
  io_ops_in_flight_++;
}

void Reactor::submit_fsync(int fd, IoOp* op) {
  io_uring_sqe* s = sqe();
  io_uring_prep_fsync(s, fd, 0);
  io_uring_sqe_set_data64(s, pack(op, kTagOp));
  io_ops_in_flight_++;
}

void Reactor::submit_timeout(__kernel_timespec* ts, IoOp* op) {
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, ts, 0, 0);
  io_uring_sqe_set_data64(s, pack(op, kTagOp));
  io_ops_in_flight_++;
}

void Reactor::submit_write(int fd, const void* data, uint32_t bytes, uint64_t offset, IoOp* op) {
  io_uring_sqe* s = sqe();
  io_uring_prep_write(s, fd, data, bytes, offset);
  io_uring_sqe_set_data64(s, pack(op, kTagOp));
  io_ops_in_flight_++;
}

void Reactor::flush() {
  shared_->protocol->on_flush(*this);
  // settle() may append to dirty_ (a handoff waiting for its output): index, don't iterate.
  for (size_t i = 0; i < dirty_.size(); i++) {
    Connection* c = dirty_[i];
    c->dirty = false;
    if (!c->close_now && !c->send_in_flight && c->sendable()) send(*c);
    settle(*c);
  }
  dirty_.clear();
  while (!jobs_deferred_.empty() && submit_job(jobs_deferred_.front())) jobs_deferred_.pop_front();
  if (!handoff_waiting_.empty()) {
    std::vector<Connection*> waiting;
    waiting.swap(handoff_waiting_);
    for (Connection* c : waiting)
      if (!push_handoff(*c)) handoff_waiting_.push_back(c);
  }
  for (size_t t = 0; t < wake_target_.size(); t++) {
    if (!wake_target_[t]) continue;
    wake_target_[t] = false;
    Reactor* target = shared_->reactors[t];
    if (shared_->have_msg_ring) {
      io_uring_sqe* s = sqe();
      io_uring_prep_msg_ring(s, target->ring_.ring_fd, 0, pack(nullptr, kTagXcore), 0);
      io_uring_sqe_set_data64(s, pack(target, kTagMsgRing));
      s->flags |= IOSQE_CQE_SKIP_SUCCESS;
    } else {
      target->wake();
    }
  }
}

// ---- Connection life ------------------------------------------------------------------------

void Reactor::settle(Connection& c) {
  if (c.dirty) return;  // flush() settles it after sending
  if (c.peer_closed && !c.closing && !c.input_paused && !c.handoff_pending &&
      c.output_bytes() <= static_cast<size_t>(config().output_bytes_max)) {
    // Nothing holds the input back, so what is left of it is an incomplete command that can
    // never complete: the client's last word has been answered.
    c.closing = true;
  }
  if (c.close_now || c.closing) {
    settle_close(c);
  } else if (c.handoff_pending) {
    settle_handoff(c);
  } else if (!c.recv_armed && !c.read_stopped && !c.peer_closed) {
    arm_recv(c);
  }
}

void Reactor::settle_close(Connection& c) {
  if (!c.closing_notified) {
    c.closing_notified = true;
    c.session->on_closing(c);
  }
  if (c.closing && !c.close_now && c.tls && c.tls->established() && !c.tls_shutdown_sent) {
    // close_notify after the last words, so the client sees a clean end of the stream.
    c.tls_shutdown_sent = true;
    if (!c.send_in_flight && c.sendable()) send(c);  // encrypts what is queued first
    c.tls->shutdown();
    mark_dirty(c);
    return;
  }
  if (c.closing && !c.close_now && (c.send_in_flight || c.sendable())) return;  // flushing
  if (c.timeout_class != TimeoutClass::none) {
    list_remove(c);
    c.timeout_class = TimeoutClass::none;
    list_add(c);
  }
  if (c.recv_armed && !c.cancel_sent) {
    cancel(pack(&c, kTagRecv));
    c.cancel_sent = true;
  }
  if (c.send_in_flight && !c.send_cancel_sent) {
    cancel(pack(&c, kTagSend));  // a client that stopped reading must not hold us up
    c.send_cancel_sent = true;
  }
  if (c.ops_in_flight == 0) free_connection(&c);
}

void Reactor::free_connection(Connection* c) {
  list_remove(*c);
  connections_--;
  RM_LOG(debug, "close").kv("core", index_).kv("conn", c->id);
  if (c->fd >= 0) close(c->fd);  // a socket without SO_LINGER: close() does not block
  if (c->ip_slot != UINT32_MAX)
    shared_->ip_connections[c->ip_slot].fetch_sub(1, std::memory_order_acq_rel);
  delete static_cast<SendOp*>(c->send_op);
  delete c;
}

bool Reactor::handoff(Connection& c, uint32_t target) {
  RM_ASSERT(target < shared_->reactors.size() && target != index_);
  if (stopping()) return false;
  c.handoff_pending = true;
  c.handoff_target = target;
  return true;
}

void Reactor::settle_handoff(Connection& c) {
  if (c.recv_armed) {
    if (!c.cancel_sent) {
      cancel(pack(&c, kTagRecv));
      c.cancel_sent = true;
    }
    return;
  }
  if (c.send_in_flight || c.ops_in_flight > 0) return;
  if (c.sendable()) {
    mark_dirty(c);
    return;
  }
  // Nothing of ours points at it any more: it can move.
  list_remove(c);
  connections_--;
  if (!push_handoff(c)) handoff_waiting_.push_back(&c);
}

// REQUIRES: c is in no list and not counted in connections_.
bool Reactor::push_handoff(Connection& c) {
  // Count first, then look at `stopping`: a target that saw zero handoffs in flight after the
  // stop flag was raised can never receive one (see shutdown_complete()).
  shared_->handoffs_in_flight.fetch_add(1, std::memory_order_seq_cst);
  if (shared_->stopping.load(std::memory_order_seq_cst)) {
    shared_->handoffs_in_flight.fetch_sub(1, std::memory_order_seq_cst);
    c.handoff_pending = false;
    connections_++;
    list_add(c);
    if (shutting_down_) shutdown_idle_sessions();
    return true;
  }
  // Once pushed, the connection belongs to the target, which may adopt, close and free it at
  // once: nothing of it may be read after the push.
  const uint32_t to = c.handoff_target;
  const uint64_t id = c.id;
  Reactor* target = shared_->reactors[to];
  if (!target->incoming_[index_]->push(&c)) {
    shared_->handoffs_in_flight.fetch_sub(1, std::memory_order_seq_cst);
    return false;  // full: flush() tries again next tick
  }
  RM_LOG(debug, "handoff").kv("conn", id).kv("from", index_).kv("to", to);
  wake_target_[to] = true;
  return true;
}

void Reactor::drain_incoming() {
  for (auto& ring : incoming_) {
    if (!ring) continue;
    Connection* c = nullptr;
    while (ring->pop(&c)) {
      adopt(c);
      shared_->handoffs_in_flight.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
}

void Reactor::adopt(Connection* c) {
  // After this line only this thread touches *c.
  c->reactor = this;
  c->handoff_pending = false;
  c->dirty = false;
  connections_++;
  list_add(*c);
  c->session->on_adopted(*c);
  if (shutting_down_ && !c->closing) {
    c->shutdown_done = true;
    c->session->on_shutdown(*c);
    c->closing = true;
  }
  process_input(*c);
  settle(*c);
}

// ---- Helper pool ----------------------------------------------------------------------------

void Reactor::hold(Connection& c) {
  RM_ASSERT(c.reactor == this);
  c.ops_in_flight++;
}

void Reactor::release(Connection& c) {
  RM_ASSERT(c.reactor == this && c.ops_in_flight > 0);
  c.ops_in_flight--;
  if (!c.input_paused) process_input(c);  // pipelined commands behind the wait
  settle(c);
}

HelperJob* Reactor::offload(Connection& c, std::function<void()> work,
                            std::function<void(bool)> done) {
  auto* job = new HelperJob();
  job->origin = this;
  job->work = std::move(work);
  Connection* conn = &c;
  job->done = [this, conn, done = std::move(done)](bool) {
    done(conn->close_now || conn->closing);
    release(*conn);
  };
  hold(c);
  // A full pool defers the job instead of refusing the login: a storm of logins after a restart
  // is absorbed at the pool's pace. Each connection has at most one job, so this is bounded by
  // the connection limit.
  if (!jobs_deferred_.empty() || !submit_job(job)) jobs_deferred_.push_back(job);
  return job;
}

void Reactor::run_on_helper(std::function<void()> work, std::function<void()> done) {
  auto* job = new HelperJob();
  job->origin = this;
  job->work = std::move(work);
  job->done = [this, done = std::move(done)](bool) {
    tasks_in_flight_--;
    done();
  };
  tasks_in_flight_++;
  if (!jobs_deferred_.empty() || !submit_job(job)) jobs_deferred_.push_back(job);
}

bool Reactor::submit_job(HelperJob* job) {
  if (jobs_in_flight_ >= HelperPool::kJobsMax || !shared_->helpers->submit(job)) return false;
  jobs_in_flight_++;
  return true;
}

void Reactor::complete_helper_job(HelperJob* job) {
  RM_ASSERT_MSG(helper_done_.push(job), "helper completion queue overflow");
  wake();
}

void Reactor::drain_helper_completions() {
  HelperJob* job = nullptr;
  while (helper_done_.pop(&job)) {
    jobs_in_flight_--;
    job->done(false);
    delete job;
  }
}

// ---- Timers ---------------------------------------------------------------------------------

void Reactor::list_add(Connection& c) {
  TimerList& l = lists_[static_cast<int>(c.timeout_class)];
  int64_t timeout_s = c.timeout_class == TimeoutClass::preauth ? config().preauth_timeout_s
                                                               : config().idle_timeout_s;
  c.deadline_ms = now_ms_ + static_cast<uint64_t>(timeout_s) * 1000;
  c.prev = l.tail;
  c.next = nullptr;
  if (l.tail)
    l.tail->next = &c;
  else
    l.head = &c;
  l.tail = &c;
}

void Reactor::list_remove(Connection& c) {
  TimerList& l = lists_[static_cast<int>(c.timeout_class)];
  if (c.prev)
    c.prev->next = c.next;
  else
    l.head = c.next;
  if (c.next)
    c.next->prev = c.prev;
  else
    l.tail = c.prev;
  c.prev = c.next = nullptr;
}

// Activity resets the idle timer; the pre-auth timer runs from the accept, whatever the client
// sends, so a slow trickle cannot hold a connection open.
void Reactor::touch(Connection& c) {
  if (c.timeout_class != TimeoutClass::idle || c.handoff_pending) return;
  list_remove(c);
  list_add(c);
}

void Reactor::set_timeout_class(Connection& c, TimeoutClass tc) {
  RM_ASSERT(c.reactor == this);
  if (c.timeout_class == tc) return;
  list_remove(c);
  c.timeout_class = tc;
  list_add(c);
}

void Reactor::on_tick() {
  for (TimeoutClass tc : {TimeoutClass::preauth, TimeoutClass::idle}) {
    TimerList& l = lists_[static_cast<int>(tc)];
    while (l.head && l.head->deadline_ms <= now_ms_) {
      Connection& c = *l.head;
      set_timeout_class(c, TimeoutClass::none);
      RM_LOG(info, "timeout")
          .kv("core", index_)
          .kv("conn", c.id)
          .kv("kind", tc == TimeoutClass::preauth ? "preauth" : "idle");
      c.session->on_timeout(c);
      c.closing = true;
      mark_dirty(c);
    }
  }
  if (shutting_down_) shutdown_idle_sessions();
}

// ---- Shutdown -------------------------------------------------------------------------------

void Reactor::begin_shutdown() {
  shutting_down_ = true;
  shutdown_deadline_ms_ = now_ms_ + static_cast<uint64_t>(config().shutdown_timeout_ms);
  close_listener();
  cancel(pack(nullptr, kTagTick));  // re-armed at the shutdown pace
  shutdown_idle_sessions();
}

// Says BYE to every session with no command in flight; busy ones are asked again each tick.
void Reactor::shutdown_idle_sessions() {
  for (TimeoutClass tc : {TimeoutClass::preauth, TimeoutClass::idle}) {
    Connection* c = lists_[static_cast<int>(tc)].head;
    while (c) {
      Connection* next = c->next;
      if (!c->shutdown_done && !c->closing && !c->handoff_pending && !c->session->busy()) {
        c->shutdown_done = true;
        c->session->on_shutdown(*c);
        c->closing = true;
        mark_dirty(*c);
      }
      c = next;
    }
  }
}

bool Reactor::shutdown_complete() const {
  if (connections_ > 0 || !handoff_waiting_.empty() || io_ops_in_flight_ > 0 ||
      tasks_in_flight_ > 0)
    return false;
  if (shared_->handoffs_in_flight.load(std::memory_order_seq_cst) > 0) return false;
  for (const auto& ring : incoming_)
    if (ring && !ring->empty()) return false;
  return true;
}

}  // namespace ringmail
