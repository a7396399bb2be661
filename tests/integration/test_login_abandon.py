"""A client whose connection is reset while its LOGIN waits for the password hash costs no hash:
the queued job is skipped. Otherwise a flood of connect-LOGIN-reset would make everyone else's
login wait. (A client that only half-closes, with FIN, still gets its answers: see
test_imap_basics.TestHalfClose; so its hash still runs.)"""
import socket
import struct
import unittest

from harness import HOST, LOGIN_OK, ServerTestCase


class LoginAbandonTest(ServerTestCase):
    def test_logins_of_clients_that_left_are_skipped(self):
        # One helper thread and 100,000 PBKDF2 iterations: each hash takes long enough (0.1 s
        # and more) that every client below is gone before its turn, but perhaps the first two.
        srv = self.server(users={"slow": "slow-pw"}, iterations=100000,
                          args=["--helper-threads", "1", "--auth-cache-ttl-s", "0"])
        for i in range(30):
            s = socket.create_connection((HOST, srv.port))
            s.recv(200)  # the greeting
            s.sendall(b"a LOGIN slow wrong-%d\r\n" % i)  # distinct: none waits on another
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # with linger 0: a reset
        srv.wait_log_count(r"event=close ", 30)
        with srv.connect() as c:
            c.send("b LOGIN slow slow-pw\r\n")
            self.assertEqual(c.readline(), "b " + LOGIN_OK)
        abandoned = srv.events("login_abandoned")
        self.assertGreaterEqual(len(abandoned), 28, abandoned)
        self.assertEqual({e["user"] for e in abandoned}, {"slow"})
        self.assertEqual(srv.events("login_failed"), [])  # nobody was left to be told


if __name__ == "__main__":
    unittest.main()
