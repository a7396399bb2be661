#include "storage/fts.h"

#include <xxhash.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "core/assert.h"
#include "storage/encoding.h"

namespace ringmail {
namespace {

constexpr char kMagic[8] = {'R', 'M', 'F', 'T', 'S', 0, 0, 0};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 64;
constexpr size_t kEntryBytes = 8;
// Posting lists of one segment are addressed by 32-bit offsets: merges stop short of this.
constexpr uint64_t kPostingsBytesMax = uint64_t{1} << 31;
// UIDs one merge spans at most (a bit each while it runs).
constexpr uint64_t kMergeSpanMax = uint64_t{1} << 28;
constexpr size_t kTrailerBytes = 8;
constexpr uint32_t kKeyMask = 0xFFFFFF;
constexpr uint32_t kEncVarint = 0;
constexpr uint32_t kEncBitmap = 1;

uint32_t trigram(const unsigned char* p) {
  return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
}

// The distinct trigrams of `s`, ascending.
void needle_trigrams(std::string_view s, std::vector<uint32_t>* out) {
  out->clear();
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i + 3 <= s.size(); i++) out->push_back(trigram(p + i));
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
}

void put_varint(std::string* s, uint32_t v) {
  while (v >= 0x80) {
    s->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  s->push_back(static_cast<char>(v));
}

size_t varint_size(uint32_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, n++;
  return n;
}

bool parse_name(std::string_view name, uint32_t* lo, uint32_t* hi) {
  if (name.size() != 21 || name.substr(8, 1) != "-" || name.substr(17) != ".fts") return false;
  auto hex = [](std::string_view h, uint32_t* v) {
    *v = 0;
    for (char c : h) {
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      *v = (*v << 4) | static_cast<uint32_t>(d);
    }
    return true;
  };
  return hex(name.substr(0, 8), lo) && hex(name.substr(9, 8), hi);
}

std::string segment_name(uint32_t lo, uint32_t hi) {
  char buf[32];
  snprintf(buf, sizeof buf, "%08" PRIx32 "-%08" PRIx32 ".fts", lo, hi);
  return buf;
}

// Size classes for merging: segments of one class (a factor of four in messages) merge.
int size_class(uint64_t docs) {
  int c = 0;
  while (docs >= 4) docs /= 4, c++;
  return c;
}

}  // namespace

// A mapped segment file whose checksum and structure were checked at open.
struct FtsIndex::Segment {
  std::string name;
  std::unique_ptr<ReadFile> file;
  uint32_t lo = 0, hi = 0, docs = 0, trigrams = 0;
  uint64_t text_bytes = 0;
  const char* table = nullptr;
  const char* postings = nullptr;
  uint64_t postings_bytes = 0;

  uint32_t key(uint32_t i) const { return load<uint32_t>(table + i * kEntryBytes) & kKeyMask; }
  uint32_t enc(uint32_t i) const { return load<uint32_t>(table + i * kEntryBytes) >> 24; }
  uint64_t offset(uint32_t i) const { return load<uint32_t>(table + i * kEntryBytes + 4); }
  // The list's size in bytes: how a query orders its intersections (smallest first).
  uint64_t bytes(uint32_t i) const { return end(i) - offset(i); }
  uint64_t end(uint32_t i) const { return i + 1 < trigrams ? offset(i + 1) : postings_bytes; }

  // The entry of `k`, or -1.
  int64_t find(uint32_t k) const {
    uint32_t a = 0, b = trigrams;
    while (a < b) {
      uint32_t m = a + (b - a) / 2;
      if (key(m) < k)
        a = m + 1;
      else
        b = m;
    }
    return a < trigrams && key(a) == k ? int64_t{a} : int64_t{-1};
  }

  bool bit(uint32_t i, uint32_t uid) const {
    uint32_t b = uid - lo - 1;
    return uid > lo && uid <= hi &&
           (static_cast<unsigned char>(postings[offset(i) + b / 8]) >> (b % 8) & 1) != 0;
  }

  // Appends entry i's UIDs, ascending. Bounds were checked at open; a malformed list still
  // never reads outside the entry.
  void decode(uint32_t i, std::vector<uint32_t>* out) const {
    const auto* p = reinterpret_cast<const unsigned char*>(postings + offset(i));
    const uint64_t n = end(i) - offset(i);
    if (enc(i) == kEncBitmap) {
      for (uint64_t byte = 0; byte < n; byte++) {
        unsigned v = p[byte];
        while (v != 0) {
          int b = __builtin_ctz(v);
          out->push_back(lo + 1 + static_cast<uint32_t>(byte * 8 + b));
          v &= v - 1;
        }
      }
      return;
    }
    uint32_t uid = lo;
    for (uint64_t pos = 0; pos < n;) {
      uint32_t v = 0;
      for (int shift = 0; pos < n && shift < 35; shift += 7) {
        unsigned char c = p[pos++];
        v |= static_cast<uint32_t>(c & 0x7F) << shift;
        if ((c & 0x80) == 0) break;
      }
      if (v == 0 || uid > hi - v) return;  // malformed: stop
      uid += v;
      out->push_back(uid);
    }
  }

  static Status open(Env* env, const std::string& path, const std::string& name,
                     uint32_t uidvalidity, std::shared_ptr<Segment>* out) {
    auto s = std::make_shared<Segment>();
    s->name = name;
    Status st = env->open_read(path, &s->file);
    if (!st.is_ok()) return st;
    std::string_view d = s->file->data();
    if (d.size() < kHeaderBytes + kTrailerBytes || memcmp(d.data(), kMagic, 8) != 0)
      return Status::corrupt(path + ": not an index segment");
    if (load<uint32_t>(d.data() + 8) != kVersion)
      return Status::corrupt(path + ": unknown format version");
    if (XXH3_64bits(d.data(), d.size() - kTrailerBytes) !=
        load<uint64_t>(d.data() + d.size() - kTrailerBytes))
      return Status::corrupt(path + ": checksum mismatch");
    if (load<uint32_t>(d.data() + 12) != uidvalidity)
      return Status::corrupt(path + ": of another UIDVALIDITY");
    s->lo = load<uint32_t>(d.data() + 16);
    s->hi = load<uint32_t>(d.data() + 20);
    s->docs = load<uint32_t>(d.data() + 24);
    s->trigrams = load<uint32_t>(d.data() + 28);
    s->text_bytes = load<uint64_t>(d.data() + 32);
    s->postings_bytes = load<uint64_t>(d.data() + 40);
    uint32_t lo = 0, hi = 0;
    if (!parse_name(name, &lo, &hi) || lo != s->lo || hi != s->hi || s->hi <= s->lo)
      return Status::corrupt(path + ": range does not match the name");
    if (kHeaderBytes + uint64_t{s->trigrams} * kEntryBytes + s->postings_bytes + kTrailerBytes !=
        d.size())
      return Status::corrupt(path + ": sizes do not add up");
    s->table = d.data() + kHeaderBytes;
    s->postings = s->table + uint64_t{s->trigrams} * kEntryBytes;
    const uint64_t bitmap_bytes = (uint64_t{s->hi} - s->lo + 7) / 8;
    for (uint32_t i = 0; i < s->trigrams; i++) {
      if ((i > 0 && s->key(i) <= s->key(i - 1)) || s->offset(i) > s->end(i) ||
          s->end(i) > s->postings_bytes || s->bytes(i) == 0 || s->enc(i) > kEncBitmap ||
          (s->enc(i) == kEncBitmap && s->end(i) - s->offset(i) != bitmap_bytes))
        return Status::corrupt(path + ": bad trigram table");
    }
    if (s->trigrams > 0 && s->offset(0) != 0) return Status::corrupt(path + ": bad trigram table");
    *out = std::move(s);
    return Status::ok();
  }
};

FtsIndex::FtsIndex(Env* env, std::string dir, uint32_t uidvalidity)
    : env_(env), dir_(std::move(dir)), uidvalidity_(uidvalidity) {}
FtsIndex::~FtsIndex() = default;

Status FtsIndex::open(Env* env, const std::string& mailbox_dir, uint32_t uidvalidity,
                      std::unique_ptr<FtsIndex>* out, std::vector<std::string>* dropped) {
  const std::string dir = mailbox_dir + "/" + kDirName;
  if (env->is_symlink(dir)) return Status::corrupt(dir + ": a symbolic link");
  Status st = env->make_dirs(dir);
  if (!st.is_ok()) return st;
  std::vector<std::string> names;
  st = env->list_dir(dir, &names);
  if (!st.is_ok()) return st;
  std::unique_ptr<FtsIndex> idx(new FtsIndex(env, dir, uidvalidity));
  std::vector<std::shared_ptr<Segment>> found;
  for (const std::string& n : names) {
    const std::string path = dir + "/" + n;
    uint32_t lo = 0, hi = 0;
    std::shared_ptr<Segment> seg;
    Status s = parse_name(n, &lo, &hi) ? Segment::open(env, path, n, uidvalidity, &seg)
                                       : Status::corrupt(path + ": not an index segment name");
    if (s.is_ok()) {
      found.push_back(std::move(seg));
      continue;
    }
    if (s.code() == Status::Code::io_error) return s;
    dropped->push_back(s.message());
    env->remove(path);
  }
  // The chain from 0: at each step the segment starting there that reaches furthest (a merge
  // that was cut short leaves its inputs beside its output). Everything else goes.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a->lo != b->lo ? a->lo < b->lo : a->hi > b->hi;
  });
  uint32_t at = 0;
  for (auto& seg : found) {
    if (seg->lo == at) {
      at = seg->hi;
      idx->segments_.push_back(std::move(seg));
      continue;
    }
    const std::string path = dir + "/" + seg->name;
    if (seg->hi > at) dropped->push_back(path + ": not contiguous with the index before it");
    seg.reset();
    env->remove(path);
  }
  idx->covered_ = at;
  idx->mem_lo_ = at;
  *out = std::move(idx);
  return Status::ok();
}

Status FtsIndex::verify(Env* env, const std::string& mailbox_dir, uint32_t uidvalidity,
                        std::vector<std::string>* problems) {
  const std::string dir = mailbox_dir + "/" + kDirName;
  if (!env->exists(dir)) return Status::ok();
  std::vector<std::string> names;
  Status st = env->list_dir(dir, &names);
  if (!st.is_ok()) return st;
  for (const std::string& n : names) {
    if (n.ends_with(".tmp")) continue;  // a write cut short: harmless, removed at open
    std::shared_ptr<Segment> seg;
    uint32_t lo = 0, hi = 0;
    const std::string path = dir + "/" + n;
    Status s = parse_name(n, &lo, &hi) ? Segment::open(env, path, n, uidvalidity, &seg)
                                       : Status::corrupt(path + ": not an index segment name");
    if (!s.is_ok()) problems->push_back(s.message());
  }
  return Status::ok();
}

void FtsIndex::add(uint32_t uid, std::string_view text) {
  RM_ASSERT(uid > covered_);
  // A bit per possible trigram marks those already taken from this text (2 MiB per thread).
  thread_local std::vector<uint64_t> seen(size_t{1} << 18, 0);
  thread_local std::vector<uint32_t> keys;
  keys.clear();
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i + 3 <= text.size(); i++) {
    uint32_t k = trigram(p + i);
    uint64_t& w = seen[k >> 6];
    const uint64_t b = uint64_t{1} << (k & 63);
    if ((w & b) != 0) continue;
    w |= b;
    keys.push_back(k);
  }
  for (uint32_t k : keys) {
    seen[k >> 6] = 0;
    mem_.push_back((uint64_t{k} << 32) | uid);
  }
  covered_ = uid;
  mem_docs_++;
  mem_text_bytes_ += text.size();
}

Status FtsIndex::write_segment(
    Env* env, const std::string& dir, uint32_t uidvalidity, uint32_t lo, uint32_t hi, uint32_t docs,
    uint64_t text_bytes, const std::vector<uint32_t>& keys,
    const std::function<void(uint32_t key, std::vector<uint32_t>*)>& uids,
    std::shared_ptr<Segment>* out) {
  std::string table;
  std::string postings;
  std::vector<uint32_t> list;
  uint32_t trigrams = 0;
  const uint64_t bitmap_bytes = (uint64_t{hi} - lo + 7) / 8;
  for (uint32_t k : keys) {
    list.clear();
    uids(k, &list);
    if (list.empty()) continue;
    uint64_t varint_bytes = 0;
    uint32_t prev = lo;
    for (uint32_t u : list) varint_bytes += varint_size(u - prev), prev = u;
    const uint32_t enc = bitmap_bytes < varint_bytes ? kEncBitmap : kEncVarint;
    put<uint32_t>(&table, k | (enc << 24));
    put<uint32_t>(&table, static_cast<uint32_t>(postings.size()));
    if (enc == kEncBitmap) {
      const size_t base = postings.size();
      postings.resize(base + bitmap_bytes, '\0');
      for (uint32_t u : list)
        postings[base + (u - lo - 1) / 8] |= static_cast<char>(1 << ((u - lo - 1) % 8));
    } else {
      prev = lo;
      for (uint32_t u : list) put_varint(&postings, u - prev), prev = u;
    }
    trigrams++;
  }
  if (postings.size() > UINT32_MAX) return Status::invalid("index segment too large");
  std::string file;
  file.reserve(kHeaderBytes + table.size() + postings.size() + kTrailerBytes);
  file.append(kMagic, 8);
  put<uint32_t>(&file, kVersion);
  put<uint32_t>(&file, uidvalidity);
  put<uint32_t>(&file, lo);
  put<uint32_t>(&file, hi);
  put<uint32_t>(&file, docs);
  put<uint32_t>(&file, trigrams);
  put<uint64_t>(&file, text_bytes);
  put<uint64_t>(&file, postings.size());
  file.resize(kHeaderBytes, '\0');
  file.append(table);
  file.append(postings);
  put<uint64_t>(&file, XXH3_64bits(file.data(), file.size()));
  const std::string name = segment_name(lo, hi);
  // Not synced: the index is derived data, and a file a crash tore fails its checksum.
  Status st = env->write_atomic(dir + "/" + name, file, /*durable=*/false);
  if (!st.is_ok()) return st;
  return Segment::open(env, dir + "/" + name, name, uidvalidity, out);
}

Status FtsIndex::flush(const std::function<bool(uint32_t)>& live) {
  if (mem_docs_ > 0) {
    sort_memory();
    std::vector<uint32_t> keys;
    for (size_t i = 0; i < mem_.size(); i++)
      if (i == 0 || mem_[i] >> 32 != mem_[i - 1] >> 32) keys.push_back(mem_[i] >> 32);
    size_t at = 0;  // write_segment asks for the keys in order
    std::shared_ptr<Segment> seg;
    Status st = write_segment(
        env_, dir_, uidvalidity_, mem_lo_, covered_, mem_docs_, mem_text_bytes_, keys,
        [this, &at](uint32_t k, std::vector<uint32_t>* out) {
          for (; at < mem_.size() && mem_[at] >> 32 == k; at++)
            out->push_back(static_cast<uint32_t>(mem_[at]));
        },
        &seg);
    if (!st.is_ok()) return st;
    segments_.push_back(std::move(seg));
    mem_.clear();
    mem_.shrink_to_fit();
    mem_sorted_ = 0;
    mem_docs_ = 0;
    mem_text_bytes_ = 0;
    mem_lo_ = covered_;
  }
  if (background_merges_) return Status::ok();
  // Here and now: the merges due, one after the other.
  while (std::shared_ptr<MergeJob> job = plan_merge(live)) {
    run_merge(job.get());
    Status st = finish_merge(job.get());
    if (!st.is_ok()) return st;
  }
  return Status::ok();
}

// A merge of four neighbouring segments: planned on the index's thread, run on any, installed
// on the index's thread.
struct FtsIndex::MergeJob {
  Env* env = nullptr;
  std::string dir;
  uint32_t uidvalidity = 0;
  std::vector<std::shared_ptr<Segment>> in;
  std::vector<bool> alive;  // by UID - lo - 1: still in the mailbox when planned
  Status status;
  std::shared_ptr<Segment> out;
};

std::shared_ptr<FtsIndex::MergeJob> FtsIndex::plan_merge(
    const std::function<bool(uint32_t)>& live) {
  if (merging_ || segments_.size() < kMergeFanIn) return nullptr;
  const size_t first = segments_.size() - kMergeFanIn;
  const int cls = size_class(segments_[first]->docs);
  uint64_t postings = 0;
  for (size_t i = first; i < segments_.size(); i++) {
    if (size_class(segments_[i]->docs) != cls) return nullptr;
    postings += segments_[i]->postings_bytes;
  }
  if (postings > kPostingsBytesMax) return nullptr;
  auto job = std::make_shared<MergeJob>();
  job->env = env_;
  job->dir = dir_;
  job->uidvalidity = uidvalidity_;
  job->in.assign(segments_.begin() + static_cast<std::ptrdiff_t>(first), segments_.end());
  // Which UIDs of the range are still there, asked once each (not once per posting).
  const uint32_t lo = job->in.front()->lo;
  const uint64_t span = uint64_t{job->in.back()->hi} - lo;
  if (span > kMergeSpanMax) return nullptr;
  job->alive.resize(span);
  for (uint64_t i = 0; i < span; i++) job->alive[i] = live(lo + 1 + static_cast<uint32_t>(i));
  merging_ = true;
  return job;
}

void FtsIndex::run_merge(MergeJob* job) {
  const auto& in = job->in;
  std::vector<uint32_t> keys;
  uint64_t text_bytes = 0;
  uint64_t docs = 0;  // messages indexed, expunged ones included (stats and size classes only)
  for (const auto& s : in) {
    for (uint32_t i = 0; i < s->trigrams; i++) keys.push_back(s->key(i));
    text_bytes += s->text_bytes;
    docs += s->docs;
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  const uint32_t lo = in.front()->lo;
  std::vector<uint32_t> part;
  job->status = write_segment(
      job->env, job->dir, job->uidvalidity, lo, in.back()->hi, static_cast<uint32_t>(docs),
      text_bytes, keys,
      [&](uint32_t k, std::vector<uint32_t>* out) {
        for (const auto& s : in) {
          int64_t e = s->find(k);
          if (e < 0) continue;
          part.clear();
          s->decode(static_cast<uint32_t>(e), &part);
          for (uint32_t u : part)
            if (job->alive[u - lo - 1]) out->push_back(u);
        }
      },
      &job->out);
  if (!job->status.is_ok()) return;
  // The output is in place: the inputs go (a leftover is dropped at the next open). Their
  // mappings stay valid for queries until finish_merge() swaps them out.
  for (const auto& s : in) job->env->remove(job->dir + "/" + s->name);
}

Status FtsIndex::finish_merge(MergeJob* job) {
  merging_ = false;
  if (!job->status.is_ok()) return job->status;
  auto it = std::find(segments_.begin(), segments_.end(), job->in.front());
  if (it == segments_.end() || segments_.end() - it < static_cast<std::ptrdiff_t>(kMergeFanIn))
    return Status::ok();  // cleared meanwhile
  // Plan and finish both run on this thread, and only flush() appends meanwhile: the inputs are
  // still the four neighbours they were.
  it = segments_.erase(it, it + static_cast<std::ptrdiff_t>(kMergeFanIn));
  segments_.insert(it, std::move(job->out));
  return Status::ok();
}

bool FtsIndex::candidates(std::string_view needle, std::vector<uint32_t>* out) const {
  if (needle.size() < 3) return false;
  std::vector<uint32_t> keys;
  needle_trigrams(needle, &keys);
  std::vector<uint32_t> cur, list, merged;
  std::vector<std::pair<uint64_t, uint32_t>> found;  // (list bytes, entry)
  for (const auto& s : segments_) {
    found.clear();
    for (uint32_t k : keys) {
      int64_t e = s->find(k);
      if (e < 0) break;
      found.emplace_back(s->bytes(static_cast<uint32_t>(e)), static_cast<uint32_t>(e));
    }
    if (found.size() != keys.size()) continue;
    std::sort(found.begin(), found.end());
    cur.clear();
    s->decode(found[0].second, &cur);
    for (size_t f = 1; f < found.size() && !cur.empty(); f++) {
      const uint32_t e = found[f].second;
      if (s->enc(e) == kEncBitmap) {
        cur.erase(std::remove_if(cur.begin(), cur.end(), [&](uint32_t u) { return !s->bit(e, u); }),
                  cur.end());
        continue;
      }
      list.clear();
      s->decode(e, &list);
      merged.clear();
      std::set_intersection(cur.begin(), cur.end(), list.begin(), list.end(),
                            std::back_inserter(merged));
      cur.swap(merged);
    }
    out->insert(out->end(), cur.begin(), cur.end());
  }
  if (mem_docs_ > 0) {
    sort_memory();
    using Range = std::pair<const uint64_t*, const uint64_t*>;
    std::vector<Range> lists;
    for (uint32_t k : keys) {
      auto lo = std::lower_bound(mem_.begin(), mem_.end(), uint64_t{k} << 32);
      auto hi = std::lower_bound(lo, mem_.end(), (uint64_t{k} + 1) << 32);
      if (lo == hi) return true;
      lists.emplace_back(&*lo, &*lo + (hi - lo));
    }
    std::sort(lists.begin(), lists.end(), [](const Range& a, const Range& b) {
      return a.second - a.first < b.second - b.first;
    });
    cur.clear();
    for (const uint64_t* p = lists[0].first; p != lists[0].second; p++)
      cur.push_back(static_cast<uint32_t>(*p));
    for (size_t f = 1; f < lists.size() && !cur.empty(); f++) {
      list.clear();
      for (const uint64_t* p = lists[f].first; p != lists[f].second; p++)
        list.push_back(static_cast<uint32_t>(*p));
      merged.clear();
      std::set_intersection(cur.begin(), cur.end(), list.begin(), list.end(),
                            std::back_inserter(merged));
      cur.swap(merged);
    }
    out->insert(out->end(), cur.begin(), cur.end());
  }
  return true;
}

void FtsIndex::sort_memory() const {
  if (mem_sorted_ == mem_.size()) return;
  // Pairs are (trigram << 32 | UID), appended in UID order: a stable radix sort of the new ones
  // by their 24-bit trigram keeps each trigram's UIDs ascending; then one merge with the rest.
  const auto tail = static_cast<std::ptrdiff_t>(mem_sorted_);
  const size_t n = mem_.size() - mem_sorted_;
  std::vector<uint64_t> tmp(n);
  uint64_t* src = mem_.data() + mem_sorted_;
  uint64_t* dst = tmp.data();
  for (int shift = 32; shift < 56; shift += 8) {
    size_t count[257] = {};
    for (size_t i = 0; i < n; i++) count[((src[i] >> shift) & 0xFF) + 1]++;
    for (int b = 0; b < 256; b++) count[b + 1] += count[b];
    for (size_t i = 0; i < n; i++) dst[count[(src[i] >> shift) & 0xFF]++] = src[i];
    std::swap(src, dst);
  }
  if (src != mem_.data() + mem_sorted_) std::copy(src, src + n, mem_.begin() + tail);
  std::inplace_merge(mem_.begin(), mem_.begin() + tail, mem_.end());
  mem_sorted_ = mem_.size();
}

FtsStats FtsIndex::stats() const {
  FtsStats st;
  for (const auto& s : segments_) {
    st.docs += s->docs;
    st.text_bytes += s->text_bytes;
    st.index_bytes += s->file->data().size();
  }
  st.docs += mem_docs_;
  st.text_bytes += mem_text_bytes_;
  st.segments = static_cast<uint32_t>(segments_.size());
  st.covered_uid = covered_;
  return st;
}

Status FtsIndex::clear() {
  for (auto& s : segments_) {
    const std::string path = dir_ + "/" + s->name;
    s.reset();
    Status st = env_->remove(path);
    if (!st.is_ok()) return st;
  }
  segments_.clear();
  mem_.clear();
  mem_sorted_ = 0;
  mem_docs_ = 0;
  mem_text_bytes_ = 0;
  covered_ = 0;
  mem_lo_ = 0;
  return Status::ok();
}

}  // namespace ringmail
