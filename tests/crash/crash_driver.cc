// The storage side of the crash test (test_storage_crash.py):
//   crash_driver run DIR SEED SECONDS   applies random changes in batches. Each change is
//                                       printed ("OP ...", flushed) before it is made, and "ACK"
//                                       after the sync that ends its batch. The test kills it
//                                       with SIGKILL at a random moment.
//   crash_driver dump DIR               opens the store as after a crash and prints what is there
//                                       ("R mailbox uid flags size seed"), checking every
//                                       message's bytes; "DAMAGE ..." for anything wrong.
//   crash_driver compact DIR            compacts (any garbage at all), printing "DONE" at the end;
//                                       killed at random moments too.
//   crash_driver fsck DIR               runs fsck (no repair) and prints what it found; exit 0
//                                       when there is no damage (notes are allowed).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "storage/fsck.h"
#include "storage/user_mail.h"

namespace ringmail {
namespace {

constexpr uint64_t kTestSegmentBytes = 256 << 10;
constexpr size_t kMessagesSoftMax = 1500;

// A message whose bytes say which seed made it, so dump can check them.
std::string message_for(uint64_t seed, size_t len) {
  std::string m = "Subject: m" + std::to_string(seed) + "\r\n\r\n";
  std::mt19937_64 rng(seed);
  while (m.size() < len) m.push_back(static_cast<char>('a' + rng() % 26));
  return m;
}

uint64_t seed_of(std::string_view m) {
  if (m.substr(0, 10) != "Subject: m") return UINT64_MAX;
  return strtoull(std::string(m.substr(10, 20)).c_str(), nullptr, 10);
}

// Printed and flushed before the change is made: a change the test has not heard of is never
// on disk (a SIGKILL keeps the page cache, so even unsynced writes survive it).
template <typename... Args>
void announce(const char* fmt, Args... args) {
  printf(fmt, args...);
  fflush(stdout);
}

int run(const std::string& dir, uint64_t seed, double seconds) {
  std::unique_ptr<UserMail> um;
  UserMail::OpenReport report;
  Status s = UserMail::open(Env::posix(), dir, &um, &report);
  if (!s.is_ok()) {
    fprintf(stderr, "open: %s\n", s.message().c_str());
    return 2;
  }
  um->set_segment_bytes_max(kTestSegmentBytes);  // many sealed segments for compaction
  uint32_t boxes[2] = {um->find("INBOX")->id, um->find("Archive")->id};
  std::mt19937_64 rng(seed);
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t next_message = seed * 1000000;
  while (std::chrono::steady_clock::now() < end) {
    int ops = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < ops; i++) {
      uint32_t box = boxes[rng() % 2];
      MailboxIndex* idx;
      if (!um->index(box, &idx).is_ok()) return 2;
      int kind = static_cast<int>(rng() % 10);
      // Bounded growth across hundreds of cycles: a big mailbox leans to expunges.
      if (idx->records().size() > kMessagesSoftMax && kind < 4) kind = 9;
      if (idx->records().empty() || kind < 4) {
        uint64_t m = next_message++;
        size_t len = 40 + rng() % (rng() % 8 == 0 ? 100000 : 4000);
        announce("OP A %u %u %zu %llu\n", box, idx->uidnext(), len,
                 static_cast<unsigned long long>(m));
        MessageRecord rec;
        uint32_t uid = idx->uidnext();
        s = um->append(box, message_for(m, len), 1700000000, 0, 0, &rec);
        if (s.is_ok() && rec.uid != uid) s = Status::invalid("append took an unexpected UID");
        if (!s.is_ok()) break;
        continue;
      }
      const MessageRecord rec = idx->records()[rng() % idx->records().size()];
      if (kind < 7) {
        uint32_t flags = static_cast<uint32_t>(rng() % 32);
        announce("OP F %u %u %u\n", box, rec.uid, flags);
        uint64_t modseq;
        s = idx->set_flags(rec.uid, flags, 0, &modseq);
        if (!s.is_ok()) break;
        um->mark_dirty(box);
      } else if (kind < 9) {
        uint32_t to = boxes[rng() % 2];
        MailboxIndex* to_idx;
        if (!um->index(to, &to_idx).is_ok()) return 2;
        uint32_t uid = to_idx->uidnext();
        announce("OP C %u %u %u %u\n", box, rec.uid, to, uid);
        MessageRecord copied;
        s = um->copy(rec, to, rec.flags, 0, &copied);
        if (s.is_ok() && copied.uid != uid) s = Status::invalid("copy took an unexpected UID");
        if (!s.is_ok()) break;
      } else {
        announce("OP X %u %u\n", box, rec.uid);
        s = um->expunge(box, rec.uid);
        if (!s.is_ok()) break;
      }
    }
    if (!s.is_ok()) {
      fprintf(stderr, "change failed: %s\n", s.message().c_str());
      return 2;
    }
    s = um->sync();
    if (!s.is_ok()) {
      fprintf(stderr, "sync: %s\n", s.message().c_str());
      return 2;
    }
    printf("ACK\n");
    fflush(stdout);
  }
  return 0;
}

int dump(const std::string& dir) {
  std::unique_ptr<UserMail> um;
  UserMail::OpenReport report;
  Status s = UserMail::open(Env::posix(), dir, &um, &report);
  if (!s.is_ok()) {
    printf("DAMAGE open: %s\n", s.message().c_str());
    return 1;
  }
  for (const auto& box : um->mailboxes()) {
    MailboxIndex* idx;
    s = um->index(box.id, &idx);
    if (!s.is_ok()) {
      printf("DAMAGE index %u: %s\n", box.id, s.message().c_str());
      continue;
    }
    for (const MessageRecord& r : idx->records()) {
      std::string_view bytes;
      s = um->read(r, true, &bytes);
      uint64_t seed = s.is_ok() ? seed_of(bytes) : UINT64_MAX;
      if (!s.is_ok() || bytes != message_for(seed, r.size)) {
        printf("DAMAGE message %u/%u: %s\n", box.id, r.uid,
               s.is_ok() ? "bytes do not match their seed" : s.message().c_str());
        continue;
      }
      printf("R %u %u %u %u %llu\n", box.id, r.uid, r.flags, r.size,
             static_cast<unsigned long long>(seed));
    }
  }
  printf("USAGE %llu %llu\n", static_cast<unsigned long long>(um->usage().messages),
         static_cast<unsigned long long>(um->usage().bytes));
  return 0;
}

int compact(const std::string& dir) {
  std::unique_ptr<UserMail> um;
  UserMail::OpenReport report;
  Status s = UserMail::open(Env::posix(), dir, &um, &report);
  if (s.is_ok()) {
    um->set_segment_bytes_max(kTestSegmentBytes);
    UserMail::CompactResult r;
    s = um->compact(0.0, &r);
    if (s.is_ok())
      printf("DONE %llu segments\n", static_cast<unsigned long long>(r.segments_rewritten));
  }
  if (!s.is_ok()) fprintf(stderr, "compact: %s\n", s.message().c_str());
  return s.is_ok() ? 0 : 2;
}

int fsck(const std::string& dir) {
  FsckResult r;
  Status s = fsck_user(Env::posix(), dir, false, &r);
  if (!s.is_ok()) {
    printf("DAMAGE fsck: %s\n", s.message().c_str());
    return 1;
  }
  for (const std::string& d : r.damage) printf("DAMAGE %s\n", d.c_str());
  for (const std::string& n : r.notes) printf("NOTE %s\n", n.c_str());
  printf("CHECKED %llu messages\n", static_cast<unsigned long long>(r.messages));
  return r.damage.empty() ? 0 : 1;
}

}  // namespace
}  // namespace ringmail

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "run") == 0)
    return ringmail::run(argv[2], strtoull(argv[3], nullptr, 10), atof(argv[4]));
  if (argc == 3 && strcmp(argv[1], "dump") == 0) return ringmail::dump(argv[2]);
  if (argc == 3 && strcmp(argv[1], "fsck") == 0) return ringmail::fsck(argv[2]);
  if (argc == 3 && strcmp(argv[1], "compact") == 0) return ringmail::compact(argv[2]);
  fprintf(stderr, "usage: crash_driver run DIR SEED SECONDS | dump DIR | fsck DIR | compact DIR\n");
  return 2;
}
