"""The SEARCH-literal memory exhaustion (CVE-2024-34055 in Cyrus IMAP: many large literals in
one command, from many connections, until the server runs out of memory) does not work here:
literals of commands other than APPEND are limited to 64 KiB for the whole command, a
synchronizing one over the limit is refused before its "+", a non-synchronizing flood is cut
with BYE at the limit, and the server keeps serving everyone else throughout."""

import threading
import unittest

from harness import ServerTestCase

USERS = {"mallory": "mallory-pw", "alice": "alice-pw"}
CHUNK = 60000


class TestSearchLiteralFlood(ServerTestCase):
    def test_one_big_synchronizing_literal_is_refused_before_plus(self):
        srv = self.server(users=USERS)
        c = srv.login("mallory", USERS["mallory"])
        self.assertEqual(c.command("s", "SELECT INBOX")[-1], "s OK [READ-WRITE] SELECT completed")
        c.send("a SEARCH TEXT {100000}\r\n")
        self.assertEqual(c.readline(), "a NO [TOOBIG] Literal too large for this command")
        self.assertEqual(c.command("n", "NOOP"), ["n OK NOOP completed"])
        c.close()

    def test_many_literals_in_one_command_are_cut_at_the_limit(self):
        srv = self.server(users=USERS, threads=2)
        results = []

        def flood():
            c = srv.login("mallory", USERS["mallory"])
            c.command("s", "SELECT INBOX")
            head = b"f SEARCH"
            try:
                # Up to 200 literals of 60,000 bytes (12 MB) in one SEARCH, without waiting.
                for i in range(200):
                    c.send(head + b" TEXT {%d+}\r\n" % CHUNK + b"x" * CHUNK)
                    head = b""
            except OSError:
                pass  # the server closed on us, as it should
            results.append(c.lines_to_eof())

        threads = [threading.Thread(target=flood) for _ in range(8)]
        for t in threads:
            t.start()
        # Meanwhile another user is served.
        a = srv.login("alice", USERS["alice"])
        self.assertEqual(a.command("n", "NOOP"), ["n OK NOOP completed"])
        for t in threads:
            t.join(60)
        self.assertEqual(results, [["* BYE [TOOBIG] Literal too large for this command"]] * 8)
        self.assertEqual(a.command("m", "NOOP"), ["m OK NOOP completed"])
        a.close()


if __name__ == "__main__":
    unittest.main()
