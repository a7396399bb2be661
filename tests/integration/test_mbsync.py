"""mbsync (Debian's isync) syncs a ringmail account with a local Maildir, both ways.

The server side is read and changed with Python's imaplib; the local side is a Maildir under a
temporary directory. After each sync both sides must hold the same mailboxes, the same messages
(by Message-ID, with the same content) and the same flags. mbsync runs with -Dn, so a failure
shows the protocol exchange.
"""

import datetime
import imaplib
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import HOST, TIMEOUT, TIMEOUT_SCALE, ServerTestCase

MBSYNC = shutil.which("mbsync")
MBSYNC_TIMEOUT = 40.0 * TIMEOUT_SCALE
USER, PASSWORD = "sync", "sync-pw-1"
DEFAULT_MAILBOXES = ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]

# Maildir info letters (the ":2,XYZ" suffix of a file name) and the IMAP flags they stand for.
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
                 "T": "\\Deleted"}


def message(msgid, subject, body):
    """A message with LF line ends (as a Maildir holds it; IMAP carries it with CRLF)."""
    return ("From: Sender <sender@example.org>\n"
            "To: Sync User <sync@example.org>\n"
            "Subject: %s\n"
            "Date: Mon, 01 Jan 2024 10:00:00 +0000\n"
            "Message-ID: <%s@example.org>\n"
            "\n"
            "%s\n" % (subject, msgid, body))


# The server has a, b, c in INBOX and d in Projects before the first sync.
MSG = {
    "a": message("a", "Plain", "First message."),
    "b": message("b", "Seen one", "Second message."),
    "c": message("c", "Flagged and answered", "Third message.\n\nWith two paragraphs."),
    "d": message("d", "A draft", "Draft in a folder."),
    "e": message("e", "Written locally",
                 "Dropped into the local INBOX/new: caf\u00e9, \u4f1a\u8b70."),
    "f": message("f", "Local folder", "Filed in a folder that only exists locally."),
    "g": message("g", "Arrived on the server", "Appended on the server between syncs."),
    # Big enough to span many reads and writes on both sides.
    "h": message("h", "Big", "\n".join("line %05d %s" % (i, "x" * 68) for i in range(4000))),
}
ARRIVAL = {  # INTERNALDATE on the server / file mtime in the Maildir (CopyArrivalDate yes)
    "a": datetime.datetime(2024, 1, 1, 10, 0, tzinfo=datetime.timezone.utc),
    "b": datetime.datetime(2024, 1, 2, 11, 30, tzinfo=datetime.timezone.utc),
    "c": datetime.datetime(2024, 1, 3, 8, 15, tzinfo=datetime.timezone.utc),
    "d": datetime.datetime(2024, 1, 4, 9, 45, tzinfo=datetime.timezone.utc),
    "e": datetime.datetime(2024, 2, 1, 12, 0, tzinfo=datetime.timezone.utc),
    "f": datetime.datetime(2024, 2, 2, 13, 0, tzinfo=datetime.timezone.utc),
    "g": datetime.datetime(2024, 2, 3, 14, 0, tzinfo=datetime.timezone.utc),
    "h": datetime.datetime(2024, 2, 4, 15, 0, tzinfo=datetime.timezone.utc),
}


def mid(key):
    return "<%s@example.org>" % key


def normalize(raw):
    """A message as text with LF line ends and without mbsync's own X-TUID header (mbsync adds
    it to every message it stores, to find the copy again after an interrupted run)."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    head, sep, body = text.partition("\n\n")
    head = "\n".join(l for l in head.split("\n") if not l.startswith("X-TUID: "))
    return head + sep + body


def message_id(text):
    m = re.search(r"^Message-ID:\s*(<[^>]+>)", text, re.M | re.I)
    return m.group(1) if m else None


def mbsyncrc(port, root):
    return """IMAPAccount ringmail
Host {host}
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN
Timeout {timeout}

IMAPStore remote
Account ringmail

MaildirStore local
Path {root}/mail/
Inbox {root}/mail/INBOX
SubFolders Verbatim

Channel ringmail
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
CopyArrivalDate yes
""".format(host=HOST, port=port, user=USER, password=PASSWORD, root=root,
           timeout=int(TIMEOUT))


# ---- the local side ---------------------------------------------------------------------------

def maildir_state(mail_root):
    """{mailbox: {Message-ID: (sorted IMAP flags, text)}} of the Maildirs under mail_root."""
    state = {}
    for dirpath, dirnames, _ in os.walk(mail_root):
        if not {"cur", "new", "tmp"} <= set(dirnames):
            continue
        box = os.path.relpath(dirpath, mail_root).replace(os.sep, "/")
        msgs = {}
        for sub in ("cur", "new"):
            for name in os.listdir(os.path.join(dirpath, sub)):
                with open(os.path.join(dirpath, sub, name), "rb") as f:
                    text = normalize(f.read())
                info = name.partition(":2,")[2]
                flags = sorted(MAILDIR_FLAGS[c] for c in info if c in MAILDIR_FLAGS)
                msgs[message_id(text)] = (flags, text)
        state[box] = msgs
        dirnames[:] = [d for d in dirnames if d not in ("cur", "new", "tmp")]
    return state


def maildir_file(mail_root, box, key):
    """The path of the message with Message-ID mid(key) in mailbox box."""
    for sub in ("cur", "new"):
        d = os.path.join(mail_root, box, sub)
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                if message_id(normalize(f.read())) == mid(key):
                    return os.path.join(d, name)
    raise AssertionError("no %s in the local %s" % (mid(key), box))


def maildir_add(mail_root, box, key, sub, info=None):
    """Delivers MSG[key] into box/sub the way an MDA does (tmp, then rename), with the arrival
    time as its mtime."""
    base = "%d.%s_%s.ringmail-test" % (int(ARRIVAL[key].timestamp()), os.getpid(), key)
    name = base + (":2," + info if info is not None else "")
    tmp = os.path.join(mail_root, box, "tmp", base)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(MSG[key])
    ts = ARRIVAL[key].timestamp()
    os.utime(tmp, (ts, ts))
    os.rename(tmp, os.path.join(mail_root, box, sub, name))


# ---- the server side --------------------------------------------------------------------------

def server_state(port):
    """{mailbox: {Message-ID: (sorted flags, text)}} and {Message-ID: INTERNALDATE epoch}, read
    with imaplib (EXAMINE, so nothing changes)."""
    m = imaplib.IMAP4(HOST, port, timeout=TIMEOUT)
    try:
        m.login(USER, PASSWORD)
        typ, data = m.list()
        assert typ == "OK", (typ, data)
        boxes = sorted(re.match(rb'\(.*?\) "/" "?(.*?)"?$', l).group(1).decode() for l in data)
        state, arrival = {}, {}
        for box in boxes:
            typ, data = m.select('"%s"' % box, readonly=True)
            assert typ == "OK", (box, typ, data)
            state[box] = {}
            if int(data[0]) == 0:
                continue
            typ, data = m.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
            assert typ == "OK", (box, typ, data)
            for meta, text in _fetched(data):
                flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split()
                text = normalize(text)
                state[box][message_id(text)] = (sorted(flags), text)
                arrival[message_id(text)] = internaldate_epoch(meta)
        m.logout()
        return state, arrival
    finally:
        _shutdown_quietly(m)


def _shutdown_quietly(m):
    try:
        m.shutdown()
    except OSError:
        pass  # logout() closed it already


def internaldate_epoch(meta):
    m = re.search(rb'INTERNALDATE "([ \d]\d-[A-Za-z]{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4})"', meta)
    assert m, meta
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    day, month, rest = m.group(1).decode().strip().split("-", 2)
    year, clock, zone = rest.split(" ")
    hh, mm, ss = (int(x) for x in clock.split(":"))
    offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    tz = datetime.timezone(offset if zone[0] == "+" else -offset)
    when = datetime.datetime(int(year), months.index(month) + 1, int(day), hh, mm, ss, tzinfo=tz)
    return int(when.timestamp())


def _fetched(data):
    """(everything outside the literal, the literal) for each message of an imaplib FETCH."""
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append([item[0], item[1]])
        elif out and isinstance(item, bytes):
            out[-1][0] += item
    return out


class TestMbsync(ServerTestCase):
    def setUp(self):
        if MBSYNC is None:
            self.fail("mbsync is not installed (Debian package isync; tools/install-deps.sh)")
        self.srv = self.server(users={USER: PASSWORD})
        self.root = tempfile.mkdtemp(prefix="ringmail-mbsync-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.mail = os.path.join(self.root, "mail")
        os.makedirs(self.mail)
        self.rc = os.path.join(self.root, "mbsyncrc")
        with open(self.rc, "w") as f:
            f.write(mbsyncrc(self.srv.port, self.root))
        self.outputs = []

    def imap(self):
        m = imaplib.IMAP4(HOST, self.srv.port, timeout=TIMEOUT)
        self.addCleanup(_shutdown_quietly, m)
        self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
        return m

    def append(self, m, box, key, flags):
        date = imaplib.Time2Internaldate(ARRIVAL[key])
        typ, data = m.append(box, flags, date, MSG[key].replace("\n", "\r\n").encode())
        self.assertEqual(typ, "OK", data)

    def sync(self):
        """One mbsync run of every mailbox; its output is kept for failure messages."""
        env = {k: v for k, v in os.environ.items() if k != "MAILDIR"}
        env["HOME"] = self.root  # no ~/.mbsyncrc or ~/Maildir of the machine's user
        p = subprocess.run([MBSYNC, "-Dn", "-c", self.rc, "-a"], capture_output=True, text=True,
                           timeout=MBSYNC_TIMEOUT, env=env, cwd=self.root, errors="replace")
        self.outputs.append("---- mbsync run %d (exit %d) ----\n%s%s"
                            % (len(self.outputs) + 1, p.returncode, p.stdout, p.stderr))
        self.assertEqual(p.returncode, 0, self.outputs[-1])

    def assertBothSides(self, expected):
        """Both sides hold exactly `expected`: {mailbox: {key: sorted flags}}."""
        want = {box: {mid(k): (sorted(flags), MSG[k]) for k, flags in msgs.items()}
                for box, msgs in expected.items()}
        log = "\n".join(self.outputs)
        remote, _ = server_state(self.srv.port)
        self.assertEqual(remote, want, "server side\n" + log)
        self.assertEqual(maildir_state(self.mail), want, "local side\n" + log)

    def initial_server_mail(self):
        m = self.imap()
        self.append(m, "INBOX", "a", None)
        self.append(m, "INBOX", "b", "(\\Seen)")
        self.append(m, "INBOX", "c", "(\\Flagged \\Answered)")
        self.assertEqual(m.create("Projects")[0], "OK")
        self.append(m, "Projects", "d", "(\\Seen \\Draft)")
        m.logout()

    def test_first_sync_pulls_every_mailbox_with_content_flags_and_dates(self):
        self.initial_server_mail()
        self.sync()
        expected = {box: {} for box in DEFAULT_MAILBOXES + ["Projects"]}
        expected["INBOX"] = {"a": [], "b": ["\\Seen"], "c": ["\\Answered", "\\Flagged"]}
        expected["Projects"] = {"d": ["\\Draft", "\\Seen"]}
        self.assertBothSides(expected)
        # CopyArrivalDate: each file's mtime is the message's INTERNALDATE.
        for box, key in (("INBOX", "a"), ("INBOX", "b"), ("INBOX", "c"), ("Projects", "d")):
            self.assertEqual(int(os.stat(maildir_file(self.mail, box, key)).st_mtime),
                             int(ARRIVAL[key].timestamp()), key)

    def test_changes_on_both_sides_meet_after_the_next_sync(self):
        self.initial_server_mail()
        self.sync()

        # Local: a new message, a flag, a deletion, and a new folder with a seen message.
        maildir_add(self.mail, "INBOX", "e", "new")
        maildir_add(self.mail, "INBOX", "h", "cur", info="S")
        path_a = maildir_file(self.mail, "INBOX", "a")
        os.rename(path_a, os.path.join(self.mail, "INBOX", "cur",
                                       os.path.basename(path_a).partition(":2,")[0] + ":2,F"))
        os.unlink(maildir_file(self.mail, "INBOX", "b"))
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.mail, "Notes", sub))
        maildir_add(self.mail, "Notes", "f", "cur", info="S")

        # Server: a new message, \Seen on c, and d expunged.
        m = self.imap()
        self.append(m, "INBOX", "g", None)
        self.assertEqual(m.select("INBOX")[0], "OK")
        typ, data = m.uid("SEARCH", "HEADER", "Message-ID", mid("c"))
        self.assertEqual((typ, data), ("OK", [b"3"]))
        self.assertEqual(m.uid("STORE", "3", "+FLAGS", "(\\Seen)")[0], "OK")
        self.assertEqual(m.select("Projects")[0], "OK")
        self.assertEqual(m.store("1", "+FLAGS", "(\\Deleted)")[0], "OK")
        self.assertEqual(m.expunge(), ("OK", [b"1"]))
        m.logout()

        self.sync()
        expected = {box: {} for box in DEFAULT_MAILBOXES + ["Notes", "Projects"]}
        expected["INBOX"] = {"a": ["\\Flagged"], "c": ["\\Answered", "\\Flagged", "\\Seen"],
                             "e": [], "g": [], "h": ["\\Seen"]}
        expected["Notes"] = {"f": ["\\Seen"]}
        self.assertBothSides(expected)
        # Arrival dates travel both ways.
        _, arrival = server_state(self.srv.port)
        for key in ("e", "f", "h"):
            self.assertEqual(arrival[mid(key)], int(ARRIVAL[key].timestamp()), key)
        self.assertEqual(int(os.stat(maildir_file(self.mail, "INBOX", "g")).st_mtime),
                         int(ARRIVAL["g"].timestamp()))

        # A third run finds nothing to do: no message or flag moves either way.
        self.sync()
        self.assertBothSides(expected)
        sent = [l for l in self.outputs[-1].splitlines() if ">>> " in l]
        self.assertEqual([l for l in sent if re.search(r"APPEND|STORE|BODY\.PEEK|EXPUNGE", l)],
                         [], self.outputs[-1])


if __name__ == "__main__":
    unittest.main()
