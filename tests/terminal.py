"""A tiny terminal: what a screen shows after a stream of text with \\r, \\n and cursor-up.

Enough for tqdm's output, which draws bars with those three; any other escape sequence
fails the test instead of being guessed at.
"""

from __future__ import annotations

UP = "\x1b[A"


def screen(text: str) -> list[str]:
    """The screen's lines (trailing blanks stripped, trailing empty lines dropped)."""
    rows: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(text):
        if text.startswith(UP, i):
            row, i = max(row - 1, 0), i + len(UP)
            continue
        char, i = text[i], i + 1
        if char == "\x1b":
            raise AssertionError(f"unexpected escape sequence {text[i - 1:i + 5]!r}")
        if char == "\r":
            col = 0
        elif char == "\n":  # a terminal (onlcr) turns \n into \r\n
            row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
        else:
            line = rows[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = char
            col += 1
    lines = ["".join(r).rstrip() for r in rows]
    while lines and not lines[-1]:
        lines.pop()
    return lines
