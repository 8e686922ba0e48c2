"""A private Cyrus IMAP 3.6 server (IMAP, POP3, both with TLS): a second test-world server profile.

Debian's cyrus-imapd cannot be installed beside dovecot-imapd (both provide imap-server), so
tests/world/install_cyrus.sh unpacks the packages into a private root ($MIGRATOR_TEST_CYRUS_ROOT,
default /opt/migrator-test/cyrus) and installs only their libraries. Each server gets its own
temp dir with imapd.conf/cyrus.conf (absolute paths everywhere, `-C` on every command: the
children of `master` do not inherit it), a sasldb with the users, free loopback ports, and
runs `master -D` in its own session; stop() signals that process group and waits for it.

How Cyrus differs from the Dovecot source, as data the tests read (the Dovecot profile in
tests/world/dovecot.py carries the same attributes with its values):

- `prefix = "INBOX."`: every personal folder lives under the namespace prefix `INBOX.`
  (altnamespace: no), so the corpus folder `Archive.2019` is `INBOX.Archive.2019` here.
- `accepts(raw)`: APPEND refuses a bare LF or CR ("Message contains bare newlines"), a NUL, a
  header line that is not `name: value` ("Message contains invalid header"; a first line
  `From ...`, an mbox envelope, is let through);
- `served(raw)`: 8-bit bytes in the header are rewritten to `X` (munge8bit), the rest is kept.
`seed` checks both against the server's own answers, so this data cannot silently go stale.
Seeding makes every line end CRLF first, as a delivery (LMTP) would; the Dovecot profile
serves bare LFs as CRLF too, so both sources serve nearly the same corpus.
"""
import contextlib
import datetime
import os
import pwd
import re
import shutil
import signal
import subprocess

import imapclient

from tests.world.dovecot import MailUser
from tests.world.mailstore import StoredMessage
from tests.world.net import HOST, free_ports
from tests.world.private_server import PrivateServer

ROOT_ENV = "MIGRATOR_TEST_CYRUS_ROOT"
DEFAULT_ROOT = "/opt/migrator-test/cyrus"
STOP_TIMEOUT = 15
ADMIN = "cyrusadm"
_HEADER_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_LINE_END = re.compile(rb"\r\n|\r(?!\n)|\n")  # what imaplib's APPEND sends as CRLF


def cyrus_root():
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def missing_reason():
    """Why no Cyrus can run here (None if it can): the unpacked tree is absent."""
    master = os.path.join(cyrus_root(), "usr/lib/cyrus/bin/master")
    if os.access(master, os.X_OK):
        return None
    return (f"Cyrus is not unpacked at {cyrus_root()} (set ${ROOT_ENV} or run "
            "tests/world/install_cyrus.sh as root)")


def accepts(raw):
    """Whether Cyrus stores `raw` at APPEND (see the module docstring)."""
    if b"\0" in raw or _BARE_LINE_END.search(raw):
        return False
    header = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw
    lines = header.split(b"\r\n")
    if lines[0].startswith(b"From "):  # an mbox envelope line first is let through
        lines = lines[1:]
    for line in lines:
        if line and line[:1] not in (b" ", b"\t") and not _HEADER_NAME.match(line):
            return False
    return True


def served(raw):
    """The bytes Cyrus serves for an accepted `raw`: 8-bit header bytes become `X`."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    return bytes(c if c < 0x80 else 0x58 for c in head) + sep + body


class CyrusServer(PrivateServer):
    """A started Cyrus (IMAP/IMAPS/POP3/POP3S, STARTTLS/STLS, the test CA's certificate) with
    sasldb users."""

    profile = "cyrus"
    name = "cyrus"
    start_timeout = 30
    prefix = "INBOX."
    delimiter = "."
    accepts = staticmethod(accepts)
    served = staticmethod(served)

    def __init__(self, certs, *, keep_dir=False):
        self.root = cyrus_root()
        self.certs = certs
        self.ca_cert = certs.ca_cert
        self.host = HOST
        self.keep_dir = keep_dir
        self.as_root = os.geteuid() == 0
        self.passwords = {}
        self.env = {**os.environ,
                    "LD_LIBRARY_PATH": os.path.join(self.root, "usr/lib/x86_64-linux-gnu")}

    # -- paths and config ------------------------------------------------------------
    def _bin(self, name):
        return os.path.join(self.root, "usr/lib/cyrus/bin", name)

    def _imapd_conf(self):
        user, group = ("nobody", "nogroup") if self.as_root else (pwd.getpwuid(os.getuid())
                                                                   .pw_name, None)
        lines = {
            "configdirectory": self._path("conf"), "proc_path": self._path("run/proc"),
            "mboxname_lockpath": self._path("run/lock"),
            "partition-default": self._path("spool"), "defaultpartition": "default",
            "sievedir": self._path("sieve"), "cyrus_user": user, "admins": ADMIN,
            "altnamespace": "no", "unixhierarchysep": "no", "allowplaintext": "yes",
            "autocreate_quota": "0", "hashimapspool": "true",
            "sasl_pwcheck_method": "auxprop", "sasl_auxprop_plugin": "sasldb",
            "sasl_sasldb_path": self._path("sasldb2"), "sasl_mech_list": "PLAIN LOGIN",
            "lmtpsocket": self._path("run/socket/lmtp"),
            "idlesocket": self._path("run/socket/idle"),
            "notifysocket": self._path("run/socket/notify"), "popminpoll": "0",
            "tls_server_cert": self._path("tls.crt"), "tls_server_key": self._path("tls.key"),
        }
        if group:
            lines["cyrus_group"] = group
        return "".join(f"{key}: {value}\n" for key, value in lines.items())

    def _cyrus_conf(self):
        conf = self._path("imapd.conf")
        return (f'START {{ recover cmd="{self._bin("ctl_cyrusdb")} -C {conf} -r" }}\n'
                "SERVICES {\n"
                f'  imap cmd="{self._bin("imapd")} -C {conf}" '
                f'listen="{HOST}:{self.imap_port}" prefork=0\n'
                f'  pop3 cmd="{self._bin("pop3d")} -C {conf}" '
                f'listen="{HOST}:{self.pop3_port}" prefork=0\n'
                f'  imaps cmd="{self._bin("imapd")} -s -C {conf}" '
                f'listen="{HOST}:{self.imaps_port}" prefork=0\n'
                f'  pop3s cmd="{self._bin("pop3d")} -s -C {conf}" '
                f'listen="{HOST}:{self.pop3s_port}" prefork=0\n'
                "}\n")

    # -- lifecycle (tests/world/private_server.py) --------------------------------------
    def start(self):
        reason = missing_reason()
        if reason:
            raise RuntimeError(reason)
        return super().start()

    def _prepare_dir(self):
        for sub in ("conf", "spool", "sieve", "run/proc", "run/lock", "run/socket"):
            os.makedirs(self._path(sub))
        shutil.copyfile(self.certs.cert, self._path("tls.crt"))
        shutil.copyfile(self.certs.key, self._path("tls.key"))
        os.chmod(self._path("tls.key"), 0o600)

    def _configure(self):
        self.imap_port, self.pop3_port, self.imaps_port, self.pop3s_port = free_ports(4)
        with open(self._path("imapd.conf"), "w") as f:
            f.write(self._imapd_conf())
        with open(self._path("cyrus.conf"), "w") as f:
            f.write(self._cyrus_conf())
        self._own()

    def _own(self):
        if self.as_root:
            for base, dirs, files in os.walk(self.dir):
                for name in [base, *(os.path.join(base, n) for n in dirs + files)]:
                    shutil.chown(name, "nobody", "nogroup")

    def _command(self):
        return [self._bin("master"), "-C", self._path("imapd.conf"), "-M",
                self._path("cyrus.conf"), "-p", self._path("run/master.pid"), "-D"]

    def _spawn_log(self):
        return self._path("master.log")

    def _spawn_env(self):
        return self.env

    def _failure(self):
        return f"cyrus failed to start:\n{self.log_text()}"

    def _ports(self):
        return [self.imap_port, self.pop3_port, self.imaps_port, self.pop3s_port]

    def stop(self):
        """SIGTERM the master's process group (it stops its children), SIGKILL on a hang."""
        if self.proc is not None:
            group = self.proc.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)  # children that outlived their master
            self.proc = None
        if self.dir and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self._path("master.log"), errors="replace") as f:
                return f.read()
        except (FileNotFoundError, TypeError):
            return ""

    # -- users and mailboxes -----------------------------------------------------------
    def add_user(self, name, password="secret"):
        done = subprocess.run(
            [os.path.join(self.root, "usr/sbin/saslpasswd2"), "-p", "-c", "-f",
             self._path("sasldb2"), "-u", "", name], input=password.encode(),
            capture_output=True, env=self.env, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"saslpasswd2 {name}: {done.stderr.decode(errors='replace')}")
        if self.as_root:  # the services run as nobody and read it
            shutil.chown(self._path("sasldb2"), "nobody", "nogroup")
        self.passwords[name] = password
        return MailUser(name, password, None)

    def folder_name(self, name):
        """The server name of a corpus folder name (written for an empty prefix)."""
        return name if name.upper() == "INBOX" else self.prefix + name

    @contextlib.contextmanager
    def client(self, user):
        user = getattr(user, "name", user)
        client = imapclient.IMAPClient(HOST, self.imap_port, ssl=False, timeout=30)
        try:
            client.normalise_times = False
            client.login(user, self.passwords[user])
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def folders(self, user):
        with self.client(user) as client:
            return [name for flags, _, name in client.list_folders()
                    if b"\\Noselect" not in flags]

    def create_folder(self, user, name):
        with self.client(user) as client:
            client.create_folder(name)
            client.subscribe_folder(name)

    def mailbox_status(self, user, folder, field):
        with self.client(user) as client:
            return client.folder_status(folder, [field.upper()])[field.upper().encode()]

    def seed(self, user, folder, messages):
        """APPEND `messages` (bare LFs made CRLF, as delivery would) to `folder`; their UIDs,
        None for a message Cyrus refuses, which `accepts` must have predicted."""
        uids = []
        with self.client(user) as client:
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
                client.subscribe_folder(folder)
            for message in messages:
                uids.append(_append(client, folder, message))
        return uids

    def list_messages(self, user, folder):
        """[StoredMessage] by UID, as IMAP serves them."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            items = client.fetch(uids, ["BODY.PEEK[]", "FLAGS", "INTERNALDATE",
                                        "RFC822.SIZE"]) if uids else {}
        return sorted(StoredMessage(uid, frozenset(f.decode() for f in data[b"FLAGS"])
                                    - {"\\Recent"},
                                    data[b"INTERNALDATE"].astimezone(datetime.UTC),
                                    data[b"BODY[]"], data[b"RFC822.SIZE"])
                      for uid, data in items.items())


def _append(client, folder, message):
    raw = _LINE_END.sub(b"\r\n", bytes(message.raw))
    when = message.internaldate
    if isinstance(when, (int, float)):
        when = datetime.datetime.fromtimestamp(when, datetime.UTC)
    try:
        answer = client.append(folder, raw, flags=list(message.flags), msg_time=when)
    except imapclient.exceptions.IMAPClientError as exc:
        if accepts(raw):
            raise AssertionError(f"Cyrus refused a message its profile says it takes: "
                                 f"{exc}") from exc
        return None
    if not accepts(raw):
        raise AssertionError("Cyrus took a message the profile says it refuses")
    match = re.search(rb"APPENDUID \d+ (\d+)", answer)
    return int(match.group(1)) if match else None
