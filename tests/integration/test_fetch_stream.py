"""A FETCH larger than the connection's output bound (output_bytes_max) is written as the client
reads it: every byte arrives in order, a pipelined command is answered after it, and another
connection is served meanwhile."""

import time
import unittest

from harness import ServerTestCase

USERS = {"alice": "secret"}


def message(n):
    head = "From: a@example.com\r\nSubject: m%d\r\n\r\n" % n
    return (head + ("%04d payload line of message %d\r\n" % (n, n)) * 3000).encode()


class TestFetchStream(ServerTestCase):
    def test_fetch_all_bodies_with_small_output_bound(self):
        srv = self.server(users=USERS, config={"output_bytes_max": 65536})
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("a", "LOGIN alice secret")[-1][:5], "a OK ")
        sent = []
        for n in range(1, 31):
            data = message(n)
            sent.append(data)
            c.send(b"p%d APPEND INBOX {%d+}\r\n" % (n, len(data)) + data + b"\r\n")
            self.assertTrue(c.read_tagged("p%d" % n)[-1].startswith("p%d OK" % n))
        self.assertIn("* 30 EXISTS", c.command("s", "SELECT INBOX"))
        c.send("f FETCH 1:* (BODY.PEEK[])\r\ng NOOP\r\n")
        time.sleep(0.3)  # the server must stop at its bound, not buffer everything
        other = srv.connect()
        self.addCleanup(other.close)
        self.assertEqual(other.command("a", "LOGIN alice secret")[-1][:5], "a OK ")
        self.assertEqual(other.command("b", "STATUS INBOX (MESSAGES)"),
                         ["* STATUS INBOX (MESSAGES 30)", "b OK STATUS completed"])
        for n, data in enumerate(sent, start=1):
            self.assertEqual(c.readline(), "* %d FETCH (BODY[] {%d}" % (n, len(data)))
            self.assertEqual(c.read_exact(len(data)), data)
            self.assertEqual(c.readline(), ")")
        self.assertEqual(c.readline(), "f OK FETCH completed")
        self.assertEqual(c.readline(), "g OK NOOP completed")


if __name__ == "__main__":
    unittest.main()
