"""SASL mechanisms of AUTHENTICATE against a real ringmaild over TLS: SCRAM-SHA-256 (RFC 5802,
RFC 7677) with a client written here from the RFCs and checked against RFC 7677's test vector
first, LOGIN (the legacy mechanism, which an operator can turn off), PLAIN, with and without
SASL-IR. A failed exchange says nothing about whether the user exists."""

import base64
import hashlib
import hmac
import os
import socket
import ssl
import unittest

from harness import HOST, TIMEOUT, ServerTestCase

USERS = {"alice": "pencil-case-77"}


def b64(data):
    return base64.b64encode(data).decode()


class ScramClient:
    """The client side of SCRAM-SHA-256, no channel binding."""

    def __init__(self, user, password, nonce):
        self.user, self.password, self.nonce = user, password, nonce
        self.first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)

    def first(self):
        return "n,," + self.first_bare

    def final(self, server_first):
        attrs = dict(a.split("=", 1) for a in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), server_first
        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        self.auth_message = ",".join([self.first_bare, server_first, without_proof]).encode()
        signature = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.expected_server = "v=" + b64(hmac.new(server_key, self.auth_message,
                                                   hashlib.sha256).digest())
        return without_proof + ",p=" + b64(proof)


class TestScramClientAgainstRfc7677(unittest.TestCase):
    def test_vector(self):
        c = ScramClient("user", "pencil", "rOprNGfwEbeRWgbNEkqO")
        self.assertEqual(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
        final = c.final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        self.assertEqual(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        self.assertEqual(c.expected_server, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


class Tls:
    def __init__(self, srv):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(srv.data_dir, "tls", "self-signed-cert.pem"))
        raw = socket.create_connection((HOST, srv.tls_port), timeout=TIMEOUT)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.greeting = self.readline()

    def close(self):
        self.sock.close()

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def challenge(self):
        line = self.readline()
        assert line.startswith("+ "), line
        return base64.b64decode(line[2:]).decode()

    def command(self, tag, text):
        self.send("%s %s" % (tag, text))
        lines = []
        while True:
            lines.append(self.readline())
            if lines[-1].startswith(tag + " "):
                return lines


class TestSasl(ServerTestCase):
    def setUp(self):
        self.srv = self.server(users=USERS, args=["--allow-plaintext-auth", "0"])

    def connect(self):
        c = Tls(self.srv)
        self.addCleanup(c.close)
        return c

    def scram(self, c, user, password, ir=False):
        client = ScramClient(user, password, b64(os.urandom(18)))
        if ir:
            c.send("s AUTHENTICATE SCRAM-SHA-256 " + b64(client.first().encode()))
        else:
            c.send("s AUTHENTICATE SCRAM-SHA-256")
            self.assertEqual(c.challenge(), "")
            c.send(b64(client.first().encode()))
        server_first = c.challenge()
        c.send(b64(client.final(server_first).encode()))
        return client, server_first

    def test_scram_success_verifies_the_server_too(self):
        for ir in (False, True):
            c = self.connect()
            client, server_first = self.scram(c, "alice", USERS["alice"], ir)
            attrs = dict(a.split("=", 1) for a in server_first.split(","))
            self.assertEqual(len(base64.b64decode(attrs["s"])), 16)
            self.assertEqual(c.challenge(), client.expected_server)  # the server knew the key
            c.send("")
            ok = c.readline()
            self.assertTrue(ok.startswith("s OK [CAPABILITY IMAP4rev1 "), ok)
            self.assertEqual(c.command("n", "NOOP"), ["n OK NOOP completed"])
        self.srv.wait_log_count(r"event=login ", 2)
        self.assertEqual([e.get("mech") for e in self.srv.events("login")],
                         ["SCRAM-SHA-256", "SCRAM-SHA-256"])

    def test_scram_wrong_password_and_unknown_user_look_the_same(self):
        c = self.connect()
        self.scram(c, "alice", "not-the-password")
        self.assertEqual(c.readline(), "s NO [AUTHENTICATIONFAILED] Authentication failed")
        firsts = []
        for _ in range(2):
            d = self.connect()
            _, server_first = self.scram(d, "nobody-here", "whatever")
            self.assertEqual(d.readline(), "s NO [AUTHENTICATIONFAILED] Authentication failed")
            firsts.append(dict(a.split("=", 1) for a in server_first.split(",")))
        # A made-up salt, but the same one each time, like a real user's.
        self.assertEqual(firsts[0]["s"], firsts[1]["s"])
        self.assertEqual(len(base64.b64decode(firsts[0]["s"])), 16)
        self.srv.wait_log_count(r"event=login_failed ", 3)
        self.assertEqual(len(self.srv.events("login_failed")), 3)

    def test_scram_refuses_channel_binding_and_bad_messages(self):
        c = self.connect()
        self.assertEqual(c.command("a", "AUTHENTICATE SCRAM-SHA-256 " +
                                   b64(b"p=tls-unique,,n=alice,r=abc")),
                         ["a NO [CANNOT] channel binding is not supported (no SCRAM-SHA-256-PLUS)"])
        self.assertEqual(c.command("b", "AUTHENTICATE SCRAM-SHA-256 " + b64(b"n,,r=abc")),
                         ["b NO [CANNOT] malformed client-first-message"])
        c.send("d AUTHENTICATE SCRAM-SHA-256 " + b64(b"n,,n=alice,r=abc"))
        c.challenge()
        c.send(b64(b"c=biws,r=wrong-nonce,p=AAAA"))
        self.assertEqual(c.readline(), "d BAD channel binding or nonce do not match")
        c.send("e AUTHENTICATE SCRAM-SHA-256")
        self.assertEqual(c.challenge(), "")
        c.send("*")
        self.assertEqual(c.readline(), "e BAD Authentication cancelled")
        self.assertEqual(c.command("n", "NOOP"), ["n OK NOOP completed"])

    def test_login_mechanism(self):
        c = self.connect()
        c.send("a AUTHENTICATE LOGIN")
        self.assertEqual(c.challenge(), "Username:")
        c.send(b64(b"alice"))
        self.assertEqual(c.challenge(), "Password:")
        c.send(b64(USERS["alice"].encode()))
        self.assertEqual(c.readline()[:5], "a OK ")
        d = self.connect()
        d.send("b AUTHENTICATE LOGIN " + b64(b"alice"))  # SASL-IR: the name
        self.assertEqual(d.challenge(), "Password:")
        d.send(b64(b"wrong"))
        self.assertEqual(d.readline(), "b NO [AUTHENTICATIONFAILED] Authentication failed")
        self.assertEqual([e.get("mech") for e in self.srv.events("login")], ["SASL-LOGIN"])

    def test_login_mechanism_can_be_turned_off(self):
        srv = self.server(users=USERS, args=["--sasl-login", "0"])
        c = Tls(srv)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting, "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR "
                         "AUTH=SCRAM-SHA-256 AUTH=PLAIN ID ENABLE] ringmail ready")
        self.assertEqual(c.command("a", "AUTHENTICATE LOGIN"),
                         ["a NO [CANNOT] Unsupported authentication mechanism"])


if __name__ == "__main__":
    unittest.main()
