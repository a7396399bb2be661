"""Mailboxes against a real ringmaild: CREATE (with parents), LIST wildcards, LIST-EXTENDED
selection and return options (SPECIAL-USE, SUBSCRIBED, STATUS), RENAME (with children, of INBOX),
DELETE, SUBSCRIBE/LSUB, STATUS, names in modified UTF-7 and UTF-8, and names like "../../etc"
that must stay inside the user's directory. Helpers and the base class are in test_mail.py."""

import glob
import os
import unittest

from test_mail import (DEFAULT_APPENDLIMIT, DEFAULT_MAILBOXES, MULTIPART, SPECIAL_USE, MailCase,
                       command, default_list, list_line, literal, message, status_values)


# ---- 8. Mailboxes ----------------------------------------------------------------------------

class TestMailboxes(MailCase):
    def test_create_makes_parents_and_list_matches_wildcards(self):
        c = self.login()
        self.assertEqual(c.command("a", "CREATE a/b/c"), ["a OK CREATE completed"])
        self.assertEqual(c.command("b", 'LIST "" *'), default_list() + [
            list_line("a", "\\HasChildren"), list_line("a/b", "\\HasChildren"),
            list_line("a/b/c"), "b OK LIST completed"])
        self.assertEqual(c.command("c", 'LIST "" %'), default_list() + [
            list_line("a", "\\HasChildren"), "c OK LIST completed"])
        self.assertEqual(c.command("d", 'LIST "" a/%'), [list_line("a/b", "\\HasChildren"),
                                                         "d OK LIST completed"])
        self.assertEqual(c.command("e", 'LIST "a/" %'), [list_line("a/b", "\\HasChildren"),
                                                         "e OK LIST completed"])
        self.assertEqual(c.command("f", 'LIST "" a/*/c'), [list_line("a/b/c"),
                                                           "f OK LIST completed"])
        self.assertEqual(c.command("g", 'LIST "" A'), ["g OK LIST completed"])
        self.assertEqual(c.command("h", 'LIST "" inbox'), [list_line("INBOX"),
                                                           "h OK LIST completed"])
        # The parents are real mailboxes.
        self.assertEqual(self.status(c, "a/b", "MESSAGES"), {"MESSAGES": 0})
        self.assertEqual(c.command("i", "CREATE a/b/c"),
                         ["i NO [ALREADYEXISTS] Mailbox already exists"])
        self.assertEqual(c.command("j", "CREATE inbox"),
                         ["j NO [ALREADYEXISTS] Mailbox already exists"])
        self.assertEqual(c.command("k", "CREATE x/"), ["k OK CREATE completed"])
        self.assertEqual(c.command("l", 'LIST "" x'), [list_line("x"), "l OK LIST completed"])

    def test_list_special_use_and_return_status(self):
        c = self.login()
        self.fill(c, "INBOX", [(message(1), "(\\Seen)"), (message(2), "")])
        self.fill(c, "Sent", [(message(3), "")])
        self.assertEqual(c.command("a", 'LIST (SPECIAL-USE) "" *'),
                         default_list()[1:] + ["a OK LIST completed"])
        self.assertEqual(c.command("b", 'LIST "" * RETURN (SPECIAL-USE)'),
                         default_list() + ["b OK LIST completed"])
        lines = c.command("c", 'LIST "" * RETURN (STATUS (MESSAGES UNSEEN))')
        expected = []
        for line in default_list():
            name = line.rsplit(" ", 1)[1]
            counts = {"INBOX": (2, 1), "Sent": (1, 1)}.get(name, (0, 0))
            expected += [line, "* STATUS %s (MESSAGES %d UNSEEN %d)" % ((name,) + counts)]
        self.assertEqual(lines, expected + ["c OK LIST completed"])
        self.assertEqual(c.command("d", 'LIST "" (Sent Trash)'), [
            list_line("Sent", "\\HasNoChildren \\Sent"),
            list_line("Trash", "\\HasNoChildren \\Trash"), "d OK LIST completed"])
        self.assertEqual(c.command("e", 'LIST "" ""'),
                         ['* LIST (\\Noselect) "/" ""', "e OK LIST completed"])

    def test_rename_with_children(self):
        c = self.login()
        self.assertEqual(c.command("a", "CREATE p/q/r"), ["a OK CREATE completed"])
        self.fill(c, "p/q", [(message(1), "(\\Flagged)")])
        v = self.status(c, "p/q", "UIDVALIDITY")["UIDVALIDITY"]
        self.assertEqual(c.command("b", "RENAME p n/m"), ["b OK RENAME completed"])
        self.assertEqual(c.command("c", 'LIST "" *'), default_list() + [
            list_line("n", "\\HasChildren"), list_line("n/m", "\\HasChildren"),
            list_line("n/m/q", "\\HasChildren"), list_line("n/m/q/r"), "c OK LIST completed"])
        # The messages go with their mailbox, and so does its UIDVALIDITY.
        self.assertEqual(self.status(c, "n/m/q", "MESSAGES UIDVALIDITY"),
                         {"MESSAGES": 1, "UIDVALIDITY": v})
        self.assertEqual(c.command("d", "STATUS p/q (MESSAGES)"),
                         ["d NO [NONEXISTENT] No such mailbox"])
        self.assertEqual(c.command("e", "RENAME n Sent"),
                         ["e NO [ALREADYEXISTS] Target mailbox exists"])
        self.assertEqual(c.command("f", "RENAME nosuch zz"), ["f NO [NONEXISTENT] No such mailbox"])
        self.assertEqual(c.command("g", "RENAME n n/inner"),
                         ["g NO [CANNOT] Cannot move a mailbox into itself"])

    def test_rename_inbox_moves_its_messages_and_leaves_it_empty(self):
        c = self.login()
        v, _ = self.fill(c, "INBOX", [(message(1), "(\\Seen)"), (message(2), "")])
        self.assertEqual(c.command("a", "CREATE INBOX/child"), ["a OK CREATE completed"])
        self.assertEqual(c.command("b", "RENAME INBOX Old"), ["b OK RENAME completed"])
        self.assertEqual(self.status(c, "Old", "MESSAGES UNSEEN"), {"MESSAGES": 2, "UNSEEN": 1})
        inbox = self.status(c, "INBOX", "MESSAGES UIDNEXT UIDVALIDITY")
        self.assertEqual(inbox["MESSAGES"], 0)
        # Inferiors of INBOX stay (RFC 9051 section 6.3.6); INBOX's UIDs are not reused.
        self.assertEqual(c.command("c", 'LIST "" *'), [
            list_line("INBOX", "\\HasChildren"), list_line("INBOX/child")] +
            default_list()[1:4] + [list_line("Old")] + default_list()[4:] +
            ["c OK LIST completed"])
        self.assertTrue(inbox["UIDVALIDITY"] != v or inbox["UIDNEXT"] >= 3, inbox)
        self.select(c, "Old")
        self.assertEqual(command(c, "d", "FETCH 2 BODY.PEEK[TEXT]"), [
            "* 2 FETCH (BODY[TEXT] %s)" % literal("body text 2\r\n"), "d OK FETCH completed"])

    def test_delete(self):
        c = self.login()
        self.assertEqual(c.command("a", "CREATE x/y/z"), ["a OK CREATE completed"])
        self.fill(c, "x/y", [(message(1), "")])
        self.assertEqual(c.command("b", "DELETE x/y/z"), ["b OK DELETE completed"])
        # A mailbox with inferiors: its messages go, the name stays as \Noselect (RFC 9051
        # section 6.3.5); the inferiors are not removed.
        self.assertEqual(c.command("c", "CREATE x/y/z2"), ["c OK CREATE completed"])
        self.assertEqual(c.command("d", "DELETE x/y"), ["d OK DELETE completed"])
        self.assertEqual(c.command("e", 'LIST "" x*'), [
            list_line("x", "\\HasChildren"), list_line("x/y", "\\Noselect \\HasChildren"),
            list_line("x/y/z2"), "e OK LIST completed"])
        self.assertEqual(c.command("f", "SELECT x/y"), ["f NO [NONEXISTENT] No such mailbox"])
        self.assertEqual(c.command("g", "DELETE x/y"), ["g NO [NONEXISTENT] No such mailbox"])
        self.assertEqual(c.command("h", "DELETE nosuch"), ["h NO [NONEXISTENT] No such mailbox"])
        self.assertEqual(c.command("i", "DELETE INBOX"),
                         ["i NO [CANNOT] INBOX cannot be deleted"])
        self.assertEqual(c.command("j", "DELETE x/y/z2"), ["j OK DELETE completed"])
        self.assertEqual(c.command("k", 'LIST "" x*'), [list_line("x"), "k OK LIST completed"])
        # Re-created, a name gets a new UIDVALIDITY.
        v1 = self.status(c, "x", "UIDVALIDITY")["UIDVALIDITY"]
        self.assertEqual(c.command("l", "DELETE x"), ["l OK DELETE completed"])
        self.assertEqual(c.command("m", "CREATE x"), ["m OK CREATE completed"])
        self.assertGreater(self.status(c, "x", "UIDVALIDITY")["UIDVALIDITY"], v1)
        # Deleting the selected mailbox leaves the selected state.
        self.select(c, "x")
        self.assertEqual(c.command("n", "DELETE x"), ["n OK DELETE completed"])
        self.assertEqual(c.command("o", "FETCH 1 FLAGS"), ["o BAD No mailbox selected"])

    def test_subscribe_and_lsub(self):
        c = self.login()
        self.assertEqual(c.command("a", 'LSUB "" *'),
                         [list_line(n, "", "LSUB") for n in DEFAULT_MAILBOXES]
                         + ["a OK LSUB completed"])
        self.assertEqual(c.command("b", "CREATE Lists"), ["b OK CREATE completed"])
        self.assertEqual(c.command("c", "SUBSCRIBE Lists"), ["c OK SUBSCRIBE completed"])
        self.assertEqual(c.command("d", "UNSUBSCRIBE Junk"), ["d OK UNSUBSCRIBE completed"])
        self.assertEqual(c.command("e", "UNSUBSCRIBE Junk"), ["e OK UNSUBSCRIBE completed"])
        self.assertEqual(c.command("f", "SUBSCRIBE nosuch"), ["f NO [NONEXISTENT] No such mailbox"])
        subscribed = ["INBOX", "Archive", "Drafts", "Lists", "Sent", "Trash"]
        self.assertEqual(c.command("g", 'LSUB "" *'),
                         [list_line(n, "", "LSUB") for n in subscribed] + ["g OK LSUB completed"])
        self.assertEqual(c.command("h", 'LIST (SUBSCRIBED) "" *'), [
            list_line(n, " ".join(filter(None, ["\\HasNoChildren", "\\Subscribed",
                                                SPECIAL_USE.get(n, "")])))
            for n in subscribed] + ["h OK LIST completed"])
        self.assertEqual(c.command("i", 'LIST "" J* RETURN (SUBSCRIBED)'),
                         [list_line("Junk", "\\HasNoChildren \\Junk"), "i OK LIST completed"])

    def test_lsub_percent_shows_an_unsubscribed_parent_as_noselect(self):
        # RFC 3501 section 6.3.9: "if "foo/bar" is subscribed but "foo" is not. A "%" wildcard to
        # LSUB must return foo, not foo/bar, in the LSUB response, and it MUST be flagged with
        # the \Noselect attribute."
        c = self.login()
        self.assertEqual(c.command("a", "CREATE foo/bar"), ["a OK CREATE completed"])
        self.assertEqual(c.command("b", "UNSUBSCRIBE foo"), ["b OK UNSUBSCRIBE completed"])
        self.assertEqual(c.command("c", "SUBSCRIBE foo/bar"), ["c OK SUBSCRIBE completed"])
        self.assertEqual(c.command("d", 'LSUB "" foo/%'),
                         [list_line("foo/bar", "", "LSUB"), "d OK LSUB completed"])
        self.assertEqual(c.command("e", 'LSUB "" f%'),
                         [list_line("foo", "\\Noselect", "LSUB"), "e OK LSUB completed"])

    def test_status_items(self):
        c = self.login()
        v, _ = self.fill(c, "Drafts", [(message(1), "(\\Seen \\Deleted)"), (message(2), ""),
                                       (MULTIPART, "(\\Draft)")])
        lines = c.command("a", "STATUS Drafts (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE "
                               "RECENT HIGHESTMODSEQ APPENDLIMIT)")
        self.assertEqual(len(lines), 2)
        h = status_values(lines[0])["HIGHESTMODSEQ"]
        self.assertGreaterEqual(h, 3)
        self.assertEqual(lines, [
            "* STATUS Drafts (MESSAGES 3 UIDNEXT 4 UIDVALIDITY %d UNSEEN 2 DELETED 1 SIZE %d "
            "RECENT 0 HIGHESTMODSEQ %d APPENDLIMIT %d)" % (
                v, len(message(1)) + len(message(2)) + len(MULTIPART), h, DEFAULT_APPENDLIMIT),
            "a OK STATUS completed"])
        # Only INBOX is case-insensitive (RFC 9051 section 5.1).
        self.assertEqual(c.command("b", "status inbox (messages)"),
                         ["* STATUS INBOX (MESSAGES 0)", "b OK STATUS completed"])
        self.assertEqual(c.command("b2", "STATUS drafts (MESSAGES)"),
                         ["b2 NO [NONEXISTENT] No such mailbox"])
        self.assertEqual(c.command("c", "STATUS nosuch (MESSAGES)"),
                         ["c NO [NONEXISTENT] No such mailbox"])
        self.assertEqual(c.command("d", "STATUS INBOX (BOGUS)"), ["d BAD Unknown STATUS item"])
        self.assertEqual(c.command("e", "STATUS INBOX ()"),
                         ["e BAD Expected: STATUS mailbox (items)"])
        self.assertEqual(c.command("f", "NAMESPACE"), ['* NAMESPACE (("" "/")) NIL NIL',
                                                       "f OK NAMESPACE completed"])

    def test_non_ascii_names_in_modified_utf7_and_utf8(self):
        c = self.login()
        self.assertEqual(c.command("a", 'CREATE "Entw&APw-rfe"'), ["a OK CREATE completed"])
        self.assertEqual(c.command("b", "CREATE &ZeVnLIqe-/Sub"), ["b OK CREATE completed"])
        self.assertEqual(c.command("c", 'LIST "" *'), default_list()[:3] + [
            list_line("Entw&APw-rfe")] + default_list()[3:] + [
            list_line("&ZeVnLIqe-", "\\HasChildren"), list_line("&ZeVnLIqe-/Sub"),
            "c OK LIST completed"])
        self.fill(c, "Entw&APw-rfe", [(message(1), "")])
        self.assertEqual(c.command("d", 'STATUS "Entw&APw-rfe" (MESSAGES)'),
                         ["* STATUS Entw&APw-rfe (MESSAGES 1)", "d OK STATUS completed"])
        self.assertEqual(c.command("e", 'CREATE "bad&-name&"'),
                         ["e BAD Mailbox name is not valid modified UTF-7"])
        # After ENABLE UTF8=ACCEPT names are UTF-8 both ways (RFC 6855 section 3).
        self.assertEqual(c.command("f", "ENABLE UTF8=ACCEPT"),
                         ["* ENABLED UTF8=ACCEPT", "f OK ENABLE completed"])
        self.assertEqual(c.command("g", 'LIST "" Entw*'),
                         [list_line('"Entw\xc3\xbcrfe"'), "g OK LIST completed"])
        c.send('h CREATE "Gr\xc3\xbc\xc3\x9fe"\r\n')
        self.assertEqual(c.read_tagged("h"), ["h OK CREATE completed"])
        c.send('i STATUS "Entw\xc3\xbcrfe" (MESSAGES)\r\n')
        self.assertEqual(c.read_tagged("i"), ['* STATUS "Entw\xc3\xbcrfe" (MESSAGES 1)',
                                              "i OK STATUS completed"])
        # Another session without UTF8=ACCEPT sees modified UTF-7.
        d = self.login()
        self.assertEqual(d.command("j", 'LIST "" Gr*'), [list_line("Gr&APwA3w-e"),
                                                         "j OK LIST completed"])
        self.assertEqual(d.command("k", 'LIST "" &ZeVnLIqe-/%'), [list_line("&ZeVnLIqe-/Sub"),
                                                                 "k OK LIST completed"])
        self.assertEqual(d.command("l", "SELECT Gr&APwA3w-e")[-1],
                         "l OK [READ-WRITE] SELECT completed")

    def test_dot_dot_names_stay_inside_the_user_directory(self):
        c = self.login()
        data_dir = self.srv.data_dir
        user_dirs = glob.glob(os.path.join(data_dir, "users", "*", self.user))
        self.assertEqual(len(user_dirs), 1, user_dirs)
        user_dir = user_dirs[0]

        def outside():
            files = set()
            for root, dirs, names in os.walk(os.path.dirname(data_dir)):
                for n in dirs + names:
                    p = os.path.join(root, n)
                    if not p.startswith(user_dir + os.sep) and p != user_dir:
                        files.add(p)
            return files

        before = outside()
        names = ["../../etc", "a/../../b", "../x", "./y", "~root", "mbox", "users"]
        for i, name in enumerate(names):
            self.assertEqual(c.command("c%d" % i, 'CREATE "%s"' % name),
                             ["c%d OK CREATE completed" % i], name)
        self.fill(c, '"../../etc"', [(message(1), "(\\Seen)")])
        lines = c.command("l", 'LIST "" *')
        for name in ("..", "../..", "../../etc", "a/..", "a/../..", "a/../../b", "../x", "./y",
                     "~root", "mbox", "users"):
            self.assertTrue(any(l.endswith('"/" ' + name) for l in lines), (name, lines))
        self.assertEqual(c.command("s", 'STATUS "../../etc" (MESSAGES)'),
                         ['* STATUS ../../etc (MESSAGES 1)', "s OK STATUS completed"])
        self.assertEqual(c.command("r", 'RENAME "../../etc" "../../../../tmp/evil"'),
                         ["r OK RENAME completed"])
        self.assertEqual(c.command("d", 'DELETE "a/../../b"'), ["d OK DELETE completed"])
        # Nothing was created or removed anywhere but under the user's own directory.
        after = outside()
        self.assertEqual(after - before, set())
        self.assertEqual(before - after, set())
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(data_dir), "etc")))
        self.assertFalse(os.path.exists("/tmp/evil"))


if __name__ == "__main__":
    unittest.main()
