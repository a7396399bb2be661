"""ringmaild's life cycle: shutdown on SIGTERM/SIGINT with connections open, start-up errors
(config, port, data dir, io_uring), the pre-auth and idle timeouts, and the admin CLI."""

import json
import os
import re
import signal
import socket
import tempfile
import time
import unittest

from harness import (AUTH_FAILED, HOST, LIST_INBOX, LOGIN_OK, SHUTDOWN_BYE, TIMEOUT,
                     Server, ServerTestCase, bin_path, crash_lines, run_ringmail, run_ringmaild)

PREAUTH_BYE = "* BYE Timed out waiting for authentication"
IDLE_BYE = "* BYE Autologout; idle for too long"


class TempDirMixin:
    def tempdir(self):
        d = tempfile.TemporaryDirectory(prefix="ringmail-it-")
        self.addCleanup(d.cleanup)
        return d.name


# ---- Shutdown -------------------------------------------------------------------------------

class TestShutdown(ServerTestCase):
    N_USERS = 10

    def open_mix(self, srv, users):
        """About 300 connections: not logged in, logged in, each with and without a partial
        command pipelined behind a complete one. Returns them once the server has answered every
        complete command (so it has read the partial bytes sent in the same write)."""
        names = sorted(users)
        conns = []
        kinds = (
            ("preauth", None),
            ("preauth", "p LOGIN alice sec"),                 # a partial line
            ("preauth", "p LOGIN {5}\r\n"),                   # waits for a literal's bytes
            ("preauth", "p LOGIN {5+}\r\nal"),                # inside a LITERAL+ literal
            ("auth", None),
            ("auth", 'p LIST "" '),
            ("auth", 'p LIST {5+}\r\nIN'),
        )
        for i in range(294):
            kind, partial = kinds[i % len(kinds)]
            c = srv.connect()
            conns.append(c)
            if kind == "auth":
                u = names[i % len(names)]
                c.send("a LOGIN %s %s\r\nb NOOP\r\n" % (u, users[u]) + (partial or ""))
                self.assertEqual(c.read_tagged("b"), ["a " + LOGIN_OK, "b OK NOOP completed"])
            else:
                c.send("b NOOP\r\n" + (partial or ""))
                self.assertEqual(c.read_tagged("b"), ["b OK NOOP completed"])
                if partial == "p LOGIN {5}\r\n":
                    self.assertEqual(c.readline(), "+ Ready for literal data")
        return conns

    def check_shutdown(self, sig, signame, conns, srv):
        srv.send_signal(sig)
        for i, c in enumerate(conns):
            self.assertEqual(c.lines_to_eof(), [SHUTDOWN_BYE], "connection %d" % i)
            self.assertFalse(c.reset, "connection %d: reset instead of a clean close" % i)
            c.close()
        self.assertEqual(srv.stop(sig), 0, "\n".join(srv.log_lines()[-40:]))
        lines = srv.log_lines()
        self.assertTrue([l for l in lines if re.search(r"level=info event=shutdown signal=%s$"
                                                      % signame, l)], lines[-20:])
        self.assertRegex(lines[-1], r"level=info event=stopped$")
        self.assertEqual(crash_lines(lines), [])

    def test_sigterm_with_many_connections_says_bye_to_each_and_exits_0(self):
        users = {"alice": "alice-pw"}
        users.update({"user%02d" % i: "pw%02d" % i for i in range(self.N_USERS - 1)})
        srv = self.server(users=users)
        conns = self.open_mix(srv, users)
        try:
            self.assertGreaterEqual(len(conns), 290)
            self.check_shutdown(signal.SIGTERM, "SIGTERM", conns, srv)
        finally:
            for c in conns:
                c.close()

    def test_sigint_exits_0(self):
        srv = self.server(users={"alice": "alice-pw"})
        conns = [srv.connect(), srv.login("alice", "alice-pw"), srv.login("alice", "alice-pw")]
        try:
            self.check_shutdown(signal.SIGINT, "SIGINT", conns, srv)
        finally:
            for c in conns:
                c.close()

    def test_sigterm_idle_server_exits_0(self):
        srv = self.server()
        self.assertEqual(srv.stop(signal.SIGTERM), 0)
        self.assertRegex(srv.log_lines()[-1], r"event=stopped$")

    def test_client_that_never_reads_does_not_hold_up_shutdown(self):
        # One client floods commands and never reads: its answers fill every buffer. The others
        # still get their BYE, and the server exits 0 once shutdown_timeout_ms has passed.
        users = {"alice": "alice-pw", "bob": "bob-pw"}
        srv = self.server(users=users)
        others = [srv.connect(), srv.login("alice", "alice-pw"), srv.login("bob", "bob-pw")]
        stuck = srv.login("bob", "bob-pw")
        for c in others + [stuck]:
            self.addCleanup(c.close)
        stuck.sock.setblocking(False)
        chunk = b"n NOOP\r\n" * 1000
        deadline = time.monotonic() + TIMEOUT
        last_progress = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_progress < 0.5:
            try:
                if stuck.sock.send(chunk) > 0:
                    last_progress = time.monotonic()
            except BlockingIOError:
                time.sleep(0.02)
        self.assertGreater(time.monotonic() - last_progress, 0.5, "the flood never blocked")
        srv.send_signal(signal.SIGTERM)
        for i, c in enumerate(others):
            self.assertEqual(c.lines_to_eof(), [SHUTDOWN_BYE], "connection %d" % i)
        self.assertEqual(srv.stop(), 0)
        self.assertRegex(srv.log_lines()[-1], r"event=stopped$")

    def test_sigterm_during_login_burst(self):
        # Logins in flight (on the helper pool, or being handed off) when the signal arrives:
        # every connection still ends with the shutdown BYE after any answers, then EOF.
        users = {"u%d" % i: "pw%d" % i for i in range(4)}
        srv = self.server(users=users)
        conns = []
        try:
            for i in range(60):
                conns.append(srv.connect())
            for i, c in enumerate(conns):
                u = "u%d" % (i % 4)
                c.send("a LOGIN %s %s\r\nb NOOP\r\n" % (u, users[u]))
            srv.send_signal(signal.SIGTERM)
            for i, c in enumerate(conns):
                lines = c.lines_to_eof()
                self.assertTrue(lines and lines[-1] == SHUTDOWN_BYE, (i, lines))
                # A login on the wrong core when the stop begins cannot move to its owner core
                # any more: it is refused, and the connection is still answered to its end.
                refused = ["a NO [UNAVAILABLE] Server shutting down", "b OK NOOP completed"]
                self.assertIn(lines[:-1], ([], ["a " + LOGIN_OK], refused, refused[:1],
                                           ["a " + LOGIN_OK, "b OK NOOP completed"]), (i, lines))
            self.assertEqual(srv.stop(), 0)
        finally:
            for c in conns:
                c.close()


# ---- Start-up errors ------------------------------------------------------------------------

class TestStartupErrors(ServerTestCase, TempDirMixin):
    def config_error(self, content):
        d = self.tempdir()
        path = os.path.join(d, "ringmail.json")
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        r = run_ringmaild("--config", path, "--data-dir", os.path.join(d, "data"),
                          "--imap-listen", HOST + ":0", cwd=d)
        self.assertNoCrash(r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "data")), "data dir created anyway")
        return r, path

    def test_config_unknown_key(self):
        r, path = self.config_error({"threads": 2, "no_such_key": 1})
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr, 'ringmaild: config %s: key "no_such_key": unknown key\n' % path)

    def test_config_wrong_type(self):
        r, path = self.config_error({"threads": "two"})
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr, 'ringmaild: config %s: key "threads": expected an integer '
                                   'from 0 to 1024\n' % path)

    def test_config_value_out_of_range(self):
        r, path = self.config_error({"threads": 5000})
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr, 'ringmaild: config %s: key "threads": expected an integer '
                                   'from 0 to 1024, got 5000\n' % path)

    def test_config_not_json(self):
        r, path = self.config_error('{"threads": 2,')
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("ringmaild: config %s: " % path), r.stderr)

    def test_config_missing_file(self):
        d = self.tempdir()
        path = os.path.join(d, "missing.json")
        r = run_ringmaild("--config", path, cwd=d)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("ringmaild: config %s: " % path), r.stderr)

    def test_bad_flag_value(self):
        d = self.tempdir()
        r = run_ringmaild("--data-dir", os.path.join(d, "data"), "--threads", "x", cwd=d)
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stderr.splitlines()[0],
                         'ringmaild: flag --threads: expected an integer from 0 to 1024, got "x"')
        self.assertNoCrash(r.stderr)

    def test_unknown_flag(self):
        d = self.tempdir()
        r = run_ringmaild("--data-dir", os.path.join(d, "data"), "--no-such-flag", "1", cwd=d)
        self.assertEqual(r.returncode, 2, r)
        self.assertTrue(r.stderr.startswith("ringmaild: flag --no-such-flag"), r.stderr)

    def test_flag_overrides_config_file(self):
        # The file says 1 s before a pre-auth BYE, the flag 60 s: a connection idles 3 s unharmed.
        srv = self.server(config={"preauth_timeout_s": 1}, args=["--preauth-timeout-s", "60"])
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertTrue(c.no_data_for(3))
        self.assertEqual(c.command("a", "NOOP"), ["a OK NOOP completed"])

    def test_port_in_use(self):
        d = self.tempdir()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind((HOST, 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        r = run_ringmaild("--data-dir", os.path.join(d, "data"), "--imap-listen",
                          "%s:%d" % (HOST, port), "--threads", "2", cwd=d)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("ringmaild: cannot listen on %s:%d: address already in use" % (HOST, port),
                      r.stderr)
        self.assertNoCrash(r.stderr)

    def test_data_dir_in_use(self):
        srv = self.server(users={"alice": "alice-pw"})
        r = run_ringmaild("--data-dir", srv.data_dir, "--imap-listen", HOST + ":0",
                          "--threads", "2", cwd=self.tempdir())
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("ringmaild: data_dir %s is in use by another ringmaild" % srv.data_dir,
                      r.stderr)
        self.assertNoCrash(r.stderr)
        # The first server is unharmed.
        c = srv.login("alice", "alice-pw")
        self.addCleanup(c.close)
        self.assertEqual(c.command("b", 'LIST "" INBOX'), [LIST_INBOX, "b OK LIST completed"])

    def test_data_dir_free_again_after_stop(self):
        srv = self.server(users={"alice": "alice-pw"})
        data_dir = srv.data_dir
        self.assertEqual(srv.stop(), 0)
        with Server(data_dir=data_dir) as again:
            c = again.login("alice", "alice-pw")
            c.close()
            self.assertEqual(again.stop(), 0)
            self.assertEqual(crash_lines(again.log_lines()), [])

    def test_io_uring_blocked(self):
        d = self.tempdir()
        r = run_ringmaild("--data-dir", os.path.join(d, "data"), "--imap-listen", HOST + ":0",
                          "--threads", "2", cwd=d, wrapper=[bin_path("no_uring_exec")])
        self.assertEqual(r.returncode, 1, r)  # an exit, not a death by signal
        self.assertIn("io_uring is unavailable here", r.stderr)
        self.assertNotIn("AddressSanitizer", r.stderr)
        self.assertNoCrash(r.stderr)


# ---- Timeouts -------------------------------------------------------------------------------

def read_until_tag_or_eof(c, tag):
    """Lines until the tagged response or the server's close; (lines, closed)."""
    lines = []
    while True:
        try:
            line = c.readline()
        except EOFError:
            return lines, True
        lines.append(line)
        if line.startswith(tag + " "):
            return lines, False


class TestTimeouts(ServerTestCase):
    def test_preauth_timeout(self):
        srv = self.server(args=["--preauth-timeout-s", "1"])
        c = srv.connect()
        self.addCleanup(c.close)
        self.assertEqual(c.lines_to_eof(), [PREAUTH_BYE])
        srv.wait_log(r"level=info event=timeout core=[01] conn=\d+ kind=preauth$")

    def test_preauth_timeout_counts_from_connect_whatever_is_sent(self):
        srv = self.server(users={"alice": "alice-pw"}, config={"preauth_timeout_s": 2})
        c = srv.connect()
        self.addCleanup(c.close)
        seen, closed = [], False
        deadline = time.monotonic() + TIMEOUT
        k = 0
        while not closed and time.monotonic() < deadline:
            k += 1
            try:
                c.send("n%d NOOP\r\n" % k)
            except OSError:  # the server closed meanwhile
                seen.append(c.read_to_eof().decode("latin-1"))
                break
            lines, closed = read_until_tag_or_eof(c, "n%d" % k)
            seen.extend(lines)
            time.sleep(0.2)
        self.assertIn(PREAUTH_BYE, seen)
        after = seen[seen.index(PREAUTH_BYE) + 1:]
        self.assertEqual([l for l in after if l], [], "nothing may follow the BYE")
        self.assertTrue(all(l == "n%d OK NOOP completed" % (i + 1)
                            for i, l in enumerate(seen[:seen.index(PREAUTH_BYE)])), seen)
        self.assertGreater(seen.index(PREAUTH_BYE), 0, "NOOPs were answered before the timeout")

    def test_preauth_timeout_with_trickled_partial_command(self):
        srv = self.server(args=["--preauth-timeout-s", "1"])
        c = srv.connect()
        self.addCleanup(c.close)
        deadline = time.monotonic() + TIMEOUT
        for ch in "a LOGIN alice " + "x" * 1000:
            if time.monotonic() > deadline or not c.no_data_for(0.1):
                break
            try:
                c.send(ch)
            except OSError:
                break
        self.assertEqual(c.lines_to_eof(), [PREAUTH_BYE])

    def test_logged_in_connection_not_hit_by_preauth_timeout(self):
        srv = self.server(users={"alice": "alice-pw"}, args=["--preauth-timeout-s", "2"])
        c = srv.login("alice", "alice-pw")
        self.addCleanup(c.close)
        self.assertTrue(c.no_data_for(3.5))
        self.assertEqual(c.command("b", "NOOP"), ["b OK NOOP completed"])

    def test_idle_timeout(self):
        srv = self.server(users={"alice": "alice-pw", "bob": "bob-pw"},
                          config={"idle_timeout_s": 2})
        # Both owners: one of the two connections may be handed off, the timer moves with it.
        a = srv.login("alice", "alice-pw")
        b = srv.login("bob", "bob-pw")
        pre = srv.connect()  # not logged in: under the pre-auth timer (60 s), not the idle one
        for c in (a, b, pre):
            self.addCleanup(c.close)
        self.assertEqual(a.lines_to_eof(), [IDLE_BYE])
        self.assertEqual(b.lines_to_eof(), [IDLE_BYE])
        self.assertEqual(pre.command("n", "NOOP"), ["n OK NOOP completed"])
        self.assertEqual(len(srv.wait_log_count(r"level=info event=timeout core=[01] conn=\d+ "
                                                r"kind=idle$", 2)), 2)

    def test_idle_timer_reset_by_activity(self):
        srv = self.server(users={"alice": "alice-pw", "bob": "bob-pw"},
                          args=["--idle-timeout-s", "2"])
        conns = [srv.login("alice", "alice-pw"), srv.login("bob", "bob-pw")]
        for c in conns:
            self.addCleanup(c.close)
        # A NOOP every 0.5 s for 3 s (longer than the timeout) keeps both alive.
        for k in range(6):
            time.sleep(0.5)
            for c in conns:
                self.assertEqual(c.command("n%d" % k, "NOOP"), ["n%d OK NOOP completed" % k])
        for c in conns:
            self.assertEqual(c.command("l", 'LIST "" INBOX'), [LIST_INBOX, "l OK LIST completed"])
        # Then silence: the idle timeout ends them.
        for c in conns:
            self.assertEqual(c.lines_to_eof(), [IDLE_BYE])


# ---- Admin CLI ------------------------------------------------------------------------------

class TestAdminCli(ServerTestCase, TempDirMixin):
    def add(self, d, name, password="pw-" + "x" * 8):
        return run_ringmail("user", "add", name, "--data-dir", d, "--iterations", "4096",
                            stdin_text=password + "\n")

    def test_add_list_del(self):
        d = os.path.join(self.tempdir(), "data")
        for name in ("carol", "alice", "bob"):
            r = self.add(d, name)
            self.assertEqual((r.returncode, r.stdout), (0, "added %s\n" % name), r)
        r = run_ringmail("user", "list", "--data-dir", d)
        self.assertEqual((r.returncode, r.stdout), (0, "alice\nbob\ncarol\n"), r)
        r = run_ringmail("user", "del", "bob", "--data-dir", d)
        self.assertEqual((r.returncode, r.stdout), (0, "deleted bob\n"), r)
        r = run_ringmail("user", "list", "--data-dir", d)
        self.assertEqual((r.returncode, r.stdout), (0, "alice\ncarol\n"), r)

    def test_list_empty(self):
        d = os.path.join(self.tempdir(), "data")
        r = run_ringmail("user", "list", "--data-dir", d)
        self.assertEqual(r.stdout, "", r)

    def test_add_existing_user_exits_3(self):
        d = os.path.join(self.tempdir(), "data")
        self.assertEqual(self.add(d, "alice").returncode, 0)
        r = self.add(d, "alice", "another-password-9")
        self.assertEqual(r.returncode, 3, r)
        self.assertEqual(r.stderr.strip(), "ringmail: user alice already exists")
        self.assertEqual(r.stdout, "")

    def test_invalid_names_exit_2(self):
        d = os.path.join(self.tempdir(), "data")
        for name in ("../x", "Alice", ".hidden", "-x", "a/b", "x" * 65, "sp ace"):
            for cmd in ("add", "del"):
                r = run_ringmail("user", cmd, name, "--data-dir", d, stdin_text="pw\n")
                self.assertEqual(r.returncode, 2, (cmd, name, r))
                self.assertTrue(r.stderr.startswith("ringmail: invalid user name"), (cmd, name, r))
        r = run_ringmail("user", "list", "--data-dir", d)
        self.assertEqual(r.stdout, "")
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(d), "x")))

    def test_empty_password_refused(self):
        d = os.path.join(self.tempdir(), "data")
        r = run_ringmail("user", "add", "alice", "--data-dir", d, stdin_text="\n")
        self.assertEqual(r.returncode, 2, r)
        r = run_ringmail("user", "add", "alice", "--data-dir", d, stdin_text="")
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(run_ringmail("user", "list", "--data-dir", d).stdout, "")

    def test_del_unknown_user_fails(self):
        d = os.path.join(self.tempdir(), "data")
        self.assertEqual(self.add(d, "alice").returncode, 0)
        r = run_ringmail("user", "del", "nobody", "--data-dir", d)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn("nobody", r.stderr)

    def test_deleted_user_cannot_log_in(self):
        srv = self.server(users={"alice": "alice-pw", "bob": "bob-pw"},
                          args=["--auth-cache-ttl-s", "0"])
        c = srv.login("alice", "alice-pw")
        c.close()
        r = run_ringmail("user", "del", "alice", "--data-dir", srv.data_dir)
        self.assertEqual((r.returncode, r.stdout), (0, "deleted alice\n"), r)
        for _ in range(4):  # whichever core accepts
            c = srv.connect()
            self.assertEqual(c.command("a", "LOGIN alice alice-pw"), ["a " + AUTH_FAILED])
            c.close()
        # Others are unaffected; a user added while the server runs can log in at once.
        srv.login("bob", "bob-pw").close()
        self.assertEqual(self.add(srv.data_dir, "carol", "second-pw-4711").returncode, 0)
        srv.login("carol", "second-pw-4711").close()

    def test_passwd_changes_password(self):
        srv = self.server(users={"alice": "old-pw"}, args=["--auth-cache-ttl-s", "0"])
        srv.login("alice", "old-pw").close()
        r = run_ringmail("user", "passwd", "alice", "--data-dir", srv.data_dir, "--iterations",
                         "4096", stdin_text="new-password-42\n")
        self.assertEqual((r.returncode, r.stdout), (0, "password changed for alice\n"), r)
        for _ in range(4):
            c = srv.connect()
            self.assertEqual(c.command("a", "LOGIN alice old-pw"), ["a " + AUTH_FAILED])
            self.assertEqual(c.command("b", "LOGIN alice new-password-42"), ["b " + LOGIN_OK])
            c.close()


if __name__ == "__main__":
    unittest.main()
