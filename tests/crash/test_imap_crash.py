"""Crash test of the server: clients drive APPEND, UID STORE, UID COPY, UID MOVE and UID EXPUNGE
over IMAP and record every acknowledgement; ringmaild is killed with SIGKILL at a random moment.
After each kill fsck must find no damage; then the server is restarted on the same data and,
read back over IMAP, must hold every acknowledged change, with nothing unacknowledged
half-visible: every message's bytes exactly as appended, UIDVALIDITY unchanged, every UID below
UIDNEXT, and UIDNEXT never below a UID once given out.

The model. Every message belongs to the client that appended it (its copies too, found by the
X-Crash-Owner header), and a client touches only its own messages, one command at a time: at the
kill each client has at most one command in flight, and no two in-flight commands touch the same
message. One thread runs all of a user's commands, each to its end, writing every change at once,
so a kill leaves of the in-flight command a prefix of its changes (UID STORE and UID EXPUNGE go
in UID order; UID MOVE copies first, then expunges) and all of every acknowledged one. An
in-flight APPEND, COPY or MOVE is found after the restart by the bytes of its message.

Each cycle goes on from what the restarted server holds. RINGMAIL_IMAP_CRASH_CYCLES sets the
number of kill cycles (default 15), RINGMAIL_IMAP_CRASH_SEED the random choices (default 1234);
the closing note reports the run. A failure keeps the data directory, the op log and the server
logs, and names where. Every wait is bounded.
"""
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import TIMEOUT, ImapConn, Server, crash_lines, run_ringmail  # noqa: E402

CYCLES = int(os.environ.get("RINGMAIL_IMAP_CRASH_CYCLES", "15"))
SEED = int(os.environ.get("RINGMAIL_IMAP_CRASH_SEED", "1234"))
CLIENTS = {"ann": 3, "bob": 2}  # user: concurrent connections (a user's share one group commit)
PASSWORD = "crash-pw"
MAILBOXES = ("INBOX", "Archive", "Crash/Work")
KEYWORD = "$Crash"
FLAGS = ("\\Seen", "\\Flagged", "\\Deleted", KEYWORD)
OWNED_MAX = 25  # messages per client beyond which it expunges more than it adds
KILL_AFTER_S = (0.05, 1.5)

TEXT = bytes(b"abcdefghijklmnopqrstuvwxyz "[i % 27] for i in range(256))  # random bytes -> text
OWNER = re.compile(rb"\r\nX-Crash-Owner: (\S+)\r\n")
MESSAGE_ID = re.compile(rb"^Message-ID: <([^>]+)>")


def drive_and_kill(srv, clients, rng, kill_after_s):
    """Runs the clients against `srv`, SIGKILLs it after a random delay from `kill_after_s`,
    and returns what went wrong besides the kill (shared with test_mailbox_crash.py)."""
    threads = [threading.Thread(target=c.run, args=(srv.port,), daemon=True) for c in clients]
    started = time.monotonic()
    for t in threads:
        t.start()
    # From the start of the cycle: now and then the kill lands while the mail is being opened.
    time.sleep(max(0.0, started + rng.uniform(*kill_after_s) - time.monotonic()))
    killed_at = time.monotonic()
    alive = srv.running()
    rc = srv.stop(signal.SIGKILL)
    deadline = time.monotonic() + TIMEOUT
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    problems = []
    if not alive or rc != -signal.SIGKILL:
        problems.append("ringmaild died before the kill: exit %r" % rc)
    problems += ["sanitizer/assertion: " + l for l in crash_lines(srv.log_lines())]
    for c, t in zip(clients, threads):
        if t.is_alive():
            problems.append("%s still running %.0f s after the kill" % (c.name, TIMEOUT))
        elif c.error:
            problems.append("%s failed:\n%s" % (c.name, c.error))
        elif c.ended is None or c.ended[0] < killed_at:
            problems.append("%s: the server closed the connection before the kill: %r"
                            % (c.name, c.ended))
    return problems


class Msg:
    """A message as a client sees it: its exact bytes and its flags."""
    __slots__ = ("body", "flags")

    def __init__(self, body, flags):
        self.body = body
        self.flags = frozenset(flags)

    def __eq__(self, other):
        return self.body == other.body and self.flags == other.flags

    def __repr__(self):
        return "<%s %s>" % (message_id(self.body), flags_text(self.flags))


def message_id(body):
    m = MESSAGE_ID.match(body)
    return m.group(1).decode() if m else "%d bytes without a Message-ID" % len(body)


def owner(body):
    m = OWNER.search(body)
    return m.group(1).decode() if m else None


def flags_text(flags):
    return "(" + " ".join(sorted(flags)) + ")"


def uid_set(uids):
    return ",".join(str(u) for u in uids)


def expand_set(text):
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


class Effect:
    """One message's change: "add" (uid known once acknowledged), "flags" (old -> new), "del"."""

    def __init__(self, kind, box, uid, body, old=None, new=None):
        self.kind, self.box, self.uid, self.body = kind, box, uid, body
        self.old, self.new = old, new
        self.floor = None  # for "add": the UID floor when it was sent

    def __repr__(self):
        if self.kind == "add":
            what = "add %s" % flags_text(self.new)
        elif self.kind == "flags":
            what = "flags %s -> %s" % (flags_text(self.old), flags_text(self.new))
        else:
            what = "expunge"
        return "%s UID %s %s: %s" % (self.box, self.uid or "?", message_id(self.body), what)


class Op:
    def __init__(self, user, client, tag, text, effects):
        self.user, self.client, self.tag, self.text, self.effects = user, client, tag, text, effects
        self.acked = False

    def __repr__(self):
        effects = "\n      ".join(map(repr, self.effects)) or "(no change)"
        return "%s %s %s %s\n      %s" % (self.client, "ACKED" if self.acked else "in flight",
                                           self.tag, self.text, effects)


class World:
    """The model: every user's mailboxes as acknowledged so far, and the cycle's op log."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state = {u: {b: {} for b in MAILBOXES} for u in CLIENTS}
        self.uidvalidity = {u: {} for u in CLIENTS}
        # The highest UID known to be given out (acknowledged, or below UIDNEXT after a restart):
        # UIDNEXT never goes below it, and a change sent after it gets a higher one.
        self.uid_floor = {u: {b: 0 for b in MAILBOXES} for u in CLIENTS}
        self.ops = []

    def intend(self, op):
        with self.lock:
            for e in op.effects:
                if e.kind == "add":
                    e.floor = self.uid_floor[op.user][e.box]
            self.ops.append(op)

    def ack(self, op, new_uids=()):
        with self.lock:
            adds = [e for e in op.effects if e.kind == "add"]
            assert len(adds) == len(new_uids), (op, new_uids)
            for e, uid in zip(adds, new_uids):
                e.uid = uid
            boxes = self.state[op.user]
            for e in op.effects:
                if e.kind == "del":
                    del boxes[e.box][e.uid]
                    continue
                assert e.kind == "flags" or e.uid not in boxes[e.box], (op, "UID given twice")
                boxes[e.box][e.uid] = Msg(e.body, e.new)
                self.uid_floor[op.user][e.box] = max(self.uid_floor[op.user][e.box], e.uid)
            op.acked = True

    def mine(self, user, client, box):
        with self.lock:
            return {uid: m for uid, m in self.state[user][box].items() if owner(m.body) == client}

    def owned_count(self, user, client):
        with self.lock:
            return sum(owner(m.body) == client
                       for msgs in self.state[user].values() for m in msgs.values())


class Conn(ImapConn):
    """harness.ImapConn plus literals in responses; the capabilities are not this test's
    business, so any OK greeting will do."""

    def __init__(self, port):
        super().__init__(port, greeting=False)
        self.greeting = self.readline()
        if not self.greeting.startswith("* OK "):
            raise AssertionError("greeting %r" % self.greeting)

    def read_literal(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise EOFError("connection closed inside a literal of %d bytes" % n)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_with_literals(self, tag):
        """The responses up to the tagged one, each as (text, [literals]); in text every literal
        is replaced by \\0."""
        deadline = time.monotonic() + self.timeout
        out = []
        while True:
            text, literals = "", []
            line = self.readline(timeout=max(0.0, deadline - time.monotonic()))
            while True:
                m = re.search(r"\{(\d+)\}$", line)
                if not m:
                    break
                text += line[:m.start()] + "\0"
                literals.append(self.read_literal(int(m.group(1)), deadline))
                line = self.readline(timeout=max(0.0, deadline - time.monotonic()))
            out.append((text + line, literals))
            if (text + line).startswith(tag + " "):
                return out

    def login(self, user):
        lines = self.command("l", "LOGIN %s %s" % (user, PASSWORD))
        if len(lines) != 1 or not lines[0].startswith("l OK "):
            raise AssertionError("login as %s: %r" % (user, lines))


def select_info(lines, tag, box):
    if not lines[-1].startswith(tag + " OK "):
        raise AssertionError("SELECT %s: %r" % (box, lines))
    info = {}
    for line in lines:
        m = re.match(r"\* OK \[(UIDVALIDITY|UIDNEXT) (\d+)\]", line)
        if m:
            info[m.group(1)] = int(m.group(2))
    return info


class Client:
    """One connection of one user, driving random changes to its own messages until the server
    dies; every command is in the op log before it is sent."""

    def __init__(self, world, user, index, rng, serial):
        self.world, self.user, self.name = world, user, "%s.%d" % (user, index)
        self.rng = rng
        self.serial = serial  # messages appended so far by this client, over all cycles
        self.n = 0
        self.conn = None
        self.ended = None  # (time, exception) when the connection closed
        self.error = None  # anything else: a failure

    def run(self, port):
        try:
            self.conn = Conn(port)
            self.conn.login(self.user)
            self.selected = self.rng.choice(MAILBOXES)
            self.select(self.selected)
            while True:
                self.step()
        except (EOFError, ConnectionError) as e:
            self.ended = (time.monotonic(), e)
        except BaseException:
            self.error = traceback.format_exc()
        finally:
            if self.conn is not None:
                self.conn.close()

    def tag(self):
        self.n += 1
        return "%s.%d" % (self.name, self.n)

    def select(self, box):
        tag = self.tag()
        info = select_info(self.conn.command(tag, "SELECT " + box), tag, box)
        want = self.world.uidvalidity[self.user][box]
        if info.get("UIDVALIDITY") != want:
            raise AssertionError("%s: SELECT %s: UIDVALIDITY %r, not %d"
                                 % (self.name, box, info.get("UIDVALIDITY"), want))
        self.selected = box

    def command(self, op, data):
        """Logs `op`, sends `data` and returns the response lines; the tagged one must be OK."""
        self.world.intend(op)
        self.conn.send(data)
        lines = self.conn.read_tagged(op.tag)
        if not lines[-1].startswith(op.tag + " OK"):
            raise AssertionError("%s: %r" % (op, lines))
        return lines

    def step(self):
        mine = self.world.mine(self.user, self.name, self.selected)
        crowded = self.world.owned_count(self.user, self.name) >= OWNED_MAX
        choices = [("append", 5 if crowded else 30), ("select", 6)]
        if mine:
            choices += [("store", 30), ("copy", 3 if crowded else 12), ("move", 10),
                        ("expunge", 30 if crowded else 12)]
        kind = self.rng.choices([c for c, _ in choices], [w for _, w in choices])[0]
        if kind == "select":
            self.select(self.rng.choice([b for b in MAILBOXES if b != self.selected]))
        else:
            getattr(self, kind)(mine, crowded)

    def body(self):
        self.serial += 1
        rng = self.rng
        size = rng.randint(30_000, 300_000) if rng.random() < 0.1 else rng.randint(100, 6_000)
        head = ("Message-ID: <%s.%d@crash.test>\r\nFrom: %s@crash.test\r\nSubject: crash test %d"
                "\r\nX-Crash-Owner: %s\r\n\r\n" % (self.name, self.serial, self.user, self.serial,
                                                   self.name)).encode()
        prefix = ("%s %d " % (self.name, self.serial)).encode()
        text = rng.randbytes(size).translate(TEXT)
        return head + b"".join(prefix + text[i:i + 60] + b"\r\n" for i in range(0, size, 60))

    def pick(self, mine, low, high):
        """Some of `mine`, no two with the same bytes (a copy made in the same mailbox shares
        them), in UID order."""
        uids = list(mine)
        self.rng.shuffle(uids)
        chosen, bodies = [], set()
        for uid in uids:
            if mine[uid].body not in bodies:
                chosen.append(uid)
                bodies.add(mine[uid].body)
        return sorted(chosen[:self.rng.randint(low, high)])

    def append(self, mine, crowded):
        box = self.rng.choice(MAILBOXES)
        flags = sorted(self.rng.sample(FLAGS, self.rng.randint(0, 2))) \
            if self.rng.random() < 0.5 else []
        body = self.body()
        tag = self.tag()
        op = Op(self.user, self.name, tag,
                "APPEND %s %s {%d+}" % (box, flags_text(flags), len(body)),
                [Effect("add", box, None, body, new=frozenset(flags))])
        data = ("%s APPEND %s %s{%d+}\r\n" % (tag, box, flags_text(flags) + " " if flags else "",
                                              len(body))).encode() + body + b"\r\n"
        lines = self.command(op, data)
        m = re.match(r"\S+ OK \[APPENDUID (\d+) (\d+)\] ", lines[-1])
        if not m or int(m.group(1)) != self.world.uidvalidity[self.user][box]:
            raise AssertionError("%s: %r" % (op, lines))
        self.world.ack(op, [int(m.group(2))])

    def store(self, mine, crowded):
        uids = self.pick(mine, 1, 3)
        mode = self.rng.choice(("+FLAGS", "-FLAGS", "FLAGS"))
        flags = set(self.rng.sample(FLAGS, self.rng.randint(0 if mode == "FLAGS" else 1, 3)))
        if crowded and self.rng.random() < 0.7:
            mode, flags = "+FLAGS", {"\\Deleted"}
        effects = []
        for uid in uids:
            old = mine[uid].flags
            new = flags if mode == "FLAGS" else old | flags if mode == "+FLAGS" else old - flags
            effects.append(Effect("flags", self.selected, uid, mine[uid].body, old, frozenset(new)))
        tag = self.tag()
        text = "UID STORE %s %s %s" % (uid_set(uids), mode, flags_text(flags))
        op = Op(self.user, self.name, tag, "%s in %s" % (text, self.selected), effects)
        lines = self.command(op, "%s %s\r\n" % (tag, text))
        # Every message of the set is reported with its flags after the change.
        seen = {}
        for line in lines[:-1]:
            m = re.match(r"\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)$", line)
            if m:
                seen[int(m.group(1))] = frozenset(m.group(2).split())
        want = {e.uid: e.new for e in effects}
        if seen != want:
            raise AssertionError("%s: reported %r, the model says %r; %r" % (op, seen, want, lines))
        self.world.ack(op)

    def copy(self, mine, crowded, move=False):
        uids = self.pick(mine, 1, 2)
        dest = self.rng.choice([b for b in MAILBOXES if not move or b != self.selected])
        effects = [Effect("add", dest, None, mine[u].body, new=mine[u].flags) for u in uids]
        if move:
            effects += [Effect("del", self.selected, u, mine[u].body, old=mine[u].flags)
                        for u in uids]
        tag = self.tag()
        verb = "MOVE" if move else "COPY"
        text = "UID %s %s %s" % (verb, uid_set(uids), dest)
        op = Op(self.user, self.name, tag, "%s from %s" % (text, self.selected), effects)
        lines = self.command(op, "%s %s\r\n" % (tag, text))
        where = [l for l in lines if l.startswith("* OK [COPYUID ")] if move else lines[-1:]
        m = re.search(r"\[COPYUID (\d+) (\S+) (\S+)\]", where[0] if where else "")
        if (not m or int(m.group(1)) != self.world.uidvalidity[self.user][dest]
                or expand_set(m.group(2)) != uids or len(expand_set(m.group(3))) != len(uids)):
            raise AssertionError("%s: %r" % (op, lines))
        self.world.ack(op, expand_set(m.group(3)))

    def move(self, mine, crowded):
        self.copy(mine, crowded, move=True)

    def expunge(self, mine, crowded):
        deleted = [u for u, m in mine.items() if "\\Deleted" in m.flags]
        uids = set(self.pick(mine, 1, 3))
        if deleted:
            uids |= set(self.rng.sample(deleted, self.rng.randint(1, min(len(deleted), 4))))
        uids = sorted(uids)
        effects = [Effect("del", self.selected, u, mine[u].body, old=mine[u].flags)
                   for u in uids if "\\Deleted" in mine[u].flags]
        tag = self.tag()
        op = Op(self.user, self.name, tag, "UID EXPUNGE %s in %s" % (uid_set(uids), self.selected),
                effects)
        self.command(op, "%s UID EXPUNGE %s\r\n" % (tag, uid_set(uids)))
        self.world.ack(op)


def observe(port):
    """What the server holds: {user: {box: {uid: Msg}}}, and {user: {box: SELECT info}}."""
    mail, info = {}, {}
    for user in CLIENTS:
        c = Conn(port)
        try:
            c.login(user)
            mail[user], info[user] = {}, {}
            for box in MAILBOXES:
                info[user][box] = select_info(c.command("s", "SELECT " + box), "s", box)
                c.send("f UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\n")
                responses = c.read_with_literals("f")
                if responses[-1][0] != "f OK FETCH completed":
                    raise AssertionError("%s %s: UID FETCH: %r" % (user, box, responses[-1]))
                msgs = mail[user][box] = {}
                for text, literals in responses[:-1]:
                    m = re.match(r"\* \d+ FETCH \(UID (\d+) FLAGS \(([^)]*)\) BODY\[\] \0\)$", text)
                    if not m or len(literals) != 1:
                        raise AssertionError("%s %s: unexpected %r" % (user, box, text))
                    uid = int(m.group(1))
                    if uid in msgs:
                        raise AssertionError("%s %s: UID %d twice" % (user, box, uid))
                    msgs[uid] = Msg(literals[0], m.group(2).split())
            c.command("o", "LOGOUT")
        finally:
            c.close()
    return mail, info


def check(world, pending, actual, info):
    """The problems of `actual` (what the restarted server holds) against the model: all of
    every acknowledged change, a prefix of each in-flight command's, nothing else. Returns
    (problems, lost acknowledged changes, {outcome: in-flight commands})."""
    problems, lost, outcomes = [], 0, {}
    touched, adds = {}, {}  # (user, box, uid) -> effect; (user, box, bytes) -> effect
    for op in pending:
        for e in op.effects:
            key = (op.user, e.box, e.body if e.kind == "add" else e.uid)
            table = adds if e.kind == "add" else touched
            assert key not in table, "two in-flight changes of one message: %r" % op
            table[key] = e
    seen = {}  # effect -> True (made), False (not made); absent: cannot tell
    for user, boxes in world.state.items():
        for box, msgs in boxes.items():
            where = "%s %s" % (user, box)
            have = actual[user][box]
            if info[user][box].get("UIDVALIDITY") != world.uidvalidity[user][box]:
                problems.append("%s: UIDVALIDITY %r, was %d" % (
                    where, info[user][box].get("UIDVALIDITY"), world.uidvalidity[user][box]))
            uidnext = info[user][box].get("UIDNEXT", 0)
            if uidnext <= max(list(have) + [world.uid_floor[user][box]]):
                problems.append("%s: UIDNEXT %d, but UID %d exists or was given out" % (
                    where, uidnext, max(list(have) + [world.uid_floor[user][box]])))
            for uid, want in sorted(msgs.items()):
                e = touched.get((user, box, uid))
                got = have.get(uid)
                if got is None:
                    if e is not None and e.kind == "del":
                        seen[e] = True
                    else:
                        problems.append("%s UID %d: LOST, acknowledged %r is gone"
                                        % (where, uid, want))
                        lost += 1
                    continue
                if got.body != want.body:
                    problems.append("%s UID %d: holds %r, not the acknowledged %r "
                                    "(%d bytes, not %d)"
                                    % (where, uid, got, want, len(got.body), len(want.body)))
                    lost += 1
                if e is None or e.kind == "del":
                    if e is not None:
                        seen[e] = False
                    if got.flags != want.flags:
                        problems.append("%s UID %d: LOST, flags %s, acknowledged %s" % (
                            where, uid, flags_text(got.flags), flags_text(want.flags)))
                        lost += 1
                elif got.flags != e.old or got.flags != e.new:
                    if got.flags not in (e.old, e.new):
                        problems.append("%s UID %d: flags %s, neither the acknowledged %s nor the "
                                        "in-flight %s" % (where, uid, flags_text(got.flags),
                                                          flags_text(e.old), flags_text(e.new)))
                        lost += 1
                    seen[e] = got.flags == e.new
            for uid, got in sorted(have.items()):
                if uid in msgs:
                    continue
                e = adds.get((user, box, got.body))
                if e is None or e in seen or uid <= e.floor:
                    problems.append("%s UID %d: %r, which no acknowledged or in-flight command put "
                                    "there" % (where, uid, got))
                    continue
                seen[e] = True
                if got.flags != e.new:
                    problems.append("%s UID %d: %r arrived with flags %s, not %s" % (
                        where, uid, got, flags_text(got.flags), flags_text(e.new)))
    for e in adds.values():
        seen.setdefault(e, False)
    for op in pending:
        made = [seen.get(e) for e in op.effects]
        last_made = max([i for i, s in enumerate(made) if s is True], default=-1)
        first_not = min([i for i, s in enumerate(made) if s is False], default=len(made))
        if last_made > first_not:
            problems.append("in-flight %r: made %s, not a prefix of its changes" % (op, made))
        outcome = ("unseen" if last_made < 0 and first_not == len(made) else
                   "made" if first_not == len(made) else "not made" if last_made < 0 else "partly")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return problems, lost, outcomes


class ImapCrashTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringmail-imap-crash-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.data = os.path.join(self.dir, "data")
        self.servers = []

    def tearDown(self):
        for srv in self.servers:
            srv.close()

    def start(self, **kw):
        srv = Server(data_dir=self.data, **kw)
        self.servers.append(srv)
        return srv

    def keep_evidence(self, cycle, world, problems, logs):
        keep = tempfile.mkdtemp(prefix="ringmail-imap-crash-evidence-")
        shutil.copytree(self.data, os.path.join(keep, "data"))
        with open(os.path.join(keep, "report.txt"), "w") as f:
            f.write("seed %d, cycle %d\n\nPROBLEMS\n%s\n\nOPS OF THE CYCLE\n%s\n" % (
                SEED, cycle, "\n".join(problems), "\n".join(map(repr, world.ops))))
            for name, lines in logs:
                f.write("\n%s LOG\n%s\n" % (name.upper(), "\n".join(lines)))
        return keep

    def fail_cycle(self, cycle, world, problems, logs):
        keep = self.keep_evidence(cycle, world, problems, logs)
        pending = [op for op in world.ops if not op.acked]
        self.fail("cycle %d (seed %d): %s\nin flight at the kill:\n  %s\nlog tails:\n%s\n"
                  "evidence (data, full op log, logs) kept in %s" % (
                      cycle, SEED, "\n".join(problems), "\n  ".join(map(repr, pending)) or "none",
                      "\n".join("%s:\n  %s" % (n, "\n  ".join(l[-15:])) for n, l in logs), keep))

    def setup_mail(self, world, srv):
        for user in CLIENTS:
            with Conn(srv.port) as c:
                c.login(user)
                self.assertEqual(c.command("c", "CREATE Crash/Work"), ["c OK CREATE completed"])
                for box in MAILBOXES:
                    world.uidvalidity[user][box] = select_info(
                        c.command("s", "SELECT " + box), "s", box)["UIDVALIDITY"]

    def test_every_acknowledged_imap_change_survives_sigkill(self):
        rng = random.Random(SEED)
        world = World()
        srv = self.start(users={u: PASSWORD for u in CLIENTS})
        self.setup_mail(world, srv)
        serials = {}
        acked_commands = acked_changes = notes = lost = 0
        outcomes = {}  # of the commands in flight at the kills
        started = time.monotonic()
        for cycle in range(CYCLES):
            world.ops = []
            clients = [Client(world, u, i, random.Random(rng.random()), serials.get((u, i), 0))
                       for u, n in CLIENTS.items() for i in range(n)]
            problems = drive_and_kill(srv, clients, rng, KILL_AFTER_S)
            for c in clients:
                serials[(c.user, int(c.name.split(".")[1]))] = c.serial
            killed_log = srv.log_lines()
            logs = [("killed server", killed_log)]
            if problems:
                self.fail_cycle(cycle, world, problems, logs)
            fsck = run_ringmail("fsck", "--data-dir", self.data, timeout=120)
            logs.append(("fsck", (fsck.stdout + fsck.stderr).splitlines()))
            if fsck.returncode != 0:
                self.fail_cycle(cycle, world, ["fsck exit %d (0 is clean)" % fsck.returncode], logs)
            notes += fsck.stdout.count(": note: ")
            srv.close()
            try:
                srv = self.start()
            except Exception as e:
                self.fail_cycle(cycle, world, ["restart failed: %s" % e], logs)
            try:
                actual, info = observe(srv.port)
            except (AssertionError, EOFError, TimeoutError, ConnectionError) as e:
                logs.append(("restarted server", srv.log_lines()))
                self.fail_cycle(cycle, world, ["reading the mail back: %s" % e], logs)
            pending = [op for op in world.ops if not op.acked]
            problems, cycle_lost, cycle_outcomes = check(world, pending, actual, info)
            problems += ["sanitizer/assertion: " + l for l in crash_lines(srv.log_lines())]
            if problems:
                logs.append(("restarted server", srv.log_lines()))
                self.fail_cycle(cycle, world, problems, logs)
            lost += cycle_lost
            for k, v in cycle_outcomes.items():
                outcomes[k] = outcomes.get(k, 0) + v
            done = [op for op in world.ops if op.acked]
            acked_commands += len(done)
            acked_changes += sum(e.kind != "flags" or e.old != e.new for op in done
                                 for e in op.effects)
            for user in CLIENTS:
                for box in MAILBOXES:
                    world.state[user][box] = dict(actual[user][box])
                    world.uid_floor[user][box] = info[user][box]["UIDNEXT"] - 1
        rc = srv.stop()
        lines = srv.log_lines()
        self.assertEqual(crash_lines(lines), [], "sanitizer report or assertion in the log")
        self.assertEqual(rc, 0, "ringmaild exit code; log tail:\n" + "\n".join(lines[-40:]))
        self.assertGreater(acked_changes, 0)
        self.assertEqual(lost, 0)
        messages = sum(len(b) for u in world.state.values() for b in u.values())
        print("\n%d kill cycles in %.0f s (seed %d): %d acknowledged commands, %d acknowledged "
              "changes; in flight at the kills: %s; %d fsck notes, %d messages at the end; %d lost"
              % (CYCLES, time.monotonic() - started, SEED, acked_commands, acked_changes,
                 ", ".join("%d %s" % (v, k) for k, v in sorted(outcomes.items())), notes,
                 messages, lost))


if __name__ == "__main__":
    unittest.main()
