#!/usr/bin/env python3
"""Debian's Dovecot (dovecot-imapd) as a comparison IMAP server, on a private configuration.

Nothing of the system's Dovecot is used or changed: the configuration (`dovecot -c CONFIG`,
which replaces /etc/dovecot/dovecot.conf entirely), base_dir (sockets, pid), state_dir, the log,
the passwd-file and the mail all live in one temporary directory that stop() removes. Only IMAP,
only on 127.0.0.1:PORT (the IMAPS listener is off), no TLS.

    import dovecot
    dovecot.ensure_installed()                      # apt-get install -y dovecot-imapd if missing
    d = dovecot.start(10143, {"alice": "secret"})   # returns once the greeting is seen
    ... IMAP on 127.0.0.1:10143, LOGIN alice secret ...
    d.stop()                                        # also on interpreter exit (atexit)

    python3 bench/dovecot.py --check                # start, LOGIN, SELECT INBOX, stop
    python3 bench/dovecot.py --port 10143 --user alice:secret   # run until Ctrl-C

The configuration (see CONFIG below):
  - mail in maildir (default) or sdbox/mdbox under the temporary directory, indexes next to it;
    mail_fsync left at its default (optimized: the mail is fsynced before a save commits);
  - passdb and userdb: one passwd-file with the users and their passwords ({PLAIN} scheme, so no
    hashing cost at login);
  - no plugins: no FTS, so SEARCH BODY/TEXT scans and decodes every message (lib-mail's
    message-search: text/* and message/* parts, transfer encoding undone, charset converted to
    UTF-8, keys and text normalized to decomposed titlecase);
  - ssl = no, disable_plaintext_auth = no, auth_mechanisms = plain login;
  - started as root: the master stays root, default_internal_user = dovecot and
    default_login_user = dovenull (the package's users), and the mail processes run as the user
    `mail` (uid 8; `nobody` where there is none), which owns the mail directory; started as
    another user: everything runs as that user (chroots off);
  - processes: Dovecot forks one imap process per IMAP connection (service imap: client_limit 1)
    and one imap-login process per connection being logged in; each is single-threaded. A
    SEARCH over one connection therefore runs on one core, as in ringmail, where one user's mail
    is served by the one reactor thread that owns the user. Several connections get several
    processes, which the kernel spreads over the cores (appends to one mailbox serialize on its
    index and uidlist locks). process limits: 100 imap processes, 10 connections per user and
    address raised to 100.
  - The processes are in their own process group; stop() sends SIGTERM to the master and then,
    if anything is left after 10 s, SIGKILL to the group. They also get SIGTERM if the Python
    process that started them dies (PR_SET_PDEATHSIG).
"""

import argparse
import atexit
import ctypes
import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"

CONFIG = """\
# Private configuration written by bench/dovecot.py; replaces /etc/dovecot entirely.
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
debug_log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {first_uid}
first_valid_gid = {first_gid}
mail_location = {mail_location}
mail_max_userip_connections = 100
mail_plugins =
import_environment = TZ
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{login_chroot}}}
service imap {{
  process_limit = 100
}}
{extra_services}
{extra}
"""

_live = []  # handles not yet stopped, for atexit


def version():
    try:
        return subprocess.run([DOVECOT, "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        return None


def ensure_installed(log=print):
    """Installs dovecot-imapd with apt-get if /usr/sbin/dovecot is missing, then stops the system
    service if the package started it (so it takes no CPU). Returns the version string."""
    if not os.path.exists(DOVECOT):
        if os.geteuid() != 0:
            raise RuntimeError("%s is missing; run as root or: apt-get install -y dovecot-imapd"
                               % DOVECOT)
        log("installing dovecot-imapd with apt-get ...")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "dovecot-imapd"], check=True, env=env,
                       stdout=subprocess.DEVNULL, timeout=900)
        stop_system_service()
    return version()


def stop_system_service():
    """Stops the system's Dovecot (the package's service), if it runs. Ours are not touched: they
    use their own base_dir."""
    if subprocess.run(["pgrep", "-f", "^/usr/sbin/dovecot( -F)?( -c /etc/dovecot/dovecot.conf)?$"],
                      capture_output=True).returncode != 0:
        return
    for argv in (["service", "dovecot", "stop"], ["doveadm", "stop"]):
        try:
            if subprocess.run(argv, capture_output=True, timeout=60).returncode == 0:
                return
        except (OSError, subprocess.TimeoutExpired):
            pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _pdeathsig():
    """In the child before exec: its own process group, and SIGTERM when the parent dies."""
    os.setpgrp()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Dovecot:
    """A running private Dovecot. Use start() below."""

    def __init__(self, port, users, mail_format="maildir", tmp_root=None, extra_config="",
                 start_timeout=30):
        if not os.path.exists(DOVECOT):
            raise RuntimeError("%s is missing (dovecot.ensure_installed())" % DOVECOT)
        self.port = port
        self.users = dict(users)
        self.mail_format = mail_format
        self.proc = None
        self.base = tempfile.mkdtemp(prefix="rm-dovecot-", dir=tmp_root)
        self.log_path = os.path.join(self.base, "dovecot.log")
        self.config_path = os.path.join(self.base, "dovecot.conf")
        self.version = version()
        try:
            self._write_config(extra_config)
            self._start(start_timeout)
        except BaseException:
            self.stop()
            raise
        _live.append(self)

    def _write_config(self, extra_config):
        root = os.geteuid() == 0
        if root:
            try:
                mail = pwd.getpwnam("mail")
            except KeyError:
                mail = pwd.getpwnam("nobody")
            uid, gid = mail.pw_uid, mail.pw_gid
            internal_user, login_user = "dovecot", "dovenull"
            internal_group = "dovecot"
            try:
                grp.getgrnam(internal_group)
            except KeyError:
                internal_group = grp.getgrgid(pwd.getpwnam("dovecot").pw_gid).gr_name
            login_chroot = ""
            extra_services = ""
        else:
            uid, gid = os.geteuid(), os.getegid()
            internal_user = login_user = pwd.getpwuid(uid).pw_name
            internal_group = grp.getgrgid(gid).gr_name
            login_chroot = "  chroot =\n"
            extra_services = "service anvil {\n  chroot =\n}\n"
        # The temporary directory must be traversable by the mail, internal and login users.
        os.chmod(self.base, 0o755)
        if root:
            d = os.path.dirname(self.base)
            while d and d != "/":
                if not os.stat(d).st_mode & 0o001:
                    raise RuntimeError("%s is not searchable by others (o+x): the Dovecot users "
                                       "cannot reach %s" % (d, self.base))
                d = os.path.dirname(d)
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.base, d), mode=0o755)
        mail_root = os.path.join(self.base, "mail")
        os.makedirs(mail_root, mode=0o700)
        lines = []
        for name, password in self.users.items():
            if ":" in name or ":" in password or "\n" in name + password:
                raise ValueError("user names and passwords may not contain ':' or newlines")
            home = os.path.join(mail_root, name)
            os.makedirs(home, mode=0o700)
            if root:
                os.chown(home, uid, gid)
            lines.append("%s:{PLAIN}%s:%d:%d::%s::" % (name, password, uid, gid, home))
        if root:
            os.chown(mail_root, uid, gid)
        passwd = os.path.join(self.base, "passwd")
        with open(passwd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(passwd, 0o644 if root else 0o600)  # auth runs as root or as the user
        location = {"maildir": "maildir:~/Maildir", "sdbox": "sdbox:~/sdbox",
                    "mdbox": "mdbox:~/mdbox"}[self.mail_format]
        with open(self.config_path, "w") as f:
            f.write(CONFIG.format(base=self.base, port=self.port, internal_user=internal_user,
                                  internal_group=internal_group, login_user=login_user,
                                  first_uid=min(uid, 500), first_gid=min(gid, 1),
                                  mail_location=location, login_chroot=login_chroot,
                                  extra_services=extra_services, extra=extra_config))

    def _start(self, timeout):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.base, "stderr.log"), "wb"),
                                     preexec_fn=_pdeathsig, env=dict(os.environ, TZ="UTC"))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited with %d: %s" % (self.proc.returncode,
                                                                   self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    greeting = s.recv(4096)
                    if greeting.startswith(b"* OK"):
                        return
                    last = greeting
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise RuntimeError("dovecot did not answer on 127.0.0.1:%d (%r): %s"
                           % (self.port, last, self.log_tail()))

    def log_tail(self, n=20):
        out = []
        for name in ("dovecot.log", "stderr.log"):
            try:
                with open(os.path.join(self.base, name), errors="replace") as f:
                    out += f.read().splitlines()[-n:]
            except OSError:
                pass
        return "\n".join(out)

    def mail_dir(self, user):
        return os.path.join(self.base, "mail", user)

    def processes(self):
        """[(pid, name)] of this Dovecot's processes (its process group)."""
        out = []
        if self.proc is None:
            return out
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.getpgid(int(pid)) != self.proc.pid:
                    continue
                with open("/proc/%s/comm" % pid) as f:
                    out.append((int(pid), f.read().strip()))
            except OSError:
                pass
        return out

    def stop(self, keep=False):
        """Stops every process of this Dovecot and removes its directory (unless keep)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers in our group, if any
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None
        if self in _live:
            _live.remove(self)
        if not keep and self.base and os.path.isdir(self.base):
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(port, users, **kwargs):
    """Starts a private Dovecot on 127.0.0.1:port with users {name: password}; returns a handle
    with .stop(), .port, .log_path, .config_path, .version, .mail_dir(user)."""
    return Dovecot(port, users, **kwargs)


@atexit.register
def _stop_all():
    for d in list(_live):
        d.stop()


def _check(port, mail_format):
    d = start(port, {"alice": "bench-password"}, mail_format=mail_format)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = s.makefile("rwb")
        print(f.readline().decode().rstrip())
        for tag, cmd in (("a", "LOGIN alice bench-password"), ("b", "SELECT INBOX"),
                         ("c", "LOGOUT")):
            f.write(("%s %s\r\n" % (tag, cmd)).encode())
            f.flush()
            while True:
                line = f.readline().decode().rstrip()
                print(line)
                if line.startswith(tag + " ") or not line:
                    break
        s.close()
        print("%s, %s, processes: %s" % (d.version, d.mail_format,
                                          " ".join(n for _, n in d.processes())))
    finally:
        d.stop()


def main():
    ap = argparse.ArgumentParser(description="A private Dovecot on loopback")
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    ap.add_argument("--user", action="append", default=[], help="NAME:PASSWORD (repeatable)")
    ap.add_argument("--mail-format", default="maildir", choices=("maildir", "sdbox", "mdbox"))
    ap.add_argument("--check", action="store_true", help="start, log in, SELECT, stop")
    ap.add_argument("--install", action="store_true", help="apt-get install if missing")
    args = ap.parse_args()
    if args.install or not os.path.exists(DOVECOT):
        ensure_installed()
    port = args.port or free_port()
    if args.check:
        _check(port, args.mail_format)
        return
    users = dict(u.split(":", 1) for u in args.user) or {"alice": "bench-password"}
    d = start(port, users, mail_format=args.mail_format)
    print("dovecot %s on 127.0.0.1:%d, users %s, config %s; Ctrl-C stops it"
          % (d.version, port, ", ".join(users), d.config_path), flush=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        while d.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        d.stop()


if __name__ == "__main__":
    main()
