"""Self-tests of the Exchange Online look-alike with real MSAL against the OAuth service."""
import ssl

import imapclient
import msal
import pytest

from tests.world.mailstore import SeedMessage

pytestmark = pytest.mark.world

APP_SCOPE = ["https://outlook.office365.com/.default"]
USER_SCOPE = ["https://outlook.office.com/IMAP.AccessAsUser.All"]


def _connect(server, certs, closing):
    return closing(imapclient.IMAPClient(
        server.host, server.imaps_port,
        ssl_context=ssl.create_default_context(cafile=certs.ca_cert)))


def _app_token(oauth, client_id="app", secret="s3cret"):
    app = msal.ConfidentialClientApplication(
        client_id, client_credential=secret, authority=oauth.authority,
        http_client=oauth.http_session(), instance_discovery=False)
    result = app.acquire_token_for_client(scopes=APP_SCOPE)
    assert "access_token" in result, result
    return result["access_token"]


def _device_flow(oauth, upn, client_id="public-app", **authority):
    authority = authority or {"authority": oauth.authority, "instance_discovery": False}
    app = msal.PublicClientApplication(client_id, http_client=oauth.http_session(),
                                       **authority)
    flow = app.initiate_device_flow(scopes=USER_SCOPE)
    assert oauth.pending_user_codes() == [flow["user_code"]]
    oauth.approve(flow["user_code"], upn)
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    return app, result


def test_app_token_from_msal_opens_granted_mailbox_and_login_is_refused(
        office365_server, oauth_service, certs, closing):
    oauth_service.add_client("app", "s3cret")
    oauth_service.grant("app", "bob@contoso.test")
    office365_server.add_user("bob@contoso.test")
    office365_server.add_user("carol@contoso.test")
    token = _app_token(oauth_service)

    client = _connect(office365_server, certs, closing)
    assert b"Microsoft Exchange" in client.welcome
    assert {b"AUTH=XOAUTH2", b"LOGINDISABLED"} <= set(client.capabilities())
    with pytest.raises(imapclient.exceptions.LoginError):
        client.login("bob@contoso.test", token)
    client.oauth2_login("bob@contoso.test", token)
    assert b"AUTH=XOAUTH2" not in client.capabilities()
    assert {b"UIDPLUS", b"MOVE", b"IDLE", b"LITERAL+"} <= set(client.capabilities())

    with pytest.raises(imapclient.exceptions.LoginError):
        _connect(office365_server, certs, closing).oauth2_login("carol@contoso.test", token)
    assert oauth_service.issued == {"client_credentials": 1}
    assert ("GET", "/migrator-test/v2.0/.well-known/openid-configuration") \
        in oauth_service.requests


def test_wrong_client_secret_gets_no_token(oauth_service):
    oauth_service.add_client("app", "s3cret")
    app = msal.ConfidentialClientApplication(
        "app", client_credential="wrong", authority=oauth_service.authority,
        http_client=oauth_service.http_session(), instance_discovery=False)
    result = app.acquire_token_for_client(scopes=APP_SCOPE)
    assert result["error"] == "invalid_client"
    assert oauth_service.tokens_issued == 0


@pytest.mark.parametrize("authority_kind", ["authority", "oidc_authority"])
def test_device_code_flow_token_opens_own_mailbox(office365_server, oauth_service, certs,
                                                  authority_kind, closing):
    oauth_service.add_client("public-app")
    office365_server.add_user("dana@contoso.test")
    office365_server.add_user("erik@contoso.test")
    kwargs = {}
    if authority_kind == "oidc_authority":
        kwargs = {"oidc_authority": oauth_service.oidc_authority}
    app, result = _device_flow(oauth_service, "dana@contoso.test", **kwargs)
    assert result["id_token_claims"]["preferred_username"] == "dana@contoso.test"
    assert [a["username"] for a in app.get_accounts()] == ["dana@contoso.test"]

    client = _connect(office365_server, certs, closing)
    client.oauth2_login("dana@contoso.test", result["access_token"])
    with pytest.raises(imapclient.exceptions.LoginError):
        _connect(office365_server, certs, closing).oauth2_login("erik@contoso.test",
                                                       result["access_token"])


def test_expired_token_refused_then_refresh_token_works(office365_server, oauth_service,
                                                        certs, closing):
    oauth_service.add_client("public-app")
    office365_server.add_user("fay@contoso.test")
    app, result = _device_flow(oauth_service, "fay@contoso.test")
    oauth_service.expire_all()
    with pytest.raises(imapclient.exceptions.LoginError):
        _connect(office365_server, certs, closing).oauth2_login("fay@contoso.test",
                                                       result["access_token"])
    account = app.get_accounts()[0]
    fresh = app.acquire_token_silent(USER_SCOPE, account=account, force_refresh=True)
    assert fresh["access_token"] != result["access_token"]
    client = _connect(office365_server, certs, closing)
    client.oauth2_login("fay@contoso.test", fresh["access_token"])
    assert oauth_service.issued == {"device_code": 1, "refresh_token": 1}


def test_zero_lifetime_tokens_are_born_expired(office365_server, oauth_service, certs, closing):
    oauth_service.add_client("app", "s3cret")
    oauth_service.grant("app", "gus@contoso.test")
    office365_server.add_user("gus@contoso.test")
    oauth_service.token_lifetime = 0
    token = _app_token(oauth_service)
    with pytest.raises(imapclient.exceptions.LoginError):
        _connect(office365_server, certs, closing).oauth2_login("gus@contoso.test", token)
    assert oauth_service.introspections["active"] == 0


def test_refuse_and_revoke_knobs(office365_server, oauth_service, certs, closing):
    oauth_service.add_client("public-app")
    office365_server.add_user("hal@contoso.test")
    app, result = _device_flow(oauth_service, "hal@contoso.test")
    oauth_service.refuse_tokens = True
    with pytest.raises(imapclient.exceptions.LoginError):
        _connect(office365_server, certs, closing).oauth2_login("hal@contoso.test",
                                                       result["access_token"])
    oauth_service.refuse_tokens = False
    client = _connect(office365_server, certs, closing)
    client.oauth2_login("hal@contoso.test", result["access_token"])
    oauth_service.revoke_all()
    refreshed = app.acquire_token_silent(USER_SCOPE, account=app.get_accounts()[0],
                                         force_refresh=True)
    assert refreshed is None or "access_token" not in refreshed


def test_oversize_append_gets_no(office365_factory, oauth_service, certs, closing):
    server = office365_factory(max_mail_size="1M")
    oauth_service.add_client("app", "s3cret")
    oauth_service.grant("app", "ivy@contoso.test")
    server.add_user("ivy@contoso.test")
    client = _connect(server, certs, closing)
    client.oauth2_login("ivy@contoso.test", _app_token(oauth_service))
    big = b"Subject: big\r\n\r\n" + b"x" * (1024 * 1024)
    with pytest.raises(imapclient.exceptions.IMAPClientError, match=r"\[LIMIT\]"):
        client.append("INBOX", big)
    client.append("INBOX", b"Subject: small\r\n\r\nfits\r\n")
    assert [m.raw for m in server.list_messages("ivy@contoso.test", "INBOX")] == \
        [b"Subject: small\r\n\r\nfits\r\n"]


def test_folders_look_like_exchange(office365_server, oauth_service, certs, closing):
    oauth_service.add_client("app", "s3cret")
    oauth_service.grant("app", "jo@contoso.test")
    user = office365_server.add_user("jo@contoso.test")
    office365_server.create_folder(user, "Projekte/v1.2 Ärger")
    office365_server.seed(user, "Sent Items", [SeedMessage(b"Subject: s\r\n\r\nsent\r\n",
                                                           ("\\Seen",))])
    client = _connect(office365_server, certs, closing)
    client.oauth2_login("jo@contoso.test", _app_token(oauth_service))
    folders = {name: (flags, delimiter) for flags, delimiter, name in client.list_folders()}
    assert folders["Sent Items"][0] == (b"\\HasNoChildren", b"\\Sent")
    specials = {"Deleted Items": b"\\Trash", "Drafts": b"\\Drafts",
                "Junk Email": b"\\Junk", "Archive": b"\\Archive"}
    for name, use in specials.items():
        assert use in folders[name][0]
    assert folders["Projekte/v1.2 Ärger"][1] == b"/"
    subscribed = {name for _, _, name in client.list_sub_folders()}
    assert subscribed >= {"Sent Items", *specials}
    client.select_folder("Sent Items")
    assert client.search(["SEEN"]) == [1]


def test_more_tls_sessions_than_dovecots_default_login_limit_all_stay(office365_server, certs):
    """Exchange limits connections per mailbox, not per server: 110 sessions at once (a batch
    of 16 mailboxes with 4 APPEND connections each and their control connections) all stay
    (at Dovecot's default of 100 login processes the oldest were dropped)."""
    import socket

    context = ssl.create_default_context(cafile=certs.ca_cert)
    sessions = []
    try:
        for _ in range(110):
            raw = socket.create_connection((office365_server.host, office365_server.imaps_port),
                                           timeout=20)
            sessions.append(context.wrap_socket(raw, server_hostname="localhost"))
            assert sessions[-1].recv(4096).startswith(b"* OK")
        for session in sessions:
            session.sendall(b"n NOOP\r\n")
        replies = [session.recv(4096) for session in sessions]
    finally:
        for session in sessions:
            session.close()
    assert [reply for reply in replies if not reply.startswith(b"n OK")] == []
    assert "Connection queue full" not in office365_server.log_text()
