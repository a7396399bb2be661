#!/usr/bin/env python3
"""Full-text SEARCH: ringmail against Dovecot (without FTS) on the same generated corpus.

    python3 bench/search_bench.py                                    # 200,000 messages, ~1.2 GB
    python3 bench/search_bench.py --messages 5000 --queries 10 --max-seconds 300
    python3 bench/search_bench.py --messages 2000 --no-dovecot --build build-sanitize
    python3 bench/search_bench.py --messages 2000 --no-ringmail      # Dovecot alone

Steps (every loop is bounded in time, everything on 127.0.0.1):
  1. Generates the corpus (bench/corpus.py, --seed) in memory (200,000 messages: about 2 min
     and 1.3 GB of RAM).
  2. ringmail: a user added with `ringmail user add` in a temporary data dir, ringmaild on a free
     port (--threads, default 2 = the cores); Dovecot (bench/dovecot.py: installed with apt-get
     if missing, maildir, private config, no FTS) in its own temporary directory.
  3. Loads the corpus into INBOX of each, one server after the other: --connections raw
     sockets, each with --window APPEND commands in flight (LITERAL+ `{n+}`, so no round trip
     per message); --append-batch N puts N messages in one APPEND (MULTIAPPEND). Dovecot gets
     MULTIAPPENDs of 200 beyond 20,000 messages (--dovecot-append-batch): its cost per APPEND
     transaction grows with the mailbox (411 messages/s at 2,000, 105 at 20,000 on the 2-core
     machine), so 200,000 single APPENDs would take hours. Counts the OKs, checks STATUS
     (MESSAGES), reports messages/s and MB/s. A load in which nothing is answered for
     --stall-seconds fails, naming the oldest unanswered message of each connection.
  4. Maps each server's sequence numbers to corpus messages (FETCH of the Message-ID fields),
     so that results can be compared message by message.
  5. SEARCH: one connection per server (EXAMINE INBOX), a first SEARCH (a miss) each, reported
     apart, then for each query class (common word, rare word, 3-5 character fragment, 1-2
     character fragment, miss, UTF-8 word sent as a CHARSET UTF-8 literal), --queries strings,
     SEARCH BODY and SEARCH TEXT, --repeat times each, alternating the servers (and which goes
     first), timing each command from sending it to reading its tagged OK. The classes take
     turns, so a --max-seconds stop still covers all. One connection is one Dovecot imap
     process, single-threaded, and one ringmail reactor thread (the user's owner), so a SEARCH
     runs on one core on both.
  6. Compares every result (the set of messages) and explains each difference with the make-up
     of the messages involved and Python's own decoding of them (a reference, not an oracle);
     differences are reported, never fatal. Known ones: ringmail's BODY also reads the header
     of an attached message/rfc822 (Dovecot's does not); Dovecot normalizes to decomposed
     titlecase, so "u" matches "ü" there and not in ringmail.
  7. Stops ringmaild; if the admin CLI has `index stats` / `index rebuild` (run offline),
     prints the index size as a percentage of the text and times a rebuild (MB/s of text).

Prints a table (p50/p99 ms per class and key, the ratio dovecot/ringmail of the p50) or, with
--json, one JSON object on stdout; progress goes to stderr either way. Exit 1 on an error (a
server that does not start, a stalled load), with the temporary directories removed.
"""

import argparse
import email
import email.header
import email.policy
import json
import math
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402
import dovecot as dovecot_mod  # noqa: E402

USER = "alice"
PASSWORD = "bench-search-pw1"
CLASSES = ("common", "rare", "fragment", "short", "miss", "utf8")
CLASS_LABEL = {"common": "common word", "rare": "rare word", "fragment": "fragment 3-5",
               "short": "fragment 1-2", "miss": "miss", "utf8": "utf-8 word"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- IMAP client pieces ------------------------------------------------------------------------

class Conn:
    """A blocking IMAP connection that reads responses with literals."""

    def __init__(self, port, timeout):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.tagn = 0
        greeting = self.line()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError("greeting: %r" % greeting[:200])

    def _fill(self):
        data = self.s.recv(1 << 20)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def line(self):
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            start = max(0, len(self.buf) - 1)
            self._fill()

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def response(self):
        """One response line with its literals inline: (bytes, [literal bytes])."""
        line = self.line()
        lits = []
        parts = [line]
        while True:
            m = re.search(rb"\{(\d+)\+?\}$", line)
            if not m:
                break
            lits.append(self.exact(int(m.group(1))))
            line = self.line()
            parts.append(line)
        return b"".join(parts), lits

    def command(self, text, ok=True):
        """Sends one command (str or bytes, without tag and CRLF); returns (untagged responses
        [(line, literals)], tagged line)."""
        self.tagn += 1
        tag = b"t%d" % self.tagn
        if isinstance(text, str):
            text = text.encode()
        self.s.sendall(tag + b" " + text + b"\r\n")
        untagged = []
        while True:
            line, lits = self.response()
            if line.startswith(tag + b" "):
                if ok and not line[len(tag) + 1:].startswith(b"OK"):
                    raise RuntimeError("%s: %r" % (text[:80], line[:300]))
                return untagged, line
            untagged.append((line, lits))

    def login(self, user, password):
        self.command('LOGIN "%s" "%s"' % (user, password))

    def close(self):
        try:
            self.s.sendall(b"z LOGOUT\r\n")
        except OSError:
            pass
        self.s.close()


def timed_search(c, criteria):
    """Sends SEARCH `criteria` (bytes; may hold LITERAL+ literals) and reads up to the tagged
    line. Returns (seconds, [sequence numbers], tagged line). Times only the exchange: the
    numbers are parsed afterwards."""
    c.tagn += 1
    tag = b"s%d" % c.tagn
    marker = b"\r\n" + tag + b" "
    buf = bytearray(b"\r\n" + bytes(c.buf))  # untagged data the server sent unasked, if any
    t0 = time.perf_counter()
    c.s.sendall(tag + b" SEARCH " + criteria + b"\r\n")
    start = 0
    while True:
        i = buf.find(marker, start)
        if i >= 0:
            j = buf.find(b"\r\n", i + 2)
            if j >= 0:
                break
        start = max(0, len(buf) - len(marker) - 200)
        data = c.s.recv(1 << 20)
        if not data:
            raise EOFError("server closed the connection during SEARCH")
        buf += data
    dt = time.perf_counter() - t0
    tagged = bytes(buf[i + 2:j])
    c.buf = bytearray(buf[j + 2:])
    nums = []
    for line in bytes(buf[2:i]).split(b"\r\n"):
        if line.startswith(b"* SEARCH"):
            nums.extend(int(x) for x in line[8:].split())
    return dt, nums, tagged


def search_criteria(key, word):
    raw = word.encode("utf-8")
    if raw.isascii() and b'"' not in raw and b"\\" not in raw:
        return b'%s "%s"' % (key.encode(), raw)
    return b"CHARSET UTF-8 %s {%d+}\r\n%s" % (key.encode(), len(raw), raw)


def load(port, messages, connections, window, batch, deadline, label, stall_seconds=300):
    """APPENDs every (bytes, date string) of `messages` to INBOX over `connections` connections
    with `window` commands in flight each (LITERAL+). Returns a dict of counts and times."""
    conns = []
    for _ in range(connections):
        c = Conn(port, timeout=120)
        c.login(USER, PASSWORD)
        c.s.setblocking(False)
        conns.append(c)
    sel = selectors.DefaultSelector()
    state = {}
    for k, c in enumerate(conns):
        state[c] = {"k": k, "inflight": {}, "out": [], "outpos": 0, "inbuf": bytearray(),
                    "events": selectors.EVENT_READ}
        sel.register(c.s, selectors.EVENT_READ, c)
    total = len(messages)
    next_i = 0
    ok = no = ok_msgs = 0
    failures = []
    nbytes = 0
    t0 = time.monotonic()
    cpu0 = time.process_time()
    last_report = last_progress = t0
    last_done = 0
    while ok + no < total_commands(total, batch):
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError("%s: load not done by the deadline (%d of %d messages)"
                               % (label, ok_msgs, total))
        if ok + no != last_done:
            last_done, last_progress = ok + no, now
        elif now - last_progress > stall_seconds:
            stuck = ["connection %d: %d APPENDs unanswered (first: message %s), %d bytes unsent"
                     % (state[c]["k"], len(state[c]["inflight"]),
                        min((v[0] for v in state[c]["inflight"].values()), default=None),
                        sum(len(p) for p in state[c]["out"]) - state[c]["outpos"])
                     for c in conns if state[c]["inflight"]]
            raise TimeoutError("%s: no APPEND answered for %.0f s (%d of %d messages done): %s"
                               % (label, stall_seconds, ok_msgs, total, "; ".join(stuck)))
        if now - last_report > 10:
            log("  %s: %d/%d messages, %.0f/s" % (label, ok_msgs, total, ok_msgs / (now - t0)))
            last_report = now
        for c in conns:
            st = state[c]
            while len(st["inflight"]) < window and next_i < total and len(st["out"]) < 4 * window:
                idxs = list(range(next_i, min(total, next_i + batch)))
                next_i += len(idxs)
                tag = b"c%dm%d" % (st["k"], idxs[0])
                pieces = [tag + b" APPEND INBOX"]
                for i in idxs:
                    data, date = messages[i]
                    pieces.append(b' () "%s" {%d+}\r\n' % (date.encode(), len(data)))
                    pieces.append(data)
                    nbytes += len(data)
                pieces.append(b"\r\n")
                st["out"].extend(pieces)
                st["inflight"][tag] = idxs
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0)
            if want != st["events"]:
                sel.modify(c.s, want, c)
                st["events"] = want
        events = sel.select(timeout=1.0)
        for key, mask in events:
            c = key.data
            st = state[c]
            if mask & selectors.EVENT_WRITE and st["out"]:
                try:
                    while st["out"]:
                        piece = st["out"][0]
                        n = c.s.send(memoryview(piece)[st["outpos"]:st["outpos"] + (1 << 20)])
                        st["outpos"] += n
                        if st["outpos"] < len(piece):
                            break
                        st["out"].pop(0)
                        st["outpos"] = 0
                except BlockingIOError:
                    pass
            if mask & selectors.EVENT_READ:
                try:
                    data = c.s.recv(1 << 20)
                except BlockingIOError:
                    data = None
                if data == b"":
                    raise EOFError("%s: server closed an APPEND connection" % label)
                if data:
                    buf = st["inbuf"]
                    buf += data
                    pos = 0
                    while True:
                        j = buf.find(b"\r\n", pos)
                        if j < 0:
                            break
                        line = bytes(buf[pos:j])
                        pos = j + 2
                        if line.startswith(b"*") or line.startswith(b"+"):
                            continue
                        tag, _, rest = line.partition(b" ")
                        idxs = st["inflight"].pop(tag, None)
                        if idxs is None:
                            continue
                        if rest.startswith(b"OK"):
                            ok += 1
                            ok_msgs += len(idxs)
                        else:
                            no += 1
                            if len(failures) < 10:
                                failures.append((idxs[0], rest[:200].decode("latin-1")))
                    del buf[:pos]
    secs = time.monotonic() - t0
    client_cpu = time.process_time() - cpu0
    for c in conns:
        c.s.setblocking(True)
        c.close()
    sel.close()
    return {"messages": ok_msgs, "commands_ok": ok, "commands_failed": no, "failures": failures,
            "seconds": secs, "bytes": nbytes, "messages_per_s": ok_msgs / secs,
            "mb_per_s": nbytes / 1e6 / secs, "client_cpu_s": client_cpu}


def total_commands(total, batch):
    return (total + batch - 1) // batch


def message_map(port, corpus_index, timeout):
    """[corpus index] by sequence number - 1, from the Message-ID of each message."""
    c = Conn(port, timeout)
    c.login(USER, PASSWORD)
    untagged, _ = c.command("EXAMINE INBOX")
    out = {}
    untagged, _ = c.command("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    for line, lits in untagged:
        m = re.match(rb"\* (\d+) FETCH", line)
        if not m or not lits:
            continue
        mid = re.search(rb"<[^>]+>", lits[0])
        out[int(m.group(1))] = corpus_index.get(mid.group(0).decode() if mid else None, -1)
    c.close()
    n = max(out) if out else 0
    return [out.get(s, -1) for s in range(1, n + 1)]


def maildir_load(dc, user, messages, whens, port, timeout):
    """Writes the corpus into the user's Maildir as files (mtime: the internal date), then has
    Dovecot index them with a STATUS; both are timed as its load."""
    t0 = time.monotonic()
    home = os.path.join(dc.base, "mail", user)
    st = os.stat(home)
    md = os.path.join(home, "Maildir")
    for d in ("", "cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
        os.chown(os.path.join(md, d), st.st_uid, st.st_gid)
    nbytes = 0
    for i, ((data, _), when) in enumerate(zip(messages, whens)):
        path = os.path.join(md, "cur", "%d.M%dP1.bench,S=%d:2," % (int(when), i, len(data)))
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, st.st_uid, st.st_gid)
        os.utime(path, (when, when))
        nbytes += len(data)
    written = time.monotonic() - t0
    c = Conn(port, timeout)
    c.login(USER, PASSWORD)
    c.command("STATUS INBOX (MESSAGES)")
    c.command("EXAMINE INBOX")
    c.close()
    secs = time.monotonic() - t0
    log("  dovecot: %d files written in %.1f s, indexed by Dovecot in %.1f s"
        % (len(messages), written, secs - written))
    return {"messages": len(messages), "commands_ok": 0, "commands_failed": 0, "failures": [],
            "seconds": secs, "bytes": nbytes, "messages_per_s": len(messages) / secs,
            "mb_per_s": nbytes / 1e6 / secs, "client_cpu_s": 0.0, "files": True}


# ---- ringmail --------------------------------------------------------------------------------

class Ringmail:
    def __init__(self, build, data_dir, threads, timeout=60):
        self.build = build
        self.data_dir = data_dir
        self.lines = []
        self.proc = subprocess.Popen(
            [os.path.join(build, "ringmaild"), "--data-dir", data_dir,
             "--imap-listen", "127.0.0.1:0", "--imaps-listen", "127.0.0.1:0",
             "--allow-plaintext-auth", "1", "--threads", str(threads),
             "--connections-per-ip-max", "10000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=dovecot_mod._pdeathsig)
        self.port = None
        cond = threading.Condition()

        def reader():
            for raw in iter(self.proc.stderr.readline, b""):
                with cond:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    del self.lines[:-500]
                    cond.notify_all()
            with cond:
                cond.notify_all()

        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + timeout
        with cond:
            while self.port is None:
                for line in self.lines:
                    if "event=listening" in line and "proto=imaps" not in line:
                        m = re.search(r"\baddr=127\.0\.0\.1:(\d+)\b", line)
                        if m:
                            self.port = int(m.group(1))
                if self.port is not None:
                    break
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("ringmaild did not start:\n" + "\n".join(self.lines[-20:]))
                cond.wait(0.2)

    def rss(self):
        return _proc_status(self.proc.pid)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        rc = self.proc.returncode
        self.proc = None
        return rc


def _proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def ringmail_cli(build, *args, timeout=3600):
    return subprocess.run([os.path.join(build, "ringmail")] + list(args), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def index_stats(build, data_dir):
    """(dict or None, note)."""
    try:
        r = ringmail_cli(build, "index", "stats", "--data-dir", data_dir, "--user", USER,
                         timeout=1800)
    except subprocess.TimeoutExpired:
        return None, "index stats timed out"
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line), ""
            except ValueError:
                pass
    return None, "`ringmail index stats` not available (exit %d: %s)" % (
        r.returncode, (r.stderr or r.stdout).strip().splitlines()[:1])


# ---- statistics and the report -----------------------------------------------------------------

def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))]


def ms(v):
    return "-" if v is None else ("%.2f" % (v * 1000) if v < 0.1 else "%.1f" % (v * 1000))


def _header_text(msg):
    """A compat32 message's header, unfolded, encoded words decoded."""
    out = []
    for k, v in msg.items():
        v = re.sub(r"\r?\n[ \t]", " ", str(v))
        try:
            v = str(email.header.make_header(email.header.decode_header(v)))
        except Exception:  # noqa: BLE001 - left as it is
            pass
        out.append("%s: %s" % (k, v))
    return "\n".join(out)


def reference_has(data, key, word):
    """Python's own reading: does `word` occur (lower-cased) in the decoded text/* parts and the
    headers of attached messages (BODY), or in them plus the decoded header (TEXT)? A reference
    for explaining differences only, not an oracle. Returns a phrase: "has it", "has it only
    with accents removed ...", "does not have it"."""
    texts = []
    raw = email.message_from_bytes(data)  # compat32: header values as they are
    if key == "TEXT":
        texts.append(_header_text(raw))
    for part in raw.walk():
        if part.get_content_type() == "message/rfc822":
            for sub in part.get_payload():
                texts.append(_header_text(sub))
        elif key == "TEXT" and part is not raw:
            texts.append("\n".join("%s: %s" % kv for kv in part.items()))
    m = email.message_from_bytes(data, policy=email.policy.default)
    for part in m.walk():
        if part.get_content_maintype() == "text":
            try:
                texts.append(part.get_content())
            except Exception:  # noqa: BLE001 - an undecodable part is just skipped
                pass
    w = word.lower()
    if any(w in t.lower() for t in texts):
        return "has it"
    w = _strip_accents(w)
    if any(w in _strip_accents(t.lower()) for t in texts):
        return "has it only with accents removed (Dovecot's decomposed normalization: u in ü)"
    return "does not have it"


def _strip_accents(text):
    return "".join(ch for ch in unicodedata.normalize("NFD", text)
                   if unicodedata.category(ch) != "Mn")


def compare(names, sets, cls, key, word, messages, corp):
    """None when both servers found the same messages, else what differs, with examples."""
    a, b = sets[names[0]], sets[names[1]]
    if a == b:
        return None
    only_a = sorted(a - b)
    only_b = sorted(b - a)
    ex = []
    for side, lst in ((names[0], only_a), (names[1], only_b)):
        for idx in lst[:3]:
            if 0 <= idx < len(messages):
                ex.append({"only_in": side, "message": idx, "meta": repr(corp.meta[idx]),
                           "python_reference": reference_has(messages[idx][0], key, word)})
    kinds = {}
    for side, lst in ((names[0], only_a), (names[1], only_b)):
        for idx in lst:
            if 0 <= idx < len(corp.meta):
                k = "only %s: %s" % (side, corp.meta[idx].kind)
                kinds[k] = kinds.get(k, 0) + 1
    return {"class": cls, "key": key, "word": word, names[0]: len(a), names[1]: len(b),
            "only_" + names[0]: len(only_a), "only_" + names[1]: len(only_b),
            "kinds": kinds, "examples": ex}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="/work/main/build", help="dir with ringmaild and ringmail")
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--queries", type=int, default=20, help="query strings per class")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each SEARCH per server")
    ap.add_argument("--max-seconds", type=float, default=1800,
                    help="bound on the whole SEARCH phase (the classes take turns)")
    ap.add_argument("--command-timeout", type=float, default=600, help="bound on one command")
    ap.add_argument("--load-timeout", type=float, default=7200, help="bound on each load")
    ap.add_argument("--stall-seconds", type=float, default=120,
                    help="a load with no APPEND answered for this long fails")
    ap.add_argument("--classes", default=",".join(CLASSES))
    ap.add_argument("--keys", default="BODY,TEXT")
    ap.add_argument("--connections", type=int, default=4, help="APPEND connections per server")
    ap.add_argument("--window", type=int, default=64, help="APPENDs in flight per connection")
    ap.add_argument("--append-batch", type=int, default=1,
                    help="messages per APPEND command to ringmail (MULTIAPPEND when > 1)")
    ap.add_argument("--dovecot-append-batch", type=int, default=0,
                    help="the same for Dovecot; default: --append-batch up to 20,000 messages, "
                         "200 beyond (Dovecot's cost per APPEND transaction grows with the "
                         "mailbox: single APPENDs of 200,000 messages would take hours)")
    ap.add_argument("--threads", type=int, default=2, help="ringmaild reactor threads")
    ap.add_argument("--dovecot-format", default="maildir", choices=("maildir", "sdbox", "mdbox"))
    ap.add_argument("--no-dovecot", action="store_true")
    ap.add_argument("--dovecot-load", default="auto", choices=("auto", "imap", "maildir"),
                    help="how Dovecot gets the corpus: APPEND over IMAP, or message files written "
                         "into its Maildir and indexed by its first STATUS (auto: files above "
                         "20,000 messages, where APPEND slows to under 100 messages/s)")
    ap.add_argument("--no-ringmail", action="store_true", help="Dovecot only (developing)")
    ap.add_argument("--no-rebuild", action="store_true", help="skip `ringmail index rebuild`")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--tmp", default=None, help="parent of the temporary directories")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = ap.parse_args()
    classes = [c for c in args.classes.split(",") if c]
    keys = [k.upper() for k in args.keys.split(",") if k]
    for c in classes:
        if c not in CLASSES:
            ap.error("unknown class %r (known: %s)" % (c, ", ".join(CLASSES)))
    use_rm = not args.no_ringmail
    use_dc = not args.no_dovecot
    if not (use_rm or use_dc):
        ap.error("nothing to measure")
    if use_rm:
        for b in ("ringmaild", "ringmail"):
            if not os.access(os.path.join(args.build, b), os.X_OK):
                ap.error("%s/%s not found (--build)" % (args.build, b))

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    report = {"messages": args.messages, "seed": args.seed, "build": args.build if use_rm else None,
              "notes": []}
    tmp = tempfile.mkdtemp(prefix="ringmail-search-bench-", dir=args.tmp)
    os.chmod(tmp, 0o711)  # Dovecot's users must reach its directory inside
    rm = dc = None
    try:
        # 1. The corpus.
        t0 = time.monotonic()
        corp = corpus_mod.Corpus(args.seed)
        whens = []
        messages = []
        for data, when in corp.messages(args.messages):
            messages.append((data, corpus_mod.imap_date(when)))
            whens.append(when.timestamp())
        total_bytes = sum(len(d) for d, _ in messages)
        report["corpus"] = {"messages": len(messages), "bytes": total_bytes,
                            "generate_s": time.monotonic() - t0}
        log("corpus: %d messages, %.1f MB, generated in %.1f s" % (
            len(messages), total_bytes / 1e6, time.monotonic() - t0))
        by_msgid = {m.msgid: m.index for m in corp.meta}
        words = {c: corp.query_words(c, args.queries) for c in classes}

        servers = []
        if use_rm:
            data_dir = os.path.join(tmp, "ringmail-data")
            r = subprocess.run(
                [os.path.join(args.build, "ringmail"), "user", "add", USER, "--data-dir",
                 data_dir, "--iterations", "4096", "--allow-weak-password"],
                input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("ringmail user add: %s %s" % (r.stdout, r.stderr))
            rm = Ringmail(args.build, data_dir, args.threads)
            servers.append(("ringmail", rm.port))
            log("ringmaild (%s, %d threads) on 127.0.0.1:%d" % (args.build, args.threads, rm.port))
        if use_dc:
            version = dovecot_mod.ensure_installed(log=log)
            dc = dovecot_mod.start(dovecot_mod.free_port(), {USER: PASSWORD},
                                   mail_format=args.dovecot_format, tmp_root=tmp)
            servers.append(("dovecot", dc.port))
            report["dovecot"] = {"version": version, "format": args.dovecot_format}
            log("dovecot %s (%s) on 127.0.0.1:%d" % (version, args.dovecot_format, dc.port))

        # 2. Load, one server after the other.
        report["load"] = {}
        maps = {}
        for name, port in servers:
            log("loading %s ..." % name)
            batch = args.append_batch
            dovecot_files = name == "dovecot" and (
                args.dovecot_load == "maildir" or
                (args.dovecot_load == "auto" and args.messages > 20000
                 and args.dovecot_format == "maildir"))
            if dovecot_files:
                res = maildir_load(dc, USER, messages, whens, port, args.command_timeout)
                batch = 0
            else:
                if name == "dovecot":
                    batch = args.dovecot_append_batch or (
                        args.append_batch if args.messages <= 20000 else 200)
                res = load(port, messages, args.connections, args.window, batch,
                           time.monotonic() + args.load_timeout, name, args.stall_seconds)
            res["append_batch"] = batch
            c = Conn(port, args.command_timeout)
            c.login(USER, PASSWORD)
            untagged, _ = c.command("STATUS INBOX (MESSAGES)")
            c.close()
            m = re.search(rb"MESSAGES (\d+)", b" ".join(l for l, _ in untagged))
            res["status_messages"] = int(m.group(1)) if m else None
            report["load"][name] = res
            log("  %s: %d messages OK, %d failed, in %.1f s: %.0f messages/s, %.1f MB/s; "
                "STATUS says %s" % (name, res["messages"], res["commands_failed"], res["seconds"],
                                    res["messages_per_s"], res["mb_per_s"], res["status_messages"]))
            for idx, why in res["failures"]:
                log("    APPEND of message %d: %s (%r)" % (idx, why, corp.meta[idx]))
            maps[name] = message_map(port, by_msgid, args.command_timeout)
            unmapped = sum(1 for x in maps[name] if x < 0)
            if unmapped:
                report["notes"].append("%s: %d messages without a known Message-ID"
                                       % (name, unmapped))

        # 3. SEARCH.
        sconn = {}
        first = {}
        miss0 = corp.query_words("miss", 1, seed="warmup")[0]
        for name, port in servers:
            c = Conn(port, args.command_timeout)
            c.login(USER, PASSWORD)
            c.command("EXAMINE INBOX")
            dt, nums, tagged = timed_search(c, search_criteria("BODY", miss0))
            first[name] = dt
            log("%s: first SEARCH BODY (a miss) after the load: %.1f ms" % (name, dt * 1000))
            sconn[name] = c
        report["first_search_s"] = first
        lat = {}      # (class, key, server) -> [seconds]
        hits = {}     # (class, key, server) -> [result counts]
        queried = {}  # (class, key) -> query strings run
        mismatches = []
        errors = []
        plan = []
        for qi in range(args.queries):
            for cls in classes:
                if qi < len(words[cls]):
                    for key in keys:
                        plan.append((cls, words[cls][qi], key))
        names = [n for n, _ in servers]
        planned = len(plan) * args.repeat * len(names)
        deadline = time.monotonic() + args.max_seconds
        done = 0
        stopped_early = False
        t_search = time.monotonic()
        last_report = t_search
        for cls, word, key in plan:
            if time.monotonic() > deadline:
                stopped_early = True
                break
            crit = search_criteria(key, word)
            first_sets = {}  # server -> set of corpus indices (the first run)
            for rep in range(args.repeat):
                order = names if rep % 2 == 0 else names[::-1]
                for name in order:
                    if time.monotonic() > deadline:
                        stopped_early = True
                        break
                    try:
                        dt, nums, tagged = timed_search(sconn[name], crit)
                    except (OSError, EOFError) as e:
                        raise RuntimeError("%s: SEARCH %s %r: %s" % (name, key, word, e))
                    done += 1
                    status = tagged.split(b" ", 2)[1] if b" " in tagged else tagged
                    if status != b"OK":
                        errors.append((name, cls, key, word, tagged.decode("latin-1")[:200]))
                        continue
                    lat.setdefault((cls, key, name), []).append(dt)
                    hits.setdefault((cls, key, name), []).append(len(nums))
                    if rep == 0:
                        mp = maps[name]
                        first_sets[name] = set(mp[n - 1] if 0 < n <= len(mp) else -n
                                               for n in nums)
            if first_sets:
                queried.setdefault((cls, key), []).append(word)
            if len(first_sets) == 2:
                mm = compare(names, first_sets, cls, key, word, messages, corp)
                if mm:
                    mismatches.append(mm)
                    log("  differ: %s %s %r: %s %d, %s %d" % (cls, key, word, names[0],
                                                              mm[names[0]], names[1],
                                                              mm[names[1]]))
            del first_sets
            if time.monotonic() - last_report > 15:
                log("  searches: %d of %d planned, %.0f s" % (done, planned,
                                                             time.monotonic() - t_search))
                last_report = time.monotonic()
        if use_rm:
            report["ringmail_memory"] = rm.rss()
        if use_dc:
            imap_rss = [_proc_status(pid) for pid, n in dc.processes() if n == "imap"]
            report["dovecot_imap_memory"] = imap_rss
        for c in sconn.values():
            c.close()
        report["search"] = {"planned": planned, "done": done,
                            "stopped_at_max_seconds": stopped_early,
                            "seconds": time.monotonic() - t_search}
        if stopped_early:
            report["notes"].append("SEARCH phase stopped at --max-seconds %.0f after %d of %d "
                                   "commands" % (args.max_seconds, done, planned))
        report["mismatches"] = mismatches
        report["errors"] = errors

        # 5. The index (ringmail stopped).
        if use_rm:
            rc = rm.stop()
            if rc != 0:
                report["notes"].append("ringmaild exited with %s" % rc)
            crash = [l for l in rm.lines if "Sanitizer" in l or "runtime error:" in l]
            if crash:
                report["notes"].append("ringmaild log: " + " | ".join(crash[:3]))
            st, note = index_stats(args.build, data_dir)
            report["index_stats"] = st
            if note:
                report["notes"].append(note)
            if st is not None and not args.no_rebuild:
                t0 = time.monotonic()
                try:
                    r = ringmail_cli(args.build, "index", "rebuild", "--data-dir", data_dir,
                                     "--user", USER, timeout=3600)
                    secs = time.monotonic() - t0
                    st2, _ = index_stats(args.build, data_dir)
                    if r.returncode == 0 and st2:
                        report["index_rebuild"] = {
                            "seconds": secs, "stats": st2, "output": r.stdout.strip(),
                            "text_mb_per_s": st2["text_bytes"] / 1e6 / secs if secs else None}
                    else:
                        report["notes"].append("index rebuild: exit %d %s" % (
                            r.returncode, (r.stdout + r.stderr).strip()[:300]))
                except subprocess.TimeoutExpired:
                    report["notes"].append("index rebuild timed out")

        # 6. The report.
        rows = []
        for cls in classes:
            for key in keys:
                row = {"class": cls, "key": key,
                       "queries": len(queried.get((cls, key), ())),
                       "words": queried.get((cls, key), [])}
                for name in names:
                    v = lat.get((cls, key, name), [])
                    row[name] = {"n": len(v), "p50_ms": None if not v else pct(v, 50) * 1000,
                                 "p99_ms": None if not v else pct(v, 99) * 1000,
                                 "median_hits": pct(hits.get((cls, key, name), []), 50)}
                if len(names) == 2 and row[names[0]]["p50_ms"] and row[names[1]]["p50_ms"]:
                    row["ratio_p50"] = row["dovecot"]["p50_ms"] / row["ringmail"]["p50_ms"]
                rows.append(row)
        report["table"] = rows
        if args.json:
            print(json.dumps(report, default=str))
        else:
            print_report(report, names, args)
        return 0
    finally:
        if rm is not None:
            rm.stop()
        if dc is not None:
            dc.stop(keep=args.keep)
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def print_report(report, names, args):
    cp = report["corpus"]
    print()
    print("corpus: %d messages, %.1f MB (seed %d)" % (cp["messages"], cp["bytes"] / 1e6,
                                                       report["seed"]))
    if "dovecot" in report:
        print("dovecot %s, %s, no FTS" % (report["dovecot"]["version"],
                                          report["dovecot"]["format"]))
    print()
    print("load (%d connections, %d APPEND commands in flight each, LITERAL+):"
          % (args.connections, args.window))
    for name in names:
        r = report["load"][name]
        print("  %-9s %7d messages in %7.1f s: %8.0f messages/s  %7.1f MB/s  (%d per APPEND; "
              "%d failed; client CPU %.1f s)" % (
                  name, r["messages"], r["seconds"], r["messages_per_s"], r["mb_per_s"],
                  r["append_batch"], r["commands_failed"], r["client_cpu_s"]))
    print()
    print("first SEARCH after the load (a miss): " + ", ".join(
        "%s %.1f ms" % (n, report["first_search_s"][n] * 1000) for n in names))
    print()
    head = "%-13s %-4s %4s" % ("class", "key", "n")
    for name in names:
        head += " | %-9s %9s %9s %7s" % (name, "p50 ms", "p99 ms", "hits")
    if len(names) == 2:
        head += " | %7s" % "dc/rm"
    print(head)
    print("-" * len(head))
    for row in report["table"]:
        line = "%-13s %-4s %4d" % (CLASS_LABEL[row["class"]], row["key"], row["queries"])
        for name in names:
            r = row[name]
            line += " | %-9s %9s %9s %7s" % (
                "", "-" if r["p50_ms"] is None else ms(r["p50_ms"] / 1000),
                "-" if r["p99_ms"] is None else ms(r["p99_ms"] / 1000),
                "-" if r["median_hits"] is None else r["median_hits"])
        if len(names) == 2:
            line += " | %7s" % ("%.1fx" % row["ratio_p50"] if row.get("ratio_p50") else "-")
        print(line)
    print("(n: query strings; each ran %d times per server; p99 of few samples is about the "
          "maximum; hits: median result count; dc/rm: dovecot p50 / ringmail p50)" % args.repeat)
    s = report["search"]
    print("SEARCH phase: %d commands in %.1f s%s" % (
        s["done"], s["seconds"], " (stopped at --max-seconds)" if s["stopped_at_max_seconds"]
        else ""))
    if report.get("ringmail_memory"):
        m = report["ringmail_memory"]
        print("ringmaild memory after the searches: RSS %.1f MB (anon %.1f MB, file %.1f MB)"
              % (m.get("VmRSS", 0) / 1e6, m.get("RssAnon", 0) / 1e6, m.get("RssFile", 0) / 1e6))
    for m in report.get("dovecot_imap_memory") or []:
        print("dovecot imap process after the searches: RSS %.1f MB (anon %.1f MB, file %.1f MB)"
              % (m.get("VmRSS", 0) / 1e6, m.get("RssAnon", 0) / 1e6, m.get("RssFile", 0) / 1e6))
    print()
    if len(names) == 2:
        mm = report["mismatches"]
        if not mm:
            print("results: identical sets of messages on both servers for every query")
        else:
            print("results: %d queries differ (set of messages); ringmail does exact substring "
                  "matching of decoded, case-folded text, Dovecot of decoded, normalized "
                  "(decomposed titlecase) text:" % len(mm))
            kinds = {}
            for m in mm:
                for k, v in m["kinds"].items():
                    kinds[k] = kinds.get(k, 0) + v
            print("  differing messages by kind (forward: with a message/rfc822 part, whose "
                  "header ringmail's BODY reads and Dovecot's does not; Dovecot matches \"u\" "
                  "in \"ü\"): " +
                  ", ".join("%s %d" % kv for kv in sorted(kinds.items())))
            for m in mm:
                print("  %s %s %r: ringmail %d, dovecot %d (only ringmail %d, only dovecot %d)"
                      % (m["class"], m["key"], m["word"], m["ringmail"], m["dovecot"],
                         m["only_ringmail"], m["only_dovecot"]))
                for ex in m["examples"]:
                    print("      only %s: %s; Python's decoding %s" % (
                        ex["only_in"], ex["meta"], ex["python_reference"]))
    for e in report["errors"]:
        print("  error: %s %s %s %r: %s" % e)
    st = report.get("index_stats")
    if st:
        print("ringmail index: %d docs, %.1f MB of text, index %.1f MB = %.1f%% of the text, "
              "%d segments" % (st["docs"], st["text_bytes"] / 1e6, st["index_bytes"] / 1e6,
                               100.0 * st["index_bytes"] / max(1, st["text_bytes"]),
                               st.get("segments", 0)))
    rb = report.get("index_rebuild")
    if rb:
        print("ringmail index rebuild (offline): %.2f s, %.1f MB/s of text; index %.1f MB = "
              "%.1f%% of the text" % (rb["seconds"], rb["text_mb_per_s"] or 0,
                                      rb["stats"]["index_bytes"] / 1e6,
                                      100.0 * rb["stats"]["index_bytes"] /
                                      max(1, rb["stats"]["text_bytes"])))
    for n in report["notes"]:
        print("note: " + n)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (TimeoutError, RuntimeError, EOFError, OSError) as e:
        log("error: %s" % e)
        sys.exit(1)
