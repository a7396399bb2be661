"""Durability and robustness against a real ringmaild: acknowledged changes survive SIGKILL and
SIGTERM; bad commands (malformed, out of range, oversized, NUL bytes, wrong state) get a tagged BAD
or NO and leave the server serving; APPENDLIMIT; AUTHENTICATE PLAIN with and without SASL-IR.
Helpers and the one-server-per-class base are in test_mail.py."""

import base64
import imaplib
import re
import signal
import unittest

from harness import (AUTH_CAPS, AUTH_FAILED, LOGIN_OK, TIMEOUT, Server, ServerTestCase,
                     crash_lines, run_ringmail)
from test_mail import (MULTIPART, MailCase, command, list_line, literal, message,
                       response_code)


# ---- 9. Durability ---------------------------------------------------------------------------

class TestDurability(ServerTestCase):
    USERS = {"dura": "pw-dura"}

    def killed_server(self):
        """A server whose cleanup does not insist on exit code 0 (it will be killed)."""
        srv = Server(users=self.USERS)
        self.addCleanup(srv.close)
        return srv

    def login(self, srv):
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN dura pw-dura"), ["l " + LOGIN_OK])
        return c

    def test_append_and_store_survive_sigkill(self):
        srv = self.killed_server()
        c = self.login(srv)
        data = MULTIPART
        c.send(b'a APPEND INBOX (\\Flagged $Keep) " 5-Mar-2024 14:30:00 +0200" {%d+}\r\n%s\r\n'
               % (len(data), data))
        appended = c.read_tagged("a")
        v = response_code(appended, "APPENDUID")
        self.assertEqual(appended, ["a OK [APPENDUID %d 1] APPEND completed" % v])
        self.assertEqual(c.command("b", "SELECT INBOX")[-1], "b OK [READ-WRITE] SELECT completed")
        self.assertEqual(c.command("c", "STORE 1 +FLAGS (\\Answered)"),
                         ["* 1 FETCH (FLAGS (\\Answered \\Flagged $Keep))", "c OK STORE completed"])
        m2 = message(2)
        c.send(b"d APPEND Archive {%d+}\r\n%s\r\n" % (len(m2), m2))
        self.assertRegex(c.read_tagged("d")[-1], r"^d OK \[APPENDUID \d+ 1\] APPEND completed$")
        srv.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=TIMEOUT)
        self.assertEqual(crash_lines(srv.log_lines()), [])

        again = self.server(users={}, data_dir=srv.data_dir)
        e = self.login(again)
        lines = e.command("s", "SELECT INBOX")
        self.assertIn("* 1 EXISTS", lines)
        self.assertIn("* OK [UIDVALIDITY %d] UIDs valid" % v, lines)
        self.assertIn("* OK [UIDNEXT 2] Predicted next UID", lines)
        self.assertEqual(command(e, "f", "FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE "
                                 "BODY.PEEK[])"), [
            '* 1 FETCH (UID 1 FLAGS (\\Answered \\Flagged $Keep) INTERNALDATE " 5-Mar-2024 '
            '12:30:00 +0000" RFC822.SIZE %d BODY[] %s)' % (len(data), literal(data)),
            "f OK FETCH completed"])
        self.assertEqual(e.command("g", "STATUS Archive (MESSAGES)"),
                         ["* STATUS Archive (MESSAGES 1)", "g OK STATUS completed"])
        fsck = run_ringmail("fsck", "--data-dir", srv.data_dir)
        self.assertEqual(fsck.returncode, 0, fsck)

    def test_move_and_expunge_survive_sigterm(self):
        srv = self.server(users=self.USERS)
        c = self.login(srv)
        for i in range(1, 4):
            m = message(i)
            c.send(b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(m), m))
            self.assertTrue(c.read_tagged("a%d" % i)[-1].startswith("a%d OK [APPENDUID " % i))
        self.assertEqual(c.command("s", "SELECT INBOX")[-1], "s OK [READ-WRITE] SELECT completed")
        self.assertEqual(c.command("m", "MOVE 1 Trash")[-1], "m OK MOVE completed")
        self.assertEqual(c.command("d", "STORE 1 +FLAGS.SILENT (\\Deleted \\Seen)"),
                         ["d OK STORE completed"])
        self.assertEqual(c.command("e", "EXPUNGE"), ["* 1 EXPUNGE", "e OK EXPUNGE completed"])
        self.assertEqual(c.command("f", "STORE 1 +FLAGS (Kept)"),
                         ["* 1 FETCH (FLAGS (Kept))", "f OK STORE completed"])
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(c.lines_to_eof()[-1:], ["* BYE [UNAVAILABLE] Server shutting down"])

        again = self.server(users={}, data_dir=srv.data_dir)
        e = self.login(again)
        self.assertIn("* 1 EXISTS", e.command("s", "SELECT INBOX"))
        self.assertEqual(e.command("f", "FETCH 1:* (UID FLAGS)"),
                         ["* 1 FETCH (UID 3 FLAGS (Kept))", "f OK FETCH completed"])
        self.assertEqual(e.command("t", "STATUS Trash (MESSAGES UIDNEXT)"),
                         ["* STATUS Trash (MESSAGES 1 UIDNEXT 2)", "t OK STATUS completed"])


# ---- 10. Bad input ---------------------------------------------------------------------------

class TestBadInput(MailCase):
    # Long enough lines for a 10,000-deep SEARCH; a small APPENDLIMIT to test it cheaply.
    APPENDLIMIT = 4096
    CONFIG = {"line_bytes_max": 65536, "message_bytes_max": APPENDLIMIT}

    def setUp(self):
        super().setUp()
        self.c = self.login()
        self.v, _ = self.fill(self.c, "INBOX", [(message(i), "") for i in range(1, 4)])
        self.assertEqual(self.c.command("s", "SELECT INBOX")[-1],
                         "s OK [READ-WRITE] SELECT completed")

    def assertServing(self):
        """Another connection is served: login, examine, fetch."""
        d = self.login()
        self.assertEqual(d.command("s", "EXAMINE INBOX")[-1], "s OK [READ-ONLY] EXAMINE completed")
        self.assertEqual(d.command("f", "FETCH 1:3 UID"),
                         ["* %d FETCH (UID %d)" % (i, i) for i in range(1, 4)]
                         + ["f OK FETCH completed"])

    def assertRefused(self, lines, tag, what):
        self.assertEqual(len(lines), 1, (what, lines))
        self.assertRegex(lines[0], r"^%s (BAD|NO) \S" % re.escape(tag), what)

    def test_bad_commands_get_a_tagged_bad_or_no(self):
        c = self.c
        table = [
            ("FETCH with unbalanced parentheses", "FETCH 1 (FLAGS UID"),
            ("FETCH with a closing parenthesis too many", "FETCH 1 (FLAGS))"),
            ("FETCH with an unknown item", "FETCH 1 (FLAGS BOGUS)"),
            ("FETCH with an unterminated section", "FETCH 1 BODY[1"),
            ("FETCH with a bad partial", "FETCH 1 BODY[]<1.0>"),
            ("FETCH without items", "FETCH 1"),
            ("STORE with an unknown system flag", "STORE 1 +FLAGS (\\Bogus)"),
            ("STORE of \\Recent", "STORE 1 +FLAGS (\\Recent)"),
            ("STORE with an unknown data item", "STORE 1 SETFLAGS (\\Seen)"),
            ("SEARCH with an unknown key", "SEARCH BOGUS"),
            ("SEARCH nested 10,000 deep", "SEARCH " + "(" * 10000 + "ALL" + ")" * 10000),
            ("SEARCH NOT 10,000 times", "SEARCH " + "NOT " * 10000 + "ALL"),
            ("SEARCH OR 5,000 deep", "SEARCH " + "OR ALL " * 5000 + "ALL"),
            ("FETCH of sequence number 0", "FETCH 0 FLAGS"),
            ("FETCH of a range from 0", "FETCH 0:2 FLAGS"),
            ("STORE of sequence number 0", "STORE 0 +FLAGS (\\Seen)"),
            ("FETCH beyond EXISTS", "FETCH 4 FLAGS"),
            ("FETCH of a range beyond EXISTS", "FETCH 2:4 FLAGS"),
            ("STORE beyond EXISTS", "STORE 9 +FLAGS (\\Seen)"),
            ("COPY beyond EXISTS", "COPY 4 Trash"),
            ("MOVE beyond EXISTS", "MOVE 1:99 Trash"),
            ("a malformed sequence set", "FETCH 1,,2 FLAGS"),
            ("a sequence number beyond 32 bits", "FETCH 4294967296 FLAGS"),
            ("APPEND to a missing mailbox", "APPEND Nowhere {5+}\r\nhello"),
            ("APPEND with an impossible date", 'APPEND INBOX "31-Feb-2024 00:00:00 +0000" '
                                               '{5+}\r\nhello'),
            ("APPEND with a bad date", 'APPEND INBOX "1-Foo-2024 00:00:00 +0000" {5+}\r\nhello'),
            ("APPEND with \\Recent", "APPEND INBOX (\\Recent) {5+}\r\nhello"),
            ("APPEND of an empty message", "APPEND INBOX {0+}\r\n"),
            ("UID with an unknown command", "UID FROB 1"),
            ("ENABLE without arguments", "ENABLE"),
            ("LIST with one argument", 'LIST ""'),
            ("CREATE with an empty name", 'CREATE ""'),
            ("LIST-STATUS with an unknown item", 'LIST "" * RETURN (STATUS (BOGUS))'),
            # RFC 9051 section 9 (seq-number): "The server should respond with a tagged BAD
            # response to a command that uses a message sequence number greater than the number
            # of messages in the selected mailbox."
            ("SEARCH of a sequence number beyond EXISTS", "SEARCH 4"),
            # Last: a failed SELECT leaves the selected state (RFC 9051 section 6.3.2).
            ("SELECT of a missing mailbox", "EXAMINE Nowhere"),
        ]
        for i, (what, cmd) in enumerate(table):
            with self.subTest(what):
                tag = "b%d" % i
                self.assertRefused(command(c, tag, cmd), tag, what)
        self.assertEqual(c.command("n", "FETCH 1 UID"), ["n BAD No mailbox selected"])
        self.assertServing()

    def test_nul_bytes_are_refused(self):
        c = self.c
        # RFC 9051 section 9: CHAR8 (and so a literal's content) excludes NUL; atoms and quoted
        # strings cannot hold it either.
        table = [
            ("NUL in a command line", b"FETCH 1 (FLAGS\x00)"),
            ("NUL after the command name", b"NOOP\x00"),
            ("NUL in a quoted string", b'SEARCH SUBJECT "a\x00b"'),
            ("NUL in a literal search string", b"SEARCH SUBJECT {3+}\r\na\x00b"),
            ("NUL in an APPEND literal (not literal8)", b"APPEND INBOX {5+}\r\na\x00b\r\n"),
        ]
        for i, (what, cmd) in enumerate(table):
            with self.subTest(what):
                tag = "z%d" % i
                c.send(tag.encode() + b" " + cmd + b"\r\n")
                self.assertRefused(c.read_tagged(tag), tag, what)
        self.assertEqual(c.command("n", "NOOP")[-1], "n OK NOOP completed")
        self.assertServing()

    def test_wrong_state_commands(self):
        d = self.conn()
        for i, cmd in enumerate(("SELECT INBOX", "FETCH 1 FLAGS", "APPEND INBOX {1+}\r\nx",
                                 "LIST \"\" *", "IDLE", "ENABLE CONDSTORE", "UID FETCH 1 FLAGS")):
            tag = "p%d" % i
            lines = d.command(tag, cmd)
            self.assertEqual(len(lines), 1, (cmd, lines))
            self.assertTrue(lines[0].startswith(tag + " BAD "), (cmd, lines))
        self.assertEqual(d.command("q", "LOGIN %s pw-%s" % (self.user, self.user)),
                         ["q " + self.login_ok])
        for i, cmd in enumerate(("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL",
                                 "EXPUNGE", "UID EXPUNGE 1", "CLOSE", "UNSELECT", "CHECK",
                                 "COPY 1 Trash", "MOVE 1 Trash", "UID SEARCH ALL",
                                 "LOGIN a b", "AUTHENTICATE PLAIN")):
            tag = "r%d" % i
            self.assertEqual(d.command(tag, cmd),
                             [tag + (" BAD Already authenticated" if cmd.startswith(("LOGIN",
                                                                                     "AUTH"))
                                     else " BAD No mailbox selected")], cmd)
        self.assertEqual(d.command("t", "NOOP"), ["t OK NOOP completed"])
        self.assertServing()

    def test_append_over_appendlimit(self):
        c = self.c
        # At the limit: accepted.
        c.send(b"a APPEND INBOX {%d}\r\n" % self.APPENDLIMIT)
        self.assertEqual(c.readline(), "+ Ready for literal data")
        body = b"Subject: big\r\n\r\n" + b"x" * (self.APPENDLIMIT - 18) + b"\r\n"
        self.assertEqual(len(body), self.APPENDLIMIT)
        c.send(body + b"\r\n")
        self.assertEqual(c.read_tagged("a"), ["* 4 EXISTS", "a OK [APPENDUID %d 4] APPEND "
                                              "completed" % self.v])
        # One byte more, synchronizing: refused at once with TOOBIG, no "+" (RFC 7889).
        c.send(b"b APPEND INBOX {%d}\r\n" % (self.APPENDLIMIT + 1))
        line = c.readline()
        self.assertRegex(line, r"^b NO \[TOOBIG\] ")
        self.assertEqual(c.command("c", "NOOP"), ["c OK NOOP completed"])
        c.send(b"d APPEND INBOX (\\Seen) {999999999}\r\n")
        self.assertRegex(c.readline(), r"^d NO \[TOOBIG\] ")
        self.assertEqual(self.status(c, "INBOX", "MESSAGES"), {"MESSAGES": 4})
        # Non-synchronizing: the bytes come anyway; the server may only hang up.
        e = self.login()
        e.send(b"e APPEND INBOX {%d+}\r\n" % (self.APPENDLIMIT + 1) + b"y" * (self.APPENDLIMIT + 1)
               + b"\r\n")
        self.assertEqual(e.lines_to_eof(), ["* BYE [TOOBIG] Literal too large"])
        self.assertServing()

    def test_a_million_ranges_is_too_long_a_line(self):
        d = self.login()
        self.assertEqual(d.command("s", "SELECT INBOX")[-1], "s OK [READ-WRITE] SELECT completed")
        line = b"m FETCH " + b",".join(b"%d:%d" % (i, i) for i in range(1, 1000001)) + b" FLAGS\r\n"
        try:
            for i in range(0, len(line), 1 << 16):
                d.send(line[i:i + (1 << 16)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up before reading it all
        try:
            lines = d.lines_to_eof()
        except ConnectionResetError:
            lines = []
        # Either the BYE arrived, or the reset that follows unread input overtook it.
        self.assertIn(lines, ([], ["* BYE [TOOBIG] Command line too long or malformed"]))
        self.assertServing()


# ---- 11. AUTHENTICATE PLAIN ------------------------------------------------------------------

class TestAuthenticate(MailCase):
    AUTH_OK = "OK [CAPABILITY %s] AUTHENTICATE completed" % AUTH_CAPS

    def plain(self, authz, user, password):
        return base64.b64encode(b"%s\x00%s\x00%s" % (authz.encode(), user.encode(),
                                                     password.encode())).decode()

    def test_plain_with_initial_response(self):
        c = self.conn()
        self.assertEqual(c.command("a", "AUTHENTICATE PLAIN " +
                                   self.plain("", self.user, self.password)),
                         ["a " + self.AUTH_OK])
        self.assertEqual(c.command("b", 'LIST "" INBOX'), [list_line("INBOX"),
                                                           "b OK LIST completed"])
        # authzid equal to the user is allowed; user names fold to lower case.
        d = self.conn()
        self.assertEqual(d.command("c", "authenticate plain " +
                                   self.plain(self.user, self.user.upper(), self.password)),
                         ["c " + self.AUTH_OK])

    def test_plain_with_continuation(self):
        c = self.conn()
        c.send("a AUTHENTICATE PLAIN\r\n")
        self.assertEqual(c.readline(), "+ ")
        c.send(self.plain("", self.user, self.password) + "\r\n")
        self.assertEqual(c.read_tagged("a"), ["a " + self.AUTH_OK])
        self.assertEqual(c.command("b", "SELECT INBOX")[-1], "b OK [READ-WRITE] SELECT completed")
        # imaplib sends the response after the continuation, as here.
        m = self.imap()
        user, password = self.user, self.password
        typ, data = m.authenticate("PLAIN", lambda _: b"\x00%s\x00%s" % (user.encode(),
                                                                       password.encode()))
        self.assertEqual((typ, data), ("OK", [self.AUTH_OK[3:].encode()]))
        self.assertEqual(m.select("INBOX"), ("OK", [b"0"]))

    def test_plain_failures(self):
        c = self.conn()
        self.assertEqual(c.command("a", "AUTHENTICATE PLAIN " +
                                   self.plain("", self.user, "wrong")), ["a " + AUTH_FAILED])
        self.assertEqual(c.command("b", "AUTHENTICATE PLAIN " +
                                   self.plain("", "nobody", self.password)),
                         ["b " + AUTH_FAILED])
        c.send("c AUTHENTICATE PLAIN\r\n")
        self.assertEqual(c.readline(), "+ ")
        c.send(self.plain("", self.user, "wrong") + "\r\n")
        self.assertEqual(c.read_tagged("c"), ["c " + AUTH_FAILED])
        # Cancelled with "*" (RFC 9051 section 6.2.2).
        c.send("d AUTHENTICATE PLAIN\r\n")
        self.assertEqual(c.readline(), "+ ")
        c.send("*\r\n")
        self.assertEqual(c.read_tagged("d"), ["d BAD Authentication cancelled"])
        self.assertEqual(c.command("e", "AUTHENTICATE PLAIN " +
                                   self.plain("someone", self.user, self.password)),
                         ["e NO [AUTHORIZATIONFAILED] No authorization as another user"])
        self.assertEqual(c.command("f", "AUTHENTICATE CRAM-MD5"),
                         ["f NO [CANNOT] Unsupported authentication mechanism"])
        self.assertEqual(c.command("g", "AUTHENTICATE PLAIN not-base64!"),
                         ["g BAD Invalid base64 in the SASL response"])
        self.assertEqual(c.command("h", "SELECT INBOX"), ["h BAD Not authenticated"])
        # Still usable: the right password now works.
        self.assertEqual(c.command("i", "AUTHENTICATE PLAIN " +
                                   self.plain("", self.user, self.password)),
                         ["i " + self.AUTH_OK])
        m = self.imap()
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.authenticate("PLAIN", lambda _: b"\x00%s\x00wrong" % self.user.encode())
        self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
