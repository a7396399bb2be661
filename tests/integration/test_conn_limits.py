"""Connection limits against a real ringmaild with two cores: connections per client address
(counted across cores), logged-in sessions per user, and the bytes a client may send before it
has authenticated (slowloris and pre-auth floods)."""

import time
import unittest

from harness import LOGIN_OK, TIMEOUT, ServerTestCase

USERS = {"alice": "alice-secret-1"}
PER_IP_BYE = "* BYE [UNAVAILABLE] Too many connections from your address"


class TestConnectionLimits(ServerTestCase):
    def test_per_address_limit_across_cores(self):
        # The kernel spreads connections over the two cores by a hash of the client's port: with
        # 17 of them, all land on one core once in 2^16 runs (with 6, about once in 30, and
        # then this test could not show the count crossing cores).
        srv = self.server(users=USERS, threads=2, config={"connections_per_ip_max": 16})
        conns = [srv.connect() for _ in range(16)]  # greeted: all sixteen admitted
        extra = srv.connect(greeting=False)
        self.assertEqual(extra.lines_to_eof(), [PER_IP_BYE])
        self.assertEqual(len({e["core"] for e in srv.events("accept")}), 2)  # both cores counted
        conns.pop().close()
        deadline = time.monotonic() + TIMEOUT
        while True:  # the server counts the close once it has seen it
            c = srv.connect(greeting=False)
            first = c.readline()
            if first != PER_IP_BYE:
                break
            c.close()
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        self.assertTrue(first.startswith("* OK [CAPABILITY "), first)
        self.assertEqual(c.command("n", "NOOP"), ["n OK NOOP completed"])
        c.close()
        for k in conns:
            k.close()

    def test_per_user_limit(self):
        srv = self.server(users=USERS, threads=2, config={"connections_per_user_max": 2})
        a = srv.login("alice", USERS["alice"])
        b = srv.login("alice", USERS["alice"])
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN alice %s" % USERS["alice"]),
                         ["l NO [LIMIT] Too many connections for this user; close some and try "
                          "again"])
        self.assertEqual(a.command("n", "NOOP"), ["n OK NOOP completed"])
        a.close()
        deadline = time.monotonic() + TIMEOUT
        while True:
            line = c.command("m", "LOGIN alice %s" % USERS["alice"])[-1]
            if line.startswith("m OK"):
                break
            self.assertLess(time.monotonic(), deadline, line)
            time.sleep(0.02)
        self.assertEqual(line, "m " + LOGIN_OK)
        b.close()

    def test_preauth_byte_cap(self):
        srv = self.server(users=USERS, config={"preauth_bytes_max": 2048})
        c = srv.connect()
        self.addCleanup(c.close)
        c.send(b"a NOOP\r\n" * 400)  # 3200 bytes before any login
        lines = c.lines_to_eof()
        self.assertEqual(lines[-1], "* BYE [LIMIT] Too much input before authentication")
        self.assertEqual(lines[:-1], ["a OK NOOP completed"] * (len(lines) - 1))
        self.assertLessEqual(len(lines) - 1, 2048 // 8)
        # A client that logs in within the budget is not limited afterwards.
        d = srv.login("alice", USERS["alice"])
        d.send(b"b NOOP\r\n" * 400)
        self.assertEqual(d.read_lines(400), ["b OK NOOP completed"] * 400)
        d.close()


if __name__ == "__main__":
    unittest.main()
