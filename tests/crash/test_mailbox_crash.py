"""Crash test of the mailbox list: clients drive CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE
and APPEND over IMAP and record every acknowledgement; ringmaild is killed with SIGKILL at a
random moment. After each kill fsck must find no damage; then the server is restarted on the same
data and, read back with LIST, LSUB, EXAMINE and UID FETCH, must hold every acknowledged
mailbox-list change, with the one command each client had in flight either made or not made.

The server answers these commands OK only once their change is durable through its group commit
(the new list written to a temporary file, fsynced, renamed over `mailboxes`, the user directory
fsynced; a new mailbox's files before the list that names it; a deleted mailbox's files removed
only after the list without it is durable). This test is what holds it to that.

The model. One user; each client (its own connection) owns a name space, the root "T<n>" and
every name below it, and touches nothing else, one command at a time. It keeps the state of its
name space after every acknowledged command, {name: Box}: each mailbox's UIDVALIDITY (once
learned from an APPENDUID or a read-back), its messages {UID: bytes} and whether it is
subscribed. Before it sends a command it notes the states the name space may be left in should
the server die before the answer: the acknowledged state ("not made") and the state after the
command ("made"); a CREATE or RENAME that creates superiors may also leave a prefix of them
("superiors only"). An in-flight APPEND, if made, is the one message beyond the acknowledged ones,
found by its bytes, with a higher UID. A RENAME moves a mailbox with its inferiors, their
UIDVALIDITY, messages and subscriptions; a DELETE takes one mailbox (its inferiors stay, their
superior then listed \\Noselect). After the restart each client's name space must be exactly one
of its allowed states, and the names outside every client's name space the new user's defaults.

Each cycle goes on from what the restarted server holds. RINGMAIL_MAILBOX_CRASH_CYCLES sets the
number of kill cycles (default 10), RINGMAIL_MAILBOX_CRASH_SEED the random choices (default
2718); the closing note reports the run. A failure keeps the data directory, each client's op log
and model, and the server logs, and names where. Every wait is bounded.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
from harness import TIMEOUT, Server, crash_lines, run_ringmail  # noqa: E402
from test_imap_crash import PASSWORD, Conn, drive_and_kill, select_info  # noqa: E402

CYCLES = int(os.environ.get("RINGMAIL_MAILBOX_CRASH_CYCLES", "10"))
SEED = int(os.environ.get("RINGMAIL_MAILBOX_CRASH_SEED", "2718"))
USER = "boxes"
CLIENTS = 2  # connections of the one user, each with its own name space "T<n>"
LEAVES = ("a", "b", "c")
PICK_DEPTH = 3  # CREATE names and RENAME targets lie 1 to 3 levels below the root
DEPTH_MAX = 4   # no RENAME takes an inferior deeper than this below the root
KILL_AFTER_S = (0.3, 1.5)
DEFAULT_NAMES = {"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}  # a new user's mailboxes

CRASH_ID = re.compile(rb"\r\nX-Crash-Id: (\S+)\r\n")


def parent_of(name):
    return name.rpartition("/")[0]


def is_below(name, top):
    return name.startswith(top + "/")


def depth(name):
    """Levels below the root: "T0/a/b" is 2."""
    return name.count("/")


def crash_id(body):
    m = CRASH_ID.search(body)
    return m.group(1).decode() if m else "%d bytes without an X-Crash-Id" % len(body)


class Box:
    """One mailbox as a client's model knows it. `pending` is the bytes of an in-flight APPEND,
    only in the state after that APPEND."""
    __slots__ = ("uidvalidity", "msgs", "subscribed", "pending")

    def __init__(self, uidvalidity=None, msgs=None, subscribed=False, pending=None):
        self.uidvalidity = uidvalidity  # None until learned
        self.msgs = dict(msgs or {})    # {uid: bytes}
        self.subscribed = subscribed
        self.pending = pending

    def copy(self):
        return Box(self.uidvalidity, self.msgs, self.subscribed, self.pending)

    def __repr__(self):
        msgs = " ".join("%d:%s" % (u, crash_id(b)) for u, b in sorted(self.msgs.items()))
        return "<UIDVALIDITY %s%s [%s]%s>" % (
            self.uidvalidity if self.uidvalidity is not None else "?",
            " subscribed" if self.subscribed else "", msgs,
            " + in flight %s" % crash_id(self.pending) if self.pending is not None else "")


def copy_state(state):
    return {n: b.copy() for n, b in state.items()}


def state_text(state):
    return "\n".join("    %s %r" % (n, b) for n, b in sorted(state.items())) or "    (none)"


def differences(actual, want):
    """How `actual` (what the server holds: {name: Box}) differs from the model state `want`;
    empty when it is that state."""
    out = ["%s: missing" % n for n in sorted(set(want) - set(actual))]
    out += ["%s: exists %r" % (n, actual[n]) for n in sorted(set(actual) - set(want))]
    for name in sorted(set(want) & set(actual)):
        w, a = want[name], actual[name]
        if w.subscribed != a.subscribed:
            out.append("%s: %ssubscribed" % (name, "" if a.subscribed else "not "))
        if w.uidvalidity is not None and w.uidvalidity != a.uidvalidity:
            out.append("%s: UIDVALIDITY %s, not %d" % (name, a.uidvalidity, w.uidvalidity))
        for uid, body in sorted(w.msgs.items()):
            got = a.msgs.get(uid)
            if got is None:
                out.append("%s UID %d: missing (%s)" % (name, uid, crash_id(body)))
            elif got != body:
                out.append("%s UID %d: holds %s (%d bytes), not %s (%d bytes)" % (
                    name, uid, crash_id(got), len(got), crash_id(body), len(body)))
        extra = {u: b for u, b in a.msgs.items() if u not in w.msgs}
        if w.pending is not None:
            # The in-flight APPEND made: exactly its message beyond the acknowledged ones.
            top = max(w.msgs, default=0)
            if [b for u, b in extra.items() if u > top] != [w.pending] or len(extra) != 1:
                out.append("%s: the in-flight %s is not the one message beyond the acknowledged "
                           "ones: %s" % (name, crash_id(w.pending), Box(msgs=extra)))
        elif extra:
            out.append("%s: messages no command put there: %s" % (name, Box(msgs=extra)))
    return out


class Op:
    def __init__(self, tag, kind, text):
        self.tag, self.kind, self.text = tag, kind, text
        self.acked = False

    def __repr__(self):
        return "%s %s %s" % (self.tag, "ACKED" if self.acked else "in flight", self.text)


class Client:
    """One connection, driving random mailbox-list changes and APPENDs in its own name space
    until the server dies. Every command is in its op log, with the states it may leave, before
    it is sent."""

    def __init__(self, index, state, rng, serial):
        self.root = self.name = "T%d" % index
        self.state = state    # acknowledged: {name: Box} of the root and every name below it
        self.inflight = None  # (op, [(outcome, state)]): sent, no answer yet
        self.ops = []
        self.rng = rng
        self.serial = serial  # messages appended so far by this client, over all cycles
        self.n = 0
        self.conn = None
        self.ended = None  # (time, exception) when the connection closed
        self.error = None  # anything else: a failure
        self.pool = []     # every name CREATE and RENAME may pick
        level = [self.root]
        for _ in range(PICK_DEPTH):
            level = [p + "/" + leaf for p in level for leaf in LEAVES]
            self.pool += level

    def run(self, port):
        try:
            self.conn = Conn(port)
            self.conn.login(USER)
            while True:
                self.step()
        except (EOFError, ConnectionError) as e:
            self.ended = (time.monotonic(), e)
        except BaseException:
            self.error = traceback.format_exc()
        finally:
            if self.conn is not None:
                self.conn.close()

    def step(self):
        names = [n for n in self.state if n != self.root]  # the root is never changed
        free = [n for n in self.pool if n not in self.state]
        k = len(names)
        choices = []
        if free:
            choices.append(("create", 30 if k < 8 else 12 if k < 18 else 3))
        if names:
            choices += [("delete", 4 if k < 8 else 15), ("rename", 14), ("subscribe", 8),
                        ("unsubscribe", 6), ("append", 10)]
        kind = self.rng.choices([c for c, _ in choices], [w for _, w in choices])[0]
        getattr(self, kind)(names, free)

    def send(self, kind, text, outcomes, data=None):
        """Logs the command, sends it (`data` is its bytes after the tag, default `text`) and
        returns (op, response lines). `outcomes` are the states a kill before the answer may
        leave: the acknowledged one first, the one after the command last."""
        self.n += 1
        op = Op("%s.%d" % (self.name, self.n), kind, text)
        self.ops.append(op)
        self.inflight = (op, outcomes)
        self.conn.send(op.tag.encode() + b" " + (data or (text + "\r\n").encode()))
        return op, self.conn.read_tagged(op.tag)

    def done(self, op, lines, want, state):
        """The command was answered: exactly `op.tag want`; the name space is now `state`."""
        if lines != ["%s %s" % (op.tag, want)]:
            raise AssertionError("%s: %r, not %r\n  acknowledged state:\n%s" % (
                op, lines, want, state_text(self.state)))
        self.ack(op, state)

    def ack(self, op, state):
        op.acked = True
        self.state = state
        self.inflight = None

    def superiors(self, name):
        """The superiors of `name` that CREATE or RENAME creates first (every one that is not a
        mailbox, as the server does), outermost first."""
        chain = []
        p = parent_of(name)
        while p != self.root:
            if p not in self.state:
                chain.insert(0, p)
            p = parent_of(p)
        return chain

    def with_superiors(self, chain, last):
        """The outcomes of a command that creates `chain` (outermost first) and then makes its
        own change (`last`: the whole state after the command)."""
        outcomes = [("not made", self.state)]
        for i in range(1, len(chain) + 1):
            st = copy_state(self.state)
            for p in chain[:i]:
                st[p] = Box()
            outcomes.append(("superiors only", st))
        return outcomes + [("made", last)]

    def create(self, names, free):
        name = self.rng.choice(free)
        chain = self.superiors(name)
        after = copy_state(self.state)
        for n in chain + [name]:
            after[n] = Box()  # not subscribed; its UIDVALIDITY is learned later
        op, lines = self.send("CREATE", "CREATE " + name, self.with_superiors(chain, after))
        self.done(op, lines, "OK CREATE completed", after)

    def delete(self, names, free):
        name = self.rng.choice(names)
        after = copy_state(self.state)
        del after[name]  # its inferiors stay
        op, lines = self.send("DELETE", "DELETE " + name, [("not made", self.state),
                                                          ("made", after)])
        self.done(op, lines, "OK DELETE completed", after)

    def rename(self, names, free):
        src = self.rng.choice(names)
        moving = [n for n in self.state if n == src or is_below(n, src)]
        deepest = max(depth(n) for n in moving) - depth(src)
        # A free target with nothing below it (the inferiors' new names must be free too), not
        # below the source, and no inferior deeper than DEPTH_MAX.
        targets = [t for t in free if not is_below(t, src) and depth(t) + deepest <= DEPTH_MAX
                   and not any(is_below(n, t) for n in self.state)]
        if not targets:
            return
        dst = self.rng.choice(targets)
        chain = self.superiors(dst)  # none is `src` or below it: `dst` is not below `src`
        after = copy_state(self.state)
        for p in chain:
            after[p] = Box()
        for n in moving:
            after[dst + n[len(src):]] = after.pop(n)  # with its UIDVALIDITY, messages, subscription
        op, lines = self.send("RENAME", "RENAME %s %s" % (src, dst),
                              self.with_superiors(chain, after))
        self.done(op, lines, "OK RENAME completed", after)

    def subscribe(self, names, free, on=True):
        name = self.rng.choice(names)
        after = copy_state(self.state)
        after[name].subscribed = on
        verb = "SUBSCRIBE" if on else "UNSUBSCRIBE"
        op, lines = self.send(verb, "%s %s" % (verb, name), [("not made", self.state),
                                                            ("made", after)])
        self.done(op, lines, "OK %s completed" % verb, after)

    def unsubscribe(self, names, free):
        self.subscribe(names, free, on=False)

    def body(self):
        self.serial += 1
        ident = "%s.%d" % (self.root, self.serial)
        head = ("Message-ID: <%s@crash.test>\r\nFrom: %s@crash.test\r\nSubject: mailbox crash "
                "test %d\r\nX-Crash-Id: %s\r\n\r\n" % (ident, USER, self.serial, ident))
        return (head + "".join("%s line %d %s\r\n" % (ident, i, "x" * self.rng.randint(0, 70))
                               for i in range(self.rng.randint(1, 25)))).encode()

    def append(self, names, free):
        name = self.rng.choice(names)
        body = self.body()
        after = copy_state(self.state)
        after[name].pending = body
        head = "APPEND %s {%d+}" % (name, len(body))
        op, lines = self.send("APPEND", "%s %s" % (head, crash_id(body)),
                              [("not made", self.state), ("made", after)],
                              data=(head + "\r\n").encode() + body + b"\r\n")
        # The answer names the new UID: above every earlier one, in the same UIDVALIDITY.
        m = re.match(r"\S+ OK \[APPENDUID (\d+) (\d+)\] APPEND completed$", lines[-1])
        box = after[name]
        if (len(lines) != 1 or not m or int(m.group(2)) <= max(box.msgs, default=0)
                or box.uidvalidity not in (None, int(m.group(1)))):
            raise AssertionError("%s: %r; %s was %r" % (op, lines, name, box))
        box.uidvalidity = int(m.group(1))
        box.msgs[int(m.group(2))] = body
        box.pending = None
        self.ack(op, after)


def observe(port):
    """What the server holds: ({name: Box} of every selectable mailbox under a client's root,
    the set of every selectable name, problems of the listing itself)."""
    c = Conn(port)
    try:
        c.login(USER)
        problems = []
        lines = c.command("l", 'LIST "" *')
        if lines[-1] != "l OK LIST completed":
            raise AssertionError("LIST: %r" % lines)
        listed = {}  # name -> attributes
        for line in lines[:-1]:
            m = re.match(r'\* LIST \(([^)]*)\) "/" (\S+)$', line)
            if not m or m.group(2) in listed:
                raise AssertionError("LIST: unexpected %r" % line)
            listed[m.group(2)] = set(m.group(1).split())
        existing = {n for n, a in listed.items() if not a & {"\\Noselect", "\\NonExistent"}}
        for name, attrs in sorted(listed.items()):
            children = any(is_below(n, name) for n in listed)
            if ("\\HasChildren" in attrs) != children or ("\\HasNoChildren" in attrs) == children:
                problems.append("LIST %s (%s): inferiors are %s" % (
                    name, " ".join(sorted(attrs)), "listed" if children else "not listed"))
            if name not in existing and not children:
                problems.append("LIST %s: not selectable and without inferiors" % name)
            if parent_of(name) and parent_of(name) not in listed:
                problems.append("LIST %s: its superior %s is not listed" % (name, parent_of(name)))
        lines = c.command("s", 'LSUB "" *')
        if lines[-1] != "s OK LSUB completed":
            raise AssertionError("LSUB: %r" % lines)
        subscribed = set()
        for line in lines[:-1]:
            m = re.match(r'\* LSUB \(\) "/" (\S+)$', line)
            if not m or m.group(1) not in existing or m.group(1) in subscribed:
                problems.append("LSUB: unexpected %r" % line)
            elif m:
                subscribed.add(m.group(1))
        view = {}
        roots = ["T%d" % i for i in range(CLIENTS)]
        for name in sorted(n for n in existing if any(n == r or is_below(n, r) for r in roots)):
            lines = c.command("e", "EXAMINE " + name)
            info = select_info(lines, "e", name)
            count = [int(m.group(1)) for m in (re.match(r"\* (\d+) EXISTS$", l) for l in lines)
                     if m]
            if len(count) != 1 or "UIDVALIDITY" not in info or "UIDNEXT" not in info:
                raise AssertionError("EXAMINE %s: %r" % (name, lines))
            msgs = {}
            if count[0]:
                c.send("f UID FETCH 1:* (UID BODY.PEEK[])\r\n")
                responses = c.read_with_literals("f")
                if responses[-1][0] != "f OK FETCH completed":
                    raise AssertionError("%s: UID FETCH: %r" % (name, responses[-1]))
                for text, literals in responses[:-1]:
                    m = re.match(r"\* \d+ FETCH \(UID (\d+) BODY\[\] \0\)$", text)
                    if not m or len(literals) != 1 or int(m.group(1)) in msgs:
                        raise AssertionError("%s: unexpected %r" % (name, text))
                    msgs[int(m.group(1))] = literals[0]
            if len(msgs) != count[0]:
                problems.append("%s: %d EXISTS, %d messages fetched" % (name, count[0], len(msgs)))
            if msgs and info["UIDNEXT"] <= max(msgs):
                problems.append("%s: UIDNEXT %d, but UID %d exists" % (
                    name, info["UIDNEXT"], max(msgs)))
            view[name] = Box(info["UIDVALIDITY"], msgs, name in subscribed)
        c.command("o", "LOGOUT")
        return view, existing, problems
    finally:
        c.close()


def check_client(client, view):
    """Which allowed state of `client`'s name space `view` holds: (outcome, None), or
    (None, problem)."""
    actual = {n: b for n, b in view.items() if n == client.root or is_below(n, client.root)}
    if client.inflight is None:
        outcomes = [("idle", client.state)]
    else:
        outcomes = client.inflight[1]
    tried = []
    for outcome, want in outcomes:
        diffs = differences(actual, want)
        if not diffs:
            return outcome, None
        tried.append("  against the state %s:\n    %s" % (outcome, "\n    ".join(diffs)))
    return None, "%s: in flight %s; the server holds a state no allowed outcome explains:\n%s" % (
        client.name, client.inflight[0] if client.inflight else "nothing", "\n".join(tried))


class MailboxCrashTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ringmail-mailbox-crash-")
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

    def keep_evidence(self, cycle, clients, problems, logs):
        keep = tempfile.mkdtemp(prefix="ringmail-mailbox-crash-evidence-")
        shutil.copytree(self.data, os.path.join(keep, "data"))
        with open(os.path.join(keep, "report.txt"), "w") as f:
            f.write("seed %d, cycle %d\n\nPROBLEMS\n%s\n" % (SEED, cycle, "\n".join(problems)))
            for c in clients:
                f.write("\n%s: ACKNOWLEDGED STATE\n%s\n" % (c.name, state_text(c.state)))
                if c.inflight:
                    for outcome, st in c.inflight[1]:
                        f.write("%s: STATE IF THE IN-FLIGHT COMMAND IS %s\n%s\n" % (
                            c.name, outcome.upper(), state_text(st)))
                f.write("%s: OPS OF THE CYCLE\n%s\n" % (c.name, "\n".join(map(repr, c.ops))))
            for name, lines in logs:
                f.write("\n%s LOG\n%s\n" % (name.upper(), "\n".join(lines)))
        return keep

    def fail_cycle(self, cycle, clients, problems, logs):
        keep = self.keep_evidence(cycle, clients, problems, logs)
        pending = [c.inflight[0] for c in clients if c.inflight]
        self.fail("cycle %d (seed %d): %s\nin flight at the kill:\n  %s\nlog tails:\n%s\n"
                  "evidence (data, op logs and models, logs) kept in %s" % (
                      cycle, SEED, "\n".join(problems), "\n  ".join(map(repr, pending)) or "none",
                      "\n".join("%s:\n  %s" % (n, "\n  ".join(l[-15:])) for n, l in logs), keep))

    def test_every_acknowledged_mailbox_change_survives_sigkill(self):
        rng = random.Random(SEED)
        srv = self.start(users={USER: PASSWORD})
        with Conn(srv.port) as c:
            c.login(USER)
            for i in range(CLIENTS):
                self.assertEqual(c.command("c", "CREATE T%d" % i), ["c OK CREATE completed"])
        view, _, problems = observe(srv.port)
        self.assertEqual(problems, [])
        states = [{n: b for n, b in view.items() if n == "T%d" % i} for i in range(CLIENTS)]
        serials = [0] * CLIENTS
        acked, outcomes = {}, {}  # kind: count; "kind outcome": count of in-flight commands
        notes = 0
        started = time.monotonic()
        for cycle in range(CYCLES):
            clients = [Client(i, states[i], random.Random(rng.random()), serials[i])
                       for i in range(CLIENTS)]
            problems = drive_and_kill(srv, clients, rng, KILL_AFTER_S)
            serials = [c.serial for c in clients]
            logs = [("killed server", srv.log_lines())]
            if problems:
                self.fail_cycle(cycle, clients, problems, logs)
            fsck = run_ringmail("fsck", "--data-dir", self.data, timeout=120)
            logs.append(("fsck", (fsck.stdout + fsck.stderr).splitlines()))
            if fsck.returncode != 0:
                self.fail_cycle(cycle, clients, ["fsck exit %d (0 is clean)" % fsck.returncode],
                                logs)
            notes += fsck.stdout.count(": note: ")
            srv.close()
            try:
                srv = self.start()
            except Exception as e:
                self.fail_cycle(cycle, clients, ["restart failed: %s" % e], logs)
            try:
                view, existing, problems = observe(srv.port)
            except (AssertionError, EOFError, TimeoutError, ConnectionError) as e:
                logs.append(("restarted server", srv.log_lines()))
                self.fail_cycle(cycle, clients, ["reading the mailboxes back: %s" % e], logs)
            others = {n for n in existing if not any(
                n == c.root or is_below(n, c.root) for c in clients)}
            if others != DEFAULT_NAMES:
                problems.append("outside the clients' name spaces: %s, not %s" % (
                    sorted(others), sorted(DEFAULT_NAMES)))
            cycle_outcomes = []
            for c in clients:
                outcome, problem = check_client(c, view)
                if problem:
                    problems.append(problem)
                elif c.inflight:
                    cycle_outcomes.append("%s %s" % (c.inflight[0].kind, outcome))
            problems += ["sanitizer/assertion: " + l for l in crash_lines(srv.log_lines())]
            if problems:
                logs.append(("restarted server", srv.log_lines()))
                self.fail_cycle(cycle, clients, problems, logs)
            for k in cycle_outcomes:
                outcomes[k] = outcomes.get(k, 0) + 1
            for c in clients:
                for op in c.ops:
                    if op.acked:
                        acked[op.kind] = acked.get(op.kind, 0) + 1
            # The next cycle goes on from what the server holds (the in-flight commands resolved).
            states = [{n: b for n, b in view.items() if n == c.root or is_below(n, c.root)}
                      for c in clients]
        rc = srv.stop()
        lines = srv.log_lines()
        self.assertEqual(crash_lines(lines), [], "sanitizer report or assertion in the log")
        self.assertEqual(rc, 0, "ringmaild exit code; log tail:\n" + "\n".join(lines[-40:]))
        self.assertGreater(sum(v for k, v in acked.items() if k != "APPEND"), 0)
        print("\n%d kill cycles in %.0f s (seed %d): acknowledged %s; in flight at the kills: %s; "
              "%d fsck notes; %d mailboxes, %d messages at the end"
              % (CYCLES, time.monotonic() - started, SEED,
                 ", ".join("%d %s" % (v, k) for k, v in sorted(acked.items())) or "nothing",
                 ", ".join("%d %s" % (v, k) for k, v in sorted(outcomes.items())) or "nothing",
                 notes, sum(len(s) for s in states),
                 sum(len(b.msgs) for s in states for b in s.values())))


if __name__ == "__main__":
    unittest.main()
