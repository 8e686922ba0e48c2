"""Connections on the wire: TLS settings, the one place IMAP sessions are made, and the
IMAP syntax both sources and targets send (sequence sets)."""
