#!/usr/bin/env python3
"""Scale runs against a fresh ringmaild (Release build): many IDLE connections, one very large
mailbox, many users.

    python3 bench/scale_bench.py                         # all three, full size
    python3 bench/scale_bench.py --only connections --connections 1000 --users 100
    python3 bench/scale_bench.py --only mailbox --mailbox-messages 20000
    python3 bench/scale_bench.py --only users --users-count 2000

Each run makes its own temporary data directory, provisions users with
`ringmail user import --iterations 4096`, starts `ringmaild --imap-listen 127.0.0.1:0
--imaps-listen "" --allow-plaintext-auth 1 --threads T` (port from its `event=listening` line,
log in the temporary directory) and drives it with build/ringmail-bench (--json):

  connections  --connections C (100,000) connections of --users U (1,000) users, from source
               addresses 127.0.0.1..127.0.0.N (about 25,000 local ports each), all logged in,
               SELECTed and in IDLE (`ringmail-bench --mode idle --notify`). The server's RSS
               before connecting and once all idle gives bytes per IDLE connection (this
               includes the mail state of the U users opened by SELECT); the push report gives
               the time from the first APPEND to the last watcher's EXISTS; setup time gives
               connections/s. RLIMIT_NOFILE is raised for this script, the server and the bench
               (as root the hard limit too, up to fs.nr_open). Before that, unless
               --no-warm-users, a throwaway server logs each user in once: a user's first login
               creates its mail (with fsyncs), which is not the cost of a connection.
  mailbox      one user, --mailbox-messages N (1,000,000) built-in small messages loaded with
               `ringmail-bench --mode load --connections 4 --pipeline 32` (messages/s), then,
               over one Python imaplib connection, SELECT and `FETCH 1:* (FLAGS)` / `UID FETCH
               1:* (FLAGS)` --repeat times each (each figure and the median). FETCHes are read
               raw from imaplib's connection (the client does little more than count lines), one
               more through imaplib.fetch() shows what a Python client sees. Server RSS, data
               directory size; then a restart: LOGIN (which opens the user's mail: the cold
               open) and the first SELECT against later (warm) SELECTs. --drop-caches (root)
               empties the page cache first.
  users        --users-count N (100,000) users imported in one `ringmail user import` (timed),
               then `ringmail-bench --mode login --connections 50` until N logins have completed
               (each user once: the bench takes users in turn), twice: the second run meets the
               per-core credentials cache (auth_cache_ttl_s, set to 86400 here so that a long
               first run does not age it out). A LOGIN runs on the core that accepted the
               connection, so the server's login lines also give how many logins of each run
               landed on a core that had logged that user in before: at most those can be hits.

Prints a markdown table; every figure names the command it came from (listed under the table).
Before each run it waits (--busy-wait-s) until no other ringmaild, ringmail-bench, ninja,
cc1plus, ctest or make runs; one that turns up while a figure is taken is named as a warning.
Exit status: 0 ok; 1 a bench run reported errors or a check failed (named on stderr and under
the table); 2 bad usage or an environment that cannot carry the run (file descriptors, ports);
3 the machine stayed busy beyond --busy-wait-s. Every wait has a deadline; all traffic goes to
127.0.0.x.
"""

import argparse
import imaplib
import json
import math
import os
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PASSWORD = "scale-bench-pw-1"
USER_PATTERN = "bench%d"  # ringmail-bench's connection i logs in as bench<i % U>
BUSY_COMMANDS = ("ringmaild", "ringmail-bench", "ninja", "cc1plus", "ctest", "make")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


class Fatal(Exception):
    """Stops the whole script with an exit status."""

    def __init__(self, msg, status=2):
        super().__init__(msg)
        self.status = status


# ---------------------------------------------------------------- the machine

def busy_processes(own):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in own:
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in BUSY_COMMANDS:
            found.append(f"{pid} {comm}")
    return found


def wait_until_quiet(args, own):
    """Concurrent load spoils the numbers: wait (bounded) until no server, bench or build runs."""
    deadline = time.monotonic() + args.busy_wait_s
    while True:
        busy = busy_processes(own)
        if not busy:
            return
        if args.ignore_busy:
            log(f"WARNING: busy ({', '.join(busy)}); going on because of --ignore-busy")
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fatal(f"machine still busy after {args.busy_wait_s:.0f} s: {', '.join(busy)}", 3)
        log(f"waiting for {', '.join(busy)} to finish ({left:.0f} s left)")
        time.sleep(min(15.0, left))


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE towards `want` (children inherit it); returns the soft
    limit reached."""
    with open("/proc/sys/fs/nr_open") as f:
        want = min(want, int(f.read()))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError) as e:  # no CAP_SYS_RESOURCE (a container)
            log(f"cannot raise the hard RLIMIT_NOFILE to {want}: {e}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nofile_preexec(limit):
    """For preexec_fn: the child's soft (and, as root, hard) limit up to `limit`."""
    def apply():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            if hard != resource.RLIM_INFINITY and hard < limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            elif soft < limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        except (ValueError, OSError):
            pass  # the parent already took what it could; the child inherited that
    return apply


def source_ips(connections, count=0):
    """`count` loopback source addresses, or (0) enough that the local ports of one address
    (minus a margin for sockets in TIME_WAIT) never run out."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = map(int, f.read().split())
    per_address = max(1000, int((hi - lo + 1) * 0.9))
    n = count or max(1, math.ceil(connections / per_address))
    if n > 250:
        raise Fatal(f"{connections} connections need {n} source addresses")
    return ",".join(f"127.0.0.{i}" for i in range(1, n + 1))


def memory(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out


def dir_size(path):
    """(bytes on disk, apparent bytes, files) under `path`."""
    disk = apparent = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            disk += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return disk, apparent, files


def mib(b):
    return f"{b / 1048576:.1f} MiB"


# ---------------------------------------------------------------- report

class Report:
    def __init__(self):
        self.rows = []      # (run, figure, value, sources)
        self.sources = []   # exact commands, numbered from 1
        self.failures = []
        self.warnings = []

    def source(self, text):
        self.sources.append(text)
        return len(self.sources)

    def row(self, run, figure, value, *refs):
        self.rows.append((run, figure, value, ", ".join(f"[{r}]" for r in refs)))
        log(f"{run}: {figure}: {value}")

    def fail(self, msg):
        self.failures.append(msg)
        log("FAILED: " + msg)

    def print(self, args):
        print(f"\n## ringmail scale benchmark ({os.cpu_count()} CPUs, ringmaild --threads "
              f"{args.threads})\n")
        print("| run | figure | value | from |")
        print("| --- | --- | --- | --- |")
        for run, figure, value, refs in self.rows:
            print(f"| {run} | {figure} | {value} | {refs} |")
        print("\nCommands:\n")
        for i, text in enumerate(self.sources, 1):
            print(f"{i}. `{text}`")
        if self.warnings:
            print("\nWARNINGS (figures taken while other load ran are not reliable):\n")
            for w in self.warnings:
                print(f"- {w}")
        if self.failures:
            print("\nFAILED:\n")
            for f in self.failures:
                print(f"- {f}")


# ---------------------------------------------------------------- processes

class Server:
    """ringmaild on a free loopback port; its log goes to a file (a pipe nobody reads would fill
    and stall it)."""

    def __init__(self, ctx, data, extra, name):
        self.log_path = os.path.join(ctx.tmp, name + ".log")
        self.argv = [os.path.join(ctx.args.build, "ringmaild"), "--data-dir", data,
                     "--imap-listen", "127.0.0.1:0", "--imaps-listen", "",
                     "--allow-plaintext-auth", "1", "--threads", str(ctx.args.threads), *extra]
        self.ref = ctx.report.source(shlex.join(self.argv))
        t0 = time.monotonic()
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, preexec_fn=nofile_preexec(ctx.nofile))
        ctx.own.add(self.proc.pid)
        ctx.servers.append(self)
        self.port = None
        deadline = t0 + ctx.args.start_timeout_s
        while self.port is None:
            with open(self.log_path, errors="replace") as f:
                m = re.search(r"event=listening .*addr=127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                raise Fatal(f"ringmaild exited {self.proc.returncode}: {self.log_tail()}", 1)
            elif time.monotonic() > deadline:
                raise Fatal(f"ringmaild did not listen within {ctx.args.start_timeout_s} s: "
                            f"{self.log_tail()}", 1)
            else:
                time.sleep(0.05)
        self.start_s = time.monotonic() - t0

    def log_tail(self, n=5):
        with open(self.log_path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])

    def memory(self):
        return memory(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


def login_cores(log_path, offset):
    """[(user, core)] of the server's event=login lines from byte `offset` on; the new offset."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        data = f.read()
    data = data[:data.rfind(b"\n") + 1]  # whole lines only
    pairs = re.findall(rb"event=login user=(\S+) .*?\bcore=(\d+)", data)
    return pairs, offset + len(data)


def import_users(ctx, data, count, run):
    """`ringmail user import` of bench0..bench<count-1>; returns (seconds, source)."""
    argv = [os.path.join(ctx.args.build, "ringmail"), "user", "import", "--data-dir", data,
            "--iterations", "4096"] + (["--create-mail"] if ctx.args.create_mail else [])
    lines = "".join(f"{USER_PATTERN % i} {PASSWORD}\n" for i in range(count))
    ref = ctx.report.source(shlex.join(argv) + f"  < {count} lines 'benchN {PASSWORD}'")
    log(f"{run}: importing {count} users")
    t0 = time.monotonic()
    r = subprocess.run(argv, input=lines.encode(), capture_output=True,
                       timeout=ctx.args.import_timeout_s)
    took = time.monotonic() - t0
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0 or f"imported {count} users, 0 failed" not in out:
        raise Fatal(f"user import: exit {r.returncode}: {out} "
                    f"{r.stderr.decode(errors='replace')[-500:]}", 1)
    return took, ref


def run_bench(ctx, label, port, bench_args, timeout, on_line=None):
    """Runs ringmail-bench (--json) to completion within `timeout` seconds (then SIGINT, which
    makes it report, then SIGKILL). `on_line` sees its first non-JSON stdout line (idle mode's
    connected= line) while it goes on. Returns (result or None, exit status, wall seconds, ref)."""
    argv = [os.path.join(ctx.args.build, "ringmail-bench"), "--port", str(port),
            "--user-pattern", USER_PATTERN, "--password", PASSWORD, *map(str, bench_args),
            "--json"]
    ref = ctx.report.source(shlex.join(argv))
    err_path = os.path.join(ctx.tmp, f"bench-{ref}.stderr")
    log(f"{label}: [{ref}] {shlex.join(argv)}")
    t0 = time.monotonic()
    with open(err_path, "wb") as errf:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf,
                             preexec_fn=nofile_preexec(ctx.nofile))
    ctx.own.add(p.pid)
    buf, lines, interrupted = b"", [], False
    deadline = t0 + timeout
    next_check = t0 + 2
    fd = p.stdout.fileno()
    try:
        while True:
            now = time.monotonic()
            if now >= next_check:
                ctx.check_busy(f"{label} [{ref}]")
                next_check = now + 5
            if now > deadline:
                if interrupted:
                    p.kill()
                    break
                log(f"{label}: no end after {timeout:.0f} s: interrupting ringmail-bench")
                p.send_signal(signal.SIGINT)
                interrupted, deadline = True, now + 30
            ready, _, _ = select.select([fd], [], [], min(1.0, max(0.0, deadline - now)))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                lines.append(text)
                if on_line and not text.startswith("{"):
                    on_line(text)
                    on_line = None
        rc = p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    wall = time.monotonic() - t0
    ctx.check_busy(f"{label} [{ref}]")
    result = None
    for text in reversed(lines):
        if text.startswith("{"):
            try:
                result = json.loads(text)
            except ValueError:
                pass
            break
    with open(err_path, errors="replace") as f:
        err_tail = " | ".join(f.read().strip().splitlines()[-3:])
    errors = result.get("errors_total") if result else None
    if rc != 0 or result is None or errors:
        ctx.report.fail(f"{label} [{ref}]: ringmail-bench exit {rc}, errors_total {errors}, "
                        f"errors {result.get('errors') if result else '-'}; stderr: {err_tail}")
    return result, rc, wall, ref


# ---------------------------------------------------------------- the runs

def run_connections(ctx):
    a = ctx.args
    c, u = a.connections, a.users
    run = "connections"
    need = c + u + 256
    want = c + u + 4 * u + 4096  # the server also holds a few files per open user
    got = raise_nofile(want)
    ctx.nofile = got
    if got < need:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        raise Fatal(f"RLIMIT_NOFILE is {got} (hard limit {hard}), {c} connections of {u} users "
                    f"need at least {need}: run as root (with CAP_SYS_RESOURCE) or lower "
                    f"--connections")
    if got < want:
        log(f"{run}: WARNING: RLIMIT_NOFILE {got} < {want} wanted")
    ips = source_ips(c + u, a.source_addresses)
    data = os.path.join(ctx.tmp, "connections-data")
    took, import_ref = import_users(ctx, data, u, run)
    ctx.report.row(run, f"import {u} users (4096 iterations)", f"{took:.1f} s", import_ref)
    wait_until_quiet(a, ctx.own)
    if a.warm_users:
        # A user's first login creates its mail (files and fsyncs): not what a connection costs.
        # A throwaway server does that, so the measured one starts cold but with every user's
        # mail on disk.
        srv = Server(ctx, data, [], "connections-warm-server")
        try:
            r, rc, wall, ref = run_bench(
                ctx, run + " (warm-up)", srv.port,
                ["--mode", "login", "--users", u, "--connections", min(50, u), "--duration", 1800,
                 "--warmup", 0, "--max-commands", u], timeout=2100)
            if r:
                ctx.report.row(run, f"warm-up, not measured: each user's first login (creates "
                               f"its mail)", f"{r.get('logged_in', 0)} logins in {wall:.1f} s",
                               ref, srv.ref)
        finally:
            if srv.stop() != 0:
                ctx.report.fail(f"{run}: warm-up ringmaild exit {srv.proc.returncode}")
    threads = a.threads
    extra = ["--connections-max", str(min(10_000_000, threads * (c + u) + 1000)),
             "--connections-per-ip-max", str(min(10_000_000, c + u + 1000)),
             "--connections-per-user-max", str(min(1_000_000, c + u))]
    srv = Server(ctx, data, extra, "connections-server")
    try:
        time.sleep(1)
        base = srv.memory()
        seen = {}
        settle = min(1.0, a.notify_after / 2)

        def all_idle(line):
            seen["line"] = line
            seen.update({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)})
            time.sleep(settle)  # handoffs done, buffers released; before the notifiers start
            seen["mem"] = srv.memory()

        hold = max(a.hold_seconds, a.notify_after + 15)
        r, rc, wall, ref = run_bench(
            ctx, run, srv.port,
            ["--mode", "idle", "--connections", c, "--users", u, "--notify", "--notify-after",
             a.notify_after, "--hold-seconds", hold, "--setup-timeout", 600, "--source-ips", ips],
            timeout=600 + hold + 180, on_line=all_idle)
        if "mem" not in seen:
            ctx.report.fail(f"{run} [{ref}]: ringmail-bench never printed its connected= line")
            return
        idling = seen.get("idling", seen.get("logged_in", 0))
        if idling != c:
            ctx.report.fail(f"{run} [{ref}]: {seen['line']!r}: not all {c} connections idle")
        if r:
            setup = r.get("setup_s", 0)
            ctx.report.row(run, f"setup: {c} connections connected, logged in, SELECTed, IDLE",
                           f"{setup:.1f} s, {c / setup:,.0f} connections/s" if setup else "-",
                           ref, srv.ref)
        m = seen["mem"]
        ctx.report.row(run, "server RSS before connecting / all idle",
                       f"{mib(base['VmRSS'])} / {mib(m['VmRSS'])}", ref, srv.ref)
        if idling:
            ctx.report.row(run, f"bytes per IDLE connection (RSS delta / {idling}; anon)",
                           f"{(m['VmRSS'] - base['VmRSS']) / idling:,.0f} "
                           f"({(m['RssAnon'] - base['RssAnon']) / idling:,.0f})", ref, srv.ref)
        push = (r or {}).get("push")
        if push:
            ctx.report.row(run, f"push: {u} notifiers APPEND, EXISTS to {c} watchers",
                           f"{push.get('seen')} of {push.get('expected')} got it; per watcher "
                           f"from its user's APPEND: p50 {push.get('p50_ms', 0):.1f} ms, p99 "
                           f"{push.get('p99_ms', 0):.1f} ms, max {push.get('max_ms', 0):.1f} ms",
                           ref)
            last = push.get("last_after_first_append_s")
            if last is not None:
                ctx.report.row(run, "push: first APPEND sent -> last watcher's EXISTS",
                               f"{last * 1000:.1f} ms", ref)
            if push.get("seen") != push.get("expected"):
                ctx.report.fail(f"{run} [{ref}]: EXISTS reached {push.get('seen')} of "
                                f"{push.get('expected')} watchers")
        elif r is not None:
            ctx.report.fail(f"{run} [{ref}]: no push report in the JSON")
    finally:
        rc = srv.stop()
        if rc != 0:
            ctx.report.fail(f"{run}: ringmaild exit {rc}: {srv.log_tail()}")


class RawReader:
    """Reads one command's whole answer from an imaplib connection, doing as little as the
    client can (count lines, keep the tail): the time is the server's and the socket's."""

    def __init__(self, imap):
        self.imap = imap
        self.n = 0

    def command(self, command):
        self.n += 1
        tag = b"R%d" % self.n
        end = b"\r\n" + tag + b" "
        tail, lines, total = b"\r\n", 0, 0
        t0 = time.monotonic()
        self.imap.send(tag + b" " + command + b"\r\n")
        while True:
            chunk = self.imap.file.read1(1 << 20)  # imaplib's buffered reader: nothing is lost
            if not chunk:
                raise Fatal(f"server closed the connection during {command!r}", 1)
            total += len(chunk)
            lines += chunk.count(b"\n")
            tail = (tail + chunk)[-512:]
            i = tail.rfind(end)
            if i >= 0 and tail.endswith(b"\r\n") and tail.find(b"\r\n", i + 2) == len(tail) - 2:
                took = time.monotonic() - t0
                status = tail[i + len(end):].split(b" ", 1)[0]
                if status != b"OK":
                    raise Fatal(f"{command!r}: {tail[i + 2:].strip()!r}", 1)
                return took, lines - 1, total


def imap_login(port):
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=900)  # every read has this deadline
    imap.login(USER_PATTERN % 0, PASSWORD)
    return imap


def timed_select(imap):
    t0 = time.monotonic()
    typ, data = imap.select("INBOX")
    took = time.monotonic() - t0
    if typ != "OK":
        raise Fatal(f"SELECT INBOX: {typ} {data}", 1)
    return took, int(data[0])


def series(seconds):
    """The median and every value, in ms."""
    def f(v):
        return f"{v * 1000:.2f}" if v < 0.1 else f"{v * 1000:.0f}"
    return f"median {f(statistics.median(seconds))} ms ({', '.join(f(v) for v in seconds)})"


def drop_caches():
    if os.geteuid() != 0:
        log("--drop-caches needs root: skipped")
        return False
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    return True


def run_mailbox(ctx):
    a = ctx.args
    n = a.mailbox_messages
    run = "mailbox"
    ctx.nofile = raise_nofile(4096)
    data = os.path.join(ctx.tmp, "mailbox-data")
    import_users(ctx, data, 1, run)
    wait_until_quiet(a, ctx.own)
    srv = Server(ctx, data, [], "mailbox-server")
    try:
        r, rc, wall, ref = run_bench(
            ctx, run, srv.port,
            ["--mode", "load", "--messages", n, "--users", 1, "--connections", 4, "--pipeline", 32,
             "--max-seconds", a.load_max_seconds],
            timeout=a.load_max_seconds + 300)
        if r:
            appended = r.get("messages_appended", 0)
            ctx.report.row(run, f"load {n} messages (4 connections, pipeline 32)",
                           f"{appended:,} appended, {r.get('messages_per_s', 0):,.0f} messages/s "
                           f"(wall {wall:.1f} s incl. connecting)", ref, srv.ref)
            if appended < n:
                ctx.report.fail(f"{run} [{ref}]: {appended} of {n} messages appended")
        src = ctx.report.source(f"python3 imaplib over 127.0.0.1:{srv.port}: LOGIN "
                                f"{USER_PATTERN % 0}, then SELECT INBOX x{a.repeat}, raw "
                                f"FETCH 1:* (FLAGS) x{a.repeat}, raw UID FETCH 1:* (FLAGS) "
                                f"x{a.repeat}, imaplib.fetch('1:*', '(FLAGS)') x1")
        imap = imap_login(srv.port)
        selects = []
        for _ in range(a.repeat):
            took, exists = timed_select(imap)
            selects.append(took)
        if exists != n:
            ctx.report.fail(f"{run}: SELECT says {exists} EXISTS, {n} loaded")
        ctx.report.row(run, f"SELECT INBOX of {exists:,} messages", series(selects), src, srv.ref)
        raw = RawReader(imap)
        for cmd in (b"FETCH 1:* (FLAGS)", b"UID FETCH 1:* (FLAGS)"):
            times = []
            for _ in range(a.repeat):
                took, responses, size = raw.command(cmd)
                times.append(took)
                if responses != exists:
                    ctx.report.fail(f"{run}: {cmd.decode()} gave {responses} responses, "
                                    f"{exists} messages")
            med = statistics.median(times)
            ctx.report.row(run, f"{cmd.decode()} (raw read, {mib(size)})",
                           f"{series(times)}; {exists / med:,.0f} messages/s", src, srv.ref)
        t0 = time.monotonic()
        typ, data_ = imap.fetch("1:*", "(FLAGS)")
        took = time.monotonic() - t0
        count = len(data_) if typ == "OK" else 0
        del data_
        ctx.report.row(run, "imaplib.fetch('1:*', '(FLAGS)') incl. Python parsing",
                       f"{took:.3f} s ({count:,} responses)", src, srv.ref)
        ctx.check_busy(f"{run} [{src}]")
        m = srv.memory()
        ctx.report.row(run, "server RSS (anon, file) after the FETCHes",
                       f"{mib(m['VmRSS'])} ({mib(m['RssAnon'])}, {mib(m['RssFile'])})", srv.ref)
        imap.logout()
    finally:
        rc = srv.stop()
        if rc != 0:
            ctx.report.fail(f"{run}: ringmaild exit {rc}: {srv.log_tail()}")
    disk, apparent, files = dir_size(data)
    ctx.report.row(run, "data directory", f"{mib(disk)} on disk ({mib(apparent)} apparent, "
                   f"{files} files)", ref)

    # Cold open: a new process has nothing of the mailbox in memory (the page cache may, unless
    # --drop-caches).
    dropped = drop_caches() if a.drop_caches else False
    wait_until_quiet(a, ctx.own)
    srv = Server(ctx, data, [], "mailbox-server-restarted")
    try:
        src = ctx.report.source(f"python3 imaplib over 127.0.0.1:{srv.port} after a restart"
                                f"{' and drop_caches' if dropped else ''}: LOGIN, SELECT INBOX "
                                f"(first), SELECT INBOX x{a.repeat} (later)")
        ctx.report.row(run, "restart: ringmaild start to listening", f"{srv.start_s:.2f} s",
                       srv.ref)
        t0 = time.monotonic()
        imap = imap_login(srv.port)
        login = time.monotonic() - t0
        cold, _ = timed_select(imap)
        warm = [timed_select(imap)[0] for _ in range(a.repeat)]
        ctx.report.row(run, "after restart: connect+LOGIN (the server opens the user's mail "
                       "at LOGIN), first SELECT",
                       f"{login * 1000:.1f} ms, {cold * 1000:.1f} ms"
                       f"{' (page cache dropped)' if dropped else ' (page cache warm)'}",
                       src, srv.ref)
        ctx.check_busy(f"{run} [{src}]")
        ctx.report.row(run, "after restart: later SELECTs", series(warm), src, srv.ref)
        imap.logout()
    finally:
        rc = srv.stop()
        if rc != 0:
            ctx.report.fail(f"{run}: restarted ringmaild exit {rc}: {srv.log_tail()}")


def run_users(ctx):
    a = ctx.args
    n = a.users_count
    run = "users"
    ctx.nofile = raise_nofile(8192)
    data = os.path.join(ctx.tmp, "users-data")
    took, import_ref = import_users(ctx, data, n, run)
    ctx.report.row(run, f"import {n:,} users (one `user import`, 4096 iterations)",
                   f"{took:.1f} s, {n / took:,.0f} users/s", import_ref)
    disk, _, files = dir_size(data)
    ctx.report.row(run, "data directory after import", f"{mib(disk)} on disk, {files:,} files",
                   import_ref)
    wait_until_quiet(a, ctx.own)
    srv = Server(ctx, data, ["--auth-cache-ttl-s", "86400"], "users-server")
    try:
        time.sleep(1)
        m = srv.memory()
        ctx.report.row(run, "server start to listening; RSS idle",
                       f"{srv.start_s:.2f} s; {mib(m['VmRSS'])}", srv.ref)
        if a.login_seconds:
            limit = ["--duration", a.login_seconds]
            timeout = a.login_seconds + 300
        else:  # until every user has logged in once, the duration only a bound
            limit = ["--duration", a.login_max_seconds, "--warmup", 0, "--max-commands", n]
            timeout = a.login_max_seconds + 300
        ips = source_ips(min(n, 250_000), a.source_addresses)
        # The credentials cache is per core, and a connection's LOGIN runs on the core that
        # accepted it (SO_REUSEPORT picks one by hash): the server's login lines say which.
        cores_seen = {}
        log_offset = os.path.getsize(srv.log_path)
        for label in ("first logins (hash; each creates the user's mail)",
                      "second logins (cache)"):
            r, rc, wall, ref = run_bench(
                ctx, f"{run} {label}", srv.port,
                ["--mode", "login", "--users", n, "--connections", 50, "--source-ips", ips, *limit],
                timeout=timeout)
            if not r:
                continue
            lat = r.get("latency_us", {})
            ctx.report.row(run, f"{label}: logins/s (latency p50 / p99)",
                           f"{r.get('commands_per_s', 0):,.0f} ({lat.get('p50', 0) / 1000:.2f} / "
                           f"{lat.get('p99', 0) / 1000:.2f} ms), {r.get('logged_in', 0):,} logins "
                           f"in {r.get('duration_s', 0):.1f} s", ref, srv.ref)
            if r.get("logged_in", 0) < n:
                ctx.report.fail(f"{run} {label} [{ref}]: {r.get('logged_in')} logins < {n} users:"
                                f" not every user logged in")
            time.sleep(0.5)  # the last login lines reach the log
            logins, log_offset = login_cores(srv.log_path, log_offset)
            if logins:
                again = sum(1 for user, core in logins if core in cores_seen.get(user, ()))
                for user, core in logins:
                    cores_seen.setdefault(user, set()).add(core)
                distinct = len({user for user, _ in logins})
                ctx.report.row(run, f"{label}: server's login lines: distinct users; logins on a "
                               f"core where an earlier run had logged the user in (at most "
                               f"these can be cache hits)",
                               f"{distinct:,}; {again:,} of {len(logins):,} "
                               f"({100 * again / len(logins):.0f}%)", ref, srv.ref)
                if distinct < n:
                    ctx.report.fail(f"{run} {label} [{ref}]: the server logged logins of "
                                    f"{distinct} distinct users, not all {n}")
        m = srv.memory()
        ctx.report.row(run, "server RSS after the logins", mib(m["VmRSS"]), srv.ref)
    finally:
        rc = srv.stop()
        if rc != 0:
            ctx.report.fail(f"{run}: ringmaild exit {rc}: {srv.log_tail()}")


# ---------------------------------------------------------------- main

class Context:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.report = Report()
        self.own = {os.getpid()}  # processes of ours, never counted as load by others
        self.servers = []
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def check_busy(self, during):
        """Notes other load that turned up while a figure was being taken."""
        busy = busy_processes(self.own)
        if busy:
            msg = f"other load during {during}: {', '.join(busy)}"
            if msg not in self.report.warnings:
                self.report.warnings.append(msg)
                log("WARNING: " + msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="dir with ringmaild, ringmail, ringmail-bench (Release)")
    ap.add_argument("--only", choices=("connections", "mailbox", "users"))
    ap.add_argument("--threads", type=int, default=2, help="ringmaild reactor threads")
    ap.add_argument("--connections", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=1000, help="users of the connections run")
    ap.add_argument("--hold-seconds", type=float, default=60,
                    help="connections run: how long the bench holds at most (ends early once "
                         "every watcher got its EXISTS)")
    ap.add_argument("--notify-after", type=float, default=3)
    ap.add_argument("--no-warm-users", dest="warm_users", action="store_false",
                    help="connections run: skip the warm-up (a throwaway server that logs every "
                         "user in once, so that the measured setup does not include creating "
                         "each user's mail at its first login)")
    ap.add_argument("--source-addresses", type=int, default=0,
                    help="bench source addresses 127.0.0.1..127.0.0.N (default: by connections)")
    ap.add_argument("--mailbox-messages", type=int, default=1_000_000)
    ap.add_argument("--load-max-seconds", type=float, default=3600)
    ap.add_argument("--repeat", type=int, default=5, help="mailbox run: repetitions per command")
    ap.add_argument("--drop-caches", action="store_true",
                    help="mailbox run, as root: drop the page cache before the restart "
                         "(affects the whole machine)")
    ap.add_argument("--users-count", type=int, default=100_000)
    ap.add_argument("--login-seconds", type=float, default=0,
                    help="users run: fixed --duration per login run (default: until every user "
                         "logged in once, bounded by --login-max-seconds)")
    ap.add_argument("--login-max-seconds", type=float, default=3600)
    ap.add_argument("--import-timeout-s", type=float, default=7200)
    ap.add_argument("--start-timeout-s", type=float, default=300)
    ap.add_argument("--busy-wait-s", type=float, default=600,
                    help="how long to wait for other servers/benches/builds to finish")
    ap.add_argument("--ignore-busy", action="store_true")
    ap.add_argument("--tmp-dir", default=None, help="parent of the temporary directory")
    ap.add_argument("--create-mail", action="store_true",
                    help="users run: `user import --create-mail` makes every user's mail at "
                         "import, so the first logins do not create it")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    for name, v in (("--connections", a.connections), ("--users", a.users),
                    ("--mailbox-messages", a.mailbox_messages), ("--users-count", a.users_count),
                    ("--repeat", a.repeat), ("--threads", a.threads)):
        if v < 1:
            ap.error(f"{name} must be at least 1")
    if not 0 <= a.source_addresses <= 250:
        ap.error("--source-addresses must be 0 to 250")
    for b in ("ringmaild", "ringmail", "ringmail-bench"):
        if not os.access(os.path.join(a.build, b), os.X_OK):
            ap.error(f"{a.build}/{b} not found (a Release build is needed)")
    help_text = subprocess.run([os.path.join(a.build, "ringmail-bench"), "--help"],
                               capture_output=True, text=True, timeout=30).stdout
    for mode in ("load", "idle"):
        if not re.search(rf"\b{mode}\b", help_text):
            ap.error(f"{a.build}/ringmail-bench has no mode '{mode}' (an older build?)")

    tmp = tempfile.mkdtemp(prefix="ringmail-scale-", dir=a.tmp_dir)
    ctx = Context(a, tmp)
    status = 0
    runs = [a.only] if a.only else ["connections", "mailbox", "users"]
    try:
        wait_until_quiet(a, ctx.own)
        for run in runs:
            {"connections": run_connections, "mailbox": run_mailbox, "users": run_users}[run](ctx)
    except Fatal as e:
        log(f"STOPPED: {e}")
        ctx.report.failures.append(str(e))
        status = e.status
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    finally:
        for srv in ctx.servers:
            if srv.proc.poll() is None:
                srv.stop()
        if a.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    ctx.report.print(a)
    if status == 0 and ctx.report.failures:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
