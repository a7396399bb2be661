"""Brute-force defence and the audit log against a real ringmaild with two cores: failed logins
are counted per user (whether it exists or not) and per client address across all cores; past
auth_delay_after failures each answer comes later; at auth_lockout_failures the user is locked
out with the same answer whether it exists or not, other users keep being served, the lockout
ends after auth_lockout_s or with `ringmail user unlock`, and the audit log has a key=value line
for each event."""

import os
import re
import socket
import threading
import time
import unittest

from harness import HOST, LOGIN_OK, TIMEOUT, ServerTestCase, parse_kv, run_ringmail

USERS = {"alice": "right-password-1", "bob": "bobs-password-2"}
LOCKED = "NO [UNAVAILABLE] Too many failed authentications; try again later"
FAILED = "NO [AUTHENTICATIONFAILED] Authentication failed"


def audit_lines(srv, event=None, timeout=TIMEOUT):
    path = os.path.join(srv.data_dir, "audit.log")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [parse_kv(line) for line in f.read().splitlines()]
    return [a for a in lines if event is None or a.get("event") == event]


def wait_audit(srv, event, count, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = audit_lines(srv, event)
        if len(got) >= count:
            return got
        time.sleep(0.02)
    raise AssertionError("audit: %d %s lines, wanted %d" % (len(audit_lines(srv, event)), event,
                                                             count))


class TestBruteForce(ServerTestCase):
    def setUp(self):
        self.srv = self.server(users=USERS, threads=2, config={
            "auth_lockout_failures": 5, "auth_lockout_ip_failures": 1000,
            "auth_delay_after": 2, "auth_delay_max_ms": 400, "auth_lockout_s": 3})

    def login(self, user, password, tag="a"):
        c = self.srv.connect()
        try:
            start = time.monotonic()
            line = c.command(tag, "LOGIN %s %s" % (user, password))[-1]
            return line, time.monotonic() - start
        finally:
            c.close()

    def test_lockout_across_cores_same_for_unknown_users(self):
        # Failures from many connections (the kernel spreads them over both cores).
        answers = []
        for i in range(5):
            line, took = self.login("alice", "wrong-%d" % i)
            answers.append(line)
        self.assertEqual(answers, ["a " + FAILED] * 5)
        # Locked now: even the right password is refused, as late as the slowest failure.
        line, took = self.login("alice", USERS["alice"])
        self.assertEqual(line, "a " + LOCKED)
        self.assertGreaterEqual(took, 0.4)
        # The same for a name that does not exist.
        for i in range(5):
            self.assertEqual(self.login("ghost", "x%d" % i)[0], "a " + FAILED)
        self.assertEqual(self.login("ghost", "x")[0], "a " + LOCKED)
        # Other users are served meanwhile.
        self.assertEqual(self.login("bob", USERS["bob"])[0], "a " + LOGIN_OK)
        # The audit log has every step.
        failed = wait_audit(self.srv, "auth_failed", 10)
        self.assertEqual([a["user"] for a in failed], ["alice"] * 5 + ["ghost"] * 5)
        self.assertEqual([a["failures"] for a in failed], [str(i) for i in range(1, 6)] * 2)
        for a in failed:
            self.assertEqual((a["ip"], a["mech"], a["tls"]), ("127.0.0.1", "LOGIN", "no"))
            self.assertRegex(a["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual([a["user"] for a in wait_audit(self.srv, "lockout_user", 2)],
                         ["alice", "ghost"])
        self.assertEqual([a["user"] for a in wait_audit(self.srv, "auth_refused_locked", 2)],
                         ["alice", "ghost"])
        self.assertEqual([a["user"] for a in wait_audit(self.srv, "auth_ok", 1)], ["bob"])
        # The lockout expires auth_lockout_s after the last failure.
        time.sleep(3.2)
        self.assertEqual(self.login("alice", USERS["alice"])[0], "a " + LOGIN_OK)

    def test_failures_are_answered_later_and_later(self):
        took = [self.login("bob", "wrong-%d" % i)[1] for i in range(4)]
        self.assertLess(took[0], 0.2)
        self.assertLess(took[1], 0.2)
        self.assertGreaterEqual(took[2], 0.25)  # the third failure: 250 ms
        self.assertGreaterEqual(took[3], 0.4)   # then 500 ms, capped at 400 here
        # A success resets the user's count (the address's count goes on: delays stay).
        self.assertEqual(self.login("bob", USERS["bob"])[0], "a " + LOGIN_OK)
        self.assertEqual(self.login("bob", "wrong-again")[0], "a " + FAILED)
        self.assertEqual([a["failures"] for a in wait_audit(self.srv, "auth_failed", 5)],
                         ["1", "2", "3", "4", "1"])

    def test_unlock_from_the_admin_cli(self):
        for i in range(5):
            self.login("alice", "wrong-%d" % i)
        self.assertEqual(self.login("alice", USERS["alice"])[0], "a " + LOCKED)
        r = run_ringmail("user", "unlock", "alice", "--data-dir", self.srv.data_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^unlock of alice sent to ringmaild \(pid \d+\)\n$")
        self.srv.wait_log(r"event=user_unlocked user=alice")
        self.assertEqual(self.login("alice", USERS["alice"])[0], "a " + LOGIN_OK)
        self.assertEqual([a["user"] for a in wait_audit(self.srv, "unlock", 1)], ["alice"])
        admin = wait_audit(self.srv, "admin", 1)
        self.assertEqual((admin[-1]["action"], admin[-1]["user"]), ("user_unlock", "alice"))

    def test_parallel_attack_from_many_connections(self):
        # 8 threads guess at once; the server must lock alice out after 5 counted failures no
        # matter which core each connection landed on, and answer bob throughout. A lockout
        # window long enough to outlast the delayed refusals, however slow the build.
        self.srv = self.server(users=USERS, threads=2, config={
            "auth_lockout_failures": 5, "auth_lockout_ip_failures": 1000,
            "auth_delay_after": 2, "auth_delay_max_ms": 400, "auth_lockout_s": 120})
        results = []
        lock = threading.Lock()

        def attacker(n):
            for i in range(6):
                line, _ = self.login("alice", "guess-%d-%d" % (n, i))
                with lock:
                    results.append(line)

        threads = [threading.Thread(target=attacker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        ok_during = self.login("bob", USERS["bob"])[0]
        for t in threads:
            t.join(TIMEOUT * 4)
        self.assertEqual(ok_during, "a " + LOGIN_OK)
        self.assertEqual(len(results), 48)
        failed = [r for r in results if r == "a " + FAILED]
        locked = [r for r in results if r == "a " + LOCKED]
        self.assertEqual(len(failed) + len(locked), 48)
        # Guesses already in flight when the threshold is reached may still be counted (at most
        # one per connection): attempts are counted when they fail, so a client opening many
        # connections at once with the right password never locks itself out.
        self.assertGreaterEqual(len(failed), 5)
        self.assertLessEqual(len(failed), 5 + 8)
        self.assertEqual(self.login("alice", USERS["alice"])[0], "a " + LOCKED)
        accepts = self.srv.events("accept")
        self.assertEqual({e["core"] for e in accepts}, {"0", "1"})


if __name__ == "__main__":
    unittest.main()
