"""`export`: the archived folder tree as Maildir, mbox or .eml files, byte for byte.

plan.py chooses the messages, names.py the paths, journal.py keeps DEST's own record of what
is complete (so a re-export adds only what is new and a killed one resumes), and one module
per format writes the files; job.py ties them together.
"""
