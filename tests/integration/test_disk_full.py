"""A full disk under a real ringmaild: the server runs under a file size limit (prlimit --fsize),
so its writes past the limit fail with EFBIG exactly as they would with ENOSPC. An APPEND that
does not fit gets NO [OVERQUOTA]; nothing already stored is harmed, other commands and other
connections keep working, and after a restart without the limit every acknowledged message is
there and fsck is clean."""

import os
import unittest

from harness import Server, ServerTestCase, run_ringmail

USERS = {"alice": "secret"}
LIMIT = 256 * 1024  # bytes per file: the first segment fills after a few messages


class LimitedServer(Server):
    def argv(self):
        return ["prlimit", "--fsize=%d" % LIMIT, "--"] + super().argv()


def message(n, size):
    head = ("From: a@example.com\r\nTo: b@example.com\r\nSubject: msg %d\r\n"
            "Message-ID: <%d@example.com>\r\n\r\n" % (n, n))
    body = ("%d " % n) * (size // (len(str(n)) + 1))
    return (head + body[:size - len(head) - 2] + "\r\n").encode()


class TestDiskFull(ServerTestCase):
    def test_append_past_a_full_disk(self):
        srv = LimitedServer(users=USERS)
        self.addCleanup(self._finish_server, srv)
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("a", "LOGIN alice secret")[-1][:5], "a OK ")
        self.assertEqual(c.command("s", "SELECT INBOX")[-1], "s OK [READ-WRITE] SELECT completed")
        stored = []
        refused = None
        for n in range(1, 40):
            data = message(n, 30000)
            c.send(b"t%d APPEND INBOX (\\Flagged) {%d+}\r\n" % (n, len(data)) + data + b"\r\n")
            lines = c.read_tagged("t%d" % n)
            last = lines[-1]
            if last.startswith("t%d OK [APPENDUID " % n):
                stored.append((n, data))
                continue
            refused = last
            break
        self.assertIsNotNone(refused, "the file size limit was never reached")
        self.assertEqual(refused, "t%d NO [OVERQUOTA] APPEND failed: not enough disk space" % n)
        self.assertGreater(len(stored), 2)
        # The connection and the store still work: flags change, messages read back whole.
        self.assertEqual(c.command("f", "STORE 1 +FLAGS (\\Seen)")[-1], "f OK STORE completed")
        for i, (n, data) in enumerate(stored, start=1):
            lines = c.command("r%d" % i, "FETCH %d (RFC822.SIZE)" % i)
            self.assertEqual(lines[-1], "r%d OK FETCH completed" % i)
            self.assertIn("RFC822.SIZE %d" % len(data), lines[0])
        # Another connection is served too.
        d = srv.connect()
        self.addCleanup(d.close)
        self.assertEqual(d.command("a", "LOGIN alice secret")[-1][:5], "a OK ")
        self.assertEqual(d.command("b", "STATUS INBOX (MESSAGES)"),
                         ["* STATUS INBOX (MESSAGES %d)" % len(stored), "b OK STATUS completed"])
        c.command("z", "LOGOUT")
        d.command("z", "LOGOUT")
        self.assertEqual(srv.stop(), 0)
        self.assertNoCrash("\n".join(srv.log_lines()))

        fsck = run_ringmail("fsck", "--data-dir", srv.data_dir)
        self.assertEqual(fsck.returncode, 0, fsck)
        again = self.server(users={}, data_dir=srv.data_dir)
        e = again.connect()
        self.addCleanup(e.close)
        self.assertEqual(e.command("a", "LOGIN alice secret")[-1][:5], "a OK ")
        self.assertIn("* %d EXISTS" % len(stored), e.command("s", "EXAMINE INBOX"))
        for i, (n, data) in enumerate(stored, start=1):
            e.send("r%d FETCH %d (BODY.PEEK[])\r\n" % (i, i))
            head = e.readline()
            self.assertEqual(head, "* %d FETCH (BODY[] {%d}" % (i, len(data)))
            self.assertEqual(e.read_exact(len(data)), data)
            rest = e.read_tagged("r%d" % i)
            self.assertEqual(rest[-1], "r%d OK FETCH completed" % i)


if __name__ == "__main__":
    unittest.main()
