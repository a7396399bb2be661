"""Shared harness for ringmail's integration tests.

The tests drive the real binaries on loopback (127.0.0.1 only). The binaries are taken from
$RINGMAIL_BIN_DIR (the CMake build directory; default: ../../build next to this file).

- Server: a ringmaild on a temporary data dir and an ephemeral port, as a context manager.
- ImapConn: a raw socket for byte-exact protocol exchanges.
- run_ringmaild / run_ringmail: run a binary to its end (for start-up errors and the admin CLI).
- ServerTestCase: a unittest.TestCase that starts servers and checks, at cleanup, that each one
  exited 0 and that nothing in its log looks like a sanitizer report.

Every wait is bounded by a deadline. Timeouts are generous (sanitizer builds are 2-3x slower) and
only bound the waits: no test asserts on how long anything took.
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.path.abspath(os.environ.get("RINGMAIL_BIN_DIR")
                          or os.path.join(HERE, "..", "..", "build"))

# Generous bounds for waits; scale them up on a very slow machine with RINGMAIL_TEST_TIMEOUT_SCALE.
TIMEOUT_SCALE = float(os.environ.get("RINGMAIL_TEST_TIMEOUT_SCALE", "1"))
TIMEOUT = 20.0 * TIMEOUT_SCALE        # one protocol exchange, one log line, a process exit
START_TIMEOUT = 20.0 * TIMEOUT_SCALE  # until the server logs event=listening

ITERATIONS = 4096  # the cheapest PBKDF2 the store accepts: users are added fast

HOST = "127.0.0.1"
PREAUTH_CAPS = ("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR STARTTLS AUTH=SCRAM-SHA-256 AUTH=PLAIN "
                "AUTH=LOGIN ID ENABLE")
AUTH_CAPS = ("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE "
             "CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY "
             "THREAD=ORDEREDSUBJECT THREAD=REFERENCES STATUS=SIZE "
             "CONDSTORE QRESYNC UTF8=ACCEPT MULTIAPPEND BINARY APPENDLIMIT=67108864")
GREETING = "* OK [CAPABILITY %s] ringmail ready" % PREAUTH_CAPS
CAPABILITY_LINE = "* CAPABILITY " + PREAUTH_CAPS
LOGIN_OK = "OK [CAPABILITY %s] LOGIN completed" % AUTH_CAPS
AUTH_FAILED = "NO [AUTHENTICATIONFAILED] Authentication failed"
LIST_INBOX = '* LIST (\\HasNoChildren) "/" INBOX'
SHUTDOWN_BYE = "* BYE [UNAVAILABLE] Server shutting down"

# What a sanitizer or an assertion leaves on stderr.
CRASH_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                 "ThreadSanitizer", "runtime error:", "event=assertion_failed")


def bin_path(name):
    """The path of a built binary; no_uring_exec may also live in the tests/ build subdirectory."""
    for candidate in (os.path.join(BIN_DIR, name), os.path.join(BIN_DIR, "tests", name)):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("%s not found in %s (set RINGMAIL_BIN_DIR to the build directory)"
                            % (name, BIN_DIR))


def crash_lines(lines):
    return [l for l in lines if any(m in l for m in CRASH_MARKERS)]


def parse_kv(line):
    """A log line's key=value pairs as a dict (values may be double-quoted with \\ escapes)."""
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        out[m.group(1)] = v
    return out


# ---- Running binaries to their end ----------------------------------------------------------

class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self):
        return "Result(rc=%r, stdout=%r, stderr=%r)" % (self.returncode, self.stdout, self.stderr)


def run(argv, stdin_text=None, timeout=TIMEOUT, cwd=None):
    p = subprocess.run(argv, input=stdin_text if stdin_text is not None else "",
                       capture_output=True, text=True, timeout=timeout, cwd=cwd,
                       errors="replace")
    return Result(p.returncode, p.stdout, p.stderr)


def run_ringmail(*args, stdin_text=None, timeout=TIMEOUT):
    """The admin CLI, e.g. run_ringmail("user", "list", "--data-dir", d)."""
    return run([bin_path("ringmail")] + list(args), stdin_text=stdin_text, timeout=timeout)


def run_ringmaild(*args, timeout=TIMEOUT, cwd=None, wrapper=None):
    """ringmaild expected to exit by itself (a start-up error). A server that is still running at
    the timeout is killed and subprocess.TimeoutExpired raised."""
    argv = [bin_path("ringmaild")] + list(args)
    if wrapper:
        argv = list(wrapper) + argv
    return run(argv, timeout=timeout, cwd=cwd)


def add_user(data_dir, name, password, iterations=ITERATIONS):
    # Test passwords are short on purpose; the policy has its own tests (test_passwords.py).
    r = run_ringmail("user", "add", name, "--data-dir", data_dir, "--iterations", str(iterations),
                     "--allow-weak-password",
                     stdin_text=password + "\n")
    if r.returncode != 0:
        raise RuntimeError("ringmail user add %s failed: %r" % (name, r))
    return r


# ---- The server -----------------------------------------------------------------------------

class ServerStartError(RuntimeError):
    pass


class Server:
    """A running ringmaild on a temporary data dir, listening on 127.0.0.1:<any free port>.

        with Server(users={"alice": "secret"}, config={"idle_timeout_s": 2}) as srv:
            c = ImapConn(srv.port)

    users:     {name: password}, added with the admin CLI before the start.
    config:    a dict written as JSON and passed with --config.
    args:      extra command-line flags.
    data_dir:  an existing data dir to use (it is then not removed); default a fresh temp dir.
    iterations: PBKDF2 iterations of the users added (default the cheapest the store accepts).
    """

    def __init__(self, users=None, config=None, args=(), threads=2, log_level="debug",
                 data_dir=None, start=True, iterations=ITERATIONS):
        self.users = dict(users or {})
        self.config = config
        self.extra_args = list(args)
        self.threads = threads
        self.log_level = log_level
        self.proc = None
        self.port = None
        self.tls_port = None
        self.returncode = None
        self._lines = []
        self._cond = threading.Condition()
        self._reader = None
        self._tmp = tempfile.mkdtemp(prefix="ringmail-it-")
        self._own_data_dir = data_dir is None
        self.data_dir = data_dir or os.path.join(self._tmp, "data")
        try:
            for name, password in self.users.items():
                add_user(self.data_dir, name, password, iterations)
            if start:
                self.start()
        except BaseException:
            self.close()
            raise

    # -- life cycle --

    def argv(self):
        # Plaintext LOGIN is allowed here (loopback; most tests are about IMAP, not TLS), and
        # IMAPS takes an ephemeral port like IMAP, so tests can run side by side.
        # Every client here comes from 127.0.0.1: no per-address connection limit unless a test
        # sets one. A test's own config or flag for any of these wins.
        argv = [bin_path("ringmaild"), "--data-dir", self.data_dir, "--imap-listen", HOST + ":0",
                "--threads", str(self.threads), "--log-level", self.log_level]
        for key, value in (("imaps_listen", HOST + ":0"), ("allow_plaintext_auth", "1"),
                           ("connections_per_ip_max", "1000000")):
            flag = "--" + key.replace("_", "-")
            if key not in (self.config or {}) and flag not in self.extra_args:
                argv += [flag, value]
        if self.config is not None:
            path = os.path.join(self._tmp, "config.json")
            with open(path, "w") as f:
                json.dump(self.config, f)
            argv += ["--config", path]
        return argv + self.extra_args

    def imaps_expected(self):
        argv = self.argv()
        i = len(argv) - 1 - argv[::-1].index("--imaps-listen") if "--imaps-listen" in argv else -1
        return i < 0 or argv[i + 1] != ""

    def start(self):
        assert self.proc is None
        self.port = None
        self.tls_port = None
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=self._tmp)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        with self._cond:
            while True:
                for line in self._lines:
                    if "event=listening" in line:
                        m = re.search(r"\baddr=127\.0\.0\.1:(\d+)\b", line)
                        if not m:
                            raise ServerStartError("no port in: " + line)
                        if "proto=imaps" in line:
                            self.tls_port = int(m.group(1))
                        else:
                            self.port = int(m.group(1))
                if self.port is not None and (self.tls_port is not None or
                                              not self.imaps_expected()):
                    return self
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise ServerStartError("ringmaild exited with %s before listening:\n%s"
                                           % (self.proc.returncode, "\n".join(self._lines)))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerStartError("ringmaild did not log event=listening in %.0f s:\n%s"
                                           % (START_TIMEOUT, "\n".join(self._lines)))
                self._cond.wait(min(left, 0.2))

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends `sig` and waits for the exit. Returns the exit code (negative: killed by a
        signal). If the server is still running after `timeout` (scaled), it is killed and
        TimeoutError raised."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout * TIMEOUT_SCALE * 2)  # x2: sanitizer builds
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
                self._join_reader()
                raise TimeoutError("ringmaild did not exit within %s s of %s" %
                                   (timeout, signal.Signals(sig).name))
        self._join_reader()
        self.returncode = self.proc.returncode
        return self.returncode

    def _join_reader(self):
        if self._reader is not None:
            self._reader.join(TIMEOUT)

    def close(self):
        """Kills the server if it still runs and removes the temporary files."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            self._join_reader()
            if self.proc.stderr:
                self.proc.stderr.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- the log --

    def log_lines(self):
        with self._cond:
            return list(self._lines)

    def log_count(self):
        with self._cond:
            return len(self._lines)

    def wait_log(self, regex, timeout=TIMEOUT, start=0):
        """The re.Match of the first log line at index >= start that matches `regex` (searched),
        waiting up to `timeout` seconds for it. Raises TimeoutError with the log on failure."""
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self._lines):
                    m = pat.search(self._lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise TimeoutError("no log line matching %r within %s s; log:\n%s"
                                       % (regex, timeout, "\n".join(self._lines[-60:])))
                self._cond.wait(min(left, 0.2))

    def wait_log_count(self, regex, count, timeout=TIMEOUT, start=0):
        """Waits until at least `count` lines at index >= start match; returns those lines."""
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [l for l in self._lines[start:] if pat.search(l)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise TimeoutError("%d/%d log lines matching %r within %s s; log tail:\n%s"
                                       % (len(found), count, regex, timeout,
                                          "\n".join(self._lines[-60:])))
                self._cond.wait(min(left, 0.2))

    def events(self, event, start=0):
        """The key=value dicts of the log lines with event=`event`."""
        return [parse_kv(l) for l in self.log_lines()[start:]
                if re.search(r"\bevent=%s(\s|$)" % re.escape(event), l)]

    # -- clients --

    def connect(self, timeout=TIMEOUT, greeting=True):
        return ImapConn(self.port, timeout=timeout, greeting=greeting)

    def login(self, user, password, timeout=TIMEOUT):
        """A new connection, logged in (asserted)."""
        c = self.connect(timeout=timeout)
        lines = c.command("l1", "LOGIN %s %s" % (user, password))
        if lines != ["l1 " + LOGIN_OK]:
            c.close()
            raise AssertionError("login as %s failed: %r" % (user, lines))
        return c


# ---- Raw protocol client --------------------------------------------------------------------

class ProtocolError(AssertionError):
    pass


class ImapConn:
    """One IMAP connection over a plain socket, for byte-exact exchanges.

    Lines are returned as str (latin-1) without their CRLF; a line that does not end in CRLF is a
    ProtocolError. Every read has a deadline; running out raises TimeoutError with what was read.
    """

    def __init__(self, port, timeout=TIMEOUT, greeting=True):
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = bytearray()  # received, not yet returned (deleting from the front is cheap)
        self.eof = False
        self.reset = False  # the server's close came as a reset (it had unread input)
        self.greeting = None
        if greeting:
            self.greeting = self.readline()
            if self.greeting != GREETING:
                raise ProtocolError("unexpected greeting %r" % self.greeting)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more bytes into self.buf. Returns False at EOF (or a reset after the peer
        closed). Raises TimeoutError at the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("read timed out; unread: %r" % bytes(self.buf[:500]))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("read timed out; unread: %r" % bytes(self.buf[:500]))
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self, timeout=None):
        """One line without its CRLF. Raises EOFError if the connection closes first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                raw = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                if not raw.endswith(b"\r\n"):
                    raise ProtocolError("line without CRLF: %r" % raw)
                return raw[:-2].decode("latin-1")
            if not self._fill(deadline):
                raise EOFError("connection closed; unread: %r" % bytes(self.buf))

    def read_exact(self, n, timeout=None):
        """Exactly n bytes (a literal's contents)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise EOFError("connection closed; unread: %r" % bytes(self.buf[:500]))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_tagged(self, tag, timeout=None):
        """Lines up to and including the first one that starts with `tag` + space."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        lines = []
        while True:
            try:
                line = self.readline(timeout=max(0.0, deadline - time.monotonic()))
            except (TimeoutError, EOFError) as e:
                raise type(e)("%s; waiting for tag %r after %r" % (e, tag, lines)) from None
            lines.append(line)
            if line.startswith(tag + " "):
                return lines

    def command(self, tag, text, timeout=None):
        """Sends `tag text` CRLF and returns the response lines (the tagged one last)."""
        self.send("%s %s\r\n" % (tag, text))
        return self.read_tagged(tag, timeout=timeout)

    def read_lines(self, count, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return [self.readline(timeout=max(0.0, deadline - time.monotonic())) for _ in range(count)]

    def read_to_eof(self, timeout=None):
        """All bytes until the server closes (EOF or a reset after its close)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self._fill(deadline):
            pass
        data = bytes(self.buf)
        self.buf = bytearray()
        return data

    def lines_to_eof(self, timeout=None):
        """The complete lines the server sends before it closes; a partial last line is a
        ProtocolError."""
        data = self.read_to_eof(timeout)
        if data and not data.endswith(b"\r\n"):
            raise ProtocolError("data before close does not end in CRLF: %r" % data)
        return [l for l in data.decode("latin-1").split("\r\n")[:-1]] if data else []

    def strict_eof(self, timeout=None):
        """Reads to the end; True if it was a clean EOF (FIN), False if a reset."""
        self.read_to_eof(timeout)
        return not self.reset

    def no_data_for(self, seconds):
        """True if the server sends nothing (and does not close) for `seconds`."""
        if self.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], seconds)
        return not r


# ---- unittest glue --------------------------------------------------------------------------

class ServerTestCase(unittest.TestCase):
    """Servers started with self.server(...) are stopped with SIGTERM at cleanup, and the cleanup
    fails the test if the exit code is not 0 or the log holds a sanitizer report or assertion."""

    maxDiff = None

    def server(self, **kwargs):
        srv = Server(**kwargs)
        self.addCleanup(self._finish_server, srv)
        return srv

    def _finish_server(self, srv):
        try:
            rc = srv.stop() if srv.running() else (srv.proc.returncode if srv.proc else None)
            lines = srv.log_lines()
            self.assertEqual(crash_lines(lines), [], "sanitizer report or assertion in the log")
            if srv.proc is not None:
                self.assertEqual(rc, 0, "ringmaild exit code; log tail:\n" + "\n".join(lines[-40:]))
        finally:
            srv.close()

    def assertNoCrash(self, text):
        self.assertEqual(crash_lines(text.splitlines()), [], "sanitizer report in:\n" + text)
