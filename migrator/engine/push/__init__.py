"""Push: plan target folders, APPEND pipelined with intents, reconcile the unknown."""
