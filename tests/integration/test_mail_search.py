"""SEARCH against a real ringmaild: flags, strings (case-insensitive substrings, CHARSET,
literals), sizes, sequence and UID sets with *, OR/NOT/parentheses, dates, ESEARCH RETURN options,
SEARCHRES ($) and bad criteria; and what ENABLE IMAP4rev2 changes in SELECT and SEARCH.
Helpers and the one-server-per-class base are in test_mail.py."""

import unittest

from test_mail import MailCase, message, select_response


# ---- 5. SEARCH -------------------------------------------------------------------------------

SEARCH_MAIL = [
    (message(1, "Quarterly Report", "The budget is attached", "Sender One <s1@example.com>",
             "Mon, 1 Jan 2024 10:00:00 +0000"), "(\\Seen)", "01-Jan-2024 10:00:00 +0000"),
    (message(2, "lunch plans", "Pizza or sushi?", "s2@example.com",
             "Thu, 15 Feb 2024 12:00:00 +0000"), "(\\Flagged)", "15-Feb-2024 12:00:00 +0000"),
    (message(3, "RE: quarterly report", "Looks good " + "x" * 500, "Third <s3@example.net>",
             "Fri, 1 Mar 2024 08:00:00 +0000"), "(\\Seen \\Answered $Important)",
     "01-Mar-2024 08:00:00 +0000"),
    (message(4, "Party", "Bring the BUDGET numbers", "Sender Four <s4@example.com>",
             "Sat, 2 Mar 2024 23:30:00 -0800", "X-Tracking: abc123\r\n"), "",
     "03-Mar-2024 07:30:00 +0000"),
]


class TestSearch(MailCase):
    def setUp(self):
        super().setUp()
        self.c = self.login()
        for data, flags, date in SEARCH_MAIL:
            self.assertEqual(self.append(self.c, "INBOX", data, flags, date)[-1][:5], "A OK ")
        self.select(self.c)

    def search(self, criteria, uid=False):
        tag = "u" if uid else "s"
        lines = self.c.command(tag, ("UID SEARCH " if uid else "SEARCH ") + criteria)
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual(lines[1], tag + " OK SEARCH completed")
        self.assertTrue(lines[0] == "* SEARCH" or lines[0].startswith("* SEARCH "), lines)
        return [int(n) for n in lines[0].split()[2:]]

    def test_search_by_flags(self):
        self.assertEqual(self.search("ALL"), [1, 2, 3, 4])
        self.assertEqual(self.search("SEEN"), [1, 3])
        self.assertEqual(self.search("UNSEEN"), [2, 4])
        self.assertEqual(self.search("FLAGGED"), [2])
        self.assertEqual(self.search("UNFLAGGED ANSWERED"), [3])
        self.assertEqual(self.search("UNANSWERED"), [1, 2, 4])
        self.assertEqual(self.search("DELETED"), [])
        self.assertEqual(self.search("UNDELETED DRAFT"), [])
        self.assertEqual(self.search("KEYWORD $Important"), [3])
        self.assertEqual(self.search("KEYWORD $important"), [3])
        self.assertEqual(self.search("UNKEYWORD $Important"), [1, 2, 4])
        self.assertEqual(self.search("KEYWORD NeverUsed"), [])
        self.assertEqual(self.search("UNKEYWORD NeverUsed"), [1, 2, 3, 4])
        self.assertEqual(self.search("NEW"), [])  # no \Recent is kept
        self.assertEqual(self.search("OLD"), [1, 2, 3, 4])

    def test_search_strings_are_case_insensitive_substrings(self):
        self.assertEqual(self.search("SUBJECT quarterly"), [1, 3])
        self.assertEqual(self.search('SUBJECT "QUARTERLY REPORT"'), [1, 3])
        self.assertEqual(self.search("SUBJECT arter"), [1, 3])
        self.assertEqual(self.search("FROM S2@EXAMPLE"), [2])
        self.assertEqual(self.search("FROM sender"), [1, 4])
        self.assertEqual(self.search("FROM example.net"), [3])
        self.assertEqual(self.search("TO r@example.org"), [1, 2, 3, 4])
        self.assertEqual(self.search("BODY budget"), [1, 4])
        self.assertEqual(self.search("BODY quarterly"), [])
        self.assertEqual(self.search("TEXT budget"), [1, 4])
        self.assertEqual(self.search("TEXT quarterly"), [1, 3])  # TEXT covers the header
        self.assertEqual(self.search('TEXT "pizza OR"'), [2])
        self.assertEqual(self.search("HEADER X-Tracking ABC1"), [4])
        self.assertEqual(self.search('HEADER x-tracking ""'), [4])
        self.assertEqual(self.search("SUBJECT {5}\r\nlunch".replace("{5}\r\n", '"') + '"'),
                         [2])
        # A literal string and CHARSET UTF-8 (RFC 9051 section 6.4.4).
        self.c.send(b"l SEARCH CHARSET UTF-8 SUBJECT {5}\r\n")
        self.assertEqual(self.c.readline(), "+ Ready for literal data")
        self.c.send(b"PARTY\r\n")
        self.assertEqual(self.c.read_tagged("l"), ["* SEARCH 4", "l OK SEARCH completed"])
        self.assertEqual(self.search("CHARSET US-ASCII BODY sushi"), [2])

    def test_search_sizes_sequences_uids_and_logic(self):
        sizes = [len(d) for d, _, _ in SEARCH_MAIL]
        self.assertEqual(self.search("LARGER %d" % (sizes[2] - 1)), [3])
        self.assertEqual(self.search("LARGER %d" % sizes[2]), [])
        self.assertEqual(self.search("SMALLER %d" % (min(sizes) + 1)),
                         [i + 1 for i, s in enumerate(sizes) if s == min(sizes)])
        self.assertEqual(self.search("SMALLER 200"), [1, 2, 4])
        self.assertEqual(self.search("2:*"), [2, 3, 4])
        self.assertEqual(self.search("*"), [4])
        self.assertEqual(self.search("1,3 SEEN"), [1, 3])
        self.assertEqual(self.search("UID 2:*", uid=True), [2, 3, 4])
        self.assertEqual(self.search("UID 3:*"), [3, 4])
        # n:* includes the last message even when n is above every UID (RFC 9051 6.4.9).
        self.assertEqual(self.search("UID 100:*", uid=True), [4])
        self.assertEqual(self.search("UID 1,4"), [1, 4])
        self.assertEqual(self.search("OR FLAGGED SEEN"), [1, 2, 3])
        self.assertEqual(self.search("OR SUBJECT party OR FLAGGED ANSWERED"), [2, 3, 4])
        self.assertEqual(self.search("NOT SEEN"), [2, 4])
        self.assertEqual(self.search("NOT NOT SEEN"), [1, 3])
        self.assertEqual(self.search("(SEEN BODY budget)"), [1])
        self.assertEqual(self.search("NOT (SEEN OR FLAGGED KEYWORD $Important)"), [1, 2, 4])
        self.assertEqual(self.search("SEEN NOT UID 1", uid=True), [3])

    def test_search_by_dates(self):
        # Internal dates (disregarding time and zone), then the Date: header's.
        self.assertEqual(self.search("BEFORE 15-Feb-2024"), [1])
        self.assertEqual(self.search("ON 15-Feb-2024"), [2])
        self.assertEqual(self.search("SINCE 1-Mar-2024"), [3, 4])
        self.assertEqual(self.search("SENTON 2-Mar-2024"), [4])
        self.assertEqual(self.search("SENTBEFORE 1-Mar-2024"), [1, 2])
        self.assertEqual(self.search("SENTSINCE 1-Mar-2024"), [3, 4])

    def test_esearch_return_options(self):
        c = self.c
        self.assertEqual(c.command("a", "SEARCH RETURN (MIN MAX COUNT ALL) SEEN"),
                         ['* ESEARCH (TAG "a") MIN 1 MAX 3 ALL 1,3 COUNT 2',
                          "a OK SEARCH completed"])
        self.assertEqual(c.command("b", "SEARCH RETURN () ALL"),
                         ['* ESEARCH (TAG "b") ALL 1:4', "b OK SEARCH completed"])
        self.assertEqual(c.command("c", "SEARCH RETURN (COUNT) DRAFT"),
                         ['* ESEARCH (TAG "c") COUNT 0', "c OK SEARCH completed"])
        self.assertEqual(c.command("d", "SEARCH RETURN (MIN MAX) DRAFT"),
                         ['* ESEARCH (TAG "d")', "d OK SEARCH completed"])
        self.assertEqual(c.command("e", "UID SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN"),
                         ['* ESEARCH (TAG "e") UID MIN 2 MAX 4 ALL 2,4 COUNT 2',
                          "e OK SEARCH completed"])
        self.assertEqual(c.command("f", "SEARCH RETURN (MAX) 1:3"),
                         ['* ESEARCH (TAG "f") MAX 3', "f OK SEARCH completed"])

    def test_search_return_save_then_fetch_dollar(self):
        c = self.c
        # SAVE alone: no ESEARCH response (RFC 5182 section 2.4).
        self.assertEqual(c.command("a", "SEARCH RETURN (SAVE) OR SEEN FLAGGED"),
                         ["a OK SEARCH completed"])
        self.assertEqual(c.command("b", "FETCH $ (UID FLAGS)"), [
            "* 1 FETCH (UID 1 FLAGS (\\Seen))", "* 2 FETCH (UID 2 FLAGS (\\Flagged))",
            "* 3 FETCH (UID 3 FLAGS (\\Seen \\Answered $Important))", "b OK FETCH completed"])
        self.assertEqual(c.command("c", "UID SEARCH $ UNSEEN"), ["* SEARCH 2",
                                                                 "c OK SEARCH completed"])
        self.assertEqual(c.command("d", "STORE $ +FLAGS.SILENT (Saved)"),
                         ["d OK STORE completed"])
        self.assertEqual(c.command("e", "SEARCH KEYWORD Saved"), ["* SEARCH 1 2 3",
                                                                 "e OK SEARCH completed"])
        # SAVE with MIN keeps only the minimum, and the other options are answered.
        self.assertEqual(c.command("f", "SEARCH RETURN (SAVE MIN) UNSEEN"),
                         ['* ESEARCH (TAG "f") MIN 2', "f OK SEARCH completed"])
        self.assertEqual(c.command("g", "UID FETCH $ UID"), ["* 2 FETCH (UID 2)",
                                                            "g OK FETCH completed"])
        # An empty result saves the empty set.
        self.assertEqual(c.command("h", "SEARCH RETURN (SAVE) DRAFT"), ["h OK SEARCH completed"])
        self.assertEqual(c.command("i", "FETCH $ UID"), ["i OK FETCH completed"])

    def test_search_charsets_and_bad_criteria(self):
        c = self.c
        self.assertEqual(c.command("a", "SEARCH CHARSET KOI8-R SUBJECT lunch"),
                         ["a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"])
        self.assertEqual(c.command("b", "SEARCH CHARSET utf-8 SUBJECT lunch"),
                         ["* SEARCH 2", "b OK SEARCH completed"])
        for tag, criteria in (("c", "BOGUS"), ("d", "OR SEEN"), ("e", "LARGER x"),
                              ("f", "(SEEN"), ("g", "SEEN)"), ("h", "BEFORE 2024-01-01"),
                              ("i", "UID"), ("j", "0"), ("k", "NOT")):
            lines = c.command(tag, "SEARCH " + criteria)
            self.assertEqual(len(lines), 1, (criteria, lines))
            self.assertTrue(lines[0].startswith(tag + " BAD "), (criteria, lines))


# ---- IMAP4rev2 -------------------------------------------------------------------------------

class TestRev2(MailCase):
    def test_enable_imap4rev2_changes_select_and_search(self):
        c = self.login()
        v, _ = self.fill(c, "INBOX", [(message(1), ""), (message(2), "(\\Seen)")])
        self.assertEqual(c.command("e", "ENABLE IMAP4rev2"),
                         ["* ENABLED IMAP4rev2", "e OK ENABLE completed"])
        lines, _, _, h = self.select(c)
        # No RECENT and no UNSEEN in IMAP4rev2; a LIST for the mailbox (RFC 9051 6.3.2).
        self.assertEqual(lines, select_response("s", 2, v, 3, h, rev2=True))
        self.assertEqual(c.command("a", "SEARCH UNSEEN"),
                         ['* ESEARCH (TAG "a") ALL 1', "a OK SEARCH completed"])
        self.assertEqual(c.command("b", "UID SEARCH ALL"),
                         ['* ESEARCH (TAG "b") UID ALL 1:2', "b OK SEARCH completed"])
        self.assertEqual(c.command("c", "SEARCH DRAFT"),
                         ['* ESEARCH (TAG "c")', "c OK SEARCH completed"])
        lines = c.command("d", "SELECT Trash")
        self.assertEqual(lines[0], "* OK [CLOSED] Previous mailbox closed")


# ---- SEARCH in slices ----------------------------------------------------------------------

class TestSearchSlices(MailCase):
    """A SEARCH that takes longer than a slice (1 ms) is evaluated in parts, and the other
    connections of its core are served in between: the same user's second connection (same core)
    gets its NOOP answered while the first one's SEARCH is still running."""

    MESSAGES = 3000

    def setUp(self):
        super().setUp()
        self.a = self.login()
        body = ("common words fill this line of the message body, again and again\r\n" * 30)
        data = []
        for i in range(1, self.MESSAGES + 1):
            extra = "the rare needle is here\r\n" if i % 97 == 0 else ""
            data.append(message(i, "subject %d" % i, body + extra))
        # Pipelined LITERAL+ APPENDs: one round trip for all of them.
        self.a.send(b"".join(b"A%d APPEND INBOX {%d+}\r\n%s\r\n" % (i, len(d), d)
                             for i, d in enumerate(data)))
        for i in range(len(data)):
            self.assertTrue(self.a.read_tagged("A%d" % i, timeout=120)[-1].startswith(
                "A%d OK " % i))
        self.select(self.a)

    def test_other_connection_is_served_during_a_long_search_and_answers_are_exact(self):
        a = self.a
        b = self.login()
        self.select(b)
        # Two characters: the index cannot narrow, every message's text is read to its end.
        a.send("s SEARCH OR BODY zq BODY qz\r\nn NOOP\r\n")
        # b shares a's core (one user, one core); its NOOP is answered between a's slices.
        self.assertEqual(b.command("b", "NOOP"), ["b OK NOOP completed"])
        self.assertTrue(a.no_data_for(0), "the SEARCH finished before the other NOOP")
        lines = a.read_tagged("n", timeout=120)
        self.assertEqual(lines, ["* SEARCH", "s OK SEARCH completed", "n OK NOOP completed"])
        self.assertEqual(a.command("t", "SEARCH TEXT common"),
                         ["* SEARCH " + " ".join(str(i) for i in range(1, 3001)),
                          "t OK SEARCH completed"])
        self.assertEqual(a.command("r", "SEARCH BODY needle"),
                         ["* SEARCH " + " ".join(str(i) for i in range(97, 3001, 97)),
                          "r OK SEARCH completed"])

    def test_a_client_gone_during_a_search_harms_no_one(self):
        a = self.a
        a.send("s SEARCH OR BODY zq BODY qz\r\n")
        a.close()
        b = self.login()
        self.select(b)
        self.assertEqual(b.command("r", "UID SEARCH BODY needle"),
                         ["* SEARCH " + " ".join(str(i) for i in range(97, 3001, 97)),
                          "r OK SEARCH completed"])


if __name__ == "__main__":
    unittest.main()
