"""Crash test of the full-text index: ringmaild indexes with one message per index segment
(--fts-batch-docs 1), so every APPEND writes a segment and every fourth merges, while clients
append messages of known words; it is killed with SIGKILL at a random moment. After each kill
fsck must find no damage; after the restart every acknowledged message is there and, for every
word, SEARCH BODY answers exactly the messages whose body holds it (checked against the bodies
fetched back), with the index and, on the last cycle, with the index switched off.

RINGMAIL_FTS_CRASH_CYCLES sets the number of kill cycles (default 6), RINGMAIL_FTS_CRASH_SEED the
random choices (default 99). Every wait is bounded.
"""
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import TIMEOUT, ImapConn, Server, add_user, crash_lines, run_ringmail  # noqa: E402

CYCLES = int(os.environ.get("RINGMAIL_FTS_CRASH_CYCLES", "6"))
SEED = int(os.environ.get("RINGMAIL_FTS_CRASH_SEED", "99"))
PASSWORD = "fts-crash-pw"
WORDS = ["apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel", "ice", "jujube"]
KILL_AFTER_S = (0.2, 1.5)


class Appender:
    """Appends messages of random words until the connection breaks; remembers the acked."""

    def __init__(self, port, rng, name):
        self.port = port
        self.rng = rng
        self.name = name
        self.acked = set()  # Message-ID values
        self.error = None

    def run(self):
        try:
            c = ImapConn(self.port)
            c.command("l", "LOGIN u " + PASSWORD)
        except Exception:  # the kill came first
            return
        n = 0
        try:
            while True:
                n += 1
                mid = "%s.%d" % (self.name, n)
                words = " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(1, 6)))
                body = ("Message-ID: <%s>\r\nSubject: m\r\n\r\n%s\r\n" % (mid, words)).encode()
                c.send(b"a APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
                while True:
                    line = c.readline()
                    if line.startswith("a "):
                        break
                if not line.startswith("a OK"):
                    self.error = "APPEND answered %r" % line
                    return
                self.acked.add(mid)
        except Exception:
            return  # the kill
        finally:
            c.close()


class FtsCrashTest(unittest.TestCase):
    def test_kills_during_index_writes_and_merges_lose_nothing(self):
        rng = random.Random(SEED)
        tmp = tempfile.mkdtemp(prefix="ringmail-fts-crash-")
        data = os.path.join(tmp, "data")
        add_user(data, "u", PASSWORD)
        srv = Server(data_dir=data, args=["--fts-batch-docs", "1"])
        acked = set()
        ok = False
        try:
            for cycle in range(CYCLES):
                clients = [Appender(srv.port, random.Random(rng.random()), "c%d.%d" % (cycle, i))
                           for i in range(2)]
                threads = [threading.Thread(target=a.run, daemon=True) for a in clients]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(*KILL_AFTER_S))
                self.assertTrue(srv.running(), "ringmaild died before the kill")
                rc = srv.stop(signal.SIGKILL)
                self.assertEqual(rc, -signal.SIGKILL)
                for t in threads:
                    t.join(TIMEOUT)
                self.assertEqual(crash_lines(srv.log_lines()), [])
                for a in clients:
                    self.assertIsNone(a.error)
                    acked |= a.acked
                fsck = run_ringmail("fsck", "--data-dir", data, timeout=120)
                self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)
                srv.close()
                last = cycle == CYCLES - 1
                srv = Server(data_dir=data, args=["--fts-batch-docs", "1"])
                self.check(srv, acked, cycle)
                if last:
                    srv.close()
                    srv = Server(data_dir=data, args=["--fts-index", "0"])
                    self.check(srv, acked, cycle)
            # Enough happened for the kills to land in index writes and merges.
            self.assertGreater(len(acked), 40 * CYCLES)
            print("fts crash: %d cycles, %d messages acknowledged" % (CYCLES, len(acked)))
            ok = True
        finally:
            srv.close()
            if ok:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                print("data kept in", data)

    def check(self, srv, acked, cycle):
        with ImapConn(srv.port) as c:
            c.command("l", "LOGIN u " + PASSWORD)
            c.command("s", "SELECT INBOX")
            messages = fetch_all(c)
            present = {mid for mid, _ in messages.values()}
            self.assertEqual(acked - present, set(),
                             "cycle %d: acknowledged messages lost" % cycle)
            for w in WORDS + ["an", "e", "rape", "nothing"]:
                expect = sorted(uid for uid, (_, body) in messages.items() if w in body)
                got = search(c, "UID SEARCH BODY " + w)
                self.assertEqual(got, expect, "cycle %d: SEARCH BODY %s" % (cycle, w))


def fetch_all(c):
    """{uid: (message-id, body text)} of every message in the selected mailbox."""
    c.send("f UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] BODY.PEEK[TEXT])\r\n")
    out = {}
    while True:
        line = c.readline()
        if line.startswith("f "):
            assert line.startswith("f OK"), line
            return out
        # * n FETCH (UID u BODY[HEADER.FIELDS (MESSAGE-ID)] {n}
        # <n bytes> BODY[TEXT] {m}
        # <m bytes>)
        uid = int(line.split("UID ")[1].split()[0])
        literals = []
        while line.endswith("}"):
            n = int(line[line.rindex("{") + 1:-1])
            literals.append(c.read_exact(n).decode("latin-1"))
            line = c.readline()
        header, body = literals
        mid = header.split("<")[1].split(">")[0]
        out[uid] = (mid, body.lower())


def search(c, cmd):
    lines = c.command("s", cmd)
    assert lines[-1].startswith("s OK"), lines
    uids = []
    for line in lines:
        if line.startswith("* SEARCH"):
            uids = [int(x) for x in line.split()[2:]]
    return sorted(uids)


if __name__ == "__main__":
    unittest.main()
