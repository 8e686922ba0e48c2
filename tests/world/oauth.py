"""A local Microsoft Entra ID look-alike that real MSAL can talk to.

HTTPS (test CA) on a free loopback port, serving for tenant T:
  GET  /T/v2.0/.well-known/openid-configuration  (MSAL fetches this for
       authority=https://127.0.0.1:P/T with instance_discovery=False, and
       for oidc_authority=https://127.0.0.1:P/T/v2.0 it must name that as issuer)
  POST /T/oauth2/v2.0/devicecode                 device authorization
  POST /T/oauth2/v2.0/token                      client_credentials,
       device_code, refresh_token grants
Plain HTTP on a second loopback port, for Dovecot (which would need the CA):
  POST /introspect  token=...[&mailbox=...] -> {"active": ..., "username": ...}

MSAL only decodes id_token claims (no signature check), so tokens are
unsigned JWTs; the service keeps its own table of what it issued. App-only
(client credentials) tokens name no user: introspection with `mailbox`
answers active, with username = that mailbox, only if `grant(client_id,
mailbox)` was called. Delegated (device code) tokens belong to the approving
UPN. Knobs: refuse_tokens, expire_all(), revoke_all(); counters: issued,
introspections, requests.
"""
import base64
import collections
import json
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from .net import HOST

APP_ROLE = "IMAP.AccessAsApp"
USER_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims):
    header = _b64url(json.dumps({"typ": "JWT", "alg": "none"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{secrets.token_urlsafe(16)}"


def _oid(upn):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "upn:" + upn.lower()))


@dataclass
class _Token:
    client_id: str
    upn: object  # None for app-only tokens
    expires_at: float
    revoked: bool = False


@dataclass
class _DeviceCode:
    client_id: str
    user_code: str
    scope: str
    expires_at: float
    upn: object = None  # set by approve()


class OAuthError(Exception):
    """An Entra-style error reply: HTTP status, error, AADSTS code, text."""

    def __init__(self, status, error, code, message):
        super().__init__(f"AADSTS{code}: {message}")
        self.status, self.error, self.code = status, error, code

    def body(self):
        return {"error": self.error, "error_description": str(self),
                "error_codes": [self.code]}


class OAuthService:
    """Token issuer + introspection endpoint; start()/stop() or `with`."""

    def __init__(self, certs, *, tenant="migrator-test", token_lifetime=3600,
                 device_code_lifetime=900, poll_interval=1):
        self.ca_cert = certs.ca_cert
        self.tenant = tenant
        self.tenant_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "tenant:" + tenant))
        self.token_lifetime = token_lifetime
        self.device_code_lifetime = device_code_lifetime
        self.poll_interval = poll_interval
        self.refuse_tokens = False
        self.issued = collections.Counter()          # by grant type
        self.introspections = collections.Counter()  # "active" / "inactive"
        self.requests = []                           # (method, path) seen on HTTPS
        self._lock = threading.Lock()
        self._clients = {}      # client_id -> secret (None: public client)
        self._grants = set()    # (client_id, mailbox lower-case)
        self._tokens = {}       # access token -> _Token
        self._refresh = {}      # refresh token -> _Token
        self._device = {}       # device code -> _DeviceCode
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(certs.cert, certs.key)
        self._servers = []
        self._sessions = []

    # -- lifecycle -------------------------------------------------------
    def start(self):
        https = _TLSServer((HOST, 0), _Handler, self._ssl)
        http = ThreadingHTTPServer((HOST, 0), _Handler)
        for server in (https, http):
            server.daemon_threads = True
            server.service = self
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"oauth-{server.server_address[1]}", daemon=True)
            thread.start()
            self._servers.append((server, thread))
        self.port = https.server_address[1]
        self.introspection_port = http.server_address[1]
        return self

    def stop(self):
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(5)
        self._servers = []
        for session in self._sessions:
            session.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- addresses --------------------------------------------------------
    @property
    def base_url(self):
        return f"https://{HOST}:{self.port}"

    @property
    def authority(self):
        """For msal `authority=` (pass instance_discovery=False)."""
        return f"{self.base_url}/{self.tenant}"

    @property
    def oidc_authority(self):
        """For msal `oidc_authority=`; equals the advertised issuer."""
        return f"{self.authority}/v2.0"

    @property
    def introspection_url(self):
        return f"http://{HOST}:{self.introspection_port}/introspect"

    # -- test controls ------------------------------------------------------
    def add_client(self, client_id, secret=None):
        """Register an app; with a secret it may use client credentials."""
        with self._lock:
            self._clients[client_id] = secret

    def grant(self, client_id, mailbox):
        """Let app-only tokens of `client_id` open `mailbox`."""
        with self._lock:
            self._grants.add((client_id, mailbox.lower()))

    def approve(self, user_code, upn):
        """The user `upn` enters `user_code` at the verification page."""
        with self._lock:
            for code in self._device.values():
                if code.user_code == user_code:
                    code.upn = upn
                    return
        raise KeyError(f"no pending device code with user code {user_code!r}")

    def pending_user_codes(self):
        with self._lock:
            return [c.user_code for c in self._device.values() if c.upn is None]

    def expire_all(self):
        """Every access token issued so far is now expired (refresh still works)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0

    def revoke_all(self):
        """Access and refresh tokens issued so far stop working."""
        with self._lock:
            for token in [*self._tokens.values(), *self._refresh.values()]:
                token.revoked = True

    def http_session(self):
        """A requests.Session for msal's http_client: trusts the test CA, ignores
        proxies; closed by stop()."""
        session = requests.Session()
        self._sessions.append(session)
        session.trust_env = False
        session.verify = self.ca_cert
        return session

    @property
    def tokens_issued(self):
        return sum(self.issued.values())

    # -- protocol ----------------------------------------------------------
    def openid_configuration(self):
        oauth = f"{self.authority}/oauth2/v2.0"
        return {
            "issuer": self.oidc_authority,
            "authorization_endpoint": f"{oauth}/authorize",
            "token_endpoint": f"{oauth}/token",
            "device_authorization_endpoint": f"{oauth}/devicecode",
            "jwks_uri": f"{self.authority}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "grant_types_supported": ["client_credentials", "refresh_token",
                                      "urn:ietf:params:oauth:grant-type:device_code"],
            "tenant_region_scope": "EU",
        }

    def device_authorization(self, form):
        client_id = form.get("client_id", "")
        self._check_client(client_id, None, public=True)
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        with self._lock:
            self._device[device_code] = _DeviceCode(
                client_id, user_code, form.get("scope", ""),
                time.time() + self.device_code_lifetime)
        uri = f"{self.base_url}/devicelogin"
        return {"device_code": device_code, "user_code": user_code,
                "verification_uri": uri, "expires_in": self.device_code_lifetime,
                "interval": self.poll_interval,
                "message": f"To sign in, use a web browser to open the page {uri} "
                           f"and enter the code {user_code} to authenticate."}

    def token(self, form):
        grant_type = form.get("grant_type")
        handlers = {"client_credentials": self._client_credentials,
                    "urn:ietf:params:oauth:grant-type:device_code": self._device_code,
                    "refresh_token": self._refresh_token}
        if grant_type not in handlers:
            raise OAuthError(400, "unsupported_grant_type", 70003, f"grant {grant_type}")
        return handlers[grant_type](form)

    def _check_client(self, client_id, secret, public=False):
        with self._lock:
            known = client_id in self._clients
            expected = self._clients.get(client_id)
        if not known:
            raise OAuthError(400, "unauthorized_client", 700016,
                             f"Application {client_id} not found")
        if not public and (expected is None or secret != expected):
            raise OAuthError(401, "invalid_client", 7000215, "Invalid client secret")

    def _client_credentials(self, form):
        client_id = form.get("client_id", "")
        self._check_client(client_id, form.get("client_secret"))
        if not form.get("scope", "").endswith("/.default"):
            raise OAuthError(400, "invalid_scope", 1002012, "use a /.default scope")
        access = self._issue(client_id, None, "client_credentials")
        return {"token_type": "Bearer", "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime, "access_token": access}

    def _device_code(self, form):
        with self._lock:
            code = self._device.get(form.get("device_code", ""))
            if code is None or code.expires_at < time.time():
                raise OAuthError(400, "expired_token", 70020, "device code expired")
            if code.upn is None:
                raise OAuthError(400, "authorization_pending", 70016,
                                 "OAuth 2.0 device flow error. Authorization is pending.")
            del self._device[form["device_code"]]
        return self._user_tokens(code.client_id, code.upn, code.scope, "device_code")

    def _refresh_token(self, form):
        with self._lock:
            old = self._refresh.get(form.get("refresh_token", ""))
        if old is None or old.revoked:
            raise OAuthError(400, "invalid_grant", 50173, "The provided grant has expired")
        return self._user_tokens(old.client_id, old.upn, form.get("scope", ""), "refresh_token")

    def _issue(self, client_id, upn, grant_type):
        now = time.time()
        claims = {"aud": "https://outlook.office.com", "iss": self.oidc_authority,
                  "iat": int(now), "exp": int(now + self.token_lifetime),
                  "appid": client_id, "tid": self.tenant_id, "jti": secrets.token_hex(8)}
        if upn is None:
            claims["roles"] = [APP_ROLE]
        else:
            claims.update(upn=upn, oid=_oid(upn), scp="IMAP.AccessAsUser.All")
        access = _jwt(claims)
        with self._lock:
            self._tokens[access] = _Token(client_id, upn, now + self.token_lifetime)
            self.issued[grant_type] += 1
        return access

    def _user_tokens(self, client_id, upn, scope, grant_type):
        access = self._issue(client_id, upn, grant_type)
        refresh = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh[refresh] = _Token(client_id, upn, float("inf"))
        now = int(time.time())
        id_claims = {"aud": client_id, "iss": self.oidc_authority, "iat": now, "nbf": now,
                     "exp": now + 3600, "name": upn.split("@")[0], "oid": _oid(upn),
                     "preferred_username": upn, "sub": _oid(upn), "tid": self.tenant_id,
                     "ver": "2.0"}
        client_info = {"uid": _oid(upn), "utid": self.tenant_id}
        return {"token_type": "Bearer", "scope": scope or USER_SCOPE,
                "expires_in": self.token_lifetime, "ext_expires_in": self.token_lifetime,
                "access_token": access, "refresh_token": refresh,
                "id_token": _jwt(id_claims),
                "client_info": _b64url(json.dumps(client_info).encode())}

    def introspect(self, token, mailbox=None):
        """Dovecot's view of a token: who it may log in as, if anyone."""
        with self._lock:
            record = self._tokens.get(token)
            username = self._username(record, mailbox)
            self.introspections["active" if username else "inactive"] += 1
        if username is None:
            return {"active": False}
        return {"active": True, "username": username, "client_id": record.client_id,
                "exp": int(record.expires_at)}

    def _username(self, record, mailbox):
        if (self.refuse_tokens or record is None or record.revoked
                or record.expires_at <= time.time()):
            return None
        if record.upn is not None:
            same = mailbox is None or mailbox.lower() == record.upn.lower()
            return record.upn if same else None
        if mailbox is not None and (record.client_id, mailbox.lower()) in self._grants:
            return mailbox
        return None


class _TLSServer(ThreadingHTTPServer):
    """HTTPS server that does the TLS handshake in the request thread."""

    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    timeout = 10

    def log_message(self, *args):
        pass

    @property
    def service(self):
        return self.server.service

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self):
        length = int(self.headers.get("Content-Length") or 0)
        pairs = urllib.parse.parse_qsl(self.rfile.read(length).decode())
        return dict(pairs)

    def do_GET(self):
        service = self.service
        service.requests.append(("GET", self.path))
        path = urllib.parse.urlsplit(self.path).path
        if path == f"/{service.tenant}/v2.0/.well-known/openid-configuration":
            self._send(200, service.openid_configuration())
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self):
        service = self.service
        path = urllib.parse.urlsplit(self.path).path
        form = self._form()
        if path == "/introspect":
            self._send(200, service.introspect(form.get("token", ""), form.get("mailbox")))
            return
        service.requests.append(("POST", self.path))
        routes = {f"/{service.tenant}/oauth2/v2.0/token": service.token,
                  f"/{service.tenant}/oauth2/v2.0/devicecode": service.device_authorization}
        if path not in routes:
            self._send(404, {"error": "not_found"})
            return
        try:
            self._send(200, routes[path](form))
        except OAuthError as e:
            self._send(e.status, e.body())
