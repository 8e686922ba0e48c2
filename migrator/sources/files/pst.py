"""An Outlook data file (.pst) read as a source: its mail folders and e-mails, as MIME.

Read through libyal's libpff (PyPI `libpff-python`, the `pst` extra). Folders are those under
the PST's top folder ("Top of Personal Folders", which Outlook shows as the data file's name),
"/" between levels; mail kept in the top folder itself goes to a folder named after the data
file, as Outlook and readpst show it. Only e-mail is read (the message classes readpst treats
as e-mail: IPM.Note*, IPM.Schedule.Meeting*, REPORT.IPM.Note*, and plain IPM); calendar
items, contacts, tasks, notes and journal entries are skipped and counted in `skipped`.
"""

from __future__ import annotations

import errno
import importlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from migrator.errors import ConfigError, MigratorError
from migrator.sources.files import FileFolder, FileMessage
from migrator.sources.files import pst_props as props
from migrator.sources.files.pst_message import message_parts
from migrator.sources.files.pst_mime import build

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'migrator[pst]'"
MAIL_CLASS_PREFIXES = ("ipm.note", "ipm.schedule.meeting", "report.ipm.note")
MAIL_CONTAINER_PREFIXES = ("ipf.note", "ipf.imap")
IPM_SUBTREE_NODE = 0x8022  # the top folder's usual node id ([MS-PST] 2.4.1), if no EntryID says
# Outlook's English names, when the store's EntryIDs name no folder for a role
ROLE_NAMES = {"sent items": "\\Sent", "deleted items": "\\Trash", "drafts": "\\Drafts",
              "junk e-mail": "\\Junk", "junk email": "\\Junk"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FOLDER_DEPTH = 64


class PstError(MigratorError):
    """A PST file that cannot be opened or read (exit 3: the file named is wrong)."""

    exit_status = ConfigError.exit_status


def load_pypff() -> ModuleType:
    """libpff's Python module, or one line saying how to install it."""
    try:
        return importlib.import_module("pypff")
    except ImportError as exc:
        raise ConfigError(f"reading PST files needs libpff-python: {INSTALL_HINT}") from exc


def open_pst(path: str | Path) -> PstSource:
    """Open a PST file for reading; errors name the file."""
    pypff = load_pypff()
    path = Path(path)
    if not path.is_file():
        raise PstError(f"{path}: no such PST file")
    handle = pypff.file()
    try:
        handle.open(str(path))
    except OSError as exc:
        log.debug("libpff cannot open %s: %s", path, exc)
        raise PstError(f"{path}: not a PST or OST file libpff can read") from exc
    return PstSource(path, handle)


@dataclass
class Skipped:
    """What the source saw and did not read: non-mail items, by message class."""

    by_class: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_class.values())


class PstSource:
    """A FileSource over one PST: folders(), messages(folder), close()."""

    def __init__(self, path: Path, handle: Any) -> None:
        self.path = path
        self._handle = handle
        self._folders: dict[str, Any] = {}
        self._passed: set[tuple[int, int]] = set()  # (folder, index) of items counted skipped
        self.skipped = Skipped({})
        self.store_name = props.text(handle.message_store, props.DISPLAY_NAME) or path.stem

    def folders(self) -> list[FileFolder]:
        """The mail folders, parents before children, in the PST's own order. A folder made
        for mail is listed without opening its items; another (Calendar, Contacts) only if
        it holds e-mail after all."""
        top = self._top_folder()
        roles = self._roles()
        found: list[FileFolder] = []
        self._folders = {}
        if self._count_mail(top):
            self._add(found, FileFolder(_level_name(self.store_name)), top)
        for name, folder in _walk(top, ""):
            if _is_mail_folder(folder) or self._count_mail(folder):
                role = roles.get(folder.identifier) or ROLE_NAMES.get(name.lower())
                self._add(found, FileFolder(name, role), folder)
        return found

    def messages(self, folder: FileFolder) -> Iterator[FileMessage]:
        """The folder's e-mails; their bytes are rebuilt again at every read()."""
        if not self._folders:
            self.folders()
        pst_folder = self._folders.get(folder.name)
        if pst_folder is None:
            raise OSError(errno.ENOENT, f"no folder {folder.name} in {self.path}")
        for index in range(pst_folder.number_of_sub_messages):
            item = _item(pst_folder, index)
            if item is None:
                yield _unreadable(folder.name, index)
            elif self._is_mail(pst_folder, index, item):
                yield self._file_message(pst_folder, index, item)

    def _count_mail(self, folder: Any) -> int:
        """How many of the folder's items are e-mail (an unreadable one counts: it is
        reported when read)."""
        return sum(1 for index in range(folder.number_of_sub_messages)
                   if self._is_mail(folder, index, _item(folder, index)))

    def _is_mail(self, folder: Any, index: int, item: Any | None) -> bool:
        """Whether the item is e-mail; another is counted in `skipped` (once), by class."""
        message_class = _message_class(item) if item is not None else "IPM.Note"
        if is_mail_class(message_class):
            return True
        if (folder.identifier, index) not in self._passed:
            self._passed.add((folder.identifier, index))
            by_class = self.skipped.by_class
            by_class[message_class] = by_class.get(message_class, 0) + 1
        return False

    def close(self) -> None:
        """Closes the file; says once what was not imported because it is not e-mail."""
        if self.skipped.total:
            log.info("%s: %d items that are not e-mail were not imported (%s)", self.path,
                     self.skipped.total, ", ".join(f"{name}: {count}" for name, count
                                                   in sorted(self.skipped.by_class.items())))
        self._handle.close()

    def _file_message(self, pst_folder: Any, index: int, item: Any) -> FileMessage:
        """A message whose bytes are rebuilt only when read: a re-run that finds the key
        already archived builds nothing. `size` is the PST's own PR_MESSAGE_SIZE, an estimate
        of the rebuilt size (which only building tells)."""
        key = str(item.identifier)

        def read() -> bytes:
            try:
                return build(message_parts(pst_folder.get_sub_message(index), key))
            except OSError:
                raise
            except Exception as exc:  # a damaged item: that message fails, the rest goes on
                log.debug("PST message %s cannot be rebuilt", key, exc_info=True)
                raise OSError(errno.EIO, f"cannot rebuild PST message {key}: "
                              f"{exc.__class__.__name__}: {exc}") from exc

        return FileMessage(key=key, internaldate=internaldate(item), flags=flags(item),
                           size=max(props.integer(item, props.MESSAGE_SIZE) or 0, 0),
                           read=read)

    def _add(self, found: list[FileFolder], folder: FileFolder, pst_folder: Any) -> None:
        if folder.name in self._folders:
            log.warning("%s: two folders named %r: the second is read as %r", self.path,
                        folder.name, folder.name + " (2)")
            folder = FileFolder(folder.name + " (2)", folder.special_use)
        self._folders[folder.name] = pst_folder
        found.append(folder)

    def _top_folder(self) -> Any:
        """The IPM subtree (what Outlook shows), named by the store's EntryID."""
        root = self._handle.root_folder
        node = props.entryid_node(props.binary(self._handle.message_store,
                                               props.IPM_SUBTREE_ENTRYID)) or IPM_SUBTREE_NODE
        for folder in _children(root):
            if folder.identifier == node:
                return folder
        raise PstError(f"{self.path}: no top of personal folders found (node {node:#x})")

    def _roles(self) -> dict[int, str]:
        """Folder node -> special use, from the EntryIDs the store and the root folder keep
        ([MS-OXOSFLD] 2.2), so "Éléments supprimés" is Deleted Items whatever the language.
        The Inbox is the top folder's child that holds the Drafts or Calendar EntryID (only
        the root and the Inbox keep them), so "Posteingang" goes to the target's INBOX."""
        store = self._handle.message_store
        roles: dict[int, str] = {}
        for folder in _children(self._top_folder()):
            if any(props.binary(folder, tag) for tag in (props.IPM_DRAFTS_ENTRYID,
                                                          props.IPM_APPOINTMENT_ENTRYID)):
                roles[folder.identifier] = "\\Inbox"
                break
        for tag, role in ((props.IPM_WASTEBASKET_ENTRYID, "\\Trash"),
                          (props.IPM_SENTMAIL_ENTRYID, "\\Sent")):
            node = props.entryid_node(props.binary(store, tag))
            if node is not None:
                roles[node] = role
        root = self._handle.root_folder
        node = props.entryid_node(props.binary(root, props.IPM_DRAFTS_ENTRYID))
        if node is not None:
            roles[node] = "\\Drafts"
        additional = props.multi_entryid_nodes(root, props.ADDITIONAL_REN_ENTRYIDS)
        if len(additional) > 4 and additional[4] is not None:
            roles[additional[4]] = "\\Junk"
        return roles


def is_mail_class(message_class: str) -> bool:
    """E-mail as readpst counts it (libpst's PST_TYPE_NOTE, _SCHEDULE and _REPORT)."""
    lowered = message_class.lower()
    return lowered == "ipm" or lowered.startswith(MAIL_CLASS_PREFIXES)


def flags(item: Any) -> tuple[str, ...]:
    """IMAP flags from PR_MESSAGE_FLAGS, PR_FLAG_STATUS and the reply verb or icon."""
    found: list[str] = []
    message_flags = props.integer(item, props.MESSAGE_FLAGS) or 0
    if props.integer(item, props.LAST_VERB_EXECUTED) in props.VERBS_REPLIED or \
            props.integer(item, props.ICON_INDEX) == props.ICON_REPLIED:
        found.append("\\Answered")
    if props.integer(item, props.FLAG_STATUS) == props.FOLLOWUP_FLAGGED:
        found.append("\\Flagged")
    if message_flags & props.MSGFLAG_READ:
        found.append("\\Seen")
    if message_flags & props.MSGFLAG_UNSENT:
        found.append("\\Draft")
    return tuple(found)


def internaldate(item: Any) -> datetime:
    """Delivery time, else client submit time, else creation time (else 1970, said once)."""
    for tag in (props.DELIVERY_TIME, props.CLIENT_SUBMIT_TIME, props.CREATION_TIME):
        value = props.time(item, tag)
        if value is not None:
            return value.replace(microsecond=0)
    log.warning("PST item %s has no delivery, submit or creation time", item.identifier)
    return EPOCH


def _children(folder: Any) -> Iterator[Any]:
    for index in range(folder.number_of_sub_folders):
        yield folder.get_sub_folder(index)


def _walk(folder: Any, prefix: str, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Sub-folders, parents first; a damaged file's endless tree stops at MAX_FOLDER_DEPTH."""
    if depth >= MAX_FOLDER_DEPTH:
        log.warning("PST folders below %r not read: more than %d levels", prefix,
                    MAX_FOLDER_DEPTH)
        return
    for child in _children(folder):
        name = prefix + _level_name(child.name or str(child.identifier))
        yield name, child
        yield from _walk(child, name + "/", depth + 1)


def _level_name(name: str) -> str:
    """One level of a folder name: "/" separates levels, so a "/" inside a name becomes "_"."""
    return name.replace("/", "_").strip() or "_"


def _is_mail_folder(folder: Any) -> bool:
    container = (props.text(folder, props.CONTAINER_CLASS) or "").lower()
    return not container or container.startswith(MAIL_CONTAINER_PREFIXES)


def _item(folder: Any, index: int) -> Any | None:
    try:
        return folder.get_sub_message(index)
    except OSError as exc:
        log.debug("PST item %d of a folder cannot be read: %s", index, exc)
        return None


def _unreadable(folder: str, index: int) -> FileMessage:
    """An item libpff cannot open: a message that fails when read, so the run reports it."""

    def read() -> bytes:
        raise OSError(errno.EIO, f"PST item {index + 1} of {folder} cannot be read (damaged?)")

    return FileMessage(key=f"unreadable-{index}", internaldate=EPOCH, flags=(), size=0,
                       read=read)


def _message_class(item: Any) -> str:
    return props.text(item, props.MESSAGE_CLASS) or "IPM.Note"
