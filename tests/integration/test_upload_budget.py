"""Large literals draw on a per-core budget (literal_bytes_core_max): while one client's big
APPEND is being received, another's that would pass the budget is refused with NO [LIMIT] before
its "+", and succeeds once the first is done. Small commands are never refused."""

import unittest

from harness import ServerTestCase

USERS = {"alice": "secret", "bob": "secret2"}
SIZE = 150000


def message(tag):
    head = "From: a@example.com\r\nSubject: %s\r\n\r\n" % tag
    return (head + "x" * (SIZE - len(head) - 2) + "\r\n").encode()


class TestUploadBudget(ServerTestCase):
    def test_second_big_upload_waits_for_the_first(self):
        srv = self.server(users=USERS, threads=1, config={"literal_bytes_core_max": 200000})
        a = srv.connect()
        b = srv.connect()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.assertEqual(a.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        self.assertEqual(b.command("l", "LOGIN bob secret2")[-1][:5], "l OK ")
        a.send("p APPEND INBOX {%d}\r\n" % SIZE)
        self.assertEqual(a.readline(), "+ Ready for literal data")
        b.send("q APPEND INBOX {%d}\r\n" % SIZE)
        self.assertEqual(b.readline(),
                         "q NO [LIMIT] Too much upload in progress on this server; try again later")
        self.assertEqual(b.command("n", "NOOP"), ["n OK NOOP completed"])
        a.send(message("a") + b"\r\n")
        self.assertTrue(a.read_tagged("p")[-1].startswith("p OK [APPENDUID "))
        b.send("r APPEND INBOX {%d}\r\n" % SIZE)
        self.assertEqual(b.readline(), "+ Ready for literal data")
        b.send(message("b") + b"\r\n")
        self.assertTrue(b.read_tagged("r")[-1].startswith("r OK [APPENDUID "))


if __name__ == "__main__":
    unittest.main()
