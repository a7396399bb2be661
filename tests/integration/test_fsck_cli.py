"""`ringmail fsck`: exit 0 on a clean store, 2 with damage left, 1 after a repair; and
`ringmail compact`. The mail is made by the crash test's driver (tests/crash/crash_driver) in a
real user's directory."""
import fcntl
import glob
import os
import re
import shutil
import tempfile
import unittest

from harness import add_user, bin_path, run, run_ringmail

SUMMARY = re.compile(r"^fsck: 2 users, (\d+) messages, [\d.]+ MB of segments checked in "
                     r"[\d.]+ s \(\d+ MB/s\); (\d+) repaired, (\d+) damaged$")


class FsckCliTest(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.mkdtemp(prefix="ringmail-fsck-")
        self.addCleanup(shutil.rmtree, self.data, True)
        add_user(self.data, "alice", "pw-alice")
        add_user(self.data, "bob", "pw-bob")
        self.alice = glob.glob(os.path.join(self.data, "users", "*", "alice"))[0]
        r = run([bin_path("crash_driver"), "run", self.alice, "3", "0.3"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def fsck(self, *args):
        r = run_ringmail("fsck", "--data-dir", self.data, *args)
        last = r.stdout.strip().splitlines()[-1]
        m = SUMMARY.match(last)
        self.assertIsNotNone(m, r.stdout)
        return r, int(m.group(1)), int(m.group(2)), int(m.group(3))

    def test_a_clean_store_exits_0(self):
        r, messages, repaired, damaged = self.fsck()
        self.assertEqual((r.returncode, repaired, damaged), (0, 0, 0), r.stdout)
        self.assertGreater(messages, 0)
        self.assertEqual(r.stdout.count("\n"), 1, r.stdout)  # nothing but the summary

    def test_damage_exits_2_and_repair_exits_1_then_clean(self):
        index = os.path.join(self.alice, "mbox", "00000001", "index")
        with open(index, "r+b") as f:
            f.seek(60)  # inside the header checksum
            b = f.read(1)
            f.seek(60)
            f.write(bytes([b[0] ^ 0xFF]))
        r, _, _, damaged = self.fsck()
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("alice: DAMAGE mailbox INBOX: ", r.stdout)
        self.assertEqual(damaged, 1)
        r, _, repaired, damaged = self.fsck("--repair")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("alice: repaired: mailbox 00000001: index rebuilt from ", r.stdout)
        self.assertEqual(damaged, 0)
        r, _, repaired, damaged = self.fsck()
        self.assertEqual((r.returncode, repaired, damaged), (0, 0, 0), r.stdout)

    def test_one_user_only(self):
        r = run_ringmail("fsck", "--data-dir", self.data, "--user", "bob")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertTrue(r.stdout.startswith("fsck: 1 users, 0 messages"), r.stdout)


    def test_compact_frees_space_and_keeps_every_message(self):
        _, messages, _, _ = self.fsck()
        seg = os.path.join(self.alice, "seg")
        before = sum(os.path.getsize(os.path.join(seg, f)) for f in os.listdir(seg))
        r = run_ringmail("compact", "--data-dir", self.data)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"^compact: 2 users, (\d+) segments rewritten, ([\d.]+) MB freed$",
                      r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout)
        self.assertGreater(int(m.group(1)), 0)
        after = sum(os.path.getsize(os.path.join(seg, f)) for f in os.listdir(seg))
        self.assertLess(after, before)
        r, messages_after, repaired, damaged = self.fsck()
        self.assertEqual((r.returncode, repaired, damaged), (0, 0, 0), r.stdout)
        self.assertEqual(messages_after, messages)

    def test_compact_refuses_while_the_server_holds_the_data_dir(self):
        with open(os.path.join(self.data, "ringmaild.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            r = run_ringmail("compact", "--data-dir", self.data)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr, "ringmail: ringmaild is running on %s (or %s/ringmaild.lock "
                         "cannot be locked): stop it first\n" % (self.data, self.data))


if __name__ == "__main__":
    unittest.main()
