"""IMAP basics against a real ringmaild: Python's imaplib as a client, and byte-exact exchanges over
a raw socket (literals, LITERAL+, limits, pipelining, wrong-state and unknown commands)."""

import imaplib
import socket
import unittest

from harness import (AUTH_CAPS, AUTH_FAILED, CAPABILITY_LINE, GREETING, HOST, LIST_INBOX, LOGIN_OK, PREAUTH_CAPS,
                     TIMEOUT, Server, ServerTestCase, crash_lines)

USERS = {"alice": "secret", "bob": "hunter2 with spaces"}


class ImapBasicsBase(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(users=USERS)

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.srv.stop()
            lines = cls.srv.log_lines()
            if rc != 0 or crash_lines(lines):
                raise AssertionError("ringmaild exited %r; log tail:\n%s"
                                     % (rc, "\n".join(lines[-40:])))
        finally:
            cls.srv.close()

    def conn(self, **kw):
        c = self.srv.connect(**kw)
        self.addCleanup(c.close)
        return c

    def logged_in(self, user="alice"):
        c = self.conn()
        self.assertEqual(c.command("a0", "LOGIN %s %s" % (user, _astring(USERS[user]))),
                         ["a0 " + LOGIN_OK])
        return c

    def imap(self):
        m = imaplib.IMAP4(HOST, self.srv.port, timeout=TIMEOUT)
        self.addCleanup(_shutdown_quietly, m)
        return m


def _astring(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"') if (" " in s or '"' in s) else s


def _shutdown_quietly(m):
    try:
        m.shutdown()
    except OSError:
        pass


class TestImaplib(ImapBasicsBase):
    def test_greeting_and_capabilities(self):
        m = self.imap()
        self.assertEqual(m.welcome, GREETING.encode())
        self.assertEqual(m.state, "NONAUTH")
        self.assertEqual(m.capabilities, tuple(PREAUTH_CAPS.upper().split()))
        self.assertEqual(m.PROTOCOL_VERSION, "IMAP4REV1")
        typ, data = m.capability()
        self.assertEqual((typ, data), ("OK", [PREAUTH_CAPS.encode()]))

    def test_login_ok(self):
        m = self.imap()
        typ, data = m.login("alice", "secret")
        self.assertEqual((typ, data), ("OK", [LOGIN_OK[3:].encode()]))
        self.assertEqual(m.state, "AUTH")
        # A password with spaces: imaplib quotes it.
        m2 = self.imap()
        self.assertEqual(m2.login("bob", USERS["bob"])[0], "OK")

    def test_wrong_password_and_unknown_user_fail_alike(self):
        messages = []
        for user, password in (("alice", "wrong"), ("nosuchuser", "secret"), ("alice", "")):
            m = self.imap()
            with self.assertRaises(imaplib.IMAP4.error) as cm:
                m.login(user, password)
            messages.append(str(cm.exception))
            self.assertEqual(m.state, "NONAUTH")
            # The connection stays usable after a failed login.
            self.assertEqual(m.noop()[0], "OK")
            self.assertEqual(m.login("alice", "secret")[0], "OK")
        self.assertEqual(messages, [str(b"[AUTHENTICATIONFAILED] Authentication failed")] * 3)
        log = self.srv.wait_log(r"event=login_failed user=nosuchuser peer=127\.0\.0\.1 mech=LOGIN")
        self.assertTrue(log)
        self.srv.wait_log(r"event=login_failed user=alice peer=127\.0\.0\.1 mech=LOGIN")

    def test_list(self):
        m = self.imap()
        m.login("alice", "secret")
        # A new user has INBOX and the five special-use mailboxes (RFC 6154), INBOX first.
        everything = ("OK", [b'(\\HasNoChildren) "/" INBOX',
                             b'(\\HasNoChildren \\Archive) "/" Archive',
                             b'(\\HasNoChildren \\Drafts) "/" Drafts',
                             b'(\\HasNoChildren \\Junk) "/" Junk',
                             b'(\\HasNoChildren \\Sent) "/" Sent',
                             b'(\\HasNoChildren \\Trash) "/" Trash'])
        self.assertEqual(m.list(), everything)
        self.assertEqual(m.list('""', "*"), everything)
        self.assertEqual(m.list('""', "%"), everything)
        self.assertEqual(m.list('""', "I*"), ("OK", [b'(\\HasNoChildren) "/" INBOX']))
        self.assertEqual(m.list('""', "inbox"), ("OK", [b'(\\HasNoChildren) "/" INBOX']))
        self.assertEqual(m.list('""', '""'), ("OK", [b'(\\Noselect) "/" ""']))
        self.assertEqual(m.list('""', "nomatch"), ("OK", [None]))

    def test_noop(self):
        m = self.imap()
        self.assertEqual(m.noop(), ("OK", [b"NOOP completed"]))
        m.login("alice", "secret")
        self.assertEqual(m.noop(), ("OK", [b"NOOP completed"]))

    def test_logout(self):
        m = self.imap()
        m.login("alice", "secret")
        self.assertEqual(m.logout(), ("BYE", [b"Logging out"]))
        self.assertEqual(m.state, "LOGOUT")


class TestRawExchanges(ImapBasicsBase):
    def test_capability_noop_logout_exact(self):
        c = self.conn()
        self.assertEqual(c.command("a", "CAPABILITY"),
                         [CAPABILITY_LINE, "a OK CAPABILITY completed"])
        self.assertEqual(c.command("b", "NOOP"), ["b OK NOOP completed"])
        self.assertEqual(c.command("c", "LOGOUT"), ["* BYE Logging out", "c OK LOGOUT completed"])
        self.assertEqual(c.read_to_eof(), b"")

    def test_logout_after_login_closes(self):
        c = self.logged_in()
        self.assertEqual(c.command("z", "LOGOUT"), ["* BYE Logging out", "z OK LOGOUT completed"])
        self.assertTrue(c.strict_eof())

    def test_login_exact_and_list(self):
        c = self.conn()
        self.assertEqual(c.command("a1", "LOGIN alice secret"), ["a1 " + LOGIN_OK])
        self.assertEqual(c.command("a2", 'LIST "" INBOX'), [LIST_INBOX, "a2 OK LIST completed"])
        self.assertEqual(c.command("a3", 'LIST "" ""'), ['* LIST (\\Noselect) "/" ""',
                                                         "a3 OK LIST completed"])
        self.assertEqual(c.command("a4", 'LIST "" nomatch'), ["a4 OK LIST completed"])
        # Thousands of wildcards that cannot match: answered at once, not after 6^3000 tries.
        self.assertEqual(c.command("a5", 'LIST "" ' + "%" * 3000 + "Z"), ["a5 OK LIST completed"])
        self.assertEqual(c.command("a6", 'LIST "" ' + "*%" * 1000 + "Z"), ["a6 OK LIST completed"])
        self.assertEqual(c.command("a7", 'LIST "" %I%N%B%O%X%'), [LIST_INBOX, "a7 OK LIST completed"])

    def test_login_quoted_strings(self):
        c = self.conn()
        self.assertEqual(c.command("q1", 'LOGIN "bob" "hunter2 with spaces"'), ["q1 " + LOGIN_OK])
        c = self.conn()
        self.assertEqual(c.command("q2", 'LOGIN "alice" "wrong"'), ["q2 " + AUTH_FAILED])

    def test_wrong_password_and_unknown_user_exact(self):
        c = self.conn()
        self.assertEqual(c.command("f1", "LOGIN alice wrong"), ["f1 " + AUTH_FAILED])
        self.assertEqual(c.command("f2", "LOGIN nobody secret"), ["f2 " + AUTH_FAILED])
        self.assertEqual(c.command("f3", "LOGIN alice secret"), ["f3 " + LOGIN_OK])

    def test_sync_literal_login(self):
        c = self.conn()
        c.send("l1 LOGIN {5}\r\n")
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send("alice {6}\r\n")
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send("secret\r\n")
        self.assertEqual(c.read_tagged("l1"), ["l1 " + LOGIN_OK])
        self.assertEqual(c.command("l2", "NOOP"), ["l2 OK NOOP completed"])

    def test_sync_literal_password_with_specials(self):
        # A literal carries any bytes, here spaces that an atom could not.
        c = self.conn()
        c.send('l1 LOGIN bob {19}\r\n')
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send(USERS["bob"] + "\r\n")
        self.assertEqual(c.read_tagged("l1"), ["l1 " + LOGIN_OK])

    def test_literal_plus_login(self):
        c = self.conn()
        # Everything in one write: no continuation request may come back.
        c.send("p1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\np2 NOOP\r\n")
        self.assertEqual(c.read_tagged("p2"), ["p1 " + LOGIN_OK, "p2 OK NOOP completed"])

    def test_literal_plus_wrong_password(self):
        c = self.conn()
        c.send("p1 LOGIN alice {5+}\r\nwrong\r\n")
        self.assertEqual(c.read_tagged("p1"), ["p1 " + AUTH_FAILED])

    def test_sync_literal_at_limit_is_accepted(self):
        c = self.conn()
        c.send("m1 LOGIN alice {1024}\r\n")
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send(b"x" * 1024 + b"\r\n")
        self.assertEqual(c.read_tagged("m1"), ["m1 " + AUTH_FAILED])
        self.assertEqual(c.command("m2", "NOOP"), ["m2 OK NOOP completed"])

    def test_oversized_sync_literal_refused_connection_usable(self):
        c = self.conn()
        c.send("t1 LOGIN alice {1025}\r\n")
        self.assertEqual(c.readline(), "t1 NO [TOOBIG] Literal too large")
        self.assertEqual(c.command("t2", "NOOP"), ["t2 OK NOOP completed"])
        c.send("t3 LOGIN {99999}\r\n")
        self.assertEqual(c.readline(), "t3 NO [TOOBIG] Literal too large")
        self.assertEqual(c.command("t4", "LOGIN alice secret"), ["t4 " + LOGIN_OK])
        self.assertEqual(c.command("t5", 'LIST "" INBOX'), [LIST_INBOX, "t5 OK LIST completed"])

    def test_oversized_nonsync_literal_gets_bye(self):
        c = self.conn()
        c.send(b"n1 LOGIN alice {2000+}\r\n" + b"y" * 2000 + b"\r\n")
        self.assertEqual(c.lines_to_eof(), ["* BYE [TOOBIG] Literal too large"])

    def test_oversized_nonsync_literal_announcement_alone_gets_bye(self):
        c = self.conn()
        c.send("n1 LOGIN {1025+}\r\n")
        self.assertEqual(c.lines_to_eof(), ["* BYE [TOOBIG] Literal too large"])
        self.assertTrue(c.strict_eof())

    def test_literal_on_other_preauth_command(self):
        c = self.conn()
        c.send("a CAPABILITY {3}\r\n")
        self.assertEqual(c.readline(), "a BAD Literal not expected here")
        self.assertEqual(c.command("b", "NOOP"), ["b OK NOOP completed"])
        c.send("c LIST {3}\r\n")
        self.assertEqual(c.readline(), "c BAD Literal not expected here")
        self.assertEqual(c.command("d", "LOGIN alice secret"), ["d " + LOGIN_OK])

    def test_line_at_limit_is_accepted(self):
        c = self.conn()
        line = b"a NOOP " + b"x" * (8192 - len(b"a NOOP ") - 2) + b"\r\n"
        self.assertEqual(len(line), 8192)
        c.send(line)
        self.assertEqual(c.read_tagged("a"), ["a BAD Unexpected arguments"])
        self.assertEqual(c.command("b", "NOOP"), ["b OK NOOP completed"])

    def test_overlong_line_gets_bye(self):
        c = self.conn()
        c.send(b"a NOOP " + b"x" * 8193 + b"\r\n")
        self.assertEqual(c.lines_to_eof(), ["* BYE [TOOBIG] Command line too long or malformed"])

    def test_overlong_line_without_newline_gets_bye(self):
        c = self.conn()
        c.send(b"a LOGIN " + b"x" * 9000)
        self.assertEqual(c.lines_to_eof(), ["* BYE [TOOBIG] Command line too long or malformed"])

    def test_overlong_line_after_login_gets_bye(self):
        c = self.logged_in()
        c.send(b"a LIST " + b"x" * 10000 + b"\r\n")
        self.assertEqual(c.lines_to_eof(), ["* BYE [TOOBIG] Command line too long or malformed"])

    def test_pipelined_preauth_commands_answered_in_order(self):
        c = self.conn()
        c.send('a CAPABILITY\r\nb NOOP\r\nc LIST "" INBOX\r\nd FOO\r\ne NOOP\r\n')
        self.assertEqual(c.read_tagged("e"), [
            CAPABILITY_LINE, "a OK CAPABILITY completed",
            "b OK NOOP completed",
            "c BAD Not authenticated",
            "d BAD Unknown command",
            "e OK NOOP completed",
        ])

    def test_pipelined_after_login_in_same_write(self):
        for user in ("alice", "bob", "alice", "bob"):
            c = self.conn()
            c.send('a LOGIN %s %s\r\nb NOOP\r\nc LIST "" INBOX\r\nd CAPABILITY\r\ne LOGIN x y\r\n'
                   'f LOGOUT\r\n' % (user, _astring(USERS[user])))
            self.assertEqual(c.lines_to_eof(), [
                "a " + LOGIN_OK,
                "b OK NOOP completed",
                LIST_INBOX, "c OK LIST completed",
                "* CAPABILITY " + AUTH_CAPS, "d OK CAPABILITY completed",
                "e BAD Already authenticated",
                "* BYE Logging out", "f OK LOGOUT completed",
            ])

    def test_pipelined_after_failed_login_still_unauthenticated(self):
        c = self.conn()
        c.send('a LOGIN alice wrong\r\nb LIST "" INBOX\r\nc LOGIN alice secret\r\nd LIST "" INBOX\r\n')
        self.assertEqual(c.read_tagged("d"), [
            "a " + AUTH_FAILED,
            "b BAD Not authenticated",
            "c " + LOGIN_OK,
            LIST_INBOX, "d OK LIST completed",
        ])

    def test_commands_split_across_writes(self):
        c = self.conn()
        for chunk in ("a LOG", "IN ali", "ce sec", "ret\r", "\nb NO", "OP\r\n"):
            c.send(chunk)
        self.assertEqual(c.read_tagged("b"), ["a " + LOGIN_OK, "b OK NOOP completed"])

    def test_wrong_state_commands(self):
        c = self.conn()
        self.assertEqual(c.command("a", 'LIST "" INBOX'), ["a BAD Not authenticated"])
        self.assertEqual(c.command("b", "LOGIN alice"), ["b BAD Expected: LOGIN user password"])
        self.assertEqual(c.command("c", "LOGIN"), ["c BAD Expected: LOGIN user password"])
        self.assertEqual(c.command("d", "LOGIN alice secret extra"),
                         ["d BAD Expected: LOGIN user password"])
        self.assertEqual(c.command("e", "LOGIN alice secret"), ["e " + LOGIN_OK])
        self.assertEqual(c.command("f", "LOGIN alice secret"), ["f BAD Already authenticated"])
        self.assertEqual(c.command("g", "LOGIN bob x"), ["g BAD Already authenticated"])
        self.assertEqual(c.command("h", "NOOP"), ["h OK NOOP completed"])

    def test_unknown_command_and_bad_syntax(self):
        c = self.conn()
        self.assertEqual(c.command("a", "FROBNICATE"), ["a BAD Unknown command"])
        self.assertEqual(c.command("b", "SELECT INBOX"), ["b BAD Not authenticated"])
        self.assertEqual(c.command("c", "NOOP extra"), ["c BAD Unexpected arguments"])
        c.send("\r\n")
        self.assertEqual(c.readline(), "* BAD Missing or invalid tag")
        c.send("x\r\n")
        self.assertEqual(c.readline(), "x BAD Missing command")
        self.assertEqual(c.command("d", "NOOP"), ["d OK NOOP completed"])
        self.assertEqual(self.logged_in().command("e", "BOGUS"), ["e BAD Unknown command"])

    def test_case_insensitive_commands_and_user_names(self):
        c = self.conn()
        self.assertEqual(c.command("a", "capability"),
                         [CAPABILITY_LINE, "a OK CAPABILITY completed"])
        self.assertEqual(c.command("b", "NoOp"), ["b OK NOOP completed"])
        start = self.srv.log_count()
        self.assertEqual(c.command("c", "login ALICE secret"), ["c " + LOGIN_OK])
        self.assertTrue(self.srv.wait_log(r"event=login user=alice peer=", start=start))
        self.assertEqual(c.command("d", 'list "" inbox'), [LIST_INBOX, "d OK LIST completed"])
        self.assertEqual(c.command("e", "LoGoUt"), ["* BYE Logging out", "e OK LOGOUT completed"])
        # Only the user name is case-folded, not the password.
        c = self.conn()
        self.assertEqual(c.command("f", 'LOGIN "AlIcE" SECRET'), ["f " + AUTH_FAILED])
        self.assertEqual(c.command("g", 'LOGIN "AlIcE" secret'), ["g " + LOGIN_OK])

    def test_login_logged_with_user_peer_and_cores(self):
        start = self.srv.log_count()
        self.logged_in("bob")
        m = self.srv.wait_log(r"level=info event=login user=bob peer=127\.0\.0\.1 mech=LOGIN "
                              r"conn=(\d+) core=([01]) owner=([01])$", start=start)
        self.assertIsNotNone(m)

    def test_client_closing_early_is_harmless(self):
        # Half-sent commands and abrupt closes, then the server still serves.
        for data in (b"", b"a LOGIN alice", b"a LOGIN {5}\r\n", b"a LOGIN alice {6+}\r\nsec"):
            s = socket.create_connection((HOST, self.srv.port), timeout=TIMEOUT)
            s.sendall(data)
            s.close()
        c = self.conn()
        self.assertEqual(c.command("a", "LOGIN alice secret"), ["a " + LOGIN_OK])


class TestHalfClose(ServerTestCase):
    """A client may send its commands and then close its sending side (shutdown(SHUT_WR), as
    `printf ... | nc -N` does). The server should answer everything it received, then close
    (reactor.cc, on_recv: "the client closed its side; answer what it sent, then close")."""

    SCRIPT = 'a LOGIN %s %s\r\nb NOOP\r\nc LIST "" INBOX\r\nd LOGOUT\r\n'
    ANSWERS = ["a " + LOGIN_OK, "b OK NOOP completed", LIST_INBOX, "c OK LIST completed",
               "* BYE Logging out", "d OK LOGOUT completed"]

    def half_close(self, srv, script):
        c = srv.connect()
        self.addCleanup(c.close)
        c.send(script)
        c.sock.shutdown(socket.SHUT_WR)
        return c.lines_to_eof()

    def warm_cache(self, srv, user, password):
        """Logs in until both cores have cached the login (the cache is per core)."""
        cores = set()
        for _ in range(100):
            start = srv.log_count()
            srv.login(user, password).close()
            cores.add(srv.wait_log(r"event=login user=%s .* core=(\d) " % user,
                                   start=start).group(1))
            if cores == {"0", "1"}:
                return
        self.fail("logins of %s accepted only by cores %s in 100 tries" % (user, cores))

    def test_half_close_after_preauth_commands(self):
        srv = self.server()
        self.assertEqual(self.half_close(srv, 'a NOOP\r\nb LIST "" INBOX\r\nc CAPABILITY\r\n'), [
            "a OK NOOP completed", "b BAD Not authenticated", CAPABILITY_LINE,
            "c OK CAPABILITY completed"])

    def test_half_close_after_cached_login_on_owner_core(self):
        # The login is answered from the cache and the connection stays on its core.
        srv = self.server(users={"alice": "alice-pw"})
        self.warm_cache(srv, "alice", "alice-pw")  # alice: owned by core 0
        for _ in range(100):
            start = srv.log_count()
            answers = self.half_close(srv, self.SCRIPT % ("alice", "alice-pw"))
            m = srv.wait_log(r"event=login user=alice .* core=(\d) owner=(\d)$", start=start)
            if m.group(1) == m.group(2):
                self.assertEqual(answers, self.ANSWERS)
                return
        self.fail("no connection accepted by core 0 in 100 tries")

    # The FIN arrives while the LOGIN waits for its hash: the answers must still all come.
    def test_half_close_during_login_hash(self):
        # 100,000 iterations: the hash surely outlasts the FIN's arrival.
        srv = self.server(users={"slow": "slow-pw"}, iterations=100000,
                          args=["--auth-cache-ttl-s", "0"])
        self.assertEqual(self.half_close(srv, self.SCRIPT % ("slow", "slow-pw")), self.ANSWERS)

    def test_half_close_while_moving_to_the_owner_core(self):
        # The FIN may arrive before, during or after the move to the owner core: whichever it is,
        # every command sent before it is answered. Bounded: 40 connections.
        srv = self.server(users={"alice": "alice-pw", "bob": "bob-pw"})
        self.warm_cache(srv, "alice", "alice-pw")
        self.warm_cache(srv, "bob", "bob-pw")
        moved = 0
        for i in range(40):
            user = ("alice", "bob")[i % 2]
            start = srv.log_count()
            answers = self.half_close(srv, self.SCRIPT % (user, user + "-pw"))
            self.assertEqual(answers, self.ANSWERS)
            m = srv.wait_log(r"event=login user=%s .* core=(\d) owner=(\d)$" % user, start=start)
            moved += m.group(1) != m.group(2)
        self.assertGreater(moved, 0, "no connection needed a move in 40 tries")


if __name__ == "__main__":
    unittest.main()
