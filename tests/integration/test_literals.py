"""Synchronizing literals get "+" only when the command can still succeed (RFC 9051 section
7.5): an APPEND to a missing mailbox, an unknown command, a message command with no mailbox
selected are refused before the client sends the bytes."""

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


if __name__ == "__main__":
    unittest.main()
