"""Every benchmark in bench/ runs end to end on a tiny mailbox and prints its table.

bench/ is not timed here (its figures on a handful of messages mean nothing), only kept from
rotting: its configs, its use of the test world and of migrator's command line are the same
code paths a real benchmark run takes. Each runs in this process through its `main(argv)`
(what `python -m bench.X` calls), so the servers it starts are stopped by its own `with`
blocks even when it fails.
"""

from __future__ import annotations

import pytest

from bench import batch, imports, large, migrate, noop, pop3, pull, push, search

pytestmark = pytest.mark.world

RUNS = {
    "pop3": (pop3.main, ["--messages", "5", "--repeat", "1", "--max-size", "20000", "--smoke"],
             ["baseline", "pull", "no-op"]),
    "pull": (pull.main, ["--messages", "5", "--delays", "0", "--connections", "1", "--smoke"],
             ["baseline", "pull", "no-op"]),
    "push": (push.main, ["--messages", "5", "--delays", "0", "--connections", "1",
                         "--naive", "2"],
             ["baseline", "push", "naive append"]),
    "migrate": (migrate.main, ["--messages", "5", "--delays", "0", "--smoke"],
                ["pull, then push", "migrate --no-verify", "migrate"]),
    "imports": (imports.main, ["--messages", "5", "--repeat", "1", "--max-size", "20000",
                               "--smoke"], ["raw copy", "import", "no-op"]),
    "noop": (noop.main, ["--messages", "5", "--delays", "0", "--repeat", "1", "--smoke"],
             ["raw STATUS round trip", "backup", "migrate", "verify", "verify --full",
              "migrate, 1 new message", "backup, 1 new message"]),
    "search": (search.main, ["--messages", "5", "--repeat", "1", "--smoke"],
               ["pull, no index", "pull + index", "index --rebuild"]),
    "large": (large.main, ["--messages", "12", "--folders", "3", "--smoke"], ["12"]),
    "batch": (batch.main, ["--mailboxes", "3", "--messages", "2", "--workers", "1,2",
                           "--parallel", "2", "--smoke"],
              ["raw APPEND baseline (2 connections)", "sqlite: batch run --parallel 2",
               "postgres: 1 worker x --parallel 2", "postgres: 2 workers x --parallel 2",
               "sqlite: delta pass (1 new msg each)", "postgres: delta pass, 2 workers"]),
}


def table(output: str) -> list[list[str]]:
    """The rows of the last Markdown table in `output` (header and rule left out)."""
    tables: list[list[str]] = [[]]
    for line in output.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    lines = tables[-1] or tables[-2]
    assert len(lines) >= 3 and set(lines[1]) <= set("|-"), output
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.parametrize("name", list(RUNS))
def test_benchmark_runs_on_a_tiny_mailbox(name, capsys):
    main, argv, expected_rows = RUNS[name]

    status = main(argv)

    output = capsys.readouterr().out
    assert status == 0, output
    rows = table(output)
    names = [cell for row in rows for cell in row[:2]]  # the run's name is in column 1 or 2
    for expected in expected_rows:
        assert expected in names, output
    assert all(len(row) == len(rows[0]) for row in rows)
