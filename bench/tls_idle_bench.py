#!/usr/bin/env python3
"""Server memory per idle TLS connection: starts its own ringmaild (Release build) on loopback,
opens N connections to the IMAPS port (TLS 1.3, or --tls12), logs each one in (the same user:
one password hash, the rest from the credentials cache) and leaves them idle, then reads the
server's RSS from /proc. The same with N plaintext connections for comparison.

    bench/tls_idle_bench.py [--build build] [--connections 10000] [--threads 2]

Bounded: every step has a deadline; traffic goes to 127.0.0.1 only."""

import argparse
import asyncio
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time


def rss(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) * 1024
    return out


class Server:
    def __init__(self, build, data, threads):
        # The log goes to a file: a pipe nobody reads would fill and stall the server.
        self.log_path = os.path.join(os.path.dirname(data), "server.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(build, "ringmaild"), "--data-dir", data, "--imap-listen", "127.0.0.1:0",
             "--imaps-listen", "127.0.0.1:0", "--allow-plaintext-auth", "1", "--threads",
             str(threads), "--auth-lockout-ip-failures", "1000000",
             "--connections-per-user-max", "1000000",
             "--connections-per-ip-max", "1000000"],
            stderr=self.log)
        self.port = self.tls_port = None
        deadline = time.time() + 30
        while time.time() < deadline and (self.port is None or self.tls_port is None):
            time.sleep(0.05)
            with open(self.log_path) as f:
                for line in f:
                    m = re.search(r"event=listening proto=(imaps?) addr=127\.0\.0\.1:(\d+)", line)
                    if m and m.group(1) == "imap":
                        self.port = int(m.group(2))
                    elif m:
                        self.tls_port = int(m.group(2))
        if self.port is None or self.tls_port is None:
            raise RuntimeError("ringmaild did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


async def open_one(port, ctx, password, sem, conns):
    async with sem:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                    server_hostname="localhost" if ctx else None), 30)
        await asyncio.wait_for(reader.readline(), 30)
        writer.write(b"a LOGIN bench %s\r\n" % password.encode())
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            if line.startswith(b"a "):
                if not line.startswith(b"a OK"):
                    raise RuntimeError(line)
                break
        conns.append((reader, writer))


async def hold(port, ctx, password, n):
    conns = []
    sem = asyncio.Semaphore(200)  # handshakes in flight at once
    start = time.time()
    await asyncio.gather(*(open_one(port, ctx, password, sem, conns) for _ in range(n)))
    return conns, time.time() - start


def measure(args, server, data, tls):
    ctx = None
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(data, "tls", "self-signed-cert.pem"))
        if args.tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    loop = asyncio.new_event_loop()
    before = rss(server.proc.pid)
    conns, took = loop.run_until_complete(
        hold(server.tls_port if tls else server.port, ctx, "idle-tls-4711-pw", args.connections))
    time.sleep(2)  # let the server settle (buffers released, handoffs done)
    after = rss(server.proc.pid)
    for _, w in conns:
        w.close()
    loop.run_until_complete(asyncio.sleep(0.5))
    loop.close()
    n = args.connections
    return {
        "mode": ("TLS 1.2" if args.tls12 else "TLS 1.3") if tls else "plaintext",
        "connections": n, "setup_s": took,
        "rss_per_conn": (after["VmRSS"] - before["VmRSS"]) / n,
        "anon_per_conn": (after["RssAnon"] - before["RssAnon"]) / n,
        "rss_total": after["VmRSS"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tls12", action="store_true")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections * 2 + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    tmp = tempfile.mkdtemp(prefix="ringmail-tls-bench-")
    try:
        data = os.path.join(tmp, "data")
        subprocess.run([os.path.join(args.build, "ringmail"), "user", "add", "bench", "--data-dir",
                        data, "--iterations", "4096"], input=b"idle-tls-4711-pw\n", check=True,
                       capture_output=True)
        results = []
        for tls in (False, True):
            server = Server(args.build, data, args.threads)
            try:
                results.append(measure(args, server, data, tls))
            finally:
                server.stop()
        print("%-10s %12s %10s %18s %18s %14s" % ("mode", "connections", "setup s",
                                                 "RSS/conn (bytes)", "anon/conn (bytes)",
                                                 "server RSS MB"))
        for r in results:
            print("%-10s %12d %10.2f %18.0f %18.0f %14.1f" % (
                r["mode"], r["connections"], r["setup_s"], r["rss_per_conn"],
                r["anon_per_conn"], r["rss_total"] / 1e6))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
