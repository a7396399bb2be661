#!/usr/bin/env python3
"""Does the number of provisioned users change the server's footprint? Starts ringmaild on each
given data directory (users bench0..benchN-1 with password 'benchpass', e.g. made with
`ringmail user import`), reads its RSS and open files, cycles logins through all its users with
ringmail-bench for a bounded time, and reads them again.

Usage: bench/users_bench.py --build build DIR:USERS [DIR:USERS ...]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import threading
import time


def footprint(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def measure(build, data_dir, users, seconds):
    p = subprocess.Popen([f"{build}/ringmaild", "--data-dir", data_dir, "--imap-listen",
                          "127.0.0.1:0", "--imaps-listen", "", "--allow-plaintext-auth", "1",
                          "--log-level", "warn", "--auth-cache-ttl-s", "0"],
                         stderr=subprocess.PIPE, text=True)
    # --log-level warn hides the listening line, so find the port from /proc.
    port = None
    deadline = time.time() + 20
    while port is None and time.time() < deadline:
        time.sleep(0.1)
        out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
        m = re.search(r"127\.0\.0\.1:(\d+)\s.*pid=%d," % p.pid, out)
        port = int(m.group(1)) if m else None
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    time.sleep(0.5)
    before = footprint(p.pid)
    r = subprocess.run([f"{build}/ringmail-bench", "--port", str(port), "--mode", "login",
                        "--users", str(users), "--connections", "16", "--duration", str(seconds),
                        "--warmup", "0.5", "--json"], capture_output=True, text=True,
                       timeout=seconds + 60)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    time.sleep(1)  # let the server see the last clients go
    after = footprint(p.pid)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    return before, after, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    print(f"{'users':>8}  {'RSS idle':>10}  {'fds idle':>8}  {'RSS after':>10}  {'fds after':>9}"
          f"  {'logins/s':>9}  errors")
    for spec in a.dirs:
        d, users = spec.rsplit(":", 1)
        (rss0, fd0), (rss1, fd1), r = measure(a.build, d, int(users), a.seconds)
        print(f"{int(users):>8}  {rss0:>7} KiB  {fd0:>8}  {rss1:>7} KiB  {fd1:>9}"
              f"  {r['commands_per_s']:>9.0f}  {r['errors_total']}")


if __name__ == "__main__":
    main()
