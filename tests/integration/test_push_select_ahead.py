"""Each push connection SELECTs the folder it appends to, once, ahead of its APPENDs there
(targets/imap.py), on every server profile: what goes on the wire, and that the mail, its
flags and a clean verify come out as before."""

from __future__ import annotations

import pytest

from migrator.errors import ExitStatus
from tests.cli_runner import run_cli
from tests.integration.profiles import on_each_server
from tests.integration.push_world import (
    SOURCE_PASSWORD,
    SOURCE_PASSWORD_ENV,
    fill_archive,
    message,
    placeholder_source,
    write_world_config,
)
from tests.world.configs import Endpoint
from tests.world.relay import Rewrite

pytestmark = [pytest.mark.world, pytest.mark.usefixtures("push_secrets")]


class Wire:
    """Each connection's (command, mailbox argument) as the client sent them."""

    def __init__(self) -> None:
        self.connections: list[list[tuple[str, bytes]]] = []

    def __call__(self) -> Rewrite:
        mine: list[tuple[str, bytes]] = []
        self.connections.append(mine)

        class Record(Rewrite):
            def client(self, unit: bytes) -> bytes:
                words = unit.split(b" ", 3)
                if len(words) > 2 and words[0].isalnum():
                    mine.append((words[1].upper().decode("ascii", "replace"),
                                 words[2].rstrip(b"\r\n")))
                return unit

        return Record()


@on_each_server
def test_each_connection_selects_a_folder_once_before_appending_there(
        source_server, fault_proxy, tmp_path):
    source_server.add_user("carol", SOURCE_PASSWORD)
    items = ([message(n, flags=("\\Seen", "\\Answered") if n % 2 else ()) for n in range(30)]
             + [message(n, folder="Work", flags=("\\Flagged",)) for n in range(100, 130)])
    fill_archive(tmp_path / "archive", items)
    wire = Wire()
    proxy = fault_proxy(source_server.imap_port, rewrite=wire)
    target = Endpoint("imap", port=proxy.port, security="plain", username="carol",
                      password=f"env:{SOURCE_PASSWORD_ENV}", timeout=20, connections=2)
    config = write_world_config(tmp_path, placeholder_source(), target)

    pushed = run_cli("-c", config, "push", "bob")

    assert pushed.status == ExitStatus.OK, pushed.stderr
    appending = [c for c in wire.connections if any(name == "APPEND" for name, _ in c)]
    assert appending
    for commands in appending:
        selected, selects, appends = None, 0, 0
        for name, mailbox in commands:
            if name == "SELECT":
                selected, selects = mailbox, selects + 1
            elif name == "APPEND":
                assert mailbox == selected  # the folder it appends to is the one selected
                appends += 1
        assert selects <= 2 < appends  # once per folder, not once per message
    folders = {mailbox for c in appending for name, mailbox in c if name == "APPEND"}
    assert len(folders) == 2
    checked = run_cli("-c", config, "verify", "bob")
    assert checked.status == ExitStatus.OK, checked.stderr
    inbox = source_server.list_messages("carol", "INBOX")
    assert len(inbox) == 30
    assert sum("\\Answered" in m.flags for m in inbox) == 15
