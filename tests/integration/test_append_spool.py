"""Large APPEND literals stream into the store: from 256 KiB on, a literal's bytes go to an
unnamed spool file in the user's directory as they arrive, and the message is stored from it at
the end, so a message of tens of megabytes is never held whole in memory.

What shows it from outside: with a per-core upload budget of 1 MiB (literal_bytes_core_max),
two 20 MiB uploads run at once and both succeed, where holding them would need 40 MiB of the
budget. Each message reads back byte for byte (imaplib), MULTIAPPEND mixes spooled and in-memory
literals in one command, literal8 keeps NUL bytes, and a write that fails mid-spool answers
NO [OVERQUOTA] while the connection stays in step."""

import imaplib
import os
import unittest

from harness import HOST, Server, ServerTestCase

USERS = {"alice": "secret", "bob": "secret2"}
BIG = 20 * 1024 * 1024


def message(tag, size, filler=b"x"):
    head = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: " + tag + b"\r\n\r\n"
    lines = []
    n = len(head)
    i = 0
    # Varied lines, so a misplaced chunk cannot go unnoticed.
    while n < size - 2:
        line = (b"%s line %d " % (tag, i)) + filler * 60 + b"\r\n"
        lines.append(line)
        n += len(line)
        i += 1
    body = b"".join(lines)[:size - len(head) - 2]
    return head + body + b"\r\n"


def fetch_body(srv, user, password, mailbox, uid):
    m = imaplib.IMAP4(HOST, srv.port)
    try:
        m.login(user, password)
        m.select(mailbox, readonly=True)
        typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK", (typ, data)
        return data[0][1]
    finally:
        m.logout()


def files_under(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, names in os.walk(top) for f in names)


def appenduids(line):
    # "t OK [APPENDUID v uids] APPEND completed"
    inner = line[line.index("[APPENDUID ") + 11:line.index("]")]
    return inner.split(" ")[1]


class TestAppendSpool(ServerTestCase):
    def test_two_big_uploads_at_once_within_a_small_budget(self):
        srv = self.server(users=USERS, threads=1, config={"literal_bytes_core_max": 1 << 20})
        a = srv.connect()
        b = srv.connect()
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.assertEqual(a.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        self.assertEqual(b.command("l", "LOGIN bob secret2")[-1][:5], "l OK ")
        ma = message(b"alpha", BIG)
        mb = message(b"beta", BIG, b"y")
        a.send("p APPEND INBOX {%d}\r\n" % len(ma))
        self.assertEqual(a.readline(), "+ Ready for literal data")
        b.send("q APPEND INBOX {%d}\r\n" % len(mb))
        self.assertEqual(b.readline(), "+ Ready for literal data")
        # Interleaved, so both are in progress at once.
        step = 1 << 20
        for off in range(0, BIG, step):
            a.send(ma[off:off + step])
            b.send(mb[off:off + step])
        a.send(b"\r\n")
        b.send(b"\r\n")
        la = a.read_tagged("p")[-1]
        lb = b.read_tagged("q")[-1]
        self.assertTrue(la.startswith("p OK [APPENDUID "), la)
        self.assertTrue(lb.startswith("q OK [APPENDUID "), lb)
        # A small command is still served on the same connection.
        self.assertEqual(a.command("n", "NOOP"), ["n OK NOOP completed"])
        self.assertEqual(fetch_body(srv, "alice", "secret", "INBOX", appenduids(la)), ma)
        self.assertEqual(fetch_body(srv, "bob", "secret2", "INBOX", appenduids(lb)), mb)

    def test_multiappend_mixes_spooled_and_held_literals(self):
        srv = self.server(users=USERS, threads=1)
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        big1 = message(b"one", 3 * 1024 * 1024 + 17)
        small = message(b"two", 2000)
        big2 = message(b"three", 300 * 1024, b"z")
        # LITERAL+ throughout: no "+" is waited for.
        c.send(b"m APPEND Drafts (\\Draft) {%d+}\r\n" % len(big1) + big1 +
               b" (\\Seen) {%d+}\r\n" % len(small) + small +
               b" \"01-Feb-2024 10:00:00 +0000\" {%d+}\r\n" % len(big2) + big2 + b"\r\n")
        last = c.read_tagged("m")[-1]
        self.assertTrue(last.startswith("m OK [APPENDUID "), last)
        self.assertEqual(appenduids(last), "1:3")
        self.assertEqual(c.command("s", "EXAMINE Drafts")[-1], "s OK [READ-ONLY] EXAMINE completed")
        lines = c.command("f", "FETCH 1:3 (FLAGS INTERNALDATE RFC822.SIZE)")
        self.assertEqual(lines, [
            "* 1 FETCH (FLAGS (\\Draft) INTERNALDATE %s RFC822.SIZE %d)"
            % (lines[0].split("INTERNALDATE ")[1].split(" RFC822")[0], len(big1)),
            "* 2 FETCH (FLAGS (\\Seen) INTERNALDATE %s RFC822.SIZE %d)"
            % (lines[1].split("INTERNALDATE ")[1].split(" RFC822")[0], len(small)),
            "* 3 FETCH (FLAGS () INTERNALDATE \" 1-Feb-2024 10:00:00 +0000\" RFC822.SIZE %d)"
            % len(big2),
            "f OK FETCH completed"])
        self.assertEqual(fetch_body(srv, "alice", "secret", "Drafts", 1), big1)
        self.assertEqual(fetch_body(srv, "alice", "secret", "Drafts", 2), small)
        self.assertEqual(fetch_body(srv, "alice", "secret", "Drafts", 3), big2)

    def test_synchronizing_literals_in_a_spooled_multiappend(self):
        srv = self.server(users=USERS, threads=1)
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        big = message(b"sync", 600 * 1024)
        c.send(b"m APPEND INBOX {%d}\r\n" % len(big))
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send(big + b" {%d}\r\n" % len(big))
        self.assertEqual(c.readline(), "+ Ready for literal data")
        c.send(big + b"\r\n")
        last = c.read_tagged("m")[-1]
        self.assertTrue(last.startswith("m OK [APPENDUID "), last)
        self.assertEqual(appenduids(last), "1:2")
        self.assertEqual(fetch_body(srv, "alice", "secret", "INBOX", 2), big)

    def test_nul_needs_literal8_also_when_spooled(self):
        srv = self.server(users=USERS, threads=1)
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        data = bytearray(message(b"nul", 512 * 1024))
        data[len(data) // 2] = 0
        data = bytes(data)
        c.send(b"a APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
        self.assertEqual(c.read_tagged("a"), [
            "a BAD Malformed literal (a message with NUL needs literal8, ~{n})"])
        c.send(b"b APPEND INBOX ~{%d+}\r\n" % len(data) + data + b"\r\n")
        last = c.read_tagged("b")[-1]
        self.assertTrue(last.startswith("b OK [APPENDUID "), last)
        self.assertEqual(c.command("s", "SELECT INBOX")[-1], "s OK [READ-WRITE] SELECT completed")
        lines = c.command("f", "FETCH 1 (BINARY.SIZE[])")
        self.assertEqual(lines, ["* 1 FETCH (BINARY.SIZE[] %d)" % len(data), "f OK FETCH completed"])

    def test_spool_nothing_left_behind(self):
        srv = self.server(users=USERS, threads=1)
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        data = message(b"gone", 1024 * 1024)
        # The client leaves in the middle of the literal: nothing of it is stored, and the
        # unnamed spool file leaves nothing in the user's directory.
        before = files_under(srv.data_dir)
        c.send(b"a APPEND INBOX {%d+}\r\n" % len(data) + data[:600 * 1024])
        c.close()
        d = srv.connect()
        self.addCleanup(d.close)
        self.assertEqual(d.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        self.assertEqual(d.command("s", "STATUS INBOX (MESSAGES)"),
                         ["* STATUS INBOX (MESSAGES 0)", "s OK STATUS completed"])
        self.assertEqual(files_under(srv.data_dir), before)


class LimitedServer(Server):
    # Writes past 2 MiB per file fail (EFBIG, as a full disk would fail them with ENOSPC).
    def argv(self):
        return ["prlimit", "--fsize=%d" % (2 * 1024 * 1024), "--"] + super().argv()


class TestSpoolDiskFull(ServerTestCase):
    def test_spool_write_failure_answers_no_and_keeps_the_stream(self):
        srv = LimitedServer(users=USERS, threads=1)
        self.addCleanup(self._finish_server, srv)
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.command("l", "LOGIN alice secret")[-1][:5], "l OK ")
        data = message(b"huge", 5 * 1024 * 1024)
        c.send(b"a APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
        self.assertEqual(c.read_tagged("a"),
                         ["a NO [OVERQUOTA] APPEND failed: not enough disk space"])
        # The rest of the literal was read, not taken for commands: the next command is answered.
        small = message(b"fits", 300 * 1024)
        c.send(b"b APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n")
        last = c.read_tagged("b")[-1]
        self.assertTrue(last.startswith("b OK [APPENDUID "), last)
        self.assertEqual(fetch_body(srv, "alice", "secret", "INBOX", appenduids(last)), small)


if __name__ == "__main__":
    unittest.main()
