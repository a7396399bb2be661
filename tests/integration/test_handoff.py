"""Connections handed off between the two reactors: a login on the core that accepted the
connection (random, SO_REUSEPORT) for a user owned by the other core moves the connection there.
Every combination of accepting core and owner core must serve LOGIN, pipelined commands, NOOP and
LIST alike, one connection at a time and with many at once."""

import collections
import threading
import unittest

from harness import AUTH_FAILED, LIST_INBOX, LOGIN_OK, TIMEOUT, ServerTestCase, parse_kv

MAX_CONNECTIONS = 300  # bound of the search for every (accepting core, owner) combination
WANTED_PER_COMBINATION = 2


class HandoffTests:
    """Run under each way a core can wake another (see the classes at the end)."""

    WAKE = None  # --cross-core-wake; None: the server's default ("auto")

    def server(self, **kwargs):
        if self.WAKE:
            kwargs["args"] = list(kwargs.get("args", ())) + ["--cross-core-wake", self.WAKE]
        srv = super().server(**kwargs)
        if self.WAKE:
            srv.wait_log(r"event=listening .*\bcross_core_wake=%s\b" % self.WAKE)
        return srv

    def check_handoff_logged(self, srv, login):
        """For a login whose accepting core differs from the owner: the handoff and the adoption
        are logged for that connection, on the right cores."""
        conn, core, owner, user = login["conn"], login["core"], login["owner"], login["user"]
        srv.wait_log(r"level=debug event=handoff conn=%s from=%s to=%s$" % (conn, core, owner))
        srv.wait_log(r"level=debug event=adopted conn=%s core=%s user=%s$" % (conn, owner, user))

    def test_every_accepting_core_and_owner_combination(self):
        users = {"alice": "alice-pw", "bob": "bob-pw"}
        srv = self.server(users=users)
        names = ["alice", "bob"]
        combos = collections.Counter()
        logins = []
        for i in range(MAX_CONNECTIONS):
            user = names[i % 2]
            c = srv.connect()
            try:
                # LOGIN with a command pipelined in the same write: it runs after the login, on
                # the owner core when the connection moved.
                c.send('a LOGIN %s %s\r\nb NOOP\r\n' % (user, users[user]))
                self.assertEqual(c.read_tagged("b"), ["a " + LOGIN_OK, "b OK NOOP completed"])
                self.assertEqual(c.command("c", "NOOP"), ["c OK NOOP completed"])
                self.assertEqual(c.command("d", 'LIST "" INBOX'), [LIST_INBOX, "d OK LIST completed"])
                c.send('e NOOP\r\nf LIST "" INBOX\r\ng LOGOUT\r\n')
                self.assertEqual(c.lines_to_eof(), [
                    "e OK NOOP completed", LIST_INBOX, "f OK LIST completed",
                    "* BYE Logging out", "g OK LOGOUT completed"])
            finally:
                c.close()
            # Logins are sequential: the n-th login line is this connection's.
            line = srv.wait_log_count(r"level=info event=login user=", i + 1)[i]
            login = parse_kv(line)
            self.assertEqual(login["user"], user, line)
            self.assertEqual(login["peer"], "127.0.0.1", line)
            self.assertEqual(login["mech"], "LOGIN", line)
            self.assertIn(login["core"], ("0", "1"), line)
            self.assertIn(login["owner"], ("0", "1"), line)
            if login["core"] != login["owner"]:
                self.check_handoff_logged(srv, login)
            logins.append(login)
            combos[(login["core"], login["owner"])] += 1
            if len(combos) == 4 and min(combos.values()) >= WANTED_PER_COMBINATION:
                break
        self.assertEqual(
            {(a, b) for a in "01" for b in "01" if combos[(a, b)] >= WANTED_PER_COMBINATION},
            {(a, b) for a in "01" for b in "01"},
            "combinations (accepting core, owner) seen in %d connections: %r"
            % (len(logins), dict(combos)))

        # The first user to log in is placed on core 0, the second on core 1, and stays there.
        owners = {u: {l["owner"] for l in logins if l["user"] == u} for u in names}
        self.assertEqual(owners, {"alice": {"0"}, "bob": {"1"}})

        # Handoffs only between different cores, exactly one per login on a foreign core.
        srv.wait_log_count(r"event=close ", len(logins))
        handoffs = srv.events("handoff")
        self.assertTrue(handoffs)
        for h in handoffs:
            self.assertNotEqual(h["from"], h["to"], h)
        moved = {l["conn"] for l in logins if l["core"] != l["owner"]}
        self.assertEqual(sorted(h["conn"] for h in handoffs), sorted(moved))
        self.assertEqual(sorted(a["conn"] for a in srv.events("adopted")), sorted(moved))

    def test_many_concurrent_connections(self):
        n_users, n_conns = 20, 200
        users = {"user%02d" % i: "pw-%02d" % i for i in range(n_users)}
        srv = self.server(users=users)
        names = sorted(users)
        conns = []
        try:
            for i in range(n_conns):
                conns.append(srv.connect())
            # Every connection sends its LOGIN and pipelined commands before any answer is read.
            for i, c in enumerate(conns):
                u = names[i % n_users]
                c.send('a LOGIN %s %s\r\nb NOOP\r\nc NOOP\r\nd LIST "" INBOX\r\ne NOOP\r\n'
                       % (u, users[u]))
            for c in conns:
                self.assertEqual(c.read_tagged("e"), [
                    "a " + LOGIN_OK, "b OK NOOP completed", "c OK NOOP completed",
                    LIST_INBOX, "d OK LIST completed", "e OK NOOP completed"])
            # All still open and logged in: another round, again sent all at once.
            for c in conns:
                c.send('f NOOP\r\ng LIST "" INBOX\r\nh LOGIN x y\r\n')
            for c in conns:
                self.assertEqual(c.read_tagged("h"), [
                    "f OK NOOP completed", LIST_INBOX, "g OK LIST completed",
                    "h BAD Already authenticated"])
            for c in conns:
                c.send("z LOGOUT\r\n")
            for c in conns:
                self.assertEqual(c.lines_to_eof(), ["* BYE Logging out", "z OK LOGOUT completed"])
        finally:
            for c in conns:
                c.close()

        logins = [parse_kv(l) for l in srv.wait_log_count(r"level=info event=login user=", n_conns)]
        self.assertEqual(len(logins), n_conns)
        self.assertEqual(collections.Counter(l["user"] for l in logins),
                         collections.Counter({u: n_conns // n_users for u in names}))
        # Each user has one owner, whichever core accepted its connections.
        owners = collections.defaultdict(set)
        for l in logins:
            owners[l["user"]].add(l["owner"])
        for u in names:
            self.assertEqual(len(owners[u]), 1, "user %s has owners %s" % (u, owners[u]))
        # Both cores own users.
        self.assertEqual({next(iter(o)) for o in owners.values()}, {"0", "1"})
        moved = sorted(l["conn"] for l in logins if l["core"] != l["owner"])
        srv.wait_log_count(r"event=adopted ", len(moved))
        handoffs = srv.events("handoff")
        for h in handoffs:
            self.assertNotEqual(h["from"], h["to"], h)
        self.assertEqual(sorted(h["conn"] for h in handoffs), moved)
        self.assertEqual(sorted(a["conn"] for a in srv.events("adopted")), moved)

    def test_large_pipelined_burst_behind_login(self):
        # Far more pipelined input than the server buffers (pending_input_bytes_max) and more
        # output than it queues (output_bytes_max), both set low here, sent behind a LOGIN that
        # may move the connection: reading pauses and resumes across the handoff, and every
        # command is answered in order. A thread sends while the test reads, as a real client
        # would.
        users = {"alice": "alice-pw", "bob": "bob-pw"}
        srv = self.server(users=users, config={"pending_input_bytes_max": 8192,
                                               "output_bytes_max": 16384})
        n = 20000
        for user in ("alice", "bob", "alice", "bob"):
            c = srv.connect(timeout=TIMEOUT * 3)
            self.addCleanup(c.close)
            payload = ("a LOGIN %s %s\r\n" % (user, users[user])
                       + "".join("n%d NOOP\r\n" % i for i in range(n)) + "z NOOP\r\n").encode()
            errors = []

            def send_all(sock=c.sock, data=payload):
                try:
                    sock.sendall(data)
                except OSError as e:
                    errors.append(e)

            t = threading.Thread(target=send_all, daemon=True)
            t.start()
            lines = c.read_tagged("z")
            t.join(TIMEOUT)
            self.assertEqual(errors, [])
            self.assertEqual(len(lines), n + 2)
            self.assertEqual(lines[0], "a " + LOGIN_OK)
            self.assertEqual(lines[1:-1], ["n%d OK NOOP completed" % i for i in range(n)])
            self.assertEqual(lines[-1], "z OK NOOP completed")
            self.assertEqual(c.command("l", 'LIST "" INBOX'), [LIST_INBOX, "l OK LIST completed"])


class TestHandoff(HandoffTests, ServerTestCase):
    """The default wake-up (MSG_RING where the kernel has it), and the login storms."""

    def test_concurrent_logins_same_user_mixed_passwords(self):
        # Identical logins in flight together may share one hash; a different password must
        # never get another login's result. No cache: every login is verified.
        srv = self.server(users={"alice": "alice-pw", "bob": "bob-pw"},
                          args=["--auth-cache-ttl-s", "0"])
        attempts = []
        for i in range(120):
            user = "alice" if i % 2 == 0 else "bob"
            good = i % 3 != 0
            attempts.append((user, ("%s-pw" % user) if good else ("%s-pw" % user).upper(), good))
        conns = []
        try:
            for _ in attempts:
                conns.append(srv.connect())
            for c, (user, password, _) in zip(conns, attempts):
                c.send("a LOGIN %s %s\r\nb NOOP\r\nc LIST \"\" INBOX\r\n" % (user, password))
            for i, (c, (user, _, good)) in enumerate(zip(conns, attempts)):
                lines = c.read_tagged("c")
                if good:
                    expected = ["a " + LOGIN_OK, "b OK NOOP completed", LIST_INBOX,
                                "c OK LIST completed"]
                else:
                    expected = ["a " + AUTH_FAILED, "b OK NOOP completed",
                                "c BAD Not authenticated"]
                self.assertEqual(lines, expected, "attempt %d %s" % (i, attempts[i]))
        finally:
            for c in conns:
                c.close()
        n_good = sum(1 for a in attempts if a[2])
        srv.wait_log_count(r"level=info event=login user=", n_good)
        srv.wait_log_count(r"level=info event=login_failed user=", len(attempts) - n_good)

    def test_login_storm_beyond_helper_pool_queue(self):
        # More logins needing a hash at once than the helper pool queues (1024): the rest wait on
        # their core; none is refused. Distinct wrong passwords defeat coalescing and the cache.
        srv = self.server(users={"alice": "alice-pw"})
        n = 1100
        conns = []
        try:
            for _ in range(n):
                conns.append(srv.connect(timeout=TIMEOUT * 3))
            for i, c in enumerate(conns):
                password = "alice-pw" if i % 50 == 0 else "wrong-%d" % i
                c.send("a LOGIN alice %s\r\nb NOOP\r\n" % password)
            for i, c in enumerate(conns):
                first = "a " + (LOGIN_OK if i % 50 == 0 else AUTH_FAILED)
                self.assertEqual(c.read_tagged("b"), [first, "b OK NOOP completed"], i)
        finally:
            for c in conns:
                c.close()


class TestHandoffEventfdWake(HandoffTests, ServerTestCase):
    """The eventfd fallback forced."""

    WAKE = "eventfd"


if __name__ == "__main__":
    unittest.main()
