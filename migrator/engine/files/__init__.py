"""Import: mail from files (mbox, Maildir, .eml) pulled into the archive like any source."""
