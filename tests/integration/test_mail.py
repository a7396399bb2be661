"""Mail over IMAP against a real ringmaild: APPEND and every FETCH item, STORE, COPY and MOVE,
EXPUNGE, with Python's imaplib as a real client too. This file also holds what the other
test_mail_*.py files share: message fixtures, response helpers, and MailCase.

    test_mail_search.py      SEARCH, ESEARCH, SEARCHRES; IMAP4rev2 forms
    test_mail_sessions.py    two sessions of one user (IDLE, when expunges may be told);
                             CONDSTORE and QRESYNC
    test_mail_mailboxes.py   CREATE, LIST, RENAME, DELETE, LSUB, STATUS, mailbox names
    test_mail_robustness.py  durability across SIGKILL/SIGTERM, bad input, AUTHENTICATE PLAIN

Exchanges are byte-exact over a raw socket (a response that spans literals is read as one string,
the literal's bytes inline). Where an RFC leaves a value to the server (UIDVALIDITY,
mod-sequences), a test reads it from the server's own answers, checks the relations the RFC
requires, and then compares the whole response exactly.

Each test class runs one server; each test logs in as a user of its own (MailCase), so tests do
not see each other's mail.
"""

import calendar
import datetime
import imaplib
import re
import time
import unittest

from harness import HOST, ITERATIONS, LOGIN_OK, TIMEOUT, Server, crash_lines, run_ringmail

DEFAULT_APPENDLIMIT = 67108864
SYSTEM_FLAGS = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"
DEFAULT_MAILBOXES = ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
SPECIAL_USE = {"Archive": "\\Archive", "Drafts": "\\Drafts", "Junk": "\\Junk", "Sent": "\\Sent",
               "Trash": "\\Trash"}

# A multipart message with a preamble, a plain part and a quoted-printable HTML part.
MULTIPART = (b"From: Alice Example <alice@example.com>\r\n"
             b"To: bob@example.org\r\n"
             b"Subject: Multipart test\r\n"
             b"Date: Mon, 4 Mar 2024 10:00:00 +0100\r\n"
             b"Message-ID: <m1@example.com>\r\n"
             b"MIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
             b"\r\n"
             b"preamble\r\n"
             b"--XX\r\n"
             b"Content-Type: text/plain; charset=us-ascii\r\n"
             b"\r\n"
             b"Hello world, plain part.\r\n"
             b"--XX\r\n"
             b"Content-Type: text/html; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: quoted-printable\r\n"
             b"\r\n"
             b"<p>Hello</p>\r\n"
             b"--XX--\r\n")
MULTIPART_HEADER_END = MULTIPART.index(b"\r\n\r\n") + 4
MULTIPART_ENVELOPE = ('("Mon, 4 Mar 2024 10:00:00 +0100" "Multipart test" '
                      '(("Alice Example" NIL "alice" "example.com")) '
                      '(("Alice Example" NIL "alice" "example.com")) '
                      '(("Alice Example" NIL "alice" "example.com")) '
                      '((NIL NIL "bob" "example.org")) NIL NIL NIL "<m1@example.com>")')
MULTIPART_BODYSTRUCTURE = (
    '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 24 0 NIL NIL NIL NIL)'
    '("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 12 0 NIL NIL NIL NIL) '
    '"mixed" ("boundary" "XX") NIL NIL NIL)')
MULTIPART_BODY = ('(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 24 0)'
                  '("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 12 0) "mixed")')


def message(n, subject="Hello", body=None, sender=None, date=None, extra=""):
    """A small RFC 5322 message (bytes) numbered n."""
    body = "body text %d" % n if body is None else body
    sender = sender or "Sender %d <s%d@example.com>" % (n, n)
    head = "From: %s\r\nTo: r@example.org\r\nSubject: %s\r\n" % (sender, subject)
    if date:
        head += "Date: %s\r\n" % date
    return (head + extra + "\r\n" + body + "\r\n").encode()


def literal(data):
    """How a literal appears inside a response string read by read_responses."""
    if isinstance(data, str):
        data = data.encode()
    return "{%d}\r\n%s" % (len(data), data.decode("latin-1"))


def read_responses(c, tag, timeout=None):
    """The responses up to and including the one tagged `tag`. A response that carries literals
    is one string: "... {n}" CRLF, the n bytes, and the rest of the response."""
    deadline = time.monotonic() + (c.timeout if timeout is None else timeout)

    def left():
        return max(0.0, deadline - time.monotonic())

    out = []
    while True:
        resp = c.readline(timeout=left())
        while True:
            m = re.search(r"~?\{(\d+)\}$", resp)
            if not m:
                break
            data = c.read_exact(int(m.group(1)), timeout=left()).decode("latin-1")
            resp += "\r\n" + data + c.readline(timeout=left())
        out.append(resp)
        if resp.startswith(tag + " "):
            return out


def command(c, tag, text):
    """Like ImapConn.command, but literals in the responses are read by their length."""
    c.send("%s %s\r\n" % (tag, text))
    return read_responses(c, tag)


def select_response(tag, exists, uidvalidity, uidnext, modseq, keywords=(), unseen=None,
                    read_only=False, rev2=False, name="INBOX", closed=False,
                    list_attrs="\\HasNoChildren"):
    """The exact answer to SELECT/EXAMINE of IMAP4rev1 (or rev2) as ringmail gives it."""
    flags = " ".join([SYSTEM_FLAGS] + list(keywords))
    lines = ["* OK [CLOSED] Previous mailbox closed"] if closed else []
    lines += ["* FLAGS (%s)" % flags,
              "* OK [PERMANENTFLAGS (%s)] Flags permitted" % ("" if read_only else flags + " \\*"),
              "* %d EXISTS" % exists]
    if not rev2:
        lines.append("* 0 RECENT")
        if unseen:
            lines.append("* OK [UNSEEN %d] First unseen" % unseen)
    lines += ["* OK [UIDVALIDITY %d] UIDs valid" % uidvalidity,
              "* OK [UIDNEXT %d] Predicted next UID" % uidnext,
              "* OK [HIGHESTMODSEQ %d] Highest" % modseq]
    if rev2:
        # RFC 9051 section 6.3.2: the attributes LIST would show for the mailbox.
        lines.append('* LIST (%s) "/" %s' % (list_attrs, name))
    lines.append("%s OK [%s] %s completed" % (tag, "READ-ONLY" if read_only else "READ-WRITE",
                                             "EXAMINE" if read_only else "SELECT"))
    return lines


def response_code(lines, code):
    """The number in "[CODE n]" of the first response that has one."""
    for line in lines:
        m = re.search(r"\[%s (\d+)[] ]" % code, line)
        if m:
            return int(m.group(1))
    raise AssertionError("no [%s n] in %r" % (code, lines))


def status_values(line):
    """{"MESSAGES": 3, ...} from a "* STATUS name (...)" line."""
    m = re.match(r'\* STATUS .* \(([A-Z0-9 -]*)\)$', line)
    if not m:
        raise AssertionError("not a STATUS response: %r" % line)
    words = m.group(1).split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def simulate_expunges(uids, lines):
    """The client's view (a list of UIDs by sequence number) after applying "* n EXPUNGE"
    responses one after the other, as RFC 9051 section 7.5.1 says a client must."""
    uids = list(uids)
    for line in lines:
        m = re.match(r"\* (\d+) EXPUNGE$", line)
        if not m:
            raise AssertionError("not an EXPUNGE response: %r" % line)
        n = int(m.group(1))
        if not 1 <= n <= len(uids):
            raise AssertionError("EXPUNGE %d with only %d messages: %r" % (n, len(uids), lines))
        del uids[n - 1]
    return uids


def list_line(name, attrs="\\HasNoChildren", verb="LIST"):
    return '* %s (%s) "/" %s' % (verb, attrs, name)


def default_list():
    """The LIST lines of a new user's mailboxes."""
    return [list_line(n, " ".join(filter(None, ["\\HasNoChildren", SPECIAL_USE.get(n, "")])))
            for n in DEFAULT_MAILBOXES]


def import_users(data_dir, names):
    r = run_ringmail("user", "import", "--data-dir", data_dir, "--iterations", str(ITERATIONS),
                     stdin_text="".join("%s pw-%s\n" % (n, n) for n in names))
    if r.returncode != 0:
        raise RuntimeError("ringmail user import failed: %r" % r)


def _shutdown_quietly(m):
    try:
        m.shutdown()
    except OSError:
        pass


class MailCase(unittest.TestCase):
    """One server per class; every test gets a user of its own (self.user)."""

    CONFIG = None
    USER_COUNT = 24
    APPENDLIMIT = DEFAULT_APPENDLIMIT
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(config=cls.CONFIG, start=False)
        try:
            prefix = re.sub(r"[^a-z0-9]", "", cls.__name__.lower())
            cls.free_users = ["%s-%d" % (prefix, i) for i in range(cls.USER_COUNT)]
            import_users(cls.srv.data_dir, cls.free_users)
            cls.srv.start()
        except BaseException:
            cls.srv.close()
            raise
        cls.login_ok = LOGIN_OK.replace("APPENDLIMIT=%d" % DEFAULT_APPENDLIMIT,
                                        "APPENDLIMIT=%d" % cls.APPENDLIMIT)

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

    def setUp(self):
        if not type(self).free_users:
            raise RuntimeError("raise USER_COUNT of %s" % type(self).__name__)
        self.user = type(self).free_users.pop(0)
        self.password = "pw-" + self.user

    # -- connections --

    def conn(self):
        c = self.srv.connect()
        self.addCleanup(c.close)
        return c

    def login(self, user=None):
        """A raw connection logged in as `user` (default: this test's user)."""
        user = user or self.user
        c = self.conn()
        self.assertEqual(c.command("l0", "LOGIN %s pw-%s" % (user, user)),
                         ["l0 " + self.login_ok])
        return c

    def imap(self):
        m = imaplib.IMAP4(HOST, self.srv.port, timeout=TIMEOUT)
        self.addCleanup(_shutdown_quietly, m)
        return m

    # -- mail --

    def append(self, c, mailbox, data, flags="", date="", tag="A"):
        """APPEND with a LITERAL+ literal; returns the response lines."""
        args = mailbox
        if flags:
            args += " " + flags
        if date:
            args += ' "%s"' % date
        c.send(("%s APPEND %s {%d+}\r\n" % (tag, args, len(data))).encode() + data + b"\r\n")
        return c.read_tagged(tag)

    def fill(self, c, mailbox, messages):
        """Appends (data, flags) pairs; returns (uidvalidity, [uids])."""
        uidvalidity, uids = None, []
        for data, flags in messages:
            lines = self.append(c, mailbox, data, flags)
            m = re.match(r"A OK \[APPENDUID (\d+) (\d+)\] APPEND completed$", lines[-1])
            self.assertIsNotNone(m, lines)
            uidvalidity = int(m.group(1))
            uids.append(int(m.group(2)))
        return uidvalidity, uids

    def select(self, c, mailbox="INBOX", tag="s", verb="SELECT", params=""):
        """SELECT (or EXAMINE); asserts OK and returns (lines, UIDVALIDITY, UIDNEXT,
        HIGHESTMODSEQ)."""
        lines = c.command(tag, "%s %s%s" % (verb, mailbox, params))
        self.assertTrue(lines[-1].startswith(tag + " OK ["), lines)
        return (lines, response_code(lines, "UIDVALIDITY"), response_code(lines, "UIDNEXT"),
                response_code(lines, "HIGHESTMODSEQ"))

    def status(self, c, mailbox, items, tag="st"):
        lines = c.command(tag, "STATUS %s (%s)" % (mailbox, items))
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[1], tag + " OK STATUS completed")
        return status_values(lines[0])


# ---- 1. APPEND and FETCH ---------------------------------------------------------------------

class TestAppendFetch(MailCase):
    def test_appenduid_matches_uidnext_and_uidvalidity(self):
        c = self.login()
        before = self.status(c, "INBOX", "MESSAGES UIDNEXT UIDVALIDITY")
        self.assertEqual(before["MESSAGES"], 0)
        v, n = before["UIDVALIDITY"], before["UIDNEXT"]
        self.assertGreater(v, 0)
        self.assertEqual(self.append(c, "INBOX", message(1)),
                         ["A OK [APPENDUID %d %d] APPEND completed" % (v, n)])
        # MULTIAPPEND (RFC 3502): one command, consecutive UIDs, one APPENDUID with their set;
        # flags and date belong to the message they precede.
        m2, m3 = message(2), message(3)
        c.send(b"M APPEND INBOX (\\Seen) {%d+}\r\n%s {%d+}\r\n%s\r\n"
               % (len(m2), m2, len(m3), m3))
        self.assertEqual(c.read_tagged("M"),
                         ["M OK [APPENDUID %d %d:%d] APPEND completed" % (v, n + 1, n + 2)])
        self.assertEqual(self.status(c, "INBOX", "MESSAGES UIDNEXT UIDVALIDITY UNSEEN"),
                         {"MESSAGES": 3, "UIDNEXT": n + 3, "UIDVALIDITY": v, "UNSEEN": 2})
        lines, uidvalidity, uidnext, modseq = self.select(c)
        self.assertEqual((uidvalidity, uidnext), (v, n + 3))
        self.assertEqual(lines, select_response("s", 3, v, n + 3, modseq, unseen=1))
        self.assertEqual(c.command("f", "FETCH 1:* (UID FLAGS)"), [
            "* 1 FETCH (UID %d FLAGS ())" % n,
            "* 2 FETCH (UID %d FLAGS (\\Seen))" % (n + 1),
            "* 3 FETCH (UID %d FLAGS ())" % (n + 2),
            "f OK FETCH completed"])
        # APPEND to the selected mailbox: EXISTS comes before the tagged OK.
        self.assertEqual(self.append(c, "INBOX", message(4)),
                         ["* 4 EXISTS", "A OK [APPENDUID %d %d] APPEND completed" % (v, n + 3)])
        # Another mailbox has its own UIDVALIDITY and UIDs.
        drafts = self.status(c, "Drafts", "UIDNEXT UIDVALIDITY")
        self.assertEqual(self.append(c, "Drafts", message(5), "(\\Draft)"),
                         ["A OK [APPENDUID %d %d] APPEND completed"
                          % (drafts["UIDVALIDITY"], drafts["UIDNEXT"])])

    def test_fetch_every_item_of_a_multipart_message(self):
        c = self.login()
        lines = self.append(c, "INBOX", MULTIPART, "(\\Flagged $Work)",
                            " 5-Mar-2024 14:30:00 +0200")
        v = response_code(lines, "APPENDUID")
        lines, _, _, modseq = self.select(c)
        self.assertEqual(lines, select_response("s", 1, v, 2, modseq, keywords=["$Work"], unseen=1))
        self.assertEqual(command(c, "f", "FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE "
                                 "BODYSTRUCTURE BODY UID)"), [
            '* 1 FETCH (FLAGS (\\Flagged $Work) INTERNALDATE " 5-Mar-2024 12:30:00 +0000" '
            'RFC822.SIZE %d ENVELOPE %s BODYSTRUCTURE %s BODY %s UID 1)'
            % (len(MULTIPART), MULTIPART_ENVELOPE, MULTIPART_BODYSTRUCTURE, MULTIPART_BODY),
            "f OK FETCH completed"])
        # The macros (RFC 9051 section 6.4.5).
        self.assertEqual(command(c, "g", "FETCH 1 FAST"), [
            '* 1 FETCH (FLAGS (\\Flagged $Work) INTERNALDATE " 5-Mar-2024 12:30:00 +0000" '
            'RFC822.SIZE %d)' % len(MULTIPART), "g OK FETCH completed"])
        self.assertEqual(command(c, "h", "FETCH 1 ALL"), [
            '* 1 FETCH (FLAGS (\\Flagged $Work) INTERNALDATE " 5-Mar-2024 12:30:00 +0000" '
            'RFC822.SIZE %d ENVELOPE %s)' % (len(MULTIPART), MULTIPART_ENVELOPE),
            "h OK FETCH completed"])
        self.assertEqual(command(c, "i", "UID FETCH 1 (FLAGS)"), [
            "* 1 FETCH (UID 1 FLAGS (\\Flagged $Work))", "i OK FETCH completed"])

    def test_fetch_body_sections_and_partials(self):
        c = self.login()
        self.append(c, "INBOX", MULTIPART)
        self.select(c)
        header = MULTIPART[:MULTIPART_HEADER_END]
        text = MULTIPART[MULTIPART_HEADER_END:]
        part2_mime = (b"Content-Type: text/html; charset=utf-8\r\n"
                      b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
        self.assertEqual(command(c, "f", "FETCH 1 (BODY.PEEK[] BODY.PEEK[1] BODY.PEEK[2.MIME] "
                                 "BODY.PEEK[2] BODY.PEEK[HEADER.FIELDS (Subject)] "
                                 "BODY.PEEK[TEXT]<0.5>)"), [
            "* 1 FETCH (BODY[] %s BODY[1] %s BODY[2.MIME] %s BODY[2] %s "
            "BODY[HEADER.FIELDS (Subject)] %s BODY[TEXT]<0> %s)" % (
                literal(MULTIPART), literal("Hello world, plain part."), literal(part2_mime),
                literal("<p>Hello</p>"), literal("Subject: Multipart test\r\n\r\n"),
                literal("pream")),
            "f OK FETCH completed"])
        self.assertEqual(command(c, "g", "FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
                                 "BODY.PEEK[HEADER.FIELDS.NOT (From To Date Message-ID "
                                 "MIME-Version Content-Type)] BODY.PEEK[1]<6.5> "
                                 "BODY.PEEK[]<100000.10> RFC822.HEADER)"), [
            '* 1 FETCH (BODY[HEADER] %s BODY[TEXT] %s BODY[HEADER.FIELDS.NOT (From To Date '
            'Message-ID MIME-Version Content-Type)] %s BODY[1]<6> %s BODY[]<100000> "" '
            'RFC822.HEADER %s)' % (literal(header), literal(text),
                                   literal("Subject: Multipart test\r\n\r\n"), literal("world"),
                                   literal(header)),
            "g OK FETCH completed"])
        # Header field names match case-insensitively and are echoed as the client wrote them.
        self.assertEqual(command(c, "h", "FETCH 1 BODY.PEEK[HEADER.FIELDS (sUBJECT x-absent)]"), [
            "* 1 FETCH (BODY[HEADER.FIELDS (sUBJECT x-absent)] %s)"
            % literal("Subject: Multipart test\r\n\r\n"), "h OK FETCH completed"])
        self.assertEqual(command(c, "i", "FETCH 1 FLAGS"), ["* 1 FETCH (FLAGS ())",
                                                            "i OK FETCH completed"])

    def test_body_peek_leaves_seen_and_body_sets_it(self):
        c = self.login()
        self.fill(c, "INBOX", [(MULTIPART, "(\\Answered)"), (message(2), "")])
        self.select(c)
        self.assertEqual(command(c, "a", "FETCH 1 BODY.PEEK[1]"), [
            "* 1 FETCH (BODY[1] %s)" % literal("Hello world, plain part."),
            "a OK FETCH completed"])
        self.assertEqual(c.command("b", "FETCH 1 FLAGS"), ["* 1 FETCH (FLAGS (\\Answered))",
                                                            "b OK FETCH completed"])
        # BODY[] sets \Seen, and the response then carries the new FLAGS (RFC 9051 6.4.5).
        self.assertEqual(command(c, "c", "FETCH 1 BODY[]"), [
            "* 1 FETCH (BODY[] %s FLAGS (\\Seen \\Answered))" % literal(MULTIPART),
            "c OK FETCH completed"])
        self.assertEqual(command(c, "d", "FETCH 1 BODY[1]"), [
            "* 1 FETCH (BODY[1] %s)" % literal("Hello world, plain part."),
            "d OK FETCH completed"])
        self.assertEqual(command(c, "e", "FETCH 2 RFC822.TEXT"), [
            "* 2 FETCH (RFC822.TEXT %s FLAGS (\\Seen))" % literal("body text 2\r\n"),
            "e OK FETCH completed"])
        # In an EXAMINEd mailbox BODY[] does not set \Seen.
        self.assertEqual(self.append(c, "INBOX", message(3)),
                         ["* 3 EXISTS", "A OK [APPENDUID %d 3] APPEND completed"
                          % self.status(c, "INBOX", "UIDVALIDITY")["UIDVALIDITY"]])
        self.select(c, verb="EXAMINE")
        self.assertEqual(command(c, "f", "FETCH 3 BODY[TEXT]"), [
            "* 3 FETCH (BODY[TEXT] %s)" % literal("body text 3\r\n"), "f OK FETCH completed"])
        self.assertEqual(c.command("g", "FETCH 1:* FLAGS"), [
            "* 1 FETCH (FLAGS (\\Seen \\Answered))", "* 2 FETCH (FLAGS (\\Seen))",
            "* 3 FETCH (FLAGS ())", "g OK FETCH completed"])

    def test_rfc822_size_is_the_length_and_status_size_the_sum(self):
        c = self.login()
        bodies = [message(1), message(2, body="x" * 5000), MULTIPART,
                  message(4, subject="caf\u00e9 in UTF-8")]
        self.fill(c, "INBOX", [(b, "") for b in bodies])
        self.select(c)
        self.assertEqual(c.command("f", "FETCH 1:* RFC822.SIZE"),
                         ["* %d FETCH (RFC822.SIZE %d)" % (i + 1, len(b))
                          for i, b in enumerate(bodies)] + ["f OK FETCH completed"])
        self.assertEqual(self.status(c, "INBOX", "MESSAGES SIZE"),
                         {"MESSAGES": 4, "SIZE": sum(len(b) for b in bodies)})
        for i, b in enumerate(bodies, start=1):
            self.assertEqual(command(c, "r%d" % i, "FETCH %d BODY.PEEK[]" % i),
                             ["* %d FETCH (BODY[] %s)" % (i, literal(b)),
                              "r%d OK FETCH completed" % i])

    def test_fetch_of_messages_larger_than_the_output_bound(self):
        # Five messages of 640 KB each: more than output_bytes_max (1 MiB) in one FETCH. Every
        # byte arrives, in order.
        c = self.login()
        big = [b"Subject: big %d\r\n\r\n" % i + b"%07d " % i * 80000 + b"\r\n" for i in range(1, 6)]
        self.fill(c, "INBOX", [(b, "") for b in big])
        self.select(c)
        lines = command(c, "f", "FETCH 1:* (UID BODY.PEEK[])")
        self.assertEqual(len(lines), 6)
        for i, b in enumerate(big, start=1):
            self.assertTrue(lines[i - 1] == "* %d FETCH (UID %d BODY[] %s)" % (i, i, literal(b)),
                            "message %d differs" % i)
        self.assertEqual(lines[5], "f OK FETCH completed")

    def test_internaldate_from_append(self):
        c = self.login()
        lines = self.append(c, "Sent", message(4), "", "01-Jan-2024 00:00:00 -0130")
        self.assertEqual(lines[-1][:5], "A OK ")
        self.select(c, "Sent")
        self.assertEqual(c.command("f", "FETCH 1 INTERNALDATE"), [
            '* 1 FETCH (INTERNALDATE " 1-Jan-2024 01:30:00 +0000")', "f OK FETCH completed"])
        # Without a date-time the internal date is the time of the APPEND.
        before = time.time()
        self.append(c, "Trash", message(5))
        after = time.time()
        self.select(c, "Trash")
        lines = c.command("g", "FETCH 1 INTERNALDATE")
        m = re.match(r'\* 1 FETCH \(INTERNALDATE "([ \d]\d-[A-Z][a-z]{2}-\d{4} '
                     r'\d\d:\d\d:\d\d) \+0000"\)$', lines[0])
        self.assertIsNotNone(m, lines)
        stamp = calendar.timegm(time.strptime(m.group(1).strip(), "%d-%b-%Y %H:%M:%S"))
        self.assertTrue(before - 2 <= stamp <= after + 2, (before, stamp, after))

    def test_imaplib_append_fetch_store_search_copy_move_expunge(self):
        m = self.imap()
        self.assertEqual(m.login(self.user, self.password),
                         ("OK", [LOGIN_OK[3:].encode()]))
        data = message(1, subject="hello imaplib")
        date = imaplib.Time2Internaldate(datetime.datetime(
            2024, 3, 5, 14, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))))
        typ, resp = m.append("INBOX", "(\\Flagged)", date, data)
        self.assertEqual(typ, "OK")
        self.assertEqual(resp, [b"[APPENDUID %d 1] APPEND completed"
                                % self._uidvalidity(m, "INBOX")])
        self.assertEqual(m.select("INBOX"), ("OK", [b"1"]))
        self.assertEqual(m.fetch("1", "(UID FLAGS RFC822.SIZE)"),
                         ("OK", [b"1 (UID 1 FLAGS (\\Flagged) RFC822.SIZE %d)" % len(data)]))
        self.assertEqual(m.fetch("1", "(BODY.PEEK[])"),
                         ("OK", [(b"1 (BODY[] {%d}" % len(data), data), b")"]))
        self.assertEqual(m.store("1", "+FLAGS", "(\\Seen $Label1)"),
                         ("OK", [b"1 (FLAGS (\\Seen \\Flagged $Label1))"]))
        self.assertEqual(m.search(None, "SUBJECT", '"HELLO IMAPLIB"'), ("OK", [b"1"]))
        self.assertEqual(m.search(None, "UNSEEN"), ("OK", [b""]))
        # imaplib files the response codes of tagged and untagged responses alike.
        archive_v = self._uidvalidity(m, "Archive")
        self.assertEqual(m.uid("COPY", "1", "Archive"), ("OK", [None]))
        self.assertEqual(m.status("Archive", "(MESSAGES)"), ("OK", [b"Archive (MESSAGES 1)"]))
        trash_v = self._uidvalidity(m, "Trash")
        self.assertEqual(m.uid("MOVE", "1", "Trash"), ("OK", [None]))
        self.assertEqual(m.response("COPYUID"),
                         ("COPYUID", [b"%d 1 1" % archive_v, b"%d 1 1" % trash_v]))
        self.assertEqual(m.response("EXPUNGE"), ("EXPUNGE", [b"1"]))
        self.assertEqual(m.status("INBOX", "(MESSAGES UNSEEN)"),
                         ("OK", [b"INBOX (MESSAGES 0 UNSEEN 0)"]))
        self.assertEqual(m.select("Trash"), ("OK", [b"1"]))
        self.assertEqual(m.fetch("1", "(FLAGS)"),
                         ("OK", [b"1 (FLAGS (\\Seen \\Flagged $Label1))"]))
        self.assertEqual(m.store("1", "+FLAGS.SILENT", "(\\Deleted)"), ("OK", [None]))
        self.assertEqual(m.expunge(), ("OK", [b"1"]))
        self.assertEqual(m.close(), ("OK", [b"CLOSE completed"]))
        typ, names = m.list()
        self.assertEqual(typ, "OK")
        self.assertEqual(names, [
            b'(\\HasNoChildren' + (b" " + SPECIAL_USE[n].encode() if n in SPECIAL_USE else b"")
            + b') "/" ' + n.encode() for n in DEFAULT_MAILBOXES])
        self.assertEqual(m.logout(), ("BYE", [b"Logging out"]))

    def _uidvalidity(self, m, mailbox):
        typ, resp = m.status(mailbox, "(UIDVALIDITY)")
        self.assertEqual(typ, "OK")
        return int(re.search(rb"UIDVALIDITY (\d+)", resp[0]).group(1))


# ---- 2. STORE --------------------------------------------------------------------------------

class TestStore(MailCase):
    def setUp(self):
        super().setUp()
        self.c = self.login()
        self.v, _ = self.fill(self.c, "INBOX", [(message(i), "") for i in range(1, 5)])
        self.select(self.c)

    def test_store_add_remove_replace_with_keywords(self):
        c = self.c
        self.assertEqual(c.command("a", "STORE 1 +FLAGS (\\Seen $Work)"),
                         ["* 1 FETCH (FLAGS (\\Seen $Work))", "a OK STORE completed"])
        self.assertEqual(c.command("b", "STORE 1:2 +FLAGS (\\Flagged Later)"), [
            "* 1 FETCH (FLAGS (\\Seen \\Flagged $Work Later))",
            "* 2 FETCH (FLAGS (\\Flagged Later))", "b OK STORE completed"])
        self.assertEqual(c.command("c", "STORE 1,2 -FLAGS ($Work \\Flagged)"), [
            "* 1 FETCH (FLAGS (\\Seen Later))", "* 2 FETCH (FLAGS (Later))",
            "c OK STORE completed"])
        self.assertEqual(c.command("d", "STORE 2:3 FLAGS (\\Answered \\Draft $Work)"), [
            "* 2 FETCH (FLAGS (\\Answered \\Draft $Work))",
            "* 3 FETCH (FLAGS (\\Answered \\Draft $Work))", "d OK STORE completed"])
        self.assertEqual(c.command("e", "STORE 3 FLAGS ()"),
                         ["* 3 FETCH (FLAGS ())", "e OK STORE completed"])
        # System flags are case-insensitive.
        self.assertEqual(c.command("f", "STORE 4 +FLAGS (Later \\SEEN)"),
                         ["* 4 FETCH (FLAGS (\\Seen Later))", "f OK STORE completed"])
        self.assertEqual(c.command("g", "UID STORE 4 -FLAGS (Later)"),
                         ["* 4 FETCH (UID 4 FLAGS (\\Seen))", "g OK STORE completed"])
        # A flag list may be a single flag without parentheses.
        self.assertEqual(c.command("h", "STORE 3 +FLAGS \\Deleted"),
                         ["* 3 FETCH (FLAGS (\\Deleted))", "h OK STORE completed"])
        self.assertEqual(c.command("i", "FETCH 1:* FLAGS"), [
            "* 1 FETCH (FLAGS (\\Seen Later))", "* 2 FETCH (FLAGS (\\Answered \\Draft $Work))",
            "* 3 FETCH (FLAGS (\\Deleted))", "* 4 FETCH (FLAGS (\\Seen))",
            "i OK FETCH completed"])

    def test_store_silent_answers_only_the_tag(self):
        c = self.c
        self.assertEqual(c.command("a", "STORE 1:3 +FLAGS.SILENT (\\Seen Quiet)"),
                         ["a OK STORE completed"])
        self.assertEqual(c.command("b", "UID STORE 2 -FLAGS.SILENT (Quiet)"),
                         ["b OK STORE completed"])
        self.assertEqual(c.command("c", "STORE 4 FLAGS.SILENT (\\Draft)"),
                         ["c OK STORE completed"])
        self.assertEqual(c.command("d", "NOOP"), ["d OK NOOP completed"])
        self.assertEqual(c.command("e", "FETCH 1:* FLAGS"), [
            "* 1 FETCH (FLAGS (\\Seen Quiet))", "* 2 FETCH (FLAGS (\\Seen))",
            "* 3 FETCH (FLAGS (\\Seen Quiet))", "* 4 FETCH (FLAGS (\\Draft))",
            "e OK FETCH completed"])

    def test_pipelined_commands_are_answered_in_order(self):
        # A change is answered only once durable; commands sent behind it wait their turn.
        self.c.send("p1 STORE 1 +FLAGS (\\Seen)\r\np2 FETCH 1 FLAGS\r\n"
                    "p3 STORE 2 +FLAGS.SILENT (\\Deleted)\r\np4 EXPUNGE\r\np5 FETCH 1:* UID\r\n"
                    "p6 NOOP\r\n")
        self.assertEqual(self.c.read_tagged("p6"), [
            "* 1 FETCH (FLAGS (\\Seen))", "p1 OK STORE completed",
            "* 1 FETCH (FLAGS (\\Seen))", "p2 OK FETCH completed",
            "p3 OK STORE completed",
            "* 2 EXPUNGE", "p4 OK EXPUNGE completed",
            "* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)", "p5 OK FETCH completed",
            "p6 OK NOOP completed"])

    def test_new_keywords_listed_in_flags_and_permanentflags(self):
        c = self.c
        lines, _, _, modseq = self.select(c)
        self.assertEqual(lines, select_response("s", 4, self.v, 5, modseq, unseen=1))
        self.assertEqual(c.command("a", "STORE 2 +FLAGS.SILENT ($Todo)"), ["a OK STORE completed"])
        self.assertEqual(self.append(c, "INBOX", message(5), "(NewKey)"),
                         ["* 5 EXISTS", "A OK [APPENDUID %d 5] APPEND completed" % self.v])
        lines, _, _, modseq = self.select(c)
        self.assertEqual(lines, select_response("s", 5, self.v, 6, modseq,
                                                keywords=["$Todo", "NewKey"], unseen=1))
        lines, _, _, modseq = self.select(c, verb="EXAMINE", tag="x")
        self.assertEqual(lines, select_response("x", 5, self.v, 6, modseq,
                                                keywords=["$Todo", "NewKey"], unseen=1,
                                                read_only=True))

    def test_store_in_examined_mailbox_is_read_only(self):
        c = self.c
        self.select(c, verb="EXAMINE")
        for tag, cmd in (("a", "STORE 1 +FLAGS (\\Seen)"), ("b", "UID STORE 1 FLAGS ()"),
                         ("c", "STORE 1 +FLAGS.SILENT (Key)"), ("d", "EXPUNGE"),
                         ("e", "UID EXPUNGE 1"), ("f", "MOVE 1 Trash"), ("g", "UID MOVE 1 Trash")):
            self.assertEqual(c.command(tag, cmd),
                             [tag + " NO [READ-ONLY] The mailbox is read-only"])
        # COPY reads only: allowed.
        trash = self.status(c, "Trash", "UIDVALIDITY")["UIDVALIDITY"]
        self.assertEqual(c.command("h", "COPY 1 Trash"),
                         ["h OK [COPYUID %d 1 1] COPY completed" % trash])
        self.assertEqual(c.command("i", "FETCH 1:* FLAGS"),
                         ["* %d FETCH (FLAGS ())" % i for i in range(1, 5)]
                         + ["i OK FETCH completed"])

    def test_keyword_limit_of_64_per_mailbox(self):
        c = self.c
        keywords = ["k%d" % i for i in range(64)]
        self.assertEqual(c.command("a", "STORE 1 +FLAGS.SILENT (%s)" % " ".join(keywords)),
                         ["a OK STORE completed"])
        self.assertEqual(c.command("b", "STORE 2 +FLAGS.SILENT (k64)"),
                         ["b NO [LIMIT] Too many keywords in this mailbox"])
        # Keywords that exist may still be set anywhere.
        self.assertEqual(c.command("c", "STORE 2 +FLAGS (k63 k0)"),
                         ["* 2 FETCH (FLAGS (k0 k63))", "c OK STORE completed"])
        # RFC 9051 section 7.1 (PERMANENTFLAGS): \* says new keywords can be created. With 64
        # in use no new one can be, so \* must not be offered any more.
        lines = c.command("s", "SELECT INBOX")
        flags = " ".join([SYSTEM_FLAGS] + keywords)
        self.assertIn("* FLAGS (%s)" % flags, lines)
        self.assertIn("* OK [PERMANENTFLAGS (%s)] Flags permitted" % flags, lines)


# ---- 3. COPY and MOVE ------------------------------------------------------------------------

class TestCopyMove(MailCase):
    def setUp(self):
        super().setUp()
        self.c = self.login()
        self.v, _ = self.fill(self.c, "INBOX", [
            (message(1), "(\\Seen $Work)"), (message(2), "(\\Flagged)"),
            (message(3), "(\\Answered Later)"), (message(4), "")])
        self.archive = self.status(self.c, "Archive", "UIDVALIDITY")["UIDVALIDITY"]
        self.select(self.c)

    def test_copy_keeps_flags_and_keywords_with_copyuid(self):
        c = self.c
        self.assertEqual(c.command("a", "COPY 1,3 Archive"),
                         ["a OK [COPYUID %d 1,3 1:2] COPY completed" % self.archive])
        self.assertEqual(c.command("b", "UID COPY 2:* Archive"),
                         ["b OK [COPYUID %d 2:4 3:5] COPY completed" % self.archive])
        # The source is untouched.
        self.assertEqual(c.command("c", "FETCH 1:* (UID FLAGS)"), [
            "* 1 FETCH (UID 1 FLAGS (\\Seen $Work))", "* 2 FETCH (UID 2 FLAGS (\\Flagged))",
            "* 3 FETCH (UID 3 FLAGS (\\Answered Later))", "* 4 FETCH (UID 4 FLAGS ())",
            "c OK FETCH completed"])
        lines, _, _, modseq = self.select(c, "Archive")
        self.assertEqual(lines, select_response("s", 5, self.archive, 6, modseq,
                                                keywords=["$Work", "Later"], unseen=2))
        self.assertEqual(c.command("d", "FETCH 1:* (UID FLAGS)"), [
            "* 1 FETCH (UID 1 FLAGS (\\Seen $Work))",
            "* 2 FETCH (UID 2 FLAGS (\\Answered Later))",
            "* 3 FETCH (UID 3 FLAGS (\\Flagged))",
            "* 4 FETCH (UID 4 FLAGS (\\Answered Later))",
            "* 5 FETCH (UID 5 FLAGS ())", "d OK FETCH completed"])
        self.assertEqual(command(c, "e", "FETCH 1 BODY.PEEK[]"),
                         ["* 1 FETCH (BODY[] %s)" % literal(message(1)), "e OK FETCH completed"])

    def test_move_expunges_from_source_with_copyuid(self):
        c = self.c
        self.assertEqual(c.command("a", "MOVE 2 Archive"), [
            "* OK [COPYUID %d 2 1] Moved" % self.archive, "* 2 EXPUNGE",
            "a OK MOVE completed"])
        # Now 1 3 4 are at 1 2 3; UID MOVE 3:4 moves sequence numbers 2 and 3.
        lines = c.command("b", "UID MOVE 3:4 Archive")
        self.assertEqual(lines[0], "* OK [COPYUID %d 3:4 2:3] Moved" % self.archive)
        self.assertEqual(lines[-1], "b OK MOVE completed")
        self.assertEqual(simulate_expunges([1, 3, 4], lines[1:-1]), [1])
        self.assertEqual(c.command("c", "FETCH 1:* (UID FLAGS)"),
                         ["* 1 FETCH (UID 1 FLAGS (\\Seen $Work))", "c OK FETCH completed"])
        self.assertEqual(self.status(c, "INBOX", "MESSAGES UIDNEXT"), {"MESSAGES": 1, "UIDNEXT": 5})
        self.select(c, "Archive")
        self.assertEqual(c.command("d", "FETCH 1:* (UID FLAGS)"), [
            "* 1 FETCH (UID 1 FLAGS (\\Flagged))", "* 2 FETCH (UID 2 FLAGS (\\Answered Later))",
            "* 3 FETCH (UID 3 FLAGS ())", "d OK FETCH completed"])
        self.assertEqual(command(c, "e", "FETCH 2 BODY.PEEK[TEXT]"),
                         ["* 2 FETCH (BODY[TEXT] %s)" % literal("body text 3\r\n"),
                          "e OK FETCH completed"])

    def test_move_under_qresync_reports_vanished(self):
        c = self.c
        self.assertEqual(c.command("q", "ENABLE QRESYNC"),
                         ["* ENABLED QRESYNC", "q OK ENABLE completed"])
        self.assertEqual(c.command("a", "MOVE 2:3 Archive"), [
            "* OK [COPYUID %d 2:3 1:2] Moved" % self.archive, "* VANISHED 2:3",
            "a OK MOVE completed"])
        self.assertEqual(c.command("b", "FETCH 1:* UID"), [
            "* 1 FETCH (UID 1)", "* 2 FETCH (UID 4)", "b OK FETCH completed"])

    def test_copy_or_move_to_a_missing_mailbox_says_trycreate(self):
        c = self.c
        for tag, cmd in (("a", "COPY 1 Nowhere"), ("b", "MOVE 1 Nowhere"),
                         ("c", "UID COPY 1 Nowhere"), ("d", "UID MOVE 1:* Nowhere/Deeper")):
            self.assertEqual(c.command(tag, cmd), [tag + " NO [TRYCREATE] No such mailbox"])
        self.assertEqual(self.append(c, "Nowhere", message(9)),
                         ["A NO [TRYCREATE] No such mailbox"])
        # Nothing moved, nothing created.
        self.assertEqual(c.command("e", "FETCH 1:* UID"),
                         ["* %d FETCH (UID %d)" % (i, i) for i in range(1, 5)]
                         + ["e OK FETCH completed"])
        self.assertEqual(c.command("f", 'LIST "" Nowhere*'), ["f OK LIST completed"])

    def test_copy_of_uids_that_do_not_exist_copies_nothing(self):
        c = self.c
        self.assertEqual(c.command("a", "UID COPY 100:200 Archive"),
                         ["a OK COPY completed (nothing to copy)"])
        self.assertEqual(self.status(c, "Archive", "MESSAGES"), {"MESSAGES": 0})


# ---- 4. EXPUNGE ------------------------------------------------------------------------------

class TestExpunge(MailCase):
    def setUp(self):
        super().setUp()
        self.c = self.login()
        self.v, self.uids = self.fill(self.c, "INBOX", [(message(i), "") for i in range(1, 8)])
        self.select(self.c)

    def test_expunge_lines_keep_sequence_numbers_consistent(self):
        c = self.c
        self.assertEqual(c.command("a", "STORE 2,4,5,7 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        lines = c.command("b", "EXPUNGE")
        self.assertEqual(lines[-1], "b OK EXPUNGE completed")
        self.assertEqual(len(lines), 5, lines)
        # Whatever order the server picks, applying the lines one by one must leave exactly the
        # messages that were not \Deleted (RFC 9051 section 7.5.1).
        self.assertEqual(simulate_expunges(self.uids, lines[:-1]), [1, 3, 6])
        self.assertEqual(c.command("c", "FETCH 1:* UID"), [
            "* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 6)",
            "c OK FETCH completed"])
        # Nothing \Deleted: nothing to say.
        self.assertEqual(c.command("d", "EXPUNGE"), ["d OK EXPUNGE completed"])
        self.assertEqual(self.status(c, "INBOX", "MESSAGES UIDNEXT"), {"MESSAGES": 3, "UIDNEXT": 8})

    def test_expunge_of_everything_and_of_adjacent_runs(self):
        c = self.c
        self.assertEqual(c.command("a", "STORE 1:3 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        lines = c.command("b", "EXPUNGE")
        self.assertEqual(simulate_expunges(self.uids, lines[:-1]), [4, 5, 6, 7])
        self.assertEqual(c.command("c", "STORE 1:* +FLAGS.SILENT (\\Deleted)"),
                         ["c OK STORE completed"])
        lines = c.command("d", "EXPUNGE")
        self.assertEqual(lines[-1], "d OK EXPUNGE completed")
        self.assertEqual(simulate_expunges([4, 5, 6, 7], lines[:-1]), [])
        lines, _, uidnext, modseq = self.select(c)
        self.assertEqual(lines, select_response("s", 0, self.v, 8, modseq))

    def test_uid_expunge_leaves_other_deleted_messages(self):
        c = self.c
        self.assertEqual(c.command("a", "STORE 1:* +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        lines = c.command("b", "UID EXPUNGE 3:4,6")
        self.assertEqual(lines[-1], "b OK EXPUNGE completed")
        self.assertEqual(simulate_expunges(self.uids, lines[:-1]), [1, 2, 5, 7])
        # UIDs that are gone or never were: nothing happens.
        self.assertEqual(c.command("c", "UID EXPUNGE 3,100:200"), ["c OK EXPUNGE completed"])
        self.assertEqual(c.command("d", "FETCH 1:* (UID FLAGS)"), [
            "* 1 FETCH (UID 1 FLAGS (\\Deleted))", "* 2 FETCH (UID 2 FLAGS (\\Deleted))",
            "* 3 FETCH (UID 5 FLAGS (\\Deleted))", "* 4 FETCH (UID 7 FLAGS (\\Deleted))",
            "d OK FETCH completed"])
        # A message not \Deleted is not expunged by UID EXPUNGE either.
        self.assertEqual(c.command("e", "UID STORE 5 -FLAGS.SILENT (\\Deleted)"),
                         ["e OK STORE completed"])
        lines = c.command("f", "UID EXPUNGE 5:7")
        self.assertEqual(lines, ["* 4 EXPUNGE", "f OK EXPUNGE completed"])

    def test_expunge_after_enable_qresync_is_vanished(self):
        c = self.c
        self.assertEqual(c.command("q", "ENABLE QRESYNC"),
                         ["* ENABLED QRESYNC", "q OK ENABLE completed"])
        self.assertEqual(c.command("a", "STORE 1,3:4,7 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        self.assertEqual(c.command("b", "EXPUNGE"), ["* VANISHED 1,3:4,7",
                                                     "b OK EXPUNGE completed"])
        self.assertEqual(c.command("c", "STORE 1:* +FLAGS.SILENT (\\Deleted)"),
                         ["c OK STORE completed"])
        self.assertEqual(c.command("d", "UID EXPUNGE 5:6"), ["* VANISHED 5:6",
                                                             "d OK EXPUNGE completed"])
        self.assertEqual(c.command("e", "FETCH 1:* UID"), ["* 1 FETCH (UID 2)",
                                                          "e OK FETCH completed"])

    def test_close_expunges_silently_but_not_after_examine(self):
        c = self.c
        self.assertEqual(c.command("a", "STORE 1:2 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        self.select(c, verb="EXAMINE")
        self.assertEqual(c.command("b", "CLOSE"), ["b OK CLOSE completed"])
        self.assertEqual(self.status(c, "INBOX", "MESSAGES DELETED"),
                         {"MESSAGES": 7, "DELETED": 2})
        self.select(c)
        self.assertEqual(c.command("c", "UNSELECT"), ["c OK UNSELECT completed"])
        self.assertEqual(self.status(c, "INBOX", "MESSAGES DELETED"),
                         {"MESSAGES": 7, "DELETED": 2})
        self.select(c)
        self.assertEqual(c.command("d", "CLOSE"), ["d OK CLOSE completed"])
        self.assertEqual(self.status(c, "INBOX", "MESSAGES DELETED"),
                         {"MESSAGES": 5, "DELETED": 0})
        self.assertEqual(c.command("e", "FETCH 1 FLAGS"), ["e BAD No mailbox selected"])


if __name__ == "__main__":
    unittest.main()
