"""An archived message on its way to the target, and the states of its push row.

Apart from `rows` (SQLAlchemy) so that the no-op probe reads the same shape with sqlite3,
and the verify digest (verify/digest.py) is computed from the same fields on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass

INTENT, DONE, REFUSED, FAILED = "intent", "done", "refused", "failed"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An archived message on its way to the target (or already there)."""

    id: int  # messages.id
    folder_id: int
    sha256: str
    size: int
    internaldate: str | None
    flags: tuple[str, ...]
    message_id: str | None
    state: str | None = None  # its push row's state, None if never tried
    target_folder: str | None = None  # where the push row says it went (or was going)
    target_uidvalidity: int | None = None
    target_uid: int | None = None


def candidate(row: tuple[object, ...]) -> Candidate:
    """A Candidate from the columns messages.(id, folder_id, sha256, size, internaldate,
    flags, message_id) and pushes.(state, target_folder, target_uidvalidity, target_uid)."""
    (mid, folder_id, sha, size, date, flags, message_id, state, folder, validity, uid) = row
    return Candidate(mid, folder_id, sha, size, date,  # type: ignore[arg-type]
                     tuple(str(flags or "").split()), message_id,  # type: ignore[arg-type]
                     state, folder, validity, uid)  # type: ignore[arg-type]
