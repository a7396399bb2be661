"""imapflow (Node's IMAP client, pinned at 2.1.2) against ringmaild.

imapflow_client.mjs runs one scripted session (login, LIST, CREATE, APPEND, SELECT, FETCH, STORE,
SEARCH, COPY, MOVE, delete, STATUS, RENAME, DELETE, a QRESYNC re-open) on connection A while
connection B idles on the same mailbox, and prints what imapflow reported at each step. The tests
below check those results value by value; a failure shows the protocol exchange of both
connections.

imapflow is installed with npm into tests/integration/node_modules (package.json and
package-lock.json pin it) when it is missing. npm or the registry being unreachable fails the
tests: they do not skip.
"""

import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import unittest

from harness import HERE, TIMEOUT_SCALE, Server, crash_lines

IMAPFLOW_VERSION = "2.1.2"
NODE_MAJOR_MIN = 20  # imapflow's "engines"
NPM_TIMEOUT = 45.0 * TIMEOUT_SCALE
SCRIPT_TIMEOUT = 50.0 * TIMEOUT_SCALE  # the script bounds itself at 40 s
USER, PASSWORD = "flow", "flow-pw-1"

CRLF = "\r\n"

# What the script appends to the new mailbox "Projects", in order (UIDs 1, 2, 3).
MESSAGES = [
    {"flags": [], "date": "2024-01-01T10:00:00.000Z", "text": CRLF.join([
        "From: Alice Example <alice@example.org>",
        "To: Bob <bob@example.org>",
        "Subject: Quarterly report",
        "Date: Mon, 01 Jan 2024 10:00:00 +0000",
        "Message-ID: <report-1@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "The numbers are in.",
        ""])},
    {"flags": ["\\Seen"], "date": "2024-01-02T11:30:00.000Z", "text": CRLF.join([
        "From: Carol <carol@example.net>",
        "To: Alice Example <alice@example.org>",
        "Cc: Dave <dave@example.net>",
        "Subject: Slides attached",
        "Date: Tue, 02 Jan 2024 11:30:00 +0000",
        "Message-ID: <slides-2@example.net>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"',
        "",
        "--b1",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "See the attachment.",
        "--b1",
        'Content-Type: application/octet-stream; name="deck.bin"',
        'Content-Disposition: attachment; filename="deck.bin"',
        "Content-Transfer-Encoding: base64",
        "",
        "AAECAwQFBgc=",
        "--b1--",
        ""])},
    {"flags": ["\\Draft", "$Label1"], "date": "2024-01-03T08:15:00.000Z", "text": CRLF.join([
        "From: =?UTF-8?Q?Ren=C3=A9e?= <renee@example.com>",
        "To: Alice Example <alice@example.org>",
        "Subject: =?UTF-8?Q?Caf=C3=A9_menu?=",
        "Date: Wed, 03 Jan 2024 08:15:00 +0000",
        "Message-ID: <menu-3@example.com>",
        "In-Reply-To: <report-1@example.org>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Croissants and caf\u00e9 au lait.",
        ""])},
]
TEXTS = [m["text"] for m in MESSAGES]
SIZES = [len(t.encode("utf-8")) for t in TEXTS]

SYSTEM_FLAGS = ["\\Answered", "\\Deleted", "\\Draft", "\\Flagged", "\\Seen"]


def ensure_imapflow():
    """Installs the pinned imapflow next to this file unless it is there. Returns None, or why
    the script cannot run."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return "node and npm are needed (tools/install-deps.sh installs them)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             timeout=NPM_TIMEOUT).stdout.strip()
    m = re.match(r"v(\d+)\.", version)
    if not m or int(m.group(1)) < NODE_MAJOR_MIN:
        return "imapflow %s needs Node.js >= %d; node --version says %r" % (
            IMAPFLOW_VERSION, NODE_MAJOR_MIN, version)
    try:
        with open(os.path.join(HERE, "node_modules", "imapflow", "package.json")) as f:
            if json.load(f).get("version") == IMAPFLOW_VERSION:
                return None
    except (OSError, ValueError):
        pass
    # npm ci installs exactly what package-lock.json pins, into a fresh node_modules.
    argv = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--fetch-retries=1",
            "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=5000"]
    try:
        p = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, timeout=NPM_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else e.stderr
        return "`%s` did not finish in %.0f s (is the npm registry reachable?)\n%s" % (
            "npm " + " ".join(argv[1:]), NPM_TIMEOUT, err or "")
    if p.returncode != 0:
        return "`%s` failed with exit code %d (is the npm registry reachable?)\n%s%s" % (
            "npm " + " ".join(argv[1:]), p.returncode, p.stdout, p.stderr)
    return None


class _WithExchange(AssertionError):
    """An assertion failure that already carries the protocol exchange."""


class TestImapflow(unittest.TestCase):
    """One server and one run of the script for the class; each test checks a part of it."""

    maxDiff = None
    install_error = None
    results = {}
    transcript = ""

    @classmethod
    def setUpClass(cls):
        cls.install_error = ensure_imapflow()
        if cls.install_error:
            return
        cls.srv = Server(users={USER: PASSWORD})
        argv = ["node", "imapflow_client.mjs", str(cls.srv.port), USER, PASSWORD]
        try:
            p = subprocess.run(argv, input=json.dumps(MESSAGES), cwd=HERE, capture_output=True,
                               text=True, timeout=SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else e.stderr
            cls.transcript, cls.returncode = err or "", None
            cls.results = {"timed_out": "node ran past %.0f s" % SCRIPT_TIMEOUT}
            return
        except BaseException:
            cls.srv.close()
            raise
        cls.transcript, cls.returncode = p.stderr, p.returncode
        try:
            cls.results = json.loads(p.stdout)
        except ValueError:
            cls.results = {"unparsable_output": p.stdout}

    @classmethod
    def tearDownClass(cls):
        if cls.install_error:
            return
        try:
            rc = cls.srv.stop()
            lines = cls.srv.log_lines()
            if rc != 0 or crash_lines(lines):
                raise AssertionError("ringmaild exited %r; log tail:\n%s"
                                     % (rc, "\n".join(lines[-40:])))
        finally:
            cls.srv.close()

    def setUp(self):
        if self.install_error:
            self.fail("imapflow %s is not installed: %s" % (IMAPFLOW_VERSION, self.install_error))

    @contextlib.contextmanager
    def exchange_on_failure(self):
        """Re-raises an assertion failure with the protocol exchange of the run appended."""
        try:
            yield
        except _WithExchange:
            raise
        except AssertionError as e:
            raise _WithExchange("%s\n---- protocol exchange (A works, B idles) ----\n%s"
                                % (e, self.transcript)) from None

    def step(self, name):
        """A copy of the result of one step of the script (failing if the step threw)."""
        with self.exchange_on_failure():
            for broken in ("fatal", "timed_out", "unparsable_output"):
                self.assertNotIn(broken, self.results, self.results.get(broken))
            self.assertIn(name, self.results, "the script did not reach step %r" % name)
            r = self.results[name]
            if isinstance(r, dict):
                self.assertNotIn("error", r, "step %r threw" % name)
            return copy.deepcopy(r)

    def check(self, name, expected):
        with self.exchange_on_failure():
            self.assertEqual(self.step(name), expected, "step %r" % name)

    # ---- connecting ----

    def test_script_ran_to_the_end(self):
        with self.exchange_on_failure():
            self.assertEqual(self.returncode, 0, json.dumps(self.results, indent=1)[:4000])
            self.assertEqual(self.step("logout"), {"a": False, "b": False})

    def test_login_enables_condstore_qresync_utf8_and_rev2(self):
        r = self.step("connect")
        with self.exchange_on_failure():
            self.assertEqual(r["authenticated"], True)  # imapflow's flag, not the user name
            self.assertEqual(r["secureConnection"], False)
            self.assertEqual(r["enabled"], ["CONDSTORE", "IMAP4REV2", "QRESYNC", "UTF8=ACCEPT"])
            for cap in ("IDLE", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "ESEARCH",
                        "SPECIAL-USE", "NAMESPACE", "ID"):
                self.assertIn(cap, r["capabilities"])
            self.assertEqual(r["serverInfo"]["name"], "ringmail")
            self.assertEqual(r["namespace"], {"prefix": "", "delimiter": "/"})

    # ---- mailboxes ----

    def test_list_reports_special_use_of_the_default_mailboxes(self):
        def entry(path, flags, use):
            return {"path": path, "delimiter": "/", "flags": flags, "specialUse": use}
        self.check("list", [
            entry("Archive", ["\\Archive", "\\HasNoChildren"], "\\Archive"),
            entry("Drafts", ["\\Drafts", "\\HasNoChildren"], "\\Drafts"),
            entry("INBOX", ["\\HasNoChildren"], "\\Inbox"),
            entry("Junk", ["\\HasNoChildren", "\\Junk"], "\\Junk"),
            entry("Sent", ["\\HasNoChildren", "\\Sent"], "\\Sent"),
            entry("Trash", ["\\HasNoChildren", "\\Trash"], "\\Trash"),
        ])

    def test_create_makes_a_mailbox_and_a_child(self):
        self.check("create", [{"path": "Projects", "created": True},
                              {"path": "Projects/2024", "created": True}])
        self.check("list_after_create", [
            {"path": "Projects", "delimiter": "/", "flags": ["\\HasChildren"], "specialUse": None},
            {"path": "Projects/2024", "delimiter": "/", "flags": ["\\HasNoChildren"],
             "specialUse": None},
        ])

    def test_utf8_mailbox_name_round_trips(self):
        name = "R\u00e9unions \u4f1a\u8b70"
        self.check("utf8_mailbox", {
            "created": {"path": name, "created": True},
            "appended": {"destination": name, "uid": 1},
            "listed": [{"path": name, "delimiter": "/", "flags": ["\\HasNoChildren"],
                        "specialUse": None}],
            "messages": 1,
            "deleted": {"path": name}})

    def test_rename_and_delete_a_mailbox(self):
        defaults = ["Archive", "Drafts", "INBOX", "Junk"]
        self.check("rename_and_delete_mailboxes", {
            "renamed": {"path": "Projects/2024", "newPath": "Projects/2025"},
            "listRenamed": defaults + ["Projects", "Projects/2025", "Sent", "Trash"],
            "deleted": {"path": "Projects/2025"},
            "list": defaults + ["Projects", "Sent", "Trash"],
        })

    # ---- messages ----

    def test_append_returns_the_uids_of_the_new_messages(self):
        uidvalidity = self.step("open")["uidValidity"]
        for i in range(3):
            self.check("append_%d" % (i + 1), {"destination": "Projects",
                                               "uidValidity": uidvalidity, "uid": i + 1})

    def test_select_reports_the_mailbox_state(self):
        r = self.step("open")
        with self.exchange_on_failure():
            self.assertRegex(r["uidValidity"], r"^[1-9][0-9]*$")
            modseq = int(r["highestModseq"])
            self.assertEqual(r, {
                "path": "Projects", "exists": 3, "uidNext": 4, "uidValidity": r["uidValidity"],
                "highestModseq": str(modseq), "noModseq": False, "readOnly": False,
                "flags": ["$Label1"] + SYSTEM_FLAGS,
                "permanentFlags": ["$Label1", "\\*"] + SYSTEM_FLAGS,
                "qresync": False})
            # Each append was a change: the mailbox's HIGHESTMODSEQ is that of the last one.
            self.assertEqual([m["modseq"] for m in self.step("fetch_all")][-1], str(modseq))

    def test_empty_mailbox_has_a_positive_highestmodseq(self):
        # RFC 7162 section 7: resp-text-code "HIGHESTMODSEQ" SP mod-sequence-value, which is
        # 1*DIGIT with 1 <= n. STATUS may say 0 only for a mailbox without persistent modseqs.
        r = self.step("idle_start")["mailbox"]
        inbox = self.step("status")["INBOX"]
        with self.exchange_on_failure():
            self.assertEqual((r["path"], r["exists"], r["uidNext"], r["noModseq"]),
                             ("Projects", 0, 1, False))
            self.assertGreaterEqual(int(r["highestModseq"]), 1, "SELECT of an empty mailbox")
            self.assertEqual(inbox["messages"], 0)
            self.assertGreaterEqual(int(inbox["highestModseq"]), 1, "STATUS of an empty mailbox")

    def test_fetch_envelope_flags_size_date_and_modseq(self):
        msgs = self.step("fetch_all")
        with self.exchange_on_failure():
            modseqs = [int(m.pop("modseq")) for m in msgs]
            self.assertEqual(modseqs, sorted(set(modseqs)), "one rising MODSEQ per append")
            for m in msgs:
                m.pop("bodyStructure")

            def addr(name, address):
                return {"name": name, "address": address}
            alice = addr("Alice Example", "alice@example.org")
            self.assertEqual(msgs, [
                {"seq": 1, "uid": 1, "flags": [], "size": SIZES[0],
                 "internalDate": "2024-01-01T10:00:00.000Z",
                 "envelope": {"date": "2024-01-01T10:00:00.000Z", "subject": "Quarterly report",
                              "messageId": "<report-1@example.org>", "inReplyTo": None,
                              "from": [alice], "to": [addr("Bob", "bob@example.org")],
                              "cc": []}},
                {"seq": 2, "uid": 2, "flags": ["\\Seen"], "size": SIZES[1],
                 "internalDate": "2024-01-02T11:30:00.000Z",
                 "envelope": {"date": "2024-01-02T11:30:00.000Z", "subject": "Slides attached",
                              "messageId": "<slides-2@example.net>", "inReplyTo": None,
                              "from": [addr("Carol", "carol@example.net")], "to": [alice],
                              "cc": [addr("Dave", "dave@example.net")]}},
                {"seq": 3, "uid": 3, "flags": ["$Label1", "\\Draft"], "size": SIZES[2],
                 "internalDate": "2024-01-03T08:15:00.000Z",
                 "envelope": {"date": "2024-01-03T08:15:00.000Z", "subject": "Caf\u00e9 menu",
                              "messageId": "<menu-3@example.com>",
                              "inReplyTo": "<report-1@example.org>",
                              "from": [addr("Ren\u00e9e", "renee@example.com")], "to": [alice],
                              "cc": []}},
            ])

    def test_fetch_bodystructure(self):
        structures = [m["bodyStructure"] for m in self.step("fetch_all")]
        with self.exchange_on_failure():
            self.assertEqual(structures, [
                {"type": "text/plain", "part": None, "parameters": {"charset": "utf-8"},
                 "encoding": "7bit", "size": len("The numbers are in.\r\n")},
                {"type": "multipart/mixed", "part": None, "parameters": {"boundary": "b1"},
                 "childNodes": [
                     {"type": "text/plain", "part": "1", "parameters": {"charset": "us-ascii"},
                      "encoding": "7bit", "size": len("See the attachment.")},
                     {"type": "application/octet-stream", "part": "2",
                      "parameters": {"name": "deck.bin"}, "encoding": "base64",
                      "size": len("AAECAwQFBgc="), "disposition": "attachment",
                      "dispositionParameters": {"filename": "deck.bin"}}]},
                {"type": "text/plain", "part": None, "parameters": {"charset": "utf-8"},
                 "encoding": "8bit",
                 "size": len("Croissants and caf\u00e9 au lait.\r\n".encode("utf-8"))},
            ])

    def test_fetch_source_headers_and_parts_are_byte_exact(self):
        sources = self.step("fetch_sources")
        with self.exchange_on_failure():
            self.assertEqual([(m["uid"], m["source"]) for m in sources],
                             [(1, TEXTS[0]), (2, TEXTS[1]), (3, TEXTS[2])])
        self.check("fetch_headers", {
            "uid": 3,
            "headers": "Subject: =?UTF-8?Q?Caf=C3=A9_menu?=\r\nMessage-ID: <menu-3@example.com>"
                       "\r\n\r\n"})
        self.check("fetch_binary", {"uid": 2, "bodyParts": [["2", "0001020304050607"]]})
        self.check("fetch_body_part", {"uid": 2, "bodyParts": [["1", "See the attachment."],
                                                               ["2", "AAECAwQFBgc="]]})

    def test_store_adds_and_removes_flags_and_bumps_modseq(self):
        self.check("flags_add", True)
        self.check("flags_remove", True)
        msgs = self.step("fetch_flags")
        highest = int(self.step("open")["highestModseq"])
        with self.exchange_on_failure():
            self.assertEqual([(m["uid"], m["flags"]) for m in msgs],
                             [(1, ["$Important", "\\Flagged"]), (2, ["\\Seen"]), (3, ["\\Draft"])])
            m1, m2, m3 = (int(m["modseq"]) for m in msgs)
            self.assertLess(highest, m1)
            self.assertLess(m1, m3)
            self.assertLessEqual(m2, highest, "message 2 did not change")
            # CHANGEDSINCE (CONDSTORE) returns exactly the two messages changed after the SELECT.
            changed = self.step("fetch_changed_since")
            self.assertEqual([(m["uid"], m["flags"], m["modseq"]) for m in changed],
                             [(1, ["$Important", "\\Flagged"], str(m1)), (3, ["\\Draft"], str(m3))])

    def test_search(self):
        self.check("search", {
            "unseen": [1, 3], "flagged": [1], "draft": [3], "subject": [1], "from": [2],
            "body": [2], "keyword": [1], "uidRange": [2, 3], "since": [2, 3],
            "seqAll": [1, 2, 3], "or": [1, 2], "none": []})

    def test_copy_and_move_report_copyuid(self):
        status = self.step("status")
        copy = self.step("copy")
        move = self.step("move")
        with self.exchange_on_failure():
            self.assertRegex(copy.get("uidValidity", ""), r"^[1-9][0-9]*$")
            self.assertRegex(move.get("uidValidity", ""), r"^[1-9][0-9]*$")
            self.assertNotEqual(copy["uidValidity"], move["uidValidity"])
            self.assertEqual(copy, {"path": "Projects", "destination": "Archive",
                                    "uidValidity": copy["uidValidity"], "uidMap": [[1, 1]]})
            self.assertEqual(move, {"path": "Projects", "destination": "Trash",
                                    "uidValidity": move["uidValidity"], "uidMap": [[2, 1]]})
            self.assertEqual(status["Archive"]["uidValidity"], copy["uidValidity"])
            self.assertEqual(status["Trash"]["uidValidity"], move["uidValidity"])
            for box in status.values():
                box.pop("uidValidity")
                box.pop("highestModseq")
            self.assertEqual(status, {
                "Projects": {"messages": 1, "uidNext": 4, "unseen": 1, "size": SIZES[0]},
                "Archive": {"messages": 1, "uidNext": 2, "unseen": 1, "size": SIZES[0]},
                "Trash": {"messages": 1, "uidNext": 2, "unseen": 0, "size": SIZES[1]},
                "INBOX": {"messages": 0, "uidNext": 1, "unseen": 0, "size": 0}})

    def test_copies_keep_content_and_flags(self):
        self.check("fetch_copies", {
            "Archive": [{"uid": 1, "flags": ["$Important", "\\Flagged"],
                         "messageId": "<report-1@example.org>", "source": TEXTS[0]}],
            "Trash": [{"uid": 1, "flags": ["\\Seen"], "messageId": "<slides-2@example.net>",
                       "source": TEXTS[1]}]})

    def test_delete_expunges_the_message(self):
        self.check("delete_message", True)
        msgs = self.step("fetch_after")
        with self.exchange_on_failure():
            self.assertEqual([(m["seq"], m["uid"], m["flags"]) for m in msgs],
                             [(1, 1, ["$Important", "\\Flagged"])])

    # ---- the second connection ----

    def test_idle_client_hears_exists_flags_and_vanished(self):
        r = self.step("idle_start")
        with self.exchange_on_failure():
            self.assertEqual(r["enabled"], ["CONDSTORE", "IMAP4REV2", "QRESYNC", "UTF8=ACCEPT"])
            self.assertEqual(r["idling"], True)
        events = self.step("idle_events")
        modseqs = {m["uid"]: m["modseq"] for m in self.step("fetch_flags")}
        with self.exchange_on_failure():
            self.assertEqual(len(events), 8, events)
            deleted_modseq = events[6].pop("modseq", "0")  # the STORE +FLAGS \Deleted
            self.assertGreater(int(deleted_modseq), int(modseqs[3]))
            self.assertEqual(events, [
                {"event": "exists", "path": "Projects", "count": 1, "prevCount": 0},
                {"event": "exists", "path": "Projects", "count": 2, "prevCount": 1},
                {"event": "exists", "path": "Projects", "count": 3, "prevCount": 2},
                # With QRESYNC enabled an unsolicited FETCH carries UID and MODSEQ (RFC 7162 3.2.4).
                {"event": "flags", "path": "Projects", "seq": 1, "uid": 1, "modseq": modseqs[1],
                 "flags": ["$Important", "\\Flagged"], "flagColor": "red"},
                {"event": "flags", "path": "Projects", "seq": 3, "uid": 3, "modseq": modseqs[3],
                 "flags": ["\\Draft"]},
                # ...and expunges come as VANISHED.
                {"event": "expunge", "path": "Projects", "uid": 2, "vanished": True,
                 "earlier": False},
                {"event": "flags", "path": "Projects", "seq": 2, "uid": 3,
                 "flags": ["\\Deleted", "\\Draft"]},
                {"event": "expunge", "path": "Projects", "uid": 3, "vanished": True,
                 "earlier": False},
            ])

    def test_qresync_select_reports_vanished_earlier_and_changed_flags(self):
        r = self.step("qresync_open")
        opened = self.step("open")
        m1 = [m["modseq"] for m in self.step("fetch_flags") if m["uid"] == 1][0]
        with self.exchange_on_failure():
            mb = r["mailbox"]
            self.assertEqual((mb["qresync"], mb["exists"], mb["uidNext"], mb["uidValidity"]),
                             (True, 1, 4, opened["uidValidity"]))
            self.assertGreater(int(mb["highestModseq"]), int(m1))
            self.assertEqual(r["events"], [
                {"event": "expunge", "path": "Projects", "uid": 2, "vanished": True,
                 "earlier": True},
                {"event": "expunge", "path": "Projects", "uid": 3, "vanished": True,
                 "earlier": True},
                {"event": "flags", "path": "Projects", "seq": 1, "uid": 1, "modseq": m1,
                 "flags": ["$Important", "\\Flagged"], "flagColor": "red"},
            ])


if __name__ == "__main__":
    unittest.main()
