"""Connections handed off between the two reactors: a login on the core that accepted the
connection (random, SO_REUSEPORT) for a user owned by the other core moves the connection there.
Every combination of accepting core and owner core must serve LOGIN, pipelined commands, NOOP and
LIST alike, one connection at a time and with many at once."""

import collections
import time
import unittest

from harness import LIST_INBOX, LOGIN_OK, TIMEOUT, ServerTestCase, parse_kv

MAX_CONNECTIONS = 300  # bound of the search for every (accepting core, owner) combination
WANTED_PER_COMBINATION = 2


class TestHandoff(ServerTestCase):
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
                self.assertEqual(c.command("d", 'LIST "" *'), [LIST_INBOX, "d OK LIST completed"])
                c.send('e NOOP\r\nf LIST "" *\r\ng LOGOUT\r\n')
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
                c.send('a LOGIN %s %s\r\nb NOOP\r\nc NOOP\r\nd LIST "" *\r\ne NOOP\r\n'
                       % (u, users[u]))
            for c in conns:
                self.assertEqual(c.read_tagged("e"), [
                    "a " + LOGIN_OK, "b OK NOOP completed", "c OK NOOP completed",
                    LIST_INBOX, "d OK LIST completed", "e OK NOOP completed"])
            # All still open and logged in: another round, again sent all at once.
            for c in conns:
                c.send('f NOOP\r\ng LIST "" *\r\nh LOGIN x y\r\n')
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


if __name__ == "__main__":
    unittest.main()
