"""curl as an IMAP client: it logs in, LISTs the mailboxes and prints the untagged responses."""

import os
import shutil
import subprocess
import unittest

from harness import AUTH_CAPS, LIST_INBOX, TIMEOUT, ServerTestCase

CURL = shutil.which("curl")
PASSWORD = "demo-pw-1"


def curl(port, user, password, *extra):
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    argv = [CURL, "-s", "--noproxy", "*", "--max-time", str(int(TIMEOUT)),
            "imap://127.0.0.1:%d/" % port, "-u", "%s:%s" % (user, password)] + list(extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 10, env=env)


@unittest.skipIf(CURL is None, "curl is not installed")
class TestCurl(ServerTestCase):
    def setUp(self):
        self.srv = self.server(users={"demo": PASSWORD})

    def test_list_inbox(self):
        p = curl(self.srv.port, "demo", PASSWORD)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(LIST_INBOX, p.stdout.splitlines())
        self.srv.wait_log(r"event=login user=demo peer=127\.0\.0\.1 mech=PLAIN ")

    def test_list_inbox_user_name_case_folded(self):
        p = curl(self.srv.port, "DEMO", PASSWORD)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(LIST_INBOX, p.stdout.splitlines())

    def test_repeated_logins(self):
        # Enough runs that both cores accept some, and both the hash and the cached path serve.
        for _ in range(6):
            p = curl(self.srv.port, "demo", PASSWORD)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(LIST_INBOX, p.stdout.splitlines())

    def test_custom_command_capability(self):
        p = curl(self.srv.port, "demo", PASSWORD, "-X", "CAPABILITY")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("* CAPABILITY " + AUTH_CAPS, p.stdout.splitlines())

    def test_wrong_password_is_login_denied(self):
        p = curl(self.srv.port, "demo", "not-the-password")
        self.assertEqual(p.returncode, 67, (p.stdout, p.stderr))  # CURLE_LOGIN_DENIED
        self.assertNotIn(LIST_INBOX, p.stdout)
        self.srv.wait_log(r"event=login_failed user=demo peer=127\.0\.0\.1 mech=PLAIN")

    def test_unknown_user_is_login_denied(self):
        p = curl(self.srv.port, "nobody", PASSWORD)
        self.assertEqual(p.returncode, 67, (p.stdout, p.stderr))


if __name__ == "__main__":
    unittest.main()
