"""`ringmail user import`: bulk provisioning from NAME PASSWORD lines on standard input."""
import imaplib
import shutil
import tempfile
import unittest

from harness import HOST, ServerTestCase, run_ringmail


class UserImportTest(ServerTestCase):
    def test_imported_users_can_log_in_and_bad_lines_are_reported(self):
        data = tempfile.mkdtemp(prefix="ringmail-import-")
        self.addCleanup(shutil.rmtree, data, True)
        r = run_ringmail("user", "import", "--data-dir", data, "--iterations", "4096",
                         stdin_text="ann pw-ann\nBad/Name x\nben pass word with spaces\n\n"
                                    "cy pw-cy\n")
        self.assertEqual(r.returncode, 2, r)
        self.assertEqual(r.stdout, "imported 3 users, 0 failed\n")
        self.assertEqual(r.stderr, "ringmail: line 2: expected NAME PASSWORD\n")
        self.assertEqual(run_ringmail("user", "list", "--data-dir", data).stdout, "ann\nben\ncy\n")
        r = run_ringmail("user", "import", "--data-dir", data, "--iterations", "4096",
                         stdin_text="ann again\n")
        self.assertEqual(r.returncode, 3)
        self.assertEqual(r.stdout, "imported 0 users, 1 failed\n")
        self.assertEqual(r.stderr, "ringmail: ann: user ann already exists\n")
        srv = self.server(data_dir=data)
        m = imaplib.IMAP4(HOST, srv.port)
        self.assertEqual(m.login("ben", "pass word with spaces")[0], "OK")
        m.logout()

    def test_create_mail_makes_every_users_mailboxes_at_import(self):
        data = tempfile.mkdtemp(prefix="ringmail-import-")
        self.addCleanup(shutil.rmtree, data, True)
        r = run_ringmail("user", "import", "--data-dir", data, "--iterations", "4096",
                         "--create-mail", stdin_text="ann pw-ann-1234\nben pw-ben-1234\n")
        self.assertEqual((r.returncode, r.stdout, r.stderr),
                         (0, "imported 2 users, 0 failed\n", ""))
        # The mail is there before anyone logs in, and whole.
        r = run_ringmail("fsck", "--data-dir", data)
        self.assertEqual(r.returncode, 0, r)
        srv = self.server(data_dir=data)
        m = imaplib.IMAP4(HOST, srv.port)
        self.assertEqual(m.login("ann", "pw-ann-1234")[0], "OK")
        typ, data_lines = m.list()
        self.assertEqual(typ, "OK")
        self.assertEqual(sorted(l.decode().rsplit(" ", 1)[-1].strip('"') for l in data_lines),
                         ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"])
        self.assertEqual(m.select("INBOX"), ("OK", [b"0"]))
        m.logout()
        self.assertEqual(srv.events("mail_repaired"), [])


if __name__ == "__main__":
    unittest.main()
