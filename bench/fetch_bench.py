#!/usr/bin/env python3
"""FETCH throughput on a large mailbox, against the real ringmaild (Release build).

Fills one mailbox with N generated messages (MULTIAPPEND, 500 per command, so the load is quick),
then times SELECT and `FETCH 1:* (ITEM)` for FLAGS, ENVELOPE and BODY.PEEK[] (best of 3 runs),
reading the whole answer over one loopback connection. Prints messages/s and MB/s per item and
the server's RSS.

    python3 bench/fetch_bench.py --build build --messages 100000
"""

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time


def message(i, rng):
    words = ["report", "meeting", "invoice", "lunch", "project", "update", "review", "plan",
             "budget", "release", "server", "mail", "weekly", "notes", "draft", "question"]
    subject = " ".join(rng.choice(words) for _ in range(rng.randint(2, 7)))
    lines = rng.randint(10, 120)  # about 0.6 to 7 KB of body
    body = "\r\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(lines))
    head = ("From: Sender %d <sender%d@example.com>\r\nTo: alice@example.com\r\n"
            "Subject: %s\r\nDate: Mon, 2 Nov 2026 10:%02d:%02d +0000\r\n"
            "Message-ID: <%d@bench.example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            % (i % 97, i % 97, subject, (i // 60) % 60, i % 60, i))
    return (head + body + "\r\n").encode()


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = b""
        self.read_until(b"\r\n")

    def read_until(self, marker):
        buf = bytearray(self.buf)
        start = 0
        while True:
            i = buf.find(marker, start)
            if i >= 0:
                break
            start = max(0, len(buf) - len(marker))
            data = self.s.recv(1 << 20)
            if not data:
                raise EOFError(bytes(buf[-300:]))
            buf += data
        i += len(marker)
        out, self.buf = bytes(buf[:i]), bytes(buf[i:])
        return out

    def command(self, tag, data):
        """Sends `data`; returns everything up to the tagged line, which must be OK."""
        self.s.sendall(data)
        self.buf = b"\r\n" + self.buf  # the tagged line may be the first one
        got = self.read_until(b"\r\n" + tag + b" ")[2:]
        line = self.read_until(b"\r\n")
        if not line.startswith(b"OK"):
            raise RuntimeError("%s: %s" % (tag, line))
        return got


def timed_fetch(c, tag, item):
    """Sends one FETCH and reads its whole answer with as little client work as possible (the
    bytes land in one reused buffer; only the tail is looked at for the tagged line). Returns
    (seconds, bytes)."""
    assert not c.buf
    end = b"\r\n" + tag + b" OK"
    chunk = bytearray(4 << 20)
    view = memoryview(chunk)
    tail = b""
    total = 0
    t0 = time.monotonic()
    c.s.sendall(tag + b" FETCH 1:* (" + item + b")\r\n")
    while True:
        n = c.s.recv_into(view)
        if n == 0:
            raise EOFError("server closed")
        total += n
        tail = (tail + bytes(view[max(0, n - 64):n]))[-64:]
        if end in tail and tail.endswith(b"\r\n"):
            return time.monotonic() - t0, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ringmail-fetch-bench-")
    data = os.path.join(tmp, "data")
    try:
        subprocess.run([os.path.join(args.build, "ringmail"), "user", "add", "alice",
                        "--data-dir", data, "--iterations", "4096"], input=b"benchpass12\n",
                       check=True, capture_output=True)
        srv = subprocess.Popen([os.path.join(args.build, "ringmaild"), "--data-dir", data,
                                "--imap-listen", "127.0.0.1:0", "--imaps-listen", "",
                                "--allow-plaintext-auth", "1", "--threads", str(args.threads)],
                               stderr=subprocess.PIPE, text=True)
        port = None
        while port is None:
            line = srv.stderr.readline()
            m = re.search(r"event=listening .*addr=127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
        c = Conn(port)
        c.command(b"a", b"a LOGIN alice benchpass12\r\n")
        rng = random.Random(7)
        t0 = time.monotonic()
        total_bytes = 0
        n = 0
        batch = 0
        while n < args.messages:
            k = min(500, args.messages - n)
            parts = [b"p%d APPEND INBOX" % batch]
            for j in range(k):
                m = message(n + j, rng)
                total_bytes += len(m)
                parts.append(b" (\\Seen) {%d+}\r\n" % len(m) + m)
            parts.append(b"\r\n")
            c.command(b"p%d" % batch, b"".join(parts))
            n += k
            batch += 1
        load = time.monotonic() - t0
        print("loaded %d messages (%.1f MB) in %.1f s: %.0f messages/s durable"
              % (n, total_bytes / 1e6, load, n / load))
        t0 = time.monotonic()
        c.command(b"s", b"s SELECT INBOX\r\n")
        print("SELECT of %d messages: %.1f ms" % (n, (time.monotonic() - t0) * 1000))
        for item in (b"FLAGS", b"ENVELOPE", b"BODY.PEEK[]"):
            best = None
            for r in range(3):
                dt, size = timed_fetch(c, b"f%d" % r, item)
                if best is None or dt < best[0]:
                    best = (dt, size)
            print("FETCH 1:* (%s): %.3f s, %.0f messages/s, %.1f MB/s of response"
                  % (item.decode(), best[0], n / best[0], best[1] / best[0] / 1e6))
        with open("/proc/%d/status" % srv.pid) as f:
            status = dict(l.split(":", 1) for l in f)
        print("server memory after: RssAnon %s, RssFile %s (the mapped segments)"
              % (status["RssAnon"].strip(), status["RssFile"].strip()))
        c.command(b"z", b"z LOGOUT\r\n")
        srv.terminate()
        srv.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
