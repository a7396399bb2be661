"""SEARCH with the full-text index answers exactly what a full scan answers.

A seeded corpus of about 400 MIME messages (fts_corpus.py: RFC 2047 B and Q words in UTF-8,
ISO-8859-1, KOI8-R and Shift_JIS, some splitting a word or a character between two words;
quoted-printable bodies with soft line breaks inside words and characters; base64; multipart
alternative and mixed; non-text and message/rfc822 attachments; Cc, Bcc, X-Custom) goes into
INBOX of a server started with --fts-index 1 --fts-batch-docs 13 (many small on-disk segments
and their merges). Some messages are expunged, some copied to a second mailbox (where a few are
expunged too), more appended after the expunge, flags changed. Then a few hundred seeded queries
run in both mailboxes, as SEARCH and UID SEARCH:

  A: the server that built the index;
  B: restarted on the same data dir with --fts-index 1 (the index read back from disk);
  C: restarted with --fts-index 0 (a full scan); then more mail comes in (appends, an expunge,
     a copy, flag changes) and the queries run again: C2;
  D: restarted with --fts-index 1 --fts-batch-docs 13: the index has to answer for mail that
     came in while it was off.

Every answer must be the same in A, B and C, and in C2 and D; and each must be what the corpus
model computes from the text it knows each message holds (fts_corpus.Msg.matches: the semantics
of the header comment of protocol/imap_search.h). Hand-checked answers pin the model itself, and
run as UID SEARCH in every phase too. A mismatch names the query, the mailbox and each answer.

FTS_FLAGS_UNSUPPORTED=1 leaves out --fts-index and --fts-batch-docs (for a server that does not
know them: every phase then runs with the server's defaults). FTS_SEED picks another corpus,
FTS_QUERIES the number of random queries (default 400), FTS_TIMING=1 prints how long each phase
took (about 25 s in all with the Sanitize build).
"""

import os
import random
import re
import sys
import time
import unittest

import fts_corpus as fc
from harness import ServerTestCase

SEED = int(os.environ.get("FTS_SEED", "20240601"))
QUERY_COUNT = int(os.environ.get("FTS_QUERIES", "400"))
RANDOM_MESSAGES = 400
LATE_MESSAGES = 20  # appended after the expunge
EXTRA_MESSAGES = 10  # appended while the index is off (phase C)
USER, PASSWORD = "ftsuser", "pw-ftsuser"
COPY_BOX = "FtsCopy"
BOXES = ("INBOX", COPY_BOX)
FLAGS_UNSUPPORTED = os.environ.get("FTS_FLAGS_UNSUPPORTED") == "1"


def fts_args(index, batch_docs=None):
    if FLAGS_UNSUPPORTED:
        return []
    args = ["--fts-index", str(index)]
    if batch_docs is not None:
        args += ["--fts-batch-docs", str(batch_docs)]
    return args


def expand_set(text):
    out = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out += range(min(a, b), max(a, b) + 1)
        else:
            out.append(int(part))
    return out


def index_segments(data_dir):
    """How many full-text index segment files (mbox/<id>/fts/*.fts) the data dir holds."""
    return sum(1 for root, _, files in os.walk(data_dir) for f in files
               if f.endswith(".fts") and os.path.basename(root) == "fts")


def uid_set(uids):
    return ",".join(str(u) for u in sorted(uids))


class Mailbox:
    """The model of one mailbox: [fc.Entry] in sequence order."""

    def __init__(self, name):
        self.name = name
        self.entries = []
        self.uid_max = 0

    def add(self, uid, msg, flags):
        self.entries.append(fc.Entry(len(self.entries) + 1, uid, msg, set(flags)))
        self.uid_max = max(self.uid_max, uid)

    def by_uid(self, uid):
        return next(e for e in self.entries if e.uid == uid)

    def expunge(self):
        """EXPUNGE: every message flagged \\Deleted goes."""
        self.entries = [e for e in self.entries if "\\Deleted" not in e.flags]
        for i, e in enumerate(self.entries):
            e.seq = i + 1


class TestFtsDifferential(ServerTestCase):
    def setUp(self):
        self.msgs = fc.build(SEED, RANDOM_MESSAGES)
        self.queries = fc.make_queries(self.msgs, SEED, QUERY_COUNT)
        self.rng = random.Random(SEED + 17)
        self.boxes = {b: Mailbox(b) for b in BOXES}
        self.timing = []

    # -- protocol --

    def ok(self, c, tag, text):
        lines = c.command(tag, text)
        self.assertTrue(lines[-1].startswith(tag + " OK"), (text, lines))
        return lines

    def append(self, c, box, msg, flags):
        data = msg.raw
        args = box + (" (%s)" % " ".join(sorted(flags)) if flags else "")
        c.send(("A APPEND %s {%d+}\r\n" % (args, len(data))).encode() + data + b"\r\n")
        lines = c.read_tagged("A")
        m = re.match(r"A OK \[APPENDUID \d+ (\d+)\]", lines[-1])
        self.assertIsNotNone(m, (msg.name, lines))
        self.boxes[box].add(int(m.group(1)), msg, flags)

    def store(self, c, box, uids, op, flags):
        if not uids:
            return
        self.ok(c, "st", "UID STORE %s %sFLAGS.SILENT (%s)" % (uid_set(uids), op, " ".join(flags)))
        for u in uids:
            e = self.boxes[box].by_uid(u)
            if op == "+":
                e.flags |= set(flags)
            else:
                e.flags -= set(flags)

    def expunge(self, c, box, uids):
        self.store(c, box, uids, "+", ["\\Deleted"])
        self.ok(c, "ex", "EXPUNGE")
        self.boxes[box].expunge()

    def check_state(self, c, box):
        """The mailbox holds what the model says: UIDs in order, sizes and flags."""
        self.ok(c, "sel", "SELECT " + box)
        lines = self.ok(c, "fe", "FETCH 1:* (UID RFC822.SIZE FLAGS)")[:-1]
        got = []
        for line in lines:
            m = re.match(r"\* (\d+) FETCH \((.*)\)$", line)
            self.assertIsNotNone(m, line)
            items = m.group(2)
            uid = int(re.search(r"UID (\d+)", items).group(1))
            size = int(re.search(r"RFC822\.SIZE (\d+)", items).group(1))
            flags = set(re.search(r"FLAGS \(([^)]*)\)", items).group(1).split())
            got.append((int(m.group(1)), uid, size, flags))
        want = [(e.seq, e.uid, len(e.msg.raw), e.flags) for e in self.boxes[box].entries]
        self.assertEqual(got, want, box)

    def search(self, c, tag, q, uid, sync=False, charset=None):
        """Sends the query (literals synchronizing or LITERAL+) and returns the response lines."""
        head = "%s %sSEARCH " % (tag, "UID " if uid else "")
        if fc.non_ascii(q):
            charset = "UTF-8"
        if charset:
            head += "CHARSET %s " % charset
        out = head.encode()
        for piece in fc.render(q):
            if isinstance(piece, str):
                out += piece.encode()
                continue
            if sync:
                c.send(out + b"{%d}\r\n" % len(piece))
                cont = c.readline()
                self.assertTrue(cont.startswith("+"), (fc.describe(q, uid), cont))
                out = piece
            else:
                out += b"{%d+}\r\n" % len(piece) + piece
        c.send(out + b"\r\n")
        return tuple(c.read_tagged(tag))

    def run_queries(self, c):
        """{(box, "q", i) or (box, "h", k): (response lines, the model's numbers, number ->
        message name)} for the random queries and the hand checks, in both mailboxes."""
        out = {}
        for box in BOXES:
            self.ok(c, "sel", "SELECT " + box)
            mbox = self.boxes[box]
            names = {False: {e.seq: e.msg.name for e in mbox.entries},
                     True: {e.uid: e.msg.name for e in mbox.entries}}
            for i, (q, uid) in enumerate(self.queries):
                charset = "US-ASCII" if i % 11 == 5 else ("utf-8" if i % 13 == 7 else None)
                lines = self.search(c, "q%d" % i, q, uid, sync=i % 10 == 3, charset=charset)
                out[(box, "q", i)] = (lines, fc.expected(q, uid, mbox.entries, mbox.uid_max),
                                      names[uid])
            # The hand checks: what the planted messages still in the mailbox should give.
            for k, (key, field, needle, want) in enumerate(fc.hand_checks()):
                lines = self.search(c, "h%d" % k, ("s", key, field, needle), True,
                                    sync=k % 2 == 0)
                out[(box, "h", k)] = (lines, sorted(e.uid for e in mbox.entries
                                                    if e.msg.name in want), names[True])
        return out

    def describe(self, key):
        box, kind, i = key
        if kind == "q":
            return "%s: %s" % (box, fc.describe(*self.queries[i]))
        k, field, needle, _ = fc.hand_checks()[i]
        return "%s: hand check UID SEARCH %s %s%r" % (box, k, field + " " if field else "",
                                                       needle)

    def compare(self, runs, problems):
        """Every answer the same in all runs [(name, answers)], and the model's."""
        first = runs[0][1]
        for key in sorted(first, key=lambda k: (k[0], k[1], k[2])):
            lines = [answers[key][0] for _, answers in runs]
            if any(l != lines[0] for l in lines):
                problems.append(self.describe(key) + "".join(
                    "\n  %s %r" % (name, answers[key][0][:3]) for name, answers in runs))
                continue
            _, want, by_num = first[key]
            got = self.numbers(lines[0])
            if got != want:
                extra = [by_num.get(n, n) for n in sorted(set(got or []) - set(want))]
                missing = [by_num[n] for n in sorted(set(want) - set(got or []))]
                problems.append("%s\n  server (%s) %r\n  the model also matches %s, not %s"
                                % (self.describe(key), "=".join(n for n, _ in runs),
                                   lines[0][:3], missing[:10], extra[:10]))

    @staticmethod
    def numbers(lines):
        """The numbers of a well-formed SEARCH answer, else None."""
        if len(lines) != 2 or not re.match(r"\S+ OK SEARCH completed$", lines[1]):
            return None
        m = re.match(r"\* SEARCH((?: \d+)*)$", lines[0])
        return [int(n) for n in m.group(1).split()] if m else None

    # -- the corpus in the mailboxes --

    def split_corpus(self):
        """(early, late, extra): appended first, after the first expunge, while the index is
        off. The planted messages are all in early or late."""
        randoms = [m for m in self.msgs if m.name.startswith("random-")]
        extra = randoms[-EXTRA_MESSAGES:]
        rest = [m for m in self.msgs if m not in extra]
        return rest[:-LATE_MESSAGES], rest[-LATE_MESSAGES:], extra

    def random_flags(self):
        flags = set()
        for flag, p in (("\\Seen", 0.4), ("\\Flagged", 0.15), ("\\Answered", 0.1),
                        ("$Fts", 0.1)):
            if self.rng.random() < p:
                flags.add(flag)
        return flags

    def fill(self, c):
        self.ok(c, "cr", "CREATE " + COPY_BOX)
        early, late, _ = self.split_corpus()
        rng = self.rng
        for msg in early:
            self.append(c, "INBOX", msg, self.random_flags())
        inbox = self.boxes["INBOX"]
        self.ok(c, "sel", "SELECT INBOX")
        uids = [e.uid for e in inbox.entries]
        self.store(c, "INBOX", rng.sample(uids, 30), "+", ["\\Seen"])
        self.store(c, "INBOX", rng.sample(uids, 20), "-", ["\\Seen"])
        self.store(c, "INBOX", rng.sample(uids, 15), "+", ["$Fts", "\\Flagged"])
        random_uids = [e.uid for e in inbox.entries if e.msg.name.startswith("random-")]
        self.expunge(c, "INBOX", rng.sample(random_uids, 12))

        # Copy the planted messages and about 90 others.
        planted = [e.uid for e in inbox.entries if not e.msg.name.startswith("random-")]
        others = [e.uid for e in inbox.entries if e.msg.name.startswith("random-")]
        self.copy(c, sorted(planted + rng.sample(others, 90)))

        for msg in late:
            self.append(c, "INBOX", msg, {"\\Seen"} if rng.random() < 0.5 else set())
        late_random = [e.uid for e in inbox.entries if e.msg.name.startswith("random-")]
        self.store(c, "INBOX", rng.sample(late_random, 3), "+", ["\\Deleted"])  # not expunged
        self.store(c, "INBOX", rng.sample([e.uid for e in inbox.entries], 25), "+", ["\\Seen"])

        copy = self.boxes[COPY_BOX]
        self.ok(c, "sel", "SELECT " + COPY_BOX)
        copy_random = [e.uid for e in copy.entries if e.msg.name.startswith("random-")]
        self.expunge(c, COPY_BOX, rng.sample(copy_random, 3))
        self.store(c, COPY_BOX, rng.sample([e.uid for e in copy.entries], 20), "-", ["\\Seen"])
        self.store(c, COPY_BOX, rng.sample([e.uid for e in copy.entries], 10), "+",
                   ["\\Flagged"])

    def copy(self, c, uids):
        """UID COPY from the selected INBOX to COPY_BOX."""
        lines = self.ok(c, "cp", "UID COPY %s %s" % (uid_set(uids), COPY_BOX))
        m = re.search(r"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]", lines[-1])
        self.assertIsNotNone(m, lines)
        src, dst = sorted(expand_set(m.group(1))), sorted(expand_set(m.group(2)))
        self.assertEqual(src, sorted(uids))
        for s, d in zip(src, dst):
            e = self.boxes["INBOX"].by_uid(s)
            self.boxes[COPY_BOX].add(d, e.msg, e.flags)

    def change(self, c):
        """More mail while the index is off: appends, an expunge, a copy, flags."""
        rng = self.rng
        inbox = self.boxes["INBOX"]
        for msg in self.split_corpus()[2]:
            self.append(c, "INBOX", msg, self.random_flags())
        self.ok(c, "sel", "SELECT INBOX")
        random_uids = [e.uid for e in inbox.entries if e.msg.name.startswith("random-")]
        self.expunge(c, "INBOX", rng.sample(random_uids, 4))  # and the 3 flagged before
        self.copy(c, [e.uid for e in inbox.entries[-6:]])
        self.store(c, "INBOX", rng.sample([e.uid for e in inbox.entries], 15), "-", ["\\Seen"])

    # -- the test --

    def phase(self, name, srv_args, data_dir=None, fill=False, change=False):
        """A server on the data dir; the queries run (and, with change, run again after more
        mail came in). Returns (server, [answers])."""
        t0 = time.monotonic()
        kwargs = {"args": srv_args}
        if data_dir is None:
            kwargs["users"] = {USER: PASSWORD}
        else:
            kwargs["data_dir"] = data_dir
        srv = self.server(**kwargs)
        c = srv.login(USER, PASSWORD)
        self.addCleanup(c.close)
        if fill:
            self.fill(c)
        for box in BOXES:
            self.check_state(c, box)
        t1 = time.monotonic()
        runs = [self.run_queries(c)]
        if change:
            self.change(c)
            for box in BOXES:
                self.check_state(c, box)
            runs.append(self.run_queries(c))
        t2 = time.monotonic()
        self.ok(c, "lo", "LOGOUT")
        c.close()
        self.assertEqual(srv.stop(), 0, "\n".join(srv.log_lines()[-40:]))
        segments = index_segments(srv.data_dir)
        if "--fts-index" in srv_args and srv_args[srv_args.index("--fts-index") + 1] == "1":
            self.assertGreater(segments, 0, "no index segment files (storage/FORMAT.md)")
        self.timing.append("%s: setup %.1f s, %d searches %.1f s, %d index segment files"
                           % (name, t1 - t0, sum(len(r) for r in runs), t2 - t1, segments))
        return srv, runs

    def test_index_answers_equal_scan_answers(self):
        # The model must give the hand-checked answers (else the corpus or the model is wrong).
        for key, field, needle, names in fc.hand_checks():
            got = sorted(m.name for m in self.msgs if m.matches(key, field, needle))
            self.assertEqual(got, sorted(names), ("model", key, field, needle))

        t0 = time.monotonic()
        srv, (a,) = self.phase("A (index built)", fts_args(1, 13), fill=True)
        _, (b,) = self.phase("B (index from disk)", fts_args(1), srv.data_dir)
        _, (c, c2) = self.phase("C (scan)", fts_args(0), srv.data_dir, change=True)
        _, (d,) = self.phase("D (index after mail came in with it off)", fts_args(1, 13),
                             srv.data_dir)
        if os.environ.get("FTS_TIMING") == "1":
            sys.stderr.write("\n%s; total %.1f s\n" % ("; ".join(self.timing),
                                                       time.monotonic() - t0))
        problems = []
        self.compare([("A", a), ("B", b), ("C", c)], problems)
        self.compare([("C2", c2), ("D", d)], problems)
        if problems:
            self.fail("%d problems in %d answers (seed %d):\n%s"
                      % (len(problems), len(a) + len(c2), SEED, "\n".join(problems[:40])))


if __name__ == "__main__":
    unittest.main()
