"""Command line: parse, build a Context, run commands, render; nothing else."""
