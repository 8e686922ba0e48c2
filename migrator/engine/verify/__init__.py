"""Verify: the archive against its own hashes, and the target against the archive."""
