"""Connections on the wire: TLS settings and the one place IMAP sessions are made."""
