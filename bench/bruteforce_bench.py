#!/usr/bin/env python3
"""A brute-force run against ringmaild (Release build) on loopback: many connections guess one
user's password as fast as the server answers, for a bounded time, while a bystander user keeps
measuring NOOP round trips and fresh logins. Reports how many guesses were counted before the
lockout, how the rest were answered, the bystander's latency, and the audit log's lines.

    bench/bruteforce_bench.py [--build build] [--attackers 64] [--seconds 10] [--threads 2]
"""

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time


async def read_tagged(reader, tag):
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError
        if line.startswith(tag + b" "):
            return line


async def attacker(port, deadline, counts):
    i = 0
    while time.monotonic() < deadline:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            await r.readline()
            while time.monotonic() < deadline:
                i += 1
                w.write(b"a LOGIN victim wrong-%d\r\n" % i)
                line = await read_tagged(r, b"a")
                key = "refused_locked" if b"[UNAVAILABLE]" in line else (
                    "failed" if b"[AUTHENTICATIONFAILED]" in line else "other")
                counts[key] = counts.get(key, 0) + 1
            w.close()
        except (OSError, EOFError):
            counts["dropped"] = counts.get("dropped", 0) + 1


async def bystander(port, deadline, noop_ms, login_ms):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    await r.readline()
    w.write(b"l LOGIN bystander quiet-neighbour-22\r\n")
    await read_tagged(r, b"l")
    n = 0
    while time.monotonic() < deadline:
        n += 1
        start = time.perf_counter()
        w.write(b"n NOOP\r\n")
        await read_tagged(r, b"n")
        noop_ms.append((time.perf_counter() - start) * 1000)
        if n % 50 == 0:  # a fresh login now and then (credentials cache: microseconds)
            start = time.perf_counter()
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            await r2.readline()
            w2.write(b"l LOGIN bystander quiet-neighbour-22\r\n")
            line = await read_tagged(r2, b"l")
            assert line.startswith(b"l OK"), line
            login_ms.append((time.perf_counter() - start) * 1000)
            w2.close()
        await asyncio.sleep(0.005)
    w.close()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--attackers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ringmail-bf-")
    try:
        data = os.path.join(tmp, "data")
        for user, pw in (("victim", "guess-me-not-4711"), ("bystander", "quiet-neighbour-22")):
            subprocess.run([os.path.join(args.build, "ringmail"), "user", "add", user,
                            "--data-dir", data], input=(pw + "\n").encode(), check=True,
                           capture_output=True)
        log_path = os.path.join(tmp, "server.log")
        with open(log_path, "w") as log:
            srv = subprocess.Popen(
                [os.path.join(args.build, "ringmaild"), "--data-dir", data, "--imap-listen",
                 "127.0.0.1:0", "--imaps-listen", "", "--allow-plaintext-auth", "1",
                 "--threads", str(args.threads), "--connections-per-ip-max", "100000",
                 "--auth-lockout-ip-failures", "1000000"], stderr=log)
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            time.sleep(0.05)
            m = re.search(r"event=listening proto=imap addr=127\.0\.0\.1:(\d+)", open(log_path).read())
            port = int(m.group(1)) if m else None
        counts, noop_ms, login_ms = {}, [], []

        async def run():
            end = time.monotonic() + args.seconds
            await asyncio.gather(bystander(port, end, noop_ms, login_ms),
                                 *(attacker(port, end, counts) for _ in range(args.attackers)))

        asyncio.run(run())
        srv.terminate()
        srv.wait(30)
        with open(os.path.join(data, "audit.log")) as f:
            audit = f.read().splitlines()
        events = {}
        for line in audit:
            e = re.search(r"event=(\S+)", line).group(1)
            events[e] = events.get(e, 0) + 1
        print("attackers %d for %.0f s, %d reactor threads" % (args.attackers, args.seconds,
                                                               args.threads))
        print("guesses answered: %s" % dict(sorted(counts.items())))
        print("audit log lines: %s" % dict(sorted(events.items())))
        print("bystander NOOP round trip: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d samples)" % (
            pct(noop_ms, 0.5), pct(noop_ms, 0.99), max(noop_ms), len(noop_ms)))
        print("bystander fresh login: p50 %.2f ms, p99 %.2f ms (%d samples)" % (
            pct(login_ms, 0.5), pct(login_ms, 0.99), len(login_ms)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
