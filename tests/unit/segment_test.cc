#include "storage/segment.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <vector>

#include "storage/fault_env.h"
#include "tests/unit/temp_dir.h"

namespace ringmail {
namespace {

struct Found {
  uint32_t offset;
  RecordHeader header;
  std::string body;
};

std::vector<Found> scan_all(const std::string& image, uint32_t id, SegmentScan* scan) {
  std::vector<Found> found;
  Status s = scan_segment(
      image, id,
      [&](uint32_t off, const RecordHeader& h, const RecordPayload& p) {
        found.push_back({off, h, std::string(p.body)});
      },
      scan);
  EXPECT_TRUE(s.is_ok()) << s.message();
  return found;
}

TEST(Segment, RecordsRoundTripWithTheirMetadata) {
  TempDir dir;
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 7, &w, &scan).is_ok());
  EXPECT_EQ(scan.valid_bytes, kSegmentHeaderBytes);
  BlobRef a, b, c;
  ASSERT_TRUE(w->append(3, 1, 1700000000, "Subject: a\r\n\r\nhello\r\n", "", &a).is_ok());
  ASSERT_TRUE(w->append(3, 2, 1700000001, "", "", &b).is_ok());
  ASSERT_TRUE(w->append(4, 9, -5, std::string(10000, 'x'), "", &c).is_ok());
  ASSERT_TRUE(w->sync().is_ok());
  EXPECT_EQ(a.segment, 7u);
  EXPECT_EQ(a.offset, kSegmentHeaderBytes);
  EXPECT_EQ(b.offset, a.offset + 40 + 24);  // 21 body bytes padded to 24
  EXPECT_EQ(c.offset, b.offset + 40);
  EXPECT_EQ(w->size() % 8, 0u);

  std::string image = read_file(dir.path() + "/" + segment_file_name(7));
  auto found = scan_all(image, 7, &scan);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(scan.valid_bytes, image.size());
  EXPECT_EQ(scan.torn_bytes, 0u);
  EXPECT_EQ(found[0].body, "Subject: a\r\n\r\nhello\r\n");
  EXPECT_EQ(found[0].header.mailbox, 3u);
  EXPECT_EQ(found[0].header.uid, 1u);
  EXPECT_EQ(found[0].header.internal_date, 1700000000);
  EXPECT_EQ(found[1].body, "");
  EXPECT_EQ(found[2].header.internal_date, -5);
  RecordHeader h;
  RecordPayload p;
  ASSERT_TRUE(read_record(image, c.offset, true, &h, &p).is_ok());
  EXPECT_EQ(p.body, std::string(10000, 'x'));
  EXPECT_EQ(p.cache, "");
}

TEST(Segment, TheMimeCacheRecordTravelsWithTheMessageUnderItsChecksum) {
  TempDir dir;
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan).is_ok());
  BlobRef a, b;
  ASSERT_TRUE(w->append(1, 1, 0, "message", "cache bytes", &a).is_ok());
  ASSERT_TRUE(w->append(1, 2, 0, "next", "", &b).is_ok());
  EXPECT_EQ(b.offset, a.offset + 40 + 24);  // 7 + 11 bytes padded to 24
  std::string image = read_file(dir.path() + "/" + segment_file_name(1));
  RecordHeader h;
  RecordPayload p;
  ASSERT_TRUE(read_record(image, a.offset, true, &h, &p).is_ok());
  EXPECT_EQ(p.body, "message");
  EXPECT_EQ(p.cache, "cache bytes");
  EXPECT_EQ(h.cache_length, 11u);
  image[a.offset + 40 + 7 + 2] ^= 1;  // a byte of the cache record
  EXPECT_EQ(read_record(image, a.offset, true, &h, &p).code(), Status::Code::corrupt);
}

TEST(Segment, ACorruptByteIsCaughtByTheChecksum) {
  TempDir dir;
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan).is_ok());
  BlobRef a, b;
  ASSERT_TRUE(w->append(1, 1, 0, "first message", "", &a).is_ok());
  ASSERT_TRUE(w->append(1, 2, 0, "second message", "", &b).is_ok());
  std::string image = read_file(dir.path() + "/" + segment_file_name(1));
  image[b.offset + 40 + 3] ^= 0x20;  // one bit in the second body
  RecordHeader h;
  RecordPayload body;
  EXPECT_TRUE(read_record(image, a.offset, true, &h, &body).is_ok());
  Status s = read_record(image, b.offset, true, &h, &body);
  EXPECT_EQ(s.code(), Status::Code::corrupt);
  EXPECT_EQ(s.message(), "checksum mismatch in record at offset " + std::to_string(b.offset));
  auto found = scan_all(image, 1, &scan);
  EXPECT_EQ(found.size(), 1u);
  EXPECT_EQ(scan.valid_bytes, b.offset);
  EXPECT_EQ(scan.problem, s.message());
  EXPECT_EQ(read_record(image, 12, true, &h, &body).code(), Status::Code::corrupt);
  EXPECT_EQ(read_record(image, 1u << 30, true, &h, &body).code(), Status::Code::corrupt);
}

// Damage in the middle is not a torn tail: the records after it are still found, and the writer
// refuses to append to (or cut) the segment.
TEST(Segment, DamageInTheMiddleKeepsTheRecordsAfterIt) {
  TempDir dir;
  std::string path = dir.path() + "/" + segment_file_name(1);
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan).is_ok());
  BlobRef a, b, c;
  ASSERT_TRUE(w->append(1, 1, 0, "first", "", &a).is_ok());
  ASSERT_TRUE(w->append(1, 2, 0, "second, to be damaged", "", &b).is_ok());
  ASSERT_TRUE(w->append(1, 3, 0, "third", "", &c).is_ok());
  uint64_t size = w->size();
  w.reset();
  std::string image = read_file(path);
  image[b.offset + 45] ^= 1;
  {
    FILE* f = fopen(path.c_str(), "wb");
    fwrite(image.data(), 1, image.size(), f);
    fclose(f);
  }
  auto found = scan_all(image, 1, &scan);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[1].body, "third");
  EXPECT_EQ(found[1].offset, c.offset);
  EXPECT_EQ(scan.valid_bytes, b.offset);
  EXPECT_EQ(scan.damaged_bytes, size - b.offset);
  EXPECT_EQ(scan.torn_bytes, 0u);
  Status s = SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan);
  EXPECT_EQ(s.code(), Status::Code::corrupt);
  EXPECT_EQ(read_file(path).size(), size);  // nothing was cut
}

TEST(Segment, ABadFileHeaderIsRefused) {
  TempDir dir;
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan).is_ok());
  std::string image = read_file(dir.path() + "/" + segment_file_name(1));
  EXPECT_EQ(scan_segment(image, 2, nullptr, &scan).message(),
            "segment 00000002.seg: header names another id");
  image[9] = 9;  // the version, which the checksum also covers
  EXPECT_EQ(scan_segment(image, 1, nullptr, &scan).message(),
            "segment 00000001.seg: bad file header");
}

// Every cut of the file after the last synced record, as a crash may leave it: reopening keeps
// exactly the synced records and cuts the rest.
TEST(Segment, ATornTailIsCutOnOpenAtEveryPossibleLength) {
  TempDir dir;
  std::string path = dir.path() + "/" + segment_file_name(1);
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan).is_ok());
  BlobRef a, b;
  ASSERT_TRUE(w->append(1, 1, 0, "synced", "", &a).is_ok());
  uint64_t synced = w->size();
  ASSERT_TRUE(w->append(1, 2, 0, "a message that a crash tears", "", &b).is_ok());
  uint64_t full = w->size();
  w.reset();
  std::string image = read_file(path);
  for (uint64_t cut = synced; cut < full; cut++) {
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f.write(image.data(), static_cast<std::streamsize>(cut));
    }
    ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan).is_ok());
    EXPECT_EQ(scan.records, 1u) << cut;
    EXPECT_EQ(scan.valid_bytes, synced) << cut;
    EXPECT_EQ(scan.torn_bytes, cut - synced) << cut;
    EXPECT_EQ(w->size(), synced) << cut;
    w.reset();
  }
}

TEST(Segment, AFailedAppendLeavesNoTrace) {
  TempDir dir;
  FaultEnv env(Env::posix());
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(&env, dir.path(), 1, &w, &scan).is_ok());
  BlobRef ref;
  ASSERT_TRUE(w->append(1, 1, 0, "kept", "", &ref).is_ok());
  uint64_t size = w->size();
  env.short_write_next(10);
  EXPECT_EQ(w->append(1, 2, 0, "cut short by the disk", "", &ref).code(), Status::Code::io_error);
  EXPECT_EQ(w->size(), size);
  env.set_disk_full(true);
  EXPECT_EQ(w->append(1, 2, 0, "no room", "", &ref).code(), Status::Code::no_space);
  EXPECT_EQ(w->size(), size);
  env.set_disk_full(false);
  ASSERT_TRUE(w->append(1, 2, 0, "room again", "", &ref).is_ok());
  std::string image = read_file(dir.path() + "/" + segment_file_name(1));
  auto found = scan_all(image, 1, &scan);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[1].body, "room again");
}

TEST(Segment, AFailedSyncStopsTheWriterForGood) {
  TempDir dir;
  FaultEnv env(Env::posix());
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(&env, dir.path(), 1, &w, &scan).is_ok());
  BlobRef ref;
  ASSERT_TRUE(w->append(1, 1, 0, "x", "", &ref).is_ok());
  env.set_fail_syncs(true);
  EXPECT_FALSE(w->sync().is_ok());
  env.set_fail_syncs(false);
  // Linux reports a writeback error once; a later fsync may "succeed" over lost pages.
  Status s = w->sync();
  EXPECT_EQ(s.code(), Status::Code::io_error);
  EXPECT_EQ(s.message().rfind("00000001.seg: stopped after a failed sync", 0), 0u);
  EXPECT_FALSE(w->append(1, 2, 0, "y", "", &ref).is_ok());
}

TEST(Segment, ACrashKeepsExactlyWhatWasSynced) {
  TempDir dir;
  FaultEnv env(Env::posix());
  std::unique_ptr<SegmentWriter> w;
  SegmentScan scan;
  ASSERT_TRUE(SegmentWriter::open(&env, dir.path(), 1, &w, &scan).is_ok());
  BlobRef ref;
  ASSERT_TRUE(w->append(1, 1, 0, "durable", "", &ref).is_ok());
  ASSERT_TRUE(w->sync().is_ok());
  ASSERT_TRUE(w->append(1, 2, 0, "lost in the crash", "", &ref).is_ok());
  w.reset();
  ASSERT_TRUE(env.crash().is_ok());
  ASSERT_TRUE(SegmentWriter::open(Env::posix(), dir.path(), 1, &w, &scan).is_ok());
  EXPECT_EQ(scan.records, 1u);
  EXPECT_EQ(scan.torn_bytes, 0u);
}

}  // namespace
}  // namespace ringmail
