"""Private Dovecot instances playing the migration source and Exchange Online.

Each server lives in its own temp dir (mode 755 so Dovecot's unprivileged
processes can traverse it) with its own config, base_dir, state_dir, log and
users, listens on free 127.0.0.1 ports and runs as `dovecot -F -c CONF` in its
own process group; the system service is never touched. stop() sends SIGTERM
to the group and SIGKILLs leftovers after a short grace: Dovecot's master
otherwise lingers 1-6 s and may leave mail processes of open sessions behind.
As root, mail belongs to `nobody` and login/internal processes run as
`dovenull`/`dovecot`; as a normal user everything runs as that user.

Users live in one passwd-file per user (users/name, lower-cased like
Dovecot's login names, found via %u in the passdb/userdb path). One shared
file would not do: Dovecot rereads a changed passwd-file at most once per
second, so a user appended right after a login would stay unknown for up to a
second; a new file is read at once.

SourceServer: IMAP (STARTTLS), IMAPS, POP3 (STLS), POP3S; LOGIN/PLAIN with
passwords; Maildir++ with separator "." and an empty namespace prefix, so
folders look like "INBOX", "Archive.2019"; POP3 never changes flags
(pop3_no_flag_updates) and UIDLs are %08Xu%08Xv, which Dovecot renders in
lower-case hex (uid then uidvalidity).

Office365Server (Exchange Online look-alike): IMAPS only, Exchange greeting
and capability list (pre-login Dovecot appends LOGINDISABLED AUTH=XOAUTH2
AUTH=OAUTHBEARER), SASL XOAUTH2/OAUTHBEARER only, so LOGIN is refused;
separator "/" with empty prefix (Maildir LAYOUT=fs, so "." is allowed in
names), auto-subscribed special-use folders, and APPEND answered
NO [LIMIT] above `max_mail_size` by the quota plugin (its `count` backend
refuses to start without quota_vsizes=yes).

Tokens: a first `oauth2` passdb posts the token to the OAuth service's
introspection URL; that accepts delegated (device-code) tokens, whose user is
known from the token alone. Dovecot 2.3.19 does not expand %u in
introspection_url (a literal "%u" breaks its HTTP client and panics the auth
process) and sends nothing about the login name, so it cannot check app-only
tokens, which Exchange accepts for any mailbox the app was granted. A second
`checkpassword` passdb (a script this module writes) therefore posts the token
*and* the XOAUTH2 user= name; the service answers active with that username
only if the app holds a grant for that mailbox. So an app login costs two
introspections (inactive, then active). As root the auth process runs as root
so it can exec this interpreter.

Both run with mail_fsync = never: test mail need not survive a crash, and
big seeds and benchmarks stay fast. Failed logins are not slowed down beyond
Dovecot's 0.5 s failure flush (auth_failure_delay = 0; the anvil auth-penalty
socket is disabled, which logs a harmless "anvil-auth-penalty" error line per
login).
"""
import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import urllib.parse
from typing import NamedTuple

from . import mailstore
from .net import HOST, free_port, free_ports, wait_until
from .private_server import PrivateServer

START_TIMEOUT = 10
STOP_TIMEOUT = 10
DOVEADM_TIMEOUT = 120


class MailUser(NamedTuple):
    name: str
    password: object  # None for office365 mailboxes
    home: str


def _identity():
    """(mail uid, mail gid, extra settings, as_root) for whoever runs us."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(os.getegid()).gr_name
        settings = (f"default_login_user = {me.pw_name}\n"
                    f"default_internal_user = {me.pw_name}\n"
                    f"default_internal_group = {group}\n")
        return me.pw_uid, os.getegid(), settings, False
    nobody = pwd.getpwnam("nobody")
    settings = (f"default_login_user = {_first_user('dovenull', 'nobody')}\n"
                f"default_internal_user = {_first_user('dovecot', 'nobody')}\n")
    return nobody.pw_uid, nobody.pw_gid, settings, True


def _binary(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        raise RuntimeError(f"{name} not found: apt-get install dovecot-imapd dovecot-pop3d")
    return path


def _first_user(*names):
    for name in names:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError(f"none of the users {names} exists")


def _listener(name, port, ssl=False):
    return (f"  inet_listener {name} {{\n    address = {HOST}\n    port = {port}\n"
            + ("    ssl = yes\n" if ssl else "") + "  }\n")


class DovecotServer(PrivateServer):
    """Lifecycle, users and mailbox helpers common to both profiles."""

    profile = None
    start_timeout = START_TIMEOUT
    protocols = "imap"
    # What the tests expect of this server (tests/world/cyrus.py has Cyrus's values):
    prefix = ""  # personal namespace prefix: folders sit beside INBOX, INBOX.Sub is its child
    accepts = staticmethod(lambda raw: True)  # APPEND and seeding store every message
    served = staticmethod(mailstore.as_imap_bytes)  # bare LF served as CRLF, rest unchanged

    @staticmethod
    def folder_name(name):
        """The server name of a corpus folder name: the same, with the empty prefix."""
        return name

    def __init__(self, certs, *, debug=False, keep_dir=False):
        self.dovecot, self.doveadm_bin = _binary("dovecot"), _binary("doveadm")
        self.certs = certs
        self.ca_cert = certs.ca_cert
        self.host = HOST
        self.debug = debug
        self.keep_dir = keep_dir
        self.name = f"dovecot-{self.profile}"
        uid, gid, self._identity_settings, self.as_root = _identity()
        self.mail_owner = (uid, gid) if self.as_root else None
        self.mail_uid, self.mail_gid = uid, gid
        self.group = None  # process group id = master pid, kept after stop

    # -- paths -------------------------------------------------------------
    @property
    def config_path(self):
        return self._path("dovecot.conf")

    @property
    def log_path(self):
        return self._path("dovecot.log")

    @property
    def users_path(self):
        """passwd-file path as Dovecot sees it: one file per user."""
        return self._path("users", "%u")

    # -- config --------------------------------------------------------------
    def _allocate_ports(self):
        raise NotImplementedError

    def _profile_config(self):
        raise NotImplementedError

    def _ports(self):
        raise NotImplementedError

    def _common_config(self):
        debug = "auth_debug = yes\nmail_debug = yes\n" if self.debug else ""
        return f"""\
protocols = {self.protocols}
listen = {HOST}
base_dir = {self._path('run')}
state_dir = {self._path('state')}
log_path = {self.log_path}
instance_name = migrator-{self.profile}
{self._identity_settings}first_valid_uid = {self.mail_uid}
first_valid_gid = 1
ssl = yes
ssl_cert = <{self.certs.cert}
ssl_key = <{self.certs.key}
ssl_min_protocol = TLSv1.2
auth_failure_delay = 0
auth_verbose = yes
mail_fsync = never
{debug}userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_path}
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth-worker {{
  user = {'root' if self.as_root else '$default_internal_user'}
}}
"""

    def _write_config(self):
        with open(self.config_path, "w") as f:
            f.write(self._common_config() + self._profile_config())

    # -- lifecycle (tests/world/private_server.py) -------------------------
    def _prepare_dir(self):
        for sub in ("run", "state", "home"):
            os.mkdir(self._path(sub), 0o755)
        if self.as_root:
            os.chown(self._path("home"), self.mail_uid, self.mail_gid)
        os.mkdir(self._path("users"), 0o755)

    def _configure(self):
        self._allocate_ports()
        self._write_config()

    def _command(self):
        return [self.dovecot, "-F", "-c", self.config_path]

    def _spawn_log(self):
        return self._path("stderr.log")

    def _started(self, proc):
        self.group = proc.pid

    def _may_retry(self):
        return "Address already in use" in self._startup_errors()

    def _failure(self):
        return f"dovecot failed to start:\n{self._startup_errors()}"

    def _startup_errors(self):
        with open(self._path("stderr.log"), errors="replace") as f:
            return f.read() + self.log_text()

    def stop(self):
        """SIGKILL the master's process group, reap the master, and remove the dir.
        Nothing of a test server outlives it (its dir goes), so there is nothing to shut
        down cleanly; a SIGTERM'd master lingers 1-6 s, which every test would wait out."""
        if self.proc is not None:
            _signal_group(self.group, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
            wait_until(lambda: not self.processes(), STOP_TIMEOUT,
                       what=f"dovecot process group {self.group} to exit")
            self.proc = None
        if self.dir and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def processes(self):
        """PIDs of live (non-zombie) processes in this instance's group."""
        if self.group is None:
            return []
        return [pid for pid in _pids() if _group_of(pid) == self.group]

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- users ----------------------------------------------------------------
    def add_user(self, name, password=None):
        """Create a login/mailbox. Names are case-insensitive, as in Exchange:
        Dovecot lower-cases login names (auth_username_format = %Lu)."""
        if "/" in name or name.startswith("."):
            raise ValueError(f"unsupported user name {name!r}")
        key = name.lower()
        home = self._path("home", key)
        scheme = "" if password is None else "{PLAIN}" + password
        path = self._path("users", key)
        with open(path, "w") as f:
            f.write(f"{key}:{scheme}:{self.mail_uid}:{self.mail_gid}::{home}::\n")
        os.chmod(path, 0o644)
        return MailUser(name, password, home)

    # -- doveadm & mailboxes -------------------------------------------------
    def doveadm(self, *args, input=None):
        done = subprocess.run([self.doveadm_bin, "-c", self.config_path, *args],
                              input=input, capture_output=True, timeout=DOVEADM_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({done.returncode}): "
                               + done.stderr.decode(errors="replace"))
        return done.stdout.decode("utf-8")

    def folders(self, user):
        """Folder names (UTF-8, server hierarchy separator) of `user`."""
        return self.doveadm("mailbox", "list", "-u", _name(user)).splitlines()

    def create_folder(self, user, name):
        """Create and subscribe `name` (UTF-8; Dovecot stores it as mUTF-7)."""
        self.doveadm("mailbox", "create", "-s", "-u", _name(user), name)

    def mailbox_path(self, user, folder):
        return self.doveadm("mailbox", "path", "-u", _name(user), folder).strip()

    def mailbox_status(self, user, folder, field):
        out = self.doveadm("-f", "flow", "mailbox", "status", "-u", _name(user), field, folder)
        return int(out.strip().split("=", 1)[1])

    def seed(self, user, folder, messages):
        """Store messages (raw, flags, internaldate) fast; return their UIDs."""
        return mailstore.seed(self, _name(user), folder, messages)

    def seed_mailbox(self, user, messages):
        """Write (folder, message) pairs straight into the user's Maildir, folders and all,
        then let Dovecot index them once: for mailboxes too big for `seed` (see
        maildir_seed); returns messages per folder."""
        from .maildir_seed import seed_mailbox
        return seed_mailbox(self, _name(user), messages)

    def list_messages(self, user, folder):
        """[StoredMessage(uid, flags, internaldate, raw, size)] by UID."""
        return mailstore.list_messages(self, _name(user), folder)


def _name(user):
    return getattr(user, "name", user)


def _pids():
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _group_of(pid):
    """Process group of a live process, None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[2])


def _signal_group(group, sig):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


# Each TLS session keeps its own imap-login process (it relays the TLS), and at Dovecot's
# default limit of 100 the master drops connections still logging in ("Connection queue
# full"): a server-wide cap Exchange does not have (it limits connections per mailbox, as
# mail_max_userip_connections does here), met by a batch of 16 mailboxes at once.
LOGIN_PROCESS_LIMIT = 500  # below 1000, the auth and anvil client_limit the total must fit


class SourceServer(DovecotServer):
    """The mailbox being migrated from: IMAP/IMAPS/POP3/POP3S with passwords."""

    profile = "source"
    protocols = "imap pop3"

    def _allocate_ports(self):
        self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = free_ports(4)

    def _ports(self):
        return [self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port]

    def _profile_config(self):
        return f"""\
auth_mechanisms = plain login
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
pop3_no_flag_updates = yes
pop3_uidl_format = %08Xu%08Xv
protocol imap {{
  mail_max_userip_connections = 100
}}
namespace inbox {{
  inbox = yes
  separator = .
  prefix =
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_path}
}}
service imap-login {{
  chroot =
  process_limit = {LOGIN_PROCESS_LIMIT}
{_listener('imap', self.imap_port)}{_listener('imaps', self.imaps_port, ssl=True)}}}
service pop3-login {{
  chroot =
{_listener('pop3', self.pop3_port)}{_listener('pop3s', self.pop3s_port, ssl=True)}}}
"""

    def add_user(self, name, password="secret"):
        return super().add_user(name, password)


_SPECIAL_FOLDERS = (("Sent Items", "\\Sent"), ("Deleted Items", "\\Trash"),
                    ("Drafts", "\\Drafts"), ("Junk Email", "\\Junk"),
                    ("Archive", "\\Archive"))

_CHECKPASSWORD = '''\
#!{python} -S
"""Dovecot checkpassword: ask the OAuth service whether TOKEN opens MAILBOX."""
import http.client, json, os, sys, urllib.parse


def main():
    data = b""
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        data += chunk
    user, token = data.split(b"\\0")[:2]
    body = urllib.parse.urlencode({{"token": token, "mailbox": user}})
    try:
        conn = http.client.HTTPConnection({host!r}, {port}, timeout=10)
        conn.request("POST", {path!r}, body,
                     {{"Content-Type": "application/x-www-form-urlencoded"}})
        reply = json.loads(conn.getresponse().read())
    except (OSError, ValueError):
        return 111
    if reply.get("active") is not True or reply.get("username") != user.decode():
        return 1
    os.write(4, b"user=" + user + b"\\t")
    return 0


sys.exit(main())
'''


class Office365Server(DovecotServer):
    """Exchange Online look-alike: IMAPS + XOAUTH2 against an OAuthService."""

    profile = "office365"
    greeting = "Microsoft Exchange IMAP4 service is ready."
    capability = "IMAP4rev1 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"

    def __init__(self, certs, introspection_url, *, max_mail_size="35M", **kwargs):
        super().__init__(certs, **kwargs)
        self.introspection_url = introspection_url
        self.max_mail_size = max_mail_size

    def _allocate_ports(self):
        self.imaps_port = free_port()

    def _ports(self):
        return [self.imaps_port]

    def _write_config(self):
        self._write_checkpassword()
        with open(self._path("oauth2.conf"), "w") as f:
            f.write(f"introspection_mode = post\n"
                    f"introspection_url = {self.introspection_url}\n"
                    "force_introspection = yes\nusername_attribute = username\n"
                    "active_attribute = active\nactive_value = true\n")
        super()._write_config()

    def _write_checkpassword(self):
        url = urllib.parse.urlsplit(self.introspection_url)
        with open(self._path("checkpassword.py"), "w") as f:
            f.write(_CHECKPASSWORD.format(python=sys.executable, host=url.hostname,
                                          port=url.port or 80, path=url.path or "/"))
        os.chmod(self._path("checkpassword.py"), 0o755)

    def _profile_config(self):
        folders = "".join(f'  mailbox "{name}" {{\n    special_use = {use}\n'
                          f"    auto = subscribe\n  }}\n"
                          for name, use in _SPECIAL_FOLDERS)
        auth_user = "service auth {\n  user = root\n}\n" if self.as_root else ""
        return f"""\
auth_mechanisms = xoauth2 oauthbearer
mail_location = maildir:~/Maildir:LAYOUT=fs
login_greeting = {self.greeting}
imap_capability = {self.capability}
mail_plugins = $mail_plugins quota
plugin {{
  quota = count:User quota
  quota_vsizes = yes
  quota_max_mail_size = {self.max_mail_size}
}}
protocol imap {{
  mail_max_userip_connections = 20
}}
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
{folders}}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self._path('oauth2.conf')}
}}
passdb {{
  driver = checkpassword
  mechanisms = xoauth2 oauthbearer
  args = {self._path('checkpassword.py')}
}}
{auth_user}service imap-login {{
  chroot =
  process_limit = {LOGIN_PROCESS_LIMIT}
  inet_listener imap {{
    port = 0
  }}
{_listener('imaps', self.imaps_port, ssl=True)}}}
"""

    def add_user(self, name, password=None):
        return super().add_user(name, None)
