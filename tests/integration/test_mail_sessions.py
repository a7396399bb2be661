"""Two sessions of one user against a real ringmaild (IDLE hearing the other session's
APPEND, STORE, EXPUNGE and MOVE; expunges held back during FETCH, STORE and SEARCH), and CONDSTORE
and QRESYNC (HIGHESTMODSEQ, CHANGEDSINCE, UNCHANGEDSINCE and MODIFIED, SELECT QRESYNC, VANISHED).
Helpers and the one-server-per-class base are in test_mail.py."""

import re
import unittest

from test_mail import (MailCase, command, literal, message, select_response,
                       simulate_expunges)


# ---- 6. Two sessions of one user -------------------------------------------------------------

class TestTwoSessions(MailCase):
    def setUp(self):
        super().setUp()
        self.a = self.login()
        self.v, _ = self.fill(self.a, "INBOX", [(message(i), "") for i in range(1, 4)])
        self.select(self.a)
        self.b = self.login()
        self.select(self.b)

    def idle(self, c, tag="I"):
        c.send(tag + " IDLE\r\n")
        self.assertEqual(c.readline(), "+ idling")

    def test_idle_sees_append_flags_and_expunge_of_the_other_session(self):
        a, b = self.a, self.b
        self.idle(b)
        self.assertEqual(self.append(a, "INBOX", message(4)),
                         ["* 4 EXISTS", "A OK [APPENDUID %d 4] APPEND completed" % self.v])
        self.assertEqual(b.readline(), "* 4 EXISTS")
        self.assertEqual(a.command("a", "STORE 2 +FLAGS (\\Flagged Urgent)"),
                         ["* 2 FETCH (FLAGS (\\Flagged Urgent))", "a OK STORE completed"])
        self.assertEqual(b.readline(), "* 2 FETCH (FLAGS (\\Flagged Urgent))")
        self.assertEqual(a.command("b", "STORE 1,3 +FLAGS.SILENT (\\Deleted)"),
                         ["b OK STORE completed"])
        self.assertEqual(sorted(b.read_lines(2)), ["* 1 FETCH (FLAGS (\\Deleted))",
                                                   "* 3 FETCH (FLAGS (\\Deleted))"])
        lines = a.command("c", "EXPUNGE")
        self.assertEqual(simulate_expunges([1, 2, 3, 4], lines[:-1]), [2, 4])
        # B hears the expunges while still idling, as lines that are consistent for it.
        self.assertEqual(simulate_expunges([1, 2, 3, 4], b.read_lines(2)), [2, 4])
        self.assertTrue(b.no_data_for(0.2))
        b.send("DONE\r\n")
        self.assertEqual(b.read_tagged("I"), ["I OK IDLE terminated"])
        self.assertEqual(b.command("d", "FETCH 1:* (UID FLAGS)"), [
            "* 1 FETCH (UID 2 FLAGS (\\Flagged Urgent))", "* 2 FETCH (UID 4 FLAGS ())",
            "d OK FETCH completed"])
        # A's own NOOP repeats nothing of its own changes.
        self.assertEqual(a.command("e", "NOOP"), ["e OK NOOP completed"])

    def test_expunge_waits_for_a_command_that_may_report_it(self):
        a, b = self.a, self.b
        self.assertEqual(a.command("a", "STORE 2 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        self.assertEqual(a.command("b", "EXPUNGE"), ["* 2 EXPUNGE", "b OK EXPUNGE completed"])
        # RFC 9051 section 7.5.1: no EXPUNGE during FETCH, STORE or SEARCH (not the UID
        # forms); B's sequence numbers stay as they were: message 3 is still number 3.
        # What is gone is left out, and the NO says so (RFC 2180 section 4.1.4, RFC 5530).
        lines = b.command("c", "FETCH 1:3 (UID FLAGS)")
        self.assertNotIn("EXPUNGE", " ".join(lines[:-1]))
        self.assertEqual(lines, ["* 1 FETCH (UID 1 FLAGS ())", "* 3 FETCH (UID 3 FLAGS ())",
                                 "c NO [EXPUNGEISSUED] Some of the requested messages were "
                                 "expunged by another session"])
        self.assertEqual(b.command("d", "STORE 3 +FLAGS (\\Seen)"),
                         ["* 3 FETCH (FLAGS (\\Seen))", "d OK STORE completed"])
        self.assertEqual(b.command("e", "SEARCH ALL")[-1], "e OK SEARCH completed")
        self.assertEqual(b.command("f", "SEARCH SEEN"), ["* SEARCH 3", "f OK SEARCH completed"])
        # NOOP may report it, and from then on the numbers shift.
        self.assertEqual(b.command("g", "NOOP"), ["* 2 EXPUNGE", "g OK NOOP completed"])
        self.assertEqual(b.command("h", "FETCH 1:* (UID FLAGS)"), [
            "* 1 FETCH (UID 1 FLAGS ())", "* 2 FETCH (UID 3 FLAGS (\\Seen))",
            "h OK FETCH completed"])
        self.assertEqual(a.command("i", "NOOP"), ["* 2 FETCH (FLAGS (\\Seen))",
                                                  "i OK NOOP completed"])

    def test_noop_reports_expunges_before_the_new_count(self):
        a, b = self.a, self.b
        self.append(a, "INBOX", message(4))
        self.assertEqual(a.command("a", "STORE 1 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        self.assertEqual(a.command("b", "EXPUNGE"), ["* 1 EXPUNGE", "b OK EXPUNGE completed"])
        self.append(a, "INBOX", message(5))
        # B knew 3 messages: UID 1 went, UIDs 4 and 5 came.
        lines = b.command("c", "NOOP")
        self.assertEqual(lines, ["* 1 EXPUNGE", "* 4 EXISTS", "c OK NOOP completed"])
        self.assertEqual(b.command("d", "FETCH 1:* UID"), [
            "* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)", "* 4 FETCH (UID 5)",
            "d OK FETCH completed"])

    def test_idle_under_qresync_hears_uid_modseq_and_vanished(self):
        a, b = self.a, self.b
        self.assertEqual(b.command("q", "ENABLE QRESYNC"),
                         ["* ENABLED QRESYNC", "q OK ENABLE completed"])
        self.idle(b)
        lines = a.command("a", "STORE 2 +FLAGS (\\Seen)")
        self.assertEqual(lines, ["* 2 FETCH (FLAGS (\\Seen))", "a OK STORE completed"])
        m = re.match(r"\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \((\d+)\)\)$", b.readline())
        self.assertIsNotNone(m)
        self.assertEqual(a.command("b", "STORE 1,3 +FLAGS.SILENT (\\Deleted)"),
                         ["b OK STORE completed"])
        for line, seq in zip(sorted(b.read_lines(2)), (1, 3)):
            self.assertRegex(line, r"^\* %d FETCH \(UID %d FLAGS \(\\Deleted\) MODSEQ \(\d+\)\)$"
                             % (seq, seq))
        self.assertEqual(simulate_expunges([1, 2, 3], a.command("c", "EXPUNGE")[:-1]), [2])
        self.assertEqual(b.readline(), "* VANISHED 1,3")
        b.send("DONE\r\n")
        self.assertEqual(b.read_tagged("I"), ["I OK IDLE terminated"])
        self.assertEqual(b.command("d", "FETCH 1:* UID"), ["* 1 FETCH (UID 2)",
                                                          "d OK FETCH completed"])

    def test_move_is_heard_by_idlers_of_both_mailboxes(self):
        a, b = self.a, self.b
        c = self.login()
        archive = self.status(c, "Archive", "UIDVALIDITY")["UIDVALIDITY"]
        self.select(c, "Archive")
        self.idle(b)
        self.idle(c, "J")
        self.assertEqual(a.command("a", "MOVE 2 Archive"), [
            "* OK [COPYUID %d 2 1] Moved" % archive, "* 2 EXPUNGE", "a OK MOVE completed"])
        self.assertEqual(b.readline(), "* 2 EXPUNGE")
        self.assertEqual(c.readline(), "* 1 EXISTS")
        for conn, tag in ((b, "I"), (c, "J")):
            conn.send("DONE\r\n")
            self.assertEqual(conn.read_tagged(tag), [tag + " OK IDLE terminated"])
        self.assertEqual(command(c, "d", "FETCH 1 (UID BODY.PEEK[TEXT])"),
                         ["* 1 FETCH (UID 1 BODY[TEXT] %s)" % literal("body text 2\r\n"),
                          "d OK FETCH completed"])

    def test_rename_of_inbox_is_an_expunge_of_everything_for_the_other_session(self):
        a, b = self.a, self.b
        self.assertEqual(a.command("u", "UNSELECT"), ["u OK UNSELECT completed"])
        self.assertEqual(a.command("r", "RENAME INBOX Before"), ["r OK RENAME completed"])
        lines = b.command("n", "NOOP")
        self.assertEqual(lines[-1], "n OK NOOP completed")
        self.assertEqual(simulate_expunges([1, 2, 3], lines[:-1]), [])
        self.assertEqual(self.append(a, "INBOX", message(9)),
                         ["A OK [APPENDUID %d 4] APPEND completed" % self.v])
        self.assertEqual(b.command("o", "NOOP"), ["* 1 EXISTS", "o OK NOOP completed"])
        self.assertEqual(b.command("f", "FETCH 1 UID"), ["* 1 FETCH (UID 4)",
                                                        "f OK FETCH completed"])

    def test_delete_of_the_selected_mailbox_by_the_other_session(self):
        a, b = self.a, self.b
        self.assertEqual(a.command("c", "CREATE Doomed"), ["c OK CREATE completed"])
        self.fill(a, "Doomed", [(message(1), "")])
        self.select(b, "Doomed")
        self.assertEqual(a.command("d", "DELETE Doomed"), ["d OK DELETE completed"])
        # RFC 2180 section 3.3 lets the server end the other session.
        self.assertEqual(b.command("n", "NOOP")[0],
                         "* BYE [UNAVAILABLE] The selected mailbox was deleted")
        self.assertTrue(b.strict_eof())
        self.assertEqual(a.command("e", "NOOP"), ["e OK NOOP completed"])

    def test_idle_done_and_bad_continuation(self):
        b = self.b
        self.idle(b)
        b.send("NOOP\r\n")
        self.assertEqual(b.read_tagged("I"), ["I BAD Expected DONE"])
        self.idle(b, "K")
        b.send("done\r\n")
        self.assertEqual(b.read_tagged("K"), ["K OK IDLE terminated"])
        self.assertEqual(b.command("n", "NOOP"), ["n OK NOOP completed"])


# ---- 7. CONDSTORE and QRESYNC ----------------------------------------------------------------

class TestCondstore(MailCase):
    def setUp(self):
        super().setUp()
        self.c = self.login()
        self.v, _ = self.fill(self.c, "INBOX", [(message(i), "") for i in range(1, 6)])

    def modseq_of(self, line, prefix):
        m = re.match(re.escape(prefix) + r" MODSEQ \((\d+)\)\)$", line)
        self.assertIsNotNone(m, (line, prefix))
        return int(m.group(1))

    def test_highestmodseq_grows_with_every_change(self):
        c = self.c
        seen = []
        lines, _, _, h = self.select(c, params=" (CONDSTORE)")
        self.assertEqual(lines, select_response("s", 5, self.v, 6, h, unseen=1))
        seen.append(h)
        for tag, cmd in (("a", "STORE 1 +FLAGS.SILENT (\\Seen)"),
                         ("b", "STORE 2 +FLAGS.SILENT (Key)"),
                         ("c", "STORE 3 +FLAGS.SILENT (\\Deleted)")):
            self.assertEqual(c.command(tag, cmd)[-1], tag + " OK STORE completed")
            seen.append(self.select(c, params=" (CONDSTORE)")[3])
        self.assertEqual(c.command("d", "EXPUNGE")[-1], "d OK EXPUNGE completed")
        seen.append(self.status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"])
        self.append(c, "INBOX", message(6))
        seen.append(self.status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"])
        self.assertEqual(seen, sorted(set(seen)), "HIGHESTMODSEQ must grow with each change")
        # A STORE that changes nothing changes no mod-sequence.
        self.assertEqual(c.command("e", "STORE 1 +FLAGS.SILENT (\\Seen)"),
                         ["e OK STORE completed"])
        self.assertEqual(self.status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"], seen[-1])
        # Every message's MODSEQ is at most HIGHESTMODSEQ, and the largest equals it.
        lines = c.command("f", "FETCH 1:* (UID MODSEQ)")
        values = [int(re.search(r"MODSEQ \((\d+)\)", l).group(1)) for l in lines[:-1]]
        self.assertEqual(len(values), 5)
        self.assertEqual(max(values), seen[-1])

    def test_fetch_changedsince_returns_exactly_the_changed_messages(self):
        c = self.c
        _, _, _, h0 = self.select(c, params=" (CONDSTORE)")
        self.assertEqual(c.command("a", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0),
                         ["a OK FETCH completed"])
        self.assertEqual(c.command("b", "STORE 2,4 +FLAGS.SILENT (\\Seen)"),
                         ["b OK STORE completed"])
        lines = c.command("c", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0)
        self.assertEqual(len(lines), 3, lines)
        m2 = self.modseq_of(lines[0], "* 2 FETCH (UID 2 FLAGS (\\Seen)")
        m4 = self.modseq_of(lines[1], "* 4 FETCH (UID 4 FLAGS (\\Seen)")
        self.assertTrue(h0 < m2 and h0 < m4, (h0, m2, m4))
        self.assertEqual(lines[2], "c OK FETCH completed")
        h1 = self.status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        self.assertEqual(h1, max(m2, m4))
        self.assertEqual(c.command("d", "UID STORE 5 +FLAGS.SILENT (\\Answered)"),
                         ["d OK STORE completed"])
        lines = c.command("e", "UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE %d)" % h1)
        self.assertEqual(len(lines), 2, lines)
        m5 = self.modseq_of(lines[0], "* 5 FETCH (UID 5 FLAGS (\\Answered)")
        self.assertGreater(m5, h1)
        self.assertEqual(c.command("f", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m5),
                         ["f OK FETCH completed"])
        # MODSEQ asked for explicitly.
        self.assertEqual(c.command("g", "FETCH 5 (MODSEQ)"),
                         ["* 5 FETCH (MODSEQ (%d))" % m5, "g OK FETCH completed"])

    def test_store_unchangedsince_reports_modified(self):
        c = self.c
        _, _, _, h0 = self.select(c, params=" (CONDSTORE)")
        self.assertEqual(c.command("a", "UID STORE 2 +FLAGS.SILENT (\\Seen)"),
                         ["a OK STORE completed"])
        h1 = self.status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        # Message 2 changed after h0: it fails; 1 and 3 pass (RFC 7162 section 3.1.3).
        lines = c.command("b", "UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Flagged)" % h0)
        self.assertEqual(len(lines), 3, lines)
        m1 = self.modseq_of(lines[0], "* 1 FETCH (UID 1")
        m3 = self.modseq_of(lines[1], "* 3 FETCH (UID 3")
        self.assertTrue(h1 < m1 and h1 < m3)
        self.assertEqual(lines[2], "b OK [MODIFIED 2] Conditional STORE failed")
        self.assertEqual(c.command("c", "UID FETCH 1:3 FLAGS"), [
            "* 1 FETCH (UID 1 FLAGS (\\Flagged))", "* 2 FETCH (UID 2 FLAGS (\\Seen))",
            "* 3 FETCH (UID 3 FLAGS (\\Flagged))", "c OK FETCH completed"])
        # Every message fails: nothing changes. STORE (not UID) reports sequence numbers.
        self.assertEqual(c.command("d", "STORE 1:3 (UNCHANGEDSINCE %d) FLAGS (\\Draft)" % h0),
                         ["d OK [MODIFIED 1:3] Conditional STORE failed"])
        # UNCHANGEDSINCE 0 always fails for a message that exists.
        self.assertEqual(c.command("e", "UID STORE 4 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)"),
                         ["e OK [MODIFIED 4] Conditional STORE failed"])
        self.assertEqual(c.command("f", "FETCH 1:4 FLAGS"), [
            "* 1 FETCH (FLAGS (\\Flagged))", "* 2 FETCH (FLAGS (\\Seen))",
            "* 3 FETCH (FLAGS (\\Flagged))", "* 4 FETCH (FLAGS ())", "f OK FETCH completed"])

    def test_store_responses_carry_uid_and_modseq_once_condstore_is_enabled(self):
        # RFC 7162 section 3.1: "Once a CONDSTORE enabling command is issued by the client, the
        # server MUST automatically include both UID and mod-sequence data in all subsequent
        # untagged FETCH responses ... whether they were caused by a regular STORE/UID STORE, a
        # STORE/UID STORE with an UNCHANGEDSINCE modifier, a FETCH/UID FETCH that implicitly set
        # the \Seen flag, or an external agent."
        c = self.c
        self.assertEqual(c.command("e", "ENABLE CONDSTORE"),
                         ["* ENABLED CONDSTORE", "e OK ENABLE completed"])
        self.select(c)
        lines = c.command("a", "STORE 2 +FLAGS (\\Flagged)")
        self.assertEqual(len(lines), 2, lines)
        self.modseq_of(lines[0], "* 2 FETCH (UID 2 FLAGS (\\Flagged)")

    def test_fetch_that_sets_seen_carries_uid_and_modseq_once_condstore_is_enabled(self):
        # RFC 7162 section 3.1, as above: "... a FETCH/UID FETCH that implicitly set the \Seen
        # flag ...".
        c = self.c
        self.select(c, params=" (CONDSTORE)")
        lines = command(c, "b", "FETCH 3 (BODY[TEXT])")
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[1], "b OK FETCH completed")
        self.assertRegex(lines[0], r"^\* 3 FETCH \(UID 3 BODY\[TEXT\] \{13\}\r\nbody text 3\r\n "
                                   r"FLAGS \(\\Seen\) MODSEQ \(\d+\)\)$")

    def test_empty_mailbox_highestmodseq_is_a_valid_mod_sequence(self):
        # RFC 7162 section 7: resp-text-code =/ "HIGHESTMODSEQ" SP mod-sequence-value, and
        # mod-sequence-value is 1 <= n; STATUS HIGHESTMODSEQ 0 means "no persistent
        # mod-sequences" (section 3.1.7). A client that hands the value back in QRESYNC must be
        # accepted.
        c = self.c
        self.assertEqual(c.command("q", "ENABLE QRESYNC"),
                         ["* ENABLED QRESYNC", "q OK ENABLE completed"])
        lines, v, uidnext, h = self.select(c, "Junk")
        self.assertEqual(lines, select_response("s", 0, v, uidnext, h))
        self.assertGreaterEqual(h, 1)
        self.assertGreaterEqual(self.status(c, "Junk", "HIGHESTMODSEQ")["HIGHESTMODSEQ"], 1)
        lines = c.command("r", "SELECT Junk (QRESYNC (%d %d))" % (v, h))
        self.assertEqual(lines[-1], "r OK [READ-WRITE] SELECT completed")

    def test_qresync_select_reports_vanished_earlier_and_changes(self):
        c = self.c
        self.assertEqual(c.command("q", "ENABLE QRESYNC"),
                         ["* ENABLED QRESYNC", "q OK ENABLE completed"])
        _, _, _, h0 = self.select(c)
        self.assertEqual(c.command("a", "UID STORE 2,5 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        self.assertEqual(c.command("b", "UID EXPUNGE 2"), ["* VANISHED 2",
                                                           "b OK EXPUNGE completed"])
        self.assertEqual(c.command("c", "UID STORE 3 +FLAGS.SILENT ($Done)"),
                         ["c OK STORE completed"])
        h1 = self.status(c, "INBOX", "HIGHESTMODSEQ")["HIGHESTMODSEQ"]
        lines = c.command("d", "UNSELECT")
        self.assertEqual(lines, ["d OK UNSELECT completed"])
        lines = c.command("s", "SELECT INBOX (QRESYNC (%d %d))" % (self.v, h0))
        self.assertEqual(lines[:-4], select_response("s", 4, self.v, 6, h1,
                                                     keywords=["$Done"], unseen=1)[:-1])
        self.assertEqual(lines[-4], "* VANISHED (EARLIER) 2")
        self.modseq_of(lines[-3], "* 2 FETCH (UID 3 FLAGS ($Done)")
        self.modseq_of(lines[-2], "* 4 FETCH (UID 5 FLAGS (\\Deleted)")
        self.assertEqual(lines[-1], "s OK [READ-WRITE] SELECT completed")
        # Known UIDs limit the VANISHED set; an up-to-date client hears of nothing.
        lines = c.command("t", "SELECT INBOX (QRESYNC (%d %d 3:5))" % (self.v, h0))
        self.assertEqual(lines[0], "* OK [CLOSED] Previous mailbox closed")
        self.assertNotIn("VANISHED", " ".join(lines))
        lines = c.command("u", "SELECT INBOX (QRESYNC (%d %d 3:5))" % (self.v, h1))
        self.assertEqual(lines, select_response("u", 4, self.v, 6, h1, keywords=["$Done"],
                                                unseen=1, closed=True))
        # A wrong UIDVALIDITY: a plain SELECT.
        lines = c.command("w", "SELECT INBOX (QRESYNC (%d %d))" % (self.v + 1, h0))
        self.assertEqual(lines, select_response("w", 4, self.v, 6, h1, keywords=["$Done"],
                                                unseen=1, closed=True))

    def test_uid_fetch_vanished_modifier(self):
        c = self.c
        self.assertEqual(c.command("q", "ENABLE QRESYNC"),
                         ["* ENABLED QRESYNC", "q OK ENABLE completed"])
        _, _, _, h0 = self.select(c)
        self.assertEqual(c.command("a", "STORE 1,4 +FLAGS.SILENT (\\Deleted)"),
                         ["a OK STORE completed"])
        self.assertEqual(c.command("b", "EXPUNGE"), ["* VANISHED 1,4", "b OK EXPUNGE completed"])
        self.assertEqual(c.command("c", "UID STORE 3 +FLAGS.SILENT (\\Seen)"),
                         ["c OK STORE completed"])
        lines = c.command("d", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0)
        self.assertEqual(lines[0], "* VANISHED (EARLIER) 1,4")
        self.modseq_of(lines[1], "* 2 FETCH (UID 3 FLAGS (\\Seen)")
        self.assertEqual(lines[2:], ["d OK FETCH completed"])
        self.assertEqual(c.command("e", "FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h0),
                         ["e BAD VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE"])


if __name__ == "__main__":
    unittest.main()
