"""POP3 pull: UIDL-tracked download, durable writes, policy-driven deletion."""
