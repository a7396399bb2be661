"""SORT and THREAD (RFC 5256) with DISPLAYFROM and DISPLAYTO (RFC 5957) against a real ringmaild:
a dozen crafted messages (encoded words, Re:/Fwd: prefixes and blobs, a missing Date:, zones
other than UTC, threads through References and In-Reply-To, a missing parent, a message that
refers to itself), then the exact answers for each criterion, REVERSE, search keys, UID SORT and
UID THREAD, both algorithms, and the BAD and NO of bad commands. Python's imaplib is the client
for some of it. Helpers and the one-server-per-class base are in test_mail.py."""

import imaplib
import re
import unittest

from test_mail import MailCase

CAPABILITIES = "SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES"


def mail(headers, body, internal_date):
    """(message bytes, internal date) from header lines."""
    return (("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode(), internal_date)


# Sent dates in UTC (the sequence number first):
#   1 Mar 4 09:00   2 Mar 4 09:30 (+0200)   3 none: its internal date, Mar 1 08:00
#   4 Mar 4 10:00 (-0500)   5 Mar 5 12:00   6 Mar 5 13:00   7 Mar 6 08:00   8 Mar 6 09:00 (GMT)
#   9 Mar 7   10 Mar 8   11 Mar 9   12 Mar 10 (its internal date, Feb 29, is the earliest)
MAIL = [
    mail(["From: Alice Smith <alice@example.com>", "To: bob@example.org",
          "Subject: Project plan", "Date: Mon, 4 Mar 2024 09:00:00 +0000",
          "Message-ID: <1@t.example>"],
         "x" * 40, "04-Mar-2024 09:00:05 +0000"),
    mail(["From: Bob <bob@example.org>", "To: alice@example.com",
          "Subject: Re: Project plan", "Date: Mon, 4 Mar 2024 11:30:00 +0200",
          "Message-ID: <2@t.example>", "In-Reply-To: <1@t.example>",
          "References: <1@t.example>"],
         "x" * 10, "04-Mar-2024 09:31:00 +0000"),
    mail(["From: =?utf-8?q?=C3=89mile_Zola?= <emile@example.fr>",
          "To: Carol <carol@example.net>", "Cc: dave@example.com",
          "Subject: =?utf-8?b?w4ljbGFpcnM=?=", "Message-ID: <3@t.example>"],
         "x" * 300, "01-Mar-2024 08:00:00 +0000"),
    mail(["From: Carol <carol@example.net>", "To: team@example.org",
          "Subject: RE: [team] Project plan", "Date: Mon, 4 Mar 2024 05:00:00 -0500",
          "Message-ID: <4@t.example>", "References: <1@t.example>\r\n <2@t.example>"],
         "x" * 20, "04-Mar-2024 10:01:00 +0000"),
    mail(["From: zed@example.com", "To: bob@example.org", "Subject: Fwd: lunch",
          "Date: Tue, 5 Mar 2024 12:00:00 +0000", "Message-ID: <5@t.example>"],
         "x" * 50, "05-Mar-2024 12:00:01 +0000"),
    mail(["From: Dave <dave@example.com>", "To: zed@example.com", "Cc: alice@example.com",
          "Subject: Re: lunch", "Date: Tue, 5 Mar 2024 13:00:00 +0000",
          "Message-ID: <6@t.example>", "In-Reply-To: <5@t.example>"],
         "x" * 60, "05-Mar-2024 13:00:01 +0000"),
    mail(["From: bob@example.org", "To: Team: alice@example.com;", "Subject: Orphan",
          "Date: Wed, 6 Mar 2024 08:00:00 +0000", "Message-ID: <7@t.example>",
          "References: <missing@t.example>"],
         "x" * 70, "06-Mar-2024 08:00:01 +0000"),
    mail(["From: Alice Smith <alice@example.com>", "To: bob@example.org",
          "Subject: Re: Orphan", "Date: Wed, 6 Mar 2024 09:00:00 GMT",
          "Message-ID: <8@t.example>", "References: <missing@t.example>"],
         "x" * 80, "06-Mar-2024 09:00:01 +0000"),
    mail(["From: carol@example.net", "Subject: [fwd: Lunch]",
          "Date: Thu, 7 Mar 2024 08:00:00 +0000", "Message-ID: <9@t.example>"],
         "x" * 90, "07-Mar-2024 08:00:01 +0000"),
    mail(["From: Zed <zed@example.com>", "Subject: lunch (fwd)",
          "Date: Fri, 8 Mar 2024 08:00:00 +0000"],
         "x" * 100, "08-Mar-2024 08:00:01 +0000"),
    mail(["From: Bob <bob@example.org>", "Subject: Zebra",
          "Date: Sat, 9 Mar 2024 08:00:00 +0000", "Message-ID: <11@t.example>"],
         "x" * 5000, "09-Mar-2024 08:00:01 +0000"),
    mail(["From: alice@example.com", "Subject: alpha", "Date: Sun, 10 Mar 2024 08:00:00 +0000",
          "Message-ID: <12@t.example>", "References: <12@t.example>"],
         "x", "29-Feb-2024 07:00:00 +0000"),
]


class TestSortThread(MailCase):
    def setUp(self):
        super().setUp()
        self.c = self.login()
        self.uids = []
        for data, date in MAIL:
            lines = self.append(self.c, "INBOX", data, "", date)
            m = re.match(r"A OK \[APPENDUID \d+ (\d+)\] APPEND completed$", lines[-1])
            self.assertIsNotNone(m, lines)
            self.uids.append(int(m.group(1)))
        self.select(self.c)

    def sort(self, args, uid=False):
        """The numbers of "SORT args" (or UID SORT), after checking the response's form."""
        tag = "u" if uid else "s"
        lines = self.c.command(tag, ("UID SORT " if uid else "SORT ") + args)
        self.assertEqual(lines[-1], tag + " OK SORT completed", lines)
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r"^\* SORT( \d+)*$")
        return [int(n) for n in lines[0].split()[2:]]

    def thread(self, args, uid=False):
        """What follows "* THREAD " in the answer to "THREAD args" (or UID THREAD)."""
        tag = "u" if uid else "t"
        lines = self.c.command(tag, ("UID THREAD " if uid else "THREAD ") + args)
        self.assertEqual(lines, [lines[0], tag + " OK THREAD completed"])
        self.assertTrue(lines[0] == "* THREAD" or lines[0].startswith("* THREAD ("), lines)
        return lines[0][len("* THREAD "):]

    def to_uids(self, thread_text):
        return re.sub(r"\d+", lambda m: str(self.uids[int(m.group(0)) - 1]), thread_text)

    def test_capabilities_announce_sort_and_thread(self):
        lines = self.c.command("c", "CAPABILITY")
        self.assertEqual(lines[1], "c OK CAPABILITY completed")
        for cap in CAPABILITIES.split():
            self.assertIn(cap, lines[0].split()[2:])

    def test_sort_by_dates_and_size(self):
        self.assertEqual(self.sort("(DATE) UTF-8 ALL"), [3, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        self.assertEqual(self.sort("(REVERSE DATE) UTF-8 ALL"),
                         [12, 11, 10, 9, 8, 7, 6, 5, 4, 2, 1, 3])
        self.assertEqual(self.sort("(ARRIVAL) UTF-8 ALL"), [12, 3, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11])
        sizes = [len(data) for data, _ in MAIL]
        by_size = sorted(range(1, 13), key=lambda n: (sizes[n - 1], n))
        self.assertEqual(self.sort("(SIZE) UTF-8 ALL"), by_size)
        self.assertEqual(self.sort("(REVERSE SIZE) UTF-8 ALL"),
                         sorted(range(1, 13), key=lambda n: (-sizes[n - 1], n)))

    def test_sort_by_base_subject(self):
        # alpha, lunch (Fwd:, Re:, [fwd: ...], (fwd)), orphan, project plan (Re:, RE: [team]),
        # zebra, and the decoded "Éclairs" after every ASCII letter.
        self.assertEqual(self.sort("(SUBJECT) UTF-8 ALL"), [12, 5, 6, 9, 10, 7, 8, 1, 2, 4, 11, 3])
        self.assertEqual(self.sort("(REVERSE SUBJECT) UTF-8 ALL"),
                         [3, 11, 1, 2, 4, 7, 8, 5, 6, 9, 10, 12])
        self.assertEqual(self.sort("(SUBJECT REVERSE DATE) UTF-8 ALL"),
                         [12, 10, 9, 6, 5, 8, 7, 4, 2, 1, 11, 3])

    def test_sort_by_addresses(self):
        # The first address's mailbox: alice bob carol dave emile zed.
        self.assertEqual(self.sort("(FROM) UTF-8 ALL"), [1, 8, 12, 2, 7, 11, 4, 9, 6, 3, 5, 10])
        # None first; "team" twice (an address and a group's name).
        self.assertEqual(self.sort("(TO) UTF-8 ALL"), [9, 10, 11, 12, 2, 1, 5, 8, 3, 4, 7, 6])
        self.assertEqual(self.sort("(CC) US-ASCII ALL"), [1, 2, 4, 5, 7, 8, 9, 10, 11, 12, 6, 3])
        self.assertEqual(self.sort("(REVERSE CC SUBJECT) UTF-8 ALL"),
                         [3, 6, 12, 5, 9, 10, 7, 8, 1, 2, 4, 11])

    def test_sort_by_display_names(self):
        # The decoded display name, else the address: "alice smith" < "alice@example.com",
        # "bob" < "bob@example.org", and "émile zola" last.
        self.assertEqual(self.sort("(DISPLAYFROM) UTF-8 ALL"),
                         [1, 8, 12, 2, 11, 7, 4, 9, 6, 10, 5, 3])
        self.assertEqual(self.sort("(DISPLAYTO) UTF-8 ALL"),
                         [9, 10, 11, 12, 2, 1, 5, 8, 3, 7, 4, 6])

    def test_sort_only_what_the_search_keys_match(self):
        self.assertEqual(self.sort("(DATE) UTF-8 FROM alice"), [1, 8, 12])
        self.assertEqual(self.sort("(REVERSE ARRIVAL) UTF-8 SINCE 5-Mar-2024"),
                         [11, 10, 9, 8, 7, 6, 5])
        self.assertEqual(self.sort("(SUBJECT) UTF-8 SUBJECT lunch"), [5, 6, 9, 10])
        self.assertEqual(self.sort("(REVERSE SIZE) UTF-8 OR 2 11"), [11, 2])
        self.assertEqual(self.sort('(DATE) UTF-8 SUBJECT "LUNCH" NOT 9'), [5, 6, 10])
        self.assertEqual(self.c.command("e", "SORT (DATE) UTF-8 SUBJECT nothing-like-this"),
                         ["* SORT", "e OK SORT completed"])

    def test_uid_sort_answers_uids(self):
        by_date = [3, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        self.assertEqual(self.sort("(DATE) UTF-8 ALL", uid=True),
                         [self.uids[n - 1] for n in by_date])
        self.assertEqual(self.sort("(SUBJECT) UTF-8 UID %d:%d" % (self.uids[4], self.uids[5]),
                                   uid=True), [self.uids[4], self.uids[5]])

    def test_thread_orderedsubject(self):
        # One thread per base subject, under its earliest message; threads by that date.
        expected = "(3)(1 (2)(4))(5 (6)(9)(10))(7 8)(11)(12)"
        self.assertEqual(self.thread("ORDEREDSUBJECT UTF-8 ALL"), expected)
        self.assertEqual(self.thread("ORDEREDSUBJECT UTF-8 ALL", uid=True), self.to_uids(expected))

    def test_thread_references(self):
        # 1 <- 2 <- 4 through References; 5 <- 6 through In-Reply-To; 7 and 8 share a missing
        # parent (a dummy at the top); 9 and 10 have 5's base subject and are all forwards, so a
        # dummy holds the three; 12 refers to itself.
        expected = "(3)(1 2 4)((5 6)(9)(10))((7)(8))(11)(12)"
        self.assertEqual(self.thread("REFERENCES UTF-8 ALL"), expected)
        self.assertEqual(self.thread("references us-ascii ALL", uid=True), self.to_uids(expected))
        self.assertEqual(self.thread("REFERENCES UTF-8 SINCE 5-Mar-2024"),
                         "((5 6)(9)(10))((7)(8))(11)")
        self.assertEqual(self.thread("REFERENCES UTF-8 1:2,4"), "(1 2 4)")
        self.assertEqual(self.thread("REFERENCES UTF-8 2,4"), "(2 4)")
        self.assertEqual(self.thread("REFERENCES UTF-8 4,6"), "(4)(6)")
        self.assertEqual(self.thread("REFERENCES UTF-8 SUBJECT nothing-like-this"), "")

    def test_bad_charset_is_no_and_bad_commands_are_bad(self):
        c = self.c
        self.assertEqual(c.command("a", "SORT (DATE) KOI8-R ALL"),
                         ["a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"])
        self.assertEqual(c.command("b", "THREAD REFERENCES ISO-8859-1 ALL"),
                         ["b NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"])
        self.assertEqual(c.command("c", "SORT (FOO) UTF-8 ALL"), ["c BAD unknown sort criterion"])
        self.assertEqual(c.command("d", "SORT DATE UTF-8 ALL"),
                         ["d BAD expected a parenthesized list of sort criteria"])
        self.assertEqual(c.command("e", "SORT (REVERSE) UTF-8 ALL"),
                         ["e BAD REVERSE needs a sort criterion"])
        self.assertEqual(c.command("f", "SORT (DATE) UTF-8"),
                         ["f BAD expected search criteria after the charset"])
        self.assertEqual(c.command("g", "SORT (DATE) UTF-8 NOSUCHKEY"),
                         ["g BAD unknown search key"])
        self.assertEqual(c.command("h", "THREAD FOO UTF-8 ALL"),
                         ["h BAD unknown threading algorithm"])
        self.assertEqual(c.command("i", "SORT"), ["i BAD Expected sort criteria"])
        self.assertEqual(c.command("j", "THREAD"), ["j BAD Expected a threading algorithm"])
        self.assertEqual(c.command("k", "SORT (DATE) UTF-8 100"),
                         ["k BAD Invalid message sequence number"])
        # The session goes on.
        self.assertEqual(self.sort("(DATE) UTF-8 1:2"), [1, 2])

    def test_sort_and_thread_need_a_selected_mailbox(self):
        c = self.login()
        self.assertEqual(c.command("a", "SORT (DATE) UTF-8 ALL"), ["a BAD No mailbox selected"])
        self.assertEqual(c.command("b", "THREAD REFERENCES UTF-8 ALL"),
                         ["b BAD No mailbox selected"])

    def test_imaplib_sort_and_thread(self):
        m = self.imap()
        m.login(self.user, self.password)
        typ, data = m.capability()
        self.assertEqual(typ, "OK")
        for cap in CAPABILITIES.split():
            self.assertIn(cap, data[0].decode().split())
        self.assertEqual(m.select("INBOX"), ("OK", [b"12"]))
        self.assertEqual(m.sort("REVERSE DATE", "UTF-8", "ALL"),
                         ("OK", [b"12 11 10 9 8 7 6 5 4 2 1 3"]))
        self.assertEqual(m.sort("(DISPLAYFROM)", "UTF-8", "FROM", "bob"), ("OK", [b"2 11 7"]))
        self.assertEqual(m.sort("(DATE)", "UTF-8", "SUBJECT", "nothing-like-this"), ("OK", [b""]))
        typ, data = m.uid("SORT", "(ARRIVAL)", "UTF-8", "ALL")
        self.assertEqual(typ, "OK")
        self.assertEqual(data, [" ".join(str(self.uids[n - 1])
                                         for n in (12, 3, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11)).encode()])
        self.assertEqual(m.thread("REFERENCES", "UTF-8", "ALL"),
                         ("OK", [b"(3)(1 2 4)((5 6)(9)(10))((7)(8))(11)(12)"]))
        self.assertEqual(m.thread("ORDEREDSUBJECT", "UTF-8", "1:4"), ("OK", [b"(3)(1 (2)(4))"]))
        typ, data = m.uid("THREAD", "REFERENCES", "UTF-8", "5:6")
        self.assertEqual((typ, data),
                         ("OK", [("(%d %d)" % (self.uids[4], self.uids[5])).encode()]))
        typ, data = m.sort("(DATE)", "KOI8-R", "ALL")
        self.assertEqual(typ, "NO")
        with self.assertRaises(imaplib.IMAP4.error):
            m.sort("(NOSUCHKEY)", "UTF-8", "ALL")
        with self.assertRaises(imaplib.IMAP4.error):
            m.thread("NOSUCHALGORITHM", "UTF-8", "ALL")


if __name__ == "__main__":
    unittest.main()
