"""The digest of what the archive expects in one target folder (see verify/unchanged.py).

Apart from the gate (SQLAlchemy) so that verify and the migrate no-op probe compute the
same digest by construction, from the same Candidate fields.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from migrator.engine.push.candidate import Candidate


def archive_digest(folder_names: Mapping[int, str], blob_path: Callable[[str], Path],
                   messages: Sequence[Candidate]) -> str:
    """Every expected message (id, source folder, blob, Message-ID, push row) and, for a
    message without a Message-ID (found by a fingerprint of its blob), its blob file."""
    digest = hashlib.sha256()
    for m in sorted(messages, key=lambda m: m.id):
        digest.update(f"{m.id}\t{folder_names.get(m.folder_id)}\t{m.sha256}\t"
                      f"{m.message_id}\t{m.state}\t{m.target_folder}\t"
                      f"{m.target_uidvalidity}\t{m.target_uid}\n".encode())
        if not m.message_id:
            digest.update(_blob_signature(blob_path(m.sha256)).encode())
    return digest.hexdigest()


def _blob_signature(path: Path) -> str:
    try:
        stat = os.stat(path)
    except OSError:
        return "missing\n"
    return f"{stat.st_size} {stat.st_mtime_ns} {stat.st_ino}\n"
