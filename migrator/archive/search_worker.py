"""The search indexer's own process: indexes the blobs a pull (or any writer) records while
the pull goes on, on another core and off the pull's GIL.

    python -m migrator.archive.search_worker   (started by `SearchIndexer`, fed on stdin)

stdin: the manifest URL, the archive's root and its compression, one line each; then
batches of SHA-256 names, one a line, each batch ended by an empty line. At the end of
stdin (the parent closed it, or was killed) it indexes what it was given and exits: it never
outlives its parent by more than one batch. Exit status 0, or 1 when indexing failed (the
parent says so; the next catch-up indexes what is missing).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import event


def serve(stream: BinaryIO) -> int:
    from migrator.archive.blobs import BlobStore
    from migrator.archive.db import open_manifest
    from migrator.archive.search_index import index_blobs

    url, root, compression = (stream.readline().decode().strip() for _ in range(3))
    manifest = open_manifest(url, upgrade=False)
    # The index is derived data (a catch-up rebuilds what a power cut loses): its commits
    # need not wait for the disk, which the pull's own commits (and syncfs) keep busy.
    event.listen(manifest.engine, "connect", _index_pragmas)
    manifest.engine.dispose()  # connections made from here on get them
    try:
        store = BlobStore(Path(root), compression)
        batch: list[str] = []
        for line in stream:
            sha = line.strip().decode("ascii", "replace")
            if sha:
                batch.append(sha)
                continue
            index_blobs(manifest, store, batch)
            batch = []
        if batch:
            index_blobs(manifest, store, batch)
    finally:
        manifest.close()
    return 0


def _index_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: consistent, the last commits may go
    cursor.close()


def main() -> int:
    try:
        return serve(sys.stdin.buffer)
    except Exception:
        return 1
    except KeyboardInterrupt:  # the terminal's Ctrl-C reaches the whole process group
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
