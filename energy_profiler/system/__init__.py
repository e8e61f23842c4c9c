"""Facts about the host and the code that ran."""
