#!/usr/bin/env python3
"""The foundation's figures, measured on this machine against the Release build:

  1. NOOP round trips per second over 100 connections (pipeline depth 1 and 16);
  2. server RSS with 10,000 idle logged-in connections, and bytes per connection;
  3. SIGTERM with 1,000 logged-in connections: every one gets BYE, exit code, time to exit.

Usage: bench/foundation_bench.py [--build build] [--duration 5]
Starts its own ringmaild on a free loopback port with a temporary data directory; every load is
bounded in time. Prints a table; exits 1 if a check fails (an error, a missing BYE, exit != 0).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

USERS = 100
PASSWORD = "bench-password-1"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, build, data_dir, threads):
        self.proc = subprocess.Popen(
            [f"{build}/ringmaild", "--data-dir", data_dir, "--imap-listen", "127.0.0.1:0",
             "--imaps-listen", "", "--allow-plaintext-auth", "1", "--threads", str(threads)],
            stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"event=listening .*addr=127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            raise RuntimeError("ringmaild did not start")
        # Keep draining stderr so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        return rc, time.monotonic() - t0


def bench(build, port, *args):
    out = subprocess.run([f"{build}/ringmail-bench", "--port", str(port), "--users", str(USERS),
                          "--password", PASSWORD, "--json", *args],
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.returncode


def idle_connections(build, port, count, hold_s, on_logged_in):
    p = subprocess.Popen([f"{build}/ringmail-bench", "--port", str(port), "--users", str(USERS),
                          "--password", PASSWORD, "--mode", "idle", "--connections", str(count),
                          "--hold-seconds", str(hold_s), "--json"],
                         stdout=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    if "logged_in=" not in first:
        raise RuntimeError(f"idle clients did not log in: {first!r}")
    on_logged_in(first.strip())
    rest = p.stdout.read()
    p.wait(timeout=hold_s + 60)
    return json.loads(rest.strip().splitlines()[-1]), p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    threads = a.threads or os.cpu_count()
    data = tempfile.mkdtemp(prefix="ringmail-bench-")
    failed = []
    rows = []
    try:
        for i in range(USERS):
            subprocess.run([f"{a.build}/ringmail", "user", "add", f"bench{i}", "--data-dir", data,
                            "--iterations", "4096"], input=PASSWORD + "\n", text=True,
                           check=True, capture_output=True)

        srv = Server(a.build, data, threads)
        for depth in (1, 16):
            r, rc = bench(a.build, srv.port, "--mode", "noop", "--connections", "100",
                          "--pipeline", str(depth), "--duration", str(a.duration))
            errors = r["errors_total"]
            rows.append((f"NOOP/s, 100 connections, pipeline {depth}",
                         f"{r['commands_per_s']:.0f}",
                         f"p50 {r['latency_us']['p50']:.0f} us, p99 {r['latency_us']['p99']:.0f} us,"
                         f" errors {errors}"))
            if rc != 0:
                failed.append(f"noop pipeline {depth}: ringmail-bench exit {rc}")

        base = rss_kib(srv.proc.pid)
        seen = {}
        def measure(line):
            time.sleep(1)
            seen["rss"] = rss_kib(srv.proc.pid)
        r, rc = idle_connections(a.build, srv.port, 10000, 3, measure)
        per_conn = (seen["rss"] - base) * 1024 / 10000
        rows.append(("RSS before / with 10,000 idle logged-in connections",
                     f"{base} KiB / {seen['rss']} KiB", f"{per_conn:.0f} bytes per connection"))
        if rc != 0:
            failed.append(f"idle 10000: ringmail-bench exit {rc}")
        srv.stop()

        srv = Server(a.build, data, threads)
        result = {}
        def stop_now(line):
            result["stop"] = srv.stop()
        r, rc = idle_connections(a.build, srv.port, 1000, 30, stop_now)
        code, secs = result["stop"]
        byes = r.get("bye_received")
        rows.append(("SIGTERM with 1,000 logged-in connections",
                     f"exit {code} after {secs:.3f} s", f"BYE received by {byes} of 1000"))
        if code != 0 or byes != 1000 or secs >= 2:
            failed.append(f"shutdown: exit {code}, {secs:.3f} s, {byes} BYE")
    finally:
        shutil.rmtree(data, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"ringmail foundation benchmark ({threads} reactor threads, {os.cpu_count()} CPUs)")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>24}  {note}")
    for f in failed:
        print("FAILED:", f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
