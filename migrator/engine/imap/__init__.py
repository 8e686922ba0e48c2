"""IMAP pull: plan each folder, fetch pipelined, write blobs then rows."""
