"""Started as root with `user` set, ringmaild binds its ports, reads its key, then runs as that
account: every id of the process is the account's, mail it writes belongs to it, and it cannot
become root again. A data directory that belongs to someone else stops the start with a line
that says what to do. (Needs root and useradd; the test account is made if missing.)"""

import os
import pwd
import shutil
import subprocess
import unittest

from harness import HOST, LOGIN_OK, Server, ServerTestCase, crash_lines, run_ringmaild

ACCOUNT = "ringmail-test"
USERS = {"alice": "alice-secret"}


def account_uid():
    try:
        return pwd.getpwnam(ACCOUNT).pw_uid
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        ACCOUNT], check=True, capture_output=True)
        return pwd.getpwnam(ACCOUNT).pw_uid


def chown_tree(top, uid, gid):
    for d, dirs, files in os.walk(top):
        os.chown(d, uid, gid)
        for f in files:
            os.chown(os.path.join(d, f), uid, gid)


@unittest.skipIf(os.geteuid() != 0, "needs root")
class TestDropRoot(ServerTestCase):
    def test_runs_as_the_account_after_binding(self):
        uid = account_uid()
        gid = pwd.getpwnam(ACCOUNT).pw_gid
        srv = Server(users=USERS, start=False)
        self.addCleanup(self._finish_server, srv)
        os.chmod(srv._tmp, 0o755)  # the account must reach the data directory inside it
        chown_tree(srv.data_dir, uid, gid)
        srv.extra_args += ["--user", ACCOUNT]
        srv.start()
        srv.wait_log(r"event=privileges_dropped user=%s uid=%d" % (ACCOUNT, uid))
        with open("/proc/%d/status" % srv.proc.pid) as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        self.assertEqual(status["Uid"].split(), [str(uid)] * 4)
        self.assertEqual(status["Gid"].split(), [str(gid)] * 4)
        self.assertEqual(status["Groups"].split(), [])
        c = srv.login("alice", USERS["alice"])
        msg = b"Subject: x\r\n\r\nbody\r\n"
        c.send(b"a APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
        self.assertTrue(c.read_tagged("a")[-1].startswith("a OK [APPENDUID "))
        c.close()
        owners = {os.stat(os.path.join(d, f)).st_uid
                  for d, _, files in os.walk(srv.data_dir) for f in files}
        self.assertEqual(owners, {uid})
        # The TLS port works too (the key was read as root, then given to the account).
        self.assertIsNotNone(srv.tls_port)

    def test_foreign_data_directory_refused(self):
        account_uid()
        srv = Server(users=USERS, start=False)
        self.addCleanup(srv.close)
        r = run_ringmaild("--data-dir", srv.data_dir, "--imap-listen", HOST + ":0",
                          "--imaps-listen", HOST + ":0", "--user", ACCOUNT)
        self.assertEqual(r.returncode, 1)
        uid = pwd.getpwnam(ACCOUNT).pw_uid
        self.assertEqual(r.stderr.splitlines()[-1],
                         "ringmaild: data_dir %s belongs to uid 0, but ringmaild runs as %s (uid "
                         "%d): chown -R %s %s" % (srv.data_dir, ACCOUNT, uid, ACCOUNT,
                                                  srv.data_dir))
        self.assertEqual(crash_lines(r.stderr.splitlines()), [])


if __name__ == "__main__":
    unittest.main()
