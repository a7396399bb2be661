#include "protocol/imap_core.h"

#include <algorithm>

#include "core/assert.h"
#include "core/log.h"
#include "protocol/session.h"

namespace ringmail {
namespace {

constexpr uint64_t kCheckpointLogBytes = 1 << 20;  // logs longer than this are folded at open
constexpr uint64_t kFtsMergeScanMs = 100;          // how often a core looks for an index merge due

void erase_ref(std::vector<SessionRef>* v, const ImapSession* s) {
  v->erase(
      std::remove_if(v->begin(), v->end(), [s](const SessionRef& r) { return r.session == s; }),
      v->end());
}

}  // namespace

ImapCore::~ImapCore() {
  // The reactor has stopped: what the full-text indexes hold in memory goes to disk, so the next
  // start need not index those messages again (nothing is lost either way: SEARCH scans what the
  // index does not cover).
  for (auto& [name, u] : users_) {
    if (!u->mail || u->compacting || u->fts_merging || !u->failed.is_ok()) continue;
    Status s = u->mail->fts_flush();
    if (!s.is_ok()) RM_LOG(warn, "fts_failed").kv("user", name).kv("error", s.message());
  }
}

void ImapCore::attach(Connection& c, ImapSession* s, const std::string& user) {
  auto it = users_.find(user);
  if (it != users_.end() && !it->second->loading && !it->second->compacting) {
    OpenUser* u = it->second.get();
    if (u->in_idle_list) {
      idle_.erase(std::find(idle_.begin(), idle_.end(), u));
      u->in_idle_list = false;
    }
    u->sessions.push_back({&c, s});
    s->on_mail_ready(c, u, u->failed);
    return;
  }
  reactor_.hold(c);
  c.input_paused = true;
  if (it != users_.end()) {
    it->second->load_waiters.push_back({&c, s});
    return;
  }
  auto owned = std::make_unique<OpenUser>();
  OpenUser* u = owned.get();
  u->name = user;
  u->loading = true;
  u->op.user = u;
  u->op.core = this;
  u->load_waiters.push_back({&c, s});
  users_.emplace(user, std::move(owned));

  struct Job {
    std::string dir;
    std::unique_ptr<UserMail> mail;
    UserMail::OpenReport report;
    Status status;
  };
  auto job = std::make_shared<Job>();
  job->dir = store.user_dir(user);
  const auto segment_bytes = static_cast<uint64_t>(reactor_.config().segment_bytes_max);
  const bool fts_on = reactor_.config().fts_index != 0;
  const auto fts_batch = static_cast<uint32_t>(reactor_.config().fts_batch_docs);
  // Opening reads (and may repair) files: it runs on the helper pool, never here.
  auto work = [job, segment_bytes, fts_on, fts_batch] {
    job->status = UserMail::open(Env::posix(), job->dir, &job->mail, &job->report);
    if (job->status.is_ok()) job->mail->set_segment_bytes_max(segment_bytes);
    if (job->status.is_ok()) job->mail->set_fts(fts_on, fts_batch, /*background_merges=*/true);
    if (job->status.is_ok()) job->status = job->mail->load_all(kCheckpointLogBytes);
  };
  auto done = [this, u, job](bool) {
    if (job->report.segment_torn_bytes > 0 || !job->report.segment_damage.empty()) {
      RM_LOG(warn, "mail_repaired")
          .kv("user", u->name)
          .kv("torn_bytes", job->report.segment_torn_bytes)
          .kv("damage", job->report.segment_damage);
    }
    loaded(u, std::move(job->mail), job->status);
  };
  reactor_.offload(c, std::move(work), std::move(done));
}

void ImapCore::loaded(OpenUser* u, std::unique_ptr<UserMail> mail, const Status& s) {
  u->loading = false;
  u->mail = std::move(mail);
  // Mailbox-list changes join the group commit instead of fsyncing on this thread.
  if (u->mail) u->mail->set_deferred_metadata(true);
  if (!s.is_ok()) {
    RM_LOG(error, "mail_open_failed").kv("user", u->name).kv("error", s.message());
    u->failed = s;
  }
  std::vector<SessionRef> waiters;
  waiters.swap(u->load_waiters);
  for (const SessionRef& w : waiters) {
    w.conn->input_paused = false;
    if (!w.conn->closing && !w.conn->close_now) {
      u->sessions.push_back(w);
      w.session->on_mail_ready(*w.conn, u, u->failed);
    }
  }
  // Every waiter may already have detached (a failed open answers NO and detaches), which put
  // the user on the idle list: listed twice, it was freed at the first eviction and used after.
  if (u->sessions.empty() && !u->in_idle_list) {
    u->idle_since_ms = reactor_.now_ms();
    u->in_idle_list = true;
    idle_.push_back(u);
  }
  for (const SessionRef& w : waiters) reactor_.release(*w.conn);
}

void ImapCore::detach(Connection& /*c*/, ImapSession* s, OpenUser* u) {
  erase_ref(&u->sessions, s);
  erase_ref(&u->load_waiters, s);
  if (u->sessions.empty() && u->load_waiters.empty() && !u->in_idle_list && !u->loading) {
    u->idle_since_ms = reactor_.now_ms();
    u->in_idle_list = true;
    idle_.push_back(u);
  }
}

void ImapCore::wait_durable(Connection& c, ImapSession* s, OpenUser* u) {
  if (!u->failed.is_ok() || !u->mail || (!u->mail->needs_sync() && !u->sync_in_flight)) {
    // Nothing to make durable (or nothing can be): answer now. A command that changed nothing
    // while a round is in flight waits for it: what it confirms may be in that round.
    s->on_durable(c, u->failed);
    return;
  }
  reactor_.hold(c);
  c.input_paused = true;
  u->waiting_next.push_back({&c, s});
  if (!u->sync_queued) {
    u->sync_queued = true;
    sync_queue_.push_back(u);
  }
}

void ImapCore::changed(OpenUser* u, uint32_t mailbox) {
  if (mailbox == 0) return;
  if (!u->mail->needs_sync() && !u->sync_in_flight) {
    notify(u, {mailbox});
    return;
  }
  if (std::find(u->changed_next.begin(), u->changed_next.end(), mailbox) == u->changed_next.end())
    u->changed_next.push_back(mailbox);
  if (!u->sync_queued) {
    u->sync_queued = true;
    sync_queue_.push_back(u);
  }
}

void ImapCore::flush() {
  if (!sync_queue_.empty()) {
    std::vector<OpenUser*> queue;
    queue.swap(sync_queue_);
    for (OpenUser* u : queue) {
      u->sync_queued = false;
      if (u->sync_in_flight) continue;  // finish_round() queues it again
      start_round(u);
    }
  }
  if (!idle_.empty()) close_idle();
  if (reactor_.now_ms() - last_fts_merge_scan_ms_ >= kFtsMergeScanMs) {
    last_fts_merge_scan_ms_ = reactor_.now_ms();
    bound_fts_memory();
    if (!fts_merge_running_) start_fts_merge();
  }
}

// Each mailbox writes its in-memory part after fts_batch_docs messages; many open users each
// below that would otherwise hold it all (50 users with 500 new messages each: 200 MB).
void ImapCore::bound_fts_memory() {
  for (int flushed = 0; flushed < 4; flushed++) {  // the work per scan stays bounded
    uint64_t total = 0, largest_bytes = 0;
    OpenUser* largest = nullptr;
    for (auto& [name, owned] : users_) {
      OpenUser* u = owned.get();
      if (!u->mail || u->loading || u->compacting || !u->failed.is_ok()) continue;
      uint64_t bytes = u->mail->fts_memory_bytes();
      total += bytes;
      if (bytes > largest_bytes) largest_bytes = bytes, largest = u;
    }
    if (total <= kFtsMemoryBytesMax || !largest) return;
    Status s = largest->mail->fts_flush();
    if (!s.is_ok()) {
      RM_LOG(warn, "fts_failed").kv("user", largest->name).kv("error", s.message());
      return;
    }
  }
}

// Full-text index merges read and write whole index files: the helper pool runs them while the
// user's sessions go on (queries keep using the input segments until the output is installed).
void ImapCore::start_fts_merge() {
  for (auto& [name, owned] : users_) {
    OpenUser* u = owned.get();
    if (!u->mail || u->loading || u->compacting || !u->failed.is_ok()) continue;
    auto merge = std::make_shared<UserMail::FtsMerge>();
    if (!u->mail->fts_plan_merge(merge.get())) continue;
    u->fts_merging = true;
    fts_merge_running_ = true;
    reactor_.run_on_helper(
        [merge] { FtsIndex::run_merge(merge->job.get()); },
        [this, u, merge] {
          fts_merge_running_ = false;
          u->fts_merging = false;
          Status s = u->mail ? u->mail->fts_finish_merge(*merge) : Status::ok();
          if (!s.is_ok()) RM_LOG(warn, "fts_failed").kv("user", u->name).kv("error", s.message());
        });
    return;
  }
}

void ImapCore::start_round(OpenUser* u) {
  u->waiting_current.swap(u->waiting_next);
  u->waiting_next.clear();
  u->changed_current.swap(u->changed_next);
  u->changed_next.clear();
  u->round_error = 0;
  Status s = u->failed.is_ok() ? u->mail->begin_sync(&u->round) : u->failed;
  if (!s.is_ok()) {
    u->failed = s;
    u->round.fds.clear();
  }
  if (u->round.fds.empty() && u->round.dir_fds.empty()) {
    finish_round(u);
    return;
  }
  u->sync_in_flight = true;
  submit_round(u);
}

void ImapCore::submit_round(OpenUser* u) {
  u->round_pending = static_cast<int>(u->round.fds.size() + u->round.dir_fds.size());
  for (int fd : u->round.fds) reactor_.submit_fdatasync(fd, &u->op);
  for (int fd : u->round.dir_fds) reactor_.submit_fsync(fd, &u->op);
}

void OpenUser::SyncOp::on_complete(int res) {
  if (res < 0 && user->round_error == 0) user->round_error = -res;
  if (--user->round_pending == 0) core->finish_round(user);
}

void ImapCore::finish_round(OpenUser* u) {
  if (u->sync_in_flight) {
    Status s;
    if (u->round.list_stage) {
      s = u->mail->finish_list_stage(u->round, u->round_error);
    } else {
      s = u->mail->finish_sync(u->round, u->round_error);
      if (s.is_ok() && u->round.list_stage) {
        // The mailbox list was renamed into place: its directory is synced before any answer.
        u->round_error = 0;
        submit_round(u);
        return;
      }
    }
    u->sync_in_flight = false;
    if (!s.is_ok() && u->failed.is_ok()) {
      RM_LOG(error, "sync_failed").kv("user", u->name).kv("error", s.message());
      u->failed = s;
    }
  }
  std::vector<SessionRef> waiters;
  waiters.swap(u->waiting_current);
  std::vector<uint32_t> changed;
  changed.swap(u->changed_current);
  for (const SessionRef& w : waiters) {
    w.conn->input_paused = false;
    if (!w.conn->closing && !w.conn->close_now) w.session->on_durable(*w.conn, u->failed);
  }
  if (u->failed.is_ok() && !changed.empty()) notify(u, changed);
  if ((!u->waiting_next.empty() || !u->changed_next.empty() || u->mail->needs_sync()) &&
      !u->sync_queued) {
    u->sync_queued = true;
    sync_queue_.push_back(u);
  }
  for (const SessionRef& w : waiters) reactor_.release(*w.conn);
}

void ImapCore::notify(OpenUser* u, const std::vector<uint32_t>& mailboxes) {
  // A copy: a session told of a change may answer at once and change the list.
  std::vector<SessionRef> sessions = u->sessions;
  for (const SessionRef& r : sessions) r.session->on_mailbox_changed(*r.conn, mailboxes);
}

bool ImapCore::evictable(const OpenUser* u) const {
  return u->sessions.empty() && u->load_waiters.empty() && !u->loading && !u->compacting &&
         !u->fts_merging && !u->sync_in_flight && !u->sync_queued && u->waiting_next.empty() &&
         (!u->mail || !u->mail->needs_sync());
}

void ImapCore::start_compaction(OpenUser* u) {
  struct Job {
    std::unique_ptr<UserMail> mail;
    UserMail::CompactResult result;
    Status status;
  };
  auto job = std::make_shared<Job>();
  job->mail = std::move(u->mail);
  u->compacting = true;
  compaction_running_ = true;
  // Reading segments, copying live records, fsync and unlink all block: the helper pool does
  // it, owning the user's mail meanwhile; a login of this user waits for it like for a load.
  reactor_.run_on_helper(
      [job] { job->status = job->mail->compact(0.25, &job->result); },
      [this, u, job] {
        compaction_running_ = false;
        u->compacting = false;
        u->mail = std::move(job->mail);
        if (!job->status.is_ok()) {
          RM_LOG(warn, "compact_failed").kv("user", u->name).kv("error", job->status.message());
        } else if (job->result.segments_rewritten > 0) {
          RM_LOG(info, "compacted")
              .kv("user", u->name)
              .kv("segments", job->result.segments_rewritten)
              .kv("records_moved", job->result.records_moved)
              .kv("bytes_freed", job->result.bytes_freed);
        }
        if (!u->load_waiters.empty()) {
          if (u->in_idle_list) {
            idle_.erase(std::find(idle_.begin(), idle_.end(), u));
            u->in_idle_list = false;
          }
          loaded(u, std::move(u->mail), u->failed);
        }
      });
}

void ImapCore::close_idle() {
  const Config& cfg = reactor_.config();
  if (!compaction_running_ && reactor_.now_ms() - last_compaction_scan_ms_ >= 1000) {
    last_compaction_scan_ms_ = reactor_.now_ms();
    const auto min = static_cast<uint64_t>(cfg.compact_released_bytes_min);
    for (OpenUser* u : idle_) {
      if (evictable(u) && u->mail && u->failed.is_ok() && u->mail->released_bytes() >= min) {
        start_compaction(u);
        break;
      }
    }
  }
  const uint64_t idle_ms = static_cast<uint64_t>(cfg.open_user_idle_s) * 1000;
  const size_t max = static_cast<size_t>(cfg.open_users_max);
  while (!idle_.empty()) {
    OpenUser* u = idle_.front();
    bool expired = reactor_.now_ms() - u->idle_since_ms >= idle_ms || idle_.size() > max;
    if (!expired || !evictable(u)) break;
    idle_.pop_front();
    if (u->mail && u->failed.is_ok()) {
      // What the index holds in memory goes to disk (or is indexed again at the next search).
      Status s = u->mail->fts_flush();
      if (!s.is_ok()) RM_LOG(warn, "fts_failed").kv("user", u->name).kv("error", s.message());
    }
    users_.erase(u->name);  // closes its files and unmaps its segments
  }
}

}  // namespace ringmail
