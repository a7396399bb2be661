"""App passwords and the password policy, through the admin CLI and a real ringmaild: an app
password is made, shown once, logs in over IMAP (the audit log names it), is listed and revoked
(a running server forgets it at once, cached or not); an account set to app passwords only
refuses its main password; `user add` and `user passwd` refuse weak passwords."""

import os
import re
import time
import unittest

from harness import AUTH_CAPS, LOGIN_OK, TIMEOUT, ServerTestCase, parse_kv, run_ringmail

AUTH_FAILED = "NO [AUTHENTICATIONFAILED] Authentication failed"


def audit(srv, event):
    path = os.path.join(srv.data_dir, "audit.log")
    with open(path) as f:
        return [parse_kv(x) for x in f.read().splitlines() if "event=%s " % event in x]


class TestAppPasswords(ServerTestCase):
    def setUp(self):
        # A long credentials cache: revocation must not wait for it to expire.
        self.srv = self.server(users={"ann": "main-password-1"},
                               args=["--auth-cache-ttl-s", "3600"])

    def cli(self, *args):
        return run_ringmail("user", *args, "--data-dir", self.srv.data_dir)

    def login(self, password):
        c = self.srv.connect()
        try:
            return c.command("a", "LOGIN ann %s" % password)[-1]
        finally:
            c.close()

    def test_make_use_list_revoke(self):
        r = self.cli("app-password", "add", "ann", "phone")
        self.assertEqual(r.returncode, 0, r)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "app password phone for ann (shown once; spaces and dashes are "
                                   "part of it):")
        password = lines[1]
        self.assertRegex(password, r"^([a-z2-9]{4}-){5}[a-z2-9]{4}$")
        self.assertEqual(self.login(password), "a " + LOGIN_OK)
        self.assertEqual(self.login(password), "a " + LOGIN_OK)  # now from the cache
        deadline = time.monotonic() + TIMEOUT
        while len(audit(self.srv, "auth_ok")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual([a.get("app_password") for a in audit(self.srv, "auth_ok")],
                         ["phone", "phone"])
        r = self.cli("app-password", "list", "ann")
        self.assertEqual(r.returncode, 0, r)
        self.assertRegex(r.stdout, r"^phone\tcreated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$")
        self.assertEqual(self.cli("app-password", "add", "ann", "phone").returncode, 3)
        r = self.cli("app-password", "revoke", "ann", "phone")
        self.assertEqual((r.returncode, r.stdout), (0, "revoked app password phone of ann\n"), r)
        self.srv.wait_log(r"event=credentials_changed user=ann")
        self.assertEqual(self.login(password), "a " + AUTH_FAILED)  # cached before: gone now
        self.assertEqual(self.login("main-password-1"), "a " + LOGIN_OK)
        self.assertEqual(self.cli("app-password", "revoke", "ann", "phone").returncode, 3)
        actions = [a["action"] for a in audit(self.srv, "admin")]
        self.assertEqual(actions, ["user_add", "app_password_add", "app_password_revoke"])

    def test_app_only_refuses_the_main_password(self):
        password = self.cli("app-password", "add", "ann", "laptop").stdout.splitlines()[1]
        self.assertEqual(self.login("main-password-1"), "a " + LOGIN_OK)  # cached
        r = self.cli("app-only", "ann", "on")
        self.assertEqual((r.returncode, r.stdout), (0, "ann: IMAP accepts app passwords only\n"))
        self.srv.wait_log(r"event=credentials_changed user=ann")
        self.assertEqual(self.login("main-password-1"), "a " + AUTH_FAILED)
        self.assertEqual(self.login(password), "a " + LOGIN_OK)
        self.assertEqual(self.cli("app-only", "ann", "off").returncode, 0)
        self.srv.wait_log_count(r"event=credentials_changed user=ann", 2)
        self.assertEqual(self.login("main-password-1"), "a " + LOGIN_OK)

    def test_passwd_drops_cached_logins_at_once(self):
        self.assertEqual(self.login("main-password-1"), "a " + LOGIN_OK)
        r = run_ringmail("user", "passwd", "ann", "--data-dir", self.srv.data_dir,
                         "--iterations", "4096", stdin_text="main-password-2\n")
        self.assertEqual(r.returncode, 0, r)
        self.srv.wait_log(r"event=credentials_changed user=ann")
        self.assertEqual(self.login("main-password-1"), "a " + AUTH_FAILED)
        self.assertEqual(self.login("main-password-2"), "a " + LOGIN_OK)


class TestPasswordPolicy(ServerTestCase):
    def test_weak_passwords_refused(self):
        d = os.path.join(self.server(users={}).data_dir)
        cases = [("short", "ringmail: refused: the password is too short: use at least 10 "
                           "characters"),
                 ("1234567890", "ringmail: refused: the password is one of the most common "
                                "ones: guessers try it first"),
                 ("dave-is-great", "ringmail: refused: the password contains the user name")]
        for pw, message in cases:
            r = run_ringmail("user", "add", "dave", "--data-dir", d, stdin_text=pw + "\n")
            self.assertEqual((r.returncode, r.stderr.strip()), (2, message), pw)
        r = run_ringmail("user", "add", "dave", "--data-dir", d, "--iterations", "4096",
                         stdin_text="a-good-long-password\n")
        self.assertEqual(r.returncode, 0, r)
        r = run_ringmail("user", "passwd", "dave", "--data-dir", d, stdin_text="qwertyuiop\n")
        self.assertEqual(r.returncode, 2, r)
        r = run_ringmail("user", "passwd", "dave", "--data-dir", d, "--iterations", "4096",
                         "--allow-weak-password", stdin_text="short\n")
        self.assertEqual(r.returncode, 0, r)


if __name__ == "__main__":
    unittest.main()
