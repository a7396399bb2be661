"""Synchronizing literals get "+" only when the command can still succeed (RFC 9051 section
7.5): an APPEND to a missing mailbox, an unknown command, a message command with no mailbox
selected are refused before the client sends the bytes."""

import random
import threading
import unittest

from harness import ServerTestCase

USERS = {"alice": "secret"}


class TestLiteralInvitations(ServerTestCase):
    def test_refused_before_the_plus(self):
        srv = self.server(users=USERS)
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        self.assertEqual(c.command("a", "APPEND Nowhere {5}"),
                         ["a NO [TRYCREATE] No such mailbox"])
        self.assertEqual(c.command("b", "FROB {5}"), ["b BAD Literal not expected here"])
        self.assertEqual(c.command("c", "SEARCH SUBJECT {5}"), ["c BAD No mailbox selected"])
        # The same commands that can succeed are invited, and complete.
        c.send("d APPEND INBOX {19}\r\n")
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send("Subject: hi\r\n\r\nbody\r\n")
        self.assertTrue(c.read_tagged("d")[-1].startswith("d OK [APPENDUID "))
        c.command("s", "SELECT INBOX")
        c.send("e SEARCH SUBJECT {2}\r\n")
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send("hi\r\n")
        self.assertEqual(c.read_tagged("e"), ["* SEARCH 1", "e OK SEARCH completed"])


class TestPipelinedLiterals(ServerTestCase):
    def test_pipelined_appends_of_large_in_memory_literals_all_complete(self):
        # 200 APPENDs sent at once with LITERAL+, many of them just under the size at which a
        # literal is spooled to disk (256 KiB): the server stops reading while it is behind and
        # must resume. It once waited for its input to drop under half its limit, which the
        # unfinished command it had reserved room for never did: the connection stalled for good.
        srv = self.server(users=USERS)
        c = srv.connect()
        self.addCleanup(c.close)
        c.command("l", "LOGIN alice secret")
        rng = random.Random(5)
        parts, sizes = [], []
        for i in range(200):
            size = rng.choice([2000, 5000, 150000, 200000, 240000])
            msg = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * (size // 78)
            sizes.append(len(msg))
            parts.append(b"a%d APPEND INBOX {%d+}\r\n" % (i, len(msg)) + msg + b"\r\n")
        sender = threading.Thread(target=c.sock.sendall, args=(b"".join(parts),), daemon=True)
        sender.start()
        for i in range(200):
            self.assertTrue(c.read_tagged("a%d" % i, timeout=30)[-1].startswith("a%d OK " % i))
        sender.join(30)
        lines = c.command("s", "STATUS INBOX (MESSAGES SIZE)")
        self.assertEqual(lines[0], "* STATUS INBOX (MESSAGES 200 SIZE %d)" % sum(sizes))


if __name__ == "__main__":
    unittest.main()
