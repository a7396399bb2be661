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


if __name__ == "__main__":
    unittest.main()
