"""`repair`: fetch again from the source every archived blob that is missing or corrupted."""
