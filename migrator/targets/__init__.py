"""Where mail goes: IMAP writers (Office 365 preset) that know nothing of the manifest."""
