"""Folder mapping: every rule, collision and translation as a table."""

from __future__ import annotations

import pytest

from migrator.folders import (
    FolderRules,
    SourceFolder,
    TargetFolder,
    TargetLayout,
    decode_name,
    imap_name,
    plan_folders,
    split_source,
)

O365 = TargetLayout("office365", "/", "", (TargetFolder("Inbox"),))
IMAP = TargetLayout("imap", "/", "")
DOT = "."


def mapped(folders: list[SourceFolder], layout: TargetLayout = O365,
           rules: FolderRules | None = None) -> dict[str, str | None]:
    return plan_folders(folders, layout, rules).as_dict()


def dot(*names: str, special: dict[str, str] | None = None) -> list[SourceFolder]:
    special = special or {}
    return [SourceFolder(name, DOT, special.get(name)) for name in names]


@pytest.mark.parametrize("source, special, expected", [
    ("INBOX", None, "Inbox"),
    ("Sent", "\\Sent", "Sent Items"),
    ("Gesendet", "\\Sent", "Sent Items"),
    ("Drafts", "\\Drafts", "Drafts"),
    ("Trash", "\\Trash", "Deleted Items"),
    ("Spam", "\\Junk", "Junk Email"),
    ("Old", "\\Archive", "Archive"),
    ("Sent Messages", None, "Sent Items"),
    ("Sent Mail", None, "Sent Items"),
    ("Deleted Messages", None, "Deleted Items"),
    ("Trash", None, "Deleted Items"),
    ("Junk", None, "Junk Email"),
    ("spam", None, "Junk Email"),
    ("Draft", None, "Drafts"),
    ("Entwürfe", None, "Drafts"),
    ("Archives", None, "Archive"),
    ("Projects", None, "Projects"),
])
def test_roles_onto_exchange_names(source: str, special: str | None, expected: str) -> None:
    folders = [SourceFolder("INBOX", DOT), SourceFolder(source, DOT, special)]
    assert mapped(folders)[source] == expected


@pytest.mark.parametrize("source, delimiter, layout, expected", [
    ("Archive.2019", ".", O365, "Archive/2019"),
    ("INBOX/Foo", "/", O365, "Inbox/Foo"),
    ("INBOX/Foo", "/", IMAP, "INBOX/Foo"),
    ("Lists/python", "/", TargetLayout("imap", ".", ""), "Lists.python"),
    ("Lists.python", ".", TargetLayout("imap", ".", "INBOX."), "INBOX.Lists.python"),
    ("a/b.c", ".", O365, "a_b/c"),
    ("Flat Name", None, O365, "Flat Name"),
    ("Foo..Bar", ".", O365, "Foo/Bar"),
    ("Ünïcødé.日本語", ".", O365, "Ünïcødé/日本語"),
])
def test_delimiter_and_prefix_translation(source: str, delimiter: str | None,
                                          layout: TargetLayout, expected: str) -> None:
    folders = [SourceFolder("INBOX", delimiter), SourceFolder(source, delimiter)]
    assert mapped(folders, layout)[source] == expected


@pytest.mark.parametrize("source, prefix, layout, expected", [
    # Cyrus/Courier: INBOX. is the personal namespace prefix, not a folder level
    ("INBOX.Work", "INBOX.", O365, "Work"),
    ("INBOX.Foo.Bar", "INBOX.", O365, "Foo/Bar"),
    ("INBOX.Work", "INBOX.", TargetLayout("imap", ".", "INBOX."), "INBOX.Work"),
    ("INBOX.Work", "INBOX.", IMAP, "Work"),
    # Dovecot's default empty prefix: INBOX.Sub is a real subfolder of the Inbox
    ("INBOX.Sub", "", O365, "Inbox/Sub"),
    ("INBOX.Sub.Deep", "", O365, "Inbox/Sub/Deep"),
    ("INBOX.Sub", "", IMAP, "INBOX/Sub"),
    ("INBOX.Sub", "", TargetLayout("imap", ".", "INBOX."), "INBOX.Sub"),
    ("Work", "", TargetLayout("imap", ".", "INBOX."), "INBOX.Work"),
])
def test_source_namespace_prefix(source: str, prefix: str, layout: TargetLayout,
                                 expected: str) -> None:
    folders = [SourceFolder("INBOX", ".", prefix=prefix), SourceFolder(source, ".",
                                                                       prefix=prefix)]
    assert mapped(folders, layout)[source] == expected


@pytest.mark.parametrize("names, layout, expected", [
    # Exchange ignores case: the second (in name order) is moved aside
    (["Work", "work"], O365, {"Work": "Work", "work": "work (2)"}),
    (["Work", "work", "WORK"], O365, {"WORK": "WORK", "Work": "Work (2)", "work": "work (3)"}),
    # a generic IMAP server keeps case
    (["Work", "work"], IMAP, {"Work": "Work", "work": "work"}),
    # under an empty namespace prefix INBOX.Foo is a child of the Inbox, not Foo
    (["INBOX.Foo", "Foo"], O365, {"Foo": "Foo", "INBOX.Foo": "Inbox/Foo"}),
    # children follow their renamed parent
    (["Work", "work", "work.Sub"], O365, {"work": "work (2)", "work.Sub": "work (2)/Sub"}),
    # folders of one role merge into the target's role folder (see test_role_merges)
    (["Sent", "Sent Items"], O365, {"Sent": "Sent Items", "Sent Items": "Sent Items"}),
    (["Junk", "Spam"], O365, {"Junk": "Junk Email", "Spam": "Junk Email"}),
    (["Trash", "trash"], O365, {"Trash": "Deleted Items", "trash": "Deleted Items"}),
    # ordinary folders never merge: a case collision keeps the (2) rule
    (["Notes2", "NOTES2", "Sent"], O365, {"NOTES2": "NOTES2", "Notes2": "Notes2 (2)"}),
])
def test_collisions_are_predictable(names: list[str], layout: TargetLayout,
                                    expected: dict[str, str]) -> None:
    result = mapped(dot("INBOX", *names), layout)
    assert {k: result[k] for k in expected} == expected
    # the same folders in another order give the same plan
    assert mapped(list(reversed(dot("INBOX", *names))), layout) == result


@pytest.mark.parametrize("name, expected", [
    ("Files", "Files (2)"),
    ("files", "files (2)"),
    ("Files.Old", "Files (2)/Old"),
    ("Calendar", "Calendar (2)"),
    ("Contacts", "Contacts (2)"),
    ("Tasks.Sub", "Tasks (2)/Sub"),
    ("Outbox", "Outbox (2)"),
])
def test_exchange_reserved_and_non_mail_folders(name: str, expected: str) -> None:
    plan = plan_folders(dot("INBOX", name), O365)
    assert plan.target_of(name) == expected
    assert any(name in note for note in plan.notes())


def test_names_that_only_start_like_reserved_ones_are_kept() -> None:
    assert mapped(dot("INBOX", "Filesystem", "Calendars"))["Filesystem"] == "Filesystem"


@pytest.mark.parametrize("name", ["Files", "Calendar", "Contacts"])
def test_generic_imap_targets_have_no_reserved_names(name: str) -> None:
    assert mapped(dot("INBOX", name), IMAP)[name] == name


def test_renames_are_reported() -> None:
    plan = plan_folders(dot("INBOX", "Work", "work", "a/b"), O365)
    notes = "\n".join(plan.notes())
    assert "work -> work (2)" in notes and "already the target of Work" in notes
    assert "a/b -> a_b" in notes
    assert "Work ->" not in notes.replace("work ->", "")


@pytest.mark.parametrize("rules, expected", [
    (FolderRules(overrides={"Old Projects": "Archive/Projects"}),
     {"Old Projects": "Archive/Projects", "Old Projects.2019": "Archive/Projects/2019"}),
    (FolderRules(overrides={"Sent": "Sent Items", "Sent Items": "Sent Items"}),
     {"Sent": "Sent Items", "Sent Items": "Sent Items"}),  # overrides may merge
    (FolderRules(exclude=("Junk*",)), {"Junk": None, "Junk.Old": None}),
    (FolderRules(overrides={"Junk": ""}), {"Junk": None}),
    (FolderRules(pins={"work": "work"}), {"work": "work", "Work": "Work (2)"}),
    (FolderRules(pins={"Sent Items": "Sent Items"}),
     {"Sent Items": "Sent Items", "Sent": "Sent Items"}),  # a role merges into a pin
    # a folder never moves: one pushed to "Sent Items (2)" before merges stays there
    (FolderRules(pins={"Sent Items": "Sent Items (2)"}),
     {"Sent Items": "Sent Items (2)", "Sent": "Sent Items"}),
    (FolderRules(overrides={"Stuff": "Files"}), {"Stuff": "Files (2)"}),
    # an override in the config beats where earlier pushes went
    (FolderRules(overrides={"Work": "Projects"}, pins={"Work": "Work"}), {"Work": "Projects"}),
    # a pin may be merged into by an override
    (FolderRules(overrides={"Stuff": "Work"}, pins={"Work": "Work"}),
     {"Work": "Work", "Stuff": "Work"}),
])
def test_config_overrides_excludes_and_pins(rules: FolderRules,
                                            expected: dict[str, str | None]) -> None:
    folders = dot("INBOX", "Old Projects", "Old Projects.2019", "Sent", "Sent Items", "Junk",
                  "Junk.Old", "Work", "work", "Stuff", special={"Sent": "\\Sent"})
    result = mapped(folders, O365, rules)
    assert {k: result[k] for k in expected} == expected


@pytest.mark.parametrize("special", ["\\All", "\\Flagged"])
def test_virtual_folders_are_skipped_unless_mapped(special: str) -> None:
    folders = [SourceFolder("INBOX", "/"), SourceFolder("[Gmail]/All Mail", "/", special)]
    assert mapped(folders)["[Gmail]/All Mail"] is None
    rules = FolderRules(overrides={"[Gmail]/All Mail": "All Mail"})
    assert mapped(folders, O365, rules)["[Gmail]/All Mail"] == "All Mail"


def test_target_special_use_wins_over_names() -> None:
    layout = TargetLayout("imap", ".", "INBOX.", (
        TargetFolder("INBOX"), TargetFolder("INBOX.Sent Mail", "\\Sent"),
        TargetFolder("INBOX.Bin", "\\Trash")))
    folders = [SourceFolder("INBOX", "/"), SourceFolder("Sent", "/", "\\Sent"),
               SourceFolder("Trash", "/"), SourceFolder("Drafts", "/")]
    assert mapped(folders, layout) == {"INBOX": "INBOX", "Sent": "INBOX.Sent Mail",
                                       "Trash": "INBOX.Bin", "Drafts": "INBOX.Drafts"}


def test_localised_exchange_folders_found_by_attribute() -> None:
    layout = TargetLayout("office365", "/", "", (
        TargetFolder("Posteingang"), TargetFolder("Gesendete Elemente", "\\Sent")))
    assert mapped(dot("INBOX", "Sent"), layout)["Sent"] == "Gesendete Elemente"


def test_existing_spelling_is_reused_on_exchange() -> None:
    layout = TargetLayout("office365", "/", "", (TargetFolder("projects"),))
    assert mapped(dot("INBOX", "Projects"), layout)["Projects"] == "projects"


def test_attribute_beats_the_name() -> None:
    folders = dot("INBOX", "Sent", "Sent Items", "Trash", "Junk",
                  special={"Sent Items": "\\Sent", "Junk": "\\Archive"})
    assert mapped(folders) == {"INBOX": "Inbox", "Sent": "Sent Items",
                               "Sent Items": "Sent Items", "Trash": "Deleted Items",
                               "Junk": "Archive"}


SENT, JUNK, TRASH = "\\Sent", "\\Junk", "\\Trash"


@pytest.mark.parametrize("names, special, layout, expected", [
    # the issue: two sent folders, one with the attribute; Spam beside Junk
    (["Sent", "Sent Messages", "Junk", "Spam"], {"Sent": SENT}, O365,
     {"Sent": "Sent Items", "Sent Messages": "Sent Items", "Junk": "Junk Email",
      "Spam": "Junk Email"}),
    # two folders carrying the same attribute
    (["Sent", "Gesendet"], {"Sent": SENT, "Gesendet": SENT}, O365,
     {"Sent": "Sent Items", "Gesendet": "Sent Items"}),
    # names alone, any case
    (["sent", "SENT MESSAGES", "Sent Mail"], {}, O365,
     {"sent": "Sent Items", "SENT MESSAGES": "Sent Items", "Sent Mail": "Sent Items"}),
    (["Trash", "Deleted Messages", "Deleted Items"], {}, O365,
     {"Trash": "Deleted Items", "Deleted Messages": "Deleted Items",
      "Deleted Items": "Deleted Items"}),
    (["Junk", "Junk E-mail", "Spam", "Bulk Mail"], {}, O365,
     {"Junk": "Junk Email", "Junk E-mail": "Junk Email", "Spam": "Junk Email",
      "Bulk Mail": "Junk Email"}),
    (["Drafts", "Draft", "Archive", "Archives"], {}, O365,
     {"Drafts": "Drafts", "Draft": "Drafts", "Archive": "Archive", "Archives": "Archive"}),
    # a child named like a role is an ordinary folder
    (["Sent", "Lists.Sent", "Lists.Spam"], {}, O365,
     {"Sent": "Sent Items", "Lists.Sent": "Lists/Sent", "Lists.Spam": "Lists/Spam"}),
    # children of merged folders keep their own parent's name
    (["Sent", "Sent Messages", "Sent Messages.2019"], {"Sent": SENT}, O365,
     {"Sent Messages": "Sent Items", "Sent Messages.2019": "Sent Items/2019"}),
    # a target with role folders: the merge goes there
    (["Sent", "Sent Messages", "Trash", "Bin"], {"Sent": SENT},
     TargetLayout("imap", ".", "INBOX.", (TargetFolder("INBOX"),
                                          TargetFolder("INBOX.Sent Mail", SENT),
                                          TargetFolder("INBOX.Bin", TRASH))),
     {"Sent": "INBOX.Sent Mail", "Sent Messages": "INBOX.Sent Mail", "Trash": "INBOX.Bin",
      "Bin": "INBOX.Bin"}),
    # a target without role folders: nothing merges, names are kept
    (["Sent", "Sent Messages", "Junk", "Spam"], {"Sent": SENT}, IMAP,
     {"Sent": "Sent", "Sent Messages": "Sent Messages", "Junk": "Junk", "Spam": "Spam"}),
    # the attribute on one, the name on the other
    (["Junk", "Spam", "Sent"], {"Spam": JUNK}, O365,
     {"Junk": "Junk Email", "Spam": "Junk Email", "Sent": "Sent Items"}),
])
def test_role_merges(names: list[str], special: dict[str, str], layout: TargetLayout,
                     expected: dict[str, str]) -> None:
    folders = dot("INBOX", *names, special=special)
    result = mapped(folders, layout)
    assert {k: result[k] for k in expected} == expected
    assert mapped(list(reversed(folders)), layout) == result


def test_merges_are_reported() -> None:
    plan = plan_folders(dot("INBOX", "Sent", "Sent Messages", "Junk", "Spam", "Work",
                            special={"Sent": SENT}), O365)
    notes = "\n".join(plan.notes())
    assert "Sent -> Sent Items (special-use \\Sent; merged with Sent Messages)" in notes
    assert ("Sent Messages -> Sent Items (well-known name \\Sent; merged with Sent)"
            in notes)
    assert "Spam -> Junk Email (well-known name \\Junk; merged with Junk)" in notes
    assert "Work" not in notes and "INBOX" not in notes
    merged = {m.source: m.merged_with for m in plan.mappings}
    assert merged["Junk"] == ("Spam",) and merged["Work"] == ()


def test_excluded_role_folder_is_not_merged() -> None:
    plan = plan_folders(dot("INBOX", "Junk", "Spam"), O365, FolderRules(exclude=("Spam",)))
    assert plan.as_dict() == {"INBOX": "Inbox", "Junk": "Junk Email", "Spam": None}
    assert all(not m.merged_with for m in plan.mappings)


def test_pop3_inbox_only() -> None:
    assert mapped([SourceFolder("INBOX")]) == {"INBOX": "Inbox"}
    assert mapped([SourceFolder("INBOX")], IMAP) == {"INBOX": "INBOX"}


@pytest.mark.parametrize("unicode, wire", [
    ("INBOX", "INBOX"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("Tom & Jerry", "Tom &- Jerry"),
    ("日本語", "&ZeVnLIqe-"),
    ("Sent Items/Ünï", "Sent Items/&ANw-n&AO8-"),
])
def test_modified_utf7(unicode: str, wire: str) -> None:
    assert imap_name(unicode) == wire
    assert decode_name(wire) == unicode


@pytest.mark.parametrize("folder, parts", [
    (SourceFolder("INBOX", "."), ["INBOX"]),
    (SourceFolder("INBOX", ".", prefix="INBOX."), ["INBOX"]),
    (SourceFolder("INBOX.a.b", ".", prefix="INBOX."), ["a", "b"]),
    (SourceFolder("inbox.a", ".", prefix="INBOX."), ["a"]),
    (SourceFolder("INBOX.a.b", "."), ["INBOX", "a", "b"]),  # empty prefix: Inbox's child
    (SourceFolder("INBOX/a", "/"), ["INBOX", "a"]),
    (SourceFolder("a", None), ["a"]),
])
def test_split_source(folder: SourceFolder, parts: list[str]) -> None:
    assert split_source(folder) == parts


def test_many_folders_plan_is_quick_and_unique() -> None:
    folders = [SourceFolder("INBOX", ".")] + [
        SourceFolder(f"F{i % 50}.Sub{i}", ".") for i in range(2000)]
    plan = plan_folders(folders, O365)
    targets = [m.target for m in plan.mappings]
    assert len({t.casefold() for t in targets if t}) == len(targets)


def test_exchange_to_exchange_keeps_inbox_children() -> None:
    folders = [SourceFolder("Inbox", "/"), SourceFolder("Inbox/Sub", "/"),
               SourceFolder("Sent Items", "/", "\\Sent"), SourceFolder("Calendar", "/")]
    assert mapped(folders) == {"Inbox": "Inbox", "Inbox/Sub": "Inbox/Sub",
                               "Sent Items": "Sent Items", "Calendar": "Calendar (2)"}


def test_an_inbox_under_another_name_goes_to_the_inbox() -> None:
    """A PST's Inbox keeps its localised name in the archive; its role puts it in INBOX."""
    folders = [SourceFolder("Posteingang", "/", "\\Inbox"),
               SourceFolder("Posteingang/Projekte", "/"), SourceFolder("Posteingang2", "/")]
    assert mapped(folders) == {"Posteingang": "Inbox", "Posteingang/Projekte": "Inbox/Projekte",
                               "Posteingang2": "Posteingang2"}
    assert mapped(folders, IMAP) == {"Posteingang": "INBOX",
                                     "Posteingang/Projekte": "INBOX/Projekte",
                                     "Posteingang2": "Posteingang2"}
