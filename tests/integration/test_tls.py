"""TLS against a real ringmaild (wolfSSL over memory, the socket on io_uring): implicit TLS on the
IMAPS port and STARTTLS on the IMAP port, TLS 1.3 and 1.2 only with modern suites, the
self-signed certificate of the embedded default, LOGINDISABLED before TLS, the STARTTLS
command-injection attack, SIGHUP reloading the certificate without dropping a connection, a
world-readable key refused at start. Clients: Python's ssl and imaplib, openssl s_client, curl
and Node's imapflow."""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

from harness import (AUTH_CAPS, HERE, HOST, LOGIN_OK, TIMEOUT, Server, ServerTestCase, crash_lines,
                     run_ringmaild)

import imaplib

USERS = {"alice": "tls-secret-1"}
CAPS_TLS = ("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN ID "
            "ENABLE")
CAPS_CLEAR = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR STARTTLS LOGINDISABLED ID ENABLE"
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def cert_path(srv):
    return os.path.join(srv.data_dir, "tls", "self-signed-cert.pem")


def client_context(srv, version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert_path(srv))  # the server's self-signed certificate, verified
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


class TlsLine:
    """A line-oriented IMAP client over an ssl socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def read_tagged(self, tag):
        lines = []
        while True:
            lines.append(self.readline())
            if lines[-1].startswith(tag + " "):
                return lines

    def command(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.read_tagged(tag)


def tls_connect(srv, version=None):
    raw = socket.create_connection((HOST, srv.tls_port), timeout=TIMEOUT)
    s = client_context(srv, version).wrap_socket(raw, server_hostname="localhost")
    return TlsLine(s)


class TestImplicitTls(ServerTestCase):
    def setUp(self):
        self.srv = self.server(users=USERS, args=["--allow-plaintext-auth", "0"])

    def test_tls13_session_with_imaplib(self):
        m = imaplib.IMAP4_SSL(HOST, self.srv.tls_port, ssl_context=client_context(self.srv))
        self.assertEqual(m.sock.version(), "TLSv1.3")
        self.assertEqual(m.capabilities, tuple(CAPS_TLS.upper().split()))
        typ, data = m.login("alice", USERS["alice"])
        self.assertEqual((typ, data), ("OK", [LOGIN_OK[3:].encode()]))
        msg = b"From: a@example.com\r\nSubject: tls\r\n\r\n" + b"x" * 200000 + b"\r\n"
        typ, data = m.append("INBOX", None, None, msg)
        self.assertEqual(typ, "OK", data)
        m.select("INBOX")
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][1], msg)
        self.assertEqual(m.logout()[0], "BYE")
        self.srv.wait_log(r"event=login user=alice .*mech=LOGIN")

    def test_tls12_with_an_aead_suite(self):
        c = tls_connect(self.srv, ssl.TLSVersion.TLSv1_2)
        self.assertEqual(c.sock.version(), "TLSv1.2")
        name, proto, bits = c.sock.cipher()
        self.assertTrue(name.startswith("ECDHE-ECDSA-") and ("GCM" in name or "CHACHA" in name),
                        name)
        self.assertEqual(c.readline(), "* OK [CAPABILITY %s] ringmail ready" % CAPS_TLS)
        self.assertEqual(c.command("a", "LOGIN alice %s" % USERS["alice"])[-1], "a " + LOGIN_OK)

    def test_old_versions_and_weak_suites_are_refused(self):
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            ctx = client_context(self.srv, version)
            ctx.set_ciphers("ALL:@SECLEVEL=0")
            raw = socket.create_connection((HOST, self.srv.tls_port), timeout=TIMEOUT)
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError), msg=str(version)):
                ctx.wrap_socket(raw, server_hostname="localhost").recv(100)
            raw.close()
        # TLS 1.2 with a suite without forward secrecy or without AEAD: no shared suite.
        for suite in ("ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-SHA384"):
            ctx = client_context(self.srv, ssl.TLSVersion.TLSv1_2)
            ctx.set_ciphers(suite + ":@SECLEVEL=0")
            raw = socket.create_connection((HOST, self.srv.tls_port), timeout=TIMEOUT)
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError), msg=suite):
                ctx.wrap_socket(raw, server_hostname="localhost").recv(100)
            raw.close()
        # The server keeps serving.
        c = tls_connect(self.srv)
        self.assertEqual(c.readline(), "* OK [CAPABILITY %s] ringmail ready" % CAPS_TLS)

    @unittest.skipIf(OPENSSL is None, "openssl is not installed")
    def test_openssl_s_client_13_and_12(self):
        for flag, version in (("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")):
            p = subprocess.run([OPENSSL, "s_client", "-connect", "%s:%d" % (HOST, self.srv.tls_port),
                                flag, "-CAfile", cert_path(self.srv), "-verify_return_error",
                                "-servername", "localhost", "-ign_eof"],
                               input="a NOOP\r\nb LOGOUT\r\n", capture_output=True, text=True,
                               timeout=TIMEOUT)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("New, %s, Cipher is " % version, p.stdout)
            self.assertIn("Verify return code: 0 (ok)", p.stdout)
            self.assertIn("a OK NOOP completed\n", p.stdout.replace("\r", ""))
            self.assertIn("b OK LOGOUT completed\n", p.stdout.replace("\r", ""))
        p = subprocess.run([OPENSSL, "s_client", "-connect", "%s:%d" % (HOST, self.srv.tls_port),
                            "-tls1_1", "-cipher", "ALL:@SECLEVEL=0"], input="", capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertNotEqual(p.returncode, 0)

    @unittest.skipIf(CURL is None, "curl is not installed")
    def test_curl_over_imaps(self):
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        p = subprocess.run([CURL, "-s", "--noproxy", "*", "--max-time", str(int(TIMEOUT)),
                            "--cacert", cert_path(self.srv), "--resolve",
                            "localhost:%d:127.0.0.1" % self.srv.tls_port,
                            "imaps://localhost:%d/" % self.srv.tls_port,
                            "-u", "alice:%s" % USERS["alice"]],
                           capture_output=True, text=True, timeout=TIMEOUT + 10, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('* LIST (\\HasNoChildren) "/" INBOX', p.stdout.splitlines())
        self.srv.wait_log(r"event=login user=alice peer=127\.0\.0\.1 mech=PLAIN ")

    def test_many_tls_clients_across_cores(self):
        # Logins hand the connection (and its TLS session) to the user's core.
        conns = [tls_connect(self.srv) for _ in range(12)]
        for i, c in enumerate(conns):
            c.readline()
            self.assertEqual(c.command("l", "LOGIN alice %s" % USERS["alice"])[-1], "l " + LOGIN_OK)
        for i, c in enumerate(conns):
            self.assertEqual(c.command("n%d" % i, "NOOP"), ["n%d OK NOOP completed" % i])
            c.sock.close()


class TestStartTls(ServerTestCase):
    def setUp(self):
        self.srv = self.server(users=USERS, args=["--allow-plaintext-auth", "0"])

    def test_login_disabled_until_tls(self):
        c = self.srv.connect(greeting=False)
        self.addCleanup(c.close)
        self.assertEqual(c.readline(), "* OK [CAPABILITY %s] ringmail ready" % CAPS_CLEAR)
        self.assertEqual(c.command("a", "LOGIN alice %s" % USERS["alice"]), [
            "a NO [PRIVACYREQUIRED] LOGIN needs TLS: use STARTTLS or the IMAPS port first"])
        self.assertEqual(c.command("b", "AUTHENTICATE PLAIN AGFsaWNlAHRscy1zZWNyZXQtMQ=="), [
            "b NO [PRIVACYREQUIRED] AUTHENTICATE needs TLS: use STARTTLS or the IMAPS port first"])
        c.send("c LOGIN {5}\r\n")
        self.assertEqual(c.readline(), "c NO [PRIVACYREQUIRED] Authentication needs TLS")

    def test_starttls_discards_injected_commands(self):
        raw = socket.create_connection((HOST, self.srv.port), timeout=TIMEOUT)
        c = TlsLine(raw)
        self.assertEqual(c.readline(), "* OK [CAPABILITY %s] ringmail ready" % CAPS_CLEAR)
        # The attack: a command sent in clear behind STARTTLS, in the same packet, must not be
        # executed once TLS is up (it would answer inside the TLS session as if sent there).
        c.send("s STARTTLS\r\nx LOGIN alice %s\r\ny CAPABILITY\r\n" % USERS["alice"])
        self.assertEqual(c.readline(), "s OK Begin TLS negotiation now")
        self.assertEqual(c.buf, b"")
        t = TlsLine(client_context(self.srv).wrap_socket(raw, server_hostname="localhost"))
        self.assertEqual(t.command("c", "CAPABILITY"),
                         ["* CAPABILITY " + CAPS_TLS, "c OK CAPABILITY completed"])
        self.assertEqual(t.command("n", "NOOP"), ["n OK NOOP completed"])  # not logged in by x
        self.assertEqual(t.command("l", "LOGIN alice %s" % USERS["alice"])[-1], "l " + LOGIN_OK)
        self.assertEqual(t.command("t", "STARTTLS"), ["t BAD STARTTLS is only allowed before login"])

    def test_starttls_with_imaplib_then_login(self):
        m = imaplib.IMAP4(HOST, self.srv.port)
        self.addCleanup(m.shutdown)
        self.assertIn("LOGINDISABLED", m.capabilities)
        typ, _ = m.starttls(ssl_context=client_context(self.srv))
        self.assertEqual(typ, "OK")
        self.assertEqual(m.capabilities, tuple(CAPS_TLS.upper().split()))
        self.assertEqual(m.login("alice", USERS["alice"])[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")

    def test_starttls_refused_when_already_tls(self):
        c = tls_connect(self.srv)
        c.readline()
        self.assertEqual(c.command("a", "STARTTLS"), ["a BAD TLS is already active"])

    def test_garbage_instead_of_a_handshake(self):
        raw = socket.create_connection((HOST, self.srv.port), timeout=TIMEOUT)
        c = TlsLine(raw)
        c.readline()
        c.send("s STARTTLS\r\n")
        self.assertEqual(c.readline(), "s OK Begin TLS negotiation now")
        raw.sendall(b"this is not a TLS record\r\n" * 10)
        raw.settimeout(TIMEOUT)
        got = b""
        while True:  # at most an alert, then the server closes
            chunk = raw.recv(4096)
            if not chunk:
                break
            got += chunk
        self.assertNotIn(b"OK", got)
        raw.close()
        # Other connections are served.
        d = self.srv.connect(greeting=False)
        self.addCleanup(d.close)
        self.assertEqual(d.readline(), "* OK [CAPABILITY %s] ringmail ready" % CAPS_CLEAR)
        self.assertEqual(d.command("n", "NOOP"), ["n OK NOOP completed"])
        self.srv.wait_log(r"event=tls_handshake_failed ")


class TestCertificates(ServerTestCase):
    @unittest.skipIf(OPENSSL is None, "openssl is not installed")
    def test_sighup_reloads_without_dropping_connections(self):
        srv = Server(users=USERS, start=False)
        self.addCleanup(self._finish_server, srv)
        d = os.path.join(srv._tmp, "certs")
        os.makedirs(d)
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        srv.extra_args += ["--tls-cert", cert, "--tls-key", key]
        self.make_cert(cert, key, "first.example")
        srv.start()
        before = tls_connect_unverified(srv)
        self.assertEqual(peer_cn(before), "first.example")
        before.readline()
        self.assertEqual(before.command("l", "LOGIN alice %s" % USERS["alice"])[-1], "l " + LOGIN_OK)
        self.make_cert(cert, key, "second.example")
        mark = srv.log_count()
        srv.send_signal(signal.SIGHUP)
        srv.wait_log(r"event=tls_reloaded", start=mark)
        after = tls_connect_unverified(srv)
        self.assertEqual(peer_cn(after), "second.example")
        # The connection made before the reload goes on with its own session.
        self.assertEqual(before.command("n", "NOOP"), ["n OK NOOP completed"])
        # A broken file on reload: the old certificate stays in use.
        with open(key, "w") as f:
            f.write("not a key\n")
        mark = srv.log_count()
        srv.send_signal(signal.SIGHUP)
        srv.wait_log(r"event=tls_reload_failed .*kept=", start=mark)
        self.assertEqual(peer_cn(tls_connect_unverified(srv)), "second.example")

    def make_cert(self, cert, key, cn):
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key + ".new", "-out",
                        cert + ".new", "-days", "2", "-subj", "/CN=" + cn],
                       check=True, capture_output=True, timeout=TIMEOUT)
        os.chmod(key + ".new", 0o600)
        os.rename(key + ".new", key)
        os.rename(cert + ".new", cert)

    def test_world_readable_key_refused(self):
        srv = Server(users=USERS, start=False)
        self.addCleanup(srv.close)
        srv.start()  # makes the self-signed pair
        srv.stop()
        key = os.path.join(srv.data_dir, "tls", "self-signed-key.pem")
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        os.chmod(key, 0o644)
        r = run_ringmaild("--data-dir", srv.data_dir, "--imap-listen", HOST + ":0",
                          "--imaps-listen", HOST + ":0")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.splitlines()[-1],
                         "ringmaild: TLS: tls_key %s is readable by every user of this "
                         "machine: chmod o-r it (e.g. chmod 600) and start again" % key)
        self.assertEqual(crash_lines(r.stderr.splitlines()), [])


def tls_connect_unverified(srv):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test reads the certificate the server presents
    raw = socket.create_connection((HOST, srv.tls_port), timeout=TIMEOUT)
    return TlsLine(ctx.wrap_socket(raw))


def peer_cn(conn):
    der = conn.sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    p = subprocess.run([OPENSSL, "x509", "-noout", "-subject"], input=pem, capture_output=True,
                       text=True, timeout=TIMEOUT)
    return p.stdout.strip().split("CN = ")[-1].split("CN=")[-1]


NODE = shutil.which("node")


@unittest.skipIf(NODE is None or not os.path.isdir(os.path.join(HERE, "node_modules", "imapflow")),
                 "imapflow is installed by test_imapflow's npm ci")
class TestImapflowTls(ServerTestCase):
    def run_client(self, mode, port, srv):
        p = subprocess.run([NODE, os.path.join(HERE, "imapflow_tls.mjs"), mode, str(port), "alice",
                            USERS["alice"], cert_path(srv)], capture_output=True, text=True,
                           timeout=60, cwd=HERE)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_imaps_and_starttls(self):
        srv = self.server(users=USERS, args=["--allow-plaintext-auth", "0"])
        for mode, port in (("imaps", srv.tls_port), ("starttls", srv.port)):
            out = self.run_client(mode, port, srv)
            self.assertNotIn("error", out, out)
            self.assertTrue(out["authenticated"])
            self.assertEqual(out["subject"], "over tls")
            self.assertEqual(out["source"], "From: a@example.com\r\nSubject: over tls\r\n\r\nhello\r\n")
        self.assertEqual(len(srv.events("login")), 2)
        self.assertEqual([e.get("mech") for e in srv.events("login")], ["PLAIN", "PLAIN"])


if __name__ == "__main__":
    unittest.main()
