"""ringmail-bench, the load generator, against a real ringmaild and against fake servers that
answer wrongly.

Against ringmaild every mode runs with --json, exits 0 without errors, and what it reports is
held against the mailboxes themselves (STATUS and FETCH through imaplib, before and after): load
leaves exactly --messages in each INBOX, append adds exactly the APPENDs it counted, --corpus
messages arrive byte for byte in order, a FETCH loop receives at least the bytes it fetched, and
every watcher in IDLE gets the EXISTS of every APPEND.

Against the fakes (a threaded socket server on 127.0.0.1 in this file) the point is the other
way round: a server that is fast because it skips work must not look good. A FETCH answered OK
without data, NOOP answered BAD, a line that is not IMAP, an APPEND whose EXISTS never reaches
the IDLE watcher: each makes the bench exit 1 and name the error. Each fake has a control that
answers correctly and passes, so the failure comes from the one wrong answer.

Runs are short (--duration 1 or 2, --warmup 0) or bounded by --max-commands; the durations only
bound the runs, nothing here asserts how fast anything was.
"""

import imaplib
import json
import os
import re
import socketserver
import tempfile
import threading
import unittest

from harness import (HOST, ITERATIONS, TIMEOUT, Server, bin_path, crash_lines, run,
                     run_ringmail)
from test_mail import _shutdown_quietly

PASSWORD = "bench-pw-1"
BENCH_TIMEOUT = 4 * TIMEOUT  # one bench run, start to exit (sanitizer builds are slow)

MIX_OPS = {"noop", "status", "fetch_flags", "fetch_headers", "fetch_body", "store", "append",
           "expunge", "search", "logout"}
OP_FIELDS = {"count", "per_s", "p50_us", "p99_us", "p99_9_us", "max_us", "errors"}
PUSH_FIELDS = {"expected", "seen", "p50_ms", "p99_ms", "max_ms"}


def message(sender, subject, body):
    return ("From: %s\r\nTo: r@example.org\r\nSubject: %s\r\n\r\n%s" % (sender, subject, body)
            ).encode()


def sized_message(size):
    """A message of exactly `size` octets, in lines of 80."""
    head = b"From: Fetch <f@example.com>\r\nTo: r@example.org\r\nSubject: %d octets\r\n\r\n" % size
    body = bytearray()
    while len(head) + len(body) + 82 <= size:
        body += b"%078d\r\n" % len(body)
    rest = size - len(head) - len(body)
    assert rest >= 2
    return head + bytes(body) + b"w" * (rest - 2) + b"\r\n"


def write_mboxrd(path, messages):
    """An mboxrd file as bench/corpus.py writes it: CRLF kept inside the messages, a "From "
    line before each, ">" added to every line that is ">"* then "From "."""
    with open(path, "wb") as f:
        for data in messages:
            f.write(b"From corpus@example.com Mon Jan  7 10:00:00 2019\n")
            for line in data.split(b"\n"):
                if line.lstrip(b">").startswith(b"From "):
                    line = b">" + line
                f.write(line + b"\n")


def import_users(data_dir, users):
    r = run_ringmail("user", "import", "--data-dir", data_dir, "--iterations", str(ITERATIONS),
                     stdin_text="".join("%s %s\n" % (n, p) for n, p in users.items()))
    if r.returncode != 0:
        raise RuntimeError("ringmail user import failed: %r" % r)


class BenchCase(unittest.TestCase):
    maxDiff = None

    def bench(self, port, *args, rc=0):
        """Runs ringmail-bench --json against 127.0.0.1:port; asserts the exit status and returns
        (stdout lines, the JSON report)."""
        argv = [bin_path("ringmail-bench"), "--host", HOST, "--port", str(port), "--json",
                "--warmup", "0"] + [str(a) for a in args]
        r = run(argv, timeout=BENCH_TIMEOUT)
        self.assertEqual(crash_lines((r.stdout + r.stderr).splitlines()), [], r)
        self.assertEqual(r.returncode, rc, r)
        lines = r.stdout.splitlines()
        reports = [l for l in lines if l.startswith("{")]
        self.assertEqual(len(reports), 1, r)
        report = json.loads(reports[0])
        # The error total is the sum of the kinds, whatever the outcome.
        self.assertEqual(report["errors_total"], sum(report["errors"].values()), report)
        self.assertIs(report["interrupted"], False, report)
        return lines, report

    def assertClean(self, report):
        self.assertEqual((report["errors_total"], report["errors"]), (0, {}), report)
        for name, op in report.get("ops", {}).items():
            self.assertEqual(op["errors"], 0, (name, report))

    def assertOps(self, report):
        """Every op has the fields the spec names; "commands" is the sum of the ops' counts."""
        ops = report["ops"]
        for name, op in ops.items():
            self.assertEqual(OP_FIELDS - set(op), set(), "fields missing from ops.%s" % name)
        self.assertEqual(report["commands"], sum(op["count"] for op in ops.values()), report)
        return ops

    def assertPush(self, report, expected):
        push = report["push"]
        self.assertEqual(PUSH_FIELDS - set(push), set(), "fields missing from push")
        if expected is not None:
            self.assertEqual(push["expected"], expected, report)
        self.assertGreater(push["expected"], 0, report)
        self.assertEqual(push["seen"], push["expected"], report)
        self.assertTrue(0 <= push["p50_ms"] <= push["p99_ms"] <= push["max_ms"], push)


# ---- Against ringmaild ----------------------------------------------------------------------

# Every test uses users of its own, so mailbox counts are exact.
USERS = {n: PASSWORD for n in (
    "noop0", "noop1", "login0", "login1", "select0", "select1", "fetch0", "append0", "corpus0",
    "search0", "mix0", "push0", "idle0", "idle1", "load0", "load1")}
FILE_USERS = {"file0": "file-pw-0", "file1": "file-pw-1"}  # only --users-file knows these


class TestBenchAgainstRingmaild(BenchCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(start=False, threads=2)
        try:
            import_users(cls.srv.data_dir, dict(USERS, **FILE_USERS))
            cls.srv.start()
        except BaseException:
            cls.srv.close()
            raise

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

    def tmpdir(self):
        d = tempfile.TemporaryDirectory(prefix="ringmail-bench-")
        self.addCleanup(d.cleanup)
        return d.name

    def run_bench(self, pattern, *args, rc=0):
        return self.bench(self.srv.port, "--user-pattern", pattern, "--password", PASSWORD,
                          *args, rc=rc)

    def imap(self, user, password=PASSWORD):
        m = imaplib.IMAP4(HOST, self.srv.port, timeout=TIMEOUT)
        self.addCleanup(_shutdown_quietly, m)
        m.login(user, password)
        return m

    def status(self, user, items="MESSAGES", password=PASSWORD):
        m = self.imap(user, password)
        typ, data = m.status("INBOX", "(%s)" % items)
        self.assertEqual(typ, "OK", data)
        m.logout()
        words = re.search(rb"\(([^()]*)\)$", data[0]).group(1).split()
        values = {words[i].decode(): int(words[i + 1]) for i in range(0, len(words), 2)}
        return values if " " in items else values[items]

    def fill(self, user, messages, flags=None):
        m = self.imap(user)
        for data in messages:
            typ, resp = m.append("INBOX", flags, None, data)
            self.assertEqual(typ, "OK", resp)
        m.logout()

    def bodies(self, user):
        m = self.imap(user)
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1:*", "(BODY.PEEK[])")
        self.assertEqual(typ, "OK", data)
        m.logout()
        return [d[1] for d in data if isinstance(d, tuple)]

    # -- the modes --

    def test_noop(self):
        _, report = self.run_bench("noop%d", "--mode", "noop", "--users", 2, "--connections", 2,
                                   "--duration", 1)
        self.assertClean(report)
        self.assertEqual((report["greeted"], report["logged_in"]), (2, 2), report)
        self.assertGreater(self.assertOps(report)["noop"]["count"], 0, report)

    def test_login(self):
        _, report = self.run_bench("login%d", "--mode", "login", "--users", 2, "--connections",
                                   2, "--duration", 1)
        self.assertClean(report)
        self.assertOps(report)
        self.assertGreater(report["commands"], 0, report)
        self.assertGreaterEqual(report["logged_in"], report["commands"], report)

    def test_select(self):
        for user in ("select0", "select1"):
            self.fill(user, [message("S <s@example.com>", "s%d" % i, "x\r\n") for i in range(3)])
        _, report = self.run_bench("select%d", "--mode", "select", "--users", 2,
                                   "--connections", 2, "--duration", 1)
        self.assertClean(report)
        self.assertOps(report)
        self.assertGreater(report["commands"], 0, report)
        self.assertEqual(self.status("select0"), 3)

    def test_fetch_receives_the_message_each_time(self):
        # One message: every FETCH <random seq> is FETCH 1 BODY.PEEK[], with the whole message.
        size = 4000
        self.fill("fetch0", [sized_message(size)])
        _, report = self.run_bench("fetch%d", "--mode", "fetch", "--users", 1, "--connections",
                                   1, "--max-commands", 10, "--duration", 60)
        self.assertClean(report)
        self.assertOps(report)
        self.assertEqual(report["commands"], 10, report)
        # Ten literals of `size`; less than an eleventh on top (greeting, LOGIN, SELECT, tags).
        self.assertGreaterEqual(report["bytes_received"], 10 * size, report)
        self.assertLess(report["bytes_received"], 11 * size, report)
        # BODY.PEEK[] leaves \Seen alone.
        self.assertEqual(self.status("fetch0", "MESSAGES UNSEEN"), {"MESSAGES": 1, "UNSEEN": 1})

    def test_append_count_is_what_the_mailbox_gained(self):
        before = self.status("append0")
        _, report = self.run_bench("append%d", "--mode", "append", "--users", 1,
                                   "--connections", 1, "--max-commands", 50, "--duration", 60)
        self.assertClean(report)
        self.assertEqual(self.assertOps(report)["append"]["count"], 50, report)
        self.assertEqual(report["commands"], 50, report)
        self.assertEqual(self.status("append0") - before, 50)

    def test_append_sends_the_corpus_in_order_cycling(self):
        corpus = [message("A <a@example.com>", "first", "one\r\n"),
                  message("B <b@example.com>", "second",
                          "From the desk of B\r\n>From quoted once\r\n\r\nend\r\n"),
                  message("C <c@example.com>", "third", ">>From twice\r\nFrom \r\n")]
        path = os.path.join(self.tmpdir(), "corpus.mbox")
        write_mboxrd(path, corpus)
        _, report = self.run_bench("corpus%d", "--mode", "append", "--users", 1, "--connections",
                                   1, "--corpus", path, "--max-commands", 5, "--duration", 60)
        self.assertClean(report)
        self.assertEqual(report["commands"], 5, report)
        self.assertEqual(self.bodies("corpus0"), corpus + corpus[:2])

    def test_search(self):
        self.fill("search0", [
            message("Alice <a@example.com>", "Planning", "The meeting is at ten.\r\n"),
            message("Bob <bob@example.org>", "Lunch", "Soup or salad?\r\n"),
            message("Dan <dan@example.net>", "Report", "Numbers attached.\r\n")])
        for keys in ((), ("--search", 'SUBJECT "no such subject"', "--search", "ALL")):
            _, report = self.run_bench("search%d", "--mode", "search", "--users", 1,
                                       "--connections", 1, "--duration", 1, *keys)
            self.assertClean(report)
            self.assertOps(report)
            self.assertGreater(report["commands"], 0, report)

    def test_default_mix(self):
        self.fill("mix0", [message("M%d <m%d@example.com>" % (i, i), "mix %d" % i,
                                   "meeting %d\r\n" % i) for i in range(30)])
        _, report = self.run_bench("mix%d", "--mode", "mix", "--users", 1, "--connections", 2,
                                   "--watchers", 1, "--duration", 2)
        self.assertClean(report)
        ops = self.assertOps(report)
        for op in ("fetch_body", "store", "append"):
            self.assertGreater(ops.get(op, {}).get("count", 0), 0, (op, report))
        self.assertPush(report, None)

    def test_mix_appends_reach_the_watcher(self):
        before = self.status("push0")
        _, report = self.run_bench("push%d", "--mode", "mix", "--mix", "append=1,noop=1",
                                   "--users", 1, "--connections", 1, "--watchers", 1,
                                   "--duration", 2)
        self.assertClean(report)
        ops = self.assertOps(report)
        self.assertEqual(set(ops) & MIX_OPS, {"append", "noop"}, report)
        appended = ops["append"]["count"]
        self.assertGreater(appended, 0, report)
        self.assertPush(report, None)
        # One connection, one command in flight: at most one APPEND beyond those counted.
        self.assertIn(self.status("push0") - before, (appended, appended + 1))

    def test_idle_notify_reaches_every_watcher(self):
        before = [self.status(u) for u in ("idle0", "idle1")]
        lines, report = self.run_bench("idle%d", "--mode", "idle", "--notify", "--users", 2,
                                       "--connections", 4, "--notify-after", "0.5",
                                       "--push-timeout", 10, "--hold-seconds", 30)
        self.assertEqual(lines[0], "connected=4 logged_in=4 idling=4")
        self.assertClean(report)
        self.assertPush(report, 4)  # one APPEND per user, two watchers each
        self.assertEqual([self.status(u) - b for u, b in zip(("idle0", "idle1"), before)], [1, 1])

    def test_load_fills_every_users_mailbox(self):
        _, report = self.run_bench("load%d", "--mode", "load", "--messages", 30, "--users", 2,
                                   "--connections", 4)
        self.assertClean(report)
        self.assertEqual(report["messages_appended"], 60, report)
        self.assertGreater(report["messages_per_s"], 0, report)
        self.assertEqual([self.status("load0"), self.status("load1")], [30, 30])

    def test_users_file(self):
        path = os.path.join(self.tmpdir(), "users")
        with open(path, "w") as f:
            f.write("".join("%s %s\n" % item for item in FILE_USERS.items()))
        _, report = self.bench(self.srv.port, "--mode", "load", "--messages", 3,
                               "--connections", 2, "--users-file", path)
        self.assertClean(report)
        self.assertEqual(report["messages_appended"], 6, report)
        self.assertEqual([self.status(u, password=p) for u, p in FILE_USERS.items()], [3, 3])


# ---- Against servers that answer wrongly ----------------------------------------------------

class _FakeHandler(socketserver.StreamRequestHandler):
    def setup(self):
        super().setup()
        self.write_lock = threading.Lock()

    def send(self, *responses):
        with self.write_lock:
            self.wfile.write(b"".join(r.encode("latin-1") + b"\r\n" for r in responses))

    def read_command(self):
        """One command line, its literals read and dropped; None at EOF."""
        line = self.rfile.readline(1 << 20)
        if not line:
            return None
        text = command = line.rstrip(b"\r\n").decode("latin-1")
        while True:
            m = re.search(r"\{(\d+)(\+?)\}$", text)
            if not m:
                return command
            if not m.group(2):
                self.send("+ Ready for literal data")
            self.rfile.read(int(m.group(1)))
            rest = self.rfile.readline(1 << 20)
            if not rest:
                return None
            text = rest.rstrip(b"\r\n").decode("latin-1")
            command += " <literal>" + text

    def handle(self):
        fake = self.server.fake
        try:
            self.send("* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE] fake server ready")
            while True:
                line = self.read_command()
                if line is None:
                    return
                tag, _, rest = line.partition(" ")
                verb = rest.split(" ", 1)[0].upper()
                with fake.lock:
                    fake.verbs[verb] = fake.verbs.get(verb, 0) + 1
                if verb == "LOGOUT":
                    return self.send("* BYE logging out", tag + " OK LOGOUT completed")
                if verb == "IDLE":
                    with fake.lock:
                        self.send("+ idling")
                        fake.idlers.add(self)
                    done = self.rfile.readline(1 << 20)
                    with fake.lock:
                        fake.idlers.discard(self)
                    if done.rstrip(b"\r\n").upper() != b"DONE":
                        return
                    self.send(tag + " OK IDLE terminated")
                    continue
                self.send(*fake.answer(tag, verb, rest))
        except OSError:
            pass
        finally:
            with fake.lock:
                fake.idlers.discard(self)


class FakeServer:
    """A stand-in IMAP server on 127.0.0.1: greeting, LOGIN, SELECT of a mailbox with 3 messages,
    IDLE, APPEND, LOGOUT; anything else is answered OK. What it gets wrong is chosen:
      noop:             "ok", "bad" (tagged BAD) or "garbage" (a line that is not IMAP)
      fetch_data:       False: FETCH answered OK without any FETCH response
      exists_to_idlers: False: an APPEND is answered OK but no IDLE connection hears of it
    """

    GARBAGE = "garbage-line-that-is-no-imap-response"

    def __init__(self, noop="ok", fetch_data=True, exists_to_idlers=True):
        self.noop, self.fetch_data, self.exists_to_idlers = noop, fetch_data, exists_to_idlers
        self.lock = threading.Lock()
        self.idlers = set()
        self.verbs = {}
        self.exists = 3
        self.server = socketserver.ThreadingTCPServer((HOST, 0), _FakeHandler)
        self.server.daemon_threads = True
        self.server.fake = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT)

    def answer(self, tag, verb, rest):
        if verb in ("SELECT", "EXAMINE"):
            with self.lock:
                n = self.exists
            return ["* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
                    "* %d EXISTS" % n, "* OK [UIDVALIDITY 1] UIDs valid",
                    "* OK [UIDNEXT %d] Predicted next UID" % (n + 1),
                    tag + " OK [READ-WRITE] %s completed" % verb]
        if verb == "APPEND":
            with self.lock:
                self.exists += 1
                if self.exists_to_idlers:
                    for h in self.idlers:
                        h.send("* %d EXISTS" % self.exists)
            return [tag + " OK APPEND completed"]
        if verb == "NOOP" and self.noop != "ok":
            return [tag + " BAD Unknown command"] if self.noop == "bad" else [self.GARBAGE]
        if verb == "FETCH" and self.fetch_data:
            seq = int(rest.split(" ")[1])
            body = "From: f@example.com\r\nSubject: fake %d\r\n\r\nbody\r\n" % seq
            return ["* %d FETCH (BODY[] {%d}\r\n%s)" % (seq, len(body), body),
                    tag + " OK FETCH completed"]
        return [tag + " OK %s completed" % verb]


class TestBenchAgainstWrongServers(BenchCase):
    def fake(self, **kwargs):
        f = FakeServer(**kwargs)
        self.addCleanup(f.close)
        return f

    def run_fake(self, fake, *args, rc):
        return self.bench(fake.port, "--users", 1, "--connections", 1, *args, rc=rc)[1]

    def test_fetch_answered_without_data_is_an_error(self):
        good = self.fake()
        self.assertClean(self.run_fake(good, "--mode", "fetch", "--duration", 1, rc=0))
        bad = self.fake(fetch_data=False)
        report = self.run_fake(bad, "--mode", "fetch", "--duration", 1, rc=1)
        self.assertGreater(report["errors"].get("fetch_without_data", 0), 0, report)
        self.assertGreater(bad.verbs.get("FETCH", 0), 0)

    def test_noop_answered_bad_is_an_error(self):
        good = self.fake()
        report = self.run_fake(good, "--mode", "noop", "--duration", 1, rc=0)
        self.assertClean(report)
        self.assertGreater(report["commands"], 0, report)
        report = self.run_fake(self.fake(noop="bad"), "--mode", "noop", "--duration", 1, rc=1)
        self.assertGreater(report["errors"].get("command_bad", 0), 0, report)

    def test_garbage_line_is_an_error(self):
        report = self.run_fake(self.fake(noop="garbage"), "--mode", "noop", "--duration", 1,
                               rc=1)
        self.assertGreater(report["errors"].get("unparseable_line", 0), 0, report)

    def test_idle_notify_without_exists_is_an_error(self):
        args = ("--mode", "idle", "--notify", "--notify-after", "0.2", "--push-timeout", 1,
                "--hold-seconds", 30)
        lines, good = self.bench(self.fake().port, "--users", 1, "--connections", 1, *args, rc=0)
        self.assertEqual(lines[0], "connected=1 logged_in=1 idling=1")
        self.assertClean(good)
        self.assertPush(good, 1)
        fake = self.fake(exists_to_idlers=False)
        report = self.run_fake(fake, *args, rc=1)
        self.assertGreater(report["errors"].get("missing_exists", 0), 0, report)
        self.assertEqual((report["push"]["expected"], report["push"]["seen"]), (1, 0), report)
        self.assertEqual(fake.verbs.get("APPEND"), 1)

    def test_mix_without_exists_is_an_error(self):
        fake = self.fake(exists_to_idlers=False)
        report = self.run_fake(fake, "--mode", "mix", "--mix", "append=1", "--watchers", 1,
                               "--push-timeout", 1, "--duration", 2, rc=1)
        self.assertGreater(report["errors"].get("missing_exists", 0), 0, report)
        self.assertLess(report["push"]["seen"], report["push"]["expected"], report)
        self.assertGreater(fake.verbs.get("APPEND", 0), 0)


class TestBenchUsage(BenchCase):
    def test_bad_usage_exits_2(self):
        for args in (("--mode", "nonsense"),
                     ("--mode", "mix", "--mix", "fetch_body=1,teleport=1"),
                     ("--mode", "mix", "--mix", "noop=x"),
                     ("--mode", "load", "--messages", "many")):
            r = run([bin_path("ringmail-bench"), "--port", "1"] + list(args),
                    timeout=BENCH_TIMEOUT)
            self.assertEqual(r.returncode, 2, (args, r))
            self.assertEqual(crash_lines(r.stderr.splitlines()), [], r)


if __name__ == "__main__":
    unittest.main()
