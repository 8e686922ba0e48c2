"""Where mail comes from: IMAP and POP3 readers that know nothing of the manifest."""
