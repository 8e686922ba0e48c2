"""Folder-name mapping from a source mailbox onto a target: pure, deterministic, explained.

Every source folder gets one target name (or a reason why it is skipped), decided by rules in
this order of precedence, so the same folders always give the same plan:

1. `folder_map` overrides from the config (the only way two folders may share a target);
2. names already used by earlier pushes (pins): a folder does not move once mail went there
   (when another folder appears later, or a collision would now be resolved differently);
3. INBOX;
4. a role -> the target's folder for that role. A folder's role is its special-use
   attribute (RFC 6154) if it has one, else its well-known name (`Sent`, `Sent Messages`,
   `Spam`...). Folders of the same role merge into the one target folder (a user wants all
   sent mail in Sent Items, not some of it in `Sent Items (2)`); the push sends a message
   found in several of them once (engine/push/twins.py);
5. everything else: prefix and delimiter translated, names kept.

A name already claimed (case-insensitively on Exchange), Exchange's reserved `Files`, and its
non-mail folders (Calendar, Contacts, Tasks...) get a ` (2)` suffix; each rename and each
merge is reported.
Names are Unicode here; `imap_name` gives the modified UTF-7 (RFC 3501 5.1.3) wire form.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from migrator import imap_utf7

INBOX = "INBOX"
INBOX_ROLE = "\\Inbox"  # a source's Inbox under another name (a PST's "Posteingang")
ROLES = ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive")
VIRTUAL = ("\\All", "\\Flagged")  # views of other folders: pushing them would duplicate mail
EXCHANGE_NAMES = {
    "\\Sent": "Sent Items", "\\Drafts": "Drafts", "\\Trash": "Deleted Items",
    "\\Junk": "Junk Email", "\\Archive": "Archive",
}
# A folder without a role attribute gets the role its (top-level) name says.
WELL_KNOWN = {
    "\\Sent": ("sent", "sent items", "sent messages", "sent mail", "sent-mail",
               "gesendet", "gesendete objekte", "envoyés", "elementos enviados"),
    "\\Drafts": ("drafts", "draft", "entwürfe", "brouillons", "borradores"),
    "\\Trash": ("trash", "deleted items", "deleted messages", "deleted", "bin",
                "papierkorb", "gelöschte elemente", "corbeille", "papelera"),
    "\\Junk": ("junk", "junk email", "junk e-mail", "junk mail", "spam", "bulk mail",
               "spam-verdacht", "courrier indésirable"),
    "\\Archive": ("archive", "archives", "archiv"),
}
EXCHANGE_RESERVED = frozenset({"files"})
EXCHANGE_NON_MAIL = frozenset({
    "calendar", "contacts", "tasks", "notes", "journal", "outbox", "sync issues",
    "conversation history", "conversation action settings", "quick step settings",
    "rss feeds", "rss subscriptions", "yammer root",
})


@dataclass(frozen=True)
class SourceFolder:
    """A folder as the archive knows it: Unicode name, hierarchy delimiter, special use, and
    the source's personal namespace prefix (RFC 2342), e.g. `INBOX.` on Cyrus and Courier.

    The prefix is not part of the folder's path: `INBOX.Work` under prefix `INBOX.` is `Work`.
    Under an empty prefix (Dovecot's default) `INBOX.Sub` is a real child of the Inbox."""

    name: str
    delimiter: str | None = None
    special_use: str | None = None
    prefix: str = ""


@dataclass(frozen=True)
class TargetFolder:
    """A folder the target already has (from LIST), Unicode name."""

    name: str
    special_use: str | None = None


@dataclass(frozen=True)
class TargetLayout:
    """What the mapping needs to know about the target server."""

    kind: str = "imap"  # "office365" | "imap"
    delimiter: str = "/"
    prefix: str = ""  # personal namespace prefix, e.g. "INBOX." on a Courier-style server
    existing: tuple[TargetFolder, ...] = ()

    @property
    def case_insensitive(self) -> bool:
        return self.kind == "office365"


@dataclass(frozen=True)
class FolderRules:
    """The config's say: overrides (source name -> target path with '/'), excludes, pins."""

    overrides: Mapping[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    pins: Mapping[str, str] = field(default_factory=dict)  # source -> target already used


@dataclass(frozen=True)
class FolderMapping:
    source: str
    target: str | None  # None: not pushed (see reason)
    reason: str
    renamed: bool = False  # the target name differs from what the rules asked for
    merged_with: tuple[str, ...] = ()  # other source folders going to the same target

    def describe(self) -> str:
        if self.target is None:
            return f"{self.source} -> (skipped: {self.reason})"
        return f"{self.source} -> {self.target} ({self.explain()})"

    def explain(self) -> str:
        """The reason, and the merge if there is one."""
        if not self.merged_with:
            return self.reason
        return f"{self.reason}; merged with {', '.join(self.merged_with)}"


@dataclass(frozen=True)
class FolderPlan:
    """Where every source folder goes at the target (or why not): what `plan_folders` decides."""

    mappings: tuple[FolderMapping, ...]

    def target_of(self, source: str) -> str | None:
        for mapping in self.mappings:
            if mapping.source == source:
                return mapping.target
        return None

    def as_dict(self) -> dict[str, str | None]:
        return {mapping.source: mapping.target for mapping in self.mappings}

    def notes(self) -> list[str]:
        """What a user should be told: renames, merges and skipped folders."""
        return [m.describe() for m in self.mappings
                if m.renamed or m.merged_with or m.target is None]

    def targets(self) -> list[str]:
        return sorted({m.target for m in self.mappings if m.target is not None})


def imap_name(name: str) -> str:
    """The modified UTF-7 form of a Unicode folder name, as sent on the wire."""
    return imap_utf7.encode(name).decode("ascii")


def decode_name(raw: str | bytes) -> str:
    """A wire (modified UTF-7) name as Unicode."""
    return imap_utf7.decode(raw.encode("ascii", "replace") if isinstance(raw, str) else raw)


def split_source(folder: SourceFolder) -> list[str]:
    """The source folder's path as components, without its personal namespace prefix.

    The prefix is compared case-insensitively: `INBOX` is case-insensitive (RFC 3501), so
    `inbox.a` under prefix `INBOX.` is `a`."""
    name = folder.name
    prefix = folder.prefix
    if prefix and name[: len(prefix)].upper() == prefix.upper() and len(name) > len(prefix):
        name = name[len(prefix):]
    parts = name.split(folder.delimiter) if folder.delimiter else [name]
    return [part for part in parts if part] or [name]


class _Planner:
    """Holds the claims while folders are resolved in precedence order."""

    def __init__(self, folders: Sequence[SourceFolder], layout: TargetLayout,
                 rules: FolderRules) -> None:
        self.folders = {folder.name: folder for folder in folders}
        self.layout = layout
        self.rules = rules
        self.claims: dict[str, _Claim] = {}
        self.done: dict[str, FolderMapping] = {}
        self.existing = {self.key(f.name): f.name for f in layout.existing}
        self.by_path: dict[tuple[str, ...], str] = {}
        for folder in sorted(folders, key=lambda f: f.name):
            self.by_path.setdefault(tuple(split_source(folder)), folder.name)
        self.roles = self._role_owners()

    def key(self, target: str) -> str:
        """Equal keys are the same folder on the target (Exchange ignores case; INBOX always)."""
        if self.layout.case_insensitive:
            return target.casefold()
        head, sep, rest = target.partition(self.layout.delimiter)
        return (INBOX + sep + rest) if head.upper() == INBOX else target

    def _role_owners(self) -> dict[str, str]:
        """Source folder -> role: its special-use attribute, else what its name says (a
        top-level folder only: `Lists.Sent` is not the Sent folder)."""
        roles: dict[str, str] = {}
        for folder in self.folders.values():
            if folder.special_use in ROLES:
                roles[folder.name] = folder.special_use
            elif folder.special_use not in VIRTUAL:
                path = split_source(folder)
                role = _NAME_ROLES.get(path[0].casefold()) if len(path) == 1 else None
                if role is not None:
                    roles[folder.name] = role
        return roles

    def role_of(self, source: str) -> str | None:
        return self.roles.get(source)

    def role_target(self, role: str) -> str | None:
        """The target's folder for a role: its own attribute first, Exchange's name next."""
        for folder in sorted(self.layout.existing, key=lambda f: f.name):
            if folder.special_use == role:
                return folder.name
        if self.layout.kind == "office365":
            return self.layout.prefix + EXCHANGE_NAMES[role]
        return None

    def forbidden(self, target: str) -> str | None:
        """Why Exchange will not take this name as a mail folder, if it will not."""
        if self.layout.kind != "office365":
            return None
        top = target[len(self.layout.prefix):].split(self.layout.delimiter)[0]
        if top.casefold() in EXCHANGE_RESERVED:
            return f"{top} is reserved by Exchange"
        if top.casefold() in EXCHANGE_NON_MAIL:
            return f"{top} is an Exchange non-mail folder"
        return None

    def allowed(self, target: str) -> str:
        """`target` with a forbidden top-level name moved aside (`Files` -> `Files (2)`)."""
        if self.forbidden(target) is None:
            return target
        rest = target[len(self.layout.prefix):]
        top, sep, below = rest.partition(self.layout.delimiter)
        return f"{self.layout.prefix}{top} (2){sep}{below}"

    def claim(self, source: str, wanted: str, reason: str, shareable: bool) -> FolderMapping:
        """Give `wanted` to `source`, or the first free `wanted (N)`; say why if renamed."""
        problem = self.forbidden(wanted)
        wanted = self.allowed(self.existing.get(self.key(wanted), wanted))
        holder = self.claims.get(self.key(wanted))
        if holder is None or (shareable and holder.shareable):
            self.claims.setdefault(self.key(wanted), _Claim(source, shareable))
            return FolderMapping(source, wanted, f"{reason}; renamed: {problem}"
                                 if problem else reason, problem is not None)
        why = problem or f"{wanted} is already the target of {holder.source}"
        number = 2
        while self.key(f"{wanted} ({number})") in self.claims:
            number += 1
        candidate = f"{wanted} ({number})"
        self.claims[self.key(candidate)] = _Claim(source, False)
        return FolderMapping(source, candidate, f"{reason}; renamed: {why}", True)

    def leaf(self, part: str) -> str:
        """A path component safe on the target: its delimiter inside a name becomes '_'."""
        return part.replace(self.layout.delimiter, "_")

    def path_target(self, path: tuple[str, ...]) -> str:
        """Where a source path lands: a listed folder's own mapping, else its parent's + leaf."""
        listed = self.by_path.get(path)
        if listed is not None:
            target = self.resolve(listed).target
            if target is not None:
                return target
        return self.child(path)

    def child(self, path: tuple[str, ...], own: bool = False) -> str:
        """The translated path; a forbidden top-level parent is moved aside (not its own)."""
        if len(path) == 1:
            if path[0].upper() == INBOX:
                return INBOX
            top = self.layout.prefix + self.leaf(path[0])
            return top if own else self.allowed(top)
        return self.path_target(path[:-1]) + self.layout.delimiter + self.leaf(path[-1])

    def resolve(self, source: str) -> FolderMapping:
        if source not in self.done:
            self.done[source] = FolderMapping(source, None, "resolving")  # no cycles: parents
            self.done[source] = self._decide(self.folders[source])  # are strictly shorter
        return self.done[source]

    def _decide(self, folder: SourceFolder) -> FolderMapping:
        name = folder.name
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.rules.exclude):
            return FolderMapping(name, None, "excluded by config")
        if name in self.rules.overrides:
            parts = [self.leaf(p) for p in self.rules.overrides[name].split("/") if p]
            if not parts:
                return FolderMapping(name, None, "folder_map maps it to nothing")
            wanted = self.layout.prefix + self.layout.delimiter.join(parts)
            return self.claim(name, wanted, "folder_map", shareable=True)
        if name in self.rules.pins:
            target = self.rules.pins[name]
            self.claims.setdefault(self.key(target), _Claim(name, True))
            return FolderMapping(name, target, "used by earlier pushes")
        if name.upper() == INBOX or folder.special_use == INBOX_ROLE:
            return self.claim(name, INBOX, "inbox", shareable=False)
        if folder.special_use in VIRTUAL:
            return FolderMapping(name, None, f"virtual folder ({folder.special_use}); "
                                 "map it in folder_map to push it")
        role = self.role_of(name)
        for_role = self.role_target(role) if role else None
        if role and for_role:
            how = "special-use" if folder.special_use == role else "well-known name"
            return self.claim(name, for_role, f"{how} {role}", shareable=True)
        path = tuple(split_source(folder))
        wanted = self.child(path, own=True)
        naive = self.layout.prefix + self.layout.delimiter.join(self.leaf(p) for p in path)
        if any(self.layout.delimiter in part for part in path):
            why = f"'{self.layout.delimiter}' is the target's hierarchy delimiter"
            return _renamed(self.claim(name, wanted, f"same name; renamed: {why}", False))
        if len(path) > 1 and self.key(wanted) != self.key(naive):
            parent = wanted.rpartition(self.layout.delimiter)[0]
            return _renamed(self.claim(name, wanted, f"inside {parent}", shareable=False))
        return self.claim(name, wanted, "same name", shareable=False)

    def order(self) -> list[str]:
        """Precedence: overrides, pins, INBOX, roles, the rest; parents before children."""
        role_owners = set(self.roles)

        def rank(name: str) -> tuple[int, int, str]:
            if name in self.rules.overrides:
                klass = 0
            elif name in self.rules.pins:
                klass = 1
            elif name.upper() == INBOX or self.folders[name].special_use == INBOX_ROLE:
                klass = 2
            elif name in role_owners:
                klass = 3 if self.folders[name].special_use else 4
            else:
                klass = 5
            return klass, len(split_source(self.folders[name])), name

        return sorted(self.folders, key=rank)


def _renamed(mapping: FolderMapping) -> FolderMapping:
    return FolderMapping(mapping.source, mapping.target, mapping.reason, True)


@dataclass(frozen=True)
class _Claim:
    source: str
    shareable: bool  # overrides, pins and role folders may share a target (a merge)


_NAME_ROLES = {name: role for role, names in WELL_KNOWN.items() for name in names}


def _merges(planner: _Planner, mappings: list[FolderMapping]) -> list[FolderMapping]:
    """Each mapping that shares its target with others names them (`merged_with`)."""
    sharing: dict[str, list[str]] = {}
    for mapping in mappings:
        if mapping.target is not None:
            sharing.setdefault(planner.key(mapping.target), []).append(mapping.source)
    return [replace(m, merged_with=tuple(s for s in sharing[planner.key(m.target)]
                                         if s != m.source))
            if m.target is not None and len(sharing[planner.key(m.target)]) > 1 else m
            for m in mappings]


def plan_folders(folders: Sequence[SourceFolder], layout: TargetLayout,
                 rules: FolderRules | None = None) -> FolderPlan:
    """Map every source folder onto the target; the result lists folders in source order."""
    planner = _Planner(folders, layout, rules or FolderRules())
    for name in planner.order():
        planner.resolve(name)
    mappings = [planner.done[folder.name] for folder in sorted(folders, key=lambda f: f.name)]
    return FolderPlan(tuple(_merges(planner, mappings)))
