"""Online compaction: when a user's last session ends after messages were expunged, the server
rewrites its sealed segments on the helper pool; the mail left is intact, a client logging in
meanwhile just waits, and fsck is clean afterwards."""

import os
import unittest

from harness import ServerTestCase, run_ringmail

USERS = {"alice": "secret"}


def message(n):
    head = "From: a@example.com\r\nSubject: m%d\r\nMessage-ID: <%d@x>\r\n\r\n" % (n, n)
    return (head + ("line %d\r\n" % n) * 800).encode()


def segment_files(data_dir):
    found = []
    for root, _dirs, files in os.walk(data_dir):
        found += [os.path.join(root, f) for f in files if f.endswith(".seg")]
    return sorted(found)


class TestOnlineCompaction(ServerTestCase):
    def test_idle_user_is_compacted(self):
        srv = self.server(users=USERS, config={"segment_bytes_max": 65536,
                                               "compact_released_bytes_min": 1})
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("a", "LOGIN alice secret")[-1][:5], "a OK ")
        sent = {}
        for n in range(1, 41):
            data = message(n)
            sent[n] = data
            c.send(b"p%d APPEND INBOX {%d+}\r\n" % (n, len(data)) + data + b"\r\n")
            self.assertTrue(c.read_tagged("p%d" % n)[-1].startswith("p%d OK [APPENDUID" % n))
        before = segment_files(srv.data_dir)
        self.assertGreaterEqual(len(before), 4)
        c.command("s", "SELECT INBOX")
        # Keep every fourth message; the rest goes.
        doomed = ",".join(str(n) for n in range(1, 41) if n % 4)
        self.assertEqual(c.command("d", "UID STORE %s +FLAGS.SILENT (\\Deleted)" % doomed)[-1],
                         "d OK STORE completed")
        self.assertEqual(c.command("x", "EXPUNGE")[-1], "x OK EXPUNGE completed")
        c.command("z", "LOGOUT")
        srv.wait_log(r"event=compacted user=alice segments=\d+ records_moved=\d+ bytes_freed=\d+")
        after = segment_files(srv.data_dir)
        self.assertLess(len(after), len(before))

        e = srv.connect()
        self.addCleanup(e.close)
        self.assertEqual(e.command("a", "LOGIN alice secret")[-1][:5], "a OK ")
        self.assertIn("* 10 EXISTS", e.command("s", "EXAMINE INBOX"))
        for seq, n in enumerate(range(4, 41, 4), start=1):
            e.send("f%d UID FETCH %d (BODY.PEEK[])\r\n" % (seq, n))
            self.assertEqual(e.readline(),
                             "* %d FETCH (UID %d BODY[] {%d}" % (seq, n, len(sent[n])))
            self.assertEqual(e.read_exact(len(sent[n])), sent[n])
            self.assertEqual(e.read_tagged("f%d" % seq)[-1], "f%d OK FETCH completed" % seq)
        e.command("z", "LOGOUT")
        self.assertEqual(srv.stop(), 0)
        fsck = run_ringmail("fsck", "--data-dir", srv.data_dir)
        self.assertEqual(fsck.returncode, 0, fsck)


if __name__ == "__main__":
    unittest.main()
